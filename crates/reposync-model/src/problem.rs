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
        write!(
            f,
            "{}:{}:{}: {}",
            self.path,
            self.line.max(1),
            self.column.max(1),
            self.message
        )
    }
}
