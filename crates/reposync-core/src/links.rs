//! Git Sync links: enabling a scope's sync with a branch (and the `Index.yaml` that records
//! it).

use std::collections::HashSet;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reposync_api::{
    RefreshedBranch, SyncDifferences, SyncEnableRequest, SyncEnabled, SyncJob, SyncJobResult,
    SyncLinkView, TaskKind, timestamp,
};
use reposync_model::scope::{Scope, app_index};
use reposync_model::tree::{PathClass, classify};
use reposync_model::yaml::{Limits, Node, emit, order_top_level, parse};
use reposync_model::{
    BranchName, ConnectorId, ConnectorScope, EntityName, LinkId, Person, RepoSlug, TaskId,
    escape_path,
};
use reposync_store::{
    CONNECTION_FAILED, ChangeOutcome, ConnectorRecord, Enabling, EnablingTask, EntityRecord,
    FileChangeRecord, FileError, FileOp, LinkBacklog, NewSyncLink, Store, StoreError, SyncLink,
    TaskRecord, app_of_path,
};
use reposync_sync::{differences, read_of, result_commit};
use serde::{Deserialize, Serialize};

use crate::connections::{Delegates, check_connections, target};
use crate::error::{CoreError, ErrorKind};
use crate::inbound::unrepresentable_error;
use crate::tree::{PlannedEdit, TreeEdit, apply_edit, count_outcomes, plan_edit};

/// A request to enable sync, checked against the store: everything but what git will say.
struct Plan {
    initial: Initial,
    app: Option<EntityName>,
    /// The application's stored `Index.yaml`.
    index: Option<EntityRecord>,
    connector: ConnectorRecord,
    /// `None` when neither the request nor the connector names one: the repository's default
    /// branch, which only git can tell, learnt by the enable task.
    branch: Option<BranchName>,
    /// The link as it will be, without its id and base commit (and without its branch while
    /// `branch` is `None`).
    planned: SyncLink,
}

/// What to do when the branch already holds YAML for the scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Initial {
    Import,
    Mirror,
    Push,
    FailIfDifferent,
}

