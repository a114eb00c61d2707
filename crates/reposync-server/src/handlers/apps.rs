//! Applications: each is the folder `Setup/Applications/<name>/` and its `Index.yaml`.

use axum::Json;
use axum::extract::{Path, State};
use axum::response::Response;
use reposync_api::{AppRequest, AppView, ListResponse};
use reposync_model::EntityName;
use reposync_model::scope::{app_folder, app_index};
use reposync_model::tree::EntityKind;
use reposync_model::yaml::{Document, Mapping, Node, emit};

use crate::error::AppError;
use crate::handlers::ApiJson;
use reposync_core::tree::TreeEdit;

use crate::handlers::tree::write_tree;
use crate::state::AppState;

fn folder(name: &EntityName) -> String {
    app_folder(name.as_str())
}

fn index_path(name: &EntityName) -> String {
    app_index(name.as_str())
}

/// Creates an application: its `Index.yaml`, in the canonical format.
pub async fn create(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<AppRequest>,
) -> Result<Response, AppError> {
    let name = EntityName::parse(&request.name)?;
    if state.store.get_entity(&index_path(&name)).await.is_ok() {
        return Err(AppError::new(
            axum::http::StatusCode::CONFLICT,
            "already_exists",
            format!("application {:?} already exists", name.as_str()),
        )
        .with_field("name"));
    }
    let mut map = Mapping::new();
    map.insert("harnessApiVersion", Node::string("1.0"));
    map.insert("type", Node::string("APPLICATION"));
    if let Some(description) = request.description.filter(|d| !d.is_empty()) {
        map.insert("description", Node::string(description));
    }
    let content = emit(&Document::from_mapping(map)).into_bytes();
    tracing::info!(app = %name, "creating application");
    let edit = TreeEdit {
        files: vec![(index_path(&name), content)],
        ..TreeEdit::default()
    };
    write_tree(&state, edit).await
}

/// Every application, by name.
pub async fn list(State(state): State<AppState>) -> Result<Json<ListResponse<AppView>>, AppError> {
    let mut apps: std::collections::BTreeMap<String, AppView> = std::collections::BTreeMap::new();
    for entity in state.store.list_entities(None).await? {
        let Some(app) = entity.app else { continue };
        let view = apps.entry(app.clone()).or_insert_with(|| AppView {
            name: app,
            files: 0,
            services: 0,
            environments: 0,
            workflows: 0,
            pipelines: 0,
        });
        count(view, &entity.kind);
    }
    let items = apps.into_values().collect();
    Ok(Json(ListResponse { items }))
}

/// One application and what it holds.
pub async fn show(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<AppView>, AppError> {
    let name = EntityName::parse(&name)?;
    state
        .store
        .get_entity(&index_path(&name))
        .await
        .map_err(|_| no_app(&name))?;
    let mut view = AppView {
        name: name.to_string(),
        files: 0,
        services: 0,
        environments: 0,
        workflows: 0,
        pipelines: 0,
    };
    for entity in state.store.list_entities(Some(name.as_str())).await? {
        count(&mut view, &entity.kind);
    }
    Ok(Json(view))
}

/// Renames an application: its whole folder moves, in one batch.
pub async fn rename(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiJson(request): ApiJson<AppRequest>,
) -> Result<Response, AppError> {
    let old = EntityName::parse(&name)?;
    let new = EntityName::parse(&request.name)?;
    let files = state.store.list_entities(Some(old.as_str())).await?;
    if files.is_empty() {
        return Err(no_app(&old));
    }
    if state.store.get_entity(&index_path(&new)).await.is_ok() {
        return Err(AppError::new(
            axum::http::StatusCode::CONFLICT,
            "already_exists",
            format!("application {:?} already exists", new.as_str()),
        )
        .with_field("name"));
    }
    let (old_folder, new_folder) = (folder(&old), folder(&new));
    let moved = files
        .iter()
        .map(|f| {
            (
                format!(
                    "{new_folder}{}",
                    f.path.strip_prefix(&old_folder).unwrap_or(&f.path)
                ),
                f.content.clone(),
            )
        })
        .collect();
    let deletes = files.into_iter().map(|f| f.path).collect();
    tracing::info!(from = %old, to = %new, "renaming application");
    let edit = TreeEdit {
        files: moved,
        deletes,
        ..TreeEdit::default()
    };
    write_tree(&state, edit).await
}

/// Deletes an application and everything in its folder.
pub async fn delete(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, AppError> {
    let name = EntityName::parse(&name)?;
    let paths: Vec<String> = state
        .store
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
        ..TreeEdit::default()
    };
    write_tree(&state, edit).await
}

fn no_app(name: &EntityName) -> AppError {
    AppError::not_found(format!("application {:?} does not exist", name.as_str()))
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
