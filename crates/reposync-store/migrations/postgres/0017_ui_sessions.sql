-- Web UI sessions, known by the hash of the cookie's value. A session ends when it has been
-- idle too long, at its absolute end, at logout, or with its user.
CREATE TABLE ui_sessions (
    id_hash       TEXT COLLATE "C" PRIMARY KEY,
    user_id       TEXT COLLATE "C" NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at    BIGINT NOT NULL,
    last_seen_at  BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL
);
