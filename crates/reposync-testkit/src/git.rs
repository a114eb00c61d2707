//! A git client that sees no system, global or user configuration.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use anyhow::{Context, Result, bail};
use tempfile::TempDir;

use crate::process::base_env;

/// Author and committer identity for every commit made through [`HermeticGit`].
pub const TEST_USER_NAME: &str = "Reposync Test";
/// Email of [`TEST_USER_NAME`].
pub const TEST_USER_EMAIL: &str = "reposync-test@example.invalid";

/// Configuration passed through `GIT_CONFIG_COUNT`, because `GIT_CONFIG_GLOBAL=/dev/null`
/// means a config file in HOME would be ignored.
const CONFIG: &[(&str, &str)] = &[
    ("user.name", TEST_USER_NAME),
    ("user.email", TEST_USER_EMAIL),
    ("init.defaultBranch", "main"),
    // The repositories may be owned by the `git` user after a push over SSH.
    ("safe.directory", "*"),
    ("advice.detachedHead", "false"),
];

/// A private, hermetic environment for running git in tests (own HOME, no system/global config, identity set).
pub struct HermeticGit {
    home: TempDir,
}

impl fmt::Debug for HermeticGit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HermeticGit")
            .field("home", &self.home.path())
            .finish()
    }
}

impl HermeticGit {
    /// Creates a fresh HOME directory for git to use.
    pub fn new() -> Result<Self> {
        let home = tempfile::Builder::new()
            .prefix("reposync-git-home-")
            .tempdir()
            .context("cannot create a HOME directory for git")?;
        Ok(Self { home })
    }

    /// The HOME directory every command of this environment gets.
    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// The complete environment of a git child: a fixed PATH, HOME, no system or global
    /// config, no prompts, the C locale and a test identity.
    ///
    /// Useful for callers that spawn git through their own `Command` (after `env_clear()`).
    /// The identity and `safe.directory=*` come through `GIT_CONFIG_COUNT`; a caller that sets
    /// its own `GIT_CONFIG_COUNT` replaces them, so prefer `-c key=value` arguments for extra
    /// configuration. The identity is also set through `GIT_AUTHOR_*`/`GIT_COMMITTER_*`, which
    /// survive such a replacement.
    pub fn env_vars(&self) -> Vec<(OsString, OsString)> {
        let home = self.home.path();
        let mut env = base_env(home);
        let fixed = [
            ("GIT_CONFIG_NOSYSTEM", "1"),
            ("GIT_CONFIG_GLOBAL", "/dev/null"),
            ("GIT_ATTR_NOSYSTEM", "1"),
            ("GIT_TERMINAL_PROMPT", "0"),
            ("GIT_AUTHOR_NAME", TEST_USER_NAME),
            ("GIT_AUTHOR_EMAIL", TEST_USER_EMAIL),
            ("GIT_COMMITTER_NAME", TEST_USER_NAME),
            ("GIT_COMMITTER_EMAIL", TEST_USER_EMAIL),
        ];
        env.extend(fixed.map(|(key, value)| (key.into(), value.into())));
        env.push(("GIT_CONFIG_COUNT".into(), CONFIG.len().to_string().into()));
        env.push(("XDG_CONFIG_HOME".into(), home.join(".config").into()));
        for (index, (key, value)) in CONFIG.iter().enumerate() {
            env.push((format!("GIT_CONFIG_KEY_{index}").into(), (*key).into()));
            env.push((format!("GIT_CONFIG_VALUE_{index}").into(), (*value).into()));
        }
        env
    }

    /// `git` with the environment cleared and rebuilt from [`HermeticGit::env_vars`].
    pub fn command(&self) -> Command {
        let mut command = Command::new("git");
        command
            .env_clear()
            .envs(self.env_vars())
            .stdin(Stdio::null());
        command
    }

