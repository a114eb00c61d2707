//! The one way to the database: reads go straight to the pool, every write queues on the
//! write gate first.
//!
//! SQLite lets one writer in at a time, and a connection that finds the database locked waits
//! in its busy handler by sleeping (1, 2, 5, 10 ms…); many concurrent writers (a burst of
//! webhook deliveries) would spend their time asleep. Queued on the gate they go in turn, at
//! once. The pool is private to this module, so a write that skips the gate does not compile:
//! [`Read`] only fetches, [`Write::write`] takes the gate, and [`Database::begin_write`] is
//! the only way to a transaction that writes.
//!
//! The [`Backend`] the pool speaks is kept here too, for the few places where SQLite and
//! PostgreSQL really differ (how a write transaction begins, and a handful of functions);
//! everything else is one SQL for both. On PostgreSQL the gate is harmless: it serialises
//! this process's writers, and the database's own row locks order everyone else.

use std::sync::Arc;

use sqlx::any::{AnyArguments, AnyQueryResult, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, AnyPool};

use crate::error::StoreError;

/// Which database the pool speaks, for the few statements that differ between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The embedded default: one file in the data directory.
    Sqlite,
    /// A PostgreSQL server, version 13 or later.
    Postgres,
}

impl Backend {
    /// The backend a database URL names, from its scheme alone: `sqlite:…`, or
    /// `postgres://…`/`postgresql://…`; any other scheme is refused.
    pub fn of_url(url: &str) -> Result<Backend, StoreError> {
        let scheme = url.split(':').next().unwrap_or_default();
        match scheme {
            "sqlite" => Ok(Backend::Sqlite),
            "postgres" | "postgresql" => Ok(Backend::Postgres),
            _ => Err(StoreError::UnsupportedDatabase(format!(
                "{scheme:?} databases are not supported; use a sqlite: URL (the embedded default) \
                 or a postgres:// URL (PostgreSQL 13 or later)"
            ))),
        }
    }

    /// The statement that starts a write transaction. SQLite's default (deferred)
    /// transaction takes the write lock only at its first write, and one that has read by
    /// then fails at once with `SQLITE_BUSY` if another writer got in first, which the busy
    /// timeout does not retry; `BEGIN IMMEDIATE` waits for the lock up front instead.
    /// PostgreSQL locks rows, not the database: a plain `BEGIN` (read committed) waits on the
    /// rows another writer holds, and the gate orders this process's own writers.
    fn begin_write(self) -> &'static str {
        match self {
            Backend::Sqlite => "BEGIN IMMEDIATE",
            Backend::Postgres => "BEGIN",
        }
    }

    /// What a `SELECT` adds to lock the rows it reads until the transaction ends, so that
    /// a concurrent writer of the same rows waits: PostgreSQL's `FOR UPDATE`. SQLite needs
    /// nothing: a write transaction there holds the whole database.
    pub(crate) fn lock_for_update(self) -> &'static str {
        match self {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE",
        }
    }

    /// Like [`Backend::lock_for_update`], but other readers that lock for share still read:
    /// PostgreSQL's `FOR SHARE`.
    pub(crate) fn lock_for_share(self) -> &'static str {
        match self {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR SHARE",
        }
    }

    /// What a `SELECT` of queued work adds so that concurrent claimers skip the rows another
    /// one is claiming instead of queuing behind it: PostgreSQL's `FOR UPDATE SKIP LOCKED`.
    pub(crate) fn skip_locked(self) -> &'static str {
        match self {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        }
    }

    /// The database's own clock in milliseconds since the Unix epoch, as a query; `None`
    /// for SQLite, whose clock is the machine's, the one server's own.
    pub(crate) fn clock_query(self) -> Option<&'static str> {
        match self {
            Backend::Sqlite => None,
            Backend::Postgres => {
                Some("SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT) AS now")
            }
        }
    }

    /// The SQL expression for the 1-based position of `needle` in `haystack`, 0 when absent:
    /// SQLite's `instr`, PostgreSQL's `strpos`, each missing from the other.
    pub(crate) fn position(self, haystack: &str, needle: &str) -> String {
        match self {
            Backend::Sqlite => format!("instr({haystack}, {needle})"),
            Backend::Postgres => format!("strpos({haystack}, {needle})"),
        }
    }
}

/// The pool, the backend it speaks, and its write gate.
#[derive(Clone)]
pub(crate) struct Database {
    pool: AnyPool,
    backend: Backend,
    gate: Arc<tokio::sync::Mutex<()>>,
}

/// A query as sqlx builds it, on any backend.
pub(crate) type AnyQuery<'q> = Query<'q, Any, AnyArguments<'q>>;

