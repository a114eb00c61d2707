//! The hub as the use cases and the outbox reach it: Tests, sync jobs, and the waiting for
//! their results.

use std::time::Duration;

use reposync_api::{
    FailureCode, SyncJob, SyncJobResult, SyncTarget, TaskFailure, TaskKind, TestResult,
};
use reposync_core::connections::{Tested, branch_target, check_connections, target};
use reposync_core::inbound::apply_commit;
use reposync_model::tree::ROOT;
use reposync_model::{AttemptId, ConnectorId, GitConnector, ObjectId, TaskId};
use reposync_store::{
    ConnectorRecord, Fence, StoreError, SyncBranch, SyncLink, TaskRecord, TaskStatus, now_millis,
};
use reposync_sync::{
    ConnectionFailure, Dispatch, DispatchFailure, Inbound, JobAnswer, ReadCommit, result_commit,
};
use serde_json::Value;

use super::{
    SYNC_TIMEOUT, SyncPayload, TEST_TIMEOUT, TaskHub, TestConnectionPayload, failed_test_result,
};
use crate::views::timestamp;

impl TaskHub {
    /// Queues a Test of `tested` against `url` (its own, or for an account-scope connector,
    /// one repository under it). A saved connector's result becomes its last Test; a draft's
    /// settings travel in the task, the only place they are kept.
    pub async fn enqueue_test(
        &self,
        tested: Tested<'_>,
        url: String,
    ) -> Result<TaskRecord, StoreError> {
        let spec = tested.spec();
        let branch = spec.branch.as_ref().map(ToString::to_string);
        let (connector_id, draft) = match tested {
            Tested::Saved(record) => (Some(record.id.clone()), None),
            Tested::Draft(spec) => (None, Some(spec.to_draft())),
        };
        let payload = TestConnectionPayload {
            connector_id,
            draft,
            url: url.clone(),
            branch: branch.clone(),
        };
        self.enqueue(TaskKind::TestConnection, &payload, spec, |message| {
            failed_test_result(&url, branch.as_deref(), "no_delegate", message)
        })
        .await
    }

    /// The result of `task` when it is a finished Test of a draft whose settings, parsed
    /// again, are exactly `spec`; `None` for any other task, or one that does not exist.
    pub async fn draft_test_result(
        &self,
        task: &TaskId,
        spec: &GitConnector,
    ) -> Result<Option<String>, StoreError> {
        let task = match self.inner.store.get_task(task).await {
            Ok(task) => task,
            Err(StoreError::NotFound { .. }) => return Ok(None),
            Err(other) => return Err(other),
        };
        if TaskKind::parse(&task.kind) != Some(TaskKind::TestConnection) || !task.status.is_final()
        {
            return Ok(None);
        }
        let tested = serde_json::from_str::<TestConnectionPayload>(&task.payload)
            .ok()
            .and_then(|payload| payload.draft)
            .and_then(|draft| GitConnector::parse(&draft).ok());
        Ok(match tested {
            Some(tested) if tested == *spec => task.result,
            _ => None,
        })
    }

    /// Runs a Test to its end (or past its time limit) and returns the result.
    pub async fn run_test(
        &self,
        connector: &ConnectorRecord,
        url: String,
    ) -> Result<TestResult, StoreError> {
        let task = self
            .enqueue_test(Tested::Saved(connector), url.clone())
            .await?;
        let task = self
            .wait_final(&task.id, TEST_TIMEOUT + Duration::from_secs(30))
            .await?;
        let result = task
            .result
            .as_deref()
            .and_then(|r| serde_json::from_str::<TestResult>(r).ok());
        Ok(result.unwrap_or_else(|| TestResult {
            ok: false,
            url,
            branch: None,
            commit: None,
            code: Some("timeout".into()),
            message: Some("no delegate finished the Test in time".into()),
            delegate: None,
            capabilities: None,
            duration_ms: 0,
            tested_at: timestamp(now_millis()),
        }))
    }

    /// Runs a sync job for `connector` on a delegate with its selectors and waits for the
    /// result, which names the task.
    pub async fn run_sync_job(
        &self,
        connector: &ConnectorRecord,
        target: SyncTarget,
        job: SyncJob,
        attempt_id: Option<&AttemptId>,
    ) -> Result<JobAnswer, DispatchFailure> {
        let internal = |e: StoreError| DispatchFailure::new(FailureCode::Internal, e.to_string());
        let payload = SyncPayload {
            connector_id: connector.id.clone(),
            target,
            job,
        };
        let task = self
            .enqueue(TaskKind::Sync, &payload, &connector.spec, |message| {
                TaskFailure::new(FailureCode::NoDelegate, message).to_value()
            })
            .await
            .map_err(internal)?;
        if let Some(attempt_id) = attempt_id {
            self.inner
                .store
                .set_attempt_task(attempt_id, &task.id)
                .await
                .map_err(internal)?;
        }
        // The delegate's own limit, plus room to be claimed and to report.
        let task = self
            .wait_final(&task.id, SYNC_TIMEOUT + Duration::from_secs(30))
            .await
            .map_err(internal)?;
        let result: Value = task
            .result
            .as_deref()
            .and_then(|r| serde_json::from_str(r).ok())
            .unwrap_or(Value::Null);
        match task.status {
            TaskStatus::Succeeded => serde_json::from_value(result)
                .map(|result| JobAnswer {
                    result,
                    task: Some(task.id),
                })
                .map_err(|e| {
                    DispatchFailure::new(
                        FailureCode::Internal,
                        format!("unreadable sync result: {e}"),
                    )
                }),
            TaskStatus::Failed => {
                let failure = TaskFailure::from_result(task.result.as_deref());
                Err(DispatchFailure::new(
                    failure.code.clone(),
                    failure.explained(),
                ))
            }
            TaskStatus::Queued | TaskStatus::Running => Err(DispatchFailure::new(
                FailureCode::Timeout,
                "no delegate finished the sync task in time",
            )),
        }
    }
}

