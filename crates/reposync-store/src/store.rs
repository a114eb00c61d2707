//! The store itself: the pool behind its write gate, the master key, the signals that wake
//! the workers, and the clock its decisions read. What it stores is written by the modules
//! beside this one, each adding its own `impl Store`.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use reposync_secrets::MasterKey;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor, Row as _};

use crate::clock::{Clock, SystemClock};
use crate::cluster::ReplicaId;
use crate::error::StoreError;
use crate::gate::{Backend, Database, Read, WriteTx};
use crate::signals::{Signal, Signals};

pub(crate) static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
pub(crate) static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator =
    sqlx::migrate!("migrations/postgres");

/// How many times a transaction the database gave up is run again before its error is
/// returned.
const RETRIES: u32 = 4;

/// The oldest PostgreSQL the store runs on (`server_version_num`): 13 has everything the SQL
/// and the migrations use (`gen_random_uuid` built in, `ON CONFLICT`, partial unique indexes).
const POSTGRES_MIN_VERSION: i64 = 130_000;

/// The database, with the master key that seals and opens the secrets stored in it.
#[derive(Clone)]
pub struct Store {
    pub(crate) db: Database,
    pub(crate) master: Arc<MasterKey>,
    /// Where the store's own decisions (leases, claims' preference windows, timestamps) read
    /// the time: the wall clock, or a test's [`ManualClock`](crate::ManualClock).
    clock: Arc<dyn Clock>,
    /// Whether leases and expiries read the database's clock: on PostgreSQL, unless a test
    /// gave the store a clock of its own.
    database_clock: bool,
    /// Which replica this process is, when several servers share the database.
    replica: ReplicaId,
    /// Wakes the workers and waiters of every replica (see [`Signals`]).
    signals: Signals,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl Store {
    /// The URL of the embedded SQLite database in `data_dir`.
    pub fn sqlite_url(data_dir: &Path) -> String {
        format!(
            "sqlite://{}?mode=rwc",
            data_dir.join(crate::backup::DATABASE_FILE).display()
        )
    }

    /// Connects, applies pending migrations and returns the store. `url` chooses the backend:
    /// `sqlite:…` for the embedded database, `postgres://…` or `postgresql://…` for
    /// PostgreSQL 13 or later; any other scheme is refused.
    pub async fn open(url: &str, master: MasterKey) -> Result<Store, StoreError> {
        let db = open_database(url).await?;
        let backend = db.backend();
        Ok(Store {
            signals: Signals::new(&db, url),
            db,
            master: Arc::new(master),
            clock: Arc::new(SystemClock),
            database_clock: backend == Backend::Postgres,
            replica: ReplicaId::new("local"),
        })
    }

    /// The same store acting as replica `replica` (leases, presence and local tasks are
    /// recorded under its name).
    pub fn as_replica(mut self, replica: ReplicaId) -> Store {
        self.replica = replica;
        self
    }

    /// The replica this process is.
    pub fn replica(&self) -> &ReplicaId {
        &self.replica
    }

    /// The signals that wake this replica's workers and waiters, from any replica.
    pub fn signals(&self) -> &Signals {
        &self.signals
    }

    /// Now, for leases and expiries that several replicas compare: the database's clock on
    /// PostgreSQL, the store's own otherwise.
    pub(crate) async fn lease_now(&self) -> Result<i64, StoreError> {
        match self
            .db
            .backend()
            .clock_query()
            .filter(|_| self.database_clock)
        {
            Some(query) => Ok(sqlx::query(query)
                .read_one(&self.db)
                .await?
                .try_get::<i64, _>("now")?),
            None => Ok(self.now()),
        }
    }

    /// [`Store::lease_now`] inside a transaction.
    pub(crate) async fn lease_now_in(&self, tx: &mut WriteTx) -> Result<i64, StoreError> {
        match self
            .db
            .backend()
            .clock_query()
            .filter(|_| self.database_clock)
        {
            Some(query) => Ok(sqlx::query(query)
                .fetch_one(&mut **tx)
                .await?
                .try_get::<i64, _>("now")?),
            None => Ok(self.now()),
        }
    }

    /// The database this store runs on.
    pub fn backend(&self) -> Backend {
        self.db.backend()
    }

    /// The same store reading the time from `clock`: tests move time on by hand instead of
    /// sleeping past leases and preference windows.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Store {
        self.clock = clock;
        self.database_clock = false;
        self
    }

