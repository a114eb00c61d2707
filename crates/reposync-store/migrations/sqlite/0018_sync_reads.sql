-- Every read of a synced branch, and how the delegate did it: the method the fetch planner
-- chose and why, the method it fell back from (and why) when one refused, and what the read
-- cost. `sync activity` shows them. Reads from a delegate that does not say how it read are
-- not recorded. Rows are history, pruned by its age (`retention`).
CREATE TABLE sync_reads (
    id               TEXT PRIMARY KEY,
    branch_id        TEXT NOT NULL REFERENCES sync_branches (id),
    -- The link enabled with this read, for the branch read whole when sync is enabled.
    link_id          TEXT REFERENCES sync_links (id),
    kind             TEXT NOT NULL CHECK (kind IN ('enable', 'incremental', 'snapshot')),
    -- The branch's head as read; NULL when the branch did not exist yet.
    head             TEXT,
    -- 'git', 'cloud-rest', 'dc-archive', 'dc-rest'… as the delegate names it.
    method           TEXT NOT NULL,
    reason           TEXT NOT NULL,
    fallback_from    TEXT,
    fallback_reason  TEXT,
    -- REST requests sent, bytes received, and how long the read took.
    requests         INTEGER NOT NULL,
    bytes            INTEGER NOT NULL,
    duration_ms      INTEGER NOT NULL,
    -- The delegate task that read, which names the delegate while the task is kept.
    task_id          TEXT,
    -- Milliseconds since the Unix epoch.
    read_at          INTEGER NOT NULL
);
CREATE INDEX sync_reads_by_branch ON sync_reads (branch_id, read_at);
CREATE INDEX sync_reads_by_time ON sync_reads (read_at);
