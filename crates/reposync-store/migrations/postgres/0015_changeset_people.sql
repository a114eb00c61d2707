-- The person each changeset was made by, as they were when they made it: their user name, and
-- their e-mail address. A commit names them in `Reposync-User:` trailers, and a connector with
-- `author_from_user` makes one person's commit theirs. '' (never NULL) for none: a change no
-- person made (reposync's own, one read from Git, or one made before people existed), and a
-- person without an address.
ALTER TABLE changesets ADD COLUMN by_user TEXT COLLATE "C" NOT NULL DEFAULT '';
ALTER TABLE changesets ADD COLUMN by_email TEXT COLLATE "C" NOT NULL DEFAULT '';
