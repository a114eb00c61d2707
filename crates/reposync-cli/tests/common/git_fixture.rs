//! A server with an HTTPS Git connector and an application, for Git Sync tests in both
//! directions.

#![allow(dead_code, clippy::expect_used)]

use std::time::{Duration, Instant};

use reposync_testkit::{GitHttpsServer, RepoRoot, TestCa};

use super::TestApp;

pub const USER: &str = "jdoe";
pub const TOKEN: &str = "bbtoken-sync-3c9a7e11f0";
pub const REPO: &str = "acme/config.git";
pub const SHOP: &str = "Setup/Applications/Shop";

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// A server with an HTTPS connector `git` (author "Sync Bot") to `acme/config.git`, and an
/// application `Shop` with one service.
pub struct Fixture {
    pub app: TestApp,
    pub root: RepoRoot,
    pub server: GitHttpsServer,
    pub rt: tokio::runtime::Runtime,
}

impl Fixture {
    pub fn https(initial_files: &[(&str, &str)]) -> Fixture {
        Fixture::https_with(initial_files, &[])
    }

    /// The same, with extra `serve` arguments.
    pub fn https_with(initial_files: &[(&str, &str)], serve_args: &[&str]) -> Fixture {
        let rt = runtime();
        let root = RepoRoot::new().expect("repo root");
        root.create_repo(REPO, "main", initial_files).expect("repo");
        let ca = TestCa::new("reposync sync CA").expect("ca");
        let server = rt
            .block_on(GitHttpsServer::start(&root, &ca, USER, TOKEN))
            .expect("https server");
        let app = TestApp::spawn_with(serve_args);
        let ca_file = app.dir.path().join("ca.pem");
        std::fs::write(&ca_file, ca.cert_pem()).expect("ca file");
        app.cli(
            &["secret", "create", "bb-token", "--value-stdin"],
            Some(TOKEN),
        )
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
                USER,
                "--password-secret",
                "bb-token",
                "--branch",
                "main",
                "--ca-file",
                ca_file.to_str().expect("utf-8"),
                "--author-name",
                "Sync Bot",
                "--author-email",
                "sync-bot@example.com",
            ],
            None,
        )
        .ok();
        let fixture = Fixture {
            app,
            root,
            server,
            rt,
        };
        fixture.app.cli(&["app", "create", "Shop"], None).ok();
        fixture.put(
            &format!("{SHOP}/Services/cart/Index.yaml"),
            "harnessApiVersion: '1.0'\ntype: SERVICE\ndeploymentType: KUBERNETES\n",
        );
        fixture
    }

    pub fn put(&self, path: &str, yaml: &str) {
        let file = self.app.dir.path().join("apply.yaml");
        std::fs::write(&file, yaml).expect("write");
        self.app
            .cli(
                &["apply", "--path", path, "-f", file.to_str().expect("utf-8")],
                None,
            )
            .ok();
    }

    pub fn head(&self) -> Option<String> {
        self.root.head(REPO, "main").expect("head")
    }

    pub fn git(&self, args: &[&str]) -> String {
        let repo = self.root.repo_path(REPO).expect("repo path");
        self.root.git().run(&repo, args).expect("git")
    }

    /// Waits until nothing waits to be pushed, and returns the branch head.
    pub fn wait_pushed(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let status = self
                .app
                .cli(&["--json", "sync", "status"], None)
                .ok()
                .json();
            let waiting: u64 = status["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(|l| l["waiting"].as_u64().expect("waiting"))
                .sum();
            if waiting == 0 {
                return self.head().expect("branch exists");
            }
            assert!(
                Instant::now() < deadline,
                "still waiting after 30 s: {status}\n{}",
                self.app.server_log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until reposync is quiet: nothing waits to be pushed, no changeset is held in a
    /// conflict, and no sync error is open. Returns the branch head.
    pub fn wait_settled(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let status = self
                .app
                .cli(&["--json", "sync", "status"], None)
                .ok()
                .json();
            let quiet = status["items"]
                .as_array()
                .expect("items")
                .iter()
                .all(|l| l["waiting"].as_u64() == Some(0) && l["errors"].as_u64() == Some(0));
            let activity = self
                .app
                .cli(&["--json", "sync", "activity", "--limit", "1000"], None)
                .ok()
                .json();
            let unsettled = activity["changesets"]
                .as_array()
                .expect("changesets")
                .iter()
                .any(|c| c["status"] != "pushed");
            if quiet && !unsettled {
                return self.head().expect("branch exists");
            }
            assert!(
                Instant::now() < deadline,
                "not settled after 60 s: {status}\n{activity}\n{}",
                self.app.server_log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until a sync error is recorded, and returns `sync errors --json`.
    pub fn wait_for_errors(&self) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let errors = self
                .app
                .cli(&["--json", "sync", "errors"], None)
                .ok()
                .json();
            if !errors["items"].as_array().expect("items").is_empty() {
                return errors;
            }
            assert!(
                Instant::now() < deadline,
                "no sync error: {}",
                self.app.server_log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn message(&self, commit: &str) -> String {
        self.git(&["log", "-1", "--format=%B", commit])
    }

    pub fn commits_since(&self, from: &str, to: &str) -> usize {
        self.git(&["rev-list", "--count", &format!("{from}..{to}")])
            .parse()
            .expect("count")
    }
}

pub fn workflow(description: &str) -> String {
    format!(
        "harnessApiVersion: '1.0'\ntype: BASIC\ndescription: {description}\norchestration:\n  type: BASIC_WORKFLOW\nserviceName: cart\n"
    )
}

impl Fixture {
    /// Adds an HTTPS connector with the fixture's credentials and CA.
    pub fn add_connector(&self, name: &str, url: &str, extra: &[&str]) {
        let ca_file = self.app.dir.path().join("ca.pem");
        let mut args = vec![
            "connector",
            "add",
            "--name",
            name,
            "--url",
            url,
            "--username",
            USER,
            "--password-secret",
            "bb-token",
            "--branch",
            "main",
            "--ca-file",
            ca_file.to_str().expect("utf-8"),
        ];
        args.extend_from_slice(extra);
        self.app.cli(&args, None).ok();
    }
}
