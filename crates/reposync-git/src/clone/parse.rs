//! Git's output, parsed: `ls-tree`, raw `diff-tree`, `log`, `cat-file --batch`, tree objects
//! and `config --list`, each into the records the clone works with.

use std::collections::HashMap;

use crate::error::GitError;

use reposync_model::ObjectId;

use super::check::{invalid, printed_object_id};

pub(super) fn text(bytes: Vec<u8>) -> String {
    String::from_utf8_lossy(&bytes).trim().to_owned()
}

/// The message, author and date of a commit, from `git log`.
#[derive(Debug)]
pub(super) struct CommitDetails {
    pub(super) message: String,
    pub(super) author_name: String,
    pub(super) author_email: String,
    pub(super) committed_at: i64,
}

/// One record of `git diff-tree -r -z` raw output.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum DiffRecord {
    /// With `--stdin`: the commit that the changes after it belong to.
    Commit(ObjectId),
    Change(RawChange),
}

/// One changed path of `git diff-tree -r -z`.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct RawChange {
    /// The first letter of git's status: `A`, `M`, `D`, `T`, `R`, `C`…
    pub(super) status: char,
    pub(super) old_mode: String,
    pub(super) new_mode: String,
    pub(super) old_oid: String,
    pub(super) new_oid: String,
    /// As git stores it: bytes, not necessarily UTF-8.
    pub(super) path: Vec<u8>,
    /// For a rename or a copy, the source path.
    pub(super) from: Option<Vec<u8>>,
}

/// One line of `git ls-tree -z`.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct TreeEntry {
    pub(super) mode: String,
    pub(super) oid: String,
    /// As git stores it: bytes, not necessarily UTF-8.
    pub(super) path: Vec<u8>,
}

/// One path of `git diff-tree -r -z`: its new mode and object id, or `None` if deleted.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct DiffEntry {
    pub(super) path: String,
    new: Option<(String, String)>,
}

/// One commit of a range of the branch, as `git log` lists it.
pub(super) struct RangeCommit {
    pub(super) id: ObjectId,
    pub(super) first_parent: Option<ObjectId>,
    pub(super) message: String,
}

/// One entry of a tree object, as git stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct RawTreeEntry {
    /// Octal, as written in the tree (`100644`, `40000`…).
    pub(super) mode: String,
    /// Bytes, not necessarily UTF-8.
    pub(super) name: Vec<u8>,
    /// Hexadecimal.
    pub(super) oid: String,
}

impl RawTreeEntry {
    fn mode_bits(&self) -> u32 {
        u32::from_str_radix(&self.mode, 8).unwrap_or_default() & 0o170_000
    }

    pub(super) fn is_tree(&self) -> bool {
        self.mode_bits() == 0o040_000
    }

    /// The object type that `git mktree` expects for the mode.
    pub(super) fn kind(&self) -> &'static str {
        match self.mode_bits() {
            0o040_000 => "tree",
            0o160_000 => "commit",
            _ => "blob",
        }
    }
}

/// Parses `git config --list -z`: `key\nvalue\0` entries; keys come lower-cased except for
/// the middle part of three-part keys.
pub(super) fn parse_config_list(bytes: &[u8]) -> HashMap<String, String> {
    String::from_utf8_lossy(bytes)
        .split('\0')
        .filter_map(|entry| {
            let (key, value) = entry.split_once('\n').unwrap_or((entry, ""));
            (!key.is_empty()).then(|| (key.to_owned(), value.to_owned()))
        })
        .collect()
}

/// Parses `git ls-tree -z`: `<mode> SP <type> SP <oid> TAB <path> NUL`.
pub(super) fn parse_ls_tree(bytes: &[u8]) -> Result<Vec<TreeEntry>, GitError> {
    bytes
        .split(|&b| b == 0)
        .filter(|record| !record.is_empty())
        .map(|record| {
            let bad = || {
                invalid(format!(
                    "unexpected git ls-tree output {:?}",
                    String::from_utf8_lossy(record)
                ))
            };
            let tab = record.iter().position(|&b| b == b'\t').ok_or_else(bad)?;
            let info = std::str::from_utf8(&record[..tab]).map_err(|_| bad())?;
            let mut fields = info.split(' ');
            // The type (blob, commit) follows from the mode.
            let (mode, oid) = match (fields.next(), fields.next(), fields.next()) {
                (Some(mode), Some(_kind), Some(oid)) => (mode, oid),
                _ => return Err(bad()),
            };
            Ok(TreeEntry {
                mode: mode.to_owned(),
                oid: oid.to_owned(),
                path: record[tab + 1..].to_vec(),
            })
        })
        .collect()
}

