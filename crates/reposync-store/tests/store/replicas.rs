//! Several servers on one database, on each backend: a branch's lease and the fence that
//! refuses a replica that lost it, the delegates each replica tells the others of, the local
//! tasks of a replica that is gone, concurrent claims, and (on PostgreSQL) the signals that
//! cross from one replica to another.

#![allow(clippy::expect_used)] // Test helpers outside #[test] functions may panic.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use crate::backends::Place;
use crate::sync::put;
use reposync_model::{BranchId, TaskId};
use reposync_secrets::MasterKey;
use reposync_store::{
    AttemptEnd, Claim, Clock as _, DelegatePresence, Eligibility, InboundCommit, InboundStatus,
    ManualClock, NewTask, REPLICA_GONE_AFTER, ReplicaId, Signal, Store, StoreError,
};

const LEASE: Duration = Duration::from_secs(10);

/// A second replica on the same database as `store`, reading the same manual clock.
async fn replica(place: &Place, name: &str, clock: &Arc<ManualClock>) -> Store {
    let store = Store::open(&place.url(), MasterKey::generate())
        .await
        .expect("open")
        .with_clock(Arc::clone(clock) as Arc<dyn reposync_store::Clock>)
        .as_replica(ReplicaId::new(name));
    store.register_replica(name).await.expect("register");
    store
}

fn fenced(error: &StoreError) -> bool {
    matches!(error, StoreError::Fenced { .. })
}

#[tokio::test]
async fn a_branch_is_one_replicas_at_a_time_and_one_that_lost_its_lease_cannot_commit() {
    on_each_backend!(place, {
        let (_setup, link) = crate::sync::linked_store(place).await;
        let clock = ManualClock::starting_now();
        let a = replica(place, "a", &clock).await;
        let b = replica(place, "b", &clock).await;
        let branch: BranchId = a
            .branch_of_link(&a.link_by_id(&link).await.expect("link"))
            .await
            .expect("branch")
            .expect("the link's branch")
            .id;
        a.apply_entities(
            &[put("Setup/Applications/Shop/Index.yaml", "a")],
            false,
            None,
        )
        .await
        .expect("apply");

        let fence_a = a.acquire_branch_lease(&branch, LEASE).await.expect("lease");
        let fence_a = fence_a.expect("the first replica takes the free branch");
        assert_eq!(fence_a.token, 1);
        assert_eq!(
            b.acquire_branch_lease(&branch, LEASE).await.expect("lease"),
            None,
            "the branch is the first replica's while its lease runs"
        );
        let kept = a.acquire_branch_lease(&branch, LEASE).await.expect("lease");
        assert_eq!(kept.as_ref(), Some(&fence_a), "the holder keeps its token");
        let attempt = a
            .start_attempt(&link, Some(&fence_a))
            .await
            .expect("start")
            .expect("work waiting")
            .attempt;

        // The first replica stops renewing (it died, or lost the database) past its lease.
        clock.advance(i64::try_from(LEASE.as_millis()).expect("ms") + 1);
        let fence_b = b
            .acquire_branch_lease(&branch, LEASE)
            .await
            .expect("lease")
            .expect("the lease ran out: the second replica takes the branch");
        assert_eq!(fence_b.token, 2);

        // Whatever the first replica still tries for the branch is refused, and changes
        // nothing.
        let pushed = AttemptEnd::Pushed {
            commit: None,
            files: Vec::new(),
            landed: Vec::new(),
        };
        let refused = a
            .finish_attempt(&attempt.id, &pushed, Some(&fence_a))
            .await
            .expect_err("a stale attempt's end");
        assert!(fenced(&refused), "{refused}");
        let refused = a.start_attempt(&link, Some(&fence_a)).await;
        assert!(
            matches!(&refused, Err(e) if fenced(e)),
            "a stale start is refused"
        );
        let read = InboundCommit {
            branch_id: branch.clone(),
            commit_id: reposync_model::ObjectId::parse(&"b".repeat(40)).expect("oid"),
            status: InboundStatus::Nothing,
            files: Vec::new(),
            message: String::new(),
            author: String::new(),
            errors: Vec::new(),
            changesets: Vec::new(),
            fixed: Vec::new(),
            new_apps: Vec::new(),
        };
        let refused = a
            .apply_from_git(&[], &read, Some(&fence_a))
            .await
            .expect_err("a stale apply");
        assert!(fenced(&refused), "{refused}");
        assert!(
            b.list_inbound_commits(std::slice::from_ref(&branch), 10)
                .await
                .expect("commits")
                .is_empty(),
            "the refused apply recorded nothing"
        );

        // The takeover put the cut-off attempt's changeset back: the new holder carries it.
        let replanned = b
            .start_attempt(&link, Some(&fence_b))
            .await
            .expect("start")
            .expect("the cut-off changeset waits again");
        assert_eq!(replanned.changesets.len(), 1);
        b.finish_attempt(&replanned.attempt.id, &pushed, Some(&fence_b))
            .await
            .expect("the holder records its attempt");

        // Renewing keeps only what each replica still holds.
        let held_b = b.renew_branch_leases(LEASE).await.expect("renew");
        assert_eq!(held_b, vec![fence_b.clone()]);
        assert!(
            a.renew_branch_leases(LEASE)
                .await
                .expect("renew")
                .is_empty()
        );

        // A replica that stops hands its branches over at once, with a new token.
        b.leave_replica().await.expect("leave");
        let fence = a
            .acquire_branch_lease(&branch, LEASE)
            .await
            .expect("lease")
            .expect("a released branch is free");
        assert_eq!(fence.token, 3);
    });
}

