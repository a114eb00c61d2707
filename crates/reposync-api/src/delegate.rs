//! What the server hands a delegate, and what the delegate hands back.

use serde::{Deserialize, Serialize};

use crate::SecretValue;

/// A claimed task, with the credentials it needs attached.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DelegateTask {
    pub id: String,
    pub spec: TaskSpec,
}

/// The work itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TaskSpec {
    TestConnection(TestConnectionSpec),
    Sync(SyncSpec),
}

/// Git Sync work on one branch, in the delegate's reusable local clone of it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SyncSpec {
    pub target: SyncTarget,
    pub job: SyncJob,
    pub auth: TaskAuth,
    pub timeout_secs: u64,
}

/// The branch to work on. `clone_key` names the local clone: one per connector, repository
/// and branch, so clones are reused and never shared between them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SyncTarget {
    pub url: String,
    pub branch: String,
    pub clone_key: String,
}

/// What to do on the branch.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "job", rename_all = "snake_case")]
pub enum SyncJob {
    /// Read every file under `prefix` at the branch head.
    ReadBranch { prefix: String },
    /// Write the files and push one commit on top of the branch, never with force. Remote
    /// commits since `base` that touched the same files make it a conflict instead.
    CommitAndPush {
        base: Option<String>,
        author_name: String,
        author_email: String,
        message: String,
        files: Vec<FileContent>,
        max_attempts: u32,
    },
}

/// A file's content as base64, or `None` for a deleted file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileContent {
    pub path: String,
    pub content: Option<String>,
}

/// What a sync job found or did, as the successful result of its task.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum SyncJobResult {
    /// The branch's head (none if the branch does not exist) and its files.
    Branch {
        head: Option<String>,
        files: Vec<FileContent>,
    },
    Pushed {
        commit: String,
        parent: Option<String>,
        attempts: u32,
    },
    /// The branch already held exactly these files.
    NothingToCommit { head: Option<String> },
    /// Remote commits changed the same files; `files` are their versions at `head`.
    Conflict {
        head: String,
        files: Vec<FileContent>,
    },
}

/// Run `git ls-remote` against `url` and, when `branch` is set, check it exists.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TestConnectionSpec {
    pub url: String,
    pub branch: Option<String>,
    pub auth: TaskAuth,
    pub timeout_secs: u64,
}

/// Credentials, decrypted by the server for this one task.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TaskAuth {
    Https {
        username: String,
        password: SecretValue,
        ca_certificate: Option<String>,
    },
    Ssh {
        private_key: SecretValue,
        known_hosts: Option<String>,
    },
}

/// The delegate's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskOutcome {
    pub succeeded: bool,
    /// Task-specific JSON (for a Test, a [`crate::TestResult`] without the server's fields).
    pub result: serde_json::Value,
}
