//! Git Sync links: enable, disable, status, activity, errors, retry.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reposync_api::{
    ChangedFileView, ChangesetView, CommitAttemptView, InboundCommitView, ListResponse,
    SyncActivity, SyncDisableRequest, SyncEnableRequest, SyncEnabled, SyncErrorView, SyncJob,
    SyncJobResult, SyncLinkView,
};
use reposync_model::scope::app_index;
use reposync_model::tree::{PathClass, classify};
use reposync_model::yaml::{Limits, Node, emit, order_top_level, parse};
use reposync_model::{BranchName, ConnectorScope, EntityName, RepoSlug, escape_path};
use reposync_store::{
    CONNECTION_FAILED, ChangesetRecord, ChangesetStatus, ConnectorRecord, Enabling,
    FileChangeRecord, FileError, FileOp, LinkBacklog, NewSyncLink, SyncLink, app_of_path,
};
use reposync_sync::differences;
use serde::Deserialize;

use crate::error::AppError;
use reposync_core::tree::{PlannedEdit, TreeEdit, apply_edit, count_outcomes, plan_edit};

use crate::handlers::tree::{applied_or_error, refused};
use crate::handlers::{ApiJson, Deleted};
use crate::state::AppState;
use crate::views::timestamp;
use reposync_core::connections::{check_connections, target};
use reposync_core::inbound::unrepresentable_error;
use reposync_model::scope::Scope;

/// What to do when the branch already holds YAML for the scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Initial {
    Import,
    Mirror,
    Push,
    FailIfDifferent,
}

impl Initial {
    fn parse(text: Option<&str>) -> Result<Initial, AppError> {
        match text.map(str::trim).filter(|t| !t.is_empty()) {
            None | Some("fail-if-different") => Ok(Initial::FailIfDifferent),
            Some("import") => Ok(Initial::Import),
            Some("mirror") => Ok(Initial::Mirror),
            Some("push") => Ok(Initial::Push),
            Some(other) => Err(AppError::invalid(
                "initial",
                format!("must be import, mirror, push or fail-if-different, not {other:?}"),
            )),
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Initial::Import => "import",
            Initial::Mirror => "mirror",
            Initial::Push => "push",
            Initial::FailIfDifferent => "fail-if-different",
        }
    }
}

fn index_path(app: &EntityName) -> String {
    app_index(app.as_str())
}

/// An application's `Index.yaml` with the fields that record its link (or, with `link`
/// `None`, with sync marked off).
fn index_with_link(
    content: &[u8],
    link: Option<(&ConnectorRecord, &str, Option<&str>)>,
) -> Result<Vec<u8>, AppError> {
    let mut document = parse(content, &Limits::default())
        .map_err(|e| AppError::invalid("app", format!("its Index.yaml cannot be read: {e}")))?;
    let Some(map) = document.root_map_mut() else {
        return Err(AppError::invalid("app", "its Index.yaml is not a mapping"));
    };
    match link {
        Some((connector, branch, repo)) => {
            map.insert("gitConnector", Node::string(connector.spec.name.as_str()));
            map.insert("branchName", Node::string(branch));
            match repo {
                Some(repo) => {
                    map.insert("repoName", Node::string(repo));
                }
                None => {
                    map.remove("repoName");
                }
            }
            map.insert("isGitSyncEnabled", Node::bool(true));
        }
        None => {
            map.insert("isGitSyncEnabled", Node::bool(false));
        }
    }
    order_top_level(&mut document);
    Ok(emit(&document).into_bytes())
}

