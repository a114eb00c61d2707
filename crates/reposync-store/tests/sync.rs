//! The sync outbox against a real SQLite file: changesets written with the change, attempts
//! that carry them, and what an attempt's end does to them.

#![allow(clippy::expect_used)] // Test helpers outside #[test] functions may panic.

use reposync_model::{ConnectorDraft, GitConnector, SecretName};
use reposync_secrets::MasterKey;
use reposync_store::{
    AttemptEnd, ChangesetStatus, ConflictRecord, EntityChange, EntityWrite, FileChangeRecord,
    FileOp, NewSyncLink, SecretKind, Store, StoreError, WebhookChange,
};

fn put(path: &str, content: &str) -> EntityChange {
    EntityChange::Put(EntityWrite {
        path: path.into(),
        kind: "k".into(),
        app: reposync_store::app_of_path(path).map(str::to_owned),
        content: content.as_bytes().to_vec(),
        references: Vec::new(),
    })
}

async fn linked_store(dir: &tempfile::TempDir) -> (Store, String) {
    let store = Store::open(&Store::sqlite_url(dir.path()), MasterKey::generate())
        .await
        .expect("open store");
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
                base_commit: Some("a".repeat(40)),
            },
            &[],
        )
        .await
        .expect("link");
    (store, link.id)
}

#[tokio::test]
async fn a_change_in_a_linked_scope_writes_a_changeset_in_the_same_transaction() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, link) = linked_store(&dir).await;
    store
        .apply_entities(
            &[
                put("Setup/Applications/Shop/Index.yaml", "a"),
                put("Setup/Applications/Other/Index.yaml", "b"),
                put("Setup/Cloud Providers/k8s.yaml", "c"),
            ],
            false,
        )
        .await
        .expect("apply");
    // A dry run and a no-op write nothing.
    store
        .apply_entities(
            &[put("Setup/Applications/Shop/Workflows/w.yaml", "w")],
            true,
        )
        .await
        .expect("dry run");
    store
        .apply_entities(&[put("Setup/Applications/Shop/Index.yaml", "a")], false)
        .await
        .expect("no-op");
    let started = store
        .start_attempt(&link)
        .await
        .expect("start")
        .expect("work waiting");
    let (attempt, changesets) = (started.attempt, started.changesets);
    assert_eq!(started.paths, ["Setup/Applications/Shop/Index.yaml"]);
    assert_eq!(
        started.contents["Setup/Applications/Shop/Index.yaml"], b"a",
        "the contents are read with the changesets"
    );
    assert_eq!(changesets.len(), 1);
    assert_eq!(
        changesets[0].files.len(),
        1,
        "only Shop's file: {:?}",
        changesets[0].files
    );
    assert_eq!(changesets[0].files[0].op, FileOp::Add);
    assert!(
        store.start_attempt(&link).await.expect("start").is_none(),
        "one attempt at a time"
    );

    store
        .finish_attempt(
            &attempt.id,
            &AttemptEnd::Conflict {
                head: "b".repeat(40),
                files: vec![ConflictRecord {
                    path: "Setup/Applications/Shop/Index.yaml".into(),
                    ours: Some(b"a".to_vec()),
                    theirs: Some(b"z".to_vec()),
                }],
            },
        )
        .await
        .expect("finish");
    let errors = store.open_sync_errors().await.expect("errors");
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].theirs.as_deref(), Some(&b"z"[..]));
    let err = store.retry_changeset("nope").await.expect_err("unknown");
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
    store
        .retry_changeset(&changesets[0].id)
        .await
        .expect("retry");
    assert!(store.open_sync_errors().await.expect("errors").is_empty());

    let attempt = store
        .start_attempt(&link)
        .await
        .expect("start")
        .expect("again")
        .attempt;
    let commit = "c".repeat(40);
    store
        .finish_attempt(
            &attempt.id,
            &AttemptEnd::Pushed {
                commit: Some(commit.clone()),
                files: vec![FileChangeRecord {
                    op: FileOp::Add,
                    path: "Setup/Applications/Shop/Index.yaml".into(),
                }],
                landed: Vec::new(),
            },
        )
        .await
        .expect("finish");
    let listed = store
        .list_changesets(std::slice::from_ref(&link), 10)
        .await
        .expect("list");
    assert_eq!(listed[0].status, ChangesetStatus::Pushed);
    assert_eq!(listed[0].commit_id.as_deref(), Some(commit.as_str()));
    assert_eq!(
        store.link_by_id(&link).await.expect("link").base_commit,
        Some(commit)
    );
}

