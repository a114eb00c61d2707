//! Prints the Git → reposync speed figures of issue #5; asserts nothing. Run with
//! `cargo bench -p reposync-cli --bench inbound`.
//!
//! Against the release server and a local HTTPS git server:
//! - webhook intake: signed Cloud deliveries sent by 16 concurrent clients, each stored in a
//!   committed transaction before the answer: first to a branch no link syncs, then each
//!   announcing a new head of the linked branch (queued, and read meanwhile);
//! - end to end: a one-file commit on the branch, then its webhook; the time from sending the
//!   webhook until the API shows the new content, on a warm clone (40 rounds);
//! - a first sync of 10,000 entity files: one commit bringing 100 application folders of 100
//!   files each, read and applied (each application created and linked); the apply time is
//!   the server's own figure, after the fetch;
//! - the server's peak resident memory (VmHWM).

#![allow(clippy::expect_used, clippy::unwrap_used)]

#[path = "../tests/e2e/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::git_fixture::{Fixture, REPO, SHOP, cloud_push_to, workflow};
use serde_json::Value;

fn vm_hwm_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn cloud_push(old: &str, new: &str) -> Vec<u8> {
    cloud_push_to("main", old, new)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn main() {
    // Intake is measured at full speed: the rate limit per webhook URL is off.
    let f = Fixture::https_with(
        &[("README.md", "bench\n")],
        &["--poll-interval", "0", "--webhook-rate-limit", "0"],
    );
    let (token, secret) = f.webhook_credentials();
    f.app
        .cli(
            &["sync", "enable", "--app", "Shop", "--connector", "git"],
            None,
        )
        .ok();
    f.wait_pushed();
    let url = format!("{}/api/webhooks/git/{token}", f.app.url);
    let http = reqwest::Client::new();
    let send = |body: Vec<u8>, id: String| {
        let signature = reposync_bitbucket::sign(secret.as_bytes(), &body);
        http.post(&url)
            .header("Content-Type", "application/json")
            .header("X-Event-Key", "repo:push")
            .header("X-Request-UUID", id)
            .header("X-Hub-Signature", signature)
            .body(body)
            .send()
    };

    // Intake: deliveries per second, each stored in a committed transaction before the answer.
    // First to a branch no link syncs (stored, nothing to read), then to the linked branch,
    // whose reads then run on the same two cores, against a git server that is here too.
    let head = f.head().unwrap();
    for (label, branch) in [
        (
            "to a branch no link syncs (stored and ignored)",
            "elsewhere",
        ),
        (
            "to the linked branch (stored, heads queued and read)",
            "main",
        ),
    ] {
        let total = 4_000usize;
        let bodies: Arc<Vec<Vec<u8>>> = Arc::new(
            (0..total)
                .map(|n| cloud_push_to(branch, &head, &format!("{:040x}", n + 1)))
                .collect(),
        );
        let (accepted, elapsed) = intake(&f, &http, &url, &secret, bodies, branch);
        println!(
            "webhook intake {label}: {accepted} of {total} accepted in {:.2} s: {:.0} deliveries/s (16 concurrent senders)",
            elapsed.as_secs_f64(),
            accepted as f64 / elapsed.as_secs_f64()
        );
    }
    // Let the inbox settle on the real head before measuring latency.
    std::thread::sleep(Duration::from_secs(2));

    // End to end: one-file push → visible through the API.
    let path = format!("{SHOP}/Workflows/latency.yaml");
    let mut latencies = Vec::new();
    for round in 0..40 {
        let old = f.head().unwrap();
        let text = workflow(&format!("round {round}"));
        let new = f
            .root
            .commit(REPO, "main", &[(path.as_str(), text.as_str())], "bench")
            .unwrap();
        let started = Instant::now();
        f.rt.block_on(send(cloud_push(&old, &new), format!("latency-{round}")))
            .unwrap();
        let query = [("path", path.clone())];
        loop {
            let answer: Value = f.rt.block_on(async {
                http.get(format!("{}/api/v1/entities", f.app.url))
                    .bearer_auth(&f.app.token)
                    .query(&query)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap()
            });
            if answer["content"]
                .as_str()
                .is_some_and(|c| c.contains(&format!("round {round}\n")))
            {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "not applied");
            std::thread::sleep(Duration::from_millis(2));
        }
        latencies.push(started.elapsed());
    }
    latencies.sort();
    println!(
        "one-file push → visible through the API: p50 {} ms, p99 {} ms, max {} ms ({} pushes, warm clone)",
        percentile(&latencies, 0.5).as_millis(),
        percentile(&latencies, 0.99).as_millis(),
        latencies.last().unwrap().as_millis(),
        latencies.len()
    );

    // First sync of 10,000 files: 100 new application folders in one commit.
    let mut files: Vec<(String, String)> = Vec::new();
    for app in 0..100 {
        let folder = format!("Setup/Applications/App {app:03}");
        files.push((
            format!("{folder}/Index.yaml"),
            "harnessApiVersion: '1.0'\ntype: APPLICATION\n".into(),
        ));
        files.push((
            format!("{folder}/Services/api/Index.yaml"),
            "harnessApiVersion: '1.0'\ntype: SERVICE\ndeploymentType: KUBERNETES\n".into(),
        ));
        for n in 0..98 {
            files.push((
                format!("{folder}/Workflows/workflow {n:02}.yaml"),
                format!(
                    "harnessApiVersion: '1.0'\ntype: BASIC\ndescription: workflow {n} of app {app}\nphases:\n- type: KUBERNETES\n  serviceName: api\n"
                ),
            ));
        }
    }
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_str()))
        .collect();
    let old = f.head().unwrap();
    let new = f
        .root
        .commit(REPO, "main", &refs, "100 applications")
        .unwrap();
    let started = Instant::now();
    f.rt.block_on(send(cloud_push(&old, &new), "big".into()))
        .unwrap();
    let last = "Setup/Applications/App 099/Workflows/workflow 97.yaml";
    loop {
        if f.app.cli(&["get", last], None).code == 0 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(300), "not applied");
        std::thread::sleep(Duration::from_millis(20));
    }
    let total_time = started.elapsed();
    let log = strip_ansi(&f.app.server_log());
    let apply_ms = log
        .lines()
        .filter(|l| l.contains("applied a commit from Git") && l.contains(&new))
        .find_map(|l| {
            let at = l.find("apply_ms=")? + "apply_ms=".len();
            l[at..].split_whitespace().next()?.parse::<u64>().ok()
        });
    let fetch_ms = log
        .lines()
        .filter(|l| l.contains("read the branch") && l.contains(&new))
        .find_map(|l| {
            let at = l.find("fetch_ms=")? + "fetch_ms=".len();
            l[at..].split_whitespace().next()?.parse::<u64>().ok()
        });
    println!(
        "first sync of {} files (100 new applications): applied in {} ms after a fetch of {} ms; {} ms from the webhook until the last file was visible",
        files.len(),
        apply_ms.map_or("?".into(), |m| m.to_string()),
        fetch_ms.map_or("?".into(), |m| m.to_string()),
        total_time.as_millis()
    );
    println!(
        "server peak resident memory (VmHWM)      {:.1} MiB",
        vm_hwm_kib(f.app.pid()) as f64 / 1024.0
    );
}

