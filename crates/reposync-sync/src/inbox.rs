//! The inbox worker (Git → reposync): branches with a newly announced head are read commit by
//! commit, and each commit is applied, in order, one at a time per branch.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reposync_api::{CommitRead, SyncJobResult, UnrepresentableRead};
use reposync_model::{BranchId, ChangesetId, ObjectId, PathProblem};
use reposync_store::{Fence, Store, StoreError, SyncBranch, now_millis};

use crate::leases::{BranchLeases, DEFAULT_BRANCH_LEASE};
use crate::outbox::{DispatchFailure, JobAnswer, Worked, result_commit};
use crate::pacing::{Backoff, gather_burst};
use crate::reads::read_of;

/// A burst of announced heads is gathered until it has been quiet this long…
const QUIET: Duration = Duration::from_millis(5);
/// …or for at most this long.
const MAX_GATHER: Duration = Duration::from_millis(250);
/// How many commits one read returns at most; a longer history is read in several rounds.
const COMMITS_PER_READ: usize = 200;
/// Back-off after a read or apply that failed: doubles from the first to the last.
const BACKOFF_FIRST: Duration = Duration::from_secs(1);
const BACKOFF_LAST: Duration = Duration::from_secs(60);

/// What a file read from Git became in a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadChange {
    Added,
    Modified,
    Deleted,
    Renamed { from: String },
}

/// A file of a commit read from Git, with its content after the commit (`None` if deleted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadFile {
    pub path: String,
    pub change: ReadChange,
    pub content: Option<Vec<u8>>,
}

/// An entry of a commit read from Git that reposync cannot hold as a file: a path that is not
/// UTF-8 or breaks [`reposync_model::RepoPath`]'s rule, a symbolic link, a submodule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnrepresentableFile {
    /// The path as git stores it, which may not be UTF-8.
    pub path: Vec<u8>,
    pub problem: PathProblem,
    /// Added, modified or deleted; never renamed.
    pub change: ReadChange,
}

/// One commit read from a branch, or the whole branch read at once (`snapshot`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadCommit {
    pub commit: ObjectId,
    pub message: String,
    pub author: String,
    pub files: Vec<ReadFile>,
    /// The entries of the commit (or of the branch, for a snapshot) that are not files
    /// reposync can hold; each becomes a sync error, and the rest of the commit applies.
    pub unrepresentable: Vec<UnrepresentableFile>,
    /// The branch as a whole: files of linked scopes that it lacks are deletions.
    pub snapshot: bool,
}

impl ReadCommit {
    /// The changeset ids named by `Reposync-Changeset:` trailers in the message.
    pub fn changeset_ids(&self) -> Vec<ChangesetId> {
        reposync_model::commit::changeset_ids(&self.message)
            .into_iter()
            .map(ChangesetId::new)
            .collect()
    }
}

/// The server side of reading branches: delegates to run the reads on, and the tree to apply
/// commits to.
#[async_trait::async_trait]
pub trait Inbound: Send + Sync {
    /// Runs a `FetchChanges` job for the branch on a delegate; the answer names its task.
    async fn fetch_changes(
        &self,
        branch: &SyncBranch,
        since: Option<&ObjectId>,
        max_commits: usize,
    ) -> Result<JobAnswer, DispatchFailure>;

    /// Applies one commit to the tree and records it (its errors, the branch's position) in
    /// the same transaction.
    /// `fence` is the lease the read was made under; the store refuses the commit once
    /// another replica holds the branch.
    async fn apply(
        &self,
        branch: &SyncBranch,
        commit: &ReadCommit,
        fence: Option<&Fence>,
    ) -> Result<(), String>;

    /// Where the branch points now (`git ls-remote` on a delegate), for the poller.
    async fn read_head(&self, branch: &SyncBranch) -> Result<Option<ObjectId>, DispatchFailure>;
}

/// The Git → reposync worker.
pub struct Inbox {
    store: Store,
    inbound: Arc<dyn Inbound>,
    /// How often each branch is polled, so that a missed webhook is never a lost change;
    /// `None` turns polling off. A connector may set its own interval.
    poll_every: Option<Duration>,
    backoff: Backoff,
    busy: Arc<Mutex<HashSet<String>>>,
    /// The branches this replica works on.
    leases: Arc<BranchLeases>,
    /// Branches another replica held when last looked at, and when: looked at again after
    /// [`LOOK_AGAIN`], not at every wake-up.
    elsewhere: Mutex<HashMap<BranchId, tokio::time::Instant>>,
}