impl Database {
    pub(crate) fn new(pool: AnyPool, backend: Backend) -> Database {
        Database {
            pool,
            backend,
            gate: Arc::default(),
        }
    }

    /// The database the pool speaks.
    pub(crate) fn backend(&self) -> Backend {
        self.backend
    }

    /// Starts a transaction that writes, in its turn at the gate (see [`Backend`] for how
    /// each database begins it).
    pub(crate) async fn begin_write(&self) -> Result<WriteTx, sqlx::Error> {
        let gate = Arc::clone(&self.gate).lock_owned().await;
        let tx = self.pool.begin_with(self.backend.begin_write()).await?;
        Ok(WriteTx { tx, _gate: gate })
    }

    /// A transaction for reading several statements from one snapshot; it must not write
    /// (nothing enforces that but this name: it is rolled back by the caller).
    pub(crate) async fn begin_read(&self) -> Result<sqlx::Transaction<'static, Any>, sqlx::Error> {
        self.pool.begin().await
    }

    /// A connection for reading several statements.
    pub(crate) async fn read_connection(
        &self,
    ) -> Result<sqlx::pool::PoolConnection<Any>, sqlx::Error> {
        self.pool.acquire().await
    }

    /// Sends `payload` on PostgreSQL's notification `channel` to every session listening.
    pub(crate) async fn notify(&self, channel: &str, payload: &str) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(channel)
            .bind(payload)
            .fetch_optional(&self.pool)
            .await?;
        Ok(())
    }

    /// Closes every connection, waiting for running queries.
    pub(crate) async fn close(&self) {
        self.pool.close().await;
    }
}

/// A write transaction and its place at the write gate, released when it ends.
pub(crate) struct WriteTx {
    tx: sqlx::Transaction<'static, Any>,
    _gate: tokio::sync::OwnedMutexGuard<()>,
}

impl WriteTx {
    pub(crate) async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }

    pub(crate) async fn rollback(self) -> Result<(), sqlx::Error> {
        self.tx.rollback().await
    }
}

impl std::ops::Deref for WriteTx {
    type Target = sqlx::AnyConnection;

    fn deref(&self) -> &sqlx::AnyConnection {
        &self.tx
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut sqlx::AnyConnection {
        &mut self.tx
    }
}

/// Reading a query's rows straight from the pool.
pub(crate) trait Read<'q> {
    async fn read_all(self, db: &Database) -> Result<Vec<AnyRow>, sqlx::Error>;
    async fn read_optional(self, db: &Database) -> Result<Option<AnyRow>, sqlx::Error>;
    async fn read_one(self, db: &Database) -> Result<AnyRow, sqlx::Error>;
}

impl<'q> Read<'q> for AnyQuery<'q> {
    async fn read_all(self, db: &Database) -> Result<Vec<AnyRow>, sqlx::Error> {
        self.fetch_all(&db.pool).await
    }

    async fn read_optional(self, db: &Database) -> Result<Option<AnyRow>, sqlx::Error> {
        self.fetch_optional(&db.pool).await
    }

    async fn read_one(self, db: &Database) -> Result<AnyRow, sqlx::Error> {
        self.fetch_one(&db.pool).await
    }
}

/// Running one write statement outside a transaction, in its turn at the gate: hot
/// one-statement writes (task claims and outcomes, heartbeats) do not sleep in SQLite's busy
/// handler either.
pub(crate) trait Write<'q> {
    async fn write(self, db: &Database) -> Result<AnyQueryResult, sqlx::Error>;
}

impl<'q> Write<'q> for AnyQuery<'q> {
    async fn write(self, db: &Database) -> Result<AnyQueryResult, sqlx::Error> {
        let _turn = Arc::clone(&db.gate).lock_owned().await;
        self.execute(&db.pool).await
    }
}

#[cfg(test)]
mod tests {
    use super::Backend;

    #[test]
    fn the_url_scheme_chooses_the_backend_and_others_are_refused() {
        assert_eq!(
            Backend::of_url("sqlite:///data/reposync.db?mode=rwc").ok(),
            Some(Backend::Sqlite)
        );
        assert_eq!(
            Backend::of_url("postgres://u@db/reposync").ok(),
            Some(Backend::Postgres)
        );
        assert_eq!(
            Backend::of_url("postgresql://u@db/reposync").ok(),
            Some(Backend::Postgres)
        );
        let refused = Backend::of_url("mysql://u@db/reposync")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            refused.contains("\"mysql\" databases are not supported"),
            "{refused}"
        );
    }
}
