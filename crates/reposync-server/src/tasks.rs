//! The task hub: queues work for delegates, wakes long-polling delegates the moment work
//! arrives, attaches credentials at claim time, and records outcomes.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::Duration;

use reposync_api::{
    DelegateTask, FailureCode, SecretValue, SyncJob, SyncJobResult, SyncSpec, SyncTarget, TaskAuth,
    TaskFailure, TaskKind, TaskOutcome, TaskSpec, TestConnectionSpec, TestResult,
};
use reposync_delegate::{Agent, SourceError, TaskSource, Tools};
use reposync_model::{Credentials, GitConnector, SecretName};
use reposync_store::{
    Claim, ConnectorRecord, Eligibility, NewDelegate, NewTask, Store, StoreError, SyncLink,
    TaskRecord, TaskStatus, now_millis,
};
use reposync_sync::{ConnectionFailure, Dispatch, DispatchFailure};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::{Notify, broadcast};

use crate::state::AppState;
use crate::views::timestamp;

/// How long one sync job may run on a delegate, fetches and retries included.
pub const SYNC_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a Test's git operation may run.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the built-in delegate's claim holds a task: it heartbeats nothing, and lives and
/// dies with the server, so its lease only has to outlast the longest task.
const BUILTIN_LEASE: Duration = Duration::from_secs(SYNC_TIMEOUT.as_secs() + 60);

/// A delegate the hub knows of.
#[derive(Debug, Clone)]
pub struct DelegateInfo {
    pub name: String,
    /// Which tasks it may claim: its selectors (normalised, its own name among them where it
    /// counts) and the restriction of its token.
    pub eligibility: Eligibility,
    /// How long a claim holds a task before another delegate may take it over; a remote
    /// delegate's heartbeats extend it. A remote delegate not heard from for this long is
    /// disconnected.
    pub lease: Duration,
    /// The built-in delegate lives as long as the server and is always connected.
    pub builtin: bool,
    /// The delegate token it registered with; none for the built-in delegate.
    pub token_id: Option<String>,
}

/// A registered delegate and when it was last heard from.
#[derive(Debug, Clone)]
struct Known {
    info: DelegateInfo,
    /// When its last request arrived. Only requests count: the end of a long poll says
    /// nothing of whether the delegate is still there.
    last_seen: tokio::time::Instant,
    /// Claims in progress. A delegate waiting in a long poll is connected; a claim's wait is
    /// never longer than the lease, so a poll left open by a delegate that vanished keeps it
    /// connected for at most one lease after its last request.
    polling: u32,
}

impl Known {
    /// Whether the delegate counts as connected at `now`: the built-in one always, a remote
    /// one while it waits in a claim or was heard from within its lease.
    fn connected(&self, now: tokio::time::Instant) -> bool {
        self.info.builtin
            || self.polling > 0
            || now.saturating_duration_since(self.last_seen) < self.info.lease
    }

    /// When a remote delegate stops counting as connected unless it is heard from again.
    fn lapses_at(&self) -> Option<tokio::time::Instant> {
        (!self.info.builtin).then(|| self.last_seen + self.info.lease)
    }
}

/// How often the sweeper looks for expired leases when nothing wakes it sooner.
const SWEEP_EVERY: Duration = Duration::from_secs(5);

/// Counts a claim as waiting for as long as it lives. A claim's future is dropped when its
/// client goes away mid-wait (a killed delegate's connection closes), so the count goes down
/// in `Drop`, never after an `.await` that may not come.
struct Polling<'a> {
    hub: &'a TaskHub,
    name: &'a str,
}

impl Drop for Polling<'_> {
    fn drop(&mut self) {
        let now = tokio::time::Instant::now();
        let mut delegates = self.hub.inner.delegates.lock();
        if let Some(known) = delegates.iter_mut().find(|d| d.info.name == self.name) {
            known.polling = known.polling.saturating_sub(1);
            // The end of this poll may be what disconnects the delegate: let the sweeper see
            // whether tasks are left that nobody can take.
            if !known.connected(now) {
                self.hub.inner.presence.notify_one();
            }
        }
    }
}

