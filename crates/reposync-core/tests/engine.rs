//! The Git → reposync engine as a library: the inbox's step function over a real SQLite
//! store, reading scripted commits (in place of a delegate) and applying them with the real
//! use case, `reposync_core::inbound::apply_commit`; and what sync activity then shows. Then
//! enabling sync for every scope from one scripted read of the branch
//! (`reposync_core::links::run_enable`).

#![allow(clippy::expect_used, clippy::unwrap_used)] // Test helpers may panic.

use std::collections::VecDeque;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use parking_lot::Mutex;
use reposync_api::{
    ChangedFileRead, CommitRead, FileContent, ReadReport, SyncEnableRequest, SyncEnabledAll,
    SyncJob, SyncJobResult, SyncTarget, TestResult,
};
use reposync_core::connections::{Delegates, Tested};
use reposync_core::links;
use reposync_core::tree::{TreeEdit, TreeOutcome, apply_edit};
use reposync_model::{AttemptId, ConnectorDraft, GitConnector, ObjectId, SecretName, TaskId};
use reposync_secrets::MasterKey;
use reposync_store::{
    ChangesetStatus, ConnectorRecord, Fence, NewSyncLink, SecretKind, Store, SyncBranch,
    WebhookChange,
};
use reposync_store::{ReadKind, TaskStatus};
use reposync_sync::{DispatchFailure, Inbound, Inbox, JobAnswer, ReadCommit};

const SHOP: &str = "Setup/Applications/Shop";
const BASE: &str = "1111111111111111111111111111111111111111";

fn oid(text: &str) -> ObjectId {
    ObjectId::parse(text).expect("object id")
}

fn service(name: &str) -> String {
    format!("{SHOP}/Services/{name}/Index.yaml")
}

fn workflow_path(name: &str) -> String {
    format!("{SHOP}/Workflows/{name}.yaml")
}

fn workflow(description: &str) -> String {
    format!(
        "harnessApiVersion: '1.0'\ntype: BASIC\ndescription: {description}\norchestration:\n  type: BASIC_WORKFLOW\nserviceName: cart\n"
    )
}

const SERVICE: &str = "harnessApiVersion: '1.0'\ntype: SERVICE\ndeploymentType: KUBERNETES\n";

/// Reads scripted commits, as the task `task` when one is set; applies them with the real
/// use case.
struct Scripted {
    store: Store,
    reads: Mutex<VecDeque<SyncJobResult>>,
    task: Mutex<Option<TaskId>>,
}

#[async_trait::async_trait]
impl Inbound for Scripted {
    async fn fetch_changes(
        &self,
        _branch: &SyncBranch,
        _since: Option<&ObjectId>,
        _max_commits: usize,
    ) -> Result<JobAnswer, DispatchFailure> {
        Ok(JobAnswer {
            result: self.reads.lock().pop_front().expect("a scripted read"),
            task: self.task.lock().clone(),
        })
    }

    async fn apply(
        &self,
        branch: &SyncBranch,
        commit: &ReadCommit,
        fence: Option<&Fence>,
    ) -> Result<(), String> {
        reposync_core::inbound::apply_commit(&self.store, branch, commit, fence)
            .await
            .map_err(|e| e.to_string())
    }

    async fn read_head(&self, _branch: &SyncBranch) -> Result<Option<ObjectId>, DispatchFailure> {
        Ok(None)
    }
}

/// A commit of the branch changing `files` (`None` deletes).
fn commit(id: char, files: &[(&str, Option<&str>)]) -> CommitRead {
    CommitRead {
        commit: id.to_string().repeat(40),
        parent: None,
        message: "from Git".into(),
        author_name: "Dev".into(),
        author_email: "dev@example.com".into(),
        committed_at: 0,
        files: files
            .iter()
            .map(|(path, content)| ChangedFileRead {
                op: if content.is_some() {
                    "modify"
                } else {
                    "delete"
                }
                .into(),
                path: (*path).into(),
                from: None,
                content: content.map(|c| STANDARD.encode(c)),
            })
            .collect(),
        unrepresentable: Vec::new(),
    }
}

struct Engine {
    store: Store,
    inbound: Arc<Scripted>,
    inbox: Inbox,
    branch: SyncBranch,
}

