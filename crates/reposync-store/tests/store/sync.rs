//! The sync outbox on each backend: changesets written with the change, attempts
//! that carry them, and what an attempt's end does to them.

#![allow(clippy::expect_used)] // Test helpers outside #[test] functions may panic.

use crate::backends::Place;
use reposync_model::{
    BranchId, ChangesetId, ConnectorDraft, ConnectorId, EmailAddress, GitConnector, LinkId,
    ObjectId, Person, SecretName, UserName,
};
use reposync_secrets::MasterKey;
use reposync_store::{
    AttemptEnd, ChangeOutcome, ChangesetStatus, ConflictRecord, Enabling, EnablingTask,
    EntityChange, EntityWrite, FileChangeRecord, FileOp, LinkBacklog, NewSyncLink, SecretKind,
    Store, StoreError, SyncLink, TaskStatus, WebhookChange,
};

fn oid(text: &str) -> ObjectId {
    ObjectId::parse(text).expect("object id")
}

pub(crate) fn put(path: &str, content: &str) -> EntityChange {
    EntityChange::Put(EntityWrite {
        path: path.into(),
        kind: "k".into(),
        app: reposync_store::app_of_path(path).map(str::to_owned),
        content: content.as_bytes().to_vec(),
        references: Vec::new(),
    })
}

pub(crate) async fn linked_store(dir: &Place) -> (Store, LinkId) {
    let store = Store::open(&dir.url(), MasterKey::generate())
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
                base_commit: Some(oid(&"a".repeat(40))),
            },
            &[],
        )
        .await
        .expect("link");
    (store, link.id)
}

/// Each changeset keeps the person who made its change, as they were then (their name, and
/// their address when they have one), and a change no person made has none; they come back
/// in the order the changes were made, as the outbox reads them.
#[tokio::test]
async fn a_changeset_keeps_the_person_who_made_it() {
    on_each_backend!(dir, {
        let (store, link) = linked_store(dir).await;
        let alice = Person {
            name: UserName::parse("alice").expect("name"),
            email: Some(EmailAddress::parse("alice@example.com").expect("email")),
        };
        let bob = Person {
            name: UserName::parse("bob").expect("name"),
            email: None,
        };
        for (content, by) in [("a", Some(&alice)), ("b", None), ("c", Some(&bob))] {
            store
                .apply_entities(
                    &[put("Setup/Applications/Shop/Index.yaml", content)],
                    false,
                    by,
                )
                .await
                .expect("apply");
        }
        let waiting = store
            .start_attempt(&link, None)
            .await
            .expect("start")
            .expect("work waiting")
            .changesets;
        let people: Vec<Option<Person>> = waiting.into_iter().map(|c| c.by).collect();
        assert_eq!(people, [Some(alice.clone()), None, Some(bob)]);
        let listed = store.list_changesets(&[link], 10).await.expect("list");
        assert_eq!(listed.len(), 3);
        assert_eq!(
            listed[2].by,
            Some(alice),
            "the oldest, listed last, is alice's"
        );
    });
}

#[tokio::test]
async fn a_change_in_a_linked_scope_writes_a_changeset_in_the_same_transaction() {
    on_each_backend!(dir, {
        let (store, link) = linked_store(dir).await;
        store
            .apply_entities(
                &[
                    put("Setup/Applications/Shop/Index.yaml", "a"),
                    put("Setup/Applications/Other/Index.yaml", "b"),
                    put("Setup/Cloud Providers/k8s.yaml", "c"),
                ],
                false,
                None,
            )
            .await
            .expect("apply");
        // A dry run and a no-op write nothing.
        store
            .apply_entities(
                &[put("Setup/Applications/Shop/Workflows/w.yaml", "w")],
                true,
                None,
            )
            .await
            .expect("dry run");
        store
            .apply_entities(
                &[put("Setup/Applications/Shop/Index.yaml", "a")],
                false,
                None,
            )
            .await
            .expect("no-op");
        let started = store
            .start_attempt(&link, None)
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
            store
                .start_attempt(&link, None)
                .await
                .expect("start")
                .is_none(),
            "one attempt at a time"
        );

        store
            .finish_attempt(
                &attempt.id,
                &AttemptEnd::Conflict {
                    head: oid(&"b".repeat(40)),
                    files: vec![ConflictRecord {
                        path: "Setup/Applications/Shop/Index.yaml".into(),
                        ours: Some(b"a".to_vec()),
                        theirs: Some(b"z".to_vec()),
                    }],
                },
                None,
            )
            .await
            .expect("finish");
        let errors = store.open_sync_errors().await.expect("errors");
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].theirs.as_deref(), Some(&b"z"[..]));
        let err = store
            .retry_changeset(&ChangesetId::new("nope"))
            .await
            .expect_err("unknown");
        assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
        store
            .retry_changeset(&changesets[0].id)
            .await
            .expect("retry");
        assert!(store.open_sync_errors().await.expect("errors").is_empty());

        let attempt = store
            .start_attempt(&link, None)
            .await
            .expect("start")
            .expect("again")
            .attempt;
        let commit = oid(&"c".repeat(40));
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
                None,
            )
            .await
            .expect("finish");
        let listed = store
            .list_changesets(std::slice::from_ref(&link), 10)
            .await
            .expect("list");
        assert_eq!(listed[0].status, ChangesetStatus::Pushed);
        assert_eq!(listed[0].commit_id.as_ref(), Some(&commit));
        assert_eq!(
            store.link_by_id(&link).await.expect("link").base_commit,
            Some(commit)
        );
    });
}

