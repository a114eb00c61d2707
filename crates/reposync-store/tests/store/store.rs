//! The store on each backend in a temporary directory.

#![allow(clippy::expect_used)] // Test helpers outside #[test] functions may panic.

use crate::backends::Place;
use std::time::Duration;

use reposync_model::{ConnectorDraft, EntityName, GitConnector, SecretName};
use reposync_secrets::MasterKey;
use reposync_store::{
    Eligibility, NewTask, SecretKind, Store, StoreError, TaskStatus, WebhookChange,
};

async fn store(dir: &Place) -> Store {
    Store::open(&dir.url(), MasterKey::generate())
        .await
        .expect("open store")
}

fn secret(name: &str) -> SecretName {
    SecretName::parse(name).expect("secret name")
}

fn connector(name: &str, secret: &str) -> GitConnector {
    GitConnector::parse(&ConnectorDraft {
        name: Some(name.into()),
        url: Some("https://bitbucket.org/acme/config.git".into()),
        username: Some("jdoe".into()),
        password_secret: Some(secret.into()),
        branch: Some("main".into()),
        ..Default::default()
    })
    .expect("valid connector")
}

#[tokio::test]
async fn secret_values_are_sealed_and_never_readable_in_the_file() {
    on_each_backend!(dir, {
        let store = store(dir).await;
        let value = b"very-secret-token-value-123";
        store
            .create_secret(&secret("bb"), SecretKind::Text, value, None)
            .await
            .expect("create");
        let (_, revealed) = store.reveal_secret(&secret("bb")).await.expect("reveal");
        assert_eq!(revealed.as_slice(), value);
        store.close().await;
        // On PostgreSQL the rows live in the server; the same sealing is checked by reading
        // them back above. On SQLite, every file the database left is searched too.
        if !dir.is_sqlite() {
            continue;
        }
        // Every file the database left, whatever SQLite named it; each must be readable, and the
        // database itself must be among them, so the check cannot pass by reading nothing.
        let mut read = Vec::new();
        for entry in std::fs::read_dir(dir.path()).expect("read the data dir") {
            let path = entry.expect("entry").path();
            if path.is_file() {
                let bytes = std::fs::read(&path).expect("every file is readable");
                assert!(
                    !bytes.windows(value.len()).any(|w| w == value),
                    "{} holds the plaintext",
                    path.display()
                );
                read.push((path.file_name().expect("name").to_owned(), bytes.len()));
            }
        }
        assert!(
            read.iter()
                .any(|(name, len)| name == "reposync.db" && *len > 0),
            "the database file was read: {read:?}"
        );
    });
}

#[tokio::test]
async fn names_are_unique() {
    on_each_backend!(dir, {
        let store = store(dir).await;
        store
            .create_secret(&secret("bb"), SecretKind::Text, b"x", None)
            .await
            .expect("create");
        let err = store
            .create_secret(&secret("bb"), SecretKind::Text, b"y", None)
            .await
            .expect_err("duplicate");
        assert!(matches!(err, StoreError::AlreadyExists { .. }), "{err}");
    });
}

#[tokio::test]
async fn a_secret_in_use_cannot_be_deleted_and_the_error_names_the_connectors() {
    on_each_backend!(dir, {
        let store = store(dir).await;
        store
            .create_secret(&secret("bb"), SecretKind::Text, b"x", None)
            .await
            .expect("create");
        store
            .create_connector(&connector("Config B", "bb"), WebhookChange::Keep, None)
            .await
            .expect("connector");
        store
            .create_connector(&connector("Config A", "bb"), WebhookChange::Keep, None)
            .await
            .expect("connector");
        let err = store
            .delete_secret(&secret("bb"))
            .await
            .expect_err("in use");
        assert_eq!(
            err.to_string(),
            "secret \"bb\" is used by connectors: Config A, Config B"
        );
        store
            .delete_connector(&EntityName::parse("Config A").expect("name"), None)
            .await
            .expect("delete");
        store
            .delete_connector(&EntityName::parse("Config B").expect("name"), None)
            .await
            .expect("delete");
        store
            .delete_secret(&secret("bb"))
            .await
            .expect("now unused");
    });
}

