//! Work the server does itself, as tasks a client waits on like any other: enabling sync.

use reposync_api::TaskKind;
use reposync_core::links;
use reposync_model::EntityName;
use reposync_store::{REPLICA_GONE_AFTER, TaskRecord};

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
    take_up(state, true).await;
}

/// Runs the enable tasks nobody runs any more: at a start, this replica's own; later, those
/// of replicas that are gone.
async fn take_up(state: &AppState, at_start: bool) {
    match state
        .store
        .take_up_local_tasks(TaskKind::EnableSync.as_str(), at_start)
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

/// Says this replica is alive every third of [`REPLICA_GONE_AFTER`], and takes up the local
/// tasks of replicas that are not, until `stop`.
pub async fn run_replica_heartbeat(state: &AppState, stop: impl std::future::Future<Output = ()>) {
    tokio::pin!(stop);
    let mut every = tokio::time::interval(REPLICA_GONE_AFTER / 3);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = &mut stop => return,
            _ = every.tick() => {}
        }
        if let Err(error) = state.store.replica_heartbeat().await {
            tracing::warn!(%error, "cannot tell the other replicas this one is alive");
            continue;
        }
        if state.store.signals().shared() {
            take_up(state, false).await;
        }
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
