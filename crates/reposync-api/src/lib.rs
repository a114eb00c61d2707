//! The wire format of reposync's REST and delegate APIs, and a typed client for them.
//!
//! The server, the CLI and remote delegates agree through these types only. Some tests exist
//! to freeze their JSON, because other tools script against it. Secret values cross the wire
//! in exactly two places: into the server when a user creates a secret, and out to the delegate
//! that runs a task needing them; [`SecretValue`] keeps them out of `Debug` output on the way.

mod client;
mod delegate;
mod error;
#[cfg(feature = "openapi")]
mod examples;
mod task;
mod types;

pub use client::{Client, ClientError, decode};
pub use delegate::{
    ChangedFileRead, CommitRead, CommittedFileView, DELEGATE_NAME_HEADER, DelegateTask,
    FileContent, HeartbeatRequest, HeartbeatResponse, LandedView, MadeBy, RegisterRequest,
    RegisterResponse, SyncJob, SyncJobResult, SyncSpec, SyncTarget, TaskAuth, TaskOutcome,
    TaskSpec, TestConnectionSpec, UnrepresentableRead,
};
pub use error::{ApiError, ApiErrorBody};
pub use task::{FailureCode, TaskFailure, TaskKind};
pub use types::*;

/// Milliseconds since the epoch as the API writes times: RFC 3339
/// (`2026-11-25T10:00:00.123Z`).
pub fn timestamp(millis: i64) -> String {
    let nanos = i128::from(millis) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| millis.to_string())
}

/// A secret value on the wire: serialised as a plain string, never shown by `Debug`.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(format = Password))]
pub struct SecretValue(String);

impl SecretValue {
    pub fn new(value: impl Into<String>) -> SecretValue {
        SecretValue(value.into())
    }

    /// The value itself, for the one place that must use it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Drop for SecretValue {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}
