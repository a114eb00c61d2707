//! Work the server does itself, as tasks a client waits on like any other: enabling sync.

use reposync_api::TaskKind;
use reposync_core::links;
use reposync_model::EntityName;
use reposync_store::TaskRecord;

use crate::state::AppState;

/// Runs an enable task in the background.
pub fn spawn_enable(state: &AppState, task: TaskRecord) {
    spawn_enable_after(state, task, None);
}

/// Runs an enable task once a delegate that may read its connector's branch is connected,
/// or its lease has passed (`wait_for`).
fn spawn_enable_after(state: &AppState, task: TaskRecord, wait_for: Option<Vec<String>>) {
    let worker = state.clone();
    state.tasks.spawn_local(task.id.clone(), async move {
        if let Some(selectors) = wait_for {
            let lease = worker.config.delegate_lease;
            worker.tasks.wait_for_delegate(&selectors, lease).await;
        }
        // A failure is the task's result; only one that could not be recorded is news here.
        if let Err(error) = links::run_enable(&worker.store, &worker.tasks, &task).await
            && error.kind == reposync_core::ErrorKind::Internal
        {
            tracing::error!(task = %task.id, %error, "enabling git sync failed");
        }
    });
}

/// Takes up the local tasks a stop or a crash cut off: each is work not done (its effects and
/// its end are one transaction), so it runs again from the start.
pub async fn resume(state: &AppState) {
    match state
        .store
        .running_local_tasks(TaskKind::EnableSync.as_str())
        .await
    {
        Ok(tasks) => {
            for task in tasks {
                tracing::info!(task = %task.id, "resuming an interrupted enable");
                let selectors = selectors_of(state, &task).await;
                spawn_enable_after(state, task, Some(selectors));
            }
        }
        Err(error) => tracing::warn!(%error, "cannot read the interrupted enable tasks"),
    }
}

/// The selectors of the connector an enable task names; none when it cannot be read (the run
/// then says why).
async fn selectors_of(state: &AppState, task: &TaskRecord) -> Vec<String> {
    let Ok(links::EnableTask { request, .. }) = links::EnableTask::read(&task.payload) else {
        return Vec::new();
    };
    let Ok(name) = EntityName::parse(&request.connector) else {
        return Vec::new();
    };
    match state.store.get_connector(&name).await {
        Ok(connector) => connector
            .spec
            .selectors
            .iter()
            .map(|s| s.as_str().to_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}
