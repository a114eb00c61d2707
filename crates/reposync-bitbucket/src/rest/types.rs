//! What both REST APIs answer, in one shape: commits, tree entries and changed files.

use reposync_model::ObjectId;
use serde::Serialize;

/// A commit as the REST API describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    pub id: ObjectId,
    pub parents: Vec<ObjectId>,
    /// The whole message, trailers included.
    pub message: String,
    pub author_name: String,
    pub author_email: String,
    /// Seconds since the Unix epoch: the committer date where the API gives it (Data
    /// Center), else the commit's date (Cloud).
    pub committed_at: i64,
}

/// Splits git's `Name <email>` (Cloud's `author.raw`); a bare name has no address.
pub(crate) fn split_signature(raw: &str) -> (String, String) {
    match raw.rsplit_once('<') {
        Some((name, rest)) => (
            name.trim().to_owned(),
            rest.trim_end().trim_end_matches('>').trim().to_owned(),
        ),
        None => (raw.trim().to_owned(), String::new()),
    }
}

/// What a tree entry is. Links and submodules are reported, never followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TreeEntryKind {
    File,
    Directory,
    Symlink,
    Submodule,
}

/// One entry of a listing, its path from the repository's root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeEntry {
    pub path: String,
    pub kind: TreeEntryKind,
    pub size: Option<u64>,
    pub executable: bool,
    pub binary: bool,
}

/// How a file changed between two commits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DiffStatus {
    Added,
    Removed,
    Modified,
    Renamed,
    Copied,
    /// A status neither API documents for a plain two-tree diff (Cloud's conflict values,
    /// DC's `UNKNOWN`); the planner reads such a range through git.
    Other(String),
}

impl DiffStatus {
    /// Reads Cloud's lower-case statuses and Data Center's upper-case change types.
    pub fn parse(text: &str) -> DiffStatus {
        match text.to_ascii_lowercase().as_str() {
            "added" | "add" => DiffStatus::Added,
            "removed" | "delete" => DiffStatus::Removed,
            "modified" | "modify" => DiffStatus::Modified,
            "renamed" | "move" => DiffStatus::Renamed,
            "copy" => DiffStatus::Copied,
            _ => DiffStatus::Other(text.to_owned()),
        }
    }
}

/// One changed file: the path before (none when added) and after (none when removed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChange {
    pub status: DiffStatus,
    pub old_path: Option<String>,
    pub new_path: Option<String>,
}
