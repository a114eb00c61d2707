//! Setup → Configuration as Code: the tree, a folder at a time, a search, and each file's YAML
//! to read or, for those who may, to edit and save through the same use case as the API.

use askama::Template;
use axum::extract::{ConnectInfo, Extension, Form, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use reposync_core::entities;
use reposync_core::error::CoreError;
use reposync_core::tree::TreeOutcome;
use reposync_model::scope::Scope;
use reposync_model::tree::ROOT;
use serde::Deserialize;

use super::session::UiCaller;
use super::{Layout, act_in, page};
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
    notice: Option<String>,
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
    notice: Option<String>,
    can_create: bool,
    app: String,
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
            // A folder whose last file just went shows as empty, with its notice.
            Err(error) if error.kind == reposync_core::error::ErrorKind::NotFound => {
                (entities::Folder::default(), Vec::new())
            }
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
            crumbs,
            folders: listing.folders,
            files: listing.files,
            query: text,
            found,
            notice: query.notice,
            can_create: access::require(
                &caller,
                &Method::PUT,
                SAVE,
                &[Scope::of_path(&format!("{path}/x.yaml"))],
            )
            .is_ok(),
            app: Scope::of_path(&format!("{path}/x.yaml"))
                .app()
                .unwrap_or_default()
                .to_owned(),
            folder: path,
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
    let facts = facts_of(&query.path);
    let person = caller.person();
    let content = super::unix_lines(&form.content);
    let work = async {
        entities::apply(
            &state.store,
            &query.path,
            content.into_bytes(),
            Some(&person),
        )
        .await
        .and_then(TreeOutcome::into_result)
    };
    match act_in(
        &state,
        &caller,
        client,
        (Method::PUT, SAVE),
        &facts,
        StatusCode::OK,
        work,
    )
    .await
    {
        Err(refused) => refused,
        Ok(Ok(_)) => Redirect::to(&format!(
            "/ui/setup/config-as-code/file?path={}&saved=1",
            super::url_encode(&query.path)
        ))
        .into_response(),
        Ok(Err(error)) => refused_page(&state, &caller, &query.path, form.content, &error).await,
    }
}

/// What a change to `path` touches, for the policy and the audit trail.
fn facts_of(path: &str) -> Facts {
    Facts {
        scopes: vec![Scope::of_path(path)],
        target: Some(path.to_owned()),
        change: None,
    }
}

