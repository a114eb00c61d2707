//! A directory of bare repositories that both test servers serve.

use std::fmt;
use std::fs;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use tempfile::TempDir;

use crate::git::{HermeticGit, RawEntry};
use crate::process::{chmod, share_tree, shared_tempdir};

/// A directory of bare repositories served by both servers below.
///
/// The directory and git environment sit behind `Arc`s so that helpers which outlive a borrow
/// (the Bitbucket emulator's background thread) can hold a handle of their own; the directory
/// is removed when the last handle is dropped.
pub struct RepoRoot {
    dir: Arc<TempDir>,
    git: Arc<HermeticGit>,
}

impl fmt::Debug for RepoRoot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RepoRoot")
            .field("dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}

impl RepoRoot {
    /// Creates an empty root that the `git` system user can read and write.
    pub fn new() -> Result<Self> {
        let dir = shared_tempdir("reposync-repos-")?;
        Ok(Self {
            dir: Arc::new(dir),
            git: Arc::new(HermeticGit::new()?),
        })
    }

    /// Another handle on the same root, for helpers that keep working in the background.
    pub(crate) fn share(&self) -> Self {
        Self {
            dir: Arc::clone(&self.dir),
            git: Arc::clone(&self.git),
        }
    }

    /// The absolute path of the root; repository paths in SSH URLs start with it.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The git environment used to create and inspect the repositories.
    pub fn git(&self) -> &HermeticGit {
        &self.git
    }

    /// Creates `<root>/<relative>` (e.g. "acme/config.git") as a bare repo with `http.receivepack=true`, and one commit on `branch` containing `files` (path, content). Returns the commit id.
    ///
    /// HEAD points at `branch`, so a plain clone checks it out.
    pub fn create_repo(
        &self,
        relative: &str,
        branch: &str,
        files: &[(&str, &str)],
    ) -> Result<String> {
        self.init_bare(relative, branch)?;
        self.commit(relative, branch, files, "Initial commit")
    }

    /// Creates `<root>/<relative>` as a bare repository without any commit or branch, writable
    /// over both servers, with HEAD naming `branch`. Returns its path.
    pub fn create_empty_repo(&self, relative: &str, branch: &str) -> Result<PathBuf> {
        let repo = self.init_bare(relative, branch)?;
        share_tree(&repo)?;
        Ok(repo)
    }

    /// Installs `script` as the hook `name` (e.g. "pre-receive") of a repository, executable by
    /// the `git` user that runs it for SSH pushes as well as by root for HTTPS pushes.
    ///
    /// The hook runs with the repository as its working directory.
    pub fn install_hook(&self, relative: &str, name: &str, script: &str) -> Result<()> {
        let hooks = self.repo_path(relative)?.join("hooks");
        fs::create_dir_all(&hooks).with_context(|| format!("cannot create {}", hooks.display()))?;
        chmod(&hooks, 0o777)?;
        let hook = hooks.join(name);
        fs::write(&hook, script).with_context(|| format!("cannot write {}", hook.display()))?;
        chmod(&hook, 0o755)
    }

    /// Installs a `pre-receive` hook that, on each of the first `races` pushes, commits to
    /// `branch` itself (writing `race <n>` to `path`) before the push can land, as if someone
    /// pushed between the pusher's fetch and its push: the push is then refused as not a fast
    /// forward. Later pushes pass. Each call is counted in the repository's `hook-calls` file.
    pub fn install_racing_hook(
        &self,
        relative: &str,
        branch: &str,
        path: &str,
        races: u32,
    ) -> Result<()> {
        let script = format!(
            "#!/bin/sh
cat >/dev/null
echo call >> \"$PWD/hook-calls\"
calls=$(wc -l < \"$PWD/hook-calls\")
[ \"$calls\" -gt {races} ] && exit 0
# Objects written here must go to the repository, not the push's quarantine.
unset GIT_QUARANTINE_PATH GIT_OBJECT_DIRECTORY GIT_ALTERNATE_OBJECT_DIRECTORIES
export GIT_AUTHOR_NAME=Racer GIT_AUTHOR_EMAIL=racer@example.invalid
export GIT_COMMITTER_NAME=Racer GIT_COMMITTER_EMAIL=racer@example.invalid
export GIT_INDEX_FILE=\"$PWD/race-index\"
head=$(git rev-parse 'refs/heads/{branch}') || exit 1
blob=$(echo \"race $calls\" | git hash-object -w --stdin) || exit 1
git read-tree \"$head\" || exit 1
git update-index --add --cacheinfo \"100644,$blob,{path}\" || exit 1
tree=$(git write-tree) || exit 1
rm -f \"$GIT_INDEX_FILE\"
commit=$(echo \"race $calls\" | git commit-tree \"$tree\" -p \"$head\") || exit 1
git update-ref 'refs/heads/{branch}' \"$commit\" \"$head\"
"
        );
        self.install_hook(relative, "pre-receive", &script)
    }

    /// How many times the racing hook has run.
    pub fn hook_calls(&self, relative: &str) -> Result<usize> {
        let file = self.repo_path(relative)?.join("hook-calls");
        Ok(fs::read_to_string(file).unwrap_or_default().lines().count())
    }

    /// `git init --bare` with shared permissions and HEAD naming `branch`.
    fn init_bare(&self, relative: &str, branch: &str) -> Result<PathBuf> {
        let repo = self.repo_path(relative)?;
        if repo.exists() {
            bail!("repository {} already exists", repo.display());
        }
        fs::create_dir_all(&repo).with_context(|| format!("cannot create {}", repo.display()))?;
        let repo_str = path_str(&repo)?;
        let initial_branch = format!("--initial-branch={branch}");
        // A shared mode makes git itself create group- and world-writable files and
        // directories, so objects written later by root (HTTPS) and by `git` (SSH) stay
        // writable for the other.
        self.git.run(
            self.path(),
            &[
                "init",
                "--quiet",
                "--bare",
                "--shared=0666",
                &initial_branch,
                repo_str,
            ],
        )?;
        self.git
            .run(&repo, &["config", "http.receivepack", "true"])?;
        self.share_parents(&repo)?;
        Ok(repo)
    }

    /// Adds a commit on `branch` (creating the branch if missing) with the given files; returns the commit id.
    ///
    /// Files not named keep their content from the branch's previous commit.
    pub fn commit(
        &self,
        relative: &str,
        branch: &str,
        files: &[(&str, &str)],
        message: &str,
    ) -> Result<String> {
        let repo = self.repo_path(relative)?;
        let parent = self.head(relative, branch)?;
        // The commit is built with plumbing in a scratch index, so the bare repository never
        // needs a work tree and HEAD is left alone.
        let scratch = tempfile::Builder::new()
            .prefix("reposync-commit-")
            .tempdir()
            .context("cannot create a scratch directory")?;
        let index = scratch.path().join("index");
        let index_str = path_str(&index)?;
        let env = [("GIT_INDEX_FILE", index_str)];
        if let Some(parent) = &parent {
            self.git.run_with_env(&repo, &["read-tree", parent], &env)?;
        }
        for (number, (path, content)) in files.iter().enumerate() {
            let blob_file = scratch.path().join(format!("blob-{number}"));
            fs::write(&blob_file, content)
                .with_context(|| format!("cannot write {}", blob_file.display()))?;
            let blob = self.git.run(
                &repo,
                &["hash-object", "-w", "--no-filters", path_str(&blob_file)?],
            )?;
            let cacheinfo = format!("100644,{blob},{path}");
            self.git.run_with_env(
                &repo,
                &["update-index", "--add", "--cacheinfo", &cacheinfo],
                &env,
            )?;
        }
        let tree = self.git.run_with_env(&repo, &["write-tree"], &env)?;
        let mut args = vec!["commit-tree", tree.as_str(), "-m", message];
        if let Some(parent) = &parent {
            args.extend(["-p", parent.as_str()]);
        }
        let commit = self.git.run(&repo, &args)?;
        let reference = format!("refs/heads/{branch}");
        // Passing the old value makes the update fail rather than clobber a concurrent push.
        let old = parent.unwrap_or_else(|| "0".repeat(commit.len()));
        self.git
            .run(&repo, &["update-ref", &reference, &commit, &old])?;
        share_tree(&repo)?;
        Ok(commit)
    }

    /// Adds a commit on `branch` whose tree is the branch's with `entries` (raw path, entry)
    /// put in or removed, with plumbing that checks no path (see
    /// [`HermeticGit::commit_entries`]); returns the commit id.
    pub fn commit_raw(
        &self,
        relative: &str,
        branch: &str,
        entries: &[(&[u8], RawEntry)],
        message: &str,
    ) -> Result<String> {
        let repo = self.repo_path(relative)?;
        let parent = self.head(relative, branch)?;
        let commit = self
            .git
            .commit_entries(&repo, parent.as_deref(), entries, message)?;
        let reference = format!("refs/heads/{branch}");
        let old = parent.unwrap_or_else(|| "0".repeat(commit.len()));
        self.git
            .run(&repo, &["update-ref", &reference, &commit, &old])?;
        share_tree(&repo)?;
        Ok(commit)
    }

    /// The commit `branch` points at, or `None` when the branch does not exist.
    pub fn head(&self, relative: &str, branch: &str) -> Result<Option<String>> {
        let repo = self.repo_path(relative)?;
        let reference = format!("refs/heads/{branch}");
        let output = self.git.output_with_env(
            &repo,
            &[
                "rev-parse",
                "--verify",
                "--quiet",
                &format!("{reference}^{{commit}}"),
            ],
            &[],
        )?;
        match output.status.code() {
            Some(0) => Ok(Some(
                String::from_utf8_lossy(&output.stdout).trim().to_owned(),
            )),
            // `--verify --quiet` exits 1 with no output for a missing ref.
            Some(1) if output.stderr.is_empty() => Ok(None),
            _ => bail!(
                "git rev-parse {reference} in {} failed with {}:\n{}",
                repo.display(),
                output.status,
                String::from_utf8_lossy(&output.stderr)
            ),
        }
    }

    /// Reads a file from the tip of `branch`, trimmed of surrounding whitespace like every
    /// [`HermeticGit::run`] output.
    pub fn read_file(&self, relative: &str, branch: &str, path: &str) -> Result<String> {
        let repo = self.repo_path(relative)?;
        self.git
            .run(&repo, &["show", &format!("refs/heads/{branch}:{path}")])
    }

    /// The absolute path of a repository, refusing anything that would escape the root.
    pub fn repo_path(&self, relative: &str) -> Result<PathBuf> {
        let relative_path = Path::new(relative.trim_start_matches('/'));
        let escapes = relative_path
            .components()
            .any(|component| !matches!(component, Component::Normal(_)));
        if relative.trim_start_matches('/').is_empty() || escapes {
            bail!(
                "repository path {relative:?} must be a plain relative path like acme/config.git"
            );
        }
        Ok(self.path().join(relative_path))
    }

    /// Opens up the directories between the root and a repository, which `create_dir_all`
    /// made with root's umask.
    fn share_parents(&self, repo: &Path) -> Result<()> {
        for dir in repo.ancestors().skip(1) {
            if dir == self.path() {
                break;
            }
            chmod(dir, 0o777)?;
        }
        Ok(())
    }
}

fn path_str(path: &Path) -> Result<&str> {
    path.to_str()
        .with_context(|| format!("path {} is not UTF-8", path.display()))
}
