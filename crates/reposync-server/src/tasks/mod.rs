//! The task hub: queues work for delegates, wakes long-polling delegates the moment work
//! arrives, attaches credentials at claim time, and records outcomes.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::Duration;

use reposync_api::{FailureCode, SyncJob, SyncTarget, TaskFailure, TaskKind, TaskOutcome};
use reposync_model::{ConnectorDraft, ConnectorId, Credentials, GitConnector, TaskId};
use reposync_store::{Claim, NewTask, Signal, Signals, Store, StoreError, TaskRecord, now_millis};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::{Notify, broadcast};

use crate::views::timestamp;

mod builtin;
mod credentials;
mod dispatch;
mod fetches;
mod presence;
mod sweeper;

pub use builtin::{BUILTIN_DELEGATE_NAME, BuiltinDelegate};
pub use fetches::{FETCHES_DIR_NAME, FetchPayload};
pub use presence::DelegateInfo;
use presence::{Known, no_delegate_message};

/// How long one sync job may run on a delegate, fetches and retries included.
pub const SYNC_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a Test's git operation may run.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a waiter looks at the tables again when replicas share the database, in case
/// another replica's notification was lost.
const SHARED_LOOK_AGAIN: Duration = Duration::from_secs(2);
/// How long a fetch of files may run on a delegate, its archive's upload included.
pub const FETCH_TIMEOUT: Duration = SYNC_TIMEOUT;

/// Queues tasks and wakes the delegates and clients waiting on them.
#[derive(Clone)]
pub struct TaskHub {
    inner: Arc<Inner>,
}

/// Tasks queued and finished, and delegates connecting, are the store's [`Signals`]: a
/// delegate waiting on one replica is woken by a task queued on another.
struct Inner {
    store: Store,
    closing: tokio::sync::watch::Sender<bool>,
    delegates: Mutex<Vec<Known>>,
    /// The delegates whose presence changed since it was last written for the other
    /// replicas to see (`presence::run_publisher`); only when the database is shared.
    unpublished: Mutex<std::collections::HashSet<String>>,
    /// Wakes the presence publisher.
    publish: Notify,
    /// Wakes the sweeper when a delegate may have gone (its last claim ended after its lease,
    /// it left, its token was revoked), to fail the tasks nobody connected can take. One
    /// waiter, so a notification sent while it is busy is kept for its next wait.
    presence: Notify,
    /// Per kind of connector, which delegates last succeeded and failed with it.
    routes: Mutex<HashMap<String, RouteHistory>>,
    /// The kind of connector of each task not yet finished.
    task_routes: Mutex<HashMap<TaskId, String>>,
    /// Where fetches' archives are kept (`<data-dir>/fetches`); `None` keeps none, and
    /// fetches then fail when their archive arrives.
    archives: Option<std::path::PathBuf>,
}

/// Which delegates last succeeded and failed with one kind of connector.
#[derive(Debug, Clone, Default)]
struct RouteHistory {
    last_ok: Option<String>,
    last_failed: Option<String>,
}

/// The kind of connector, for choosing delegates: its provider and its transport.
fn route_of(connector: &GitConnector) -> String {
    let transport = match connector.credentials {
        Credentials::Https { .. } => "https",
        Credentials::Ssh { .. } => "ssh",
    };
    format!("{:?}/{transport}", connector.provider)
}

impl std::fmt::Debug for TaskHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskHub").finish_non_exhaustive()
    }
}

/// What a Test task names; no credentials.
#[derive(Debug, Serialize, Deserialize)]
pub struct TestConnectionPayload {
    /// The saved connector tested, whose last Test the result becomes; none for a draft.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connector_id: Option<ConnectorId>,
    /// The settings of a connector tested before it is saved (its secrets by name, never
    /// their values): the only place the draft is kept, so the credentials can be opened at
    /// claim time as for a saved one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub draft: Option<ConnectorDraft>,
    pub url: String,
    pub branch: Option<String>,
}