/// Shop, with its service, linked to `main`; an inbox reading scripted commits.
async fn engine(dir: &tempfile::TempDir) -> Engine {
    let (store, connector) = shop_unlinked(dir).await;
    let link = store
        .create_link(
            &NewSyncLink {
                app: Some("Shop".into()),
                connector_id: connector.id,
                repo: None,
                branch: "main".into(),
                base_commit: Some(oid(BASE)),
            },
            &[],
        )
        .await
        .expect("link");
    let branch = store
        .branch_of_link(&link)
        .await
        .expect("branch")
        .expect("branch");
    let inbound = Arc::new(Scripted {
        store: store.clone(),
        reads: Mutex::default(),
        task: Mutex::default(),
    });
    let inbox = Inbox::new(store.clone(), Arc::clone(&inbound) as Arc<dyn Inbound>);
    Engine {
        store,
        inbound,
        inbox,
        branch,
    }
}

/// A store with the connector `git` (branch `main`) and the application Shop with its
/// service, nothing linked.
async fn shop_unlinked(dir: &tempfile::TempDir) -> (Store, ConnectorRecord) {
    let store = Store::open(&Store::sqlite_url(dir.path()), MasterKey::generate())
        .await
        .expect("store");
    store
        .create_secret(
            &SecretName::parse("bb").expect("name"),
            SecretKind::Text,
            b"t",
            None,
        )
        .await
        .expect("secret");
    let connector = store
        .create_connector(
            &GitConnector::parse(&ConnectorDraft {
                name: Some("git".into()),
                url: Some("https://bitbucket.org/acme/config.git".into()),
                username: Some("u".into()),
                password_secret: Some("bb".into()),
                branch: Some("main".into()),
                ..Default::default()
            })
            .expect("connector"),
            WebhookChange::Keep,
            None,
        )
        .await
        .expect("connector");
    let edit = TreeEdit {
        files: vec![
            (
                format!("{SHOP}/Index.yaml"),
                b"harnessApiVersion: '1.0'\ntype: APPLICATION\n".to_vec(),
            ),
            (service("cart"), SERVICE.as_bytes().to_vec()),
        ],
        ..TreeEdit::default()
    };
    assert!(matches!(
        apply_edit(&store, edit).await.expect("edit"),
        TreeOutcome::Applied(_)
    ));
    (store, connector)
}

/// Queues a read of the branch up to `head` and runs one inbox step that reads `commits`.
async fn read(e: &Engine, commits: Vec<CommitRead>) {
    read_reported(e, commits, None).await;
}

/// [`read`], by a delegate that reports how it read as `report`.
async fn read_reported(e: &Engine, commits: Vec<CommitRead>, report: Option<ReadReport>) {
    let head = commits.last().expect("a commit").commit.clone();
    e.inbound.reads.lock().push_back(SyncJobResult::Commits {
        head: head.clone(),
        commits,
        complete: true,
        read: report,
    });
    assert!(
        e.store
            .record_poll(&e.branch.id, Some(&oid(&head)))
            .await
            .expect("queue")
    );
    assert_eq!(e.inbox.step().await.expect("step"), 1);
}

#[tokio::test]
async fn a_git_change_to_a_file_with_an_unpushed_change_is_kept_aside_and_ours_wins() {
    let dir = tempfile::tempdir().expect("tempdir");
    let e = engine(&dir).await;
    let path = workflow_path("deploy");
    let edit = TreeEdit {
        files: vec![(path.clone(), workflow("ours").into_bytes())],
        ..TreeEdit::default()
    };
    apply_edit(&e.store, edit).await.expect("our change");
    read(&e, vec![commit('a', &[(&path, Some(&workflow("theirs")))])]).await;

    let stored = e.store.get_entity(&path).await.expect("stored");
    assert!(String::from_utf8_lossy(&stored.content).contains("ours"));
    let errors = e.store.open_sync_errors().await.expect("errors");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].code, "overridden");
    assert!(String::from_utf8_lossy(errors[0].theirs.as_deref().unwrap()).contains("theirs"));
    let changesets = e.store.list_changesets(&[], 10).await.expect("list");
    assert_eq!(
        changesets[0].status,
        ChangesetStatus::Waiting,
        "ours goes out"
    );
}

