//! The remote delegate against a small in-test server that speaks the delegate API: register,
//! long-poll claims, completions, heartbeats, a revoked token, a forgotten delegate, lost
//! leases, cancellation, concurrency and a server behind a private CA. Tasks are Tests of
//! addresses where nothing (or a black hole) listens, so real git runs without a git server.

#![allow(clippy::expect_used, clippy::unwrap_used)] // Test helpers may panic.

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use reposync_api::{
    DelegateTask, HeartbeatRequest, HeartbeatResponse, RegisterRequest, RegisterResponse,
    SecretValue, TaskAuth, TaskOutcome, TaskSpec, TestConnectionSpec,
};
use reposync_delegate::{
    Agent, DelegateName, HttpConfig, HttpTaskSource, SourceError, TaskSource, run_remote,
};
use reposync_git::GitRunner;
use reposync_model::{Selector, TaskId};
use reposync_testkit::TestCa;
use secrecy::SecretString;
use serde_json::json;

const TOKEN: &str = "delegate-token-canary-0b9f3e";
const NAME: &str = "edge-01";

/// One request the fake server saw.
#[derive(Debug, Clone)]
enum Event {
    Register {
        authorization: Option<String>,
        body: RegisterRequest,
    },
    Claim {
        name: Option<String>,
        wait_ms: u64,
        /// The task handed out, if any.
        task: Option<String>,
        at: Instant,
    },
    Complete {
        name: Option<String>,
        task: String,
        outcome: TaskOutcome,
        at: Instant,
    },
    Heartbeat {
        name: Option<String>,
        running: Vec<String>,
    },
    Leave {
        name: Option<String>,
    },
}

/// The server side of the delegate API, minimally.
#[derive(Default)]
struct Fake {
    heartbeat_secs: u64,
    max_wait_ms: u64,
    /// Every request answers 401.
    revoked: AtomicBool,
    /// Named requests answer 404 `unknown_delegate` until the delegate registers again.
    forgotten: AtomicBool,
    /// Registrations answer 409 `name_taken`: another token holds the name.
    name_taken: AtomicBool,
    /// Completions of these tasks answer 409 `lease_lost`.
    lease_lost: Mutex<HashSet<String>>,
    queue: Mutex<VecDeque<DelegateTask>>,
    queued: tokio::sync::Notify,
    /// How many more completions answer 503.
    unavailable_completes: std::sync::atomic::AtomicUsize,
    /// Returned by every heartbeat.
    cancel: Mutex<Vec<String>>,
    events: Mutex<Vec<Event>>,
}

impl Fake {
    fn new(heartbeat_secs: u64, max_wait_ms: u64) -> Arc<Fake> {
        Arc::new(Fake {
            heartbeat_secs,
            max_wait_ms,
            ..Fake::default()
        })
    }

    fn push(&self, task: DelegateTask) {
        self.queue.lock().unwrap().push_back(task);
        self.queued.notify_waiters();
    }

    fn events(&self) -> Vec<Event> {
        self.events.lock().unwrap().clone()
    }

    fn record(&self, event: Event) {
        self.events.lock().unwrap().push(event);
    }

    /// Waits until `found` picks something out of the events.
    async fn wait_for<T>(&self, what: &str, found: impl Fn(&[Event]) -> Option<T>) -> T {
        let started = Instant::now();
        loop {
            if let Some(value) = found(&self.events()) {
                return value;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "timed out waiting for {what}; events: {:#?}",
                self.events()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn completes(&self) -> Vec<(String, TaskOutcome)> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                Event::Complete { task, outcome, .. } => Some((task, outcome)),
                _ => None,
            })
            .collect()
    }

    fn registrations(&self) -> usize {
        self.events()
            .iter()
            .filter(|e| matches!(e, Event::Register { .. }))
            .count()
    }

