//! Running one task, per kind: a connection test (`ls-remote`) or a Git Sync job on a local
//! clone (read a branch, read its head, fetch its new commits, commit and push).

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reposync_api::{
    FailureCode, FileContent, SyncJob, SyncJobResult, SyncSpec, TaskAuth, TaskFailure, TaskOutcome,
    TaskSpec, TestConnectionSpec,
};
use reposync_git::{CommitRequest, FileChange, GitAuth, GitError, LocalClone, Remote, Signature};
use secrecy::SecretString;
use serde_json::json;

use crate::agent::Agent;
use crate::results::{changes_result, failure_code, job_result, unrepresentable_reads};

impl Agent {
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
                // The git layer names changesets by their ids' text, as its trailers do.
                let changesets: Vec<String> =
                    changesets.iter().map(|c| c.as_str().to_owned()).collect();
                let request = CommitRequest {
                    base: base.as_deref(),
                    files: &changes,
                    author: &author,
                    summary: summary.as_deref(),
                    changesets: &changesets,
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
