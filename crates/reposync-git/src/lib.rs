//! The only part of reposync that starts processes: git and, through git, OpenSSH.
//!
//! Every child gets an environment built from nothing: a private `HOME`, no system or global
//! git config, no terminal prompts, `LC_ALL=C` so that messages can be classified, and none of
//! the host's `GIT_*`, `SSL_*` or `SSH_*` variables, which would otherwise override what we
//! configure. Credentials reach only the one child that needs them: an HTTPS token through a
//! credential helper that reads the child's environment, an SSH key through a 0600 file in a
//! private temporary directory that lives exactly as long as the operation. Those directories
//! live under one [`TempRoot`] that the process wipes and locks when it starts, so even a key
//! file left by a process killed mid-operation does not survive the next start. Nothing
//! secret is ever put in argv or in the URL given to git. Every operation has a timeout, after
//! which the whole process group is killed, and none may leave work running behind it:
//! automatic gc, background maintenance and hooks are off for every command. Failures are classified into [`GitErrorKind`] so callers can
//! tell a wrong token from an unknown host key without parsing English themselves.
//!
//! [`LocalClone`] keeps a shallow, blobless clone of one branch on disk between operations,
//! reads files and the changes since a commit from it, commits to it without a work tree, and
//! pushes without ever forcing.

mod auth;
mod clone;
mod error;
mod runner;
mod temp;

pub use auth::{GitAuth, Remote};
pub use clone::{
    BranchChanges, ChangedFile, CommitChanges, CommitOutcome, CommitRequest, CommittedFile,
    ConflictFile, FileChange, FileChangeKind, LANDED_LOOKBACK, LandedChangeset, LocalClone,
    Signature, TreeFiles, UnrepresentableEntry, commit_author, message_and_author,
    sort_commits_since,
};
pub use error::{GitError, GitErrorKind};
pub use runner::{GitRunner, GitVersion, MIN_GIT_VERSION, RemoteRef, ServerCapabilities};
pub use temp::{DirLock, TempRoot, TempRootError};
