//! Every store test runs on each backend there is: SQLite always, and PostgreSQL when
//! `REPOSYNC_TEST_POSTGRES` names a test cluster (`scripts/test` starts one). A test's body is
//! written once, inside `on_each_backend!`, and gets a fresh
//! [`Place`] per backend.

#![allow(clippy::expect_used)] // Test helpers outside #[test] functions may panic.

use std::path::Path;

use reposync_store::Store;
use reposync_testkit::TestPostgres;

/// Where one run of a test keeps its database: a temporary directory (holding the SQLite
/// file), or a database of its own in the test cluster.
#[derive(Debug)]
pub struct Place {
    dir: tempfile::TempDir,
    postgres: Option<TestPostgres>,
}

impl Place {
    /// The URL `Store::open` takes.
    pub fn url(&self) -> String {
        match &self.postgres {
            Some(database) => database.url().to_owned(),
            None => Store::sqlite_url(self.dir.path()),
        }
    }

    /// The test's temporary directory: the data directory on SQLite.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Whether this run is on the embedded SQLite database (whose file a test may read).
    pub fn is_sqlite(&self) -> bool {
        self.postgres.is_none()
    }

    /// The backend's name, for messages.
    pub fn name(&self) -> &'static str {
        if self.is_sqlite() {
            "sqlite"
        } else {
            "postgres"
        }
    }
}

/// A fresh place on each backend available.
pub async fn places() -> Vec<Place> {
    let mut places = vec![Place {
        dir: tempfile::tempdir().expect("tempdir"),
        postgres: None,
    }];
    if let Some(database) = TestPostgres::create().await.expect("a test database") {
        places.push(Place {
            dir: tempfile::tempdir().expect("tempdir"),
            postgres: Some(database),
        });
    }
    places
}

/// Runs `$body` once per backend, with `$place` bound to a fresh [`Place`] each time.
macro_rules! on_each_backend {
    ($place:ident, $body:block) => {
        for place in $crate::backends::places().await {
            let $place = &place;
            eprintln!("on {}", $place.name());
            $body
        }
    };
}
