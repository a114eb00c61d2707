-- Git Sync, reposync -> Git.

-- A scope of the tree linked to one branch of one repository: the account's own files
-- (`app` = '') or one application's folder. Disabling keeps the row, for its history.
CREATE TABLE sync_links (
    id            TEXT PRIMARY KEY,
    app           TEXT NOT NULL,
    connector_id  TEXT NOT NULL REFERENCES connectors (id),
    -- The repository slug, for account-scope connectors only.
    repo          TEXT,
    branch        TEXT NOT NULL,
    -- The remote commit that outgoing changes are based on: the last one reposync pushed or
    -- read. Remote commits after it that touch the same files are a conflict.
    base_commit   TEXT,
    enabled       INTEGER NOT NULL DEFAULT 1,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
-- One live link per scope.
CREATE UNIQUE INDEX sync_links_live_scope ON sync_links (app) WHERE enabled = 1;

-- The outbox: what one accepted change did to the files of a linked scope, written in the
-- same transaction as the change. `files` is JSON: [{"op": "ADD|MODIFY|DELETE", "path": …}].
CREATE TABLE changesets (
    id          TEXT PRIMARY KEY,
    link_id     TEXT NOT NULL REFERENCES sync_links (id),
    status      TEXT NOT NULL CHECK (status IN ('waiting', 'pushing', 'pushed', 'failed', 'conflict')),
    files       TEXT NOT NULL,
    attempt_id  TEXT,
    commit_id   TEXT,
    error       TEXT,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE INDEX changesets_by_link ON changesets (link_id, status, created_at);

-- Every commit attempt: which changesets it carried, what became of it.
CREATE TABLE commit_attempts (
    id           TEXT PRIMARY KEY,
    link_id      TEXT NOT NULL REFERENCES sync_links (id),
    status       TEXT NOT NULL CHECK (status IN ('running', 'pushed', 'nothing', 'conflict', 'failed', 'interrupted')),
    changesets   TEXT NOT NULL,
    files        TEXT NOT NULL,
    task_id      TEXT,
    commit_id    TEXT,
    error        TEXT,
    started_at   INTEGER NOT NULL,
    finished_at  INTEGER
);
CREATE INDEX commit_attempts_by_link ON commit_attempts (link_id, started_at);

-- Sync errors that need a person: a conflict keeps both versions of the file.
CREATE TABLE sync_errors (
    id            TEXT PRIMARY KEY,
    link_id       TEXT NOT NULL REFERENCES sync_links (id),
    -- The commit attempt that met the error; `sync retry` of one of its changesets resolves it.
    attempt_id    TEXT,
    path          TEXT,
    code          TEXT NOT NULL,
    message       TEXT NOT NULL,
    ours          BLOB,
    theirs        BLOB,
    created_at    INTEGER NOT NULL,
    resolved_at   INTEGER
);
CREATE INDEX sync_errors_open ON sync_errors (resolved_at, link_id);
