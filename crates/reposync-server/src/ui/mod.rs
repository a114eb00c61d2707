//! The web UI: pages rendered on the server from templates checked at compile time, over the
//! same use cases (`reposync-core`) and the same policy table (`access`) as the API.
//!
//! Every form works without JavaScript, by POST and redirect; a vendored htmx adds partial
//! updates where a page waits (a Test running). Responses carry a strict Content Security
//! Policy, and state-changing requests from another site are refused (`security`). Who is
//! using it comes from a session cookie (`session`); what they may do, from `access::require`,
//! which both refuses a request and leaves out the controls a caller may not use.

mod assets;
mod login;
mod operations;
mod providers;
mod secrets;
mod security;
mod session;
mod sync;
mod tree;
mod users;

use askama::Template;
use axum::Router;
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use reposync_core::users::Caller;

use crate::state::AppState;

/// The UI's routes, under `/ui`, and `/` sending browsers there.
pub fn router() -> Router<AppState> {
    let pages = Router::new()
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/", get(|| async { Redirect::to("/ui/setup") }))
        .route("/ui/login", get(login::form).post(login::submit))
        .route("/ui/logout", post(login::logout))
        .route("/ui/logout/everywhere", post(login::logout_everywhere))
        .route("/ui/setup", get(providers::setup))
        .route(
            "/ui/setup/connectors/source-repo-providers",
            get(providers::list),
        )
        .route(
            "/ui/setup/connectors/source-repo-providers/new",
            get(providers::new_form).post(providers::submit_new),
        )
        .route(
            "/ui/setup/connectors/source-repo-providers/{name}/edit",
            get(providers::edit_form).post(providers::submit_edit),
        )
        .route(
            "/ui/setup/connectors/source-repo-providers/{name}/delete",
            get(providers::delete_form).post(providers::delete),
        )
        .route("/ui/tasks/{id}/test", get(providers::test_status))
        .route("/ui/setup/secrets", get(secrets::list))
        .route("/ui/setup/secrets/text", post(secrets::create_text))
        .route("/ui/setup/secrets/ssh", post(secrets::create_ssh))
        .route("/ui/setup/secrets/{name}/delete", post(secrets::delete))
        .route("/ui/users", get(users::list).post(users::create))
        .route("/ui/users/{name}/role", post(users::set_role))
        .route("/ui/users/{name}/password-link", post(users::password_link))
        .route("/ui/users/{name}/{what}", post(users::set_enabled))
        .route("/ui/tokens", get(users::tokens).post(users::create_token))
        .route("/ui/tokens/{name}/revoke", post(users::revoke_token))
        .route("/ui/webhooks", get(operations::deliveries))
        .route("/ui/delegates", get(operations::delegates))
        .route("/ui/delegates/tokens", post(operations::create_token))
        .route(
            "/ui/delegates/tokens/{name}/revoke",
            post(operations::revoke_token),
        )
        .route("/ui/git-sync", get(sync::status))
        .route("/ui/git-sync/refresh", post(sync::refresh))
        .route("/ui/git-sync/links", get(sync::links_fragment))
        .route("/ui/git-sync/enable", post(sync::enable))
        .route("/ui/git-sync/tasks/{id}", get(sync::enable_status))
        .route(
            "/ui/git-sync/disable",
            get(sync::disable_form).post(sync::disable),
        )
        .route("/ui/git-sync/activity", get(sync::activity))
        .route("/ui/git-sync/errors", get(sync::errors))
        .route("/ui/git-sync/errors/{id}/discard", post(sync::discard))
        .route("/ui/git-sync/changesets/{id}/retry", post(sync::retry))
        .route("/ui/setup/config-as-code", get(tree::folder))
        .route(
            "/ui/setup/config-as-code/file",
            get(tree::file).post(tree::save),
        )
        .route("/ui/setup/config-as-code/new", post(tree::create))
        .route("/ui/setup/config-as-code/rename", post(tree::rename))
        .route("/ui/setup/config-as-code/delete", post(tree::delete))
        .route("/ui/setup/config-as-code/download", get(tree::download))
        .route("/ui/static/{file}", get(assets::serve))
        .layer(middleware::from_fn(security::refuse_cross_site))
        .layer(middleware::from_fn(security::headers));
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/") }))
        .merge(pages)
}

