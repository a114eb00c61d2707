//! The git runner against real servers: a stalled server, a closed port, and a check of every
//! live process's argv while git holds credentials.

#![allow(clippy::expect_used)] // Test helpers outside #[test] functions may panic.

use std::time::Duration;

use base64::Engine as _;
use reposync_git::{GitAuth, GitErrorKind, GitRunner, Remote, TempRoot};
use reposync_testkit::TestCa;
use secrecy::SecretString;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_rustls::TlsAcceptor;

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

/// An HTTPS server that asks for Basic credentials (401), then, once a request carries them,
/// reports the `Authorization` header and never answers: git is stalled while it holds the
/// token, which is the moment to look at every process's argv.
async fn credential_trap(ca: &TestCa) -> (u16, tokio::sync::mpsc::Receiver<String>) {
    let acceptor = TlsAcceptor::from(ca.server_tls_config(&["127.0.0.1"]).expect("tls config"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (seen, received) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let seen = seen.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return;
                };
                loop {
                    let mut request = Vec::new();
                    let mut byte = [0u8; 1];
                    while !request.ends_with(b"\r\n\r\n") {
                        match tls.read(&mut byte).await {
                            Ok(1) => request.push(byte[0]),
                            _ => return,
                        }
                    }
                    let text = String::from_utf8_lossy(&request).into_owned();
                    let authorization = text.lines().find_map(|l| {
                        l.strip_prefix("Authorization: ")
                            .or_else(|| l.strip_prefix("authorization: "))
                    });
                    if let Some(value) = authorization {
                        let _ = seen.send(value.trim().to_owned()).await;
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                        return;
                    }
                    let challenge = "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"git\"\r\nContent-Length: 0\r\n\r\n";
                    if tls.write_all(challenge.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, received)
}

fn https_remote(port: u16, ca_pem: Option<String>) -> Remote {
    Remote {
        url: format!("https://127.0.0.1:{port}/acme/config.git"),
        auth: GitAuth::Https {
            username: "jdoe".into(),
            password: SecretString::from(PASSWORD),
            ca_pem,
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
async fn credentials_reach_the_server_but_never_any_argv() {
    let ca = TestCa::new("argv test CA").expect("ca");
    let (port, mut seen) = credential_trap(&ca).await;
    let runner = GitRunner::new().timeout(Duration::from_secs(5));
    let remote = https_remote(port, Some(ca.cert_pem()));
    let operation = tokio::spawn(async move { runner.ls_remote_heads(&remote).await });

    let authorization = tokio::time::timeout(Duration::from_secs(4), seen.recv())
        .await
        .expect("git sent credentials after the 401")
        .expect("header");
    let expected = base64::engine::general_purpose::STANDARD.encode(format!("jdoe:{PASSWORD}"));
    assert_eq!(
        authorization,
        format!("Basic {expected}"),
        "the credential helper answered"
    );

    // git now holds the token and waits: no process may show it in its argv.
    let lines = all_command_lines();
    assert!(
        lines.iter().any(|l| l.contains("ls-remote")),
        "git should still be running"
    );
    assert!(
        !lines.iter().any(|l| l.contains(PASSWORD)),
        "the token appeared in a process's argv"
    );

    let error = operation
        .await
        .expect("join")
        .expect_err("the trap never answers");
    assert_eq!(error.kind, GitErrorKind::Timeout, "{error}");
    assert!(!error.to_string().contains(PASSWORD));
}

#[tokio::test]
async fn a_stalled_server_times_out_and_git_is_killed() {
    let (port, _server) = black_hole().await;
    let runner = GitRunner::new().timeout(Duration::from_secs(1));
    let error = runner
        .ls_remote_heads(&https_remote(port, None))
        .await
        .expect_err("must time out");
    assert_eq!(error.kind, GitErrorKind::Timeout, "{error}");
    // Killed processes take a moment to go; wait for it (a deadline, not a threshold).
    wait_until_gone(
        &format!("127.0.0.1:{port}"),
        "the timed-out git (or a helper)",
    )
    .await;
}

/// Waits until no process's command line holds `mark`, failing after a generous deadline.
async fn wait_until_gone(mark: &str, what: &str) {
    let started = std::time::Instant::now();
    while all_command_lines().iter().any(|l| l.contains(mark)) {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{what} outlived its operation"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_closed_port_is_host_unreachable() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let error = GitRunner::new()
        .ls_remote_heads(&https_remote(port, None))
        .await
        .expect_err("closed port");
    assert_eq!(error.kind, GitErrorKind::HostUnreachable, "{error}");
    assert!(!error.to_string().contains(PASSWORD));
}

#[tokio::test]
async fn dropping_an_operation_kills_git_and_its_helpers() {
    let (port, _server) = black_hole().await;
    let runner = GitRunner::new().timeout(Duration::from_secs(60));
    let operation =
        tokio::spawn(async move { runner.ls_remote_heads(&https_remote(port, None)).await });
    let mark = format!("127.0.0.1:{port}");
    let started = std::time::Instant::now();
    while !all_command_lines().iter().any(|l| l.contains(&mark)) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "git never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Wait for git's HTTPS helper, which is what `kill_on_drop` alone would miss.
    let started = std::time::Instant::now();
    while !all_command_lines()
        .iter()
        .any(|l| l.contains("remote-https") && l.contains(&mark))
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "git never started its HTTPS helper"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    operation.abort();
    assert!(operation.await.is_err_and(|e| e.is_cancelled()));
    wait_until_gone(&mark, "git (or a helper) of the dropped operation").await;
}

/// A delegate without OpenSSH used to report an SSH remote as a missing repository (git's
/// "ssh: not found" matched "not found"), which Git Sync treats as permanent.
#[tokio::test]
async fn a_missing_ssh_is_not_a_missing_repository() {
    // A search path holding git and nothing else.
    let git = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .map(|dir| dir.join("git"))
        .find(|candidate| candidate.is_file())
        .expect("git on PATH");
    let bin = tempfile::tempdir().expect("temp dir");
    std::os::unix::fs::symlink(&git, bin.path().join("git")).expect("symlink");
    let remote = Remote {
        url: "ssh://git@127.0.0.1:1/acme/config.git".into(),
        auth: GitAuth::Ssh {
            private_key: SecretString::from("not a key, never read"),
            known_hosts: None,
        },
    };
    let error = GitRunner::new()
        .search_path(bin.path().as_os_str())
        .ls_remote_heads(&remote)
        .await
        .expect_err("no ssh");
    assert_eq!(error.kind, GitErrorKind::SshUnavailable, "{error}");
    assert_eq!(error.kind.code(), "ssh_unavailable");
}

/// The files of every directory directly under `dir`, by directory name.
fn private_dirs(dir: &std::path::Path) -> Vec<(String, Vec<String>)> {
    std::fs::read_dir(dir)
        .expect("read the temporary root")
        .flatten()
        .map(|entry| {
            let files = std::fs::read_dir(entry.path())
                .map(|files| {
                    files
                        .flatten()
                        .map(|f| f.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            (entry.file_name().to_string_lossy().into_owned(), files)
        })
        .collect()
}

#[tokio::test]
async fn an_operations_files_live_in_the_temporary_root_and_leave_with_it() {
    let ca = TestCa::new("temp root CA").expect("ca");
    let (port, mut seen) = credential_trap(&ca).await;
    let parent = tempfile::tempdir().expect("tempdir");
    let root = TempRoot::prepare(parent.path().join("tmp")).expect("temp root");
    let runner = GitRunner::new()
        .timeout(Duration::from_secs(3))
        .temp_root(root.clone());
    let remote = https_remote(port, Some(ca.cert_pem()));
    let operation = tokio::spawn(async move { runner.ls_remote_heads(&remote).await });
    tokio::time::timeout(Duration::from_secs(3), seen.recv())
        .await
        .expect("git sent credentials")
        .expect("header");

    // git waits on the server: its private directory, with the CA file, is in the root.
    let during = private_dirs(root.path());
    assert_eq!(during.len(), 1, "{during:?}");
    assert!(during[0].0.starts_with("reposync-git-"), "{during:?}");
    assert!(during[0].1.contains(&"ca.pem".to_owned()), "{during:?}");
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(root.path().join(&during[0].0))
        .expect("meta")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);

    let error = operation.await.expect("join").expect_err("never answered");
    assert_eq!(error.kind, GitErrorKind::Timeout, "{error}");
    assert!(private_dirs(root.path()).is_empty(), "left behind");

    // A root that disappeared is an error naming it, never a silent fall-back elsewhere.
    std::fs::remove_dir(root.path()).expect("remove the root");
    let error = GitRunner::new()
        .temp_root(root.clone())
        .version()
        .await
        .expect_err("no root");
    assert!(
        error
            .to_string()
            .contains(&root.path().display().to_string()),
        "{error}"
    );
}
