use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use reposync_api::Health;

use crate::error::AppError;
use crate::state::AppState;

/// Liveness: the process answers.
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
}

/// Readiness: the database answers too.
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Health>, AppError> {
    state.store.ping().await.map_err(|_| {
        AppError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "the database does not answer",
        )
    })?;
    Ok(Json(Health {
        status: "ready".into(),
    }))
}
