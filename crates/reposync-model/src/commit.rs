//! What reposync's own commits say, and how they are known again when they come back.
//!
//! A commit reposync pushes carries a summary line (the connector's message, or the default),
//! one `ADD:`/`MODIFY:`/`DELETE: <path>` line per file the commit changes, and one
//! `Reposync-Changeset: <id>` trailer per change of the store it carries, then one
//! `Reposync-User: <name>` trailer per person who made those changes. The lines are written
//! from the commit's own diff against its parent, so they always match it; the changeset
//! trailers are how the outbox tells whether a change it lost track of (a crash after the push
//! landed) is already on the branch, and how the inbox knows its own commits. The user
//! trailers only say who: nothing reads them to decide anything.

use serde::{Deserialize, Serialize};

use crate::access::UserName;

/// The default summary when a connector sets no commit message.
pub const DEFAULT_SUMMARY: &str = "Git Sync from reposync";

/// The trailer key naming a changeset, with its colon.
pub const CHANGESET_TRAILER: &str = "Reposync-Changeset:";

/// The trailer key naming a person whose changes a commit carries, with its colon.
pub const USER_TRAILER: &str = "Reposync-User:";

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
/// the files the commit changes with their operations, the changesets it carries, and the
/// people who made them (`users`, in the order of the changesets; each name is written once,
/// where it first appears). The user trailers follow the changeset trailers, in one block.
pub fn render(
    summary: Option<&str>,
    files: &[(FileOp, &str)],
    changesets: &[&str],
    users: &[&UserName],
) -> String {
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
    let mut named: Vec<&UserName> = Vec::new();
    for user in users {
        if !named.contains(user) {
            named.push(user);
        }
    }
    if !changesets.is_empty() || !named.is_empty() {
        message.push('\n');
    }
    for id in changesets {
        message.push_str(CHANGESET_TRAILER);
        message.push(' ');
        message.push_str(id);
        message.push('\n');
    }
    for user in named {
        message.push_str(USER_TRAILER);
        message.push(' ');
        message.push_str(user.as_str());
        message.push('\n');
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

/// The user names a commit message names in `Reposync-User:` trailers, in order.
pub fn user_names(message: &str) -> Vec<&str> {
    message
        .lines()
        .filter_map(|line| line.trim().strip_prefix(USER_TRAILER))
        .map(str::trim)
        .filter(|name| !name.is_empty())
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
            &[],
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
        assert!(user_names(&message).is_empty());
        assert!(render(Some(" Ops sync. "), &[], &[], &[]).starts_with("Ops sync.\n\n"));
        assert_eq!(
            render(Some("  "), &[], &[], &[]),
            "Git Sync from reposync\n\n"
        );
    }

    fn user(name: &str) -> UserName {
        UserName::parse(name).unwrap()
    }

    #[test]
    fn one_person_gives_one_user_trailer_after_the_changesets() {
        let alice = user("alice");
        let message = render(
            None,
            &[(FileOp::Modify, "Setup/a.yaml")],
            &["c1", "c2"],
            &[&alice, &alice],
        );
        assert_eq!(
            message,
            "Git Sync from reposync\n\nMODIFY: Setup/a.yaml\n\nReposync-Changeset: c1\nReposync-Changeset: c2\nReposync-User: alice\n"
        );
        assert_eq!(user_names(&message), ["alice"]);
    }

    #[test]
    fn several_people_are_named_once_each_in_order_of_first_appearance() {
        let (bob, alice, carol) = (user("bob"), user("alice"), user("carol.c"));
        let message = render(
            Some("Ops sync"),
            &[(FileOp::Add, "Setup/a.yaml")],
            &["c1", "c2", "c3", "c4"],
            &[&bob, &alice, &bob, &carol],
        );
        assert_eq!(
            message,
            "Ops sync\n\nADD: Setup/a.yaml\n\nReposync-Changeset: c1\nReposync-Changeset: c2\nReposync-Changeset: c3\nReposync-Changeset: c4\nReposync-User: bob\nReposync-User: alice\nReposync-User: carol.c\n"
        );
        assert_eq!(user_names(&message), ["bob", "alice", "carol.c"]);
        // The trailers that find a lost push and the lines that name files read as before.
        assert_eq!(changeset_ids(&message), ["c1", "c2", "c3", "c4"]);
        assert_eq!(file_lines(&message), [(FileOp::Add, "Setup/a.yaml")]);
    }

    #[test]
    fn user_trailers_never_read_as_changesets_or_files() {
        // A user name that looks like a changeset id or a file line stays a user name.
        let odd = user("ADD");
        let message = render(None, &[], &["c1"], &[&odd]);
        assert_eq!(changeset_ids(&message), ["c1"]);
        assert!(file_lines(&message).is_empty());
        assert_eq!(user_names(&message), ["ADD"]);
    }
}
