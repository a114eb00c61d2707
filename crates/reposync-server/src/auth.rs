use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use reposync_core::tokens::hash_token;

use crate::error::AppError;
use crate::state::AppState;

/// The token of an `Authorization: Bearer <token>` header, if there is one.
pub fn bearer_token(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        // The scheme name is case-insensitive (RFC 9110).
        .and_then(|h| {
            h.split_once(' ')
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        })
        .map(|(_, token)| token.trim())
        .filter(|t| !t.is_empty())
}

/// Requires `Authorization: Bearer <token>` naming a known API token.
pub async fn require_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, AppError> {
    let Some(token) = bearer_token(request.headers()) else {
        return Err(AppError::unauthorized(
            "missing bearer token: send `Authorization: Bearer <token>`",
        ));
    };
    // Looking the token up by its hash keeps the comparison off the token itself.
    match state.store.find_api_token(&hash_token(token)).await? {
        Some(_) => Ok(next.run(request).await),
        None => Err(AppError::unauthorized("invalid API token")),
    }
}
