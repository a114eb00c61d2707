//! Making the branch hold a commit request: changesets that a lost push already landed,
//! conflicts with commits not ours, one commit on the head as fetched, and a push that never
//! forces, tried again with back-off while the branch moves.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::time::Duration;

use reposync_model::commit::{self, FileOp};
use reposync_model::{ChangesetId, ObjectId, Person, UserName};

use crate::auth::Remote;
use crate::error::{GitError, GitErrorKind};

use super::check::invalid;
use super::commit::{Change, FileChange, Signature, check_changes, check_signature};
use super::entry::FILE_MODE;
use super::handle::{LocalClone, ORIGIN};
use super::history::Reach;
use super::parse::{
    DiffRecord, RangeCommit, parse_diff_tree, parse_ls_tree, parse_range_commits, parse_raw_diff,
};

/// The longest pause between two push attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// How many of the newest commits are searched for a lost push's trailers when the caller
/// has no base to search from.
pub const LANDED_LOOKBACK: usize = 64;

/// How many paths one `git ls-tree` names at most, to stay far below the argument limit.
const PATHS_PER_COMMAND: usize = 500;

/// One commit reposync wants on the branch: the state each of its paths should end in, who
/// makes it, and what its message says besides the files.
#[derive(Debug, Clone, Copy)]
pub struct CommitRequest<'a> {
    /// The commit at which the caller last read the branch: a commit after it that is not
    /// reposync's own and changed one of `files` to something else is a conflict. `None`
    /// when the caller never read the branch (it is new, or was empty).
    pub base: Option<&'a ObjectId>,
    /// The state each path should have: its content, or `None` for no file. Paths the branch
    /// already holds in that state are left out of the commit.
    pub files: &'a [FileChange],
    /// The connector's identity: always the committer, and the author too unless
    /// `author_from_user` makes a person the author.
    pub author: &'a Signature,
    /// The message's first line; `None` or blank gives the default.
    pub summary: Option<&'a str>,
    /// The changesets the commit carries, one `Reposync-Changeset:` trailer each, except those
    /// a commit since `base` already carries: a push whose answer was lost.
    pub changesets: &'a [ChangesetId],
    /// The person who made each of `changesets` that a person made (the others were made by
    /// none: reposync itself, or a change read from Git). The commit names each person whose
    /// changesets it carries in one `Reposync-User:` trailer, in the order of `changesets`.
    pub made_by: &'a [(ChangesetId, Person)],
    /// When every changeset the commit carries was made by the same one person, who has an
    /// e-mail address, that person is the author (and `author` only the committer).
    pub author_from_user: bool,
    /// Commits reposync pushed after `base` that the caller has not read back yet. They are
    /// its own, so what they changed is never a conflict.
    pub own_commits: &'a [ObjectId],
    /// How many times to fetch and push again when the branch moves during the push.
    pub max_attempts: u32,
}

/// How [`LocalClone::commit_and_push`] ended, when it did not fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitOutcome {
    /// Pushed as `commit` on top of `parent` (None when the branch did not exist and was created).
    Pushed {
        commit: ObjectId,
        parent: Option<ObjectId>,
        /// How many push attempts it took, 1 when the branch did not move meanwhile.
        attempts: u32,
        /// What the commit changed, as its message lists it.
        files: Vec<CommittedFile>,
        /// Changesets of the request that an earlier commit already carried.
        landed: Vec<LandedChangeset>,
    },
    /// The branch already held every path as asked: nothing committed. `head` is the branch
    /// head.
    NothingToCommit {
        head: Option<ObjectId>,
        landed: Vec<LandedChangeset>,
    },
    /// Commits on the remote since `base` that are not ours changed some of our paths to
    /// something else: nothing was pushed.
    Conflict {
        head: ObjectId,
        files: Vec<ConflictFile>,
    },
}

/// A file a commit changed, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedFile {
    pub op: FileOp,
    pub path: String,
}

/// A changeset that a commit on the branch already carries in its trailers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LandedChangeset {
    pub changeset: ChangesetId,
    pub commit: ObjectId,
}

