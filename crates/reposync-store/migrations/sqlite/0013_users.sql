-- Users, their personal API tokens, and the throttle on failed logins.

-- A user holds one role, everywhere or only in the applications `apps` names (a JSON array
-- of application names; empty means everywhere); elsewhere they read as a viewer. The
-- password is an Argon2id hash in the PHC string format, or NULL for a user who logs in only
-- with tokens.
CREATE TABLE users (
    id             TEXT PRIMARY KEY,
    name           TEXT NOT NULL UNIQUE,
    email          TEXT,
    role           TEXT NOT NULL CHECK (role IN ('viewer', 'editor', 'admin')),
    apps           TEXT NOT NULL DEFAULT '[]',
    password_hash  TEXT,
    disabled_at    INTEGER,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
);

-- An installation from before users had one shared admin token: its holder becomes the
-- first admin user, named `admin`, and keeps the token.
INSERT INTO users (id, name, role, apps, created_at, updated_at)
SELECT lower(hex(randomblob(16))), 'admin', 'admin', '[]', MIN(created_at), MIN(created_at)
FROM api_tokens
HAVING COUNT(*) > 0;

-- A token belongs to one user and carries at most their rights: `role` caps it (NULL: the
-- owner's role). Its name is unique per user. Revoking deletes it; the audit trail keeps
-- the event.
CREATE TABLE user_tokens (
    id            TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    token_hash    TEXT NOT NULL UNIQUE,
    role          TEXT CHECK (role IN ('viewer', 'editor', 'admin')),
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER,
    last_used_at  INTEGER,
    UNIQUE (user_id, name)
);

INSERT INTO user_tokens (id, user_id, name, token_hash, role, created_at)
SELECT t.id, u.id, t.name, t.token_hash, NULL, t.created_at
FROM api_tokens t, users u
WHERE u.name = 'admin';

DROP TABLE api_tokens;

-- Failed logins, counted per user (`user:<name>`) and per client address (`addr:<ip>`)
-- within a window; `blocked_until` refuses attempts before it without checking a password.
CREATE TABLE login_failures (
    key            TEXT PRIMARY KEY,
    failures       INTEGER NOT NULL,
    window_start   INTEGER NOT NULL,
    blocked_until  INTEGER,
    last_address   TEXT
);
