//! What keeps Git Sync running: the webhook delivery log (filtered, with each delivery's
//! normalised payload) and the delegates with their tokens.

use askama::Template;
use axum::extract::{ConnectInfo, Extension, Form, Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use reposync_api::DelegateTokenRequest;
use reposync_core::error::CoreError;
use reposync_core::users::Caller;
use reposync_model::scope::Scope;
use serde::Deserialize;

use super::session::UiCaller;
use super::{Layout, act, page, url_encode};
use crate::access;
use crate::audit::ClientAddr;
use crate::error::AppError;
use crate::handlers::{delegates, webhooks};
use crate::state::AppState;

/// An RFC 3339 time to the second, as a table shows it.
fn local(at: &str) -> String {
    at.get(..19).unwrap_or(at).replace('T', " ")
}

struct DeliveryRow {
    id: String,
    at: String,
    at_local: String,
    connector: String,
    event: String,
    format: String,
    signature: String,
    outcome: String,
    class: &'static str,
    reason: String,
    matched: String,
    payload: String,
}

#[derive(Template)]
#[template(path = "webhooks.html")]
struct DeliveriesPage {
    layout: Layout,
    rows: Vec<DeliveryRow>,
    connectors: Vec<String>,
    selected: String,
    outcomes: Vec<&'static str>,
    outcome: String,
    unauthenticated: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct DeliveriesQuery {
    connector: String,
    outcome: String,
}

/// The outcomes a delivery may have, for the filter.
const OUTCOMES: &[&str] = &["queued", "duplicate", "ignored", "refused", "unmatched"];

/// `GET /ui/webhooks`.
pub async fn deliveries(
    State(state): State<AppState>,
    UiCaller(caller): UiCaller,
    Query(query): Query<DeliveriesQuery>,
) -> Response {
    let connector = (!query.connector.is_empty()).then_some(query.connector.as_str());
    let log = match webhooks::delivery_log(&state, connector, Some(500)).await {
        Ok(log) => log,
        Err(error) => return error.into_response(),
    };
    let connectors = match state.store.list_connectors().await {
        Ok(list) => list.iter().map(|c| c.spec.name.to_string()).collect(),
        Err(error) => return AppError::from(error).into_response(),
    };
    let rows = log
        .items
        .into_iter()
        .filter(|d| query.outcome.is_empty() || d.outcome == query.outcome)
        .map(|d| DeliveryRow {
            class: match d.outcome.as_str() {
                "queued" => "ok",
                "refused" => "failed",
                _ => "unknown",
            },
            id: d.delivery_id.clone().unwrap_or_else(|| d.id.clone()),
            at_local: local(&d.received_at),
            at: d.received_at,
            connector: d.connector,
            event: d.event,
            format: d.format.unwrap_or_default(),
            signature: d.signature,
            outcome: d.outcome,
            reason: d.reason.unwrap_or_default(),
            matched: d.matched.join(", "),
            payload: serde_json::to_string_pretty(&d.payload).unwrap_or_default(),
        })
        .collect();
    let unauthenticated = log
        .unauthenticated
        .iter()
        .map(|u| {
            format!(
                "{} deliveries to {} failed authentication{}",
                u.count,
                u.connector,
                u.last_reason
                    .as_deref()
                    .map(|r| format!(", the last because {r}"))
                    .unwrap_or_default()
            )
        })
        .collect();
    page(
        StatusCode::OK,
        &DeliveriesPage {
            layout: Layout::new("Webhook deliveries", Some(&caller)),
            rows,
            connectors,
            selected: query.connector,
            outcomes: OUTCOMES.to_vec(),
            outcome: query.outcome,
            unauthenticated,
        },
    )
}

struct DelegateRow {
    name: String,
    connected: bool,
    selectors: String,
    versions: String,
    host: String,
    token: String,
    last: String,
    tasks: String,
}

struct TokenRow {
    name: String,
    selectors: String,
    created: String,
    revoked: String,
}

#[derive(Template)]
#[template(path = "delegates.html")]
struct DelegatesPage {
    layout: Layout,
    delegates: Vec<DelegateRow>,
    tokens: Vec<TokenRow>,
    can_manage: bool,
    notice: Option<String>,
    error: Option<String>,
    created: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Shown {
    notice: Option<String>,
}

/// `GET /ui/delegates`.
pub async fn delegates(
    State(state): State<AppState>,
    UiCaller(caller): UiCaller,
    Query(shown): Query<Shown>,
) -> Response {
    render_delegates(&state, &caller, shown.notice, None, None).await
}

async fn render_delegates(
    state: &AppState,
    caller: &Caller,
    notice: Option<String>,
    error: Option<&CoreError>,
    created: Option<String>,
) -> Response {
    let views = match delegates::delegate_views(state).await {
        Ok(views) => views,
        Err(error) => return error.into_response(),
    };
    let tokens = match state.store.list_delegate_tokens().await {
        Ok(tokens) => tokens,
        Err(error) => return AppError::from(error).into_response(),
    };
    let rows = views
        .into_iter()
        .map(|d| DelegateRow {
            connected: d.connected,
            selectors: d.selectors.join(", "),
            versions: format!(
                "reposync {}, {}, {}",
                d.version, d.git_version, d.ssh_version
            ),
            host: d.hostname,
            token: d.token.unwrap_or_else(|| "(built in)".into()),
            last: d
                .last_heartbeat
                .as_deref()
                .map(local)
                .unwrap_or_else(|| "never".into()),
            tasks: format!("{} run, {} failed", d.tasks_run, d.tasks_failed),
            name: d.name,
        })
        .collect();
    let tokens = tokens
        .into_iter()
        .map(|t| TokenRow {
            name: t.name,
            selectors: t
                .selectors
                .map_or_else(|| "(unrestricted)".into(), |s| s.join(", ")),
            created: local(&reposync_api::timestamp(t.created_at)),
            revoked: t
                .revoked_at
                .map_or_else(|| "no".into(), |at| local(&reposync_api::timestamp(at))),
        })
        .collect();
    let can_manage = access::require(
        caller,
        &Method::POST,
        "/api/v1/delegate-tokens",
        &[Scope::Account],
    )
    .is_ok();
    page(
        if error.is_some() {
            StatusCode::UNPROCESSABLE_ENTITY
        } else {
            StatusCode::OK
        },
        &DelegatesPage {
            layout: Layout::new("Delegates", Some(caller)).with_errors(error.is_some()),
            delegates: rows,
            tokens,
            can_manage,
            notice,
            error: error.map(ToString::to_string),
            created,
        },
    )
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct TokenForm {
    name: String,
    selectors: String,
}

/// An API error as a use case's, for the page to show.
fn core(error: AppError) -> CoreError {
    let kind = if error.status == StatusCode::NOT_FOUND {
        reposync_core::error::ErrorKind::NotFound
    } else if error.status == StatusCode::CONFLICT {
        reposync_core::error::ErrorKind::Conflict
    } else {
        reposync_core::error::ErrorKind::Invalid
    };
    CoreError {
        field: error.field,
        ..CoreError::new(kind, error.code, error.message)
    }
}

/// `POST /ui/delegates/tokens`: a delegate token, shown this once.
pub async fn create_token(
    State(state): State<AppState>,
    UiCaller(caller): UiCaller,
    connection: Option<Extension<ConnectInfo<ClientAddr>>>,
    Form(form): Form<TokenForm>,
) -> Response {
    let client = connection.map(|c| c.0.0.0.ip());
    let selectors: Vec<String> = form
        .selectors
        .split([',', ' '])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let request = DelegateTokenRequest {
        name: form.name.clone(),
        selectors: (!selectors.is_empty()).then_some(selectors),
    };
    let work = async {
        delegates::new_delegate_token(&state, &request)
            .await
            .map_err(core)
    };
    match act(
        &state,
        &caller,
        client,
        (Method::POST, "/api/v1/delegate-tokens"),
        &form.name,
        work,
    )
    .await
    {
        Err(response) => response,
        Ok(Err(error)) => render_delegates(&state, &caller, None, Some(&error), None).await,
        Ok(Ok(view)) => {
            let value = view.token.map(|t| t.expose().to_owned());
            render_delegates(
                &state,
                &caller,
                Some(format!("Created {}", view.name)),
                None,
                value,
            )
            .await
        }
    }
}

/// `POST /ui/delegates/tokens/{name}/revoke`.
pub async fn revoke_token(
    State(state): State<AppState>,
    UiCaller(caller): UiCaller,
    connection: Option<Extension<ConnectInfo<ClientAddr>>>,
    Path(name): Path<String>,
) -> Response {
    let client = connection.map(|c| c.0.0.0.ip());
    let work = async {
        delegates::revoke_delegate_token(&state, &name)
            .await
            .map_err(core)
    };
    match act(
        &state,
        &caller,
        client,
        (Method::DELETE, "/api/v1/delegate-tokens/{name}"),
        &name,
        work,
    )
    .await
    {
        Err(response) => response,
        Ok(Err(error)) => render_delegates(&state, &caller, None, Some(&error), None).await,
        Ok(Ok(_)) => Redirect::to(&format!(
            "/ui/delegates?notice={}",
            url_encode(&format!("Revoked {name}"))
        ))
        .into_response(),
    }
}