/// A path that both we and a commit on the remote changed, with the remote's version.
#[derive(Clone, PartialEq, Eq)]
pub struct ConflictFile {
    pub path: String,
    /// The content at the remote head; `None` when the remote deleted the file.
    pub theirs: Option<Vec<u8>>,
}

impl fmt::Debug for ConflictFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConflictFile")
            .field("path", &self.path)
            .field(
                "theirs",
                &self.theirs.as_deref().map(String::from_utf8_lossy),
            )
            .finish()
    }
}

impl LocalClone {
    /// Makes the branch hold `request.files` as asked, in one commit pushed on top of it, in
    /// bounded attempts with back-off.
    ///
    /// Each attempt fetches the branch (head H) and first reads the commits since
    /// `request.base`: those carrying a `Reposync-Changeset:` trailer of one of the request's
    /// changesets are pushes of ours whose answer was lost, so those changesets are
    /// [`LandedChangeset`]s and are not carried again; those and `request.own_commits` are
    /// ours. A path that a commit not ours changed since the base, and that H holds otherwise
    /// than asked, is a [`CommitOutcome::Conflict`] and nothing is pushed. Otherwise the
    /// commit holds exactly the paths H holds otherwise than asked, so it says
    /// `ADD`/`MODIFY`/`DELETE` for exactly what it changes; when there are none, it is
    /// [`CommitOutcome::NothingToCommit`]. The commit is built without a work tree, with the
    /// request's author as author and committer, except that with `author_from_user` a commit
    /// whose carried changesets one person made has that person as author (see
    /// [`commit_author`]). The trailers and the author are decided by the changesets the
    /// commit carries, so a commit made again after a lost answer names only its own people.
    /// The push never forces. A push rejected because the
    /// branch moved starts another attempt after 100 ms, 200 ms, 400 ms… (at most 5 s); after
    /// `max_attempts` (at least 1) it is a [`GitErrorKind::PushRaced`] error. A refusal that
    /// will not change (a hook, branch protection, no write access) is a
    /// [`GitErrorKind::PushRejected`] error at once. When the branch does not exist the commit
    /// has no parent and creates it; when `base` is given but the branch no longer exists, it
    /// is an error, because its files cannot be told apart from ours.
    ///
    /// Without a base, or with one that a forced update took out of the branch's history, the
    /// commits looked at for landed changesets are the last [`LANDED_LOOKBACK`] of the local
    /// history; with a lost base, every path that differs from it is taken as changed by
    /// someone else.
    pub async fn commit_and_push(
        &self,
        remote: &Remote,
        request: &CommitRequest<'_>,
    ) -> Result<CommitOutcome, GitError> {
        self.check_remote(remote)?;
        check_changes(request.files)?;
        check_signature(request.author)?;
        let scratch = self.runner.private_dir("reposync-commit-")?;
        // Contents are hashed into the clone once, whatever the number of attempts.
        let ours = self.write_blobs(request.files, scratch.path()).await?;
        let made_by: HashMap<&str, &Person> = request
            .made_by
            .iter()
            .map(|(id, person)| (id.as_str(), person))
            .collect();
        let max_attempts = request.max_attempts.max(1);
        let mut last_race = None;
        for attempt in 1..=max_attempts {
            if attempt > 1 {
                tokio::time::sleep(backoff(attempt - 1)).await;
            }
            let planned = match self.fetch(remote).await? {
                Some(head) => self.plan_on_head(remote, request, &ours, head).await?,
                None => match request.base {
                    Some(base) => {
                        return Err(invalid(format!(
                            "branch {} of {} no longer exists, though the changes were based on its commit {base}",
                            self.branch, self.url
                        )));
                    }
                    // A new branch: everything to write is added.
                    None => AttemptPlan::Commit {
                        head: None,
                        changes: ours
                            .iter()
                            .filter(|c| c.oid.is_some())
                            .map(|c| (FileOp::Add, c))
                            .collect(),
                        landed: Vec::new(),
                    },
                },
            };
            let (head, mut changes, landed) = match planned {
                AttemptPlan::Done(outcome) => return Ok(outcome),
                AttemptPlan::Commit {
                    head,
                    changes,
                    landed,
                } => (head, changes, landed),
            };
            changes.sort_by(|a, b| a.1.path.cmp(&b.1.path));
            let files: Vec<CommittedFile> = changes
                .iter()
                .map(|(op, change)| CommittedFile {
                    op: *op,
                    path: change.path.clone(),
                })
                .collect();
            let (message, author) = message_and_author(request, &files, &landed, &made_by);
            let to_write: Vec<&Change> = changes.iter().map(|(_, change)| *change).collect();
            let Some(commit) = self
                .build_commit(head.as_ref(), &to_write, &author, request.author, &message)
                .await?
            else {
                return Ok(CommitOutcome::NothingToCommit { head, landed });
            };
            match self.push(remote, &commit).await {
                Ok(()) => {
                    return Ok(CommitOutcome::Pushed {
                        commit,
                        parent: head,
                        attempts: attempt,
                        files,
                        landed,
                    });
                }
                Err(error) if error.kind == GitErrorKind::PushRaced => {
                    tracing::info!(attempt, branch = %self.branch, url = %self.url, "the branch moved during the push; trying again");
                    last_race = Some(error);
                }
                Err(error) => return Err(error),
            }
        }
        let detail = last_race.map(|e| e.detail).unwrap_or_default();
        Err(GitError::new(
            GitErrorKind::PushRaced,
            format!(
                "branch {} of {} kept moving: the push was rejected as not a fast forward {max_attempts} times; try again later",
                self.branch, self.url
            ),
            detail,
        ))
    }

