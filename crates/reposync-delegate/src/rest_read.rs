//! Reading a branch through Bitbucket's REST APIs instead of the local clone: a snapshot of a
//! scope, or the commits after one already read, in the same shapes as git's reads.
//!
//! Every read resolves the branch to a commit first and names commits only by id afterwards
//! (a branch holding `/` cannot go in a `src` path). Only paths under the scope are read. A
//! symbolic link or a submodule is reported as an entry reposync cannot hold, never followed.
//! Whatever the API refuses (an error, the budget, a capped list, a range git must read) comes
//! back as a reason, and the caller reads through git instead.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read as _;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reposync_api::{ChangedFileRead, CommitRead, FileContent, UnrepresentableRead};
use reposync_bitbucket::rest::{
    Commit, DiffStatus, FileChange, RestError, TreeEntry, TreeEntryKind,
};
use reposync_model::{BranchName, ObjectId, PathProblem, RepoPath};

use crate::planner::Allowance;
use crate::rest::RestClient;

/// The most bytes an archive may expand to: a scope of configuration files is far smaller,
/// and a gzip bomb must not take the delegate's memory.
const MAX_EXPANDED_BYTES: u64 = 512 * 1024 * 1024;

/// How many paths one archive request names; the URL stays well under common limits.
const PATHS_PER_ARCHIVE: usize = 100;

/// Every file under a scope at a commit.
#[derive(Debug)]
pub(crate) struct RestSnapshot {
    pub head: ObjectId,
    pub files: Vec<FileContent>,
    pub unrepresentable: Vec<UnrepresentableRead>,
}

/// The commits after `since`, oldest first.
#[derive(Debug)]
pub(crate) struct RestCommits {
    pub head: ObjectId,
    pub commits: Vec<CommitRead>,
}

/// What an incremental read through REST found.
#[derive(Debug)]
pub(crate) enum RestIncremental {
    Commits(RestCommits),
    /// Data Center capped the changes of a commit: the scope is to be read whole, which its
    /// path-filtered archive does in one request.
    Capped {
        reason: String,
    },
}

/// Why REST gave up; the read goes through git instead.
pub(crate) type Refusal = String;

fn refusal(error: RestError) -> Refusal {
    error.to_string()
}

impl RestClient {
    async fn branch_head(&self, branch: &BranchName) -> Result<ObjectId, RestError> {
        match self {
            RestClient::Cloud(cloud) => cloud.branch_head(branch.as_str()).await,
            RestClient::DataCenter(dc) => dc.branch_head(branch.as_str()).await,
        }
    }

    async fn commit(&self, id: &ObjectId) -> Result<Commit, RestError> {
        match self {
            RestClient::Cloud(cloud) => cloud.commit(id.as_str()).await,
            RestClient::DataCenter(dc) => dc.commit(id.as_str()).await,
        }
    }

    /// The files `commit` changed against `parent`; `None` when Data Center capped the list,
    /// which it cannot page past.
    async fn changes(
        &self,
        parent: &ObjectId,
        commit: &ObjectId,
    ) -> Result<Option<Vec<FileChange>>, Refusal> {
        match self {
            RestClient::Cloud(cloud) => cloud
                .diffstat(parent, commit)
                .await
                .map(Some)
                .map_err(refusal),
            RestClient::DataCenter(dc) => {
                let changes = dc.changes(parent, commit).await.map_err(refusal)?;
                Ok((!changes.capped).then_some(changes.files))
            }
        }
    }

    /// The remaining requests of the credential's budget.
    pub(crate) fn remaining(&self) -> u32 {
        match self {
            RestClient::Cloud(cloud) => cloud.budget().remaining(),
            RestClient::DataCenter(dc) => dc.budget().remaining(),
        }
    }

    /// Requests sent and bytes received so far.
    pub(crate) fn traffic(&self) -> (u64, u64) {
        let traffic = match self {
            RestClient::Cloud(cloud) => cloud.traffic(),
            RestClient::DataCenter(dc) => dc.traffic(),
        };
        (traffic.requests, traffic.bytes)
    }

    fn requests(&self) -> u64 {
        self.traffic().0
    }

