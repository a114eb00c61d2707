-- Configuration-as-code entities, one row per file of the `Setup/` tree. A file's path is its
-- identity; `content` holds the file's bytes exactly as reposync emits them (YAML) or as the
-- user wrote them (manifest files).
CREATE TABLE entities (
    id          TEXT COLLATE "C" PRIMARY KEY,
    path        TEXT COLLATE "C" NOT NULL UNIQUE,
    kind        TEXT COLLATE "C" NOT NULL,
    -- The application the file belongs to, for per-application listing and export.
    app         TEXT COLLATE "C",
    content     BYTEA NOT NULL,
    revision    BIGINT NOT NULL DEFAULT 1,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX entities_by_app ON entities (app, path);

-- References from one entity to another, by the target's path, so that deleting a referenced
-- entity can be refused and a rename can find what to rewrite.
CREATE TABLE entity_references (
    from_id  TEXT COLLATE "C" NOT NULL REFERENCES entities (id) ON DELETE CASCADE,
    field    TEXT COLLATE "C" NOT NULL,
    to_path  TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (from_id, field)
);
CREATE INDEX entity_references_by_target ON entity_references (to_path);