#[tokio::test]
async fn a_connector_must_name_an_existing_secret_of_the_right_kind() {
    on_each_backend!(dir, {
        let store = store(dir).await;
        let err = store
            .create_connector(&connector("C", "missing"), WebhookChange::Keep, None)
            .await
            .expect_err("missing");
        assert!(
            matches!(&err, StoreError::Invalid { field, .. } if field == "password_secret"),
            "{err}"
        );
        store
            .create_secret(&secret("key"), SecretKind::SshKey, b"k", None)
            .await
            .expect("create");
        let err = store
            .create_connector(&connector("C", "key"), WebhookChange::Keep, None)
            .await
            .expect_err("wrong kind");
        assert!(
            err.to_string().contains("not an Encrypted Text secret"),
            "{err}"
        );
        assert!(store.list_connectors().await.expect("list").is_empty());
    });
}

#[tokio::test]
async fn tasks_go_only_to_delegates_with_every_selector_and_only_once() {
    on_each_backend!(dir, {
        let store = store(dir).await;
        let task = store
            .enqueue_task(&NewTask {
                kind: "test_connection".into(),
                payload: "{}".into(),
                selectors: vec!["eu".into(), "prod".into()],
                max_attempts: 3,
                prefer: None,
                avoid: None,
            })
            .await
            .expect("enqueue");
        let lease = Duration::from_secs(30);
        assert!(
            store
                .claim_task("d1", &Eligibility::unrestricted(vec!["eu".into()]), lease)
                .await
                .expect("claim")
                .task()
                .is_none()
        );
        let claimed = store
            .claim_task(
                "d2",
                &Eligibility::unrestricted(vec!["eu".into(), "prod".into(), "x".into()]),
                lease,
            )
            .await
            .expect("claim")
            .task();
        assert_eq!(claimed.map(|t| t.id), Some(task.id.clone()));
        assert!(
            store
                .claim_task(
                    "d3",
                    &Eligibility::unrestricted(vec!["eu".into(), "prod".into()]),
                    lease
                )
                .await
                .expect("claim")
                .task()
                .is_none()
        );
        assert!(
            store
                .complete_task(&task.id, "d3", true, "{}", None)
                .await
                .expect("complete")
                .is_none(),
            "not the lease holder"
        );
        let done = store
            .complete_task(&task.id, "d2", true, "{\"ok\":true}", None)
            .await
            .expect("complete")
            .expect("holder");
        assert_eq!(done.status, TaskStatus::Succeeded);
        assert_eq!(done.result.as_deref(), Some("{\"ok\":true}"));
    });
}

#[tokio::test]
async fn an_expired_lease_returns_the_task_to_the_queue() {
    on_each_backend!(dir, {
        let clock = reposync_store::ManualClock::starting_now();
        let store = store(dir).await.with_clock(clock.clone());
        let task = store
            .enqueue_task(&NewTask {
                kind: "k".into(),
                payload: "{}".into(),
                selectors: vec![],
                max_attempts: 2,
                prefer: None,
                avoid: None,
            })
            .await
            .expect("enqueue");
        store
            .claim_task(
                "d1",
                &Eligibility::unrestricted(vec![]),
                Duration::from_millis(0),
            )
            .await
            .expect("claim")
            .task()
            .expect("claimed");
        // Time moves past the lease by the store's clock, not by sleeping.
        clock.advance(1);
        assert_eq!(store.expire_leases("{}").await.expect("expire"), 1);
        assert_eq!(
            store.get_task(&task.id).await.expect("task").status,
            TaskStatus::Queued
        );
        store
            .claim_task(
                "d2",
                &Eligibility::unrestricted(vec![]),
                Duration::from_millis(0),
            )
            .await
            .expect("claim")
            .task()
            .expect("claimed again");
        // Time moves past the lease by the store's clock, not by sleeping.
        clock.advance(1);
        store
            .expire_leases("{\"error\":\"lease\"}")
            .await
            .expect("expire");
        assert_eq!(
            store.get_task(&task.id).await.expect("task").status,
            TaskStatus::Failed,
            "attempts used up"
        );
    });
}

#[tokio::test]
async fn an_update_based_on_a_stale_read_is_refused() {
    on_each_backend!(dir, {
        let store = store(dir).await;
        store
            .create_secret(&secret("bb"), SecretKind::Text, b"x", None)
            .await
            .expect("create");
        let first = store
            .create_connector(&connector("C", "bb"), WebhookChange::Keep, None)
            .await
            .expect("connector");
        let mut renamed = first.spec.clone();
        renamed.name = EntityName::parse("C2").expect("name");
        store
            .update_connector(&first, &renamed, WebhookChange::Keep, None)
            .await
            .expect("first update");
        let err = store
            .update_connector(&first, &first.spec, WebhookChange::Keep, None)
            .await
            .expect_err("stale");
        assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
        assert!(
            store
                .get_connector(&EntityName::parse("C2").expect("name"))
                .await
                .is_ok()
        );
    });
}