/// What every page's frame shows: the title, who is logged in, and the files it links.
#[derive(Debug, Clone)]
pub struct Layout {
    pub title: String,
    pub has_errors: bool,
    pub user: Option<String>,
    pub role: String,
    pub pico_css: String,
    pub app_css: String,
    pub htmx_js: String,
    pub app_js: String,
}

impl Layout {
    /// The frame of a page, for `caller` when someone is logged in.
    pub fn new(title: &str, caller: Option<&Caller>) -> Layout {
        Layout {
            title: title.to_owned(),
            has_errors: false,
            user: caller.map(|c| c.user.to_string()),
            role: caller
                .map(|c| c.rights.role.to_string())
                .unwrap_or_default(),
            pico_css: assets::url("pico.min.css"),
            app_css: assets::url("app.css"),
            htmx_js: assets::url("htmx.min.js"),
            app_js: assets::url("app.js"),
        }
    }

    /// The same, titled as a page with errors (`Error: …`, so that the tab and a screen
    /// reader say so first).
    pub fn with_errors(mut self, has_errors: bool) -> Layout {
        self.has_errors = has_errors;
        self
    }
}

/// A rendered page with its status; a template that fails to render is a 500 that says so in
/// the log, never a half page.
pub fn page(status: StatusCode, template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(error) => {
            tracing::error!(%error, "cannot render a page");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot render this page; see the server log",
            )
                .into_response()
        }
    }
}

/// Whether the public URL is https, so that cookies are marked `Secure`.
fn secure(state: &AppState) -> bool {
    state.config.public_base_url().starts_with("https://")
}

#[derive(Template)]
#[template(path = "forbidden.html")]
struct ForbiddenPage {
    layout: Layout,
    message: String,
}

/// The 403 page: the refusal in the API's words.
fn forbidden_page(caller: &Caller, error: crate::error::AppError) -> Response {
    page(
        error.status,
        &ForbiddenPage {
            layout: Layout::new("Not allowed", Some(caller)),
            message: error.message,
        },
    )
}

/// Percent-encodes text for a URL's query, keeping `/` readable.
fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// Checks that the caller may do what the API route `method route` does, on `target` in the
/// account, records the attempt in the audit trail, and runs `work`: [`act_in`] for the
/// account's actions.
async fn act<T>(
    state: &AppState,
    caller: &Caller,
    client: Option<std::net::IpAddr>,
    (method, route): (axum::http::Method, &str),
    target: &str,
    work: impl std::future::Future<Output = Result<T, reposync_core::error::CoreError>>,
) -> Result<Result<T, reposync_core::error::CoreError>, Response> {
    let facts = crate::access::Facts {
        scopes: vec![reposync_model::scope::Scope::Account],
        target: Some(target.to_owned()),
        change: None,
    };
    let success = if method == axum::http::Method::POST {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    act_in(
        state,
        caller,
        client,
        (method, route),
        &facts,
        success,
        work,
    )
    .await
}

/// The one way a UI action goes through the policy table: checks that the caller may do what
/// the API route `method route` does in the scopes `facts` names, records the attempt (with
/// `success`, or the refusal's status) in the audit trail, and runs `work`. A refusal comes
/// back as the 403 page.
async fn act_in<T>(
    state: &AppState,
    caller: &Caller,
    client: Option<std::net::IpAddr>,
    (method, route): (axum::http::Method, &str),
    facts: &crate::access::Facts,
    success: StatusCode,
    work: impl std::future::Future<Output = Result<T, reposync_core::error::CoreError>>,
) -> Result<Result<T, reposync_core::error::CoreError>, Response> {
    let Some(policy) = crate::access::policy(&method, route) else {
        return Err(crate::error::AppError::not_found("no such action").into_response());
    };
    if let Err(error) = crate::access::require(caller, &method, route, &facts.scopes) {
        crate::audit::record_request(
            state,
            caller,
            client,
            policy,
            facts,
            error.status,
            Some(&error.message),
        )
        .await;
        return Err(forbidden_page(caller, error));
    }
    let outcome = work.await;
    let status = match &outcome {
        Ok(_) => success,
        Err(error) => crate::error::AppError::from(error.clone()).status,
    };
    crate::audit::record_request(state, caller, client, policy, facts, status, None).await;
    Ok(outcome)
}

/// A textarea's text with the line breaks the file means: browsers send every line break of a
/// `<textarea>` as CRLF (as HTML's form submission says to), which would otherwise reach a
/// YAML file in Git, or a certificate, as a change of every line.
fn unix_lines(text: &str) -> String {
    text.replace("\r\n", "\n")
}
