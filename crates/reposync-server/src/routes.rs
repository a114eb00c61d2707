use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Extension, MatchedPath, Request};
use axum::middleware;
use axum::routing::{get, post, put};
use tower_http::trace::TraceLayer;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

use crate::access::authorize;
use crate::error::AppError;
use crate::handlers::openapi::Document;
use crate::handlers::{
    apps, audit, connectors, delegates, health, metrics, openapi, secrets, sync, tasks, tree,
    users, webhooks,
};
use crate::state::AppState;

/// The one route table.
pub fn build_app(state: AppState) -> Router {
    crate::metrics::install();
    // `/api/v1` and its OpenAPI document come from the same annotated handlers.
    let (api, mut document) = OpenApiRouter::with_openapi(crate::openapi::base())
        .nest("/api/v1", api_v1(&state))
        .split_for_parts();
    crate::openapi::complete(&mut document);
    let api = api.layer(Extension(Document(Arc::new(document))));
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        // Outside the API token: scrapers hold their own token, if any (`[metrics] token`).
        .route("/metrics", get(metrics::scrape))
        // Delegates authenticate with delegate tokens, not API tokens.
        .route("/api/delegate/register", post(delegates::register))
        .route("/api/delegate/claim", post(delegates::claim))
        .route("/api/delegate/heartbeat", post(delegates::heartbeat))
        .route("/api/delegate/leave", post(delegates::leave))
        .route(
            "/api/delegate/tasks/{id}/complete",
            post(delegates::complete),
        )
        // A fetch's archive, streamed to disk under its own limit, not the JSON bodies' one.
        .route(
            "/api/delegate/tasks/{id}/archive",
            put(delegates::upload_archive).layer(DefaultBodyLimit::disable()),
        )
        // Outside the bearer-token layer: the URL token is the credential.
        .route(
            "/api/webhooks/git/{token}",
            post(webhooks::receive).layer(DefaultBodyLimit::max(state.config.max_webhook_bytes)),
        )
        .merge(api)
        // The web UI: its own session, security headers and cross-site refusal (`ui`).
        .merge(crate::ui::router())
        .fallback(|| async { AppError::not_found("no such endpoint") })
        .method_not_allowed_fallback(|| async {
            AppError::new(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this endpoint does not accept that method",
            )
        })
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .layer(middleware::from_fn(count_request))
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

/// Counts every answered request by its route template (never the raw path: some carry
/// tokens) and status, with its latency.
async fn count_request(request: Request, next: middleware::Next) -> axum::response::Response {
    let started = std::time::Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let response = next.run(request).await;
    crate::metrics::http_request(
        method.as_str(),
        &route,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

/// The `/api/v1` routes, each from a handler whose `#[utoipa::path]` annotation gives its path,
/// method and OpenAPI operation, so that the document lists exactly the routes served. Add a
/// route here only as `.routes(routes!(…))`: a test refuses every other way in.
fn api_v1(state: &AppState) -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health::version))
        .routes(routes!(secrets::list, secrets::create_text))
        .routes(routes!(secrets::create_ssh))
        .routes(routes!(secrets::generate_ssh))
        .routes(routes!(secrets::show, secrets::update, secrets::delete))
        .routes(routes!(connectors::list, connectors::create))
        .routes(routes!(
            connectors::show,
            connectors::update,
            connectors::delete
        ))
        .routes(routes!(connectors::webhook))
        .routes(routes!(connectors::regenerate_webhook))
        .routes(routes!(connectors::set_webhook_signature))
        // Not under /connectors/: a connector may be named `test`.
        .routes(routes!(connectors::test_draft))
        .routes(routes!(connectors::test))
        .routes(routes!(connectors::fetch))
        .routes(routes!(tasks::show))
        .routes(routes!(tasks::archive))
        .routes(routes!(tree::import).layer(DefaultBodyLimit::max(state.config.max_import_bytes)))
        .routes(routes!(tree::export))
        .routes(routes!(tree::show, tree::apply, tree::delete))
        .routes(routes!(tree::rename))
        .routes(routes!(apps::list, apps::create))
        .routes(routes!(apps::show, apps::delete))
        .routes(routes!(apps::rename))
        .routes(routes!(sync::enable))
        .routes(routes!(sync::disable))
        .routes(routes!(sync::refresh))
        .routes(routes!(sync::status))
        .routes(routes!(sync::activity))
        .routes(routes!(sync::errors))
        .routes(routes!(sync::discard_error))
        .routes(routes!(sync::retry))
        .routes(routes!(webhooks::deliveries))
        .routes(routes!(delegates::list))
        .routes(routes!(delegates::list_tokens, delegates::create_token))
        .routes(routes!(delegates::revoke_token))
        .routes(routes!(users::login))
        .routes(routes!(users::me))
        .routes(routes!(users::list_own_tokens, users::create_own_token))
        .routes(routes!(users::revoke_own_token))
        .routes(routes!(users::list, users::create))
        .routes(routes!(users::show, users::update, users::delete))
        .routes(routes!(users::list_tokens, users::create_token))
        .routes(routes!(users::revoke_token))
        .routes(routes!(users::password_link))
        .routes(routes!(users::set_password))
        .routes(routes!(audit::list))
        // The contract holds no secret: the policy table makes it public, like the login.
        .routes(routes!(openapi::document))
        // Last, so that it covers every route above: who may call each is in `access`.
        .route_layer(middleware::from_fn_with_state(state.clone(), authorize))
}

#[cfg(test)]
mod tests {
    /// The `/api/v1` table in this file's source, and what comes before it.
    fn sources() -> (&'static str, &'static str) {
        let source = include_str!("routes.rs");
        let start = source.find("fn api_v1(").expect("the /api/v1 table");
        let end = start + source[start..].find("\n}\n").expect("its end");
        (&source[start..end], &source[..start])
    }

    /// A route in the route table is in the OpenAPI document because the `/api/v1` table
    /// takes routes only from annotated handlers (`routes!`); the other ways into an
    /// `OpenApiRouter` or an axum `Router` would serve a route the document does not list.
    #[test]
    fn every_api_route_comes_from_an_annotated_handler() {
        let (table, before) = sources();
        for bypass in [
            ".route(",
            ".route_service(",
            ".nest(",
            ".nest_service(",
            ".merge(",
            ".fallback",
        ] {
            assert!(
                !table.contains(bypass),
                "the /api/v1 table uses `{bypass}`: add routes as `.routes(routes!(handler))`"
            );
        }
        assert_eq!(
            table.matches(".routes(").count(),
            table.matches(".routes(routes!(").count(),
            "every `.routes(` of the /api/v1 table takes `routes!`"
        );
        assert!(table.matches(".routes(routes!(").count() >= 30, "{table}");
        // The rest of the table mounts `/api/v1` once, and serves nothing under it itself.
        assert_eq!(before.matches("\"/api/v1").count(), 1, "{before}");
        assert!(before.contains(".nest(\"/api/v1\", api_v1(&state))"));
    }
}
