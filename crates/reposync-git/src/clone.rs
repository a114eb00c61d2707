//! A reusable local clone of one branch, and the whole flow of committing files to it.
//!
//! The clone is made to be cheap to keep and cheap to refresh: it has no work tree (commits
//! are built from a temporary index with plumbing), it holds only its one branch, its history
//! starts shallow, and it is a partial clone without blobs, so a fetch brings commits and trees
//! and only the contents that are read or changed are ever downloaded. Every command runs with
//! `GIT_DIR` set, so a broken clone can never make git fall back to a repository above it, and
//! with lazy fetching disabled, so that a missing object is an error instead of a silent
//! round trip per object: blobs are fetched explicitly, in one batch.
//!
//! Changes are read commit by commit along first parents, deepening the shallow history only
//! as far as the commit they start from; a start the history no longer holds (a forced
//! update) gives every file instead, since the commits in between cannot be known.
//!
//! Pushes never force. When the remote moved, the branch is fetched again and our changes are
//! applied on top of the new head, provided the commits we did not know about left our paths
//! alone; otherwise the caller gets the conflicting files and nothing is pushed.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reposync_model::commit::{self, FileOp};
use reposync_model::{PathProblem, RepoPath, escape_path};

use crate::auth::Remote;
use crate::error::{GitError, GitErrorKind};
use crate::runner::{GitCommand, GitRunner};

/// The name of the one remote of a clone.
const ORIGIN: &str = "origin";

/// Configuration key that records, last, which branch a clone was made for. Its presence
/// proves that the creation of the clone finished.
const BRANCH_MARKER: &str = "reposync.branch";

/// The filter of the partial clone: commits and trees, no file contents.
const BLOB_FILTER: &str = "blob:none";

/// The file mode of everything we write: a regular, non-executable file.
const FILE_MODE: &str = "100644";

/// The mode git writes for a folder in a tree.
const TREE_MODE: &str = "40000";

/// The mode git gives a side of a change where there is nothing.
const ABSENT_MODE: &str = "000000";

/// The mode of a symbolic link; its blob holds the link's target.
const SYMLINK_MODE: &str = "120000";

/// The mode of a submodule: a commit of another repository, with no content here.
const GITLINK_MODE: &str = "160000";

/// The longest pause between two push attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// How many commits the first deepening of a shallow history asks for; each next one asks
/// for twice as many.
const FIRST_DEEPEN: u32 = 16;

/// How many of the newest commits are searched for a lost push's trailers when the caller
/// has no base to search from.
pub const LANDED_LOOKBACK: usize = 64;

/// How many paths one `git ls-tree` names at most, to stay far below the argument limit.
const PATHS_PER_COMMAND: usize = 500;

/// A reusable local clone of one branch of one remote, kept on disk between operations.
///
/// One operation at a time: the caller serialises the use of a clone directory.
#[derive(Debug, Clone)]
pub struct LocalClone {
    dir: PathBuf,
    git_dir: PathBuf,
    url: String,
    branch: String,
    runner: GitRunner,
}

/// One file change to commit: `content: None` deletes the path.
#[derive(Clone, PartialEq, Eq)]
pub struct FileChange {
    /// A path relative to the repository root, with `/` separators (`Setup/Applications/x.yaml`).
    pub path: String,
    pub content: Option<Vec<u8>>,
}

impl fmt::Debug for FileChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Contents can be large; their size says enough in logs and test failures.
        f.debug_struct("FileChange")
            .field("path", &self.path)
            .field("bytes", &self.content.as_ref().map(Vec::len))
            .finish()
    }
}

/// The name and e-mail written as both author and committer of a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    pub name: String,
    pub email: String,
}

/// One commit reposync wants on the branch: the state each of its paths should end in, who
/// makes it, and what its message says besides the files.
#[derive(Debug, Clone, Copy)]
pub struct CommitRequest<'a> {
    /// The commit at which the caller last read the branch: a commit after it that is not
    /// reposync's own and changed one of `files` to something else is a conflict. `None`
    /// when the caller never read the branch (it is new, or was empty).
    pub base: Option<&'a str>,
    /// The state each path should have: its content, or `None` for no file. Paths the branch
    /// already holds in that state are left out of the commit.
    pub files: &'a [FileChange],
    /// Written as both author and committer.
    pub author: &'a Signature,
    /// The message's first line; `None` or blank gives the default.
    pub summary: Option<&'a str>,
    /// The changesets the commit carries, one `Reposync-Changeset:` trailer each, except those
    /// a commit since `base` already carries: a push whose answer was lost.
    pub changesets: &'a [String],
    /// Commits reposync pushed after `base` that the caller has not read back yet. They are
    /// its own, so what they changed is never a conflict.
    pub own_commits: &'a [String],
    /// How many times to fetch and push again when the branch moves during the push.
    pub max_attempts: u32,
}

/// How [`LocalClone::commit_and_push`] ended, when it did not fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitOutcome {
    /// Pushed as `commit` on top of `parent` (None when the branch did not exist and was created).
    Pushed {
        commit: String,
        parent: Option<String>,
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
        head: Option<String>,
        landed: Vec<LandedChangeset>,
    },
    /// Commits on the remote since `base` that are not ours changed some of our paths to
    /// something else: nothing was pushed.
    Conflict {
        head: String,
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
    pub changeset: String,
    pub commit: String,
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

/// What [`LocalClone::fetch_changes`] found on the branch since a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BranchChanges {
    /// The branch does not exist on the remote (deleted, or never created).
    Gone,
    /// `since` is in the history of `head`: the first-parent commits after it, oldest first.
    ///
    /// Applying the files of each commit in order to the files at `since` gives the files at
    /// the last commit. `complete` is false when more commits followed `since` than the caller
    /// allowed: the list then holds the oldest ones only, and the rest comes from asking again
    /// with the last commit of the list as `since`. An empty list means `since` is the head.
    Commits {
        head: String,
        commits: Vec<CommitChanges>,
        complete: bool,
    },
    /// Every file under the prefix at `head`, sorted by path, because there was no `since` (a
    /// first sync) or, when `since_lost` is true, because `since` is no longer in the history
    /// of the branch (a forced update rewrote it).
    Snapshot {
        head: String,
        files: Vec<(String, Vec<u8>)>,
        /// Entries under the prefix that reposync cannot hold as files, all as additions.
        unrepresentable: Vec<UnrepresentableEntry>,
        since_lost: bool,
    },
}

/// The files under a prefix at one commit, as [`LocalClone::read_files`] reads them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TreeFiles {
    /// Regular files at paths reposync can represent, with contents, sorted by path.
    pub files: Vec<(String, Vec<u8>)>,
    /// Every other entry (a path that is not UTF-8 or holds `.git`, `..`, control
    /// characters…, a symbolic link, a submodule), sorted by path, as additions.
    pub unrepresentable: Vec<UnrepresentableEntry>,
}

/// A tree entry that reposync cannot hold as a file ([`RepoPath`] refuses its path, or it is
/// a symbolic link or a submodule), reported instead of read so that the rest of the tree or
/// commit can be: reading a branch never fails because of what someone pushed to it.
#[derive(Clone, PartialEq, Eq)]
pub struct UnrepresentableEntry {
    /// The path as git stores it, which may not be UTF-8.
    pub path: Vec<u8>,
    pub problem: PathProblem,
    /// Added, modified or deleted; never renamed: a rename to or from such an entry is read
    /// as a deletion and an addition.
    pub change: FileChangeKind,
}

impl fmt::Debug for UnrepresentableEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnrepresentableEntry")
            .field("path", &escape_path(&self.path))
            .field("problem", &self.problem)
            .field("change", &self.change)
            .finish()
    }
}

/// One commit of [`BranchChanges::Commits`], with what it changed under the prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitChanges {
    pub commit: String,
    /// The commit that `files` are relative to: the first parent, except for the oldest commit
    /// of a list when `since` reached the branch through another of its parents (a merge such
    /// as `git pull` makes on top of local work), where it is `since` itself.
    pub parent: String,
    /// The whole message as written, trailers included, usually ending with a newline.
    pub message: String,
    pub author_name: String,
    pub author_email: String,
    /// When the commit was made, in seconds since the Unix epoch (the committer date).
    pub committed_at: i64,
    /// The files under the prefix that differ from `parent`, sorted by path; empty when the
    /// commit changed nothing there.
    pub files: Vec<ChangedFile>,
    /// The entries under the prefix that differ from `parent` and that reposync cannot hold
    /// as files, sorted by path.
    pub unrepresentable: Vec<UnrepresentableEntry>,
}

/// A file that one commit changed.
#[derive(Clone, PartialEq, Eq)]
pub struct ChangedFile {
    /// The path after the change, relative to the repository root, with `/` separators.
    pub path: String,
    pub change: FileChangeKind,
    /// The content after the change; `None` when the file was deleted.
    pub content: Option<Vec<u8>>,
}

impl fmt::Debug for ChangedFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChangedFile")
            .field("path", &self.path)
            .field("change", &self.change)
            .field("bytes", &self.content.as_ref().map(Vec::len))
            .finish()
    }
}

/// How a commit changed a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileChangeKind {
    Added,
    Modified,
    Deleted,
    /// Moved from `from` (also under the prefix), with its content unchanged or similar.
    Renamed {
        from: String,
    },
}

impl LocalClone {
    /// Opens (creating if needed) the clone in `dir` for `branch` of `remote.url`.
    ///
    /// Reuses an existing clone. Since the caller serialises the use of a clone, a lock file
    /// found here (`index.lock`, `shallow.lock`, `packed-refs.lock`, `config.lock`, a ref's
    /// lock, `objects/maintenance.lock`…) was left by a process that died mid-operation: the
    /// lock files and half-written packs are removed and the clone is checked as any other,
    /// which is much cheaper than fetching a large repository again. The exception is a git
    /// still running in the clone (left by a reposync killed on its own, whose children
    /// survive it): then nothing is touched and the open fails, to be retried once it ends.
    /// A clone that is corrupt, or for another URL or branch, is removed and made afresh.
    /// `dir` must be empty or hold nothing but a clone's `.git`: anything else is refused
    /// rather than deleted, in case the directory was misconfigured.
    ///
    /// A clone holding many loose objects or packs is compacted here, in the foreground,
    /// since no command compacts it automatically (see [`GitRunner`]).
    pub async fn open(
        runner: &GitRunner,
        dir: &Path,
        remote: &Remote,
        branch: &str,
    ) -> Result<LocalClone, GitError> {
        check_branch_name(branch)?;
        let dir = std::path::absolute(dir).map_err(|e| {
            invalid(format!(
                "cannot resolve the clone directory {}: {e}",
                dir.display()
            ))
        })?;
        let clone = LocalClone {
            git_dir: dir.join(".git"),
            dir,
            url: remote.url.clone(),
            branch: branch.to_owned(),
            runner: runner.clone(),
        };
        match clone.state().await? {
            CloneState::Usable => {
                clone.compact_if_needed().await;
                return Ok(clone);
            }
            CloneState::Absent => {}
            CloneState::Unusable(reason) => {
                tracing::warn!(dir = %clone.dir.display(), %reason, "starting the local clone afresh");
                tokio::fs::remove_dir_all(&clone.git_dir)
                    .await
                    .map_err(|e| clone.io_error("remove the unusable clone", e))?;
            }
        }
        clone.create(Contents::Blobless).await?;
        Ok(clone)
    }

    /// The directory of the clone (its git directory is `.git` inside it).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The branch this clone follows.
    pub fn branch(&self) -> &str {
        &self.branch
    }

    /// Fetches only the branch and returns its head, or `None` if the remote has no such
    /// branch (an empty repository or a branch still to create).
    ///
    /// The first fetch is shallow (`--depth 1`) and blobless (`--filter=blob:none`, falling
    /// back to a full-blob shallow fetch if the server refuses filters); later fetches are
    /// blobless and incremental.
    pub async fn fetch(&self, remote: &Remote) -> Result<Option<String>, GitError> {
        self.check_remote(remote)?;
        let had_head = self.local_head().await?;
        let depth = had_head.is_none().then_some("--depth=1");
        self.fetch_branch(remote, depth, had_head.is_some()).await
    }

