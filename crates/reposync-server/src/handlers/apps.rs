//! Applications (see `reposync_core::apps`).

use axum::Json;
use axum::extract::{Path, State};
use axum::response::Response;
use reposync_api::{AppRequest, AppView, ListResponse};
use reposync_core::apps;

use crate::error::AppError;
use crate::handlers::ApiJson;
use crate::handlers::tree::tree_response;
use crate::state::AppState;

/// Creates an application: its `Index.yaml`, in the canonical format.
pub async fn create(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<AppRequest>,
) -> Result<Response, AppError> {
    let outcome = apps::create(&state.store, &request.name, request.description.as_deref()).await?;
    Ok(tree_response(outcome))
}

/// Every application, by name.
pub async fn list(State(state): State<AppState>) -> Result<Json<ListResponse<AppView>>, AppError> {
    let items = apps::list(&state.store).await?;
    Ok(Json(ListResponse { items }))
}

/// One application and what it holds.
pub async fn show(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<AppView>, AppError> {
    Ok(Json(apps::show(&state.store, &name).await?))
}

/// Renames an application: its whole folder moves, in one batch.
pub async fn rename(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiJson(request): ApiJson<AppRequest>,
) -> Result<Response, AppError> {
    Ok(tree_response(
        apps::rename(&state.store, &name, &request.name).await?,
    ))
}

/// Deletes an application and everything in its folder.
pub async fn delete(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, AppError> {
    Ok(tree_response(apps::delete(&state.store, &name).await?))
}
