//! The fetch planner end to end: the real binary reading branches through Bitbucket's REST
//! APIs (the testkit's emulator, over the same real repositories as the git server), falling
//! back to git when REST refuses, and saying how in `sync activity`.

#![allow(clippy::expect_used)] // Test helpers outside #[test] functions may panic.

use std::time::{Duration, Instant};

use crate::common::git_fixture::{Fixture, REPO, SHOP, TOKEN};
use reposync_testkit::{ApiAuth, ApiFault, ApiFlavour, BitbucketApi, RawEntry};
use serde_json::Value;

/// The account email a Cloud API token authenticates REST with.
const EMAIL: &str = "jdoe@example.com";

const APP_INDEX: &str = "harnessApiVersion: '1.0'\ntype: APPLICATION\n";
const CART: &str = "harnessApiVersion: '1.0'\ntype: SERVICE\ndeploymentType: KUBERNETES\n";
const WEB: &str = "harnessApiVersion: '1.0'\ntype: SERVICE\ndeploymentType: SSH\n";

/// The branch holds Shop (with a service reposync does not have yet) and an asset outside
/// `Setup/`.
fn branch_files() -> Vec<(String, String)> {
    vec![
        ("README.md".into(), "config repository\n".into()),
        (format!("{SHOP}/Index.yaml"), APP_INDEX.into()),
        (format!("{SHOP}/Services/cart/Index.yaml"), CART.into()),
        (format!("{SHOP}/Services/web/Index.yaml"), WEB.into()),
        ("assets/logo.bin".into(), "binary asset".repeat(100)),
    ]
}

fn fixture(serve_args: &[&str]) -> Fixture {
    let files = branch_files();
    let files: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_str()))
        .collect();
    Fixture::https_with(&files, serve_args)
}

fn emulator(f: &Fixture, flavour: ApiFlavour) -> BitbucketApi {
    f.rt.block_on(BitbucketApi::start(
        &f.root,
        &f.ca,
        flavour,
        ApiAuth {
            basic: Some((EMAIL.into(), TOKEN.into())),
            bearer: Some(TOKEN.into()),
        },
    ))
    .expect("the REST emulator")
}

/// Adds connector `name` to the fixture's repository, of `provider`, with REST at `api`.
fn add_rest_connector(f: &Fixture, name: &str, provider: &str, api: &BitbucketApi, extra: &[&str]) {
    let url = f.server.repo_url(REPO);
    let base = api.base_url();
    let mut args = vec!["--provider", provider, "--api-url", base.as_str()];
    args.extend_from_slice(extra);
    f.add_connector(name, &url, &args);
}

fn enable(f: &Fixture, connector: &str) {
    f.app
        .cli(
            &[
                "sync",
                "enable",
                "--app",
                "Shop",
                "--connector",
                connector,
                "--initial",
                "import",
            ],
            None,
        )
        .ok();
}

/// The reads `sync activity --json` lists, newest first.
fn reads(f: &Fixture) -> Vec<Value> {
    let activity = f
        .app
        .cli(&["--json", "sync", "activity", "--limit", "1000"], None)
        .ok()
        .json();
    activity["reads"].as_array().expect("reads").clone()
}

