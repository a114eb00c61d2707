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
    // Each is tested before it is saved; those whose Test fails are saved with --save-anyway,
    // so that `connector test` can be run on them below.
    let add = |name: &str, url: &str, secret: &str, branch: &str, ca: bool, expected: &str| {
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
        if expected != "ok" {
            args.push("--save-anyway");
        }
        let run = app.cli(&args, None);
        let shown = if expected == "ok" {
            "OK: ".to_owned()
        } else {
            format!("warning: test failed ({expected})")
        };
        assert!(run.ok().stderr.contains(&shown), "{name}: {}", run.stderr);
    };
    add("https-ok", &repo_url, "bb-token", "main", true, "ok");
    add(
        "https-wrong-token",
        &repo_url,
        "bb-wrong",
        "main",
        true,
        "auth_failed",
    );
    add(
        "https-unknown-repo",
        &server.repo_url("acme/missing.git"),
        "bb-token",
        "main",
        true,
        "repo_not_found",
    );
    add(
        "https-missing-branch",
        &repo_url,
        "bb-token",
        "release",
        true,
        "branch_not_found",
    );
    add(
        "https-untrusted",
        &repo_url,
        "bb-token",
        "main",
        false,
        "tls_untrusted",
    );

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
            "--repo",
            "config",
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
    // Tested before saving; those whose Test fails are saved with --save-anyway.
    let add = |name: &str, secret: &str, hosts: Option<&std::path::Path>, expected: &str| {
        let mut args = vec![
            "connector".to_owned(),
            "add".to_owned(),
            "--name".to_owned(),
            name.to_owned(),
            "--url".to_owned(),
            url.clone(),
            "--ssh-key-secret".to_owned(),
            secret.to_owned(),
            "--branch".to_owned(),
            "main".to_owned(),
        ];
        if let Some(hosts) = hosts {
            args.extend(["--known-hosts-file".to_owned(), path(hosts)]);
        }
        if expected != "ok" {
            args.push("--save-anyway".to_owned());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = app.cli(&args, None);
        let shown = if expected == "ok" {
            "OK: ".to_owned()
        } else {
            format!("warning: test failed ({expected})")
        };
        assert!(
            run.ok().stderr.contains(&shown),
            "{name}: {}\nsshd: {}",
            run.stderr,
            server.log()
        );
    };
    add("ssh-rsa-pem", "rsa-pem", Some(&known_hosts), "ok");
    add("ssh-rsa-openssh", "rsa-openssh", Some(&known_hosts), "ok");
    add("ssh-ed25519", "ed25519", Some(&known_hosts), "ok");
    add("ssh-protected", "protected", Some(&known_hosts), "ok");
    add(
        "ssh-stranger",
        "stranger",
        Some(&known_hosts),
        "auth_failed",
    );
    add(
        "ssh-changed-host",
        "ed25519",
        Some(&wrong_hosts),
        "host_key_mismatch",
    );
    add("ssh-unknown-host", "ed25519", None, "host_key_unknown");

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

/// The names of the saved connectors.
fn connector_names(app: &TestApp) -> Vec<String> {
    app.cli(&["connector", "list", "--json"], None).ok().json()["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|c| c["name"].as_str().map(str::to_owned))
        .collect()
}

/// Test, then Submit: `connector add` tests the connection before it saves, a failed Test
/// saves nothing (unless --save-anyway), --no-test saves without asking git anything, and
/// `connector update` tests a changed connection again before saving it.
#[test]
fn connectors_are_tested_before_they_are_saved() {
    let rt = runtime();
    let root = RepoRoot::new().expect("repo root");
    let head = root
        .create_repo("acme/config.git", "main", &[("README.md", "x\n")])
        .expect("repo");
    root.create_repo("acme/other.git", "main", &[("README.md", "y\n")])
        .expect("other repo");
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
        Some(TOKEN),
    )
    .ok();
    app.cli(
        &["secret", "create", "bb-wrong", "--value-stdin"],
        Some(WRONG_TOKEN),
    )
    .ok();
    let repo_url = server.repo_url("acme/config.git");
    // Nothing listens on port 1 of the loopback.
    let dead_url = "https://127.0.0.1:1/acme/config.git";
    let add = |name: &str, url: &str, secret: &str, extra: &[&str]| {
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
            "main",
            "--ca-file",
            ca_arg,
        ];
        args.extend_from_slice(extra);
        app.cli(&args, None)
    };

    // A good connector is tested, then saved.
    let run = add("good", &repo_url, "bb-token", &[]);
    assert!(
        run.ok()
            .stderr
            .contains("Testing the connection before saving")
            && run
                .stderr
                .contains(&format!("OK: {repo_url} main at {head}")),
        "{}",
        run.stderr
    );
    assert!(
        run.stdout.contains("good"),
        "the saved connector: {}",
        run.stdout
    );
    assert_eq!(connector_names(&app), ["good"]);
    let last_test = |name: &str| {
        app.cli(&["connector", "show", name, "--json"], None)
            .ok()
            .json()["last_test"]
            .clone()
    };
    let tested = last_test("good");
    assert!(
        tested["ok"] == true && tested["commit"] == head.as_str(),
        "the Test before saving is its last Test: {tested}"
    );

    // A bad token and a dead host are refused with the Test's message, and nothing is saved.
    for (name, url, secret, code) in [
        ("bad-token", repo_url.as_str(), "bb-wrong", "auth_failed"),
        ("dead", dead_url, "bb-token", "host_unreachable"),
    ] {
        let run = add(name, url, secret, &[]);
        let stderr = &run.fails().stderr;
        assert!(
            stderr.contains(&format!("test failed ({code})"))
                && stderr.contains("nothing was saved")
                && stderr.contains("--save-anyway"),
            "{name}: {stderr}"
        );
        assert_eq!(connector_names(&app), ["good"], "{name} was not saved");
    }

    // --save-anyway saves it, saying that the Test failed.
    let run = add("bad-token", &repo_url, "bb-wrong", &["--save-anyway"]);
    assert!(
        run.ok()
            .stderr
            .contains("warning: test failed (auth_failed)"),
        "{}",
        run.stderr
    );
    assert_eq!(connector_names(&app), ["bad-token", "good"]);
    assert_eq!(last_test("bad-token")["code"], "auth_failed");

    // --no-test saves without a Test: git is not asked anything.
    let asked = server.request_count();
    let run = add("untested", &repo_url, "bb-wrong", &["--no-test"]);
    assert!(!run.ok().stderr.contains("Testing"), "{}", run.stderr);
    assert_eq!(server.request_count(), asked, "no Test reached git");
    assert_eq!(connector_names(&app), ["bad-token", "good", "untested"]);
    assert_eq!(
        last_test("untested"),
        serde_json::Value::Null,
        "never tested"
    );
    let run = add(
        "both",
        &repo_url,
        "bb-token",
        &["--no-test", "--save-anyway"],
    );
    assert!(run.fails().stderr.contains("--no-test"), "{}", run.stderr);

    // A name that is taken is refused before any Test.
    let run = add("good", &repo_url, "bb-token", &[]);
    assert!(
        run.fails().stderr.contains("already exists") && !run.stderr.contains("Testing"),
        "{}",
        run.stderr
    );

    // Updating the URL tests again: a dead one is refused and the connector stays as it was.
    let url_of = |name: &str| {
        app.cli(&["connector", "show", name, "--json"], None)
            .ok()
            .json()["url"]
            .as_str()
            .expect("url")
            .to_owned()
    };
    let run = app.cli(&["connector", "update", "good", "--url", dead_url], None);
    assert!(
        run.fails()
            .stderr
            .contains("test failed (host_unreachable)")
            && run.stderr.contains("nothing was saved"),
        "{}",
        run.stderr
    );
    assert_eq!(url_of("good"), repo_url);
    let other_url = server.repo_url("acme/other.git");
    let run = app.cli(&["connector", "update", "good", "--url", &other_url], None);
    assert!(
        run.ok().stderr.contains(&format!("OK: {other_url}")),
        "{}",
        run.stderr
    );
    assert_eq!(url_of("good"), other_url);
    assert_eq!(last_test("good")["url"], other_url.as_str());
    // A change that does not touch the connection is saved without a Test.
    let asked = server.request_count();
    let run = app.cli(
        &["connector", "update", "good", "--author-name", "Sync Bot"],
        None,
    );
    assert!(!run.ok().stderr.contains("Testing"), "{}", run.stderr);
    assert_eq!(server.request_count(), asked);
    // A bad secret on update, saved anyway.
    let run = app.cli(
        &[
            "connector",
            "update",
            "good",
            "--password-secret",
            "bb-wrong",
            "--save-anyway",
        ],
        None,
    );
    assert!(
        run.ok()
            .stderr
            .contains("warning: test failed (auth_failed)"),
        "{}",
        run.stderr
    );

    // An account-scope connector is tested against the repository --repo names.
    let account = format!("{}/acme", server.base_url());
    let account_add = |extra: &[&str]| {
        let mut args = vec![
            "connector",
            "add",
            "--name",
            "acme",
            "--scope",
            "account",
            "--url",
            &account,
            "--username",
            USER,
            "--password-secret",
            "bb-token",
            "--ca-file",
            ca_arg,
        ];
        args.extend_from_slice(extra);
        app.cli(&args, None)
    };
    let run = account_add(&[]);
    assert!(
        run.fails().stderr.contains("--repo") && run.stderr.contains("--no-test"),
        "{}",
        run.stderr
    );
    let run = account_add(&["--repo", "other"]);
    assert!(
        run.ok().stderr.contains(&format!("OK: {other_url}")),
        "{}",
        run.stderr
    );

    let mut app = app;
    assert_eq!(app.stop(), 0);
    app.assert_no_leak(&[TOKEN, WRONG_TOKEN]);
}

