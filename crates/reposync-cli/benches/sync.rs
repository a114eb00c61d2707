//! Prints the Git Sync speed figures of issue #4; asserts nothing. Run with
//! `cargo bench -p reposync-cli --bench sync`.
//!
//! Against a local HTTPS git server (git http-backend behind TLS): the latency from one API
//! change to its commit being visible on the server, on a warm clone (median of 20); then
//! 1,000 changes through the API as fast as one client sends them, the time from the last
//! change until all are pushed, and the number of commits it took. The server's peak
//! resident memory (VmHWM) is read at the end.

#![allow(clippy::expect_used, clippy::unwrap_used)]

#[path = "../tests/e2e/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::TestApp;
use reposync_testkit::{GitHttpsServer, RepoRoot, TestCa};

const REPO: &str = "acme/config.git";
const SHOP: &str = "Setup/Applications/Shop";

fn vm_hwm_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn workflow(n: usize, round: usize) -> String {
    format!(
        "harnessApiVersion: '1.0'\ntype: BASIC\ndescription: change {n} round {round}\norchestration:\n  type: BASIC_WORKFLOW\n"
    )
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let root = RepoRoot::new().unwrap();
    root.create_repo(REPO, "main", &[("README.md", "bench\n")])
        .unwrap();
    let ca = TestCa::new("bench CA").unwrap();
    let server = rt
        .block_on(GitHttpsServer::start(&root, &ca, "u", "bench-token-123456"))
        .unwrap();
    let app = TestApp::spawn();
    let ca_file = app.dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.cert_pem()).unwrap();
    app.cli(
        &["secret", "create", "t", "--value-stdin"],
        Some("bench-token-123456"),
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
    app.cli(&["app", "create", "Shop"], None).ok();
    app.cli(
        &["sync", "enable", "--app", "Shop", "--connector", "git"],
        None,
    )
    .ok();
    let client = reposync_api::Client::new(&app.url, Some(app.token.clone())).unwrap();
    let apply = |path: String, content: String| {
        let client = &client;
        async move {
            client
                .send(
                    reqwest::Method::PUT,
                    &["api", "v1", "entities"],
                    &[("path", path)],
                    Some(&reposync_api::ApplyRequest { content }),
                    Duration::from_secs(30),
                )
                .await
                .unwrap();
        }
    };
    let head = || root.head(REPO, "main").unwrap();
    let wait_for_new_head = |old: &Option<String>, limit: Duration| {
        let started = Instant::now();
        loop {
            let now = head();
            if now != *old {
                return now;
            }
            assert!(started.elapsed() < limit, "nothing pushed");
            std::thread::sleep(Duration::from_millis(2));
        }
    };
    // Warm the clone: the first commit of the application.
    let first = wait_for_new_head(&None, Duration::from_secs(30));
    let mut previous = first;
    std::thread::sleep(Duration::from_millis(300));

    let mut latencies = Vec::new();
    for n in 0..20 {
        let before = previous.clone();
        let started = Instant::now();
        rt.block_on(apply(
            format!("{SHOP}/Workflows/latency-{n}.yaml"),
            workflow(n, 0),
        ));
        previous = wait_for_new_head(&before, Duration::from_secs(30));
        latencies.push(started.elapsed());
        std::thread::sleep(Duration::from_millis(100));
    }
    latencies.sort();
    println!(
        "one change -> visible on the server      median {:>6.0} ms (min {:.0}, max {:.0}, 20 changes, warm clone)",
        latencies[10].as_secs_f64() * 1000.0,
        latencies[0].as_secs_f64() * 1000.0,
        latencies[19].as_secs_f64() * 1000.0
    );

    let before_burst = previous.clone().unwrap();
    let started = Instant::now();
    rt.block_on(async {
        for n in 0..1000 {
            apply(
                format!("{SHOP}/Workflows/burst-{:04}.yaml", n % 250),
                workflow(n, n / 250),
            )
            .await;
        }
    });
    let sent = started.elapsed();
    let last_change = Instant::now();
    let repo = root.repo_path(REPO).unwrap();
    let done = loop {
        let status = app.cli(&["--json", "sync", "status"], None).json();
        let waiting = status["items"][0]["waiting"].as_u64().unwrap_or(1);
        if waiting == 0 {
            break last_change.elapsed();
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let commits: usize = root
        .git()
        .run(
            &repo,
            &["rev-list", "--count", &format!("{before_burst}..main")],
        )
        .unwrap()
        .parse()
        .unwrap();
    println!(
        "1,000 API changes sent in {:.2} s; all pushed {:.2} s after the last one, in {commits} commits",
        sent.as_secs_f64(),
        done.as_secs_f64()
    );
    println!(
        "server peak resident memory (VmHWM)      {:.1} MiB",
        vm_hwm_kib(app.pid()) as f64 / 1024.0
    );
}
