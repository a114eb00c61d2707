//! What a use case refuses or fails with: a kind (which a front end turns into its own status,
//! an HTTP status for the API), a stable code, words a person can act on, and the field or
//! path it is about.

use reposync_api::{FailureCode, ImportReport, TaskFailure};
use reposync_model::FieldError;
use reposync_store::StoreError;

/// The kind of a refusal or failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request is wrong: a field, a file, a choice that cannot be made.
    Invalid,
    /// Something it names does not exist.
    NotFound,
    /// The state of things refuses it (already linked, differs, needs confirmation).
    Conflict,
    /// reposync itself failed; the details are in the log.
    Internal,
    /// Who is asking is not known: no credentials, or wrong ones.
    Unauthenticated,
    /// The caller is known but lacks the rights.
    Forbidden,
    /// Too many attempts; `retry_after_secs` says when to come again.
    Throttled,
    /// The database cannot be reached now; nothing was changed, and the same request may
    /// succeed in a moment (`retry_after_secs`).
    Unavailable,
}

/// A use case's refusal or failure.
#[derive(Debug, Clone)]
pub struct CoreError {
    pub kind: ErrorKind,
    /// A stable code (`already_linked`, `sync_differs`, `invalid`…).
    pub code: &'static str,
    pub message: String,
    /// The request field (or file path) it is about.
    pub field: Option<String>,
    /// For a refused tree edit: every problem, file by file.
    pub report: Option<Box<ImportReport>>,
    /// For a throttled attempt: whole seconds until the next may be made.
    pub retry_after_secs: Option<u64>,
}

impl CoreError {
    pub fn new(kind: ErrorKind, code: &'static str, message: impl Into<String>) -> CoreError {
        CoreError {
            kind,
            code,
            message: message.into(),
            field: None,
            report: None,
            retry_after_secs: None,
        }
    }

    pub fn with_field(mut self, field: impl Into<String>) -> CoreError {
        self.field = Some(field.into());
        self
    }

    /// A field of the request is wrong.
    pub fn invalid(field: &str, message: impl Into<String>) -> CoreError {
        CoreError::new(ErrorKind::Invalid, "invalid", message).with_field(field)
    }

    /// The caller lacks the rights for what they asked.
    pub fn forbidden(message: impl Into<String>) -> CoreError {
        CoreError::new(ErrorKind::Forbidden, "forbidden", message)
    }

    pub fn not_found(message: impl Into<String>) -> CoreError {
        CoreError::new(ErrorKind::NotFound, "not_found", message)
    }

    pub fn internal(message: impl Into<String>) -> CoreError {
        CoreError::new(ErrorKind::Internal, "internal", message)
    }

    /// A body that is JSON but not the expected shape. serde's messages quote offending
    /// values ("invalid type: integer `123456`, expected a string"), and the value may be a
    /// secret, so the quoted part is dropped; field names (`unknown field `colour``) are kept,
    /// and become the error's field.
    pub fn malformed_data(serde_message: &str) -> CoreError {
        let mut message = serde_message.to_owned();
        for marker in ["invalid type: ", "invalid value: ", "invalid length "] {
            if let Some(start) = message.find(marker)
                && let Some(expected) = message[start..].find(", expected ")
            {
                let end = start + expected;
                message.replace_range(start + marker.len()..end + 2, "");
            }
        }
        let field = ["unknown field `", "missing field `"]
            .iter()
            .find_map(|marker| {
                let (_, rest) = serde_message.split_once(marker)?;
                rest.split_once('`').map(|(field, _)| field.to_owned())
            });
        CoreError {
            field,
            ..CoreError::new(ErrorKind::Invalid, "invalid", message)
        }
    }

    /// A tree edit refused, with every problem at its file and line.
    pub fn refused_tree(report: ImportReport) -> CoreError {
        let problems: Vec<String> = report
            .problems
            .iter()
            .map(|p| match p.line {
                0 => format!("{}: {}", p.path, p.message),
                line => format!("{}:{line}:{}: {}", p.path, p.column, p.message),
            })
            .collect();
        CoreError {
            report: Some(Box::new(report)),
            ..CoreError::new(ErrorKind::Invalid, "invalid_tree", problems.join("; "))
        }
    }
}

