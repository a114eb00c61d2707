//! The [`LocalClone`] handle: where a clone lives and what it follows, and how every git
//! command on it is built and run, with the errors that name it.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use reposync_model::BranchName;

use crate::auth::Remote;
use crate::error::GitError;
use crate::runner::{GitCommand, GitRunner};

use super::check::invalid;

/// The name of the one remote of a clone.
pub(super) const ORIGIN: &str = "origin";

/// A reusable local clone of one branch of one remote, kept on disk between operations.
///
/// One operation at a time: the caller serialises the use of a clone directory.
#[derive(Debug, Clone)]
pub struct LocalClone {
    pub(super) dir: PathBuf,
    pub(super) git_dir: PathBuf,
    pub(super) url: String,
    pub(super) branch: BranchName,
    pub(super) runner: GitRunner,
}

impl LocalClone {
    /// The directory of the clone (its git directory is `.git` inside it).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The branch this clone follows.
    pub fn branch(&self) -> &BranchName {
        &self.branch
    }

    /// A command on the local repository, with no credentials.
    pub(super) fn local_command(&self, args: &[&str]) -> GitCommand<'static> {
        GitCommand {
            args: args.iter().map(OsString::from).collect(),
            env: self.repository_env(),
            url: self.place(),
            ..GitCommand::default()
        }
    }

    /// A command that talks to the remote, with its credentials prepared for this one child.
    pub(super) fn remote_command<'a>(&self, remote: &'a Remote, args: &[&str]) -> GitCommand<'a> {
        GitCommand {
            args: args.iter().map(OsString::from).collect(),
            auth: Some(&remote.auth),
            url: remote.url.clone(),
            env: self.repository_env(),
            ..GitCommand::default()
        }
    }

    fn repository_env(&self) -> Vec<(&'static str, OsString)> {
        vec![
            // Explicit, so that git never looks for a repository above a broken clone.
            ("GIT_DIR", self.git_dir.clone().into_os_string()),
            // A missing object must be an error, never a fetch per object (git 2.44 and later;
            // older gits have no credentials to fetch with here, so they fail too).
            ("GIT_NO_LAZY_FETCH", "1".into()),
            ("GIT_LITERAL_PATHSPECS", "1".into()),
        ]
    }

    /// Runs a local command and returns its standard output.
    pub(super) async fn local(&self, args: &[&str]) -> Result<Vec<u8>, GitError> {
        self.run(self.local_command(args)).await
    }

    pub(super) async fn run(&self, command: GitCommand<'_>) -> Result<Vec<u8>, GitError> {
        self.runner.run_command(&command).await
    }

    pub(super) fn tracking_ref(&self) -> String {
        format!("refs/remotes/{ORIGIN}/{}", self.branch)
    }

    pub(super) fn place(&self) -> String {
        format!("the local clone {}", self.dir.display())
    }

    pub(super) fn check_remote(&self, remote: &Remote) -> Result<(), GitError> {
        if remote.url == self.url {
            Ok(())
        } else {
            Err(invalid(format!(
                "the clone in {} follows {}, not {}",
                self.dir.display(),
                self.url,
                remote.url
            )))
        }
    }

    /// Names the branch in an error about the remote.
    pub(super) fn in_context(&self, mut error: GitError) -> GitError {
        error.message = format!("{} (branch {})", error.message, self.branch);
        error
    }

    pub(super) fn io_error(&self, what: &str, error: std::io::Error) -> GitError {
        invalid(format!("cannot {what} in {}: {error}", self.dir.display()))
    }

    pub(super) fn missing_object(&self, oid: &str, path: &str) -> GitError {
        invalid(format!(
            "the content {oid} of {path} is missing from the local clone {} after fetching it",
            self.dir.display()
        ))
    }
}
