//! Git Sync links: enabling a scope's sync with a branch (and the `Index.yaml` that records
//! it), or every scope's from one read of the branch.
//!
//! Enabling is one read of the branch on a delegate, then, for each scope, the same decision
//! from that snapshot ([`decide_scope`]: the initial mode applied to the scope's files), and
//! one transaction that writes every link or none. Enabling one scope reads its folder;
//! enabling every scope (`all`) reads the whole tree once and splits it by the model's
//! `scope` module, which is why a hundred applications take about the time of one.

use std::collections::{BTreeSet, HashMap, HashSet};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reposync_api::{
    ImportReport, RefreshedBranch, SyncDifferences, SyncEnableRequest, SyncEnabled, SyncEnabledAll,
    SyncJob, SyncJobResult, SyncLinkView, SyncTarget, TaskKind, UnrepresentableRead, timestamp,
};
use reposync_model::scope::{Scope, app_folder, app_index, app_of_path};
use reposync_model::tree::{PathClass, classify};
use reposync_model::yaml::{Limits, Node, emit, order_top_level, parse};
use reposync_model::{
    BranchName, ConnectorId, ConnectorScope, EntityName, LinkId, ObjectId, Person, RepoSlug,
    TaskId, escape_path,
};
use reposync_store::{
    BranchRead, CONNECTION_FAILED, ChangeOutcome, ConnectorRecord, EnablingSet, EnablingSetTask,
    EntityRecord, FileChangeRecord, FileError, FileOp, LinkBacklog, LinkStart, NewSyncLink, Store,
    StoreError, SyncLink, TaskRecord,
};
use reposync_sync::{differences, read_of, result_commit};
use serde::{Deserialize, Serialize};

use crate::connections::{Delegates, check_scope_connections, target};
use crate::error::{CoreError, ErrorKind};
use crate::inbound::unrepresentable_error;
use crate::tree::{PlannedEdit, TreeEdit, apply_edit, count_outcomes, plan_edit};

/// A request to enable sync, checked against the store: everything but what git will say.
struct Plan {
    initial: Initial,
    connector: ConnectorRecord,
    /// `None` when neither the request nor the connector names one: the repository's default
    /// branch, which only git can tell, learnt by the enable task.
    branch: Option<BranchName>,
    repo: Option<RepoSlug>,
    /// Whether the request links every scope (`all`) rather than one.
    all: bool,
    /// The scopes to link: the one asked for; with `all`, the account and every application
    /// reposync holds, except those linked already. The branch may hold more applications,
    /// which only its read shows.
    scopes: Vec<ScopePlan>,
    /// With `all`: the live links of the scopes linked already, which are left as they are.
    skipped: Vec<SyncLink>,
}

impl Plan {
    /// The account's link as it will be on `branch`, without its id and base commit: every
    /// scope of a request syncs with the same branch, so this names the branch's target and
    /// its clone for any of them.
    fn branch_link(&self, branch: &str) -> SyncLink {
        SyncLink {
            id: LinkId::new(""),
            app: None,
            connector_id: self.connector.id.clone(),
            repo: self.repo.as_ref().map(ToString::to_string),
            branch: branch.to_owned(),
            base_commit: None,
            enabled: true,
            created_at: 0,
            updated_at: 0,
        }
    }
}

/// One scope to link.
struct ScopePlan {
    /// The application, or `None` for the account's own files.
    app: Option<EntityName>,
    /// The application's stored `Index.yaml`: none for the account, and none for an
    /// application that only the branch holds (enabling every scope creates it).
    index: Option<EntityRecord>,
}

impl ScopePlan {
    fn app_name(&self) -> Option<&str> {
        self.app.as_ref().map(EntityName::as_str)
    }

