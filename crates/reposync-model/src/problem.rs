//! [`TreeProblem`]: one problem of a tree, where it is. Both the tree's checks and the
//! reading of a connector's file report it.

use std::fmt;

/// One problem, where it is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TreeProblem {
    pub path: String,
    /// 1-based; 0 when the problem is the file as a whole (its path).
    pub line: usize,
    pub column: usize,
    pub message: String,
    /// The failed file this one depends on, when that is the whole problem: this file is
    /// fine, and is tried again once that one is fixed.
    pub blocked_by: Option<String>,
}

impl fmt::Display for TreeProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_located(f, &self.path, self.line, self.column, &self.message)
    }
}

/// `path:line:column: message`, as compilers write it; a note about the file as a whole
/// points at its first line.
fn write_located(
    f: &mut fmt::Formatter<'_>,
    path: &str,
    line: usize,
    column: usize,
    message: &str,
) -> fmt::Result {
    write!(f, "{path}:{}:{}: {message}", line.max(1), column.max(1))
}

/// Something worth a person's attention in a file that is accepted all the same: a key
/// reposync does not know (kept as written), a name mixing scripts, a Source Repo Provider
/// that names no branch. Warnings never make an input fail; they travel beside the problems
/// so every reader (validate, import, the API, Git Sync) shows the same words.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TreeWarning {
    pub path: String,
    /// 1-based; 0 when the warning is about the file as a whole (its path or its name).
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for TreeWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_located(f, &self.path, self.line, self.column, &self.message)
    }
}

/// A secret reference read through `--map-secret-manager`: in `path`, at `line`, the
/// reference `reference` (`gcpkms:db-password`) was taken to mean reposync's secret `secret`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct MappedSecret {
    pub path: String,
    pub line: usize,
    /// The YAML key holding the reference (`password`, `sshKeyName`).
    pub key: String,
    pub reference: String,
    pub secret: String,
}