/// The file's page again after a refusal: every problem a refused edit names at its file and
/// line, or the refusal's own words.
async fn refused_page(
    state: &AppState,
    caller: &reposync_core::users::Caller,
    path: &str,
    content: String,
    error: &CoreError,
) -> Response {
    let problems = match &error.report {
        Some(report) => report.problems.iter().map(ToString::to_string).collect(),
        None => vec![error.to_string()],
    };
    let status = AppError::from(error.clone()).status;
    file_page(
        state,
        caller,
        path,
        String::new(),
        content,
        false,
        problems,
        status,
    )
    .await
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct DownloadQuery {
    app: Option<String>,
}

/// `GET /ui/setup/config-as-code/download[?app=A]`: the tree, or one application's folder, as
/// a tar archive of its YAML files.
pub async fn download(
    State(state): State<AppState>,
    UiCaller(_caller): UiCaller,
    Query(query): Query<DownloadQuery>,
) -> Response {
    let app = query.app.as_deref().filter(|a| !a.is_empty());
    let files = match entities::export(&state.store, app).await {
        Ok(files) => files,
        Err(error) => return AppError::from(error).into_response(),
    };
    let mut archive = tar::Builder::new(Vec::new());
    for (path, content) in &files {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        if let Err(error) = archive.append_data(&mut header, path, content.as_slice()) {
            tracing::error!(%error, path, "cannot add a file to the archive");
            return AppError::from(CoreError::internal("cannot build the archive")).into_response();
        }
    }
    let bytes = match archive.into_inner() {
        Ok(bytes) => bytes,
        Err(_) => {
            return AppError::from(CoreError::internal("cannot build the archive")).into_response();
        }
    };
    let name = match app {
        Some(app) => format!(
            "reposync-{}.tar",
            app.replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "_")
        ),
        None => "reposync-setup.tar".to_owned(),
    };
    (
        [
            (
                axum::http::header::CONTENT_TYPE,
                "application/x-tar".to_owned(),
            ),
            (
                axum::http::header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        bytes,
    )
        .into_response()
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct NewFileForm {
    folder: String,
    name: String,
    content: String,
}

/// `POST /ui/setup/config-as-code/new`: a new file in a folder, checked as any other.
pub async fn create(
    State(state): State<AppState>,
    UiCaller(caller): UiCaller,
    connection: Option<Extension<ConnectInfo<ClientAddr>>>,
    Form(form): Form<NewFileForm>,
) -> Response {
    let path = format!("{}/{}", form.folder.trim_end_matches('/'), form.name.trim());
    let query = FileQuery { path, saved: None };
    save(
        State(state),
        UiCaller(caller),
        connection,
        Query(query),
        Form(FileForm {
            content: form.content,
        }),
    )
    .await
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RenameForm {
    name: String,
}

/// `POST /ui/setup/config-as-code/rename?path=P`: renames an entity, rewriting whatever
/// refers to it, as `reposync rename` does.
pub async fn rename(
    State(state): State<AppState>,
    UiCaller(caller): UiCaller,
    connection: Option<Extension<ConnectInfo<ClientAddr>>>,
    Query(query): Query<FileQuery>,
    Form(form): Form<RenameForm>,
) -> Response {
    let client = connection.map(|c| c.0.0.0.ip());
    let facts = facts_of(&query.path);
    let person = caller.person();
    let name = form.name.trim();
    let work = async {
        entities::rename(&state.store, &query.path, name, Some(&person))
            .await
            .and_then(TreeOutcome::into_result)
    };
    let action = (Method::POST, "/api/v1/entities/rename");
    match act_in(
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
        Err(refused) => refused,
        Ok(Ok(_)) => folder_notice(&query.path, &format!("Renamed to {name}")),
        Ok(Err(error)) => {
            let content = shown_content(&state, &query.path).await;
            refused_page(&state, &caller, &query.path, content, &error).await
        }
    }
}

/// Back to the folder of `path`, saying what happened.
fn folder_notice(path: &str, notice: &str) -> Response {
    let folder = path.rsplit_once('/').map_or(ROOT, |(f, _)| f);
    Redirect::to(&format!(
        "/ui/setup/config-as-code?folder={}&notice={}",
        super::url_encode(folder),
        super::url_encode(notice)
    ))
    .into_response()
}

/// The file's content as stored, for a page that shows a refusal beside it.
async fn shown_content(state: &AppState, path: &str) -> String {
    entities::show(&state.store, path)
        .await
        .map(|f| String::from_utf8_lossy(&f.content).into_owned())
        .unwrap_or_default()
}

/// `POST /ui/setup/config-as-code/delete?path=P`: deletes a file, refused (naming them) while
/// others refer to it.
pub async fn delete(
    State(state): State<AppState>,
    UiCaller(caller): UiCaller,
    connection: Option<Extension<ConnectInfo<ClientAddr>>>,
    Query(query): Query<FileQuery>,
) -> Response {
    let client = connection.map(|c| c.0.0.0.ip());
    let facts = facts_of(&query.path);
    let person = caller.person();
    let work = entities::delete(&state.store, &query.path, Some(&person));
    match act_in(
        &state,
        &caller,
        client,
        (Method::DELETE, SAVE),
        &facts,
        StatusCode::OK,
        work,
    )
    .await
    {
        Err(refused) => refused,
        Ok(Ok(())) => folder_notice(&query.path, &format!("Deleted {}", query.path)),
        Ok(Err(error)) => {
            let content = shown_content(&state, &query.path).await;
            refused_page(&state, &caller, &query.path, content, &error).await
        }
    }
}
