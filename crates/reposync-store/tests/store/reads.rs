//! How each read of a branch was done, on each backend: recorded with the store's
//! clock, listed newest first by branch, bounded, recorded with the link that enabling
//! creates (once for a set of links enabled from one read), and pruned with the rest of the
//! history.

#![allow(clippy::expect_used)] // Test helpers outside #[test] functions may panic.

use crate::backends::Place;
use std::sync::Arc;

use reposync_model::{BranchId, ConnectorDraft, ConnectorId, GitConnector, ObjectId, SecretName};
use reposync_secrets::MasterKey;
use reposync_store::{
    BranchRead, Enabling, EnablingSet, LinkStart, MAX_READ_METHOD_BYTES, MAX_READ_REASON_BYTES,
    ManualClock, NewSyncLink, ReadKind, RetentionAges, SecretKind, Store, StoreError,
    WebhookChange,
};

const DAY: i64 = 24 * 60 * 60 * 1000;

fn oid(c: char) -> ObjectId {
    ObjectId::parse(&c.to_string().repeat(40)).expect("object id")
}

/// A store on a clock that moves only when told to, with a connector and no link yet.
async fn store_on_clock(dir: &Place) -> (Store, Arc<ManualClock>, ConnectorId) {
    let clock = ManualClock::starting_now();
    let store = Store::open(&dir.url(), MasterKey::generate())
        .await
        .expect("open store")
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
    (store, clock, connector.id)
}

fn new_link(connector_id: &ConnectorId, app: Option<&str>, branch: &str) -> NewSyncLink {
    NewSyncLink {
        app: app.map(str::to_owned),
        connector_id: connector_id.clone(),
        repo: None,
        branch: branch.into(),
        base_commit: Some(oid('a')),
    }
}

/// The branch of a new link of `app` to `branch`.
async fn linked_branch(
    store: &Store,
    connector_id: &ConnectorId,
    app: Option<&str>,
    branch: &str,
) -> BranchId {
    let link = store
        .create_link(&new_link(connector_id, app, branch), &[])
        .await
        .expect("link");
    store
        .branch_of_link(&link)
        .await
        .expect("branch")
        .expect("branch")
        .id
}

fn read(kind: ReadKind, method: &str) -> BranchRead {
    BranchRead {
        kind,
        head: Some(oid('b')),
        method: method.into(),
        reason: format!("{method} was chosen"),
        fallback_from: None,
        fallback_reason: None,
        requests: 1,
        bytes: 100,
        duration_ms: 10,
        task_id: None,
    }
}

fn methods(reads: &[reposync_store::ReadRecord]) -> Vec<&str> {
    reads.iter().map(|r| r.read.method.as_str()).collect()
}

/// Reads come back newest first, of the branches asked for or of all, as many as the limit
/// says, each as it was recorded at the store's time.
#[tokio::test]
async fn reads_are_listed_newest_first_of_the_branches_asked_for() {
    on_each_backend!(dir, {
        let (store, clock, connector) = store_on_clock(dir).await;
        let main = linked_branch(&store, &connector, Some("Shop"), "main").await;
        let release = linked_branch(&store, &connector, None, "release").await;

        let first = read(ReadKind::Snapshot, "dc-archive");
        store.record_read(&main, &first).await.expect("record");
        let first_at = reposync_store::Clock::now_millis(&*clock);
        clock.advance(1);
        store
            .record_read(&release, &read(ReadKind::Incremental, "cloud-rest"))
            .await
            .expect("record");
        clock.advance(1);
        let fell_back = BranchRead {
            fallback_from: Some("cloud-rest".into()),
            fallback_reason: Some("Bitbucket answered 429 Too Many Requests".into()),
            task_id: Some(reposync_model::TaskId::new("a-task")),
            head: None,
            ..read(ReadKind::Incremental, "git")
        };
        store.record_read(&main, &fell_back).await.expect("record");

        let all = store.list_reads(&[], 10).await.expect("list");
        assert_eq!(methods(&all), ["git", "cloud-rest", "dc-archive"]);
        assert_eq!(all[0].read, fell_back, "kept as recorded");
        assert_eq!(all[0].branch, "main");
        assert_eq!(all[1].branch, "release");
        assert_eq!(all[2].read, first);
        assert_eq!(all[2].read_at, first_at, "the store's time");
        assert_eq!(all[2].link_id, None, "not a read that enabled a link");

        let of_main = store
            .list_reads(std::slice::from_ref(&main), 10)
            .await
            .expect("list");
        assert_eq!(methods(&of_main), ["git", "dc-archive"]);
        let both = store
            .list_reads(&[main.clone(), release.clone()], 2)
            .await
            .expect("list");
        assert_eq!(methods(&both), ["git", "cloud-rest"], "the limit holds");
    });
}