impl CoreError {
    /// The error as the result of a failed task, for a client that waits on the task instead
    /// of its request's answer.
    pub fn to_task_failure(&self) -> TaskFailure {
        let code = match self.code {
            "invalid" => FailureCode::InvalidRequest,
            code => FailureCode::parse(code),
        };
        let failure = TaskFailure::new(code, self.message.clone());
        match &self.field {
            Some(field) => failure.with_field(field.clone()),
            None => failure,
        }
    }
}

impl std::fmt::Display for CoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.field {
            Some(field) => write!(f, "{field}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for CoreError {}

impl From<FieldError> for CoreError {
    fn from(error: FieldError) -> CoreError {
        CoreError::invalid(&error.field, error.message)
    }
}

/// A private key that cannot be used, named by a code of its own and reported against the
/// field that holds what is wrong (the key, or its passphrase).
impl From<reposync_secrets::SshKeyError> for CoreError {
    fn from(error: reposync_secrets::SshKeyError) -> CoreError {
        use reposync_secrets::SshKeyError;
        let code = match error {
            SshKeyError::PublicKeyGiven => "public_key_given",
            SshKeyError::PassphraseRequired => "passphrase_required",
            SshKeyError::WrongPassphrase => "wrong_passphrase",
            SshKeyError::DsaUnsupported => "dsa_unsupported",
            SshKeyError::UnsupportedAlgorithm(_) => "unsupported_key_type",
            SshKeyError::Unrecognized => "unrecognized_key",
            SshKeyError::Malformed(_) => "malformed_key",
        };
        let field = if matches!(
            error,
            SshKeyError::PassphraseRequired | SshKeyError::WrongPassphrase
        ) {
            "passphrase"
        } else {
            "private_key"
        };
        CoreError::new(ErrorKind::Invalid, code, error.to_string()).with_field(field)
    }
}

impl From<StoreError> for CoreError {
    fn from(error: StoreError) -> CoreError {
        match error {
            StoreError::NotFound { .. } => CoreError::not_found(error.to_string()),
            StoreError::AlreadyExists { .. } => {
                CoreError::new(ErrorKind::Conflict, "already_exists", error.to_string())
                    .with_field("name")
            }
            StoreError::Invalid { field, message } => CoreError::invalid(&field, message),
            StoreError::Conflict { .. } => {
                CoreError::new(ErrorKind::Conflict, "conflict", error.to_string())
            }
            StoreError::InUse { .. } => {
                CoreError::new(ErrorKind::Conflict, "in_use", error.to_string())
            }
            StoreError::Taken { .. } => {
                CoreError::new(ErrorKind::Conflict, "name_taken", error.to_string())
                    .with_field("name")
            }
            other if other.is_unavailable() => {
                tracing::warn!(error = %other, "the database cannot be reached");
                let mut error = CoreError::new(
                    ErrorKind::Unavailable,
                    "database_unavailable",
                    "the database cannot be reached; nothing was changed. Try again in a few seconds",
                );
                error.retry_after_secs = Some(5);
                error
            }
            other => {
                tracing::error!(error = %other, "store failure");
                CoreError::internal("internal error; see the server log")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_errors_never_quote_the_offending_value() {
        let error = CoreError::malformed_data(
            "invalid type: integer `123456`, expected a string at line 1 column 30",
        );
        assert!(!error.message.contains("123456"), "{}", error.message);
        assert!(
            error.message.contains("expected a string"),
            "{}",
            error.message
        );
        let error = CoreError::malformed_data(
            "unknown field `colour`, expected one of `name`, `value` at line 1 column 9",
        );
        assert_eq!(error.field.as_deref(), Some("colour"));
        let error = CoreError::malformed_data("missing field `url` at line 1 column 2");
        assert_eq!(error.field.as_deref(), Some("url"));
    }
}