    /// Every file under `prefix` (a folder ending in `/`) at the head of `branch`.
    pub(crate) async fn snapshot(
        &self,
        branch: &BranchName,
        prefix: &str,
        allowance: Allowance,
    ) -> Result<RestSnapshot, Refusal> {
        let head = self.branch_head(branch).await.map_err(refusal)?;
        let (files, unrepresentable) = match self {
            RestClient::Cloud(cloud) => {
                // More files than the allowance cannot be read one request each anyway, so the
                // listing stops as soon as it knows.
                let max_files = usize::try_from(allowance.requests).unwrap_or(usize::MAX);
                let entries = match cloud.list_tree(&head, prefix, max_files).await {
                    Err(RestError::TooLarge { .. }) => {
                        return Err(format!(
                            "the scope holds more than {max_files} files, one request each; this read may spend {} of the {} requests left this hour",
                            allowance.requests, allowance.remaining
                        ));
                    }
                    other => other.map_err(refusal)?,
                };
                let wanted: Vec<&TreeEntry> = entries
                    .iter()
                    .filter(|entry| entry.kind == TreeEntryKind::File)
                    .collect();
                allowance.check(
                    self.requests() + wanted.len() as u64,
                    &format!("reading {} files", wanted.len()),
                )?;
                let mut files = Vec::new();
                let mut unrepresentable = Vec::new();
                for entry in &entries {
                    if !under(prefix, &entry.path) {
                        continue;
                    }
                    match checked(entry) {
                        Err(problem) => {
                            unrepresentable.push(unrepresentable_read("add", &entry.path, problem))
                        }
                        Ok(false) => {}
                        Ok(true) => {
                            let content = cloud.file(&head, &entry.path).await.map_err(refusal)?;
                            files.push(FileContent {
                                path: entry.path.clone(),
                                content: Some(STANDARD.encode(content)),
                            });
                        }
                    }
                }
                (files, unrepresentable)
            }
            RestClient::DataCenter(dc) => {
                let scope = prefix.trim_end_matches('/');
                let archive = dc.archive(&head, &[scope]).await.map_err(refusal)?;
                let read = read_archive(&archive, prefix)?;
                (read.files, read.unrepresentable)
            }
        };
        Ok(RestSnapshot {
            head,
            files,
            unrepresentable,
        })
    }

    /// The first-parent commits after `since` on `branch`, oldest first, with what each
    /// changed under `prefix`. A range longer than `max_commits`, or one whose first-parent
    /// history does not reach `since` (a rewritten branch, a merge of older work), is left to
    /// git, which handles both.
    pub(crate) async fn commits_since(
        &self,
        branch: &BranchName,
        since: &ObjectId,
        prefix: &str,
        max_commits: usize,
        allowance: Allowance,
    ) -> Result<RestIncremental, Refusal> {
        let head = self.branch_head(branch).await.map_err(refusal)?;
        let mut walked: Vec<Commit> = Vec::new();
        let mut next = head.clone();
        while next != *since {
            if walked.len() >= max_commits.max(1) {
                return Err(format!(
                    "more than {} commits since {}; git reads long ranges",
                    max_commits.max(1),
                    since.short()
                ));
            }
            // Each commit costs a request now and at least one for its changes.
            allowance.check(self.requests() + 2, "walking the new commits")?;
            let commit = self.commit(&next).await.map_err(refusal)?;
            let Some(parent) = commit.parents.first().cloned() else {
                return Err(format!(
                    "{} is not in the first-parent history of {branch}; git reads rewritten history",
                    since.short()
                ));
            };
            next = parent;
            walked.push(commit);
        }
        walked.reverse();
        let mut commits = Vec::new();
        for commit in walked {
            let parent = commit
                .parents
                .first()
                .cloned()
                .unwrap_or_else(|| since.clone());
            let Some(changes) = self.changes(&parent, &commit.id).await? else {
                return Ok(RestIncremental::Capped {
                    reason: format!(
                        "Data Center capped the changes of {}, and cannot page past its cap",
                        commit.id.short()
                    ),
                });
            };
            let files = self
                .read_changes(&commit.id, prefix, &changes, allowance)
                .await?;
            commits.push(CommitRead {
                commit: commit.id.to_string(),
                parent: Some(parent.to_string()),
                message: commit.message,
                author_name: commit.author_name,
                author_email: commit.author_email,
                committed_at: commit.committed_at,
                files: files.0,
                unrepresentable: files.1,
            });
        }
        Ok(RestIncremental::Commits(RestCommits { head, commits }))
    }

