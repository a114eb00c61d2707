//! Remote delegates end to end: real `reposync delegate` processes against a real server over
//! loopback (no built-in delegate), running Tests and pushes against a real git server. Every
//! test runs on each backend (`on_each_backend!`): the SQLite file always, a fresh PostgreSQL
//! database when `REPOSYNC_TEST_POSTGRES` names a cluster.

#![allow(clippy::expect_used)] // Test helpers outside #[test] functions may panic.

use crate::common;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::delegate::Delegate;
use common::git_fixture::{REPO, SHOP, TOKEN, USER, runtime, workflow};
use common::{Backend, TestApp};
use reposync_testkit::{GitHttpsServer, RepoRoot, TestCa};
use serde_json::Value;

/// A server without a built-in delegate, a git server, and a secret for it.
struct Setup {
    app: TestApp,
    root: RepoRoot,
    server: GitHttpsServer,
    ca_file: PathBuf,
    _rt: tokio::runtime::Runtime,
}

impl Setup {
    fn new(backend: Backend, serve_args: &[&str]) -> Setup {
        let rt = runtime();
        let root = RepoRoot::new().expect("root");
        root.create_repo(REPO, "main", &[("README.md", "x\n")])
            .expect("repo");
        let ca = TestCa::new("delegates CA").expect("ca");
        let server = rt
            .block_on(GitHttpsServer::start(&root, &ca, USER, TOKEN))
            .expect("https");
        let mut args = vec!["--no-builtin-delegate"];
        args.extend_from_slice(serve_args);
        let app = TestApp::spawn_on(backend, &args);
        let ca_file = app.dir.path().join("ca.pem");
        std::fs::write(&ca_file, ca.cert_pem()).expect("ca");
        app.cli(
            &["secret", "create", "bb-token", "--value-stdin"],
            Some(TOKEN),
        )
        .ok();
        Setup {
            app,
            root,
            server,
            ca_file,
            _rt: rt,
        }
    }

    fn connector(&self, name: &str, selectors: &[&str]) {
        let url = self.server.repo_url(REPO);
        // Saved untested: these tests add connectors before the delegates with their selectors
        // connect (or for selectors no delegate has), and test them when they mean to.
        let mut args = vec![
            "connector",
            "add",
            "--no-test",
            "--name",
            name,
            "--url",
            url.as_str(),
            "--username",
            USER,
            "--password-secret",
            "bb-token",
            "--branch",
            "main",
            "--ca-file",
            self.ca_file.to_str().expect("utf-8"),
        ];
        for selector in selectors {
            args.extend(["--selector", selector]);
        }
        self.app.cli(&args, None).ok();
    }

    fn token(&self, name: &str) -> String {
        let created = self
            .app
            .cli(&["--json", "delegate-token", "create", name], None)
            .ok()
            .json();
        created["token"].as_str().expect("token").to_owned()
    }

    /// Runs a connector's Test to its end; the Test result.
    fn test(&self, connector: &str) -> Value {
        let run = self
            .app
            .cli(&["--json", "connector", "test", connector], None);
        run.json()
    }

    fn delegates(&self) -> Vec<Value> {
        self.app
            .cli(&["--json", "delegate", "list"], None)
            .ok()
            .json()["items"]
            .as_array()
            .expect("items")
            .clone()
    }

