//! Reading a bare repository for the REST endpoints. Every answer comes from real git run
//! against the repository (`rev-parse`, `ls-tree -z`, `cat-file`, `diff-tree -z`), so what
//! the emulator serves is exactly what a clone of the same repository holds.
//!
//! Paths are always addressed as `<tree-ish>:<path>` or handed to git as literal pathspecs
//! (`GIT_LITERAL_PATHSPECS=1`), and revisions are only ever ref names or hex ids, never
//! revision expressions, so that no request can make git interpret `*`, `~1` or `:/text`.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use anyhow::{Context, Result, bail};

use crate::bitbucket::RepoIdentity;
use crate::git::HermeticGit;
use crate::repo::RepoRoot;

/// How much of a blob git looks at to decide that it is binary (a NUL byte in it).
const BINARY_PROBE: usize = 8000;

/// A bare repository of the root, opened for reading (and, in `git_write`, committing).
pub(super) struct Repo<'a> {
    git: &'a HermeticGit,
    path: PathBuf,
}

/// What a tree entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum EntryKind {
    Blob,
    Tree,
    /// A gitlink: a submodule's commit.
    Commit,
}

/// One entry of a tree, named by its full path in the repository.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct TreeEntry {
    pub mode: String,
    pub kind: EntryKind,
    pub oid: String,
    /// The blob's size; 0 for trees and gitlinks.
    pub size: u64,
    /// The full path from the repository's root, without a leading `/`; empty for the root.
    pub path: String,
}

impl TreeEntry {
    /// The last component of the path.
    pub fn name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or(&self.path)
    }

    pub fn is_symlink(&self) -> bool {
        self.mode == "120000"
    }

    pub fn is_executable(&self) -> bool {
        self.mode == "100755"
    }
}

/// A commit, with what both APIs say about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Commit {
    pub hash: String,
    pub parents: Vec<String>,
    pub author_name: String,
    pub author_email: String,
    /// Seconds since the epoch.
    pub author_time: i64,
    /// Strict ISO-8601 with a numeric offset, e.g. `2018-09-21T14:07:25+00:00`.
    pub author_date: String,
    pub committer_name: String,
    pub committer_email: String,
    pub committer_time: i64,
    /// The full message with one trailing newline, as git stores it.
    pub message: String,
}

impl Commit {
    /// `Name <email>`, Cloud's `author.raw`.
    pub fn author_raw(&self) -> String {
        format!("{} <{}>", self.author_name, self.author_email)
    }
}

/// How a path changed between two trees, in git's terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ChangeStatus {
    Added,
    Deleted,
    Modified,
    /// The kind of the entry changed (a file became a link, say).
    TypeChanged,
    /// Moved, with git's similarity score (0–100).
    Renamed(u8),
    /// Copied, with git's similarity score.
    Copied(u8),
}

/// One changed path between two trees.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Change {
    pub status: ChangeStatus,
    pub old_mode: String,
    pub new_mode: String,
    /// All zeros when there is no old side.
    pub old_oid: String,
    /// All zeros when there is no new side.
    pub new_oid: String,
    pub old_path: Option<String>,
    pub new_path: Option<String>,
    pub lines_added: u64,
    pub lines_removed: u64,
}

/// What `diff` compares and how.
#[derive(Clone, Debug, Default)]
pub(super) struct DiffOptions<'p> {
    pub renames: bool,
    pub copies: bool,
    /// Literal pathspecs limiting the diff (a directory matches everything below it).
    pub paths: Vec<&'p str>,
}

/// A branch and where it points.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Branch {
    /// The short name, e.g. `feature/x`.
    pub name: String,
    pub commit: String,
    /// The tip's committer time, for DC's `orderBy=MODIFICATION`.
    pub committer_time: i64,
}

/// Field separator of the `git log` format below; a commit message cannot hold it usefully.
const FIELD: char = '\u{1f}';
const COMMIT_FORMAT: &str =
    "--format=%H%x1f%P%x1f%an%x1f%ae%x1f%at%x1f%aI%x1f%cn%x1f%ce%x1f%ct%x1f%B";

