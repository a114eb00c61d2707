-- The archives of fetches, in pieces, when several servers share the database: a delegate's
-- upload reaches one replica, and the client's download may reach another. Each replica also
-- keeps the archives it received as files, as a single server does. Pieces are written
-- before the task's `replica` names the keeper, so a reader never sees half an archive, and
-- they go with the archive's hour.
CREATE TABLE fetch_archive_pieces (
    task_id    TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    data       BLOB NOT NULL,
    bytes      INTEGER NOT NULL,
    stored_at  INTEGER NOT NULL,
    PRIMARY KEY (task_id, seq)
);
CREATE INDEX fetch_archive_pieces_by_time ON fetch_archive_pieces (stored_at);