    /// Every file under `prefix` (e.g. `Setup/`) at `commit`, with contents, sorted by path;
    /// entries that reposync cannot hold as files are listed apart, without contents.
    ///
    /// The prefix is matched as a plain string against whole paths. Contents missing from the
    /// partial clone are fetched in one request, never one process per file.
    pub async fn read_files(
        &self,
        remote: &Remote,
        commit: &str,
        prefix: &str,
    ) -> Result<TreeFiles, GitError> {
        self.check_remote(remote)?;
        check_object_id(commit, "commit")?;
        self.ensure_commit(remote, commit).await?;
        // Only the directory part narrows the listing; the rest of the prefix is matched here.
        let directory = prefix.rfind('/').map_or("", |slash| &prefix[..=slash]);
        let mut args = vec!["ls-tree", "-r", "-z", "--full-tree", commit];
        if !directory.is_empty() {
            args.extend(["--", directory]);
        }
        let listing = self.local(&args).await?;
        let mut entries = Vec::new();
        let mut unrepresentable = Vec::new();
        for entry in parse_ls_tree(&listing)? {
            if !entry.path.starts_with(prefix.as_bytes()) {
                continue;
            }
            match representable_file(&entry.mode, &entry.path) {
                Ok(path) => entries.push((path, entry.oid)),
                Err(problem) => unrepresentable.push(UnrepresentableEntry {
                    path: entry.path,
                    problem,
                    change: FileChangeKind::Added,
                }),
            }
        }
        if entries.is_empty() {
            return Ok(TreeFiles {
                files: Vec::new(),
                unrepresentable,
            });
        }
        let tree = if directory.is_empty() {
            format!("{commit}^{{tree}}")
        } else {
            format!("{commit}:{}", directory.trim_end_matches('/'))
        };
        let wanted: Vec<String> = entries.iter().map(|(_, oid)| oid.clone()).collect();
        let contents = self.read_blobs(remote, &tree, &wanted).await?;
        let files = entries
            .into_iter()
            .map(|(path, oid)| {
                // Cloned, not moved: files with equal contents share one object.
                let content = contents
                    .get(&oid)
                    .cloned()
                    .ok_or_else(|| self.missing_object(&oid, &path))?;
                Ok((path, content))
            })
            .collect::<Result<_, GitError>>()?;
        Ok(TreeFiles {
            files,
            unrepresentable,
        })
    }