impl<'a> Repo<'a> {
    /// The repository of `identity` under `root`, or `None` when there is no bare
    /// repository there.
    pub fn open(root: &'a RepoRoot, identity: &RepoIdentity) -> Result<Option<Self>> {
        let path = root.repo_path(identity.relative())?;
        if !path.join("HEAD").is_file() {
            return Ok(None);
        }
        Ok(Some(Self {
            git: root.git(),
            path,
        }))
    }

    /// The bare repository's directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs git in the repository with `env` added and `input` on stdin; returns the output
    /// whatever the exit status.
    pub fn output(
        &self,
        args: &[&str],
        env: &[(&str, &str)],
        input: Option<&[u8]>,
    ) -> Result<Output> {
        let mut command = self.git.command();
        command
            .current_dir(&self.path)
            .args(args)
            // A path in a request is a path, never a glob.
            .env("GIT_LITERAL_PATHSPECS", "1")
            .envs(env.iter().copied())
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .with_context(|| format!("failed to spawn git {}", args.join(" ")))?;
        let writer = match (input, child.stdin.take()) {
            (Some(input), Some(mut stdin)) => {
                let input = input.to_vec();
                // Written from another thread, so a large output cannot block a large input.
                Some(std::thread::spawn(move || stdin.write_all(&input)))
            }
            _ => None,
        };
        let output = child
            .wait_with_output()
            .with_context(|| format!("waiting for git {}", args.join(" ")))?;
        if let Some(writer) = writer {
            // A git that exits without reading all of its input is judged by its status.
            let _ = writer.join();
        }
        Ok(output)
    }

    /// Runs git and returns its standard output, failing with its stderr on a non-zero exit.
    pub fn run(
        &self,
        args: &[&str],
        env: &[(&str, &str)],
        input: Option<&[u8]>,
    ) -> Result<Vec<u8>> {
        let output = self.output(args, env, input)?;
        if !output.status.success() {
            bail!(
                "git {} (in {}) exited with {}:\n{}",
                args.join(" "),
                self.path.display(),
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(output.stdout)
    }

    /// [`Repo::run`] as trimmed text.
    pub fn text(&self, args: &[&str]) -> Result<String> {
        Ok(String::from_utf8_lossy(&self.run(args, &[], None)?)
            .trim()
            .to_owned())
    }

    /// The commit `rev` names, resolved as Bitbucket resolves revisions: a full ref name
    /// (`refs/...`), else a branch, else a tag, else a full or abbreviated commit id.
    /// `None` when it names nothing (or is an expression such as `main~1`).
    pub fn resolve(&self, rev: &str) -> Result<Option<String>> {
        if rev.starts_with("refs/") {
            return if plausible_ref_name(rev) {
                self.peel(rev)
            } else {
                Ok(None)
            };
        }
        if plausible_ref_name(rev) {
            for candidate in [format!("refs/heads/{rev}"), format!("refs/tags/{rev}")] {
                if let Some(commit) = self.peel(&candidate)? {
                    return Ok(Some(commit));
                }
            }
        }
        if (4..=64).contains(&rev.len()) && rev.bytes().all(|byte| byte.is_ascii_hexdigit()) {
            return self.peel(rev);
        }
        Ok(None)
    }

    /// The commit a full ref name or an id peels to.
    fn peel(&self, name: &str) -> Result<Option<String>> {
        let peeled = format!("{name}^{{commit}}");
        let output = self.output(&["rev-parse", "--verify", "--quiet", &peeled], &[], None)?;
        Ok(output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned()))
    }

    /// Where `refs/heads/<branch>` points, if it exists.
    pub fn branch_tip(&self, branch: &str) -> Result<Option<String>> {
        if !plausible_ref_name(branch) {
            return Ok(None);
        }
        self.peel(&format!("refs/heads/{branch}"))
    }

    /// The branch HEAD names (Bitbucket's default branch), even when it has no commit yet.
    pub fn default_branch(&self) -> Result<Option<String>> {
        let output = self.output(&["symbolic-ref", "--quiet", "HEAD"], &[], None)?;
        if !output.status.success() {
            return Ok(None);
        }
        let reference = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        Ok(reference.strip_prefix("refs/heads/").map(str::to_owned))
    }

    /// Every branch, sorted by name.
    pub fn branches(&self) -> Result<Vec<Branch>> {
        let listing = self.text(&[
            "for-each-ref",
            "--sort=refname",
            "--format=%(refname)%09%(objectname)%09%(committerdate:unix)",
            "refs/heads/",
        ])?;
        listing
            .lines()
            .map(|line| {
                let mut fields = line.split('\t');
                match (fields.next(), fields.next(), fields.next()) {
                    (Some(reference), Some(commit), Some(time)) => Ok(Branch {
                        name: reference
                            .strip_prefix("refs/heads/")
                            .unwrap_or(reference)
                            .to_owned(),
                        commit: commit.to_owned(),
                        committer_time: time.parse().unwrap_or(0),
                    }),
                    _ => bail!("unexpected for-each-ref line {line:?}"),
                }
            })
            .collect()
    }

    /// The commit `id` (which must name one).
    pub fn commit(&self, id: &str) -> Result<Commit> {
        let output = self.text(&["log", "-1", "--no-show-signature", COMMIT_FORMAT, id, "--"])?;
        parse_commit(&output)
    }

    /// The best common ancestor of two commits, if they have one.
    pub fn merge_base(&self, a: &str, b: &str) -> Result<Option<String>> {
        let output = self.output(&["merge-base", a, b], &[], None)?;
        Ok(output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned()))
    }