/// How long a branch another replica works on is left alone before this replica tries its
/// lease again (that replica may have died meanwhile).
const LOOK_AGAIN: Duration = Duration::from_secs(1);

impl std::fmt::Debug for Inbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbox").finish_non_exhaustive()
    }
}

impl Inbox {
    pub fn new(store: Store, inbound: Arc<dyn Inbound>) -> Inbox {
        Inbox {
            backoff: Backoff::new(BACKOFF_FIRST, BACKOFF_LAST, store.clock()),
            leases: BranchLeases::new(store.clone(), DEFAULT_BRANCH_LEASE),
            store,
            inbound,
            poll_every: None,
            busy: Arc::default(),
            elsewhere: Mutex::default(),
        }
    }

    /// Works on the branches `leases` holds, shared with this replica's outbox.
    pub fn with_leases(mut self, leases: Arc<BranchLeases>) -> Inbox {
        self.leases = leases;
        self
    }

    /// The lease on `branch`, or `None` (remembered for [`LOOK_AGAIN`]) while another replica
    /// holds it and so does its work.
    async fn hold(&self, branch: &SyncBranch) -> Result<Option<Fence>, String> {
        let fence = self
            .leases
            .hold(&branch.id)
            .await
            .map_err(|e| e.to_string())?;
        if fence.is_none() {
            self.elsewhere
                .lock()
                .insert(branch.id.clone(), tokio::time::Instant::now());
        }
        Ok(fence)
    }

    /// Whether another replica held `branch` a moment ago.
    fn recently_elsewhere(&self, branch: &BranchId) -> bool {
        let now = tokio::time::Instant::now();
        let mut elsewhere = self.elsewhere.lock();
        elsewhere.retain(|_, since| now.duration_since(*since) < LOOK_AGAIN);
        elsewhere.contains_key(branch)
    }

    /// Polls every branch this often (`ls-remote` through a delegate), and reads it when its
    /// head moved without a webhook saying so; a connector's own interval wins.
    pub fn poll_every(mut self, interval: Option<Duration>) -> Inbox {
        self.poll_every = interval.filter(|i| !i.is_zero());
        self
    }

