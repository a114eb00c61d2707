-- Users, their personal API tokens, and the throttle on failed logins.

-- A user holds one role, everywhere or only in the applications `apps` names (a JSON array
-- of application names; empty means everywhere); elsewhere they read as a viewer. The
-- password is an Argon2id hash in the PHC string format, or NULL for a user who logs in only
-- with tokens.
CREATE TABLE users (
    id             TEXT COLLATE "C" PRIMARY KEY,
    name           TEXT COLLATE "C" NOT NULL UNIQUE,
    email          TEXT COLLATE "C",
    role           TEXT COLLATE "C" NOT NULL CHECK (role IN ('viewer', 'editor', 'admin')),
    apps           TEXT COLLATE "C" NOT NULL DEFAULT '[]',
    password_hash  TEXT COLLATE "C",
    disabled_at    BIGINT,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);

-- An installation from before users had one shared admin token: its holder becomes the
-- first admin user, named `admin`, and keeps the token.
INSERT INTO users (id, name, role, apps, created_at, updated_at)
SELECT replace(gen_random_uuid()::text, '-', ''), 'admin', 'admin', '[]', MIN(created_at), MIN(created_at)
FROM api_tokens
HAVING COUNT(*) > 0;

-- A token belongs to one user and carries at most their rights: `role` caps it (NULL: the
-- owner's role). Its name is unique per user. Revoking deletes it; the audit trail keeps
-- the event.
CREATE TABLE user_tokens (
    id            TEXT COLLATE "C" PRIMARY KEY,
    user_id       TEXT COLLATE "C" NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name          TEXT COLLATE "C" NOT NULL,
    token_hash    TEXT COLLATE "C" NOT NULL UNIQUE,
    role          TEXT COLLATE "C" CHECK (role IN ('viewer', 'editor', 'admin')),
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT,
    last_used_at  BIGINT,
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
    key            TEXT COLLATE "C" PRIMARY KEY,
    failures       BIGINT NOT NULL,
    window_start   BIGINT NOT NULL,
    blocked_until  BIGINT,
    last_address   TEXT COLLATE "C"
);
