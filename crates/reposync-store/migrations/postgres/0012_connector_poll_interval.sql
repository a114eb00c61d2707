-- How often a connector's branches are polled, in seconds: the connector spec's
-- `poll_interval_seconds`, kept beside it so that the poller can choose due branches in SQL.
-- NULL leaves it to the server's interval; 0 turns polling off for the connector.
ALTER TABLE connectors ADD COLUMN poll_interval_s BIGINT;