/// What a delegate reports is cut to a bound before it is written, so that a server's
/// message cannot bloat the database, and counts beyond SQLite's integers are kept as the
/// largest they hold.
#[tokio::test]
async fn a_read_keeps_its_text_within_bounds_and_its_counts_within_range() {
    on_each_backend!(dir, {
        let (store, _clock, connector) = store_on_clock(dir).await;
        let main = linked_branch(&store, &connector, Some("Shop"), "main").await;
        let hostile = "é".repeat(100_000);
        store
            .record_read(
                &main,
                &BranchRead {
                    method: hostile.clone(),
                    reason: hostile.clone(),
                    fallback_from: Some(hostile.clone()),
                    fallback_reason: Some(hostile.clone()),
                    requests: u64::MAX,
                    bytes: u64::MAX,
                    duration_ms: u64::MAX,
                    ..read(ReadKind::Incremental, "git")
                },
            )
            .await
            .expect("record");
        let kept = &store.list_reads(&[], 1).await.expect("list")[0].read;
        for (text, bound) in [
            (&kept.method, MAX_READ_METHOD_BYTES),
            (&kept.reason, MAX_READ_REASON_BYTES),
            (
                kept.fallback_from.as_ref().expect("from"),
                MAX_READ_METHOD_BYTES,
            ),
            (
                kept.fallback_reason.as_ref().expect("why"),
                MAX_READ_REASON_BYTES,
            ),
        ] {
            assert!(text.len() <= bound, "{} > {bound}", text.len());
            assert!(
                text.starts_with('é') && text.contains("truncated"),
                "{text}"
            );
        }
        let largest = u64::try_from(i64::MAX).expect("fits");
        assert_eq!(
            (kept.requests, kept.bytes, kept.duration_ms),
            (largest, largest, largest)
        );
    });
}

/// The read that enables a link is recorded in the enabling's transaction, naming the link;
/// an enabling refused records no read either.
#[tokio::test]
async fn the_read_that_enables_a_link_is_recorded_with_it_or_not_at_all() {
    on_each_backend!(dir, {
        let (store, _clock, connector) = store_on_clock(dir).await;
        let enable_read = read(ReadKind::Enable, "dc-archive");
        let link = new_link(&connector, Some("Shop"), "main");
        let enabling = Enabling {
            changes: &[],
            link: &link,
            initial_files: &[],
            branch_errors: &[],
            read: Some(&enable_read),
            task: None,
            by: None,
        };
        let (linked, _) = store.enable_link(&enabling).await.expect("enable");
        let reads = store.list_reads(&[], 10).await.expect("list");
        assert_eq!(reads.len(), 1, "{reads:?}");
        assert_eq!(reads[0].link_id.as_ref(), Some(&linked.id));
        assert_eq!(reads[0].read, enable_read);
        let branch = store
            .branch_of_link(&linked)
            .await
            .expect("branch")
            .expect("branch");
        assert_eq!(reads[0].branch_id, branch.id);

        let refused = store
            .enable_link(&enabling)
            .await
            .expect_err("the scope is linked already");
        assert!(
            matches!(refused, StoreError::AlreadyExists { .. }),
            "{refused}"
        );
        assert_eq!(store.list_reads(&[], 10).await.expect("list").len(), 1);
    });
}