    /// The id of the empty tree in this repository's hash.
    pub fn empty_tree(&self) -> Result<String> {
        Ok(String::from_utf8_lossy(&self.run(
            &["hash-object", "-t", "tree", "--stdin"],
            &[],
            Some(b""),
        )?)
        .trim()
        .to_owned())
    }

    /// The entry at `path` in `commit` (the root tree for an empty path), or `None`.
    pub fn entry(&self, commit: &str, path: &str) -> Result<Option<TreeEntry>> {
        if path.is_empty() {
            let tree = self.text(&["rev-parse", &format!("{commit}^{{tree}}")])?;
            return Ok(Some(TreeEntry {
                mode: "040000".to_owned(),
                kind: EntryKind::Tree,
                oid: tree,
                size: 0,
                path: String::new(),
            }));
        }
        if !plausible_path(path) {
            return Ok(None);
        }
        let (parent, name) = match path.rsplit_once('/') {
            Some((parent, name)) => (parent, name),
            None => ("", path),
        };
        let Some(siblings) = self.children(commit, parent)? else {
            return Ok(None);
        };
        Ok(siblings.into_iter().find(|entry| entry.name() == name))
    }

    /// The entries directly in directory `dir` of `commit`, in git's order, or `None` when
    /// `dir` is not a directory there.
    pub fn children(&self, commit: &str, dir: &str) -> Result<Option<Vec<TreeEntry>>> {
        self.list(commit, dir, &["ls-tree", "-z", "-l"])
    }

    /// Every entry below directory `dir` of `commit`, trees included, depth first in git's
    /// order, or `None` when `dir` is not a directory there.
    pub fn descendants(&self, commit: &str, dir: &str) -> Result<Option<Vec<TreeEntry>>> {
        self.list(commit, dir, &["ls-tree", "-r", "-t", "-z", "-l"])
    }

