-- Every read of a synced branch, and how the delegate did it: the method the fetch planner
-- chose and why, the method it fell back from (and why) when one refused, and what the read
-- cost. `sync activity` shows them. Reads from a delegate that does not say how it read are
-- not recorded. Rows are history, pruned by its age (`retention`).
CREATE TABLE sync_reads (
    id               TEXT COLLATE "C" PRIMARY KEY,
    branch_id        TEXT COLLATE "C" NOT NULL REFERENCES sync_branches (id),
    -- The link enabled with this read, for the branch read whole when sync is enabled.
    link_id          TEXT COLLATE "C" REFERENCES sync_links (id),
    kind             TEXT COLLATE "C" NOT NULL CHECK (kind IN ('enable', 'incremental', 'snapshot')),
    -- The branch's head as read; NULL when the branch did not exist yet.
    head             TEXT COLLATE "C",
    -- 'git', 'cloud-rest', 'dc-archive', 'dc-rest'… as the delegate names it.
    method           TEXT COLLATE "C" NOT NULL,
    reason           TEXT COLLATE "C" NOT NULL,
    fallback_from    TEXT COLLATE "C",
    fallback_reason  TEXT COLLATE "C",
    -- REST requests sent, bytes received, and how long the read took.
    requests         BIGINT NOT NULL,
    bytes            BIGINT NOT NULL,
    duration_ms      BIGINT NOT NULL,
    -- The delegate task that read, which names the delegate while the task is kept.
    task_id          TEXT COLLATE "C",
    -- Milliseconds since the Unix epoch.
    read_at          BIGINT NOT NULL
);
CREATE INDEX sync_reads_by_branch ON sync_reads (branch_id, read_at);
CREATE INDEX sync_reads_by_time ON sync_reads (read_at);
