//! The agent: how a delegate starts on a machine (its temporary root, the tools it finds), and
//! the state its runs share: the git runner, the clones and their locks, the running tasks.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use parking_lot::Mutex;
use reposync_bitbucket::rest::Budgets;
use reposync_git::{GitError, GitRunner, TempRoot, TempRootError};
use reposync_model::TaskId;
use tokio::task::AbortHandle;

/// Runs tasks.
#[derive(Debug, Clone)]
pub struct Agent {
    pub(crate) runner: GitRunner,
    /// Where the local clones live, one folder per clone key.
    pub(crate) work_dir: PathBuf,
    /// One lock per clone: a clone serves one operation at a time.
    pub(crate) clone_locks: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
    /// The tasks [`Agent::run_concurrently`] is running, from claim until their outcome is
    /// reported, by task id.
    pub(crate) running: Arc<Mutex<HashMap<TaskId, RunningTask>>>,
    /// Tells apart two runs of the same task id (claimed again after a lost lease).
    pub(crate) next_run: Arc<AtomicU64>,
    /// How long running tasks may finish after a shutdown was asked for.
    pub(crate) shutdown_grace: Duration,
    /// The REST request budget of each credential this delegate has used.
    pub(crate) budgets: Arc<Budgets>,
}

#[derive(Debug)]
pub(crate) struct RunningTask {
    pub(crate) run: u64,
    /// `None` for the moment between listing the task and spawning it.
    pub(crate) abort: Option<AbortHandle>,
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

    /// Sets the REST request budget of each credential, per rolling hour (Cloud's default is
    /// 1,000); Bitbucket's rate-limit headers, when it sends them, take over.
    pub fn rest_requests_per_hour(mut self, requests: u32) -> Agent {
        self.budgets = Arc::new(Budgets::new(requests));
        self
    }

    /// An agent using `runner` for git, keeping its clones under `work_dir`.
    pub fn new(runner: GitRunner, work_dir: impl Into<PathBuf>) -> Agent {
        Agent {
            runner,
            work_dir: work_dir.into(),
            clone_locks: Arc::default(),
            running: Arc::default(),
            next_run: Arc::default(),
            budgets: Arc::default(),
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
    pub fn running(&self) -> Vec<TaskId> {
        let mut ids: Vec<TaskId> = self.running.lock().keys().cloned().collect();
        ids.sort_unstable();
        ids
    }

    /// Stops a running task: its future is dropped, which kills its git processes, and no
    /// outcome is reported for it. False when no task with that id is running.
    pub fn cancel(&self, task_id: &TaskId) -> bool {
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
}
