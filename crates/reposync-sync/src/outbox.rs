//! The outbox worker: waiting changesets → one `CommitAndPush` per branch → recorded outcome.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reposync_api::{FailureCode, FileContent, LandedView, MadeBy, SyncJob, SyncJobResult};
use reposync_model::{AttemptId, LinkId, ObjectId, TaskId};
use reposync_store::{
    AttemptEnd, ConflictRecord, Fence, FileChangeRecord, Landed, StartedAttempt, Store, StoreError,
    SyncLink,
};

use crate::leases::{BranchLeases, DEFAULT_BRANCH_LEASE};
use crate::pacing::{Backoff, gather_burst};

/// Runs sync jobs on delegates.
#[async_trait::async_trait]
pub trait Dispatch: Send + Sync {
    /// Runs `job` for commit attempt `attempt_id` on a delegate that may use the link's
    /// connector, on the link's branch, and waits for its result. The attempt records the
    /// task, so activity can name the delegate that ran it.
    async fn run_job(
        &self,
        link: &SyncLink,
        attempt_id: &AttemptId,
        job: SyncJob,
    ) -> Result<SyncJobResult, DispatchFailure>;

    /// Checks, before anything is pushed, that the link's connector and the connectors its
    /// scope's entities depend on pass their Test (the last one, or a fresh one).
    async fn check_connections(&self, _link: &SyncLink) -> Result<(), ConnectionFailure> {
        Ok(())
    }
}

/// A connection that did not pass its Test: its Source Repo Provider file, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionFailure {
    pub connector_path: String,
    pub message: String,
}

/// A delegate's answer to a sync job, with the task that carried it: what the store records
/// of the job names the task, and through it the delegate that ran it.
#[derive(Debug, Clone)]
pub struct JobAnswer {
    pub result: SyncJobResult,
    /// `None` for an answer no task carried (a test's scripted delegate).
    pub task: Option<TaskId>,
}

/// A job that did not succeed: the classified code and what to tell a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DispatchFailure {
    pub code: FailureCode,
    pub message: String,
}

impl DispatchFailure {
    pub fn new(code: FailureCode, message: impl Into<String>) -> DispatchFailure {
        DispatchFailure {
            code,
            message: message.into(),
        }
    }
}

/// `code: message`, as sync errors and the inbox's log record a failure.
impl std::fmt::Display for DispatchFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

/// Parses a commit id in a delegate's result, `field` naming it. The protocol carries ids as
/// text, which the delegate parsed from git's output; one that does not parse makes the
/// whole result invalid (`invalid_task`), never a panic or a row the store cannot read back.
pub fn result_commit(field: &str, text: &str) -> Result<ObjectId, DispatchFailure> {
    ObjectId::parse(text).map_err(|e| {
        DispatchFailure::new(
            FailureCode::InvalidTask,
            format!(
                "the delegate's result has an invalid {field}: {}",
                e.message
            ),
        )
    })
}

/// Where a link's work was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Worked {
    /// By this replica (or there was nothing to do).
    Here,
    /// By another replica, which holds the lease on the link's branch.
    Elsewhere,
}

/// How many times a delegate re-fetches and retries a push the remote raced.
const PUSH_ATTEMPTS: u32 = 5;
/// A burst of changes is gathered until it has been quiet this long…
const QUIET: Duration = Duration::from_millis(25);
/// …or its first change has waited this long, so a steady stream still goes out.
const MAX_GATHER: Duration = Duration::from_millis(250);
/// Back-off after a failure that may pass: doubles from the first to the last.
const BACKOFF_FIRST: Duration = Duration::from_secs(1);
const BACKOFF_LAST: Duration = Duration::from_secs(60);

/// The reposync → Git worker.
pub struct Outbox {
    store: Store,
    dispatch: Arc<dyn Dispatch>,
    backoff: Backoff,
    busy: Arc<Mutex<HashSet<LinkId>>>,
    /// The branches this replica works on.
    leases: Arc<BranchLeases>,
    /// Links whose branch another replica held when last looked at, and when: they are
    /// looked at again after [`LOOK_AGAIN`], not at every wake-up.
    elsewhere: Mutex<HashMap<LinkId, tokio::time::Instant>>,
}

