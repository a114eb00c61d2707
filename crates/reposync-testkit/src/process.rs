//! Child-process plumbing shared by every server and helper in this crate.
//!
//! The machines this runs on export variables such as `GIT_SSL_CAINFO`, `SSL_CERT_FILE` and
//! `CURL_CA_BUNDLE` that silently override git's own configuration, so every child starts from
//! an empty environment and gets only what is listed here.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// A fixed search path, so that a developer's shims (pyenv, cargo, …) never shadow system tools.
pub(crate) const SYSTEM_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Home directory given to the `git` system user when this crate has to create it.
const GIT_USER_HOME: &str = "/var/lib/reposync-test-git";

/// The environment every child starts from: a fixed PATH, the C locale and the given HOME.
pub(crate) fn base_env(home: &Path) -> Vec<(OsString, OsString)> {
    vec![
        ("PATH".into(), SYSTEM_PATH.into()),
        ("HOME".into(), home.as_os_str().to_owned()),
        ("LC_ALL".into(), "C".into()),
        ("LANG".into(), "C".into()),
        ("TZ".into(), "UTC".into()),
    ]
}

/// A command for a system tool with an environment holding nothing but a PATH and the C locale.
///
/// Used for tools whose behaviour does not depend on HOME (`id`, `useradd`, `ssh-keygen`, `sshd`).
pub(crate) fn system_command(program: impl AsRef<OsStr>) -> Command {
    let mut command = Command::new(program);
    command
        .env_clear()
        .env("PATH", SYSTEM_PATH)
        .env("LC_ALL", "C")
        .env("LANG", "C")
        .stdin(Stdio::null());
    command
}

/// Runs `command` to completion and fails with its stderr when it exits non-zero.
pub(crate) fn run_checked(command: &mut Command) -> Result<Output> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("failed to spawn {command:?}"))?;
    if !output.status.success() {
        bail!(
            "{command:?} exited with {}:\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr),
            String::from_utf8_lossy(&output.stdout),
        );
    }
    Ok(output)
}

/// Makes sure the `git` system user exists and can log in with a key.
///
/// sshd runs `git-upload-pack`/`git-receive-pack` as this user, and it refuses accounts whose
/// password field is locked (`!`), which is what `useradd --system` produces; setting the field
/// to `*` keeps password login impossible while allowing public-key login.
///
/// Safe to call from many tests at once: the work happens once per process, and concurrent
/// processes (nextest) retry while another one holds the `/etc/passwd` lock.
pub fn ensure_git_user() -> Result<()> {
    static DONE: Mutex<bool> = Mutex::new(false);
    let mut done = DONE.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if *done {
        return Ok(());
    }
    if !git_user_exists()? {
        retry_locked(|| {
            system_command("useradd")
                .args(["--system", "--create-home", "--home-dir", GIT_USER_HOME])
                .args(["--shell", "/bin/sh", "git"])
                .output()
                .context("failed to spawn useradd (is the passwd package installed?)")
        })
        .or_else(|err| {
            // Another process may have created the user between our check and useradd.
            if git_user_exists()? { Ok(()) } else { Err(err) }
        })?;
    }
    if !git_password_field_unlocked() {
        retry_locked(|| {
            system_command("usermod")
                .args(["-p", "*", "git"])
                .output()
                .context("failed to spawn usermod")
        })?;
    }
    *done = true;
    Ok(())
}

fn git_user_exists() -> Result<bool> {
    let output = system_command("id")
        .args(["-u", "git"])
        .output()
        .context("failed to spawn id")?;
    Ok(output.status.success())
}

/// Whether `/etc/shadow` already holds `*` for git, so that parallel test processes need not
/// all queue up for the shadow lock just to write the same value again.
fn git_password_field_unlocked() -> bool {
    fs::read_to_string("/etc/shadow")
        .map(|shadow| shadow.lines().any(|line| line.starts_with("git:*:")))
        .unwrap_or(false)
}

/// Runs a shadow-utils command, retrying while another process holds the passwd/shadow lock.
fn retry_locked(mut run: impl FnMut() -> Result<Output>) -> Result<()> {
    let mut last = String::new();
    for _ in 0..50 {
        let output = run()?;
        if output.status.success() {
            return Ok(());
        }
        last = String::from_utf8_lossy(&output.stderr).into_owned();
        if !last.contains("lock") {
            break;
        }
        thread::sleep(Duration::from_millis(100));
    }
    bail!("creating or unlocking the `git` system user failed: {last}")
}

/// Gives group and others the same permission bits as the owner, for every entry under `path`.
///
/// sshd runs git as the `git` user while the repositories are created by root (and pushes over
/// HTTPS write as root too), so both must be able to read and write everything in the tree.
pub(crate) fn share_tree(path: &Path) -> Result<()> {
    let metadata =
        fs::symlink_metadata(path).with_context(|| format!("cannot stat {}", path.display()))?;
    if metadata.file_type().is_symlink() {
        return Ok(());
    }
    let mode = metadata.permissions().mode();
    let owner = mode & 0o700;
    let shared = mode | (owner >> 3) | (owner >> 6);
    if shared != mode {
        fs::set_permissions(path, fs::Permissions::from_mode(shared))
            .with_context(|| format!("cannot chmod {}", path.display()))?;
    }
    if metadata.is_dir() {
        for entry in
            fs::read_dir(path).with_context(|| format!("cannot list {}", path.display()))?
        {
            share_tree(&entry?.path())?;
        }
    }
    Ok(())
}

/// Sets the exact mode of one path.
pub(crate) fn chmod(path: &Path, mode: u32) -> Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot chmod {:o} {}", mode, path.display()))
}

/// Fails unless every ancestor of `path` can be traversed by other users.
///
/// A directory the `git` user cannot reach makes sshd-side git fail with a confusing
/// "does not appear to be a git repository"; this names the real cause instead.
pub(crate) fn check_traversable_by_others(path: &Path) -> Result<()> {
    for ancestor in path.ancestors().skip(1) {
        let mode = fs::metadata(ancestor)
            .with_context(|| format!("cannot stat {}", ancestor.display()))?
            .permissions()
            .mode();
        if mode & 0o001 == 0 {
            bail!(
                "{} (mode {:o}) is not traversable by other users, so the `git` user cannot \
                 reach {}; point TMPDIR at a world-traversable directory such as /tmp",
                ancestor.display(),
                mode & 0o7777,
                path.display()
            );
        }
    }
    Ok(())
}

/// Creates a temporary directory that the `git` system user can enter and read.
pub(crate) fn shared_tempdir(prefix: &str) -> Result<tempfile::TempDir> {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .context("cannot create a temporary directory")?;
    chmod(dir.path(), 0o755)?;
    check_traversable_by_others(dir.path())?;
    Ok(dir)
}
