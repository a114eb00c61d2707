//! reposync → Git on Bitbucket Cloud without a local clone: one commit through
//! `POST /2.0/repositories/{ws}/{repo}/src`, with the guarantees of a git push.
//!
//! Each attempt reads the branch first: the commits since the base that carry one of the
//! request's `Reposync-Changeset:` trailers are a write whose answer was lost, so those
//! changesets are not carried again; a path that a commit not ours changed since the base,
//! and that the head holds otherwise than asked, is a conflict and nothing is written. The
//! commit names the head it was built on as its parent, so Bitbucket answers 409 rather than
//! overwrite a branch that moved, and the attempt starts again. The write is sent once: when
//! its answer is lost, the next attempt's reading of the branch says whether it landed.
//!
//! Bitbucket makes the account of the token the committer; the author is the connector's (or
//! the person's, with `--author-from-user`). What the request cannot carry through REST (a
//! base beyond the commits looked at, a link at one of the paths, contents that are not
//! UTF-8, a branch still to create) is a refusal, and git makes the commit instead.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Duration;

use reposync_bitbucket::rest::{CloudClient, CloudCommitRequest, RestError, TreeEntryKind};
use reposync_git::{
    CommitOutcome, CommitRequest, CommittedFile, ConflictFile, LANDED_LOOKBACK, LandedChangeset,
    message_and_author, sort_commits_since,
};
use reposync_model::commit::FileOp;
use reposync_model::{BranchName, ObjectId, Person};

use crate::planner::Allowance;
use crate::rest_read::Refusal;

/// The longest pause between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// What one attempt found on the branch.
enum Planned {
    Done(CommitOutcome),
    Commit {
        head: ObjectId,
        changes: Vec<(FileOp, usize)>,
        landed: Vec<LandedChangeset>,
    },
}

/// Makes the branch hold `request.files` in one commit, or says why git must.
pub(crate) async fn commit_through_rest(
    cloud: &CloudClient,
    branch: &BranchName,
    request: &CommitRequest<'_>,
    allowance: Allowance,
) -> Result<CommitOutcome, Refusal> {
    for file in request.files {
        if file
            .content
            .as_ref()
            .is_some_and(|content| std::str::from_utf8(content).is_err())
        {
            return Err(format!(
                "{} is not UTF-8 text, which Bitbucket's src form cannot carry",
                file.path
            ));
        }
    }
    let made_by: HashMap<&str, &Person> = request
        .made_by
        .iter()
        .map(|(id, person)| (id.as_str(), person))
        .collect();
    let max_attempts = request.max_attempts.max(1);
    for attempt in 1..=max_attempts {
        if attempt > 1 {
            tokio::time::sleep(backoff(attempt - 1)).await;
        }
        let (head, changes, landed) = match plan(cloud, branch, request, &allowance).await? {
            Planned::Done(outcome) => return Ok(outcome),
            Planned::Commit {
                head,
                changes,
                landed,
            } => (head, changes, landed),
        };
        let files: Vec<CommittedFile> = changes
            .iter()
            .map(|(op, index)| CommittedFile {
                op: *op,
                path: request.files[*index].path.clone(),
            })
            .collect();
        let (message, author) = message_and_author(request, &files, &landed, &made_by);
        allowance.check(cloud.traffic().requests + 1, "the commit")?;
        let mut write = Vec::new();
        let mut delete = Vec::new();
        for (_, index) in &changes {
            let file = &request.files[*index];
            match &file.content {
                Some(content) => write.push((file.path.clone(), content.clone())),
                None => delete.push(file.path.clone()),
            }
        }
        let posted = cloud
            .commit_files(&CloudCommitRequest {
                branch: branch.to_string(),
                parent: Some(head.clone()),
                message,
                author: format!("{} <{}>", author.name, author.email),
                write,
                delete,
            })
            .await;
        match posted {
            Ok(commit) => {
                return Ok(CommitOutcome::Pushed {
                    commit,
                    parent: Some(head),
                    attempts: attempt,
                    files,
                    landed,
                });
            }
            Err(RestError::Conflict { .. }) => {
                tracing::info!(attempt, branch = %branch, "the branch moved during the write; trying again");
            }
            // The answer was lost: the write may have landed, which the next attempt's
            // reading of the branch tells by the trailers.
            Err(RestError::Transport { reason, .. }) => {
                tracing::warn!(attempt, branch = %branch, %reason, "the write's answer was lost; reading the branch again");
            }
            Err(error) => return Err(error.to_string()),
        }
    }
    Err(format!(
        "branch {} kept moving: {max_attempts} writes were refused as built on an old head",
        branch
    ))
}

