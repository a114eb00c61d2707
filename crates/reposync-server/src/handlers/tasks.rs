use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use reposync_api::{ApiErrorBody, TaskView};
use reposync_model::TaskId;
use serde::Deserialize;

use crate::error::AppError;
use crate::state::AppState;
use crate::views;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WaitQuery {
    /// Long-poll: wait up to this many milliseconds for the task to finish.
    #[serde(default)]
    wait_ms: Option<u64>,
}

/// The longest a client may long-poll a task in one request.
const MAX_WAIT: Duration = Duration::from_secs(60);

/// A task; with `wait_ms`, the answer waits for it to finish, up to a minute.
#[utoipa::path(
    get,
    path = "/tasks/{id}",
    tag = "tasks",
    params(("id" = TaskId, Path, description = "The task"), WaitQuery),
    responses(
        (status = 200, description = "The task, finished or as it stands when the wait ends", body = TaskView),
        (status = 404, description = "No such task (`not_found`)", body = ApiErrorBody),
        (status = 422, description = "A query parameter is not valid (`invalid`)", body = ApiErrorBody),
    ),
)]
pub async fn show(
    State(state): State<AppState>,
    Path(id): Path<TaskId>,
    query: Result<Query<WaitQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<TaskView>, AppError> {
    let Query(query) = query.map_err(|e| AppError::invalid("wait_ms", e.body_text()))?;
    let wait = Duration::from_millis(query.wait_ms.unwrap_or(0)).min(MAX_WAIT);
    let task = state.tasks.wait_final(&id, wait).await?;
    Ok(Json(views::task(&task)))
}

/// Downloads the files a fetch read, as a plain tar archive (paths as in the repository).
///
/// Only a fetch that succeeded has one, kept for an hour after it ran: before, after, or for a
/// failed fetch the answer is 404 saying which. The archive streams from disk.
#[utoipa::path(
    get,
    path = "/tasks/{id}/archive",
    tag = "tasks",
    params(("id" = TaskId, Path, description = "The fetch's task")),
    responses(
        (status = 200, description = "The archive", content_type = "application/x-tar", body = Vec<u8>),
        (status = 404, description = "No such task, not a fetch, not finished (`not_ready`), failed (`fetch_failed`), or its archive expired (`expired`)", body = ApiErrorBody),
    ),
)]
pub async fn archive(
    State(state): State<AppState>,
    Path(id): Path<TaskId>,
) -> Result<Response, AppError> {
    let archive = state.tasks.archive_for_download(&id).await?;
    let size = archive.size();
    let body = archive.into_body();
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-tar".to_owned()),
            (header::CONTENT_LENGTH, size.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"fetch-{id}.tar\""),
            ),
        ],
        body,
    )
        .into_response())
}
