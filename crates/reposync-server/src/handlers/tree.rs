//! The configuration tree: import, export, and single files by path (see
//! `reposync_core::entities`).

use axum::Extension;
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reposync_api::{
    ApiError, ApiErrorBody, ApplyRequest, EntityView, ExportResponse, ImportReport, ImportRequest,
    TreeFile,
};
use reposync_core::entities;
use reposync_core::tree::TreeOutcome;
use reposync_model::Person;
use serde::{Deserialize, Serialize};

use crate::error::AppError;
use crate::handlers::{ApiJson, Deleted};
use crate::state::AppState;
use crate::views;

/// Validates a whole tree first, then applies it, all or nothing; an import never deletes.
#[utoipa::path(
    post,
    path = "/import",
    tag = "tree",
    request_body = ImportRequest,
    responses(
        (status = 200, description = "What the import did, or would do for a dry run", body = ImportReport),
        (status = 422, description = "The tree would not be valid (`invalid_tree`, with the report listing every problem), or the request is not (`invalid`)", body = TreeRefused),
    ),
)]
pub async fn import(
    State(state): State<AppState>,
    by: Option<Extension<Person>>,
    ApiJson(request): ApiJson<ImportRequest>,
) -> Result<Response, AppError> {
    let outcome = entities::import(
        &state.store,
        request.files,
        request.dry_run,
        &request.map_secret_managers,
        by.as_deref(),
    )
    .await?;
    Ok(tree_response(outcome))
}

/// A refused edit of the tree. The same status also answers a request refused before any
/// tree was looked at (a body missing a field), with the error alone, so the report is
/// documented as optional.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(examples(json!({
    "error": {"code": "invalid_tree", "message": "1 problem(s) in the tree; nothing was imported"},
    "report": {
        "dry_run": false, "applied": false, "created": 0, "changed": 0, "unchanged": 4,
        "deleted": 0, "ignored": 0,
        "problems": [{"path": "Setup/Cloud Providers/eks-prod.yaml", "line": 2, "column": 7,
            "message": "unknown type WIDGET"}]
    }
})))]
pub struct TreeRefused {
    error: ApiError,
    /// Every problem of the tree (`invalid_tree`); absent when the request itself was refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    report: Option<ImportReport>,
}

/// The report of an applied edit, or `422 invalid_tree` with the report listing every
/// failing file.
pub fn tree_response(outcome: TreeOutcome) -> Response {
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
                Json(TreeRefused {
                    error,
                    report: Some(report),
                }),
            )
                .into_response()
        }
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// Only this application's files.
    #[serde(default)]
    app: Option<String>,
}

/// Every file of the tree, or one application's.
#[utoipa::path(
    get,
    path = "/export",
    tag = "tree",
    params(ExportQuery),
    responses(
        (status = 200, description = "The files, base64", body = ExportResponse),
        (status = 404, description = "No such application (`not_found`)", body = ApiErrorBody),
        (status = 422, description = "A query parameter is not valid (`invalid`)", body = ApiErrorBody),
    ),
)]
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

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PathQuery {
    /// The file's path in the tree, from `Setup/`.
    path: String,
}

fn path_query(query: Result<Query<PathQuery>, QueryRejection>) -> Result<String, AppError> {
    let Query(query) = query.map_err(|e| AppError::invalid("path", e.body_text()))?;
    Ok(query.path)
}

/// One file by path.
#[utoipa::path(
    get,
    path = "/entities",
    tag = "tree",
    params(PathQuery),
    responses(
        (status = 200, description = "The file", body = EntityView),
        (status = 404, description = "No file at that path (`not_found`)", body = ApiErrorBody),
        (status = 422, description = "The path is missing or not valid (`invalid`)", body = ApiErrorBody),
    ),
)]
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
#[utoipa::path(
    delete,
    path = "/entities",
    tag = "tree",
    params(PathQuery),
    responses(
        (status = 200, description = "Deleted", body = Deleted),
        (status = 404, description = "No file at that path (`not_found`)", body = ApiErrorBody),
        (status = 422, description = "The path is missing or not valid (`invalid`), or the tree would not be valid without the file, as when others refer to it (`invalid_tree`)", body = ApiErrorBody),
    ),
)]
pub async fn delete(
    State(state): State<AppState>,
    query: Result<Query<PathQuery>, QueryRejection>,
    by: Option<Extension<Person>>,
) -> Result<Json<Deleted>, AppError> {
    let path = path_query(query)?;
    entities::delete(&state.store, &path, by.as_deref()).await?;
    Ok(Json(Deleted::new(&path)))
}

/// Creates or updates one file from its YAML, with the same checks as an import.
#[utoipa::path(
    put,
    path = "/entities",
    tag = "tree",
    params(PathQuery),
    request_body = ApplyRequest,
    responses(
        (status = 200, description = "What the edit did", body = ImportReport),
        (status = 422, description = "The tree would not be valid (`invalid_tree`, with the report listing every problem), or the request is not (`invalid`)", body = TreeRefused),
    ),
)]
pub async fn apply(
    State(state): State<AppState>,
    query: Result<Query<PathQuery>, QueryRejection>,
    by: Option<Extension<Person>>,
    ApiJson(request): ApiJson<ApplyRequest>,
) -> Result<Response, AppError> {
    let path = path_query(query)?;
    let content = request.content.into_bytes();
    let outcome = entities::apply(&state.store, &path, content, by.as_deref()).await?;
    Ok(tree_response(outcome))
}

/// `POST /api/v1/entities/rename`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenameRequest {
    path: String,
    name: String,
}

/// Renames an entity, and rewrites every file that refers to it, in one batch.
#[utoipa::path(
    post,
    path = "/entities/rename",
    tag = "tree",
    request_body = RenameRequest,
    responses(
        (status = 200, description = "What the rename did", body = ImportReport),
        (status = 404, description = "No file at that path (`not_found`)", body = ApiErrorBody),
        (status = 409, description = "The new name is taken (`already_exists`)", body = ApiErrorBody),
        (status = 422, description = "The tree would not be valid (`invalid_tree`, with the report listing every problem), or the request is not (`invalid`)", body = TreeRefused),
    ),
)]
pub async fn rename(
    State(state): State<AppState>,
    by: Option<Extension<Person>>,
    ApiJson(request): ApiJson<RenameRequest>,
) -> Result<Response, AppError> {
    let outcome =
        entities::rename(&state.store, &request.path, &request.name, by.as_deref()).await?;
    Ok(tree_response(outcome))
}
