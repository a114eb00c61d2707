//! Reading a branch as the fetch planner says: through REST when it is the cheapest correct
//! way and the budget allows, otherwise (or when REST refuses on the way) through the local
//! clone; either way with a [`ReadReport`] of the method, the reason and the cost.

use std::path::Path;
use std::time::{Duration, Instant};

use reposync_api::{ReadReport, SyncJobResult, SyncSpec};
use reposync_bitbucket::rest::RetryPolicy;
use reposync_git::{CommitOutcome, CommitRequest, GitError, LocalClone, Remote};
use reposync_model::{BranchName, ObjectId};

use crate::agent::Agent;
use crate::execute::read_branch;
use crate::planner::{Allowance, Choice, Known, Method, ReadKind, choose, choose_write};
use crate::rest::RestClient;
use crate::rest_read::{RestIncremental, RestSnapshot};
use crate::rest_write::commit_through_rest;
use crate::results::changes_result;

/// One read a sync job asks for.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Read<'a> {
    /// Every file under `prefix` at the head (`ReadBranch`).
    Branch { prefix: &'a str },
    /// What changed under `prefix` since `since`, or a snapshot without it (`FetchChanges`).
    Changes {
        prefix: &'a str,
        since: Option<&'a ObjectId>,
        max_commits: usize,
    },
}

impl Read<'_> {
    fn kind(&self) -> ReadKind {
        match self {
            Read::Changes { since: Some(_), .. } => ReadKind::Incremental,
            Read::Branch { .. } | Read::Changes { since: None, .. } => ReadKind::Snapshot,
        }
    }
}

/// Where a read is done: the job's target and the delegate's clone of it.
pub(crate) struct ReadTarget<'a> {
    pub spec: &'a SyncSpec,
    pub clone: &'a LocalClone,
    pub clone_dir: &'a Path,
    pub remote: &'a Remote,
    pub branch: &'a BranchName,
}

impl Agent {
    /// Reads as planned, falling back to git when REST refuses; the result carries the
    /// report.
    pub(crate) async fn planned_read(
        &self,
        target: &ReadTarget<'_>,
        read: Read<'_>,
    ) -> Result<SyncJobResult, GitError> {
        let started = Instant::now();
        let planning = target.spec.planning.as_ref();
        let choice = match planning {
            Some(planning) => choose(Known::of(planning), read.kind()),
            None => Choice {
                method: Method::Git,
                reason: "the server sent no fetch planning (it predates the planner)".into(),
            },
        };
        let mut spent = (0, 0);
        let mut fallback = None;
        if let (Method::CloudRest | Method::DcRest, Some(planning)) = (choice.method, planning)
            && let Some(rest) = &planning.rest
        {
            let timeout = Duration::from_secs(target.spec.timeout_secs.max(1));
            match self.rest_client(rest, &target.spec.auth, timeout, RetryPolicy::default()) {
                Ok(client) => {
                    let allowance = Allowance::of(planning.fetch, client.remaining());
                    let outcome = rest_read(&client, target.branch, read, allowance).await;
                    spent = client.traffic();
                    match outcome {
                        Ok((result, changed_course)) => {
                            return Ok(with_report(
                                result,
                                ReadReport {
                                    method: choice.method.to_string(),
                                    reason: changed_course.unwrap_or(choice.reason),
                                    fallback_from: None,
                                    fallback_reason: None,
                                    requests: spent.0,
                                    bytes: spent.1,
                                    duration_ms: millis(started),
                                },
                            ));
                        }
                        Err(reason) => fallback = Some((choice.method, reason)),
                    }
                }
                Err(reason) => fallback = Some((choice.method, reason)),
            }
        }
        if let Some((method, reason)) = &fallback {
            tracing::info!(branch = %target.branch, %method, %reason, "REST refused; reading through git");
        }
        let before = stored_bytes(target.clone_dir);
        let result = match read {
            Read::Branch { prefix } => read_branch(target.clone, target.remote, prefix).await?,
            Read::Changes {
                prefix,
                since,
                max_commits,
            } => target
                .clone
                .fetch_changes(target.remote, since, prefix, max_commits)
                .await
                .map(changes_result)?,
        };
        let grown = stored_bytes(target.clone_dir).saturating_sub(before);
        let reason = match &fallback {
            Some(_) => "REST refused the read".to_owned(),
            None => choice.reason,
        };
        Ok(with_report(
            result,
            ReadReport {
                method: Method::Git.to_string(),
                reason,
                fallback_from: fallback.as_ref().map(|(method, _)| method.to_string()),
                fallback_reason: fallback.map(|(_, reason)| reason),
                requests: spent.0,
                bytes: spent.1 + grown,
                duration_ms: millis(started),
            },
        ))
    }
}