    /// Runs `ls-tree` on `<commit>:<dir>` (the root tree for an empty `dir`); `None` when
    /// that is no tree, which is the only way `ls-tree` fails on an existing commit.
    fn list(&self, commit: &str, dir: &str, ls_tree: &[&str]) -> Result<Option<Vec<TreeEntry>>> {
        if !dir.is_empty() && !plausible_path(dir) {
            return Ok(None);
        }
        // After the colon everything is a path: no glob, no revision syntax.
        let tree = format!("{commit}:{dir}");
        let mut args = ls_tree.to_vec();
        args.push(&tree);
        let output = self.output(&args, &[], None)?;
        if !output.status.success() {
            return Ok(None);
        }
        parse_ls_tree(&output.stdout, dir).map(Some)
    }

    /// A blob's bytes.
    pub fn blob(&self, oid: &str) -> Result<Vec<u8>> {
        self.run(&["cat-file", "blob", oid], &[], None)
    }

    /// For each blob, whether git would call it binary (a NUL byte in its first 8000 bytes),
    /// read with one `cat-file --batch`.
    pub fn binary_flags(&self, oids: &[&str]) -> Result<Vec<bool>> {
        if oids.is_empty() {
            return Ok(Vec::new());
        }
        let input: String = oids.iter().map(|oid| format!("{oid}\n")).collect();
        let output = self.run(&["cat-file", "--batch"], &[], Some(input.as_bytes()))?;
        let mut flags = Vec::with_capacity(oids.len());
        let mut rest = output.as_slice();
        for oid in oids {
            let newline = rest
                .iter()
                .position(|byte| *byte == b'\n')
                .with_context(|| format!("cat-file --batch ended before {oid}"))?;
            let header = String::from_utf8_lossy(&rest[..newline]).into_owned();
            let size: usize = header
                .rsplit(' ')
                .next()
                .and_then(|size| size.parse().ok())
                .with_context(|| format!("unexpected cat-file --batch header {header:?}"))?;
            let body = rest
                .get(newline + 1..newline + 1 + size)
                .with_context(|| format!("cat-file --batch cut {oid} short"))?;
            flags.push(body.iter().take(BINARY_PROBE).any(|byte| *byte == 0));
            // The content is followed by a newline.
            rest = rest.get(newline + 2 + size..).unwrap_or_default();
        }
        Ok(flags)
    }

    /// Whether a blob is binary.
    pub fn is_binary(&self, oid: &str) -> Result<bool> {
        Ok(self.binary_flags(&[oid])?.first().copied().unwrap_or(false))
    }

    /// The changes that turn tree-ish `old` into tree-ish `new`, with line counts (0/0 for
    /// binary files), from one `git diff-tree --raw --numstat -z`.
    pub fn diff(&self, old: &str, new: &str, options: &DiffOptions<'_>) -> Result<Vec<Change>> {
        let mut args = vec!["diff-tree", "-r", "-z", "--no-abbrev", "--raw", "--numstat"];
        args.push(if options.renames {
            "-M"
        } else {
            "--no-renames"
        });
        if options.copies {
            args.push("-C");
        }
        args.extend([old, new]);
        if !options.paths.is_empty() {
            args.push("--");
            args.extend(options.paths.iter().copied());
        }
        let output = self.run(&args, &[], None)?;
        parse_diff(&output)
    }
}

/// Whether `name` could be a ref name that is not a revision expression: none of git's
/// operators (`~^:?*[\`, `..`, `@{`), no spaces or control characters, no leading `-`.
pub(super) fn plausible_ref_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('-')
        && !name.starts_with('/')
        && !name.ends_with('/')
        && !name.contains("..")
        && !name.contains("@{")
        && !name.contains("//")
        && name != "@"
        && !name
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || "~^:?*[\\".contains(c))
}

/// Whether `path` is a plain relative path: no empty, `.` or `..` components (which git would
/// read relative to a work tree the bare repository does not have).
pub(super) fn plausible_path(path: &str) -> bool {
    !path.is_empty()
        && path
            .split('/')
            .all(|component| !component.is_empty() && component != "." && component != "..")
}

