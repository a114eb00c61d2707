//! What each line of a raw diff becomes before any content is read: a planned change to a
//! file, or to an entry reposync cannot hold as one.

use reposync_model::PathProblem;

use super::entry::{
    ABSENT_MODE, FileChangeKind, GITLINK_MODE, UnrepresentableEntry, representable_file,
};
use super::parse::RawChange;

/// A file a commit changed, its content not yet read.
#[derive(Debug)]
pub(super) struct PlannedFile {
    pub(super) path: String,
    pub(super) change: FileChangeKind,
    /// The blob after the change, `None` when deleted.
    pub(super) oid: Option<String>,
    /// The blob before the change, `None` when added.
    pub(super) old_oid: Option<String>,
}

/// An entry reposync cannot hold as a file that a commit changed, with its blobs, which
/// rename detection may have to read.
#[derive(Debug)]
pub(super) struct PlannedEntry {
    pub(super) entry: UnrepresentableEntry,
    /// The blob after the change, if there is one (not for a deletion or a submodule).
    pub(super) oid: Option<String>,
    /// The blob before the change, if there is one.
    pub(super) old_oid: Option<String>,
}

/// What one line of a raw diff becomes.
#[derive(Debug)]
pub(super) enum Planned {
    File(PlannedFile),
    Unrepresentable(PlannedEntry),
}

/// The planned files of a commit, leaving out the entries that are not files.
pub(super) fn files_of(planned: &[Planned]) -> impl Iterator<Item = &PlannedFile> {
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
pub(super) fn plan_raw(raw: RawChange) -> Vec<Planned> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use reposync_model::escape_path;

    use crate::clone::parse::{DiffRecord, parse_raw_diff};
    use reposync_model::ObjectId;

    #[test]
    fn parses_diff_tree_stdin_output_with_renames() {
        let (a, b, c) = ("a".repeat(40), "b".repeat(40), "c".repeat(40));
        let zero = "0".repeat(40);
        let out = format!(
            "{c}\0:100644 100644 {a} {b} R087\0Setup/old name.yaml\0Setup/été.yaml\0:000000 160000 {zero} {a} A\0Setup/sub\0{a}\0:100644 000000 {a} {zero} D\0Setup/x.yaml\0"
        );
        let records = parse_raw_diff(out.as_bytes()).expect("parses");
        assert_eq!(records.len(), 5);
        assert_eq!(records[0], DiffRecord::Commit(ObjectId::parse(&c).unwrap()));
        let DiffRecord::Change(rename) = &records[1] else {
            panic!("a change: {records:?}");
        };
        assert_eq!(rename.status, 'R');
        assert_eq!(rename.path, "Setup/été.yaml".as_bytes());
        assert_eq!(rename.from.as_deref(), Some(&b"Setup/old name.yaml"[..]));
        assert_eq!(records[3], DiffRecord::Commit(ObjectId::parse(&a).unwrap()));

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
}
