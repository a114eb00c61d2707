-- Exactly once across crashes.

-- The branch head a commit attempt found: the head a conflict was met at, so that `sync retry`
-- can ask for that head to be read before planning again.
ALTER TABLE commit_attempts ADD COLUMN remote_head TEXT;

-- Commits reposync pushed, by branch, for finding those the Git -> reposync side has not read
-- back yet (they are reposync's own, never a conflict).
CREATE INDEX commit_attempts_by_commit ON commit_attempts (commit_id);