/// Waits until a read of `kind` is listed, and returns the newest.
fn wait_read(f: &Fixture, kind: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(read) = reads(f).into_iter().find(|r| r["kind"] == kind) {
            return read;
        }
        assert!(
            Instant::now() < deadline,
            "no {kind} read after 60 s: {}",
            f.app.transcript()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_file(f: &Fixture, path: &str, content: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while f.app.cli(&["get", path], None).stdout != content {
        assert!(
            Instant::now() < deadline,
            "{path} never became {content:?}: {}",
            f.app.transcript()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn cloud_reads_through_rest_and_sync_activity_says_how_and_at_what_cost() {
    let f = fixture(&[]);
    // A name git allows and reposync cannot hold, inside the scope: a sync error, and the
    // rest of the scope applies.
    f.root
        .commit_raw(
            REPO,
            "main",
            &[(
                format!("{SHOP}/Services/web\\old/Index.yaml").as_bytes(),
                RawEntry::File(b"hostile: true\n".to_vec()),
            )],
            "a name reposync cannot hold",
        )
        .expect("commit");
    let api = emulator(&f, ApiFlavour::Cloud);
    add_rest_connector(
        &f,
        "cloud",
        "bitbucket-cloud",
        &api,
        &["--api-username", EMAIL],
    );

    // The Test says what the server can do, and shows it on the connector.
    let tested = f
        .app
        .cli(&["connector", "test", "cloud"], None)
        .ok()
        .stdout
        .clone();
    assert!(tested.contains("no partial clone"), "{tested}");
    assert!(tested.contains("REST answers"), "{tested}");
    let shown = f
        .app
        .cli(&["--json", "connector", "show", "cloud"], None)
        .ok()
        .json();
    assert_eq!(shown["capabilities"]["platform"], "bitbucket-cloud");
    assert_eq!(shown["capabilities"]["partial_clone"], false);
    assert_eq!(shown["capabilities"]["rest"], true);
    assert!(
        shown["capabilities"]["repository_bytes"]
            .as_u64()
            .is_some_and(|bytes| bytes > 0),
        "what a clone would cost: {shown}"
    );
    assert_eq!(shown["fetch"], "auto");

    // The first read of Shop: a listing and one request per file, nothing outside Setup/.
    api.reset_counts();
    enable(&f, "cloud");
    wait_file(&f, &format!("{SHOP}/Services/web/Index.yaml"), WEB);
    let first = wait_read(&f, "enable");
    assert_eq!(first["method"], "cloud-rest", "{first}");
    assert!(first["fallback_from"].is_null(), "{first}");
    let requests = first["requests"].as_u64().expect("requests");
    assert!(
        (4..=8).contains(&requests),
        "a branch, a listing, three files: {first}"
    );
    assert!(first["bytes"].as_u64().expect("bytes") > 0, "{first}");
    assert!(
        !api.log().contains("assets/"),
        "nothing outside the scope is read: {}",
        api.log()
    );
    assert!(!api.log().contains("-> 429"), "{}", api.log());
    let errors = f.app.cli(&["--json", "sync", "errors"], None).ok().json();
    assert!(
        errors.to_string().contains("backslash"),
        "the hostile name is a sync error: {errors}"
    );

    // A change pushed by someone else: read through diffstat and src, and applied.
    let changed = WEB.replace("SSH", "KUBERNETES");
    f.root
        .commit(
            REPO,
            "main",
            &[
                (&format!("{SHOP}/Services/web/Index.yaml"), changed.as_str()),
                ("assets/huge.bin", &"x".repeat(200_000)),
            ],
            "web moves to Kubernetes",
        )
        .expect("commit");
    f.app.cli(&["sync", "refresh", "--app", "Shop"], None).ok();
    wait_file(&f, &format!("{SHOP}/Services/web/Index.yaml"), &changed);
    let incremental = reads(&f)
        .into_iter()
        .find(|r| r["kind"] == "incremental" && r["method"] == "cloud-rest")
        .expect("an incremental REST read");
    assert!(
        incremental["bytes"].as_u64().expect("bytes") < 100_000,
        "the asset is never transferred: {incremental}"
    );
    let text = f.app.cli(&["sync", "activity"], None).ok().stdout.clone();
    assert!(text.contains("cloud-rest"), "{text}");
}

#[test]
fn a_budget_too_small_for_the_read_moves_it_to_git_and_says_why() {
    let f = fixture(&["--rest-requests-per-hour", "20"]);
    let api = emulator(&f, ApiFlavour::Cloud);
    add_rest_connector(
        &f,
        "cloud",
        "bitbucket-cloud",
        &api,
        &["--api-username", EMAIL],
    );
    enable(&f, "cloud");
    wait_file(&f, &format!("{SHOP}/Services/web/Index.yaml"), WEB);
    let read = wait_read(&f, "enable");
    assert_eq!(read["method"], "git", "{read}");
    assert_eq!(read["fallback_from"], "cloud-rest", "{read}");
    let reason = read["fallback_reason"].as_str().expect("a reason");
    assert!(reason.contains("of the"), "the budget is named: {reason}");
    assert!(
        !api.log().contains("-> 429"),
        "Bitbucket never had to refuse: {}",
        api.log()
    );
}

#[test]
fn data_center_reads_a_scope_in_one_archive_and_reports_links_without_following_them() {
    let f = fixture(&[]);
    f.root
        .commit_raw(
            REPO,
            "main",
            &[(
                format!("{SHOP}/Services/link/Index.yaml").as_bytes(),
                RawEntry::Symlink("../../../../../README.md".into()),
            )],
            "a link into the scope",
        )
        .expect("commit");
    let api = emulator(
        &f,
        ApiFlavour::DataCenter {
            version: "8.19.1".into(),
            context: None,
        },
    );
    add_rest_connector(&f, "dc", "bitbucket-server", &api, &[]);
    f.app.cli(&["connector", "test", "dc"], None).ok();
    let shown = f
        .app
        .cli(&["--json", "connector", "show", "dc"], None)
        .ok()
        .json();
    assert_eq!(shown["capabilities"]["version"], "8.19.1");
    assert_eq!(shown["capabilities"]["archive_path_filter"], true);

    api.reset_counts();
    enable(&f, "dc");
    wait_file(&f, &format!("{SHOP}/Services/web/Index.yaml"), WEB);
    let read = wait_read(&f, "enable");
    assert_eq!(read["method"], "dc-rest", "{read}");
    assert_eq!(read["requests"], 2, "the branch, then one archive: {read}");
    let errors = f.app.cli(&["--json", "sync", "errors"], None).ok().json();
    assert!(
        errors.to_string().contains("symbolic link"),
        "the link is a sync error: {errors}"
    );
    let link = f
        .app
        .cli(&["get", &format!("{SHOP}/Services/link/Index.yaml")], None);
    assert!(
        link.fails().stderr.contains("does not exist"),
        "the link was never followed: {}",
        link.stderr
    );
}

#[test]
fn a_server_that_honours_partial_clone_is_read_through_git() {
    let f = fixture(&[]);
    f.git(&["config", "uploadpack.allowFilter", "true"]);
    let api = emulator(
        &f,
        ApiFlavour::DataCenter {
            version: "8.19.1".into(),
            context: None,
        },
    );
    add_rest_connector(&f, "dc", "bitbucket-server", &api, &[]);
    let tested = f
        .app
        .cli(&["connector", "test", "dc"], None)
        .ok()
        .stdout
        .clone();
    assert!(tested.contains("; partial clone;"), "{tested}");
    enable(&f, "dc");
    wait_file(&f, &format!("{SHOP}/Services/web/Index.yaml"), WEB);
    let read = wait_read(&f, "enable");
    assert_eq!(read["method"], "git", "{read}");
    assert!(
        read["reason"]
            .as_str()
            .expect("reason")
            .contains("partial clone"),
        "{read}"
    );
}

#[test]
fn fetch_api_without_rest_credentials_is_refused_naming_the_flag() {
    let f = fixture(&[]);
    let api = emulator(&f, ApiFlavour::Cloud);
    // `--fetch api` needs REST credentials: a Cloud API token without its account email is
    // refused, naming the field.
    let refused = f.app.cli(
        &[
            "connector",
            "add",
            "--name",
            "nomail",
            "--provider",
            "bitbucket-cloud",
            "--url",
            &f.server.repo_url(REPO),
            "--username",
            "jdoe",
            "--password-secret",
            "bb-token",
            "--branch",
            "main",
            "--fetch",
            "api",
            "--api-url",
            &api.base_url(),
            "--no-test",
        ],
        None,
    );
    let stderr = refused.fails().stderr.clone();
    assert!(stderr.contains("--api-username"), "{stderr}");
    let shown = f.app.cli(&["connector", "show", "nomail"], None);
    shown.fails();
    assert!(
        shown.stderr.contains("nomail"),
        "nothing was saved: {}",
        shown.stderr
    );
}

/// `--fetch api` on Cloud: reposync's commits go through `POST src` without a clone, exactly
/// once even when the write's answer is lost after it landed, and come back recognised as
/// reposync's own.
#[test]
fn cloud_commits_through_rest_exactly_once_even_when_the_answer_is_lost() {
    let f = fixture(&[]);
    let api = emulator(&f, ApiFlavour::Cloud);
    add_rest_connector(
        &f,
        "cloud",
        "bitbucket-cloud",
        &api,
        &["--api-username", EMAIL, "--fetch", "api"],
    );
    enable(&f, "cloud");
    wait_file(&f, &format!("{SHOP}/Services/web/Index.yaml"), WEB);
    f.wait_settled();
    let before = f.head().expect("head");

    // The write lands, and its answer never arrives.
    api.inject(ApiFault::DropAfterHandling);
    let path = format!("{SHOP}/Workflows/deploy.yaml");
    f.put(&path, &crate::common::git_fixture::workflow("through REST"));
    let after = f.wait_settled();
    assert_ne!(after, before);
    let log = api.log();
    assert!(
        log.contains("POST /2.0/repositories/acme/config/src"),
        "{log}"
    );
    assert!(log.contains("hangup"), "the answer was lost: {log}");
    let messages = f.git(&["log", "--format=%B%x00", &format!("{before}..{after}")]);
    let carrying: Vec<&str> = messages
        .split('\0')
        .filter(|m| m.contains("Reposync-Changeset:"))
        .collect();
    assert_eq!(
        carrying.len(),
        1,
        "exactly one commit carries the change: {messages}"
    );
    assert!(
        carrying[0].contains(&format!("ADD: {path}")),
        "{}",
        carrying[0]
    );
    assert_eq!(
        f.root.read_file(REPO, "main", &path).expect("the file"),
        crate::common::git_fixture::workflow("through REST").trim_end()
    );
    assert!(
        f.git(&["log", "-1", "--format=%an <%ae>", &after])
            .ends_with("<git-sync@reposync.invalid>"),
        "the connector's author"
    );

    // The commit comes back through REST and is recognised as reposync's own.
    f.wait_read_back();
    let activity = f.app.cli(&["--json", "sync", "activity"], None).ok().json();
    let inbound = activity["inbound"]
        .as_array()
        .expect("inbound")
        .iter()
        .find(|c| c["commit_id"] == after.as_str())
        .expect("the commit was read back")
        .clone();
    assert_eq!(inbound["status"], "ours", "{inbound}");

    // Bitbucket refuses a write built on a head the branch no longer has (409): reposync reads
    // the branch again and makes the commit once, on the head it now reads.
    api.inject(ApiFault::RefuseWrite(409));
    let second = format!("{SHOP}/Workflows/again.yaml");
    f.put(
        &second,
        &crate::common::git_fixture::workflow("after a 409"),
    );
    let last = f.wait_settled();
    assert!(api.log().contains("-> 409"), "{}", api.log());
    let messages = f.git(&["log", "--format=%B%x00", &format!("{after}..{last}")]);
    let carrying = messages
        .split('\0')
        .filter(|m| m.contains("Reposync-Changeset:"))
        .count();
    assert_eq!(carrying, 1, "one commit after the refusal: {messages}");
    assert!(
        f.app
            .cli(&["sync", "errors"], None)
            .ok()
            .stdout
            .contains("No sync errors")
    );
}

/// Data Center caps `changes` and cannot page past the cap: the new commits are then read as
/// the scope whole, through one archive, and still applied.
#[test]
fn a_capped_data_center_change_list_is_read_through_an_archive_of_the_scope() {
    let f = fixture(&[]);
    let api = emulator(
        &f,
        ApiFlavour::DataCenter {
            version: "8.19.1".into(),
            context: None,
        },
    );
    add_rest_connector(&f, "dc", "bitbucket-server", &api, &[]);
    enable(&f, "dc");
    wait_file(&f, &format!("{SHOP}/Services/web/Index.yaml"), WEB);
    api.set_changes_cap(2);
    let changed = WEB.replace("SSH", "KUBERNETES");
    f.root
        .commit(
            REPO,
            "main",
            &[
                (&format!("{SHOP}/Services/web/Index.yaml"), changed.as_str()),
                ("assets/a.bin", "a"),
                ("assets/b.bin", "b"),
            ],
            "three files, past the cap",
        )
        .expect("commit");
    f.app.cli(&["sync", "refresh", "--app", "Shop"], None).ok();
    wait_file(&f, &format!("{SHOP}/Services/web/Index.yaml"), &changed);
    let read = reads(&f)
        .into_iter()
        .find(|r| r["kind"] != "enable")
        .expect("the read of the new commit");
    assert_eq!(read["method"], "dc-rest", "{read}");
    assert!(
        read["reason"].as_str().expect("reason").contains("capped"),
        "{read}"
    );
}

/// An SSH connector reads through git only, and its Test says so; given a token of its own
/// for REST (`--api-token-secret`), it reads through REST like any other.
#[test]
fn an_ssh_connector_uses_rest_only_with_a_token_of_its_own() {
    use reposync_testkit::{SshServer, ensure_git_user};
    ensure_git_user().expect("git user");
    let f = fixture(&[]);
    let api = emulator(&f, ApiFlavour::Cloud);
    let (key, public) =
        crate::common::ssh_keygen(f.app.dir.path(), "deploy-key", &["-t", "ed25519"], "");
    let sshd =
        f.rt.block_on(SshServer::start(&f.root, &[public]))
            .expect("sshd");
    let known_hosts = f.app.dir.path().join("known_hosts");
    std::fs::write(&known_hosts, format!("{}\n", sshd.known_hosts_line())).expect("hosts");
    f.app
        .cli(
            &[
                "secret",
                "create-ssh",
                "deploy-key",
                "--key-file",
                key.to_str().expect("utf-8"),
            ],
            None,
        )
        .ok();
    let add = |name: &str, extra: &[&str]| {
        let url = sshd.repo_url(REPO);
        let base = api.base_url();
        let mut args = vec![
            "connector",
            "add",
            "--name",
            name,
            "--provider",
            "bitbucket-cloud",
            "--url",
            &url,
            "--ssh-key-secret",
            "deploy-key",
            "--branch",
            "main",
            "--known-hosts-file",
            known_hosts.to_str().expect("utf-8"),
            "--api-url",
            &base,
        ];
        args.extend_from_slice(extra);
        f.app.cli(&args, None).ok();
    };
    add("ssh-only", &[]);
    let tested = f
        .app
        .cli(&["connector", "test", "ssh-only"], None)
        .ok()
        .stdout
        .clone();
    assert!(
        tested.contains("REST unusable: an SSH key cannot call"),
        "{tested}"
    );

    // The access token for REST, Bearer, trusted through the connector's CA.
    let ca_file = f.app.dir.path().join("ca.pem");
    add(
        "ssh-rest",
        &[
            "--api-token-secret",
            "bb-token",
            "--ca-file",
            ca_file.to_str().expect("utf-8"),
        ],
    );
    let tested = f
        .app
        .cli(&["connector", "test", "ssh-rest"], None)
        .ok()
        .stdout
        .clone();
    assert!(tested.contains("REST answers"), "{tested}");
    enable(&f, "ssh-rest");
    wait_file(&f, &format!("{SHOP}/Services/web/Index.yaml"), WEB);
    let read = wait_read(&f, "enable");
    assert_eq!(read["method"], "cloud-rest", "{read}");
}

/// The server is SIGKILLed after its Cloud write landed and before it learnt so: when it runs
/// again, the change is found on the branch by its trailer, and never written twice.
#[test]
fn a_kill_after_a_rest_write_landed_and_before_its_answer_arrived_writes_it_once() {
    let mut f = fixture(&[]);
    let api = emulator(&f, ApiFlavour::Cloud);
    add_rest_connector(
        &f,
        "cloud",
        "bitbucket-cloud",
        &api,
        &["--api-username", EMAIL, "--fetch", "api"],
    );
    enable(&f, "cloud");
    wait_file(&f, &format!("{SHOP}/Services/web/Index.yaml"), WEB);
    let before = f.wait_settled();

    api.inject(ApiFault::HoldAfterHandling);
    let path = format!("{SHOP}/Workflows/held.yaml");
    let yaml = crate::common::git_fixture::workflow("held");
    f.put(&path, &yaml);
    // The barrier: the write is on the branch, its answer waits in the emulator.
    let deadline = Instant::now() + Duration::from_secs(60);
    while api.held_writes() == 0 {
        assert!(Instant::now() < deadline, "no write arrived: {}", api.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_ne!(f.head().expect("head"), before, "the write landed");
    f.app.crash_and_restart();
    api.release_held();

    let after = f.wait_settled();
    let messages = f.git(&["log", "--format=%B%x00", &format!("{before}..{after}")]);
    let carrying = messages
        .split('\0')
        .filter(|m| m.contains("Reposync-Changeset:"))
        .count();
    assert_eq!(
        carrying, 1,
        "the change is in exactly one commit: {messages}"
    );
    assert_eq!(
        f.root.read_file(REPO, "main", &path).expect("the file"),
        yaml.trim_end()
    );
    assert!(
        f.app
            .cli(&["sync", "errors"], None)
            .ok()
            .stdout
            .contains("No sync errors")
    );
}
