//! A server with an HTTPS Git connector and an application, for Git Sync tests in both
//! directions.

#![allow(dead_code, clippy::expect_used)]

use std::time::{Duration, Instant};

use reposync_testkit::{GitHttpsServer, RepoRoot, TestCa};

use super::{Backend, TestApp};

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
    /// The CA behind the git server, and the file the connectors trust it from: other
    /// servers of the test (the Bitbucket REST emulator) take their certificates from it.
    pub ca: TestCa,
    pub rt: tokio::runtime::Runtime,
}

impl Fixture {
    pub fn https(initial_files: &[(&str, &str)]) -> Fixture {
        Fixture::https_with(initial_files, &[])
    }

    /// The same, with extra `serve` arguments.
    pub fn https_with(initial_files: &[(&str, &str)], serve_args: &[&str]) -> Fixture {
        Fixture::https_on(Backend::Sqlite, initial_files, serve_args)
    }

    /// The same, with the server's store on `backend`.
    pub fn https_on(
        backend: Backend,
        initial_files: &[(&str, &str)],
        serve_args: &[&str],
    ) -> Fixture {
        let rt = runtime();
        let root = RepoRoot::new().expect("repo root");
        root.create_repo(REPO, "main", initial_files).expect("repo");
        let ca = TestCa::new("reposync sync CA").expect("ca");
        let server = rt
            .block_on(GitHttpsServer::start(&root, &ca, USER, TOKEN))
            .expect("https server");
        let app = TestApp::spawn_on(backend, serve_args);
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
            ca,
            rt,
        };
        fixture.app.cli(&["app", "create", "Shop"], None).ok();
        fixture.put(
            &format!("{SHOP}/Services/cart/Index.yaml"),
            "harnessApiVersion: '1.0'\ntype: SERVICE\ndeploymentType: KUBERNETES\n",
        );
        fixture
    }

    /// Gives the connector `git` a webhook URL, and returns the URL's token (its last part)
    /// and the HMAC secret deliveries are signed with.
    pub fn webhook_credentials(&self) -> (String, String) {
        self.app
            .cli(
                &["connector", "update", "git", "--generate-webhook-url"],
                None,
            )
            .ok();
        let shown = self
            .app
            .cli(&["--json", "connector", "webhook", "git"], None)
            .ok()
            .json();
        let url = shown["url"].as_str().expect("url");
        let token = url.rsplit('/').next().expect("token at the end").to_owned();
        let secret = shown["secret"].as_str().expect("secret").to_owned();
        (token, secret)
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

    /// `sync status --json`.
    pub fn sync_status(&self) -> serde_json::Value {
        self.app
            .cli(&["--json", "sync", "status"], None)
            .ok()
            .json()
    }

    /// Waits until nothing waits to be pushed, and returns the branch head.
    pub fn wait_pushed(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let status = self.sync_status();
            let waiting: u64 = links(&status)
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
            let status = self.sync_status();
            let quiet = links(&status)
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
        let status = self.sync_status();
        let apps: Vec<String> = links(&status)
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

/// The links of a `sync status --json` answer.
fn links(status: &serde_json::Value) -> &Vec<serde_json::Value> {
    status["items"].as_array().expect("items")
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

/// What a run of kills during streamed edits came to (see [`Fixture::kill_while_editing`]).
#[derive(Debug, Default)]
pub struct KillRun {
    pub seed: u64,
    pub kills: u32,
    /// Edits the API acknowledged (exit status 0).
    pub acknowledged: u32,
    pub convergence: Convergence,
    /// Files under the data directory or the system's temporary directory (and, on
    /// PostgreSQL, the database) that hold the connector's token, and entries left in the
    /// data directory's `tmp` after a restart.
    pub secret_files: Vec<String>,
    /// Pushes whose answer a kill lost, found on the branch afterwards, from the server logs:
    /// by a later attempt (its trailers), and changesets settled by reading the push back.
    pub lost_answers: (usize, usize),
}

/// A small, seedable generator (xorshift64*), so a failing run can be repeated exactly.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1)
    }
}

/// A seed from the environment variable `name`, or from the clock (printed, so that a failing
/// run can be repeated).
pub fn seed_from(name: &str) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| u64::try_from(d.as_nanos() % u128::from(u64::MAX)).unwrap_or(1))
                .unwrap_or(1)
        })
}

