-- Remote delegates.

-- Tokens delegates authenticate with, known by their hash. Revoking keeps the row, so the
-- delegates that used it stay named in the list.
CREATE TABLE delegate_tokens (
    id          TEXT COLLATE "C" PRIMARY KEY,
    name        TEXT COLLATE "C" NOT NULL UNIQUE,
    token_hash  TEXT COLLATE "C" NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);

-- Every delegate that registered: what it said of itself, when it was last heard from, and
-- what it ran.
CREATE TABLE delegates (
    name             TEXT COLLATE "C" PRIMARY KEY,
    token_id         TEXT COLLATE "C" REFERENCES delegate_tokens (id),
    selectors        TEXT COLLATE "C" NOT NULL,
    version          TEXT COLLATE "C" NOT NULL,
    hostname         TEXT COLLATE "C" NOT NULL,
    git_version      TEXT COLLATE "C" NOT NULL,
    ssh_version      TEXT COLLATE "C" NOT NULL,
    registered_at    BIGINT NOT NULL,
    last_heartbeat   BIGINT,
    tasks_run        BIGINT NOT NULL DEFAULT 0,
    tasks_succeeded  BIGINT NOT NULL DEFAULT 0,
    tasks_failed     BIGINT NOT NULL DEFAULT 0
);

-- Which delegate a task should go to first (the one that last succeeded for the same kind of
-- connector) and which it should go to last (the one that just failed for it).
ALTER TABLE tasks ADD COLUMN prefer TEXT COLLATE "C";
ALTER TABLE tasks ADD COLUMN avoid TEXT COLLATE "C";