/// What a sync task names; the credentials are attached at claim time.
#[derive(Debug, Serialize, Deserialize)]
pub struct SyncPayload {
    pub connector_id: ConnectorId,
    pub target: SyncTarget,
    pub job: SyncJob,
}

impl TaskHub {
    pub fn new(store: Store) -> TaskHub {
        TaskHub::build(store, None)
    }

    /// A hub that keeps fetches' archives in `archives` (`<data-dir>/fetches`).
    pub fn with_archives(store: Store, archives: std::path::PathBuf) -> TaskHub {
        TaskHub::build(store, Some(archives))
    }

    fn build(store: Store, archives: Option<std::path::PathBuf>) -> TaskHub {
        TaskHub {
            inner: Arc::new(Inner {
                store,
                closing: tokio::sync::watch::Sender::new(false),
                delegates: Mutex::new(Vec::new()),
                unpublished: Mutex::default(),
                publish: Notify::new(),
                presence: Notify::new(),
                routes: Mutex::new(HashMap::new()),
                task_routes: Mutex::new(HashMap::new()),
                archives,
            }),
        }
    }

    /// Queues a task. When no connected delegate has every selector it asks for, the task fails
    /// at once with `no_delegate_result(explanation)` rather than waiting for a timeout.
    ///
    /// Among the delegates that qualify, the one that last succeeded with the same kind of
    /// connector gets the first chance, and the one that last failed with it the last.
    pub async fn enqueue(
        &self,
        kind: TaskKind,
        payload: &impl Serialize,
        connector: &GitConnector,
        no_delegate_result: impl FnOnce(String) -> Value,
    ) -> Result<TaskRecord, StoreError> {
        let payload =
            serde_json::to_string(payload).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let selectors: Vec<String> = connector
            .selectors
            .iter()
            .map(|s| s.as_str().to_owned())
            .collect();
        let route = route_of(connector);
        let delegates = self.connected_anywhere().await;
        let (prefer, avoid) = {
            let routes = self.inner.routes.lock();
            let history = routes.get(&route).cloned().unwrap_or_default();
            let eligible = |name: &str| {
                delegates
                    .iter()
                    .any(|d| d.name == name && d.eligibility.admits(&selectors))
            };
            let prefer = history
                .last_ok
                .filter(|ok| Some(ok) != history.last_failed.as_ref() && eligible(ok));
            (prefer, history.last_failed)
        };
        let task = self
            .inner
            .store
            .enqueue_task(&NewTask {
                kind: kind.as_str().to_owned(),
                payload,
                selectors: selectors.clone(),
                max_attempts: 3,
                prefer,
                avoid,
            })
            .await?;
        self.inner.task_routes.lock().insert(task.id.clone(), route);
        if !delegates.iter().any(|d| d.eligibility.admits(&selectors)) {
            let message = no_delegate_message(&selectors, &delegates);
            let result = no_delegate_result(message).to_string();
            if let Some(failed) = self.fail_queued(&task.id, &result).await? {
                return Ok(failed);
            }
        }
        self.signals().publish(Signal::TaskQueued);
        Ok(task)
    }

    /// Fails a queued task that no delegate will run, with what follows from it: a Test's
    /// result becomes its connector's last Test, and whoever waits for the task is woken.
    /// `None` when the task was no longer queued (a delegate claimed it meanwhile).
    pub(super) async fn fail_queued(
        &self,
        task_id: &TaskId,
        result: &str,
    ) -> Result<Option<TaskRecord>, StoreError> {
        let Some(failed) = self.inner.store.fail_queued_task(task_id, result).await? else {
            return Ok(None);
        };
        self.inner.task_routes.lock().remove(task_id);
        self.record_test_result(&failed, result).await?;
        self.signals()
            .publish(Signal::TaskFinished(failed.id.clone()));
        Ok(Some(failed))
    }