    /// Now, by the store's clock, in milliseconds since the Unix epoch.
    pub(crate) fn now(&self) -> i64 {
        self.clock.now_millis()
    }

    /// The store's clock, for the workers' own waits (back-off) to read the same time.
    pub fn clock(&self) -> Arc<dyn Clock> {
        Arc::clone(&self.clock)
    }

    /// Runs `transaction` (one whole transaction, from its start to its commit) again when
    /// the database gave it up so that another could go on: a deadlock or a serialisation
    /// failure on PostgreSQL ([`StoreError::is_retryable`]). Nothing of a transaction given
    /// up was committed, so running it again is safe; a short pause, growing and jittered,
    /// keeps the two from meeting again at once. `what` names it in the log.
    pub(crate) async fn retrying<T, F, Fut>(
        &self,
        what: &str,
        mut transaction: F,
    ) -> Result<T, StoreError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, StoreError>>,
    {
        let mut retries = 0;
        loop {
            match transaction().await {
                Err(error) if error.is_retryable() && retries < RETRIES => {
                    retries += 1;
                    tracing::debug!(what, retries, %error, "the database gave a transaction up for another; running it again");
                    let jitter = u64::from(uuid::Uuid::new_v4().as_bytes()[0] % 8);
                    tokio::time::sleep(Duration::from_millis((4 << retries) + jitter)).await;
                }
                other => return other,
            }
        }
    }

    /// Starts a transaction that writes, in its turn at the write gate (see [`crate::gate`]).
    pub(crate) async fn begin_write(&self) -> Result<WriteTx, StoreError> {
        Ok(self.db.begin_write().await?)
    }

    /// Wakes whoever waits for changesets (the sync worker), on every replica.
    pub(crate) fn outbox_changed(&self) {
        self.signals.publish(Signal::Outbox);
    }

    /// The signal the sync worker waits on: notified after changesets are written. A
    /// notification sent while nobody waits is kept for the next wait, so none is lost.
    pub fn outbox_signal(&self) -> Arc<tokio::sync::Notify> {
        self.signals.outbox()
    }

    /// Wakes the Git → reposync worker, on every replica.
    pub(crate) fn inbox_changed(&self) {
        self.signals.publish(Signal::Inbox);
    }

    /// The signal the Git → reposync worker waits on: notified after a branch head is queued.
    pub fn inbox_signal(&self) -> Arc<tokio::sync::Notify> {
        self.signals.inbox()
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").read_one(&self.db).await?;
        Ok(())
    }

    /// The newest migration applied: the version of the database's schema.
    pub async fn schema_version(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT MAX(version) AS version FROM _sqlx_migrations WHERE success")
            .read_one(&self.db)
            .await?;
        Ok(row.try_get::<Option<i64>, _>("version")?.unwrap_or(0))
    }

    /// Closes every connection, waiting for running queries.
    pub async fn close(&self) {
        self.db.close().await;
    }
}

/// The database `url` names, connected and migrated: what [`Store::open`] opens, and what
/// `reposync store migrate` copies into (see [`crate::transfer`]).
pub(crate) async fn open_database(url: &str) -> Result<Database, StoreError> {
    sqlx::any::install_default_drivers();
    let backend = Backend::of_url(url)?;
    let options = AnyConnectOptions::from_str(url)?;
    let pool = match backend {
        Backend::Sqlite => open_sqlite(options).await?,
        Backend::Postgres => open_postgres(options).await?,
    };
    Ok(Database::new(pool, backend))
}

