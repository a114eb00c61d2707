//! The one directory a reposync process keeps its per-operation temporary files in, and the
//! advisory lock that gives a directory to one process at a time.
//!
//! Key files, credential homes and commit scratch files exist only while their operation runs,
//! but a process killed with SIGKILL cleans nothing up. Keeping them all under one directory
//! that the process owns, and wiping that directory when the next process starts, bounds how
//! long any of them can outlive its operation: until the next start. The lock makes sure the
//! directory being wiped is not in use by another live process.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{FlockOperation, flock};

/// Why a directory could not be locked or prepared as a temporary root.
#[derive(Debug, thiserror::Error)]
pub enum TempRootError {
    /// Another live process holds the directory's lock.
    #[error(
        "{} is in use by another reposync process; stop it, or give this one a directory of its own",
        path.display()
    )]
    Held { path: PathBuf },
    #[error("cannot create the temporary directory {}: {source}", path.display())]
    Create { path: PathBuf, source: io::Error },
    #[error("{} is not a directory (a symbolic link or a file is in its place); remove it", path.display())]
    NotADirectory { path: PathBuf },
    #[error("cannot lock {}: {source}", path.display())]
    Lock { path: PathBuf, source: io::Error },
    #[error("cannot remove the leftover {} from an earlier run: {source}", path.display())]
    Wipe { path: PathBuf, source: io::Error },
}

/// An exclusive OS advisory lock (`flock`) on a directory, held until dropped.
///
/// The lock belongs to the open file description, which is closed on exec, so child processes
/// never inherit it, and the kernel releases it when the process dies, however it dies: a
/// lock held is always held by a live process.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
    path: PathBuf,
}

impl DirLock {
    /// Locks `dir`, which must exist, without waiting: a lock another process holds is
    /// [`TempRootError::Held`].
    pub fn acquire(dir: &Path) -> Result<DirLock, TempRootError> {
        let file = File::open(dir).map_err(|source| TempRootError::Lock {
            path: dir.to_owned(),
            source,
        })?;
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(DirLock {
                _file: file,
                path: dir.to_owned(),
            }),
            Err(errno) if errno == rustix::io::Errno::WOULDBLOCK => Err(TempRootError::Held {
                path: dir.to_owned(),
            }),
            Err(errno) => Err(TempRootError::Lock {
                path: dir.to_owned(),
                source: errno.into(),
            }),
        }
    }

    /// The locked directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// A private (0700) directory for the temporary files of one process's git operations,
/// locked by that process and emptied when it was prepared.
///
/// Clones share the one directory and its lock, which is released when the last clone is
/// dropped.
#[derive(Debug, Clone)]
pub struct TempRoot {
    inner: Arc<DirLock>,
}

impl TempRoot {
    /// Creates `dir` (mode 0700) if needed, takes its lock, and removes everything in it: what
    /// is there was left by a process that died before it could clean up.
    pub fn prepare(dir: impl Into<PathBuf>) -> Result<TempRoot, TempRootError> {
        let dir = dir.into();
        let create = |source| TempRootError::Create {
            path: dir.clone(),
            source,
        };
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(create)?;
        let metadata = fs::symlink_metadata(&dir).map_err(create)?;
        if !metadata.is_dir() {
            return Err(TempRootError::NotADirectory { path: dir });
        }
        // An existing directory keeps the mode it was made with; ours must be private.
        if metadata.permissions().mode() & 0o777 != 0o700 {
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).map_err(create)?;
        }
        // Locked before anything is removed, so that a second process never wipes the files
        // of a first one that is still running.
        let lock = DirLock::acquire(&dir)?;
        wipe(&dir)?;
        Ok(TempRoot {
            inner: Arc::new(lock),
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.inner.path()
    }
}

/// Removes everything inside `dir`, leaving `dir` itself.
fn wipe(dir: &Path) -> Result<(), TempRootError> {
    let error = |path: &Path| {
        let path = path.to_owned();
        move |source| TempRootError::Wipe { path, source }
    };
    for entry in fs::read_dir(dir).map_err(error(dir))? {
        let entry = entry.map_err(error(dir))?;
        let path = entry.path();
        // `file_type` does not follow symbolic links, so a link is removed, never its target.
        let is_dir = entry.file_type().map_err(error(&path))?.is_dir();
        let removed = if is_dir {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        match removed {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(error(&path)(e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepare_empties_the_directory_makes_it_private_and_keeps_it_to_one_holder() {
        let parent = tempfile::tempdir().expect("tempdir");
        let dir = parent.path().join("tmp");
        fs::create_dir_all(dir.join("reposync-git-old/nested")).expect("mkdir");
        fs::write(dir.join("reposync-git-old/id"), "KEY").expect("write");
        fs::write(dir.join("stray"), "x").expect("write");
        let outside = parent.path().join("outside");
        fs::write(&outside, "keep").expect("write");
        std::os::unix::fs::symlink(&outside, dir.join("link")).expect("symlink");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).expect("chmod");

        let root = TempRoot::prepare(&dir).expect("prepare");
        assert_eq!(root.path(), dir);
        assert_eq!(fs::read_dir(&dir).expect("read").count(), 0, "wiped");
        assert_eq!(fs::read_to_string(&outside).expect("kept"), "keep");
        let mode = fs::metadata(&dir).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o700);

        // A second holder is refused, naming the directory, and removes nothing.
        fs::write(dir.join("in-use"), "x").expect("write");
        let error = TempRoot::prepare(&dir).expect_err("held");
        assert!(matches!(error, TempRootError::Held { .. }), "{error}");
        assert!(error.to_string().contains(&dir.display().to_string()));
        assert!(dir.join("in-use").exists());

        // Clones share the lock; it is released with the last one.
        let clone = root.clone();
        drop(root);
        assert!(matches!(
            DirLock::acquire(&dir),
            Err(TempRootError::Held { .. })
        ));
        drop(clone);
        DirLock::acquire(&dir).expect("released");
    }

    #[test]
    fn a_file_in_place_of_the_directory_is_refused() {
        let parent = tempfile::tempdir().expect("tempdir");
        let file = parent.path().join("tmp");
        fs::write(&file, "x").expect("write");
        let error = TempRoot::prepare(&file).expect_err("refused");
        assert!(
            matches!(
                error,
                TempRootError::Create { .. } | TempRootError::NotADirectory { .. }
            ),
            "{error}"
        );
        assert_eq!(fs::read_to_string(&file).expect("kept"), "x");
    }
}
