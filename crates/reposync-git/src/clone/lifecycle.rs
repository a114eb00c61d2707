//! Opening a clone directory: reusing the clone made earlier, clearing what a killed git left
//! in it and compacting it, or creating it afresh, as a partial clone unless told otherwise.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use reposync_model::BranchName;

use crate::auth::Remote;
use crate::error::GitError;
use crate::runner::{GitCommand, GitRunner};

use super::check::{invalid, unusable};
use super::handle::{LocalClone, ORIGIN};
use super::parse::parse_config_list;

/// Configuration key that records, last, which branch a clone was made for. Its presence
/// proves that the creation of the clone finished.
const BRANCH_MARKER: &str = "reposync.branch";

/// The filter of the partial clone: commits and trees, no file contents.
const BLOB_FILTER: &str = "blob:none";

impl LocalClone {
    /// Opens (creating if needed) the clone in `dir` for `branch` of `remote.url`.
    ///
    /// Reuses an existing clone. Since the caller serialises the use of a clone, a lock file
    /// found here (`index.lock`, `shallow.lock`, `packed-refs.lock`, `config.lock`, a ref's
    /// lock, `objects/maintenance.lock`…) was left by a process that died mid-operation: the
    /// lock files and half-written packs are removed and the clone is checked as any other,
    /// which is much cheaper than fetching a large repository again. The exception is a git
    /// still running in the clone (left by a reposync killed on its own, whose children
    /// survive it): then nothing is touched and the open fails, to be retried once it ends.
    /// A clone that is corrupt, or for another URL or branch, is removed and made afresh.
    /// `dir` must be empty or hold nothing but a clone's `.git`: anything else is refused
    /// rather than deleted, in case the directory was misconfigured.
    ///
    /// A clone holding many loose objects or packs is compacted here, in the foreground,
    /// since no command compacts it automatically (see [`GitRunner`]).
    pub async fn open(
        runner: &GitRunner,
        dir: &Path,
        remote: &Remote,
        branch: &BranchName,
    ) -> Result<LocalClone, GitError> {
        let dir = std::path::absolute(dir).map_err(|e| {
            invalid(format!(
                "cannot resolve the clone directory {}: {e}",
                dir.display()
            ))
        })?;
        let clone = LocalClone {
            git_dir: dir.join(".git"),
            dir,
            url: remote.url.clone(),
            branch: branch.clone(),
            runner: runner.clone(),
        };
        match clone.state().await? {
            CloneState::Usable => {
                clone.compact_if_needed().await;
                return Ok(clone);
            }
            CloneState::Absent => {}
            CloneState::Unusable(reason) => {
                tracing::warn!(dir = %clone.dir.display(), %reason, "starting the local clone afresh");
                tokio::fs::remove_dir_all(&clone.git_dir)
                    .await
                    .map_err(|e| clone.io_error("remove the unusable clone", e))?;
            }
        }
        clone.create(Contents::Blobless).await?;
        Ok(clone)
    }