    /// Waits until the delegate list shows `name` disconnected.
    fn wait_disconnected(&self, name: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let delegates = self.delegates();
            if delegates
                .iter()
                .any(|d| d["name"] == name && d["connected"] == false)
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "delegate {name} is still shown connected: {delegates:#?}\n{}",
                self.app.server_log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn wait_connected(&self, names: &[&str]) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let delegates = self.delegates();
            if names.iter().all(|n| {
                delegates
                    .iter()
                    .any(|d| d["name"] == *n && d["connected"] == true)
            }) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "delegates {names:?} never connected: {delegates:#?}\n{}",
                self.app.server_log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Every file under a folder (none if it does not exist).
fn files_under(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(folder) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files
}

/// The delegate named in a Test result.
fn ran_on(result: &Value) -> String {
    let result = if result["result"].is_object() {
        &result["result"]
    } else {
        result
    };
    result["delegate"].as_str().unwrap_or_default().to_owned()
}

#[test]
fn tasks_go_only_to_delegates_with_every_selector_and_fail_fast_when_none_has_them() {
    on_each_backend!(backend, {
        let s = Setup::new(backend, &[]);
        let token = s.token("fleet");
        let eu = Delegate::start(&s.app, "eu-1", &token, &["eu"]);
        let eu_linux = Delegate::start(&s.app, "eu-2", &token, &["EU", " linux "]);
        let us = Delegate::start(&s.app, "us-1", &token, &["us"]);
        s.wait_connected(&["eu-1", "eu-2", "us-1"]);

        s.connector("to-us", &["us"]);
        s.connector("to-eu-linux", &["eu", "linux"]);
        s.connector("to-asia", &["asia"]);
        for _ in 0..3 {
            let result = s.test("to-us");
            assert_eq!(ran_on(&result), "us-1", "{result}");
            let result = s.test("to-eu-linux");
            assert_eq!(ran_on(&result), "eu-2", "every selector, not any: {result}");
        }

        // Nobody has "asia": the Test fails at once, naming what was asked and who is there. It
        // was never queued for a delegate to pick up: none ran it, and it took no time.
        let result = s.test("to-asia");
        assert_eq!(result["duration_ms"], 0, "{result}");
        assert!(result["delegate"].is_null(), "{result}");
        let text = result.to_string();
        assert!(text.contains("no_delegate"), "{text}");
        assert!(text.contains("asia"), "{text}");
        for name in ["eu-1", "eu-2", "us-1"] {
            assert!(text.contains(name), "names the connected delegates: {text}");
        }

        let listed = s.delegates();
        let us_row = listed.iter().find(|d| d["name"] == "us-1").expect("listed");
        assert_eq!(us_row["tasks_run"], 3, "{us_row}");
        assert_eq!(us_row["tasks_succeeded"], 3, "{us_row}");
        assert_eq!(us_row["token"], "fleet");
        assert!(
            us_row["git_version"]
                .as_str()
                .is_some_and(|v| v.starts_with('2')),
            "{us_row}"
        );
        let eu_row = listed.iter().find(|d| d["name"] == "eu-1").expect("listed");
        assert_eq!(eu_row["tasks_run"], 0, "eu-1 lacks linux: {eu_row}");
        for delegate in [&eu, &eu_linux, &us] {
            assert!(
                !delegate.log().contains(&token),
                "{} logged its token",
                delegate.name
            );
            assert!(
                !delegate.log().contains(TOKEN),
                "{} logged a secret",
                delegate.name
            );
            // The Bitbucket token came with each task; nothing of it stayed on the delegate's disk.
            let work = s.app.dir.path().join(format!("delegate-{}", delegate.name));
            let leaked = files_under(&work).into_iter().find(|file| {
                std::fs::read(file)
                    .unwrap_or_default()
                    .windows(TOKEN.len())
                    .any(|w| w == TOKEN.as_bytes())
            });
            assert!(leaked.is_none(), "a secret was left in {leaked:?}");
        }
        s.app.assert_not_logged_or_stored(&[&token]);
    });
}

#[test]
fn a_revoked_token_stops_its_delegate_and_a_delegate_without_git_refuses_to_start() {
    on_each_backend!(backend, {
        let s = Setup::new(backend, &[]);
        let token = s.token("short-lived");
        let mut delegate = Delegate::start(&s.app, "temp", &token, &[]);
        s.wait_connected(&["temp"]);
        s.app
            .cli(&["delegate-token", "revoke", "short-lived"], None)
            .ok();
        let code = delegate.wait_exit(Duration::from_secs(30));
        assert!(
            code.is_some_and(|c| c != 0),
            "the delegate stops with an error: {code:?}\n{}",
            delegate.log()
        );
        assert!(
            delegate.log().to_lowercase().contains("revoked"),
            "{}",
            delegate.log()
        );

        // No git on PATH: it says what it needs and does not start.
        let fresh = s.token("other");
        let empty = s.app.dir.path().join("empty-bin");
        std::fs::create_dir_all(&empty).expect("dir");
        let mut gitless = Delegate::start_with_path(
            &s.app,
            "no-git",
            &fresh,
            &[],
            Some(empty.to_str().expect("utf-8")),
        );
        let code = gitless.wait_exit(Duration::from_secs(30));
        assert!(code.is_some_and(|c| c != 0), "{}", gitless.log());
        let log = gitless.log();
        assert!(log.contains("git"), "{log}");
        assert!(log.contains("2.29"), "names the version it needs: {log}");
        assert!(
            !s.delegates().iter().any(|d| d["name"] == "no-git"),
            "it never registered"
        );
    });
}

#[test]
fn a_delegate_killed_mid_push_loses_its_task_to_another_and_the_change_lands_once() {
    on_each_backend!(backend, {
        let s = Setup::new(backend, &["--delegate-lease", "3"]);
        s.connector("git", &[]);
        let token = s.token("pair");
        let mut first = Delegate::start(&s.app, "first", &token, &[]);
        s.wait_connected(&["first"]);
        s.app.cli(&["app", "create", "Shop"], None).ok();
        s.app
            .cli(
                &["sync", "enable", "--app", "Shop", "--connector", "git"],
                None,
            )
            .ok();
        let deadline = Instant::now() + Duration::from_secs(30);
        while s
            .root
            .read_file(REPO, "main", &format!("{SHOP}/Index.yaml"))
            .is_err()
        {
            assert!(Instant::now() < deadline, "first push");
            std::thread::sleep(Duration::from_millis(50));
        }

        // The next push lands, then stalls in the server's post-receive hook, so the delegate is
        // killed after its commit is on the branch but before it can say so.
        let marker = s.app.dir.path().join("hook-entered");
        let hook = format!(
            "#!/bin/sh\ncat >/dev/null\nif [ ! -e '{m}' ]; then touch '{m}'; chmod 666 '{m}'; sleep 20; fi\nexit 0\n",
            m = marker.display()
        );
        s.root
            .install_hook(REPO, "post-receive", &hook)
            .expect("hook");
        let path = format!("{SHOP}/Workflows/once.yaml");
        let file = s.app.dir.path().join("w.yaml");
        std::fs::write(&file, workflow("exactly once")).expect("write");
        s.app
            .cli(
                &[
                    "apply",
                    "--path",
                    &path,
                    "-f",
                    file.to_str().expect("utf-8"),
                ],
                None,
            )
            .ok();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !marker.exists() {
            assert!(
                Instant::now() < deadline,
                "the push never reached the hook\n{}",
                first.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let second = Delegate::start(&s.app, "second", &token, &[]);
        s.wait_connected(&["second"]);
        let _ = first.child.kill(); // SIGKILL
        let _ = first.child.wait();

        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if s.root
                .read_file(REPO, "main", &path)
                .is_ok_and(|t| t.contains("exactly once"))
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the change never landed\n{}\n{}",
                second.log(),
                s.app.server_log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let repo = s.root.repo_path(REPO).expect("repo");
        let log = s
            .root
            .git()
            .run(&repo, &["log", "--format=%B", "main"])
            .expect("log");
        assert_eq!(
            log.matches(&format!("ADD: {path}")).count(),
            1,
            "pushed exactly once: {log}"
        );
        // The attempt ends when the second delegate, given the task once the first's lease ran
        // out, reports it.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let activity = s.app.cli(&["--json", "sync", "activity"], None).ok().json();
            let by_second = activity["attempts"]
                .as_array()
                .expect("attempts")
                .iter()
                .any(|a| a["status"] == "pushed" && a["delegate"] == "second");
            if by_second {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the second delegate never finished the push: {activity:#}\n{}",
                second.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        // The second delegate has a clone now; no credential was left in it.
        let files = files_under(&s.app.dir.path().join("delegate-second"));
        assert!(!files.is_empty(), "the delegate keeps its clone");
        let leaked = files.iter().find(|file| {
            std::fs::read(file)
                .unwrap_or_default()
                .windows(TOKEN.len())
                .any(|w| w == TOKEN.as_bytes())
        });
        assert!(leaked.is_none(), "a secret was left in {leaked:?}");
        assert!(
            second.log().contains("whose answer was lost"),
            "the second delegate recognised the landed push by its trailer: {}",
            second.log()
        );
    });
}

#[test]
fn a_second_token_cannot_take_a_running_delegates_name_and_tokens_can_be_restricted() {
    on_each_backend!(backend, {
        let s = Setup::new(backend, &[]);
        s.connector("to-dc", &["dc"]);
        let fleet = s.token("fleet");
        let mut real = Delegate::start(&s.app, "dc-1", &fleet, &["dc"]);
        s.wait_connected(&["dc-1"]);

        // Another token's delegate under the same name is refused and stops for good (status 3,
        // "do not restart"), saying why; the real one is untouched.
        let intruder = s.token("intruder");
        let mut hijacker = Delegate::launch(&s.app, "hijacker", "dc-1", &intruder, &["dc"], None);
        let code = hijacker.wait_exit(Duration::from_secs(30));
        assert_eq!(code, Some(3), "{}", hijacker.log());
        let log = hijacker.log();
        assert!(
            log.contains("dc-1") && log.contains("fleet") && log.contains("another name"),
            "{log}"
        );
        for _ in 0..2 {
            let result = s.test("to-dc");
            assert_eq!(ran_on(&result), "dc-1", "{result}");
            assert_eq!(result["ok"], true, "{result}");
        }
        assert!(
            matches!(real.child.try_wait(), Ok(None)),
            "the real delegate keeps running\n{}",
            real.log()
        );
        let row = s
            .delegates()
            .into_iter()
            .find(|d| d["name"] == "dc-1")
            .expect("listed");
        assert_eq!(row["token"], "fleet", "{row}");
        assert_eq!(row["connected"], true, "{row}");

        // A restricted token says what it allows, at creation and in the list.
        let created = s
            .app
            .cli(
                &[
                    "delegate-token",
                    "create",
                    "dc-only",
                    "--selector",
                    "DC",
                    "--selector",
                    "linux",
                ],
                None,
            )
            .ok()
            .stdout
            .clone();
        assert!(created.contains("dc, linux"), "{created}");
        let restricted = created
            .lines()
            .find_map(|l| l.strip_prefix("Token (shown once): "))
            .expect("token shown")
            .trim()
            .to_owned();
        let listed = s
            .app
            .cli(&["delegate-token", "list"], None)
            .ok()
            .stdout
            .clone();
        let line = |name: &str| {
            listed
                .lines()
                .find(|l| l.starts_with(name))
                .unwrap_or_default()
                .to_owned()
        };
        assert!(line("dc-only").contains("dc,linux"), "{listed}");
        assert!(line("fleet").contains("(unrestricted)"), "{listed}");

        // Its delegate may not claim a selector the token does not allow: it is refused at
        // registration, says which, and stops.
        let mut outside = Delegate::start(&s.app, "dc-2", &restricted, &["dc", "eu"]);
        let code = outside.wait_exit(Duration::from_secs(30));
        assert_eq!(code, Some(3), "{}", outside.log());
        assert!(
            outside
                .log()
                .contains("allows only the selectors dc, linux; not eu"),
            "{}",
            outside.log()
        );
        s.app
            .assert_not_logged_or_stored(&[&fleet, &intruder, &restricted]);
    });
}

#[test]
fn a_killed_delegate_is_shown_disconnected_within_its_lease_and_its_tests_fail_as_no_delegate() {
    on_each_backend!(backend, {
        let s = Setup::new(backend, &["--delegate-lease", "3"]);
        s.connector("to-edge", &["edge"]);
        s.connector("to-calm", &["calm"]);
        let token = s.token("fleet");
        let mut edge = Delegate::start(&s.app, "edge-1", &token, &["edge"]);
        let mut calm = Delegate::start(&s.app, "calm-1", &token, &["calm"]);
        s.wait_connected(&["edge-1", "calm-1"]);
        let result = s.test("to-edge");
        assert_eq!(ran_on(&result), "edge-1", "{result}");

        // SIGKILL: its long poll's connection closes and it never says goodbye. A Test asked for
        // at once (possibly while the server still counts it within its lease) ends as
        // `no_delegate`, not at the Test's own time limit.
        let _ = edge.child.kill();
        let _ = edge.child.wait();
        let result = s.test("to-edge");
        assert_eq!(result["code"], "no_delegate", "{result}");
        s.wait_disconnected("edge-1");
        let result = s.test("to-edge");
        assert_eq!(result["code"], "no_delegate", "{result}");
        assert!(
            result["message"]
                .as_str()
                .is_some_and(|m| m.contains("edge") && m.contains("calm-1")),
            "names what was asked for and who is connected: {result}"
        );

        // SIGTERM: a clean stop, which tells the server it is leaving.
        let stopped = Command::new("kill")
            .args(["-TERM", &calm.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(stopped.success());
        let code = calm.wait_exit(Duration::from_secs(30));
        assert_eq!(code, Some(0), "{}", calm.log());
        assert!(
            calm.log()
                .contains("told the server this delegate is leaving"),
            "{}",
            calm.log()
        );
        s.wait_disconnected("calm-1");
        let result = s.test("to-calm");
        assert_eq!(result["code"], "no_delegate", "{result}");
    });
}

/// A delegate killed mid-operation leaves its operations' files (a decrypted key among them)
/// in `<work-dir>/tmp`; the next start removes them before anything runs, and a second
/// delegate may not share the work directory, whose files the first is using.
#[test]
fn a_delegate_wipes_its_temporary_folder_at_start_and_keeps_its_work_dir_to_itself() {
    on_each_backend!(backend, {
        let s = Setup::new(backend, &[]);
        let token = s.token("solo");
        let work = s.app.dir.path().join("delegate-solo");
        let stale = work.join("tmp").join("reposync-git-a1B2c3");
        std::fs::create_dir_all(&stale).expect("mkdir");
        let canary = "stale-key-canary-7e1d0b";
        std::fs::write(
            stale.join("id"),
            format!(
                "-----BEGIN OPENSSH PRIVATE KEY-----\n{canary}\n-----END OPENSSH PRIVATE KEY-----\n"
            ),
        )
        .expect("write");
        std::fs::write(stale.join("known_hosts"), "h ssh-ed25519 AAAA\n").expect("write");

        let first = Delegate::start(&s.app, "solo", &token, &[]);
        s.wait_connected(&["solo"]);
        assert!(!stale.exists(), "the leftovers stayed:\n{}", first.log());
        let temp = work.join("tmp");
        let mode = std::fs::metadata(&temp).expect("tmp").permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o700
        );
        let leaked = files_under(&work).into_iter().find(|file| {
            std::fs::read(file)
                .unwrap_or_default()
                .windows(canary.len())
                .any(|w| w == canary.as_bytes())
        });
        assert!(leaked.is_none(), "{leaked:?}");

        // A second delegate on the same work directory refuses to start, naming the directory,
        // and removes nothing of the first's.
        std::fs::write(temp.join("in-use"), "").expect("write");
        let mut second = Delegate::start_in(&s.app, "solo-twin", &token, &work);
        let code = second.wait_exit(Duration::from_secs(30));
        assert!(code.is_some_and(|c| c != 0), "{}", second.log());
        let log = second.log();
        assert!(log.contains(&temp.display().to_string()), "{log}");
        assert!(log.contains("in use"), "{log}");
        assert!(
            temp.join("in-use").exists(),
            "the second delegate wiped the first's files"
        );
        assert!(
            !s.delegates().iter().any(|d| d["name"] == "solo-twin"),
            "it never registered"
        );
        // The first one still works.
        s.connector("git", &[]);
        assert_eq!(s.test("git")["ok"], true, "{}", first.log());
    });
}

/// `POST /sync/enable` answers at once with a task, before any git runs: the only delegate is
/// frozen (SIGSTOP, with a lease long enough that it still counts as connected). A SIGKILL of
/// the server while that task waits leaves the task running, and the next start finishes it
/// once the delegate is back: one link, one first commit, the task succeeded.
#[test]
fn an_enable_cut_off_by_a_kill_is_finished_by_the_next_start_exactly_once() {
    on_each_backend!(backend, {
        use reposync_api::{Client, SyncEnableRequest, TaskView, decode};

        let mut s = Setup::new(backend, &["--delegate-lease", "600"]);
        s.connector("git", &[]);
        s.app.cli(&["app", "create", "Shop"], None).ok();
        let token = s.token("d1");
        let delegate = Delegate::start(&s.app, "d1", &token, &[]);
        s.wait_connected(&["d1"]);
        common::signal("STOP", delegate.child.id());

        let rt = runtime();
        let client = Client::new(&s.app.url, Some(s.app.token.clone())).expect("client");
        let request = SyncEnableRequest {
            app: Some("Shop".into()),
            connector: "git".into(),
            ..SyncEnableRequest::default()
        };
        let queued: TaskView = decode(
            rt.block_on(client.call(reqwest::Method::POST, &["sync", "enable"], &request))
                .expect("enable answers with a task"),
        )
        .expect("a task");
        assert_eq!(
            (queued.kind.as_str(), queued.status.as_str()),
            ("enable_sync", "running")
        );
        let status = s.app.cli(&["--json", "sync", "status"], None).ok().json();
        assert_eq!(status["items"], serde_json::json!([]), "not linked yet");

        s.app.kill_with_children();
        s.app.restart();
        let task = |wait_ms: &str| -> TaskView {
            decode(
                rt.block_on(client.get(
                    &["tasks", queued.id.as_str()],
                    &[("wait_ms", wait_ms.to_owned())],
                    Duration::from_secs(45),
                ))
                .expect("task"),
            )
            .expect("task view")
        };
        assert_eq!(task("0").status, "running", "the intent outlived the kill");

        common::signal("CONT", delegate.child.id());
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut done = task("30000");
        while done.status == "running" {
            assert!(
                Instant::now() < deadline,
                "the resumed enable never ended\n{}\n{}",
                s.app.server_log(),
                delegate.log()
            );
            done = task("30000");
        }
        assert_eq!(
            done.status,
            "succeeded",
            "{:?}\n{}",
            done.result,
            s.app.server_log()
        );
        let result = done.result.expect("result");
        assert_eq!(result["link"]["scope"], "app:Shop", "{result}");
        let status = s.app.cli(&["--json", "sync", "status"], None).ok().json();
        assert_eq!(
            status["items"].as_array().map(Vec::len),
            Some(1),
            "{status}"
        );

        // The first commit carries the application once.
        let index = format!("{SHOP}/Index.yaml");
        let deadline = Instant::now() + Duration::from_secs(60);
        while s.root.read_file(REPO, "main", &index).is_err() {
            assert!(
                Instant::now() < deadline,
                "the first commit never landed\n{}",
                s.app.server_log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let repo = s.root.repo_path(REPO).expect("repo");
        let commits = s
            .root
            .git()
            .run(&repo, &["log", "--format=%H", "main", "--", &index])
            .expect("log");
        assert_eq!(commits.lines().count(), 1, "{commits}");
    });
}
