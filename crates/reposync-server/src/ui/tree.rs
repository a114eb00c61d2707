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
    let facts = Facts {
        scopes: vec![Scope::of_path(&query.path)],
        target: Some(query.path.clone()),
        change: None,
    };
    let route = "/api/v1/entities/rename";
    let Some(policy) = access::policy(&Method::POST, route) else {
        return AppError::not_found("no such action").into_response();
    };
    if let Err(error) = access::require(&caller, &Method::POST, route, &facts.scopes) {
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
        return super::forbidden_page(&caller, error);
    }
    let person = caller.person();
    let outcome =
        entities::rename(&state.store, &query.path, form.name.trim(), Some(&person)).await;
    let status = match &outcome {
        Ok(TreeOutcome::Applied(_)) => StatusCode::OK,
        Ok(TreeOutcome::Rejected(_)) => StatusCode::UNPROCESSABLE_ENTITY,
        Err(error) => AppError::from(error.clone()).status,
    };
    crate::audit::record_request(&state, &caller, client, policy, &facts, status, None).await;
    let folder = query
        .path
        .rsplit_once('/')
        .map_or(ROOT, |(f, _)| f)
        .to_owned();
    match outcome {
        Ok(TreeOutcome::Applied(_)) => Redirect::to(&format!(
            "/ui/setup/config-as-code?folder={}&notice={}",
            super::url_encode(&folder),
            super::url_encode(&format!("Renamed to {}", form.name.trim()))
        ))
        .into_response(),
        Ok(TreeOutcome::Rejected(report)) => {
            let problems = report.problems.iter().map(ToString::to_string).collect();
            let content = shown_content(&state, &query.path).await;
            file_page(
                &state,
                &caller,
                &query.path,
                String::new(),
                content,
                false,
                problems,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
        Err(error) => {
            let content = shown_content(&state, &query.path).await;
            file_page(
                &state,
                &caller,
                &query.path,
                String::new(),
                content,
                false,
                vec![error.to_string()],
                status,
            )
            .await
        }
    }
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
    let facts = Facts {
        scopes: vec![Scope::of_path(&query.path)],
        target: Some(query.path.clone()),
        change: None,
    };
    let Some(policy) = access::policy(&Method::DELETE, SAVE) else {
        return AppError::not_found("no such action").into_response();
    };
    if let Err(error) = access::require(&caller, &Method::DELETE, SAVE, &facts.scopes) {
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
        return super::forbidden_page(&caller, error);
    }
    let person = caller.person();
    let outcome = entities::delete(&state.store, &query.path, Some(&person)).await;
    let status = match &outcome {
        Ok(()) => StatusCode::OK,
        Err(error) => AppError::from(error.clone()).status,
    };
    crate::audit::record_request(&state, &caller, client, policy, &facts, status, None).await;
    let folder = query
        .path
        .rsplit_once('/')
        .map_or(ROOT, |(f, _)| f)
        .to_owned();
    match outcome {
        Ok(()) => Redirect::to(&format!(
            "/ui/setup/config-as-code?folder={}&notice={}",
            super::url_encode(&folder),
            super::url_encode(&format!("Deleted {}", query.path))
        ))
        .into_response(),
        Err(error) => {
            let content = shown_content(&state, &query.path).await;
            file_page(
                &state,
                &caller,
                &query.path,
                String::new(),
                content,
                false,
                vec![error.to_string()],
                status,
            )
            .await
        }
    }
}