    /// Works until `shutdown` resolves: wakes when a head is queued (and every second, for
    /// back-offs that ended), and reads each such branch, one read at a time per branch.
    pub async fn run(self: Arc<Self>, shutdown: impl std::future::Future<Output = ()>) {
        let signal = self.store.inbox_signal();
        tokio::pin!(shutdown);
        let mut reads = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                // A burst of deliveries for one branch is read once.
                () = signal.notified() => gather_burst(&signal, QUIET, MAX_GATHER).await,
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
                Some(_) = reads.join_next(), if !reads.is_empty() => {}
            }
            let ready = match self.ready_branches().await {
                Ok(ready) => ready,
                Err(error) => {
                    tracing::warn!(%error, "cannot read the sync inbox");
                    continue;
                }
            };
            for branch in ready {
                let inbox = Arc::clone(&self);
                let signal = Arc::clone(&signal);
                reads.spawn(async move {
                    if inbox.read_and_release(&branch).await == Worked::Here {
                        // A head may have been announced while this branch was busy.
                        signal.notify_one();
                    }
                });
            }
            for branch in self.due_polls().await {
                let inbox = Arc::clone(&self);
                reads.spawn(async move { inbox.poll(&branch).await });
            }
        }
        reads.abort_all();
    }

    /// One round, for tests: reads every branch with a queued head, one after the other.
    pub async fn step(&self) -> Result<usize, StoreError> {
        let ready = self.ready_branches().await?;
        for branch in &ready {
            self.read_and_release(branch).await;
        }
        Ok(ready.len())
    }

    /// Branches whose poll is due (by their connector's interval, or this inbox's) and not
    /// already running.
    async fn due_polls(&self) -> Vec<SyncBranch> {
        let default_seconds = self.poll_every.map_or(0, |every| every.as_secs().max(1));
        let due = match self
            .store
            .branches_to_poll(now_millis(), default_seconds)
            .await
        {
            Ok(due) => due,
            Err(error) => {
                tracing::warn!(%error, "cannot list the branches to poll");
                return Vec::new();
            }
        };
        let due: Vec<SyncBranch> = due
            .into_iter()
            .filter(|b| !self.recently_elsewhere(&b.id))
            .collect();
        let mut busy = self.busy.lock();
        due.into_iter()
            .filter(|b| busy.insert(format!("poll:{}", b.id)))
            .collect()
    }

    /// Asks where a branch points, and queues a read if it moved.
    pub async fn poll(&self, branch: &SyncBranch) {
        // Polls are shared out like the rest of a branch's work: by its lease.
        match self.hold(branch).await {
            Ok(Some(_)) => {}
            Ok(None) => {
                self.busy.lock().remove(&format!("poll:{}", branch.id));
                return;
            }
            Err(error) => {
                tracing::warn!(branch = %branch.branch, error, "cannot take the branch's lease to poll it");
                self.busy.lock().remove(&format!("poll:{}", branch.id));
                return;
            }
        }
        match self.inbound.read_head(branch).await {
            Ok(head) => match self.store.record_poll(&branch.id, head.as_ref()).await {
                Ok(true) => {
                    tracing::info!(branch = %branch.branch, head = head.as_ref().map_or("none", ObjectId::as_str), "polling found a head no webhook announced");
                }
                Ok(false) => {}
                Err(error) => tracing::warn!(%error, "cannot record a poll"),
            },
            Err(failure) => {
                // Counted as a poll all the same, so a broken remote is not asked every second.
                let _ = self
                    .store
                    .record_poll(&branch.id, branch.processed_commit.as_ref())
                    .await;
                tracing::warn!(branch = %branch.branch, code = %failure.code, message = %failure.message, "polling the branch failed");
            }
        }
        self.busy.lock().remove(&format!("poll:{}", branch.id));
    }

    async fn ready_branches(&self) -> Result<Vec<SyncBranch>, StoreError> {
        let wanted = self.store.wanted_branches().await?;
        let wanted: Vec<SyncBranch> = wanted
            .into_iter()
            .filter(|b| !self.recently_elsewhere(&b.id))
            .collect();
        let mut busy = self.busy.lock();
        Ok(wanted
            .into_iter()
            .filter(|b| !self.backoff.is_waiting(b.id.as_str()))
            .filter(|b| busy.insert(b.id.to_string()))
            .collect())
    }

    async fn read_and_release(&self, branch: &SyncBranch) -> Worked {
        let span = tracing::info_span!("inbox", branch_id = %branch.id, branch = %branch.branch);
        let result = tracing::Instrument::instrument(self.read_held(branch), span).await;
        let worked = match &result {
            Ok(worked) => *worked,
            Err(_) => Worked::Here,
        };
        match &result {
            Ok(Worked::Elsewhere) => {}
            Ok(Worked::Here) => self.backoff.succeeded(branch.id.as_str()),
            Err(message) => {
                let delay = self.backoff.failed(branch.id.as_str());
                tracing::warn!(branch = %branch.branch, message, retry_in_s = delay.as_secs(), "reading the branch failed; retried with back-off");
            }
        }
        self.busy.lock().remove(branch.id.as_str());
        worked
    }

    /// Reads a branch under its lease, unless another replica holds it.
    async fn read_held(&self, branch: &SyncBranch) -> Result<Worked, String> {
        let Some(fence) = self.hold(branch).await? else {
            return Ok(Worked::Elsewhere);
        };
        self.read_branch(branch, &fence)
            .await
            .map(|()| Worked::Here)
    }

    /// Reads a branch from its last processed commit to its head, applying every commit in
    /// order; several rounds when the history is long. Every commit is applied under
    /// `fence`.
    async fn read_branch(&self, branch: &SyncBranch, fence: &Fence) -> Result<(), String> {
        let started = now_millis();
        let mut since = branch.processed_commit.clone();
        loop {
            let fetch_started = std::time::Instant::now();
            let read = self
                .inbound
                .fetch_changes(branch, since.as_ref(), COMMITS_PER_READ)
                .await;
            crate::measure::branch_read(
                read.as_ref().map(|answer| &answer.result).map_err(|_| ()),
                fetch_started.elapsed(),
            );
            let answer = read.map_err(|f| f.to_string())?;
            let fetch_ms = fetch_started.elapsed().as_millis();
            self.record_read(branch, &answer).await;
            let read = answer.result;
            match &read {
                SyncJobResult::Commits { head, commits, .. } => {
                    tracing::info!(branch = %branch.branch, head = %head, commits = commits.len(), fetch_ms, "read the branch");
                }
                SyncJobResult::Snapshot { head, files, .. } => {
                    tracing::info!(branch = %branch.branch, head = %head, files = files.len(), fetch_ms, "read the branch whole");
                }
                _ => {}
            }
            match read {
                SyncJobResult::BranchGone => {
                    let reason = format!(
                        "branch {:?} no longer exists in the repository; nothing was deleted in reposync. Re-create the branch, or disable sync",
                        branch.branch
                    );
                    self.store
                        .mark_branch_broken(&branch.id, &reason)
                        .await
                        .map_err(|e| e.to_string())?;
                    tracing::warn!(branch = %branch.branch, "the synced branch was deleted");
                    return Ok(());
                }
                SyncJobResult::Snapshot {
                    head,
                    files,
                    unrepresentable,
                    since_lost,
                    ..
                } => {
                    if since_lost {
                        tracing::warn!(branch = %branch.branch, since = since.as_ref().map_or("-", ObjectId::as_str), "the branch's history was rewritten; reading it whole");
                    }
                    let commit = ReadCommit {
                        commit: result_commit("head", &head).map_err(|f| f.to_string())?,
                        message: String::new(),
                        author: String::new(),
                        files: files
                            .into_iter()
                            .map(|f| ReadFile {
                                change: ReadChange::Added,
                                content: f.content.and_then(|c| STANDARD.decode(c).ok()),
                                path: f.path,
                            })
                            .collect(),
                        unrepresentable: unrepresentable_files(unrepresentable),
                        snapshot: true,
                    };
                    self.inbound.apply(branch, &commit, Some(fence)).await?;
                    break;
                }
                SyncJobResult::Commits {
                    commits, complete, ..
                } => {
                    for read in commits {
                        let commit = read_commit(read)?;
                        self.inbound.apply(branch, &commit, Some(fence)).await?;
                        since = Some(commit.commit);
                    }
                    if complete {
                        break;
                    }
                }
                other => {
                    return Err(format!(
                        "the delegate answered a read with {}",
                        serde_json::to_value(&other)
                            .ok()
                            .and_then(|v| v["status"].as_str().map(str::to_owned))
                            .unwrap_or_default()
                    ));
                }
            }
        }
        self.store
            .branch_read(&branch.id, started)
            .await
            .map_err(|e| e.to_string())
    }

    /// Records how a read of `branch` was done. The read happened whatever applying it does
    /// next (an apply that fails is followed by another read, recorded in its turn), so it is
    /// recorded on its own, at once; and a store that cannot record it is no reason to leave
    /// the branch unread, so a failure is only logged.
    async fn record_read(&self, branch: &SyncBranch, answer: &JobAnswer) {
        let Some(read) = read_of(answer) else {
            return;
        };
        if let Err(error) = self.store.record_read(&branch.id, &read).await {
            tracing::warn!(branch = %branch.branch, %error, "cannot record how the branch was read");
        }
    }
}