#[tokio::test]
async fn a_second_link_for_a_scope_is_refused_and_a_restart_replans_cut_off_attempts() {
    on_each_backend!(dir, {
        let (store, link) = linked_store(dir).await;
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
            .apply_entities(
                &[put("Setup/Applications/Shop/Index.yaml", "a")],
                false,
                None,
            )
            .await
            .expect("apply");
        store
            .start_attempt(&link, None)
            .await
            .expect("start")
            .expect("attempt");
        assert_eq!(store.interrupt_attempts().await.expect("interrupt"), 1);
        let replanned = store
            .start_attempt(&link, None)
            .await
            .expect("start")
            .expect("replanned");
        assert_eq!(replanned.changesets.len(), 1);
    });
}

#[tokio::test]
async fn a_held_link_keeps_one_open_error_per_connection_until_an_attempt_gets_past_the_check() {
    on_each_backend!(dir, {
        let (store, link) = linked_store(dir).await;
        store
            .apply_entities(
                &[put("Setup/Applications/Shop/Index.yaml", "a")],
                false,
                None,
            )
            .await
            .expect("apply");
        assert_eq!(
            store.link_backlogs().await.expect("backlogs")[&link].waiting,
            1
        );
        let mirror = "Setup/Source Repo Providers/mirror.yaml";
        for round in 0..3 {
            let attempt = store
                .start_attempt(&link, None)
                .await
                .expect("start")
                .expect("something waits")
                .attempt;
            let held = AttemptEnd::Held {
                connector_path: mirror.into(),
                message: format!("mirror failed its Test, round {round}"),
            };
            store
                .finish_attempt(&attempt.id, &held, None)
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
            .start_attempt(&link, None)
            .await
            .expect("start")
            .expect("something waits")
            .attempt;
        let pushed = AttemptEnd::Pushed {
            commit: Some(oid(&"b".repeat(40))),
            files: Vec::new(),
            landed: Vec::new(),
        };
        store
            .finish_attempt(&attempt.id, &pushed, None)
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
    });
}

#[tokio::test]
async fn the_connectors_a_scope_refers_to_are_found_through_its_references() {
    on_each_backend!(dir, {
        let (store, _) = linked_store(dir).await;
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
                None,
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
    });
}

fn push_delivery(
    connector_id: &ConnectorId,
    delivery_id: Option<&str>,
    heads: Vec<reposync_store::AnnouncedHead>,
) -> reposync_store::NewDelivery {
    reposync_store::NewDelivery {
        connector_id: connector_id.clone(),
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
    on_each_backend!(dir, {
        use reposync_store::{AnnouncedHead, DeliveryOutcome};
        let (store, link) = linked_store(dir).await;
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
        let head = |commit: &ObjectId| AnnouncedHead {
            branch_id: branch.id.clone(),
            commit: Some(commit.clone()),
            link_ids: vec![link.id.clone()],
        };
        let new = oid(&"c".repeat(40));

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
                vec![head(link.base_commit.as_ref().expect("base"))],
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
    });
}

fn inbound(
    branch_id: &BranchId,
    commit: &ObjectId,
    status: reposync_store::InboundStatus,
) -> reposync_store::InboundCommit {
    reposync_store::InboundCommit {
        branch_id: branch_id.clone(),
        commit_id: commit.clone(),
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
    on_each_backend!(dir, {
        use reposync_store::{FileError, InboundStatus, Landed};
        let (store, link_id) = linked_store(dir).await;
        let link = store.link_by_id(&link_id).await.expect("link");
        let branch = store
            .branch_of_link(&link)
            .await
            .expect("branch")
            .expect("the link has a branch");
        let index = "Setup/Applications/Shop/Index.yaml";
        let workflow = "Setup/Applications/Shop/Workflows/w.yaml";
        store
            .apply_entities(&[put(index, "a")], false, None)
            .await
            .expect("apply");
        let first = store
            .start_attempt(&link_id, None)
            .await
            .expect("start")
            .expect("first");
        // Git changed the workflow while reposync held a change to it: Git's version is kept in
        // an `overridden` error (as the inbox records it), on a commit not ours.
        store
            .apply_entities(&[put(workflow, "ours")], false, None)
            .await
            .expect("apply");
        let theirs = oid(&"d".repeat(40));
        let mut read = inbound(&branch.id, &theirs, InboundStatus::Failed);
        read.errors.push(FileError {
            path: workflow.into(),
            link_id: Some(link_id.clone()),
            code: "overridden".into(),
            message: "changed in Git".into(),
            theirs: Some(b"theirs".to_vec()),
            ours: Some(b"ours".to_vec()),
        });
        store
            .apply_from_git(&[], &read, None)
            .await
            .expect("inbound");
        assert_eq!(store.open_sync_errors().await.expect("errors").len(), 1);
        // The server died after the first push landed: its changeset waits again.
        store.interrupt_attempts().await.expect("interrupt");
        let second = store
            .start_attempt(&link_id, None)
            .await
            .expect("start")
            .expect("second");
        assert_eq!(second.changesets.len(), 2);
        assert_eq!(second.paths, [index, workflow]);
        let landed_commit = oid(&"e".repeat(40));
        let new_commit = oid(&"f".repeat(40));
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
                None,
            )
            .await
            .expect("finish");
        let listed = store
            .list_changesets(std::slice::from_ref(&link_id), 10)
            .await
            .expect("list");
        let commit_of = |id: &ChangesetId| {
            listed
                .iter()
                .find(|c| c.id == *id)
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
        // Both are reposync's own until read back: the lost push too, which no attempt records
        // as its commit (the regression of false conflicts against reposync's own commits).
        let mut unread = store.unread_own_commits(&link).await.expect("unread");
        unread.sort();
        assert_eq!(unread, vec![oid(&"e".repeat(40)), new_commit.clone()]);
        for commit in [oid(&"e".repeat(40)), new_commit.clone()] {
            store
                .apply_from_git(
                    &[],
                    &inbound(&branch.id, &commit, InboundStatus::Ours),
                    None,
                )
                .await
                .expect("read back");
        }
        assert!(
            store
                .unread_own_commits(&link)
                .await
                .expect("unread")
                .is_empty()
        );
    });
}

/// The inbox reads back one of reposync's commits whose push was never recorded: the
/// changesets it names are pushed by it, and a conflict of their files resolves.
#[tokio::test]
async fn a_commit_read_back_settles_the_changesets_its_trailers_name() {
    on_each_backend!(dir, {
        use reposync_store::InboundStatus;
        let (store, link_id) = linked_store(dir).await;
        let link = store.link_by_id(&link_id).await.expect("link");
        let branch = store
            .branch_of_link(&link)
            .await
            .expect("branch")
            .expect("branch");
        let index = "Setup/Applications/Shop/Index.yaml";
        store
            .apply_entities(&[put(index, "a")], false, None)
            .await
            .expect("apply");
        let started = store
            .start_attempt(&link_id, None)
            .await
            .expect("start")
            .expect("attempt");
        let met_at = oid(&"b".repeat(40));
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
                None,
            )
            .await
            .expect("conflict");
        assert_eq!(
            store.wanted_branches().await.expect("wanted")[0].wanted,
            Some(Some(met_at)),
            "the head the conflict was met at is asked to be read"
        );
        let id = started.changesets[0].id.clone();
        let ours = oid(&"c".repeat(40));
        let mut read = inbound(&branch.id, &ours, InboundStatus::Ours);
        read.changesets = vec![id.clone(), ChangesetId::new("unknown")];
        store
            .apply_from_git(&[], &read, None)
            .await
            .expect("read back");
        let listed = store
            .list_changesets(std::slice::from_ref(&link_id), 10)
            .await
            .expect("list");
        assert_eq!(listed[0].status, ChangesetStatus::Pushed);
        assert_eq!(listed[0].commit_id.as_ref(), Some(&ours));
        assert!(store.open_sync_errors().await.expect("errors").is_empty());
    });
}

/// A second connector, for what is kept per connector.
async fn other_connector(store: &Store) -> ConnectorId {
    store
        .create_connector(
            &GitConnector::parse(&ConnectorDraft {
                name: Some("other".into()),
                url: Some("https://bitbucket.org/acme/other.git".into()),
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
        .expect("connector")
        .id
}

fn ignored_delivery(connector_id: &ConnectorId, delivery_id: &str) -> reposync_store::NewDelivery {
    reposync_store::NewDelivery {
        decided: Some((
            reposync_store::DeliveryOutcome::Ignored,
            "another branch".into(),
        )),
        ..push_delivery(connector_id, Some(delivery_id), Vec::new())
    }
}

/// Sets when deliveries were received, as the pruning tests need: straight in the database.
async fn set_received_at(dir: &Place, times: &[(&str, i64)]) {
    let pool = sqlx::AnyPool::connect(&dir.url()).await.expect("connect");
    for (id, at) in times {
        let updated = sqlx::query("UPDATE webhook_deliveries SET received_at = $1 WHERE id = $2")
            .bind(*at)
            .bind(*id)
            .execute(&pool)
            .await
            .expect("update")
            .rows_affected();
        assert_eq!(updated, 1, "delivery {id}");
    }
    pool.close().await;
}

#[tokio::test]
async fn pruning_drops_old_deliveries_and_those_past_the_cap_per_connector_but_never_an_unread_head()
 {
    on_each_backend!(dir, {
        use reposync_store::{AnnouncedHead, DeliveryOutcome, InboundCommit, InboundStatus};
        let (store, link) = linked_store(dir).await;
        let link = store.link_by_id(&link).await.expect("link");
        let git = link.connector_id.clone();
        let other = other_connector(&store).await;
        let branch = store
            .live_branches_of_connector(&git)
            .await
            .expect("branches")
            .remove(0);
        let new = oid(&"c".repeat(40));
        let queued = store
            .record_delivery(&push_delivery(
                &git,
                Some("q"),
                vec![AnnouncedHead {
                    branch_id: branch.id.clone(),
                    commit: Some(new.clone()),
                    link_ids: vec![link.id.clone()],
                }],
            ))
            .await
            .expect("record");
        assert_eq!(queued.outcome, DeliveryOutcome::Queued);
        let mut ids = std::collections::HashMap::new();
        for (connector, name) in [
            (&git, "old-1"),
            (&git, "old-2"),
            (&git, "new-1"),
            (&git, "new-2"),
            (&other, "other-1"),
            (&other, "other-2"),
            (&other, "other-3"),
        ] {
            let record = store
                .record_delivery(&ignored_delivery(connector, name))
                .await
                .expect("record");
            ids.insert(name, record.id);
        }
        let now = reposync_store::now_millis();
        let day = 24 * 60 * 60 * 1000;
        set_received_at(
            dir,
            &[
                (queued.id.as_str(), now - 30 * day),
                (&ids["old-1"], now - 30 * day + 1),
                (&ids["old-2"], now - 15 * day),
                (&ids["new-1"], now - 3),
                (&ids["new-2"], now - 2),
                (&ids["other-1"], now - 3),
                (&ids["other-2"], now - 2),
                (&ids["other-3"], now - 1),
            ],
        )
        .await;
        let kept = |connector: ConnectorId| {
            let store = store.clone();
            async move {
                store
                    .list_deliveries(Some(&connector), 100)
                    .await
                    .expect("log")
                    .into_iter()
                    .map(|d| d.delivery_id.expect("id"))
                    .collect::<Vec<_>>()
            }
        };

        // By age: 14 days. The queued delivery is older, but its head is unread.
        let pruned = store
            .prune_deliveries(now - 14 * day, 1000)
            .await
            .expect("prune");
        assert_eq!(pruned, 2);
        assert_eq!(kept(git.clone()).await, ["new-2", "new-1", "q"]);

        // By count, per connector: each keeps its newest, and the unread head still stays.
        let pruned = store
            .prune_deliveries(now - 14 * day, 1)
            .await
            .expect("prune");
        assert_eq!(pruned, 3);
        assert_eq!(kept(git.clone()).await, ["new-2", "q"]);
        assert_eq!(kept(other.clone()).await, ["other-3"]);

        // Once the head is read, nothing keeps it.
        store
            .apply_from_git(
                &[],
                &InboundCommit {
                    branch_id: branch.id.clone(),
                    commit_id: new.clone(),
                    status: InboundStatus::Nothing,
                    files: Vec::new(),
                    message: String::new(),
                    author: String::new(),
                    errors: Vec::new(),
                    changesets: Vec::new(),
                    fixed: Vec::new(),
                    new_apps: Vec::new(),
                },
                None,
            )
            .await
            .expect("read");
        store
            .branch_read(&branch.id, reposync_store::now_millis())
            .await
            .expect("read");
        let pruned = store
            .prune_deliveries(now - 14 * day, 1)
            .await
            .expect("prune");
        assert_eq!(pruned, 1);
        assert_eq!(kept(git).await, ["new-2"]);
        assert_eq!(kept(other).await, ["other-3"], "untouched");
    });
}

#[tokio::test]
async fn a_head_stays_unread_while_a_later_one_is_queued_and_the_branch_is_not_read() {
    on_each_backend!(dir, {
        use reposync_store::{AnnouncedHead, DeliveryOutcome, InboundCommit, InboundStatus};
        let (store, link) = linked_store(dir).await;
        let link = store.link_by_id(&link).await.expect("link");
        let branch = store
            .live_branches_of_connector(&link.connector_id)
            .await
            .expect("branches")
            .remove(0);
        let head = |commit: &ObjectId| AnnouncedHead {
            branch_id: branch.id.clone(),
            commit: Some(commit.clone()),
            link_ids: vec![link.id.clone()],
        };
        let (first, second) = (oid(&"d".repeat(40)), oid(&"e".repeat(40)));
        for (id, commit) in [("d-1", &first), ("d-2", &second)] {
            let record = store
                .record_delivery(&push_delivery(
                    &link.connector_id,
                    Some(id),
                    vec![head(commit)],
                ))
                .await
                .expect("record");
            assert_eq!(record.outcome, DeliveryOutcome::Queued);
        }
        let everything = reposync_store::now_millis() + 1;
        assert_eq!(
            store.prune_deliveries(everything, 1).await.expect("prune"),
            0,
            "both heads are unread"
        );
        // The first commit is read; the second head is still queued.
        store
            .apply_from_git(
                &[],
                &InboundCommit {
                    branch_id: branch.id.clone(),
                    commit_id: first.clone(),
                    status: InboundStatus::Nothing,
                    files: Vec::new(),
                    message: String::new(),
                    author: String::new(),
                    errors: Vec::new(),
                    changesets: Vec::new(),
                    fixed: Vec::new(),
                    new_apps: Vec::new(),
                },
                None,
            )
            .await
            .expect("read");
        assert_eq!(
            store.prune_deliveries(everything, 1).await.expect("prune"),
            1
        );
        let left = store
            .list_deliveries(Some(&link.connector_id), 10)
            .await
            .expect("log");
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].delivery_id.as_deref(), Some("d-2"));
    });
}

#[tokio::test]
async fn logged_values_are_cut_on_a_character_boundary_and_marked() {
    on_each_backend!(dir, {
        use reposync_store::{DeliveryOutcome, MAX_LOGGED_HEADER_BYTES, MAX_LOGGED_REASON_BYTES};
        let (store, link) = linked_store(dir).await;
        let link = store.link_by_id(&link).await.expect("link");
        // 'é' is two bytes: the 256-byte cut falls inside one and must step back.
        let event = format!("x{}", "é".repeat(30_000));
        let long_id = "i".repeat(70_000);
        let mut delivery = ignored_delivery(&link.connector_id, &long_id);
        delivery.event = event.clone();
        delivery.decided = Some((DeliveryOutcome::Ignored, "r".repeat(10_000)));
        delivery.changes_json = serde_json::json!({"changes": "p".repeat(100_000)}).to_string();
        let stored = store.record_delivery(&delivery).await.expect("record");
        let logged = store
            .list_deliveries(Some(&link.connector_id), 1)
            .await
            .expect("log")
            .remove(0);
        assert_eq!(logged.event, stored.event);
        let mark = format!("… [truncated from {} bytes]", event.len());
        let kept = logged
            .event
            .strip_suffix(&mark)
            .expect("marked with the original size");
        assert_eq!(
            kept.len(),
            MAX_LOGGED_HEADER_BYTES - mark.len() - 1,
            "whole characters only, and the mark fits in the bound"
        );
        assert!(event.starts_with(kept));
        let id = logged.delivery_id.clone().expect("id");
        assert_eq!(id.len(), MAX_LOGGED_HEADER_BYTES);
        assert!(id.starts_with("iiii"));
        assert!(id.ends_with("… [truncated from 70000 bytes]"), "{id}");
        let reason = logged.reason.clone().expect("reason");
        assert_eq!(reason.len(), MAX_LOGGED_REASON_BYTES);
        assert!(reason.ends_with("… [truncated from 10000 bytes]"));
        assert_eq!(
            reposync_store::bounded(&reason, MAX_LOGGED_REASON_BYTES),
            reason,
            "bounding again changes nothing"
        );
        let payload: serde_json::Value =
            serde_json::from_str(&logged.changes_json).expect("still JSON");
        assert_eq!(payload["truncated"], true);
        assert!(payload["bytes"].as_u64().expect("size") > 100_000);

        // The same long id again is still recognised: ids are compared as they were kept.
        let again = store
            .record_delivery(&push_delivery(
                &link.connector_id,
                Some(&long_id),
                Vec::new(),
            ))
            .await
            .expect("record");
        assert_eq!(again.outcome, DeliveryOutcome::Duplicate);
        // Short values are kept as they are.
        let short = store
            .record_delivery(&ignored_delivery(&link.connector_id, "d-short"))
            .await
            .expect("record");
        assert_eq!(short.event, "repo:push");
        assert_eq!(short.reason.as_deref(), Some("another branch"));
    });
}

#[tokio::test]
async fn unauthenticated_deliveries_are_counted_per_connector() {
    on_each_backend!(dir, {
        use reposync_store::UnauthenticatedDeliveries;
        let (store, link) = linked_store(dir).await;
        let git = store.link_by_id(&link).await.expect("link").connector_id;
        let tally =
            |connector: &ConnectorId, count, last_at, reason: &str| UnauthenticatedDeliveries {
                connector_id: connector.clone(),
                count,
                last_at,
                last_reason: reason.to_owned(),
            };
        assert!(
            store
                .unauthenticated_deliveries()
                .await
                .expect("read")
                .is_empty()
        );
        store
            .add_unauthenticated_deliveries(&[
                tally(&git, 3, 10, "missing"),
                tally(&ConnectorId::new("gone"), 5, 11, "x"),
            ])
            .await
            .expect("add");
        store
            .add_unauthenticated_deliveries(&[tally(&git, 4, 20, "invalid")])
            .await
            .expect("add");
        assert_eq!(
            store.unauthenticated_deliveries().await.expect("read"),
            [tally(&git, 7, 20, "invalid")],
            "summed; a connector that does not exist is skipped"
        );
    });
}

/// Enabling writes the branch's files, the link and its first changeset together or not at
/// all: a failure half-way (here the link's insert, after the files were written in the same
/// transaction) leaves the store exactly as it was.
#[tokio::test]
async fn an_enable_that_fails_half_way_leaves_the_store_as_it_was() {
    on_each_backend!(dir, {
        let (store, _) = linked_store(dir).await;
        let kept = "Setup/Notification Groups/kept.yaml";
        let doomed = "Setup/Notification Groups/doomed.yaml";
        store
            .apply_entities(&[put(kept, "k"), put(doomed, "d")], false, None)
            .await
            .expect("apply");
        let snapshot = |store: Store| async move {
            let mut files = store.scope_files(None).await.expect("files");
            files.sort();
            let links = store.all_links().await.expect("links").len();
            let changesets = store.list_changesets(&[], 1000).await.expect("list").len();
            (files, links, changesets)
        };
        let before = snapshot(store.clone()).await;
        let task = store
            .start_local_task("enable_sync", "{}")
            .await
            .expect("task");
        let never = |_: &SyncLink, _: LinkBacklog, _: &[(String, ChangeOutcome)]| String::new();
        let changes = [
            put(kept, "from the branch"),
            put("Setup/Notification Groups/new.yaml", "n"),
            EntityChange::Delete {
                path: doomed.into(),
            },
        ];
        let link = NewSyncLink {
            app: None,
            // No such connector: the insert of the link fails on its foreign key, after the
            // files were written.
            connector_id: ConnectorId::new("missing-connector"),
            repo: None,
            branch: "main".into(),
            base_commit: Some(oid(&"a".repeat(40))),
        };
        let err = store
            .enable_link(&reposync_store::Enabling {
                changes: &changes,
                link: &link,
                initial_files: &[FileChangeRecord {
                    op: FileOp::Add,
                    path: kept.into(),
                }],
                branch_errors: &[],
                read: None,
                task: Some(EnablingTask {
                    id: &task.id,
                    result: &never,
                }),
                by: None,
            })
            .await
            .expect_err("the link cannot be inserted");
        assert!(!matches!(err, StoreError::NotFound { .. }), "{err}");
        assert_eq!(snapshot(store.clone()).await, before, "nothing was written");
        assert_eq!(
            store.get_task(&task.id).await.expect("task").status,
            TaskStatus::Running,
            "the work is not done, so its task still runs"
        );
    });
}

/// The task that asked for an enable ends in the enable's own transaction, with its result
/// written from the new link; an enable under a task that already ended is refused and writes
/// nothing, so a task run again never links twice.
#[tokio::test]
async fn an_enable_ends_its_task_in_the_same_transaction_and_only_once() {
    on_each_backend!(dir, {
        let (store, shop) = linked_store(dir).await;
        let connector_id = store.link_by_id(&shop).await.expect("link").connector_id;
        let task = store
            .start_local_task("enable_sync", "{}")
            .await
            .expect("task");
        assert_eq!(
            (task.status, task.delegate.as_deref()),
            (TaskStatus::Running, None)
        );
        let running = store
            .running_local_tasks("enable_sync")
            .await
            .expect("running");
        assert_eq!(running.len(), 1);
        let result =
            |link: &SyncLink, backlog: LinkBacklog, outcomes: &[(String, ChangeOutcome)]| {
                format!(
                    "{} {} {} {}",
                    link.id,
                    backlog.waiting,
                    backlog.open_errors,
                    outcomes.len()
                )
            };
        let new_link = |app: &str| NewSyncLink {
            app: Some(app.into()),
            connector_id: connector_id.clone(),
            repo: None,
            branch: format!("{app}-branch"),
            base_commit: None,
        };
        let enable = |link: NewSyncLink| {
            let store = store.clone();
            let task = task.id.clone();
            async move {
                store
                    .enable_link(&Enabling {
                        changes: &[put("Setup/Notification Groups/n.yaml", "n")],
                        link: &link,
                        initial_files: &[FileChangeRecord {
                            op: FileOp::Add,
                            path: "Setup/Applications/Web/Index.yaml".into(),
                        }],
                        branch_errors: &[],
                        read: None,
                        task: Some(EnablingTask {
                            id: &task,
                            result: &result,
                        }),
                        by: None,
                    })
                    .await
            }
        };
        let (linked, _) = enable(new_link("Web")).await.expect("enable");
        let ended = store.get_task(&task.id).await.expect("task");
        assert_eq!(ended.status, TaskStatus::Succeeded);
        assert_eq!(
            ended.result.as_deref(),
            Some(format!("{} 1 0 1", linked.id).as_str())
        );
        assert!(
            store
                .running_local_tasks("enable_sync")
                .await
                .expect("running")
                .is_empty()
        );
        let links = store.all_links().await.expect("links").len();
        let again = enable(new_link("Api")).await.expect_err("the task ended");
        assert!(matches!(again, StoreError::Conflict { .. }), "{again}");
        assert_eq!(store.all_links().await.expect("links").len(), links);
        assert!(
            store
                .finish_local_task(&task.id, false, "{}")
                .await
                .expect("finish")
                .is_none(),
            "an ended task does not end twice"
        );
    });
}

/// The regression of `sync status` answering 500 once Git brought a new application folder
/// whose files failed: their errors belong to no link yet.
#[tokio::test]
async fn sync_status_answers_after_git_onboards_an_application_whose_folder_holds_a_bad_file() {
    on_each_backend!(dir, {
        use reposync_store::{FileError, InboundStatus};
        let (store, link_id) = linked_store(dir).await;
        let link = store.link_by_id(&link_id).await.expect("link");
        let branch = store
            .branch_of_link(&link)
            .await
            .expect("branch")
            .expect("branch");
        let mut read = inbound(&branch.id, &oid(&"b".repeat(40)), InboundStatus::Failed);
        read.errors.push(FileError {
            path: "Setup/Applications/New/Index.yaml".into(),
            link_id: None,
            code: "invalid_file".into(),
            message: "bad".into(),
            theirs: Some(b"x".to_vec()),
            ours: None,
        });
        store
            .apply_from_git(&[], &read, None)
            .await
            .expect("inbound");
        let backlogs = store.link_backlogs().await.expect("backlogs answer");
        assert!(!backlogs.contains_key(&LinkId::new("")), "{backlogs:?}");
        assert_eq!(store.open_sync_errors().await.expect("errors").len(), 1);
    });
}

/// Attempts started at once for one link: exactly one gets the changesets (the write gate
/// orders them, and a unique index would refuse a second running attempt).
#[tokio::test]
async fn attempts_started_at_once_for_one_link_make_one_running_attempt() {
    on_each_backend!(dir, {
        let (store, link) = linked_store(dir).await;
        store
            .apply_entities(
                &[put("Setup/Applications/Shop/Index.yaml", "a")],
                false,
                None,
            )
            .await
            .expect("apply");
        let starts: Vec<_> = (0..8)
            .map(|_| {
                let store = store.clone();
                let link = link.clone();
                tokio::spawn(async move { store.start_attempt(&link, None).await })
            })
            .collect();
        let mut started = 0;
        for start in starts {
            if start.await.expect("join").expect("start").is_some() {
                started += 1;
            }
        }
        assert_eq!(started, 1);
    });
}

/// The regression of a re-enabled link replaying old commits over what enabling set up: a
/// branch that only disabled links had read moves to the head the new link was enabled on;
/// one that another live link reads keeps its position.
#[tokio::test]
async fn a_link_enabled_again_reads_its_branch_from_where_it_was_enabled() {
    on_each_backend!(dir, {
        let (store, link_id) = linked_store(dir).await;
        let old = store.link_by_id(&link_id).await.expect("link");
        store.disable_link(&link_id).await.expect("disable");
        let head = oid(&"b".repeat(40));
        let again = store
            .create_link(
                &NewSyncLink {
                    app: Some("Shop".into()),
                    connector_id: old.connector_id.clone(),
                    repo: None,
                    branch: "main".into(),
                    base_commit: Some(head.clone()),
                },
                &[],
            )
            .await
            .expect("enable again");
        let branch = store
            .branch_of_link(&again)
            .await
            .expect("branch")
            .expect("branch");
        assert_eq!(branch.processed_commit.as_ref(), Some(&head));

        // A second live link on the same branch does not move it: the first still reads it.
        let other = store
            .create_link(
                &NewSyncLink {
                    app: Some("Other".into()),
                    connector_id: old.connector_id.clone(),
                    repo: None,
                    branch: "main".into(),
                    base_commit: Some(oid(&"c".repeat(40))),
                },
                &[],
            )
            .await
            .expect("second link");
        let branch = store
            .branch_of_link(&other)
            .await
            .expect("branch")
            .expect("branch");
        assert_eq!(branch.processed_commit.as_ref(), Some(&head));
    });
}

/// History older than the retention age leaves; what a person may still need stays: the
/// running task, the open sync error and the commit it names.
#[tokio::test]
async fn history_past_its_age_is_pruned_and_what_needs_a_person_stays() {
    on_each_backend!(dir, {
        use reposync_store::{FileError, InboundStatus};
        let clock = reposync_store::ManualClock::starting_now();
        let (store, link_id) = linked_store(dir).await;
        let store = store.with_clock(clock.clone());
        let link = store.link_by_id(&link_id).await.expect("link");
        let branch = store
            .branch_of_link(&link)
            .await
            .expect("branch")
            .expect("branch");

        let finished = store
            .start_local_task("enable_sync", "{}")
            .await
            .expect("task");
        store
            .finish_local_task(&finished.id, true, "{}")
            .await
            .expect("finish");
        let running = store
            .start_local_task("enable_sync", "{}")
            .await
            .expect("task");

        let applied = oid(&"c".repeat(40));
        store
            .apply_from_git(
                &[],
                &inbound(&branch.id, &applied, InboundStatus::Applied),
                None,
            )
            .await
            .expect("applied commit");
        store
            .record_read(
                &branch.id,
                &reposync_store::BranchRead {
                    kind: reposync_store::ReadKind::Incremental,
                    head: Some(applied.clone()),
                    method: "git".into(),
                    reason: "the connector asks for git".into(),
                    fallback_from: None,
                    fallback_reason: None,
                    requests: 0,
                    bytes: 2048,
                    duration_ms: 35,
                    task_id: None,
                },
            )
            .await
            .expect("how it was read");
        let failing = |path: &str| FileError {
            path: path.into(),
            link_id: Some(link_id.clone()),
            code: "invalid_file".into(),
            message: "bad".into(),
            theirs: Some(b"x".to_vec()),
            ours: None,
        };
        let failed = oid(&"d".repeat(40));
        let mut read = inbound(&branch.id, &failed, InboundStatus::Partial);
        read.errors
            .push(failing("Setup/Applications/Shop/Services/a.yaml"));
        read.errors
            .push(failing("Setup/Applications/Shop/Services/b.yaml"));
        store
            .apply_from_git(&[], &read, None)
            .await
            .expect("failed commit");
        let errors = store.open_sync_errors().await.expect("errors");
        assert_eq!(errors.len(), 2);
        store
            .discard_sync_error(&errors[0].id)
            .await
            .expect("discard");

        // Two pushes: the first read back from Git, the second not yet, so that only its
        // changeset still marks that commit as reposync's own.
        let mut pushed_changesets = Vec::new();
        for (content, commit) in [("one", "e"), ("two", "f")] {
            store
                .apply_entities(
                    &[put("Setup/Applications/Shop/Index.yaml", content)],
                    false,
                    None,
                )
                .await
                .expect("edit");
            let started = store
                .start_attempt(&link_id, None)
                .await
                .expect("start")
                .expect("work waiting");
            pushed_changesets.push(started.changesets[0].id.clone());
            store
                .finish_attempt(
                    &started.attempt.id,
                    &AttemptEnd::Pushed {
                        commit: Some(oid(&commit.repeat(40))),
                        files: Vec::new(),
                        landed: Vec::new(),
                    },
                    None,
                )
                .await
                .expect("pushed");
        }
        store
            .apply_from_git(
                &[],
                &inbound(&branch.id, &oid(&"e".repeat(40)), InboundStatus::Ours),
                None,
            )
            .await
            .expect("read back");

        let day = 24 * 60 * 60 * 1000;
        let ninety_days = reposync_store::RetentionAges {
            history: std::time::Duration::from_secs(90 * 24 * 60 * 60),
            audit: std::time::Duration::from_secs(400 * 24 * 60 * 60),
        };
        clock.advance(89 * day);
        let early = store.prune_history(ninety_days).await.expect("prune");
        assert_eq!(early.total(), 0, "nothing is old enough yet: {early:?}");
        clock.advance(2 * day);
        let pruned = store.prune_history(ninety_days).await.expect("prune");
        assert_eq!(pruned.tasks, 1, "{pruned:?}");
        assert_eq!(pruned.resolved_errors, 1, "{pruned:?}");
        assert_eq!(
            pruned.commits_read, 2,
            "the commit an open error names stays: {pruned:?}"
        );
        assert_eq!(pruned.attempts, 2, "{pruned:?}");
        assert_eq!(pruned.reads, 1, "{pruned:?}");
        assert_eq!(
            pruned.changesets, 1,
            "a pushed changeset whose commit was not read back stays: {pruned:?}"
        );
        let left: Vec<_> = store
            .list_changesets(std::slice::from_ref(&link_id), 10)
            .await
            .expect("list")
            .into_iter()
            .map(|changeset| changeset.id)
            .collect();
        assert_eq!(left, [pushed_changesets[1].clone()]);
        assert!(store.get_task(&finished.id).await.is_err());
        assert!(
            store.get_task(&running.id).await.is_ok(),
            "a running task stays"
        );
        assert_eq!(store.open_sync_errors().await.expect("errors").len(), 1);

        let again = store.prune_history(ninety_days).await.expect("prune");
        assert_eq!(
            again.total(),
            0,
            "pruning twice removes nothing more: {again:?}"
        );
    });
}

/// A link's backlog says how many changes wait, how many are being pushed, and since when the
/// oldest has waited, so that a page can say how long.
#[tokio::test]
async fn a_backlog_counts_what_waits_what_is_being_pushed_and_since_when() {
    on_each_backend!(dir, {
        let (store, link) = linked_store(dir).await;
        let before = reposync_store::now_millis();
        for (path, content) in [
            ("Setup/Applications/Shop/Index.yaml", "a"),
            ("Setup/Applications/Shop/Workflows/w.yaml", "w"),
        ] {
            store
                .apply_entities(&[put(path, content)], false, None)
                .await
                .expect("apply");
        }
        let backlog = store.link_backlogs().await.expect("backlogs")[&link];
        assert_eq!(
            (backlog.waiting, backlog.pushing, backlog.conflicts),
            (2, 0, 0)
        );
        let since = backlog.waiting_since.expect("since when");
        assert!(since >= before, "the oldest change's time");
        store
            .start_attempt(&link, None)
            .await
            .expect("start")
            .expect("something waits");
        let backlog = store.link_backlogs().await.expect("backlogs")[&link];
        assert_eq!(
            (backlog.waiting, backlog.pushing),
            (2, 2),
            "both on their way"
        );
        assert_eq!(backlog.waiting_since, Some(since));
    });
}