    /// What one attempt of `commit_and_push` does on top of the fetched `head`: which of the
    /// request's changesets already landed, whether commits not ours conflict, and which of
    /// `ours` differ from the head.
    async fn plan_on_head<'c>(
        &self,
        remote: &Remote,
        request: &CommitRequest<'_>,
        ours: &'c [Change],
        head: ObjectId,
    ) -> Result<AttemptPlan<'c>, GitError> {
        let (head, since) = self.commits_since(remote, request.base, head).await?;
        let (landed, theirs) = sort_commits_since(
            &since.commits,
            |found| (&found.id, found.message.as_str()),
            request.changesets,
            request.own_commits,
        );
        if !landed.is_empty() {
            tracing::info!(count = landed.len(), branch = %self.branch, "changesets of an earlier push whose answer was lost are on the branch; not carried again");
        }
        let changed_by_others: HashSet<String> = match (request.base, since.base_reached) {
            (None, _) => HashSet::new(),
            (Some(_), true) => self.paths_changed_by(&theirs).await?,
            (Some(base), false) => {
                // The base is no longer in the branch's history: whoever rewrote it may have
                // changed any path that differs from it.
                if self.has_commit(base).await? {
                    let diff = self
                        .local(&[
                            "diff-tree",
                            "-r",
                            "-z",
                            "--no-renames",
                            base.as_str(),
                            head.as_str(),
                        ])
                        .await?;
                    parse_diff_tree(&diff)?
                        .into_iter()
                        .map(|e| e.path)
                        .collect()
                } else {
                    ours.iter().map(|c| c.path.clone()).collect()
                }
            }
        };
        let at_head = self.entries_at(&head, ours).await?;
        let mut changes: Vec<(FileOp, &Change)> = Vec::new();
        for change in ours {
            let present = at_head.get(&change.path);
            let op = match (present, &change.oid) {
                (None, None) => continue,
                (Some((mode, oid)), Some(ours)) if mode == FILE_MODE && oid == ours => continue,
                (None, Some(_)) => FileOp::Add,
                (Some(_), Some(_)) => FileOp::Modify,
                (Some(_), None) => FileOp::Delete,
            };
            changes.push((op, change));
        }
        let conflicting: Vec<(&str, Option<String>)> = changes
            .iter()
            .filter(|(_, change)| changed_by_others.contains(&change.path))
            .map(|(_, change)| {
                (
                    change.path.as_str(),
                    at_head.get(&change.path).map(|(_, oid)| oid.clone()),
                )
            })
            .collect();
        if !conflicting.is_empty() {
            let files = self.contents_at(remote, &head, conflicting).await?;
            return Ok(AttemptPlan::Done(CommitOutcome::Conflict { head, files }));
        }
        if changes.is_empty() {
            return Ok(AttemptPlan::Done(CommitOutcome::NothingToCommit {
                head: Some(head),
                landed,
            }));
        }
        Ok(AttemptPlan::Commit {
            head: Some(head),
            changes,
            landed,
        })
    }

    /// The commits of the branch after `base` up to `head`, oldest first, with the head they
    /// were read at (deepening the shallow history to reach the base may find it moved).
    /// Without a base, or when the base is no longer in the history, the last
    /// [`LANDED_LOOKBACK`] commits the clone holds.
    async fn commits_since(
        &self,
        remote: &Remote,
        base: Option<&ObjectId>,
        head: ObjectId,
    ) -> Result<(ObjectId, CommitRange), GitError> {
        let lookback = format!("--max-count={LANDED_LOOKBACK}");
        let (head, args, base_reached) = match base {
            Some(base) if *base == head => {
                return Ok((
                    head,
                    CommitRange {
                        commits: Vec::new(),
                        base_reached: true,
                    },
                ));
            }
            Some(base) => match self.reach(remote, base, head).await? {
                Reach::Ancestor { head } => {
                    let exclude = format!("^{base}");
                    (head.clone(), vec![head.as_str().to_owned(), exclude], true)
                }
                Reach::Lost { head } => (
                    head.clone(),
                    vec![head.as_str().to_owned(), lookback],
                    false,
                ),
                Reach::Gone => {
                    return Err(invalid(format!(
                        "branch {} of {} was deleted while reading its history",
                        self.branch, self.url
                    )));
                }
            },
            None => (
                head.clone(),
                vec![head.as_str().to_owned(), lookback],
                false,
            ),
        };
        let mut command = vec!["log", "-z", "--reverse", "--format=%H%x00%P%x00%B"];
        command.extend(args.iter().map(String::as_str));
        let out = self.local(&command).await?;
        Ok((
            head,
            CommitRange {
                commits: parse_range_commits(&out)?,
                base_reached,
            },
        ))
    }

    /// The paths that `commits` changed, each compared with its first parent (a root commit
    /// with nothing), read by one process.
    async fn paths_changed_by(
        &self,
        commits: &[&RangeCommit],
    ) -> Result<HashSet<String>, GitError> {
        if commits.is_empty() {
            return Ok(HashSet::new());
        }
        let mut input = String::new();
        for found in commits {
            input.push_str(found.id.as_str());
            if let Some(parent) = &found.first_parent {
                input.push(' ');
                input.push_str(parent.as_str());
            }
            input.push('\n');
        }
        let out = self
            .run(
                self.local_command(&["diff-tree", "--stdin", "--root", "-r", "-z", "--no-renames"])
                    .stdin(input),
            )
            .await?;
        Ok(parse_raw_diff(&out)?
            .into_iter()
            .filter_map(|record| match record {
                // A path that is not UTF-8 is never one of ours.
                DiffRecord::Change(change) => String::from_utf8(change.path).ok(),
                DiffRecord::Commit(_) => None,
            })
            .collect())
    }

    /// The mode and object id at `commit` of each of `changes`' paths that exists there.
    async fn entries_at(
        &self,
        commit: &ObjectId,
        changes: &[Change],
    ) -> Result<HashMap<String, (String, String)>, GitError> {
        let mut entries = HashMap::new();
        for chunk in changes.chunks(PATHS_PER_COMMAND) {
            let mut args = vec!["ls-tree", "-z", "--full-tree", commit.as_str(), "--"];
            args.extend(chunk.iter().map(|c| c.path.as_str()));
            for entry in parse_ls_tree(&self.local(&args).await?)? {
                if let Ok(path) = String::from_utf8(entry.path) {
                    entries.insert(path, (entry.mode, entry.oid));
                }
            }
        }
        Ok(entries)
    }

    /// The contents at `head` of conflicting paths (`None` where the head has no such file).
    async fn contents_at(
        &self,
        remote: &Remote,
        head: &ObjectId,
        paths: Vec<(&str, Option<String>)>,
    ) -> Result<Vec<ConflictFile>, GitError> {
        let wanted: Vec<String> = paths.iter().filter_map(|(_, oid)| oid.clone()).collect();
        let contents = self
            .read_blobs(remote, &format!("{head}^{{tree}}"), &wanted)
            .await?;
        paths
            .into_iter()
            .map(|(path, oid)| {
                let theirs = match oid {
                    None => None,
                    Some(oid) => Some(
                        contents
                            .get(&oid)
                            .cloned()
                            .ok_or_else(|| self.missing_object(&oid, path))?,
                    ),
                };
                Ok(ConflictFile {
                    path: path.to_owned(),
                    theirs,
                })
            })
            .collect()
    }

    /// Pushes `commit` as the branch, never forcing: the server takes it only as a fast forward.
    async fn push(&self, remote: &Remote, commit: &ObjectId) -> Result<(), GitError> {
        let refspec = format!("{commit}:refs/heads/{}", self.branch);
        let mut command = self.remote_command(remote, &["push", "--no-verify", ORIGIN, &refspec]);
        // No delta search: it takes the remote's versions of the files we change as bases
        // (a thin pack, which pushes over HTTP always send), and a blobless clone may never
        // have fetched them, so with lazy fetching off the push would fail on a missing
        // object whenever it changes an existing file. A window of 0 adds no such base; what
        // we push is a few small files, which gain little from deltas anyway.
        command
            .config
            .push(("pack.window".to_owned(), "0".to_owned()));
        let output = self.runner.output(&command).await?;
        if output.success {
            return Ok(());
        }
        let error = self.in_context(GitError::classify_push(&output.stderr, &self.url));
        tracing::debug!(code = error.kind.code(), detail = %error.detail, "push failed");
        Err(error)
    }
}

