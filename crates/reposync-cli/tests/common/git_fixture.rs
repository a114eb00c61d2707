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

    /// Waits until the branch's head has been read back from Git (reposync reads its own
    /// pushes too), so that no read is under way or due.
    pub fn wait_read_back(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let head = self.head();
            let activity = self
                .app
                .cli(&["--json", "sync", "activity"], None)
                .ok()
                .json();
            let read = activity["inbound"]
                .as_array()
                .expect("inbound")
                .iter()
                .any(|c| head.as_deref() == c["commit_id"].as_str());
            if read {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the head {head:?} was never read back: {activity}"
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

/// How far the branch is from the promise "once reposync is quiet, the files of every linked
/// scope on its branch equal the store's, each changeset is in exactly one commit, and every
/// message says what its commit changed". Every list is empty when the promise holds.
#[derive(Debug, Default)]
pub struct Convergence {
    /// Paths of linked scopes whose content differs between the store and the branch.
    pub differing: Vec<String>,
    /// Changeset trailers found in more than one commit, or not in the commit recorded.
    pub duplicate_trailers: Vec<String>,
    /// Commits whose `ADD`/`MODIFY`/`DELETE` lines do not match their diff.
    pub message_mismatches: Vec<String>,
    /// Conflict or overridden errors, open or resolved: with no one else writing to the
    /// branch, each is a conflict with reposync's own commits.
    pub own_conflicts: Vec<String>,
    /// Sync errors still open.
    pub open_errors: Vec<String>,
}

impl Convergence {
    pub fn holds(&self) -> bool {
        self.differing.is_empty()
            && self.duplicate_trailers.is_empty()
            && self.message_mismatches.is_empty()
            && self.own_conflicts.is_empty()
            && self.open_errors.is_empty()
    }
}

impl Fixture {
    /// Compares the store with the branch once reposync is quiet (see [`Convergence`]). The
    /// linked scopes are the applications with a live link; `others_write` is false when
    /// nobody but reposync pushed to the branch, so that any conflict is against its own
    /// commits.
    pub fn convergence(&self, others_write: bool) -> Convergence {
        let mut report = Convergence::default();
        let status = self
            .app
            .cli(&["--json", "sync", "status"], None)
            .ok()
            .json();
        let apps: Vec<String> = status["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter_map(|l| l["app"].as_str().map(str::to_owned))
            .collect();
        for app in &apps {
            let export = tempfile::tempdir().expect("tempdir");
            self.app
                .cli(
                    &[
                        "export",
                        export.path().to_str().expect("utf-8"),
                        "--app",
                        app,
                    ],
                    None,
                )
                .ok();
            let mut store = std::collections::BTreeMap::new();
            walk(export.path(), export.path(), &mut store);
            let folder = format!("Setup/Applications/{app}/");
            let listing = self.git(&["ls-tree", "-r", "--name-only", "main", "--", &folder]);
            let mut branch = std::collections::BTreeMap::new();
            for path in listing.lines().filter(|l| !l.is_empty()) {
                branch.insert(
                    path.to_owned(),
                    self.git(&["show", &format!("main:{path}")]),
                );
            }
            let paths: std::collections::BTreeSet<&String> =
                store.keys().chain(branch.keys()).collect();
            for path in paths {
                let ours = store.get(path).map(|c: &String| c.trim_end());
                let theirs = branch.get(path).map(|c: &String| c.trim_end());
                if ours != theirs {
                    report.differing.push(format!(
                        "{path}: store {:?}, branch {:?}",
                        ours.map(short_text),
                        theirs.map(short_text)
                    ));
                }
            }
        }

        let log = self.git(&["log", "--format=%H%x01%B%x02", "main"]);
        let mut carried: std::collections::HashMap<String, Vec<String>> =
            std::collections::HashMap::new();
        for entry in log.split('\u{2}') {
            let Some((commit, message)) = entry.trim_start().split_once('\u{1}') else {
                continue;
            };
            let ids = reposync_model::commit::changeset_ids(message);
            if ids.is_empty() {
                continue;
            }
            for id in &ids {
                carried
                    .entry((*id).to_owned())
                    .or_default()
                    .push(commit.to_owned());
            }
            let said: std::collections::BTreeSet<String> =
                reposync_model::commit::file_lines(message)
                    .into_iter()
                    .map(|(op, path)| format!("{} {path}", op.as_str()))
                    .collect();
            let diff = self.git(&[
                "diff-tree",
                "--no-commit-id",
                "-r",
                "--root",
                "--no-renames",
                "--name-status",
                commit,
            ]);
            let done: std::collections::BTreeSet<String> = diff
                .lines()
                .filter_map(|line| {
                    let (status, path) = line.split_once('\t')?;
                    let op = match status {
                        "A" => "ADD",
                        "D" => "DELETE",
                        _ => "MODIFY",
                    };
                    Some(format!("{op} {path}"))
                })
                .collect();
            if said != done {
                report
                    .message_mismatches
                    .push(format!("{commit}: says {said:?}, changes {done:?}"));
            }
        }
        let activity = self
            .app
            .cli(&["--json", "sync", "activity", "--limit", "100000"], None)
            .ok()
            .json();
        for changeset in activity["changesets"].as_array().expect("changesets") {
            let id = changeset["id"].as_str().expect("id");
            let found = carried.remove(id).unwrap_or_default();
            let recorded = changeset["commit_id"].as_str();
            let right = match recorded {
                Some(commit) => found == [commit],
                None => found.is_empty(),
            };
            if !right {
                report.duplicate_trailers.push(format!(
                    "{id}: in {found:?}, recorded as {recorded:?} ({})",
                    changeset["status"]
                ));
            }
        }
        for (id, commits) in carried {
            if commits.len() > 1 {
                report
                    .duplicate_trailers
                    .push(format!("{id}: in {commits:?}, unknown to activity"));
            }
        }

        let errors = |resolved: bool| {
            let mut args = vec!["--json", "sync", "errors"];
            if resolved {
                args.push("--resolved");
            }
            self.app.cli(&args, None).ok().json()["items"]
                .as_array()
                .expect("items")
                .clone()
        };
        let describe = |e: &serde_json::Value| {
            format!(
                "{} {} {}",
                e["code"].as_str().unwrap_or_default(),
                e["path"].as_str().unwrap_or_default(),
                e["message"].as_str().unwrap_or_default()
            )
        };
        let open = errors(false);
        report.open_errors = open.iter().map(describe).collect();
        if !others_write {
            report.own_conflicts = open
                .iter()
                .chain(errors(true).iter())
                .filter(|e| e["code"] == "conflict" || e["code"] == "overridden")
                .map(describe)
                .collect();
        }
        report
    }

    /// Asserts that reposync converged (see [`Convergence`]), naming what did not.
    #[track_caller]
    pub fn assert_converged(&self, others_write: bool) {
        let report = self.convergence(others_write);
        assert!(
            report.holds(),
            "not converged: {report:#?}\n{}",
            self.app.server_log()
        );
    }
}

fn short_text(text: &str) -> String {
    text.chars().take(60).collect()
}

/// Every file under `dir`, by its path relative to `root`.
fn walk(
    root: &std::path::Path,
    dir: &std::path::Path,
    files: &mut std::collections::BTreeMap<String, String>,
) {
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            walk(root, &path, files);
        } else {
            let relative = path
                .strip_prefix(root)
                .expect("under root")
                .to_str()
                .expect("utf-8")
                .to_owned();
            files.insert(relative, std::fs::read_to_string(&path).expect("read"));
        }
    }
}