/// `--author-from-user` is a connector setting of reposync's own: saved with the connector,
/// shown by `connector show` and its JSON, turned off by `update --no-author-from-user`
/// without a Test (it does not touch the connection), and never written into the Source Repo
/// Provider file.
#[test]
fn author_from_user_is_saved_shown_and_turned_off() {
    let app = TestApp::spawn();
    app.cli(
        &["secret", "create", "bb-token", "--value-stdin"],
        Some(TOKEN),
    )
    .ok();
    let run = app.cli(
        &[
            "connector",
            "add",
            // bitbucket.org is not reached from tests.
            "--no-test",
            "--name",
            "Platform",
            "--url",
            "https://bitbucket.org/acme/config.git",
            "--username",
            USER,
            "--password-secret",
            "bb-token",
            "--branch",
            "main",
            "--author-from-user",
        ],
        None,
    );
    run.ok();
    let show = |app: &TestApp| {
        app.cli(&["connector", "show", "Platform"], None)
            .ok()
            .stdout
            .clone()
    };
    let json = |app: &TestApp| {
        app.cli(&["connector", "show", "Platform", "-o", "json"], None)
            .ok()
            .json()["author_from_user"]
            .clone()
    };
    let shown = show(&app);
    assert!(
        shown
            .lines()
            .any(|l| l.starts_with("Author from user") && l.contains(" on ")),
        "{shown}"
    );
    assert_eq!(json(&app), true);
    let file = app
        .cli(&["get", "Setup/Source Repo Providers/Platform.yaml"], None)
        .ok()
        .stdout
        .clone();
    assert!(
        file.contains("url: https://bitbucket.org/acme/config.git")
            && !file.to_lowercase().contains("fromuser"),
        "{file}"
    );

    let run = app.cli(
        &["connector", "update", "Platform", "--no-author-from-user"],
        None,
    );
    assert!(!run.ok().stderr.contains("Testing"), "{}", run.stderr);
    assert_eq!(json(&app), false);
    assert!(
        show(&app)
            .lines()
            .any(|l| l.starts_with("Author from user") && l.trim_end().ends_with("off")),
        "{}",
        show(&app)
    );
    let both = app.cli(
        &[
            "connector",
            "update",
            "Platform",
            "--author-from-user",
            "--no-author-from-user",
        ],
        None,
    );
    assert!(
        both.fails().stderr.contains("--no-author-from-user"),
        "{}",
        both.stderr
    );
}
