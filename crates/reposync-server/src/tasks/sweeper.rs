//! The lease sweeper: tasks whose delegate went quiet go back to the queue, tasks nobody
//! connected can take fail, and tasks past their time limit end.

use std::time::Duration;

use reposync_api::{FailureCode, TaskFailure, TaskKind, TaskOutcome};
use reposync_model::TaskId;
use reposync_store::{Signal, StoreError, TaskStatus, now_millis};

use super::{FETCH_TIMEOUT, SYNC_TIMEOUT, TEST_TIMEOUT, TaskHub};

/// How often the sweeper looks for expired leases when nothing wakes it sooner.
const SWEEP_EVERY: Duration = Duration::from_secs(5);

impl TaskHub {
    /// Ends the tasks among `running` that ran past their kind's time limit, as `timeout`
    /// failures, and returns them: the delegate is told to stop them, which kills their git.
    pub async fn end_overdue(
        &self,
        delegate: &str,
        running: &[TaskId],
    ) -> Result<Vec<TaskId>, StoreError> {
        let now = now_millis();
        let mut overdue = Vec::new();
        for id in running {
            let Ok(task) = self.inner.store.get_task(id).await else {
                continue;
            };
            let limit = match TaskKind::parse(&task.kind) {
                Some(TaskKind::TestConnection) => TEST_TIMEOUT,
                Some(TaskKind::Sync) => SYNC_TIMEOUT,
                Some(TaskKind::FetchFiles) => FETCH_TIMEOUT,
                // The server runs it; no delegate does.
                Some(TaskKind::EnableSync) | None => continue,
            } + Duration::from_secs(15);
            let limit_ms = i64::try_from(limit.as_millis()).unwrap_or(i64::MAX);
            let Some(started) = task.started_at else {
                continue;
            };
            if task.status == TaskStatus::Running
                && task.delegate.as_deref() == Some(delegate)
                && now - started > limit_ms
            {
                let outcome = TaskOutcome::failed(&TaskFailure::new(
                    FailureCode::Timeout,
                    format!(
                        "the task ran past its {} s limit on delegate {delegate} and was stopped",
                        limit.as_secs()
                    ),
                ));
                self.complete(id, delegate, outcome).await?;
                overdue.push(id.clone());
            }
        }
        Ok(overdue)
    }

    /// Returns tasks whose delegate stopped answering to the queue (every few seconds), and
    /// fails the queued tasks that no connected delegate may run once the last delegate that
    /// could has gone: it wakes when a remote delegate's presence lapses, when a claim's end
    /// disconnects one, and when one leaves or its token is revoked.
    ///
    /// Remote delegates come back after a server restart with their next request, within a
    /// lease; until `lease` has passed since the start, a delegate not registered yet is not
    /// judged gone.
    pub async fn run_lease_sweeper(
        &self,
        lease: Duration,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        let expired = TaskFailure::new(
            FailureCode::Timeout,
            "the delegate running this task stopped answering and no attempts are left",
        )
        .to_value()
        .to_string();
        let judge_from = tokio::time::Instant::now() + lease;
        // The connected delegates when queued tasks were last checked: only a change (or a
        // task returned to the queue) can leave a task without a delegate.
        let mut checked_with: Option<Vec<String>> = None;
        let mut sweep_leases_at = tokio::time::Instant::now();
        // A delegate that left or lost its token has leases to end now, not at the next round.
        let mut woken_by_presence = false;
        loop {
            let now = tokio::time::Instant::now();
            let mut requeued = 0;
            if now >= sweep_leases_at || woken_by_presence {
                sweep_leases_at = now + SWEEP_EVERY;
                match self.inner.store.expire_leases(&expired).await {
                    Ok(0) => {}
                    Ok(n) => {
                        tracing::warn!(
                            count = n,
                            "returned tasks with expired leases to the queue"
                        );
                        self.signals().publish(Signal::TaskQueued);
                        requeued = n;
                    }
                    Err(error) => tracing::warn!(%error, "cannot sweep task leases"),
                }
            }
            if now >= judge_from {
                let mut connected: Vec<String> = self
                    .connected_anywhere()
                    .await
                    .into_iter()
                    .map(|d| d.name)
                    .collect();
                connected.sort();
                if requeued > 0 || checked_with.as_ref() != Some(&connected) {
                    match self.fail_stranded().await {
                        Ok(_) => checked_with = Some(connected),
                        Err(error) => {
                            tracing::warn!(%error, "cannot check queued tasks");
                            // Look again next time, whatever changes.
                            checked_with = None;
                        }
                    }
                }
            }
            // Presence lapses are in memory: waking for one costs nothing unless the set of
            // connected delegates changed.
            let mut next = sweep_leases_at;
            if now < judge_from {
                next = next.min(judge_from);
            }
            if let Some(lapse) = self.next_lapse() {
                next = next.min(lapse);
            }
            woken_by_presence = tokio::select! {
                () = &mut shutdown => return,
                () = tokio::time::sleep_until(next) => false,
                () = self.inner.presence.notified() => true,
            };
        }
    }
}
