//! The delegate: claims tasks, runs them with `reposync-git`, and reports what happened.
//!
//! A delegate reaches the server only through a [`TaskSource`], so the same agent runs inside
//! `reposync serve` (an in-process source) and on another machine ([`HttpTaskSource`], which
//! holds nothing but a delegate token and opens no listening port). It holds no database
//! credentials: the secrets a task needs arrive with the task and live in memory, and on disk
//! only as the 0600 files `reposync-git` makes for one git operation. The agent exposes a step
//! function, [`Agent::run_next`], that tests drive directly; the loops around it are thin.
//! [`Agent::run_concurrently`] runs several tasks at once, each as its own tokio task, so
//! that one can be cancelled (its future dropped, which kills its git process group) when the
//! server takes it back.

mod http;
mod name;

use std::collections::HashMap;
use std::future::Future;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reposync_api::{
    ChangedFileRead, CommitRead, CommittedFileView, DelegateTask, FailureCode, FileContent,
    LandedView, SyncJob, SyncJobResult, SyncSpec, TaskAuth, TaskFailure, TaskOutcome, TaskSpec,
    TestConnectionSpec, UnrepresentableRead,
};
use reposync_git::{
    BranchChanges, CommitOutcome, CommitRequest, FileChange, FileChangeKind, GitAuth, GitError,
    GitErrorKind, GitRunner, LandedChangeset, LocalClone, Remote, Signature, TempRoot,
    UnrepresentableEntry,
};
use secrecy::SecretString;
use serde_json::json;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::{AbortHandle, JoinSet};

pub use http::{HttpConfig, HttpTaskSource, SetupError, run_remote};
pub use name::{DelegateName, InvalidDelegateName};
/// Why a delegate could not take its temporary folder ([`Agent::prepare`]).
pub use reposync_git::TempRootError;

/// How long one claim waits for a task before asking again.
const CLAIM_WAIT: Duration = Duration::from_secs(25);
/// How many times an outcome is offered to a source that cannot be reached (with back-off,
/// over about 26 s) before it is given up; the server then runs the task again once its
/// lease runs out.
const COMPLETE_ATTEMPTS: u32 = 8;

/// Where tasks come from and where their outcomes go.
#[async_trait::async_trait]
pub trait TaskSource: Send + Sync {
    /// Waits up to `wait` for a task this delegate may run.
    async fn claim(&self, wait: Duration) -> Result<Option<DelegateTask>, SourceError>;
    /// Reports a task's outcome.
    async fn complete(&self, task_id: &str, outcome: TaskOutcome) -> Result<(), SourceError>;
}

/// The task source failed: for a while (the server is down) or for good (the token was
/// revoked), which [`SourceError::is_fatal`] tells apart.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    /// The source cannot be reached or answered unexpectedly; asking again later may work.
    #[error("{0}")]
    Unavailable(String),
    /// The server refused the delegate's token (unknown or revoked): retrying cannot help.
    #[error("{0}")]
    Unauthorized(String),
    /// The server refused the delegate itself for good (its registration is invalid).
    #[error("{0}")]
    Rejected(String),
}

impl SourceError {
    /// Whether the delegate must stop rather than try again.
    pub fn is_fatal(&self) -> bool {
        !matches!(self, SourceError::Unavailable(_))
    }
}

/// What one step of the agent did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// No task arrived within the wait.
    Idle,
    /// A task ran; its id and whether it succeeded.
    Ran { task_id: String, succeeded: bool },
}

/// Runs tasks.
#[derive(Debug, Clone)]
pub struct Agent {
    runner: GitRunner,
    /// Where the local clones live, one folder per clone key.
    work_dir: PathBuf,
    /// One lock per clone: a clone serves one operation at a time.
    clone_locks: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
    /// The tasks [`Agent::run_concurrently`] is running, from claim until their outcome is
    /// reported, by task id.
    running: Arc<Mutex<HashMap<String, RunningTask>>>,
    /// Tells apart two runs of the same task id (claimed again after a lost lease).
    next_run: Arc<AtomicU64>,
    /// How long running tasks may finish after a shutdown was asked for.
    shutdown_grace: Duration,
}

#[derive(Debug)]
struct RunningTask {
    run: u64,
    /// `None` for the moment between listing the task and spawning it.
    abort: Option<AbortHandle>,
}

