//! Prints the web UI's server times (issue 15: under 50 ms for every page with 10,000
//! entities stored); asserts nothing. Run with `cargo bench -p reposync-cli --bench ui`.
//!
//! A generated tree of 10,000 entity files over 100 applications is imported; then each page
//! is fetched over loopback with a logged-in session, 30 times after a warm-up, and the
//! median and slowest times are printed. Loopback adds well under a millisecond, so these are
//! the server's times to within that.

#![allow(clippy::expect_used, clippy::unwrap_used)]

#[path = "../tests/e2e/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::TestApp;
use common::generated::generate;

const PASSWORD: &str = "the admin's long password";
const RUNS: usize = 30;

fn main() {
    let app = TestApp::spawn();
    let source = app.dir.path().join("tree");
    let files = generate(&source);
    app.cli(&["import", source.to_str().unwrap()], None).ok();
    app.cli(
        &["user", "set-password", "admin", "--password-stdin"],
        Some(&format!("{PASSWORD}\n")),
    )
    .ok();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let login = http
            .post(format!("{}/ui/login", app.url))
            .form(&[
                ("user", "admin"),
                ("password", PASSWORD),
                ("next", "/ui/setup"),
            ])
            .send()
            .await
            .unwrap();
        let cookie = login.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        println!("{files} entity files stored; {RUNS} requests a page, after one to warm up");
        println!("{:<58} {:>9} {:>9}", "page", "median", "slowest");
        for (label, path) in [
            ("Setup", "/ui/setup"),
            (
                "Source Repo Providers",
                "/ui/setup/connectors/source-repo-providers",
            ),
            (
                "Add Source Repo Provider (the form)",
                "/ui/setup/connectors/source-repo-providers/new",
            ),
            (
                "Configuration as Code: the root folder",
                "/ui/setup/config-as-code",
            ),
            (
                "  a folder of 100 applications",
                "/ui/setup/config-as-code?folder=Setup/Applications",
            ),
            (
                "  one application's Workflows (40 files)",
                "/ui/setup/config-as-code?folder=Setup/Applications/app-050/Workflows",
            ),
            (
                "  a search matching 1,100 paths, 200 shown",
                "/ui/setup/config-as-code?q=wf-1",
            ),
            (
                "  one file",
                "/ui/setup/config-as-code/file?path=Setup/Applications/app-050/Workflows/wf-7.yaml",
            ),
            ("Secrets", "/ui/setup/secrets"),
            ("Git Sync", "/ui/git-sync"),
            ("Git Sync errors", "/ui/git-sync/errors"),
            ("Webhook deliveries", "/ui/webhooks"),
            ("Delegates", "/ui/delegates"),
            ("Users", "/ui/users"),
            ("Your API tokens", "/ui/tokens"),
        ] {
            let mut times = Vec::with_capacity(RUNS);
            for run in 0..=RUNS {
                let started = Instant::now();
                let response = http
                    .get(format!("{}{path}", app.url))
                    .header("cookie", &cookie)
                    .send()
                    .await
                    .unwrap();
                let status = response.status();
                let _ = response.bytes().await.unwrap();
                assert!(status.is_success(), "{path}: {status}");
                if run > 0 {
                    times.push(started.elapsed());
                }
            }
            times.sort();
            let ms = |d: Duration| d.as_secs_f64() * 1000.0;
            println!(
                "{label:<58} {:>6.2} ms {:>6.2} ms",
                ms(times[RUNS / 2]),
                ms(times[RUNS - 1])
            );
        }
    });
}
