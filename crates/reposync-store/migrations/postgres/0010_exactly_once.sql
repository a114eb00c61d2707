-- Exactly once across crashes.

-- The branch head a commit attempt found: the head a conflict was met at, so that `sync retry`
-- can ask for that head to be read before planning again.
ALTER TABLE commit_attempts ADD COLUMN remote_head TEXT COLLATE "C";

-- Whether a commit read from Git is one reposync pushed.
CREATE INDEX commit_attempts_by_commit ON commit_attempts (commit_id);

-- The newest pushed changesets of a link, for the commits the Git -> reposync side has not
-- read back yet (they are reposync's own, never a conflict).
CREATE INDEX changesets_by_link_and_update ON changesets (link_id, status, updated_at);

-- One commit attempt at a time per link: two could push the same changesets.
CREATE UNIQUE INDEX commit_attempts_one_running ON commit_attempts (link_id) WHERE status = 'running';