#[tokio::test]
async fn a_second_link_for_a_scope_is_refused_and_a_restart_replans_cut_off_attempts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, link) = linked_store(&dir).await;
    let existing = store.link_by_id(&link).await.expect("link");
    let err = store
        .create_link(
            &NewSyncLink {
                app: Some("Shop".into()),
                connector_id: existing.connector_id.clone(),
                repo: None,
                branch: "other".into(),
                base_commit: None,
            },
            &[],
        )
        .await
        .expect_err("second link");
    assert!(
        matches!(&err, StoreError::AlreadyExists { name, .. } if name == "Shop"),
        "{err}"
    );
    store
        .apply_entities(&[put("Setup/Applications/Shop/Index.yaml", "a")], false)
        .await
        .expect("apply");
    store
        .start_attempt(&link)
        .await
        .expect("start")
        .expect("attempt");
    assert_eq!(store.interrupt_attempts().await.expect("interrupt"), 1);
    let replanned = store
        .start_attempt(&link)
        .await
        .expect("start")
        .expect("replanned");
    assert_eq!(replanned.changesets.len(), 1);
}

#[tokio::test]
async fn a_held_link_keeps_one_open_error_per_connection_until_an_attempt_gets_past_the_check() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, link) = linked_store(&dir).await;
    store
        .apply_entities(&[put("Setup/Applications/Shop/Index.yaml", "a")], false)
        .await
        .expect("apply");
    assert_eq!(
        store.link_backlogs().await.expect("backlogs")[&link].waiting,
        1
    );
    let mirror = "Setup/Source Repo Providers/mirror.yaml";
    for round in 0..3 {
        let attempt = store
            .start_attempt(&link)
            .await
            .expect("start")
            .expect("something waits")
            .attempt;
        let held = AttemptEnd::Held {
            connector_path: mirror.into(),
            message: format!("mirror failed its Test, round {round}"),
        };
        store
            .finish_attempt(&attempt.id, &held)
            .await
            .expect("held");
    }
    let errors = store.open_sync_errors().await.expect("errors");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].code, reposync_store::CONNECTION_FAILED);
    assert_eq!(errors[0].path.as_deref(), Some(mirror));
    assert!(errors[0].message.contains("round 2"), "kept current");
    let backlog = store.link_backlogs().await.expect("backlogs")[&link];
    assert_eq!(
        (backlog.waiting, backlog.open_errors),
        (1, 1),
        "still waiting"
    );

    let attempt = store
        .start_attempt(&link)
        .await
        .expect("start")
        .expect("something waits")
        .attempt;
    let pushed = AttemptEnd::Pushed {
        commit: Some("b".repeat(40)),
        files: Vec::new(),
        landed: Vec::new(),
    };
    store
        .finish_attempt(&attempt.id, &pushed)
        .await
        .expect("pushed");
    assert!(store.open_sync_errors().await.expect("errors").is_empty());
    assert!(
        !store
            .link_backlogs()
            .await
            .expect("backlogs")
            .contains_key(&link)
    );
}

#[tokio::test]
async fn the_connectors_a_scope_refers_to_are_found_through_its_references() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _) = linked_store(&dir).await;
    let referring = |path: &str, to: &str| {
        EntityChange::Put(EntityWrite {
            path: path.into(),
            kind: "k".into(),
            app: reposync_store::app_of_path(path).map(str::to_owned),
            content: b"x".to_vec(),
            references: vec![("gitConnectorName".into(), to.into())],
        })
    };
    store
        .apply_entities(
            &[
                put("Setup/Applications/Shop/Index.yaml", "a"),
                referring(
                    "Setup/Applications/Shop/Triggers/t.yaml",
                    "Setup/Source Repo Providers/git.yaml",
                ),
                referring(
                    "Setup/Applications/Shop/Workflows/w.yaml",
                    "Setup/Applications/Shop/Index.yaml",
                ),
                put("Setup/Applications/Other/Index.yaml", "b"),
            ],
            false,
        )
        .await
        .expect("apply");
    assert_eq!(
        store
            .scope_connector_paths(Some("Shop"))
            .await
            .expect("paths"),
        vec!["Setup/Source Repo Providers/git.yaml".to_owned()]
    );
    for other in [Some("Other"), None] {
        assert!(
            store
                .scope_connector_paths(other)
                .await
                .expect("paths")
                .is_empty()
        );
    }
}

fn push_delivery(
    connector_id: &str,
    delivery_id: Option<&str>,
    heads: Vec<reposync_store::AnnouncedHead>,
) -> reposync_store::NewDelivery {
    reposync_store::NewDelivery {
        connector_id: connector_id.into(),
        event: "repo:push".into(),
        delivery_id: delivery_id.map(str::to_owned),
        format: Some("cloud".into()),
        signature: reposync_store::SignatureCheck::Valid,
        changes_json: "[]".into(),
        decided: None,
        heads,
    }
}