    /// Fetches the branch and returns what changed under `prefix` (a folder such as `Setup/`)
    /// since the commit `since`, commit by commit.
    ///
    /// Without `since`, or when `since` is no longer in the history of the branch, the answer
    /// is a [`BranchChanges::Snapshot`] of every file under the prefix at the head. Otherwise
    /// the first-parent commits after `since` are listed oldest first, each compared with its
    /// first parent (so a merge brings the merged changes once) with renames detected within
    /// the prefix, and with the contents of the added, modified and renamed files. At most
    /// `max_commits` (at least 1) commits are listed; see [`BranchChanges::Commits`].
    ///
    /// The clone being shallow, `since` may lie below its history: the history is then
    /// deepened, 16 commits and then twice as many each time, until `since` is reached or the
    /// history is complete, in which case `since` was rewritten away. A branch moved back to an
    /// ancestor of a `since` the clone holds is told at once, without deepening. All the
    /// contents needed are fetched in one request, and read by one process. The prefix must
    /// be a relative folder ending with `/`. Entries under it that reposync cannot hold as
    /// files (see [`UnrepresentableEntry`]) are reported apart and never fail the read.
    pub async fn fetch_changes(
        &self,
        remote: &Remote,
        since: Option<&str>,
        prefix: &str,
        max_commits: usize,
    ) -> Result<BranchChanges, GitError> {
        self.check_remote(remote)?;
        check_folder(prefix)?;
        if let Some(since) = since {
            check_object_id(since, "the `since` commit")?;
        }
        let max_commits = max_commits.max(1);
        if let Attempt::Done(changes) = self
            .changes_since(remote, since, prefix, max_commits)
            .await?
        {
            return Ok(changes);
        }
        // The server could not send contents by id, so the clone was made anew with whole files
        // and a shallow history. Deepening it now brings the contents with the commits, so the
        // second attempt has nothing left to fetch by id.
        match self
            .changes_since(remote, since, prefix, max_commits)
            .await?
        {
            Attempt::Done(changes) => Ok(changes),
            Attempt::CloneRemade => Err(invalid(format!(
                "the local clone {} had to be made anew twice while reading the changes of branch {} of {}",
                self.dir.display(),
                self.branch,
                self.url
            ))),
        }
    }

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
    /// author as author and committer. The push never forces. A push rejected because the
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
        if let Some(base) = request.base {
            check_object_id(base, "base commit")?;
        }
        for own in request.own_commits {
            check_object_id(own, "own commit")?;
        }
        check_changes(request.files)?;
        check_signature(request.author)?;
        let scratch = self.runner.private_dir("reposync-commit-")?;
        // Contents are hashed into the clone once, whatever the number of attempts.
        let ours = self.write_blobs(request.files, scratch.path()).await?;
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
            let carried: Vec<&str> = request
                .changesets
                .iter()
                .map(String::as_str)
                .filter(|id| !landed.iter().any(|l| l.changeset == *id))
                .collect();
            let lines: Vec<(FileOp, &str)> =
                files.iter().map(|f| (f.op, f.path.as_str())).collect();
            let message = commit::render(request.summary, &lines, &carried);
            let to_write: Vec<&Change> = changes.iter().map(|(_, change)| *change).collect();
            let Some(commit) = self
                .build_commit(head.as_deref(), &to_write, request.author, &message)
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
        head: String,
    ) -> Result<AttemptPlan<'c>, GitError> {
        let (head, since) = self.commits_since(remote, request.base, head).await?;
        let wanted: HashSet<&str> = request.changesets.iter().map(String::as_str).collect();
        let own_commits: HashSet<&str> = request.own_commits.iter().map(String::as_str).collect();
        let mut landed: Vec<LandedChangeset> = Vec::new();
        let mut theirs: Vec<&RangeCommit> = Vec::new();
        for found in &since.commits {
            let carried: Vec<&str> = commit::changeset_ids(&found.message)
                .into_iter()
                .filter(|id| wanted.contains(id))
                .collect();
            for id in &carried {
                if !landed.iter().any(|l| l.changeset == *id) {
                    landed.push(LandedChangeset {
                        changeset: (*id).to_owned(),
                        commit: found.id.clone(),
                    });
                }
            }
            if carried.is_empty() && !own_commits.contains(found.id.as_str()) {
                theirs.push(found);
            }
        }
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
                        .local(&["diff-tree", "-r", "-z", "--no-renames", base, &head])
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
        base: Option<&str>,
        head: String,
    ) -> Result<(String, CommitRange), GitError> {
        let lookback = format!("--max-count={LANDED_LOOKBACK}");
        let (head, args, base_reached) = match base {
            Some(base) if base == head => {
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
                    (head.clone(), vec![head, exclude], true)
                }
                Reach::Lost { head } => (head.clone(), vec![head, lookback], false),
                Reach::Gone => {
                    return Err(invalid(format!(
                        "branch {} of {} was deleted while reading its history",
                        self.branch, self.url
                    )));
                }
            },
            None => (head.clone(), vec![head, lookback], false),
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
            input.push_str(&found.id);
            if let Some(parent) = &found.first_parent {
                input.push(' ');
                input.push_str(parent);
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
        commit: &str,
        changes: &[Change],
    ) -> Result<HashMap<String, (String, String)>, GitError> {
        let mut entries = HashMap::new();
        for chunk in changes.chunks(PATHS_PER_COMMAND) {
            let mut args = vec!["ls-tree", "-z", "--full-tree", commit, "--"];
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
        head: &str,
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

    /// What is in the directory, and whether it can be used as it is.
    async fn state(&self) -> Result<CloneState, GitError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(CloneState::Absent),
            Err(e) => return Err(self.io_error("read the clone directory", e)),
        };
        let mut has_git_dir = false;
        for entry in entries {
            let entry = entry.map_err(|e| self.io_error("read the clone directory", e))?;
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            if entry.file_name() == ".git" && is_dir {
                has_git_dir = true;
            } else {
                return Err(unusable(format!(
                    "{} holds {:?}, so it is not a clone made by reposync; refusing to use or delete it",
                    self.dir.display(),
                    entry.file_name()
                )));
            }
        }
        if !has_git_dir {
            return Ok(CloneState::Absent);
        }
        self.remove_debris()?;
        let config = match self.local(&["config", "--local", "--list", "-z"]).await {
            Ok(config) => parse_config_list(&config),
            Err(e) => {
                return Ok(CloneState::Unusable(format!(
                    "not a usable repository: {e}"
                )));
            }
        };
        if config.get(BRANCH_MARKER).map(String::as_str) != Some(self.branch.as_str()) {
            return Ok(CloneState::Unusable(
                "made for another branch, or its creation did not finish".to_owned(),
            ));
        }
        if config.get(&format!("remote.{ORIGIN}.url")) != Some(&self.url) {
            return Ok(CloneState::Unusable("made for another URL".to_owned()));
        }
        let head = match self.local_head().await {
            Ok(head) => head,
            Err(e) => return Ok(CloneState::Unusable(format!("unreadable branch: {e}"))),
        };
        if let Some(head) = head {
            // The head commit and its tree must be here: a clone that lost objects would fail
            // later, in the middle of an operation.
            let input = format!("{head}\n{head}^{{tree}}\n");
            let present = self
                .run(
                    self.local_command(&["cat-file", "--batch-check"])
                        .stdin(input),
                )
                .await
                .map(|out| !String::from_utf8_lossy(&out).contains(" missing"));
            if !present.unwrap_or(false) {
                return Ok(CloneState::Unusable(format!(
                    "the objects of its head {head} are missing"
                )));
            }
        }
        Ok(CloneState::Usable)
    }

    /// Removes the lock files and half-written packs that a process killed mid-operation
    /// leaves, unless a process still works in the clone, which is then an error.
    fn remove_debris(&self) -> Result<(), GitError> {
        let debris = find_debris(&self.git_dir);
        if debris.is_empty() {
            return Ok(());
        }
        if let Some(pid) = process_working_in(&self.git_dir) {
            return Err(invalid(format!(
                "process {pid} still works in the local clone {} (a git left running by an earlier reposync that was killed, or someone else's git); the clone is used again once it ends",
                self.dir.display()
            )));
        }
        for path in &debris {
            match std::fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(self.io_error(&format!("remove {}", path.display()), e));
                }
            }
        }
        let removed: Vec<String> = debris
            .iter()
            .map(|p| {
                p.strip_prefix(&self.git_dir)
                    .unwrap_or(p)
                    .display()
                    .to_string()
            })
            .collect();
        tracing::warn!(dir = %self.dir.display(), removed = ?removed, "removed what a process killed mid-operation left in the local clone");
        Ok(())
    }

    /// Runs `git gc --auto` in the foreground when the clone has as many loose objects or
    /// packs as git's own automatic gc waits for (estimated as git does, without starting a
    /// process). A failure is logged, not returned: the clone works uncompacted.
    async fn compact_if_needed(&self) {
        if !needs_compacting(&self.git_dir.join("objects")) {
            return;
        }
        tracing::info!(dir = %self.dir.display(), "compacting the local clone");
        let mut command = self.local_command(&["gc", "--auto", "--quiet"]);
        // Git's own thresholds, for this one command: every other runs with gc.auto=0.
        command.config.extend([
            ("gc.auto".to_owned(), GC_LOOSE_OBJECTS.to_string()),
            ("gc.autoPackLimit".to_owned(), GC_PACKS.to_string()),
        ]);
        if let Err(error) = self.run(command).await {
            tracing::warn!(dir = %self.dir.display(), %error, "cannot compact the local clone");
        }
    }

    /// Creates an empty repository configured to fetch the branch, as a partial clone unless
    /// it must hold whole files.
    async fn create(&self, contents: Contents) -> Result<(), GitError> {
        tokio::fs::create_dir_all(&self.dir)
            .await
            .map_err(|e| self.io_error("create the clone directory", e))?;
        // No template: the clone needs no sample hooks or description, and none of the host's.
        let init = GitCommand {
            args: ["init", "--quiet", "--template="]
                .iter()
                .map(OsString::from)
                .chain([OsString::from("--"), self.dir.clone().into_os_string()])
                .collect(),
            url: self.place(),
            ..GitCommand::default()
        };
        self.run(init).await?;
        let remote_key = |name: &str| format!("remote.{ORIGIN}.{name}");
        let fetch_refspec = format!("+refs/heads/{}:{}", self.branch, self.tracking_ref());
        let mut settings = vec![
            (remote_key("url"), self.url.as_str()),
            (remote_key("fetch"), fetch_refspec.as_str()),
            (remote_key("tagOpt"), "--no-tags"),
            // Reflogs would keep every commit ever fetched alive for 90 days.
            ("core.logAllRefUpdates".to_owned(), "false"),
        ];
        if contents == Contents::Blobless {
            settings.extend([
                // A partial clone is a repository format extension, which needs format
                // version 1.
                ("core.repositoryformatversion".to_owned(), "1"),
                ("extensions.partialClone".to_owned(), ORIGIN),
                (remote_key("promisor"), "true"),
                (remote_key("partialclonefilter"), BLOB_FILTER),
            ]);
        }
        // Written last: a clone without it did not finish being created.
        settings.push((BRANCH_MARKER.to_owned(), self.branch.as_str()));
        for (key, value) in &settings {
            self.local(&["config", key, value]).await?;
        }
        Ok(())
    }

    /// The commit the remote-tracking ref holds, if any.
    async fn local_head(&self) -> Result<Option<String>, GitError> {
        let tracking = self.tracking_ref();
        let command = self.local_command(&["rev-parse", "--verify", "--quiet", &tracking]);
        let output = self.runner.output(&command).await?;
        if output.success {
            Ok(Some(
                String::from_utf8_lossy(&output.stdout).trim().to_owned(),
            ))
        } else if output.stderr.trim().is_empty() {
            // `--verify --quiet` exits with 1 and says nothing when the ref does not exist.
            Ok(None)
        } else {
            Err(self.in_context(output.into_error(&command)))
        }
    }

    /// Fetches the branch into its tracking ref, with `depth` (`--depth=1`, `--deepen=16`) if
    /// given, and returns its head; `None`, with the tracking ref deleted, when the remote has
    /// no such branch.
    async fn fetch_branch(
        &self,
        remote: &Remote,
        depth: Option<&str>,
        had_head: bool,
    ) -> Result<Option<String>, GitError> {
        let refspec = format!(
            "+refs/heads/{branch}:{tracking}",
            branch = self.branch,
            tracking = self.tracking_ref()
        );
        let mut args = vec![
            "fetch",
            "--no-tags",
            "--no-write-fetch-head",
            "--recurse-submodules=no",
        ];
        args.extend(depth);
        args.extend([ORIGIN, refspec.as_str()]);
        let command = self.remote_command(remote, &args);
        let mut output = self.runner.output(&command).await?;
        if !output.success && refuses_filters(&output.stderr) {
            tracing::info!(url = %self.url, "the server refuses partial clones; fetching whole files from now on");
            // Without the clone's default filter, this and every later fetch asks for whole
            // files, which the server accepts.
            self.local(&[
                "config",
                "--unset-all",
                &format!("remote.{ORIGIN}.partialclonefilter"),
            ])
            .await?;
            output = self.runner.output(&command).await?;
        }
        if !output.success {
            if output.stderr.contains("couldn't find remote ref") {
                if had_head {
                    self.local(&["update-ref", "-d", &self.tracking_ref()])
                        .await?;
                }
                return Ok(None);
            }
            return Err(self.in_context(output.into_error(&command)));
        }
        self.local_head().await
    }

    /// The changes since `since` as [`LocalClone::fetch_changes`] describes them, unless the
    /// clone had to be made anew on the way.
    async fn changes_since(
        &self,
        remote: &Remote,
        since: Option<&str>,
        prefix: &str,
        max_commits: usize,
    ) -> Result<Attempt<BranchChanges>, GitError> {
        let Some(head) = self.fetch(remote).await? else {
            return Ok(Attempt::Done(BranchChanges::Gone));
        };
        let Some(since) = since else {
            let tree = self.read_files(remote, &head, prefix).await?;
            return Ok(Attempt::Done(BranchChanges::Snapshot {
                head,
                files: tree.files,
                unrepresentable: tree.unrepresentable,
                since_lost: false,
            }));
        };
        let head = match self.reach(remote, since, head).await? {
            Reach::Ancestor { head } if head == since => {
                return Ok(Attempt::Done(BranchChanges::Commits {
                    head,
                    commits: Vec::new(),
                    complete: true,
                }));
            }
            Reach::Ancestor { head } => head,
            Reach::Lost { head } => {
                tracing::info!(%since, %head, branch = %self.branch, url = %self.url, "the commit is no longer in the history of the branch; reading every file");
                let tree = self.read_files(remote, &head, prefix).await?;
                return Ok(Attempt::Done(BranchChanges::Snapshot {
                    head,
                    files: tree.files,
                    unrepresentable: tree.unrepresentable,
                    since_lost: true,
                }));
            }
            Reach::Gone => return Ok(Attempt::Done(BranchChanges::Gone)),
        };
        let mut steps = self.steps(since, &head).await?;
        let complete = steps.len() <= max_commits;
        steps.truncate(max_commits);
        Ok(match self.commit_changes(remote, &steps, prefix).await? {
            Attempt::Done(commits) => Attempt::Done(BranchChanges::Commits {
                head,
                commits,
                complete,
            }),
            Attempt::CloneRemade => Attempt::CloneRemade,
        })
    }

    /// Deepens the shallow local history of `head` until it reaches `since`: 16 commits and
    /// then twice as many each time, until `since` is found or the history is complete, in
    /// which case a forced update took it out. A branch moved back to an ancestor of a `since`
    /// the clone holds is told at once, without deepening. The head may move while deepening.
    async fn reach(
        &self,
        remote: &Remote,
        since: &str,
        mut head: String,
    ) -> Result<Reach, GitError> {
        let mut depth = FIRST_DEEPEN;
        loop {
            if head == since {
                return Ok(Reach::Ancestor { head });
            }
            let since_here = self.has_commit(since).await?;
            if since_here && self.is_ancestor(since, &head).await? {
                return Ok(Reach::Ancestor { head });
            }
            // Deepening cannot help when the history of the branch is complete, nor when the
            // branch was moved back to an ancestor of `since`.
            let moved_back = since_here && self.is_ancestor(&head, since).await?;
            if moved_back || !self.history_is_cut(&head).await? {
                return Ok(Reach::Lost { head });
            }
            tracing::debug!(depth, %since, branch = %self.branch, "deepening the local history to reach the commit");
            match self.deepen(remote, &head, depth).await? {
                Some(deeper) => head = deeper,
                None => return Ok(Reach::Gone),
            }
            depth = depth.saturating_mul(2);
        }
    }

    /// Whether the clone holds `commit`.
    async fn has_commit(&self, commit: &str) -> Result<bool, GitError> {
        let check = self.local_command(&["cat-file", "-e", &format!("{commit}^{{commit}}")]);
        Ok(self.runner.output(&check).await?.success)
    }

    /// Whether `ancestor` is in the local history of `descendant`, which a shallow boundary
    /// may cut. Both commits must be in the clone.
    async fn is_ancestor(&self, ancestor: &str, descendant: &str) -> Result<bool, GitError> {
        let command = self.local_command(&["merge-base", "--is-ancestor", ancestor, descendant]);
        let output = self.runner.output(&command).await?;
        if output.success {
            Ok(true)
        } else if output.stderr.trim().is_empty() {
            // `--is-ancestor` exits with 1 and says nothing when the answer is no.
            Ok(false)
        } else {
            Err(output.into_error(&command))
        }
    }

    /// Whether the local history of `head` stops at a shallow boundary, so that fetching
    /// deeper would bring older commits.
    ///
    /// Whether the clone is shallow is not enough: a boundary left by history that a forced
    /// update rewrote away stays in the clone, though no deepening of the branch can reach it.
    async fn history_is_cut(&self, head: &str) -> Result<bool, GitError> {
        // The `shallow` file lists the commits git treats as roots, one id per line (see
        // gitformat-shallow); it is absent from a complete clone.
        let shallow = match tokio::fs::read_to_string(self.git_dir.join("shallow")).await {
            Ok(shallow) => shallow,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(self.io_error("read the list of shallow commits", e)),
        };
        let boundaries: HashSet<&str> = shallow.split_whitespace().collect();
        if boundaries.is_empty() {
            return Ok(false);
        }
        let history = self.local(&["rev-list", head]).await?;
        Ok(String::from_utf8_lossy(&history)
            .lines()
            .any(|commit| boundaries.contains(commit)))
    }

    /// How many commits the local history of `commit` holds.
    async fn count_commits(&self, commit: &str) -> Result<u64, GitError> {
        let count = text(self.local(&["rev-list", "--count", commit]).await?);
        count
            .parse()
            .map_err(|_| invalid(format!("unexpected git rev-list --count output {count:?}")))
    }

    /// Fetches `depth` more commits of the branch's history below the shallow boundary and
    /// returns the head, which may have moved meanwhile; `None` if the branch is gone.
    async fn deepen(
        &self,
        remote: &Remote,
        head: &str,
        depth: u32,
    ) -> Result<Option<String>, GitError> {
        let before = self.count_commits(head).await?;
        let deepen = format!("--deepen={depth}");
        let Some(deeper) = self.fetch_branch(remote, Some(&deepen), true).await? else {
            return Ok(None);
        };
        // A server that ignored the request would otherwise be asked again and again.
        if deeper == head
            && self.count_commits(head).await? == before
            && self.history_is_cut(head).await?
        {
            return Err(invalid(format!(
                "{} did not send the older history of branch {} when asked for it",
                self.url, self.branch
            )));
        }
        Ok(Some(deeper))
    }

    /// The commits after `since` up to `head` along first parents, oldest first, each with
    /// the commit it is compared with. `since` must be in the local history of `head`.
    async fn steps(&self, since: &str, head: &str) -> Result<Vec<Step>, GitError> {
        let exclude = format!("^{since}");
        let listing = self
            .local(&["rev-list", "--first-parent", "--parents", head, &exclude])
            .await?;
        let listing = String::from_utf8_lossy(&listing);
        let chain: Vec<(&str, Option<&str>)> = listing
            .lines()
            .filter_map(|line| {
                let mut ids = line.split(' ');
                let commit = ids.next().filter(|id| !id.is_empty())?;
                Some((commit, ids.next()))
            })
            .collect();
        let mut kept: Vec<String> = if chain.last().and_then(|(_, parent)| *parent) == Some(since) {
            chain
                .iter()
                .map(|(commit, _)| (*commit).to_owned())
                .collect()
        } else {
            // `since` came in through another parent of a merge on the chain (as when someone
            // pulls with a merge and pushes): only the commits from that merge on hold it, and
            // the merge is compared with `since` itself so that nothing is applied twice.
            let descendants = self
                .local(&["rev-list", "--ancestry-path", head, &exclude])
                .await?;
            let descendants = String::from_utf8_lossy(&descendants);
            let descendants: HashSet<&str> = descendants.lines().collect();
            chain
                .iter()
                .map(|(commit, _)| *commit)
                .take_while(|commit| descendants.contains(commit))
                .map(str::to_owned)
                .collect()
        };
        if kept.is_empty() {
            return Err(invalid(format!(
                "no commit leads from {since} to {head} in the local clone {}",
                self.dir.display()
            )));
        }
        kept.reverse();
        let mut parent = since.to_owned();
        Ok(kept
            .into_iter()
            .map(|commit| Step {
                parent: std::mem::replace(&mut parent, commit.clone()),
                commit,
            })
            .collect())
    }

    /// What each step changed under `prefix`, with contents and the details of its commit.
    async fn commit_changes(
        &self,
        remote: &Remote,
        steps: &[Step],
        prefix: &str,
    ) -> Result<Attempt<Vec<CommitChanges>>, GitError> {
        let folder = prefix.trim_end_matches('/');
        let mut planned = self.diff_steps(steps, prefix, false).await?;
        // Renames are found by comparing the contents of deleted and added files, which git
        // would fetch lazily from a partial clone, and lazy fetching is off. So renames are
        // looked for only in commits that both add and delete, once those contents are here,
        // fetched with the others in the one request.
        let may_rename: Vec<Step> = steps
            .iter()
            .filter(|step| {
                let files: Vec<&PlannedFile> = planned
                    .get(&step.commit)
                    .into_iter()
                    .flat_map(|p| files_of(p))
                    .collect();
                files.iter().any(|f| f.change == FileChangeKind::Added)
                    && files.iter().any(|f| f.change == FileChangeKind::Deleted)
            })
            .cloned()
            .collect();
        let mut trees = Vec::new();
        let mut wanted = Vec::new();
        for step in steps {
            let new: Vec<String> = planned
                .get(&step.commit)
                .into_iter()
                .flat_map(|p| files_of(p))
                .filter_map(|f| f.oid.clone())
                .collect();
            if !new.is_empty() {
                trees.push(format!("{}:{folder}", step.commit));
                wanted.extend(new);
            }
        }
        for step in &may_rename {
            trees.push(format!("{}:{folder}", step.parent));
            let changed = planned.get(&step.commit).into_iter().flatten();
            for change in changed {
                match change {
                    Planned::File(file) if file.change == FileChangeKind::Deleted => {
                        wanted.extend(file.old_oid.clone());
                    }
                    Planned::File(_) => {}
                    // Rename detection reads every added and deleted blob of the commit,
                    // including those of entries it will not report as files.
                    Planned::Unrepresentable(entry) => {
                        wanted.extend(entry.oid.clone());
                        wanted.extend(entry.old_oid.clone());
                    }
                }
            }
        }
        if self.fetch_missing(remote, &trees, &wanted).await? == Fill::CloneRemade {
            return Ok(Attempt::CloneRemade);
        }
        if !may_rename.is_empty() {
            let mut renamed = self.diff_steps(&may_rename, prefix, true).await?;
            for step in &may_rename {
                let changed = renamed.remove(&step.commit).unwrap_or_default();
                planned.insert(step.commit.clone(), changed);
            }
        }
        let new: Vec<String> = planned
            .values()
            .flatten()
            .filter_map(|p| match p {
                Planned::File(file) => file.oid.clone(),
                Planned::Unrepresentable(_) => None,
            })
            .collect();
        let contents = self.cat_blobs(&new).await?;
        let mut details = self.commit_details(steps).await?;
        let mut commits = Vec::with_capacity(steps.len());
        for step in steps {
            let details = details.remove(&step.commit).ok_or_else(|| {
                invalid(format!(
                    "git log did not describe commit {} in the local clone {}",
                    step.commit,
                    self.dir.display()
                ))
            })?;
            let mut changed = Vec::new();
            let mut unrepresentable = Vec::new();
            for planned in planned.remove(&step.commit).unwrap_or_default() {
                let file = match planned {
                    Planned::File(file) => file,
                    Planned::Unrepresentable(entry) => {
                        unrepresentable.push(entry.entry);
                        continue;
                    }
                };
                let content = match &file.oid {
                    None => None,
                    // Cloned, not moved: files with equal contents share one object.
                    Some(oid) => Some(
                        contents
                            .get(oid)
                            .cloned()
                            .ok_or_else(|| self.missing_object(oid, &file.path))?,
                    ),
                };
                changed.push(ChangedFile {
                    path: file.path,
                    change: file.change,
                    content,
                });
            }
            changed.sort_by(|a, b| a.path.cmp(&b.path));
            unrepresentable.sort_by(|a, b| a.path.cmp(&b.path));
            commits.push(CommitChanges {
                commit: step.commit.clone(),
                parent: step.parent.clone(),
                message: details.message,
                author_name: details.author_name,
                author_email: details.author_email,
                committed_at: details.committed_at,
                files: changed,
                unrepresentable,
            });
        }
        Ok(Attempt::Done(commits))
    }

    /// The entries under `prefix` that each step's commit changed from the step's parent, by
    /// commit, in one process; with rename detection, whose contents must be in the clone.
    async fn diff_steps(
        &self,
        steps: &[Step],
        prefix: &str,
        renames: bool,
    ) -> Result<HashMap<String, Vec<Planned>>, GitError> {
        // Each line names a commit and then what to treat as its parent.
        let mut input = String::new();
        for step in steps {
            input.push_str(&format!("{} {}\n", step.commit, step.parent));
        }
        let renames = if renames { "-M" } else { "--no-renames" };
        let out = self
            .run(
                self.local_command(&["diff-tree", "--stdin", "-r", "-z", renames, "--", prefix])
                    .stdin(input),
            )
            .await?;
        let mut planned: HashMap<String, Vec<Planned>> = HashMap::new();
        let mut commit = None;
        for record in parse_raw_diff(&out)? {
            match record {
                DiffRecord::Commit(id) => commit = Some(id),
                DiffRecord::Change(change) => {
                    let Some(commit) = &commit else {
                        return Err(invalid(
                            "git diff-tree --stdin printed a change before naming its commit"
                                .to_owned(),
                        ));
                    };
                    planned
                        .entry(commit.clone())
                        .or_default()
                        .extend(plan_raw(change));
                }
            }
        }
        Ok(planned)
    }

    /// The message, author and date of each step's commit, in one process.
    async fn commit_details(
        &self,
        steps: &[Step],
    ) -> Result<HashMap<String, CommitDetails>, GitError> {
        let mut input = String::new();
        for step in steps {
            input.push_str(&step.commit);
            input.push('\n');
        }
        let out = self
            .run(
                self.local_command(&[
                    "log",
                    "--no-walk=unsorted",
                    "--stdin",
                    "-z",
                    "--format=%H%x00%an%x00%ae%x00%ct%x00%B",
                ])
                .stdin(input),
            )
            .await?;
        parse_commit_details(&out)
    }

    /// Makes sure `commit` (and its trees) is in the clone, fetching it alone if not.
    async fn ensure_commit(&self, remote: &Remote, commit: &str) -> Result<(), GitError> {
        if self.has_commit(commit).await? {
            return Ok(());
        }
        let command = self.remote_command(
            remote,
            &[
                "fetch",
                "--no-tags",
                "--no-write-fetch-head",
                "--recurse-submodules=no",
                "--depth=1",
                ORIGIN,
                commit,
            ],
        );
        let output = self.runner.output(&command).await?;
        if output.success {
            return Ok(());
        }
        if refuses_object_requests(&output.stderr) {
            return Err(unusable(format!(
                "commit {commit} is not in the local clone and {} will not send it: it is no longer on any branch (history rewritten), or the server sends only branch heads",
                self.url
            )));
        }
        Err(self.in_context(output.into_error(&command)))
    }

    /// Hashes every new content into the clone: one object id per change, `None` for deletes.
    async fn write_blobs(
        &self,
        changes: &[FileChange],
        scratch: &Path,
    ) -> Result<Vec<Change>, GitError> {
        let mut files = Vec::new();
        for (number, change) in changes.iter().enumerate() {
            if let Some(content) = &change.content {
                // Our own names for the files, so that the newline-separated list is safe.
                let file = scratch.join(format!("blob-{number}"));
                tokio::fs::write(&file, content)
                    .await
                    .map_err(|e| self.io_error("write a file to commit", e))?;
                files.push(file);
            }
        }
        let mut oids = Vec::new();
        if !files.is_empty() {
            let mut input = Vec::new();
            for file in &files {
                input.extend_from_slice(file.as_os_str().as_encoded_bytes());
                input.push(b'\n');
            }
            // --no-filters: the bytes are committed exactly as given, whatever attributes say.
            let out = self
                .run(
                    self.local_command(&["hash-object", "-w", "--no-filters", "--stdin-paths"])
                        .stdin(input),
                )
                .await?;
            oids = String::from_utf8_lossy(&out)
                .lines()
                .map(str::to_owned)
                .collect();
        }
        if oids.len() != files.len() {
            return Err(invalid(format!(
                "git hash-object gave {} ids for {} files",
                oids.len(),
                files.len()
            )));
        }
        let mut oids = oids.into_iter();
        Ok(changes
            .iter()
            .map(|change| Change {
                path: change.path.clone(),
                oid: change.content.as_ref().and_then(|_| oids.next()),
            })
            .collect())
    }

    /// The contents of `oids`, all of them blobs within `tree`. Those missing from the partial
    /// clone are fetched first, in one request.
    async fn read_blobs(
        &self,
        remote: &Remote,
        tree: &str,
        oids: &[String],
    ) -> Result<HashMap<String, Vec<u8>>, GitError> {
        // A clone made anew holds the whole files of its head, which is what callers read.
        self.fetch_missing(remote, &[tree.to_owned()], oids).await?;
        self.cat_blobs(oids).await
    }

    /// Fetches, in one request, those of `oids` that the partial clone lacks; all of them are
    /// blobs within some of `trees` (tree-ish expressions such as `<commit>:Setup`).
    async fn fetch_missing(
        &self,
        remote: &Remote,
        trees: &[String],
        oids: &[String],
    ) -> Result<Fill, GitError> {
        if oids.is_empty() {
            return Ok(Fill::InPlace);
        }
        // rev-list with --missing=print lists what the partial clone lacks without trying to
        // fetch it; it is the one command that does so on every git we support.
        let mut input = trees.join("\n");
        input.push('\n');
        let listing = self
            .run(
                self.local_command(&["rev-list", "--objects", "--missing=print", "--stdin"])
                    .stdin(input),
            )
            .await?;
        let wanted: HashSet<&str> = oids.iter().map(String::as_str).collect();
        let listing = String::from_utf8_lossy(&listing);
        let missing: HashSet<&str> = listing
            .lines()
            .filter_map(|line| line.strip_prefix('?'))
            .filter(|oid| wanted.contains(oid))
            .collect();
        if missing.is_empty() {
            return Ok(Fill::InPlace);
        }
        let missing: Vec<&str> = missing.into_iter().collect();
        self.fetch_objects(remote, &missing).await
    }

    /// The contents of `oids`, read by one process; those the clone lacks are left out.
    async fn cat_blobs(&self, oids: &[String]) -> Result<HashMap<String, Vec<u8>>, GitError> {
        if oids.is_empty() {
            return Ok(HashMap::new());
        }
        let mut unique: Vec<&str> = oids.iter().map(String::as_str).collect();
        unique.sort_unstable();
        unique.dedup();
        let mut input = unique.join("\n");
        input.push('\n');
        let out = self
            .run(self.local_command(&["cat-file", "--batch"]).stdin(input))
            .await?;
        parse_cat_file_batch(&out)
    }

    /// Fetches objects by id, the way git's own lazy fetch does it: no negotiation (the server
    /// would leave out objects it thinks we have), no refs updated, ids on standard input.
    async fn fetch_objects(&self, remote: &Remote, oids: &[&str]) -> Result<Fill, GitError> {
        tracing::debug!(count = oids.len(), "fetching missing contents");
        let mut input = oids.join("\n");
        input.push('\n');
        let mut command = self
            .remote_command(
                remote,
                &[
                    "fetch",
                    "--no-tags",
                    "--no-write-fetch-head",
                    "--recurse-submodules=no",
                    "--stdin",
                    ORIGIN,
                ],
            )
            .stdin(input);
        command
            .config
            .push(("fetch.negotiationAlgorithm".into(), "noop".into()));
        let output = self.runner.output(&command).await?;
        if output.success {
            return Ok(Fill::InPlace);
        }
        // Over protocol v0 (an OpenSSH server that does not accept GIT_PROTOCOL), upload-pack
        // sends only advertised commits unless configured otherwise, even when it accepted
        // the filter. Such a server can never fill a partial clone, so the clone is made
        // anew, shallow, with the whole files of the branch head.
        if refuses_object_requests(&output.stderr) {
            tracing::warn!(url = %self.url, "the server cannot send file contents by id; making the clone anew with whole files");
            tokio::fs::remove_dir_all(&self.git_dir)
                .await
                .map_err(|e| self.io_error("remove the partial clone", e))?;
            self.create(Contents::Whole).await?;
            self.fetch(remote).await?;
            return Ok(Fill::CloneRemade);
        }
        Err(self.in_context(output.into_error(&command)))
    }

    /// Builds the commit of `changes` on `head`, without a work tree or an index. `None` when
    /// the result is `head`'s own tree.
    ///
    /// No index is used because `git read-tree` refuses a tree that holds entries such as
    /// `.git`, so one hostile entry anywhere on the branch would stop every commit. See
    /// [`LocalClone::build_tree`].
    async fn build_commit(
        &self,
        head: Option<&str>,
        changes: &[&Change],
        author: &Signature,
        message: &str,
    ) -> Result<Option<String>, GitError> {
        if head.is_none() && changes.iter().all(|c| c.oid.is_none()) {
            return Ok(None);
        }
        let tree = self.build_tree(head, changes).await?;
        if let Some(head) = head {
            let head_tree = text(
                self.local(&["rev-parse", &format!("{head}^{{tree}}")])
                    .await?,
            );
            if head_tree == tree {
                return Ok(None);
            }
        }
        let mut args = vec!["commit-tree", tree.as_str()];
        if let Some(head) = head {
            args.extend(["-p", head]);
        }
        let mut message = message.to_owned();
        if !message.ends_with('\n') {
            message.push('\n');
        }
        let mut command = self.local_command(&args).stdin(message);
        for (variable, value) in [
            ("GIT_AUTHOR_NAME", &author.name),
            ("GIT_AUTHOR_EMAIL", &author.email),
            ("GIT_COMMITTER_NAME", &author.name),
            ("GIT_COMMITTER_EMAIL", &author.email),
        ] {
            command.env.push((variable, value.into()));
        }
        Ok(Some(text(self.run(command).await?)))
    }

    /// The tree of `head` with `changes` applied, and its id.
    ///
    /// Only the folders that hold a change are rebuilt: each from its entries at `head`, with
    /// our files written or removed and the folders below it replaced by their new ids, deepest
    /// first (one `git mktree` per depth). Every other folder keeps its id, and the entries
    /// beside ours are copied as they are, bytes, modes and ids, without being read or checked:
    /// what someone else put on the branch (a `.git` folder, a name that is not UTF-8, a
    /// symbolic link) is left exactly as it was. Blobs are never read, so none is fetched.
    async fn build_tree(
        &self,
        head: Option<&str>,
        changes: &[&Change],
    ) -> Result<String, GitError> {
        // The folders that hold a change ("" is the root), with what changes in each.
        let mut folders: BTreeMap<String, FolderEdit> = BTreeMap::new();
        folders.entry(String::new()).or_default();
        for change in changes {
            let (folder, name) = split_path(&change.path);
            folders
                .entry(folder.to_owned())
                .or_default()
                .files
                .insert(name.to_owned(), change.oid.clone());
            let mut below = folder;
            while !below.is_empty() {
                let (parent, name) = split_path(below);
                folders
                    .entry(parent.to_owned())
                    .or_default()
                    .folders
                    .insert(name.to_owned());
                below = parent;
            }
        }
        let mut current = match head {
            Some(head) => self.read_folders(head, folders.keys()).await?,
            None => HashMap::new(),
        };
        let deepest = folders.keys().map(|f| depth(f)).max().unwrap_or_default();
        // Each rebuilt folder's new id; `None` when it ended up empty, as git keeps no empty
        // folders.
        let mut built: HashMap<String, Option<String>> = HashMap::new();
        for level in (0..=deepest).rev() {
            let mut batch: Vec<(String, Vec<RawTreeEntry>)> = Vec::new();
            for (folder, edit) in folders.iter().filter(|(f, _)| depth(f) == level) {
                let mut entries = current.remove(folder).unwrap_or_default();
                for (name, oid) in &edit.files {
                    let at = |e: &RawTreeEntry| e.name == name.as_bytes();
                    if entries.iter().any(|e| at(e) && e.is_tree()) {
                        if oid.is_some() {
                            return Err(unusable(format!(
                                "cannot write {}: branch {} holds a folder there",
                                join_path(folder, name),
                                self.branch
                            )));
                        }
                        // Deleting a folder's name deletes no file, as an index would have it.
                        continue;
                    }
                    entries.retain(|e| !at(e));
                    if let Some(oid) = oid {
                        entries.push(RawTreeEntry {
                            mode: FILE_MODE.to_owned(),
                            name: name.as_bytes().to_vec(),
                            oid: oid.clone(),
                        });
                    }
                }
                for name in &edit.folders {
                    let below = join_path(folder, name);
                    let new_id = built.remove(&below).flatten();
                    let at = |e: &RawTreeEntry| e.name == name.as_bytes();
                    if entries.iter().any(|e| at(e) && !e.is_tree()) {
                        if new_id.is_some() {
                            return Err(unusable(format!(
                                "cannot write into {below}/: branch {} holds a file at {below}",
                                self.branch
                            )));
                        }
                        // Only deletions below a file, which deleted nothing.
                        continue;
                    }
                    entries.retain(|e| !at(e));
                    if let Some(id) = new_id {
                        entries.push(RawTreeEntry {
                            mode: TREE_MODE.to_owned(),
                            name: name.as_bytes().to_vec(),
                            oid: id,
                        });
                    }
                }
                if entries.is_empty() && !folder.is_empty() {
                    built.insert(folder.clone(), None);
                } else {
                    batch.push((folder.clone(), entries));
                }
            }
            let ids = self.make_trees(&batch).await?;
            for ((folder, _), id) in batch.into_iter().zip(ids) {
                built.insert(folder, Some(id));
            }
        }
        built
            .remove("")
            .flatten()
            .ok_or_else(|| invalid("git mktree built no root tree".to_owned()))
    }

    /// The entries of each folder at `head`, by folder ("" is the root), read by one process.
    /// A folder that does not exist there, or that is a file there, is left out.
    async fn read_folders(
        &self,
        head: &str,
        folders: impl Iterator<Item = &String>,
    ) -> Result<HashMap<String, Vec<RawTreeEntry>>, GitError> {
        let folders: Vec<&String> = folders.collect();
        let mut input = String::new();
        for folder in &folders {
            if folder.is_empty() {
                input.push_str(&format!("{head}^{{tree}}\n"));
            } else {
                // `<commit>:<path>` takes the rest of the line as the path, spaces included;
                // our paths hold no line breaks.
                input.push_str(&format!("{head}:{folder}\n"));
            }
        }
        let out = self
            .run(self.local_command(&["cat-file", "--batch"]).stdin(input))
            .await?;
        let objects = parse_cat_file_objects(&out)?;
        if objects.len() != folders.len() {
            return Err(invalid(format!(
                "git cat-file answered {} of {} folders of {head}",
                objects.len(),
                folders.len()
            )));
        }
        let mut listings = HashMap::new();
        for (folder, object) in folders.into_iter().zip(objects) {
            if let BatchObject::Found { oid, kind, content } = object
                && kind == "tree"
            {
                listings.insert(folder.clone(), parse_tree_object(&content, oid.len() / 2)?);
            }
        }
        Ok(listings)
    }

    /// Writes each listing as a tree with `git mktree`, in one process, and returns their ids
    /// in order. Missing objects are allowed: untouched blobs are not in the partial clone.
    async fn make_trees(
        &self,
        trees: &[(String, Vec<RawTreeEntry>)],
    ) -> Result<Vec<String>, GitError> {
        if trees.is_empty() {
            return Ok(Vec::new());
        }
        // With -z, each entry ends with NUL, and in batch mode an empty entry ends a tree.
        let mut input = Vec::new();
        for (_, entries) in trees {
            for entry in entries {
                input.extend_from_slice(
                    format!("{} {} {}\t", entry.mode, entry.kind(), entry.oid).as_bytes(),
                );
                input.extend_from_slice(&entry.name);
                input.push(0);
            }
            input.push(0);
        }
        let out = self
            .run(
                self.local_command(&["mktree", "-z", "--missing", "--batch"])
                    .stdin(input),
            )
            .await?;
        let ids: Vec<String> = String::from_utf8_lossy(&out)
            .lines()
            .map(str::to_owned)
            .collect();
        if ids.len() != trees.len() || ids.iter().any(|id| check_object_id(id, "tree").is_err()) {
            return Err(invalid(format!(
                "git mktree gave {} ids for {} trees",
                ids.len(),
                trees.len()
            )));
        }
        Ok(ids)
    }

    /// Pushes `commit` as the branch, never forcing: the server takes it only as a fast forward.
    async fn push(&self, remote: &Remote, commit: &str) -> Result<(), GitError> {
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

    /// A command on the local repository, with no credentials.
    fn local_command(&self, args: &[&str]) -> GitCommand<'static> {
        GitCommand {
            args: args.iter().map(OsString::from).collect(),
            env: self.repository_env(),
            url: self.place(),
            ..GitCommand::default()
        }
    }

    /// A command that talks to the remote, with its credentials prepared for this one child.
    fn remote_command<'a>(&self, remote: &'a Remote, args: &[&str]) -> GitCommand<'a> {
        GitCommand {
            args: args.iter().map(OsString::from).collect(),
            auth: Some(&remote.auth),
            url: remote.url.clone(),
            env: self.repository_env(),
            ..GitCommand::default()
        }
    }

    fn repository_env(&self) -> Vec<(&'static str, OsString)> {
        vec![
            // Explicit, so that git never looks for a repository above a broken clone.
            ("GIT_DIR", self.git_dir.clone().into_os_string()),
            // A missing object must be an error, never a fetch per object (git 2.44 and later;
            // older gits have no credentials to fetch with here, so they fail too).
            ("GIT_NO_LAZY_FETCH", "1".into()),
            ("GIT_LITERAL_PATHSPECS", "1".into()),
        ]
    }

    /// Runs a local command and returns its standard output.
    async fn local(&self, args: &[&str]) -> Result<Vec<u8>, GitError> {
        self.run(self.local_command(args)).await
    }

    async fn run(&self, command: GitCommand<'_>) -> Result<Vec<u8>, GitError> {
        self.runner.run_command(&command).await
    }

    fn tracking_ref(&self) -> String {
        format!("refs/remotes/{ORIGIN}/{}", self.branch)
    }

    fn place(&self) -> String {
        format!("the local clone {}", self.dir.display())
    }

    fn check_remote(&self, remote: &Remote) -> Result<(), GitError> {
        if remote.url == self.url {
            Ok(())
        } else {
            Err(invalid(format!(
                "the clone in {} follows {}, not {}",
                self.dir.display(),
                self.url,
                remote.url
            )))
        }
    }

    /// Names the branch in an error about the remote.
    fn in_context(&self, mut error: GitError) -> GitError {
        error.message = format!("{} (branch {})", error.message, self.branch);
        error
    }

    fn io_error(&self, what: &str, error: std::io::Error) -> GitError {
        invalid(format!("cannot {what} in {}: {error}", self.dir.display()))
    }

    fn missing_object(&self, oid: &str, path: &str) -> GitError {
        invalid(format!(
            "the content {oid} of {path} is missing from the local clone {} after fetching it",
            self.dir.display()
        ))
    }
}

