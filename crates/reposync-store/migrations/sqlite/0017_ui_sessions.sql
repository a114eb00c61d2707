-- Web UI sessions, known by the hash of the cookie's value. A session ends when it has been
-- idle too long, at its absolute end, at logout, or with its user.
CREATE TABLE ui_sessions (
    id_hash       TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at    INTEGER NOT NULL,
    last_seen_at  INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL
);