    /// The changed files under `prefix` of one commit, with their contents at `commit`.
    async fn read_changes(
        &self,
        commit: &ObjectId,
        prefix: &str,
        changes: &[FileChange],
        allowance: Allowance,
    ) -> Result<(Vec<ChangedFileRead>, Vec<UnrepresentableRead>), Refusal> {
        let mut files = Vec::new();
        let mut unrepresentable = Vec::new();
        // Paths whose content at `commit` is needed, with their change.
        let mut wanted: BTreeMap<String, (&'static str, Option<String>)> = BTreeMap::new();
        for change in changes {
            if matches!(change.status, DiffStatus::Other(_)) {
                return Err(format!(
                    "Bitbucket reports a change of {commit} it does not document ({:?}); git reads it",
                    change.status
                ));
            }
            let old = change
                .old_path
                .as_deref()
                .filter(|path| under(prefix, path));
            let new = change
                .new_path
                .as_deref()
                .filter(|path| under(prefix, path));
            match (old, new, &change.status) {
                (Some(old), None, _) => match RepoPath::parse(old) {
                    Ok(_) => files.push(ChangedFileRead {
                        op: "delete".into(),
                        path: old.to_owned(),
                        from: None,
                        content: None,
                    }),
                    Err(problem) => {
                        unrepresentable.push(unrepresentable_read("delete", old, problem))
                    }
                },
                (None, Some(new), _) => {
                    wanted.insert(new.to_owned(), ("add", None));
                }
                (Some(old), Some(new), DiffStatus::Renamed) if old != new => {
                    match RepoPath::parse(old) {
                        Ok(_) => {
                            wanted.insert(new.to_owned(), ("rename", Some(old.to_owned())));
                        }
                        // The old name was never held: the new one is simply added.
                        Err(_) => {
                            wanted.insert(new.to_owned(), ("add", None));
                        }
                    }
                }
                (Some(_), Some(new), DiffStatus::Added) => {
                    wanted.insert(new.to_owned(), ("add", None));
                }
                (Some(_), Some(new), _) => {
                    wanted.insert(new.to_owned(), ("modify", None));
                }
                (None, None, _) => {}
            }
        }
        if wanted.is_empty() {
            return Ok((files, unrepresentable));
        }
        match self {
            RestClient::Cloud(cloud) => {
                // The listing of each folder tells a file from a link or a submodule, which a
                // diffstat does not.
                let folders: BTreeSet<&str> =
                    wanted.keys().map(|path| parent_folder(path)).collect();
                allowance.check(
                    self.requests() + folders.len() as u64 + wanted.len() as u64,
                    &format!("reading {} changed files", wanted.len()),
                )?;
                let mut kinds: BTreeMap<String, TreeEntry> = BTreeMap::new();
                for folder in folders {
                    for entry in cloud.list_dir(commit, folder).await.map_err(refusal)? {
                        kinds.insert(entry.path.clone(), entry);
                    }
                }
                for (path, (op, from)) in wanted {
                    let problem = match kinds.get(&path) {
                        Some(entry) => checked(entry).err(),
                        None => {
                            return Err(format!(
                                "{path} changed in {commit} but is not in its folder's listing"
                            ));
                        }
                    };
                    if let Some(problem) = problem {
                        unrepresentable.push(unrepresentable_read(op_kind(op), &path, problem));
                        continue;
                    }
                    let content = cloud.file(commit, &path).await.map_err(refusal)?;
                    files.push(ChangedFileRead {
                        op: op.to_owned(),
                        path,
                        from,
                        content: Some(STANDARD.encode(content)),
                    });
                }
            }
            RestClient::DataCenter(dc) => {
                let batches = wanted.len().div_ceil(PATHS_PER_ARCHIVE);
                allowance.check(
                    self.requests() + batches as u64,
                    &format!("reading {} changed files", wanted.len()),
                )?;
                let paths: Vec<&str> = wanted.keys().map(String::as_str).collect();
                let mut read = ArchiveRead::default();
                for batch in paths.chunks(PATHS_PER_ARCHIVE) {
                    let archive = dc.archive(commit, batch).await.map_err(refusal)?;
                    let mut part = read_archive(&archive, prefix)?;
                    read.files.append(&mut part.files);
                    read.unrepresentable.append(&mut part.unrepresentable);
                }
                let mut contents: BTreeMap<String, Option<String>> = read
                    .files
                    .into_iter()
                    .map(|file| (file.path, file.content))
                    .collect();
                for entry in read.unrepresentable {
                    let op = wanted
                        .iter()
                        .find(|(path, _)| STANDARD.encode(path.as_bytes()) == entry.path)
                        .map_or("add", |(_, (op, _))| op_kind(op));
                    unrepresentable.push(UnrepresentableRead {
                        op: op.to_owned(),
                        ..entry
                    });
                }
                for (path, (op, from)) in wanted {
                    if let Some(content) = contents.remove(&path) {
                        files.push(ChangedFileRead {
                            op: op.to_owned(),
                            path,
                            from,
                            content,
                        });
                    } else if !unrepresentable
                        .iter()
                        .any(|entry| entry.path == STANDARD.encode(path.as_bytes()))
                    {
                        return Err(format!(
                            "{path} changed in {commit} but its archive does not hold it"
                        ));
                    }
                }
            }
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok((files, unrepresentable))
    }
}

/// The op an entry that reposync cannot hold is reported with.
fn op_kind(op: &str) -> &'static str {
    match op {
        "add" => "add",
        _ => "modify",
    }
}

/// Whether `path` lies inside the scope `prefix` (a folder ending in `/`, or empty for all).
fn under(prefix: &str, path: &str) -> bool {
    path.starts_with(prefix)
}

/// The folder holding `path`, empty for the root.
fn parent_folder(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(folder, _)| folder)
}