fn parse_commit(record: &str) -> Result<Commit> {
    let fields: Vec<&str> = record.splitn(10, FIELD).collect();
    let [
        hash,
        parents,
        author_name,
        author_email,
        author_time,
        author_date,
        committer_name,
        committer_email,
        committer_time,
        message,
    ] = fields.as_slice()
    else {
        bail!("unexpected git log record {record:?}");
    };
    Ok(Commit {
        hash: (*hash).to_owned(),
        parents: parents.split_whitespace().map(str::to_owned).collect(),
        author_name: (*author_name).to_owned(),
        author_email: (*author_email).to_owned(),
        author_time: author_time.parse().context("author time")?,
        // git writes UTC as `Z` in strict ISO-8601 in some versions; Bitbucket writes `+00:00`.
        author_date: match author_date.strip_suffix('Z') {
            Some(local) => format!("{local}+00:00"),
            None => (*author_date).to_owned(),
        },
        committer_name: (*committer_name).to_owned(),
        committer_email: (*committer_email).to_owned(),
        committer_time: committer_time.parse().context("committer time")?,
        message: format!("{}\n", message.trim_end()),
    })
}

/// Parses `ls-tree -z -l` output of the tree at `dir`, naming entries by their full path.
fn parse_ls_tree(listing: &[u8], dir: &str) -> Result<Vec<TreeEntry>> {
    listing
        .split(|byte| *byte == 0)
        .filter(|record| !record.is_empty())
        .map(|record| {
            let tab = record
                .iter()
                .position(|byte| *byte == b'\t')
                .context("ls-tree record without a tab")?;
            let info = String::from_utf8_lossy(&record[..tab]).into_owned();
            let name = String::from_utf8_lossy(&record[tab + 1..]).into_owned();
            let mut fields = info.split_whitespace();
            let (Some(mode), Some(kind), Some(oid), Some(size)) =
                (fields.next(), fields.next(), fields.next(), fields.next())
            else {
                bail!("unexpected ls-tree record {info:?}");
            };
            let kind = match kind {
                "blob" => EntryKind::Blob,
                "tree" => EntryKind::Tree,
                "commit" => EntryKind::Commit,
                other => bail!("unexpected ls-tree object type {other:?}"),
            };
            Ok(TreeEntry {
                mode: mode.to_owned(),
                kind,
                oid: oid.to_owned(),
                size: size.parse().unwrap_or(0),
                path: if dir.is_empty() {
                    name
                } else {
                    format!("{dir}/{name}")
                },
            })
        })
        .collect()
}

