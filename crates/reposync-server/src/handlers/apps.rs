//! Applications (see `reposync_core::apps`).

use axum::Extension;
use axum::Json;
use axum::extract::{Path, State};
use axum::response::Response;
use reposync_api::{ApiErrorBody, AppRequest, AppView, ImportReport, ListResponse};
use reposync_core::apps;
use reposync_model::Person;

use crate::error::AppError;
use crate::handlers::ApiJson;
use crate::handlers::tree::{TreeRefused, tree_response};
use crate::state::AppState;

/// Creates an application: its `Index.yaml`, in the canonical format.
#[utoipa::path(
    post,
    path = "/apps",
    tag = "apps",
    request_body = AppRequest,
    responses(
        (status = 200, description = "What creating it did", body = ImportReport),
        (status = 409, description = "An application of that name exists (`already_exists`)", body = ApiErrorBody),
        (status = 422, description = "The tree would not be valid (`invalid_tree`, with the report listing every problem), or the request is not (`invalid`)", body = TreeRefused),
    ),
)]
pub async fn create(
    State(state): State<AppState>,
    by: Option<Extension<Person>>,
    ApiJson(request): ApiJson<AppRequest>,
) -> Result<Response, AppError> {
    let description = request.description.as_deref();
    let outcome = apps::create(&state.store, &request.name, description, by.as_deref()).await?;
    Ok(tree_response(outcome))
}

/// Every application, by name.
#[utoipa::path(
    get,
    path = "/apps",
    tag = "apps",
    responses(
        (status = 200, description = "The applications", body = ListResponse<AppView>),
    ),
)]
pub async fn list(State(state): State<AppState>) -> Result<Json<ListResponse<AppView>>, AppError> {
    let items = apps::list(&state.store).await?;
    Ok(Json(ListResponse { items }))
}

/// One application and what it holds.
#[utoipa::path(
    get,
    path = "/apps/{name}",
    tag = "apps",
    params(("name" = String, Path, description = "The application")),
    responses(
        (status = 200, description = "The application, its description and its sync link", body = AppView),
        (status = 404, description = "No such application (`not_found`)", body = ApiErrorBody),
        (status = 422, description = "Not a valid application name (`invalid`)", body = ApiErrorBody),
    ),
)]
pub async fn show(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<AppView>, AppError> {
    Ok(Json(apps::show(&state.store, &name).await?))
}

/// Renames an application: its whole folder moves, in one batch.
#[utoipa::path(
    post,
    path = "/apps/{name}/rename",
    tag = "apps",
    params(("name" = String, Path, description = "The application")),
    request_body(content = AppRequest, description = "`name` is the new name"),
    responses(
        (status = 200, description = "What the rename did", body = ImportReport),
        (status = 404, description = "No such application (`not_found`)", body = ApiErrorBody),
        (status = 409, description = "The new name is taken (`already_exists`)", body = ApiErrorBody),
        (status = 422, description = "The tree would not be valid (`invalid_tree`, with the report listing every problem), or the request is not (`invalid`)", body = TreeRefused),
    ),
)]
pub async fn rename(
    State(state): State<AppState>,
    Path(name): Path<String>,
    by: Option<Extension<Person>>,
    ApiJson(request): ApiJson<AppRequest>,
) -> Result<Response, AppError> {
    Ok(tree_response(
        apps::rename(&state.store, &name, &request.name, by.as_deref()).await?,
    ))
}

/// Deletes an application and everything in its folder.
#[utoipa::path(
    delete,
    path = "/apps/{name}",
    tag = "apps",
    params(("name" = String, Path, description = "The application")),
    responses(
        (status = 200, description = "What deleting it did", body = ImportReport),
        (status = 404, description = "No such application (`not_found`)", body = ApiErrorBody),
        (status = 422, description = "The tree would not be valid (`invalid_tree`, with the report listing every problem), or the request is not (`invalid`)", body = TreeRefused),
    ),
)]
pub async fn delete(
    State(state): State<AppState>,
    Path(name): Path<String>,
    by: Option<Extension<Person>>,
) -> Result<Response, AppError> {
    Ok(tree_response(
        apps::delete(&state.store, &name, by.as_deref()).await?,
    ))
}
