//! The REST clients against the testkit's Bitbucket emulator: real HTTPS, real repositories,
//! the documented shapes, and the faults Bitbucket is known for.

#![allow(clippy::expect_used)] // Test helpers outside #[test] functions may panic.

use std::io::Read as _;
use std::sync::Arc;
use std::time::Duration;

use reposync_bitbucket::rest::{
    Budgets, CloudClient, CloudCommitRequest, DcClient, DiffStatus, RequestBudget, RestConfig,
    RestCredential, RestError, RetryPolicy, TreeEntryKind,
};
use reposync_model::ObjectId;
use reposync_testkit::{ApiAuth, ApiFault, ApiFlavour, BitbucketApi, RawEntry, RepoRoot, TestCa};
use secrecy::SecretString;
use url::Url;

const REPO: &str = "acme/config.git";
const TOKEN: &str = "rest-token-7c1f";
const EMAIL: &str = "alice@example.com";

/// A repository, the emulator serving it, and the test CA.
struct Fixture {
    root: RepoRoot,
    api: BitbucketApi,
}

async fn fixture(flavour: ApiFlavour) -> Fixture {
    let root = RepoRoot::new().expect("a repository root");
    root.create_repo(
        REPO,
        "main",
        &[
            ("Setup/Defaults.yaml", "harnessApiVersion: '1.0'\n"),
            ("Setup/Cloud Providers/aws.yaml", "type: AWS\n"),
            ("Setup/Applications/shop/Index.yaml", "type: APPLICATION\n"),
            ("assets/logo.bin", "\u{0}\u{1}binary"),
        ],
    )
    .expect("a repository");
    let ca = TestCa::new("reposync REST tests").expect("a CA");
    let api = BitbucketApi::start(
        &root,
        &ca,
        flavour,
        ApiAuth {
            basic: Some((EMAIL.into(), TOKEN.into())),
            bearer: Some(TOKEN.into()),
        },
    )
    .await
    .expect("the emulator");
    Fixture { root, api }
}

fn config(fx: &Fixture, credential: RestCredential) -> RestConfig {
    let mut config = RestConfig::new(
        Url::parse(&fx.api.base_url()).expect("a base URL"),
        credential,
        Some(fx.api.ca_pem()),
    );
    config.timeout = Duration::from_secs(20);
    // Retries wait milliseconds here; what is tested is that they happen.
    config.retry = RetryPolicy {
        attempts: 3,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_secs(5),
    };
    config
}

fn basic() -> RestCredential {
    RestCredential::Basic {
        username: EMAIL.into(),
        password: SecretString::from(TOKEN),
    }
}

fn cloud(fx: &Fixture, budget: Arc<RequestBudget>) -> CloudClient {
    CloudClient::new(config(fx, basic()), budget, "acme", "config").expect("a client")
}

fn dc(fx: &Fixture) -> DcClient {
    DcClient::new(
        config(fx, RestCredential::Bearer(SecretString::from(TOKEN))),
        Arc::new(RequestBudget::new(1_000)),
        "ACME",
        "config",
    )
    .expect("a client")
}

fn head(fx: &Fixture, branch: &str) -> ObjectId {
    let head = fx.root.head(REPO, branch).expect("git").expect("a branch");
    ObjectId::parse(&head).expect("an id")
}

fn fresh_budget() -> Arc<RequestBudget> {
    Arc::new(RequestBudget::new(1_000))
}