/// Parses `git diff-tree -r -z` between two trees: for each path,
/// `:<old mode> <new mode> <old oid> <new oid> <status> NUL <path> NUL`.
///
/// Paths that are not UTF-8 are left out: they are compared with paths reposync writes, which
/// always are, so they can never match one, and someone else's such path must not stop a push.
pub(super) fn parse_diff_tree(bytes: &[u8]) -> Result<Vec<DiffEntry>, GitError> {
    Ok(parse_raw_diff(bytes)?
        .into_iter()
        .filter_map(|record| match record {
            DiffRecord::Change(change) => Some(DiffEntry {
                path: String::from_utf8(change.path).ok()?,
                new: (change.status != 'D').then_some((change.new_mode, change.new_oid)),
            }),
            DiffRecord::Commit(_) => None,
        })
        .collect())
}

/// Parses the raw output of `git diff-tree -r -z`, with `--stdin` or not: for each path,
/// `:<old mode> <new mode> <old oid> <new oid> <status> NUL <path> NUL`, with a second path
/// (the new one) after a rename or a copy; with `--stdin`, `<commit> NUL` before the paths of
/// each commit that changed any.
pub(super) fn parse_raw_diff(bytes: &[u8]) -> Result<Vec<DiffRecord>, GitError> {
    let mut fields = bytes.split(|&b| b == 0);
    let mut records = Vec::new();
    while let Some(info) = fields.next() {
        if info.is_empty() {
            continue;
        }
        let bad = || {
            invalid(format!(
                "unexpected git diff-tree output {:?}",
                String::from_utf8_lossy(info)
            ))
        };
        let info = std::str::from_utf8(info).map_err(|_| bad())?;
        let Some(info) = info.strip_prefix(':') else {
            records.push(DiffRecord::Commit(
                printed_object_id(info, "git diff-tree").map_err(|_| bad())?,
            ));
            continue;
        };
        let parts: Vec<&str> = info.split(' ').collect();
        let [old_mode, new_mode, old_oid, new_oid, status] = parts[..] else {
            return Err(bad());
        };
        let status = status.chars().next().ok_or_else(bad)?;
        // The output ends with a NUL, after which `split` yields one empty field.
        let mut next_path = || match fields.next() {
            Some(path) if !path.is_empty() => Ok(path.to_vec()),
            _ => Err(bad()),
        };
        let first = next_path()?;
        let (path, from) = if matches!(status, 'R' | 'C') {
            let second = next_path()?;
            (second, Some(first))
        } else {
            (first, None)
        };
        records.push(DiffRecord::Change(RawChange {
            status,
            old_mode: old_mode.to_owned(),
            new_mode: new_mode.to_owned(),
            old_oid: old_oid.to_owned(),
            new_oid: new_oid.to_owned(),
            path,
            from,
        }));
    }
    Ok(records)
}

/// Parses `git log -z --format=%H%x00%an%x00%ae%x00%ct%x00%B`: five NUL-terminated fields
/// per commit.
pub(super) fn parse_commit_details(
    bytes: &[u8],
) -> Result<HashMap<ObjectId, CommitDetails>, GitError> {
    let text = String::from_utf8_lossy(bytes);
    let mut fields = text.split('\0');
    let mut details = HashMap::new();
    while let Some(commit) = fields.next() {
        if commit.is_empty() {
            break;
        }
        let bad = || invalid(format!("unexpected git log output for commit {commit:?}"));
        let id = printed_object_id(commit, "git log").map_err(|_| bad())?;
        let (Some(author_name), Some(author_email), Some(time), Some(message)) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(bad());
        };
        let committed_at = time.parse().map_err(|_| bad())?;
        details.insert(
            id,
            CommitDetails {
                message: message.to_owned(),
                author_name: author_name.to_owned(),
                author_email: author_email.to_owned(),
                committed_at,
            },
        );
    }
    Ok(details)
}

/// Parses `git log -z --format=%H%x00%P%x00%B`: three NUL-terminated fields per commit, the
/// parents separated by spaces.
pub(super) fn parse_range_commits(bytes: &[u8]) -> Result<Vec<RangeCommit>, GitError> {
    let text = String::from_utf8_lossy(bytes);
    let mut fields = text.split('\0');
    let mut commits = Vec::new();
    while let Some(id) = fields.next() {
        if id.is_empty() {
            break;
        }
        let bad = || invalid(format!("unexpected git log output for commit {id:?}"));
        let parsed = printed_object_id(id, "git log").map_err(|_| bad())?;
        let (Some(parents), Some(message)) = (fields.next(), fields.next()) else {
            return Err(bad());
        };
        commits.push(RangeCommit {
            id: parsed,
            first_parent: parents
                .split(' ')
                .find(|p| !p.is_empty())
                .map(|p| printed_object_id(p, "git log"))
                .transpose()?,
            message: message.to_owned(),
        });
    }
    Ok(commits)
}