    /// The answer to a request that fails authentication or names a forgotten delegate.
    fn refuse(&self, headers: &HeaderMap, named: bool) -> Option<Response> {
        let authorization = headers.get("authorization").and_then(|v| v.to_str().ok());
        if self.revoked.load(Ordering::SeqCst) || authorization != Some(&format!("Bearer {TOKEN}"))
        {
            return Some(error(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "unknown or revoked delegate token",
            ));
        }
        if named
            && (self.forgotten.load(Ordering::SeqCst) || name(headers).as_deref() != Some(NAME))
        {
            return Some(error(
                StatusCode::NOT_FOUND,
                "unknown_delegate",
                "no such delegate; register again",
            ));
        }
        None
    }
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

fn name(headers: &HeaderMap) -> Option<String> {
    headers
        .get("x-reposync-delegate")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

async fn register(
    State(fake): State<Arc<Fake>>,
    headers: HeaderMap,
    Json(body): Json<RegisterRequest>,
) -> Response {
    if let Some(refused) = fake.refuse(&headers, false) {
        return refused;
    }
    fake.record(Event::Register {
        authorization: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body: body.clone(),
    });
    if fake.name_taken.load(Ordering::SeqCst) {
        return error(
            StatusCode::CONFLICT,
            "name_taken",
            &format!(
                "delegate name {:?} belongs to delegate token \"fleet\"",
                body.name
            ),
        );
    }
    fake.forgotten.store(false, Ordering::SeqCst);
    let mut selectors = body.selectors.clone();
    selectors.push(body.name.to_lowercase());
    Json(RegisterResponse {
        name: body.name,
        selectors,
        heartbeat_secs: fake.heartbeat_secs,
        max_wait_ms: fake.max_wait_ms,
    })
    .into_response()
}

#[derive(serde::Deserialize)]
struct ClaimQuery {
    wait_ms: u64,
}

async fn claim(
    State(fake): State<Arc<Fake>>,
    headers: HeaderMap,
    Query(query): Query<ClaimQuery>,
) -> Response {
    if let Some(refused) = fake.refuse(&headers, true) {
        return refused;
    }
    let deadline =
        tokio::time::Instant::now() + Duration::from_millis(query.wait_ms.min(fake.max_wait_ms));
    let task = loop {
        let notified = fake.queued.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if let Some(task) = fake.queue.lock().unwrap().pop_front() {
            break Some(task);
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            break None;
        }
    };
    fake.record(Event::Claim {
        name: name(&headers),
        wait_ms: query.wait_ms,
        task: task.as_ref().map(|t| t.id.to_string()),
        at: Instant::now(),
    });
    match task {
        Some(task) => Json(task).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    }
}

async fn complete(
    State(fake): State<Arc<Fake>>,
    Path(task): Path<String>,
    headers: HeaderMap,
    Json(outcome): Json<TaskOutcome>,
) -> Response {
    if let Some(refused) = fake.refuse(&headers, true) {
        return refused;
    }
    fake.record(Event::Complete {
        name: name(&headers),
        task: task.clone(),
        outcome,
        at: Instant::now(),
    });
    let unavailable = fake
        .unavailable_completes
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if unavailable {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the database is busy",
        );
    }
    if fake.lease_lost.lock().unwrap().contains(&task) {
        return error(
            StatusCode::CONFLICT,
            "lease_lost",
            "another delegate has this task",
        );
    }
    Json(json!({})).into_response()
}

async fn heartbeat(
    State(fake): State<Arc<Fake>>,
    headers: HeaderMap,
    Json(body): Json<HeartbeatRequest>,
) -> Response {
    if let Some(refused) = fake.refuse(&headers, true) {
        return refused;
    }
    fake.record(Event::Heartbeat {
        name: name(&headers),
        running: body.running.iter().map(ToString::to_string).collect(),
    });
    Json(HeartbeatResponse {
        cancel: fake
            .cancel
            .lock()
            .unwrap()
            .iter()
            .map(TaskId::new)
            .collect(),
    })
    .into_response()
}

async fn leave(State(fake): State<Arc<Fake>>, headers: HeaderMap) -> Response {
    if let Some(refused) = fake.refuse(&headers, true) {
        return refused;
    }
    fake.record(Event::Leave {
        name: name(&headers),
    });
    Json(json!({})).into_response()
}

fn router(fake: Arc<Fake>) -> axum::Router {
    axum::Router::new()
        .route("/api/delegate/register", post(register))
        .route("/api/delegate/leave", post(leave))
        .route("/api/delegate/claim", post(claim))
        .route("/api/delegate/tasks/{id}/complete", post(complete))
        .route("/api/delegate/heartbeat", post(heartbeat))
        .with_state(fake)
}

/// Serves the fake over plain HTTP on a loopback port.
async fn serve(fake: Arc<Fake>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    serve_on(listener, fake);
    format!("http://{address}")
}

fn serve_on(listener: tokio::net::TcpListener, fake: Arc<Fake>) {
    tokio::spawn(async move {
        axum::serve(listener, router(fake)).await.expect("serve");
    });
}

/// Serves the fake over HTTPS with a certificate from `ca`.
async fn serve_tls(fake: Arc<Fake>, ca: &TestCa) -> String {
    use tower::ServiceExt as _;
    let acceptor =
        tokio_rustls::TlsAcceptor::from(ca.server_tls_config(&["127.0.0.1"]).expect("tls"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let app = router(fake);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let app = app.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let service =
                    hyper::service::service_fn(move |request| app.clone().oneshot(request));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    format!("https://127.0.0.1:{}", address.port())
}

fn config(server: &str) -> HttpConfig {
    HttpConfig {
        server: server.to_owned(),
        token: SecretString::from(TOKEN),
        ca_pem: None,
        name: DelegateName::parse(NAME).expect("name"),
        selectors: vec![
            Selector::parse("EU-West").expect("selector"),
            Selector::parse("onprem").expect("selector"),
        ],
        hostname: "edge-01.example.com".to_owned(),
        version: "0.1.0".to_owned(),
        git_version: "2.47.3".to_owned(),
        ssh_version: "OpenSSH_9.2p1".to_owned(),
    }
}

/// A Test of `url` that fails by itself (nothing listens) or hangs (a black hole) until its
/// timeout.
fn test_task(id: &str, url: &str, timeout_secs: u64) -> DelegateTask {
    DelegateTask {
        id: TaskId::new(id),
        spec: TaskSpec::TestConnection(Box::new(TestConnectionSpec {
            url: url.to_owned(),
            branch: None,
            auth: TaskAuth::Https {
                username: "jdoe".into(),
                password: SecretValue::new("task-password"),
                ca_certificate: None,
            },
            timeout_secs,
            platform: None,
            rest: None,
        })),
    }
}

const NOWHERE: &str = "https://127.0.0.1:1/acme/config.git";

/// Accepts connections and never answers, so git hangs in the TLS handshake.
async fn black_hole() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    port
}

/// Whether any process's command line mentions `text`.
fn process_mentions(text: &str) -> bool {
    std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|entry| std::fs::read(entry.path().join("cmdline")).ok())
        .any(|cmdline| String::from_utf8_lossy(&cmdline).contains(text))
}

/// A delegate running against `server` in the background, and the switch that stops it.
struct Running {
    stop: tokio::sync::oneshot::Sender<()>,
    done: tokio::task::JoinHandle<Result<(), SourceError>>,
    _work: tempfile::TempDir,
}

fn start(config: HttpConfig, slots: usize) -> Running {
    let work = tempfile::tempdir().expect("work dir");
    let agent = Agent::new(GitRunner::new(), work.path()).shutdown_grace(Duration::from_secs(5));
    let source = Arc::new(HttpTaskSource::new(config).expect("source"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let slots = NonZeroUsize::new(slots).expect("slots");
    let done = tokio::spawn(async move {
        run_remote(&agent, source, slots, async {
            let _ = stopped.await;
        })
        .await
    });
    Running {
        stop,
        done,
        _work: work,
    }
}

impl Running {
    async fn stop(self) -> Result<(), SourceError> {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(10), self.done)
            .await
            .expect("the delegate stops")
            .expect("join")
    }
}

#[tokio::test]
async fn registration_carries_name_selectors_versions_and_host() {
    let fake = Fake::new(5, 1000);
    let server = serve(Arc::clone(&fake)).await;
    let source = HttpTaskSource::new(config(&server)).expect("source");
    let registered = source.register().await.expect("registered");
    assert_eq!(registered.name, NAME);
    assert_eq!(registered.selectors, ["eu-west", "onprem", "edge-01"]);
    assert_eq!(source.heartbeat_interval(), Duration::from_secs(5));

    let events = fake.events();
    let [
        Event::Register {
            authorization,
            body,
        },
    ] = events.as_slice()
    else {
        panic!("one registration: {events:#?}");
    };
    assert_eq!(authorization.as_deref(), Some(&*format!("Bearer {TOKEN}")));
    assert_eq!(body.name, NAME);
    assert_eq!(body.selectors, ["eu-west", "onprem"], "normalised");
    assert_eq!(body.version, "0.1.0");
    assert_eq!(body.hostname, "edge-01.example.com");
    assert_eq!(body.git_version, "2.47.3");
    assert_eq!(body.ssh_version, "OpenSSH_9.2p1");
    assert!(
        !format!("{source:?}").contains(TOKEN),
        "Debug hides the token"
    );
}

#[tokio::test]
async fn claims_long_poll_and_outcomes_are_reported() {
    let fake = Fake::new(30, 300);
    let server = serve(Arc::clone(&fake)).await;
    let delegate = start(config(&server), 2);

    // Idle: claims wait as long as the server allows and end with 204.
    fake.wait_for("two empty claims", |events| {
        let empty = events
            .iter()
            .filter(|e| matches!(e, Event::Claim { task: None, .. }))
            .count();
        (empty >= 2).then_some(())
    })
    .await;
    for event in fake.events() {
        if let Event::Claim { name, wait_ms, .. } = event {
            assert_eq!(name.as_deref(), Some(NAME), "claims name the delegate");
            assert_eq!(wait_ms, 300, "the wait is capped to the server's limit");
        }
    }

    // A task queued while a claim waits is picked up at once, without polling sleeps.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let queued = Instant::now();
    fake.push(test_task("t-1", NOWHERE, 10));
    let claimed_at = fake
        .wait_for("the claim of t-1", |events| {
            events.iter().find_map(|e| match e {
                Event::Claim {
                    task: Some(task),
                    at,
                    ..
                } if task == "t-1" => Some(*at),
                _ => None,
            })
        })
        .await;
    let pickup = claimed_at.duration_since(queued);
    assert!(
        pickup < Duration::from_millis(500),
        "picked up after {pickup:?}"
    );

    let (task, outcome) = fake
        .wait_for("the outcome of t-1", |events| {
            events.iter().find_map(|e| match e {
                Event::Complete {
                    task,
                    outcome,
                    name,
                    ..
                } => {
                    assert_eq!(name.as_deref(), Some(NAME));
                    Some((task.clone(), outcome.clone()))
                }
                _ => None,
            })
        })
        .await;
    assert_eq!(task, "t-1");
    assert!(!outcome.succeeded);
    assert_eq!(outcome.result["code"], "host_unreachable", "{outcome:?}");
    assert_eq!(outcome.result["url"], NOWHERE);

    delegate.stop().await.expect("a clean stop");
    assert_eq!(fake.completes().len(), 1, "reported once");
}

#[tokio::test]
async fn heartbeats_name_running_tasks_and_a_cancel_kills_git() {
    let fake = Fake::new(1, 200);
    let server = serve(Arc::clone(&fake)).await;
    let port = black_hole().await;
    let url = format!("https://127.0.0.1:{port}/acme/config.git");
    let delegate = start(config(&server), 2);
    fake.push(test_task("hangs", &url, 60));

    fake.wait_for("a heartbeat naming the task", |events| {
        events.iter().find_map(|e| match e {
            Event::Heartbeat { running, name } if running == &["hangs"] => {
                assert_eq!(name.as_deref(), Some(NAME));
                Some(())
            }
            _ => None,
        })
    })
    .await;
    let mark = format!("127.0.0.1:{port}");
    assert!(process_mentions(&mark), "git is running the task");

    // The server takes the task back: git dies and nothing is reported.
    *fake.cancel.lock().unwrap() = vec!["hangs".to_owned()];
    let heartbeats_before = fake.events().len();
    fake.wait_for("a heartbeat without the task", |events| {
        events[heartbeats_before..].iter().find_map(|e| match e {
            Event::Heartbeat { running, .. } if running.is_empty() => Some(()),
            _ => None,
        })
    })
    .await;
    let started = Instant::now();
    while process_mentions(&mark) {
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "git outlived the cancel"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        fake.completes().is_empty(),
        "a cancelled task reports nothing"
    );

    // The slot is free again.
    fake.cancel.lock().unwrap().clear();
    fake.push(test_task("next", NOWHERE, 10));
    fake.wait_for("the next task's outcome", |_| {
        fake_has_complete(&fake, "next")
    })
    .await;
    delegate.stop().await.expect("a clean stop");
}

fn fake_has_complete(fake: &Fake, id: &str) -> Option<()> {
    fake.completes()
        .iter()
        .any(|(task, _)| task == id)
        .then_some(())
}

#[tokio::test]
async fn a_revoked_token_stops_the_delegate() {
    let fake = Fake::new(1, 200);
    let server = serve(Arc::clone(&fake)).await;
    let delegate = start(config(&server), 2);
    fake.wait_for("a claim", |events| {
        events
            .iter()
            .any(|e| matches!(e, Event::Claim { .. }))
            .then_some(())
    })
    .await;
    fake.revoked.store(true, Ordering::SeqCst);
    let stopped = tokio::time::timeout(Duration::from_secs(5), delegate.done)
        .await
        .expect("the delegate stops by itself")
        .expect("join");
    let error = stopped.expect_err("a revoked token is an error");
    assert!(error.is_fatal());
    assert!(matches!(error, SourceError::Unauthorized(_)), "{error:?}");
    assert!(error.to_string().contains("revoked"), "{error}");
    assert!(!error.to_string().contains(TOKEN));
    assert!(
        !fake
            .events()
            .iter()
            .any(|e| matches!(e, Event::Leave { .. })),
        "a refused delegate has nobody to say goodbye to"
    );
}

#[tokio::test]
async fn a_name_another_token_holds_stops_the_delegate_with_a_clear_message() {
    let fake = Fake::new(1, 200);
    fake.name_taken.store(true, Ordering::SeqCst);
    let server = serve(Arc::clone(&fake)).await;
    let delegate = start(config(&server), 1);
    let stopped = tokio::time::timeout(Duration::from_secs(5), delegate.done)
        .await
        .expect("the delegate stops by itself")
        .expect("join");
    let error = stopped.expect_err("a taken name is an error");
    assert!(error.is_fatal(), "{error:?}");
    assert!(matches!(error, SourceError::Rejected(_)), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains(NAME) && message.contains("fleet"),
        "names the delegate and who holds its name: {message}"
    );
    assert_eq!(fake.registrations(), 1, "not retried");
}

#[tokio::test]
async fn a_clean_stop_tells_the_server_the_delegate_is_leaving() {
    let fake = Fake::new(30, 200);
    let server = serve(Arc::clone(&fake)).await;
    let delegate = start(config(&server), 1);
    fake.wait_for("a claim", |events| {
        events
            .iter()
            .any(|e| matches!(e, Event::Claim { .. }))
            .then_some(())
    })
    .await;
    delegate.stop().await.expect("a clean stop");
    let events = fake.events();
    assert!(
        matches!(events.last(), Some(Event::Leave { name: Some(name) }) if name == NAME),
        "the last request says goodbye, under the delegate's name: {events:#?}"
    );
}

#[tokio::test]
async fn a_refused_token_at_registration_is_not_retried() {
    let fake = Fake::new(1, 200);
    fake.revoked.store(true, Ordering::SeqCst);
    let server = serve(Arc::clone(&fake)).await;
    let delegate = start(config(&server), 1);
    let stopped = tokio::time::timeout(Duration::from_secs(5), delegate.done)
        .await
        .expect("the delegate stops by itself")
        .expect("join");
    assert!(
        matches!(stopped, Err(SourceError::Unauthorized(_))),
        "{stopped:?}"
    );
}

#[tokio::test]
async fn two_slots_run_two_tasks_at_once() {
    let fake = Fake::new(30, 200);
    let server = serve(Arc::clone(&fake)).await;
    let port = black_hole().await;
    let url = format!("https://127.0.0.1:{port}/acme/config.git");
    // Each task hangs until its 1-second timeout.
    fake.push(test_task("a", &url, 1));
    fake.push(test_task("b", &url, 1));
    let delegate = start(config(&server), 2);
    fake.wait_for("both outcomes", |_| {
        (fake.completes().len() == 2).then_some(())
    })
    .await;
    let (claimed_b, first_done) = claim_and_first_completion(&fake.events(), "b");
    assert!(
        claimed_b < first_done,
        "the second task started before the first ended"
    );
    for (_, outcome) in fake.completes() {
        assert_eq!(outcome.result["code"], "timeout", "{outcome:?}");
    }
    delegate.stop().await.expect("a clean stop");
}

#[tokio::test]
async fn one_slot_runs_one_task_at_a_time() {
    let fake = Fake::new(30, 200);
    let server = serve(Arc::clone(&fake)).await;
    let port = black_hole().await;
    let url = format!("https://127.0.0.1:{port}/acme/config.git");
    fake.push(test_task("a", &url, 1));
    fake.push(test_task("b", &url, 1));
    let delegate = start(config(&server), 1);
    fake.wait_for("both outcomes", |_| {
        (fake.completes().len() == 2).then_some(())
    })
    .await;
    let (claimed_b, first_done) = claim_and_first_completion(&fake.events(), "b");
    assert!(
        claimed_b > first_done,
        "the second task waited for the first"
    );
    delegate.stop().await.expect("a clean stop");
}

/// When `task` was claimed, and when the first completion arrived.
fn claim_and_first_completion(events: &[Event], task: &str) -> (Instant, Instant) {
    let claimed = events
        .iter()
        .find_map(|e| match e {
            Event::Claim {
                task: Some(id), at, ..
            } if id == task => Some(*at),
            _ => None,
        })
        .expect("claimed");
    let first_done = events
        .iter()
        .find_map(|e| match e {
            Event::Complete { at, .. } => Some(*at),
            _ => None,
        })
        .expect("completed");
    (claimed, first_done)
}

#[tokio::test]
async fn a_forgotten_delegate_registers_again() {
    let fake = Fake::new(30, 200);
    let server = serve(Arc::clone(&fake)).await;
    let delegate = start(config(&server), 1);
    fake.wait_for("a claim", |events| {
        events
            .iter()
            .any(|e| matches!(e, Event::Claim { .. }))
            .then_some(())
    })
    .await;
    // The server restarts and no longer knows the delegate.
    fake.forgotten.store(true, Ordering::SeqCst);
    fake.wait_for("a second registration", |_| {
        (fake.registrations() == 2).then_some(())
    })
    .await;
    fake.push(test_task("after", NOWHERE, 10));
    fake.wait_for("the task's outcome", |_| fake_has_complete(&fake, "after"))
        .await;
    delegate.stop().await.expect("a clean stop");
}

#[tokio::test]
async fn a_lost_lease_is_dropped_not_retried() {
    let fake = Fake::new(30, 200);
    fake.lease_lost.lock().unwrap().insert("stolen".to_owned());
    let server = serve(Arc::clone(&fake)).await;
    let delegate = start(config(&server), 1);
    fake.push(test_task("stolen", NOWHERE, 10));
    fake.push(test_task("mine", NOWHERE, 10));
    fake.wait_for("the second task's outcome", |_| {
        fake_has_complete(&fake, "mine")
    })
    .await;
    let stolen = fake
        .completes()
        .iter()
        .filter(|(task, _)| task == "stolen")
        .count();
    assert_eq!(stolen, 1, "offered once, then dropped");
    delegate.stop().await.expect("a clean stop");
}

#[tokio::test]
async fn an_outcome_is_offered_again_while_the_server_cannot_take_it() {
    let fake = Fake::new(30, 200);
    fake.unavailable_completes.store(2, Ordering::SeqCst);
    let server = serve(Arc::clone(&fake)).await;
    let delegate = start(config(&server), 1);
    fake.push(test_task("retried", NOWHERE, 10));
    fake.wait_for("three offers of the outcome", |_| {
        (fake.completes().len() == 3).then_some(())
    })
    .await;
    // A clean stop waits until every outcome is delivered, so any offer made after the
    // server took one would be counted by now.
    delegate.stop().await.expect("a clean stop");
    assert_eq!(fake.completes().len(), 3, "no more once one was taken");
}

#[tokio::test]
async fn registration_waits_for_a_server_that_is_not_up_yet() {
    let address: SocketAddr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("address")
    };
    let fake = Fake::new(30, 200);
    // Something that hangs up on the delegate: its first registration fails for sure, before
    // the server is up (a barrier, not a guess at how long it takes to try).
    let hangs_up = tokio::net::TcpListener::bind(address).await.expect("bind");
    let delegate = start(config(&format!("http://{address}")), 1);
    let (refused, _) = hangs_up.accept().await.expect("the delegate tries");
    drop(refused);
    drop(hangs_up);
    assert_eq!(fake.registrations(), 0);
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .expect("bind again");
    serve_on(listener, Arc::clone(&fake));
    fake.wait_for("the registration", |_| {
        (fake.registrations() == 1).then_some(())
    })
    .await;
    delegate.stop().await.expect("a clean stop");
}

#[tokio::test]
async fn shutdown_ends_an_idle_long_poll_at_once() {
    let fake = Fake::new(30, 25_000);
    let server = serve(Arc::clone(&fake)).await;
    let delegate = start(config(&server), 4);
    fake.wait_for("the registration", |_| {
        (fake.registrations() == 1).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let asked = Instant::now();
    delegate.stop().await.expect("a clean stop");
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "{:?}",
        asked.elapsed()
    );
}

#[tokio::test]
async fn a_server_behind_a_private_ca_is_trusted_with_its_certificate() {
    let ca = TestCa::new("delegate test CA").expect("ca");
    let fake = Fake::new(30, 200);
    let server = serve_tls(Arc::clone(&fake), &ca).await;

    let untrusting = HttpTaskSource::new(config(&server)).expect("source");
    let error = untrusting.register().await.expect_err("unknown CA");
    assert!(!error.is_fatal(), "a TLS failure may be fixed: {error}");
    assert!(error.to_string().contains("certificate"), "{error}");

    let trusting = HttpTaskSource::new(HttpConfig {
        ca_pem: Some(ca.cert_pem()),
        ..config(&server)
    })
    .expect("source");
    trusting.register().await.expect("registered over TLS");
    let claimed = trusting.claim(Duration::from_millis(50)).await;
    assert!(matches!(claimed, Ok(None)), "{claimed:?}");
}

#[test]
fn a_bad_server_url_or_ca_file_is_refused_up_front() {
    for url in [
        "ftp://host",
        "not a url",
        "https://user:pw@host",
        "https://h/?q=1",
    ] {
        let error = HttpTaskSource::new(config(url)).expect_err(url);
        assert!(error.to_string().contains("invalid server URL"), "{error}");
    }
    let error = HttpTaskSource::new(HttpConfig {
        ca_pem: Some("not a certificate".into()),
        ..config("https://h")
    })
    .expect_err("no certificate");
    assert!(error.to_string().contains("CA certificate"), "{error}");
}
