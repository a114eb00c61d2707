//! The delegate: claims tasks, runs them with `reposync-git`, and reports what happened.
//!
//! A delegate reaches the server only through a [`TaskSource`], so the same agent runs inside
//! `reposync serve` (an in-process source) and on another machine (an HTTP source). It holds
//! no database credentials: the secrets a task needs arrive with the task and live in memory,
//! and on disk only as the 0600 files `reposync-git` makes for one git operation. The agent
//! exposes a step function, [`Agent::run_next`], that tests drive directly; the loop around it
//! is thin.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reposync_api::{
    ChangedFileRead, CommitRead, DelegateTask, FileContent, SyncJob, SyncJobResult, SyncSpec,
    TaskAuth, TaskOutcome, TaskSpec, TestConnectionSpec,
};
use reposync_git::{
    BranchChanges, CommitOutcome, FileChange, FileChangeKind, GitAuth, GitError, GitRunner,
    LocalClone, Remote, Signature,
};
use secrecy::SecretString;
use serde_json::json;

/// Where tasks come from and where their outcomes go.
#[async_trait::async_trait]
pub trait TaskSource: Send + Sync {
    /// Waits up to `wait` for a task this delegate may run.
    async fn claim(&self, wait: Duration) -> Result<Option<DelegateTask>, SourceError>;
    /// Reports a task's outcome.
    async fn complete(&self, task_id: &str, outcome: TaskOutcome) -> Result<(), SourceError>;
}

/// The task source failed (the server is down, the token was revoked, …).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SourceError(pub String);

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
}

impl Agent {
    /// An agent using `runner` for git, keeping its clones under `work_dir`.
    pub fn new(runner: GitRunner, work_dir: impl Into<PathBuf>) -> Agent {
        Agent {
            runner,
            work_dir: work_dir.into(),
            clone_locks: Arc::default(),
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

    /// Runs tasks until `shutdown` resolves. Errors from the source are logged and retried
    /// after a pause, so a restarting server does not stop its delegates.
    pub async fn run(
        &self,
        source: &dyn TaskSource,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => return,
                step = self.run_next(source, Duration::from_secs(25)) => {
                    if let Err(error) = step {
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

    /// Runs one task and turns every failure into an outcome; it never panics or errors.
    pub async fn run_task(&self, spec: &TaskSpec) -> TaskOutcome {
        match spec {
            TaskSpec::TestConnection(test) => self.test_connection(test).await,
            TaskSpec::Sync(sync) => self.sync(sync).await,
        }
    }

    async fn sync(&self, spec: &SyncSpec) -> TaskOutcome {
        let failure = |code: &str, message: String, detail: String| TaskOutcome {
            succeeded: false,
            result: json!({"ok": false, "code": code, "message": message, "detail": detail}),
        };
        let git_failure = |error: GitError| failure(error.kind.code(), error.message, error.detail);
        // Clone keys come from the server; keep them to one safe path segment regardless.
        let key: String = spec
            .target
            .clone_key
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        if key.is_empty() {
            return failure(
                "invalid_task",
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
                            "invalid_task",
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
            let mut locks = self
                .clone_locks
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
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
                message,
                max_attempts,
                ..
            } => {
                let author = Signature {
                    name: author_name.clone(),
                    email: author_email.clone(),
                };
                clone
                    .commit_and_push(
                        &remote,
                        base.as_deref(),
                        &changes,
                        &author,
                        message,
                        *max_attempts,
                    )
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
        let failure = |code: &str, message: String, detail: String| TaskOutcome {
            succeeded: false,
            result: json!({
                "ok": false, "url": spec.url, "branch": spec.branch, "code": code,
                "message": message, "detail": detail, "duration_ms": elapsed(),
            }),
        };
        let heads = match heads {
            Ok(heads) => heads,
            Err(error) => return failure(error.kind.code(), error.message, error.detail),
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
                        "branch_not_found",
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

fn job_result(outcome: CommitOutcome) -> SyncJobResult {
    match outcome {
        CommitOutcome::Pushed {
            commit,
            parent,
            attempts,
        } => SyncJobResult::Pushed {
            commit,
            parent,
            attempts,
        },
        CommitOutcome::NothingToCommit { head } => SyncJobResult::NothingToCommit { head },
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
                })
                .collect(),
        },
        BranchChanges::Snapshot {
            head,
            files,
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
        },
    }
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
        });
    };
    let files = clone
        .read_files(remote, &head, prefix)
        .await?
        .into_iter()
        .map(|(path, bytes)| FileContent {
            path,
            content: Some(STANDARD.encode(bytes)),
        })
        .collect();
    Ok(SyncJobResult::Branch {
        head: Some(head),
        files,
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