#[tokio::test]
async fn cloud_lists_a_scope_across_pages_and_reads_its_files() {
    let fx = fixture(ApiFlavour::Cloud).await;
    // More entries than one page holds, a link and an executable.
    let many: Vec<(String, String)> = (0..130)
        .map(|i| {
            (
                format!("Setup/Applications/shop/Services/s{i:03}.yaml"),
                format!("n: {i}\n"),
            )
        })
        .collect();
    let files: Vec<(&str, &str)> = many.iter().map(|(p, c)| (p.as_str(), c.as_str())).collect();
    fx.root
        .commit(REPO, "main", &files, "many")
        .expect("commit");
    fx.root
        .commit_raw(
            REPO,
            "main",
            &[(
                b"Setup/link.yaml",
                RawEntry::Symlink("../assets/logo.bin".into()),
            )],
            "a link",
        )
        .expect("commit");
    let client = cloud(&fx, fresh_budget());
    let commit = client.branch_head("main").await.expect("the head");
    assert_eq!(commit, head(&fx, "main"));

    let entries = client
        .list_tree(&commit, "Setup", 10_000)
        .await
        .expect("a listing");
    let files: Vec<_> = entries
        .iter()
        .filter(|e| e.kind == TreeEntryKind::File)
        .collect();
    assert_eq!(
        files.len(),
        133,
        "every file under Setup/, and nothing outside it"
    );
    assert!(entries.iter().all(|e| e.path.starts_with("Setup/")));
    let link = entries
        .iter()
        .find(|e| e.path == "Setup/link.yaml")
        .expect("the link");
    assert_eq!(link.kind, TreeEntryKind::Symlink);
    assert!(
        entries
            .iter()
            .any(|e| e.path == "Setup/Cloud Providers/aws.yaml")
    );

    let content = client
        .file(&commit, "Setup/Cloud Providers/aws.yaml")
        .await
        .expect("a file in a folder with a space");
    assert_eq!(content, b"type: AWS\n");

    // A listing bigger than the caller allows stops early.
    let bounded = client.list_tree(&commit, "Setup", 20).await;
    assert!(
        matches!(bounded, Err(RestError::TooLarge { .. })),
        "{bounded:?}"
    );
}

#[tokio::test]
async fn a_branch_holding_a_slash_is_resolved_to_its_commit() {
    let fx = fixture(ApiFlavour::Cloud).await;
    fx.root
        .commit(
            REPO,
            "feature/x",
            &[("Setup/Defaults.yaml", "x: 1\n")],
            "on a branch with a slash",
        )
        .expect("commit");
    let client = cloud(&fx, fresh_budget());
    let commit = client.branch_head("feature/x").await.expect("resolved");
    assert_eq!(commit, head(&fx, "feature/x"));
    assert_eq!(
        client
            .file(&commit, "Setup/Defaults.yaml")
            .await
            .expect("read"),
        b"x: 1\n"
    );
    let missing = client.branch_head("feature/none").await;
    assert!(
        matches!(missing, Err(RestError::NotFound { .. })),
        "{missing:?}"
    );
}

#[tokio::test]
async fn diffstat_lists_old_to_new_whatever_cloud_calls_its_order() {
    let fx = fixture(ApiFlavour::Cloud).await;
    let old = head(&fx, "main");
    fx.root
        .commit(
            REPO,
            "main",
            &[
                ("Setup/new.yaml", "a: 1\n"),
                ("Setup/Defaults.yaml", "harnessApiVersion: '2.0'\n"),
            ],
            "add and change",
        )
        .expect("commit");
    let new = head(&fx, "main");
    let client = cloud(&fx, fresh_budget());
    let mut changes = client.diffstat(&old, &new).await.expect("a diffstat");
    changes.sort_by(|a, b| a.new_path.cmp(&b.new_path));
    assert_eq!(changes.len(), 2);
    assert_eq!(changes[0].status, DiffStatus::Modified);
    assert_eq!(changes[0].new_path.as_deref(), Some("Setup/Defaults.yaml"));
    assert_eq!(
        changes[1].status,
        DiffStatus::Added,
        "an added file, not a removed one"
    );
    assert_eq!(changes[1].old_path, None);

    let commit = client.commit(new.as_str()).await.expect("the commit");
    assert_eq!(commit.parents, vec![old]);
    assert_eq!(commit.message.trim(), "add and change");
    assert!(commit.committed_at > 1_600_000_000);
}

#[tokio::test]
async fn a_refused_token_is_unauthorized_with_cloud_s_plain_text() {
    let fx = fixture(ApiFlavour::Cloud).await;
    let wrong = RestCredential::Basic {
        username: EMAIL.into(),
        password: SecretString::from("wrong-token"),
    };
    let client =
        CloudClient::new(config(&fx, wrong), fresh_budget(), "acme", "config").expect("a client");
    let error = client.branch_head("main").await.expect_err("refused");
    assert!(matches!(error, RestError::Unauthorized { .. }), "{error:?}");
    let text = error.to_string();
    assert!(text.contains("--api-username"), "{text}");
    assert!(
        !text.contains("wrong-token"),
        "the token never appears: {text}"
    );
}

#[tokio::test]
async fn server_errors_and_dropped_connections_are_retried() {
    let fx = fixture(ApiFlavour::Cloud).await;
    let client = cloud(&fx, fresh_budget());
    fx.api.inject(ApiFault::ServerError(503));
    fx.api.inject(ApiFault::DropConnection);
    let before = fx.api.requests();
    let commit = client
        .branch_head("main")
        .await
        .expect("the third try answers");
    assert_eq!(commit, head(&fx, "main"));
    assert_eq!(fx.api.requests() - before, 3);
    assert_eq!(client.traffic().requests, 3);
}