#[tokio::test]
async fn a_file_that_depends_on_a_failed_one_is_applied_once_that_one_is_fixed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let e = engine(&dir).await;
    let broken = format!("{SHOP}/Services/api/Index.yaml");
    let dependent = workflow_path("uses-api");
    let uses_api =
        "harnessApiVersion: '1.0'\ntype: BASIC\nphases:\n- type: KUBERNETES\n  serviceName: api\n";
    read(
        &e,
        vec![commit(
            'a',
            &[
                (&broken, Some("type: [unclosed\n")),
                (&dependent, Some(uses_api)),
            ],
        )],
    )
    .await;
    let mut codes: Vec<(String, String)> = e
        .store
        .open_sync_errors()
        .await
        .expect("errors")
        .into_iter()
        .map(|err| (err.path.unwrap_or_default(), err.code))
        .collect();
    codes.sort();
    assert_eq!(
        codes,
        [
            (broken.clone(), "invalid_file".to_owned()),
            (dependent.clone(), "depends_on_failed".to_owned()),
        ]
    );
    assert!(
        e.store.get_entity(&dependent).await.is_err(),
        "not applied yet"
    );

    // The next commit fixes the service alone; the workflow it blocked applies with it.
    read(&e, vec![commit('b', &[(&broken, Some(SERVICE))])]).await;
    assert!(e.store.open_sync_errors().await.expect("errors").is_empty());
    e.store.get_entity(&broken).await.expect("the service");
    e.store
        .get_entity(&dependent)
        .await
        .expect("the workflow that depended on it");
}

#[tokio::test]
async fn a_read_commit_whose_id_is_not_an_object_id_applies_nothing_and_the_head_stays_wanted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let e = engine(&dir).await;
    let mut bad = commit('2', &[(&workflow_path("deploy"), Some(&workflow("git")))]);
    bad.commit = "HEAD".into();
    e.inbound.reads.lock().push_back(SyncJobResult::Commits {
        head: "2".repeat(40),
        commits: vec![bad],
        complete: true,
        read: None,
    });
    assert!(
        e.store
            .record_poll(&e.branch.id, Some(&oid(&"2".repeat(40))))
            .await
            .expect("queue")
    );
    assert_eq!(e.inbox.step().await.expect("step"), 1);
    let branch = e.store.sync_branch(&e.branch.id).await.expect("branch");
    assert_eq!(branch.processed_commit, Some(oid(BASE)), "nothing was read");
    assert_eq!(
        branch.wanted,
        Some(Some(oid(&"2".repeat(40)))),
        "read again later"
    );
    assert!(
        e.store
            .list_inbound_commits(&[], 10)
            .await
            .expect("inbound")
            .is_empty()
    );
}

/// A file read from Git with a key reposync does not know applies, key kept, and its warning
/// (line, key, suggestion) is recorded with the commit's files, where sync activity shows it
/// (issue 13).
#[tokio::test]
async fn a_file_from_git_with_an_unknown_key_applies_and_its_warning_is_recorded_with_the_commit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let e = engine(&dir).await;
    let path = service("cart");
    let text = format!("{SERVICE}descripton: typo\n");
    read(&e, vec![commit('a', &[(&path, Some(&text))])]).await;

    let stored = e.store.get_entity(&path).await.expect("applied");
    assert_eq!(String::from_utf8_lossy(&stored.content), text, "key kept");
    assert!(e.store.open_sync_errors().await.expect("errors").is_empty());
    let commits = e
        .store
        .list_inbound_commits(std::slice::from_ref(&e.branch.id), 10)
        .await
        .expect("inbound");
    assert_eq!(commits[0].status, "applied");
    let file = commits[0]
        .files
        .iter()
        .find(|f| f.path == path)
        .expect("the file");
    assert_eq!(
        file.warnings,
        [reposync_store::InboundWarning {
            line: 4,
            column: 1,
            message: "unknown key descripton: reposync keeps it as written but does not read it; did you mean description?".into(),
        }]
    );
}

/// How a delegate read, as the planner reports it: `git` after REST refused.
fn fell_back_to_git() -> ReadReport {
    ReadReport {
        method: "git".into(),
        reason: "REST refused; git reads every platform".into(),
        fallback_from: Some("cloud-rest".into()),
        fallback_reason: Some("Bitbucket answered 429 Too Many Requests".into()),
        requests: 3,
        bytes: 48_213,
        duration_ms: 1_240,
    }
}

