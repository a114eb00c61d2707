//! The configuration tree: import, export, and single files by path (see
//! `reposync_core::entities`).

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reposync_api::{
    ApiError, ApplyRequest, EntityView, ExportResponse, ImportReport, ImportRequest, TreeFile,
};
use reposync_core::entities;
use reposync_core::tree::TreeOutcome;
use serde::{Deserialize, Serialize};

use crate::error::AppError;
use crate::handlers::{ApiJson, Deleted};
use crate::state::AppState;
use crate::views;

/// Validates a whole tree first, then applies it, all or nothing; an import never deletes.
pub async fn import(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<ImportRequest>,
) -> Result<Response, AppError> {
    let outcome = entities::import(
        &state.store,
        request.files,
        request.dry_run,
        &request.map_secret_managers,
    )
    .await?;
    Ok(tree_response(outcome))
}

/// The report of an applied edit, or `422 invalid_tree` with the report listing every
/// failing file.
pub fn tree_response(outcome: TreeOutcome) -> Response {
    #[derive(Serialize)]
    struct Refused {
        error: ApiError,
        report: ImportReport,
    }
    match outcome {
        TreeOutcome::Applied(report) => Json(report).into_response(),
        TreeOutcome::Rejected(report) => {
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
                Json(Refused { error, report }),
            )
                .into_response()
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct ExportQuery {
    #[serde(default)]
    app: Option<String>,
}

/// Every file of the tree, or one application's.
pub async fn export(
    State(state): State<AppState>,
    query: Result<Query<ExportQuery>, QueryRejection>,
) -> Result<Json<ExportResponse>, AppError> {
    let Query(query) = query.map_err(|e| AppError::invalid("app", e.body_text()))?;
    let files = entities::export(&state.store, query.app.as_deref())
        .await?
        .into_iter()
        .map(|(path, content)| TreeFile {
            path,
            content: STANDARD.encode(content),
        })
        .collect();
    Ok(Json(ExportResponse { files }))
}

#[derive(Debug, Deserialize)]
pub struct PathQuery {
    path: String,
}

fn path_query(query: Result<Query<PathQuery>, QueryRejection>) -> Result<String, AppError> {
    let Query(query) = query.map_err(|e| AppError::invalid("path", e.body_text()))?;
    Ok(query.path)
}

/// One file by path.
pub async fn show(
    State(state): State<AppState>,
    query: Result<Query<PathQuery>, QueryRejection>,
) -> Result<Json<EntityView>, AppError> {
    let file = entities::show(&state.store, &path_query(query)?).await?;
    Ok(Json(EntityView {
        path: file.path,
        kind: file.kind,
        content: String::from_utf8_lossy(&file.content).into_owned(),
        revision: file.revision,
        updated_at: views::timestamp(file.updated_at),
    }))
}

/// Deletes one file, unless others refer to it.
pub async fn delete(
    State(state): State<AppState>,
    query: Result<Query<PathQuery>, QueryRejection>,
) -> Result<Json<Deleted>, AppError> {
    let path = path_query(query)?;
    entities::delete(&state.store, &path).await?;
    Ok(Json(Deleted::new(&path)))
}

/// Creates or updates one file from its YAML, with the same checks as an import.
pub async fn apply(
    State(state): State<AppState>,
    query: Result<Query<PathQuery>, QueryRejection>,
    ApiJson(request): ApiJson<ApplyRequest>,
) -> Result<Response, AppError> {
    let path = path_query(query)?;
    let outcome = entities::apply(&state.store, &path, request.content.into_bytes()).await?;
    Ok(tree_response(outcome))
}

/// `POST /api/v1/entities/rename`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenameRequest {
    path: String,
    name: String,
}

/// Renames an entity, and rewrites every file that refers to it, in one batch.
pub async fn rename(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<RenameRequest>,
) -> Result<Response, AppError> {
    let outcome = entities::rename(&state.store, &request.path, &request.name).await?;
    Ok(tree_response(outcome))
}