/// Links a scope to a branch. The branch is read first: that checks the connector works right
/// now, and shows what the branch already holds, which `initial` decides about.
pub async fn enable(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<SyncEnableRequest>,
) -> Result<(StatusCode, Json<SyncEnabled>), AppError> {
    let initial = Initial::parse(request.initial.as_deref())?;
    let app = request
        .app
        .as_deref()
        .filter(|a| !a.trim().is_empty())
        .map(EntityName::parse)
        .transpose()
        .map_err(|e| AppError::invalid("app", e.message))?;
    let index = match &app {
        Some(app) => Some(
            state
                .store
                .get_entity(&index_path(app))
                .await
                .map_err(|_| {
                    AppError::not_found(format!("application {:?} does not exist", app.as_str()))
                        .with_field("app")
                })?,
        ),
        None => None,
    };
    let connector_name = EntityName::parse(&request.connector)
        .map_err(|e| AppError::invalid("connector", e.message))?;
    let connector = state
        .store
        .get_connector(&connector_name)
        .await
        .map_err(|e| AppError::from(e).with_field("connector"))?;
    let branch = match request.branch.as_deref().filter(|b| !b.trim().is_empty()) {
        Some(branch) => BranchName::parse(branch)?,
        None => connector.spec.branch.clone().ok_or_else(|| {
            AppError::invalid(
                "branch",
                format!(
                    "is required: connector {:?} names no branch",
                    connector_name.as_str()
                ),
            )
        })?,
    };
    let repo = request
        .repo
        .as_deref()
        .filter(|r| !r.trim().is_empty())
        .map(RepoSlug::parse)
        .transpose()?;
    match (connector.spec.scope, &repo) {
        (ConnectorScope::Account, None) => {
            return Err(AppError::invalid(
                "repo",
                format!(
                    "is required: connector {:?} is account-scope, so the link names the repository",
                    connector_name.as_str()
                ),
            ));
        }
        (ConnectorScope::Repo, Some(_)) => {
            return Err(AppError::invalid(
                "repo",
                format!(
                    "is not allowed: connector {:?} names its repository in its URL",
                    connector_name.as_str()
                ),
            ));
        }
        _ => {}
    }
    let app_name = app.as_ref().map(EntityName::as_str);
    if let Some(existing) = state.store.live_link(app_name).await? {
        let url = match state
            .store
            .get_connector_by_id(&existing.connector_id)
            .await
        {
            Ok(c) => target(&c, &existing).map(|t| t.url).unwrap_or_default(),
            Err(_) => String::new(),
        };
        return Err(AppError::new(
            StatusCode::CONFLICT,
            "already_linked",
            format!(
                "{} is already synced with branch {:?} of {url}; disable that first",
                Scope::of_app(app_name),
                existing.branch
            ),
        ));
    }
    let planned = SyncLink {
        id: String::new(),
        app: app_name.map(str::to_owned),
        connector_id: connector.id.clone(),
        repo: repo.as_ref().map(ToString::to_string),
        branch: branch.to_string(),
        base_commit: None,
        enabled: true,
        created_at: 0,
        updated_at: 0,
    };
    check_connections(&state.store, &state.tasks, &connector, &planned)
        .await
        .map_err(|failure| {
            AppError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                CONNECTION_FAILED,
                format!("{}; sync was not enabled", failure.message),
            )
            .with_field("connector")
        })?;
    let sync_target = target(&connector, &planned)?;
    let url = sync_target.url.clone();
    let prefix = Scope::of_app(app_name).folder();
    let read = state
        .tasks
        .run_sync_job(
            &connector,
            sync_target,
            SyncJob::ReadBranch {
                prefix: prefix.clone(),
            },
            None,
        )
        .await
        .map_err(|failure| {
            AppError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "connector_check_failed",
                format!(
                    "connector {:?} cannot read branch {:?} of {url}, so sync was not enabled: {}: {}",
                    connector_name.as_str(),
                    branch.as_str(),
                    failure.code,
                    failure.message
                ),
            )
            .with_field("connector")
        })?;
    let SyncJobResult::Branch {
        head,
        files,
        unrepresentable,
    } = read
    else {
        return Err(AppError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the delegate did not answer with the branch",
        ));
    };
    // The branch's files of this scope: tree files only (a README is not ours), and for the
    // account, not the applications' folders, which have links of their own.
    let theirs: Vec<(String, Vec<u8>)> = files
        .into_iter()
        .filter(|f| app_of_path(&f.path) == app_name)
        .filter(|f| matches!(classify(&f.path), Ok(PathClass::Entity(_))))
        .filter_map(|f| Some((f.path, STANDARD.decode(f.content?).ok()?)))
        .collect();

    let link_fields = Some((&connector, branch.as_str(), planned.repo.as_deref()));
    let index_on_branch = app.as_ref().and_then(|app| {
        let path = index_path(app);
        theirs
            .iter()
            .find(|(p, _)| *p == path)
            .map(|(_, c)| c.clone())
    });
    // Ours, with the Index.yaml as the link will make it.
    let mut ours = state.store.scope_files(app_name).await?;
    if let (Some(app), Some(index)) = (&app, &index) {
        let path = index_path(app);
        let linked = index_with_link(&index.content, link_fields)?;
        if let Some(file) = ours.iter_mut().find(|(p, _)| *p == path) {
            file.1 = linked;
        }
    }
    let diff = differences(&ours, &theirs);
    let takes_branch = matches!(initial, Initial::Import | Initial::Mirror) && !theirs.is_empty();

    // What enabling writes into the tree, what it deletes, and what the first commit carries.
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let mut deletes: Vec<String> = Vec::new();
    let mut kept: Vec<String> = Vec::new();
    let mut initial_files: Vec<FileChangeRecord> = Vec::new();
    let file_change = |op: FileOp, path: &str| FileChangeRecord {
        op,
        path: path.to_owned(),
    };
    if theirs.is_empty() {
        initial_files = ours
            .iter()
            .map(|(p, _)| file_change(FileOp::Add, p))
            .collect();
    } else {
        match initial {
            Initial::FailIfDifferent if !diff.is_empty() => {
                return Err(AppError::new(
                    StatusCode::CONFLICT,
                    "sync_differs",
                    format!(
                        "branch {:?} of {url} already holds YAML for {} that differs from reposync's: {}; nothing was changed. Choose --initial import (take the branch's files, keep reposync's others), --initial mirror (take the branch's files, delete reposync's others), or --initial push (replace the branch's with reposync's)",
                        branch.as_str(),
                        Scope::of_app(app_name),
                        summary(&diff)
                    ),
                ));
            }
            Initial::FailIfDifferent => {}
            Initial::Push => {
                for (op, paths) in [
                    (FileOp::Add, &diff.only_in_reposync),
                    (FileOp::Modify, &diff.different),
                    (FileOp::Delete, &diff.only_in_git),
                ] {
                    initial_files.extend(paths.iter().map(|p| file_change(op, p)));
                }
            }
            Initial::Import | Initial::Mirror => {
                files.clone_from(&theirs);
                kept.clone_from(&diff.only_in_reposync);
                if initial == Initial::Mirror {
                    let protected = protected_connector_files(&state, &connector).await?;
                    let (keep, delete): (Vec<String>, Vec<String>) =
                        kept.into_iter().partition(|p| protected.contains(p));
                    kept = keep;
                    deletes = delete;
                    if !deletes.is_empty() && !request.confirm_deletes {
                        return Err(AppError::new(
                            StatusCode::CONFLICT,
                            "confirmation_required",
                            format!(
                                "--initial mirror would delete {} file(s) of reposync that branch {:?} of {url} lacks: {}; nothing was changed. Run it again with --yes to delete them, or use --initial import to keep them",
                                deletes.len(),
                                branch.as_str(),
                                deletes.join(", ")
                            ),
                        )
                        .with_field("confirm_deletes"));
                    }
                }
                initial_files.extend(kept.iter().map(|p| file_change(FileOp::Add, p)));
            }
        }
    }
    // The Index.yaml records the link in the same transaction as the link, so that the first
    // commit carries it and no second commit follows. When the branch's files are taken, it is
    // the branch's Index.yaml with the link's fields.
    if let (Some(app), Some(index)) = (&app, &index) {
        let path = index_path(app);
        let base = match (&index_on_branch, takes_branch) {
            (Some(on_branch), true) => on_branch.clone(),
            _ => index.content.clone(),
        };
        let content = index_with_link(&base, link_fields)?;
        files.retain(|(p, _)| *p != path);
        files.push((path.clone(), content.clone()));
        if index_on_branch.as_ref() != Some(&content)
            && !initial_files.iter().any(|f| f.path == path)
        {
            let op = if index_on_branch.is_some() {
                FileOp::Modify
            } else {
                FileOp::Add
            };
            initial_files.push(file_change(op, &path));
        }
    }
    let edit = TreeEdit {
        files,
        deletes: deletes.clone(),
        ..TreeEdit::default()
    };
    let (changes, mut imported) = match plan_edit(&state.store, edit).await? {
        PlannedEdit::Ready { changes, summary } => (changes, summary),
        PlannedEdit::Rejected(report) => return Err(refused(&report)),
    };
    // Entries of the scope that are not files reposync can hold are errors from the start:
    // no later commit may ever mention them.
    let branch_errors: Vec<FileError> = match &head {
        Some(head) => unrepresentable
            .iter()
            .filter_map(|entry| {
                let bytes = STANDARD.decode(&entry.path).ok()?;
                let path = escape_path(&bytes);
                (app_of_path(&path) == app_name)
                    .then(|| unrepresentable_error(&path, &entry.problem, head, None))
            })
            .collect(),
        None => Vec::new(),
    };
    let new_link = NewSyncLink {
        app: planned.app.clone(),
        connector_id: connector.id.clone(),
        repo: planned.repo.clone(),
        branch: planned.branch.clone(),
        base_commit: head.clone(),
    };
    let (link, outcomes) = state
        .store
        .enable_link(&Enabling {
            changes: &changes,
            link: &new_link,
            initial_files: &initial_files,
            branch_errors: &branch_errors,
        })
        .await?;
    count_outcomes(&mut imported, &outcomes);
    imported.applied = true;
    let imported = takes_branch.then_some(imported);
    tracing::info!(scope = %Scope::of_app(app_name).to_string(), branch = %link.branch, initial = initial.as_str(), files = initial_files.len(), "enabled git sync");
    let backlog = state
        .store
        .link_backlogs()
        .await?
        .remove(&link.id)
        .unwrap_or_default();
    Ok((
        StatusCode::CREATED,
        Json(SyncEnabled {
            link: link_view(&link, &connector, backlog),
            initial: initial.as_str().to_owned(),
            remote_head: head,
            differences: diff,
            pushing: initial_files.len(),
            imported,
            kept,
            deleted: deletes,
        }),
    ))
}