    /// What is in the directory, and whether it can be used as it is.
    async fn state(&self) -> Result<CloneState, GitError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(CloneState::Absent),
            Err(e) => return Err(self.io_error("read the clone directory", e)),
        };
        let mut has_git_dir = false;
        for entry in entries {
            let entry = entry.map_err(|e| self.io_error("read the clone directory", e))?;
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            if entry.file_name() == ".git" && is_dir {
                has_git_dir = true;
            } else {
                return Err(unusable(format!(
                    "{} holds {:?}, so it is not a clone made by reposync; refusing to use or delete it",
                    self.dir.display(),
                    entry.file_name()
                )));
            }
        }
        if !has_git_dir {
            return Ok(CloneState::Absent);
        }
        self.remove_debris()?;
        let config = match self.local(&["config", "--local", "--list", "-z"]).await {
            Ok(config) => parse_config_list(&config),
            Err(e) => {
                return Ok(CloneState::Unusable(format!(
                    "not a usable repository: {e}"
                )));
            }
        };
        if config.get(BRANCH_MARKER).map(String::as_str) != Some(self.branch.as_str()) {
            return Ok(CloneState::Unusable(
                "made for another branch, or its creation did not finish".to_owned(),
            ));
        }
        if config.get(&format!("remote.{ORIGIN}.url")) != Some(&self.url) {
            return Ok(CloneState::Unusable("made for another URL".to_owned()));
        }
        let head = match self.local_head().await {
            Ok(head) => head,
            Err(e) => return Ok(CloneState::Unusable(format!("unreadable branch: {e}"))),
        };
        if let Some(head) = head {
            // The head commit and its tree must be here: a clone that lost objects would fail
            // later, in the middle of an operation.
            let input = format!("{head}\n{head}^{{tree}}\n");
            let present = self
                .run(
                    self.local_command(&["cat-file", "--batch-check"])
                        .stdin(input),
                )
                .await
                .map(|out| !String::from_utf8_lossy(&out).contains(" missing"));
            if !present.unwrap_or(false) {
                return Ok(CloneState::Unusable(format!(
                    "the objects of its head {head} are missing"
                )));
            }
        }
        Ok(CloneState::Usable)
    }

    /// Removes the lock files and half-written packs that a process killed mid-operation
    /// leaves, unless a process still works in the clone, which is then an error.
    fn remove_debris(&self) -> Result<(), GitError> {
        let debris = find_debris(&self.git_dir);
        if debris.is_empty() {
            return Ok(());
        }
        if let Some(pid) = process_working_in(&self.git_dir) {
            return Err(invalid(format!(
                "process {pid} still works in the local clone {} (a git left running by an earlier reposync that was killed, or someone else's git); the clone is used again once it ends",
                self.dir.display()
            )));
        }
        for path in &debris {
            match std::fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(self.io_error(&format!("remove {}", path.display()), e));
                }
            }
        }
        let removed: Vec<String> = debris
            .iter()
            .map(|p| {
                p.strip_prefix(&self.git_dir)
                    .unwrap_or(p)
                    .display()
                    .to_string()
            })
            .collect();
        tracing::warn!(dir = %self.dir.display(), removed = ?removed, "removed what a process killed mid-operation left in the local clone");
        Ok(())
    }

    /// Runs `git gc --auto` in the foreground when the clone has as many loose objects or
    /// packs as git's own automatic gc waits for (estimated as git does, without starting a
    /// process). A failure is logged, not returned: the clone works uncompacted.
    async fn compact_if_needed(&self) {
        if !needs_compacting(&self.git_dir.join("objects")) {
            return;
        }
        tracing::info!(dir = %self.dir.display(), "compacting the local clone");
        let mut command = self.local_command(&["gc", "--auto", "--quiet"]);
        // Git's own thresholds, for this one command: every other runs with gc.auto=0.
        command.config.extend([
            ("gc.auto".to_owned(), GC_LOOSE_OBJECTS.to_string()),
            ("gc.autoPackLimit".to_owned(), GC_PACKS.to_string()),
        ]);
        if let Err(error) = self.run(command).await {
            tracing::warn!(dir = %self.dir.display(), %error, "cannot compact the local clone");
        }
    }

    /// Creates an empty repository configured to fetch the branch, as a partial clone unless
    /// it must hold whole files.
    pub(super) async fn create(&self, contents: Contents) -> Result<(), GitError> {
        tokio::fs::create_dir_all(&self.dir)
            .await
            .map_err(|e| self.io_error("create the clone directory", e))?;
        // No template: the clone needs no sample hooks or description, and none of the host's.
        let init = GitCommand {
            args: ["init", "--quiet", "--template="]
                .iter()
                .map(OsString::from)
                .chain([OsString::from("--"), self.dir.clone().into_os_string()])
                .collect(),
            url: self.place(),
            ..GitCommand::default()
        };
        self.run(init).await?;
        let remote_key = |name: &str| format!("remote.{ORIGIN}.{name}");
        let fetch_refspec = format!("+refs/heads/{}:{}", self.branch, self.tracking_ref());
        let mut settings = vec![
            (remote_key("url"), self.url.as_str()),
            (remote_key("fetch"), fetch_refspec.as_str()),
            (remote_key("tagOpt"), "--no-tags"),
            // Reflogs would keep every commit ever fetched alive for 90 days.
            ("core.logAllRefUpdates".to_owned(), "false"),
        ];
        if contents == Contents::Blobless {
            settings.extend([
                // A partial clone is a repository format extension, which needs format
                // version 1.
                ("core.repositoryformatversion".to_owned(), "1"),
                ("extensions.partialClone".to_owned(), ORIGIN),
                (remote_key("promisor"), "true"),
                (remote_key("partialclonefilter"), BLOB_FILTER),
            ]);
        }
        // Written last: a clone without it did not finish being created.
        settings.push((BRANCH_MARKER.to_owned(), self.branch.as_str()));
        for (key, value) in &settings {
            self.local(&["config", key, value]).await?;
        }
        Ok(())
    }
}

/// Whether a clone leaves file contents on the server until they are needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Contents {
    Blobless,
    Whole,
}

/// What `open` found in the clone directory.
enum CloneState {
    Absent,
    Usable,
    Unusable(String),
}

