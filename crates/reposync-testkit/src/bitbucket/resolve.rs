//! Turns a journal record into what a payload needs, by asking the repository: the commits
//! behind each id, whether an update was forced, and which commits a push added.
//!
//! This runs when a delivery is sent, not when the push landed, as Bitbucket builds its
//! payloads asynchronously too; the objects of a push stay in the repository, so the answer
//! is the same unless a test deletes objects in between.

use std::path::Path;

use anyhow::{Result, bail};

use super::journal::{Push, RefUpdate};
use crate::git::HermeticGit;

/// How many commits a Cloud change lists before it sets `truncated`.
pub(super) const MAX_COMMITS: usize = 5;

/// What kind of ref changed; pushes to other refs (notes, pull requests) send no webhook.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum RefKind {
    Branch,
    Tag,
}

/// A commit as payloads describe it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct CommitInfo {
    pub hash: String,
    pub parents: Vec<String>,
    pub author_name: String,
    pub author_email: String,
    /// Strict ISO-8601 author date, e.g. `2015-06-09T03:34:49+00:00`.
    pub date: String,
    /// The full message with one trailing newline, as Bitbucket sends it.
    pub message: String,
}

impl CommitInfo {
    /// `Name <email>`, git's raw author line and Cloud's `author.raw`.
    pub fn author_raw(&self) -> String {
        format!("{} <{}>", self.author_name, self.author_email)
    }
}

/// One side (old or new) of a ref change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Side {
    /// The id the ref held, as git reported it (an annotated tag's own id for tags).
    pub id: String,
    /// The commit that id peels to, when the object is a commit-ish present in the repository.
    pub commit: Option<CommitInfo>,
}

impl Side {
    /// The commit id when the id peels to one, else the raw id.
    pub fn commit_hash(&self) -> &str {
        self.commit.as_ref().map_or(&self.id, |commit| &commit.hash)
    }
}

/// One ref change of a push, with everything any payload format needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Change {
    /// Full name, e.g. `refs/heads/main`.
    pub reference: String,
    /// Short name, e.g. `main` (Cloud `name`, Server `displayId`).
    pub name: String,
    pub kind: RefKind,
    pub old: Option<Side>,
    pub new: Option<Side>,
    pub forced: bool,
    /// Commits the push added to the ref, newest first, at most [`MAX_COMMITS`].
    pub commits: Vec<CommitInfo>,
    pub truncated: bool,
}

/// A push ready to be rendered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct PushEvent {
    pub actor: String,
    pub changes: Vec<Change>,
}

/// Field separator and record terminator of the `git log` format below.
const FIELD: char = '\u{1f}';
const RECORD: char = '\u{1e}';
const LOG_FORMAT: &str = "--format=%H%x1f%P%x1f%an%x1f%ae%x1f%aI%x1f%B%x1e";

/// Resolves every branch and tag update of `push`; other refs are left out, as Bitbucket does.
pub(super) fn resolve(git: &HermeticGit, repo: &Path, push: &Push) -> Result<PushEvent> {
    let before = tips_before(git, repo, push)?;
    let mut changes = Vec::new();
    for update in &push.updates {
        if let Some(change) = resolve_update(git, repo, update, &before)? {
            changes.push(change);
        }
    }
    Ok(PushEvent {
        actor: push.actor.clone(),
        changes,
    })
}

/// The ref tips as they were before `push`: today's refs, with the old values of the refs the
/// push changed. A new ref lists the commits reachable from none of them, the commits the push
/// brought, even when it created several refs pointing at the same new commits.
fn tips_before(git: &HermeticGit, repo: &Path, push: &Push) -> Result<Vec<String>> {
    let listing = git.run(repo, &["for-each-ref", "--format=%(objectname) %(refname)"])?;
    let mut tips: Vec<String> = listing
        .lines()
        .filter_map(|line| line.split_once(' '))
        .filter(|(_, name)| !push.updates.iter().any(|update| update.reference == *name))
        .map(|(id, _)| id.to_owned())
        .collect();
    tips.extend(push.updates.iter().filter_map(|update| update.old.clone()));
    tips.sort();
    tips.dedup();
    Ok(tips)
}