/// The Source Repo Provider files that `mirror` never deletes: the connector being linked,
/// and every connector a sync link uses or used (its history refers to it).
async fn protected_connector_files(
    state: &AppState,
    linking: &ConnectorRecord,
) -> Result<std::collections::HashSet<String>, AppError> {
    let used: std::collections::HashSet<String> = state
        .store
        .all_links()
        .await?
        .into_iter()
        .map(|l| l.connector_id)
        .collect();
    Ok(state
        .store
        .list_connectors()
        .await?
        .into_iter()
        .filter(|c| c.id == linking.id || used.contains(&c.id))
        .map(|c| reposync_model::connector_yaml::path(&c.spec.name))
        .collect())
}

fn summary(diff: &reposync_api::SyncDifferences) -> String {
    let mut parts = Vec::new();
    for (label, paths) in [
        ("only in reposync", &diff.only_in_reposync),
        ("only in Git", &diff.only_in_git),
        ("different", &diff.different),
    ] {
        if paths.is_empty() {
            continue;
        }
        let shown: Vec<&str> = paths.iter().take(3).map(String::as_str).collect();
        let more = if paths.len() > 3 {
            format!(", and {} more", paths.len() - 3)
        } else {
            String::new()
        };
        parts.push(format!(
            "{} {label} ({}{more})",
            paths.len(),
            shown.join(", ")
        ));
    }
    parts.join("; ")
}

