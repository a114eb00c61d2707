//! Setup → Configuration as Code: the tree, a folder at a time, a search, and each file's YAML
//! to read or, for those who may, to edit and save through the same use case as the API.

use askama::Template;
use axum::extract::{ConnectInfo, Extension, Form, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use reposync_core::entities;
use reposync_core::tree::TreeOutcome;
use reposync_model::scope::Scope;
use reposync_model::tree::ROOT;
use serde::Deserialize;

use super::session::UiCaller;
use super::{Layout, page};
use crate::access::{self, Facts};
use crate::audit::ClientAddr;
use crate::error::AppError;
use crate::state::AppState;

/// Most search results shown.
const MOST_FOUND: usize = 200;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct TreeQuery {
    folder: Option<String>,
    q: Option<String>,
}

#[derive(Template)]
#[template(path = "tree.html")]
struct TreePage {
    layout: Layout,
    folder: String,
    crumbs: Vec<(String, String)>,
    folders: Vec<String>,
    files: Vec<String>,
    query: String,
    found: Vec<String>,
}

/// `GET /ui/setup/config-as-code[?folder=F][&q=TEXT]`.
pub async fn folder(
    State(state): State<AppState>,
    UiCaller(caller): UiCaller,
    Query(query): Query<TreeQuery>,
) -> Response {
    let path = query.folder.unwrap_or_else(|| ROOT.to_owned());
    let text = query.q.unwrap_or_default().trim().to_owned();
    let (listing, found) = if text.is_empty() {
        match entities::folder(&state.store, &path).await {
            Ok(listing) => (listing, Vec::new()),
            Err(error) => return AppError::from(error).into_response(),
        }
    } else {
        match entities::search(&state.store, &text, MOST_FOUND).await {
            Ok(found) => (entities::Folder::default(), found),
            Err(error) => return AppError::from(error).into_response(),
        }
    };
    let mut crumbs = Vec::new();
    let mut so_far = String::new();
    for part in path.split('/') {
        if !so_far.is_empty() {
            so_far.push('/');
        }
        so_far.push_str(part);
        crumbs.push((part.to_owned(), so_far.clone()));
    }
    page(
        StatusCode::OK,
        &TreePage {
            layout: Layout::new("Configuration as Code", Some(&caller)),
            folder: path,
            crumbs,
            folders: listing.folders,
            files: listing.files,
            query: text,
            found,
        },
    )
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct FileQuery {
    path: String,
    saved: Option<String>,
}

#[derive(Template)]
#[template(path = "file.html")]
struct FilePage {
    layout: Layout,
    path: String,
    folder: String,
    name: String,
    kind: String,
    content: String,
    can_edit: bool,
    saved: bool,
    linked: bool,
    problems: Vec<String>,
}

/// The API route whose policy a save follows.
const SAVE: &str = "/api/v1/entities";

/// `GET /ui/setup/config-as-code/file?path=P`.
pub async fn file(
    State(state): State<AppState>,
    UiCaller(caller): UiCaller,
    Query(query): Query<FileQuery>,
) -> Response {
    let stored = match entities::show(&state.store, &query.path).await {
        Ok(stored) => stored,
        Err(error) => return AppError::from(error).into_response(),
    };
    let content = String::from_utf8_lossy(&stored.content).into_owned();
    file_page(
        &state,
        &caller,
        &query.path,
        stored.kind,
        content,
        query.saved.is_some(),
        Vec::new(),
        StatusCode::OK,
    )
    .await
}

#[allow(clippy::too_many_arguments)] // One page's parts, each named.
async fn file_page(
    state: &AppState,
    caller: &reposync_core::users::Caller,
    path: &str,
    kind: String,
    content: String,
    saved: bool,
    problems: Vec<String>,
    status: StatusCode,
) -> Response {
    let scope = Scope::of_path(path);
    let can_edit =
        access::require(caller, &Method::PUT, SAVE, std::slice::from_ref(&scope)).is_ok();
    let linked = matches!(state.store.live_link(scope.app()).await, Ok(Some(_)));
    let (folder, name) = path.rsplit_once('/').unwrap_or((ROOT, path));
    page(
        status,
        &FilePage {
            layout: Layout::new(name, Some(caller)).with_errors(!problems.is_empty()),
            path: path.to_owned(),
            folder: folder.to_owned(),
            name: name.to_owned(),
            kind,
            content,
            can_edit,
            saved,
            linked,
            problems,
        },
    )
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct FileForm {
    content: String,
}

/// `POST /ui/setup/config-as-code/file?path=P`: checks and saves the file, as `PUT
/// /api/v1/entities` does; a refused file comes back with every problem at its line and
/// column, and nothing saved.
pub async fn save(
    State(state): State<AppState>,
    UiCaller(caller): UiCaller,
    connection: Option<Extension<ConnectInfo<ClientAddr>>>,
    Query(query): Query<FileQuery>,
    Form(form): Form<FileForm>,
) -> Response {
    let client = connection.map(|c| c.0.0.0.ip());
    let facts = Facts {
        scopes: vec![Scope::of_path(&query.path)],
        target: Some(query.path.clone()),
        change: None,
    };
    let policy = match access::require(&caller, &Method::PUT, SAVE, &facts.scopes) {
        Ok(policy) => policy,
        Err(error) => {
            if let Some(policy) = access::policy(&Method::PUT, SAVE) {
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
            }
            return super::forbidden_page(&caller, error);
        }
    };
    let person = caller.person();
    let content = super::unix_lines(&form.content);
    let outcome = entities::apply(
        &state.store,
        &query.path,
        content.clone().into_bytes(),
        Some(&person),
    )
    .await;
    let status = match &outcome {
        Ok(TreeOutcome::Applied(_)) => StatusCode::OK,
        Ok(TreeOutcome::Rejected(_)) => StatusCode::UNPROCESSABLE_ENTITY,
        Err(error) => AppError::from(error.clone()).status,
    };
    crate::audit::record_request(&state, &caller, client, policy, &facts, status, None).await;
    match outcome {
        Ok(TreeOutcome::Applied(_)) => Redirect::to(&format!(
            "/ui/setup/config-as-code/file?path={}&saved=1",
            super::url_encode(&query.path)
        ))
        .into_response(),
        Ok(TreeOutcome::Rejected(report)) => {
            let problems = report.problems.iter().map(ToString::to_string).collect();
            file_page(
                &state,
                &caller,
                &query.path,
                String::new(),
                form.content,
                false,
                problems,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
        Err(error) => {
            let problems = vec![error.to_string()];
            file_page(
                &state,
                &caller,
                &query.path,
                String::new(),
                form.content,
                false,
                problems,
                status,
            )
            .await
        }
    }
}