/// What one attempt of `commit_and_push` found to do on the fetched head.
enum AttemptPlan<'c> {
    /// Nothing to push: a conflict, or a branch that holds everything already.
    Done(CommitOutcome),
    /// Commit `changes` (each of our changes that the head holds otherwise) on `head`.
    Commit {
        head: Option<String>,
        changes: Vec<(FileOp, &'c Change)>,
        landed: Vec<LandedChangeset>,
    },
}

/// Where a commit lies relative to a branch head.
enum Reach {
    /// In the history of `head` (or `head` itself).
    Ancestor { head: String },
    /// Not in the history of `head`: a forced update rewrote it away.
    Lost { head: String },
    /// The branch was deleted meanwhile.
    Gone,
}

/// Commits of a branch since a base, oldest first.
struct CommitRange {
    commits: Vec<RangeCommit>,
    /// Whether `commits` are all the commits since the base; false when they are only the
    /// newest ones because there was no base, or it was lost.
    base_reached: bool,
}

/// One commit of a [`CommitRange`].
struct RangeCommit {
    id: String,
    first_parent: Option<String>,
    message: String,
}

/// Whether a clone leaves file contents on the server until they are needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Contents {
    Blobless,
    Whole,
}

/// What `open` found in the clone directory.
enum CloneState {
    Absent,
    Usable,
    Unusable(String),
}

