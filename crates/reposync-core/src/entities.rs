//! Files of the tree: a whole tree imported or exported, and one file applied, read, deleted
//! or renamed. Every write goes through the one write path, [`apply_edit`].

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reposync_api::TreeFile;
use reposync_model::connector_yaml::MappedManagers;
use reposync_model::tree::{EntityKind, EntityPath, PathClass, classify};
use reposync_model::validate::TreeProblem;
use reposync_model::{EntityName, Person, RepoPath, connector_yaml, escape_path};
use reposync_store::{ConnectorRecord, ConnectorWrite, Store, WebhookChange};

use crate::error::{CoreError, ErrorKind};
use crate::tree::{
    TreeEdit, TreeOutcome, apply_edit, rewritten_referrers, source_repo_provider_name,
};

/// One stored file as a reader sees it: an entity, or the Source Repo Provider file of a
/// connector.
#[derive(Debug, Clone)]
pub struct StoredFile {
    pub path: String,
    pub kind: String,
    pub content: Vec<u8>,
    pub revision: i64,
    pub updated_at: i64,
}

/// Validates a whole tree first, then applies it in the documented order, all or nothing.
/// Files already stored and absent from the tree are left alone: an import adds and changes,
/// it never deletes. `files` carry their contents base64-encoded, as on the wire.
/// `map_secret_managers` names other Harness secret managers whose references Source Repo
/// Provider files may use, read as reposync's secrets of the same name. `by` is the person
/// importing, whom the changesets record.
pub async fn import(
    store: &Store,
    files: Vec<TreeFile>,
    dry_run: bool,
    map_secret_managers: &[String],
    by: Option<&Person>,
) -> Result<TreeOutcome, CoreError> {
    let mapped_managers = MappedManagers::parse(map_secret_managers, "map_secret_managers")?;
    let mut edit = TreeEdit {
        dry_run,
        mapped_managers,
        by: by.cloned(),
        ..TreeEdit::default()
    };
    for file in files {
        match STANDARD.decode(file.content.as_bytes()) {
            Ok(bytes) => edit.files.push((file.path, bytes)),
            Err(_) => edit.problems.push(TreeProblem {
                path: file.path,
                line: 0,
                column: 0,
                message: "content is not base64".into(),
                blocked_by: None,
            }),
        }
    }
    Ok(apply_edit(store, edit).await?)
}

/// Every file of the tree, connectors first, or one application's.
pub async fn export(store: &Store, app: Option<&str>) -> Result<Vec<(String, Vec<u8>)>, CoreError> {
    let mut files = Vec::new();
    match app {
        Some(app) => crate::apps::require(store, app).await?,
        None => {
            for connector in store.list_connectors().await? {
                files.push((
                    connector_yaml::path(&connector.spec.name),
                    connector.file.into_bytes(),
                ));
            }
        }
    }
    for entity in store.list_entities(app).await? {
        files.push((entity.path, entity.content));
    }
    Ok(files)
}

/// One file by path.
pub async fn show(store: &Store, path: &str) -> Result<StoredFile, CoreError> {
    if let Some(connector) = connector_for_path(store, path).await {
        return Ok(StoredFile {
            path: path.to_owned(),
            kind: EntityKind::SourceRepoProvider.as_str().to_owned(),
            content: connector.file.into_bytes(),
            revision: connector.revision,
            updated_at: connector.updated_at,
        });
    }
    let entity = store.get_entity(path).await?;
    Ok(StoredFile {
        path: entity.path,
        kind: entity.kind,
        content: entity.content,
        revision: entity.revision,
        updated_at: entity.updated_at,
    })
}

/// Creates or updates one file from its YAML, with the same checks as an import, as `by`.
pub async fn apply(
    store: &Store,
    path: &str,
    content: Vec<u8>,
    by: Option<&Person>,
) -> Result<TreeOutcome, CoreError> {
    representable(path)?;
    let edit = TreeEdit {
        files: vec![(path.to_owned(), content)],
        by: by.cloned(),
        ..TreeEdit::default()
    };
    Ok(apply_edit(store, edit).await?)
}