#[tokio::test]
async fn a_replica_restarted_takes_its_own_branches_up_at_once() {
    on_each_backend!(place, {
        let (_setup, link) = crate::sync::linked_store(place).await;
        let clock = ManualClock::starting_now();
        let before = replica(place, "a", &clock).await;
        let branch = before
            .branch_of_link(&before.link_by_id(&link).await.expect("link"))
            .await
            .expect("branch")
            .expect("the link's branch")
            .id;
        before
            .apply_entities(
                &[put("Setup/Applications/Shop/Index.yaml", "a")],
                false,
                None,
            )
            .await
            .expect("apply");
        let old = before
            .acquire_branch_lease(&branch, LEASE)
            .await
            .expect("lease")
            .expect("free");
        before
            .start_attempt(&link, Some(&old))
            .await
            .expect("start")
            .expect("attempt");
        // Killed; the same replica (its id kept in its data directory) starts again at once,
        // well within its old lease.
        let after = replica(place, "a", &clock).await;
        assert_eq!(after.recover_replica().await.expect("recover"), 1);
        let new = after
            .acquire_branch_lease(&branch, LEASE)
            .await
            .expect("lease")
            .expect("its own branch");
        assert!(new.token > old.token, "the old run is fenced out");
        let replanned = after
            .start_attempt(&link, Some(&new))
            .await
            .expect("start")
            .expect("the cut-off attempt is planned again");
        assert_eq!(replanned.changesets.len(), 1);
        let refused = before.start_attempt(&link, Some(&old)).await;
        assert!(
            matches!(&refused, Err(e) if fenced(e)),
            "the old run is refused by its fence"
        );
    });
}

