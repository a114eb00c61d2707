-- Configuration-as-code entities, one row per file of the `Setup/` tree. A file's path is its
-- identity; `content` holds the file's bytes exactly as reposync emits them (YAML) or as the
-- user wrote them (manifest files).
CREATE TABLE entities (
    id          TEXT PRIMARY KEY,
    path        TEXT NOT NULL UNIQUE,
    kind        TEXT NOT NULL,
    -- The application the file belongs to, for per-application listing and export.
    app         TEXT,
    content     BLOB NOT NULL,
    revision    INTEGER NOT NULL DEFAULT 1,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE INDEX entities_by_app ON entities (app, path);

-- References from one entity to another, by the target's path, so that deleting a referenced
-- entity can be refused and a rename can find what to rewrite.
CREATE TABLE entity_references (
    from_id  TEXT NOT NULL REFERENCES entities (id) ON DELETE CASCADE,
    field    TEXT NOT NULL,
    to_path  TEXT NOT NULL,
    PRIMARY KEY (from_id, field)
);
CREATE INDEX entity_references_by_target ON entity_references (to_path);