/// How long a link whose branch another replica works on is left alone before this replica
/// tries its lease again (that replica may have died meanwhile).
const LOOK_AGAIN: Duration = Duration::from_secs(1);

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox").finish_non_exhaustive()
    }
}

impl Outbox {
    pub fn new(store: Store, dispatch: Arc<dyn Dispatch>) -> Outbox {
        Outbox {
            backoff: Backoff::new(BACKOFF_FIRST, BACKOFF_LAST, store.clock()),
            leases: BranchLeases::new(store.clone(), DEFAULT_BRANCH_LEASE),
            store,
            dispatch,
            busy: Arc::default(),
            elsewhere: Mutex::default(),
        }
    }

    /// Works on the branches `leases` holds, shared with this replica's inbox.
    pub fn with_leases(mut self, leases: Arc<BranchLeases>) -> Outbox {
        self.leases = leases;
        self
    }

    /// Works until `shutdown` resolves: wakes when changesets are written (and every second,
    /// for back-offs that ended), gathers a burst, and pushes each branch's waiting changesets
    /// as one commit. Branches are pushed concurrently, each by one attempt at a time.
    pub async fn run(self: Arc<Self>, shutdown: impl std::future::Future<Output = ()>) {
        let signal = self.store.outbox_signal();
        tokio::pin!(shutdown);
        let mut attempts = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                () = signal.notified() => gather_burst(&signal, QUIET, MAX_GATHER).await,
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
                Some(_) = attempts.join_next(), if !attempts.is_empty() => {}
            }
            let ready = match self.ready_links().await {
                Ok(ready) => ready,
                Err(error) => {
                    tracing::warn!(%error, "cannot read the sync outbox");
                    continue;
                }
            };
            for link_id in ready {
                let outbox = Arc::clone(&self);
                let signal = Arc::clone(&signal);
                attempts.spawn(async move {
                    match outbox.push_link(&link_id).await {
                        // Changes may have arrived while this branch was busy.
                        Ok(Worked::Here) => signal.notify_one(),
                        Ok(Worked::Elsewhere) => {}
                        Err(error) => {
                            tracing::warn!(link = %link_id, %error, "sync attempt failed");
                            signal.notify_one();
                        }
                    }
                });
            }
        }
        // An attempt cut off here is found `running` at the next start and planned again.
        attempts.abort_all();
    }

    /// One round, for tests: pushes every branch with waiting changesets, one after the other.
    pub async fn step(&self) -> Result<usize, StoreError> {
        let ready = self.ready_links().await?;
        for link_id in &ready {
            self.push_link(link_id).await?;
        }
        Ok(ready.len())
    }

    /// Links with waiting changesets that are neither being pushed nor backing off; each
    /// returned link is marked busy until its push ends.
    async fn ready_links(&self) -> Result<Vec<LinkId>, StoreError> {
        let waiting = self.store.links_with_waiting().await?;
        let now = tokio::time::Instant::now();
        self.elsewhere
            .lock()
            .retain(|_, since| now.duration_since(*since) < LOOK_AGAIN);
        let elsewhere = self.elsewhere.lock();
        let mut busy = self.busy.lock();
        let mut ready = Vec::new();
        for (link_id, _) in waiting {
            if !self.backoff.is_waiting(link_id.as_str())
                && !elsewhere.contains_key(&link_id)
                && busy.insert(link_id.clone())
            {
                ready.push(link_id);
            }
        }
        Ok(ready)
    }

    async fn push_link(&self, link_id: &LinkId) -> Result<Worked, StoreError> {
        // Every line the attempt logs, and the tasks it waits on, carry the link.
        let result = tracing::Instrument::instrument(
            self.attempt(link_id),
            tracing::info_span!("outbox", link = %link_id),
        )
        .await;
        self.busy.lock().remove(link_id);
        result
    }

    /// One commit attempt for a link: every changeset waiting for it goes into one commit.
    ///
    /// The attempt converges on state, not on a replay of events: it asks the delegate to make
    /// every path the changesets touched hold what the store holds now (or nothing), compared
    /// with the branch as fetched. A change whose earlier push landed though its answer was
    /// lost is found on the branch by its trailer and is not carried again, and a file created
    /// then deleted is deleted from Git if its creation landed meanwhile.
    async fn attempt(&self, link_id: &LinkId) -> Result<Worked, StoreError> {
        let link = self.store.link_by_id(link_id).await?;
        // The branch's work is one replica's at a time: while another holds its lease, that
        // one pushes these changesets.
        let fence = match self.store.branch_of_link(&link).await? {
            Some(branch) => match self.leases.hold(&branch.id).await? {
                Some(fence) => Some(fence),
                None => {
                    self.elsewhere
                        .lock()
                        .insert(link_id.clone(), tokio::time::Instant::now());
                    return Ok(Worked::Elsewhere);
                }
            },
            None => None,
        };
        let fence = fence.as_ref();
        let Some(StartedAttempt {
            attempt,
            changesets,
            paths,
            contents: current,
        }) = self.store.start_attempt(link_id, fence).await?
        else {
            return Ok(Worked::Here);
        };
        let connector = match self.store.get_connector_by_id(&link.connector_id).await {
            Ok(connector) => connector,
            Err(StoreError::NotFound { .. }) => {
                let end = AttemptEnd::Failed {
                    code: FailureCode::ConnectorGone.to_string(),
                    message: "the link's connector no longer exists".into(),
                };
                return self
                    .finish(&attempt.id, &end, fence)
                    .await
                    .map(|()| Worked::Here);
            }
            Err(error) => return Err(error),
        };
        if let Err(failure) = self.dispatch.check_connections(&link).await {
            let end = AttemptEnd::Held {
                connector_path: failure.connector_path.clone(),
                message: format!(
                    "{}; nothing is pushed until it passes a Test (retried with back-off)",
                    failure.message
                ),
            };
            tracing::warn!(link = %link_id, connector = %failure.connector_path, "sync held: a connection failed its Test");
            self.note_backoff(link_id, &end);
            return self
                .finish(&attempt.id, &end, fence)
                .await
                .map(|()| Worked::Here);
        }
        // The base is where the Git -> reposync side stands: commits after it that are not
        // ours are changes reposync has not seen, which a commit must never overwrite.
        let base = match self.store.branch_of_link(&link).await? {
            Some(branch) => branch.processed_commit,
            None => link.base_commit.clone(),
        };
        let own_commits = self.store.unread_own_commits(&link).await?;
        let job = SyncJob::CommitAndPush {
            base: base.map(ObjectId::into_string),
            author_name: connector.spec.author_name.clone(),
            author_email: connector.spec.author_email.to_string(),
            summary: connector.spec.commit_message.clone(),
            changesets: changesets.iter().map(|c| c.id.clone()).collect(),
            made_by: changesets
                .iter()
                .filter_map(|c| {
                    Some(MadeBy {
                        changeset: c.id.clone(),
                        by: c.by.clone()?,
                    })
                })
                .collect(),
            author_from_user: connector.spec.author_from_user,
            own_commits: own_commits.into_iter().map(ObjectId::into_string).collect(),
            files: paths
                .iter()
                .map(|path| FileContent {
                    path: path.clone(),
                    content: current.get(path).map(|c| STANDARD.encode(c)),
                })
                .collect(),
            max_attempts: PUSH_ATTEMPTS,
        };
        let end = match self.dispatch.run_job(&link, &attempt.id, job).await {
            // A result that does not read as a push's fails the attempt like any task that
            // cannot succeed: the changesets stop until `sync retry`.
            Ok(result) => {
                attempt_end(result, &current).unwrap_or_else(|invalid| AttemptEnd::Failed {
                    code: invalid.code.to_string(),
                    message: invalid.message,
                })
            }
            // Retrying cannot help until a person acts: the changesets stop until `sync retry`.
            Err(failure) if failure.code.is_permanent() => AttemptEnd::Failed {
                code: failure.code.to_string(),
                message: failure.message,
            },
            Err(failure) => AttemptEnd::Retry {
                message: failure.to_string(),
                at_once: false,
            },
        };
        self.note_backoff(link_id, &end);
        match &end {
            AttemptEnd::Pushed {
                commit,
                files,
                landed,
            } => {
                tracing::info!(
                    link = %link_id,
                    commit = commit.as_ref().map_or("none", ObjectId::as_str),
                    files = files.len(),
                    changesets = changesets.len(),
                    landed_before = landed.len(),
                    "pushed"
                );
            }
            AttemptEnd::Conflict { files, .. } => {
                tracing::warn!(
                    link = %link_id,
                    files = files.len(),
                    "sync conflict: not pushed"
                );
            }
            AttemptEnd::Failed { code, message } => {
                tracing::warn!(link = %link_id, code, message, "push failed; retry by hand");
            }
            AttemptEnd::Retry { message, .. } => {
                tracing::info!(link = %link_id, message, "push will be retried");
            }
            AttemptEnd::Held { .. } => {}
        }
        self.finish(&attempt.id, &end, fence)
            .await
            .map(|()| Worked::Here)
    }

    /// Records how an attempt ended, and counts it.
    async fn finish(
        &self,
        attempt_id: &AttemptId,
        end: &AttemptEnd,
        fence: Option<&Fence>,
    ) -> Result<(), StoreError> {
        crate::measure::attempt_ended(end);
        self.store.finish_attempt(attempt_id, end, fence).await
    }

    fn note_backoff(&self, link_id: &LinkId, end: &AttemptEnd) {
        match end {
            AttemptEnd::Retry { at_once: true, .. } => self.backoff.succeeded(link_id.as_str()),
            AttemptEnd::Retry { .. } | AttemptEnd::Held { .. } => {
                self.backoff.failed(link_id.as_str());
            }
            _ => self.backoff.succeeded(link_id.as_str()),
        }
    }
}

