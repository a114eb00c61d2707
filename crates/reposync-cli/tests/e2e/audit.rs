//! `reposync audit` against a real server: the table, its wide columns, `--json`, and the
//! filters, with `--since` as a time or a duration. Events are recorded through the store, as
//! the server's authentication records them, into the running server's database.

#![allow(clippy::expect_used)] // Test helpers outside #[test] functions may panic.

use reposync_store::{ActorKind, AuditOutcome, NewAuditEvent, Store};

use crate::common::TestApp;
use crate::common::git_fixture::runtime;

/// Records events in `app`'s database beside its running server. The master key only seals
/// secrets, which audit events never hold, so any key opens the store for this.
fn record(app: &TestApp, events: &[NewAuditEvent<'_>]) {
    runtime().block_on(async {
        let store = Store::open(
            &Store::sqlite_url(&app.data_dir()),
            reposync_secrets::MasterKey::generate(),
        )
        .await
        .expect("open the store");
        for event in events {
            store.record_audit(event).await.expect("record");
        }
        store.close().await;
    });
}

fn event<'a>(actor: &'a str, target: &'a str, app: Option<&'a str>) -> NewAuditEvent<'a> {
    NewAuditEvent {
        actor_kind: ActorKind::User,
        actor,
        token: Some("laptop"),
        client_addr: Some(std::net::IpAddr::from([192, 0, 2, 10])),
        use_case: "tree.apply",
        target: Some(target),
        app,
        outcome: AuditOutcome::Accepted,
        status: Some(200),
        detail: None,
    }
}

#[test]
fn audit_lists_the_trail_as_a_table_wide_or_json_through_its_filters() {
    let app = TestApp::spawn();
    let shown = app.cli(&["audit"], None);
    shown.ok();
    assert_eq!(
        shown.stdout.trim_end(),
        "TIME  USER  USE CASE  TARGET  APP  OUTCOME",
        "an empty trail is the header alone"
    );

    let refused = NewAuditEvent {
        actor_kind: ActorKind::Anonymous,
        actor: "mallory",
        token: None,
        client_addr: None,
        use_case: "login",
        target: None,
        app: None,
        outcome: AuditOutcome::Refused,
        status: Some(401),
        detail: Some("wrong password"),
    };
    record(
        &app,
        &[
            event("alice", "Setup/Applications/Shop/Index.yaml", Some("Shop")),
            event("bob", "Config", None),
            refused,
        ],
    );

    let table = app.cli(&["audit"], None);
    table.ok();
    let lines: Vec<&str> = table.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{}", table.stdout);
    assert!(lines[0].starts_with("TIME "), "{}", table.stdout);
    assert!(!lines[0].contains("TOKEN"), "wide only: {}", lines[0]);
    assert!(lines[1].contains("mallory (not signed in)"), "{}", lines[1]);
    assert!(
        lines[1].contains("refused 401: wrong password"),
        "{}",
        lines[1]
    );
    assert!(lines[3].contains("alice"), "oldest last: {}", table.stdout);
    assert!(lines[3].contains("Shop"), "{}", lines[3]);
    assert!(lines[3].contains("accepted 200"), "{}", lines[3]);

    let wide = app.cli(&["audit", "-o", "wide"], None);
    wide.ok();
    let header = wide.stdout.lines().next().expect("a header");
    for column in ["TOKEN", "ADDRESS", "ID"] {
        assert!(header.contains(column), "{header}");
    }
    assert!(wide.stdout.contains("192.0.2.10"), "{}", wide.stdout);
    assert!(wide.stdout.contains("laptop"), "{}", wide.stdout);

    let json = app
        .cli(
            &["audit", "--json", "--user", "alice", "--since", "1h"],
            None,
        )
        .ok()
        .json();
    let items = json["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{json}");
    assert_eq!(items[0]["actor"], "alice");
    assert_eq!(items[0]["token"], "laptop");
    assert_eq!(items[0]["app"], "Shop");

    let shop = app
        .cli(&["--json", "audit", "--app", "Shop"], None)
        .ok()
        .json();
    assert_eq!(shop["items"].as_array().map(Vec::len), Some(1), "{shop}");
    let newest = app
        .cli(&["audit", "--limit", "1", "--json"], None)
        .ok()
        .json();
    assert_eq!(newest["items"][0]["actor"], "mallory", "{newest}");
    let future = app
        .cli(
            &["audit", "--since", "2999-01-01T00:00:00Z", "--json"],
            None,
        )
        .ok()
        .json();
    assert_eq!(future, serde_json::json!({"items": []}));

    for wrong in [
        &["audit", "--since", "yesterday"][..],
        &["audit", "--limit", "0"],
        &["audit", "--limit", "1001"],
    ] {
        let run = app.cli(wrong, None);
        run.fails();
        assert!(run.stdout.is_empty(), "{wrong:?}: {}", run.stdout);
        assert!(
            run.stderr.contains(wrong[1]),
            "{wrong:?} names its flag: {}",
            run.stderr
        );
    }
    let refused = app.cli(&["audit", "--app", "a/b"], None);
    refused.fails();
    assert!(refused.stderr.contains("app: "), "{}", refused.stderr);
}
