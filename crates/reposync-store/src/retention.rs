//! Retention: history older than a configured age leaves the database, so that it does not
//! grow for ever. What a person may still need stays, whatever its age: open sync errors,
//! the commit attempts and commits read from Git they name, attempts whose changesets are
//! not all pushed, and every task still queued or running. A pushed changeset stays until
//! the Git → reposync side has read its commit back (or its link ended): until then it is
//! what marks that commit as reposync's own. The audit trail has an age of its own, usually
//! far longer: who changed what is asked about long after the change's history is gone.

use std::time::Duration;

use crate::error::StoreError;
use crate::store::Store;

/// How long each kind of history is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionAges {
    /// Finished tasks, commit attempts, changesets read back, commits read from Git, how
    /// branches were read, and resolved sync errors.
    pub history: Duration,
    /// Audit events.
    pub audit: Duration,
}

/// How many rows of each kind one pruning removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HistoryPruned {
    pub tasks: u64,
    pub attempts: u64,
    pub changesets: u64,
    pub commits_read: u64,
    /// Reads of branches (how each was done), not the commits they read.
    pub reads: u64,
    pub resolved_errors: u64,
    pub audit_events: u64,
}

impl HistoryPruned {
    pub fn total(&self) -> u64 {
        self.tasks
            + self.attempts
            + self.changesets
            + self.commits_read
            + self.reads
            + self.resolved_errors
            + self.audit_events
    }
}

/// The time `age` before `now`, in milliseconds.
fn cutoff(now: i64, age: Duration) -> i64 {
    now.saturating_sub(i64::try_from(age.as_millis()).unwrap_or(i64::MAX))
}

impl Store {
    /// Removes, in one transaction, the history that ended more than `ages.history` ago by
    /// the store's clock (finished tasks, finished commit attempts, pushed changesets read
    /// back, commits read from Git, reads of branches, and resolved sync errors) and the audit
    /// events recorded more than `ages.audit` ago.
    pub async fn prune_history(&self, ages: RetentionAges) -> Result<HistoryPruned, StoreError> {
        let now = self.now();
        let before = cutoff(now, ages.history);
        let mut tx = self.begin_write().await?;
        let resolved_errors = sqlx::query(
            "DELETE FROM sync_errors WHERE resolved_at IS NOT NULL AND resolved_at < $1",
        )
        .bind(before)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let tasks = sqlx::query(
            "DELETE FROM tasks WHERE status IN ('succeeded', 'failed') AND finished_at < $1",
        )
        .bind(before)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let attempts = sqlx::query(
            "DELETE FROM commit_attempts WHERE status <> 'running' AND finished_at < $1
             AND NOT EXISTS (SELECT 1 FROM changesets c WHERE c.attempt_id = commit_attempts.id AND c.status <> 'pushed')
             AND NOT EXISTS (SELECT 1 FROM sync_errors e WHERE e.attempt_id = commit_attempts.id)",
        )
        .bind(before)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        // Before the commits read from Git: a changeset goes only once its commit was read
        // back, which those rows record.
        let changesets = sqlx::query(
            "DELETE FROM changesets WHERE status = 'pushed' AND updated_at < $1
             AND NOT EXISTS (SELECT 1 FROM commit_attempts a WHERE a.id = changesets.attempt_id)
             AND (
                 EXISTS (SELECT 1 FROM sync_links l WHERE l.id = changesets.link_id AND l.enabled = 0)
                 OR EXISTS (SELECT 1 FROM inbound_commits i WHERE i.commit_id = changesets.commit_id)
             )",
        )
        .bind(before)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let commits_read = sqlx::query(
            "DELETE FROM inbound_commits WHERE applied_at < $1
             AND NOT EXISTS (SELECT 1 FROM sync_errors e
                 WHERE e.branch_id = inbound_commits.branch_id AND e.commit_id = inbound_commits.commit_id)",
        )
        .bind(before)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        // How a branch was read is only ever looked at, never needed to decide anything.
        let reads = sqlx::query("DELETE FROM sync_reads WHERE read_at < $1")
            .bind(before)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let audit_events = sqlx::query("DELETE FROM audit_events WHERE at < $1")
            .bind(cutoff(now, ages.audit))
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(HistoryPruned {
            tasks,
            attempts,
            changesets,
            commits_read,
            reads,
            resolved_errors,
            audit_events,
        })
    }
}