/// One of our changes, with its content already hashed into the clone.
struct Change {
    path: String,
    oid: Option<String>,
}

/// What changes in one folder of a commit we build.
#[derive(Debug, Default)]
struct FolderEdit {
    /// Files of the folder to write (with their blob) or delete (`None`), by name.
    files: BTreeMap<String, Option<String>>,
    /// Folders right below it that hold changes, by name.
    folders: BTreeSet<String>,
}

/// One entry of a tree object, as git stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RawTreeEntry {
    /// Octal, as written in the tree (`100644`, `40000`…).
    mode: String,
    /// Bytes, not necessarily UTF-8.
    name: Vec<u8>,
    /// Hexadecimal.
    oid: String,
}

impl RawTreeEntry {
    fn mode_bits(&self) -> u32 {
        u32::from_str_radix(&self.mode, 8).unwrap_or_default() & 0o170_000
    }

    fn is_tree(&self) -> bool {
        self.mode_bits() == 0o040_000
    }

    /// The object type that `git mktree` expects for the mode.
    fn kind(&self) -> &'static str {
        match self.mode_bits() {
            0o040_000 => "tree",
            0o160_000 => "commit",
            _ => "blob",
        }
    }
}

/// A path's folder ("" for the root) and its last component.
fn split_path(path: &str) -> (&str, &str) {
    path.rsplit_once('/').unwrap_or(("", path))
}

/// The path of `name` in `folder` ("" for the root).
fn join_path(folder: &str, name: &str) -> String {
    if folder.is_empty() {
        name.to_owned()
    } else {
        format!("{folder}/{name}")
    }
}

/// How deep a folder is: 0 for the root, 1 for `Setup`, 2 for `Setup/Applications`…
fn depth(folder: &str) -> usize {
    if folder.is_empty() {
        0
    } else {
        folder.matches('/').count() + 1
    }
}

/// The result of an operation, or word that the clone was made anew under it (with whole
/// files and a shallow history) so that it must start over.
enum Attempt<T> {
    Done(T),
    CloneRemade,
}

/// How missing contents came into the clone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fill {
    /// Fetched into the clone as it was (or nothing was missing).
    InPlace,
    /// The server cannot send contents by id, so the clone was made anew with whole files of
    /// the branch head, and the history it had is gone.
    CloneRemade,
}

/// A commit to report and the commit its changes are taken against.
#[derive(Debug, Clone)]
struct Step {
    commit: String,
    parent: String,
}

/// A file a commit changed, its content not yet read.
#[derive(Debug)]
struct PlannedFile {
    path: String,
    change: FileChangeKind,
    /// The blob after the change, `None` when deleted.
    oid: Option<String>,
    /// The blob before the change, `None` when added.
    old_oid: Option<String>,
}

/// An entry reposync cannot hold as a file that a commit changed, with its blobs, which
/// rename detection may have to read.
#[derive(Debug)]
struct PlannedEntry {
    entry: UnrepresentableEntry,
    /// The blob after the change, if there is one (not for a deletion or a submodule).
    oid: Option<String>,
    /// The blob before the change, if there is one.
    old_oid: Option<String>,
}

/// What one line of a raw diff becomes.
#[derive(Debug)]
enum Planned {
    File(PlannedFile),
    Unrepresentable(PlannedEntry),
}

/// The planned files of a commit, leaving out the entries that are not files.
fn files_of(planned: &[Planned]) -> impl Iterator<Item = &PlannedFile> {
    planned.iter().filter_map(|p| match p {
        Planned::File(file) => Some(file),
        Planned::Unrepresentable(_) => None,
    })
}

/// One side of a raw diff line, as reposync sees it.
enum Side {
    /// Nothing there: the entry was added or deleted.
    Absent,
    /// A regular file at a path reposync can represent.
    File(String),
    /// Something reposync cannot hold as a file.
    Unrepresentable(PathProblem),
}