/// Deletes one file, unless others refer to it. A Source Repo Provider path deletes the
/// connector. `by` is the person deleting it.
pub async fn delete(store: &Store, path: &str, by: Option<&Person>) -> Result<(), CoreError> {
    representable(path)?;
    let edit = TreeEdit {
        deletes: vec![path.to_owned()],
        by: by.cloned(),
        ..TreeEdit::default()
    };
    apply_edit(store, edit).await?.into_result()?;
    tracing::info!(path, "deleted entity");
    Ok(())
}

/// Renames an entity. An application, service or environment moves its whole folder; every
/// file that refers to the entity is rewritten to the new name; all in one batch. A Source
/// Repo Provider is its connector, renamed in place. `by` is the person renaming it.
pub async fn rename(
    store: &Store,
    path: &str,
    name: &str,
    by: Option<&Person>,
) -> Result<TreeOutcome, CoreError> {
    representable(path)?;
    let from = match classify(path)? {
        PathClass::Entity(entity) => entity,
        PathClass::Ignored => {
            return Err(CoreError::invalid(
                "path",
                "is not a file of the Setup/ tree",
            ));
        }
    };
    let new_name = EntityName::parse(name)?;
    let mut to = from.clone();
    match from.kind {
        EntityKind::Application => to.app = Some(new_name),
        EntityKind::Service => to.service = Some(new_name),
        EntityKind::Environment => to.environment = Some(new_name),
        _ if from.name.is_some() => to.name = Some(new_name),
        _ => {
            return Err(CoreError::invalid(
                "path",
                format!("a {} has no name of its own to change", from.kind),
            ));
        }
    }
    let old_path = from.to_path();
    let new_path = to.to_path();
    if store.get_entity(&new_path).await.is_ok()
        || connector_for_path(store, &new_path).await.is_some()
    {
        return Err(CoreError::new(
            ErrorKind::Conflict,
            "already_exists",
            format!("{new_path} already exists"),
        )
        .with_field("name"));
    }
    if from.kind == EntityKind::SourceRepoProvider {
        return rename_connector(store, &from, &to, by).await;
    }
    let existing = store.get_entity(&old_path).await?;
    // What moves: the file, or the whole folder for applications, services and environments.
    let moved: Vec<(String, String, Vec<u8>)> = match from.kind {
        EntityKind::Application | EntityKind::Service | EntityKind::Environment => {
            let old_folder = old_path.trim_end_matches("Index.yaml").to_owned();
            let new_folder = new_path.trim_end_matches("Index.yaml").to_owned();
            store
                .list_entities(from.app.as_ref().map(EntityName::as_str))
                .await?
                .into_iter()
                .filter_map(|e| {
                    let rest = e.path.strip_prefix(&old_folder)?.to_owned();
                    Some((e.path, format!("{new_folder}{rest}"), e.content))
                })
                .collect()
        }
        _ => vec![(old_path.clone(), new_path.clone(), existing.content)],
    };
    let mut files: Vec<(String, Vec<u8>)> = moved
        .iter()
        .map(|(_, new, content)| (new.clone(), content.clone()))
        .collect();
    for (path, content) in rewritten_referrers(store, &from, &to, &moved).await? {
        match files.iter_mut().find(|(p, _)| *p == path) {
            Some(file) => file.1 = content,
            None => files.push((path, content)),
        }
    }
    let deletes = moved.into_iter().map(|(old, _, _)| old).collect();
    tracing::info!(from = %old_path, to = %new_path, "renaming entity");
    let edit = TreeEdit {
        files,
        deletes,
        by: by.cloned(),
        ..TreeEdit::default()
    };
    Ok(apply_edit(store, edit).await?)
}