/// Ends a scope's link. Changes not yet pushed stay in reposync.
pub async fn disable(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<SyncDisableRequest>,
) -> Result<Json<serde_json::Value>, AppError> {
    let app = request
        .app
        .as_deref()
        .filter(|a| !a.trim().is_empty())
        .map(EntityName::parse)
        .transpose()
        .map_err(|e| AppError::invalid("app", e.message))?;
    let app_name = app.as_ref().map(EntityName::as_str);
    let link =
        state.store.live_link(app_name).await?.ok_or_else(|| {
            AppError::not_found(format!("{} is not synced", Scope::of_app(app_name)))
        })?;
    state.store.disable_link(&link.id).await?;
    if let Some(app) = &app
        && let Ok(stored) = state.store.get_entity(&index_path(app)).await
    {
        let content = index_with_link(&stored.content, None)?;
        if content != stored.content {
            let edit = TreeEdit {
                files: vec![(index_path(app), content)],
                ..TreeEdit::default()
            };
            applied_or_error(apply_edit(&state.store, edit).await?)?;
        }
    }
    tracing::info!(scope = %Scope::of_app(app_name).to_string(), "disabled git sync");
    Ok(Json(
        serde_json::json!({"disabled": Scope::of_app(app_name).to_string()}),
    ))
}

/// Every live link.
pub async fn status(
    State(state): State<AppState>,
) -> Result<Json<ListResponse<SyncLinkView>>, AppError> {
    let connectors = connectors_by_id(&state).await?;
    let backlogs = state.store.link_backlogs().await?;
    let items = state
        .store
        .live_links()
        .await?
        .iter()
        .filter_map(|link| {
            let connector = connectors.get(&link.connector_id)?;
            let backlog = backlogs.get(&link.id).copied().unwrap_or_default();
            Some(link_view(link, connector, backlog))
        })
        .collect();
    Ok(Json(ListResponse { items }))
}

