//! Git → reposync on the server side: reading a branch on a delegate through the task hub;
//! each commit read is applied by `reposync_core::inbound`.

use reposync_api::{FailureCode, SyncJob, SyncJobResult};
use reposync_core::inbound::apply_commit;
use reposync_store::{StoreError, SyncBranch};
use reposync_sync::{DispatchFailure, Inbound, ReadCommit};

use crate::state::AppState;
use reposync_core::connections::branch_target;

/// Reads branches through the task hub and applies commits to the store.
#[derive(Debug)]
pub struct HubInbound {
    pub state: AppState,
}

#[async_trait::async_trait]
impl Inbound for HubInbound {
    async fn fetch_changes(
        &self,
        branch: &SyncBranch,
        since: Option<&str>,
        max_commits: usize,
    ) -> Result<SyncJobResult, DispatchFailure> {
        let job = SyncJob::FetchChanges {
            since: since.map(str::to_owned),
            prefix: "Setup/".into(),
            max_commits,
        };
        self.run(branch, job).await
    }

    async fn read_head(&self, branch: &SyncBranch) -> Result<Option<String>, DispatchFailure> {
        match self.run(branch, SyncJob::ReadHead).await? {
            SyncJobResult::Head { head } => Ok(head),
            _ => Err(DispatchFailure::new(
                FailureCode::InvalidTask,
                "the delegate answered a head check with something else",
            )),
        }
    }

    async fn apply(&self, branch: &SyncBranch, commit: &ReadCommit) -> Result<(), String> {
        // reposync's own changes can land between planning and applying; the store then
        // refuses and the commit is planned again against them.
        for _ in 0..3 {
            match apply_commit(&self.state.store, branch, commit).await {
                Err(StoreError::Conflict { .. }) => continue,
                other => return other.map_err(|e| e.to_string()),
            }
        }
        Err(format!(
            "commit {} kept meeting new changes made in reposync; it will be read again",
            commit.commit
        ))
    }
}

impl HubInbound {
    /// Runs a sync job on the branch's clone, on a delegate its connector may use.
    async fn run(
        &self,
        branch: &SyncBranch,
        job: SyncJob,
    ) -> Result<SyncJobResult, DispatchFailure> {
        let connector = self
            .state
            .store
            .get_connector_by_id(&branch.connector_id)
            .await
            .map_err(|e| DispatchFailure::new(FailureCode::ConnectorGone, e.to_string()))?;
        let target = branch_target(&connector, branch.repo.as_deref(), &branch.branch)
            .map_err(|e| DispatchFailure::new(FailureCode::InvalidTask, e.to_string()))?;
        self.state
            .tasks
            .run_sync_job(&connector, target, job, None)
            .await
    }
}
