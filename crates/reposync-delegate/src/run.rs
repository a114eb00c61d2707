//! The task loop: claim a task, run it, report its outcome; one at a time ([`Agent::run`]) or
//! several at once ([`Agent::run_concurrently`]), each a tokio task that can be cancelled.

use std::collections::HashMap;
use std::future::Future;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use reposync_api::{DelegateTask, FailureCode, SyncJob, TaskFailure, TaskOutcome, TaskSpec};
use reposync_model::TaskId;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use crate::agent::{Agent, RunningTask};
use crate::backoff::Backoff;
use crate::source::{SourceError, TaskSource};

/// How long one claim waits for a task before asking again.
const CLAIM_WAIT: Duration = Duration::from_secs(25);

/// How many times an outcome is offered to a source that cannot be reached (with back-off,
/// over about 26 s) before it is given up; the server then runs the task again once its
/// lease runs out.
const COMPLETE_ATTEMPTS: u32 = 8;

/// What one step of the agent did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// No task arrived within the wait.
    Idle,
    /// A task ran; its id and whether it succeeded.
    Ran { task_id: TaskId, succeeded: bool },
}

/// Removes its task from [`Agent::running`] when the task's future ends or is dropped.
struct RunningEntry {
    running: Arc<Mutex<HashMap<TaskId, RunningTask>>>,
    task_id: TaskId,
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

impl Agent {
    /// Runs a task inside a span naming it, so that every line its work logs carries the
    /// task's id and kind; a fetch's archive is handed to `source` before the outcome comes
    /// back, and a fetch whose archive cannot be handed over has failed.
    async fn run_task_in_span(
        &self,
        source: &dyn TaskSource,
        task: &DelegateTask,
    ) -> Result<TaskOutcome, SourceError> {
        let span = tracing::info_span!("task", task = %task.id, kind = task_kind(&task.spec));
        let run = tracing::Instrument::instrument(self.run_claimed(&task.spec), span).await;
        let Some(archive) = run.archive else {
            return Ok(run.outcome);
        };
        let mut backoff = Backoff::new();
        let mut attempt = 1;
        loop {
            match source.upload_archive(&task.id, archive.path()).await {
                Ok(()) => {
                    tracing::debug!(task = %task.id, bytes = archive.bytes, "handed the fetch's archive to the server");
                    return Ok(run.outcome);
                }
                Err(error) if error.is_fatal() => return Err(error),
                Err(error) if attempt < COMPLETE_ATTEMPTS => {
                    tracing::warn!(task = %task.id, %error, attempt, "cannot hand the fetch's archive to the server; retrying");
                    tokio::time::sleep(backoff.pause()).await;
                    attempt += 1;
                }
                Err(error) => {
                    return Ok(TaskOutcome::failed(&TaskFailure::new(
                        FailureCode::Internal,
                        format!(
                            "the delegate could not hand the fetched files to the server: {error}"
                        ),
                    )));
                }
            }
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
        let outcome = self.run_task_in_span(source, &task).await?;
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
        let outcome = self.run_task_in_span(source, &task).await?;
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
        TaskSpec::FetchFiles(_) => "fetch_files",
    }
}