#[tokio::test]
async fn each_replica_sees_the_delegates_of_the_others_while_they_live() {
    on_each_backend!(place, {
        let clock = ManualClock::starting_now();
        let a = replica(place, "a", &clock).await;
        let b = replica(place, "b", &clock).await;
        let fleet = DelegatePresence {
            name: "fleet-1".into(),
            eligibility: Eligibility {
                selectors: vec!["fleet-1".into(), "eu".into()],
                restricted_to: Some(vec!["eu".into()]),
            },
            lease: Duration::from_secs(30),
            builtin: false,
            token_id: Some("tok".into()),
            polling: 1,
            since_seen: Duration::ZERO,
        };
        a.publish_presence(&fleet).await.expect("publish");
        let seen = b.presence_elsewhere().await.expect("presence");
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].name, "fleet-1");
        assert_eq!(seen[0].eligibility, fleet.eligibility);
        assert!(seen[0].connected(), "it waits in a claim on replica a");
        assert!(
            a.presence_elsewhere().await.expect("presence").is_empty(),
            "a replica's own delegates are its own to know"
        );
        // Its poll ended 40 s ago, past its lease: no longer connected.
        a.publish_presence(&DelegatePresence {
            polling: 0,
            since_seen: Duration::from_secs(40),
            ..fleet.clone()
        })
        .await
        .expect("publish");
        let seen = b.presence_elsewhere().await.expect("presence");
        assert!(!seen[0].connected(), "{seen:?}");
        // A replica gone silent takes its delegates with it.
        a.publish_presence(&fleet).await.expect("publish");
        clock.advance(i64::try_from(REPLICA_GONE_AFTER.as_millis()).expect("ms") + 1);
        b.replica_heartbeat().await.expect("heartbeat");
        assert!(b.presence_elsewhere().await.expect("presence").is_empty());
        a.replica_heartbeat().await.expect("heartbeat");
        assert_eq!(b.presence_elsewhere().await.expect("presence").len(), 1);
        a.withdraw_presence("fleet-1").await.expect("withdraw");
        assert!(b.presence_elsewhere().await.expect("presence").is_empty());
    });
}

#[tokio::test]
async fn a_gone_replicas_local_tasks_are_taken_up_by_one_other() {
    on_each_backend!(place, {
        let clock = ManualClock::starting_now();
        let a = replica(place, "a", &clock).await;
        let b = replica(place, "b", &clock).await;
        let c = replica(place, "c", &clock).await;
        let task = a
            .start_local_task("enable_sync", "{}")
            .await
            .expect("local task");
        assert!(
            b.take_up_local_tasks("enable_sync", false)
                .await
                .expect("take up")
                .is_empty(),
            "a live replica's task is its own"
        );
        assert!(
            b.take_up_local_tasks("enable_sync", true)
                .await
                .expect("take up")
                .is_empty(),
            "another replica's start takes nothing of a live one"
        );
        clock.advance(i64::try_from(REPLICA_GONE_AFTER.as_millis()).expect("ms") + 1);
        b.replica_heartbeat().await.expect("heartbeat");
        c.replica_heartbeat().await.expect("heartbeat");
        let (by_b, by_c) = tokio::join!(
            b.take_up_local_tasks("enable_sync", false),
            c.take_up_local_tasks("enable_sync", false)
        );
        let taken: Vec<TaskId> = by_b
            .expect("b")
            .into_iter()
            .chain(by_c.expect("c"))
            .map(|t| t.id)
            .collect();
        assert_eq!(taken, vec![task.id.clone()], "taken up once, by one");
        assert!(
            a.take_up_local_tasks("enable_sync", true)
                .await
                .expect("take up")
                .is_empty(),
            "the gone replica, back, finds its task taken"
        );
    });
}

#[tokio::test]
async fn concurrent_claims_from_several_replicas_take_each_task_once() {
    on_each_backend!(place, {
        let clock = ManualClock::starting_now();
        let stores = [
            replica(place, "a", &clock).await,
            replica(place, "b", &clock).await,
        ];
        for n in 0..24 {
            stores[0]
                .enqueue_task(&NewTask {
                    kind: "test_connection".into(),
                    payload: format!("{{\"n\":{n}}}"),
                    selectors: Vec::new(),
                    max_attempts: 1,
                    prefer: None,
                    avoid: None,
                })
                .await
                .expect("enqueue");
        }
        let mut claimers = tokio::task::JoinSet::new();
        for (i, store) in stores.iter().cycle().take(6).enumerate() {
            let store = store.clone();
            claimers.spawn(async move {
                let name = format!("d{i}");
                let mut got = Vec::new();
                loop {
                    match store
                        .claim_task(&name, &Eligibility::unrestricted(vec![name.clone()]), LEASE)
                        .await
                        .expect("claim")
                    {
                        Claim::Task(task) => got.push(task.id),
                        Claim::Nothing => return got,
                        Claim::Later(_) => {}
                    }
                }
            });
        }
        let mut all = Vec::new();
        while let Some(got) = claimers.join_next().await {
            all.extend(got.expect("claimer"));
        }
        let distinct: HashSet<&TaskId> = all.iter().collect();
        assert_eq!(all.len(), 24, "every task claimed");
        assert_eq!(distinct.len(), 24, "none claimed twice");
    });
}