/// Whether a listed entry is a file reposync reads (`Ok(true)`), something to skip
/// (`Ok(false)`: a folder), or something it cannot hold.
fn checked(entry: &TreeEntry) -> Result<bool, PathProblem> {
    match entry.kind {
        TreeEntryKind::Directory => Ok(false),
        TreeEntryKind::Symlink => Err(PathProblem::Symlink),
        TreeEntryKind::Submodule => Err(PathProblem::Submodule),
        TreeEntryKind::File => RepoPath::parse(&entry.path).map(|_| true),
    }
}

fn unrepresentable_read(op: &str, path: &str, problem: PathProblem) -> UnrepresentableRead {
    UnrepresentableRead {
        op: op.to_owned(),
        path: STANDARD.encode(path.as_bytes()),
        problem,
    }
}

#[derive(Debug, Default)]
struct ArchiveRead {
    files: Vec<FileContent>,
    unrepresentable: Vec<UnrepresentableRead>,
}

/// The regular files of a gzipped tar under `prefix`; links are reported, never followed,
/// and the expanded size is bounded.
fn read_archive(archive: &[u8], prefix: &str) -> Result<ArchiveRead, Refusal> {
    let bad = |err: std::io::Error| format!("the archive Bitbucket sent cannot be read: {err}");
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(archive));
    let mut read = ArchiveRead::default();
    let mut expanded = 0u64;
    for entry in tar.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let path_bytes = entry.path_bytes().into_owned();
        let Ok(path) = String::from_utf8(path_bytes.clone()) else {
            read.unrepresentable.push(UnrepresentableRead {
                op: "add".into(),
                path: STANDARD.encode(&path_bytes),
                problem: PathProblem::NotUtf8,
            });
            continue;
        };
        if !under(prefix, &path) {
            continue;
        }
        let kind = entry.header().entry_type();
        if kind.is_dir() || kind.is_pax_global_extensions() || kind.is_pax_local_extensions() {
            continue;
        }
        if kind.is_symlink() || kind.is_hard_link() {
            read.unrepresentable
                .push(unrepresentable_read("add", &path, PathProblem::Symlink));
            continue;
        }
        if !kind.is_file() {
            continue;
        }
        if let Err(problem) = RepoPath::parse(&path) {
            read.unrepresentable
                .push(unrepresentable_read("add", &path, problem));
            continue;
        }
        expanded += entry.size();
        if expanded > MAX_EXPANDED_BYTES {
            return Err(format!(
                "the archive expands to more than {MAX_EXPANDED_BYTES} bytes; git reads it"
            ));
        }
        let mut content = Vec::new();
        entry.read_to_end(&mut content).map_err(bad)?;
        read.files.push(FileContent {
            path,
            content: Some(STANDARD.encode(content)),
        });
    }
    Ok(read)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tgz(entries: &[(&str, Option<&[u8]>)]) -> Vec<u8> {
        let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::fast(),
        ));
        for (path, content) in entries {
            let mut header = tar::Header::new_gnu();
            match content {
                Some(content) => {
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_size(content.len() as u64);
                    header.set_mode(0o644);
                    builder
                        .append_data(&mut header, path, *content)
                        .expect("append a file");
                }
                None => {
                    header.set_entry_type(tar::EntryType::Symlink);
                    header.set_size(0);
                    builder
                        .append_link(&mut header, path, "../../etc/passwd")
                        .expect("append a link");
                }
            }
        }
        builder
            .into_inner()
            .expect("finish the tar")
            .finish()
            .expect("finish the gzip")
    }

    #[test]
    fn archives_give_files_in_scope_and_report_links() {
        let archive = tgz(&[
            ("Setup/a.yaml", Some(b"a: 1\n")),
            ("Setup/link.yaml", None),
            ("Other/b.yaml", Some(b"b: 2\n")),
        ]);
        let read = read_archive(&archive, "Setup/").expect("readable");
        assert_eq!(read.files.len(), 1);
        assert_eq!(read.files[0].path, "Setup/a.yaml");
        assert_eq!(
            read.files[0].content.as_deref(),
            Some(STANDARD.encode("a: 1\n").as_str())
        );
        assert_eq!(read.unrepresentable.len(), 1);
        assert_eq!(read.unrepresentable[0].problem, PathProblem::Symlink);
    }

    #[test]
    fn a_broken_archive_is_a_refusal() {
        assert!(read_archive(b"not a gzip", "Setup/").is_err());
    }

    #[test]
    fn scope_helpers() {
        assert!(under("Setup/", "Setup/x.yaml"));
        assert!(!under("Setup/", "SetupX/x.yaml"));
        assert_eq!(parent_folder("Setup/a/b.yaml"), "Setup/a");
        assert_eq!(parent_folder("b.yaml"), "");
    }
}