/// What one attempt of `commit_and_push` found to do on the fetched head.
enum AttemptPlan<'c> {
    /// Nothing to push: a conflict, or a branch that holds everything already.
    Done(CommitOutcome),
    /// Commit `changes` (each of our changes that the head holds otherwise) on `head`.
    Commit {
        head: Option<ObjectId>,
        changes: Vec<(FileOp, &'c Change)>,
        landed: Vec<LandedChangeset>,
    },
}

/// Commits of a branch since a base, oldest first.
struct CommitRange {
    commits: Vec<RangeCommit>,
    /// Whether `commits` are all the commits since the base; false when they are only the
    /// newest ones because there was no base, or it was lost.
    base_reached: bool,
}

/// The author of a commit whose carried changesets were made by `people` (in their order),
/// when the connector asks for the person: the one person who made every one of them, with
/// the e-mail address of their newest. `None` (the connector's author) when a changeset was
/// made by no person, when several people made them, when there are none, or when that
/// person has no e-mail address (or one git would mangle).
pub fn commit_author(people: &[Option<&Person>]) -> Option<Signature> {
    let (newest, older) = people.split_last()?;
    let person = (*newest)?;
    if older
        .iter()
        .any(|p| p.is_none_or(|p| p.name != person.name))
    {
        return None;
    }
    let author = Signature {
        name: person.name.to_string(),
        email: person.email.as_ref()?.to_string(),
    };
    check_signature(&author).is_ok().then_some(author)
}