/// A Source Repo Provider renamed: its connector, with every file that names it rewritten.
async fn rename_connector(
    store: &Store,
    from: &EntityPath,
    to: &EntityPath,
    by: Option<&Person>,
) -> Result<TreeOutcome, CoreError> {
    let old_path = from.to_path();
    let current = connector_for_path(store, &old_path)
        .await
        .ok_or_else(|| CoreError::not_found(format!("{old_path} does not exist")))?;
    let mut spec = current.spec.clone();
    spec.name = to
        .name
        .clone()
        .ok_or_else(|| CoreError::invalid("name", "is required"))?;
    let edit = TreeEdit {
        files: rewritten_referrers(store, from, to, &[]).await?,
        connectors: vec![ConnectorWrite::update(&current, spec, WebhookChange::Keep)],
        by: by.cloned(),
        ..TreeEdit::default()
    };
    tracing::info!(from = %old_path, to = %to.to_path(), "renaming connector");
    Ok(apply_edit(store, edit).await?)
}

/// The connector a Source Repo Provider path names, if the path is one and the connector
/// exists.
async fn connector_for_path(store: &Store, path: &str) -> Option<ConnectorRecord> {
    let name = source_repo_provider_name(path)?;
    store.get_connector(&name).await.ok()
}

/// Refuses a path reposync cannot represent ([`RepoPath`]) as the `path` field, naming it
/// escaped. The checks of the tree ([`classify`]) apply the same rule to every file of a
/// batch; this one answers a single-path request in its own words.
fn representable(path: &str) -> Result<(), CoreError> {
    RepoPath::parse(path).map(|_| ()).map_err(|problem| {
        CoreError::invalid(
            "path",
            format!(
                "{} is not a path reposync can represent: {problem}",
                escape_path(path.as_bytes())
            ),
        )
    })
}

/// One folder of the tree: the folders and files directly in it, by name. The web UI opens
/// folders one at a time, so that a tree of thousands of files shows quickly.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Folder {
    pub path: String,
    pub folders: Vec<String>,
    pub files: Vec<String>,
}

/// The folder at `path` (`Setup` for the root), listed by the store, with the Source Repo
/// Providers (the connectors, kept apart from the other files) where they belong.
pub async fn folder(store: &Store, path: &str) -> Result<Folder, CoreError> {
    let path = path.trim_end_matches('/');
    let prefix = format!("{path}/");
    let mut folders = std::collections::BTreeSet::new();
    let mut files = std::collections::BTreeSet::new();
    let mut sort = |child: &str| match child.strip_suffix('/') {
        Some(folder) => folders.insert(folder.to_owned()),
        None => files.insert(child.to_owned()),
    };
    for child in store.tree_children(&prefix).await? {
        sort(&child);
    }
    for connector in store.list_connectors().await? {
        let file = connector_yaml::path(&connector.spec.name);
        if let Some(rest) = file.strip_prefix(&prefix) {
            match rest.split_once('/') {
                Some((folder, _)) => sort(&format!("{folder}/")),
                None => sort(rest),
            };
        }
    }
    if folders.is_empty() && files.is_empty() && path != reposync_model::tree::ROOT {
        return Err(CoreError::not_found(format!(
            "no folder {path:?} in the tree"
        )));
    }
    Ok(Folder {
        path: path.to_owned(),
        folders: folders.into_iter().collect(),
        files: files.into_iter().collect(),
    })
}

/// The paths holding `text` (case-insensitive), sorted, at most `limit`: files of the tree,
/// and the Source Repo Providers.
pub async fn search(store: &Store, text: &str, limit: usize) -> Result<Vec<String>, CoreError> {
    let needle = text.to_lowercase();
    let most = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut found = store.search_paths(text, most).await?;
    for connector in store.list_connectors().await? {
        let file = connector_yaml::path(&connector.spec.name);
        if file.to_lowercase().contains(&needle) {
            found.push(file);
        }
    }
    found.sort();
    found.truncate(limit);
    Ok(found)
}
