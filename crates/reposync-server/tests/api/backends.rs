//! Every API test runs on each backend there is: the embedded SQLite file always, and
//! PostgreSQL when `REPOSYNC_TEST_POSTGRES` names a test cluster (`scripts/test` starts one).
//! A test's body is written once, inside `on_each_backend!`, and hands its [`Backend`] to the
//! `Api::spawn*` helpers, which give each server a store of its own on it.

#![allow(clippy::expect_used)] // Test helpers outside #[test] functions may panic.

use reposync_testkit::TestPostgres;

/// The store a test server runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The SQLite file in the server's data directory (`database_url` unset).
    Sqlite,
    /// A fresh database of the test cluster, dropped with the server.
    Postgres,
}

impl Backend {
    /// The backends this run has: PostgreSQL only when a cluster is named, so that a bare
    /// `cargo test` still runs every test (on SQLite).
    pub fn all() -> Vec<Backend> {
        let mut backends = vec![Backend::Sqlite];
        if TestPostgres::available() {
            backends.push(Backend::Postgres);
        }
        backends
    }

    /// A fresh database for one server on this backend; `None` for SQLite, whose file the
    /// server makes in its data directory.
    pub async fn database(self) -> Option<TestPostgres> {
        match self {
            Backend::Sqlite => None,
            Backend::Postgres => Some(
                TestPostgres::create()
                    .await
                    .expect("a test database")
                    .expect("Backend::all offers PostgreSQL only when a cluster is named"),
            ),
        }
    }
}

/// Runs `$body` once per backend, with `$backend` bound to each [`Backend`] in turn.
macro_rules! on_each_backend {
    ($backend:ident, $body:block) => {
        for $backend in $crate::backends::Backend::all() {
            eprintln!("on {:?}", $backend);
            $body
        }
    };
}
