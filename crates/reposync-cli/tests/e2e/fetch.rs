//! `reposync fetch` end to end: the real binary reading files of a connector's repository at a
//! branch, a tag or a commit, through git (the testkit's HTTPS server) and through Bitbucket's
//! REST APIs (the emulator, over the same repositories), on the built-in delegate and on a
//! remote one that uploads its archive.

#![allow(clippy::expect_used)] // Test helpers outside #[test] functions may panic.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::delegate::Delegate;
use crate::common::git_fixture::{Fixture, REPO, TOKEN, USER, runtime};
use crate::common::{self, TestApp};
use reposync_testkit::{
    ApiAuth, ApiFlavour, BitbucketApi, GitHttpsServer, RawEntry, RepoRoot, SshServer, TestCa,
    ensure_git_user,
};
use serde_json::Value;

/// The account email a Cloud API token authenticates REST with.
const EMAIL: &str = "jdoe@example.com";

const APP_V1: &str = "kind: Deployment\nreplicas: 1\n";
const APP_V2: &str = "kind: Deployment\nreplicas: 3\n";
const PROD: &str = "env: prod\n";
const DEV: &str = "env: dev\n";

/// The repository: manifests under `deploy/`, a file beside them, and more elsewhere.
fn repo_files() -> Vec<(&'static str, &'static str)> {
    vec![
        ("README.md", "config repository\n"),
        ("deploy/app.yaml", APP_V1),
        ("deploy/values/prod.yaml", PROD),
        ("deploy/values/dev.yaml", DEV),
        ("deployment-notes.txt", "not under deploy/\n"),
        ("other/big.bin", "not read\n"),
    ]
}

/// A server whose repository holds [`repo_files`] at tag `v1` (annotated), then a commit that
/// changes `deploy/app.yaml` and adds a symbolic link under `deploy/`; returns the fixture,
/// v1's commit and the head.
fn fixture() -> (Fixture, String, String) {
    let f = Fixture::https_with(&repo_files(), &[]);
    let v1 = f.head().expect("a head");
    f.git(&["tag", "-a", "v1", "-m", "release 1", &v1]);
    f.root
        .commit(
            REPO,
            "main",
            &[("deploy/app.yaml", APP_V2)],
            "three replicas",
        )
        .expect("commit");
    let head = f
        .root
        .commit_raw(
            REPO,
            "main",
            &[(
                b"deploy/link.yaml".as_slice(),
                RawEntry::Symlink("../README.md".into()),
            )],
            "a link into deploy",
        )
        .expect("commit");
    (f, v1, head)
}

/// The REST emulator over the fixture's repositories. (As the planner's tests make it.)
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

fn add_rest_connector(f: &Fixture, name: &str, provider: &str, api: &BitbucketApi, extra: &[&str]) {
    let url = f.server.repo_url(REPO);
    let base = api.base_url();
    let mut args = vec!["--provider", provider, "--api-url", base.as_str()];
    args.extend_from_slice(extra);
    f.add_connector(name, &url, &args);
}

/// Every file under `dir` with its content, by path relative to `dir`; symbolic links are
/// listed as `-> target`.
fn tree(dir: &Path) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        for entry in std::fs::read_dir(&folder).expect("read_dir").flatten() {
            let path = entry.path();
            let relative = path
                .strip_prefix(dir)
                .expect("under dir")
                .display()
                .to_string();
            let kind = entry.file_type().expect("type");
            if kind.is_symlink() {
                let target = std::fs::read_link(&path).expect("link");
                found.insert(relative, format!("-> {}", target.display()));
            } else if kind.is_dir() {
                pending.push(path);
            } else {
                found.insert(relative, std::fs::read_to_string(&path).expect("read"));
            }
        }
    }
    found
}

fn expected(files: &[(&str, &str)]) -> BTreeMap<String, String> {
    files
        .iter()
        .map(|(path, content)| ((*path).to_owned(), (*content).to_owned()))
        .collect()
}

fn out_dir(f: &Fixture, name: &str) -> PathBuf {
    f.app.dir.path().join(name)
}