#[tokio::test]
async fn a_delivery_queues_a_new_head_once_whatever_id_it_comes_with() {
    use reposync_store::{AnnouncedHead, DeliveryOutcome};
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, link) = linked_store(&dir).await;
    let link = store.link_by_id(&link).await.expect("link");
    let branches = store
        .live_branches_of_connector(&link.connector_id)
        .await
        .expect("branches");
    assert_eq!(branches.len(), 1, "the link's branch exists");
    let branch = &branches[0];
    assert_eq!(branch.branch, "main");
    assert_eq!(
        branch.processed_commit, link.base_commit,
        "positioned at enable"
    );
    let head = |commit: &str| AnnouncedHead {
        branch_id: branch.id.clone(),
        commit: Some(commit.to_owned()),
        link_ids: vec![link.id.clone()],
    };
    let new = "c".repeat(40);

    let first = store
        .record_delivery(&push_delivery(
            &link.connector_id,
            Some("d-1"),
            vec![head(&new)],
        ))
        .await
        .expect("record");
    assert_eq!(first.outcome, DeliveryOutcome::Queued);
    assert_eq!(first.matched_links, vec![link.id.clone()]);
    let wanted = store.wanted_branches().await.expect("wanted");
    assert_eq!(wanted.len(), 1);
    assert_eq!(wanted[0].wanted, Some(Some(new.clone())));

    // The same delivery id again, and the same head under a new id: both duplicates.
    let again = store
        .record_delivery(&push_delivery(
            &link.connector_id,
            Some("d-1"),
            vec![head(&new)],
        ))
        .await
        .expect("record");
    assert_eq!(again.outcome, DeliveryOutcome::Duplicate);
    let doubled = store
        .record_delivery(&push_delivery(
            &link.connector_id,
            Some("d-2"),
            vec![head(&new)],
        ))
        .await
        .expect("record");
    assert_eq!(doubled.outcome, DeliveryOutcome::Duplicate);
    // The head it was enabled on is not news either.
    let old = store
        .record_delivery(&push_delivery(
            &link.connector_id,
            None,
            vec![head(link.base_commit.as_deref().expect("base"))],
        ))
        .await
        .expect("record");
    assert_eq!(old.outcome, DeliveryOutcome::Duplicate);
    // Nothing matched: ignored, with the reason.
    let nothing = store
        .record_delivery(&push_delivery(&link.connector_id, Some("d-3"), Vec::new()))
        .await
        .expect("record");
    assert_eq!(nothing.outcome, DeliveryOutcome::Ignored);
    assert!(
        nothing
            .reason
            .as_deref()
            .expect("reason")
            .contains("live link")
    );

    let log = store
        .list_deliveries(Some(&link.connector_id), 10)
        .await
        .expect("log");
    let outcomes: Vec<DeliveryOutcome> = log.iter().map(|d| d.outcome).collect();
    assert_eq!(
        outcomes,
        [
            DeliveryOutcome::Ignored,
            DeliveryOutcome::Duplicate,
            DeliveryOutcome::Duplicate,
            DeliveryOutcome::Duplicate,
            DeliveryOutcome::Queued
        ]
    );
}

fn inbound(
    branch_id: &str,
    commit: &str,
    status: reposync_store::InboundStatus,
) -> reposync_store::InboundCommit {
    reposync_store::InboundCommit {
        branch_id: branch_id.into(),
        commit_id: commit.into(),
        status,
        files: Vec::new(),
        message: String::new(),
        author: String::new(),
        errors: Vec::new(),
        changesets: Vec::new(),
        fixed: Vec::new(),
        new_apps: Vec::new(),
    }
}

