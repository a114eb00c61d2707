//! Prints how long onboarding a whole repository takes (issue 16, section 6); asserts only
//! that the work was done. Run with `cargo bench -p reposync-cli --bench enable_all`.
//!
//! Against the release server, its built-in delegate and a local HTTPS git server (git
//! http-backend behind TLS), each measurement on a fresh server and repository:
//! - `sync enable --all --initial import` of a branch holding the account's files and 10,
//!   then 100 applications of four files each: the command's wall time (it waits for the
//!   task), which reads the branch once and links every scope; then how long the first
//!   commits take to be pushed, for information;
//! - the same 10 applications enabled one by one (`sync enable --app … --initial import`,
//!   each reading the branch), after creating them in reposync (not timed), for the ratio,
//!   with the first enable's time (the branch to itself: about the time of one read) and the
//!   later ones' (each waits for the previous link's first push, which holds the clone).

#![allow(clippy::expect_used, clippy::unwrap_used)]

#[path = "../tests/e2e/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::TestApp;
use reposync_testkit::{GitHttpsServer, RepoRoot, TestCa};

const REPO: &str = "acme/config.git";
const TOKEN: &str = "bench-token-123456";
const APP_INDEX: &str = "harnessApiVersion: '1.0'\ntype: APPLICATION\n";
const SERVICE: &str = "harnessApiVersion: '1.0'\ntype: SERVICE\ndeploymentType: KUBERNETES\n";
const ENVIRONMENT: &str = "harnessApiVersion: '1.0'\ntype: ENVIRONMENT\nenvironmentType: PROD\n";
const GROUP: &str = "harnessApiVersion: '1.0'\ntype: NOTIFICATION_GROUP\naddressesByChannelType:\n  EMAIL:\n  - oncall@example.com\n";

fn app_name(n: usize) -> String {
    format!("App{n:03}")
}

/// The branch: a README, one account file, and `apps` applications of four files each.
fn branch_files(apps: usize) -> Vec<(String, String)> {
    let mut files = vec![
        ("README.md".to_owned(), "bench\n".to_owned()),
        (
            "Setup/Notification Groups/On Call.yaml".to_owned(),
            GROUP.to_owned(),
        ),
    ];
    for n in 0..apps {
        let folder = format!("Setup/Applications/{}", app_name(n));
        files.extend([
            (format!("{folder}/Index.yaml"), APP_INDEX.to_owned()),
            (
                format!("{folder}/Services/api/Index.yaml"),
                SERVICE.to_owned(),
            ),
            (
                format!("{folder}/Services/web/Index.yaml"),
                SERVICE.to_owned(),
            ),
            (
                format!("{folder}/Environments/prod/Index.yaml"),
                ENVIRONMENT.to_owned(),
            ),
        ]);
    }
    files
}

/// A server with the connector `git` to a repository holding [`branch_files`].
struct Setup {
    app: TestApp,
    _server: GitHttpsServer,
    _root: RepoRoot,
    _rt: tokio::runtime::Runtime,
}

fn setup(apps: usize) -> Setup {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let root = RepoRoot::new().unwrap();
    let files = branch_files(apps);
    let borrowed: Vec<(&str, &str)> = files
        .iter()
        .map(|(path, content)| (path.as_str(), content.as_str()))
        .collect();
    root.create_repo(REPO, "main", &borrowed).unwrap();
    let ca = TestCa::new("bench CA").unwrap();
    let server = rt
        .block_on(GitHttpsServer::start(&root, &ca, "u", TOKEN))
        .unwrap();
    let app = TestApp::spawn();
    let ca_file = app.dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.cert_pem()).unwrap();
    app.cli(&["secret", "create", "t", "--value-stdin"], Some(TOKEN))
        .ok();
    app.cli(
        &[
            "connector",
            "add",
            "--name",
            "git",
            "--url",
            &server.repo_url(REPO),
            "--username",
            "u",
            "--password-secret",
            "t",
            "--branch",
            "main",
            "--ca-file",
            ca_file.to_str().unwrap(),
        ],
        None,
    )
    .ok();
    Setup {
        app,
        _server: server,
        _root: root,
        _rt: rt,
    }
}

/// How many links are live.
fn links(app: &TestApp) -> usize {
    let status = app.cli(&["--json", "sync", "status"], None).ok().json();
    status["items"].as_array().unwrap().len()
}

/// Waits until nothing waits to be pushed, and answers how long that took.
fn wait_pushed(app: &TestApp) -> Duration {
    let started = Instant::now();
    loop {
        let status = app.cli(&["--json", "sync", "status"], None).ok().json();
        let waiting: u64 = status["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["waiting"].as_u64().unwrap_or(1))
            .sum();
        if waiting == 0 {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "still waiting after 10 minutes: {status}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn enable_all(apps: usize) -> Duration {
    let s = setup(apps);
    let started = Instant::now();
    let run = s.app.cli(
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
    );
    let took = started.elapsed();
    let answer = run.ok().json();
    let linked = answer["linked"].as_array().unwrap().len();
    assert_eq!(linked, apps + 1, "{answer}");
    assert_eq!(links(&s.app), apps + 1);
    let activity = s
        .app
        .cli(&["--json", "sync", "activity", "--limit", "1000"], None)
        .ok()
        .json();
    let reads = activity["reads"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["kind"] == "enable")
        .count();
    assert_eq!(reads, 1, "one read of the branch");
    let pushed = wait_pushed(&s.app);
    println!(
        "sync enable --all, {apps:>3} applications + the account: {:>7.2} s (one read; first commits pushed {:.2} s later)",
        took.as_secs_f64(),
        pushed.as_secs_f64()
    );
    took
}

fn enable_one_by_one(apps: usize) -> Duration {
    let s = setup(apps);
    let names: Vec<String> = (0..apps).map(app_name).collect();
    for name in &names {
        s.app.cli(&["app", "create", name], None).ok();
    }
    let started = Instant::now();
    let mut each = Vec::new();
    for name in &names {
        let one = Instant::now();
        s.app
            .cli(
                &[
                    "sync",
                    "enable",
                    "--app",
                    name,
                    "--connector",
                    "git",
                    "--initial",
                    "import",
                ],
                None,
            )
            .ok();
        each.push(one.elapsed());
    }
    let took = started.elapsed();
    assert_eq!(links(&s.app), apps);
    let account = Instant::now();
    s.app
        .cli(
            &[
                "sync",
                "enable",
                "--account",
                "--connector",
                "git",
                "--initial",
                "import",
            ],
            None,
        )
        .ok();
    let account = account.elapsed();
    // The first enable has the branch to itself; each later one reads it after the previous
    // link's first commit, which holds the delegate's clone of the branch while it pushes.
    let mut later = each[1..].to_vec();
    later.sort();
    println!(
        "sync enable --app, one by one, {apps:>3} applications:     {:>7.2} s ({apps} reads: the first {:.2} s, the later ones {:.2} s each (median); the account's own enable {:.2} s more)",
        took.as_secs_f64(),
        each[0].as_secs_f64(),
        later[later.len() / 2].as_secs_f64(),
        account.as_secs_f64()
    );
    took
}

fn main() {
    let ten = enable_all(10);
    let hundred = enable_all(100);
    let one_by_one = enable_one_by_one(10);
    println!(
        "10 applications: one by one / --all = {:.1}x; 100 applications with --all take {:.1}x the time of 10",
        one_by_one.as_secs_f64() / ten.as_secs_f64(),
        hundred.as_secs_f64() / ten.as_secs_f64()
    );
}
