-- Git Sync, reposync -> Git.

-- A scope of the tree linked to one branch of one repository: the account's own files
-- (`app` = '') or one application's folder. Disabling keeps the row, for its history.
CREATE TABLE sync_links (
    id            TEXT COLLATE "C" PRIMARY KEY,
    app           TEXT COLLATE "C" NOT NULL,
    connector_id  TEXT COLLATE "C" NOT NULL REFERENCES connectors (id),
    -- The repository slug, for account-scope connectors only.
    repo          TEXT COLLATE "C",
    branch        TEXT COLLATE "C" NOT NULL,
    -- The remote commit that outgoing changes are based on: the last one reposync pushed or
    -- read. Remote commits after it that touch the same files are a conflict.
    base_commit   TEXT COLLATE "C",
    enabled       BIGINT NOT NULL DEFAULT 1,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
-- One live link per scope.
CREATE UNIQUE INDEX sync_links_live_scope ON sync_links (app) WHERE enabled = 1;

-- The outbox: what one accepted change did to the files of a linked scope, written in the
-- same transaction as the change. `files` is JSON: [{"op": "ADD|MODIFY|DELETE", "path": …}].
CREATE TABLE changesets (
    id          TEXT COLLATE "C" PRIMARY KEY,
    link_id     TEXT COLLATE "C" NOT NULL REFERENCES sync_links (id),
    status      TEXT COLLATE "C" NOT NULL CHECK (status IN ('waiting', 'pushing', 'pushed', 'failed', 'conflict')),
    files       TEXT COLLATE "C" NOT NULL,
    attempt_id  TEXT COLLATE "C",
    commit_id   TEXT COLLATE "C",
    error       TEXT COLLATE "C",
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX changesets_by_link ON changesets (link_id, status, created_at);

-- Every commit attempt: which changesets it carried, what became of it.
CREATE TABLE commit_attempts (
    id           TEXT COLLATE "C" PRIMARY KEY,
    link_id      TEXT COLLATE "C" NOT NULL REFERENCES sync_links (id),
    status       TEXT COLLATE "C" NOT NULL CHECK (status IN ('running', 'pushed', 'nothing', 'conflict', 'failed', 'interrupted')),
    changesets   TEXT COLLATE "C" NOT NULL,
    files        TEXT COLLATE "C" NOT NULL,
    task_id      TEXT COLLATE "C",
    commit_id    TEXT COLLATE "C",
    error        TEXT COLLATE "C",
    started_at   BIGINT NOT NULL,
    finished_at  BIGINT
);
CREATE INDEX commit_attempts_by_link ON commit_attempts (link_id, started_at);

-- Sync errors that need a person: a conflict keeps both versions of the file.
CREATE TABLE sync_errors (
    id            TEXT COLLATE "C" PRIMARY KEY,
    link_id       TEXT COLLATE "C" NOT NULL REFERENCES sync_links (id),
    -- The commit attempt that met the error; `sync retry` of one of its changesets resolves it.
    attempt_id    TEXT COLLATE "C",
    path          TEXT COLLATE "C",
    code          TEXT COLLATE "C" NOT NULL,
    message       TEXT COLLATE "C" NOT NULL,
    ours          BYTEA,
    theirs        BYTEA,
    created_at    BIGINT NOT NULL,
    resolved_at   BIGINT
);
CREATE INDEX sync_errors_open ON sync_errors (resolved_at, link_id);
