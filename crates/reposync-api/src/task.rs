//! The typed parts of the task protocol that both sides read: which kind a task is, and why a
//! task failed. A server and its delegates may run different versions, so the JSON is frozen
//! by tests, and a failure code this version does not know is kept as it came.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The kinds of task the hub queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskKind {
    /// `ls-remote` and a branch check for a connector (`TestConnectionSpec`).
    TestConnection,
    /// Git Sync work on one branch (`SyncSpec`).
    Sync,
    /// Enabling sync for a scope (a `SyncEnableRequest`): run by the server itself, which
    /// asks the delegates for what it needs; its result is a `SyncEnabled`, or a
    /// `SyncEnabledAll` when the request asks for `all`.
    EnableSync,
    /// Files of a repository at a ref, read into an archive (`FetchFilesSpec`); its result is
    /// a `FetchResult`.
    FetchFiles,
}

impl TaskKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskKind::TestConnection => "test_connection",
            TaskKind::Sync => "sync",
            TaskKind::EnableSync => "enable_sync",
            TaskKind::FetchFiles => "fetch_files",
        }
    }

    /// The kind a stored task names; `None` for a kind this version does not know.
    pub fn parse(text: &str) -> Option<TaskKind> {
        match text {
            "test_connection" => Some(TaskKind::TestConnection),
            "sync" => Some(TaskKind::Sync),
            "enable_sync" => Some(TaskKind::EnableSync),
            "fetch_files" => Some(TaskKind::FetchFiles),
            _ => None,
        }
    }
}

impl fmt::Display for TaskKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a task failed, as a classified code that people and code can act on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FailureCode {
    /// The host could not be reached (DNS, refused, timed out connecting).
    HostUnreachable,
    /// The server's TLS certificate is not trusted.
    TlsUntrusted,
    /// The SSH host key is not among the connector's known hosts.
    HostKeyUnknown,
    /// The SSH host key differs from the known one.
    HostKeyMismatch,
    /// The server refused the credentials.
    AuthFailed,
    /// No repository at that URL, or the credentials cannot see it.
    RepoNotFound,
    /// The repository has no such branch.
    BranchNotFound,
    /// The operation ran past its time limit.
    Timeout,
    /// No usable git on the delegate.
    GitUnavailable,
    /// No ssh on the delegate, for an SSH connector.
    SshUnavailable,
    /// The server refused the push for good: a hook, branch protection, no write access.
    PushRejected,
    /// The branch kept moving during the push.
    PushRaced,
    /// A request that cannot succeed however often it is tried (a bad path or name).
    InvalidRequest,
    /// git failed in a way not classified above; the message carries git's words.
    GitFailed,
    /// The task itself was malformed, or answered with something else than was asked.
    InvalidTask,
    /// The task's connector was deleted.
    ConnectorGone,
    /// No connected delegate may run the task.
    NoDelegate,
    /// reposync itself failed (the database, an unreadable answer).
    Internal,
    /// The server restarted while the task was unfinished; its work is planned again.
    Interrupted,
    /// The request named something that does not exist (an application, a connector).
    NotFound,
    /// The scope is already synced with a branch.
    AlreadyLinked,
    /// The branch holds YAML for the scope that differs from reposync's, and the request
    /// did not say which side wins.
    SyncDiffers,
    /// The request would delete files and did not confirm it.
    ConfirmationRequired,
    /// A connector the work needs failed its connection Test.
    ConnectionFailed,
    /// The connector could not read the branch.
    ConnectorCheckFailed,
    /// Files the work would take into the tree are not valid; nothing was changed.
    InvalidTree,
    /// A code this version does not know, from a newer delegate or server: kept as it came.
    Unknown(String),
}

