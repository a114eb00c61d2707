//! Prints the figures of issue 17 for each way of running the store; asserts only that the
//! work was done. Run with
//! `REPOSYNC_TEST_POSTGRES=postgres://postgres@127.0.0.1:PORT cargo bench -p reposync-cli --bench backends`
//! (without the variable only SQLite is measured).
//!
//! The same run, against release builds of `reposync serve` with their built-in delegates
//! and a local HTTPS git server, on:
//! - SQLite, one server;
//! - PostgreSQL, one server;
//! - PostgreSQL, two replicas sharing the database: senders and writers split between them,
//!   and each webhook sent to one replica while its effect is looked for through the other.
//!
//! Measured:
//! - webhook intake: 2,000 signed Cloud deliveries by 16 concurrent senders, each stored in a
//!   committed transaction before its answer (to a branch no link syncs: intake alone);
//! - API writes: 400 entity writes into a linked application by 16 concurrent clients, each
//!   committed with its changeset (the outbox pushes them meanwhile, on the same cores);
//! - webhook to visible: a one-file commit, then its webhook; the time until the API shows the
//!   new content (40 rounds; p50 and p99).

#![allow(clippy::expect_used, clippy::unwrap_used)]

#[path = "../tests/e2e/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::git_fixture::{Fixture, REPO, SHOP, cloud_push_to, workflow};
use common::{Backend, TestApp};
use serde_json::Value;

const DELIVERIES: usize = 2_000;
const WRITES: usize = 400;
const ROUNDS: usize = 40;
const SENDERS: usize = 16;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// A setup measured: the fixture's server, and the replicas requests are spread over (the
/// fixture's alone, or it and a second one on the same database).
struct Setup {
    label: &'static str,
    f: Fixture,
    others: Vec<TestApp>,
}

impl Setup {
    fn start(label: &'static str, backend: Backend, replicas: usize) -> Setup {
        let args = ["--poll-interval", "0", "--webhook-rate-limit", "0"];
        let f = Fixture::https_on(backend, &[("README.md", "bench\n")], &args);
        let others = (1..replicas).map(|_| f.app.spawn_replica(&args)).collect();
        f.app
            .cli(
                &["sync", "enable", "--app", "Shop", "--connector", "git"],
                None,
            )
            .ok();
        f.wait_pushed();
        Setup { label, f, others }
    }

    /// The base URLs of every replica, the fixture's first.
    fn urls(&self) -> Vec<String> {
        std::iter::once(self.f.app.url.clone())
            .chain(self.others.iter().map(|o| o.url.clone()))
            .collect()
    }
}

fn main() {
    let mut setups = vec![("SQLite, one server", Backend::Sqlite, 1)];
    if reposync_testkit::TestPostgres::available() {
        setups.push(("PostgreSQL, one server", Backend::Postgres, 1));
        setups.push(("PostgreSQL, two replicas", Backend::Postgres, 2));
    } else {
        println!("REPOSYNC_TEST_POSTGRES is unset: measuring SQLite only");
    }
    for (label, backend, replicas) in setups {
        let setup = Setup::start(label, backend, replicas);
        measure(&setup);
    }
}