fn resolve_update(
    git: &HermeticGit,
    repo: &Path,
    update: &RefUpdate,
    before: &[String],
) -> Result<Option<Change>> {
    let (kind, name) = if let Some(name) = update.reference.strip_prefix("refs/heads/") {
        (RefKind::Branch, name)
    } else if let Some(name) = update.reference.strip_prefix("refs/tags/") {
        (RefKind::Tag, name)
    } else {
        return Ok(None);
    };
    let side = |id: &Option<String>| -> Result<Option<Side>> {
        id.as_ref()
            .map(|id| {
                Ok(Side {
                    id: id.clone(),
                    commit: commit_info(git, repo, id)?,
                })
            })
            .transpose()
    };
    let old = side(&update.old)?;
    let new = side(&update.new)?;
    let forced = match (update.forced, &old, &new) {
        (Some(forced), _, _) => forced,
        (None, Some(old), Some(new)) => !is_ancestor(git, repo, old, new)?,
        // Creating or deleting a ref is never a forced update.
        (None, _, _) => false,
    };
    let (mut commits, truncated) = match &new {
        Some(new) if new.commit.is_some() => {
            let new_commit = new.commit_hash();
            let mut args = vec![
                "log".to_owned(),
                LOG_FORMAT.to_owned(),
                format!("--max-count={}", MAX_COMMITS + 1),
                // An old id the caller of record_ref_update made up is no reason to fail.
                "--ignore-missing".to_owned(),
                new_commit.to_owned(),
                "--not".to_owned(),
            ];
            match old.as_ref().and_then(|old| old.commit.as_ref()) {
                Some(old_commit) => args.push(old_commit.hash.clone()),
                // A new ref lists the commits no ref had before the push.
                None => args.extend(before.iter().cloned()),
            }
            let commits = log(git, repo, &args)?;
            let truncated = commits.len() > MAX_COMMITS;
            (commits, truncated)
        }
        _ => (Vec::new(), false),
    };
    commits.truncate(MAX_COMMITS);
    Ok(Some(Change {
        reference: update.reference.clone(),
        name: name.to_owned(),
        kind,
        old,
        new,
        forced,
        commits,
        truncated,
    }))
}

/// The commit `id` peels to, or `None` when it is no commit-ish of this repository.
fn commit_info(git: &HermeticGit, repo: &Path, id: &str) -> Result<Option<CommitInfo>> {
    let peeled = format!("{id}^{{commit}}");
    let output = git.output_with_env(repo, &["rev-parse", "--verify", "--quiet", &peeled], &[])?;
    if !output.status.success() {
        return Ok(None);
    }
    let hash = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let args = [
        "log".to_owned(),
        LOG_FORMAT.to_owned(),
        "-1".to_owned(),
        hash,
    ];
    Ok(log(git, repo, &args)?.into_iter().next())
}

/// Runs `git log` with [`LOG_FORMAT`] and parses its records.
fn log(git: &HermeticGit, repo: &Path, args: &[String]) -> Result<Vec<CommitInfo>> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = git.run(repo, &args)?;
    output
        .split(RECORD)
        .map(str::trim_start)
        .filter(|record| !record.is_empty())
        .map(parse_commit)
        .collect()
}

fn parse_commit(record: &str) -> Result<CommitInfo> {
    let fields: Vec<&str> = record.splitn(6, FIELD).collect();
    let [hash, parents, author_name, author_email, date, message] = fields.as_slice() else {
        bail!("unexpected git log record {record:?}");
    };
    Ok(CommitInfo {
        hash: (*hash).to_owned(),
        parents: parents.split_whitespace().map(str::to_owned).collect(),
        author_name: (*author_name).to_owned(),
        author_email: (*author_email).to_owned(),
        // git writes UTC as `Z` in strict ISO-8601; Bitbucket writes `+00:00`.
        date: match date.strip_suffix('Z') {
            Some(local) => format!("{local}+00:00"),
            None => (*date).to_owned(),
        },
        message: format!("{}\n", message.trim_end()),
    })
}

/// Whether `old` is an ancestor of `new`, i.e. the update was a fast-forward. Ids that do not
/// peel to commits (a tag moved to a tree, say) count as not fast-forward.
fn is_ancestor(git: &HermeticGit, repo: &Path, old: &Side, new: &Side) -> Result<bool> {
    let (Some(old), Some(new)) = (&old.commit, &new.commit) else {
        return Ok(false);
    };
    let output = git.output_with_env(
        repo,
        &["merge-base", "--is-ancestor", &old.hash, &new.hash],
        &[],
    )?;
    match output.status.code() {
        Some(0) => Ok(true),
        Some(1) => Ok(false),
        _ => bail!(
            "git merge-base --is-ancestor {} {} in {} failed with {}:\n{}",
            old.hash,
            new.hash,
            repo.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ),
    }
}