impl Side {
    fn of(mode: &str, path: &[u8]) -> Side {
        if mode == ABSENT_MODE {
            return Side::Absent;
        }
        match representable_file(mode, path) {
            Ok(path) => Side::File(path),
            Err(problem) => Side::Unrepresentable(problem),
        }
    }
}

/// A regular file's path, or why reposync cannot hold the entry as a file: [`RepoPath`]'s
/// rule first, then its mode (symbolic links and submodules are not files).
fn representable_file(mode: &str, path: &[u8]) -> Result<String, PathProblem> {
    let path = RepoPath::from_bytes(path)?;
    match mode {
        SYMLINK_MODE => Err(PathProblem::Symlink),
        GITLINK_MODE => Err(PathProblem::Submodule),
        _ => Ok(path.into_string()),
    }
}

/// The blob a side of a raw diff line holds: none where there is nothing or a submodule.
fn blob_of(mode: &str, oid: &str) -> Option<String> {
    (mode != ABSENT_MODE && mode != GITLINK_MODE).then(|| oid.to_owned())
}

/// What a raw diff line means to reposync: a change to a file, or to an entry it cannot hold
/// as one, or both when a rename or a change of type crosses between the two.
///
/// An entry that stops being a file it can represent (a file replaced by a symbolic link) is a
/// change to an unrepresentable entry, not a deletion, so that reposync keeps its last version
/// while the error stands; one that becomes such a file is an addition.
fn plan_raw(raw: RawChange) -> Vec<Planned> {
    let old_path = raw.from.clone().unwrap_or_else(|| raw.path.clone());
    let old = Side::of(&raw.old_mode, &old_path);
    let new = Side::of(&raw.new_mode, &raw.path);
    let old_blob = blob_of(&raw.old_mode, &raw.old_oid);
    let new_blob = blob_of(&raw.new_mode, &raw.new_oid);
    let file = |path: String, change, oid: Option<String>, old_oid: Option<String>| {
        Planned::File(PlannedFile {
            path,
            change,
            oid,
            old_oid,
        })
    };
    let entry = |path: &[u8], problem, change, oid: Option<String>, old_oid: Option<String>| {
        Planned::Unrepresentable(PlannedEntry {
            entry: UnrepresentableEntry {
                path: path.to_vec(),
                problem,
                change,
            },
            oid,
            old_oid,
        })
    };
    let added = |side: Side| match side {
        Side::Absent => None,
        Side::File(path) => Some(file(path, FileChangeKind::Added, new_blob.clone(), None)),
        Side::Unrepresentable(problem) => Some(entry(
            &raw.path,
            problem,
            FileChangeKind::Added,
            new_blob.clone(),
            None,
        )),
    };
    let deleted = |side: Side| match side {
        Side::Absent => None,
        Side::File(path) => Some(file(path, FileChangeKind::Deleted, None, old_blob.clone())),
        Side::Unrepresentable(problem) => Some(entry(
            &old_path,
            problem,
            FileChangeKind::Deleted,
            None,
            old_blob.clone(),
        )),
    };
    match raw.status {
        // A copy leaves its source as it was.
        'C' => added(new).into_iter().collect(),
        'R' => match (old, new) {
            (Side::File(from), Side::File(path)) => vec![file(
                path,
                FileChangeKind::Renamed { from },
                new_blob.clone(),
                old_blob.clone(),
            )],
            (old, new) => deleted(old).into_iter().chain(added(new)).collect(),
        },
        _ => match (old, new) {
            (Side::File(_), Side::File(path)) => vec![file(
                path,
                FileChangeKind::Modified,
                new_blob.clone(),
                old_blob.clone(),
            )],
            (Side::Absent | Side::Unrepresentable(_), Side::File(path)) => {
                vec![file(path, FileChangeKind::Added, new_blob.clone(), None)]
            }
            (Side::File(_) | Side::Unrepresentable(_), Side::Unrepresentable(problem)) => {
                vec![entry(
                    &raw.path,
                    problem,
                    FileChangeKind::Modified,
                    new_blob.clone(),
                    old_blob.clone(),
                )]
            }
            (old, Side::Absent) => deleted(old).into_iter().collect(),
            (Side::Absent, new) => added(new).into_iter().collect(),
        },
    }
}

/// The message, author and date of a commit, from `git log`.
#[derive(Debug)]
struct CommitDetails {
    message: String,
    author_name: String,
    author_email: String,
    committed_at: i64,
}

/// One record of `git diff-tree -r -z` raw output.
#[derive(Debug, PartialEq, Eq)]
enum DiffRecord {
    /// With `--stdin`: the commit that the changes after it belong to.
    Commit(String),
    Change(RawChange),
}

/// One changed path of `git diff-tree -r -z`.
#[derive(Debug, PartialEq, Eq)]
struct RawChange {
    /// The first letter of git's status: `A`, `M`, `D`, `T`, `R`, `C`…
    status: char,
    old_mode: String,
    new_mode: String,
    old_oid: String,
    new_oid: String,
    /// As git stores it: bytes, not necessarily UTF-8.
    path: Vec<u8>,
    /// For a rename or a copy, the source path.
    from: Option<Vec<u8>>,
}

/// One line of `git ls-tree -z`.
#[derive(Debug, PartialEq, Eq)]
struct TreeEntry {
    mode: String,
    oid: String,
    /// As git stores it: bytes, not necessarily UTF-8.
    path: Vec<u8>,
}

/// One path of `git diff-tree -r -z`: its new mode and object id, or `None` if deleted.
#[derive(Debug, PartialEq, Eq)]
struct DiffEntry {
    path: String,
    new: Option<(String, String)>,
}

fn invalid(message: String) -> GitError {
    GitError::new(GitErrorKind::Other, message, "")
}

/// A request or clone that cannot work however often it is retried: a bad branch name, path,
/// object id or author, a directory reposync did not make, a commit the server will not send.
fn unusable(message: String) -> GitError {
    GitError::new(GitErrorKind::InvalidRequest, message, "")
}

fn text(bytes: Vec<u8>) -> String {
    String::from_utf8_lossy(&bytes).trim().to_owned()
}

/// The pause before attempt `retry + 1`: 100 ms, 200 ms, 400 ms…, at most [`MAX_BACKOFF`].
fn backoff(retry: u32) -> Duration {
    let factor = 1u32 << retry.saturating_sub(1).min(16);
    Duration::from_millis(100)
        .saturating_mul(factor)
        .min(MAX_BACKOFF)
}

/// Whether a failed fetch says that the server does not accept our filter.
fn refuses_filters(stderr: &str) -> bool {
    let lower = stderr.to_ascii_lowercase();
    lower.contains("filter") && (lower.contains("not supported") || lower.contains("not allowed"))
}

/// Whether a failed fetch by object id says that the server only sends advertised objects.
fn refuses_object_requests(stderr: &str) -> bool {
    stderr.contains("unadvertised object") || stderr.contains("not our ref")
}

/// What a git process killed mid-operation leaves in a git directory: every lock file (git
/// takes a lock by creating `<file>.lock` and renames it into place when done, so the file
/// itself is intact) and the temporary files of a pack being received (`objects/pack/tmp_*`),
/// which nothing else would ever remove. The fan-out directories of loose objects, which can
/// be many and never hold locks, are skipped.
fn find_debris(git_dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![git_dir.to_owned()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let path = entry.path();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                let loose_fan_out = dir.ends_with("objects")
                    && name.len() == 2
                    && name.chars().all(|c| c.is_ascii_hexdigit());
                if !loose_fan_out {
                    pending.push(path);
                }
            } else if name.ends_with(".lock")
                || (dir.ends_with("objects/pack") && name.starts_with("tmp_"))
            {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// A live process (other than this one) whose environment names `git_dir` as its `GIT_DIR`,
/// as every git command run on a clone, and the helpers it starts, do. Processes of other
/// users, whose environment cannot be read, and systems without `/proc` find none.
fn process_working_in(git_dir: &Path) -> Option<u32> {
    use std::os::unix::ffi::OsStrExt as _;
    let mut wanted = b"GIT_DIR=".to_vec();
    wanted.extend_from_slice(git_dir.as_os_str().as_bytes());
    let own = std::process::id();
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            (pid != own).then_some((pid, entry.path()))
        })
        .find(|(_, path)| {
            std::fs::read(path.join("environ"))
                .is_ok_and(|environ| environ.split(|b| *b == 0).any(|var| var == wanted))
        })
        .map(|(pid, _)| pid)
}

/// `gc.auto`'s default: how many loose objects make git's automatic gc compact a repository.
const GC_LOOSE_OBJECTS: usize = 6700;

/// `gc.autoPackLimit`'s default: how many packs make git's automatic gc repack them.
const GC_PACKS: usize = 50;

/// Whether `git gc --auto` would find work in this objects directory: more loose objects in
/// the fan-out directory `17` than a 256th of [`GC_LOOSE_OBJECTS`] (git's own estimate), or
/// more packs without a `.keep` file than [`GC_PACKS`].
fn needs_compacting(objects: &Path) -> bool {
    let names = |dir: PathBuf| -> Vec<String> {
        std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    let loose = names(objects.join("17"))
        .iter()
        .filter(|name| name.len() >= 38 && name.chars().all(|c| c.is_ascii_hexdigit()))
        .count();
    let packs = names(objects.join("pack"));
    let unkept = packs
        .iter()
        .filter_map(|name| name.strip_suffix(".pack"))
        .filter(|stem| !packs.contains(&format!("{stem}.keep")))
        .count();
    loose > GC_LOOSE_OBJECTS.div_ceil(256) || unkept > GC_PACKS
}

/// Parses `git config --list -z`: `key\nvalue\0` entries; keys come lower-cased except for
/// the middle part of three-part keys.
fn parse_config_list(bytes: &[u8]) -> HashMap<String, String> {
    String::from_utf8_lossy(bytes)
        .split('\0')
        .filter_map(|entry| {
            let (key, value) = entry.split_once('\n').unwrap_or((entry, ""));
            (!key.is_empty()).then(|| (key.to_owned(), value.to_owned()))
        })
        .collect()
}

/// Parses `git ls-tree -z`: `<mode> SP <type> SP <oid> TAB <path> NUL`.
fn parse_ls_tree(bytes: &[u8]) -> Result<Vec<TreeEntry>, GitError> {
    bytes
        .split(|&b| b == 0)
        .filter(|record| !record.is_empty())
        .map(|record| {
            let bad = || {
                invalid(format!(
                    "unexpected git ls-tree output {:?}",
                    String::from_utf8_lossy(record)
                ))
            };
            let tab = record.iter().position(|&b| b == b'\t').ok_or_else(bad)?;
            let info = std::str::from_utf8(&record[..tab]).map_err(|_| bad())?;
            let mut fields = info.split(' ');
            // The type (blob, commit) follows from the mode.
            let (mode, oid) = match (fields.next(), fields.next(), fields.next()) {
                (Some(mode), Some(_kind), Some(oid)) => (mode, oid),
                _ => return Err(bad()),
            };
            Ok(TreeEntry {
                mode: mode.to_owned(),
                oid: oid.to_owned(),
                path: record[tab + 1..].to_vec(),
            })
        })
        .collect()
}

/// Parses `git diff-tree -r -z` between two trees: for each path,
/// `:<old mode> <new mode> <old oid> <new oid> <status> NUL <path> NUL`.
///
/// Paths that are not UTF-8 are left out: they are compared with paths reposync writes, which
/// always are, so they can never match one, and someone else's such path must not stop a push.
fn parse_diff_tree(bytes: &[u8]) -> Result<Vec<DiffEntry>, GitError> {
    Ok(parse_raw_diff(bytes)?
        .into_iter()
        .filter_map(|record| match record {
            DiffRecord::Change(change) => Some(DiffEntry {
                path: String::from_utf8(change.path).ok()?,
                new: (change.status != 'D').then_some((change.new_mode, change.new_oid)),
            }),
            DiffRecord::Commit(_) => None,
        })
        .collect())
}

/// Parses the raw output of `git diff-tree -r -z`, with `--stdin` or not: for each path,
/// `:<old mode> <new mode> <old oid> <new oid> <status> NUL <path> NUL`, with a second path
/// (the new one) after a rename or a copy; with `--stdin`, `<commit> NUL` before the paths of
/// each commit that changed any.
fn parse_raw_diff(bytes: &[u8]) -> Result<Vec<DiffRecord>, GitError> {
    let mut fields = bytes.split(|&b| b == 0);
    let mut records = Vec::new();
    while let Some(info) = fields.next() {
        if info.is_empty() {
            continue;
        }
        let bad = || {
            invalid(format!(
                "unexpected git diff-tree output {:?}",
                String::from_utf8_lossy(info)
            ))
        };
        let info = std::str::from_utf8(info).map_err(|_| bad())?;
        let Some(info) = info.strip_prefix(':') else {
            check_object_id(info, "commit").map_err(|_| bad())?;
            records.push(DiffRecord::Commit(info.to_owned()));
            continue;
        };
        let parts: Vec<&str> = info.split(' ').collect();
        let [old_mode, new_mode, old_oid, new_oid, status] = parts[..] else {
            return Err(bad());
        };
        let status = status.chars().next().ok_or_else(bad)?;
        // The output ends with a NUL, after which `split` yields one empty field.
        let mut next_path = || match fields.next() {
            Some(path) if !path.is_empty() => Ok(path.to_vec()),
            _ => Err(bad()),
        };
        let first = next_path()?;
        let (path, from) = if matches!(status, 'R' | 'C') {
            let second = next_path()?;
            (second, Some(first))
        } else {
            (first, None)
        };
        records.push(DiffRecord::Change(RawChange {
            status,
            old_mode: old_mode.to_owned(),
            new_mode: new_mode.to_owned(),
            old_oid: old_oid.to_owned(),
            new_oid: new_oid.to_owned(),
            path,
            from,
        }));
    }
    Ok(records)
}

/// Parses `git log -z --format=%H%x00%an%x00%ae%x00%ct%x00%B`: five NUL-terminated fields
/// per commit.
fn parse_commit_details(bytes: &[u8]) -> Result<HashMap<String, CommitDetails>, GitError> {
    let text = String::from_utf8_lossy(bytes);
    let mut fields = text.split('\0');
    let mut details = HashMap::new();
    while let Some(commit) = fields.next() {
        if commit.is_empty() {
            break;
        }
        let bad = || invalid(format!("unexpected git log output for commit {commit:?}"));
        check_object_id(commit, "commit").map_err(|_| bad())?;
        let (Some(author_name), Some(author_email), Some(time), Some(message)) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(bad());
        };
        let committed_at = time.parse().map_err(|_| bad())?;
        details.insert(
            commit.to_owned(),
            CommitDetails {
                message: message.to_owned(),
                author_name: author_name.to_owned(),
                author_email: author_email.to_owned(),
                committed_at,
            },
        );
    }
    Ok(details)
}

