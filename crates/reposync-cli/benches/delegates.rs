//! Prints the delegate figures of issue #6; asserts nothing. Run with
//! `cargo bench -p reposync-cli --bench delegates`.
//!
//! Release builds of `reposync serve` and `reposync delegate` on loopback, with a local HTTPS
//! git server (git http-backend behind TLS):
//! - task throughput: 1,000 connection Tests queued at once through the API, run by two remote
//!   delegates (8 slots each), until all have finished; once with Tests whose remote refuses
//!   the connection at once (the smallest task: the delegate's git fails fast), once against
//!   the git server (a real `git ls-remote` each);
//! - the time a Test takes end to end through the API (median of 40), with the built-in
//!   delegate and with one remote delegate, and the difference;
//! - how long an idle, long-polling remote delegate takes to pick up a new task (the task's
//!   `queued_ms`, median of 40).

#![allow(clippy::expect_used, clippy::unwrap_used)]

#[path = "../tests/e2e/common/mod.rs"]
mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::TestApp;
use common::git_fixture::{REPO, TOKEN, USER, runtime};
use reposync_testkit::{GitHttpsServer, RepoRoot, TestCa};
use serde_json::{Value, json};

fn start_delegate(app: &TestApp, name: &str, token: &str) -> Child {
    let mut command = Command::new(common::binary());
    common::hermetic(&mut command, app.dir.path());
    command
        .env("REPOSYNC_DELEGATE_TOKEN", token)
        .args([
            "delegate",
            "--server",
            &app.url,
            "--name",
            name,
            "--work-dir",
        ])
        .arg(app.dir.path().join(format!("delegate-{name}")))
        .args(["--concurrency", "8"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command.spawn().unwrap()
}

struct Bench {
    app: TestApp,
    http: reqwest::Client,
    rt: tokio::runtime::Runtime,
}

impl Bench {
    fn api(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        self.rt.block_on(async {
            let mut request = self
                .http
                .request(method, format!("{}{path}", self.app.url))
                .bearer_auth(&self.app.token);
            if let Some(body) = body {
                request = request.json(&body);
            }
            let response = request.send().await.unwrap();
            response.json().await.unwrap_or(Value::Null)
        })
    }

    fn connector(&self, name: &str, url: &str, ca: &std::path::Path) {
        self.app
            .cli(
                &[
                    "connector",
                    "add",
                    // The bench times the Tests it queues itself.
                    "--no-test",
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
                    ca.to_str().unwrap(),
                ],
                None,
            )
            .ok();
    }

    /// Queues `count` Tests of a connector at once and waits for all; tasks per second.
    fn throughput(&self, connector: &str, count: usize) -> (f64, usize) {
        let started = Instant::now();
        let ids: Vec<String> = self.rt.block_on(async {
            let mut queued = tokio::task::JoinSet::new();
            for _ in 0..count {
                let request = self
                    .http
                    .post(format!(
                        "{}/api/v1/connectors/{connector}/test",
                        self.app.url
                    ))
                    .bearer_auth(&self.app.token)
                    .json(&json!({}));
                queued.spawn(async move {
                    let task: Value = request.send().await.unwrap().json().await.unwrap();
                    task["id"].as_str().unwrap().to_owned()
                });
            }
            let mut ids = Vec::new();
            while let Some(id) = queued.join_next().await {
                ids.push(id.unwrap());
            }
            ids
        });
        let queued_in = started.elapsed();
        let mut failed = 0;
        for id in &ids {
            let task = self.api(
                reqwest::Method::GET,
                &format!("/api/v1/tasks/{id}?wait_ms=60000"),
                None,
            );
            assert!(
                task["status"] == "succeeded" || task["status"] == "failed",
                "{task}"
            );
            if task["status"] == "failed" {
                failed += 1;
            }
        }
        let total = started.elapsed();
        println!(
            "  ({count} queued through the API in {:.2} s, all finished after {:.2} s)",
            queued_in.as_secs_f64(),
            total.as_secs_f64()
        );
        (count as f64 / total.as_secs_f64(), failed)
    }

    /// Median end-to-end duration of a Test through the API, and median queue wait.
    fn test_latency(&self, connector: &str, rounds: usize) -> (Duration, u64) {
        let mut durations = Vec::new();
        let mut waits = Vec::new();
        for _ in 0..rounds {
            let started = Instant::now();
            let task = self.api(
                reqwest::Method::POST,
                &format!("/api/v1/connectors/{connector}/test"),
                Some(json!({})),
            );
            let id = task["id"].as_str().unwrap();
            let done = self.api(
                reqwest::Method::GET,
                &format!("/api/v1/tasks/{id}?wait_ms=60000"),
                None,
            );
            durations.push(started.elapsed());
            waits.push(done["queued_ms"].as_u64().unwrap_or(0));
            assert_eq!(done["status"], "succeeded", "{done}");
            // An idle delegate: let its long poll settle before the next task.
            std::thread::sleep(Duration::from_millis(50));
        }
        durations.sort();
        waits.sort_unstable();
        (durations[durations.len() / 2], waits[waits.len() / 2])
    }
}

fn setup(serve_args: &[&str], rt: tokio::runtime::Runtime) -> (Bench, RepoRoot, GitHttpsServer) {
    let root = RepoRoot::new().unwrap();
    root.create_repo(REPO, "main", &[("README.md", "x\n")])
        .unwrap();
    let ca = TestCa::new("bench CA").unwrap();
    let server = rt
        .block_on(GitHttpsServer::start(&root, &ca, USER, TOKEN))
        .unwrap();
    let app = TestApp::spawn_with(serve_args);
    let ca_file = app.dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.cert_pem()).unwrap();
    app.cli(
        &["secret", "create", "bb-token", "--value-stdin"],
        Some(TOKEN),
    )
    .ok();
    let bench = Bench {
        app,
        http: reqwest::Client::new(),
        rt,
    };
    bench.connector("git", &server.repo_url(REPO), &ca_file);
    bench.connector("closed", "https://127.0.0.1:9/acme/config.git", &ca_file);
    (bench, root, server)
}

fn main() {
    // The built-in delegate first: the reference for a Test's duration.
    let (builtin, _root, _server) = setup(&[], runtime());
    let (builtin_test, _) = builtin.test_latency("git", 40);
    drop(builtin);

    let (b, _root, _server) = setup(&["--no-builtin-delegate"], runtime());
    let token = b
        .app
        .cli(&["--json", "delegate-token", "create", "bench"], None)
        .ok()
        .json()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut first = start_delegate(&b.app, "one", &token);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !b
        .api(reqwest::Method::GET, "/api/v1/delegates", None)
        .to_string()
        .contains("\"connected\":true")
    {
        assert!(Instant::now() < deadline, "the delegate never connected");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (remote_test, pickup) = b.test_latency("git", 40);
    println!(
        "a Test end to end through the API: built-in delegate median {} ms, remote delegate median {} ms: {} ms added by the remote delegate on loopback",
        builtin_test.as_millis(),
        remote_test.as_millis(),
        remote_test.as_millis() as i128 - builtin_test.as_millis() as i128
    );
    println!("an idle long-polling delegate picked a new task up after a median of {pickup} ms");

    let mut second = start_delegate(&b.app, "two", &token);
    std::thread::sleep(Duration::from_secs(1));
    let (fast, failed) = b.throughput("closed", 1_000);
    println!(
        "throughput, 1,000 smallest tasks (a Test whose remote refuses at once) over two delegates: {fast:.0} tasks/s ({failed} failed, as they should)"
    );
    let (real, failed) = b.throughput("git", 1_000);
    println!(
        "throughput, 1,000 Tests against the HTTPS git server (git ls-remote each) over two delegates: {real:.0} tasks/s ({failed} failed)"
    );
    let _ = first.kill();
    let _ = second.kill();
    let _ = first.wait();
    let _ = second.wait();
}