/// Sends every body once, 16 at a time; returns how many got 202 and how long it took.
fn intake(
    f: &Fixture,
    http: &reqwest::Client,
    url: &str,
    secret: &str,
    bodies: Arc<Vec<Vec<u8>>>,
    tag: &str,
) -> (usize, Duration) {
    let total = bodies.len();
    let started = Instant::now();
    let accepted = f.rt.block_on(async {
        let mut senders = tokio::task::JoinSet::new();
        for worker in 0..16 {
            let bodies = Arc::clone(&bodies);
            let (http, url, secret, tag) = (
                http.clone(),
                url.to_owned(),
                secret.to_owned(),
                tag.to_owned(),
            );
            senders.spawn(async move {
                let mut ok = 0usize;
                for n in (worker..total).step_by(16) {
                    let signature = reposync_bitbucket::sign(secret.as_bytes(), &bodies[n]);
                    let response = http
                        .post(&url)
                        .header("Content-Type", "application/json")
                        .header("X-Event-Key", "repo:push")
                        .header("X-Request-UUID", format!("bench-{tag}-{n}"))
                        .header("X-Hub-Signature", signature)
                        .body(bodies[n].clone())
                        .send()
                        .await
                        .unwrap();
                    let status = response.status().as_u16();
                    if status == 202 {
                        ok += 1;
                    } else {
                        let text = response.text().await.unwrap_or_default();
                        eprintln!("delivery {n}: {status} {text}");
                    }
                }
                ok
            });
        }
        let mut accepted = 0;
        while let Some(ok) = senders.join_next().await {
            accepted += ok.unwrap();
        }
        accepted
    });
    (accepted, started.elapsed())
}

/// The log without terminal colour codes, should the server write any.
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
