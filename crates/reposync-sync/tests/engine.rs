//! The Git Sync engine as a library: the outbox's step function driven over a real SQLite
//! store, with a scripted dispatch in place of delegates. Time is the store's clock, moved on
//! by hand, so back-off is tested without sleeping.

#![allow(clippy::expect_used, clippy::unwrap_used)] // Test helpers may panic.

use std::collections::VecDeque;
use std::sync::Arc;

use parking_lot::Mutex;
use reposync_api::{CommittedFileView, FailureCode, LandedView, MadeBy, SyncJob, SyncJobResult};
use reposync_model::commit::FileOp;
use reposync_model::{
    AttemptId, ChangesetId, ConnectorDraft, EmailAddress, GitConnector, LinkId, ObjectId, Person,
    SecretName, UserName,
};
use reposync_secrets::MasterKey;
use reposync_store::{
    ChangesetStatus, EntityChange, EntityWrite, ManualClock, NewSyncLink, SecretKind, Store,
    SyncLink, WebhookChange,
};
use reposync_sync::{ConnectionFailure, Dispatch, DispatchFailure, Outbox};

const SHOP_INDEX: &str = "Setup/Applications/Shop/Index.yaml";
const WORKFLOW: &str = "Setup/Applications/Shop/Workflows/w.yaml";
const BASE: &str = "1111111111111111111111111111111111111111";

fn oid(text: &str) -> ObjectId {
    ObjectId::parse(text).expect("object id")
}

/// Answers jobs from a script, and fails the connection check while told to.
#[derive(Default)]
struct Scripted {
    answers: Mutex<VecDeque<Result<SyncJobResult, DispatchFailure>>>,
    jobs: Mutex<Vec<SyncJob>>,
    held: Mutex<Option<ConnectionFailure>>,
}

impl Scripted {
    fn answer(&self, answer: Result<SyncJobResult, DispatchFailure>) {
        self.answers.lock().push_back(answer);
    }
}

#[async_trait::async_trait]
impl Dispatch for Scripted {
    async fn run_job(
        &self,
        _link: &SyncLink,
        _attempt_id: &AttemptId,
        job: SyncJob,
    ) -> Result<SyncJobResult, DispatchFailure> {
        self.jobs.lock().push(job);
        self.answers
            .lock()
            .pop_front()
            .expect("a scripted answer for every job")
    }

    async fn check_connections(&self, _link: &SyncLink) -> Result<(), ConnectionFailure> {
        match self.held.lock().clone() {
            Some(failure) => Err(failure),
            None => Ok(()),
        }
    }
}

fn put(path: &str, content: &str) -> EntityChange {
    EntityChange::Put(EntityWrite {
        path: path.into(),
        kind: "k".into(),
        app: reposync_model::scope::app_of_path(path).map(str::to_owned),
        content: content.as_bytes().to_vec(),
        references: Vec::new(),
    })
}

/// What a test drives: the store, the scripted dispatch, the outbox, the link, the clock.
struct Engine {
    store: Store,
    dispatch: Arc<Scripted>,
    outbox: Outbox,
    link: LinkId,
    clock: Arc<ManualClock>,
}

/// A store with Shop linked to `main` of a connector, and an outbox driving `dispatch`.
async fn engine(dir: &tempfile::TempDir) -> Engine {
    let clock = ManualClock::starting_now();
    let store = Store::open(&Store::sqlite_url(dir.path()), MasterKey::generate())
        .await
        .expect("store")
        .with_clock(clock.clone());
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
    let dispatch = Arc::new(Scripted::default());
    let outbox = Outbox::new(store.clone(), Arc::clone(&dispatch) as Arc<dyn Dispatch>);
    Engine {
        store,
        dispatch,
        outbox,
        link: link.id,
        clock,
    }
}

async fn statuses(store: &Store, link: &LinkId) -> Vec<ChangesetStatus> {
    let mut listed = store
        .list_changesets(std::slice::from_ref(link), 100)
        .await
        .expect("list");
    listed.reverse();
    listed.into_iter().map(|c| c.status).collect()
}

fn pushed(commit: &str, files: &[(FileOp, &str)], landed: &[(&str, &str)]) -> SyncJobResult {
    SyncJobResult::Pushed {
        commit: commit.into(),
        parent: Some(BASE.into()),
        attempts: 1,
        files: files
            .iter()
            .map(|(op, path)| CommittedFileView {
                op: *op,
                path: (*path).into(),
            })
            .collect(),
        landed: landed
            .iter()
            .map(|(changeset, commit)| LandedView {
                changeset: ChangesetId::new(*changeset),
                commit: (*commit).into(),
            })
            .collect(),
    }
}

