-- Remote delegates.

-- Tokens delegates authenticate with, known by their hash. Revoking keeps the row, so the
-- delegates that used it stay named in the list.
CREATE TABLE delegate_tokens (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    token_hash  TEXT NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);

-- Every delegate that registered: what it said of itself, when it was last heard from, and
-- what it ran.
CREATE TABLE delegates (
    name             TEXT PRIMARY KEY,
    token_id         TEXT REFERENCES delegate_tokens (id),
    selectors        TEXT NOT NULL,
    version          TEXT NOT NULL,
    hostname         TEXT NOT NULL,
    git_version      TEXT NOT NULL,
    ssh_version      TEXT NOT NULL,
    registered_at    INTEGER NOT NULL,
    last_heartbeat   INTEGER,
    tasks_run        INTEGER NOT NULL DEFAULT 0,
    tasks_succeeded  INTEGER NOT NULL DEFAULT 0,
    tasks_failed     INTEGER NOT NULL DEFAULT 0
);

-- Which delegate a task should go to first (the one that last succeeded for the same kind of
-- connector) and which it should go to last (the one that just failed for it).
ALTER TABLE tasks ADD COLUMN prefer TEXT;
ALTER TABLE tasks ADD COLUMN avoid TEXT;