/// Removes its task from [`Agent::running`] when the task's future ends or is dropped.
struct RunningEntry {
    running: Arc<Mutex<HashMap<String, RunningTask>>>,
    task_id: String,
    run: u64,
}

impl Drop for RunningEntry {
    fn drop(&mut self) {
        let mut running = self.running.lock();
        if running
            .get(&self.task_id)
            .is_some_and(|r| r.run == self.run)
        {
            running.remove(&self.task_id);
        }
    }
}

/// A pause that doubles after each failure, from a quarter second to ten seconds.
#[derive(Debug)]
pub(crate) struct Backoff {
    next: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(250);
    const LAST: Duration = Duration::from_secs(10);

    pub(crate) fn new() -> Backoff {
        Backoff { next: Self::FIRST }
    }

    /// The pause before the next try.
    pub(crate) fn pause(&mut self) -> Duration {
        let pause = self.next;
        self.next = (pause * 2).min(Self::LAST);
        pause
    }

    pub(crate) fn reset(&mut self) {
        self.next = Self::FIRST;
    }
}

/// What a delegate found of its tools on this machine, as it registers them.
#[derive(Debug, Clone)]
pub struct Tools {
    /// git's version, or why there is no usable git (a delegate needs one).
    pub git: Result<String, GitError>,
    /// OpenSSH's version, or why there is none (only SSH connectors need it).
    pub ssh: Result<String, GitError>,
}

impl Tools {
    /// git's version as registered: `none` when there is no usable git.
    pub fn git_version(&self) -> String {
        self.git.clone().unwrap_or_else(|_| "none".to_owned())
    }

    /// OpenSSH's version as registered: `none` when there is no ssh.
    pub fn ssh_version(&self) -> String {
        self.ssh.clone().unwrap_or_else(|_| "none".to_owned())
    }
}

impl Agent {
    /// Prepares a delegate on this machine, the one way both kinds of delegate start: takes
    /// its temporary root `temp_dir` (locked to this process, and emptied, so what a killed
    /// delegate left there, key files included, goes before any git runs), and finds git and
    /// ssh. The agent keeps its clones under `work_dir`; the caller decides what a missing
    /// tool means.
    pub async fn prepare(
        work_dir: impl Into<PathBuf>,
        temp_dir: impl Into<PathBuf>,
    ) -> Result<(Agent, Tools), TempRootError> {
        let runner = GitRunner::new().temp_root(TempRoot::prepare(temp_dir)?);
        let tools = Tools {
            git: runner.version().await.map(|v| v.to_string()),
            ssh: runner.ssh_version().await,
        };
        Ok((Agent::new(runner, work_dir), tools))
    }

    /// An agent using `runner` for git, keeping its clones under `work_dir`.
    pub fn new(runner: GitRunner, work_dir: impl Into<PathBuf>) -> Agent {
        Agent {
            runner,
            work_dir: work_dir.into(),
            clone_locks: Arc::default(),
            running: Arc::default(),
            next_run: Arc::default(),
            shutdown_grace: Duration::from_secs(30),
        }
    }

    /// Sets how long [`Agent::run_concurrently`] lets running tasks finish after its shutdown
    /// signal before it stops them (30 s by default).
    pub fn shutdown_grace(mut self, grace: Duration) -> Agent {
        self.shutdown_grace = grace;
        self
    }

    /// The ids of the tasks [`Agent::run_concurrently`] is running or reporting, sorted: the
    /// leases a heartbeat extends.
    pub fn running(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.running.lock().keys().cloned().collect();
        ids.sort_unstable();
        ids
    }

    /// Stops a running task: its future is dropped, which kills its git processes, and no
    /// outcome is reported for it. False when no task with that id is running.
    pub fn cancel(&self, task_id: &str) -> bool {
        let removed = self.running.lock().remove(task_id);
        match removed {
            Some(task) => {
                // Without a handle yet, the spawner finds the task unlisted and aborts it.
                if let Some(abort) = task.abort {
                    abort.abort();
                }
                true
            }
            None => false,
        }
    }

