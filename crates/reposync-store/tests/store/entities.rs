//! Entity batches on each backend: all or nothing, references enforced.

#![allow(clippy::expect_used)] // Test helpers outside #[test] functions may panic.

use crate::backends::Place;
use reposync_secrets::MasterKey;
use reposync_store::{ChangeOutcome, EntityChange, EntityWrite, Store, StoreError};

async fn store(dir: &Place) -> Store {
    Store::open(&dir.url(), MasterKey::generate())
        .await
        .expect("open store")
}

fn put(path: &str, content: &str, references: &[(&str, &str)]) -> EntityChange {
    EntityChange::Put(EntityWrite {
        path: path.into(),
        kind: "k".into(),
        app: Some("Shop".into()),
        content: content.as_bytes().to_vec(),
        references: references
            .iter()
            .map(|(f, t)| ((*f).to_owned(), (*t).to_owned()))
            .collect(),
    })
}

const APP: &str = "Setup/Applications/Shop/Index.yaml";
const WORKFLOW: &str = "Setup/Applications/Shop/Workflows/w.yaml";
const PIPELINE: &str = "Setup/Applications/Shop/Pipelines/p.yaml";

#[tokio::test]
async fn a_batch_applies_whole_and_a_second_identical_batch_changes_nothing() {
    on_each_backend!(dir, {
        let store = store(dir).await;
        let batch = vec![
            put(APP, "a", &[]),
            put(WORKFLOW, "w", &[]),
            put(
                PIPELINE,
                "p",
                &[("pipelineStages[0].workflowName", WORKFLOW)],
            ),
        ];
        let outcomes = store
            .apply_entities(&batch, false, None)
            .await
            .expect("apply");
        assert!(outcomes.iter().all(|(_, o)| *o == ChangeOutcome::Created));
        let again = store
            .apply_entities(&batch, false, None)
            .await
            .expect("apply again");
        assert!(again.iter().all(|(_, o)| *o == ChangeOutcome::Unchanged));
        let changed = store
            .apply_entities(&[put(WORKFLOW, "w2", &[])], false, None)
            .await
            .expect("change");
        assert_eq!(changed, vec![(WORKFLOW.to_owned(), ChangeOutcome::Changed)]);
        assert_eq!(store.get_entity(WORKFLOW).await.expect("get").revision, 2);
        assert_eq!(
            store.list_entities(Some("Shop")).await.expect("list").len(),
            3
        );
    });
}

#[tokio::test]
async fn a_missing_reference_fails_the_whole_batch() {
    on_each_backend!(dir, {
        let store = store(dir).await;
        let batch = vec![
            put(APP, "a", &[]),
            put(
                PIPELINE,
                "p",
                &[("pipelineStages[0].workflowName", WORKFLOW)],
            ),
        ];
        let err = store
            .apply_entities(&batch, false, None)
            .await
            .expect_err("dangling");
        assert!(err.to_string().contains(WORKFLOW), "{err}");
        assert!(
            store.list_entities(None).await.expect("list").is_empty(),
            "nothing was written"
        );
        let mut with_target = batch;
        with_target.push(put(WORKFLOW, "w", &[]));
        store
            .apply_entities(&with_target, false, None)
            .await
            .expect("the target in the same batch counts");
    });
}

#[tokio::test]
async fn deleting_a_referenced_entity_is_refused_naming_the_referrers() {
    on_each_backend!(dir, {
        let store = store(dir).await;
        store
            .apply_entities(
                &[
                    put(APP, "a", &[]),
                    put(WORKFLOW, "w", &[]),
                    put(PIPELINE, "p", &[("stage", WORKFLOW)]),
                ],
                false,
                None,
            )
            .await
            .expect("apply");
        let err = store
            .apply_entities(
                &[EntityChange::Delete {
                    path: WORKFLOW.into(),
                }],
                false,
                None,
            )
            .await
            .expect_err("in use");
        assert!(
            matches!(&err, StoreError::InUse { used_by, .. } if used_by == &vec![PIPELINE.to_owned()]),
            "{err}"
        );
        assert_eq!(
            store.entity_referrers(WORKFLOW).await.expect("referrers"),
            vec![PIPELINE.to_owned()]
        );
        // Deleting the referrer in the same batch makes it possible.
        store
            .apply_entities(
                &[
                    EntityChange::Delete {
                        path: PIPELINE.into(),
                    },
                    EntityChange::Delete {
                        path: WORKFLOW.into(),
                    },
                ],
                false,
                None,
            )
            .await
            .expect("both go");
        assert!(store.get_entity(WORKFLOW).await.is_err());
    });
}