/// Queues tasks and wakes the delegates and clients waiting on them.
#[derive(Clone)]
pub struct TaskHub {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    queued: Notify,
    finished: broadcast::Sender<String>,
    closing: tokio::sync::watch::Sender<bool>,
    /// Counts registrations, so that work can wait for a delegate to (re)connect.
    registrations: tokio::sync::watch::Sender<u64>,
    delegates: Mutex<Vec<Known>>,
    /// Wakes the sweeper when a delegate may have gone (its last claim ended after its lease,
    /// it left, its token was revoked), to fail the tasks nobody connected can take. One
    /// waiter, so a notification sent while it is busy is kept for its next wait.
    presence: Notify,
    /// Per kind of connector, which delegates last succeeded and failed with it.
    routes: Mutex<HashMap<String, RouteHistory>>,
    /// The kind of connector of each task not yet finished.
    task_routes: Mutex<HashMap<String, String>>,
}

/// Which delegates last succeeded and failed with one kind of connector.
#[derive(Debug, Clone, Default)]
struct RouteHistory {
    last_ok: Option<String>,
    last_failed: Option<String>,
}

/// The kind of connector, for choosing delegates: its provider and its transport.
fn route_of(connector: &ConnectorRecord) -> String {
    let transport = match connector.spec.credentials {
        Credentials::Https { .. } => "https",
        Credentials::Ssh { .. } => "ssh",
    };
    format!("{:?}/{transport}", connector.spec.provider)
}

impl std::fmt::Debug for TaskHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskHub").finish_non_exhaustive()
    }
}

/// What a Test task names; no credentials.
#[derive(Debug, Serialize, Deserialize)]
pub struct TestConnectionPayload {
    pub connector_id: String,
    pub url: String,
    pub branch: Option<String>,
}

/// What a sync task names; the credentials are attached at claim time.
#[derive(Debug, Serialize, Deserialize)]
pub struct SyncPayload {
    pub connector_id: String,
    pub target: SyncTarget,
    pub job: SyncJob,
}