/// Parses `diff-tree -r -z --raw --numstat` output: the raw records first, then the numstat
/// records, which are matched to them by path.
fn parse_diff(output: &[u8]) -> Result<Vec<Change>> {
    let tokens: Vec<String> = output
        .split(|byte| *byte == 0)
        .map(|token| String::from_utf8_lossy(token).into_owned())
        .collect();
    let mut index = 0;
    let mut changes = Vec::new();
    while let Some(info) = tokens.get(index).and_then(|token| token.strip_prefix(':')) {
        let fields: Vec<&str> = info.split(' ').collect();
        let [old_mode, new_mode, old_oid, new_oid, status] = fields.as_slice() else {
            bail!("unexpected diff-tree raw record {info:?}");
        };
        let letter = status.chars().next().unwrap_or('?');
        let score = status
            .get(1..)
            .and_then(|s| s.parse::<u8>().ok())
            .unwrap_or(0);
        let path = |at: usize| {
            tokens
                .get(at)
                .cloned()
                .with_context(|| format!("diff-tree record {info:?} lacks its path"))
        };
        let (status, old_path, new_path, consumed) = match letter {
            'A' => (ChangeStatus::Added, None, Some(path(index + 1)?), 2),
            'D' => (ChangeStatus::Deleted, Some(path(index + 1)?), None, 2),
            'M' => {
                let path = path(index + 1)?;
                (ChangeStatus::Modified, Some(path.clone()), Some(path), 2)
            }
            'T' => {
                let path = path(index + 1)?;
                (ChangeStatus::TypeChanged, Some(path.clone()), Some(path), 2)
            }
            'R' => (
                ChangeStatus::Renamed(score),
                Some(path(index + 1)?),
                Some(path(index + 2)?),
                3,
            ),
            'C' => (
                ChangeStatus::Copied(score),
                Some(path(index + 1)?),
                Some(path(index + 2)?),
                3,
            ),
            other => bail!("unexpected diff-tree status {other:?} in {info:?}"),
        };
        changes.push(Change {
            status,
            old_mode: (*old_mode).to_owned(),
            new_mode: (*new_mode).to_owned(),
            old_oid: (*old_oid).to_owned(),
            new_oid: (*new_oid).to_owned(),
            old_path,
            new_path,
            lines_added: 0,
            lines_removed: 0,
        });
        index += consumed;
    }
    // The numstat records: `added\tremoved\tpath`, or `added\tremoved\t` followed by the old
    // and the new path for a rename or copy; `-` counts for binary files.
    let mut counts: HashMap<String, (u64, u64)> = HashMap::new();
    while let Some(token) = tokens.get(index) {
        if token.is_empty() {
            index += 1;
            continue;
        }
        let mut fields = token.splitn(3, '\t');
        let (Some(added), Some(removed), Some(path)) =
            (fields.next(), fields.next(), fields.next())
        else {
            bail!("unexpected numstat record {token:?}");
        };
        let (path, consumed) = if path.is_empty() {
            (tokens.get(index + 2).cloned().unwrap_or_default(), 3)
        } else {
            (path.to_owned(), 1)
        };
        counts.insert(
            path,
            (added.parse().unwrap_or(0), removed.parse().unwrap_or(0)),
        );
        index += consumed;
    }
    for change in &mut changes {
        let key = change.new_path.as_ref().or(change.old_path.as_ref());
        if let Some((added, removed)) = key.and_then(|path| counts.get(path)) {
            change.lines_added = *added;
            change.lines_removed = *removed;
        }
    }
    Ok(changes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revision_expressions_are_not_ref_names() {
        for bad in [
            "main~1", "main^", "main:x", "a..b", "@{1}", "-x", "a b", "x/", "",
        ] {
            assert!(!plausible_ref_name(bad), "{bad}");
        }
        for good in ["main", "feature/x", "v1.0", "release-2024"] {
            assert!(plausible_ref_name(good), "{good}");
        }
    }

    #[test]
    fn paths_with_dot_components_are_refused() {
        assert!(plausible_path("Setup/a b.yaml"));
        for bad in ["", "/x", "x/", "a//b", "./x", "a/../b"] {
            assert!(!plausible_path(bad), "{bad}");
        }
    }

    #[test]
    fn raw_and_numstat_records_are_paired_by_path() {
        let a = "a".repeat(40);
        let b = "b".repeat(40);
        let z = "0".repeat(40);
        let output = format!(
            ":100644 100644 {a} {b} M\0bin\0:100644 100644 {a} {b} R080\0f1\0f2\0\
             :000000 100755 {z} {b} A\0n\0-\t-\tbin\x001\t0\t\0f1\0f2\x003\t0\tn\0"
        );
        let changes = parse_diff(output.as_bytes()).unwrap();
        assert_eq!(changes.len(), 3);
        assert_eq!(changes[0].status, ChangeStatus::Modified);
        assert_eq!((changes[0].lines_added, changes[0].lines_removed), (0, 0));
        assert_eq!(changes[1].status, ChangeStatus::Renamed(80));
        assert_eq!(changes[1].old_path.as_deref(), Some("f1"));
        assert_eq!(changes[1].new_path.as_deref(), Some("f2"));
        assert_eq!(changes[1].lines_added, 1);
        assert_eq!(changes[2].status, ChangeStatus::Added);
        assert_eq!(changes[2].new_mode, "100755");
        assert_eq!(changes[2].lines_added, 3);
    }
}
