//! Source Repo Providers end to end: the real binary, real git over HTTPS (git http-backend
//! behind TLS with Basic auth) and over SSH (OpenSSH sshd), and a leak check at the end.

#![allow(clippy::expect_used)] // Test helpers outside #[test] functions may panic.

use crate::common;

use common::{TestApp, key_body_line, ssh_keygen};
use reposync_testkit::{GitHttpsServer, RepoRoot, SshServer, TestCa, ensure_git_user};

const USER: &str = "jdoe";
const TOKEN: &str = "bbtoken-correct-7f3a9c21e5";
const WRONG_TOKEN: &str = "bbtoken-wrong-55c0ffee99";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Runs `connector test` and returns the failure code printed, or "ok".
fn test_outcome(app: &TestApp, name: &str, extra: &[&str]) -> (String, common::Run) {
    let mut args = vec!["connector", "test", name];
    args.extend_from_slice(extra);
    let run = app.cli(&args, None);
    // The wait shows a spinner at a terminal only; a script's output stays clean.
    assert!(!run.stderr.contains('\r'), "{:?}", run.stderr);
    let code = if run.code == 0 {
        "ok".to_owned()
    } else {
        run.stderr
            .split("test failed (")
            .nth(1)
            .and_then(|s| s.split(')').next())
            .unwrap_or("?")
            .to_owned()
    };
    (code, run)
}

#[test]
fn https_connectors_are_tested_against_a_real_server() {
    let rt = runtime();
    let root = RepoRoot::new().expect("repo root");
    let head = root
        .create_repo(
            "acme/config.git",
            "main",
            &[("Setup/Defaults.yaml", "harnessApiVersion: '1.0'\n")],
        )
        .expect("repo");
    let ca = TestCa::new("reposync test CA").expect("ca");
    let server = rt
        .block_on(GitHttpsServer::start(&root, &ca, USER, TOKEN))
        .expect("https server");
    let app = TestApp::spawn();
    let ca_file = app.dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.cert_pem()).expect("ca file");
    let ca_arg = ca_file.to_str().expect("utf-8 path");

    app.cli(
        &["secret", "create", "bb-token", "--value-stdin"],
        Some(&format!("{TOKEN}\n")),
    )
    .ok();
    let token_file = app.dir.path().join("wrong-token");
    std::fs::write(&token_file, WRONG_TOKEN).expect("token file");
    app.cli(
        &[
            "secret",
            "create",
            "bb-wrong",
            "--value-file",
            token_file.to_str().expect("path"),
        ],
        None,
    )
    .ok();

    let repo_url = server.repo_url("acme/config.git");
    let add = |name: &str, url: &str, secret: &str, branch: &str, ca: bool| {
        let mut args = vec![
            "connector",
            "add",
            "--name",
            name,
            "--url",
            url,
            "--username",
            USER,
            "--password-secret",
            secret,
            "--branch",
            branch,
        ];
        if ca {
            args.extend_from_slice(&["--ca-file", ca_arg]);
        }
        app.cli(&args, None).ok();
    };
    add("https-ok", &repo_url, "bb-token", "main", true);
    add("https-wrong-token", &repo_url, "bb-wrong", "main", true);
    add(
        "https-unknown-repo",
        &server.repo_url("acme/missing.git"),
        "bb-token",
        "main",
        true,
    );
    add(
        "https-missing-branch",
        &repo_url,
        "bb-token",
        "release",
        true,
    );
    add("https-untrusted", &repo_url, "bb-token", "main", false);

    let (code, run) = test_outcome(&app, "https-ok", &[]);
    assert_eq!(code, "ok", "{}", run.stderr);
    assert!(
        run.stdout.contains(&head),
        "the resolved commit is printed: {}",
        run.stdout
    );

    for (name, expected) in [
        ("https-wrong-token", "auth_failed"),
        ("https-unknown-repo", "repo_not_found"),
        ("https-missing-branch", "branch_not_found"),
        ("https-untrusted", "tls_untrusted"),
    ] {
        let (code, run) = test_outcome(&app, name, &[]);
        assert_eq!(code, expected, "{name}: {}", run.stderr);
    }
    let (_, run) = test_outcome(&app, "https-missing-branch", &[]);
    assert!(
        run.stderr.contains("main"),
        "lists the branches that exist: {}",
        run.stderr
    );

    // The last Test result is kept on the connector.
    let shown = app.cli(&["--json", "connector", "show", "https-ok"], None);
    let last = &shown.ok().json()["last_test"];
    assert_eq!(last["ok"], true);
    assert_eq!(last["commit"], head.as_str());
    assert_eq!(last["delegate"], "builtin");

    // Account scope: the account URL plus --repo.
    app.cli(
        &[
            "connector",
            "add",
            "--name",
            "acme-account",
            "--scope",
            "account",
            "--url",
            &format!("{}/acme", server.base_url()),
            "--username",
            USER,
            "--password-secret",
            "bb-token",
            "--ca-file",
            ca_arg,
        ],
        None,
    )
    .ok();
    let (code, run) = test_outcome(&app, "acme-account", &["--repo", "config"]);
    assert_eq!(code, "ok", "{}", run.stderr);
    let run = app.cli(&["connector", "test", "acme-account"], None);
    assert!(
        run.fails().stderr.contains("repo"),
        "account scope needs --repo: {}",
        run.stderr
    );

    // The secret is in use: deleting it is refused, naming the connectors.
    let run = app.cli(&["secret", "delete", "bb-token", "--yes"], None);
    assert!(
        run.fails().stderr.contains("acme-account"),
        "{}",
        run.stderr
    );

    let mut app = app;
    assert_eq!(app.stop(), 0, "clean shutdown on SIGTERM");
    app.assert_no_leak(&[TOKEN, WRONG_TOKEN]);
    assert!(server.request_count() > 0);
}