    /// Claims one task (waiting up to `wait`), runs it and reports it.
    pub async fn run_next(
        &self,
        source: &dyn TaskSource,
        wait: Duration,
    ) -> Result<Step, SourceError> {
        let Some(task) = source.claim(wait).await? else {
            return Ok(Step::Idle);
        };
        let outcome = self.run_task(&task.spec).await;
        let succeeded = outcome.succeeded;
        source.complete(&task.id, outcome).await?;
        Ok(Step::Ran {
            task_id: task.id,
            succeeded,
        })
    }

    /// Runs tasks one at a time until `shutdown` resolves. Errors from the source are logged
    /// and retried after a pause, so a restarting server does not stop its delegates; a fatal
    /// one (a refused token) ends the loop.
    pub async fn run(&self, source: &dyn TaskSource, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => return,
                step = self.run_next(source, CLAIM_WAIT) => {
                    if let Err(error) = step {
                        if error.is_fatal() {
                            tracing::error!(%error, "the task source refused this delegate; it stops");
                            return;
                        }
                        tracing::warn!(%error, "delegate cannot reach its task source; retrying");
                        tokio::select! {
                            () = &mut shutdown => return,
                            () = tokio::time::sleep(Duration::from_secs(2)) => {}
                        }
                    }
                }
            }
        }
    }

    /// Runs up to `slots` tasks at once until `shutdown` resolves, then lets the running ones
    /// finish (for the shutdown grace) and returns. One claim is outstanding at a time, and
    /// only while a slot is free, so an idle delegate holds one long poll.
    ///
    /// Transient source errors are logged and retried with back-off. A fatal one (a refused
    /// token), from a claim or from reporting an outcome, stops every running task and is
    /// returned. Each task runs as its own tokio task, listed by [`Agent::running`] until its
    /// outcome is reported and stopped by [`Agent::cancel`].
    pub async fn run_concurrently(
        &self,
        source: Arc<dyn TaskSource>,
        slots: NonZeroUsize,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), SourceError> {
        tokio::pin!(shutdown);
        let slots = Arc::new(Semaphore::new(slots.get()));
        let mut tasks: JoinSet<Result<(), SourceError>> = JoinSet::new();
        let mut backoff = Backoff::new();
        let stopped = loop {
            let permit = tokio::select! {
                () = &mut shutdown => break Ok(()),
                fatal = next_fatal(&mut tasks) => break Err(fatal),
                permit = Arc::clone(&slots).acquire_owned() => match permit {
                    Ok(permit) => permit,
                    // The semaphore is never closed.
                    Err(_closed) => break Ok(()),
                },
            };
            let claimed = tokio::select! {
                () = &mut shutdown => break Ok(()),
                fatal = next_fatal(&mut tasks) => break Err(fatal),
                claimed = source.claim(CLAIM_WAIT) => claimed,
            };
            match claimed {
                Ok(None) => backoff.reset(),
                Ok(Some(task)) => {
                    backoff.reset();
                    self.spawn_task(&mut tasks, &source, task, permit);
                }
                Err(error) if error.is_fatal() => break Err(error),
                Err(error) => {
                    let pause = backoff.pause();
                    tracing::warn!(
                        %error,
                        retry_in_ms = u64::try_from(pause.as_millis()).unwrap_or(u64::MAX),
                        "cannot claim a task; retrying"
                    );
                    tokio::select! {
                        () = &mut shutdown => break Ok(()),
                        fatal = next_fatal(&mut tasks) => break Err(fatal),
                        () = tokio::time::sleep(pause) => {}
                    }
                }
            }
        };
        match stopped {
            Ok(()) => self.drain(&mut tasks).await,
            Err(fatal) => {
                tasks.shutdown().await;
                Err(fatal)
            }
        }
    }

    /// Lets running tasks finish for the shutdown grace, then stops the rest.
    async fn drain(&self, tasks: &mut JoinSet<Result<(), SourceError>>) -> Result<(), SourceError> {
        if tasks.is_empty() {
            return Ok(());
        }
        tracing::info!(
            running = tasks.len(),
            grace_secs = self.shutdown_grace.as_secs(),
            "stopping: letting running tasks finish"
        );
        let deadline = tokio::time::sleep(self.shutdown_grace);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                () = &mut deadline => {
                    tracing::warn!(running = tasks.len(), "stopping the tasks still running");
                    tasks.shutdown().await;
                    return Ok(());
                }
                next = tasks.join_next() => match next {
                    None => return Ok(()),
                    Some(Ok(Err(fatal))) => {
                        tasks.shutdown().await;
                        return Err(fatal);
                    }
                    Some(Ok(Ok(()))) => {}
                    Some(Err(error)) => log_join_error(&error),
                },
            }
        }
    }

    /// Starts one claimed task as a tokio task that holds `permit` (its slot) until it ends.
    fn spawn_task(
        &self,
        tasks: &mut JoinSet<Result<(), SourceError>>,
        source: &Arc<dyn TaskSource>,
        task: DelegateTask,
        permit: OwnedSemaphorePermit,
    ) {
        let agent = self.clone();
        let source = Arc::clone(source);
        let task_id = task.id.clone();
        let run = self.next_run.fetch_add(1, Ordering::Relaxed);
        // Listed before it is spawned, so that a task that ends at once finds itself listed and
        // unlists itself. The entry guard is created before the future so that it is dropped,
        // and the task unlisted, even when the future is aborted before it first runs.
        self.running
            .lock()
            .insert(task_id.clone(), RunningTask { run, abort: None });
        let entry = RunningEntry {
            running: Arc::clone(&self.running),
            task_id: task_id.clone(),
            run,
        };
        // The lock is not held across the spawn: a runtime that is shutting down drops the
        // future inside `spawn`, and with it the entry guard, which takes the lock.
        let abort = tasks.spawn(async move {
            let _entry = entry;
            let _slot = permit;
            agent.run_and_report(source.as_ref(), task).await
        });
        let mut running = self.running.lock();
        match running.get_mut(&task_id) {
            Some(listed) if listed.run == run => listed.abort = Some(abort),
            // It ended already (aborting a finished task does nothing) or was cancelled before
            // it had a handle.
            _ => abort.abort(),
        }
    }

    /// Runs a task and reports its outcome, offering it again while the source is unreachable.
    async fn run_and_report(
        &self,
        source: &dyn TaskSource,
        task: DelegateTask,
    ) -> Result<(), SourceError> {
        let started = Instant::now();
        let kind = task_kind(&task.spec);
        tracing::debug!(task = %task.id, kind, "task claimed");
        let outcome = self.run_task(&task.spec).await;
        let succeeded = outcome.succeeded;
        let code = outcome
            .result
            .get("code")
            .and_then(|c| c.as_str())
            .map(str::to_owned);
        let mut backoff = Backoff::new();
        for attempt in 1..=COMPLETE_ATTEMPTS {
            match source.complete(&task.id, outcome.clone()).await {
                Ok(()) => {
                    tracing::info!(
                        task = %task.id,
                        kind,
                        succeeded,
                        code = code.as_deref().unwrap_or(""),
                        elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                        "task finished"
                    );
                    return Ok(());
                }
                Err(error) if error.is_fatal() => return Err(error),
                Err(error) if attempt < COMPLETE_ATTEMPTS => {
                    tracing::warn!(task = %task.id, %error, attempt, "cannot report a task's outcome; retrying");
                    tokio::time::sleep(backoff.pause()).await;
                }
                Err(error) => {
                    tracing::warn!(
                        task = %task.id,
                        %error,
                        "giving up reporting a task's outcome; the server runs it again when its lease runs out"
                    );
                }
            }
        }
        Ok(())
    }

    /// Runs one task and turns every failure into an outcome; it never panics or errors.
    pub async fn run_task(&self, spec: &TaskSpec) -> TaskOutcome {
        match spec {
            TaskSpec::TestConnection(test) => self.test_connection(test).await,
            TaskSpec::Sync(sync) => self.sync(sync).await,
        }
    }

    async fn sync(&self, spec: &SyncSpec) -> TaskOutcome {
        let failure = |code: FailureCode, message: String, detail: String| {
            TaskOutcome::failed(&TaskFailure::new(code, message).with_detail(detail))
        };
        let git_failure =
            |error: GitError| failure(failure_code(error.kind), error.message, error.detail);
        // Clone keys come from the server; keep them to one safe path segment regardless.
        let key: String = spec
            .target
            .clone_key
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        if key.is_empty() {
            return failure(
                FailureCode::InvalidTask,
                "the task names no clone".into(),
                String::new(),
            );
        }
        let mut changes = Vec::new();
        if let SyncJob::CommitAndPush { files, .. } = &spec.job {
            for file in files {
                let content = match file
                    .content
                    .as_ref()
                    .map(|c| STANDARD.decode(c))
                    .transpose()
                {
                    Ok(content) => content,
                    Err(_) => {
                        return failure(
                            FailureCode::InvalidTask,
                            format!("the content of {} is not base64", file.path),
                            String::new(),
                        );
                    }
                };
                changes.push(FileChange {
                    path: file.path.clone(),
                    content,
                });
            }
        }
        let lock = {
            let mut locks = self.clone_locks.lock();
            Arc::clone(locks.entry(key.clone()).or_default())
        };
        let _one_at_a_time = lock.lock().await;
        let remote = Remote {
            url: spec.target.url.clone(),
            auth: git_auth(&spec.auth),
        };
        let runner = self
            .runner
            .clone()
            .timeout(Duration::from_secs(spec.timeout_secs.max(1)));
        let dir = self.work_dir.join("clones").join(&key);
        let clone = match LocalClone::open(&runner, &dir, &remote, &spec.target.branch).await {
            Ok(clone) => clone,
            Err(error) => return git_failure(error),
        };
        let result = match &spec.job {
            SyncJob::ReadBranch { prefix } => read_branch(&clone, &remote, prefix).await,
            SyncJob::CommitAndPush {
                base,
                author_name,
                author_email,
                summary,
                changesets,
                own_commits,
                max_attempts,
                ..
            } => {
                let author = Signature {
                    name: author_name.clone(),
                    email: author_email.clone(),
                };
                let request = CommitRequest {
                    base: base.as_deref(),
                    files: &changes,
                    author: &author,
                    summary: summary.as_deref(),
                    changesets,
                    own_commits,
                    max_attempts: *max_attempts,
                };
                clone
                    .commit_and_push(&remote, &request)
                    .await
                    .map(job_result)
            }
            SyncJob::ReadHead => {
                runner
                    .ls_remote_heads(&remote)
                    .await
                    .map(|heads| SyncJobResult::Head {
                        head: heads.branch_commit(&spec.target.branch).map(str::to_owned),
                    })
            }
            SyncJob::FetchChanges {
                since,
                prefix,
                max_commits,
            } => clone
                .fetch_changes(&remote, since.as_deref(), prefix, *max_commits)
                .await
                .map(changes_result),
        };
        match result {
            Ok(result) => TaskOutcome {
                succeeded: true,
                result: serde_json::to_value(result).unwrap_or_default(),
            },
            Err(error) => git_failure(error),
        }
    }

    async fn test_connection(&self, spec: &TestConnectionSpec) -> TaskOutcome {
        let started = Instant::now();
        let remote = Remote {
            url: spec.url.clone(),
            auth: git_auth(&spec.auth),
        };
        let runner = self
            .runner
            .clone()
            .timeout(Duration::from_secs(spec.timeout_secs.max(1)));
        let heads = runner.ls_remote_heads(&remote).await;
        let elapsed = || u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let failure = |code: FailureCode, message: String, detail: String| TaskOutcome {
            succeeded: false,
            result: json!({
                "ok": false, "url": spec.url, "branch": spec.branch, "code": code,
                "message": message, "detail": detail, "duration_ms": elapsed(),
            }),
        };
        let heads = match heads {
            Ok(heads) => heads,
            Err(error) => {
                return failure(failure_code(error.kind), error.message, error.detail);
            }
        };
        let (branch, commit) = match &spec.branch {
            Some(branch) => match heads.branch_commit(branch) {
                Some(commit) => (Some(branch.clone()), Some(commit.to_owned())),
                None => {
                    let mut names: Vec<&str> = heads
                        .branches
                        .iter()
                        .filter_map(|r| r.name.strip_prefix("refs/heads/"))
                        .collect();
                    names.sort_unstable();
                    let listing = match names.len() {
                        0 => "the repository has no branches yet".to_owned(),
                        n if n <= 10 => format!("branches there: {}", names.join(", ")),
                        n => format!("{n} branches there, including {}", names[..10].join(", ")),
                    };
                    return failure(
                        FailureCode::BranchNotFound,
                        format!("the repository has no branch {branch:?}; {listing}"),
                        String::new(),
                    );
                }
            },
            None => {
                let default = heads.default_branch.clone();
                let commit = default
                    .as_deref()
                    .and_then(|b| heads.branch_commit(b))
                    .map(str::to_owned);
                (default, commit)
            }
        };
        TaskOutcome {
            succeeded: true,
            result: json!({
                "ok": true, "url": spec.url, "branch": branch, "commit": commit,
                "duration_ms": elapsed(),
            }),
        }
    }
}

