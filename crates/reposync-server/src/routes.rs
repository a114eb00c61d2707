use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::middleware;
use axum::routing::{delete, get, post};
use tower_http::trace::TraceLayer;

use crate::auth::require_token;
use crate::error::AppError;
use crate::handlers::{apps, connectors, delegates, health, secrets, sync, tasks, tree, webhooks};
use crate::state::AppState;

/// The one route table.
pub fn build_app(state: AppState) -> Router {
    let api = Router::new()
        .route("/version", get(health::version))
        .route("/secrets", get(secrets::list).post(secrets::create_text))
        .route("/secrets/ssh", post(secrets::create_ssh))
        .route("/secrets/ssh/generate", post(secrets::generate_ssh))
        .route(
            "/secrets/{name}",
            get(secrets::show)
                .put(secrets::update)
                .delete(secrets::delete),
        )
        .route(
            "/connectors",
            get(connectors::list).post(connectors::create),
        )
        .route(
            "/connectors/{name}",
            get(connectors::show)
                .patch(connectors::update)
                .delete(connectors::delete),
        )
        .route("/connectors/{name}/webhook", get(connectors::webhook))
        .route(
            "/connectors/{name}/webhook/regenerate",
            post(connectors::regenerate_webhook),
        )
        .route(
            "/connectors/{name}/webhook/signature",
            post(connectors::set_webhook_signature),
        )
        // Not under /connectors/: a connector may be named `test`.
        .route("/connector-tests", post(connectors::test_draft))
        .route("/connectors/{name}/test", post(connectors::test))
        .route("/tasks/{id}", get(tasks::show))
        .route(
            "/import",
            post(tree::import).layer(DefaultBodyLimit::max(state.config.max_import_bytes)),
        )
        .route("/export", get(tree::export))
        .route(
            "/entities",
            get(tree::show).put(tree::apply).delete(tree::delete),
        )
        .route("/entities/rename", post(tree::rename))
        .route("/apps", get(apps::list).post(apps::create))
        .route("/apps/{name}", get(apps::show).delete(apps::delete))
        .route("/apps/{name}/rename", post(apps::rename))
        .route("/sync/enable", post(sync::enable))
        .route("/sync/disable", post(sync::disable))
        .route("/sync/refresh", post(sync::refresh))
        .route("/sync/status", get(sync::status))
        .route("/sync/activity", get(sync::activity))
        .route("/sync/errors", get(sync::errors))
        .route("/sync/errors/{id}/discard", post(sync::discard_error))
        .route("/sync/changesets/{id}/retry", post(sync::retry))
        .route("/webhooks/deliveries", get(webhooks::deliveries))
        .route("/delegates", get(delegates::list))
        .route(
            "/delegate-tokens",
            get(delegates::list_tokens).post(delegates::create_token),
        )
        .route("/delegate-tokens/{name}", delete(delegates::revoke_token))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        // Delegates authenticate with delegate tokens, not API tokens.
        .route("/api/delegate/register", post(delegates::register))
        .route("/api/delegate/claim", post(delegates::claim))
        .route("/api/delegate/heartbeat", post(delegates::heartbeat))
        .route("/api/delegate/leave", post(delegates::leave))
        .route(
            "/api/delegate/tasks/{id}/complete",
            post(delegates::complete),
        )
        // Outside the bearer-token layer: the URL token is the credential.
        .route(
            "/api/webhooks/git/{token}",
            post(webhooks::receive).layer(DefaultBodyLimit::max(state.config.max_webhook_bytes)),
        )
        .nest("/api/v1", api)
        .fallback(|| async { AppError::not_found("no such endpoint") })
        .method_not_allowed_fallback(|| async {
            AppError::new(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this endpoint does not accept that method",
            )
        })
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &Request| {
                // The route template, never the raw path: some paths carry tokens.
                let route = request
                    .extensions()
                    .get::<MatchedPath>()
                    .map(MatchedPath::as_str)
                    .unwrap_or("unmatched");
                tracing::info_span!("request", method = %request.method(), route)
            }),
        )
        .with_state(state)
}
