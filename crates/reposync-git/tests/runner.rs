//! The git runner against real servers: a stalled server, a closed port, and a check of every
//! live process's argv while git holds credentials.

#![allow(clippy::expect_used)] // Test helpers outside #[test] functions may panic.

use std::time::Duration;

use reposync_git::{GitAuth, GitErrorKind, GitRunner, Remote};
use secrecy::SecretString;

const PASSWORD: &str = "argv-canary-token-5d41402abc";

/// Accepts TCP connections and never answers, so git hangs in the TLS handshake.
async fn black_hole() -> (u16, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    (port, task)
}

fn https_remote(port: u16) -> Remote {
    Remote {
        url: format!("https://127.0.0.1:{port}/acme/config.git"),
        auth: GitAuth::Https {
            username: "jdoe".into(),
            password: SecretString::from(PASSWORD),
            ca_pem: None,
        },
    }
}

/// Every process's command line, as text.
fn all_command_lines() -> Vec<String> {
    let mut lines = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        if let Ok(bytes) = std::fs::read(entry.path().join("cmdline")) {
            lines.push(String::from_utf8_lossy(&bytes).replace('\0', " "));
        }
    }
    lines
}

#[tokio::test]
async fn a_stalled_server_times_out_and_credentials_never_reach_argv() {
    let (port, _server) = black_hole().await;
    let runner = GitRunner::new().timeout(Duration::from_secs(2));
    let remote = https_remote(port);
    let operation = tokio::spawn(async move { runner.ls_remote_heads(&remote).await });

    // While git is running (stalled), look at every process's argv.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let lines = all_command_lines();
    assert!(
        lines.iter().any(|l| l.contains("ls-remote")),
        "git should still be running"
    );
    assert!(
        !lines.iter().any(|l| l.contains(PASSWORD)),
        "the token appeared in a process's argv"
    );

    let error = operation.await.expect("join").expect_err("must time out");
    assert_eq!(error.kind, GitErrorKind::Timeout, "{error}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !all_command_lines()
            .iter()
            .any(|l| l.contains(&format!("127.0.0.1:{port}"))),
        "the timed-out git (and its helpers) were killed"
    );
}

#[tokio::test]
async fn a_closed_port_is_host_unreachable() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let error = GitRunner::new()
        .ls_remote_heads(&https_remote(port))
        .await
        .expect_err("closed port");
    assert_eq!(error.kind, GitErrorKind::HostUnreachable, "{error}");
    assert!(!error.to_string().contains(PASSWORD));
}
