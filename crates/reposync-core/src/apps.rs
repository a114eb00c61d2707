//! Applications: each is a folder of the tree (`Scope::App`) and its `Index.yaml`.

use std::collections::BTreeMap;

use reposync_api::{AppSync, AppView};
use reposync_model::scope::{app_folder, app_index};
use reposync_model::tree::EntityKind;
use reposync_model::yaml::{Document, Limits, Mapping, Node, emit, parse};
use reposync_model::{EntityName, Person};
use reposync_store::Store;

use crate::connections::target;
use crate::error::{CoreError, ErrorKind};
use crate::tree::{TreeEdit, TreeOutcome, apply_edit};

/// Creates an application: its `Index.yaml`, in the canonical format. `by` is the person
/// creating it.
pub async fn create(
    store: &Store,
    name: &str,
    description: Option<&str>,
    by: Option<&Person>,
) -> Result<TreeOutcome, CoreError> {
    let name = EntityName::parse(name)?;
    refuse_existing(store, &name).await?;
    let mut map = Mapping::new();
    map.insert("harnessApiVersion", Node::string("1.0"));
    map.insert("type", Node::string("APPLICATION"));
    if let Some(description) = description.filter(|d| !d.is_empty()) {
        map.insert("description", Node::string(description));
    }
    let content = emit(&Document::from_mapping(map)).into_bytes();
    tracing::info!(app = %name, "creating application");
    let edit = TreeEdit {
        files: vec![(app_index(name.as_str()), content)],
        by: by.cloned(),
        ..TreeEdit::default()
    };
    Ok(apply_edit(store, edit).await?)
}

/// The applications' names, sorted: what a choice of application lists, without reading
/// their files.
pub async fn names(store: &Store) -> Result<Vec<String>, CoreError> {
    Ok(store.app_names().await?)
}

/// Every application, by name, with what it holds.
pub async fn list(store: &Store) -> Result<Vec<AppView>, CoreError> {
    let mut apps: BTreeMap<String, AppView> = BTreeMap::new();
    for entity in store.list_entities(None).await? {
        let Some(app) = entity.app else { continue };
        let view = apps.entry(app.clone()).or_insert_with(|| empty_view(app));
        count(view, &entity.kind);
    }
    Ok(apps.into_values().collect())
}

/// One application: what it holds, its description, and where Git Sync keeps it.
pub async fn show(store: &Store, name: &str) -> Result<AppView, CoreError> {
    let name = EntityName::parse(name)?;
    let index = store
        .get_entity(&app_index(name.as_str()))
        .await
        .map_err(|_| no_app(&name))?;
    let mut view = empty_view(name.to_string());
    for entity in store.list_entities(Some(name.as_str())).await? {
        count(&mut view, &entity.kind);
    }
    view.description = parse(&index.content, &Limits::default())
        .ok()
        .and_then(|document| {
            let description = document.root_map()?.get("description")?.as_str()?;
            Some(description.to_owned())
        });
    if let Some(link) = store.live_link(Some(name.as_str())).await? {
        let connector = store.get_connector_by_id(&link.connector_id).await?;
        view.sync = Some(AppSync {
            url: target(&connector, &link).map(|t| t.url).unwrap_or_default(),
            connector: connector.spec.name.to_string(),
            branch: link.branch,
        });
    }
    Ok(view)
}

/// Renames an application: its whole folder moves, in one batch, as `by`.
pub async fn rename(
    store: &Store,
    old: &str,
    new: &str,
    by: Option<&Person>,
) -> Result<TreeOutcome, CoreError> {
    let old = EntityName::parse(old)?;
    let new = EntityName::parse(new)?;
    let files = store.list_entities(Some(old.as_str())).await?;
    if files.is_empty() {
        return Err(no_app(&old));
    }
    refuse_existing(store, &new).await?;
    let (old_folder, new_folder) = (app_folder(old.as_str()), app_folder(new.as_str()));
    let moved = files
        .iter()
        .map(|f| {
            let rest = f.path.strip_prefix(&old_folder).unwrap_or(&f.path);
            (format!("{new_folder}{rest}"), f.content.clone())
        })
        .collect();
    let deletes = files.into_iter().map(|f| f.path).collect();
    tracing::info!(from = %old, to = %new, "renaming application");
    let edit = TreeEdit {
        files: moved,
        deletes,
        by: by.cloned(),
        ..TreeEdit::default()
    };
    Ok(apply_edit(store, edit).await?)
}

/// Deletes an application and everything in its folder, as `by`.
pub async fn delete(
    store: &Store,
    name: &str,
    by: Option<&Person>,
) -> Result<TreeOutcome, CoreError> {
    let name = EntityName::parse(name)?;
    let paths: Vec<String> = store
        .list_entities(Some(name.as_str()))
        .await?
        .into_iter()
        .map(|f| f.path)
        .collect();
    if paths.is_empty() {
        return Err(no_app(&name));
    }
    tracing::info!(app = %name, files = paths.len(), "deleting application");
    let edit = TreeEdit {
        deletes: paths,
        by: by.cloned(),
        ..TreeEdit::default()
    };
    Ok(apply_edit(store, edit).await?)
}

/// Refuses an application that does not exist, as the `app` field.
pub async fn require(store: &Store, name: &str) -> Result<(), CoreError> {
    let name = EntityName::parse(name).map_err(|e| CoreError::invalid("app", e.message))?;
    store
        .get_entity(&app_index(name.as_str()))
        .await
        .map(|_| ())
        .map_err(|_| no_app(&name).with_field("app"))
}

async fn refuse_existing(store: &Store, name: &EntityName) -> Result<(), CoreError> {
    if store.get_entity(&app_index(name.as_str())).await.is_ok() {
        return Err(CoreError::new(
            ErrorKind::Conflict,
            "already_exists",
            format!("application {:?} already exists", name.as_str()),
        )
        .with_field("name"));
    }
    Ok(())
}

fn no_app(name: &EntityName) -> CoreError {
    CoreError::not_found(format!("application {:?} does not exist", name.as_str()))
}

fn empty_view(name: String) -> AppView {
    AppView {
        name,
        files: 0,
        services: 0,
        environments: 0,
        workflows: 0,
        pipelines: 0,
        description: None,
        sync: None,
    }
}

fn count(view: &mut AppView, kind: &str) {
    view.files += 1;
    match kind {
        k if k == EntityKind::Service.as_str() => view.services += 1,
        k if k == EntityKind::Environment.as_str() => view.environments += 1,
        k if k == EntityKind::Workflow.as_str() => view.workflows += 1,
        k if k == EntityKind::Pipeline.as_str() => view.pipelines += 1,
        _ => {}
    }
}
