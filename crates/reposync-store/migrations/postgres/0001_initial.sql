-- PostgreSQL's copy of migrations/sqlite, migration for migration: the same tables, columns,
-- indexes and constraints. Times are milliseconds since the Unix epoch and every integer is
-- BIGINT (so that every integer column reads as i64, as on SQLite), blobs are BYTEA,
-- identifiers are UUID text, JSON documents are TEXT, and flags are 0/1 integers as on SQLite,
-- so that one SQL serves both. Text compares and sorts byte by byte (COLLATE "C"), as SQLite's
-- does, whatever the database's locale: lists come out in the same order on both, and a
-- range on a path (a folder's files) holds the same rows.

CREATE TABLE api_tokens (
    id          TEXT COLLATE "C" PRIMARY KEY,
    name        TEXT COLLATE "C" NOT NULL UNIQUE,
    -- SHA-256 of the token, hex. The token itself is shown once and never stored.
    token_hash  TEXT COLLATE "C" NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL
);

CREATE TABLE secrets (
    id              TEXT COLLATE "C" PRIMARY KEY,
    name            TEXT COLLATE "C" NOT NULL UNIQUE,
    kind            TEXT COLLATE "C" NOT NULL CHECK (kind IN ('text', 'ssh_key')),
    -- Envelope-encrypted value, bound to this row's id and kind.
    sealed_value    BYTEA NOT NULL,
    ssh_algorithm   TEXT COLLATE "C",
    ssh_fingerprint TEXT COLLATE "C",
    ssh_public_key  TEXT COLLATE "C",
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);

CREATE TABLE connectors (
    id                  TEXT COLLATE "C" PRIMARY KEY,
    name                TEXT COLLATE "C" NOT NULL UNIQUE,
    -- The validated connector (reposync_model::GitConnector) as JSON. It names secrets; it
    -- never holds their values.
    spec                TEXT COLLATE "C" NOT NULL,
    -- The webhook URL token and HMAC secret, each envelope-encrypted; the lookup column is the
    -- SHA-256 of the token so that intake can find the connector without decrypting every row.
    webhook_token       BYTEA,
    webhook_token_hash  TEXT COLLATE "C" UNIQUE,
    webhook_secret      BYTEA,
    last_test           TEXT COLLATE "C",
    -- Bumped by every update, so that an update based on a stale read is refused.
    revision            BIGINT NOT NULL DEFAULT 1,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL
);

-- Which secrets each connector uses, so that deleting a secret in use can be refused.
CREATE TABLE connector_secrets (
    connector_id TEXT COLLATE "C" NOT NULL REFERENCES connectors (id) ON DELETE CASCADE,
    secret_id    TEXT COLLATE "C" NOT NULL REFERENCES secrets (id),
    PRIMARY KEY (connector_id, secret_id)
);
CREATE INDEX connector_secrets_by_secret ON connector_secrets (secret_id);

CREATE TABLE tasks (
    id                TEXT COLLATE "C" PRIMARY KEY,
    kind              TEXT COLLATE "C" NOT NULL,
    -- What to do, as JSON, naming records by id. Credentials are attached only when a delegate
    -- claims the task, and never stored here.
    payload           TEXT COLLATE "C" NOT NULL,
    selectors         TEXT COLLATE "C" NOT NULL,
    status            TEXT COLLATE "C" NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
    delegate          TEXT COLLATE "C",
    lease_expires_at  BIGINT,
    attempts          BIGINT NOT NULL DEFAULT 0,
    max_attempts      BIGINT NOT NULL,
    result            TEXT COLLATE "C",
    created_at        BIGINT NOT NULL,
    started_at        BIGINT,
    finished_at       BIGINT
);
CREATE INDEX tasks_by_status ON tasks (status, created_at);