/// A push that landed but whose answer was lost, then a second attempt that finds it: each
/// changeset is recorded with the commit that carries it, the conflict and overridden errors
/// of their files resolve themselves, and the new commit is queued to be read back.
#[tokio::test]
async fn changesets_found_on_the_branch_keep_their_own_commit_and_their_errors_resolve() {
    use reposync_store::{FileError, InboundStatus, Landed};
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, link_id) = linked_store(&dir).await;
    let link = store.link_by_id(&link_id).await.expect("link");
    let branch = store
        .branch_of_link(&link)
        .await
        .expect("branch")
        .expect("the link has a branch");
    let index = "Setup/Applications/Shop/Index.yaml";
    let workflow = "Setup/Applications/Shop/Workflows/w.yaml";
    store
        .apply_entities(&[put(index, "a")], false)
        .await
        .expect("apply");
    let first = store
        .start_attempt(&link_id)
        .await
        .expect("start")
        .expect("first");
    // Git changed the workflow while reposync held a change to it: Git's version is kept in
    // an `overridden` error (as the inbox records it), on a commit not ours.
    store
        .apply_entities(&[put(workflow, "ours")], false)
        .await
        .expect("apply");
    let theirs = "d".repeat(40);
    let mut read = inbound(&branch.id, &theirs, InboundStatus::Failed);
    read.errors.push(FileError {
        path: workflow.into(),
        link_id: Some(link_id.clone()),
        code: "overridden".into(),
        message: "changed in Git".into(),
        theirs: Some(b"theirs".to_vec()),
        ours: Some(b"ours".to_vec()),
    });
    store.apply_from_git(&[], &read).await.expect("inbound");
    assert_eq!(store.open_sync_errors().await.expect("errors").len(), 1);
    // The server died after the first push landed: its changeset waits again.
    store.interrupt_attempts().await.expect("interrupt");
    let second = store
        .start_attempt(&link_id)
        .await
        .expect("start")
        .expect("second");
    assert_eq!(second.changesets.len(), 2);
    assert_eq!(second.paths, [index, workflow]);
    let landed_commit = "e".repeat(40);
    let new_commit = "f".repeat(40);
    store
        .finish_attempt(
            &second.attempt.id,
            &AttemptEnd::Pushed {
                commit: Some(new_commit.clone()),
                files: vec![FileChangeRecord {
                    op: FileOp::Add,
                    path: workflow.into(),
                }],
                landed: vec![Landed {
                    changeset: first.changesets[0].id.clone(),
                    commit: landed_commit.clone(),
                }],
            },
        )
        .await
        .expect("finish");
    let listed = store
        .list_changesets(std::slice::from_ref(&link_id), 10)
        .await
        .expect("list");
    let commit_of = |id: &str| {
        listed
            .iter()
            .find(|c| c.id == id)
            .and_then(|c| c.commit_id.clone())
    };
    assert!(listed.iter().all(|c| c.status == ChangesetStatus::Pushed));
    assert_eq!(
        commit_of(&first.changesets[0].id),
        Some(landed_commit),
        "the lost push keeps its own commit"
    );
    assert_eq!(
        commit_of(&second.changesets[1].id),
        Some(new_commit.clone())
    );
    assert!(
        store.open_sync_errors().await.expect("errors").is_empty(),
        "the overridden error resolved once reposync's version landed"
    );
    let attempts = store
        .list_attempts(std::slice::from_ref(&link_id), 1)
        .await
        .expect("attempts");
    assert_eq!(
        attempts[0].files.len(),
        1,
        "the attempt lists what it committed"
    );
    let wanted = store.wanted_branches().await.expect("wanted");
    assert_eq!(
        wanted[0].wanted,
        Some(Some(new_commit.clone())),
        "the push is read back"
    );
    assert_eq!(
        store.unread_own_commits(&link).await.expect("unread"),
        vec![new_commit.clone()]
    );
    store
        .apply_from_git(&[], &inbound(&branch.id, &new_commit, InboundStatus::Ours))
        .await
        .expect("read back");
    assert!(
        store
            .unread_own_commits(&link)
            .await
            .expect("unread")
            .is_empty()
    );
}

/// The inbox reads back one of reposync's commits whose push was never recorded: the
/// changesets it names are pushed by it, and a conflict of their files resolves.
#[tokio::test]
async fn a_commit_read_back_settles_the_changesets_its_trailers_name() {
    use reposync_store::InboundStatus;
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, link_id) = linked_store(&dir).await;
    let link = store.link_by_id(&link_id).await.expect("link");
    let branch = store
        .branch_of_link(&link)
        .await
        .expect("branch")
        .expect("branch");
    let index = "Setup/Applications/Shop/Index.yaml";
    store
        .apply_entities(&[put(index, "a")], false)
        .await
        .expect("apply");
    let started = store
        .start_attempt(&link_id)
        .await
        .expect("start")
        .expect("attempt");
    let met_at = "b".repeat(40);
    store
        .finish_attempt(
            &started.attempt.id,
            &AttemptEnd::Conflict {
                head: met_at.clone(),
                files: vec![ConflictRecord {
                    path: index.into(),
                    ours: Some(b"a".to_vec()),
                    theirs: Some(b"z".to_vec()),
                }],
            },
        )
        .await
        .expect("conflict");
    assert_eq!(
        store.wanted_branches().await.expect("wanted")[0].wanted,
        Some(Some(met_at)),
        "the head the conflict was met at is asked to be read"
    );
    let id = started.changesets[0].id.clone();
    let ours = "c".repeat(40);
    let mut read = inbound(&branch.id, &ours, InboundStatus::Ours);
    read.changesets = vec![id.clone(), "unknown".into()];
    store.apply_from_git(&[], &read).await.expect("read back");
    let listed = store
        .list_changesets(std::slice::from_ref(&link_id), 10)
        .await
        .expect("list");
    assert_eq!(listed[0].status, ChangesetStatus::Pushed);
    assert_eq!(listed[0].commit_id.as_deref(), Some(ours.as_str()));
    assert!(store.open_sync_errors().await.expect("errors").is_empty());
}