/// The message and the author of a commit carrying `request`'s changesets but those that
/// `landed` already: the files it changes, one trailer per changeset it carries and per person
/// who made them, and the author `author_from_user` asks for. The one rule for git pushes and
/// REST writes alike.
pub fn message_and_author(
    request: &CommitRequest<'_>,
    files: &[CommittedFile],
    landed: &[LandedChangeset],
    made_by: &HashMap<&str, &Person>,
) -> (String, Signature) {
    let carried: Vec<&str> = request
        .changesets
        .iter()
        .map(ChangesetId::as_str)
        .filter(|id| !landed.iter().any(|l| l.changeset.as_str() == *id))
        .collect();
    let people: Vec<Option<&Person>> = carried.iter().map(|id| made_by.get(id).copied()).collect();
    let users: Vec<&UserName> = people.iter().flatten().map(|p| &p.name).collect();
    let lines: Vec<(FileOp, &str)> = files.iter().map(|f| (f.op, f.path.as_str())).collect();
    let message = commit::render(request.summary, &lines, &carried, &users);
    let author = if request.author_from_user {
        commit_author(&people).unwrap_or_else(|| request.author.clone())
    } else {
        request.author.clone()
    };
    (message, author)
}

/// Sorts the commits since a write's base (oldest first) the one way both ways of writing do:
/// the changesets of the write that a commit already carries in its trailers (a write whose
/// answer was lost; the first commit carrying each), and the commits that are not ours (they
/// carry none of the write's changesets and are not among `own_commits`), whose changes may
/// conflict with the write's.
pub fn sort_commits_since<'c, C>(
    commits: &'c [C],
    id_and_message: impl Fn(&'c C) -> (&'c ObjectId, &'c str),
    changesets: &[ChangesetId],
    own_commits: &[ObjectId],
) -> (Vec<LandedChangeset>, Vec<&'c C>) {
    let wanted: HashSet<&str> = changesets.iter().map(ChangesetId::as_str).collect();
    let own: HashSet<&ObjectId> = own_commits.iter().collect();
    let mut landed: Vec<LandedChangeset> = Vec::new();
    let mut theirs = Vec::new();
    for found in commits {
        let (id, message) = id_and_message(found);
        let carried: Vec<&str> = commit::changeset_ids(message)
            .into_iter()
            .filter(|carried| wanted.contains(carried))
            .collect();
        for carried_id in &carried {
            if !landed.iter().any(|l| l.changeset.as_str() == *carried_id) {
                landed.push(LandedChangeset {
                    changeset: ChangesetId::new(*carried_id),
                    commit: id.clone(),
                });
            }
        }
        if carried.is_empty() && !own.contains(id) {
            theirs.push(found);
        }
    }
    (landed, theirs)
}