#[tokio::test]
async fn an_attempt_asks_for_the_state_of_every_touched_path_and_records_each_changesets_commit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Engine {
        store,
        dispatch,
        outbox,
        link,
        ..
    } = engine(&dir).await;
    store
        .apply_entities(&[put(SHOP_INDEX, "a")], false, None)
        .await
        .expect("first");
    store
        .apply_entities(
            &[
                put(WORKFLOW, "w"),
                EntityChange::Delete {
                    path: SHOP_INDEX.into(),
                },
            ],
            false,
            None,
        )
        .await
        .expect("second");
    let ids: Vec<ChangesetId> = store
        .list_changesets(std::slice::from_ref(&link), 10)
        .await
        .expect("list")
        .into_iter()
        .rev()
        .map(|c| c.id)
        .collect();
    let landed_commit = "2".repeat(40);
    let new_commit = "3".repeat(40);
    dispatch.answer(Ok(pushed(
        &new_commit,
        &[(FileOp::Add, WORKFLOW)],
        &[(ids[0].as_str(), &landed_commit)],
    )));
    assert_eq!(outbox.step().await.expect("step"), 1);

    let jobs = dispatch.jobs.lock().clone();
    let SyncJob::CommitAndPush {
        base,
        changesets,
        files,
        ..
    } = &jobs[0]
    else {
        panic!("{jobs:?}");
    };
    assert_eq!(base.as_deref(), Some(BASE), "the Git -> reposync position");
    assert_eq!(changesets, &ids);
    // The state each path should end in: created then deleted is "no file", never folded
    // away.
    let states: Vec<(&str, bool)> = files
        .iter()
        .map(|f| (f.path.as_str(), f.content.is_some()))
        .collect();
    assert_eq!(states, [(SHOP_INDEX, false), (WORKFLOW, true)]);

    let listed = store
        .list_changesets(std::slice::from_ref(&link), 10)
        .await
        .expect("list");
    let commit_of = |id: &ChangesetId| {
        listed
            .iter()
            .find(|c| c.id == *id)
            .and_then(|c| c.commit_id.clone())
    };
    assert_eq!(commit_of(&ids[0]), Some(oid(&landed_commit)));
    assert_eq!(commit_of(&ids[1]), Some(oid(&new_commit)));
    assert_eq!(outbox.step().await.expect("step"), 0, "nothing waits");
}

/// The job names the person who made each changeset a person made, in the order of the
/// changesets, and carries the connector's `author_from_user`: the delegate decides the
/// trailers and the author from the changesets it finds still to carry.
#[tokio::test]
async fn a_commit_job_names_who_made_each_changeset_and_the_connectors_choice_of_author() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Engine {
        store,
        dispatch,
        outbox,
        ..
    } = engine(&dir).await;
    let current = store.list_connectors().await.expect("connectors").remove(0);
    let mut spec = current.spec.clone();
    spec.author_from_user = true;
    store
        .update_connector(&current, &spec, WebhookChange::Keep, None)
        .await
        .expect("author from user");
    let alice = Person {
        name: UserName::parse("alice").expect("name"),
        email: Some(EmailAddress::parse("alice@example.com").expect("email")),
    };
    store
        .apply_entities(&[put(SHOP_INDEX, "a")], false, Some(&alice))
        .await
        .expect("alice's");
    store
        .apply_entities(&[put(WORKFLOW, "w")], false, None)
        .await
        .expect("nobody's");
    dispatch.answer(Ok(pushed(&"3".repeat(40), &[(FileOp::Add, WORKFLOW)], &[])));
    assert_eq!(outbox.step().await.expect("step"), 1);

    let jobs = dispatch.jobs.lock().clone();
    let SyncJob::CommitAndPush {
        changesets,
        made_by,
        author_from_user,
        author_name,
        ..
    } = &jobs[0]
    else {
        panic!("{jobs:?}");
    };
    assert_eq!(changesets.len(), 2);
    assert_eq!(
        made_by,
        &[MadeBy {
            changeset: changesets[0].clone(),
            by: alice,
        }]
    );
    assert!(author_from_user);
    assert_eq!(
        author_name, "reposync",
        "the connector's author stays the committer"
    );
}

#[tokio::test]
async fn a_conflict_holds_the_changesets_keeps_both_versions_and_asks_for_the_head() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Engine {
        store,
        dispatch,
        outbox,
        link,
        ..
    } = engine(&dir).await;
    store
        .apply_entities(&[put(WORKFLOW, "ours")], false, None)
        .await
        .expect("write");
    let head = "4".repeat(40);
    dispatch.answer(Ok(SyncJobResult::Conflict {
        head: head.clone(),
        files: vec![reposync_api::FileContent {
            path: WORKFLOW.into(),
            content: Some("dGhlaXJz".into()), // "theirs"
        }],
    }));
    outbox.step().await.expect("step");
    assert_eq!(statuses(&store, &link).await, [ChangesetStatus::Conflict]);
    let errors = store.open_sync_errors().await.expect("errors");
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].code, "conflict");
    assert_eq!(errors[0].ours.as_deref(), Some(&b"ours"[..]));
    assert_eq!(errors[0].theirs.as_deref(), Some(&b"theirs"[..]));
    let wanted = store.wanted_branches().await.expect("wanted");
    assert_eq!(
        wanted[0].wanted,
        Some(Some(oid(&head))),
        "Git's side is read next"
    );
    assert_eq!(outbox.step().await.expect("step"), 0, "held until it is");
}