impl Initial {
    pub fn parse(text: Option<&str>) -> Result<Initial, CoreError> {
        match text.map(str::trim).filter(|t| !t.is_empty()) {
            None | Some("fail-if-different") => Ok(Initial::FailIfDifferent),
            Some("import") => Ok(Initial::Import),
            Some("mirror") => Ok(Initial::Mirror),
            Some("push") => Ok(Initial::Push),
            Some(other) => Err(CoreError::invalid(
                "initial",
                format!("must be import, mirror, push or fail-if-different, not {other:?}"),
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Initial::Import => "import",
            Initial::Mirror => "mirror",
            Initial::Push => "push",
            Initial::FailIfDifferent => "fail-if-different",
        }
    }
}

/// What an enable task records: the request, and the person who made it, whom the first
/// changeset records when the task runs (perhaps after a restart).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnableTask {
    pub request: SyncEnableRequest,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<Person>,
}

impl EnableTask {
    /// Reads an enable task's payload. A task recorded by a version before people holds the
    /// bare request, and reads as made by nobody, so a restart after an upgrade still runs it.
    pub fn read(payload: &str) -> Result<EnableTask, serde_json::Error> {
        serde_json::from_str::<EnableTask>(payload).or_else(|error| {
            serde_json::from_str::<SyncEnableRequest>(payload)
                .map(|request| EnableTask { request, by: None })
                .map_err(|_| error)
        })
    }
}

fn index_path(app: &EntityName) -> String {
    app_index(app.as_str())
}

/// An application's `Index.yaml` with the fields that record its link (or, with `link`
/// `None`, with sync marked off).
pub fn index_with_link(
    content: &[u8],
    link: Option<(&ConnectorRecord, &str, Option<&str>)>,
) -> Result<Vec<u8>, CoreError> {
    let mut document = parse(content, &Limits::default())
        .map_err(|e| CoreError::invalid("app", format!("its Index.yaml cannot be read: {e}")))?;
    let Some(map) = document.root_map_mut() else {
        return Err(CoreError::invalid("app", "its Index.yaml is not a mapping"));
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

/// Asks for a scope to be linked to a branch. What can be checked without git is checked now
/// (the names, the connector, the scope not linked yet); the rest is a local task, answered at
/// once for the client to wait on, that [`run_enable`] does. The task is the recorded intent
/// ([`EnableTask`], with `by`, the person asking): a crash before it ends leaves it running,
/// and the next start runs it again.
pub async fn request_enable(
    store: &Store,
    request: &SyncEnableRequest,
    by: Option<&Person>,
) -> Result<TaskRecord, CoreError> {
    let plan = plan(store, request).await?;
    let scope = Scope::of_app(plan.planned.app.as_deref());
    for running in store
        .running_local_tasks(TaskKind::EnableSync.as_str())
        .await?
    {
        let Ok(EnableTask { request: other, .. }) = EnableTask::read(&running.payload) else {
            continue;
        };
        let other_app = other.app.as_deref().filter(|a| !a.trim().is_empty());
        if Scope::of_app(other_app) == scope {
            return Err(CoreError::new(
                ErrorKind::Conflict,
                "already_linked",
                format!(
                    "{scope} is being linked already (task {}); wait for that task",
                    running.id
                ),
            ));
        }
    }
    let recorded = EnableTask {
        request: request.clone(),
        by: by.cloned(),
    };
    let payload = serde_json::to_string(&recorded)
        .map_err(|e| CoreError::internal(format!("the request cannot be recorded: {e}")))?;
    let task = store
        .start_local_task(TaskKind::EnableSync.as_str(), &payload)
        .await?;
    let branch = plan
        .branch
        .as_ref()
        .map_or("the repository's default", BranchName::as_str);
    tracing::info!(task = %task.id, %scope, branch, "enabling git sync");
    Ok(task)
}

/// Does the work of an enable task and ends it: the link, the `Index.yaml` change, the files
/// taken from the branch and the task's result are written in one transaction; a refusal ends
/// the task failed, with the field it is about.
pub async fn run_enable(
    store: &Store,
    delegates: &dyn Delegates,
    task: &TaskRecord,
) -> Result<(), CoreError> {
    let outcome = match EnableTask::read(&task.payload) {
        Ok(EnableTask { request, by }) => {
            enable(store, delegates, &request, by.as_ref(), &task.id).await
        }
        Err(e) => Err(CoreError::internal(format!(
            "the task's request cannot be read: {e}"
        ))),
    };
    if let Err(error) = &outcome {
        tracing::info!(task = %task.id, code = error.code, "enabling git sync failed: {error}");
        let failure = error.to_task_failure().to_value().to_string();
        store.finish_local_task(&task.id, false, &failure).await?;
    }
    outcome
}

/// The default branch (`HEAD`) of the repository a link will sync with, learnt by a Test of
/// its connector: for a request without `--branch` whose connector names none (a Source Repo
/// Provider file without `branch:`, which Harness read as the default branch).
async fn default_branch(
    delegates: &dyn Delegates,
    connector: &ConnectorRecord,
    planned: &SyncLink,
) -> Result<BranchName, CoreError> {
    let name = connector.spec.name.as_str();
    let repo = planned.repo.as_deref().map(RepoSlug::parse).transpose()?;
    let url = connector.spec.repository_url(repo.as_ref())?.git_url();
    let result = delegates.run_test(connector, url.clone()).await?;
    if !result.ok {
        return Err(CoreError::new(
            ErrorKind::Invalid,
            "connector_check_failed",
            format!(
                "connector {name:?} names no branch, and its Test, which finds the repository's default branch, failed: {}: {}; sync was not enabled",
                result.code.as_deref().unwrap_or("failed"),
                result.message.as_deref().unwrap_or("no reason given")
            ),
        )
        .with_field("connector"));
    }
    let found = result
        .branch
        .as_deref()
        .and_then(|b| BranchName::parse(b).ok());
    let Some(branch) = found else {
        return Err(CoreError::invalid(
            "branch",
            format!(
                "is required: connector {name:?} names no branch and {url} has no default branch yet (it holds no commit); give --branch, with --create-branch for a new one"
            ),
        ));
    };
    tracing::info!(connector = name, %branch, "a link takes the repository's default branch");
    Ok(branch)
}

/// A link as the API shows it.
pub fn link_view(
    link: &SyncLink,
    connector: &ConnectorRecord,
    backlog: LinkBacklog,
) -> SyncLinkView {
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
        pushing: usize::try_from(backlog.pushing).unwrap_or_default(),
        conflicts: usize::try_from(backlog.conflicts).unwrap_or_default(),
        waiting_since: backlog.waiting_since.map(timestamp),
        created_at: timestamp(link.created_at),
        read_commit: None,
        polled_at: None,
        last_webhook_at: None,
        broken: None,
    }
}

/// Checks a request against the store.
async fn plan(store: &Store, request: &SyncEnableRequest) -> Result<Plan, CoreError> {
    let initial = Initial::parse(request.initial.as_deref())?;
    let app = request
        .app
        .as_deref()
        .filter(|a| !a.trim().is_empty())
        .map(EntityName::parse)
        .transpose()
        .map_err(|e| CoreError::invalid("app", e.message))?;
    let index = match &app {
        Some(app) => Some(store.get_entity(&index_path(app)).await.map_err(|_| {
            CoreError::not_found(format!("application {:?} does not exist", app.as_str()))
                .with_field("app")
        })?),
        None => None,
    };
    let connector_name = EntityName::parse(&request.connector)
        .map_err(|e| CoreError::invalid("connector", e.message))?;
    let connector = store
        .get_connector(&connector_name)
        .await
        .map_err(|e| CoreError::from(e).with_field("connector"))?;
    let branch = match request.branch.as_deref().filter(|b| !b.trim().is_empty()) {
        Some(branch) => Some(BranchName::parse(branch)?),
        None => connector.spec.branch.clone(),
    };
    let repo = request
        .repo
        .as_deref()
        .filter(|r| !r.trim().is_empty())
        .map(RepoSlug::parse)
        .transpose()?;
    match (connector.spec.scope, &repo) {
        (ConnectorScope::Account, None) => {
            return Err(CoreError::invalid(
                "repo",
                format!(
                    "is required: connector {:?} is account-scope, so the link names the repository",
                    connector_name.as_str()
                ),
            ));
        }
        (ConnectorScope::Repo, Some(_)) => {
            return Err(CoreError::invalid(
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
    if let Some(existing) = store.live_link(app_name).await? {
        let url = match store.get_connector_by_id(&existing.connector_id).await {
            Ok(c) => target(&c, &existing).map(|t| t.url).unwrap_or_default(),
            Err(_) => String::new(),
        };
        return Err(CoreError::new(
            ErrorKind::Conflict,
            "already_linked",
            format!(
                "{} is already synced with branch {:?} of {url}; disable that first",
                Scope::of_app(app_name),
                existing.branch
            ),
        ));
    }
    let planned = SyncLink {
        id: LinkId::new(""),
        app: app_name.map(str::to_owned),
        connector_id: connector.id.clone(),
        repo: repo.as_ref().map(ToString::to_string),
        branch: branch.as_ref().map(ToString::to_string).unwrap_or_default(),
        base_commit: None,
        enabled: true,
        created_at: 0,
        updated_at: 0,
    };
    Ok(Plan {
        initial,
        app,
        index,
        connector,
        branch,
        planned,
    })
}

/// Links a scope to a branch. The branch is read first: that checks the connector works right
/// now, and shows what the branch already holds, which `initial` decides about.
async fn enable(
    store: &Store,
    delegates: &dyn Delegates,
    request: &SyncEnableRequest,
    by: Option<&Person>,
    task: &TaskId,
) -> Result<(), CoreError> {
    let Plan {
        initial,
        app,
        index,
        connector,
        branch,
        planned,
    } = plan(store, request).await?;
    let mut planned = planned;
    let branch = match branch {
        Some(branch) => branch,
        None => default_branch(delegates, &connector, &planned).await?,
    };
    planned.branch = branch.to_string();
    let app_name = app.as_ref().map(EntityName::as_str);
    let connector_name = &connector.spec.name;
    check_connections(store, delegates, &connector, &planned)
        .await
        .map_err(|failure| {
            CoreError::new(
                ErrorKind::Invalid,
                CONNECTION_FAILED,
                format!("{}; sync was not enabled", failure.message),
            )
            .with_field("connector")
        })?;
    let sync_target = target(&connector, &planned)?;
    let url = sync_target.url.clone();
    let prefix = Scope::of_app(app_name).folder();
    let answer = delegates
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
            CoreError::new(
                ErrorKind::Invalid,
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
    // How the branch was read is recorded with the link, in its transaction.
    let read = read_of(&answer);
    let SyncJobResult::Branch {
        head,
        files,
        unrepresentable,
        ..
    } = answer.result
    else {
        return Err(CoreError::new(
            ErrorKind::Internal,
            "internal",
            "the delegate did not answer with the branch",
        ));
    };
    let head = head
        .map(|head| result_commit("head", &head))
        .transpose()
        .map_err(|invalid| CoreError::new(ErrorKind::Internal, "internal", invalid.message))?;
    if head.is_none() && !request.create_branch {
        return Err(CoreError::new(
            ErrorKind::Invalid,
            "branch_not_found",
            format!(
                "{url} has no branch {:?}; check the name, or ask to create it with the first commit (--create-branch)",
                branch.as_str()
            ),
        )
        .with_field("branch"));
    }
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
    let mut ours = store.scope_files(app_name).await?;
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
                return Err(CoreError::new(
                    ErrorKind::Conflict,
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
                    let protected = protected_connector_files(store, &connector).await?;
                    let (keep, delete): (Vec<String>, Vec<String>) =
                        kept.into_iter().partition(|p| protected.contains(p));
                    kept = keep;
                    deletes = delete;
                    if !deletes.is_empty() && !request.confirm_deletes {
                        return Err(CoreError::new(
                            ErrorKind::Conflict,
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
    let (changes, imported) = match plan_edit(store, edit).await? {
        PlannedEdit::Ready { changes, summary } => (changes, summary),
        PlannedEdit::Rejected(report) => return Err(CoreError::refused_tree(report)),
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
    let pushing = initial_files.len();
    let render = |link: &SyncLink, backlog: LinkBacklog, outcomes: &[(String, ChangeOutcome)]| {
        let mut imported = imported.clone();
        count_outcomes(&mut imported, outcomes);
        imported.applied = true;
        let enabled = SyncEnabled {
            link: link_view(link, &connector, backlog),
            initial: initial.as_str().to_owned(),
            remote_head: head.clone(),
            differences: diff.clone(),
            pushing,
            imported: takes_branch.then_some(imported),
            kept: kept.clone(),
            deleted: deletes.clone(),
        };
        serde_json::to_string(&enabled).unwrap_or_default()
    };
    store
        .enable_link(&Enabling {
            changes: &changes,
            link: &new_link,
            initial_files: &initial_files,
            branch_errors: &branch_errors,
            read: read.as_ref(),
            task: Some(EnablingTask {
                id: task,
                result: &render,
            }),
            by,
        })
        .await
        .map_err(|error| match error {
            // Another request linked the scope while this one read the branch.
            StoreError::AlreadyExists { .. } => CoreError::new(
                ErrorKind::Conflict,
                "already_linked",
                format!(
                    "{} was linked meanwhile; disable that first",
                    Scope::of_app(app_name)
                ),
            ),
            other => other.into(),
        })?;
    tracing::info!(%task, scope = %Scope::of_app(app_name), %branch, initial = initial.as_str(), files = pushing, "enabled git sync");
    Ok(())
}

/// Ends a scope's link; changes not yet pushed stay in reposync. An application's
/// `Index.yaml` loses the link's fields in the same step, as a change `by` made. Answers the
/// scope that was unlinked.
pub async fn disable(
    store: &Store,
    app: Option<&str>,
    by: Option<&Person>,
) -> Result<Scope, CoreError> {
    let (app, link) = live_link_of(store, app).await?;
    let scope = Scope::of_app(app.as_ref().map(EntityName::as_str));
    store.disable_link(&link.id).await?;
    if let Some(app) = &app
        && let Ok(stored) = store.get_entity(&index_path(app)).await
    {
        let content = index_with_link(&stored.content, None)?;
        if content != stored.content {
            let edit = TreeEdit {
                files: vec![(index_path(app), content)],
                by: by.cloned(),
                ..TreeEdit::default()
            };
            apply_edit(store, edit).await?.into_result()?;
        }
    }
    tracing::info!(scope = %scope, "disabled git sync");
    Ok(scope)
}

/// The live link of a scope (`app`, or the account when it is none or blank), with the
/// application's name parsed; a scope that is not synced is `not_found`.
async fn live_link_of(
    store: &Store,
    app: Option<&str>,
) -> Result<(Option<EntityName>, SyncLink), CoreError> {
    let app = app
        .filter(|a| !a.trim().is_empty())
        .map(EntityName::parse)
        .transpose()
        .map_err(|e| CoreError::invalid("app", e.message))?;
    let app_name = app.as_ref().map(EntityName::as_str);
    let link = store.live_link(app_name).await?.ok_or_else(|| {
        CoreError::not_found(format!("{} is not synced", Scope::of_app(app_name)))
    })?;
    Ok((app, link))
}

/// `sync refresh`: reads now the branch of one scope (`all` false) or of every live link,
/// whatever webhooks and polls have said. Links that share a branch share its one read.
pub async fn refresh(
    store: &Store,
    app: Option<&str>,
    all: bool,
) -> Result<Vec<RefreshedBranch>, CoreError> {
    let links = if all {
        store.live_links().await?
    } else {
        vec![live_link_of(store, app).await?.1]
    };
    let mut refreshed: Vec<(reposync_model::BranchId, RefreshedBranch)> = Vec::new();
    for link in links {
        let scope = Scope::of_app(link.app.as_deref()).to_string();
        let Some(branch) = store.branch_of_link(&link).await? else {
            continue;
        };
        if let Some((_, seen)) = refreshed.iter_mut().find(|(id, _)| *id == branch.id) {
            seen.scopes.push(scope);
            continue;
        }
        let connector = store.get_connector_by_id(&link.connector_id).await?;
        store.request_read(&branch.id).await?;
        refreshed.push((
            branch.id.clone(),
            RefreshedBranch {
                scopes: vec![scope],
                url: target(&connector, &link).map(|t| t.url).unwrap_or_default(),
                branch: link.branch.clone(),
            },
        ));
    }
    tracing::info!(branches = refreshed.len(), "refresh asked for reads");
    Ok(refreshed.into_iter().map(|(_, branch)| branch).collect())
}

/// The Source Repo Provider files that `mirror` never deletes: the connector being linked,
/// and every connector a sync link uses or used (its history refers to it).
async fn protected_connector_files(
    store: &Store,
    linking: &ConnectorRecord,
) -> Result<HashSet<String>, CoreError> {
    let used: HashSet<ConnectorId> = store
        .all_links()
        .await?
        .into_iter()
        .map(|l| l.connector_id)
        .collect();
    Ok(store
        .list_connectors()
        .await?
        .into_iter()
        .filter(|c| c.id == linking.id || used.contains(&c.id))
        .map(|c| reposync_model::connector_yaml::path(&c.spec.name))
        .collect())
}

fn summary(diff: &SyncDifferences) -> String {
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

/// Every live link as the status lists show it: its connector, branch, backlog and state,
/// with the last commit read from its branch, its last poll and its connector's last webhook.
pub async fn status(store: &Store) -> Result<Vec<SyncLinkView>, CoreError> {
    let connectors: std::collections::HashMap<_, _> = store
        .list_connectors()
        .await?
        .into_iter()
        .map(|c| (c.id.clone(), c))
        .collect();
    let backlogs = store.link_backlogs().await?;
    let mut views = Vec::new();
    for link in store.live_links().await? {
        let Some(connector) = connectors.get(&link.connector_id) else {
            continue;
        };
        let backlog = backlogs.get(&link.id).copied().unwrap_or_default();
        let mut view = link_view(&link, connector, backlog);
        if let Some(branch) = store.branch_of_link(&link).await? {
            view.read_commit = branch.processed_commit.map(|c| c.to_string());
            view.polled_at = branch.polled_at.map(timestamp);
            view.broken = branch.broken;
        }
        view.last_webhook_at = store
            .list_deliveries(Some(&link.connector_id), 1)
            .await?
            .first()
            .map(|d| timestamp(d.received_at));
        views.push(view);
    }
    Ok(views)
}

/// The scope of every link ever made, by link id, as listings name it; a disabled link's
/// scope says so, because its history outlives it.
pub async fn scopes_by_link(
    store: &Store,
) -> Result<std::collections::HashMap<reposync_model::LinkId, String>, CoreError> {
    Ok(store
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

#[cfg(test)]
mod tests {
    use reposync_model::{EmailAddress, UserName};

    use super::*;

    /// An enable task keeps the person who asked for it through a restart, and one recorded
    /// by a version before people (the bare request) still runs, made by nobody.
    #[test]
    fn an_enable_task_keeps_its_person_and_an_older_one_still_reads() {
        let alice = Person {
            name: UserName::parse("alice").unwrap(),
            email: Some(EmailAddress::parse("alice@example.com").unwrap()),
        };
        let recorded = EnableTask {
            request: SyncEnableRequest {
                app: Some("Shop".into()),
                connector: "git".into(),
                ..SyncEnableRequest::default()
            },
            by: Some(alice.clone()),
        };
        let read = EnableTask::read(&serde_json::to_string(&recorded).unwrap()).unwrap();
        assert_eq!(read.by, Some(alice));
        assert_eq!(read.request.app.as_deref(), Some("Shop"));

        let older = EnableTask::read(r#"{"app": "Shop", "connector": "git"}"#).unwrap();
        assert_eq!((older.request.connector.as_str(), older.by), ("git", None));
        assert!(EnableTask::read(r#"{"connector": 1}"#).is_err());
    }
}
