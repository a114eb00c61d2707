//! Onboarding a whole repository in one read: `sync enable --all` links the account and every
//! application, reading the branch once, against the real binary and a real git server.

#![allow(clippy::expect_used)] // Test helpers outside #[test] functions may panic.

use crate::common;

use common::git_fixture::{Fixture, REPO, SHOP};

const ON_CALL: &str = "Setup/Notification Groups/On Call.yaml";
const GROUP: &str = "harnessApiVersion: '1.0'\ntype: NOTIFICATION_GROUP\naddressesByChannelType:\n  EMAIL:\n  - oncall@example.com\n";
const APP_INDEX: &str = "harnessApiVersion: '1.0'\ntype: APPLICATION\n";
const SERVICE: &str = "harnessApiVersion: '1.0'\ntype: SERVICE\ndeploymentType: KUBERNETES\n";

/// The enable reads of `sync activity`: one per read of the branch that enabled links.
fn enable_reads(f: &Fixture) -> Vec<serde_json::Value> {
    let activity = f
        .app
        .cli(&["--json", "sync", "activity", "--limit", "1000"], None)
        .ok()
        .json();
    activity["reads"]
        .as_array()
        .expect("reads")
        .iter()
        .filter(|read| read["kind"] == "enable")
        .cloned()
        .collect()
}

/// A branch holding the account's files and three applications (Shop and Pay, which reposync
/// holds, and New, which it lacks), with Bank only in reposync: `sync enable --all --initial
/// import` links all five scopes from exactly one read of the branch, imports the branch's
/// files (creating New), pushes what the branch lacks (Bank, and each Index.yaml with its
/// link's fields), and a second run says every scope is linked already and reads nothing
/// into the record.
#[test]
fn enabling_every_scope_links_the_account_and_each_application_from_one_read() {
    let new_service = "Setup/Applications/New/Services/web/Index.yaml";
    let pay_service = "Setup/Applications/Pay/Services/api/Index.yaml";
    let f = Fixture::https(&[
        ("README.md", "config repository\n"),
        (ON_CALL, GROUP),
        (&format!("{SHOP}/Index.yaml"), APP_INDEX),
        (&format!("{SHOP}/Services/cart/Index.yaml"), SERVICE),
        ("Setup/Applications/Pay/Index.yaml", APP_INDEX),
        (pay_service, SERVICE),
        ("Setup/Applications/New/Index.yaml", APP_INDEX),
        (new_service, SERVICE),
    ]);
    for app in ["Pay", "Bank"] {
        f.app.cli(&["app", "create", app], None).ok();
    }

    let refused = f.app.cli(
        &[
            "sync",
            "enable",
            "--all",
            "--app",
            "Shop",
            "--connector",
            "git",
        ],
        None,
    );
    assert!(
        refused.fails().stderr.contains("--all"),
        "--all and --app do not go together: {}",
        refused.stderr
    );

    let enabled = f
        .app
        .cli(
            &[
                "--json",
                "sync",
                "enable",
                "--all",
                "--connector",
                "git",
                "--initial",
                "import",
            ],
            None,
        )
        .ok()
        .json();
    let linked: Vec<&str> = enabled["linked"]
        .as_array()
        .expect("linked")
        .iter()
        .map(|e| e["link"]["scope"].as_str().expect("scope"))
        .collect();
    assert_eq!(
        linked,
        ["account", "app:Bank", "app:New", "app:Pay", "app:Shop"],
        "{enabled}"
    );
    assert_eq!(
        enabled["created_apps"],
        serde_json::json!(["New"]),
        "{enabled}"
    );
    assert_eq!(enabled["skipped"], serde_json::json!([]), "{enabled}");
    let reads = enable_reads(&f);
    assert_eq!(reads.len(), 1, "one read of the branch: {reads:?}");
    let status = f.sync_status();
    assert_eq!(
        status["items"].as_array().expect("items").len(),
        5,
        "{status}"
    );

    // The branch's files are in reposync: New was created from them, Pay got its service.
    for path in [new_service, pay_service, ON_CALL] {
        f.app.cli(&["get", path], None).ok();
    }
    // What the branch lacked goes out: Bank, and every Index.yaml with its link's fields.
    f.wait_settled();
    for app in ["Bank", "New", "Pay", "Shop"] {
        let index = f
            .root
            .read_file(
                REPO,
                "main",
                &format!("Setup/Applications/{app}/Index.yaml"),
            )
            .expect("index pushed");
        assert!(
            index.contains("gitConnector: git") && index.contains("isGitSyncEnabled: true"),
            "{app}: {index}"
        );
    }
    f.assert_converged(false);

    let again = f.app.cli(
        &[
            "sync",
            "enable",
            "--all",
            "--connector",
            "git",
            "--initial",
            "import",
        ],
        None,
    );
    let stdout = again.ok().stdout.clone();
    for scope in ["account", "app:Bank", "app:New", "app:Pay", "app:Shop"] {
        assert!(
            stdout
                .lines()
                .any(|line| line.contains(scope) && line.contains("already linked")),
            "{scope}: {stdout}"
        );
    }
    assert!(
        stdout.contains(
            "0 scope(s) linked (0 application(s) created from the branch), 5 already linked"
        ),
        "{stdout}"
    );
    assert_eq!(
        enable_reads(&f).len(),
        1,
        "a run that links nothing records no read"
    );
}
