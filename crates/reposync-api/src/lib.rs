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
    FetchFilesSpec, FetchProblem, FetchResult, FetchedFile, FileContent, HeartbeatRequest,
    HeartbeatResponse, LandedView, MAX_FETCH_ARCHIVE_BYTES, MadeBy, ReadPlanning, ReadReport,
    RegisterRequest, RegisterResponse, RestTarget, SyncJob, SyncJobResult, SyncSpec, SyncTarget,
    TaskAuth, TaskOutcome, TaskSpec, TestConnectionSpec, UnrepresentableRead,
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

/// A time as the API writes it (RFC 3339, any offset) in milliseconds since the epoch; `None`
/// for text that is not one, or a time milliseconds cannot hold.
pub fn parse_timestamp(text: &str) -> Option<i64> {
    let at =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_back_to_the_milliseconds_they_were_written_from() {
        for millis in [0, 1_764_064_800_123, -1] {
            assert_eq!(parse_timestamp(&timestamp(millis)), Some(millis));
        }
        assert_eq!(
            parse_timestamp("2026-11-25T12:00:00+02:00"),
            parse_timestamp("2026-11-25T10:00:00Z"),
            "any offset"
        );
        for bad in [
            "",
            "yesterday",
            "2026-11-25",
            "1764064800123",
            "2026-11-25 10:00:00",
        ] {
            assert_eq!(parse_timestamp(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn an_audit_query_sends_only_what_was_given() {
        let query = AuditQuery {
            user: Some("alice".into()),
            limit: Some("5".into()),
            ..AuditQuery::default()
        };
        assert_eq!(
            query.pairs(),
            [("user", "alice".to_owned()), ("limit", "5".to_owned())]
        );
        assert!(AuditQuery::default().pairs().is_empty());
    }
}
