//! Git Sync: each synced scope with its link and its state in words, "Sync now", and the Git
//! Sync errors grouped as the original groups them, each with its full text and Discard.

use askama::Template;
use axum::extract::{ConnectInfo, Extension, Form, Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use reposync_api::SyncErrorView;
use reposync_core::{links, resolve};
use reposync_model::SyncErrorId;
use reposync_model::scope::Scope;
use reposync_store::{CONNECTION_FAILED, SyncRow};
use serde::Deserialize;

use super::session::UiCaller;
use super::{Layout, forbidden_page, page};
use crate::access::{self, Facts};
use crate::audit::ClientAddr;
use crate::error::AppError;
use crate::state::AppState;

/// A link as the page shows it.
struct LinkRow {
    scope: String,
    app: String,
    connector: String,
    url: String,
    branch: String,
    state: &'static str,
    class: &'static str,
    detail: String,
    base: String,
    since: String,
    since_local: String,
    can_refresh: bool,
}

#[derive(Template)]
#[template(path = "git_sync.html")]
struct SyncPage {
    layout: Layout,
    links: Vec<LinkRow>,
    open_errors: usize,
    notice: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Notice {
    notice: Option<String>,
}

/// `GET /ui/git-sync`.
pub async fn status(
    State(state): State<AppState>,
    UiCaller(caller): UiCaller,
    Query(notice): Query<Notice>,
) -> Response {
    let (views, errors) = match (
        links::status(&state.store).await,
        resolve::errors(&state.store, false, None, None).await,
    ) {
        (Ok(views), Ok(errors)) => (views, errors),
        (Err(error), _) | (_, Err(error)) => return AppError::from(error).into_response(),
    };
    let links = views
        .into_iter()
        .map(|view| {
            let scope = Scope::of_app(view.app.as_deref());
            let (state_word, class, detail) = match (view.errors, view.waiting) {
                (0, 0) => ("In sync", "ok", String::new()),
                (0, waiting) => ("Waiting", "running", format!("{waiting} change(s) to push")),
                (errors, _) => ("Held", "failed", format!("{errors} error(s) need a person")),
            };
            LinkRow {
                can_refresh: may(&caller, "/api/v1/sync/refresh", &scope),
                scope: view.scope,
                app: view.app.unwrap_or_default(),
                connector: view.connector,
                url: view.url,
                branch: view.branch,
                state: state_word,
                class,
                detail,
                base: view
                    .base_commit
                    .map(|c| c.to_string().chars().take(12).collect())
                    .unwrap_or_else(|| "none yet".into()),
                since_local: local(&view.created_at),
                since: view.created_at,
            }
        })
        .collect();
    page(
        StatusCode::OK,
        &SyncPage {
            layout: Layout::new("Git Sync", Some(&caller)),
            links,
            open_errors: errors.len(),
            notice: notice.notice,
        },
    )
}

fn may(caller: &reposync_core::users::Caller, route: &str, scope: &Scope) -> bool {
    access::require(caller, &Method::POST, route, std::slice::from_ref(scope)).is_ok()
}

/// An RFC 3339 time to the second, as a table shows it.
fn local(at: &str) -> String {
    at.get(..19).unwrap_or(at).replace('T', " ")
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RefreshForm {
    app: String,
}

/// `POST /ui/git-sync/refresh`: "Sync now", reading the scope's branch at once.
pub async fn refresh(
    State(state): State<AppState>,
    UiCaller(caller): UiCaller,
    connection: Option<Extension<ConnectInfo<ClientAddr>>>,
    Form(form): Form<RefreshForm>,
) -> Response {
    let client = connection.map(|c| c.0.0.0.ip());
    let app = (!form.app.is_empty()).then_some(form.app.as_str());
    let facts = Facts {
        scopes: vec![Scope::of_app(app)],
        target: app.map(str::to_owned),
        change: None,
    };
    let Some(policy) = access::policy(&Method::POST, "/api/v1/sync/refresh") else {
        return AppError::not_found("no such action").into_response();
    };
    if let Err(error) = access::require(&caller, &Method::POST, policy.route, &facts.scopes) {
        crate::audit::record_request(
            &state,
            &caller,
            client,
            policy,
            &facts,
            error.status,
            Some(&error.message),
        )
        .await;
        return forbidden_page(&caller, error);
    }
    let outcome = links::refresh(&state.store, app, false).await;
    let status = match &outcome {
        Ok(_) => StatusCode::ACCEPTED,
        Err(error) => AppError::from(error.clone()).status,
    };
    crate::audit::record_request(&state, &caller, client, policy, &facts, status, None).await;
    match outcome {
        Ok(_) => Redirect::to("/ui/git-sync?notice=Reading+the+branch+now").into_response(),
        Err(error) => AppError::from(error).into_response(),
    }
}

/// An error as the page shows it.
struct ErrorRow {
    id: String,
    scope: String,
    path: String,
    code: String,
    message: String,
    commit: String,
    at: String,
    at_local: String,
    ours: Option<String>,
    theirs: Option<String>,
    can_discard: bool,
}

/// Errors of one kind.
struct Group {
    id: &'static str,
    title: &'static str,
    errors: Vec<ErrorRow>,
}

#[derive(Template)]
#[template(path = "git_sync_errors.html")]
struct ErrorsPage {
    layout: Layout,
    groups: Vec<Group>,
    notice: Option<String>,
}

/// `GET /ui/git-sync/errors`: the open errors, grouped: Git → reposync, reposync → Git, and
/// connectivity.
pub async fn errors(
    State(state): State<AppState>,
    UiCaller(caller): UiCaller,
    Query(notice): Query<Notice>,
) -> Response {
    let errors = match resolve::errors(&state.store, false, None, None).await {
        Ok(errors) => errors,
        Err(error) => return AppError::from(error).into_response(),
    };
    let mut groups = vec![
        Group {
            id: "inbound",
            title: "Git → reposync",
            errors: Vec::new(),
        },
        Group {
            id: "outbound",
            title: "reposync → Git",
            errors: Vec::new(),
        },
        Group {
            id: "connectivity",
            title: "Connectivity",
            errors: Vec::new(),
        },
    ];
    for error in errors {
        let group = if error.code == CONNECTION_FAILED {
            2
        } else if error.commit_id.is_some() {
            0
        } else {
            1
        };
        groups[group].errors.push(row(&caller, error));
    }
    page(
        StatusCode::OK,
        &ErrorsPage {
            layout: Layout::new("Git Sync errors", Some(&caller)),
            groups,
            notice: notice.notice,
        },
    )
}

fn row(caller: &reposync_core::users::Caller, error: SyncErrorView) -> ErrorRow {
    // Discard is an editor's in the error's scope: the button shows only where it would work.
    let scope = match error.path.as_deref() {
        Some(path) => Scope::of_path(path),
        None => match error.scope.strip_prefix("app:") {
            Some(app) => Scope::App(app.trim_end_matches(" (disabled)").to_owned()),
            None => Scope::Account,
        },
    };
    ErrorRow {
        can_discard: may(caller, "/api/v1/sync/errors/{id}/discard", &scope),
        id: error.id.to_string(),
        scope: error.scope,
        path: error.path.unwrap_or_else(|| "(the branch)".into()),
        code: error.code,
        message: error.message,
        commit: error
            .commit_id
            .map(|c| c.to_string().chars().take(12).collect())
            .unwrap_or_default(),
        at_local: local(&error.created_at),
        at: error.created_at,
        ours: error.ours,
        theirs: error.theirs,
    }
}

/// `POST /ui/git-sync/errors/{id}/discard`.
pub async fn discard(
    State(state): State<AppState>,
    UiCaller(caller): UiCaller,
    connection: Option<Extension<ConnectInfo<ClientAddr>>>,
    Path(id): Path<SyncErrorId>,
) -> Response {
    let client = connection.map(|c| c.0.0.0.ip());
    let scope = match state.store.scope_of_sync_row(SyncRow::Error(&id)).await {
        Ok(scope) => scope.unwrap_or(Scope::Account),
        Err(error) => return AppError::from(error).into_response(),
    };
    let facts = Facts {
        scopes: vec![scope],
        target: Some(id.to_string()),
        change: None,
    };
    let Some(policy) = access::policy(&Method::POST, "/api/v1/sync/errors/{id}/discard") else {
        return AppError::not_found("no such action").into_response();
    };
    if let Err(error) = access::require(&caller, &Method::POST, policy.route, &facts.scopes) {
        crate::audit::record_request(
            &state,
            &caller,
            client,
            policy,
            &facts,
            error.status,
            Some(&error.message),
        )
        .await;
        return forbidden_page(&caller, error);
    }
    let outcome = resolve::discard(&state.store, &id).await;
    let status = match &outcome {
        Ok(()) => StatusCode::OK,
        Err(error) => AppError::from(error.clone()).status,
    };
    crate::audit::record_request(&state, &caller, client, policy, &facts, status, None).await;
    match outcome {
        Ok(()) => Redirect::to("/ui/git-sync/errors?notice=Discarded").into_response(),
        Err(error) => AppError::from(error).into_response(),
    }
}