    fn scope(&self) -> Scope {
        Scope::of_app(self.app_name())
    }
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

/// Asks for a scope to be linked to a branch, or with `all`, every scope. What can be checked
/// without git is checked now (the names, the connector, the scope not linked yet); the rest
/// is a local task, answered at once for the client to wait on, that [`run_enable`] does. The
/// task is the recorded intent ([`EnableTask`], with `by`, the person asking): a crash before
/// it ends leaves it running, and the next start runs it again.
pub async fn request_enable(
    store: &Store,
    request: &SyncEnableRequest,
    by: Option<&Person>,
) -> Result<TaskRecord, CoreError> {
    let plan = plan(store, request).await?;
    let asked = scope_asked(request);
    for running in store
        .running_local_tasks(TaskKind::EnableSync.as_str())
        .await?
    {
        let Ok(EnableTask { request: other, .. }) = EnableTask::read(&running.payload) else {
            continue;
        };
        // Enabling every scope overlaps with any other enabling: both would link one scope.
        let other_asked = scope_asked(&other);
        if request.all || other.all || other_asked == asked {
            return Err(CoreError::new(
                ErrorKind::Conflict,
                "already_linked",
                format!(
                    "{other_asked} is being linked already (task {}); wait for that task",
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
    tracing::info!(task = %task.id, scope = %asked, branch, "enabling git sync");
    Ok(task)
}

/// What a request asks to link, in words: a scope, or `every scope`.
fn scope_asked(request: &SyncEnableRequest) -> String {
    if request.all {
        return "every scope".to_owned();
    }
    Scope::of_app(request.app.as_deref().filter(|a| !a.trim().is_empty())).to_string()
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
    repo: Option<&RepoSlug>,
) -> Result<BranchName, CoreError> {
    let name = connector.spec.name.as_str();
    let url = connector.spec.repository_url(repo)?.git_url();
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
    if request.all && app.is_some() {
        return Err(CoreError::invalid(
            "app",
            "cannot be given with all, which links the account and every application; leave out app, or all to link one application",
        ));
    }
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
    let (scopes, skipped) = if request.all {
        every_scope_not_linked(store).await?
    } else {
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
        (vec![ScopePlan { app, index }], Vec::new())
    };
    Ok(Plan {
        initial,
        connector,
        branch,
        repo,
        all: request.all,
        scopes,
        skipped,
    })
}

/// The scopes reposync holds that have no live link (the account first, then the
/// applications by name, each with its `Index.yaml`), and the live links of the others.
async fn every_scope_not_linked(
    store: &Store,
) -> Result<(Vec<ScopePlan>, Vec<SyncLink>), CoreError> {
    let live = store.live_links().await?;
    let mut scopes = Vec::new();
    if !live.iter().any(|link| link.app.is_none()) {
        scopes.push(ScopePlan {
            app: None,
            index: None,
        });
    }
    for name in store.app_names().await? {
        if live
            .iter()
            .any(|link| link.app.as_deref() == Some(name.as_str()))
        {
            continue;
        }
        let app = EntityName::parse(&name).map_err(|e| {
            CoreError::internal(format!(
                "the stored application {name:?} has no valid name: {}",
                e.message
            ))
        })?;
        let index = store.get_entity(&index_path(&app)).await.ok();
        scopes.push(ScopePlan {
            app: Some(app),
            index,
        });
    }
    Ok((scopes, live))
}

/// Links the scopes a request asks for to a branch. The branch is read first, once whatever
/// the number of scopes: that checks the connector works right now, and shows what the branch
/// already holds, which `initial` decides about for each scope. Every scope's link is then
/// written in one transaction, so a refusal anywhere links none.
async fn enable(
    store: &Store,
    delegates: &dyn Delegates,
    request: &SyncEnableRequest,
    by: Option<&Person>,
    task: &TaskId,
) -> Result<(), CoreError> {
    let mut plan = plan(store, request).await?;
    let branch = match &plan.branch {
        Some(branch) => branch.clone(),
        None => default_branch(delegates, &plan.connector, plan.repo.as_ref()).await?,
    };
    let branch_link = plan.branch_link(branch.as_str());
    let held: Vec<Option<&str>> = plan.scopes.iter().map(ScopePlan::app_name).collect();
    check_scope_connections(store, delegates, &plan.connector, &branch_link, &held)
        .await
        .map_err(|failure| {
            CoreError::new(
                ErrorKind::Invalid,
                CONNECTION_FAILED,
                format!("{}; sync was not enabled", failure.message),
            )
            .with_field("connector")
        })?;
    // One scope reads its own folder; every scope reads the account's, which is all of the
    // tree.
    let folder = match (plan.all, plan.scopes.as_slice()) {
        (false, [only]) => only.scope().folder(),
        _ => Scope::Account.folder(),
    };
    let snapshot = read_branch(
        delegates,
        &plan.connector,
        target(&plan.connector, &branch_link)?,
        branch,
        folder,
        request.create_branch,
    )
    .await?;
    if plan.all {
        add_branch_apps(&mut plan, &snapshot)?;
    }
    let protected = if plan.initial == Initial::Mirror {
        protected_connector_files(store, &plan.connector).await?
    } else {
        HashSet::new()
    };
    let mut starts = Vec::with_capacity(plan.scopes.len());
    for scope in &plan.scopes {
        starts.push(decide_scope(store, &plan, scope, &snapshot, &protected).await?);
    }
    refuse_unasked(&starts, &snapshot, request.confirm_deletes)?;
    for (start, scope) in starts.iter_mut().zip(&plan.scopes) {
        start.record_link(&plan, scope, &snapshot)?;
    }
    write_links(store, &plan, starts, &snapshot, by, task).await
}

/// A branch as one read saw it: what each scope's enabling decides from.
struct BranchSnapshot {
    url: String,
    branch: BranchName,
    /// `None` for a branch the repository does not have yet (`create_branch`).
    head: Option<ObjectId>,
    /// The tree's files under the folder read, with their contents: a README is not ours.
    files: Vec<(String, Vec<u8>)>,
    /// Entries under the folder read that reposync cannot hold as files.
    unrepresentable: Vec<UnrepresentableRead>,
    /// How the branch was read, when the delegate said.
    read: Option<BranchRead>,
}

impl BranchSnapshot {
    /// The branch's files of one scope: for the account, not the applications' folders,
    /// which have links of their own.
    fn files_of(&self, scope: &Scope) -> Vec<(String, Vec<u8>)> {
        self.files
            .iter()
            .filter(|(path, _)| scope.covers(path))
            .cloned()
            .collect()
    }

    /// The applications whose folders hold files of the tree, by name.
    fn apps(&self) -> BTreeSet<&str> {
        self.files
            .iter()
            .filter_map(|(path, _)| app_of_path(path))
            .collect()
    }
}

/// Reads `folder` of the branch on a delegate, which chooses how (git, or a REST API) and
/// says so. A branch the repository lacks is refused unless the request creates it.
async fn read_branch(
    delegates: &dyn Delegates,
    connector: &ConnectorRecord,
    sync_target: SyncTarget,
    branch: BranchName,
    folder: String,
    create_branch: bool,
) -> Result<BranchSnapshot, CoreError> {
    let url = sync_target.url.clone();
    let answer = delegates
        .run_sync_job(
            connector,
            sync_target,
            SyncJob::ReadBranch { prefix: folder },
            None,
        )
        .await
        .map_err(|failure| {
            CoreError::new(
                ErrorKind::Invalid,
                "connector_check_failed",
                format!(
                    "connector {:?} cannot read branch {:?} of {url}, so sync was not enabled: {}: {}",
                    connector.spec.name.as_str(),
                    branch.as_str(),
                    failure.code,
                    failure.message
                ),
            )
            .with_field("connector")
        })?;
    // How the branch was read is recorded with the links, in their transaction.
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
    if head.is_none() && !create_branch {
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
    let files = files
        .into_iter()
        .filter(|f| matches!(classify(&f.path), Ok(PathClass::Entity(_))))
        .filter_map(|f| Some((f.path, STANDARD.decode(f.content?).ok()?)))
        .collect();
    Ok(BranchSnapshot {
        url,
        branch,
        head,
        files,
        unrepresentable,
        read,
    })
}

/// Adds to a plan of every scope the applications the branch holds and reposync does not,
/// which enabling creates from the branch's files; an application linked already stays as it
/// is. The account comes first, then the applications by name.
fn add_branch_apps(plan: &mut Plan, snapshot: &BranchSnapshot) -> Result<(), CoreError> {
    for name in snapshot.apps() {
        let planned = plan.scopes.iter().any(|s| s.app_name() == Some(name));
        let linked = plan.skipped.iter().any(|l| l.app.as_deref() == Some(name));
        if planned || linked {
            continue;
        }
        let app = EntityName::parse(name).map_err(|e| {
            CoreError::invalid(
                "branch",
                format!(
                    "holds the folder {:?}, whose name is not an application's: {}; nothing was changed",
                    app_folder(name),
                    e.message
                ),
            )
        })?;
        plan.scopes.push(ScopePlan {
            app: Some(app),
            index: None,
        });
    }
    plan.scopes.sort_by(|a, b| a.app.cmp(&b.app));
    Ok(())
}

/// What enabling one scope does, decided from the branch's snapshot before anything is
/// written: what it takes into the tree, deletes, keeps, and pushes first.
struct ScopeStart {
    scope: Scope,
    /// The mode applied: the one asked for, or `import` for an application only the branch
    /// holds.
    initial: Initial,
    /// Whether the scope is an application that only the branch holds, created by enabling.
    created: bool,
    diff: SyncDifferences,
    /// Whether `fail-if-different` refuses: the branch holds the scope's YAML, otherwise.
    differs: bool,
    /// Whether the branch's files are taken (`import` or `mirror` of a scope the branch
    /// holds).
    takes_branch: bool,
    /// The files written into the tree: the branch's, and the `Index.yaml` that records the
    /// link.
    files: Vec<(String, Vec<u8>)>,
    /// reposync's files that `mirror` deletes.
    deletes: Vec<String>,
    /// reposync's files the branch lacks, kept and pushed.
    kept: Vec<String>,
    /// What the link's first changeset carries.
    initial_files: Vec<FileChangeRecord>,
    /// The branch's `Index.yaml` of the application, if it has one.
    index_on_branch: Option<Vec<u8>>,
    /// Errors about entries of the scope that reposync cannot hold.
    branch_errors: Vec<FileError>,
    link: NewSyncLink,
}

/// Applies the initial mode to one scope, given the branch as read: the same decision
/// whether the scope is enabled alone or with every other. A refusal is left to
/// [`refuse_unasked`], which judges every scope of the request at once.
async fn decide_scope(
    store: &Store,
    plan: &Plan,
    scope: &ScopePlan,
    snapshot: &BranchSnapshot,
    protected: &HashSet<String>,
) -> Result<ScopeStart, CoreError> {
    let this = scope.scope();
    // An application only the branch holds is imported whatever the mode asked: reposync has
    // nothing of it to compare or to push over it.
    let created = scope.app.is_some() && scope.index.is_none();
    let initial = if created {
        Initial::Import
    } else {
        plan.initial
    };
    let theirs = snapshot.files_of(&this);
    let repo = plan.repo.as_ref().map(ToString::to_string);
    let link_fields = Some((&plan.connector, snapshot.branch.as_str(), repo.as_deref()));
    let index_on_branch = this.index_path().and_then(|path| {
        theirs
            .iter()
            .find(|(p, _)| *p == path)
            .map(|(_, c)| c.clone())
    });
    // Ours, with the Index.yaml as the link will make it.
    let mut ours = store.scope_files(scope.app_name()).await?;
    if let (Some(path), Some(index)) = (this.index_path(), &scope.index) {
        let linked = index_with_link(&index.content, link_fields)?;
        if let Some(file) = ours.iter_mut().find(|(p, _)| *p == path) {
            file.1 = linked;
        }
    }
    let diff = differences(&ours, &theirs);
    let takes_branch = matches!(initial, Initial::Import | Initial::Mirror) && !theirs.is_empty();

    let mut differs = false;
    let mut files = Vec::new();
    let mut deletes = Vec::new();
    let mut kept = Vec::new();
    let mut initial_files = Vec::new();
    if theirs.is_empty() {
        initial_files = ours
            .iter()
            .map(|(p, _)| file_change(FileOp::Add, p))
            .collect();
    } else {
        match initial {
            Initial::FailIfDifferent => differs = !diff.is_empty(),
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
                files = theirs;
                kept.clone_from(&diff.only_in_reposync);
                if initial == Initial::Mirror {
                    let (keep, delete): (Vec<String>, Vec<String>) =
                        kept.into_iter().partition(|p| protected.contains(p));
                    kept = keep;
                    deletes = delete;
                }
                initial_files.extend(kept.iter().map(|p| file_change(FileOp::Add, p)));
            }
        }
    }
    Ok(ScopeStart {
        link: NewSyncLink {
            app: scope.app_name().map(str::to_owned),
            connector_id: plan.connector.id.clone(),
            repo,
            branch: snapshot.branch.to_string(),
            base_commit: snapshot.head.clone(),
        },
        scope: this,
        initial,
        created,
        diff,
        differs,
        takes_branch,
        files,
        deletes,
        kept,
        initial_files,
        index_on_branch,
        branch_errors: Vec::new(),
    })
}

fn file_change(op: FileOp, path: &str) -> FileChangeRecord {
    FileChangeRecord {
        op,
        path: path.to_owned(),
    }
}

impl ScopeStart {
    /// Adds what records the link: the application's `Index.yaml` with the link's fields, in
    /// the same transaction as the link, so that the first commit carries it and no second
    /// commit follows (when the branch's files are taken, it is the branch's `Index.yaml`
    /// with those fields), and the errors about the scope's entries that reposync cannot
    /// hold, which no later commit may ever mention.
    fn record_link(
        &mut self,
        plan: &Plan,
        scope: &ScopePlan,
        snapshot: &BranchSnapshot,
    ) -> Result<(), CoreError> {
        let link_fields = Some((
            &plan.connector,
            snapshot.branch.as_str(),
            self.link.repo.as_deref(),
        ));
        if let Some(path) = self.scope.index_path() {
            let base = match (&self.index_on_branch, self.takes_branch, &scope.index) {
                (Some(on_branch), true, _) => Some(on_branch.clone()),
                (_, _, Some(index)) => Some(index.content.clone()),
                (on_branch, _, None) => on_branch.clone(),
            };
            if let Some(base) = base {
                let content = index_with_link(&base, link_fields)?;
                self.files.retain(|(p, _)| *p != path);
                self.files.push((path.clone(), content.clone()));
                if self.index_on_branch.as_ref() != Some(&content)
                    && !self.initial_files.iter().any(|f| f.path == path)
                {
                    let op = if self.index_on_branch.is_some() {
                        FileOp::Modify
                    } else {
                        FileOp::Add
                    };
                    self.initial_files.push(file_change(op, &path));
                }
            }
        }
        if let Some(head) = &snapshot.head {
            self.branch_errors = snapshot
                .unrepresentable
                .iter()
                .filter_map(|entry| {
                    let bytes = STANDARD.decode(&entry.path).ok()?;
                    let path = escape_path(&bytes);
                    self.scope
                        .covers(&path)
                        .then(|| unrepresentable_error(&path, &entry.problem, head, None))
                })
                .collect();
        }
        Ok(())
    }

    /// The scope's part of the task's result, once its link exists.
    fn enabled(
        &self,
        link: &SyncLink,
        backlog: LinkBacklog,
        connector: &ConnectorRecord,
        remote_head: Option<&ObjectId>,
        report: &ImportReport,
        outcomes: &[(String, ChangeOutcome)],
    ) -> SyncEnabled {
        let mut imported = ImportReport {
            warnings: report
                .warnings
                .iter()
                .filter(|w| self.scope.covers(&w.path))
                .cloned()
                .collect(),
            mapped_secrets: report
                .mapped_secrets
                .iter()
                .filter(|m| self.scope.covers(&m.path))
                .cloned()
                .collect(),
            ..report.clone()
        };
        count_outcomes(&mut imported, outcomes);
        imported.applied = true;
        SyncEnabled {
            link: link_view(link, connector, backlog),
            initial: self.initial.as_str().to_owned(),
            remote_head: remote_head.cloned(),
            differences: self.diff.clone(),
            pushing: self.initial_files.len(),
            imported: self.takes_branch.then_some(imported),
            kept: self.kept.clone(),
            deleted: self.deletes.clone(),
        }
    }
}

/// The most scopes a refusal names one by one.
const SCOPES_NAMED: usize = 10;

/// Refuses, before anything is written, what an initial mode does only when asked:
/// `fail-if-different` on a branch whose YAML differs from reposync's, and `mirror`'s
/// deletions without `confirm_deletes`. Every scope is judged first, so that one refusal
/// names them all (`--yes` confirms exactly the deletions listed).
fn refuse_unasked(
    starts: &[ScopeStart],
    snapshot: &BranchSnapshot,
    confirm_deletes: bool,
) -> Result<(), CoreError> {
    let branch = snapshot.branch.as_str();
    let url = &snapshot.url;
    let differing: Vec<&ScopeStart> = starts.iter().filter(|s| s.differs).collect();
    let differs = match differing.as_slice() {
        [] => None,
        [one] => Some(format!(
            "branch {branch:?} of {url} already holds YAML for {} that differs from reposync's: {}",
            one.scope,
            summary(&one.diff)
        )),
        several => {
            let mut named: Vec<String> = several
                .iter()
                .take(SCOPES_NAMED)
                .map(|s| format!("{} ({})", s.scope, summary(&s.diff)))
                .collect();
            if several.len() > SCOPES_NAMED {
                named.push(format!("and {} more", several.len() - SCOPES_NAMED));
            }
            Some(format!(
                "branch {branch:?} of {url} already holds YAML that differs from reposync's in {} scopes: {}",
                several.len(),
                named.join(", ")
            ))
        }
    };
    if let Some(differs) = differs {
        return Err(CoreError::new(
            ErrorKind::Conflict,
            "sync_differs",
            format!(
                "{differs}; nothing was changed. Choose --initial import (take the branch's files, keep reposync's others), --initial mirror (take the branch's files, delete reposync's others), or --initial push (replace the branch's with reposync's)"
            ),
        ));
    }
    let deletes: Vec<&str> = starts
        .iter()
        .flat_map(|s| s.deletes.iter().map(String::as_str))
        .collect();
    if !deletes.is_empty() && !confirm_deletes {
        return Err(CoreError::new(
            ErrorKind::Conflict,
            "confirmation_required",
            format!(
                "--initial mirror would delete {} file(s) of reposync that branch {branch:?} of {url} lacks: {}; nothing was changed. Run it again with --yes to delete them, or use --initial import to keep them",
                deletes.len(),
                deletes.join(", ")
            ),
        )
        .with_field("confirm_deletes"));
    }
    Ok(())
}

/// Writes what every scope's enabling decided, in one transaction: the tree edit (checked as
/// every write is, against the tree as it will be, so a scope may refer to another's files),
/// the links with their first changesets and errors, the read, and the task's end with its
/// result.
async fn write_links(
    store: &Store,
    plan: &Plan,
    mut starts: Vec<ScopeStart>,
    snapshot: &BranchSnapshot,
    by: Option<&Person>,
    task: &TaskId,
) -> Result<(), CoreError> {
    let mut edit = TreeEdit::default();
    for start in &mut starts {
        edit.files.append(&mut start.files);
        edit.deletes.extend(start.deletes.iter().cloned());
    }
    let (changes, report) = match plan_edit(store, edit).await? {
        PlannedEdit::Ready { changes, summary } => (changes, summary),
        PlannedEdit::Rejected(report) => return Err(CoreError::refused_tree(report)),
    };
    let skipped = skipped_views(store, &plan.skipped).await?;
    let links: Vec<LinkStart<'_>> = starts
        .iter()
        .map(|start| LinkStart {
            link: &start.link,
            initial_files: &start.initial_files,
            branch_errors: &start.branch_errors,
        })
        .collect();
    let render = |linked: &[(SyncLink, LinkBacklog)], outcomes: &[(String, ChangeOutcome)]| {
        let mut by_scope: HashMap<Scope, Vec<(String, ChangeOutcome)>> = HashMap::new();
        for (path, outcome) in outcomes {
            by_scope
                .entry(Scope::of_path(path))
                .or_default()
                .push((path.clone(), *outcome));
        }
        let mut enabled = starts.iter().zip(linked).map(|(start, (link, backlog))| {
            let outcomes = by_scope.get(&start.scope).map_or(&[][..], Vec::as_slice);
            start.enabled(
                link,
                *backlog,
                &plan.connector,
                snapshot.head.as_ref(),
                &report,
                outcomes,
            )
        });
        let result = if plan.all {
            serde_json::to_string(&SyncEnabledAll {
                connector: plan.connector.spec.name.to_string(),
                url: snapshot.url.clone(),
                branch: snapshot.branch.to_string(),
                initial: plan.initial.as_str().to_owned(),
                remote_head: snapshot.head.clone(),
                linked: enabled.collect(),
                created_apps: starts
                    .iter()
                    .filter(|s| s.created)
                    .filter_map(|s| s.scope.app().map(str::to_owned))
                    .collect(),
                skipped: skipped.clone(),
            })
        } else {
            serde_json::to_string(&enabled.next())
        };
        result.unwrap_or_default()
    };
    store
        .enable_links(&EnablingSet {
            changes: &changes,
            links: &links,
            read: snapshot.read.as_ref(),
            task: Some(EnablingSetTask {
                id: task,
                result: &render,
            }),
            by,
        })
        .await
        .map_err(|error| match error {
            // Another request linked a scope while this one read the branch.
            StoreError::AlreadyExists { name, .. } if plan.all => CoreError::new(
                ErrorKind::Conflict,
                "already_linked",
                format!(
                    "{name} was linked while the branch was read; nothing was changed. Run it again: scopes linked already are left as they are"
                ),
            ),
            StoreError::AlreadyExists { .. } => CoreError::new(
                ErrorKind::Conflict,
                "already_linked",
                format!(
                    "{} was linked meanwhile; disable that first",
                    starts.first().map_or(Scope::Account, |s| s.scope.clone())
                ),
            ),
            other => other.into(),
        })?;
    for start in &starts {
        tracing::info!(%task, scope = %start.scope, branch = %snapshot.branch, initial = start.initial.as_str(), files = start.initial_files.len(), "enabled git sync");
    }
    if plan.all {
        tracing::info!(%task, linked = starts.len(), skipped = plan.skipped.len(), branch = %snapshot.branch, "enabled git sync for every scope from one read");
    }
    Ok(())
}

/// The live links an `all` request left alone, as the API shows them.
async fn skipped_views(
    store: &Store,
    skipped: &[SyncLink],
) -> Result<Vec<SyncLinkView>, CoreError> {
    if skipped.is_empty() {
        return Ok(Vec::new());
    }
    let connectors: HashMap<ConnectorId, ConnectorRecord> = store
        .list_connectors()
        .await?
        .into_iter()
        .map(|c| (c.id.clone(), c))
        .collect();
    let backlogs = store.link_backlogs().await?;
    Ok(skipped
        .iter()
        .filter_map(|link| {
            let connector = connectors.get(&link.connector_id)?;
            let backlog = backlogs.get(&link.id).copied().unwrap_or_default();
            Some(link_view(link, connector, backlog))
        })
        .collect())
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