/// Enabling several scopes from one read writes every link, or none: the read is recorded
/// once, naming the first link; when one scope of the set is linked already, no link of the
/// set is made and no read is recorded.
#[tokio::test]
async fn a_set_of_links_enabled_from_one_read_is_written_whole_or_not_at_all() {
    on_each_backend!(dir, {
        let (store, _clock, connector) = store_on_clock(dir).await;
        let enable_read = read(ReadKind::Enable, "git");
        let links = [
            new_link(&connector, None, "main"),
            new_link(&connector, Some("Shop"), "main"),
            new_link(&connector, Some("Bank"), "main"),
        ];
        let starts: Vec<LinkStart<'_>> = links
            .iter()
            .map(|link| LinkStart {
                link,
                initial_files: &[],
                branch_errors: &[],
            })
            .collect();
        let set = EnablingSet {
            changes: &[],
            links: &starts,
            read: Some(&enable_read),
            task: None,
            by: None,
        };
        let (linked, _) = store.enable_links(&set).await.expect("enable");
        let apps: Vec<Option<&str>> = linked.iter().map(|l| l.app.as_deref()).collect();
        assert_eq!(
            apps,
            [None, Some("Shop"), Some("Bank")],
            "in the set's order"
        );
        let reads = store.list_reads(&[], 10).await.expect("list");
        assert_eq!(reads.len(), 1, "one read for the set: {reads:?}");
        assert_eq!(reads[0].link_id.as_ref(), Some(&linked[0].id));

        // Pay is new, but Shop is linked already: neither is linked.
        let again = [
            new_link(&connector, Some("Pay"), "main"),
            new_link(&connector, Some("Shop"), "main"),
        ];
        let starts: Vec<LinkStart<'_>> = again
            .iter()
            .map(|link| LinkStart {
                link,
                initial_files: &[],
                branch_errors: &[],
            })
            .collect();
        let refused = store
            .enable_links(&EnablingSet {
                links: &starts,
                ..set
            })
            .await
            .expect_err("Shop is linked already");
        assert!(
            matches!(refused, StoreError::AlreadyExists { .. }),
            "{refused}"
        );
        assert!(store.live_link(Some("Pay")).await.expect("link").is_none());
        assert_eq!(store.live_links().await.expect("links").len(), 3);
        assert_eq!(store.list_reads(&[], 10).await.expect("list").len(), 1);
    });
}

/// Reads are history: pruned once older than its age, never before.
#[tokio::test]
async fn reads_past_the_history_age_are_pruned() {
    on_each_backend!(dir, {
        let (store, clock, connector) = store_on_clock(dir).await;
        let main = linked_branch(&store, &connector, Some("Shop"), "main").await;
        for method in ["git", "cloud-rest"] {
            store
                .record_read(&main, &read(ReadKind::Incremental, method))
                .await
                .expect("record");
        }
        let ages = RetentionAges {
            history: std::time::Duration::from_secs(90 * 24 * 60 * 60),
            audit: std::time::Duration::from_secs(400 * 24 * 60 * 60),
        };
        clock.advance(89 * DAY);
        store
            .record_read(&main, &read(ReadKind::Snapshot, "dc-archive"))
            .await
            .expect("record");
        let early = store.prune_history(ages).await.expect("prune");
        assert_eq!(early.reads, 0, "nothing is old enough yet: {early:?}");

        clock.advance(2 * DAY);
        let pruned = store.prune_history(ages).await.expect("prune");
        assert_eq!(pruned.reads, 2, "{pruned:?}");
        assert_eq!(pruned.total(), 2, "{pruned:?}");
        let left = store.list_reads(&[], 10).await.expect("list");
        assert_eq!(methods(&left), ["dc-archive"]);
        let again = store.prune_history(ages).await.expect("prune");
        assert_eq!(again.reads, 0, "pruning twice removes nothing more");
    });
}