#[tokio::test]
async fn a_held_link_waits_with_one_error_and_backs_off_until_its_connection_passes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Engine {
        store,
        dispatch,
        outbox,
        link,
        clock,
    } = engine(&dir).await;
    store
        .apply_entities(&[put(WORKFLOW, "w")], false, None)
        .await
        .expect("write");
    *dispatch.held.lock() = Some(ConnectionFailure {
        connector_path: "Setup/Source Repo Providers/mirror.yaml".into(),
        message: "mirror: auth_failed".into(),
    });
    assert_eq!(outbox.step().await.expect("step"), 1);
    assert_eq!(statuses(&store, &link).await, [ChangesetStatus::Waiting]);
    assert!(dispatch.jobs.lock().is_empty(), "nothing was tried");
    assert_eq!(outbox.step().await.expect("step"), 0, "backing off");
    clock.advance(1001);
    assert_eq!(
        outbox.step().await.expect("step"),
        1,
        "tried again after 1 s"
    );
    assert_eq!(
        store.open_sync_errors().await.expect("errors").len(),
        1,
        "one, kept current"
    );

    *dispatch.held.lock() = None;
    dispatch.answer(Ok(pushed(&"5".repeat(40), &[(FileOp::Add, WORKFLOW)], &[])));
    assert_eq!(outbox.step().await.expect("step"), 0, "now backing off 2 s");
    clock.advance(2001);
    assert_eq!(outbox.step().await.expect("step"), 1);
    assert_eq!(statuses(&store, &link).await, [ChangesetStatus::Pushed]);
    assert!(
        store.open_sync_errors().await.expect("errors").is_empty(),
        "resolved once an attempt got past the check"
    );
}

#[tokio::test]
async fn a_permanent_failure_stops_until_retried_while_one_that_may_pass_backs_off() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Engine {
        store,
        dispatch,
        outbox,
        link,
        clock,
    } = engine(&dir).await;
    store
        .apply_entities(&[put(WORKFLOW, "w")], false, None)
        .await
        .expect("write");

    // The network: retried with back-off, the changeset waits meanwhile.
    dispatch.answer(Err(DispatchFailure::new(
        FailureCode::HostUnreachable,
        "cannot reach the server",
    )));
    assert_eq!(outbox.step().await.expect("step"), 1);
    assert_eq!(statuses(&store, &link).await, [ChangesetStatus::Waiting]);
    assert_eq!(outbox.step().await.expect("step"), 0, "backing off");
    clock.advance(1001);

    // A protected branch: no retry until a person says so.
    dispatch.answer(Err(DispatchFailure::new(
        FailureCode::PushRejected,
        "main is protected",
    )));
    assert_eq!(outbox.step().await.expect("step"), 1);
    assert_eq!(statuses(&store, &link).await, [ChangesetStatus::Failed]);
    clock.advance(3_600_000);
    assert_eq!(
        outbox.step().await.expect("step"),
        0,
        "not even an hour later"
    );
    let errors = store.open_sync_errors().await.expect("errors");
    assert_eq!(errors[0].code, "push_rejected");

    let changeset = store
        .list_changesets(std::slice::from_ref(&link), 1)
        .await
        .expect("list")
        .remove(0);
    store.retry_changeset(&changeset.id).await.expect("retry");
    dispatch.answer(Ok(pushed(&"6".repeat(40), &[(FileOp::Add, WORKFLOW)], &[])));
    assert_eq!(outbox.step().await.expect("step"), 1);
    assert_eq!(statuses(&store, &link).await, [ChangesetStatus::Pushed]);
    assert_eq!(dispatch.jobs.lock().len(), 3);
}

#[tokio::test]
async fn a_push_result_whose_commit_is_not_an_object_id_fails_the_attempt_naming_the_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Engine {
        store,
        dispatch,
        outbox,
        link,
        ..
    } = engine(&dir).await;
    store
        .apply_entities(&[put(WORKFLOW, "w")], false, None)
        .await
        .expect("write");
    dispatch.answer(Ok(pushed(
        &"7".repeat(40),
        &[(FileOp::Add, WORKFLOW)],
        &[("unknown", "HEAD")],
    )));
    assert_eq!(outbox.step().await.expect("step"), 1);
    assert_eq!(statuses(&store, &link).await, [ChangesetStatus::Failed]);
    let errors = store.open_sync_errors().await.expect("errors");
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].code, "invalid_task");
    assert!(
        errors[0].message.contains("landed commit") && errors[0].message.contains("\"HEAD\""),
        "{}",
        errors[0].message
    );
    let attempts = store.list_attempts(&[], 10).await.expect("attempts");
    assert_eq!(attempts[0].commit_id, None, "nothing unparsable is stored");
}