    /// Fails, as `no_delegate`, every queued task that no connected delegate may run: the
    /// delegates that could have run it went away (stopped, killed, cut off, or their token
    /// was revoked). Returns how many failed.
    pub async fn fail_stranded(&self) -> Result<u64, StoreError> {
        let delegates = self.connected_anywhere().await;
        let mut failed = 0;
        for task in self.inner.store.queued_tasks().await? {
            if delegates
                .iter()
                .any(|d| d.eligibility.admits(&task.selectors))
            {
                continue;
            }
            let message = format!(
                "the delegates that could run this task went away: {}",
                no_delegate_message(&task.selectors, &delegates)
            );
            let result = no_delegate_outcome(&task, message).to_string();
            if self.fail_queued(&task.id, &result).await?.is_some() {
                tracing::warn!(task = %task.id, kind = %task.kind, "no connected delegate can run a queued task; it failed");
                failed += 1;
            }
        }
        Ok(failed)
    }

    /// Claims a task for `delegate`, waiting up to `wait` for one to arrive. The wake-up comes
    /// from [`TaskHub::enqueue`], so an idle delegate picks up new work at once.
    pub async fn claim(
        &self,
        delegate: &DelegateInfo,
        wait: Duration,
    ) -> Result<Option<TaskRecord>, StoreError> {
        let _polling = self.start_polling(&delegate.name);
        self.claim_waiting(delegate, wait).await
    }