impl TaskHub {
    pub fn new(store: Store) -> TaskHub {
        let (finished, _) = broadcast::channel(1024);
        TaskHub {
            inner: Arc::new(Inner {
                store,
                queued: Notify::new(),
                finished,
                closing: tokio::sync::watch::Sender::new(false),
                registrations: tokio::sync::watch::Sender::new(0),
                delegates: Mutex::new(Vec::new()),
                presence: Notify::new(),
                routes: Mutex::new(HashMap::new()),
                task_routes: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Records that a delegate is connected and may be given tasks. A delegate registering
    /// again keeps the count of its claims in progress.
    pub fn register_delegate(&self, delegate: DelegateInfo) {
        let mut delegates = self.inner.delegates.lock();
        let polling = delegates
            .iter()
            .find(|d| d.info.name == delegate.name)
            .map_or(0, |d| d.polling);
        delegates.retain(|d| d.info.name != delegate.name);
        delegates.push(Known {
            info: delegate,
            last_seen: tokio::time::Instant::now(),
            polling,
        });
        drop(delegates);
        self.inner.registrations.send_modify(|count| *count += 1);
    }

    /// Waits until a connected delegate may run tasks with `selectors`, or `within` has
    /// passed; whether one may. After a restart the delegates connect again over their first
    /// poll, and work taken up at the start waits for them rather than failing `no_delegate`.
    pub async fn wait_for_delegate(&self, selectors: &[String], within: Duration) -> bool {
        let mut registrations = self.inner.registrations.subscribe();
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if self
                .connected()
                .iter()
                .any(|d| d.eligibility.admits(selectors))
            {
                return true;
            }
            match tokio::time::timeout_at(deadline, registrations.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => return false,
            }
        }
    }

    /// Ends the tasks among `running` that ran past their kind's time limit, as `timeout`
    /// failures, and returns them: the delegate is told to stop them, which kills their git.
    pub async fn end_overdue(
        &self,
        delegate: &str,
        running: &[String],
    ) -> Result<Vec<String>, StoreError> {
        let now = now_millis();
        let mut overdue = Vec::new();
        for id in running {
            let Ok(task) = self.inner.store.get_task(id).await else {
                continue;
            };
            let limit = match TaskKind::parse(&task.kind) {
                Some(TaskKind::TestConnection) => TEST_TIMEOUT,
                Some(TaskKind::Sync) => SYNC_TIMEOUT,
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

    /// Forgets the delegates registered with a token (it was revoked) and wakes their long
    /// polls, so that their next request is refused at once rather than when a poll ends.
    pub fn forget_token(&self, token_id: &str) {
        self.inner
            .delegates
            .lock()
            .retain(|d| d.info.token_id.as_deref() != Some(token_id));
        self.inner.queued.notify_waiters();
        self.inner.presence.notify_one();
    }

    /// Forgets a delegate that said it is leaving (it stops cleanly) and ends the leases of
    /// the tasks it still held, so that they go to another delegate, or fail as
    /// `no_delegate` when no other may take them, without waiting for a lease to run out.
    pub async fn leave(&self, name: &str) -> Result<(), StoreError> {
        let ended = self.inner.store.end_leases_of(name).await?;
        self.inner.delegates.lock().retain(|d| d.info.name != name);
        tracing::info!(delegate = name, tasks_returned = ended, "delegate left");
        self.inner.queued.notify_waiters();
        self.inner.presence.notify_one();
        Ok(())
    }

    fn is_registered(&self, name: &str) -> bool {
        self.inner
            .delegates
            .lock()
            .iter()
            .any(|k| k.info.name == name)
    }

    /// The registered delegate of this name, as it registered.
    pub fn registered(&self, name: &str) -> Option<DelegateInfo> {
        let delegates = self.inner.delegates.lock();
        let known = delegates.iter().find(|d| d.info.name == name)?;
        Some(known.info.clone())
    }

    /// Changes what the hub knows of a registered delegate, if it is registered.
    fn update_known(&self, name: &str, change: impl FnOnce(&mut Known)) {
        if let Some(known) = self
            .inner
            .delegates
            .lock()
            .iter_mut()
            .find(|d| d.info.name == name)
        {
            change(known);
        }
    }

    /// Marks a registered delegate as heard from now: one of its requests arrived.
    pub fn heard_from(&self, name: &str) {
        self.update_known(name, |known| {
            known.last_seen = tokio::time::Instant::now();
        });
    }

    /// Counts a claim of `name` as waiting until the returned guard is dropped.
    fn start_polling<'a>(&'a self, name: &'a str) -> Polling<'a> {
        self.update_known(name, |known| {
            known.polling = known.polling.saturating_add(1);
        });
        Polling { hub: self, name }
    }

    /// How many claims of this delegate are waiting now (none for an unknown delegate).
    pub fn waiting_claims(&self, name: &str) -> u32 {
        self.inner
            .delegates
            .lock()
            .iter()
            .find(|d| d.info.name == name)
            .map_or(0, |d| d.polling)
    }

    /// The delegates connected now: the built-in one, and remote ones heard from within their
    /// lease or waiting in a claim.
    pub fn connected(&self) -> Vec<DelegateInfo> {
        let now = tokio::time::Instant::now();
        self.inner
            .delegates
            .lock()
            .iter()
            .filter(|d| d.connected(now))
            .map(|d| d.info.clone())
            .collect()
    }

    /// The next moment a connected remote delegate stops counting as connected unless it is
    /// heard from first. A delegate past that moment but still waiting in a claim is left
    /// out: the end of its claim wakes the sweeper.
    fn next_lapse(&self) -> Option<tokio::time::Instant> {
        let now = tokio::time::Instant::now();
        let delegates = self.inner.delegates.lock();
        delegates
            .iter()
            .filter_map(Known::lapses_at)
            .filter(|at| *at > now)
            .min()
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
        connector: &ConnectorRecord,
        no_delegate_result: impl FnOnce(String) -> Value,
    ) -> Result<TaskRecord, StoreError> {
        let payload =
            serde_json::to_string(payload).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let selectors: Vec<String> = connector
            .spec
            .selectors
            .iter()
            .map(|s| s.as_str().to_owned())
            .collect();
        let route = route_of(connector);
        let delegates = self.connected();
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
        self.inner.queued.notify_waiters();
        Ok(task)
    }

    /// Fails a queued task that no delegate will run, with what follows from it: a Test's
    /// result becomes its connector's last Test, and whoever waits for the task is woken.
    /// `None` when the task was no longer queued (a delegate claimed it meanwhile).
    async fn fail_queued(
        &self,
        task_id: &str,
        result: &str,
    ) -> Result<Option<TaskRecord>, StoreError> {
        let Some(failed) = self.inner.store.fail_queued_task(task_id, result).await? else {
            return Ok(None);
        };
        self.inner.task_routes.lock().remove(task_id);
        self.record_test_result(&failed, result).await?;
        let _ = self.inner.finished.send(failed.id.clone());
        Ok(Some(failed))
    }

    /// Fails, as `no_delegate`, every queued task that no connected delegate may run: the
    /// delegates that could have run it went away (stopped, killed, cut off, or their token
    /// was revoked). Returns how many failed.
    pub async fn fail_stranded(&self) -> Result<u64, StoreError> {
        let delegates = self.connected();
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

    async fn claim_waiting(
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
            let notified = self.inner.queued.notified();
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
                Claim::Nothing => deadline,
                // Another delegate has the first chance at a task: look again when it ends.
                Claim::Later(after) => deadline.min(tokio::time::Instant::now() + after),
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
        task_id: &str,
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
        let text = result.to_string();
        // A Test's result becomes its connector's last Test, in the same transaction.
        let tested = (TaskKind::parse(&task.kind) == Some(TaskKind::TestConnection))
            .then(|| serde_json::from_str::<TestConnectionPayload>(&task.payload).ok())
            .flatten()
            .map(|p| p.connector_id);
        let Some(done) = self
            .inner
            .store
            .complete_task(
                task_id,
                delegate,
                outcome.succeeded,
                &text,
                tested.as_deref(),
            )
            .await?
        else {
            tracing::warn!(
                task = task_id,
                delegate,
                "ignored the outcome of a task this delegate no longer holds"
            );
            return Ok(false);
        };
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
            match (outcome.succeeded, code.as_deref()) {
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
        let _ = self.inner.finished.send(done.id);
        Ok(true)
    }

    /// Keeps a finished Test's result on its connector as the last Test.
    async fn record_test_result(&self, task: &TaskRecord, result: &str) -> Result<(), StoreError> {
        if TaskKind::parse(&task.kind) != Some(TaskKind::TestConnection) {
            return Ok(());
        }
        if let Ok(payload) = serde_json::from_str::<TestConnectionPayload>(&task.payload) {
            self.inner
                .store
                .set_connector_last_test(&payload.connector_id, result)
                .await?;
        }
        Ok(())
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
    pub fn spawn_local(&self, task_id: String, work: impl Future<Output = ()> + Send + 'static) {
        let hub = self.clone();
        tokio::spawn(async move {
            tokio::select! {
                biased;
                () = hub.closed() => {}
                () = work => {
                    let _ = hub.inner.finished.send(task_id);
                }
            }
        });
    }

    /// Queues a Test of `connector` against `url` (its own, or for an account-scope connector,
    /// one repository under it). Its result becomes the connector's last Test.
    pub async fn enqueue_test(
        &self,
        connector: &ConnectorRecord,
        url: String,
    ) -> Result<TaskRecord, StoreError> {
        let branch = connector.spec.branch.as_ref().map(ToString::to_string);
        let payload = TestConnectionPayload {
            connector_id: connector.id.clone(),
            url: url.clone(),
            branch: branch.clone(),
        };
        self.enqueue(TaskKind::TestConnection, &payload, connector, |message| {
            failed_test_result(&url, branch.as_deref(), "no_delegate", message)
        })
        .await
    }

    /// Runs a Test to its end (or past its time limit) and returns the result.
    pub async fn run_test(
        &self,
        connector: &ConnectorRecord,
        url: String,
    ) -> Result<TestResult, StoreError> {
        let task = self.enqueue_test(connector, url.clone()).await?;
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
            duration_ms: 0,
            tested_at: timestamp(now_millis()),
        }))
    }

    /// The task, once it is final or `wait` has passed, whichever comes first.
    pub async fn wait_final(&self, id: &str, wait: Duration) -> Result<TaskRecord, StoreError> {
        let mut finished = self.inner.finished.subscribe();
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
                    next = tokio::time::timeout_at(deadline, finished.recv()) => next,
                    _ = closing.changed() => return self.inner.store.get_task(id).await,
                };
                match next {
                    Err(_) => return self.inner.store.get_task(id).await,
                    Ok(Ok(done)) if done == id => break,
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
                        self.inner.queued.notify_waiters();
                        requeued = n;
                    }
                    Err(error) => tracing::warn!(%error, "cannot sweep task leases"),
                }
            }
            if now >= judge_from {
                let mut connected: Vec<String> =
                    self.connected().into_iter().map(|d| d.name).collect();
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

    /// Opens a secret for a task; both kinds of secret hold UTF-8 text.
    async fn reveal_text(&self, name: &SecretName) -> Result<SecretValue, String> {
        let (_, value) = self
            .inner
            .store
            .reveal_secret(name)
            .await
            .map_err(|e| e.to_string())?;
        String::from_utf8(value.to_vec())
            .map(SecretValue::new)
            .map_err(|_| format!("secret {:?} is not UTF-8 text", name.as_str()))
    }

    /// Attaches what a claimed task needs to run, credentials included.
    pub async fn hydrate(&self, task: &TaskRecord) -> Result<TaskSpec, String> {
        match TaskKind::parse(&task.kind) {
            Some(TaskKind::TestConnection) => {
                let payload: TestConnectionPayload = serde_json::from_str(&task.payload)
                    .map_err(|e| format!("unreadable task payload: {e}"))?;
                let connector = self
                    .inner
                    .store
                    .get_connector_by_id(&payload.connector_id)
                    .await
                    .map_err(|e| format!("the connector is gone: {e}"))?;
                Ok(TaskSpec::TestConnection(TestConnectionSpec {
                    url: payload.url,
                    branch: payload.branch,
                    auth: self.task_auth(&connector.spec).await?,
                    timeout_secs: TEST_TIMEOUT.as_secs(),
                }))
            }
            Some(TaskKind::Sync) => {
                let payload: SyncPayload = serde_json::from_str(&task.payload)
                    .map_err(|e| format!("unreadable task payload: {e}"))?;
                let connector = self
                    .inner
                    .store
                    .get_connector_by_id(&payload.connector_id)
                    .await
                    .map_err(|e| format!("the connector is gone: {e}"))?;
                // A task run again after its delegate was lost needs nothing special: a
                // push that landed is found on the branch by its trailers.
                Ok(TaskSpec::Sync(SyncSpec {
                    target: payload.target,
                    job: payload.job,
                    auth: self.task_auth(&connector.spec).await?,
                    timeout_secs: SYNC_TIMEOUT.as_secs(),
                }))
            }
            other => Err(format!("unknown task kind {other:?}")),
        }
    }

    /// A connector's credentials, opened for one task.
    async fn task_auth(&self, spec: &GitConnector) -> Result<TaskAuth, String> {
        Ok(match &spec.credentials {
            Credentials::Https {
                username,
                password_secret,
            } => TaskAuth::Https {
                username: username.clone(),
                password: self.reveal_text(password_secret).await?,
                ca_certificate: spec.ca_certificate.clone(),
            },
            Credentials::Ssh { ssh_key_secret } => TaskAuth::Ssh {
                private_key: self.reveal_text(ssh_key_secret).await?,
                known_hosts: spec.known_hosts.clone(),
            },
        })
    }

    /// Runs a sync job for `connector` on a delegate with its selectors and waits for the
    /// result.
    pub async fn run_sync_job(
        &self,
        connector: &ConnectorRecord,
        target: SyncTarget,
        job: SyncJob,
        attempt_id: Option<&str>,
    ) -> Result<SyncJobResult, DispatchFailure> {
        let internal = |e: StoreError| DispatchFailure::new(FailureCode::Internal, e.to_string());
        let payload = SyncPayload {
            connector_id: connector.id.clone(),
            target,
            job,
        };
        let task = self
            .enqueue(TaskKind::Sync, &payload, connector, |message| {
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
            TaskStatus::Succeeded => serde_json::from_value(result).map_err(|e| {
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
        attempt: Option<&str>,
    ) -> Result<SyncJobResult, DispatchFailure> {
        TaskHub::run_sync_job(self, connector, target, job, attempt).await
    }

    async fn enqueue_test(
        &self,
        connector: &ConnectorRecord,
        url: String,
    ) -> Result<TaskRecord, StoreError> {
        TaskHub::enqueue_test(self, connector, url).await
    }

    async fn run_test(
        &self,
        connector: &ConnectorRecord,
        url: String,
    ) -> Result<TestResult, StoreError> {
        TaskHub::run_test(self, connector, url).await
    }
}

/// Why no connected delegate may run a task that asks for `selectors`, naming the connected
/// delegates with what they may run.
fn no_delegate_message(selectors: &[String], delegates: &[DelegateInfo]) -> String {
    let connected = if delegates.is_empty() {
        "no delegate is connected".to_owned()
    } else {
        let list: Vec<String> = delegates
            .iter()
            .map(|d| {
                let restricted = d
                    .eligibility
                    .restricted_to
                    .as_ref()
                    .map(|allowed| format!(" (its token allows only {})", allowed.join(", ")))
                    .unwrap_or_default();
                format!(
                    "{} [{}]{restricted}",
                    d.name,
                    d.eligibility.selectors.join(", ")
                )
            })
            .collect();
        format!("connected delegates: {}", list.join("; "))
    };
    let asked = if selectors.is_empty() {
        "none, which only delegates of unrestricted tokens take".to_owned()
    } else {
        selectors.join(", ")
    };
    format!("no connected delegate has every selector asked for ({asked}); {connected}")
}

/// The result of a task that failed because no delegate can run it, in its kind's shape.
fn no_delegate_outcome(task: &TaskRecord, message: String) -> Value {
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
fn failed_test_result(url: &str, branch: Option<&str>, code: &str, message: String) -> Value {
    json!({"ok": false, "url": url, "branch": branch, "code": code, "message": message,
           "duration_ms": 0, "tested_at": timestamp(now_millis())})
}

/// The delegate that runs inside `reposync serve`, reaching the hub without HTTP.
#[derive(Debug, Clone)]
pub struct BuiltinDelegate {
    hub: TaskHub,
    info: DelegateInfo,
    hostname: String,
    agent: Agent,
    tools: Tools,
}

/// How many tasks the built-in delegate runs at once.
const BUILTIN_SLOTS: usize = 8;

/// The built-in delegate's name, which is also one of its selectors.
pub const BUILTIN_DELEGATE_NAME: &str = "builtin";

impl BuiltinDelegate {
    /// Registers the built-in delegate with the hub.
    pub fn new(state: AppState) -> BuiltinDelegate {
        let mut selectors: Vec<String> = state
            .config
            .builtin_delegate_selectors
            .iter()
            .map(|s| s.as_str().to_owned())
            .collect();
        selectors.push(BUILTIN_DELEGATE_NAME.to_owned());
        // A delegate's host name counts as one of its selectors.
        if let Some(host) = &state.config.hostname {
            selectors.push(host.trim().to_lowercase());
        }
        selectors.sort();
        selectors.dedup();
        let info = DelegateInfo {
            name: BUILTIN_DELEGATE_NAME.to_owned(),
            eligibility: Eligibility::unrestricted(selectors),
            lease: BUILTIN_LEASE,
            builtin: true,
            token_id: None,
        };
        state.tasks.register_delegate(info.clone());
        BuiltinDelegate {
            hub: state.tasks.clone(),
            info,
            hostname: state.config.hostname.clone().unwrap_or_default(),
            agent: state.builtin.0.clone(),
            tools: state.builtin.1.clone(),
        }
    }

    /// Runs tasks until `shutdown` resolves. It is listed with the remote delegates, with what
    /// it found of git on this machine.
    pub async fn run(&self, shutdown: impl std::future::Future<Output = ()>) {
        if let Err(error) = &self.tools.git {
            tracing::warn!(%error, "the built-in delegate found no usable git");
        }
        let registered = self
            .hub
            .inner
            .store
            .register_delegate(&NewDelegate {
                name: self.info.name.clone(),
                token_id: None,
                selectors: self.info.eligibility.selectors.clone(),
                version: env!("CARGO_PKG_VERSION").to_owned(),
                hostname: self.hostname.clone(),
                git_version: self.tools.git_version(),
                ssh_version: self.tools.ssh_version(),
            })
            .await;
        if let Err(error) = registered {
            tracing::warn!(%error, "cannot list the built-in delegate");
        }
        // Several tasks at once: a long push must not hold up a Test.
        let source: Arc<dyn TaskSource> = Arc::new(self.clone());
        let slots =
            std::num::NonZeroUsize::new(BUILTIN_SLOTS).unwrap_or(std::num::NonZeroUsize::MIN);
        if let Err(error) = self.agent.run_concurrently(source, slots, shutdown).await {
            tracing::error!(%error, "the built-in delegate stopped");
        }
    }
}

#[async_trait::async_trait]
impl TaskSource for BuiltinDelegate {
    async fn claim(&self, wait: Duration) -> Result<Option<DelegateTask>, SourceError> {
        loop {
            let Some(task) = self
                .hub
                .claim(&self.info, wait)
                .await
                .map_err(|e| SourceError::Unavailable(e.to_string()))?
            else {
                return Ok(None);
            };
            match self.hub.hydrate(&task).await {
                Ok(spec) => return Ok(Some(DelegateTask { id: task.id, spec })),
                Err(message) => {
                    tracing::warn!(task = %task.id, %message, "cannot prepare task");
                    let outcome =
                        TaskOutcome::failed(&TaskFailure::new(FailureCode::Internal, message));
                    self.hub
                        .complete(&task.id, &self.info.name, outcome)
                        .await
                        .map_err(|e| SourceError::Unavailable(e.to_string()))?;
                }
            }
        }
    }

    async fn complete(&self, task_id: &str, outcome: TaskOutcome) -> Result<(), SourceError> {
        self.hub
            .complete(task_id, &self.info.name, outcome)
            .await
            .map(|_| ())
            .map_err(|e| SourceError::Unavailable(e.to_string()))
    }
}

/// The outbox's way to delegates: a sync task per job, through the hub.
#[derive(Debug, Clone)]
pub struct HubDispatch {
    pub state: AppState,
}

#[async_trait::async_trait]
impl Dispatch for HubDispatch {
    async fn run_job(
        &self,
        link: &SyncLink,
        attempt_id: &str,
        job: SyncJob,
    ) -> Result<SyncJobResult, DispatchFailure> {
        let connector = self
            .state
            .store
            .get_connector_by_id(&link.connector_id)
            .await
            .map_err(|e| DispatchFailure::new(FailureCode::ConnectorGone, e.to_string()))?;
        let target = reposync_core::connections::target(&connector, link)
            .map_err(|e| DispatchFailure::new(FailureCode::InvalidTask, e.to_string()))?;
        self.state
            .tasks
            .run_sync_job(&connector, target, job, Some(attempt_id))
            .await
    }

    async fn check_connections(&self, link: &SyncLink) -> Result<(), ConnectionFailure> {
        // A connector that is gone fails the job itself, with its own code.
        let Ok(connector) = self
            .state
            .store
            .get_connector_by_id(&link.connector_id)
            .await
        else {
            return Ok(());
        };
        reposync_core::connections::check_connections(
            &self.state.store,
            &self.state.tasks,
            &connector,
            link,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
