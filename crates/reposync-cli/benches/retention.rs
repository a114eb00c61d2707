//! Prints how much the database grows per 10,000 webhook deliveries, with the delivery log
//! unpruned and then pruned; asserts nothing. Run with
//! `cargo bench -p reposync-cli --bench retention`.
//!
//! Against the release server: signed Cloud deliveries to a branch no link syncs (each
//! stored in the delivery log, then ignored). The live data is measured as the size of a
//! backup (`VACUUM INTO` keeps only what is in use); the footprint as the size of the
//! database file and its WAL. SQLite does not give pages back to the file system when rows
//! are deleted; it reuses them, so pruning shows as a footprint that stops growing.

#![allow(clippy::expect_used, clippy::unwrap_used)]

#[path = "../tests/e2e/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::git_fixture::{Fixture, cloud_push_to};

const DELIVERIES: usize = 10_000;

/// The live data (a backup's size) and the footprint (database and WAL files), in bytes.
fn sizes(f: &Fixture, label: &str) -> (u64, u64) {
    let backup = f.app.dir.path().join(format!("backup-{label}.db"));
    let data_dir = f.app.data_dir();
    f.app
        .cli(
            &[
                "--data-dir",
                data_dir.to_str().unwrap(),
                "backup",
                "--out",
                backup.to_str().unwrap(),
            ],
            None,
        )
        .ok();
    let live = std::fs::metadata(&backup).unwrap().len();
    let footprint = ["reposync.db", "reposync.db-wal"]
        .iter()
        .filter_map(|name| std::fs::metadata(data_dir.join(name)).ok())
        .map(|m| m.len())
        .sum();
    (live, footprint)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn growth(before: (u64, u64), after: (u64, u64)) -> String {
    format!(
        "live data {:+.2} MiB ({:.2} → {:.2}), file and WAL {:+.2} MiB ({:.2} → {:.2})",
        mib(after.0) - mib(before.0),
        mib(before.0),
        mib(after.0),
        mib(after.1) - mib(before.1),
        mib(before.1),
        mib(after.1)
    )
}

fn deliver(f: &Fixture, url: &str, secret: &str, round: &str) {
    let http = reqwest::Client::new();
    let started = Instant::now();
    f.rt.block_on(async {
        let mut senders = tokio::task::JoinSet::new();
        for worker in 0..8 {
            let (http, url, secret, round) = (
                http.clone(),
                url.to_owned(),
                secret.to_owned(),
                round.to_owned(),
            );
            senders.spawn(async move {
                for n in (worker..DELIVERIES).step_by(8) {
                    let body = cloud_push_to(
                        "elsewhere",
                        &format!("{:040x}", n + 2),
                        &format!("{:040x}", n + 1),
                    );
                    let signature = reposync_bitbucket::sign(secret.as_bytes(), &body);
                    let status = http
                        .post(&url)
                        .header("Content-Type", "application/json")
                        .header("X-Event-Key", "repo:push")
                        .header("X-Request-UUID", format!("{round}-{n}"))
                        .header("X-Hub-Signature", signature)
                        .body(body)
                        .send()
                        .await
                        .unwrap()
                        .status();
                    assert_eq!(status.as_u16(), 202);
                }
            });
        }
        while let Some(done) = senders.join_next().await {
            done.unwrap();
        }
    });
    println!(
        "  {DELIVERIES} deliveries sent in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// Waits until the server has pruned the delivery log `times` times since it started.
fn wait_pruned(f: &Fixture, times: usize) {
    let deadline = Instant::now() + Duration::from_secs(180);
    while f
        .app
        .server_log()
        .matches("pruned the webhook delivery log")
        .count()
        < times
    {
        assert!(
            Instant::now() < deadline,
            "the delivery log was never pruned"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn main() {
    let unpruned = [
        "--poll-interval",
        "0",
        "--webhook-rate-limit",
        "0",
        "--webhook-deliveries-kept",
        "1000000",
    ];
    let mut f = Fixture::https_with(&[("README.md", "bench\n")], &unpruned);
    let (token, secret) = f.webhook_credentials();
    let url = format!("{}/api/webhooks/git/{token}", f.app.url);

    println!("Delivery log kept whole (--webhook-deliveries-kept 1000000):");
    let start = sizes(&f, "start");
    deliver(&f, &url, &secret, "first");
    let after_first = sizes(&f, "first");
    println!(
        "  growth per {DELIVERIES} deliveries: {}",
        growth(start, after_first)
    );

    println!("Delivery log pruned (the default: 1,000 kept per connector, pruned every minute):");
    f.app.stop();
    f.app.restart_with(&unpruned[..4]);
    wait_pruned(&f, 1);
    let pruned = sizes(&f, "pruned");
    println!("  after the first pruning: {}", growth(after_first, pruned));
    deliver(&f, &url, &secret, "second");
    wait_pruned(&f, 2);
    let after_second = sizes(&f, "second");
    println!(
        "  growth per {DELIVERIES} further deliveries, pruned: {}",
        growth(pruned, after_second)
    );
}