/// Parses `git cat-file --batch`: `<oid> <type> <size> LF <contents> LF` per object, or
/// `<oid> missing LF`; the contents by object id, the missing ones left out.
pub(super) fn parse_cat_file_batch(bytes: &[u8]) -> Result<HashMap<String, Vec<u8>>, GitError> {
    Ok(parse_cat_file_objects(bytes)?
        .into_iter()
        .filter_map(|object| match object {
            BatchObject::Found { oid, content, .. } => Some((oid, content)),
            // Left out of the map: the caller names the path whose content is missing.
            BatchObject::Missing => None,
        })
        .collect())
}

/// One answer of `git cat-file --batch`.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum BatchObject {
    Found {
        oid: String,
        kind: String,
        content: Vec<u8>,
    },
    Missing,
}

/// Parses `git cat-file --batch` into its answers, in the order asked: `<oid> <type> <size>
/// LF <contents> LF` per object, or `<what was asked> missing LF`.
pub(super) fn parse_cat_file_objects(bytes: &[u8]) -> Result<Vec<BatchObject>, GitError> {
    let mut objects = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let bad = |what: &str| invalid(format!("unexpected git cat-file output: {what}"));
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| bad("a header without a newline"))?;
        let header = String::from_utf8_lossy(&rest[..end]).into_owned();
        let fields: Vec<&str> = header.split(' ').collect();
        let found = match fields[..] {
            [oid, kind, size] if !oid.is_empty() && oid.bytes().all(|b| b.is_ascii_hexdigit()) => {
                size.parse::<usize>().ok().map(|size| (oid, kind, size))
            }
            _ => None,
        };
        let Some((oid, kind, size)) = found else {
            // What was asked may hold spaces (`<commit>:<path>`), so only the end is looked at.
            if header.ends_with(" missing") {
                objects.push(BatchObject::Missing);
                rest = &rest[end + 1..];
                continue;
            }
            return Err(bad(&header));
        };
        let start = end + 1;
        let body = rest
            .get(start..start + size)
            .ok_or_else(|| bad("a truncated object"))?;
        objects.push(BatchObject::Found {
            oid: oid.to_owned(),
            kind: kind.to_owned(),
            content: body.to_vec(),
        });
        // The contents are followed by a newline of their own.
        rest = rest.get(start + size + 1..).unwrap_or_default();
    }
    Ok(objects)
}

