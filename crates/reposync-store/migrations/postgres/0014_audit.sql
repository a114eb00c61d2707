-- The audit trail: who did what, from where, to what, and how it ended. One row per write
-- through the API, and per login, failed login, token creation or revocation and role change.
-- Webhook deliveries keep their own log (0007). No secret value, password or token ever
-- enters it: `token` is a token's name. Rows are pruned by their own age, apart from the
-- history's (`retention`).
CREATE TABLE audit_events (
    id           TEXT COLLATE "C" PRIMARY KEY,
    -- Milliseconds since the Unix epoch.
    at           BIGINT NOT NULL,
    actor_kind   TEXT COLLATE "C" NOT NULL CHECK (actor_kind IN ('user', 'delegate', 'system', 'anonymous')),
    -- The user's or delegate's name, 'reposync' for the system, or for a failed login the name
    -- someone tried.
    actor        TEXT COLLATE "C" NOT NULL,
    -- The name of the token used, never its value.
    token        TEXT COLLATE "C",
    client_addr  TEXT COLLATE "C",
    -- What was asked for: 'tree.apply', 'user.create', 'login'…
    use_case     TEXT COLLATE "C" NOT NULL,
    -- What it was about: a path, a connector, a secret's or a user's name.
    target       TEXT COLLATE "C",
    -- The application the target is in; '' for none (the store's one convention, 0011).
    app          TEXT COLLATE "C" NOT NULL DEFAULT '',
    outcome      TEXT COLLATE "C" NOT NULL CHECK (outcome IN ('accepted', 'refused', 'failed')),
    -- The HTTP status answered, when there was one.
    status       BIGINT,
    -- A short reason ('needs editor in application Shop').
    detail       TEXT COLLATE "C"
);
CREATE INDEX audit_events_by_time ON audit_events (at);
CREATE INDEX audit_events_by_actor ON audit_events (actor, at);
CREATE INDEX audit_events_by_app ON audit_events (app, at);