/// Waits for a running task to end with a fatal source error; finished and cancelled tasks
/// are reaped on the way. Pending forever while no task runs.
async fn next_fatal(tasks: &mut JoinSet<Result<(), SourceError>>) -> SourceError {
    loop {
        match tasks.join_next().await {
            None => std::future::pending::<()>().await,
            Some(Ok(Err(fatal))) => return fatal,
            Some(Ok(Ok(()))) => {}
            Some(Err(error)) => log_join_error(&error),
        }
    }
}

fn log_join_error(error: &tokio::task::JoinError) {
    // A cancelled task was stopped on purpose (Agent::cancel); a panic is a bug.
    if error.is_panic() {
        tracing::error!(%error, "a task panicked");
    }
}

/// A short name of a task's kind, for logs.
fn task_kind(spec: &TaskSpec) -> &'static str {
    match spec {
        TaskSpec::TestConnection(_) => "test_connection",
        TaskSpec::Sync(sync) => match sync.job {
            SyncJob::ReadBranch { .. } => "read_branch",
            SyncJob::CommitAndPush { .. } => "commit_and_push",
            SyncJob::FetchChanges { .. } => "fetch_changes",
            SyncJob::ReadHead => "read_head",
        },
    }
}

fn job_result(outcome: CommitOutcome) -> SyncJobResult {
    match outcome {
        CommitOutcome::Pushed {
            commit,
            parent,
            attempts,
            files,
            landed,
        } => SyncJobResult::Pushed {
            commit,
            parent,
            attempts,
            files: files
                .into_iter()
                .map(|f| CommittedFileView {
                    op: f.op,
                    path: f.path,
                })
                .collect(),
            landed: landed_views(landed),
        },
        CommitOutcome::NothingToCommit { head, landed } => SyncJobResult::NothingToCommit {
            head,
            landed: landed_views(landed),
        },
        CommitOutcome::Conflict { head, files } => SyncJobResult::Conflict {
            head,
            files: files
                .into_iter()
                .map(|f| FileContent {
                    path: f.path,
                    content: f.theirs.map(|b| STANDARD.encode(b)),
                })
                .collect(),
        },
    }
}

