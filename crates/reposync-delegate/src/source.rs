//! Where an agent's tasks come from and where their outcomes go, and how that can fail.

use std::path::Path;
use std::time::Duration;

use reposync_api::{DelegateTask, TaskOutcome};
use reposync_model::TaskId;

/// Where tasks come from and where their outcomes go.
#[async_trait::async_trait]
pub trait TaskSource: Send + Sync {
    /// Waits up to `wait` for a task this delegate may run.
    async fn claim(&self, wait: Duration) -> Result<Option<DelegateTask>, SourceError>;
    /// Reports a task's outcome.
    async fn complete(&self, task_id: &TaskId, outcome: TaskOutcome) -> Result<(), SourceError>;
    /// Hands the server the archive a fetch task wrote at `archive` (a file in the delegate's
    /// temporary root), streamed; called before the task's outcome is reported, which the
    /// server accepts as a success only once it holds the archive.
    async fn upload_archive(&self, task_id: &TaskId, archive: &Path) -> Result<(), SourceError>;
}

/// The task source failed: for a while (the server is down) or for good (the token was
/// revoked), which [`SourceError::is_fatal`] tells apart.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    /// The source cannot be reached or answered unexpectedly; asking again later may work.
    #[error("{0}")]
    Unavailable(String),
    /// The server refused the delegate's token (unknown or revoked): retrying cannot help.
    #[error("{0}")]
    Unauthorized(String),
    /// The server refused the delegate itself for good (its registration is invalid).
    #[error("{0}")]
    Rejected(String),
}

impl SourceError {
    /// Whether the delegate must stop rather than try again.
    pub fn is_fatal(&self) -> bool {
        !matches!(self, SourceError::Unavailable(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_refusals_are_fatal() {
        assert!(!SourceError::Unavailable("database is locked".into()).is_fatal());
        assert!(SourceError::Unauthorized("revoked".into()).is_fatal());
        assert!(SourceError::Rejected("bad name".into()).is_fatal());
    }
}
