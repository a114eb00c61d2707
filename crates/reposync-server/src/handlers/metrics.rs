use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq as _;

use crate::auth::bearer_token;
use crate::error::AppError;
use crate::state::AppState;

/// `GET /metrics`: Prometheus's text format. When the server has a metrics token, the scraper
/// must send it as a bearer token; the API's tokens are not asked for, so a scraper holds no
/// right to change anything.
pub async fn scrape(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    if let Some(expected) = &state.config.metrics_token {
        let given = bearer_token(&headers).unwrap_or_default();
        if !bool::from(given.as_bytes().ct_eq(expected.as_bytes())) {
            return Err(AppError::unauthorized(
                "/metrics needs the metrics token: send `Authorization: Bearer <token>` with the value of REPOSYNC_METRICS_TOKEN ([metrics] token)",
            ));
        }
    }
    let text = crate::metrics::render(&state).await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        text,
    )
        .into_response())
}
