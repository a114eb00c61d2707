//! What a commit holds and says, from the changesets it carries. Pure functions.

use std::collections::{BTreeMap, HashMap};

use reposync_api::SyncDifferences;
use reposync_store::{ChangesetRecord, FileOp};

/// The files of one commit, each with the operation its message names and the content to
/// write (`None` deletes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitPlan {
    pub files: Vec<(FileOp, String, Option<Vec<u8>>)>,
    pub changesets: Vec<String>,
}

/// Coalesces changesets (oldest first) into one commit. A file's content is what the store
/// holds now, so a file changed five times is written once, as it ended; `current` holds the
/// contents of every path that still exists. The operation is the net one: created then
/// changed is ADD, changed then deleted is DELETE, created then deleted is left out.
pub fn plan_commit(
    changesets: &[ChangesetRecord],
    current: &HashMap<String, Vec<u8>>,
) -> CommitPlan {
    let mut first_and_last: BTreeMap<&str, (FileOp, FileOp)> = BTreeMap::new();
    for changeset in changesets {
        for file in &changeset.files {
            first_and_last
                .entry(file.path.as_str())
                .and_modify(|(_, last)| *last = file.op)
                .or_insert((file.op, file.op));
        }
    }
    let mut files = Vec::new();
    for (path, (first, _)) in first_and_last {
        let content = current.get(path).cloned();
        let op = match (first, content.is_some()) {
            (FileOp::Add, false) => continue,
            (_, false) => FileOp::Delete,
            (FileOp::Add, true) => FileOp::Add,
            (_, true) => FileOp::Modify,
        };
        files.push((op, path.to_owned(), content));
    }
    CommitPlan {
        files,
        changesets: changesets.iter().map(|c| c.id.clone()).collect(),
    }
}

/// The default first line when a connector sets no commit message.
pub const DEFAULT_SUMMARY: &str = "Git Sync from reposync";

/// The commit message: the connector's message (or the default summary), one
/// `ADD:`/`MODIFY:`/`DELETE: <path>` line per file, then one `Reposync-Changeset: <id>`
/// trailer per changeset, by which reposync knows its own commits when they come back.
pub fn commit_message(connector_message: Option<&str>, plan: &CommitPlan) -> String {
    let summary = connector_message
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .unwrap_or(DEFAULT_SUMMARY);
    let mut message = format!("{summary}\n\n");
    for (op, path, _) in &plan.files {
        message.push_str(&format!("{}: {path}\n", op.as_str()));
    }
    message.push('\n');
    for id in &plan.changesets {
        message.push_str(&format!("Reposync-Changeset: {id}\n"));
    }
    message
}

/// How reposync's files of a scope compare with the branch's.
pub fn differences(ours: &[(String, Vec<u8>)], theirs: &[(String, Vec<u8>)]) -> SyncDifferences {
    let ours: HashMap<&str, &[u8]> = ours
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_slice()))
        .collect();
    let theirs: HashMap<&str, &[u8]> = theirs
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_slice()))
        .collect();
    let mut report = SyncDifferences::default();
    for (path, content) in &ours {
        match theirs.get(path) {
            None => report.only_in_reposync.push((*path).to_owned()),
            Some(other) if other != content => report.different.push((*path).to_owned()),
            Some(_) => {}
        }
    }
    for path in theirs.keys() {
        if !ours.contains_key(path) {
            report.only_in_git.push((*path).to_owned());
        }
    }
    report.only_in_reposync.sort();
    report.only_in_git.sort();
    report.different.sort();
    report
}

#[cfg(test)]
mod tests {
    use reposync_store::{ChangesetStatus, FileChangeRecord};

    use super::*;

    fn changeset(id: &str, files: &[(FileOp, &str)]) -> ChangesetRecord {
        ChangesetRecord {
            id: id.into(),
            link_id: "l".into(),
            status: ChangesetStatus::Waiting,
            files: files
                .iter()
                .map(|(op, path)| FileChangeRecord {
                    op: *op,
                    path: (*path).into(),
                })
                .collect(),
            attempt_id: None,
            commit_id: None,
            error: None,
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn changesets_coalesce_to_the_net_change_of_each_file() {
        let changesets = [
            changeset(
                "c1",
                &[
                    (FileOp::Add, "a"),
                    (FileOp::Modify, "b"),
                    (FileOp::Add, "gone"),
                ],
            ),
            changeset(
                "c2",
                &[
                    (FileOp::Modify, "a"),
                    (FileOp::Delete, "b"),
                    (FileOp::Delete, "gone"),
                ],
            ),
            changeset("c3", &[(FileOp::Delete, "c"), (FileOp::Add, "c")]),
        ];
        let current: HashMap<String, Vec<u8>> = [
            ("a".to_owned(), b"A".to_vec()),
            ("c".to_owned(), b"C".to_vec()),
        ]
        .into();
        let plan = plan_commit(&changesets, &current);
        assert_eq!(
            plan.files,
            vec![
                (FileOp::Add, "a".to_owned(), Some(b"A".to_vec())),
                (FileOp::Delete, "b".to_owned(), None),
                (FileOp::Modify, "c".to_owned(), Some(b"C".to_vec())),
            ]
        );
        assert_eq!(
            commit_message(None, &plan),
            "Git Sync from reposync\n\nADD: a\nDELETE: b\nMODIFY: c\n\nReposync-Changeset: c1\nReposync-Changeset: c2\nReposync-Changeset: c3\n"
        );
        assert!(commit_message(Some("Ops sync."), &plan).starts_with("Ops sync.\n\nADD: a\n"));
    }

    #[test]
    fn differences_list_each_side_and_the_files_that_differ() {
        let ours = vec![
            ("a".to_owned(), b"1".to_vec()),
            ("b".to_owned(), b"2".to_vec()),
        ];
        let theirs = vec![
            ("b".to_owned(), b"3".to_vec()),
            ("c".to_owned(), b"4".to_vec()),
        ];
        let d = differences(&ours, &theirs);
        assert_eq!(d.only_in_reposync, vec!["a"]);
        assert_eq!(d.different, vec!["b"]);
        assert_eq!(d.only_in_git, vec!["c"]);
        assert!(differences(&ours, &ours).is_empty());
    }
}