/// Parses `git log -z --format=%H%x00%P%x00%B`: three NUL-terminated fields per commit, the
/// parents separated by spaces.
fn parse_range_commits(bytes: &[u8]) -> Result<Vec<RangeCommit>, GitError> {
    let text = String::from_utf8_lossy(bytes);
    let mut fields = text.split('\0');
    let mut commits = Vec::new();
    while let Some(id) = fields.next() {
        if id.is_empty() {
            break;
        }
        let bad = || invalid(format!("unexpected git log output for commit {id:?}"));
        check_object_id(id, "commit").map_err(|_| bad())?;
        let (Some(parents), Some(message)) = (fields.next(), fields.next()) else {
            return Err(bad());
        };
        commits.push(RangeCommit {
            id: id.to_owned(),
            first_parent: parents
                .split(' ')
                .find(|p| !p.is_empty())
                .map(str::to_owned),
            message: message.to_owned(),
        });
    }
    Ok(commits)
}

/// Parses `git cat-file --batch`: `<oid> <type> <size> LF <contents> LF` per object, or
/// `<oid> missing LF`; the contents by object id, the missing ones left out.
fn parse_cat_file_batch(bytes: &[u8]) -> Result<HashMap<String, Vec<u8>>, GitError> {
    Ok(parse_cat_file_objects(bytes)?
        .into_iter()
        .filter_map(|object| match object {
            BatchObject::Found { oid, content, .. } => Some((oid, content)),
            // Left out of the map: the caller names the path whose content is missing.
            BatchObject::Missing => None,
        })
        .collect())
}

/// One answer of `git cat-file --batch`.
#[derive(Debug, PartialEq, Eq)]
enum BatchObject {
    Found {
        oid: String,
        kind: String,
        content: Vec<u8>,
    },
    Missing,
}

/// Parses `git cat-file --batch` into its answers, in the order asked: `<oid> <type> <size>
/// LF <contents> LF` per object, or `<what was asked> missing LF`.
fn parse_cat_file_objects(bytes: &[u8]) -> Result<Vec<BatchObject>, GitError> {
    let mut objects = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let bad = |what: &str| invalid(format!("unexpected git cat-file output: {what}"));
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| bad("a header without a newline"))?;
        let header = String::from_utf8_lossy(&rest[..end]).into_owned();
        let fields: Vec<&str> = header.split(' ').collect();
        let found = match fields[..] {
            [oid, kind, size] if !oid.is_empty() && oid.bytes().all(|b| b.is_ascii_hexdigit()) => {
                size.parse::<usize>().ok().map(|size| (oid, kind, size))
            }
            _ => None,
        };
        let Some((oid, kind, size)) = found else {
            // What was asked may hold spaces (`<commit>:<path>`), so only the end is looked at.
            if header.ends_with(" missing") {
                objects.push(BatchObject::Missing);
                rest = &rest[end + 1..];
                continue;
            }
            return Err(bad(&header));
        };
        let start = end + 1;
        let body = rest
            .get(start..start + size)
            .ok_or_else(|| bad("a truncated object"))?;
        objects.push(BatchObject::Found {
            oid: oid.to_owned(),
            kind: kind.to_owned(),
            content: body.to_vec(),
        });
        // The contents are followed by a newline of their own.
        rest = rest.get(start + size + 1..).unwrap_or_default();
    }
    Ok(objects)
}

/// Parses a tree object: `<octal mode> SP <name> NUL <binary object id>` per entry, with ids
/// of `id_bytes` bytes (20 for SHA-1, 32 for SHA-256).
fn parse_tree_object(bytes: &[u8], id_bytes: usize) -> Result<Vec<RawTreeEntry>, GitError> {
    let bad = || invalid("unexpected tree object from git cat-file".to_owned());
    let mut entries = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let space = rest.iter().position(|&b| b == b' ').ok_or_else(bad)?;
        let mode = std::str::from_utf8(&rest[..space]).map_err(|_| bad())?;
        let after_mode = &rest[space + 1..];
        let nul = after_mode.iter().position(|&b| b == 0).ok_or_else(bad)?;
        let name = after_mode[..nul].to_vec();
        let id = after_mode
            .get(nul + 1..nul + 1 + id_bytes)
            .ok_or_else(bad)?;
        entries.push(RawTreeEntry {
            mode: mode.to_owned(),
            name,
            oid: id.iter().map(|b| format!("{b:02x}")).collect(),
        });
        rest = &after_mode[nul + 1 + id_bytes..];
    }
    Ok(entries)
}

/// Refuses branch names git would refuse, and any that could be read as an option.
fn check_branch_name(branch: &str) -> Result<(), GitError> {
    let bad_component = branch
        .split('/')
        .any(|c| c.is_empty() || c.starts_with('.') || c.ends_with(".lock") || c.ends_with('.'));
    let bad_char = branch.chars().any(|c| {
        c.is_ascii_control() || matches!(c, ' ' | '~' | '^' | ':' | '?' | '*' | '[' | '\\')
    });
    if branch.is_empty()
        || branch.starts_with('-')
        || branch.contains("..")
        || branch.contains("@{")
        || branch == "@"
        || bad_component
        || bad_char
    {
        return Err(unusable(format!("{branch:?} is not a valid branch name")));
    }
    Ok(())
}

/// Refuses anything but a full hexadecimal object id, so that no argument can be read as an
/// option or a revision expression.
fn check_object_id(oid: &str, what: &str) -> Result<(), GitError> {
    let full_length = oid.len() == 40 || oid.len() == 64;
    if full_length
        && oid
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Ok(())
    } else {
        Err(unusable(format!(
            "{what} {oid:?} is not a full lower-case object id"
        )))
    }
}

/// Refuses paths reposync cannot represent ([`RepoPath`]: relative, no empty, `.`, `..` or
/// `.git` components, no control characters), and a path given twice.
fn check_changes(changes: &[FileChange]) -> Result<(), GitError> {
    let mut seen = HashSet::new();
    for change in changes {
        let path = change.path.as_str();
        if let Err(problem) = RepoPath::parse(path) {
            return Err(unusable(format!(
                "cannot write {}: it is not a path reposync can represent: {problem}",
                escape_path(path.as_bytes())
            )));
        }
        if !seen.insert(path) {
            return Err(unusable(format!("{path:?} is changed twice in one commit")));
        }
    }
    Ok(())
}

/// Refuses a prefix that is not a folder of the repository: relative, ending with `/`, with
/// no empty, `.`, `..` or `.git` parts, and no line breaks (it goes into line-based input).
fn check_folder(prefix: &str) -> Result<(), GitError> {
    let folder = prefix.strip_suffix('/').unwrap_or_default();
    let bad_component = folder
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == ".." || c.eq_ignore_ascii_case(".git"));
    if bad_component || prefix.contains(['\0', '\n', '\r']) {
        return Err(unusable(format!(
            "{prefix:?} is not a valid folder: it must be relative and end with `/`, like `Setup/`, with no empty, `.`, `..` or `.git` parts"
        )));
    }
    Ok(())
}

