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