#[test]
fn ssh_connectors_are_tested_against_a_real_sshd() {
    ensure_git_user().expect("git user");
    let rt = runtime();
    let root = RepoRoot::new().expect("repo root");
    let head = root
        .create_repo(
            "acme/config.git",
            "main",
            &[("Setup/Defaults.yaml", "x: 1\n")],
        )
        .expect("repo");
    let app = TestApp::spawn();
    let keys = app.dir.path().join("keys");
    std::fs::create_dir(&keys).expect("keys dir");
    let passphrase = "correct horse battery";
    let (rsa_pem, rsa_pem_pub) = ssh_keygen(
        &keys,
        "rsa_pem",
        &["-t", "rsa", "-b", "2048", "-m", "PEM"],
        "",
    );
    let (rsa_openssh, rsa_openssh_pub) =
        ssh_keygen(&keys, "rsa_openssh", &["-t", "rsa", "-b", "2048"], "");
    let (ed25519, ed25519_pub) = ssh_keygen(&keys, "ed25519", &["-t", "ed25519"], "");
    let (protected, protected_pub) = ssh_keygen(&keys, "protected", &["-t", "ed25519"], passphrase);
    let (stranger, _) = ssh_keygen(&keys, "stranger", &["-t", "ed25519"], "");
    let server = rt
        .block_on(SshServer::start(
            &root,
            &[rsa_pem_pub, rsa_openssh_pub, ed25519_pub, protected_pub],
        ))
        .expect("sshd");
    let known_hosts = app.dir.path().join("known_hosts");
    std::fs::write(&known_hosts, format!("{}\n", server.known_hosts_line())).expect("known_hosts");
    let wrong_hosts = app.dir.path().join("wrong_known_hosts");
    std::fs::write(
        &wrong_hosts,
        format!("{}\n", server.wrong_known_hosts_line().expect("wrong key")),
    )
    .expect("wrong");

    let path = |p: &std::path::Path| p.to_str().expect("utf-8").to_owned();
    for (secret, key) in [
        ("rsa-pem", &rsa_pem),
        ("rsa-openssh", &rsa_openssh),
        ("ed25519", &ed25519),
        ("stranger", &stranger),
    ] {
        app.cli(
            &["secret", "create-ssh", secret, "--key-file", &path(key)],
            None,
        )
        .ok();
    }
    // A passphrase-protected key: refused without the passphrase, accepted with it.
    let run = app.cli(
        &[
            "secret",
            "create-ssh",
            "protected",
            "--key-file",
            &path(&protected),
        ],
        None,
    );
    assert!(
        run.fails()
            .stderr
            .contains("--passphrase-stdin: this private key is protected by a passphrase"),
        "the flag that gives it is named: {}",
        run.stderr
    );
    let run = app.cli(
        &[
            "secret",
            "create-ssh",
            "protected",
            "--key-file",
            &path(&protected),
            "--passphrase-stdin",
        ],
        Some("wrong one\n"),
    );
    assert!(
        run.fails().stderr.contains("passphrase is wrong"),
        "{}",
        run.stderr
    );
    app.cli(
        &[
            "secret",
            "create-ssh",
            "protected",
            "--key-file",
            &path(&protected),
            "--passphrase-stdin",
        ],
        Some(&format!("{passphrase}\n")),
    )
    .ok();

    // The fingerprint shown is the one ssh-keygen -l prints.
    let shown = app.cli(&["--json", "secret", "show", "ed25519"], None);
    let fingerprint = shown.ok().json()["ssh"]["fingerprint"]
        .as_str()
        .expect("fingerprint")
        .to_owned();
    let keygen = std::process::Command::new("ssh-keygen")
        .args(["-l", "-f", &path(&ed25519)])
        .output()
        .expect("ssh-keygen -l");
    assert!(String::from_utf8_lossy(&keygen.stdout).contains(&fingerprint));

    let url = server.repo_url("acme/config.git");
    let add = |name: &str, secret: &str, hosts: &std::path::Path| {
        app.cli(
            &[
                "connector",
                "add",
                "--name",
                name,
                "--url",
                &url,
                "--ssh-key-secret",
                secret,
                "--branch",
                "main",
                "--known-hosts-file",
                &path(hosts),
            ],
            None,
        )
        .ok();
    };
    add("ssh-rsa-pem", "rsa-pem", &known_hosts);
    add("ssh-rsa-openssh", "rsa-openssh", &known_hosts);
    add("ssh-ed25519", "ed25519", &known_hosts);
    add("ssh-protected", "protected", &known_hosts);
    add("ssh-stranger", "stranger", &known_hosts);
    add("ssh-changed-host", "ed25519", &wrong_hosts);
    app.cli(
        &[
            "connector",
            "add",
            "--name",
            "ssh-unknown-host",
            "--url",
            &url,
            "--ssh-key-secret",
            "ed25519",
            "--branch",
            "main",
        ],
        None,
    )
    .ok();

    for name in [
        "ssh-rsa-pem",
        "ssh-rsa-openssh",
        "ssh-ed25519",
        "ssh-protected",
    ] {
        let (code, run) = test_outcome(&app, name, &[]);
        assert_eq!(code, "ok", "{name}: {}\nsshd: {}", run.stderr, server.log());
        assert!(run.stdout.contains(&head), "{name}: {}", run.stdout);
    }
    for (name, expected) in [
        ("ssh-stranger", "auth_failed"),
        ("ssh-unknown-host", "host_key_unknown"),
        ("ssh-changed-host", "host_key_mismatch"),
    ] {
        let (code, run) = test_outcome(&app, name, &[]);
        assert_eq!(code, expected, "{name}: {}", run.stderr);
    }

    let mut app = app;
    assert_eq!(app.stop(), 0);
    let mut secrets = vec![passphrase.to_owned()];
    for key in [&rsa_pem, &rsa_openssh, &ed25519, &protected, &stranger] {
        let text = std::fs::read_to_string(key).expect("key");
        secrets.push(key_body_line(&text));
        // The key as the server stores it (normalised, unencrypted OpenSSH) must not show up
        // either.
        let normalised = reposync_secrets::parse_private_key(&text, Some(passphrase.as_bytes()))
            .expect("parse key");
        secrets.push(key_body_line(&normalised.private_key_openssh));
    }
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    app.assert_no_leak(&secrets);
}