#[tokio::test]
async fn a_429_without_retry_after_cools_the_credential_down() {
    let fx = fixture(ApiFlavour::Cloud).await;
    // A cool-down longer than the policy waits: the request gives up at once, and nothing more
    // is sent on that credential until it is over.
    let budget = Arc::new(RequestBudget::with_cool_down(
        1_000,
        Duration::from_secs(600),
    ));
    let client = cloud(&fx, Arc::clone(&budget));
    fx.api
        .inject(ApiFault::TooManyRequests { retry_after: None });
    let error = client.branch_head("main").await.expect_err("rate limited");
    assert_eq!(
        error,
        RestError::RateLimited {
            endpoint: "cloud branch",
            retry_after: None
        }
    );
    let sent = fx.api.requests();
    let refused = client.branch_head("main").await.expect_err("cooling down");
    assert!(
        matches!(refused, RestError::BudgetSpent { .. }),
        "{refused:?}"
    );
    assert_eq!(
        fx.api.requests(),
        sent,
        "the refusal never reached Bitbucket"
    );
    assert_eq!(budget.snapshot().remaining, 0);
    assert!(budget.snapshot().cooling_down_secs.is_some());

    // A short cool-down is waited out, with jitter, and the request then answers.
    let patient = cloud(
        &fx,
        Arc::new(RequestBudget::with_cool_down(
            1_000,
            Duration::from_millis(20),
        )),
    );
    fx.api
        .inject(ApiFault::TooManyRequests { retry_after: None });
    assert_eq!(
        patient
            .branch_head("main")
            .await
            .expect("after the cool-down"),
        head(&fx, "main")
    );
}

#[tokio::test]
async fn the_budget_runs_out_before_bitbucket_does() {
    let fx = fixture(ApiFlavour::Cloud).await;
    fx.api.set_rate_limit(Some(5));
    let client = cloud(&fx, Arc::new(RequestBudget::new(5)));
    for _ in 0..5 {
        client.branch_head("main").await.expect("within the budget");
    }
    let refused = client.branch_head("main").await.expect_err("spent");
    assert_eq!(
        refused,
        RestError::BudgetSpent {
            endpoint: "cloud branch",
            used: 5,
            limit: 5
        }
    );
    assert_eq!(fx.api.requests(), 5);
    assert!(!fx.api.log().contains("-> 429"), "{}", fx.api.log());
}

#[tokio::test]
async fn rate_limit_headers_teach_the_budget() {
    let fx = fixture(ApiFlavour::Cloud).await;
    fx.api.set_rate_limit_headers(Some(2_500), false);
    let budgets = Budgets::new(1_000);
    let budget = budgets.for_credential(&[b"127.0.0.1", b"access-token"]);
    let client = cloud(&fx, Arc::clone(&budget));
    client.branch_head("main").await.expect("the head");
    let snapshot = budget.snapshot();
    assert!(snapshot.headers_seen);
    assert_eq!((snapshot.limit, snapshot.remaining), (2_500, 2_499));

    fx.api.set_rate_limit_headers(Some(2_500), true);
    client.branch_head("main").await.expect("the head");
    assert_eq!(
        budget.remaining(),
        500,
        "near the limit, a fifth is all that is used"
    );
}

#[tokio::test]
async fn cloud_commits_files_on_the_head_and_never_over_a_moved_branch() {
    let fx = fixture(ApiFlavour::Cloud).await;
    let client = cloud(&fx, fresh_budget());
    let parent = head(&fx, "main");
    let request = CloudCommitRequest {
        branch: "main".into(),
        parent: Some(parent.clone()),
        message: "Git Sync from reposync\n\nReposync-Changeset: c1\n".into(),
        author: "reposync <git-sync@reposync.invalid>".into(),
        write: vec![(
            "Setup/Applications/shop/Index.yaml".into(),
            b"type: APPLICATION\nx: 1\n".to_vec(),
        )],
        delete: vec!["Setup/Cloud Providers/aws.yaml".into()],
    };
    let made = client.commit_files(&request).await.expect("a commit");
    assert_eq!(made, head(&fx, "main"));
    // `read_file` trims, as every git output the testkit returns.
    assert_eq!(
        fx.root
            .read_file(REPO, "main", "Setup/Applications/shop/Index.yaml")
            .expect("read"),
        "type: APPLICATION\nx: 1"
    );
    assert!(
        fx.root
            .read_file(REPO, "main", "Setup/Cloud Providers/aws.yaml")
            .is_err()
    );
    let commit = client.commit(made.as_str()).await.expect("the commit");
    assert_eq!(commit.parents, vec![parent.clone()]);
    assert!(commit.message.contains("Reposync-Changeset: c1"));
    assert_eq!(commit.author_email, "git-sync@reposync.invalid");

    // Built on the old head again: 409, and the branch keeps the commit above.
    let stale = client
        .commit_files(&request)
        .await
        .expect_err("the branch moved");
    assert!(matches!(stale, RestError::Conflict { .. }), "{stale:?}");
    assert_eq!(head(&fx, "main"), made);
}

