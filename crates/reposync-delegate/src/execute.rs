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
use reposync_model::{BranchName, ChangesetId, ObjectId, Person};
use secrecy::SecretString;
use serde_json::json;

use crate::agent::Agent;
use crate::reads::{Read, ReadTarget};
use crate::results::{failure_code, job_result, unrepresentable_reads};

impl Agent {
    /// Runs one task and turns every failure into an outcome; it never panics or errors.
    pub async fn run_task(&self, spec: &TaskSpec) -> TaskOutcome {
        match spec {
            TaskSpec::TestConnection(test) => self.test_connection(test).await,
            TaskSpec::Sync(sync) => self.sync(sync).await,
            // Run on its own, a fetch's archive is dropped: the task loop keeps it
            // (`Agent::run_claimed`) and hands it to the server before the outcome.
            TaskSpec::FetchFiles(fetch) => self.fetch_files(fetch).await.outcome,
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
            return invalid_task("the task names no clone".into());
        }
        let branch = match BranchName::parse(&spec.target.branch) {
            Ok(branch) => branch,
            Err(error) => return invalid_task(format!("the task's branch {}", error.message)),
        };
        let commits = match JobCommits::parse(&spec.job) {
            Ok(commits) => commits,
            Err(outcome) => return outcome,
        };
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
                        return invalid_task(format!("the content of {} is not base64", file.path));
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
        let clone = match LocalClone::open(&runner, &dir, &remote, &branch).await {
            Ok(clone) => clone,
            Err(error) => return git_failure(error),
        };
        let read_target = ReadTarget {
            spec,
            clone: &clone,
            clone_dir: &dir,
            remote: &remote,
            branch: &branch,
        };
        let result = match &spec.job {
            SyncJob::ReadBranch { prefix } => {
                self.planned_read(&read_target, Read::Branch { prefix })
                    .await
            }
            SyncJob::CommitAndPush {
                author_name,
                author_email,
                summary,
                changesets,
                made_by,
                author_from_user,
                max_attempts,
                ..
            } => {
                let author = Signature {
                    name: author_name.clone(),
                    email: author_email.clone(),
                };
                let made_by: Vec<(ChangesetId, Person)> = made_by
                    .iter()
                    .map(|m| (m.changeset.clone(), m.by.clone()))
                    .collect();
                let request = CommitRequest {
                    base: commits.base.as_ref(),
                    files: &changes,
                    author: &author,
                    summary: summary.as_deref(),
                    changesets,
                    made_by: &made_by,
                    author_from_user: *author_from_user,
                    own_commits: &commits.own,
                    max_attempts: *max_attempts,
                };
                match self.planned_write(&read_target, &request).await {
                    Some(outcome) => Ok(job_result(outcome)),
                    None => clone
                        .commit_and_push(&remote, &request)
                        .await
                        .map(job_result),
                }
            }
            SyncJob::ReadHead => {
                runner
                    .ls_remote_heads(&remote)
                    .await
                    .map(|heads| SyncJobResult::Head {
                        head: heads.branch_commit(&branch).map(|c| c.as_str().to_owned()),
                    })
            }
            SyncJob::FetchChanges {
                prefix,
                max_commits,
                ..
            } => {
                let read = Read::Changes {
                    prefix,
                    since: commits.since.as_ref(),
                    max_commits: *max_commits,
                };
                self.planned_read(&read_target, read).await
            }
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
        let probed = runner.probe_remote(&remote).await;
        let elapsed = || u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let failure = |code: FailureCode, message: String, detail: String| TaskOutcome {
            succeeded: false,
            result: json!({
                "ok": false, "url": spec.url, "branch": spec.branch, "code": code,
                "message": message, "detail": detail, "duration_ms": elapsed(),
            }),
        };
        let (heads, git_capabilities) = match probed {
            Ok(probed) => probed,
            Err(error) => {
                return failure(failure_code(error.kind), error.message, error.detail);
            }
        };
        let wanted = match spec.branch.as_deref().map(BranchName::parse).transpose() {
            Ok(wanted) => wanted,
            Err(error) => {
                return failure(
                    FailureCode::InvalidTask,
                    format!("the task's branch {}", error.message),
                    String::new(),
                );
            }
        };
        let (branch, commit) = match &wanted {
            Some(branch) => match heads.branch_commit(branch) {
                Some(commit) => (Some(branch.to_string()), Some(commit.to_string())),
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
                    .and_then(|b| BranchName::parse(b).ok())
                    .and_then(|b| heads.branch_commit(&b).map(ObjectId::to_string));
                (default, commit)
            }
        };
        let capabilities = match &spec.platform {
            Some(platform) => {
                let head = branch.as_deref().zip(commit.as_deref());
                Some(
                    self.probe_capabilities(
                        platform,
                        spec.rest.as_ref(),
                        &spec.auth,
                        git_capabilities,
                        head,
                        Duration::from_secs(spec.timeout_secs.max(1)),
                    )
                    .await,
                )
            }
            None => None,
        };
        TaskOutcome {
            succeeded: true,
            result: json!({
                "ok": true, "url": spec.url, "branch": branch, "commit": commit,
                "capabilities": capabilities, "duration_ms": elapsed(),
            }),
        }
    }
}

pub(crate) async fn read_branch(
    clone: &LocalClone,
    remote: &Remote,
    prefix: &str,
) -> Result<SyncJobResult, GitError> {
    let Some(head) = clone.fetch(remote).await? else {
        return Ok(SyncJobResult::Branch {
            head: None,
            files: Vec::new(),
            unrepresentable: Vec::new(),
            read: None,
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
        head: Some(head.into_string()),
        files,
        unrepresentable: unrepresentable_reads(tree.unrepresentable),
        read: None,
    })
}

/// A task the server should never have sent: it is refused as a whole, naming what was wrong.
fn invalid_task(message: String) -> TaskOutcome {
    TaskOutcome::failed(&TaskFailure::new(FailureCode::InvalidTask, message))
}

/// The commits a sync job names, parsed before anything runs: git takes parsed ids only.
#[derive(Default)]
struct JobCommits {
    base: Option<ObjectId>,
    own: Vec<ObjectId>,
    since: Option<ObjectId>,
}

impl JobCommits {
    fn parse(job: &SyncJob) -> Result<JobCommits, TaskOutcome> {
        let commit = |text: &str, what: &str| {
            ObjectId::parse(text)
                .map_err(|error| invalid_task(format!("the task's {what} {}", error.message)))
        };
        Ok(match job {
            SyncJob::CommitAndPush {
                base, own_commits, ..
            } => JobCommits {
                base: base.as_deref().map(|b| commit(b, "base")).transpose()?,
                own: own_commits
                    .iter()
                    .map(|own| commit(own, "own commit"))
                    .collect::<Result<_, _>>()?,
                since: None,
            },
            SyncJob::FetchChanges { since, .. } => JobCommits {
                since: since.as_deref().map(|s| commit(s, "since")).transpose()?,
                ..JobCommits::default()
            },
            SyncJob::ReadBranch { .. } | SyncJob::ReadHead => JobCommits::default(),
        })
    }
}

pub(crate) fn git_auth(auth: &TaskAuth) -> GitAuth {
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
    use reposync_api::{SecretValue, SyncTarget};
    use reposync_git::GitRunner;
    use reposync_model::ChangesetId;

    use super::*;

    fn sync_task(branch: &str, job: SyncJob) -> TaskSpec {
        TaskSpec::Sync(Box::new(SyncSpec {
            target: SyncTarget {
                // Nothing listens there: a task that got as far as git would fail otherwise.
                url: "https://127.0.0.1:9/repo.git".into(),
                branch: branch.into(),
                clone_key: "key".into(),
            },
            job,
            auth: TaskAuth::Https {
                username: "user".into(),
                password: SecretValue::new("password"),
                ca_certificate: None,
            },
            timeout_secs: 5,
            planning: None,
        }))
    }

    fn failure_of(outcome: &TaskOutcome) -> (String, String) {
        assert!(!outcome.succeeded, "{outcome:?}");
        let text = |key: &str| outcome.result[key].as_str().unwrap_or_default().to_owned();
        (text("code"), text("message"))
    }

    /// Branch names and commit ids reach git only parsed: one the server should never have
    /// sent fails the task as `invalid_task`, naming what was wrong, before any git runs.
    #[tokio::test]
    async fn a_task_naming_a_bad_branch_or_commit_is_refused_before_git_runs() {
        let work = tempfile::tempdir().unwrap();
        let agent = Agent::new(GitRunner::new(), work.path());
        let fetch = |since: &str| SyncJob::FetchChanges {
            since: Some(since.into()),
            prefix: "Setup/".into(),
            max_commits: 10,
        };
        let push = |base: &str, own: &str| SyncJob::CommitAndPush {
            base: Some(base.into()),
            author_name: "reposync".into(),
            author_email: "reposync@example.com".into(),
            summary: None,
            changesets: vec![ChangesetId::new("c1")],
            made_by: Vec::new(),
            author_from_user: false,
            own_commits: vec![own.into()],
            files: Vec::new(),
            max_attempts: 1,
        };
        let good = "a".repeat(40);
        let cases = [
            (sync_task("--upload-pack=x", SyncJob::ReadHead), "branch"),
            (sync_task("main", fetch("HEAD~1")), "since"),
            (sync_task("main", push("abc1234", &good)), "base"),
            (sync_task("main", push(&good, "-x")), "own commit"),
        ];
        for (task, named) in cases {
            let (code, message) = failure_of(&agent.run_task(&task).await);
            assert_eq!(code, "invalid_task", "{message}");
            assert!(message.contains(named), "{named}: {message}");
        }
        assert!(
            !work.path().join("clones").exists(),
            "no clone was made for a refused task"
        );
    }
}
