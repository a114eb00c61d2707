//! Commits made through the API (Cloud's `POST …/src`), built with plumbing in the bare
//! repository: a scratch index (`GIT_INDEX_FILE`) read from the first parent, each file
//! hashed in with `hash-object -w` and `update-index --cacheinfo`, deletions forced out, the
//! tree written and committed, and the branch moved with `update-ref <new> <expected old>` so
//! that it moves only if nobody moved it in between, as Bitbucket's own commit does.
//!
//! A commit made this way runs no hook, so when the repository has the webhook journal (a
//! `BitbucketEmulator` watches it), the ref update is appended to it here: a webhook delivery
//! follows as it would on Bitbucket.

use std::path::Path;

use anyhow::{Context, Result};

use super::git_read::Repo;
use crate::bitbucket::journal::{self, JOURNAL_FILE, Push, RefUpdate};
use crate::process::share_tree;

/// What to commit, already checked.
#[derive(Debug)]
pub(super) struct Edit<'a> {
    pub branch: &'a str,
    /// The new commit's parents, resolved; the first one's tree is the base. None for a
    /// first commit.
    pub parents: &'a [String],
    /// What the branch must still point at for the commit to land (`None`: must not exist).
    pub expected_tip: Option<&'a str>,
    pub message: &'a str,
    pub author_name: &'a str,
    pub author_email: &'a str,
    /// Files to write (path, content), as regular files.
    pub writes: &'a [(String, Vec<u8>)],
    /// Paths to delete.
    pub deletes: &'a [String],
    /// Who pushed, for the webhook.
    pub actor: &'a str,
}

/// How a commit attempt ended.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Outcome {
    /// The branch now points at this new commit.
    Committed(String),
    /// The branch no longer pointed at the expected commit; nothing changed.
    Moved,
    /// git refused the edit (a file where a directory is, say); nothing changed.
    Refused(String),
}

/// Makes the commit of `edit` and moves its branch.
pub(super) fn commit(repo: &Repo<'_>, edit: &Edit<'_>) -> Result<Outcome> {
    let scratch = tempfile::Builder::new()
        .prefix("reposync-api-commit-")
        .tempdir()
        .context("cannot create a scratch directory for the index")?;
    let index = scratch.path().join("index");
    let index = index
        .to_str()
        .context("the scratch index path is not UTF-8")?;
    let env = [("GIT_INDEX_FILE", index)];

    match edit.parents.first() {
        Some(base) => repo.run(&["read-tree", base], &env, None)?,
        None => repo.run(&["read-tree", "--empty"], &env, None)?,
    };
    for (path, content) in edit.writes {
        let blob = text(repo.run(
            &["hash-object", "-w", "--no-filters", "--stdin"],
            &[],
            Some(content),
        )?);
        let cacheinfo = format!("100644,{blob},{path}");
        let output = repo.output(
            &["update-index", "--add", "--cacheinfo", &cacheinfo],
            &env,
            None,
        )?;
        if !output.status.success() {
            return Ok(Outcome::Refused(format!(
                "cannot write {path}: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
    }
    if !edit.deletes.is_empty() {
        // `--force-remove` wants a work tree; mode 0 through `--index-info` removes an entry
        // without one.
        let zeros = "0".repeat(edit.parents.first().map_or(40, String::len));
        let mut removals = Vec::new();
        for path in edit.deletes {
            removals.extend_from_slice(format!("0 {zeros}\t{path}").as_bytes());
            removals.push(0);
        }
        repo.run(
            &["update-index", "-z", "--index-info"],
            &env,
            Some(&removals),
        )?;
    }
    let tree = text(repo.run(&["write-tree"], &env, None)?);

    let mut args = vec!["commit-tree", tree.as_str()];
    for parent in edit.parents {
        args.extend(["-p", parent.as_str()]);
    }
    args.extend(["-F", "-"]);
    let identity = [
        ("GIT_AUTHOR_NAME", edit.author_name),
        ("GIT_AUTHOR_EMAIL", edit.author_email),
        ("GIT_COMMITTER_NAME", edit.author_name),
        ("GIT_COMMITTER_EMAIL", edit.author_email),
    ];
    // `commit-tree -F` stores the message as given; `-m` (and Bitbucket) end it with a newline.
    let mut message = edit.message.to_owned();
    if !message.ends_with('\n') {
        message.push('\n');
    }
    let commit = text(repo.run(&args, &identity, Some(message.as_bytes()))?);

    let reference = format!("refs/heads/{}", edit.branch);
    let zeros = "0".repeat(commit.len());
    let old = edit.expected_tip.unwrap_or(&zeros);
    let moved = repo.output(&["update-ref", &reference, &commit, old], &[], None)?;
    if !moved.status.success() {
        return Ok(Outcome::Moved);
    }
    // Objects written as root must stay writable for pushes over SSH as the `git` user.
    share_tree(repo.path())?;
    record_push(repo.path(), edit, &reference, &commit)?;
    Ok(Outcome::Committed(commit))
}

/// Appends the ref update to the webhook journal, when the repository has one.
fn record_push(repo: &Path, edit: &Edit<'_>, reference: &str, commit: &str) -> Result<()> {
    let journal_path = repo.join(JOURNAL_FILE);
    if !journal_path.is_file() {
        return Ok(());
    }
    journal::append(
        &journal_path,
        &Push {
            actor: edit.actor.to_owned(),
            updates: vec![RefUpdate {
                reference: reference.to_owned(),
                old: edit.expected_tip.map(str::to_owned),
                new: Some(commit.to_owned()),
                forced: Some(false),
            }],
        },
    )
}

fn text(bytes: Vec<u8>) -> String {
    String::from_utf8_lossy(&bytes).trim().to_owned()
}