async fn connectors_by_id(state: &AppState) -> Result<HashMap<String, ConnectorRecord>, AppError> {
    Ok(state
        .store
        .list_connectors()
        .await?
        .into_iter()
        .map(|c| (c.id.clone(), c))
        .collect())
}

fn link_view(link: &SyncLink, connector: &ConnectorRecord, backlog: LinkBacklog) -> SyncLinkView {
    SyncLinkView {
        id: link.id.clone(),
        scope: Scope::of_app(link.app.as_deref()).to_string(),
        app: link.app.clone(),
        connector: connector.spec.name.to_string(),
        repo: link.repo.clone(),
        branch: link.branch.clone(),
        url: target(connector, link).map(|t| t.url).unwrap_or_default(),
        base_commit: link.base_commit.clone(),
        waiting: usize::try_from(backlog.waiting).unwrap_or_default(),
        errors: usize::try_from(backlog.open_errors).unwrap_or_default(),
        created_at: timestamp(link.created_at),
    }
}

/// The scope of every link ever made, by link id; a disabled link's scope says so, because
/// its history outlives it.
async fn scopes_by_link(state: &AppState) -> Result<HashMap<String, String>, AppError> {
    Ok(state
        .store
        .all_links()
        .await?
        .into_iter()
        .map(|link| {
            let scope = Scope::of_app(link.app.as_deref()).to_string();
            let label = if link.enabled {
                scope
            } else {
                format!("{scope} (disabled)")
            };
            (link.id, label)
        })
        .collect())
}

#[derive(Debug, Deserialize)]
pub struct ActivityQuery {
    #[serde(default)]
    app: Option<String>,
    #[serde(default)]
    limit: Option<i64>,
}