#[test]
fn a_folder_at_a_branch_is_written_under_out_through_git_and_a_link_is_reported_not_followed() {
    let (f, _, head) = fixture();
    let out = out_dir(&f, "out");
    let run = f.app.cli(
        &[
            "fetch",
            "--connector",
            "git",
            "--out",
            out.to_str().expect("utf-8"),
            "deploy/",
        ],
        None,
    );
    run.ok();
    assert_eq!(
        run.stdout.trim(),
        format!("commit {head}"),
        "{}",
        run.stderr
    );
    assert_eq!(
        tree(&out),
        expected(&[
            ("deploy/app.yaml", APP_V2),
            ("deploy/values/dev.yaml", DEV),
            ("deploy/values/prod.yaml", PROD),
        ]),
        "exactly the folder's regular files, as in the repository"
    );
    assert!(
        run.stderr
            .contains("warning: deploy/link.yaml was left out"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("fetched 3 file(s)"), "{}", run.stderr);

    // The JSON result says what was read and how.
    let json = f
        .app
        .cli(&["--json", "fetch", "--connector", "git", "deploy"], None)
        .ok()
        .json();
    assert_eq!(json["commit"], head.as_str());
    assert_eq!(json["ref"], "refs/heads/main");
    assert_eq!(json["read"]["method"], "git", "{json}");
    assert_eq!(json["files"].as_array().expect("files").len(), 3, "{json}");
    assert_eq!(
        json["unrepresentable"][0]["path"], "deploy/link.yaml",
        "{json}"
    );
    assert_eq!(json["unrepresentable"][0]["problem"], "symlink", "{json}");
    assert!(json["archive_bytes"].as_u64().expect("bytes") > 0);

    // Several files need --out: refused, saying so, and nothing is written to stdout.
    let several = f.app.cli(&["fetch", "--connector", "git", "deploy"], None);
    several.fails();
    assert!(several.stderr.contains("--out"), "{}", several.stderr);
    assert!(several.stdout.is_empty(), "{}", several.stdout);

    // A link already in DIR where a folder goes is never followed.
    let trap = out_dir(&f, "trap");
    let elsewhere = out_dir(&f, "elsewhere");
    std::fs::create_dir_all(&trap).expect("trap");
    std::fs::create_dir_all(&elsewhere).expect("elsewhere");
    std::os::unix::fs::symlink(&elsewhere, trap.join("deploy")).expect("symlink");
    let refused = f.app.cli(
        &[
            "fetch",
            "--connector",
            "git",
            "--out",
            trap.to_str().expect("utf-8"),
            "deploy",
        ],
        None,
    );
    refused.fails();
    assert!(
        refused.stderr.contains("symbolic link"),
        "{}",
        refused.stderr
    );
    assert!(
        tree(&elsewhere).is_empty(),
        "nothing written through the link"
    );
}

#[test]
fn a_single_file_goes_to_stdout_at_a_tag_and_at_a_commit_and_the_audit_trail_notes_the_fetch() {
    let (f, v1, head) = fixture();
    let at_tag = f.app.cli(
        &[
            "fetch",
            "--connector",
            "git",
            "--ref",
            "v1",
            "deploy/app.yaml",
        ],
        None,
    );
    at_tag.ok();
    assert_eq!(at_tag.stdout, APP_V1, "the annotated tag's commit, peeled");
    assert!(
        at_tag.stderr.contains(&format!("commit {v1}")),
        "{}",
        at_tag.stderr
    );
    let at_commit = f.app.cli(
        &[
            "fetch",
            "--connector",
            "git",
            "--ref",
            &v1,
            "deploy/app.yaml",
        ],
        None,
    );
    at_commit.ok();
    assert_eq!(at_commit.stdout, APP_V1);
    let json = f
        .app
        .cli(
            &[
                "--json",
                "fetch",
                "--connector",
                "git",
                "--ref",
                "v1",
                "deploy/app.yaml",
            ],
            None,
        )
        .ok()
        .json();
    assert_eq!(json["ref"], "refs/tags/v1", "{json}");
    assert_eq!(json["commit"], v1.as_str());
    let at_head = f
        .app
        .cli(&["fetch", "--connector", "git", "deploy/app.yaml"], None);
    assert_eq!(at_head.ok().stdout, APP_V2);
    assert!(at_head.stderr.contains(&head), "{}", at_head.stderr);

    // The audit trail names the connector, the ref and the paths, never the contents.
    let trail = f
        .app
        .cli(&["--json", "audit", "--limit", "100"], None)
        .ok()
        .json();
    let fetches: Vec<&Value> = trail["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|event| event["use_case"] == "connector.fetch")
        .collect();
    assert!(fetches.len() >= 3, "{trail}");
    let noted = fetches
        .iter()
        .find(|event| {
            event["detail"]
                .as_str()
                .is_some_and(|detail| detail.contains("ref=\"v1\""))
        })
        .expect("a fetch at v1 in the trail");
    assert_eq!(noted["target"], "git", "{noted}");
    let detail = noted["detail"].as_str().expect("detail");
    assert!(detail.contains("deploy/app.yaml"), "{detail}");
    assert!(
        !trail.to_string().contains("replicas"),
        "never the contents"
    );
}

#[test]
fn paths_that_leave_the_repository_are_refused_before_any_task_and_missing_ones_are_named() {
    let (f, _, head) = fixture();
    for bad in ["../secrets.yaml", "/etc/passwd", "deploy/.git/config"] {
        let run = f.app.cli(&["fetch", "--connector", "git", bad], None);
        run.fails();
        assert!(run.stderr.contains("PATH"), "{bad}: {}", run.stderr);
        assert!(run.stderr.contains(bad), "{bad}: {}", run.stderr);
        assert!(
            !run.stderr.contains("waiting for the fetch"),
            "refused before a task was queued: {}",
            run.stderr
        );
    }
    let trail = f
        .app
        .cli(&["--json", "audit", "--limit", "100"], None)
        .ok()
        .json();
    let refused = trail["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|event| event["use_case"] == "connector.fetch")
        .all(|event| event["outcome"] == "refused" && event["status"] == 422);
    assert!(refused, "{trail}");

    let missing = f.app.cli(
        &[
            "fetch",
            "--connector",
            "git",
            "deploy/app.yaml",
            "deploy/nothing-here.yaml",
        ],
        None,
    );
    missing.fails();
    assert!(
        missing
            .stderr
            .contains("deploy/nothing-here.yaml does not exist"),
        "{}",
        missing.stderr
    );
    assert!(missing.stderr.contains(&head), "{}", missing.stderr);
    let no_ref = f.app.cli(
        &[
            "fetch",
            "--connector",
            "git",
            "--ref",
            "no-such-branch",
            "deploy",
        ],
        None,
    );
    no_ref.fails();
    assert!(no_ref.stderr.contains("--ref"), "{}", no_ref.stderr);
    assert!(
        no_ref.stderr.contains("no-such-branch"),
        "{}",
        no_ref.stderr
    );
}

#[test]
fn cloud_reads_through_src_and_a_tag_through_its_ref() {
    let (f, v1, head) = fixture();
    let api = emulator(&f, ApiFlavour::Cloud);
    add_rest_connector(
        &f,
        "cloud",
        "bitbucket-cloud",
        &api,
        &["--api-username", EMAIL],
    );
    api.reset_counts();
    let out = out_dir(&f, "cloud");
    let json = f
        .app
        .cli(
            &[
                "--json",
                "fetch",
                "--connector",
                "cloud",
                "--out",
                out.to_str().expect("utf-8"),
                "deploy",
            ],
            None,
        )
        .ok()
        .json();
    assert_eq!(json["read"]["method"], "cloud-rest", "{json}");
    assert_eq!(json["commit"], head.as_str());
    assert_eq!(json["unrepresentable"][0]["problem"], "symlink", "{json}");
    assert_eq!(
        tree(&out),
        expected(&[
            ("deploy/app.yaml", APP_V2),
            ("deploy/values/dev.yaml", DEV),
            ("deploy/values/prod.yaml", PROD),
        ])
    );
    let log = api.log();
    assert!(!log.contains("other/"), "nothing else is read: {log}");
    assert!(!log.contains("README"), "the link is never followed: {log}");
    // A tag, by its full name, through `refs/tags`.
    let at_tag = f.app.cli(
        &[
            "fetch",
            "--connector",
            "cloud",
            "--ref",
            "refs/tags/v1",
            "deploy/app.yaml",
        ],
        None,
    );
    assert_eq!(at_tag.ok().stdout, APP_V1, "{}", at_tag.stderr);
    assert!(at_tag.stderr.contains(&v1), "{}", at_tag.stderr);
    assert!(api.log().contains("/refs/tags/v1"), "{}", api.log());
    // `--fetch git` on the same repository reads through git.
    f.add_connector(
        "cloud-git",
        &f.server.repo_url(REPO),
        &[
            "--provider",
            "bitbucket-cloud",
            "--api-url",
            &api.base_url(),
            "--api-username",
            EMAIL,
            "--fetch",
            "git",
        ],
    );
    let json = f
        .app
        .cli(
            &[
                "--json",
                "fetch",
                "--connector",
                "cloud-git",
                "deploy/app.yaml",
            ],
            None,
        )
        .ok()
        .json();
    assert_eq!(json["read"]["method"], "git", "{json}");
}

#[test]
fn data_center_reads_the_paths_in_one_archive_request() {
    let (f, v1, head) = fixture();
    let api = emulator(
        &f,
        ApiFlavour::DataCenter {
            version: "8.19.1".into(),
            context: None,
        },
    );
    add_rest_connector(&f, "dc", "bitbucket-server", &api, &[]);
    api.reset_counts();
    let out = out_dir(&f, "dc");
    let json = f
        .app
        .cli(
            &[
                "--json",
                "fetch",
                "--connector",
                "dc",
                "--out",
                out.to_str().expect("utf-8"),
                "deploy/values",
                "README.md",
            ],
            None,
        )
        .ok()
        .json();
    assert_eq!(json["read"]["method"], "dc-rest", "{json}");
    assert_eq!(json["commit"], head.as_str());
    assert_eq!(
        json["read"]["requests"], 2,
        "the branch, then one archive: {json}"
    );
    assert_eq!(
        api.log().matches("/archive?").count(),
        1,
        "one archive request: {}",
        api.log()
    );
    assert_eq!(
        tree(&out),
        expected(&[
            ("README.md", "config repository\n"),
            ("deploy/values/dev.yaml", DEV),
            ("deploy/values/prod.yaml", PROD),
        ])
    );
    // A bare name that is no branch is the tag: `tags/{name}` gives its commit.
    let json = f
        .app
        .cli(
            &[
                "--json",
                "fetch",
                "--connector",
                "dc",
                "--ref",
                "v1",
                "deploy/app.yaml",
            ],
            None,
        )
        .ok()
        .json();
    assert_eq!(json["read"]["method"], "dc-rest", "{json}");
    assert_eq!(json["ref"], "refs/tags/v1", "{json}");
    assert_eq!(json["commit"], v1.as_str(), "{json}");
    assert!(api.log().contains("/tags/v1"), "{}", api.log());
    let at_tag = f.app.cli(
        &[
            "fetch",
            "--connector",
            "dc",
            "--ref",
            "v1",
            "deploy/app.yaml",
        ],
        None,
    );
    assert_eq!(at_tag.ok().stdout, APP_V1);
}

#[test]
fn a_remote_delegate_uploads_its_archive_and_the_download_matches_the_repository() {
    let rt = runtime();
    let root = RepoRoot::new().expect("root");
    root.create_repo(REPO, "main", &repo_files()).expect("repo");
    let ca = TestCa::new("fetch CA").expect("ca");
    let server = rt
        .block_on(GitHttpsServer::start(&root, &ca, USER, TOKEN))
        .expect("https");
    let app = TestApp::spawn_with(&["--no-builtin-delegate"]);
    let ca_file = app.dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.cert_pem()).expect("ca");
    app.cli(
        &["secret", "create", "bb-token", "--value-stdin"],
        Some(TOKEN),
    )
    .ok();
    app.cli(
        &[
            "connector",
            "add",
            "--no-test",
            "--name",
            "git",
            "--url",
            &server.repo_url(REPO),
            "--username",
            USER,
            "--password-secret",
            "bb-token",
            "--branch",
            "main",
            "--ca-file",
            ca_file.to_str().expect("utf-8"),
        ],
        None,
    )
    .ok();
    let created = app
        .cli(&["--json", "delegate-token", "create", "fleet"], None)
        .ok()
        .json();
    let token = created["token"].as_str().expect("token").to_owned();
    let delegate = Delegate::start(&app, "far", &token, &[]);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let listed = app.cli(&["--json", "delegate", "list"], None).ok().json();
        let connected = listed["items"]
            .as_array()
            .expect("items")
            .iter()
            .any(|d| d["name"] == "far" && d["connected"] == true);
        if connected {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never connected: {}",
            delegate.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = app.dir.path().join("out");
    let run = app.cli(
        &[
            "fetch",
            "--connector",
            "git",
            "--out",
            out.to_str().expect("utf-8"),
            "deploy",
            "README.md",
        ],
        None,
    );
    run.ok();
    let head = root.head(REPO, "main").expect("head").expect("a head");
    assert_eq!(run.stdout.trim(), format!("commit {head}"));
    assert_eq!(
        tree(&out),
        expected(&[
            ("README.md", "config repository\n"),
            ("deploy/app.yaml", APP_V1),
            ("deploy/values/dev.yaml", DEV),
            ("deploy/values/prod.yaml", PROD),
        ])
    );
    // The archive came over HTTP, and the delegate's temporary copy is gone.
    assert!(
        app.server_log().contains("received a fetch's archive"),
        "{}",
        app.server_log()
    );
    let kept: Vec<_> = std::fs::read_dir(app.data_dir().join("fetches"))
        .expect("fetches folder")
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        kept.len() == 1 && kept[0].ends_with(".tar"),
        "one archive kept, no upload left over: {kept:?}"
    );
    let temp = app.dir.path().join("delegate-far").join("tmp");
    let left: Vec<_> = std::fs::read_dir(&temp)
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(
        left.iter()
            .all(|path| !path.to_string_lossy().contains("reposync-fetch")),
        "the delegate removed its archive: {left:?}"
    );
    app.assert_no_leak(&[TOKEN]);
    // The delegate token is shown once, when it is made; never logged or stored.
    app.assert_not_logged_or_stored(&[&token]);
}

#[test]
fn an_ssh_connector_fetches_a_folder_and_a_tag_through_git() {
    ensure_git_user().expect("git user");
    let rt = runtime();
    let root = RepoRoot::new().expect("root");
    let first = root.create_repo(REPO, "main", &repo_files()).expect("repo");
    let repo = root.repo_path(REPO).expect("repo path");
    root.git()
        .run(&repo, &["tag", "-a", "v1", "-m", "release 1", &first])
        .expect("tag");
    root.commit(
        REPO,
        "main",
        &[("deploy/app.yaml", APP_V2)],
        "three replicas",
    )
    .expect("commit");
    let app = TestApp::spawn();
    let (key, public) = common::ssh_keygen(app.dir.path(), "deploy-key", &["-t", "ed25519"], "");
    let server = rt
        .block_on(SshServer::start(&root, &[public]))
        .expect("sshd");
    let known_hosts = app.dir.path().join("known_hosts");
    std::fs::write(&known_hosts, format!("{}\n", server.known_hosts_line())).expect("hosts");
    app.cli(
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
    app.cli(
        &[
            "connector",
            "add",
            "--name",
            "ssh",
            "--url",
            &server.repo_url(REPO),
            "--ssh-key-secret",
            "deploy-key",
            "--branch",
            "main",
            "--known-hosts-file",
            known_hosts.to_str().expect("utf-8"),
        ],
        None,
    )
    .ok();
    let out = app.dir.path().join("out");
    let json = app
        .cli(
            &[
                "--json",
                "fetch",
                "--connector",
                "ssh",
                "--out",
                out.to_str().expect("utf-8"),
                "deploy",
            ],
            None,
        )
        .ok()
        .json();
    assert_eq!(json["read"]["method"], "git", "{json}");
    assert_eq!(
        tree(&out),
        expected(&[
            ("deploy/app.yaml", APP_V2),
            ("deploy/values/dev.yaml", DEV),
            ("deploy/values/prod.yaml", PROD),
        ])
    );
    let at_tag = app.cli(
        &[
            "fetch",
            "--connector",
            "ssh",
            "--ref",
            "v1",
            "deploy/app.yaml",
        ],
        None,
    );
    assert_eq!(at_tag.ok().stdout, APP_V1, "{}", at_tag.stderr);
    assert!(at_tag.stderr.contains(&first), "{}", at_tag.stderr);
    let private = std::fs::read_to_string(&key).expect("key");
    app.assert_no_leak(&[&common::key_body_line(&private)]);
}