impl FailureCode {
    const KNOWN: [(FailureCode, &'static str); 26] = [
        (FailureCode::HostUnreachable, "host_unreachable"),
        (FailureCode::TlsUntrusted, "tls_untrusted"),
        (FailureCode::HostKeyUnknown, "host_key_unknown"),
        (FailureCode::HostKeyMismatch, "host_key_mismatch"),
        (FailureCode::AuthFailed, "auth_failed"),
        (FailureCode::RepoNotFound, "repo_not_found"),
        (FailureCode::BranchNotFound, "branch_not_found"),
        (FailureCode::Timeout, "timeout"),
        (FailureCode::GitUnavailable, "git_unavailable"),
        (FailureCode::SshUnavailable, "ssh_unavailable"),
        (FailureCode::PushRejected, "push_rejected"),
        (FailureCode::PushRaced, "push_raced"),
        (FailureCode::InvalidRequest, "invalid_request"),
        (FailureCode::GitFailed, "git_failed"),
        (FailureCode::InvalidTask, "invalid_task"),
        (FailureCode::ConnectorGone, "connector_gone"),
        (FailureCode::NoDelegate, "no_delegate"),
        (FailureCode::Internal, "internal"),
        (FailureCode::Interrupted, "interrupted"),
        (FailureCode::NotFound, "not_found"),
        (FailureCode::AlreadyLinked, "already_linked"),
        (FailureCode::SyncDiffers, "sync_differs"),
        (FailureCode::ConfirmationRequired, "confirmation_required"),
        (FailureCode::ConnectionFailed, "connection_failed"),
        (FailureCode::ConnectorCheckFailed, "connector_check_failed"),
        (FailureCode::InvalidTree, "invalid_tree"),
    ];

    /// The code as it travels and is stored (`push_rejected`).
    pub fn as_str(&self) -> &str {
        match self {
            FailureCode::Unknown(code) => code,
            known => Self::KNOWN
                .iter()
                .find(|(code, _)| code == known)
                .map_or("internal", |(_, text)| text),
        }
    }

    /// The code a text names; one this version does not know is kept as [`FailureCode::Unknown`].
    pub fn parse(text: &str) -> FailureCode {
        Self::KNOWN
            .iter()
            .find(|(_, known)| *known == text)
            .map_or_else(
                || FailureCode::Unknown(text.to_owned()),
                |(code, _)| code.clone(),
            )
    }

    /// Whether retrying cannot help until a person acts: Git Sync then stops the changesets
    /// until `sync retry`, instead of backing off and trying again. An unreachable host, a
    /// timeout, a branch that kept moving or no delegate connected yet may pass by
    /// themselves; so, for all this version knows, may a code it does not know.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            FailureCode::PushRejected
                | FailureCode::AuthFailed
                | FailureCode::RepoNotFound
                | FailureCode::HostKeyUnknown
                | FailureCode::HostKeyMismatch
                | FailureCode::TlsUntrusted
                | FailureCode::InvalidTask
                | FailureCode::InvalidRequest
                | FailureCode::ConnectorGone
                | FailureCode::NotFound
                | FailureCode::AlreadyLinked
                | FailureCode::SyncDiffers
                | FailureCode::ConfirmationRequired
                | FailureCode::InvalidTree
        )
    }
}

impl fmt::Display for FailureCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for FailureCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for FailureCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Ok(FailureCode::parse(&text))
    }
}