/// Each read a delegate reports shows in sync activity, newest first, with its method, cost
/// and the fallback with its reason, and the delegate that read; a read whose commits do not
/// apply was made all the same and is shown; a delegate that predates reporting adds none.
#[tokio::test]
async fn each_reported_read_shows_in_activity_with_its_fallback_and_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let e = engine(&dir).await;
    let task = e
        .store
        .enqueue_task(&reposync_store::NewTask {
            kind: "sync".into(),
            payload: "{}".into(),
            selectors: Vec::new(),
            max_attempts: 1,
            prefer: None,
            avoid: None,
        })
        .await
        .expect("task");
    let claimed = e
        .store
        .claim_task(
            "edge-1",
            &reposync_store::Eligibility::unrestricted(Vec::new()),
            std::time::Duration::from_secs(60),
        )
        .await
        .expect("claim");
    assert!(matches!(claimed, reposync_store::Claim::Task(t) if t.id == task.id));
    *e.inbound.task.lock() = Some(task.id.clone());

    let deploy = workflow_path("deploy");
    read_reported(
        &e,
        vec![commit('a', &[(&deploy, Some(&workflow("one")))])],
        Some(fell_back_to_git()),
    )
    .await;
    *e.inbound.task.lock() = None;
    read(&e, vec![commit('b', &[(&deploy, Some(&workflow("two")))])]).await;
    // A commit whose id is not one: nothing applies, but the read was made.
    let mut bad = commit('c', &[(&deploy, Some(&workflow("three")))]);
    bad.commit = "HEAD".into();
    let head = "c".repeat(40);
    e.inbound.reads.lock().push_back(SyncJobResult::Commits {
        head: head.clone(),
        commits: vec![bad],
        complete: true,
        read: Some(ReadReport {
            method: "cloud-rest".into(),
            reason: "the connector asks for the API".into(),
            fallback_from: None,
            fallback_reason: None,
            requests: 2,
            bytes: 900,
            duration_ms: 80,
        }),
    });
    assert!(
        e.store
            .record_poll(&e.branch.id, Some(&oid(&head)))
            .await
            .expect("queue")
    );
    assert_eq!(e.inbox.step().await.expect("step"), 1);
    assert_eq!(
        e.store
            .sync_branch(&e.branch.id)
            .await
            .expect("branch")
            .processed_commit,
        Some(oid(&"b".repeat(40))),
        "the bad commit did not apply"
    );

    let activity = reposync_core::activity::activity(&e.store, Some("Shop"), None)
        .await
        .expect("activity");
    let shown: Vec<(&str, &str, Option<&str>)> = activity
        .reads
        .iter()
        .map(|r| {
            (
                r.kind.as_str(),
                r.method.as_str(),
                r.fallback_from.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        shown,
        [
            ("incremental", "cloud-rest", None),
            ("incremental", "git", Some("cloud-rest")),
        ],
        "newest first, none from the delegate that does not report: {:#?}",
        activity.reads
    );
    let fell_back = &activity.reads[1];
    assert_eq!(fell_back.branch, "main");
    assert_eq!(fell_back.head, Some(oid(&"a".repeat(40))));
    assert_eq!(fell_back.reason, "REST refused; git reads every platform");
    assert_eq!(
        fell_back.fallback_reason.as_deref(),
        Some("Bitbucket answered 429 Too Many Requests")
    );
    assert_eq!(
        (fell_back.requests, fell_back.bytes, fell_back.duration_ms),
        (3, 48_213, 1_240)
    );
    assert_eq!(fell_back.delegate.as_deref(), Some("edge-1"));
    assert_eq!(
        activity.reads[0].head,
        Some(oid(&"c".repeat(40))),
        "the head as read, though its commit did not apply"
    );
    assert_eq!(activity.reads[0].delegate, None, "no task read it");

    // Everything's activity shows them too.
    let everything = reposync_core::activity::activity(&e.store, None, None)
        .await
        .expect("activity");
    assert_eq!(everything.reads, activity.reads);
}

/// A delegate that answers every branch read with `files` at the head `BASE`, reporting
/// how it read, and counts the jobs it was given.
struct ScriptedBranch {
    files: Vec<(String, String)>,
    jobs: Mutex<Vec<SyncJob>>,
}

#[async_trait::async_trait]
impl Delegates for ScriptedBranch {
    async fn run_sync_job(
        &self,
        _connector: &ConnectorRecord,
        _target: SyncTarget,
        job: SyncJob,
        _attempt: Option<&AttemptId>,
    ) -> Result<JobAnswer, DispatchFailure> {
        let SyncJob::ReadBranch { prefix } = &job else {
            panic!("enabling only reads: {job:?}");
        };
        let files = self
            .files
            .iter()
            .filter(|(path, _)| path.starts_with(prefix.as_str()))
            .map(|(path, content)| FileContent {
                path: path.clone(),
                content: Some(STANDARD.encode(content)),
            })
            .collect();
        self.jobs.lock().push(job);
        Ok(JobAnswer {
            result: SyncJobResult::Branch {
                head: Some(BASE.into()),
                files,
                unrepresentable: Vec::new(),
                read: Some(fell_back_to_git()),
            },
            task: None,
        })
    }

    async fn enqueue_test(
        &self,
        _tested: Tested<'_>,
        _url: String,
    ) -> Result<reposync_store::TaskRecord, reposync_store::StoreError> {
        panic!("enabling with a connector that names its branch queues no Test")
    }

    async fn draft_test_result(
        &self,
        _task: &TaskId,
        _spec: &GitConnector,
    ) -> Result<Option<String>, reposync_store::StoreError> {
        panic!("enabling reads no draft's Test")
    }

    async fn run_test(
        &self,
        _connector: &ConnectorRecord,
        _url: String,
    ) -> Result<TestResult, reposync_store::StoreError> {
        panic!("a connector never tested is not tested again before its own link")
    }
}

const NEW_APP: &str = "Setup/Applications/New";
const ON_CALL: &str = "Setup/Notification Groups/On Call.yaml";
const APP_INDEX: &str = "harnessApiVersion: '1.0'\ntype: APPLICATION\n";
const GROUP: &str = "harnessApiVersion: '1.0'\ntype: NOTIFICATION_GROUP\naddressesByChannelType:\n  EMAIL:\n  - oncall@example.com\n";

/// A branch holding account files, Shop (as reposync holds it) and New (which reposync
/// lacks), and a README that is not the tree's.
fn branch_of_three() -> ScriptedBranch {
    ScriptedBranch {
        files: vec![
            ("README.md".into(), "config\n".into()),
            (ON_CALL.into(), GROUP.into()),
            (format!("{SHOP}/Index.yaml"), APP_INDEX.into()),
            (service("cart"), SERVICE.into()),
            (format!("{NEW_APP}/Index.yaml"), APP_INDEX.into()),
            (format!("{NEW_APP}/Services/web/Index.yaml"), SERVICE.into()),
        ],
        jobs: Mutex::default(),
    }
}

/// Asks for every scope to be linked, runs the task, and answers the task as it ended.
async fn enable_all(
    store: &Store,
    delegates: &ScriptedBranch,
    initial: &str,
) -> reposync_store::TaskRecord {
    let request = SyncEnableRequest {
        all: true,
        connector: "git".into(),
        initial: Some(initial.into()),
        ..SyncEnableRequest::default()
    };
    let task = links::request_enable(store, &request, None)
        .await
        .expect("accepted");
    // A refusal ends the task failed; its result says why.
    let _ = links::run_enable(store, delegates, &task).await;
    store.get_task(&task.id).await.expect("task")
}

/// `sync enable --all` reads the branch once, for the whole tree, and links the account,
/// every application the branch holds (creating the one reposync lacks) and every one
/// reposync holds (Bank, which the branch lacks, pushes its files), recording that one read
/// once; run again, it reads again but links nothing and says every scope was linked.
#[tokio::test]
async fn enabling_every_scope_reads_the_branch_once_and_links_each_scope() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _connector) = shop_unlinked(&dir).await;
    assert!(matches!(
        apply_edit(
            &store,
            TreeEdit {
                files: vec![(
                    "Setup/Applications/Bank/Index.yaml".into(),
                    APP_INDEX.as_bytes().to_vec(),
                )],
                ..TreeEdit::default()
            }
        )
        .await
        .expect("edit"),
        TreeOutcome::Applied(_)
    ));
    let branch = branch_of_three();

    let ended = enable_all(&store, &branch, "import").await;
    assert_eq!(ended.status, TaskStatus::Succeeded, "{:?}", ended.result);
    let all: SyncEnabledAll =
        serde_json::from_str(ended.result.as_deref().expect("result")).expect("a SyncEnabledAll");
    let prefixes: Vec<String> = branch
        .jobs
        .lock()
        .iter()
        .map(|job| match job {
            SyncJob::ReadBranch { prefix } => prefix.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(prefixes, ["Setup/"], "one read, of the whole tree");
    let scopes: Vec<(&str, &str)> = all
        .linked
        .iter()
        .map(|e| (e.link.scope.as_str(), e.initial.as_str()))
        .collect();
    assert_eq!(
        scopes,
        [
            ("account", "import"),
            ("app:Bank", "import"),
            ("app:New", "import"),
            ("app:Shop", "import"),
        ]
    );
    assert_eq!(all.created_apps, ["New"]);
    assert!(all.skipped.is_empty());
    let by_scope = |scope: &str| {
        all.linked
            .iter()
            .find(|e| e.link.scope == scope)
            .expect("linked")
    };
    // Bank is only reposync's: its Index.yaml (with the link's fields) goes out first.
    assert_eq!(by_scope("app:Bank").pushing, 1);
    assert!(by_scope("app:Bank").imported.is_none());
    // New came from the branch: its files are imported, and its Index.yaml records the link.
    let new = by_scope("app:New");
    assert_eq!(new.imported.as_ref().map(|i| i.created), Some(2), "{new:?}");
    assert_eq!(new.pushing, 1, "the Index.yaml with the link's fields");
    let index = store
        .get_entity(&format!("{NEW_APP}/Index.yaml"))
        .await
        .expect("New exists");
    let index = String::from_utf8(index.content).expect("utf-8");
    assert!(index.contains("gitConnector: git") && index.contains("isGitSyncEnabled: true"));
    store
        .get_entity(&format!("{NEW_APP}/Services/web/Index.yaml"))
        .await
        .expect("New's service");
    store.get_entity(ON_CALL).await.expect("the account's file");
    let account = by_scope("account");
    assert_eq!(account.imported.as_ref().map(|i| i.created), Some(1));
    assert_eq!(account.kept, ["Setup/Source Repo Providers/git.yaml"]);

    let live = store.live_links().await.expect("links");
    assert_eq!(live.len(), 4);
    let reads = store.list_reads(&[], 10).await.expect("reads");
    assert_eq!(reads.len(), 1, "the one read is recorded once: {reads:?}");
    assert_eq!(reads[0].read.kind, ReadKind::Enable);
    assert_eq!(reads[0].read.method, "git");
    let account_link = live.iter().find(|l| l.app.is_none()).expect("account");
    assert_eq!(reads[0].link_id.as_ref(), Some(&account_link.id));

    let again = enable_all(&store, &branch, "import").await;
    assert_eq!(again.status, TaskStatus::Succeeded, "{:?}", again.result);
    let again: SyncEnabledAll =
        serde_json::from_str(again.result.as_deref().expect("result")).expect("a SyncEnabledAll");
    assert!(again.linked.is_empty(), "{again:?}");
    let skipped: Vec<&str> = again.skipped.iter().map(|l| l.scope.as_str()).collect();
    assert_eq!(skipped, ["account", "app:Bank", "app:New", "app:Shop"]);
    assert_eq!(store.live_links().await.expect("links").len(), 4);
    assert_eq!(branch.jobs.lock().len(), 2);
    assert_eq!(
        store.list_reads(&[], 10).await.expect("reads").len(),
        1,
        "a run that links nothing records no read"
    );
}

/// Enabling every scope is all or nothing: one scope whose files differ under
/// `fail-if-different` refuses the whole request, naming that scope, and nothing is linked
/// or created; with `app` as well it is refused before any task, naming the field.
#[tokio::test]
async fn one_scope_that_differs_links_no_scope_at_all() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _connector) = shop_unlinked(&dir).await;
    let mut branch = branch_of_three();
    for (path, content) in &mut branch.files {
        if *path == service("cart") {
            *content = SERVICE.replace("KUBERNETES", "SSH");
        }
    }
    let ended = enable_all(&store, &branch, "fail-if-different").await;
    assert_eq!(ended.status, TaskStatus::Failed);
    let failure = ended.result.expect("a failure");
    assert!(
        failure.contains("sync_differs") && failure.contains("app:Shop"),
        "{failure}"
    );
    assert!(store.live_links().await.expect("links").is_empty());
    assert!(
        store
            .get_entity(&format!("{NEW_APP}/Index.yaml"))
            .await
            .is_err(),
        "New was not created"
    );
    assert!(store.list_reads(&[], 10).await.expect("reads").is_empty());

    let both = SyncEnableRequest {
        all: true,
        app: Some("Shop".into()),
        connector: "git".into(),
        ..SyncEnableRequest::default()
    };
    let refused = links::request_enable(&store, &both, None)
        .await
        .expect_err("app with all");
    assert_eq!(refused.field.as_deref(), Some("app"), "{refused}");
}
