//! Prints the speed figures issue #2 asks for; it asserts nothing, since the machines are
//! shared and noisy. Run with `cargo bench -p reposync-cli --bench speed`.
//!
//! - time from starting `reposync serve` to the first answer of `/healthz` (first start on an
//!   empty data directory, and a restart);
//! - resident memory of the idle server;
//! - `reposync connector test` end to end through the CLI, over HTTPS and over SSH, on
//!   loopback.

#![allow(clippy::expect_used, clippy::unwrap_used)]

#[path = "../tests/e2e/common/mod.rs"]
mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{TestApp, binary, hermetic, ssh_keygen};
use reposync_testkit::{GitHttpsServer, RepoRoot, SshServer, TestCa, ensure_git_user};

fn healthz_ok(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.1 200")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Milliseconds from spawning `serve` to the first 200 from /healthz.
fn time_to_ready(data_dir: &std::path::Path) -> (f64, std::process::Child) {
    let port = free_port();
    let mut command = Command::new(binary());
    hermetic(&mut command, data_dir.parent().unwrap());
    command
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(data_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let started = Instant::now();
    let child = command.spawn().unwrap();
    while !healthz_ok(port) {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "server never became ready"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    (started.elapsed().as_secs_f64() * 1000.0, child)
}

fn stop(mut child: std::process::Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn summary(label: &str, mut samples: Vec<f64>) {
    samples.sort_by(|a, b| a.total_cmp(b));
    let pick = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    println!(
        "{label:<44} n={:<3} median={:>7.1} ms  p90={:>7.1} ms  min={:>7.1} ms  max={:>7.1} ms",
        samples.len(),
        pick(0.5),
        pick(0.9),
        samples[0],
        samples[samples.len() - 1]
    );
}

fn main() {
    let runs = 10;

    // Start-up.
    let mut first = Vec::new();
    let mut again = Vec::new();
    let mut idle_rss = 0;
    for _ in 0..5 {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let (ms, child) = time_to_ready(&data);
        first.push(ms);
        stop(child);
        let (ms, child) = time_to_ready(&data);
        again.push(ms);
        std::thread::sleep(Duration::from_secs(3));
        idle_rss = idle_rss.max(rss_kib(child.id()));
        stop(child);
    }
    summary("serve ready (first start, empty data dir)", first);
    summary("serve ready (restart)", again);
    println!(
        "{:<44} {:.1} MiB (largest of 5, after 3 s idle)",
        "idle resident memory",
        idle_rss as f64 / 1024.0
    );

    // Tests through the CLI.
    ensure_git_user().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let root = RepoRoot::new().unwrap();
    root.create_repo(
        "acme/config.git",
        "main",
        &[("Setup/Defaults.yaml", "x: 1\n")],
    )
    .unwrap();
    let ca = TestCa::new("bench CA").unwrap();
    let https = rt
        .block_on(GitHttpsServer::start(
            &root,
            &ca,
            "jdoe",
            "bench-token-123456",
        ))
        .unwrap();
    let app = TestApp::spawn();
    let keys = app.dir.path().join("keys");
    std::fs::create_dir(&keys).unwrap();
    let (key, public) = ssh_keygen(&keys, "ed25519", &["-t", "ed25519"], "");
    let ssh = rt.block_on(SshServer::start(&root, &[public])).unwrap();
    let ca_file = app.dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.cert_pem()).unwrap();
    let known_hosts = app.dir.path().join("known_hosts");
    std::fs::write(&known_hosts, format!("{}\n", ssh.known_hosts_line())).unwrap();
    app.cli(
        &["secret", "create", "tok", "--value-stdin"],
        Some("bench-token-123456"),
    )
    .ok();
    app.cli(
        &[
            "secret",
            "create-ssh",
            "key",
            "--key-file",
            key.to_str().unwrap(),
        ],
        None,
    )
    .ok();
    app.cli(
        &[
            "connector",
            "add",
            "--name",
            "https",
            "--url",
            &https.repo_url("acme/config.git"),
            "--username",
            "jdoe",
            "--password-secret",
            "tok",
            "--branch",
            "main",
            "--ca-file",
            ca_file.to_str().unwrap(),
        ],
        None,
    )
    .ok();
    app.cli(
        &[
            "connector",
            "add",
            "--name",
            "ssh",
            "--url",
            &ssh.repo_url("acme/config.git"),
            "--ssh-key-secret",
            "key",
            "--branch",
            "main",
            "--known-hosts-file",
            known_hosts.to_str().unwrap(),
        ],
        None,
    )
    .ok();
    for name in ["https", "ssh"] {
        app.cli(&["connector", "test", name], None).ok(); // warm-up
        let samples = (0..runs)
            .map(|_| {
                let started = Instant::now();
                app.cli(&["connector", "test", name], None).ok();
                started.elapsed().as_secs_f64() * 1000.0
            })
            .collect();
        summary(&format!("connector test via CLI ({name})"), samples);
    }
    let mut app = app;
    app.stop();
}
