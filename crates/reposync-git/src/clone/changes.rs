//! Reading what changed on the branch since a commit: commit by commit along first parents,
//! with contents, messages and authors, or every file when that commit is gone.

use std::collections::{HashMap, HashSet};
use std::fmt;

use reposync_model::ObjectId;

use crate::auth::Remote;
use crate::error::GitError;

use super::check::{check_folder, invalid, printed_object_id};
use super::diff::{Planned, PlannedFile, files_of, plan_raw};
use super::entry::{FileChangeKind, UnrepresentableEntry};
use super::handle::LocalClone;
use super::history::Reach;
use super::parse::{CommitDetails, DiffRecord, parse_commit_details, parse_raw_diff};
use super::partial::Fill;

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
        head: ObjectId,
        commits: Vec<CommitChanges>,
        complete: bool,
    },
    /// Every file under the prefix at `head`, sorted by path, because there was no `since` (a
    /// first sync) or, when `since_lost` is true, because `since` is no longer in the history
    /// of the branch (a forced update rewrote it).
    Snapshot {
        head: ObjectId,
        files: Vec<(String, Vec<u8>)>,
        /// Entries under the prefix that reposync cannot hold as files, all as additions.
        unrepresentable: Vec<UnrepresentableEntry>,
        since_lost: bool,
    },
}

/// One commit of [`BranchChanges::Commits`], with what it changed under the prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitChanges {
    pub commit: ObjectId,
    /// The commit that `files` are relative to: the first parent, except for the oldest commit
    /// of a list when `since` reached the branch through another of its parents (a merge such
    /// as `git pull` makes on top of local work), where it is `since` itself.
    pub parent: ObjectId,
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

impl LocalClone {
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
        since: Option<&ObjectId>,
        prefix: &str,
        max_commits: usize,
    ) -> Result<BranchChanges, GitError> {
        self.check_remote(remote)?;
        check_folder(prefix)?;
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

    /// The changes since `since` as [`LocalClone::fetch_changes`] describes them, unless the
    /// clone had to be made anew on the way.
    async fn changes_since(
        &self,
        remote: &Remote,
        since: Option<&ObjectId>,
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
            Reach::Ancestor { head } if head == *since => {
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

    /// The commits after `since` up to `head` along first parents, oldest first, each with
    /// the commit it is compared with. `since` must be in the local history of `head`.
    async fn steps(&self, since: &ObjectId, head: &ObjectId) -> Result<Vec<Step>, GitError> {
        let exclude = format!("^{since}");
        let listing = self
            .local(&[
                "rev-list",
                "--first-parent",
                "--parents",
                head.as_str(),
                &exclude,
            ])
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
        let mut kept: Vec<String> =
            if chain.last().and_then(|(_, parent)| *parent) == Some(since.as_str()) {
                chain
                    .iter()
                    .map(|(commit, _)| (*commit).to_owned())
                    .collect()
            } else {
                // `since` came in through another parent of a merge on the chain (as when someone
                // pulls with a merge and pushes): only the commits from that merge on hold it, and
                // the merge is compared with `since` itself so that nothing is applied twice.
                let descendants = self
                    .local(&["rev-list", "--ancestry-path", head.as_str(), &exclude])
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
        let mut parent = since.clone();
        kept.into_iter()
            .map(|commit| {
                let commit = printed_object_id(&commit, "git rev-list")?;
                Ok(Step {
                    parent: std::mem::replace(&mut parent, commit.clone()),
                    commit,
                })
            })
            .collect()
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
    ) -> Result<HashMap<ObjectId, Vec<Planned>>, GitError> {
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
        let mut planned: HashMap<ObjectId, Vec<Planned>> = HashMap::new();
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
    ) -> Result<HashMap<ObjectId, CommitDetails>, GitError> {
        let mut input = String::new();
        for step in steps {
            input.push_str(step.commit.as_str());
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
}

/// The result of an operation, or word that the clone was made anew under it (with whole
/// files and a shallow history) so that it must start over.
enum Attempt<T> {
    Done(T),
    CloneRemade,
}

/// A commit to report and the commit its changes are taken against.
#[derive(Debug, Clone)]
struct Step {
    commit: ObjectId,
    parent: ObjectId,
}