/// One attempt's reading of the branch: what landed, what conflicts, what differs.
async fn plan(
    cloud: &CloudClient,
    branch: &BranchName,
    request: &CommitRequest<'_>,
    allowance: &Allowance,
) -> Result<Planned, Refusal> {
    let refusal = |error: RestError| error.to_string();
    let head = match cloud.branch_head(branch.as_str()).await {
        Ok(head) => head,
        Err(RestError::NotFound { .. }) => {
            return Err(format!(
                "branch {} does not exist; git creates branches",
                branch
            ));
        }
        Err(error) => return Err(refusal(error)),
    };
    // The commits since the base, newest first, as far as the lookback reaches.
    let mut since = Vec::new();
    let mut next = Some(head.clone());
    let mut base_reached = request.base.is_none();
    while let Some(id) = next.take() {
        if Some(&id) == request.base {
            base_reached = true;
            break;
        }
        if since.len() >= LANDED_LOOKBACK {
            break;
        }
        allowance.check(
            cloud.traffic().requests + 1,
            "reading the commits since the base",
        )?;
        let found = cloud.commit(id.as_str()).await.map_err(refusal)?;
        next = found.parents.first().cloned();
        since.push(found);
    }
    if !base_reached {
        return Err(format!(
            "the base is not among the last {LANDED_LOOKBACK} first-parent commits of {}; git reads long or rewritten histories",
            branch
        ));
    }
    since.reverse();
    let (landed, theirs) = sort_commits_since(
        &since,
        |found| (&found.id, found.message.as_str()),
        request.changesets,
        request.own_commits,
    );
    let mut changed_by_others: HashSet<String> = HashSet::new();
    if request.base.is_some() {
        for found in &theirs {
            let Some(parent) = found.parents.first() else {
                continue;
            };
            allowance.check(cloud.traffic().requests + 1, "reading what others changed")?;
            for change in cloud.diffstat(parent, &found.id).await.map_err(refusal)? {
                changed_by_others.extend(change.old_path);
                changed_by_others.extend(change.new_path);
            }
        }
    }
    // What the head holds at each path: the folders' listings say what is there and whether
    // it is a file; the files' contents say whether they already read as asked.
    let folders: BTreeSet<&str> = request
        .files
        .iter()
        .map(|file| file.path.rsplit_once('/').map_or("", |(folder, _)| folder))
        .collect();
    let mut present: BTreeMap<String, TreeEntryKind> = BTreeMap::new();
    for folder in folders {
        allowance.check(cloud.traffic().requests + 1, "listing the folders written")?;
        match cloud.list_dir(&head, folder).await {
            Ok(entries) => {
                present.extend(entries.into_iter().map(|entry| (entry.path, entry.kind)));
            }
            // A folder that does not exist yet holds nothing.
            Err(RestError::NotFound { .. }) => {}
            Err(error) => return Err(refusal(error)),
        }
    }
    let mut changes = Vec::new();
    let mut at_head: HashMap<usize, Vec<u8>> = HashMap::new();
    for (index, file) in request.files.iter().enumerate() {
        let op = match (present.get(&file.path), &file.content) {
            (None, None) => continue,
            (None, Some(_)) => FileOp::Add,
            (Some(TreeEntryKind::File), wanted) => {
                allowance.check(cloud.traffic().requests + 1, "reading the files written")?;
                let current = cloud.file(&head, &file.path).await.map_err(refusal)?;
                if wanted.as_deref() == Some(current.as_slice()) {
                    continue;
                }
                at_head.insert(index, current);
                if wanted.is_some() {
                    FileOp::Modify
                } else {
                    FileOp::Delete
                }
            }
            (Some(kind), _) => {
                return Err(format!(
                    "{} is a {kind:?} on the branch, not a file; git handles it",
                    file.path
                ));
            }
        };
        changes.push((op, index));
    }
    let conflicting: Vec<ConflictFile> = changes
        .iter()
        .filter(|(_, index)| changed_by_others.contains(&request.files[*index].path))
        .map(|(_, index)| ConflictFile {
            path: request.files[*index].path.clone(),
            theirs: at_head.get(index).cloned(),
        })
        .collect();
    if !conflicting.is_empty() {
        return Ok(Planned::Done(CommitOutcome::Conflict {
            head,
            files: conflicting,
        }));
    }
    if changes.is_empty() {
        return Ok(Planned::Done(CommitOutcome::NothingToCommit {
            head: Some(head),
            landed,
        }));
    }
    changes.sort_by(|a, b| request.files[a.1].path.cmp(&request.files[b.1].path));
    Ok(Planned::Commit {
        head,
        changes,
        landed,
    })
}

/// The pause before attempt `retry + 1`: 100 ms, 200 ms, 400 ms…, at most [`MAX_BACKOFF`].
fn backoff(retry: u32) -> Duration {
    let factor = 1u32 << retry.saturating_sub(1).min(16);
    Duration::from_millis(100)
        .saturating_mul(factor)
        .min(MAX_BACKOFF)
}
