//! What can go wrong talking to Bitbucket's REST APIs, as data the planner can act on.

use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;

/// The longest server message quoted in an error; the rest is cut, so that a proxy's HTML
/// page cannot flood a log line.
const MAX_QUOTED: usize = 300;

/// A failed REST request. `endpoint` names the call (`"cloud src file"`), never the URL, so
/// that an error can be logged and shown whatever the URL held.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RestError {
    /// The base URL, the CA certificate or a path cannot make a request.
    #[error("{field}: {reason}")]
    Config { field: &'static str, reason: String },
    /// 404: the repository, ref, path or endpoint does not exist (an old Data Center has no
    /// `archive`, for instance).
    #[error("{endpoint}: Bitbucket answered 404 Not Found: {message}")]
    NotFound {
        endpoint: &'static str,
        message: String,
    },
    /// 401: the credentials were refused.
    #[error(
        "{endpoint}: Bitbucket refused the credentials (401): {message}; check the connector's \
         token, and for a Cloud API token its --api-username (the account's email)"
    )]
    Unauthorized {
        endpoint: &'static str,
        message: String,
    },
    /// 403: the credentials are valid but may not do this.
    #[error(
        "{endpoint}: Bitbucket refused the request (403): {message}; give the token read \
         (and for writes, write) access to the repository"
    )]
    Forbidden {
        endpoint: &'static str,
        message: String,
    },
    /// 409: a write built on a head the branch no longer has.
    #[error("{endpoint}: the branch has moved (409): {message}")]
    Conflict {
        endpoint: &'static str,
        message: String,
    },
    /// 429 after the retries the policy allows.
    #[error("{endpoint}: Bitbucket's rate limit was reached (429){}", retry_hint(*.retry_after))]
    RateLimited {
        endpoint: &'static str,
        retry_after: Option<Duration>,
    },
    /// The credential's own request budget refused to send the request, so that Bitbucket
    /// never has to answer 429.
    #[error(
        "{endpoint}: this credential's REST budget is spent ({used} of {limit} requests in \
         the last hour); reading through git instead"
    )]
    BudgetSpent {
        endpoint: &'static str,
        used: u32,
        limit: u32,
    },
    /// Any other status.
    #[error("{endpoint}: Bitbucket answered {status}: {message}")]
    Status {
        endpoint: &'static str,
        status: u16,
        message: String,
    },
    /// No answer: refused connection, TLS failure, timeout, dropped connection.
    #[error("{endpoint}: {reason}")]
    Transport {
        endpoint: &'static str,
        reason: String,
        timed_out: bool,
    },
    /// An answer that is not the documented shape.
    #[error("{endpoint}: unexpected answer from Bitbucket: {reason}")]
    Decode {
        endpoint: &'static str,
        reason: String,
    },
    /// An answer larger than the caller allowed to hold in memory.
    #[error("{endpoint}: the answer is larger than {limit} bytes")]
    TooLarge { endpoint: &'static str, limit: u64 },
}

fn retry_hint(retry_after: Option<Duration>) -> String {
    match retry_after {
        Some(wait) => format!("; Bitbucket asks to wait {} s", wait.as_secs()),
        None => "; Bitbucket said nothing of when to retry".to_owned(),
    }
}

impl RestError {
    /// The HTTP status behind the error, when there was an answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            RestError::NotFound { .. } => Some(404),
            RestError::Unauthorized { .. } => Some(401),
            RestError::Forbidden { .. } => Some(403),
            RestError::Conflict { .. } => Some(409),
            RestError::RateLimited { .. } => Some(429),
            RestError::Status { status, .. } => Some(*status),
            RestError::Config { .. }
            | RestError::BudgetSpent { .. }
            | RestError::Transport { .. }
            | RestError::Decode { .. }
            | RestError::TooLarge { .. } => None,
        }
    }

    /// Builds the error for a non-success answer from its status, headers and body, reading
    /// whichever error envelope the body holds.
    pub(crate) fn from_answer(
        endpoint: &'static str,
        status: u16,
        retry_after: Option<Duration>,
        body: &[u8],
    ) -> RestError {
        let message = error_message(body);
        match status {
            401 => RestError::Unauthorized { endpoint, message },
            403 => RestError::Forbidden { endpoint, message },
            404 => RestError::NotFound { endpoint, message },
            409 => RestError::Conflict { endpoint, message },
            429 => RestError::RateLimited {
                endpoint,
                retry_after,
            },
            status => RestError::Status {
                endpoint,
                status,
                message,
            },
        }
    }
}

/// Cloud's envelope: `{"type":"error","error":{"message":…,"detail":…}}`.
#[derive(Deserialize)]
struct CloudEnvelope {
    error: CloudErrorBody,
}

#[derive(Deserialize)]
struct CloudErrorBody {
    message: String,
    #[serde(default)]
    detail: Option<String>,
}

/// Data Center's envelope: `{"errors":[{"message":…,"exceptionName":…}]}`.
#[derive(Deserialize)]
struct DcEnvelope {
    errors: Vec<DcErrorBody>,
}

#[derive(Deserialize)]
struct DcErrorBody {
    message: String,
}

/// The message of an error answer: from either JSON envelope, or the plain text Cloud sends
/// with some 401s and 429s, cut to a bound.
pub(crate) fn error_message(body: &[u8]) -> String {
    let text = if let Ok(cloud) = serde_json::from_slice::<CloudEnvelope>(body) {
        match cloud.error.detail {
            Some(detail) if !detail.is_empty() => format!("{} ({detail})", cloud.error.message),
            _ => cloud.error.message,
        }
    } else if let Ok(dc) = serde_json::from_slice::<DcEnvelope>(body) {
        dc.errors
            .into_iter()
            .map(|error| error.message)
            .collect::<Vec<_>>()
            .join("; ")
    } else {
        String::from_utf8_lossy(body).trim().to_owned()
    };
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.is_empty() {
        return "no message".to_owned();
    }
    match text.char_indices().nth(MAX_QUOTED) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_envelopes_and_plain_text() {
        let cloud = br#"{"type":"error","error":{"message":"No such file or directory: a.yaml"}}"#;
        assert_eq!(error_message(cloud), "No such file or directory: a.yaml");
        let dc = br#"{"errors":[{"context":null,"message":"Commit 'x' does not exist in repository 'r'.","exceptionName":"com.atlassian.bitbucket.commit.NoSuchCommitException"}]}"#;
        assert_eq!(
            error_message(dc),
            "Commit 'x' does not exist in repository 'r'."
        );
        assert_eq!(
            error_message(b"Rate limit for this resource has been exceeded\n"),
            "Rate limit for this resource has been exceeded"
        );
        assert_eq!(error_message(b""), "no message");
    }

    #[test]
    fn a_long_message_is_cut() {
        let long = "x".repeat(5000);
        let message = error_message(long.as_bytes());
        assert_eq!(message.chars().count(), MAX_QUOTED + 1);
        assert!(message.ends_with('…'));
    }

    #[test]
    fn statuses_pick_the_kind() {
        let not_found = RestError::from_answer("cloud src file", 404, None, b"{}");
        assert!(matches!(not_found, RestError::NotFound { .. }));
        let limited = RestError::from_answer("cloud src file", 429, None, b"");
        assert_eq!(limited.status(), Some(429));
        assert!(
            limited
                .to_string()
                .contains("said nothing of when to retry")
        );
    }
}