/// The protocol's failure code of a git error; a new kind of error must be given one here.
fn failure_code(kind: GitErrorKind) -> FailureCode {
    match kind {
        GitErrorKind::HostUnreachable => FailureCode::HostUnreachable,
        GitErrorKind::TlsUntrusted => FailureCode::TlsUntrusted,
        GitErrorKind::HostKeyUnknown => FailureCode::HostKeyUnknown,
        GitErrorKind::HostKeyMismatch => FailureCode::HostKeyMismatch,
        GitErrorKind::AuthFailed => FailureCode::AuthFailed,
        GitErrorKind::RepoNotFound => FailureCode::RepoNotFound,
        GitErrorKind::Timeout => FailureCode::Timeout,
        GitErrorKind::GitUnavailable => FailureCode::GitUnavailable,
        GitErrorKind::SshUnavailable => FailureCode::SshUnavailable,
        GitErrorKind::PushRejected => FailureCode::PushRejected,
        GitErrorKind::PushRaced => FailureCode::PushRaced,
        GitErrorKind::InvalidRequest => FailureCode::InvalidRequest,
        GitErrorKind::Other => FailureCode::GitFailed,
    }
}

fn landed_views(landed: Vec<LandedChangeset>) -> Vec<LandedView> {
    landed
        .into_iter()
        .map(|l| LandedView {
            changeset: l.changeset,
            commit: l.commit,
        })
        .collect()
}