fn measure(setup: &Setup) {
    let f = &setup.f;
    let (token, secret) = f.webhook_credentials();
    let urls = setup.urls();
    let http = reqwest::Client::new();

    // Webhook intake.
    let head = f.head().unwrap();
    let bodies: Arc<Vec<Vec<u8>>> = Arc::new(
        (0..DELIVERIES)
            .map(|n| cloud_push_to("elsewhere", &head, &format!("{:040x}", n + 1)))
            .collect(),
    );
    let hooks: Vec<String> = urls
        .iter()
        .map(|url| format!("{url}/api/webhooks/git/{token}"))
        .collect();
    let started = Instant::now();
    let accepted = f.rt.block_on(spread(SENDERS, DELIVERIES, |n| {
        let body = bodies[n].clone();
        let signature = reposync_bitbucket::sign(secret.as_bytes(), &body);
        http.post(&hooks[n % hooks.len()])
            .header("Content-Type", "application/json")
            .header("X-Event-Key", "repo:push")
            .header("X-Request-UUID", format!("bench-{n}"))
            .header("X-Hub-Signature", signature)
            .body(body)
            .send()
    }));
    let elapsed = started.elapsed();
    assert_eq!(accepted, DELIVERIES, "every delivery accepted");
    println!(
        "{}: webhook intake {:.0} deliveries/s ({DELIVERIES} in {:.2} s, {SENDERS} senders)",
        setup.label,
        DELIVERIES as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64()
    );

    // API writes, each with its changeset.
    let entities: Vec<String> = urls
        .iter()
        .map(|url| format!("{url}/api/v1/entities"))
        .collect();
    let admin = f.app.token.clone();
    let started = Instant::now();
    let written = f.rt.block_on(spread(SENDERS, WRITES, |n| {
        http.put(&entities[n % entities.len()])
            .bearer_auth(&admin)
            .query(&[("path", format!("{SHOP}/Workflows/bench-{n:04}.yaml"))])
            .json(&serde_json::json!({"content": workflow(&format!("write {n}"))}))
            .send()
    }));
    let elapsed = started.elapsed();
    assert_eq!(written, WRITES, "every write accepted");
    println!(
        "{}: API writes {:.0} writes/s ({WRITES} in {:.2} s, {SENDERS} clients, each with its changeset)",
        setup.label,
        WRITES as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64()
    );
    f.wait_pushed();

    // Webhook to visible: sent to the first replica, looked for through the last.
    let path = format!("{SHOP}/Workflows/latency.yaml");
    let send_to = &hooks[0];
    let look_at = entities.last().unwrap();
    let mut latencies = Vec::new();
    for round in 0..ROUNDS {
        let old = f.head().unwrap();
        let text = workflow(&format!("round {round}"));
        let new = f
            .root
            .commit(REPO, "main", &[(path.as_str(), text.as_str())], "bench")
            .unwrap();
        let body = cloud_push_to("main", &old, &new);
        let signature = reposync_bitbucket::sign(secret.as_bytes(), &body);
        let started = Instant::now();
        let status = f.rt.block_on(async {
            http.post(send_to)
                .header("Content-Type", "application/json")
                .header("X-Event-Key", "repo:push")
                .header("X-Request-UUID", format!("latency-{round}"))
                .header("X-Hub-Signature", signature)
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
        });
        assert_eq!(status.as_u16(), 202);
        loop {
            let answer: Value = f.rt.block_on(async {
                http.get(look_at)
                    .bearer_auth(&admin)
                    .query(&[("path", path.clone())])
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
            assert!(started.elapsed() < Duration::from_secs(60), "not applied");
            std::thread::sleep(Duration::from_millis(2));
        }
        latencies.push(started.elapsed());
    }
    latencies.sort();
    println!(
        "{}: webhook to visible p50 {} ms, p99 {} ms ({ROUNDS} one-file pushes{})",
        setup.label,
        percentile(&latencies, 0.5).as_millis(),
        percentile(&latencies, 0.99).as_millis(),
        if urls.len() > 1 {
            ", sent to one replica, read through the other"
        } else {
            ""
        }
    );
}

/// Sends `total` requests, `senders` at a time; how many answered 2xx.
async fn spread<F, R>(senders: usize, total: usize, request: F) -> usize
where
    F: Fn(usize) -> R + Sync,
    R: std::future::Future<Output = reqwest::Result<reqwest::Response>>,
{
    let next = std::sync::atomic::AtomicUsize::new(0);
    let worker = || async {
        let mut ok = 0;
        loop {
            let n = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if n >= total {
                return ok;
            }
            let response = request(n).await.unwrap();
            if response.status().is_success() {
                ok += 1;
            } else {
                let status = response.status();
                eprintln!(
                    "request {n}: {status} {}",
                    response.text().await.unwrap_or_default()
                );
            }
        }
    };
    futures_util::future::join_all((0..senders).map(|_| worker()))
        .await
        .into_iter()
        .sum()
}