    /// Runs git in `dir`, fails with its stderr on a non-zero exit, and returns trimmed stdout.
    pub fn run(&self, dir: &Path, args: &[&str]) -> Result<String> {
        self.run_with_env(dir, args, &[])
    }

    /// Like [`HermeticGit::run`], with extra environment variables (e.g. `GIT_SSH_COMMAND`).
    pub fn run_with_env(&self, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Result<String> {
        let output = self.output_with_env(dir, args, env)?;
        if !output.status.success() {
            bail!(
                "git {} (in {}) exited with {}:\n{}",
                args.join(" "),
                dir.display(),
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    }

    /// Runs git in `dir` with extra environment variables and returns its output whatever the
    /// exit status, for tests that expect a failure and inspect stderr.
    pub fn output_with_env(
        &self,
        dir: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Output> {
        self.command()
            .current_dir(dir)
            .args(args)
            .envs(env.iter().copied())
            .output()
            .with_context(|| format!("failed to spawn git {}", args.join(" ")))
    }
}

/// A tree entry to put into a commit made with plumbing ([`HermeticGit::commit_entries`]),
/// whatever git's index would say of its path: the way to build the hostile trees that a
/// push can carry (`.git` or `..` components, names that are not UTF-8, links, submodules).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawEntry {
    /// A regular file with this content.
    File(Vec<u8>),
    /// A symbolic link to this target.
    Symlink(String),
    /// A submodule at this commit id (a gitlink; the commit need not exist anywhere).
    Submodule(String),
    /// Nothing: the entry is removed.
    Delete,
}

/// Changes to a tree: the path components below it, and the entry to put there.
type TreeChanges<'a> = Vec<(Vec<&'a [u8]>, &'a RawEntry)>;

/// One entry of `git ls-tree -z`, as bytes where it matters.
struct ListedEntry {
    mode: String,
    kind: String,
    oid: String,
    name: Vec<u8>,
}

impl HermeticGit {
    /// Runs git in `dir` with `input` on standard input; fails with its stderr on a non-zero
    /// exit, and returns standard output as bytes, untrimmed.
    pub fn run_with_input(&self, dir: &Path, args: &[&str], input: &[u8]) -> Result<Vec<u8>> {
        let mut child = self
            .command()
            .current_dir(dir)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("failed to spawn git {}", args.join(" ")))?;
        let mut stdin = child.stdin.take().context("no stdin")?;
        let input = input.to_vec();
        // Written from another thread, so a large output cannot block a large input.
        let writer = std::thread::spawn(move || stdin.write_all(&input));
        let output = child.wait_with_output().context("waiting for git")?;
        writer
            .join()
            .map_err(|_| anyhow::anyhow!("the stdin writer panicked"))?
            .context("writing git's stdin")?;
        if !output.status.success() {
            bail!(
                "git {} (in {}) exited with {}:\n{}",
                args.join(" "),
                dir.display(),
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(output.stdout)
    }

    /// Makes a commit in the repository at `repo` (bare or not) whose tree is `parent`'s with
    /// `entries` (raw path, entry) put in or removed, built with `git mktree` so that no path
    /// is checked; returns its id. No ref moves.
    pub fn commit_entries(
        &self,
        repo: &Path,
        parent: Option<&str>,
        entries: &[(&[u8], RawEntry)],
        message: &str,
    ) -> Result<String> {
        let base = match parent {
            Some(parent) => Some(self.run(repo, &["rev-parse", &format!("{parent}^{{tree}}")])?),
            None => None,
        };
        let changes: TreeChanges<'_> = entries
            .iter()
            .map(|(path, entry)| (path.split(|b| *b == b'/').collect(), entry))
            .collect();
        let tree = match self.edit_tree(repo, base.as_deref(), &changes)? {
            Some(tree) => tree,
            None => String::from_utf8_lossy(&self.run_with_input(repo, &["mktree"], b"")?)
                .trim()
                .to_owned(),
        };
        let mut args = vec!["commit-tree", tree.as_str(), "-m", message];
        if let Some(parent) = parent {
            args.extend(["-p", parent]);
        }
        self.run(repo, &args)
    }

    /// `base` (a tree id, or nothing) with `changes` (path components, entry) applied; `None`
    /// when the result is empty.
    fn edit_tree(
        &self,
        repo: &Path,
        base: Option<&str>,
        changes: &[(Vec<&[u8]>, &RawEntry)],
    ) -> Result<Option<String>> {
        let mut entries = match base {
            Some(tree) => self.list_tree(repo, tree)?,
            None => Vec::new(),
        };
        let mut below: BTreeMap<Vec<u8>, TreeChanges<'_>> = BTreeMap::new();
        for (components, entry) in changes {
            let Some((first, rest)) = components.split_first() else {
                bail!("an empty path");
            };
            if !rest.is_empty() {
                below
                    .entry(first.to_vec())
                    .or_default()
                    .push((rest.to_vec(), *entry));
                continue;
            }
            entries.retain(|e| e.name != *first);
            let (mode, kind, oid) = match entry {
                RawEntry::File(content) => ("100644", "blob", self.hash_blob(repo, content)?),
                RawEntry::Symlink(target) => {
                    ("120000", "blob", self.hash_blob(repo, target.as_bytes())?)
                }
                RawEntry::Submodule(commit) => ("160000", "commit", commit.clone()),
                RawEntry::Delete => continue,
            };
            entries.push(ListedEntry {
                mode: mode.to_owned(),
                kind: kind.to_owned(),
                oid,
                name: first.to_vec(),
            });
        }
        for (name, changes) in below {
            let existing = entries
                .iter()
                .find(|e| e.name == name && e.kind == "tree")
                .map(|e| e.oid.clone());
            entries.retain(|e| e.name != name);
            if let Some(tree) = self.edit_tree(repo, existing.as_deref(), &changes)? {
                entries.push(ListedEntry {
                    mode: "040000".to_owned(),
                    kind: "tree".to_owned(),
                    oid: tree,
                    name,
                });
            }
        }
        if entries.is_empty() {
            return Ok(None);
        }
        let mut input = Vec::new();
        for entry in &entries {
            input.extend_from_slice(
                format!("{} {} {}\t", entry.mode, entry.kind, entry.oid).as_bytes(),
            );
            input.extend_from_slice(&entry.name);
            input.push(0);
        }
        let tree = self.run_with_input(repo, &["mktree", "-z", "--missing"], &input)?;
        Ok(Some(String::from_utf8_lossy(&tree).trim().to_owned()))
    }

    fn list_tree(&self, repo: &Path, tree: &str) -> Result<Vec<ListedEntry>> {
        let listing = self.run_with_input(repo, &["ls-tree", "-z", tree], b"")?;
        listing
            .split(|b| *b == 0)
            .filter(|record| !record.is_empty())
            .map(|record| {
                let tab = record
                    .iter()
                    .position(|b| *b == b'\t')
                    .context("ls-tree record without a tab")?;
                let info = String::from_utf8_lossy(&record[..tab]).into_owned();
                let mut fields = info.split(' ');
                match (fields.next(), fields.next(), fields.next()) {
                    (Some(mode), Some(kind), Some(oid)) => Ok(ListedEntry {
                        mode: mode.to_owned(),
                        kind: kind.to_owned(),
                        oid: oid.to_owned(),
                        name: record[tab + 1..].to_vec(),
                    }),
                    _ => bail!("unexpected ls-tree record {info:?}"),
                }
            })
            .collect()
    }

    fn hash_blob(&self, repo: &Path, content: &[u8]) -> Result<String> {
        let oid = self.run_with_input(repo, &["hash-object", "-w", "--stdin"], content)?;
        Ok(String::from_utf8_lossy(&oid).trim().to_owned())
    }
}