/// The result of a task that failed (other than a Test, whose failures are a `TestResult`):
/// `{"ok": false, "code": …, "message": …, "detail": …}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskFailure {
    /// Always false, like a failed Test's `ok`, so a reader can tell a failure at a glance.
    #[serde(default)]
    ok: bool,
    pub code: FailureCode,
    /// What to tell a person: what failed, where, and what to do.
    #[serde(default)]
    pub message: String,
    /// The tail of git's own output, scrubbed of secrets; empty when there is none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
    /// The request field the failure is about, as in an API error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl TaskFailure {
    pub fn new(code: FailureCode, message: impl Into<String>) -> TaskFailure {
        TaskFailure {
            ok: false,
            code,
            message: message.into(),
            detail: String::new(),
            field: None,
        }
    }

    pub fn with_field(mut self, field: impl Into<String>) -> TaskFailure {
        self.field = Some(field.into());
        self
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> TaskFailure {
        self.detail = detail.into();
        self
    }

    /// The failure as a task's result.
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }

    /// A stored result read back as a failure: one that cannot be read is itself an
    /// internal failure that says so.
    pub fn from_result(result: Option<&str>) -> TaskFailure {
        result
            .and_then(|r| serde_json::from_str(r).ok())
            .unwrap_or_else(|| {
                TaskFailure::new(FailureCode::Internal, "the task failed without saying why")
            })
    }

    /// What to tell people: the message and, unless it already quotes one of them, git's own
    /// last lines (the delegate joins them with " / ").
    pub fn explained(&self) -> String {
        let message = if self.message.is_empty() {
            "the task failed"
        } else {
            self.message.as_str()
        };
        let detail = self.detail.trim();
        let quoted = detail
            .split(" / ")
            .any(|line| !line.is_empty() && message.contains(line));
        if detail.is_empty() || quoted {
            message.to_owned()
        } else {
            format!("{message} (git said: {detail})")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The JSON a server and a delegate of other versions exchange: frozen.
    #[test]
    fn the_wire_format_of_failures_is_frozen() {
        let failure = TaskFailure::new(FailureCode::PushRejected, "main is protected")
            .with_detail("remote: denied");
        assert_eq!(
            serde_json::to_string(&failure).expect("json"),
            r#"{"ok":false,"code":"push_rejected","message":"main is protected","detail":"remote: denied"}"#
        );
        assert_eq!(
            serde_json::to_string(&TaskFailure::new(FailureCode::NoDelegate, "none"))
                .expect("json"),
            r#"{"ok":false,"code":"no_delegate","message":"none"}"#
        );
        let newer: TaskFailure =
            serde_json::from_str(r#"{"ok":false,"code":"quota_exceeded","message":"later"}"#)
                .expect("a code from a newer version");
        assert_eq!(newer.code, FailureCode::Unknown("quota_exceeded".into()));
        assert_eq!(
            serde_json::to_string(&newer).expect("json"),
            r#"{"ok":false,"code":"quota_exceeded","message":"later"}"#,
            "kept as it came"
        );
        assert!(!newer.code.is_permanent());
        for (code, text) in FailureCode::KNOWN {
            assert_eq!(FailureCode::parse(text), code);
            assert_eq!(code.as_str(), text);
        }
        assert_eq!(TaskKind::parse("sync"), Some(TaskKind::Sync));
        assert_eq!(TaskKind::TestConnection.as_str(), "test_connection");
        assert_eq!(TaskKind::parse("reboot"), None);
        assert_eq!(TaskKind::parse("enable_sync"), Some(TaskKind::EnableSync));
        assert_eq!(TaskKind::parse("fetch_files"), Some(TaskKind::FetchFiles));
        assert_eq!(
            serde_json::to_string(
                &TaskFailure::new(FailureCode::SyncDiffers, "differs").with_field("initial")
            )
            .expect("json"),
            r#"{"ok":false,"code":"sync_differs","message":"differs","field":"initial"}"#
        );
    }

    #[test]
    fn a_failure_says_what_git_said_once() {
        let refused = TaskFailure::new(FailureCode::PushRejected, "u refused the push")
            .with_detail("remote: main is protected");
        assert_eq!(
            refused.explained(),
            "u refused the push (git said: remote: main is protected)"
        );
        let quoted = TaskFailure::new(FailureCode::GitFailed, "git failed for u: fatal: odd")
            .with_detail("send-pack: eof / fatal: odd");
        assert_eq!(quoted.explained(), "git failed for u: fatal: odd");
        assert_eq!(TaskFailure::from_result(None).code, FailureCode::Internal);
    }
}
