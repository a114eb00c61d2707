//! Git Sync links: enable, disable, status, activity, errors, retry.

use axum::Extension;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use reposync_api::{
    ApiErrorBody, ChangesetView, ListResponse, RefreshedBranch, SyncActivity, SyncDisableRequest,
    SyncEnableRequest, SyncErrorView, SyncLinkView, SyncRefreshRequest, TaskView,
};
use reposync_core::resolve;
use reposync_core::{activity, links};
use reposync_model::{ChangesetId, Person, SyncErrorId};
use reposync_store::ChangesetStatus;
use serde::Deserialize;

use crate::error::AppError;
use crate::handlers::{ApiJson, Deleted};
use crate::local_tasks;
use crate::state::AppState;
use crate::views;

/// Asks for a scope to be linked to a branch, or with `all` the account and every
/// application from one read of the branch: `202` with the task that does it, which reads
/// the branch on a delegate (see `reposync_core::links::request_enable`).
#[utoipa::path(
    post,
    path = "/sync/enable",
    tag = "sync",
    request_body = SyncEnableRequest,
    responses(
        (status = 202, description = "The task that enables it; long-poll it for a `SyncEnabled`, or with `all` a `SyncEnabledAll`", body = TaskView),
        (status = 404, description = "No such application or connector (`not_found`)", body = ApiErrorBody),
        (status = 409, description = "The scope is already synced, or being enabled (`already_linked`)", body = ApiErrorBody),
        (status = 422, description = "A field is not valid, such as `app` given with `all` (`invalid`)", body = ApiErrorBody),
    ),
)]
pub async fn enable(
    State(state): State<AppState>,
    by: Option<Extension<Person>>,
    ApiJson(request): ApiJson<SyncEnableRequest>,
) -> Result<(StatusCode, Json<TaskView>), AppError> {
    let task = links::request_enable(&state.store, &request, by.as_deref()).await?;
    let view = views::task(&task);
    local_tasks::spawn_enable(&state, task);
    Ok((StatusCode::ACCEPTED, Json(view)))
}

/// The answer to disabling sync: the scope no longer synced.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[schema(examples(json!({"disabled": "app:payments"})))]
pub struct Disabled {
    /// `account`, or `app:<name>`.
    disabled: String,
}

/// Ends a scope's link. Changes not yet pushed stay in reposync.
#[utoipa::path(
    post,
    path = "/sync/disable",
    tag = "sync",
    request_body = SyncDisableRequest,
    responses(
        (status = 200, description = "The scope no longer synced", body = Disabled),
        (status = 404, description = "The scope is not synced (`not_found`)", body = ApiErrorBody),
    ),
)]
pub async fn disable(
    State(state): State<AppState>,
    by: Option<Extension<Person>>,
    ApiJson(request): ApiJson<SyncDisableRequest>,
) -> Result<Json<Disabled>, AppError> {
    let scope = links::disable(&state.store, request.app.as_deref(), by.as_deref()).await?;
    Ok(Json(Disabled {
        disabled: scope.to_string(),
    }))
}

/// Reads the branch of a scope, or of every live link, now.
#[utoipa::path(
    post,
    path = "/sync/refresh",
    tag = "sync",
    request_body = SyncRefreshRequest,
    responses(
        (status = 202, description = "The branches queued for reading", body = ListResponse<RefreshedBranch>),
        (status = 404, description = "The scope is not synced (`not_found`)", body = ApiErrorBody),
    ),
)]
pub async fn refresh(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<SyncRefreshRequest>,
) -> Result<(StatusCode, Json<ListResponse<RefreshedBranch>>), AppError> {
    let items = links::refresh(&state.store, request.app.as_deref(), request.all).await?;
    Ok((StatusCode::ACCEPTED, Json(ListResponse { items })))
}