#[tokio::test]
async fn the_preferred_delegate_gets_the_first_chance_and_the_avoided_one_the_last() {
    on_each_backend!(dir, {
        use reposync_store::{AVOID_FOR, Claim, PREFER_FOR};
        let store = store(dir).await;
        let lease = Duration::from_secs(30);
        let enqueue = |prefer: Option<&str>, avoid: Option<&str>| NewTask {
            kind: "k".into(),
            payload: "{}".into(),
            selectors: vec![],
            max_attempts: 3,
            prefer: prefer.map(str::to_owned),
            avoid: avoid.map(str::to_owned),
        };
        let preferred = store
            .enqueue_task(&enqueue(Some("b"), None))
            .await
            .expect("enqueue");
        match store
            .claim_task("a", &Eligibility::unrestricted(vec![]), lease)
            .await
            .expect("claim")
        {
            Claim::Later(after) => assert!(after <= PREFER_FOR),
            other => panic!("a must wait for b's first chance: {other:?}"),
        }
        let taken = store
            .claim_task("b", &Eligibility::unrestricted(vec![]), lease)
            .await
            .expect("claim")
            .task();
        assert_eq!(taken.map(|t| t.id), Some(preferred.id));

        let avoided = store
            .enqueue_task(&enqueue(None, Some("a")))
            .await
            .expect("enqueue");
        match store
            .claim_task("a", &Eligibility::unrestricted(vec![]), lease)
            .await
            .expect("claim")
        {
            Claim::Later(after) => assert!(after <= AVOID_FOR),
            other => panic!("a just failed with this kind: {other:?}"),
        }
        let taken = store
            .claim_task("c", &Eligibility::unrestricted(vec![]), lease)
            .await
            .expect("claim")
            .task();
        assert_eq!(taken.map(|t| t.id), Some(avoided.id));

        // Once the first chance has passed, anyone eligible takes it.
        let late = store
            .enqueue_task(&enqueue(Some("b"), None))
            .await
            .expect("enqueue");
        tokio::time::sleep(PREFER_FOR + Duration::from_millis(20)).await;
        let taken = store
            .claim_task("a", &Eligibility::unrestricted(vec![]), lease)
            .await
            .expect("claim")
            .task();
        assert_eq!(taken.map(|t| t.id), Some(late.id));
    });
}

fn delegate(name: &str, token_id: Option<&str>) -> reposync_store::NewDelegate {
    reposync_store::NewDelegate {
        name: name.into(),
        token_id: token_id.map(str::to_owned),
        selectors: vec![name.to_lowercase()],
        version: "0.1.0".into(),
        hostname: "host".into(),
        git_version: "2.43.0".into(),
        ssh_version: "none".into(),
    }
}

#[tokio::test]
async fn a_delegate_name_belongs_to_the_token_that_first_registered_it_until_that_is_revoked() {
    on_each_backend!(dir, {
        let key = MasterKey::generate();
        let url = dir.url();
        let open = || Store::open(&url, key.clone());
        let store = open().await.expect("open");
        let fleet = store
            .create_delegate_token("fleet", "hash-fleet", None)
            .await
            .expect("token");
        let intruder = store
            .create_delegate_token("intruder", "hash-intruder", None)
            .await
            .expect("token");
        store
            .register_delegate(&delegate("dc-1", Some(&fleet.id)))
            .await
            .expect("first registration");
        store
            .register_delegate(&delegate("dc-1", Some(&fleet.id)))
            .await
            .expect("the same token registers again (after a restart of the delegate)");

        // The claim survives a restart of the server, and holds in any case.
        store.close().await;
        let store = open().await.expect("reopen");
        for name in ["dc-1", "DC-1"] {
            let err = store
                .register_delegate(&delegate(name, Some(&intruder.id)))
                .await
                .expect_err("another token");
            assert!(
                matches!(&err, StoreError::Taken { name, holder, .. }
                    if name == "dc-1" && holder.contains("fleet")),
                "{err}"
            );
        }
        store
            .register_delegate(&delegate("builtin", None))
            .await
            .expect("the built-in delegate, which has no token");
        let err = store
            .register_delegate(&delegate("builtin", Some(&intruder.id)))
            .await
            .expect_err("the built-in delegate's name");
        assert!(err.to_string().contains("built-in"), "{err}");
        let listed = store.list_delegates().await.expect("list");
        let row = listed.iter().find(|d| d.name == "dc-1").expect("listed");
        assert_eq!(row.token_name.as_deref(), Some("fleet"), "unchanged");

        // Revoking the holder frees the name for a new token.
        store.revoke_delegate_token("fleet").await.expect("revoke");
        store
            .register_delegate(&delegate("dc-1", Some(&intruder.id)))
            .await
            .expect("a revoked token's names are free");
        let listed = store.list_delegates().await.expect("list");
        let row = listed.iter().find(|d| d.name == "dc-1").expect("listed");
        assert_eq!(row.token_name.as_deref(), Some("intruder"));
    });
}

