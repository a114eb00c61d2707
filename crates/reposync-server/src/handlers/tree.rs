//! The configuration tree: import, export, and single files by path.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reposync_api::{ApiError, EntityView, ExportResponse, ImportReport, ImportRequest, TreeFile};
use reposync_model::tree::{EntityKind, EntityPath, PathClass, classify};
use reposync_model::validate::TreeProblem;
use reposync_model::{EntityName, RepoPath, connector_yaml, escape_path};
use reposync_store::{ConnectorRecord, ConnectorWrite, WebhookChange};
use serde::{Deserialize, Serialize};

use reposync_core::tree::{
    TreeEdit, TreeOutcome, apply_edit, rewritten_referrers, source_repo_provider_name,
};

use crate::error::AppError;
use crate::handlers::{ApiJson, Deleted};
use crate::state::AppState;
use crate::views;

/// Validates a whole tree first, then applies it in the documented order, all or nothing.
/// Files already stored and absent from the tree are left alone: an import adds and changes,
/// it never deletes.
pub async fn import(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<ImportRequest>,
) -> Result<Response, AppError> {
    let mut edit = TreeEdit {
        dry_run: request.dry_run,
        ..TreeEdit::default()
    };
    for file in request.files {
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
    write_tree(&state, edit).await
}

/// Applies an edit and answers with the report, or with `422 invalid_tree` and the report
/// listing every failing file.
pub async fn write_tree(state: &AppState, edit: TreeEdit) -> Result<Response, AppError> {
    Ok(match apply_edit(&state.store, edit).await? {
        TreeOutcome::Applied(report) => Json(report).into_response(),
        TreeOutcome::Rejected(report) => rejected(report),
    })
}

/// The connector a Source Repo Provider path names, if the path is one and the connector
/// exists.
async fn connector_for_path(
    state: &AppState,
    path: &str,
) -> Result<Option<ConnectorRecord>, AppError> {
    match source_repo_provider_name(path) {
        Some(name) => Ok(state.store.get_connector(&name).await.ok()),
        None => Ok(None),
    }
}

/// A refused tree: the usual error body, plus the report listing every failing file.
fn rejected(report: ImportReport) -> Response {
    #[derive(Serialize)]
    struct Body {
        error: ApiError,
        report: ImportReport,
    }
    let error = ApiError {
        code: "invalid_tree".into(),
        message: format!(
            "{} problem(s) in the tree; nothing was imported",
            report.problems.len()
        ),
        field: None,
    };
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        Json(Body { error, report }),
    )
        .into_response()
}

#[derive(Debug, Deserialize)]
pub struct ExportQuery {
    #[serde(default)]
    app: Option<String>,
}

