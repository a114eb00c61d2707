//! The audit trail on each backend: what a recorded event reads back as, the
//! filters, the order, the bounds, and pruning by the trail's own age.

#![allow(clippy::expect_used)] // Test helpers outside #[test] functions may panic.

use crate::backends::Place;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use reposync_secrets::MasterKey;
use reposync_store::{
    ActorKind, AuditFilter, AuditOutcome, Clock, MAX_AUDIT_EVENTS_LISTED, ManualClock,
    NewAuditEvent, RetentionAges, Store,
};

const MINUTE: i64 = 60 * 1000;
const DAY: i64 = 24 * 60 * MINUTE;

async fn store(dir: &Place) -> (Store, Arc<ManualClock>) {
    let clock = ManualClock::starting_now();
    let store = Store::open(&dir.url(), MasterKey::generate())
        .await
        .expect("open store")
        .with_clock(clock.clone());
    (store, clock)
}

/// A write by `actor` to `target` in `app`, accepted.
fn write<'a>(actor: &'a str, target: &'a str, app: Option<&'a str>) -> NewAuditEvent<'a> {
    NewAuditEvent {
        actor_kind: ActorKind::User,
        actor,
        token: Some("laptop"),
        client_addr: None,
        use_case: "tree.apply",
        target: Some(target),
        app,
        outcome: AuditOutcome::Accepted,
        status: Some(200),
        detail: None,
    }
}

fn days(n: u64) -> Duration {
    Duration::from_secs(n * 24 * 60 * 60)
}

fn all(limit: u32) -> AuditFilter {
    AuditFilter {
        limit,
        ..AuditFilter::default()
    }
}

fn targets(events: &[reposync_store::AuditEventRecord]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e.target.as_deref().unwrap_or("-"))
        .collect()
}

#[tokio::test]
async fn an_event_reads_back_as_recorded_at_the_stores_time() {
    on_each_backend!(dir, {
        let (store, clock) = store(dir).await;
        let addr: IpAddr = "2001:db8::7".parse().expect("address");
        let refused = NewAuditEvent {
            actor_kind: ActorKind::User,
            actor: "alice",
            token: Some("ci"),
            client_addr: Some(addr),
            use_case: "tree.apply",
            target: Some("Setup/Applications/Shop/Index.yaml"),
            app: Some("Shop"),
            outcome: AuditOutcome::Refused,
            status: Some(403),
            detail: Some("needs editor in application Shop"),
        };
        store.record_audit(&refused).await.expect("record");
        let login = NewAuditEvent {
            actor_kind: ActorKind::Anonymous,
            actor: "mallory",
            token: None,
            client_addr: None,
            use_case: "login",
            target: None,
            app: None,
            outcome: AuditOutcome::Refused,
            status: None,
            detail: None,
        };
        store.record_audit(&login).await.expect("record");

        let events = store.list_audit(&all(10)).await.expect("list");
        assert_eq!(events.len(), 2, "{events:?}");
        let (newest, first) = (&events[0], &events[1]);
        assert_eq!(first.at, clock.now_millis());
        assert_eq!(first.actor_kind, ActorKind::User);
        assert_eq!(first.actor, "alice");
        assert_eq!(first.token.as_deref(), Some("ci"));
        assert_eq!(first.client_addr, Some(addr));
        assert_eq!(first.use_case, "tree.apply");
        assert_eq!(
            first.target.as_deref(),
            Some("Setup/Applications/Shop/Index.yaml")
        );
        assert_eq!(first.app.as_deref(), Some("Shop"));
        assert_eq!(first.outcome, AuditOutcome::Refused);
        assert_eq!(first.status, Some(403));
        assert_eq!(
            first.detail.as_deref(),
            Some("needs editor in application Shop")
        );
        assert_eq!(newest.actor_kind, ActorKind::Anonymous);
        assert_eq!(newest.actor, "mallory");
        assert_eq!(
            (
                &newest.token,
                newest.client_addr,
                &newest.target,
                &newest.app,
                newest.status,
                &newest.detail
            ),
            (&None, None, &None, &None, None, &None),
            "nothing given reads back as nothing: {newest:?}"
        );
        assert_ne!(first.id, newest.id);
    });
}