/// The embedded database's pool, migrated.
async fn open_sqlite(options: AnyConnectOptions) -> Result<AnyPool, StoreError> {
    let pool = AnyPoolOptions::new()
        .max_connections(8)
        .acquire_timeout(Duration::from_secs(10))
        .after_connect(|conn, _meta| {
            Box::pin(async move {
                // WAL lets readers proceed during a write; the busy timeout makes concurrent
                // writers wait instead of failing with "database is locked"; foreign keys
                // are off by default in SQLite. Sorts and temporary tables stay in memory:
                // SQLite would otherwise spill them to files in $TMPDIR, which a killed
                // server leaves behind, outside the data directory.
                conn.execute("PRAGMA journal_mode = WAL").await?;
                conn.execute("PRAGMA busy_timeout = 10000").await?;
                conn.execute("PRAGMA foreign_keys = ON").await?;
                conn.execute("PRAGMA synchronous = NORMAL").await?;
                conn.execute("PRAGMA temp_store = MEMORY").await?;
                Ok(())
            })
        })
        .connect_with(options)
        .await?;
    SQLITE_MIGRATIONS.run(&pool).await?;
    Ok(pool)
}

/// A PostgreSQL server's pool, its version checked before anything is migrated.
async fn open_postgres(options: AnyConnectOptions) -> Result<AnyPool, StoreError> {
    let pool = AnyPoolOptions::new()
        .max_connections(8)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await?;
    // `server_version_num` is text (`150004`); it is a number on every release since 8.2.
    let row = sqlx::query("SELECT current_setting('server_version_num') AS v")
        .fetch_one(&pool)
        .await?;
    let text: String = row.try_get("v")?;
    let version: i64 = text.trim().parse().map_err(|_| {
        StoreError::UnsupportedDatabase(format!(
            "cannot read the PostgreSQL server's version ({text:?})"
        ))
    })?;
    if version < POSTGRES_MIN_VERSION {
        pool.close().await;
        return Err(StoreError::UnsupportedDatabase(format!(
            "PostgreSQL {} is too old: reposync needs PostgreSQL 13 or later",
            version / 10_000
        )));
    }
    POSTGRES_MIGRATIONS.run(&pool).await?;
    Ok(pool)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    /// A database error with a SQLSTATE code, as PostgreSQL reports a deadlock.
    #[derive(Debug)]
    struct Refused(&'static str);

    impl std::fmt::Display for Refused {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "refused with {}", self.0)
        }
    }

    impl std::error::Error for Refused {}

    impl sqlx::error::DatabaseError for Refused {
        fn message(&self) -> &str {
            "refused"
        }
        fn code(&self) -> Option<std::borrow::Cow<'_, str>> {
            Some(self.0.into())
        }
        fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> sqlx::error::ErrorKind {
            sqlx::error::ErrorKind::Other
        }
    }

    fn refused(code: &'static str) -> StoreError {
        StoreError::Database(sqlx::Error::Database(Box::new(Refused(code))))
    }

    #[tokio::test]
    async fn a_transaction_given_up_for_another_runs_again_and_other_errors_do_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&Store::sqlite_url(dir.path()), MasterKey::generate())
            .await
            .expect("store");
        let runs = AtomicU32::new(0);
        let done = store
            .retrying("test", || async {
                match runs.fetch_add(1, Ordering::SeqCst) {
                    0 => Err(refused("40P01")),
                    1 => Err(refused("40001")),
                    _ => Ok("committed"),
                }
            })
            .await;
        assert_eq!(done.ok(), Some("committed"));
        assert_eq!(runs.load(Ordering::SeqCst), 3);

        // A refusal that running again cannot cure is returned at once.
        runs.store(0, Ordering::SeqCst);
        let unique = store
            .retrying("test", || async {
                runs.fetch_add(1, Ordering::SeqCst);
                Err::<(), _>(refused("23505"))
            })
            .await;
        assert!(unique.is_err());
        assert_eq!(runs.load(Ordering::SeqCst), 1);

        // One that keeps being given up ends after the last retry, with its error.
        runs.store(0, Ordering::SeqCst);
        let deadlocked = store
            .retrying("test", || async {
                runs.fetch_add(1, Ordering::SeqCst);
                Err::<(), _>(refused("40P01"))
            })
            .await;
        assert!(deadlocked.is_err_and(|e| e.is_retryable()));
        assert_eq!(runs.load(Ordering::SeqCst), RETRIES + 1);
    }
}
