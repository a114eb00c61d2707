//! A fresh PostgreSQL database per test, in the cluster `scripts/test` starts.
//!
//! `REPOSYNC_TEST_POSTGRES` names the cluster by a base URL (`postgres://postgres@127.0.0.1:PORT`,
//! a role that may create databases). Nothing is started here: without the variable there is no
//! PostgreSQL to test against, and the tests that run on every backend run on SQLite only, so
//! that a bare `cargo test` still works. Each [`TestPostgres`] is a database of its own, made
//! when the test asks for it and dropped with it, so tests never see each other's rows.

use anyhow::{Context as _, bail};
use sqlx::Connection as _;
use sqlx::Row as _;
use sqlx::postgres::PgConnection;

/// The variable naming the test cluster.
pub const TEST_POSTGRES_VAR: &str = "REPOSYNC_TEST_POSTGRES";

/// One test's own database, dropped (connections and all) when this is dropped.
#[derive(Debug)]
pub struct TestPostgres {
    /// The cluster's maintenance database, from which this one is made and dropped.
    admin_url: String,
    name: String,
    url: String,
}

impl TestPostgres {
    /// A new empty database in the cluster `REPOSYNC_TEST_POSTGRES` names, or `None` when
    /// the variable is unset (no PostgreSQL to test against).
    pub async fn create() -> anyhow::Result<Option<TestPostgres>> {
        let Some(base) = cluster() else {
            return Ok(None);
        };
        let base = url::Url::parse(base.trim())
            .with_context(|| format!("{TEST_POSTGRES_VAR} is not a URL: {base:?}"))?;
        if !matches!(base.scheme(), "postgres" | "postgresql") {
            bail!("{TEST_POSTGRES_VAR} must be a postgres:// URL, not {base}");
        }
        // Lower-case letters and digits only: the name needs no quoting.
        let name = format!("reposync_test_{}", uuid::Uuid::new_v4().simple());
        let with_database = |database: &str| {
            let mut url = base.clone();
            url.set_path(&format!("/{database}"));
            url.to_string()
        };
        let admin_url = with_database("postgres");
        let mut admin = PgConnection::connect(&admin_url)
            .await
            .with_context(|| format!("connecting to the test PostgreSQL at {admin_url}"))?;
        sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .with_context(|| format!("creating the test database {name}"))?;
        admin.close().await.ok();
        Ok(Some(TestPostgres {
            url: with_database(&name),
            admin_url,
            name,
        }))
    }

    /// [`TestPostgres::create`] for tests without a runtime of their own (the end-to-end
    /// suite's, which drive processes): it runs on a thread and a runtime of its own, so it
    /// works whether or not the caller is inside one.
    pub fn create_blocking() -> anyhow::Result<Option<TestPostgres>> {
        apart(TestPostgres::create)
    }

    /// Whether `REPOSYNC_TEST_POSTGRES` names a cluster, so that [`TestPostgres::create`]
    /// makes databases: for suites that decide up front which backends a test runs on.
    pub fn available() -> bool {
        cluster().is_some()
    }

    /// The database's URL, for `Store::open`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Everything the database holds: each table of the `public` schema by name, then each
    /// of its rows, a value per line, `bytea` as its bytes and every other type in its text
    /// form. What a test searches for a secret that must never be stored, as it searches the
    /// SQLite file's bytes; empty when no table was ever made. Blocking, like
    /// [`TestPostgres::create_blocking`].
    pub fn dump(&self) -> anyhow::Result<Vec<u8>> {
        let url = self.url.clone();
        apart(move || async move {
            let mut connection = PgConnection::connect(&url).await?;
            let columns: Vec<(String, String, String)> = sqlx::query_as(
                "SELECT c.table_name::text, c.column_name::text, c.data_type::text \
                 FROM information_schema.columns c JOIN information_schema.tables t \
                 ON t.table_schema = c.table_schema AND t.table_name = c.table_name \
                 WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE' \
                 ORDER BY c.table_name, c.ordinal_position",
            )
            .fetch_all(&mut connection)
            .await
            .context("listing the test database's columns")?;
            // Names come from the catalogue; quoted, each is taken as written.
            let quote = |name: &str| format!("\"{}\"", name.replace('"', "\"\""));
            let mut dump = Vec::new();
            for table in columns.chunk_by(|a, b| a.0 == b.0) {
                let name = &table[0].0;
                dump.extend_from_slice(format!("-- {name}\n").as_bytes());
                let select: Vec<String> = table
                    .iter()
                    .map(|(_, column, kind)| match kind.as_str() {
                        "bytea" => quote(column),
                        _ => format!("CAST({} AS text)", quote(column)),
                    })
                    .collect();
                let sql = format!("SELECT {} FROM {}", select.join(", "), quote(name));
                let rows = sqlx::query(&sql)
                    .fetch_all(&mut connection)
                    .await
                    .with_context(|| format!("reading the table {name}"))?;
                for row in rows {
                    for (index, (_, _, kind)) in table.iter().enumerate() {
                        let value: Option<Vec<u8>> = match kind.as_str() {
                            "bytea" => row.try_get(index)?,
                            _ => row
                                .try_get::<Option<String>, _>(index)?
                                .map(String::into_bytes),
                        };
                        dump.extend(value.unwrap_or_default());
                        dump.push(b'\n');
                    }
                }
            }
            connection.close().await.ok();
            Ok(dump)
        })
    }

    /// The database's size on disk in bytes (`pg_database_size`), as a test measures the
    /// SQLite file's. Blocking, like [`TestPostgres::create_blocking`].
    pub fn size_bytes(&self) -> anyhow::Result<u64> {
        let url = self.url.clone();
        apart(move || async move {
            let mut connection = PgConnection::connect(&url).await?;
            let size: i64 = sqlx::query_scalar("SELECT pg_database_size(current_database())")
                .fetch_one(&mut connection)
                .await
                .context("measuring the test database")?;
            connection.close().await.ok();
            Ok(u64::try_from(size)?)
        })
    }
}

/// Runs `work` to its end on a thread and a current-thread runtime of its own: for callers
/// that cannot wait on a runtime (`Drop`, synchronous tests), or that may be inside one,
/// where blocking on another would panic.
/// The future is made on that thread, so it need not be `Send` (sqlx's futures are not
/// quite, for want of a more general lifetime).
fn apart<T, F>(work: impl FnOnce() -> F + Send + 'static) -> anyhow::Result<T>
where
    T: Send + 'static,
    F: std::future::Future<Output = anyhow::Result<T>>,
{
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(work())
    })
    .join()
    .unwrap_or_else(|_| Err(anyhow::anyhow!("the thread running it panicked")))
}

/// The cluster's base URL from `REPOSYNC_TEST_POSTGRES`; unset and blank both mean none.
fn cluster() -> Option<String> {
    std::env::var(TEST_POSTGRES_VAR)
        .ok()
        .filter(|base| !base.trim().is_empty())
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        // Drop cannot wait on the test's runtime (it may be the one running this): a thread
        // of its own with a runtime of its own drops the database (`apart`). `WITH (FORCE)`
        // (13+) ends the connections a store's pool, or a killed server's, may still hold.
        let admin_url = self.admin_url.clone();
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let dropped = apart(move || async move {
            let mut admin = PgConnection::connect(&admin_url).await?;
            sqlx::raw_sql(&sql).execute(&mut admin).await?;
            admin.close().await?;
            Ok(())
        });
        if let Err(e) = dropped {
            eprintln!("cannot drop the test database {}: {e:#}", self.name);
        }
    }
}
