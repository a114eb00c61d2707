-- One-time links that let a user set their password without it passing through an admin or
-- argv: known by the hash of their token, one per user, gone once used or past `expires_at`.
CREATE TABLE password_links (
    user_id     TEXT COLLATE "C" PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    token_hash  TEXT COLLATE "C" NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
