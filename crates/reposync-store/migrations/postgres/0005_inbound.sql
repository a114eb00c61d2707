-- Git Sync, Git -> reposync.

-- Each branch that links sync with, once per connector, repository and branch: where the
-- Git -> reposync side stands on it. Several links (the account and applications) may share
-- one branch; its commits are read once and each file goes to the scope that covers it.
CREATE TABLE sync_branches (
    id                TEXT COLLATE "C" PRIMARY KEY,
    connector_id      TEXT COLLATE "C" NOT NULL REFERENCES connectors (id),
    -- The repository slug for account-scope connectors, '' otherwise.
    repo              TEXT COLLATE "C" NOT NULL DEFAULT '',
    branch            TEXT COLLATE "C" NOT NULL,
    -- The last commit read and applied (or recognised as reposync's own). NULL: none yet, so
    -- the next read is a snapshot of the whole branch.
    processed_commit  TEXT COLLATE "C",
    -- A head that a webhook or the poller announced and that is not processed yet; '' when
    -- the branch was announced deleted.
    wanted_commit     TEXT COLLATE "C",
    wanted_at         BIGINT,
    -- Why the branch cannot be synced (it was deleted), until it comes back.
    broken            TEXT COLLATE "C",
    polled_at         BIGINT,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    UNIQUE (connector_id, repo, branch)
);

-- Every webhook delivery that reached a connector's URL: what came, and what came of it.
-- Deliveries to an unknown token are not stored: they identify nothing.
CREATE TABLE webhook_deliveries (
    id             TEXT COLLATE "C" PRIMARY KEY,
    connector_id   TEXT COLLATE "C" NOT NULL REFERENCES connectors (id) ON DELETE CASCADE,
    received_at    BIGINT NOT NULL,
    event          TEXT COLLATE "C" NOT NULL,
    delivery_id    TEXT COLLATE "C",
    format         TEXT COLLATE "C",
    signature      TEXT COLLATE "C" NOT NULL CHECK (signature IN ('unchecked', 'valid', 'not_required', 'missing', 'invalid')),
    outcome        TEXT COLLATE "C" NOT NULL CHECK (outcome IN ('queued', 'ping', 'ignored', 'duplicate', 'rejected')),
    reason         TEXT COLLATE "C",
    -- JSON: the link ids a change matched, and the normalised ref changes.
    matched_links  TEXT COLLATE "C" NOT NULL DEFAULT '[]',
    changes        TEXT COLLATE "C" NOT NULL DEFAULT '[]'
);
CREATE INDEX webhook_deliveries_by_delivery_id ON webhook_deliveries (connector_id, delivery_id);
CREATE INDEX webhook_deliveries_by_time ON webhook_deliveries (received_at);

-- Every head announced for a branch (by a webhook or the poller): a retried or doubled
-- delivery of the same head is a duplicate even after the head was read.
CREATE TABLE announced_heads (
    branch_id     TEXT COLLATE "C" NOT NULL REFERENCES sync_branches (id),
    commit_id     TEXT COLLATE "C" NOT NULL,
    announced_at  BIGINT NOT NULL,
    PRIMARY KEY (branch_id, commit_id)
);

-- Every commit read from a branch, and what became of it.
CREATE TABLE inbound_commits (
    id          TEXT COLLATE "C" PRIMARY KEY,
    branch_id   TEXT COLLATE "C" NOT NULL REFERENCES sync_branches (id),
    commit_id   TEXT COLLATE "C" NOT NULL,
    status      TEXT COLLATE "C" NOT NULL CHECK (status IN ('applied', 'partial', 'failed', 'ours', 'nothing', 'snapshot')),
    -- JSON: [{"op": "ADD|MODIFY|DELETE|RENAME", "path": …, "from": …}]
    files       TEXT COLLATE "C" NOT NULL,
    errors      BIGINT NOT NULL DEFAULT 0,
    message     TEXT COLLATE "C" NOT NULL DEFAULT '',
    author      TEXT COLLATE "C" NOT NULL DEFAULT '',
    applied_at  BIGINT NOT NULL
);
CREATE INDEX inbound_commits_by_branch ON inbound_commits (branch_id, commit_id);

-- Sync errors now also come from files read from Git: such an error belongs to a branch and a
-- commit, and may concern a scope that has no link yet (a new application folder), so the
-- link becomes optional. (SQLite rebuilds the table; PostgreSQL relaxes NOT NULL in place.)
ALTER TABLE sync_errors ALTER COLUMN link_id DROP NOT NULL;
ALTER TABLE sync_errors ADD COLUMN branch_id TEXT COLLATE "C" REFERENCES sync_branches (id);
-- The commit attempt (reposync -> Git) or the commit read from Git (Git -> reposync).
ALTER TABLE sync_errors ADD COLUMN commit_id TEXT COLLATE "C";
-- 'fixed' (a later commit), 'superseded' (failed again), 'retried', 'discarded',
-- 'passed' (a connection check passed again), 'disabled' (the link was disabled).
ALTER TABLE sync_errors ADD COLUMN resolution TEXT COLLATE "C";
CREATE INDEX sync_errors_by_path ON sync_errors (branch_id, path);

-- Existing live links get their branch, positioned where outgoing changes stand.
INSERT INTO sync_branches (id, connector_id, repo, branch, processed_commit, created_at, updated_at)
    SELECT replace(gen_random_uuid()::text, '-', ''), connector_id, COALESCE(repo, ''), branch, MAX(base_commit), MIN(created_at), MAX(updated_at)
    FROM sync_links WHERE enabled = 1 GROUP BY connector_id, COALESCE(repo, ''), branch;