/// Changesets and commit attempts, newest first.
pub async fn activity(
    State(state): State<AppState>,
    query: Result<Query<ActivityQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<SyncActivity>, AppError> {
    let Query(query) = query.map_err(|e| AppError::invalid("app", e.body_text()))?;
    let limit = query.limit.unwrap_or(100).clamp(1, 10_000);
    let scopes = scopes_by_link(&state).await?;
    // An application's activity includes that of its earlier, disabled links.
    let ids: Vec<String> = match query.app.as_deref().filter(|a| !a.is_empty()) {
        Some(app) => {
            let ids: Vec<String> = state
                .store
                .all_links()
                .await?
                .into_iter()
                .filter(|l| l.app.as_deref() == Some(app))
                .map(|l| l.id)
                .collect();
            if ids.is_empty() {
                return Err(AppError::not_found(format!(
                    "application {app:?} has never been synced"
                ))
                .with_field("app"));
            }
            ids
        }
        None => Vec::new(),
    };
    let scope = |link_id: &str| scopes.get(link_id).cloned().unwrap_or_default();
    let changesets = state
        .store
        .list_changesets(&ids, limit)
        .await?
        .into_iter()
        .map(|c| changeset_view(&c, scope(&c.link_id)))
        .collect();
    let attempts = state.store.list_attempts(&ids, limit).await?;
    let task_ids: Vec<String> = attempts.iter().filter_map(|a| a.task_id.clone()).collect();
    let delegates = state.store.task_delegates(&task_ids).await?;
    let attempts = attempts
        .into_iter()
        .map(|a| CommitAttemptView {
            delegate: a.task_id.as_ref().and_then(|t| delegates.get(t).cloned()),
            scope: scope(&a.link_id),
            id: a.id,
            status: a.status,
            changesets: a.changesets,
            files: files_view(&a.files),
            commit_id: a.commit_id,
            error: a.error,
            started_at: timestamp(a.started_at),
            finished_at: a.finished_at.map(timestamp),
        })
        .collect();
    // Commits read from Git: of the branches the selected links read, or all.
    let mut branch_ids = Vec::new();
    if !ids.is_empty() {
        for link in state.store.all_links().await? {
            if ids.contains(&link.id)
                && let Some(branch) = state.store.branch_of_link(&link).await?
                && !branch_ids.contains(&branch.id)
            {
                branch_ids.push(branch.id);
            }
        }
    }
    let inbound = if ids.is_empty() || !branch_ids.is_empty() {
        state
            .store
            .list_inbound_commits(&branch_ids, limit)
            .await?
            .into_iter()
            .map(|c| InboundCommitView {
                commit_id: c.commit_id,
                branch: c.branch,
                status: c.status,
                files: c
                    .files
                    .into_iter()
                    .map(|f| ChangedFileView {
                        op: f.op,
                        path: match f.from {
                            Some(from) => format!("{from} -> {}", f.path),
                            None => f.path,
                        },
                    })
                    .collect(),
                errors: u64::try_from(c.errors).unwrap_or_default(),
                author: c.author,
                subject: c.message.lines().next().unwrap_or_default().to_owned(),
                applied_at: timestamp(c.applied_at),
            })
            .collect()
    } else {
        Vec::new()
    };
    Ok(Json(SyncActivity {
        changesets,
        attempts,
        inbound,
    }))
}

fn files_view(files: &[FileChangeRecord]) -> Vec<ChangedFileView> {
    files
        .iter()
        .map(|f| ChangedFileView {
            op: f.op.as_str().to_owned(),
            path: f.path.clone(),
        })
        .collect()
}

fn changeset_view(c: &ChangesetRecord, scope: String) -> ChangesetView {
    ChangesetView {
        id: c.id.clone(),
        scope,
        status: c.status.as_str().to_owned(),
        files: files_view(&c.files),
        attempt_id: c.attempt_id.clone(),
        commit_id: c.commit_id.clone(),
        error: c.error.clone(),
        created_at: timestamp(c.created_at),
        updated_at: timestamp(c.updated_at),
    }
}

/// Sync errors not yet resolved.
#[derive(Debug, Deserialize)]
pub struct ErrorsQuery {
    /// List the errors resolved lately instead of the open ones.
    #[serde(default)]
    resolved: bool,
    #[serde(default)]
    limit: Option<i64>,
}

/// The open sync errors, oldest first; with `resolved=true`, the most recently resolved ones,
/// newest first, with how each was resolved.
pub async fn errors(
    State(state): State<AppState>,
    query: Result<Query<ErrorsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<ListResponse<SyncErrorView>>, AppError> {
    let Query(query) = query.map_err(|e| AppError::invalid("resolved", e.body_text()))?;
    let scopes = scopes_by_link(&state).await?;
    let records = if query.resolved {
        let limit = query.limit.unwrap_or(100).clamp(1, 10_000);
        state.store.resolved_sync_errors(limit).await?
    } else {
        state.store.open_sync_errors().await?
    };
    let items = records
        .into_iter()
        .map(|e| SyncErrorView {
            scope: match (&e.link_id, e.path.as_deref()) {
                (Some(link), _) => scopes.get(link).cloned().unwrap_or_default(),
                // A file of a scope that has no link (yet): name the scope it would be.
                (None, Some(path)) => Scope::of_app(app_of_path(path)).to_string(),
                (None, None) => String::new(),
            },
            commit_id: e.commit_id,
            id: e.id,
            attempt_id: e.attempt_id,
            path: e.path,
            code: e.code,
            message: e.message,
            ours: e.ours.map(|b| String::from_utf8_lossy(&b).into_owned()),
            theirs: e.theirs.map(|b| String::from_utf8_lossy(&b).into_owned()),
            created_at: timestamp(e.created_at),
            resolved_at: e.resolved.as_ref().map(|(at, _)| timestamp(*at)),
            resolution: e.resolved.map(|(_, how)| how),
        })
        .collect();
    Ok(Json(ListResponse { items }))
}

/// Discards an open sync error.
pub async fn discard_error(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Deleted>, AppError> {
    state.store.discard_sync_error(&id).await?;
    tracing::info!(error = %id, "discarded sync error");
    Ok(Json(Deleted::new(&id)))
}

/// Puts a failed or conflicting changeset back in the outbox.
pub async fn retry(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ChangesetView>, AppError> {
    let changeset = state.store.retry_changeset(&id).await?;
    tracing::info!(changeset = %id, "retrying changeset");
    let scope = scopes_by_link(&state)
        .await?
        .remove(&changeset.link_id)
        .unwrap_or_default();
    let mut view = changeset_view(&changeset, scope);
    view.status = ChangesetStatus::Waiting.as_str().to_owned();
    view.error = None;
    Ok(Json(view))
}