/// Every live link.
#[utoipa::path(
    get,
    path = "/sync/status",
    tag = "sync",
    responses(
        (status = 200, description = "The live links", body = ListResponse<SyncLinkView>),
    ),
)]
pub async fn status(
    State(state): State<AppState>,
) -> Result<Json<ListResponse<SyncLinkView>>, AppError> {
    let items = links::status(&state.store).await?;
    Ok(Json(ListResponse { items }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ActivityQuery {
    /// Only this application's activity, that of its earlier links included.
    #[serde(default)]
    app: Option<String>,
    /// At most this many of each kind, newest first: 100 unless given, at most 10,000.
    #[serde(default)]
    limit: Option<i64>,
}

/// Changesets, commit attempts, commits read from Git and how each branch was read, newest
/// first.
#[utoipa::path(
    get,
    path = "/sync/activity",
    tag = "sync",
    params(ActivityQuery),
    responses(
        (status = 200, description = "Changesets, commit attempts, commits read and reads of branches, newest first", body = SyncActivity),
        (status = 404, description = "The application has never been synced (`not_found`)", body = ApiErrorBody),
        (status = 422, description = "A query parameter is not valid (`invalid`)", body = ApiErrorBody),
    ),
)]
pub async fn activity(
    State(state): State<AppState>,
    query: Result<Query<ActivityQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<SyncActivity>, AppError> {
    let Query(query) = query.map_err(|e| AppError::invalid("app", e.body_text()))?;
    Ok(Json(
        activity::activity(&state.store, query.app.as_deref(), query.limit).await?,
    ))
}

/// Sync errors not yet resolved.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ErrorsQuery {
    /// List the errors resolved lately instead of the open ones.
    #[serde(default)]
    resolved: bool,
    /// With `resolved`, at most this many: 100 unless given, at most 10,000.
    #[serde(default)]
    limit: Option<i64>,
    /// Only the errors of this application's scope.
    #[serde(default)]
    app: Option<String>,
}

/// The open sync errors, oldest first; with `resolved=true`, the most recently resolved ones,
/// newest first, with how each was resolved.
#[utoipa::path(
    get,
    path = "/sync/errors",
    tag = "sync",
    params(ErrorsQuery),
    responses(
        (status = 200, description = "The sync errors", body = ListResponse<SyncErrorView>),
        (status = 422, description = "A query parameter is not valid (`invalid`)", body = ApiErrorBody),
    ),
)]
pub async fn errors(
    State(state): State<AppState>,
    query: Result<Query<ErrorsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<ListResponse<SyncErrorView>>, AppError> {
    let Query(query) = query.map_err(|e| AppError::invalid("resolved", e.body_text()))?;
    let items = resolve::errors(
        &state.store,
        query.resolved,
        query.limit,
        query.app.as_deref(),
    )
    .await?;
    Ok(Json(ListResponse { items }))
}

/// Discards an open sync error.
#[utoipa::path(
    post,
    path = "/sync/errors/{id}/discard",
    tag = "sync",
    params(("id" = SyncErrorId, Path, description = "The sync error")),
    responses(
        (status = 200, description = "Discarded", body = Deleted),
        (status = 404, description = "No such open sync error (`not_found`)", body = ApiErrorBody),
    ),
)]
pub async fn discard_error(
    State(state): State<AppState>,
    Path(id): Path<SyncErrorId>,
) -> Result<Json<Deleted>, AppError> {
    resolve::discard(&state.store, &id).await?;
    Ok(Json(Deleted::new(&id)))
}

/// Puts a failed or conflicting changeset back in the outbox.
#[utoipa::path(
    post,
    path = "/sync/changesets/{id}/retry",
    tag = "sync",
    params(("id" = ChangesetId, Path, description = "The changeset")),
    responses(
        (status = 200, description = "The changeset, waiting again", body = ChangesetView),
        (status = 404, description = "No such changeset (`not_found`)", body = ApiErrorBody),
        (status = 422, description = "The changeset is not failed or conflicting (`invalid`)", body = ApiErrorBody),
    ),
)]
pub async fn retry(
    State(state): State<AppState>,
    Path(id): Path<ChangesetId>,
) -> Result<Json<ChangesetView>, AppError> {
    let changeset = resolve::retry(&state.store, &id).await?;
    let scope = links::scopes_by_link(&state.store)
        .await?
        .remove(&changeset.link_id)
        .unwrap_or_default();
    let mut view = activity::changeset_view(&changeset, scope);
    view.status = ChangesetStatus::Waiting.as_str().to_owned();
    view.error = None;
    Ok(Json(view))
}