    pub(super) async fn claim_waiting(
        &self,
        delegate: &DelegateInfo,
        wait: Duration,
    ) -> Result<Option<TaskRecord>, StoreError> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut closing = self.inner.closing.subscribe();
        loop {
            if *closing.borrow_and_update() || !self.is_registered(&delegate.name) {
                return Ok(None);
            }
            let notified = self.signals().queued().notified();
            tokio::pin!(notified);
            // Registering before looking means an enqueue between the look and the wait still
            // wakes us.
            notified.as_mut().enable();
            let until = match self
                .inner
                .store
                .claim_task(&delegate.name, &delegate.eligibility, delegate.lease)
                .await?
            {
                Claim::Task(task) => return Ok(Some(task)),
                Claim::Nothing => self.look_again_by(deadline),
                // Another delegate has the first chance at a task: look again when it ends.
                Claim::Later(after) => {
                    self.look_again_by(deadline.min(tokio::time::Instant::now() + after))
                }
            };
            tokio::select! {
                woken = tokio::time::timeout_at(until, notified) => {
                    if woken.is_err() && tokio::time::Instant::now() >= deadline {
                        return Ok(None);
                    }
                }
                _ = closing.changed() => return Ok(None),
            }
        }
    }

    /// Records a delegate's outcome and wakes whoever waits for the task. Returns false when
    /// the delegate no longer held the task (its lease ran out and another took it).
    pub async fn complete(
        &self,
        task_id: &TaskId,
        delegate: &str,
        outcome: TaskOutcome,
    ) -> Result<bool, StoreError> {
        let task = self.inner.store.get_task(task_id).await?;
        let mut result = outcome.result;
        if TaskKind::parse(&task.kind) == Some(TaskKind::TestConnection)
            && let Value::Object(map) = &mut result
        {
            // Every Test result has the shape of `reposync_api::TestResult`, whatever ended it,
            // so the connector's last Test can always be shown.
            let payload = serde_json::from_str::<TestConnectionPayload>(&task.payload).ok();
            map.insert("delegate".into(), json!(delegate));
            map.insert("tested_at".into(), json!(timestamp(now_millis())));
            map.entry("ok").or_insert(json!(outcome.succeeded));
            map.entry("duration_ms").or_insert(json!(0));
            if let Some(payload) = payload {
                map.entry("url").or_insert(json!(payload.url));
                map.entry("branch").or_insert(json!(payload.branch));
            }
        }
        // A fetch that succeeded on the delegate succeeded only if its archive arrived.
        let mut succeeded = outcome.succeeded;
        if succeeded
            && TaskKind::parse(&task.kind) == Some(TaskKind::FetchFiles)
            && !self.has_archive(task_id).await
        {
            succeeded = false;
            result = TaskFailure::new(
                FailureCode::Internal,
                format!(
                    "delegate {delegate} reported the fetch done, but its archive never arrived"
                ),
            )
            .to_value();
        }
        let text = result.to_string();
        // A Test's result becomes its connector's last Test, in the same transaction.
        let tested = (TaskKind::parse(&task.kind) == Some(TaskKind::TestConnection))
            .then(|| serde_json::from_str::<TestConnectionPayload>(&task.payload).ok())
            .flatten()
            .and_then(|p| p.connector_id);
        let Some(done) = self
            .inner
            .store
            .complete_task(task_id, delegate, succeeded, &text, tested.as_ref())
            .await?
        else {
            tracing::warn!(
                task = %task_id,
                delegate,
                "ignored the outcome of a task this delegate no longer holds"
            );
            return Ok(false);
        };
        crate::metrics::task_finished(&done, succeeded);
        let route = self.inner.task_routes.lock().remove(task_id);
        if let Some(route) = route {
            let mut routes = self.inner.routes.lock();
            let history = routes.entry(route).or_default();
            // Only failures of the connection itself count against a delegate, not "no such
            // branch" or a refused push that any delegate would meet.
            let code = done
                .result
                .as_deref()
                .and_then(|r| serde_json::from_str::<Value>(r).ok())
                .and_then(|r| r["code"].as_str().map(str::to_owned));
            match (succeeded, code.as_deref()) {
                (true, _) => {
                    history.last_ok = Some(delegate.to_owned());
                    if history.last_failed.as_deref() == Some(delegate) {
                        history.last_failed = None;
                    }
                }
                (
                    false,
                    Some("host_unreachable" | "timeout" | "tls_untrusted" | "git_unavailable"),
                ) => {
                    history.last_failed = Some(delegate.to_owned());
                }
                (false, _) => {}
            }
        }
        self.signals().publish(Signal::TaskFinished(done.id));
        Ok(true)
    }

    /// Keeps a finished Test's result on its connector as the last Test.
    pub(super) async fn record_test_result(
        &self,
        task: &TaskRecord,
        result: &str,
    ) -> Result<(), StoreError> {
        if TaskKind::parse(&task.kind) != Some(TaskKind::TestConnection) {
            return Ok(());
        }
        // A draft's Test belongs to no saved connector.
        if let Ok(TestConnectionPayload {
            connector_id: Some(connector_id),
            ..
        }) = serde_json::from_str::<TestConnectionPayload>(&task.payload)
        {
            self.inner
                .store
                .set_connector_last_test(&connector_id, result)
                .await?;
        }
        Ok(())
    }

    /// When a waiter looks at the tables again if nothing woke it before `deadline`: at the
    /// deadline alone in one process, and every [`SHARED_LOOK_AGAIN`] when the database is
    /// shared, where another replica's notification is a hint that may be lost.
    fn look_again_by(&self, deadline: tokio::time::Instant) -> tokio::time::Instant {
        if self.signals().shared() {
            deadline.min(tokio::time::Instant::now() + SHARED_LOOK_AGAIN)
        } else {
            deadline
        }
    }

    /// The store's signals: what wakes waiters on every replica.
    pub(super) fn signals(&self) -> &Signals {
        self.inner.store.signals()
    }

    /// Ends every long-poll at once; called when the server starts shutting down, so that
    /// graceful shutdown does not wait for clients' polls to time out.
    pub fn close(&self) {
        let _ = self.inner.closing.send(true);
    }

    /// Resolves once the hub is closing: the server is stopping.
    pub async fn closed(&self) {
        let mut closing = self.inner.closing.subscribe();
        // An error means the hub is gone, which is closed too.
        let _ = closing.wait_for(|closing| *closing).await;
    }

    /// Runs the work of a local task (one the server does itself) in the background, and
    /// wakes whoever waits for the task when it ends. A stop cuts the work off and leaves the
    /// task running, which the next start takes up again (`local_tasks::resume`).
    pub fn spawn_local(&self, task_id: TaskId, work: impl Future<Output = ()> + Send + 'static) {
        let hub = self.clone();
        tokio::spawn(async move {
            tokio::select! {
                biased;
                () = hub.closed() => {}
                () = work => {
                    hub.signals().publish(Signal::TaskFinished(task_id));
                }
            }
        });
    }

    /// The task, once it is final or `wait` has passed, whichever comes first.
    pub async fn wait_final(&self, id: &TaskId, wait: Duration) -> Result<TaskRecord, StoreError> {
        let mut finished = self.signals().finished();
        let mut closing = self.inner.closing.subscribe();
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let task = self.inner.store.get_task(id).await?;
            if task.status.is_final() {
                return Ok(task);
            }
            loop {
                if *closing.borrow_and_update() {
                    return self.inner.store.get_task(id).await;
                }
                let next = tokio::select! {
                    next = tokio::time::timeout_at(self.look_again_by(deadline), finished.recv()) => next,
                    _ = closing.changed() => return self.inner.store.get_task(id).await,
                };
                match next {
                    Err(_) if tokio::time::Instant::now() >= deadline => {
                        return self.inner.store.get_task(id).await;
                    }
                    // A notification from another replica may have been lost: look.
                    Err(_) => break,
                    Ok(Ok(done)) if done == *id => break,
                    Ok(Ok(_)) => {}
                    // Missed messages may have included ours: look again.
                    Ok(Err(broadcast::error::RecvError::Lagged(_))) => break,
                    Ok(Err(broadcast::error::RecvError::Closed)) => {
                        return self.inner.store.get_task(id).await;
                    }
                }
            }
        }
    }
}