/// How an attempt ends, from the result of its `CommitAndPush` job; `current` holds the
/// contents the job asked for, by path. A result that is not a push's, or whose commit ids do
/// not parse, is invalid.
fn attempt_end(
    result: SyncJobResult,
    current: &HashMap<String, Vec<u8>>,
) -> Result<AttemptEnd, DispatchFailure> {
    let landed = |views: Vec<LandedView>| -> Result<Vec<Landed>, DispatchFailure> {
        views
            .into_iter()
            .map(|l| {
                Ok(Landed {
                    commit: result_commit("landed commit", &l.commit)?,
                    changeset: l.changeset,
                })
            })
            .collect()
    };
    Ok(match result {
        SyncJobResult::Pushed {
            commit,
            files,
            landed: found,
            ..
        } => AttemptEnd::Pushed {
            commit: Some(result_commit("commit", &commit)?),
            files: files
                .into_iter()
                .map(|f| FileChangeRecord {
                    op: f.op,
                    path: f.path,
                })
                .collect(),
            landed: landed(found)?,
        },
        SyncJobResult::NothingToCommit { landed: found, .. } => AttemptEnd::Pushed {
            commit: None,
            files: Vec::new(),
            landed: landed(found)?,
        },
        SyncJobResult::Conflict { head, files } => {
            let head = result_commit("head", &head)?;
            let conflicts: Vec<ConflictRecord> = files
                .into_iter()
                .map(|f| ConflictRecord {
                    ours: current.get(&f.path).cloned(),
                    theirs: f.content.and_then(|c| STANDARD.decode(c).ok()),
                    path: f.path,
                })
                .filter(|c| c.ours != c.theirs)
                .collect();
            if conflicts.is_empty() {
                // The store changed to what the remote holds since the job was sent:
                // plan again, nothing is overwritten.
                AttemptEnd::Retry {
                    message: format!("the remote already held these changes at {head}"),
                    at_once: true,
                }
            } else {
                AttemptEnd::Conflict {
                    head,
                    files: conflicts,
                }
            }
        }
        SyncJobResult::Branch { .. }
        | SyncJobResult::BranchGone
        | SyncJobResult::Head { .. }
        | SyncJobResult::Commits { .. }
        | SyncJobResult::Snapshot { .. } => {
            return Err(DispatchFailure::new(
                FailureCode::InvalidTask,
                "the delegate answered a push with a branch reading",
            ));
        }
    })
}