#[tokio::test]
async fn listing_is_newest_first_bounded_and_narrowed_by_each_filter() {
    on_each_backend!(dir, {
        let (store, clock) = store(dir).await;
        let start = clock.now_millis();
        let events = [
            ("alice", "a1", Some("Shop")),
            ("bob", "b1", None),
            ("alice", "a2", None),
            ("bob", "b2", Some("Shop")),
            ("alice", "a3", Some("Billing")),
        ];
        for (actor, target, app) in events {
            clock.advance(MINUTE);
            store
                .record_audit(&write(actor, target, app))
                .await
                .expect("record");
        }
        // Two in the same millisecond keep the order they were recorded in.
        store
            .record_audit(&write("carol", "c1", None))
            .await
            .expect("record");

        let newest_first = store.list_audit(&all(100)).await.expect("list");
        assert_eq!(targets(&newest_first), ["c1", "a3", "b2", "a2", "b1", "a1"]);
        assert!(newest_first.windows(2).all(|w| w[0].at >= w[1].at));

        let two = store.list_audit(&all(2)).await.expect("list");
        assert_eq!(targets(&two), ["c1", "a3"], "the newest ones");

        let alice = AuditFilter {
            user: Some("alice".into()),
            ..all(100)
        };
        let listed = store.list_audit(&alice).await.expect("list");
        assert_eq!(targets(&listed), ["a3", "a2", "a1"]);

        let shop = AuditFilter {
            app: Some("Shop".into()),
            ..all(100)
        };
        let listed = store.list_audit(&shop).await.expect("list");
        assert_eq!(targets(&listed), ["b2", "a1"]);

        let since = AuditFilter {
            since: Some(start + 3 * MINUTE),
            ..all(100)
        };
        let listed = store.list_audit(&since).await.expect("list");
        assert_eq!(
            targets(&listed),
            ["c1", "a3", "b2", "a2"],
            "since is inclusive"
        );

        let all_three = AuditFilter {
            user: Some("alice".into()),
            since: Some(start + 2 * MINUTE),
            app: Some("Billing".into()),
            limit: 100,
        };
        let listed = store.list_audit(&all_three).await.expect("list");
        assert_eq!(targets(&listed), ["a3"], "the filters combine");

        let nobody = AuditFilter {
            user: Some("dave".into()),
            ..all(100)
        };
        assert!(store.list_audit(&nobody).await.expect("list").is_empty());
    });
}

#[tokio::test]
async fn a_listing_returns_at_least_one_and_at_most_the_maximum() {
    on_each_backend!(dir, {
        let (store, _clock) = store(dir).await;
        let many = MAX_AUDIT_EVENTS_LISTED + 5;
        for n in 0..many {
            let target = format!("t{n}");
            store
                .record_audit(&write("alice", &target, None))
                .await
                .expect("record");
        }
        let listed = store.list_audit(&all(u32::MAX)).await.expect("list");
        assert_eq!(listed.len(), MAX_AUDIT_EVENTS_LISTED as usize);
        assert_eq!(
            listed[0].target.as_deref(),
            Some(format!("t{}", many - 1).as_str())
        );
        let listed = store.list_audit(&all(0)).await.expect("list");
        assert_eq!(listed.len(), 1, "a limit of 0 still lists the newest");
    });
}

#[tokio::test]
async fn a_name_someone_tried_is_kept_only_to_a_bound() {
    on_each_backend!(dir, {
        let (store, _clock) = store(dir).await;
        let tried = "x".repeat(100_000);
        let detail = "é".repeat(10_000);
        let event = NewAuditEvent {
            actor_kind: ActorKind::Anonymous,
            actor: &tried,
            detail: Some(&detail),
            outcome: AuditOutcome::Refused,
            ..write("-", "-", None)
        };
        store.record_audit(&event).await.expect("record");
        let listed = store.list_audit(&all(1)).await.expect("list");
        let kept = &listed[0];
        assert!(kept.actor.len() <= 256, "{}", kept.actor.len());
        assert!(kept.actor.ends_with("[truncated from 100000 bytes]"));
        let kept_detail = kept.detail.as_deref().expect("detail");
        assert!(kept_detail.len() <= 1024, "{}", kept_detail.len());
        assert!(kept_detail.starts_with("éé"), "cut on a character boundary");
    });
}

#[tokio::test]
async fn audit_events_are_pruned_by_their_own_age_only() {
    on_each_backend!(dir, {
        let (store, clock) = store(dir).await;
        let ages = RetentionAges {
            history: days(90),
            audit: days(400),
        };
        store
            .record_audit(&write("alice", "old", None))
            .await
            .expect("record");
        clock.advance(100 * DAY);
        store
            .record_audit(&write("alice", "newer", None))
            .await
            .expect("record");

        // 100 days on: past the history's age, well within the audit trail's.
        let pruned = store.prune_history(ages).await.expect("prune");
        assert_eq!(pruned.audit_events, 0, "{pruned:?}");
        assert_eq!(pruned.total(), 0, "{pruned:?}");
        let listed = store.list_audit(&all(10)).await.expect("list");
        assert_eq!(targets(&listed), ["newer", "old"]);

        // 400 days and a minute after the first: only it is past the audit age.
        clock.advance(300 * DAY + MINUTE);
        let pruned = store.prune_history(ages).await.expect("prune");
        assert_eq!(pruned.audit_events, 1, "{pruned:?}");
        assert_eq!(pruned.total(), 1, "{pruned:?}");
        let listed = store.list_audit(&all(10)).await.expect("list");
        assert_eq!(targets(&listed), ["newer"]);

        let again = store.prune_history(ages).await.expect("prune");
        assert_eq!(again.total(), 0, "pruning twice removes nothing more");
    });
}

#[tokio::test]
async fn an_event_exactly_at_the_audit_age_stays() {
    on_each_backend!(dir, {
        let (store, clock) = store(dir).await;
        store
            .record_audit(&write("alice", "edge", None))
            .await
            .expect("record");
        clock.advance(400 * DAY);
        let ages = RetentionAges {
            history: days(90),
            audit: days(400),
        };
        let pruned = store.prune_history(ages).await.expect("prune");
        assert_eq!(pruned.audit_events, 0, "{pruned:?}");
        clock.advance(1);
        let pruned = store.prune_history(ages).await.expect("prune");
        assert_eq!(pruned.audit_events, 1, "{pruned:?}");
    });
}