/// The result of a task that failed because no delegate can run it, in its kind's shape.
pub(super) fn no_delegate_outcome(task: &TaskRecord, message: String) -> Value {
    if TaskKind::parse(&task.kind) == Some(TaskKind::TestConnection)
        && let Ok(payload) = serde_json::from_str::<TestConnectionPayload>(&task.payload)
    {
        return failed_test_result(
            &payload.url,
            payload.branch.as_deref(),
            "no_delegate",
            message,
        );
    }
    TaskFailure::new(FailureCode::NoDelegate, message).to_value()
}

/// A Test that ended before any delegate ran it, in the shape of `TestResult`.
pub(super) fn failed_test_result(
    url: &str,
    branch: Option<&str>,
    code: &str,
    message: String,
) -> Value {
    json!({"ok": false, "url": url, "branch": branch, "code": code, "message": message,
           "duration_ms": 0, "tested_at": timestamp(now_millis())})
}

#[cfg(test)]
mod tests {
    use super::*;
    use reposync_store::Eligibility;

    /// The regression of a poisoned mutex silently stopping the hub: a panic while one of its
    /// locks was held made every later `lock()` fail, and the hub then knew no delegate.
    #[tokio::test]
    async fn a_panic_while_the_hub_is_locked_does_not_stop_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(
            &Store::sqlite_url(dir.path()),
            reposync_secrets::MasterKey::generate(),
        )
        .await
        .expect("store");
        let hub = TaskHub::new(store);
        hub.register_delegate(DelegateInfo {
            name: "builtin".into(),
            eligibility: Eligibility::unrestricted(vec!["builtin".into()]),
            lease: Duration::from_secs(30),
            builtin: true,
            token_id: None,
        });
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _held = hub.inner.delegates.lock();
            panic!("a bug while the delegates were locked");
        }));
        assert!(panicked.is_err());
        assert!(hub.registered("builtin").is_some());
        assert_eq!(hub.connected().len(), 1);
        hub.heard_from("builtin");
        assert_eq!(hub.waiting_claims("builtin"), 0);
    }
}