/// A commit as the delegate read it; one whose id does not parse is an invalid result.
fn read_commit(read: CommitRead) -> Result<ReadCommit, String> {
    Ok(ReadCommit {
        commit: result_commit("commit", &read.commit).map_err(|f| f.to_string())?,
        author: format!("{} <{}>", read.author_name, read.author_email),
        files: read
            .files
            .into_iter()
            .map(|f| ReadFile {
                change: match (f.op.as_str(), f.from) {
                    ("add", _) => ReadChange::Added,
                    ("delete", _) => ReadChange::Deleted,
                    ("rename", Some(from)) => ReadChange::Renamed { from },
                    _ => ReadChange::Modified,
                },
                content: f.content.and_then(|c| STANDARD.decode(c).ok()),
                path: f.path,
            })
            .collect(),
        unrepresentable: unrepresentable_files(read.unrepresentable),
        message: read.message,
        snapshot: false,
    })
}

fn unrepresentable_files(reads: Vec<UnrepresentableRead>) -> Vec<UnrepresentableFile> {
    reads
        .into_iter()
        .map(|read| UnrepresentableFile {
            // A path the delegate failed to encode is still reported, as the text it sent.
            path: STANDARD
                .decode(&read.path)
                .unwrap_or_else(|_| read.path.into_bytes()),
            problem: read.problem,
            change: match read.op.as_str() {
                "add" => ReadChange::Added,
                "delete" => ReadChange::Deleted,
                _ => ReadChange::Modified,
            },
        })
        .collect()
}
