//! Git Sync: each synced scope with its link and its state in words, "Sync now", and the Git
//! Sync errors grouped as the original groups them, each with its full text and Discard.

use askama::Template;
use axum::extract::{ConnectInfo, Extension, Form, Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use reposync_api::SyncErrorView;
use reposync_core::error::CoreError;
use reposync_core::users::Caller;
use reposync_core::{links, resolve};
use reposync_model::SyncErrorId;
use reposync_model::scope::Scope;
use reposync_store::{CONNECTION_FAILED, SyncRow};
use serde::Deserialize;

use super::session::UiCaller;
use super::{Layout, act_in, page};
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
    read: String,
    webhook: Option<(String, String)>,
    polled: Option<(String, String)>,
    can_change: bool,
}

#[derive(Template)]
#[template(path = "git_sync.html")]
struct SyncPage {
    layout: Layout,
    links: Vec<LinkRow>,
    open_errors: usize,
    notice: Option<String>,
    can_enable: bool,
    unlinked: Vec<String>,
    connectors: Vec<String>,
}

#[derive(Template)]
#[template(path = "git_sync_links.html")]
struct LinksFragment {
    links: Vec<LinkRow>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Notice {
    notice: Option<String>,
}

/// A time for a table: the exact one for `datetime` and hover, and one to the second to read.
fn timed(at: Option<String>) -> Option<(String, String)> {
    at.map(|at| {
        let shown = local(&at);
        (at, shown)
    })
}

/// Every live link in words: in sync, pushing, waiting, held, in conflict, or broken.
async fn link_rows(state: &AppState, caller: &Caller) -> Result<Vec<LinkRow>, CoreError> {
    let short = |commit: Option<String>| {
        commit.map_or_else(|| "none yet".to_owned(), |c| c.chars().take(12).collect())
    };
    let now = state.store.clock().now_millis();
    Ok(links::status(&state.store)
        .await?
        .into_iter()
        .map(|view| {
            let scope = Scope::of_app(view.app.as_deref());
            let (state_word, class, detail) = if let Some(why) = &view.broken {
                ("Broken", "failed", why.clone())
            } else if view.conflicts > 0 {
                (
                    "Conflict",
                    "failed",
                    "Git and reposync changed the same file; see the errors".to_owned(),
                )
            } else if view.errors > 0 {
                (
                    "Held",
                    "failed",
                    format!("{} error(s) need a person", view.errors),
                )
            } else if view.pushing > 0 {
                (
                    "Pushing",
                    "running",
                    format!(
                        "{} change(s) on their way{}",
                        view.pushing,
                        waited(view.waiting_since.as_deref(), now)
                    ),
                )
            } else if view.waiting > 0 {
                (
                    "Waiting",
                    "running",
                    format!(
                        "{} change(s) to push{}",
                        view.waiting,
                        waited(view.waiting_since.as_deref(), now)
                    ),
                )
            } else {
                ("In sync", "ok", String::new())
            };
            LinkRow {
                can_change: may(caller, "/api/v1/sync/refresh", &scope),
                scope: view.scope,
                app: view.app.unwrap_or_default(),
                connector: view.connector,
                url: view.url,
                branch: view.branch,
                state: state_word,
                class,
                detail,
                base: short(view.base_commit.map(|c| c.to_string())),
                read: short(view.read_commit),
                webhook: timed(view.last_webhook_at),
                polled: timed(view.polled_at),
            }
        })
        .collect())
}

/// `GET /ui/git-sync`.
pub async fn status(
    State(state): State<AppState>,
    UiCaller(caller): UiCaller,
    Query(notice): Query<Notice>,
) -> Response {
    let (rows, errors, apps, connectors) = match (
        link_rows(&state, &caller).await,
        resolve::errors(&state.store, false, None, None).await,
        reposync_core::apps::names(&state.store).await,
        state.store.list_connectors().await,
    ) {
        (Ok(rows), Ok(errors), Ok(apps), Ok(connectors)) => (rows, errors, apps, connectors),
        (Err(error), ..) | (_, Err(error), ..) | (_, _, Err(error), _) => {
            return AppError::from(error).into_response();
        }
        (.., Err(error)) => return AppError::from(error).into_response(),
    };
    let linked: Vec<&str> = rows.iter().map(|r| r.app.as_str()).collect();
    let unlinked = apps
        .into_iter()
        .filter(|name| !linked.contains(&name.as_str()))
        .collect();
    page(
        StatusCode::OK,
        &SyncPage {
            layout: Layout::new("Git Sync", Some(&caller)),
            can_enable: caller.rights.role >= reposync_model::Role::Editor,
            links: rows,
            open_errors: errors.len(),
            notice: notice.notice,
            unlinked,
            connectors: connectors.iter().map(|c| c.spec.name.to_string()).collect(),
        },
    )
}

/// `GET /ui/git-sync/links`: the links table alone, which the page refreshes by itself.
pub async fn links_fragment(State(state): State<AppState>, UiCaller(caller): UiCaller) -> Response {
    match link_rows(&state, &caller).await {
        Ok(links) => page(StatusCode::OK, &LinksFragment { links }),
        Err(error) => AppError::from(error).into_response(),
    }
}

/// ", the oldest for 42 s": how long a change has waited to go out.
fn waited(since: Option<&str>, now: i64) -> String {
    let Some(since) = since.and_then(reposync_api::parse_timestamp) else {
        return String::new();
    };
    let seconds = (now - since).max(0) / 1000;
    format!(", the oldest for {seconds} s")
}

fn may(caller: &Caller, route: &str, scope: &Scope) -> bool {
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
    let action = (Method::POST, "/api/v1/sync/refresh");
    let work = links::refresh(&state.store, app, false);
    let outcome = match act_in(
        &state,
        &caller,
        client,
        action,
        &facts,
        StatusCode::ACCEPTED,
        work,
    )
    .await
    {
        Ok(outcome) => outcome,
        Err(refused) => return refused,
    };
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

/// A changeset that failed or conflicted, which Retry puts back in the outbox.
struct RetryRow {
    id: String,
    scope: String,
    status: String,
    error: String,
    files: String,
    can_retry: bool,
}

#[derive(Template)]
#[template(path = "git_sync_errors.html")]
struct ErrorsPage {
    layout: Layout,
    groups: Vec<Group>,
    /// The Git → reposync errors by commit: the commit and how many of its files failed.
    commits: Vec<(String, usize)>,
    retries: Vec<RetryRow>,
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
    let mut commits: Vec<(String, usize)> = Vec::new();
    for error in &groups[0].errors {
        match commits
            .iter_mut()
            .find(|(commit, _)| *commit == error.commit)
        {
            Some((_, count)) => *count += 1,
            None => commits.push((error.commit.clone(), 1)),
        }
    }
    let changesets = match reposync_core::activity::activity(&state.store, None, Some(500)).await {
        Ok(found) => found.changesets,
        Err(error) => return AppError::from(error).into_response(),
    };
    let retries = changesets
        .into_iter()
        .filter(|c| matches!(c.status.as_str(), "failed" | "conflict"))
        .map(|c| {
            let scope = match c.scope.strip_prefix("app:") {
                Some(app) => Scope::App(app.trim_end_matches(" (disabled)").to_owned()),
                None => Scope::Account,
            };
            RetryRow {
                can_retry: may(&caller, "/api/v1/sync/changesets/{id}/retry", &scope),
                id: c.id.to_string(),
                scope: c.scope,
                status: c.status,
                error: c.error.unwrap_or_default(),
                files: c
                    .files
                    .iter()
                    .map(|f| format!("{}: {}", f.op, f.path))
                    .collect::<Vec<_>>()
                    .join(", "),
            }
        })
        .collect();
    page(
        StatusCode::OK,
        &ErrorsPage {
            layout: Layout::new("Git Sync errors", Some(&caller)),
            groups,
            commits,
            retries,
            notice: notice.notice,
        },
    )
}

fn row(caller: &Caller, error: SyncErrorView) -> ErrorRow {
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

/// What acting on a sync error or changeset touches: the scope it belongs to (the account's,
/// the strictest, when the id names nothing), as the API's access layer judges it.
async fn row_facts(state: &AppState, row: SyncRow<'_>, id: &str) -> Result<Facts, Response> {
    let scope = match state.store.scope_of_sync_row(row).await {
        Ok(scope) => scope.unwrap_or(Scope::Account),
        Err(error) => return Err(AppError::from(error).into_response()),
    };
    Ok(Facts {
        scopes: vec![scope],
        target: Some(id.to_owned()),
        change: None,
    })
}

/// `POST /ui/git-sync/errors/{id}/discard`.
pub async fn discard(
    State(state): State<AppState>,
    UiCaller(caller): UiCaller,
    connection: Option<Extension<ConnectInfo<ClientAddr>>>,
    Path(id): Path<SyncErrorId>,
) -> Response {
    let client = connection.map(|c| c.0.0.0.ip());
    let facts = match row_facts(&state, SyncRow::Error(&id), id.as_str()).await {
        Ok(facts) => facts,
        Err(response) => return response,
    };
    let action = (Method::POST, "/api/v1/sync/errors/{id}/discard");
    let work = resolve::discard(&state.store, &id);
    let outcome = match act_in(
        &state,
        &caller,
        client,
        action,
        &facts,
        StatusCode::OK,
        work,
    )
    .await
    {
        Ok(outcome) => outcome,
        Err(refused) => return refused,
    };
    match outcome {
        Ok(()) => Redirect::to("/ui/git-sync/errors?notice=Discarded").into_response(),
        Err(error) => AppError::from(error).into_response(),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct EnableForm {
    app: String,
    connector: String,
    branch: String,
    initial: String,
    confirm_deletes: Option<String>,
    create_branch: Option<String>,
}

/// `POST /ui/git-sync/enable`: links a scope to a branch, as `sync enable` does; the page then
/// follows the task that reads the branch.
pub async fn enable(
    State(state): State<AppState>,
    UiCaller(caller): UiCaller,
    connection: Option<Extension<ConnectInfo<ClientAddr>>>,
    Form(form): Form<EnableForm>,
) -> Response {
    let client = connection.map(|c| c.0.0.0.ip());
    let text = |v: &str| (!v.trim().is_empty()).then(|| v.trim().to_owned());
    let request = reposync_api::SyncEnableRequest {
        app: text(&form.app),
        all: false,
        connector: form.connector.clone(),
        branch: text(&form.branch),
        repo: None,
        initial: text(&form.initial),
        confirm_deletes: form.confirm_deletes.is_some(),
        create_branch: form.create_branch.is_some(),
    };
    let facts = Facts {
        scopes: vec![Scope::of_app(request.app.as_deref())],
        target: request.app.clone(),
        change: None,
    };
    let person = caller.person();
    let action = (Method::POST, "/api/v1/sync/enable");
    let work = links::request_enable(&state.store, &request, Some(&person));
    let outcome = match act_in(
        &state,
        &caller,
        client,
        action,
        &facts,
        StatusCode::ACCEPTED,
        work,
    )
    .await
    {
        Ok(outcome) => outcome,
        Err(refused) => return refused,
    };
    match outcome {
        Ok(task) => {
            let id = task.id.to_string();
            crate::local_tasks::spawn_enable(&state, task);
            Redirect::to(&format!("/ui/git-sync/tasks/{id}")).into_response()
        }
        Err(error) => Redirect::to(&format!(
            "/ui/git-sync?notice={}",
            super::url_encode(&format!("Not enabled: {error}"))
        ))
        .into_response(),
    }
}

/// Where an enable task stands, in words.
pub struct EnableState {
    id: String,
    running: bool,
    ok: bool,
    headline: String,
    lines: Vec<String>,
    waited: String,
}

#[derive(Template)]
#[template(path = "enable_status.html")]
struct EnableFragment {
    task: EnableState,
}

#[derive(Template)]
#[template(path = "git_sync_task.html")]
struct EnablePage {
    layout: Layout,
    task: EnableState,
}

/// `GET /ui/git-sync/tasks/{id}`: an enable task, running (for how long) or done, with the
/// summary of differences it found; a fragment for htmx, a page otherwise.
pub async fn enable_status(
    State(state): State<AppState>,
    UiCaller(caller): UiCaller,
    Path(id): Path<reposync_model::TaskId>,
    headers: axum::http::HeaderMap,
) -> Response {
    let task = match state.tasks.wait_final(&id, std::time::Duration::ZERO).await {
        Ok(task) => crate::views::task(&task),
        Err(error) => return AppError::from(error).into_response(),
    };
    let running = matches!(task.status.as_str(), "queued" | "running");
    let result = task.result.clone().unwrap_or_default();
    let ok = task.status == "succeeded";
    let mut lines = Vec::new();
    let headline = if running {
        String::new()
    } else if ok {
        match serde_json::from_value::<reposync_api::SyncEnabled>(result.clone()) {
            Ok(enabled) => {
                let d = &enabled.differences;
                lines.push(format!(
                    "The branch and reposync differed in {} file(s): {} only in reposync, {} only in Git, {} different.",
                    d.only_in_reposync.len() + d.only_in_git.len() + d.different.len(),
                    d.only_in_reposync.len(),
                    d.only_in_git.len(),
                    d.different.len()
                ));
                if enabled.pushing > 0 {
                    lines.push(format!(
                        "{} file(s) go out in the first commit.",
                        enabled.pushing
                    ));
                }
                format!(
                    "{} is linked to {} ({}), initial mode {}.",
                    enabled.link.scope, enabled.link.url, enabled.link.branch, enabled.initial
                )
            }
            Err(_) => "Linked.".to_owned(),
        }
    } else {
        let text = |key: &str| {
            result
                .get(key)
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        lines.push(text("message"));
        format!("The scope was not linked ({}).", text("code"))
    };
    let waited = reposync_store::Store::clock(&state.store).now_millis()
        - reposync_api::parse_timestamp(&task.created_at).unwrap_or_default();
    let view = EnableState {
        id: task.id.to_string(),
        running,
        ok,
        headline,
        lines,
        waited: format!("{} s", waited.max(0) / 1000),
    };
    if headers.contains_key("hx-request") {
        page(StatusCode::OK, &EnableFragment { task: view })
    } else {
        page(
            StatusCode::OK,
            &EnablePage {
                layout: Layout::new("Enabling Git Sync", Some(&caller)),
                task: view,
            },
        )
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ScopeQuery {
    app: String,
}

#[derive(Template)]
#[template(path = "git_sync_disable.html")]
struct DisablePage {
    layout: Layout,
    scope: String,
    app: String,
    url: String,
    branch: String,
    waiting: usize,
}

/// `GET /ui/git-sync/disable?app=A`: what disabling would do, to confirm.
pub async fn disable_form(
    State(state): State<AppState>,
    UiCaller(caller): UiCaller,
    Query(query): Query<ScopeQuery>,
) -> Response {
    let app = (!query.app.is_empty()).then_some(query.app.as_str());
    let views = match links::status(&state.store).await {
        Ok(views) => views,
        Err(error) => return AppError::from(error).into_response(),
    };
    let Some(link) = views.into_iter().find(|v| v.app.as_deref() == app) else {
        return AppError::not_found("that scope is not synced").into_response();
    };
    page(
        StatusCode::OK,
        &DisablePage {
            layout: Layout::new("Disable Git Sync", Some(&caller)),
            scope: link.scope,
            app: query.app.clone(),
            url: link.url,
            branch: link.branch,
            waiting: link.waiting,
        },
    )
}

/// `POST /ui/git-sync/disable`.
pub async fn disable(
    State(state): State<AppState>,
    UiCaller(caller): UiCaller,
    connection: Option<Extension<ConnectInfo<ClientAddr>>>,
    Form(form): Form<ScopeQuery>,
) -> Response {
    let client = connection.map(|c| c.0.0.0.ip());
    let app = (!form.app.is_empty()).then_some(form.app.clone());
    let facts = Facts {
        scopes: vec![Scope::of_app(app.as_deref())],
        target: app.clone(),
        change: None,
    };
    let person = caller.person();
    let action = (Method::POST, "/api/v1/sync/disable");
    let work = links::disable(&state.store, app.as_deref(), Some(&person));
    let outcome = match act_in(
        &state,
        &caller,
        client,
        action,
        &facts,
        StatusCode::OK,
        work,
    )
    .await
    {
        Ok(outcome) => outcome,
        Err(refused) => return refused,
    };
    match outcome {
        Ok(scope) => Redirect::to(&format!(
            "/ui/git-sync?notice={}",
            super::url_encode(&format!("Git Sync of {scope} disabled"))
        ))
        .into_response(),
        Err(error) => AppError::from(error).into_response(),
    }
}

/// A record of the activity, as the page shows it.
struct Record {
    status: String,
    class: &'static str,
    scope: String,
    subject: String,
    author: String,
    at: String,
    at_local: String,
    commit: String,
    link: Option<String>,
    error: String,
    files: Vec<String>,
    errors: u64,
}

/// A read of a branch, as the page shows it.
struct ReadRow {
    at: String,
    at_local: String,
    branch: String,
    kind: String,
    method: String,
    /// `fell back from X: why`, or empty.
    fallback: String,
    reason: String,
    requests: u64,
    bytes: u64,
    duration_ms: u64,
    delegate: String,
}

#[derive(Template)]
#[template(path = "git_sync_activity.html")]
struct ActivityPage {
    layout: Layout,
    apps: Vec<String>,
    selected: String,
    direction: String,
    out: Vec<Record>,
    inbound: Vec<Record>,
    reads: Vec<ReadRow>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ActivityQuery {
    app: String,
    direction: String,
}

/// A commit's page on Bitbucket, when the connector's provider is known and its clone URL says
/// where the pages are: Cloud's `bitbucket.org/<workspace>/<repo>`, or a Server's
/// `<base>/scm/<project>/<repo>.git` over HTTPS.
fn commit_page(url: &str, provider: &str, commit: &str) -> Option<String> {
    let repo = url.trim_end_matches('/').trim_end_matches(".git");
    match provider {
        "bitbucket-cloud" => {
            let path = repo
                .strip_prefix("https://")
                .and_then(|rest| rest.split_once('/').map(|(_, path)| path))
                .or_else(|| repo.split_once(':').map(|(_, path)| path))?;
            let path = path.trim_start_matches('/');
            Some(format!("https://bitbucket.org/{path}/commits/{commit}"))
        }
        "bitbucket-server" if repo.starts_with("https://") || repo.starts_with("http://") => {
            let (base, rest) = repo.split_once("/scm/")?;
            let (project, name) = rest.split_once('/')?;
            Some(format!(
                "{base}/projects/{}/repos/{name}/commits/{commit}",
                project.to_uppercase()
            ))
        }
        _ => None,
    }
}

/// `GET /ui/git-sync/activity[?app=A][&direction=in|out]`.
pub async fn activity(
    State(state): State<AppState>,
    UiCaller(caller): UiCaller,
    Query(query): Query<ActivityQuery>,
) -> Response {
    let app = (!query.app.is_empty()).then_some(query.app.as_str());
    let (found, views, connectors) = match (
        reposync_core::activity::activity(&state.store, app, Some(100)).await,
        links::status(&state.store).await,
        state.store.list_connectors().await,
    ) {
        (Ok(found), Ok(views), Ok(connectors)) => (found, views, connectors),
        (Err(error), ..) | (_, Err(error), _) => return AppError::from(error).into_response(),
        (.., Err(error)) => return AppError::from(error).into_response(),
    };
    // Links to commit pages come from the scope's link and its connector's provider.
    let provider_of = |scope: &str| -> Option<(String, String)> {
        let link = views.iter().find(|v| v.scope == scope)?;
        let connector = connectors
            .iter()
            .find(|c| c.spec.name.as_str() == link.connector)?;
        Some((link.url.clone(), connector.spec.provider.to_string()))
    };
    let class = |status: &str| match status {
        "pushed" | "nothing" | "applied" | "ours" | "snapshot" => "ok",
        "running" => "running",
        _ => "failed",
    };
    let out = found
        .attempts
        .into_iter()
        .map(|a| {
            let commit = a
                .commit_id
                .clone()
                .map(|c| c.to_string())
                .unwrap_or_default();
            let link = provider_of(&a.scope)
                .and_then(|(url, provider)| commit_page(&url, &provider, &commit))
                .filter(|_| !commit.is_empty());
            Record {
                class: class(&a.status),
                status: a.status,
                scope: a.scope,
                subject: String::new(),
                author: String::new(),
                at_local: local(&a.started_at),
                at: a.started_at,
                commit: commit.chars().take(12).collect(),
                link,
                error: a.error.unwrap_or_default(),
                files: a
                    .files
                    .into_iter()
                    .map(|f| format!("{}: {}", f.op, f.path))
                    .collect(),
                errors: 0,
            }
        })
        .collect();
    // A file read from Git failed when an open error names it in that commit.
    let open = match resolve::errors(&state.store, false, None, None).await {
        Ok(open) => open,
        Err(error) => return AppError::from(error).into_response(),
    };
    let failed = |commit: &str, path: &str| {
        open.iter().any(|e| {
            e.commit_id.as_ref().is_some_and(|c| c.as_str() == commit)
                && e.path.as_deref() == Some(path)
        })
    };
    let inbound = found
        .inbound
        .into_iter()
        .map(|c| Record {
            class: if c.errors > 0 {
                "failed"
            } else {
                class(&c.status)
            },
            status: c.status,
            scope: c.branch.clone(),
            subject: c.subject,
            author: c.author,
            at_local: local(&c.applied_at),
            at: c.applied_at,
            link: app
                .and_then(|app| provider_of(&format!("app:{app}")))
                .and_then(|(url, provider)| commit_page(&url, &provider, c.commit_id.as_str())),
            commit: c.commit_id.to_string().chars().take(12).collect(),
            error: String::new(),
            files: c
                .files
                .iter()
                .map(|f| {
                    let outcome = if failed(c.commit_id.as_str(), &f.path) {
                        "failed"
                    } else {
                        "applied"
                    };
                    format!("{}: {} ({outcome})", f.op, f.path)
                })
                .collect(),
            errors: c.errors,
        })
        .collect();
    let reads = found
        .reads
        .into_iter()
        .map(|r| ReadRow {
            at_local: local(&r.read_at),
            at: r.read_at,
            branch: r.branch,
            kind: r.kind,
            method: r.method,
            fallback: match (r.fallback_from, r.fallback_reason) {
                (Some(from), Some(why)) => format!("fell back from {from}: {why}"),
                (Some(from), None) => format!("fell back from {from}"),
                (None, _) => String::new(),
            },
            reason: r.reason,
            requests: r.requests,
            bytes: r.bytes,
            duration_ms: r.duration_ms,
            delegate: r.delegate.unwrap_or_default(),
        })
        .collect();
    let apps = match reposync_core::apps::names(&state.store).await {
        Ok(apps) => apps,
        Err(error) => return AppError::from(error).into_response(),
    };
    page(
        StatusCode::OK,
        &ActivityPage {
            layout: Layout::new("Git Sync activity", Some(&caller)),
            apps,
            selected: query.app,
            direction: query.direction,
            out,
            inbound,
            reads,
        },
    )
}

/// `POST /ui/git-sync/changesets/{id}/retry`: puts a failed or conflicting changeset back in
/// the outbox.
pub async fn retry(
    State(state): State<AppState>,
    UiCaller(caller): UiCaller,
    connection: Option<Extension<ConnectInfo<ClientAddr>>>,
    Path(id): Path<reposync_model::ChangesetId>,
) -> Response {
    let client = connection.map(|c| c.0.0.0.ip());
    let facts = match row_facts(&state, SyncRow::Changeset(&id), id.as_str()).await {
        Ok(facts) => facts,
        Err(response) => return response,
    };
    let action = (Method::POST, "/api/v1/sync/changesets/{id}/retry");
    let work = resolve::retry(&state.store, &id);
    let outcome = match act_in(
        &state,
        &caller,
        client,
        action,
        &facts,
        StatusCode::OK,
        work,
    )
    .await
    {
        Ok(outcome) => outcome,
        Err(refused) => return refused,
    };
    let notice = match outcome {
        Ok(_) => "Retrying: the changeset waits in the outbox again".to_owned(),
        Err(error) => format!("Not retried: {error}"),
    };
    Redirect::to(&format!(
        "/ui/git-sync/errors?notice={}",
        super::url_encode(&notice)
    ))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::commit_page;

    #[test]
    fn commits_link_to_their_page_on_bitbucket_when_the_url_says_where_it_is() {
        assert_eq!(
            commit_page(
                "https://bitbucket.org/acme/config.git",
                "bitbucket-cloud",
                "abc"
            )
            .as_deref(),
            Some("https://bitbucket.org/acme/config/commits/abc")
        );
        assert_eq!(
            commit_page(
                "git@bitbucket.org:acme/config.git",
                "bitbucket-cloud",
                "abc"
            )
            .as_deref(),
            Some("https://bitbucket.org/acme/config/commits/abc")
        );
        assert_eq!(
            commit_page(
                "https://git.corp/bitbucket/scm/plat/config.git",
                "bitbucket-server",
                "abc"
            )
            .as_deref(),
            Some("https://git.corp/bitbucket/projects/PLAT/repos/config/commits/abc")
        );
        assert_eq!(
            commit_page(
                "ssh://git@git.corp:7999/plat/config.git",
                "bitbucket-server",
                "abc"
            ),
            None
        );
        assert_eq!(commit_page("https://example.com/x.git", "git", "abc"), None);
    }
}
