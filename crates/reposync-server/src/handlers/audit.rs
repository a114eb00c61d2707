//! The audit trail, read (`reposync_core::audit`).

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use reposync_api::{ApiErrorBody, AuditEventView, AuditQuery, ListResponse};
use reposync_core::audit;

use crate::error::AppError;
use crate::state::AppState;

/// Events of the audit trail, newest first: writes, logins, failed logins, token creation and
/// revocation, and role changes.
#[utoipa::path(
    get,
    path = "/audit",
    tag = "audit",
    params(AuditQuery),
    responses(
        (status = 200, description = "The events the filters select, newest first", body = ListResponse<AuditEventView>),
        (status = 422, description = "A query parameter is not valid (`invalid`, naming it)", body = ApiErrorBody),
    ),
)]
pub async fn list(
    State(state): State<AppState>,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Json<ListResponse<AuditEventView>>, AppError> {
    // Every parameter is text here, so that the core refuses a wrong one by its name; only a
    // query that is not `name=value` pairs fails before it.
    let Query(query) = query.map_err(|e| AppError::invalid("query", e.body_text()))?;
    let items = audit::list(&state.store, &query).await?;
    Ok(Json(ListResponse { items }))
}
