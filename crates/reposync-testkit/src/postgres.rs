//! A fresh PostgreSQL database per test, in the cluster `scripts/test` starts.
//!
//! `REPOSYNC_TEST_POSTGRES` names the cluster by a base URL (`postgres://postgres@127.0.0.1:PORT`,
//! a role that may create databases). Nothing is started here: without the variable there is no
//! PostgreSQL to test against, and the tests that run on every backend run on SQLite only, so
//! that a bare `cargo test` still works. Each [`TestPostgres`] is a database of its own, made
//! when the test asks for it and dropped with it, so tests never see each other's rows.

use anyhow::{Context as _, bail};
use sqlx::Connection as _;
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

    /// Whether `REPOSYNC_TEST_POSTGRES` names a cluster, so that [`TestPostgres::create`]
    /// makes databases: for suites that decide up front which backends a test runs on.
    pub fn available() -> bool {
        cluster().is_some()
    }

    /// The database's URL, for `Store::open`.
    pub fn url(&self) -> &str {
        &self.url
    }
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
        // of its own with a runtime of its own drops the database. `WITH (FORCE)` (13+) ends
        // the connections a store's pool may still hold.
        let admin_url = self.admin_url.clone();
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let mut admin = PgConnection::connect(&admin_url).await?;
                sqlx::raw_sql(&sql).execute(&mut admin).await?;
                admin.close().await?;
                anyhow::Ok(())
            })
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("cannot drop the test database {}: {e:#}", self.name),
            Err(_) => eprintln!("dropping the test database {} panicked", self.name),
        }
    }
}
