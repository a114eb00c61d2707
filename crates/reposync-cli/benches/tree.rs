//! Prints the configuration-as-code speed figures of issue #3; asserts nothing. Run with
//! `cargo bench -p reposync-cli --bench tree`.
//!
//! A generated tree of 10,000 entity files over 100 applications is imported through the CLI
//! and the API, imported again (nothing changes), exported, checked with `fmt --check`, and
//! backed up while the server runs.
//! The server's peak resident memory (VmHWM) is read at the end.

#![allow(clippy::expect_used, clippy::unwrap_used)]

#[path = "../tests/e2e/common/mod.rs"]
mod common;

use std::time::Instant;

use common::TestApp;
use common::generated::generate;

fn vm_hwm_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let app = TestApp::spawn();
    let source = app.dir.path().join("tree");
    let files = generate(&source);
    let source_arg = source.to_str().unwrap();

    let rate = |label: &str, seconds: f64| {
        println!(
            "{label:<36} {files} files in {:>6.2} s = {:>8.0} files/s",
            seconds,
            files as f64 / seconds
        );
    };
    let started = Instant::now();
    app.cli(&["fmt", "--check", source_arg], None).ok();
    rate("fmt --check (offline)", started.elapsed().as_secs_f64());

    let started = Instant::now();
    app.cli(&["import", source_arg], None).ok();
    rate(
        "import (CLI -> API -> SQLite)",
        started.elapsed().as_secs_f64(),
    );

    let started = Instant::now();
    let again = app.cli(&["import", source_arg], None);
    assert!(again.ok().stderr.starts_with("nothing to change"));
    rate(
        "second import (nothing changes)",
        started.elapsed().as_secs_f64(),
    );

    // The API's answer alone, without writing files: the figure the server is responsible
    // for, which a slow or shared disk does not blur.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = reposync_api::Client::new(&app.url, Some(app.token.clone())).unwrap();
    let started = Instant::now();
    let answer = runtime
        .block_on(client.get(&["export"], &[], std::time::Duration::from_secs(120)))
        .unwrap();
    rate("export (API answer only)", started.elapsed().as_secs_f64());
    assert_eq!(answer["files"].as_array().unwrap().len(), files);

    let out = app.dir.path().join("exported");
    let started = Instant::now();
    app.cli(&["export", out.to_str().unwrap()], None).ok();
    rate(
        "export (API -> CLI -> files)",
        started.elapsed().as_secs_f64(),
    );

    // A backup of the 10,000-entity store while the server runs (issue 13).
    let backup = app.dir.path().join("store.backup");
    let started = Instant::now();
    app.cli(
        &[
            "--data-dir",
            app.data_dir().to_str().unwrap(),
            "backup",
            "--out",
            backup.to_str().unwrap(),
        ],
        None,
    )
    .ok();
    println!(
        "{:<36} {files} files in {:>6.2} s ({:.1} MiB)",
        "backup (VACUUM INTO, server running)",
        started.elapsed().as_secs_f64(),
        std::fs::metadata(&backup).unwrap().len() as f64 / (1024.0 * 1024.0)
    );

    println!(
        "{:<36} {:.1} MiB",
        "server peak resident memory (VmHWM)",
        vm_hwm_kib(app.pid()) as f64 / 1024.0
    );
}