/// Refuses identities that git would mangle: it drops `<`, `>` and newlines without a word.
fn check_signature(signature: &Signature) -> Result<(), GitError> {
    for (what, value) in [("name", &signature.name), ("e-mail", &signature.email)] {
        if value.trim().is_empty() || value.contains(['<', '>', '\n', '\r', '\0']) {
            return Err(unusable(format!(
                "the commit author's {what} {value:?} is empty or holds <, > or a line break"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ls_tree_with_odd_paths() {
        let out = b"100644 blob aaaa\tSetup/Source Repo Providers/Platform Git.yaml\x00100644 blob bbbb\tSetup/\xc3\xa9t\xc3\xa9.yaml\x00160000 commit cccc\tsub\0";
        let entries = parse_ls_tree(out).expect("parses");
        assert_eq!(entries.len(), 3);
        assert_eq!(
            entries[0].path,
            b"Setup/Source Repo Providers/Platform Git.yaml"
        );
        assert_eq!(entries[1].path, "Setup/été.yaml".as_bytes());
        assert_eq!(entries[2].mode, GITLINK_MODE);
        // A name that is not UTF-8 is read as the bytes it is, for the caller to report.
        let odd = parse_ls_tree(b"100644 blob aaaa\tbad\xff\0").expect("parses");
        assert_eq!(odd[0].path, b"bad\xff");
        assert!(parse_ls_tree(b"100644 blob\tno-id\0").is_err());
    }

    #[test]
    fn a_diff_between_trees_leaves_out_paths_that_are_not_utf8() {
        let (a, b) = ("a".repeat(40), "b".repeat(40));
        let mut out = format!(":100644 100644 {a} {b} M\0").into_bytes();
        out.extend_from_slice(b"Setup/\xff.yaml\0");
        out.extend_from_slice(format!(":100644 100644 {a} {b} M\0Setup/ok.yaml\0").as_bytes());
        let entries = parse_diff_tree(&out).expect("parses");
        let paths: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["Setup/ok.yaml"]);
    }

    #[test]
    fn parses_diff_tree_changes_and_deletions() {
        let zero = "0".repeat(40);
        let out = format!(
            ":100644 100644 {a} {b} M\0Setup/a b.yaml\0:100644 000000 {a} {zero} D\0gone.yaml\0:000000 100755 {zero} {b} A\0new.sh\0",
            a = "a".repeat(40),
            b = "b".repeat(40)
        );
        let entries = parse_diff_tree(out.as_bytes()).expect("parses");
        assert_eq!(
            entries,
            vec![
                DiffEntry {
                    path: "Setup/a b.yaml".into(),
                    new: Some(("100644".into(), "b".repeat(40)))
                },
                DiffEntry {
                    path: "gone.yaml".into(),
                    new: None
                },
                DiffEntry {
                    path: "new.sh".into(),
                    new: Some(("100755".into(), "b".repeat(40)))
                },
            ]
        );
    }

    #[test]
    fn parses_diff_tree_stdin_output_with_renames() {
        let (a, b, c) = ("a".repeat(40), "b".repeat(40), "c".repeat(40));
        let zero = "0".repeat(40);
        let out = format!(
            "{c}\0:100644 100644 {a} {b} R087\0Setup/old name.yaml\0Setup/été.yaml\0:000000 160000 {zero} {a} A\0Setup/sub\0{a}\0:100644 000000 {a} {zero} D\0Setup/x.yaml\0"
        );
        let records = parse_raw_diff(out.as_bytes()).expect("parses");
        assert_eq!(records.len(), 5);
        assert_eq!(records[0], DiffRecord::Commit(c.clone()));
        let DiffRecord::Change(rename) = &records[1] else {
            panic!("a change: {records:?}");
        };
        assert_eq!(rename.status, 'R');
        assert_eq!(rename.path, "Setup/été.yaml".as_bytes());
        assert_eq!(rename.from.as_deref(), Some(&b"Setup/old name.yaml"[..]));
        assert_eq!(records[3], DiffRecord::Commit(a.clone()));

        let planned: Vec<String> = records
            .into_iter()
            .filter_map(|r| match r {
                DiffRecord::Change(change) => Some(plan_raw(change)),
                DiffRecord::Commit(_) => None,
            })
            .flat_map(|p| described(&p))
            .collect();
        assert_eq!(
            planned,
            [
                "file Renamed { from: \"Setup/old name.yaml\" } Setup/été.yaml",
                "entry Added Setup/sub: Submodule",
                "file Deleted Setup/x.yaml",
            ],
            "a submodule is reported, with no content"
        );
        assert!(parse_raw_diff(b"not-a-commit\0").is_err());
        assert!(
            parse_raw_diff(format!(":100644 100644 {a} {b} R100\0only-one\0").as_bytes()).is_err()
        );
    }

    /// Each planned change as one line: `file <change> <path>` or `entry <change> <path>:
    /// <problem>`.
    fn described(planned: &[Planned]) -> Vec<String> {
        planned
            .iter()
            .map(|p| match p {
                Planned::File(file) => format!("file {:?} {}", file.change, file.path),
                Planned::Unrepresentable(entry) => format!(
                    "entry {:?} {}: {:?}",
                    entry.entry.change,
                    escape_path(&entry.entry.path),
                    entry.entry.problem
                ),
            })
            .collect()
    }

    #[test]
    fn entries_reposync_cannot_hold_are_planned_apart_from_files() {
        let (a, b) = ("a".repeat(40), "b".repeat(40));
        let zero = "0".repeat(40);
        let raw =
            |old_mode: &str, new_mode: &str, status: char, path: &[u8], from: Option<&[u8]>| {
                RawChange {
                    status,
                    old_mode: old_mode.into(),
                    new_mode: new_mode.into(),
                    old_oid: if old_mode == ABSENT_MODE {
                        zero.clone()
                    } else {
                        a.clone()
                    },
                    new_oid: if new_mode == ABSENT_MODE {
                        zero.clone()
                    } else {
                        b.clone()
                    },
                    path: path.to_vec(),
                    from: from.map(<[u8]>::to_vec),
                }
            };
        let cases: Vec<(RawChange, Vec<&str>)> = vec![
            (
                raw("000000", "120000", 'A', b"Setup/link.yaml", None),
                vec!["entry Added Setup/link.yaml: Symlink"],
            ),
            (
                raw("000000", "160000", 'A', b"Setup/sub", None),
                vec!["entry Added Setup/sub: Submodule"],
            ),
            (
                raw("000000", "100644", 'A', b"Setup/a/\xff.yaml", None),
                vec!["entry Added Setup/a/\\xff.yaml: NotUtf8"],
            ),
            (
                raw("100644", "000000", 'D', b"Setup/x/.GIT/config", None),
                vec!["entry Deleted Setup/x/.GIT/config: GitComponent { component: \".GIT\" }"],
            ),
            (
                raw("000000", "100644", 'A', b"Setup/a/../b.yaml", None),
                vec!["entry Added Setup/a/../b.yaml: DotComponent { component: \"..\" }"],
            ),
            (
                raw("000000", "100644", 'A', b"Setup/a\tb.yaml", None),
                vec!["entry Added Setup/a\\x09b.yaml: ControlCharacter { character: '\\t' }"],
            ),
            // A rename across the line is a deletion and an addition.
            (
                raw(
                    "100644",
                    "100644",
                    'R',
                    b"Setup/\xff.yaml",
                    Some(b"Setup/ok.yaml"),
                ),
                vec![
                    "file Deleted Setup/ok.yaml",
                    "entry Added Setup/\\xff.yaml: NotUtf8",
                ],
            ),
            (
                raw(
                    "100644",
                    "100644",
                    'R',
                    b"Setup/ok.yaml",
                    Some(b"Setup/\xff.yaml"),
                ),
                vec![
                    "entry Deleted Setup/\\xff.yaml: NotUtf8",
                    "file Added Setup/ok.yaml",
                ],
            ),
            // A file that becomes a link is a change to an entry: reposync keeps its version.
            (
                raw("100644", "120000", 'T', b"Setup/w.yaml", None),
                vec!["entry Modified Setup/w.yaml: Symlink"],
            ),
            (
                raw("120000", "100644", 'T', b"Setup/w.yaml", None),
                vec!["file Added Setup/w.yaml"],
            ),
            (
                raw("100644", "100755", 'M', b"Setup/w.yaml", None),
                vec!["file Modified Setup/w.yaml"],
            ),
        ];
        for (change, expected) in cases {
            assert_eq!(described(&plan_raw(change)), expected);
        }
    }

    #[test]
    fn reads_tree_objects_and_cat_file_answers_in_order() {
        let mut tree = b"100644 a.yaml\0".to_vec();
        tree.extend_from_slice(&[0xab; 20]);
        tree.extend_from_slice(b"40000 .git\0");
        tree.extend_from_slice(&[0x01; 20]);
        tree.extend_from_slice(b"160000 \xff\0");
        tree.extend_from_slice(&[0x02; 20]);
        let entries = parse_tree_object(&tree, 20).expect("parses");
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[0].oid, "ab".repeat(20));
        assert_eq!((entries[0].kind(), entries[0].is_tree()), ("blob", false));
        assert_eq!(
            (entries[1].name.as_slice(), entries[1].kind()),
            (&b".git"[..], "tree")
        );
        assert_eq!(
            (entries[2].name.as_slice(), entries[2].kind()),
            (&b"\xff"[..], "commit")
        );
        assert!(parse_tree_object(&tree[..tree.len() - 1], 20).is_err());

        let id = "c".repeat(40);
        let mut out = format!("{id}:Setup/Cloud Providers missing\n{id} tree 3\n").into_bytes();
        out.extend_from_slice(b"xyz\n");
        let objects = parse_cat_file_objects(&out).expect("parses");
        assert_eq!(
            objects,
            [
                BatchObject::Missing,
                BatchObject::Found {
                    oid: id.clone(),
                    kind: "tree".into(),
                    content: b"xyz".to_vec()
                }
            ]
        );
    }

    #[test]
    fn parses_commit_details_with_multi_line_messages() {
        let (a, b) = ("a".repeat(40), "b".repeat(40));
        let out = format!(
            "{a}\0Ann\0ann@example.invalid\01700000000\0Subject\n\nReposync-Changeset: 7\n\0{b}\0Bob\0\01700000001\0One line\n\0"
        );
        let details = parse_commit_details(out.as_bytes()).expect("parses");
        assert_eq!(details.len(), 2);
        assert_eq!(details[&a].message, "Subject\n\nReposync-Changeset: 7\n");
        assert_eq!(details[&a].author_email, "ann@example.invalid");
        assert_eq!(details[&b].committed_at, 1_700_000_001);
        assert_eq!(details[&b].author_email, "");
        assert!(parse_commit_details(format!("{a}\0Ann\0").as_bytes()).is_err());
        assert!(parse_commit_details(format!("{a}\0Ann\0x\0soon\0m\0").as_bytes()).is_err());
    }

    #[test]
    fn prefixes_must_be_relative_folders() {
        for good in ["Setup/", "Setup/Applications/", "Set up/été/"] {
            assert!(check_folder(good).is_ok(), "{good:?}");
        }
        for bad in [
            "", "/", "Setup", "/Setup/", "Setup//", "./", "../", "a/../", ".git/", "a/.Git/",
            "a\nb/", "a\0/",
        ] {
            assert!(check_folder(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn parses_cat_file_batch_with_binary_and_empty_contents() {
        let mut out = b"aaaa blob 3\n\x00\n\xff\n".to_vec();
        out.extend_from_slice(b"bbbb blob 0\n\n");
        let contents = parse_cat_file_batch(&out).expect("parses");
        assert_eq!(contents["aaaa"], b"\x00\n\xff");
        assert_eq!(contents["bbbb"], b"");
        assert!(
            parse_cat_file_batch(b"aaaa missing\n")
                .expect("parses")
                .is_empty()
        );
        assert!(parse_cat_file_batch(b"aaaa blob 10\nshort\n").is_err());
    }

    #[test]
    fn parses_config_lists() {
        let config = parse_config_list(
            b"core.bare\nfalse\0remote.origin.url\nhttps://h/r.git\0reposync.branch\nmain\0",
        );
        assert_eq!(config["remote.origin.url"], "https://h/r.git");
        assert_eq!(config["reposync.branch"], "main");
    }

    #[test]
    fn backoff_doubles_from_100ms_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_millis(100));
        assert_eq!(backoff(2), Duration::from_millis(200));
        assert_eq!(backoff(3), Duration::from_millis(400));
        assert_eq!(backoff(40), MAX_BACKOFF);
    }

    #[test]
    fn refuses_bad_branch_names() {
        for good in ["main", "release/1.2", "feature/été"] {
            assert!(check_branch_name(good).is_ok(), "{good}");
        }
        for bad in [
            "", "-x", "a..b", "a b", "a/", "/a", ".hidden", "x.lock", "a@{1}", "a:b", "@",
        ] {
            assert!(check_branch_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn refuses_bad_paths_and_duplicates() {
        let change = |path: &str| FileChange {
            path: path.into(),
            content: None,
        };
        assert!(check_changes(&[change("Setup/Source Repo Providers/Platform Git.yaml")]).is_ok());
        for bad in [
            "",
            "/abs",
            "a//b",
            "a/",
            "../x",
            "a/./b",
            ".git/config",
            "a/.GIT/x",
            "a/.git./x",
            "a/git~1/x",
            "a/b\nc",
            "a/b\u{7f}",
            "a\\b",
        ] {
            let error = check_changes(&[change(bad)]).expect_err(bad);
            assert_eq!(error.kind, GitErrorKind::InvalidRequest);
            assert!(error.message.contains("cannot write"), "{error}");
        }
        assert!(check_changes(&[change("a"), change("a")]).is_err());
    }

    #[test]
    fn refuses_identities_git_would_mangle() {
        let signature = |name: &str, email: &str| Signature {
            name: name.into(),
            email: email.into(),
        };
        assert!(check_signature(&signature("reposync", "git-sync@reposync.invalid")).is_ok());
        assert!(check_signature(&signature("a<b", "x@y")).is_err());
        assert!(check_signature(&signature("a", "x@y>")).is_err());
        assert!(check_signature(&signature(" ", "x@y")).is_err());
    }

    #[test]
    fn object_ids_must_be_full_and_lower_case() {
        assert!(check_object_id(&"a".repeat(40), "commit").is_ok());
        assert!(check_object_id(&"a".repeat(64), "commit").is_ok());
        assert!(check_object_id("HEAD", "commit").is_err());
        assert!(check_object_id(&"A".repeat(40), "commit").is_err());
        assert!(check_object_id(&format!("-{}", "a".repeat(39)), "commit").is_err());
    }

    #[test]
    fn finds_locks_and_temporary_packs_but_not_in_loose_object_directories() {
        let dir = tempfile::tempdir().expect("tempdir");
        let git_dir = dir.path();
        for folder in ["objects/ab", "objects/pack", "refs/remotes/origin"] {
            std::fs::create_dir_all(git_dir.join(folder)).expect("mkdir");
        }
        std::fs::write(git_dir.join("objects/ab/cd.lock"), "").expect("write");
        std::fs::write(git_dir.join("objects/pack/pack-1.pack"), "").expect("write");
        std::fs::write(git_dir.join("tmp_not_a_pack"), "").expect("write");
        assert_eq!(find_debris(git_dir), Vec::<PathBuf>::new());
        for file in [
            "refs/remotes/origin/main.lock",
            "objects/maintenance.lock",
            "objects/pack/tmp_pack_Xy12",
            "index.lock",
        ] {
            std::fs::write(git_dir.join(file), "").expect("write");
        }
        assert_eq!(
            find_debris(git_dir),
            vec![
                git_dir.join("index.lock"),
                git_dir.join("objects/maintenance.lock"),
                git_dir.join("objects/pack/tmp_pack_Xy12"),
                git_dir.join("refs/remotes/origin/main.lock"),
            ]
        );
    }

    #[test]
    fn compacting_is_needed_past_gits_own_thresholds() {
        let dir = tempfile::tempdir().expect("tempdir");
        let objects = dir.path();
        std::fs::create_dir_all(objects.join("17")).expect("mkdir");
        std::fs::create_dir_all(objects.join("pack")).expect("mkdir");
        assert!(!needs_compacting(objects));
        let loose = |n: usize| objects.join("17").join(format!("{n:038x}"));
        for n in 0..27 {
            std::fs::write(loose(n), "").expect("write");
        }
        assert!(!needs_compacting(objects), "27 is 6700/256 rounded up");
        std::fs::write(loose(27), "").expect("write");
        assert!(needs_compacting(objects));
        std::fs::remove_dir_all(objects.join("17")).expect("remove");

        for n in 0..51 {
            std::fs::write(objects.join("pack").join(format!("pack-{n}.pack")), "").expect("write");
        }
        assert!(needs_compacting(objects), "51 packs");
        std::fs::write(objects.join("pack/pack-0.keep"), "").expect("write");
        assert!(!needs_compacting(objects), "a kept pack does not count");
    }
}