#[async_trait::async_trait]
impl reposync_core::connections::Delegates for TaskHub {
    async fn run_sync_job(
        &self,
        connector: &ConnectorRecord,
        target: SyncTarget,
        job: SyncJob,
        attempt: Option<&AttemptId>,
    ) -> Result<JobAnswer, DispatchFailure> {
        TaskHub::run_sync_job(self, connector, target, job, attempt).await
    }

    async fn enqueue_test(
        &self,
        tested: Tested<'_>,
        url: String,
    ) -> Result<TaskRecord, StoreError> {
        TaskHub::enqueue_test(self, tested, url).await
    }

    async fn draft_test_result(
        &self,
        task: &TaskId,
        spec: &GitConnector,
    ) -> Result<Option<String>, StoreError> {
        TaskHub::draft_test_result(self, task, spec).await
    }

    async fn run_test(
        &self,
        connector: &ConnectorRecord,
        url: String,
    ) -> Result<TestResult, StoreError> {
        TaskHub::run_test(self, connector, url).await
    }
}

/// The outbox's way to delegates: a sync task per job.
#[async_trait::async_trait]
impl Dispatch for TaskHub {
    async fn run_job(
        &self,
        link: &SyncLink,
        attempt_id: &AttemptId,
        job: SyncJob,
    ) -> Result<SyncJobResult, DispatchFailure> {
        let connector = self.connector_of(&link.connector_id).await?;
        let target = target(&connector, link)
            .map_err(|e| DispatchFailure::new(FailureCode::InvalidTask, e.to_string()))?;
        self.run_sync_job(&connector, target, job, Some(attempt_id))
            .await
            .map(|answer| answer.result)
    }

    async fn check_connections(&self, link: &SyncLink) -> Result<(), ConnectionFailure> {
        // A connector that is gone fails the job itself, with its own code.
        let Ok(connector) = self.connector_of(&link.connector_id).await else {
            return Ok(());
        };
        check_connections(&self.inner.store, self, &connector, link).await
    }
}

/// The inbox's way to delegates: reads of a branch's clone; each commit read is applied by
/// `reposync_core::inbound`.
#[async_trait::async_trait]
impl Inbound for TaskHub {
    async fn fetch_changes(
        &self,
        branch: &SyncBranch,
        since: Option<&ObjectId>,
        max_commits: usize,
    ) -> Result<JobAnswer, DispatchFailure> {
        let job = SyncJob::FetchChanges {
            since: since.map(ObjectId::to_string),
            // The whole tree: the inbox sorts each file to its scope.
            prefix: format!("{ROOT}/"),
            max_commits,
        };
        self.run_on_branch(branch, job).await
    }

    async fn read_head(&self, branch: &SyncBranch) -> Result<Option<ObjectId>, DispatchFailure> {
        match self.run_on_branch(branch, SyncJob::ReadHead).await?.result {
            SyncJobResult::Head { head } => head.map(|h| result_commit("head", &h)).transpose(),
            _ => Err(DispatchFailure::new(
                FailureCode::InvalidTask,
                "the delegate answered a head check with something else",
            )),
        }
    }

    async fn apply(
        &self,
        branch: &SyncBranch,
        commit: &ReadCommit,
        fence: Option<&Fence>,
    ) -> Result<(), String> {
        apply_commit(&self.inner.store, branch, commit, fence)
            .await
            .map_err(|e| e.to_string())
    }
}

impl TaskHub {
    /// The connector a task works for; one deleted meanwhile fails the job.
    async fn connector_of(&self, id: &ConnectorId) -> Result<ConnectorRecord, DispatchFailure> {
        self.inner
            .store
            .get_connector_by_id(id)
            .await
            .map_err(|e| DispatchFailure::new(FailureCode::ConnectorGone, e.to_string()))
    }

    /// Runs a sync job on a branch's clone, on a delegate its connector may use.
    async fn run_on_branch(
        &self,
        branch: &SyncBranch,
        job: SyncJob,
    ) -> Result<JobAnswer, DispatchFailure> {
        let connector = self.connector_of(&branch.connector_id).await?;
        let target = branch_target(&connector, branch.repo.as_deref(), &branch.branch)
            .map_err(|e| DispatchFailure::new(FailureCode::InvalidTask, e.to_string()))?;
        self.run_sync_job(&connector, target, job, None).await
    }
}