/// The pause before attempt `retry + 1`: 100 ms, 200 ms, 400 ms…, at most [`MAX_BACKOFF`].
fn backoff(retry: u32) -> Duration {
    let factor = 1u32 << retry.saturating_sub(1).min(16);
    Duration::from_millis(100)
        .saturating_mul(factor)
        .min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(name: &str, email: Option<&str>) -> Person {
        Person {
            name: UserName::parse(name).unwrap(),
            email: email.map(|e| reposync_model::EmailAddress::parse(e).unwrap()),
        }
    }

    #[test]
    fn the_author_is_the_one_person_who_made_every_carried_changeset() {
        let alice = person("alice", Some("alice@example.com"));
        let alice_moved = person("alice", Some("alice@new.example"));
        let bob = person("bob", Some("bob@example.com"));
        let nameless = person("carol", None);
        let signature = |name: &str, email: &str| Signature {
            name: name.into(),
            email: email.into(),
        };
        assert_eq!(
            commit_author(&[Some(&alice)]),
            Some(signature("alice", "alice@example.com"))
        );
        // Their newest address wins when it changed between their changes.
        assert_eq!(
            commit_author(&[Some(&alice), Some(&alice_moved)]),
            Some(signature("alice", "alice@new.example"))
        );
        assert_eq!(commit_author(&[Some(&alice), Some(&bob)]), None);
        assert_eq!(commit_author(&[Some(&alice), None]), None);
        assert_eq!(commit_author(&[None, Some(&alice)]), None);
        assert_eq!(commit_author(&[Some(&nameless)]), None);
        assert_eq!(commit_author(&[]), None);
    }

    #[test]
    fn backoff_doubles_from_100ms_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_millis(100));
        assert_eq!(backoff(2), Duration::from_millis(200));
        assert_eq!(backoff(3), Duration::from_millis(400));
        assert_eq!(backoff(40), MAX_BACKOFF);
    }
}
