use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use reposync_api::{Health, VersionView};

use crate::error::AppError;
use crate::state::AppState;

/// Liveness: the process answers.
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
}

/// What this server was built from: the same for the CLI built with it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const GIT_COMMIT: &str = env!("REPOSYNC_GIT_COMMIT");
pub const BUILD_DATE: &str = env!("REPOSYNC_BUILD_DATE");

/// The server's version, build, and database schema.
#[utoipa::path(
    get,
    path = "/version",
    tag = "meta",
    responses(
        (status = 200, description = "What the server was built from", body = VersionView),
    ),
)]
pub async fn version(State(state): State<AppState>) -> Result<Json<VersionView>, AppError> {
    Ok(Json(VersionView {
        version: VERSION.to_owned(),
        git_commit: GIT_COMMIT.to_owned(),
        build_date: BUILD_DATE.to_owned(),
        schema_version: state.store.schema_version().await?,
    }))
}

/// How long `/readyz` waits for the database.
const READY_PING_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Readiness: the database answers too, and every background worker runs.
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Health>, AppError> {
    // A database that does not answer at all (cut off, not refusing) must not hold the
    // load balancer's check past its own timeout.
    let answered = tokio::time::timeout(READY_PING_TIMEOUT, state.store.ping()).await;
    if !matches!(answered, Ok(Ok(()))) {
        return Err(AppError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "the database does not answer",
        ));
    }
    let stopped = state.workers.stopped();
    if !stopped.is_empty() {
        return Err(AppError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            format!(
                "the {} worker stopped; restart the server (its log says why)",
                stopped.join(", ")
            ),
        ));
    }
    Ok(Json(Health {
        status: "ready".into(),
    }))
}
