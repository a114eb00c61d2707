-- Webhook intake, bounded. Anyone who has a connector's webhook URL can send to it, so what
-- the delivery log keeps must not grow with what such a sender sends: deliveries that fail
-- authentication are counted rather than logged one by one, logged values are cut to a few
-- hundred bytes, and the log is pruned by age and per connector. A queued delivery remembers
-- the heads it queued, so that pruning never drops one whose head is still unread.

-- Per connector: how many deliveries to its URL failed authentication (a missing or wrong
-- signature, or a body that could not be read while a signature is required), and the last.
CREATE TABLE webhook_unauthenticated (
    connector_id  TEXT COLLATE "C" PRIMARY KEY REFERENCES connectors (id) ON DELETE CASCADE,
    count         BIGINT NOT NULL,
    last_at       BIGINT NOT NULL,
    last_reason   TEXT COLLATE "C" NOT NULL
);

-- The branch heads a delivery queued ('' for a branch announced deleted).
CREATE TABLE webhook_delivery_heads (
    delivery_id  TEXT COLLATE "C" NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    branch_id    TEXT COLLATE "C" NOT NULL REFERENCES sync_branches (id) ON DELETE CASCADE,
    commit_id    TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (delivery_id, branch_id)
);

-- Pruning ranks each connector's deliveries newest first.
CREATE INDEX webhook_deliveries_by_connector ON webhook_deliveries (connector_id, received_at);

-- Signature failures logged one by one before this version become the count.
INSERT INTO webhook_unauthenticated (connector_id, count, last_at, last_reason)
    SELECT d.connector_id, COUNT(*), MAX(d.received_at), COALESCE((
        SELECT r.reason FROM webhook_deliveries r
        WHERE r.connector_id = d.connector_id AND r.outcome = 'rejected' AND r.signature IN ('missing', 'invalid')
        ORDER BY r.received_at DESC, r.id DESC LIMIT 1), '')
    FROM webhook_deliveries d
    WHERE d.outcome = 'rejected' AND d.signature IN ('missing', 'invalid')
    GROUP BY d.connector_id;
DELETE FROM webhook_deliveries WHERE outcome = 'rejected' AND signature IN ('missing', 'invalid');
-- The other rows keep their values as they were logged: pruning removes them within the
-- retention period.