/// Parses a tree object: `<octal mode> SP <name> NUL <binary object id>` per entry, with ids
/// of `id_bytes` bytes (20 for SHA-1, 32 for SHA-256).
pub(super) fn parse_tree_object(
    bytes: &[u8],
    id_bytes: usize,
) -> Result<Vec<RawTreeEntry>, GitError> {
    let bad = || invalid("unexpected tree object from git cat-file".to_owned());
    let mut entries = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let space = rest.iter().position(|&b| b == b' ').ok_or_else(bad)?;
        let mode = std::str::from_utf8(&rest[..space]).map_err(|_| bad())?;
        let after_mode = &rest[space + 1..];
        let nul = after_mode.iter().position(|&b| b == 0).ok_or_else(bad)?;
        let name = after_mode[..nul].to_vec();
        let id = after_mode
            .get(nul + 1..nul + 1 + id_bytes)
            .ok_or_else(bad)?;
        entries.push(RawTreeEntry {
            mode: mode.to_owned(),
            name,
            oid: id.iter().map(|b| format!("{b:02x}")).collect(),
        });
        rest = &after_mode[nul + 1 + id_bytes..];
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clone::entry::GITLINK_MODE;

    #[test]
    fn parses_ls_tree_with_odd_paths() {
        let out = b"100644 blob aaaa\tSetup/Source Repo Providers/Platform Git.yaml\x00100644 blob bbbb\tSetup/\xc3\xa9t\xc3\xa9.yaml\x00160000 commit cccc\tsub\0";
        let entries = parse_ls_tree(out).expect("parses");
        assert_eq!(entries.len(), 3);
        assert_eq!(
            entries[0].path,
            b"Setup/Source Repo Providers/Platform Git.yaml"
        );
        assert_eq!(entries[1].path, "Setup/été.yaml".as_bytes());
        assert_eq!(entries[2].mode, GITLINK_MODE);
        // A name that is not UTF-8 is read as the bytes it is, for the caller to report.
        let odd = parse_ls_tree(b"100644 blob aaaa\tbad\xff\0").expect("parses");
        assert_eq!(odd[0].path, b"bad\xff");
        assert!(parse_ls_tree(b"100644 blob\tno-id\0").is_err());
    }

    #[test]
    fn a_diff_between_trees_leaves_out_paths_that_are_not_utf8() {
        let (a, b) = ("a".repeat(40), "b".repeat(40));
        let mut out = format!(":100644 100644 {a} {b} M\0").into_bytes();
        out.extend_from_slice(b"Setup/\xff.yaml\0");
        out.extend_from_slice(format!(":100644 100644 {a} {b} M\0Setup/ok.yaml\0").as_bytes());
        let entries = parse_diff_tree(&out).expect("parses");
        let paths: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["Setup/ok.yaml"]);
    }

    #[test]
    fn parses_diff_tree_changes_and_deletions() {
        let zero = "0".repeat(40);
        let out = format!(
            ":100644 100644 {a} {b} M\0Setup/a b.yaml\0:100644 000000 {a} {zero} D\0gone.yaml\0:000000 100755 {zero} {b} A\0new.sh\0",
            a = "a".repeat(40),
            b = "b".repeat(40)
        );
        let entries = parse_diff_tree(out.as_bytes()).expect("parses");
        assert_eq!(
            entries,
            vec![
                DiffEntry {
                    path: "Setup/a b.yaml".into(),
                    new: Some(("100644".into(), "b".repeat(40)))
                },
                DiffEntry {
                    path: "gone.yaml".into(),
                    new: None
                },
                DiffEntry {
                    path: "new.sh".into(),
                    new: Some(("100755".into(), "b".repeat(40)))
                },
            ]
        );
    }

    #[test]
    fn reads_tree_objects_and_cat_file_answers_in_order() {
        let mut tree = b"100644 a.yaml\0".to_vec();
        tree.extend_from_slice(&[0xab; 20]);
        tree.extend_from_slice(b"40000 .git\0");
        tree.extend_from_slice(&[0x01; 20]);
        tree.extend_from_slice(b"160000 \xff\0");
        tree.extend_from_slice(&[0x02; 20]);
        let entries = parse_tree_object(&tree, 20).expect("parses");
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[0].oid, "ab".repeat(20));
        assert_eq!((entries[0].kind(), entries[0].is_tree()), ("blob", false));
        assert_eq!(
            (entries[1].name.as_slice(), entries[1].kind()),
            (&b".git"[..], "tree")
        );
        assert_eq!(
            (entries[2].name.as_slice(), entries[2].kind()),
            (&b"\xff"[..], "commit")
        );
        assert!(parse_tree_object(&tree[..tree.len() - 1], 20).is_err());

        let id = "c".repeat(40);
        let mut out = format!("{id}:Setup/Cloud Providers missing\n{id} tree 3\n").into_bytes();
        out.extend_from_slice(b"xyz\n");
        let objects = parse_cat_file_objects(&out).expect("parses");
        assert_eq!(
            objects,
            [
                BatchObject::Missing,
                BatchObject::Found {
                    oid: id.clone(),
                    kind: "tree".into(),
                    content: b"xyz".to_vec()
                }
            ]
        );
    }

    #[test]
    fn parses_commit_details_with_multi_line_messages() {
        let (a, b) = ("a".repeat(40), "b".repeat(40));
        let (a_id, b_id) = (ObjectId::parse(&a).unwrap(), ObjectId::parse(&b).unwrap());
        let out = format!(
            "{a}\0Ann\0ann@example.invalid\01700000000\0Subject\n\nReposync-Changeset: 7\n\0{b}\0Bob\0\01700000001\0One line\n\0"
        );
        let details = parse_commit_details(out.as_bytes()).expect("parses");
        assert_eq!(details.len(), 2);
        assert_eq!(details[&a_id].message, "Subject\n\nReposync-Changeset: 7\n");
        assert_eq!(details[&a_id].author_email, "ann@example.invalid");
        assert_eq!(details[&b_id].committed_at, 1_700_000_001);
        assert_eq!(details[&b_id].author_email, "");
        assert!(parse_commit_details(format!("{a}\0Ann\0").as_bytes()).is_err());
        assert!(parse_commit_details(format!("{a}\0Ann\0x\0soon\0m\0").as_bytes()).is_err());
    }

    #[test]
    fn parses_cat_file_batch_with_binary_and_empty_contents() {
        let mut out = b"aaaa blob 3\n\x00\n\xff\n".to_vec();
        out.extend_from_slice(b"bbbb blob 0\n\n");
        let contents = parse_cat_file_batch(&out).expect("parses");
        assert_eq!(contents["aaaa"], b"\x00\n\xff");
        assert_eq!(contents["bbbb"], b"");
        assert!(
            parse_cat_file_batch(b"aaaa missing\n")
                .expect("parses")
                .is_empty()
        );
        assert!(parse_cat_file_batch(b"aaaa blob 10\nshort\n").is_err());
    }

    #[test]
    fn parses_config_lists() {
        let config = parse_config_list(
            b"core.bare\nfalse\0remote.origin.url\nhttps://h/r.git\0reposync.branch\nmain\0",
        );
        assert_eq!(config["remote.origin.url"], "https://h/r.git");
        assert_eq!(config["reposync.branch"], "main");
    }
}
