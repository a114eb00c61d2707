//! What reposync's own commits say, and how they are known again when they come back.
//!
//! A commit reposync pushes carries a summary line (the connector's message, or the default),
//! one `ADD:`/`MODIFY:`/`DELETE: <path>` line per file the commit changes, and one
//! `Reposync-Changeset: <id>` trailer per change of the store it carries. The lines are
//! written from the commit's own diff against its parent, so they always match it; the
//! trailers are how the outbox tells whether a change it lost track of (a crash after the push
//! landed) is already on the branch, and how the inbox knows its own commits.

use serde::{Deserialize, Serialize};

/// The default summary when a connector sets no commit message.
pub const DEFAULT_SUMMARY: &str = "Git Sync from reposync";

/// The trailer key naming a changeset, with its colon.
pub const CHANGESET_TRAILER: &str = "Reposync-Changeset:";

/// How a commit changed a file, as its message says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum FileOp {
    Add,
    Modify,
    Delete,
}

impl FileOp {
    pub fn as_str(self) -> &'static str {
        match self {
            FileOp::Add => "ADD",
            FileOp::Modify => "MODIFY",
            FileOp::Delete => "DELETE",
        }
    }
}

/// The message of one of reposync's commits: `summary` (blank or absent means the default),
/// the files the commit changes with their operations, and the changesets it carries.
pub fn render(summary: Option<&str>, files: &[(FileOp, &str)], changesets: &[&str]) -> String {
    let summary = summary
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .unwrap_or(DEFAULT_SUMMARY);
    let mut message = format!("{summary}\n\n");
    for (op, path) in files {
        message.push_str(op.as_str());
        message.push_str(": ");
        message.push_str(path);
        message.push('\n');
    }
    if !changesets.is_empty() {
        message.push('\n');
        for id in changesets {
            message.push_str(CHANGESET_TRAILER);
            message.push(' ');
            message.push_str(id);
            message.push('\n');
        }
    }
    message
}

/// The changeset ids a commit message names in `Reposync-Changeset:` trailers, in order.
pub fn changeset_ids(message: &str) -> Vec<&str> {
    message
        .lines()
        .filter_map(|line| line.trim().strip_prefix(CHANGESET_TRAILER))
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .collect()
}

/// The `OP: path` lines of a message, in order: what the message says the commit changed.
pub fn file_lines(message: &str) -> Vec<(FileOp, &str)> {
    message
        .lines()
        .filter_map(|line| {
            let (op, path) = line.split_once(": ")?;
            let op = match op {
                "ADD" => FileOp::Add,
                "MODIFY" => FileOp::Modify,
                "DELETE" => FileOp::Delete,
                _ => return None,
            };
            Some((op, path))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_lists_each_file_then_each_changeset_and_reads_back() {
        let message = render(
            None,
            &[(FileOp::Add, "Setup/a b.yaml"), (FileOp::Delete, "Setup/c")],
            &["c1", "c2"],
        );
        assert_eq!(
            message,
            "Git Sync from reposync\n\nADD: Setup/a b.yaml\nDELETE: Setup/c\n\nReposync-Changeset: c1\nReposync-Changeset: c2\n"
        );
        assert_eq!(changeset_ids(&message), ["c1", "c2"]);
        assert_eq!(
            file_lines(&message),
            [(FileOp::Add, "Setup/a b.yaml"), (FileOp::Delete, "Setup/c")]
        );
        assert!(render(Some(" Ops sync. "), &[], &[]).starts_with("Ops sync.\n\n"));
        assert_eq!(render(Some("  "), &[], &[]), "Git Sync from reposync\n\n");
    }
}