#[tokio::test]
async fn a_restricted_token_claims_only_tasks_whose_every_selector_it_allows() {
    on_each_backend!(dir, {
        let store = store(dir).await;
        let token = store
            .create_delegate_token("dc-only", "hash", Some(vec!["dc".into(), "linux".into()]))
            .await
            .expect("token");
        let found = store
            .find_delegate_token("hash")
            .await
            .expect("find")
            .expect("live");
        assert_eq!(
            found.selectors,
            Some(vec!["dc".to_owned(), "linux".to_owned()])
        );
        assert_eq!(found, token);
        let listed = store.list_delegate_tokens().await.expect("list");
        assert_eq!(listed[0].selectors, token.selectors);

        let mut ids = std::collections::HashMap::new();
        for selectors in [vec![], vec!["eu"], vec!["dc", "eu"], vec!["dc"]] {
            let task = store
                .enqueue_task(&NewTask {
                    kind: "k".into(),
                    payload: "{}".into(),
                    selectors: selectors.iter().map(|s| (*s).to_owned()).collect(),
                    max_attempts: 3,
                    prefer: None,
                    avoid: None,
                })
                .await
                .expect("enqueue");
            ids.insert(task.id, selectors.join(","));
        }
        // The delegate has every selector itself (say, its name is "eu"), but its token allows
        // only "dc" and "linux": it gets the "dc" task and nothing else, not even the one that
        // asks for no selector.
        let restricted = Eligibility {
            selectors: vec!["dc".into(), "eu".into(), "linux".into()],
            restricted_to: token.selectors.clone(),
        };
        let lease = Duration::from_secs(30);
        let first = store
            .claim_task("restricted", &restricted, lease)
            .await
            .expect("claim")
            .task()
            .expect("its own task");
        assert_eq!(ids[&first.id], "dc");
        assert!(
            store
                .claim_task("restricted", &restricted, lease)
                .await
                .expect("claim")
                .task()
                .is_none(),
            "nothing else is its to take"
        );
        let unrestricted = Eligibility::unrestricted(restricted.selectors.clone());
        let mut others = Vec::new();
        while let Some(task) = store
            .claim_task("open", &unrestricted, lease)
            .await
            .expect("claim")
            .task()
        {
            others.push(ids[&task.id].clone());
        }
        assert_eq!(
            others,
            ["", "eu", "dc,eu"],
            "an unrestricted token takes the rest"
        );
    });
}

/// Whether a user has a password is read back the same on each backend (a comparison is an
/// integer on SQLite and a BOOLEAN on PostgreSQL, so the query must not hand back either).
#[tokio::test]
async fn users_read_back_whether_they_have_a_password() {
    on_each_backend!(dir, {
        let store = store(dir).await;
        for (name, password_hash) in [("ann", Some("$argon2id$hash")), ("bob", None)] {
            store
                .create_user(
                    &reposync_store::NewUser {
                        name: reposync_model::UserName::parse(name).expect("user name"),
                        email: None,
                        role: reposync_model::Role::Viewer,
                        apps: Vec::new(),
                        password_hash: password_hash.map(str::to_owned),
                    },
                    None,
                )
                .await
                .expect("create user");
        }
        let listed: Vec<(String, bool)> = store
            .list_users()
            .await
            .expect("list users")
            .into_iter()
            .map(|user| (user.name.as_str().to_owned(), user.has_password))
            .collect();
        assert_eq!(
            listed,
            [("ann".to_owned(), true), ("bob".to_owned(), false)],
            "on {}",
            dir.name()
        );
        let bob = reposync_model::UserName::parse("bob").expect("user name");
        let found = store.find_user(&bob).await.expect("find user");
        assert_eq!(found.map(|user| user.has_password), Some(false));
    });
}