impl Agent {
    /// Makes the commit through REST when the planner says so (Cloud, `--fetch api`);
    /// `None` when git is to make it, because the planner chose git or REST refused.
    pub(crate) async fn planned_write(
        &self,
        target: &ReadTarget<'_>,
        request: &CommitRequest<'_>,
    ) -> Option<CommitOutcome> {
        let planning = target.spec.planning.as_ref()?;
        let rest = planning.rest.as_ref()?;
        let known = Known::of(planning);
        if choose_write(known).method != Method::CloudRest {
            return None;
        }
        let timeout = Duration::from_secs(target.spec.timeout_secs.max(1));
        let client = match self.rest_client(
            rest,
            &target.spec.auth,
            timeout,
            RetryPolicy::default(),
        ) {
            Ok(RestClient::Cloud(cloud)) => cloud,
            Ok(RestClient::DataCenter(_)) => return None,
            Err(reason) => {
                tracing::info!(branch = %target.branch, %reason, "REST cannot write; committing through git");
                return None;
            }
        };
        let allowance = Allowance::of(planning.fetch, client.budget().remaining());
        match commit_through_rest(&client, target.branch, request, allowance).await {
            Ok(outcome) => Some(outcome),
            Err(reason) => {
                tracing::info!(branch = %target.branch, %reason, "REST refused the write; committing through git");
                None
            }
        }
    }
}

/// A read through REST, as the job's result, with the reason when it read otherwise than
/// planned (the scope whole after Data Center's cap).
async fn rest_read(
    client: &RestClient,
    branch: &BranchName,
    read: Read<'_>,
    allowance: Allowance,
) -> Result<(SyncJobResult, Option<String>), String> {
    let snapshot = |prefix| client.snapshot(branch, prefix, allowance);
    match read {
        Read::Branch { prefix } => {
            let snapshot = snapshot(prefix).await?;
            Ok((
                SyncJobResult::Branch {
                    head: Some(snapshot.head.into_string()),
                    files: snapshot.files,
                    unrepresentable: snapshot.unrepresentable,
                    read: None,
                },
                None,
            ))
        }
        Read::Changes {
            prefix,
            since: None,
            ..
        } => Ok((whole(snapshot(prefix).await?), None)),
        Read::Changes {
            prefix,
            since: Some(since),
            max_commits,
        } => match client
            .commits_since(branch, since, prefix, max_commits, allowance)
            .await?
        {
            RestIncremental::Commits(read) => Ok((
                SyncJobResult::Commits {
                    head: read.head.into_string(),
                    commits: read.commits,
                    complete: true,
                    read: None,
                },
                None,
            )),
            // Data Center's cap: the scope is read whole instead, through one archive, and
            // the reconcile against the store finds what changed.
            RestIncremental::Capped { reason } => Ok((
                whole(snapshot(prefix).await?),
                Some(format!(
                    "{reason}; read the scope whole through one archive"
                )),
            )),
        },
    }
}

/// A snapshot as the answer to `FetchChanges`.
fn whole(snapshot: RestSnapshot) -> SyncJobResult {
    SyncJobResult::Snapshot {
        head: snapshot.head.into_string(),
        files: snapshot.files,
        unrepresentable: snapshot.unrepresentable,
        since_lost: false,
        read: None,
    }
}

/// The result with `report` attached, where the result has room for one.
fn with_report(result: SyncJobResult, report: ReadReport) -> SyncJobResult {
    match result {
        SyncJobResult::Branch {
            head,
            files,
            unrepresentable,
            ..
        } => SyncJobResult::Branch {
            head,
            files,
            unrepresentable,
            read: Some(report),
        },
        SyncJobResult::Commits {
            head,
            commits,
            complete,
            ..
        } => SyncJobResult::Commits {
            head,
            commits,
            complete,
            read: Some(report),
        },
        SyncJobResult::Snapshot {
            head,
            files,
            unrepresentable,
            since_lost,
            ..
        } => SyncJobResult::Snapshot {
            head,
            files,
            unrepresentable,
            since_lost,
            read: Some(report),
        },
        other => other,
    }
}

fn millis(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// The bytes the clone's files hold: what a git read added is the difference, a fair measure
/// of what it fetched (packs arrive compressed, as they travelled).
pub(crate) fn stored_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            match entry.file_type() {
                Ok(kind) if kind.is_dir() => pending.push(entry.path()),
                Ok(kind) if kind.is_file() => {
                    total += entry.metadata().map(|m| m.len()).unwrap_or_default();
                }
                _ => {}
            }
        }
    }
    total
}