#[tokio::test]
async fn data_center_reads_its_version_files_archives_and_changes() {
    let fx = fixture(ApiFlavour::DataCenter {
        version: "8.19.1".into(),
        context: Some("bitbucket".into()),
    })
    .await;
    let client = dc(&fx);
    let properties = client.server_properties().await.expect("the version");
    assert_eq!(properties.version, "8.19.1");
    assert!(properties.has_archive_path_filter());

    let old = client.branch_head("main").await.expect("the head");
    assert_eq!(old, head(&fx, "main"));
    let mut files = client.files(&old, "Setup").await.expect("a file list");
    files.sort();
    assert_eq!(
        files,
        [
            "Setup/Applications/shop/Index.yaml",
            "Setup/Cloud Providers/aws.yaml",
            "Setup/Defaults.yaml"
        ]
    );
    let mut children: Vec<(String, TreeEntryKind)> = client
        .browse(&old, "Setup")
        .await
        .expect("a folder's children")
        .into_iter()
        .map(|entry| (entry.path, entry.kind))
        .collect();
    children.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        children,
        [
            ("Setup/Applications".to_owned(), TreeEntryKind::Directory),
            ("Setup/Cloud Providers".to_owned(), TreeEntryKind::Directory),
            ("Setup/Defaults.yaml".to_owned(), TreeEntryKind::File),
        ]
    );
    assert_eq!(
        client.raw(&old, "Setup/Defaults.yaml").await.expect("raw"),
        b"harnessApiVersion: '1.0'\n"
    );

    let archive = client.archive(&old, &["Setup"]).await.expect("an archive");
    let mut names = Vec::new();
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(archive.as_slice()));
    for entry in tar.entries().expect("a tar") {
        let mut entry = entry.expect("an entry");
        if entry.header().entry_type().is_file() {
            let mut content = Vec::new();
            entry.read_to_end(&mut content).expect("content");
            names.push(entry.path().expect("a path").display().to_string());
        }
    }
    names.sort();
    assert_eq!(names, files, "the archive holds Setup/ and nothing else");

    fx.root
        .commit(
            REPO,
            "main",
            &[
                ("Setup/a.yaml", "a\n"),
                ("Setup/b.yaml", "b\n"),
                ("assets/x.bin", "x"),
            ],
            "three",
        )
        .expect("commit");
    let new = head(&fx, "main");
    let changes = client.changes(&old, &new).await.expect("changes");
    assert!(!changes.capped);
    assert_eq!(changes.files.len(), 3);
    assert!(changes.files.iter().all(|c| c.status == DiffStatus::Added));

    fx.api.set_changes_cap(2);
    let capped = client.changes(&old, &new).await.expect("changes");
    assert!(capped.capped, "past the cap the list says it is incomplete");

    let error = client
        .commit(&"0".repeat(40))
        .await
        .expect_err("no such commit");
    assert!(matches!(error, RestError::NotFound { .. }), "{error:?}");
    assert!(error.to_string().contains("does not exist"), "{error}");
}

#[tokio::test]
async fn an_old_data_center_has_no_archive() {
    let fx = fixture(ApiFlavour::DataCenter {
        version: "5.0.2".into(),
        context: None,
    })
    .await;
    let client = dc(&fx);
    let properties = client.server_properties().await.expect("the version");
    assert!(!properties.has_archive_path_filter());
    let commit = client.branch_head("main").await.expect("the head");
    let missing = client.archive(&commit, &["Setup"]).await;
    assert!(
        matches!(missing, Err(RestError::NotFound { .. })),
        "{missing:?}"
    );
}