impl Fixture {
    /// Streams random edits (create, modify, delete, rename) at a dozen workflows of Shop
    /// through the API, and SIGKILLs the server with all its children `kills` times at
    /// random moments (after a random number of edits and a random pause), restarting it
    /// each time; then waits until reposync is quiet and measures how it converged.
    pub fn kill_while_editing(&mut self, kills: u32, seed: u64) -> KillRun {
        let mut rng = Rng::new(seed);
        let mut present: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
        let names: Vec<String> = (0..12).map(|n| format!("w{n:02}")).collect();
        let mut acknowledged = 0;
        let mut step = 0;
        for _ in 0..kills {
            for _ in 0..=rng.below(12) {
                step += 1;
                let name = &names[usize::try_from(rng.below(12)).unwrap_or(0)];
                let path = |name: &str| format!("{SHOP}/Workflows/{name}.yaml");
                let run = if !present.contains(name) {
                    let file = self.app.dir.path().join("edit.yaml");
                    std::fs::write(&file, workflow(&format!("{name} at {step}"))).expect("write");
                    let run = self.app.cli(
                        &[
                            "apply",
                            "--path",
                            &path(name),
                            "-f",
                            file.to_str().expect("utf-8"),
                        ],
                        None,
                    );
                    if run.code == 0 {
                        present.insert(name.clone());
                    }
                    run
                } else {
                    match rng.below(3) {
                        0 => {
                            let file = self.app.dir.path().join("edit.yaml");
                            std::fs::write(&file, workflow(&format!("{name} at {step}")))
                                .expect("write");
                            self.app.cli(
                                &[
                                    "apply",
                                    "--path",
                                    &path(name),
                                    "-f",
                                    file.to_str().expect("utf-8"),
                                ],
                                None,
                            )
                        }
                        1 => {
                            let run = self.app.cli(&["delete", &path(name), "--yes"], None);
                            if run.code == 0 {
                                present.remove(name);
                            }
                            run
                        }
                        _ => {
                            let free: Vec<&String> =
                                names.iter().filter(|n| !present.contains(*n)).collect();
                            let Some(to) = free
                                .get(usize::try_from(rng.below(free.len() as u64)).unwrap_or(0))
                                .map(|n| (*n).clone())
                            else {
                                continue;
                            };
                            let run = self.app.cli(&["rename", &path(name), &to], None);
                            if run.code == 0 {
                                present.remove(name);
                                present.insert(to);
                            }
                            run
                        }
                    }
                };
                if run.code == 0 {
                    acknowledged += 1;
                }
            }
            // The kill lands wherever the outbox and the inbox are by then: gathering a burst,
            // in the middle of a push, after it landed, or while recording it.
            std::thread::sleep(Duration::from_millis(rng.below(400)));
            self.app.kill_with_children();
            self.app.restart();
        }
        self.wait_settled();
        let convergence = self.convergence(false);
        // A clean stop ends every operation, so whatever is left was left for good.
        self.app.stop();
        let mut secret_files: Vec<String> = std::fs::read_dir(self.app.data_dir().join("tmp"))
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| e.path().display().to_string())
                    .collect()
            })
            .unwrap_or_default();
        // The server's system temporary directory (`TMPDIR`), where per-operation files lived
        // before they moved under the data directory: nothing may be left there either.
        let system_tmp = self.app.dir.path().join("system-tmp");
        if let Ok(entries) = std::fs::read_dir(&system_tmp) {
            secret_files.extend(entries.flatten().map(|e| e.path().display().to_string()));
        }
        let mut stack = vec![self.app.data_dir(), system_tmp];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                let Ok(kind) = entry.file_type() else {
                    continue;
                };
                if kind.is_dir() {
                    stack.push(path);
                } else if kind.is_file()
                    && std::fs::read(&path)
                        .is_ok_and(|b| b.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes()))
                {
                    secret_files.push(path.display().to_string());
                }
            }
        }
        // On PostgreSQL the database is not in the data directory: its rows are searched too.
        if self.app.backend() == Backend::Postgres {
            for (name, bytes) in self.app.database_contents() {
                if bytes.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes()) {
                    secret_files.push(name);
                }
            }
        }
        let logs: Vec<String> = std::fs::read_dir(self.app.dir.path())
            .map(|entries| {
                entries
                    .flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with("server-"))
                    .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
                    .collect()
            })
            .unwrap_or_default();
        let count = |what: &str| logs.iter().map(|l| l.matches(what).count()).sum();
        let lost_answers = (
            count("whose answer was lost are on the branch"),
            count("whose push was not recorded is on the branch"),
        );
        KillRun {
            seed,
            kills,
            acknowledged,
            convergence,
            secret_files,
            lost_answers,
        }
    }
}

/// A Bitbucket Cloud `repo:push` body moving `branch` from `old` to `new`, for the fixture's
/// repository.
pub fn cloud_push_to(branch: &str, old: &str, new: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "actor": {"type": "user", "display_name": "Bench"},
        "repository": {"type": "repository", "full_name": "acme/config", "name": "config"},
        "push": {"changes": [{
            "new": {"type": "branch", "name": branch, "target": {"type": "commit", "hash": new}},
            "old": {"type": "branch", "name": branch, "target": {"type": "commit", "hash": old}},
            "created": false, "closed": false, "forced": false
        }]}
    }))
    .expect("json")
}