fn changes_result(changes: BranchChanges) -> SyncJobResult {
    let encode = |content: Option<Vec<u8>>| content.map(|b| STANDARD.encode(b));
    match changes {
        BranchChanges::Gone => SyncJobResult::BranchGone,
        BranchChanges::Commits {
            head,
            commits,
            complete,
        } => SyncJobResult::Commits {
            head,
            complete,
            commits: commits
                .into_iter()
                .map(|c| CommitRead {
                    commit: c.commit,
                    parent: Some(c.parent),
                    message: c.message,
                    author_name: c.author_name,
                    author_email: c.author_email,
                    committed_at: c.committed_at,
                    files: c
                        .files
                        .into_iter()
                        .map(|f| {
                            let (op, from) = match f.change {
                                FileChangeKind::Added => ("add", None),
                                FileChangeKind::Modified => ("modify", None),
                                FileChangeKind::Deleted => ("delete", None),
                                FileChangeKind::Renamed { from } => ("rename", Some(from)),
                            };
                            ChangedFileRead {
                                op: op.to_owned(),
                                path: f.path,
                                from,
                                content: encode(f.content),
                            }
                        })
                        .collect(),
                    unrepresentable: unrepresentable_reads(c.unrepresentable),
                })
                .collect(),
        },
        BranchChanges::Snapshot {
            head,
            files,
            unrepresentable,
            since_lost,
        } => SyncJobResult::Snapshot {
            head,
            since_lost,
            files: files
                .into_iter()
                .map(|(path, bytes)| FileContent {
                    path,
                    content: Some(STANDARD.encode(bytes)),
                })
                .collect(),
            unrepresentable: unrepresentable_reads(unrepresentable),
        },
    }
}

