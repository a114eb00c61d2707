//! `reposync store migrate` end to end: an installation made through the CLI on SQLite, with
//! a connector whose password is a secret, an application synced to a real git server and a
//! webhook URL, is moved to PostgreSQL and served from there with its data directory's master
//! key. Runs only when `REPOSYNC_TEST_POSTGRES` names a test cluster to move to.

#![allow(clippy::expect_used)] // Test helpers outside #[test] functions may panic.

use crate::common;

use common::git_fixture::{Fixture, SHOP, TOKEN, workflow};
use reposync_testkit::TestPostgres;

#[test]
fn an_installation_moves_to_postgresql_and_keeps_its_secrets_and_sync() {
    if !TestPostgres::available() {
        eprintln!("skipped: REPOSYNC_TEST_POSTGRES names no PostgreSQL cluster to move to");
        return;
    }
    let mut f = Fixture::https(&[("README.md", "config repository\n")]);
    f.app
        .cli(
            &["sync", "enable", "--app", "Shop", "--connector", "git"],
            None,
        )
        .ok();
    let first = f.wait_pushed();
    let (webhook_token, webhook_secret) = f.webhook_credentials();
    let target =
        f.rt.block_on(TestPostgres::create())
            .expect("a test database")
            .expect("a cluster is named");
    let from = format!(
        "sqlite:{}",
        f.app
            .data_dir()
            .join("reposync.db")
            .to_str()
            .expect("utf-8")
    );
    let migrate = ["store", "migrate", "--from", &from, "--to", target.url()];

    let refused = f.app.cli(&migrate, None);
    assert!(
        refused
            .fails()
            .stderr
            .contains("is in use by a reposync server"),
        "{}",
        refused.stderr
    );

    f.app.stop();
    let moved = f.app.cli(&migrate, None);
    let rows_of = |table: &str| -> u64 {
        moved
            .stdout
            .lines()
            .find_map(|line| {
                let mut cells = line.split_whitespace();
                (cells.next() == Some(table)).then(|| cells.next()?.parse().ok())?
            })
            .unwrap_or_else(|| panic!("no count for {table}: {}", moved.stdout))
    };
    moved.ok();
    assert_eq!(rows_of("secrets"), 1);
    assert_eq!(rows_of("connectors"), 1);
    assert_eq!(rows_of("sync_links"), 1);
    assert!(rows_of("entities") >= 2, "{}", moved.stdout);
    assert!(rows_of("audit_events") > 0, "{}", moved.stdout);
    assert!(
        moved.stderr.contains("REPOSYNC_DATABASE_URL")
            && moved
                .stderr
                .contains(f.app.data_dir().join("master.key").to_str().expect("utf-8")),
        "what to do next, and where the master key is: {}",
        moved.stderr
    );
    // Left as it was: the server below writes to PostgreSQL only, which the end checks.
    let sqlite_file = f.app.data_dir().join("reposync.db");
    let sqlite_after_copy = std::fs::read(&sqlite_file).expect("the SQLite file");
    let again = f.app.cli(&migrate, None);
    assert!(
        again.fails().stderr.contains("is not empty"),
        "a second copy into the same database is refused: {}",
        again.stderr
    );

    // `database_url` in the configuration file is the setting REPOSYNC_DATABASE_URL sets;
    // the server keeps its data directory, and with it the master key and the admin token.
    let config = f.app.dir.path().join("reposync.toml");
    std::fs::write(&config, format!("database_url = {:?}\n", target.url())).expect("config");
    f.app
        .restart_with(&["--config", config.to_str().expect("utf-8")]);

    let secrets = f.app.cli(&["secret", "list"], None);
    assert!(
        secrets.ok().stdout.contains("bb-token"),
        "{}",
        secrets.stdout
    );
    let tested = f.app.cli(&["connector", "test", "git"], None);
    assert_eq!(
        tested.code, 0,
        "the connector's password opens under the same master key and the delegate clones with it: {}{}",
        tested.stdout, tested.stderr
    );
    let webhook = f
        .app
        .cli(&["--json", "connector", "webhook", "git"], None)
        .ok()
        .json();
    assert!(
        webhook["url"]
            .as_str()
            .is_some_and(|url| url.ends_with(&webhook_token)),
        "{webhook}"
    );
    assert_eq!(webhook["secret"].as_str(), Some(webhook_secret.as_str()));
    let service = f
        .app
        .cli(&["get", &format!("{SHOP}/Services/cart/Index.yaml")], None);
    assert!(
        service.ok().stdout.contains("deploymentType: KUBERNETES"),
        "{}",
        service.stdout
    );

    // Sync goes on from where SQLite left it: one new commit on top of the first.
    f.put(
        &format!("{SHOP}/Workflows/deploy.yaml"),
        &workflow("after the move"),
    );
    let next = f.wait_pushed();
    assert_ne!(next, first);
    assert_eq!(f.commits_since(&first, &next), 1);
    f.app.assert_no_leak(&[TOKEN]);
    f.app.stop();
    assert!(
        std::fs::read(&sqlite_file).expect("the SQLite file") == sqlite_after_copy,
        "the server ran on PostgreSQL: the SQLite file is as the copy left it"
    );
}
