//! What reposync makes of one tree entry: a regular file at a path it can represent, or an
//! [`UnrepresentableEntry`]; how a commit changed it; and the modes git writes in trees.

use std::fmt;

use reposync_model::{PathProblem, RepoPath, escape_path};

/// The file mode of everything we write: a regular, non-executable file.
pub(super) const FILE_MODE: &str = "100644";

/// The mode git writes for a folder in a tree.
pub(super) const TREE_MODE: &str = "40000";

/// The mode git gives a side of a change where there is nothing.
pub(super) const ABSENT_MODE: &str = "000000";

/// The mode of a symbolic link; its blob holds the link's target.
const SYMLINK_MODE: &str = "120000";

/// The mode of a submodule: a commit of another repository, with no content here.
pub(super) const GITLINK_MODE: &str = "160000";

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

/// A regular file's path, or why reposync cannot hold the entry as a file: [`RepoPath`]'s
/// rule first, then its mode (symbolic links and submodules are not files).
pub(super) fn representable_file(mode: &str, path: &[u8]) -> Result<String, PathProblem> {
    let path = RepoPath::from_bytes(path)?;
    match mode {
        SYMLINK_MODE => Err(PathProblem::Symlink),
        GITLINK_MODE => Err(PathProblem::Submodule),
        _ => Ok(path.into_string()),
    }
}