/// What a git process killed mid-operation leaves in a git directory: every lock file (git
/// takes a lock by creating `<file>.lock` and renames it into place when done, so the file
/// itself is intact) and the temporary files of a pack being received (`objects/pack/tmp_*`),
/// which nothing else would ever remove. The fan-out directories of loose objects, which can
/// be many and never hold locks, are skipped.
fn find_debris(git_dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![git_dir.to_owned()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let path = entry.path();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                let loose_fan_out = dir.ends_with("objects")
                    && name.len() == 2
                    && name.chars().all(|c| c.is_ascii_hexdigit());
                if !loose_fan_out {
                    pending.push(path);
                }
            } else if name.ends_with(".lock")
                || (dir.ends_with("objects/pack") && name.starts_with("tmp_"))
            {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// A live process (other than this one) whose environment names `git_dir` as its `GIT_DIR`,
/// as every git command run on a clone, and the helpers it starts, do. Processes of other
/// users, whose environment cannot be read, and systems without `/proc` find none.
fn process_working_in(git_dir: &Path) -> Option<u32> {
    use std::os::unix::ffi::OsStrExt as _;
    let mut wanted = b"GIT_DIR=".to_vec();
    wanted.extend_from_slice(git_dir.as_os_str().as_bytes());
    let own = std::process::id();
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            (pid != own).then_some((pid, entry.path()))
        })
        .find(|(_, path)| {
            std::fs::read(path.join("environ"))
                .is_ok_and(|environ| environ.split(|b| *b == 0).any(|var| var == wanted))
        })
        .map(|(pid, _)| pid)
}

/// `gc.auto`'s default: how many loose objects make git's automatic gc compact a repository.
const GC_LOOSE_OBJECTS: usize = 6700;

/// `gc.autoPackLimit`'s default: how many packs make git's automatic gc repack them.
const GC_PACKS: usize = 50;

/// Whether `git gc --auto` would find work in this objects directory: more loose objects in
/// the fan-out directory `17` than a 256th of [`GC_LOOSE_OBJECTS`] (git's own estimate), or
/// more packs without a `.keep` file than [`GC_PACKS`].
fn needs_compacting(objects: &Path) -> bool {
    let names = |dir: PathBuf| -> Vec<String> {
        std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    let loose = names(objects.join("17"))
        .iter()
        .filter(|name| name.len() >= 38 && name.chars().all(|c| c.is_ascii_hexdigit()))
        .count();
    let packs = names(objects.join("pack"));
    let unkept = packs
        .iter()
        .filter_map(|name| name.strip_suffix(".pack"))
        .filter(|stem| !packs.contains(&format!("{stem}.keep")))
        .count();
    loose > GC_LOOSE_OBJECTS.div_ceil(256) || unkept > GC_PACKS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_locks_and_temporary_packs_but_not_in_loose_object_directories() {
        let dir = tempfile::tempdir().expect("tempdir");
        let git_dir = dir.path();
        for folder in ["objects/ab", "objects/pack", "refs/remotes/origin"] {
            std::fs::create_dir_all(git_dir.join(folder)).expect("mkdir");
        }
        std::fs::write(git_dir.join("objects/ab/cd.lock"), "").expect("write");
        std::fs::write(git_dir.join("objects/pack/pack-1.pack"), "").expect("write");
        std::fs::write(git_dir.join("tmp_not_a_pack"), "").expect("write");
        assert_eq!(find_debris(git_dir), Vec::<PathBuf>::new());
        for file in [
            "refs/remotes/origin/main.lock",
            "objects/maintenance.lock",
            "objects/pack/tmp_pack_Xy12",
            "index.lock",
        ] {
            std::fs::write(git_dir.join(file), "").expect("write");
        }
        assert_eq!(
            find_debris(git_dir),
            vec![
                git_dir.join("index.lock"),
                git_dir.join("objects/maintenance.lock"),
                git_dir.join("objects/pack/tmp_pack_Xy12"),
                git_dir.join("refs/remotes/origin/main.lock"),
            ]
        );
    }

    #[test]
    fn compacting_is_needed_past_gits_own_thresholds() {
        let dir = tempfile::tempdir().expect("tempdir");
        let objects = dir.path();
        std::fs::create_dir_all(objects.join("17")).expect("mkdir");
        std::fs::create_dir_all(objects.join("pack")).expect("mkdir");
        assert!(!needs_compacting(objects));
        let loose = |n: usize| objects.join("17").join(format!("{n:038x}"));
        for n in 0..27 {
            std::fs::write(loose(n), "").expect("write");
        }
        assert!(!needs_compacting(objects), "27 is 6700/256 rounded up");
        std::fs::write(loose(27), "").expect("write");
        assert!(needs_compacting(objects));
        std::fs::remove_dir_all(objects.join("17")).expect("remove");

        for n in 0..51 {
            std::fs::write(objects.join("pack").join(format!("pack-{n}.pack")), "").expect("write");
        }
        assert!(needs_compacting(objects), "51 packs");
        std::fs::write(objects.join("pack/pack-0.keep"), "").expect("write");
        assert!(!needs_compacting(objects), "a kept pack does not count");
    }
}