/// Every file of the tree, or one application's.
pub async fn export(
    State(state): State<AppState>,
    query: Result<Query<ExportQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<ExportResponse>, AppError> {
    let Query(query) = query.map_err(|e| AppError::invalid("app", e.body_text()))?;
    if let Some(app) = &query.app {
        let index = reposync_model::scope::app_index(app);
        state
            .store
            .get_entity(&index)
            .await
            .map_err(|_| AppError::not_found(format!("application {app:?} does not exist")))?;
    }
    let mut files: Vec<TreeFile> = Vec::new();
    if query.app.is_none() {
        for connector in state.store.list_connectors().await? {
            files.push(TreeFile {
                path: connector_yaml::path(&connector.spec.name),
                content: STANDARD.encode(&connector.file),
            });
        }
    }
    let stored: Vec<TreeFile> = state
        .store
        .list_entities(query.app.as_deref())
        .await?
        .into_iter()
        .map(|e| TreeFile {
            path: e.path,
            content: STANDARD.encode(&e.content),
        })
        .collect();
    files.extend(stored);
    Ok(Json(ExportResponse { files }))
}

#[derive(Debug, Deserialize)]
pub struct PathQuery {
    path: String,
}

/// One file by path.
pub async fn show(
    State(state): State<AppState>,
    query: Result<Query<PathQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<EntityView>, AppError> {
    let Query(query) = query.map_err(|e| AppError::invalid("path", e.body_text()))?;
    if let Some(connector) = connector_for_path(&state, &query.path).await? {
        return Ok(Json(EntityView {
            path: query.path,
            kind: EntityKind::SourceRepoProvider.as_str().to_owned(),
            content: connector.file,
            revision: connector.revision,
            updated_at: views::timestamp(connector.updated_at),
        }));
    }
    let entity = state.store.get_entity(&query.path).await?;
    Ok(Json(EntityView {
        path: entity.path,
        kind: entity.kind,
        content: String::from_utf8_lossy(&entity.content).into_owned(),
        revision: entity.revision,
        updated_at: views::timestamp(entity.updated_at),
    }))
}

/// Deletes one file, unless others refer to it. A Source Repo Provider path deletes the
/// connector.
pub async fn delete(
    State(state): State<AppState>,
    query: Result<Query<PathQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Deleted>, AppError> {
    let Query(query) = query.map_err(|e| AppError::invalid("path", e.body_text()))?;
    representable(&query.path)?;
    let edit = TreeEdit {
        deletes: vec![query.path.clone()],
        ..TreeEdit::default()
    };
    apply_edit(&state.store, edit).await?.into_result()?;
    tracing::info!(path = %query.path, "deleted entity");
    Ok(Json(Deleted::new(&query.path)))
}

/// Creates or updates one file from its YAML, with the same checks as an import.
pub async fn apply(
    State(state): State<AppState>,
    query: Result<Query<PathQuery>, axum::extract::rejection::QueryRejection>,
    ApiJson(request): ApiJson<reposync_api::ApplyRequest>,
) -> Result<Response, AppError> {
    let Query(query) = query.map_err(|e| AppError::invalid("path", e.body_text()))?;
    representable(&query.path)?;
    let edit = TreeEdit {
        files: vec![(query.path, request.content.into_bytes())],
        ..TreeEdit::default()
    };
    write_tree(&state, edit).await
}

/// Refuses a path reposync cannot represent ([`RepoPath`]) as the `path` field, naming it
/// escaped. The checks of the tree ([`classify`]) apply the same rule to every file of a
/// batch; this one answers a single-path request in its own words.
fn representable(path: &str) -> Result<(), AppError> {
    RepoPath::parse(path).map(|_| ()).map_err(|problem| {
        AppError::invalid(
            "path",
            format!(
                "{} is not a path reposync can represent: {problem}",
                escape_path(path.as_bytes())
            ),
        )
    })
}

/// `POST /api/v1/entities/rename`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenameRequest {
    path: String,
    name: String,
}

/// Renames an entity. An application, service or environment moves its whole folder; every
/// file that refers to the entity is rewritten to the new name; all in one batch. A Source
/// Repo Provider is its connector, renamed in place.
pub async fn rename(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<RenameRequest>,
) -> Result<Response, AppError> {
    representable(&request.path)?;
    let from = match classify(&request.path)? {
        PathClass::Entity(entity) => entity,
        PathClass::Ignored => {
            return Err(AppError::invalid(
                "path",
                "is not a file of the Setup/ tree",
            ));
        }
    };
    let new_name = EntityName::parse(&request.name)?;
    let mut to = from.clone();
    match from.kind {
        EntityKind::Application => to.app = Some(new_name),
        EntityKind::Service => to.service = Some(new_name),
        EntityKind::Environment => to.environment = Some(new_name),
        _ if from.name.is_some() => to.name = Some(new_name),
        _ => {
            return Err(AppError::invalid(
                "path",
                format!("a {} has no name of its own to change", from.kind),
            ));
        }
    }
    let old_path = from.to_path();
    let new_path = to.to_path();
    if state.store.get_entity(&new_path).await.is_ok()
        || connector_for_path(&state, &new_path).await?.is_some()
    {
        return Err(AppError::new(
            StatusCode::CONFLICT,
            "already_exists",
            format!("{new_path} already exists"),
        )
        .with_field("name"));
    }
    if from.kind == EntityKind::SourceRepoProvider {
        let current = connector_for_path(&state, &old_path)
            .await?
            .ok_or_else(|| AppError::not_found(format!("{old_path} does not exist")))?;
        let mut spec = current.spec.clone();
        spec.name = request_name(&to)?;
        let edit = TreeEdit {
            files: rewritten_referrers(&state.store, &from, &to, &[]).await?,
            connectors: vec![ConnectorWrite::update(&current, spec, WebhookChange::Keep)],
            ..TreeEdit::default()
        };
        tracing::info!(from = %old_path, to = %new_path, "renaming connector");
        return write_tree(&state, edit).await;
    }
    let existing = state.store.get_entity(&old_path).await?;
    // What moves: the file, or the whole folder for applications, services and environments.
    let moved: Vec<(String, String, Vec<u8>)> = match from.kind {
        EntityKind::Application | EntityKind::Service | EntityKind::Environment => {
            let old_folder = old_path.trim_end_matches("Index.yaml").to_owned();
            let new_folder = new_path.trim_end_matches("Index.yaml").to_owned();
            state
                .store
                .list_entities(from.app.as_ref().map(|a| a.as_str()))
                .await?
                .into_iter()
                .filter_map(|e| {
                    let rest = e.path.strip_prefix(&old_folder)?.to_owned();
                    Some((e.path, format!("{new_folder}{rest}"), e.content))
                })
                .collect()
        }
        _ => {
            vec![(old_path.clone(), new_path.clone(), existing.content)]
        }
    };
    let mut files: Vec<(String, Vec<u8>)> = moved
        .iter()
        .map(|(_, new, content)| (new.clone(), content.clone()))
        .collect();
    for (path, content) in rewritten_referrers(&state.store, &from, &to, &moved).await? {
        match files.iter_mut().find(|(p, _)| *p == path) {
            Some(file) => file.1 = content,
            None => files.push((path, content)),
        }
    }
    let deletes = moved.into_iter().map(|(old, _, _)| old).collect();
    tracing::info!(from = %old_path, to = %new_path, "renaming entity");
    write_tree(
        &state,
        TreeEdit {
            files,
            deletes,
            ..TreeEdit::default()
        },
    )
    .await
}

fn request_name(to: &EntityPath) -> Result<EntityName, AppError> {
    to.name
        .clone()
        .ok_or_else(|| AppError::invalid("name", "is required"))
}