/// A signal published on one replica wakes the waiters of another, through PostgreSQL's
/// `NOTIFY`; SQLite has no other replica to wake.
#[tokio::test]
async fn a_signal_on_one_replica_wakes_the_waiters_of_another() {
    on_each_backend!(place, {
        if place.is_sqlite() {
            continue;
        }
        let clock = ManualClock::starting_now();
        let a = replica(place, "a", &clock).await;
        let b = replica(place, "b", &clock).await;
        assert!(a.signals().shared() && b.signals().shared());
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let listening = b.signals().clone();
        let listener = tokio::spawn(async move {
            listening
                .listen(async {
                    let _ = stop_rx.await;
                })
                .await;
        });
        let outbox = b.signals().outbox();
        let mut finished = b.signals().finished();
        let id = TaskId::new("0190-task");
        // Sent again until one arrives: the listener connects in its own time, and a signal
        // is only a hint until then.
        let arrived = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                a.signals().publish(Signal::TaskFinished(id.clone()));
                if let Ok(Ok(done)) =
                    tokio::time::timeout(Duration::from_millis(200), finished.recv()).await
                {
                    return done;
                }
            }
        })
        .await
        .expect("another replica's signal arrives");
        assert_eq!(arrived, id);
        a.signals().publish(Signal::Outbox);
        tokio::time::timeout(Duration::from_secs(10), outbox.notified())
            .await
            .expect("the outbox of the other replica is woken");
        let _ = stop_tx.send(());
        listener.await.expect("listener");
    });
}

#[tokio::test]
async fn every_replica_knows_which_one_keeps_a_fetchs_archive() {
    on_each_backend!(place, {
        let clock = ManualClock::starting_now();
        let a = replica(place, "a", &clock).await;
        let b = replica(place, "b", &clock).await;
        let task = a
            .enqueue_task(&NewTask {
                kind: "fetch_files".into(),
                payload: "{}".into(),
                selectors: Vec::new(),
                max_attempts: 1,
                prefer: None,
                avoid: None,
            })
            .await
            .expect("enqueue");
        assert_eq!(b.archive_keeper(&task.id).await.expect("keeper"), None);
        assert_eq!(b.archive_pieces(&task.id).await.expect("pieces"), None);
        // The receiving replica stores the archive in pieces, then says it keeps it.
        a.store_archive_piece(&task.id, 0, &[0u8, 1, 2])
            .await
            .expect("piece");
        a.store_archive_piece(&task.id, 1, b"tar")
            .await
            .expect("piece");
        assert_eq!(
            b.archive_pieces(&task.id).await.expect("pieces"),
            None,
            "pieces stored by a replica that has not named itself keeper (killed half-way) are never served"
        );
        a.keep_archive_here(&task.id).await.expect("kept");
        let (pieces, size, _) = b
            .archive_pieces(&task.id)
            .await
            .expect("pieces")
            .expect("stored");
        assert_eq!((pieces, size), (2, 6));
        assert_eq!(
            b.archive_piece(&task.id, 1).await.expect("piece"),
            b"tar".to_vec()
        );
        assert_eq!(
            b.archive_keeper(&task.id).await.expect("keeper"),
            Some((ReplicaId::new("a"), "a".to_owned())),
            "the other replica knows the archive arrived, and where"
        );
        // A second upload starts from nothing: no piece of the first mixes with it.
        a.forget_archive(&task.id).await.expect("forget");
        assert_eq!(b.archive_pieces(&task.id).await.expect("pieces"), None);
        assert_eq!(b.archive_keeper(&task.id).await.expect("keeper"), None);
        a.store_archive_piece(&task.id, 0, b"tar")
            .await
            .expect("piece");
        a.keep_archive_here(&task.id).await.expect("kept");
        // Past the archive's hour its pieces go.
        clock.advance(1);
        assert_eq!(
            b.prune_archive_pieces(clock.now_millis())
                .await
                .expect("prune"),
            1
        );
        assert_eq!(b.archive_pieces(&task.id).await.expect("pieces"), None);
    });
}
