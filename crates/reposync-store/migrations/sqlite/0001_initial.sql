-- Times are milliseconds since the Unix epoch (INTEGER), identifiers are UUID text, and JSON
-- documents are TEXT: the same shapes work unchanged on PostgreSQL.

CREATE TABLE api_tokens (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    -- SHA-256 of the token, hex. The token itself is shown once and never stored.
    token_hash  TEXT NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL
);

CREATE TABLE secrets (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE,
    kind            TEXT NOT NULL CHECK (kind IN ('text', 'ssh_key')),
    -- Envelope-encrypted value, bound to this row's id and kind.
    sealed_value    BLOB NOT NULL,
    ssh_algorithm   TEXT,
    ssh_fingerprint TEXT,
    ssh_public_key  TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);

CREATE TABLE connectors (
    id                  TEXT PRIMARY KEY,
    name                TEXT NOT NULL UNIQUE,
    -- The validated connector (reposync_model::GitConnector) as JSON. It names secrets; it
    -- never holds their values.
    spec                TEXT NOT NULL,
    -- The webhook URL token and HMAC secret, each envelope-encrypted; the lookup column is the
    -- SHA-256 of the token so that intake can find the connector without decrypting every row.
    webhook_token       BLOB,
    webhook_token_hash  TEXT UNIQUE,
    webhook_secret      BLOB,
    last_test           TEXT,
    -- Bumped by every update, so that an update based on a stale read is refused.
    revision            INTEGER NOT NULL DEFAULT 1,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL
);

-- Which secrets each connector uses, so that deleting a secret in use can be refused.
CREATE TABLE connector_secrets (
    connector_id TEXT NOT NULL REFERENCES connectors (id) ON DELETE CASCADE,
    secret_id    TEXT NOT NULL REFERENCES secrets (id),
    PRIMARY KEY (connector_id, secret_id)
);
CREATE INDEX connector_secrets_by_secret ON connector_secrets (secret_id);

CREATE TABLE tasks (
    id                TEXT PRIMARY KEY,
    kind              TEXT NOT NULL,
    -- What to do, as JSON, naming records by id. Credentials are attached only when a delegate
    -- claims the task, and never stored here.
    payload           TEXT NOT NULL,
    selectors         TEXT NOT NULL,
    status            TEXT NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
    delegate          TEXT,
    lease_expires_at  INTEGER,
    attempts          INTEGER NOT NULL DEFAULT 0,
    max_attempts      INTEGER NOT NULL,
    result            TEXT,
    created_at        INTEGER NOT NULL,
    started_at        INTEGER,
    finished_at       INTEGER
);
CREATE INDEX tasks_by_status ON tasks (status, created_at);