/// Entries that reposync cannot hold as files, passed on as read: their paths as base64
/// bytes, since they may not be text.
fn unrepresentable_reads(entries: Vec<UnrepresentableEntry>) -> Vec<UnrepresentableRead> {
    entries
        .into_iter()
        .map(|entry| UnrepresentableRead {
            op: match entry.change {
                FileChangeKind::Added => "add",
                FileChangeKind::Deleted => "delete",
                FileChangeKind::Modified | FileChangeKind::Renamed { .. } => "modify",
            }
            .to_owned(),
            path: STANDARD.encode(&entry.path),
            problem: entry.problem,
        })
        .collect()
}

async fn read_branch(
    clone: &LocalClone,
    remote: &Remote,
    prefix: &str,
) -> Result<SyncJobResult, GitError> {
    let Some(head) = clone.fetch(remote).await? else {
        return Ok(SyncJobResult::Branch {
            head: None,
            files: Vec::new(),
            unrepresentable: Vec::new(),
        });
    };
    let tree = clone.read_files(remote, &head, prefix).await?;
    let files = tree
        .files
        .into_iter()
        .map(|(path, bytes)| FileContent {
            path,
            content: Some(STANDARD.encode(bytes)),
        })
        .collect();
    Ok(SyncJobResult::Branch {
        head: Some(head),
        files,
        unrepresentable: unrepresentable_reads(tree.unrepresentable),
    })
}

fn git_auth(auth: &TaskAuth) -> GitAuth {
    match auth {
        TaskAuth::Https {
            username,
            password,
            ca_certificate,
        } => GitAuth::Https {
            username: username.clone(),
            password: SecretString::from(password.expose()),
            ca_pem: ca_certificate.clone(),
        },
        TaskAuth::Ssh {
            private_key,
            known_hosts,
        } => GitAuth::Ssh {
            private_key: SecretString::from(private_key.expose()),
            known_hosts: known_hosts.clone(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_refusals_are_fatal() {
        assert!(!SourceError::Unavailable("database is locked".into()).is_fatal());
        assert!(SourceError::Unauthorized("revoked".into()).is_fatal());
        assert!(SourceError::Rejected("bad name".into()).is_fatal());
    }

    #[test]
    fn backoff_doubles_up_to_ten_seconds_and_resets() {
        let mut backoff = Backoff::new();
        let pauses: Vec<u64> = (0..8)
            .map(|_| u64::try_from(backoff.pause().as_millis()).unwrap_or(u64::MAX))
            .collect();
        assert_eq!(pauses, [250, 500, 1000, 2000, 4000, 8000, 10_000, 10_000]);
        backoff.reset();
        assert_eq!(backoff.pause(), Duration::from_millis(250));
    }
}