#[tokio::test]
async fn connectors_are_files_of_the_tree_that_applications_refer_to() {
    on_each_backend!(dir, {
        use reposync_model::{ConnectorDraft, EntityName, GitConnector, SecretName};
        use reposync_store::{ConnectorWrite, SecretKind, WebhookChange};

        let store = store(dir).await;
        let secret = SecretName::parse("bb").expect("secret");
        store
            .create_secret(&secret, SecretKind::Text, b"token", None)
            .await
            .expect("secret");
        let spec = GitConnector::parse(&ConnectorDraft {
            name: Some("Git".into()),
            url: Some("https://bitbucket.org/acme/config.git".into()),
            username: Some("jdoe".into()),
            password_secret: Some("bb".into()),
            branch: Some("main".into()),
            ..Default::default()
        })
        .expect("connector");
        let connector = store
            .create_connector(&spec, WebhookChange::Keep, None)
            .await
            .expect("create");
        const CONNECTOR: &str = "Setup/Source Repo Providers/Git.yaml";
        const RENAMED: &str = "Setup/Source Repo Providers/Git2.yaml";
        store
            .apply_entities(
                &[put(APP, "a", &[("gitConnector", CONNECTOR)])],
                false,
                None,
            )
            .await
            .expect("an application may name the connector");

        let err = store
            .delete_connector(&spec.name, None)
            .await
            .expect_err("in use");
        assert!(
            matches!(&err, StoreError::InUse { used_by, .. } if used_by == &vec![APP.to_owned()]),
            "{err}"
        );
        let mut renamed = spec.clone();
        renamed.name = EntityName::parse("Git2").expect("name");
        let rename = || {
            EntityChange::PutConnector(Box::new(ConnectorWrite::update(
                &connector,
                renamed.clone(),
                WebhookChange::Keep,
            )))
        };
        let err = store
            .apply_entities(&[rename()], false, None)
            .await
            .expect_err("a rename that leaves the application behind");
        assert!(matches!(&err, StoreError::InUse { .. }), "{err}");
        let outcomes = store
            .apply_entities(
                &[rename(), put(APP, "a2", &[("gitConnector", RENAMED)])],
                false,
                None,
            )
            .await
            .expect("a rename that rewrites its referrers");
        assert!(outcomes.contains(&(CONNECTOR.to_owned(), ChangeOutcome::Deleted)));
        assert!(outcomes.contains(&(RENAMED.to_owned(), ChangeOutcome::Changed)));
        let stored = store.get_connector(&renamed.name).await.expect("renamed");
        assert!(
            stored.file.contains("password: reposync:bb\n"),
            "{}",
            stored.file
        );
        assert_eq!(
            store.entity_referrers(RENAMED).await.expect("refs"),
            vec![APP.to_owned()]
        );
    });
}

/// A folder lists the names directly in it, folders marked with `/`, and nothing of a sibling
/// whose name only starts the same way; a search finds paths case-insensitively.
#[tokio::test]
async fn a_folder_lists_what_is_directly_in_it_and_a_search_finds_paths() {
    on_each_backend!(dir, {
        let store = store(dir).await;
        let batch: Vec<EntityChange> = [
            "Setup/Applications/Shop/Index.yaml",
            "Setup/Applications/Shop/Services/cart/Index.yaml",
            "Setup/Applications/Shop/Workflows/deploy.yaml",
            "Setup/Applications/Shop Two/Index.yaml",
            "Setup/Applications/Shop.bak/Index.yaml",
            "Setup/Cloud Providers/k8s.yaml",
        ]
        .iter()
        .map(|path| put(path, "x: 1\n", &[]))
        .collect();
        store.apply_entities(&batch, false, None).await.unwrap();
        assert_eq!(
            store
                .tree_children("Setup/Applications/Shop/")
                .await
                .unwrap(),
            ["Index.yaml", "Services/", "Workflows/"]
        );
        assert_eq!(
            store.tree_children("Setup/").await.unwrap(),
            ["Applications/", "Cloud Providers/"]
        );
        assert_eq!(
            store.tree_children("Setup/Applications/").await.unwrap(),
            ["Shop Two/", "Shop.bak/", "Shop/"]
        );
        assert!(
            store
                .tree_children("Setup/Nothing/")
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            store.search_paths("DEPLOY", 10).await.unwrap(),
            ["Setup/Applications/Shop/Workflows/deploy.yaml"]
        );
        assert_eq!(
            store.search_paths("index", 2).await.unwrap().len(),
            2,
            "at most the limit"
        );
    });
}
