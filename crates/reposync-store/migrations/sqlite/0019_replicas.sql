-- Several `reposync serve` processes (replicas) may share one database. Each has an id kept
-- in its data directory, so a replica that restarts is the same replica and takes its own
-- work up again at once. Every time below is read from the database's clock, never a
-- replica's, so that replicas whose clocks differ still agree on what has expired.
CREATE TABLE replicas (
    id          TEXT PRIMARY KEY,
    hostname    TEXT NOT NULL,
    started_at  INTEGER NOT NULL,
    -- Its last heartbeat; a replica not heard from for a while is gone, and its local tasks
    -- are taken up by another.
    seen_at     INTEGER NOT NULL
);

-- Which replica works on a synced branch (its outbox, inbox and polls), until when. The
-- token grows by one at each change of holder: a write made under a lease names its token,
-- and one whose token is no longer the branch's is refused, so a replica that lost its lease
-- (paused, cut off from the database) cannot commit anything for the branch afterwards.
-- Rows are never deleted, so a token never repeats.
CREATE TABLE branch_leases (
    branch_id   TEXT PRIMARY KEY,
    -- NULL once released.
    holder      TEXT,
    token       INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);

-- The delegates connected to each replica, so that every replica knows who may run a task
-- whichever replica the delegate polls: what its claims may take, how long its lease is,
-- when it was last heard from, and how many long polls it has open there.
CREATE TABLE delegate_presence (
    replica_id  TEXT NOT NULL,
    name        TEXT NOT NULL,
    eligibility TEXT NOT NULL,
    lease_ms    INTEGER NOT NULL,
    builtin     INTEGER NOT NULL,
    token_id    TEXT,
    seen_at     INTEGER NOT NULL,
    polling     INTEGER NOT NULL,
    PRIMARY KEY (replica_id, name)
);

-- The replica running a local task (one the server does itself, such as enabling sync):
-- another replica takes it up only once that one is gone.
ALTER TABLE tasks ADD COLUMN replica TEXT;
