//! The remote delegate's way to the server: the delegate API over HTTP(S).
//!
//! Every request carries the delegate token as a bearer token, and every request after the
//! registration names the delegate in [`DELEGATE_NAME_HEADER`]. The delegate only ever makes
//! outgoing requests; tasks arrive by long poll. Status codes are turned into
//! [`SourceError`]s here and nowhere else: 401 is fatal (the token is unknown or revoked), so
//! is 409 `name_taken` (another token holds the delegate's name), 404 `unknown_delegate` means
//! the server forgot us (it restarted) and is answered by registering again, and 409
//! `lease_lost` on a completion means another delegate has the task now. A delegate that stops
//! cleanly says it is leaving, so the server need not wait a lease to know it is gone.

use std::future::Future;
use std::num::NonZeroUsize;
use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::Duration;

use reposync_api::{
    ApiErrorBody, DELEGATE_NAME_HEADER, DelegateTask, HeartbeatRequest, HeartbeatResponse,
    RegisterRequest, RegisterResponse, TaskOutcome,
};
use reposync_model::{Selector, TaskId};
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use reqwest::{StatusCode, Url};
use secrecy::{ExposeSecret as _, SecretString};
use serde::Serialize;

use crate::agent::Agent;
use crate::backoff::Backoff;
use crate::name::DelegateName;
use crate::source::{SourceError, TaskSource};

/// How long a connection to the server may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The limit of every request but a claim, whose limit is its wait plus [`CLAIM_MARGIN`].
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The limit of one archive upload: up to `MAX_FETCH_ARCHIVE_BYTES` over a slow link.
const UPLOAD_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// The limit of the goodbye a stopping delegate sends: it must not hold up the stop.
const LEAVE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long past its wait a claim may take before the delegate gives up on the answer.
const CLAIM_MARGIN: Duration = Duration::from_secs(10);
/// What the delegate assumes until the server's registration answer says otherwise.
const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(10);
const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(25);

/// Everything a remote delegate needs to reach the server and introduce itself.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// The server's base URL (`https://reposync.example.com`), `http` or `https`.
    pub server: String,
    /// The delegate token (`reposync delegate-token create`).
    pub token: SecretString,
    /// Extra certificate authorities (PEM) to trust for an `https` server, besides the
    /// system's: for a server whose certificate a private CA signed.
    pub ca_pem: Option<String>,
    pub name: DelegateName,
    pub selectors: Vec<Selector>,
    pub hostname: String,
    /// reposync's version on this machine.
    pub version: String,
    pub git_version: String,
    /// `ssh -V`'s line, or `none` when ssh is missing.
    pub ssh_version: String,
}

/// Why an [`HttpTaskSource`] cannot be built from its configuration.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("invalid server URL {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("cannot read the CA certificate: {0}")]
    BadCaCertificate(String),
    #[error("cannot set up the HTTP client: {0}")]
    Client(String),
}

/// A [`TaskSource`] that is the server's delegate API, reached over HTTP(S).
pub struct HttpTaskSource {
    http: reqwest::Client,
    base: Url,
    token: SecretString,
    registration: RegisterRequest,
    name_header: HeaderValue,
    session: Mutex<Session>,
}

/// What the server said at the last registration.
#[derive(Debug, Clone, Copy)]
struct Session {
    heartbeat: Duration,
    max_wait: Duration,
}

impl std::fmt::Debug for HttpTaskSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpTaskSource")
            .field("server", &self.base.as_str())
            .field("name", &self.registration.name)
            .field("token", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// A response read to its end.
struct Answer {
    status: StatusCode,
    body: Vec<u8>,
}

impl Answer {
    /// The error code and message of an error body (`{"error": {"code", "message"}}`), or the
    /// status alone when the body is not one.
    fn error(&self) -> (String, String) {
        match serde_json::from_slice::<ApiErrorBody>(&self.body) {
            Ok(body) => (body.error.code, body.error.message),
            Err(_) => (
                String::new(),
                format!("the server answered {}", self.status),
            ),
        }
    }

    fn has_code(&self, code: &str) -> bool {
        self.error().0 == code
    }

    fn json<T: serde::de::DeserializeOwned>(&self, what: &str) -> Result<T, SourceError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            SourceError::Unavailable(format!("the server's answer to {what} is not valid: {e}"))
        })
    }

    /// Any answer the caller did not expect: worth trying again later.
    fn unexpected(&self, what: &str) -> SourceError {
        let (code, message) = self.error();
        let code = if code.is_empty() {
            String::new()
        } else {
            format!(" {code}")
        };
        SourceError::Unavailable(format!(
            "the server answered {}{code} to {what}: {message}",
            self.status.as_u16()
        ))
    }
}

impl HttpTaskSource {
    /// A source for the server `config.server`. Nothing is sent until [`Self::register`].
    pub fn new(config: HttpConfig) -> Result<HttpTaskSource, SetupError> {
        let bad_url = |reason: &str| SetupError::BadUrl {
            url: config.server.clone(),
            reason: reason.to_owned(),
        };
        let mut base = Url::parse(&config.server).map_err(|e| bad_url(&e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(bad_url("use an http:// or https:// URL"));
        }
        if base.query().is_some() || base.fragment().is_some() {
            return Err(bad_url("the server URL takes no query or fragment"));
        }
        if !base.username().is_empty() || base.password().is_some() {
            return Err(bad_url(
                "the server URL must not hold credentials; the delegate token goes separately",
            ));
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let mut builder = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            // A redirected POST is not what the server means; the token stays with it.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(format!("reposync-delegate/{}", config.version));
        if let Some(pem) = &config.ca_pem {
            let certificates = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
                .map_err(|e| SetupError::BadCaCertificate(e.to_string()))?;
            if certificates.is_empty() {
                return Err(SetupError::BadCaCertificate(
                    "it holds no PEM certificate".into(),
                ));
            }
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let http = builder
            .build()
            .map_err(|e| SetupError::Client(describe(&e)))?;
        // A DelegateName is plain ASCII, which is always a valid header value.
        let name_header = HeaderValue::from_str(config.name.as_str())
            .map_err(|e| SetupError::Client(e.to_string()))?;
        Ok(HttpTaskSource {
            http,
            base,
            token: config.token,
            registration: RegisterRequest {
                name: config.name.as_str().to_owned(),
                selectors: config
                    .selectors
                    .iter()
                    .map(|s| s.as_str().to_owned())
                    .collect(),
                version: config.version,
                hostname: config.hostname,
                git_version: config.git_version,
                ssh_version: config.ssh_version,
            },
            name_header,
            session: Mutex::new(Session {
                heartbeat: DEFAULT_HEARTBEAT,
                max_wait: DEFAULT_MAX_WAIT,
            }),
        })
    }

    /// The server's base URL.
    pub fn server(&self) -> &str {
        self.base.as_str()
    }

    /// How often to send a heartbeat, as the last registration said.
    pub fn heartbeat_interval(&self) -> Duration {
        self.session.lock().heartbeat
    }

    /// Introduces the delegate (`POST /api/delegate/register`) and keeps the server's
    /// heartbeat interval and longest claim wait.
    pub async fn register(&self) -> Result<RegisterResponse, SourceError> {
        let answer = self
            .send(
                &["register"],
                None,
                Some(&self.registration),
                false,
                REQUEST_TIMEOUT,
            )
            .await?;
        match answer.status {
            StatusCode::OK => {
                let registered: RegisterResponse = answer.json("the registration")?;
                *self.session.lock() = Session {
                    heartbeat: Duration::from_secs(registered.heartbeat_secs.max(1)),
                    max_wait: Duration::from_millis(registered.max_wait_ms),
                };
                tracing::info!(
                    name = %registered.name,
                    selectors = %registered.selectors.join(","),
                    heartbeat_secs = registered.heartbeat_secs,
                    "registered with the server"
                );
                Ok(registered)
            }
            // A timed-out or rate-limited request is worth repeating; other 4xx are not.
            status
                if status.is_client_error()
                    && !matches!(
                        status,
                        StatusCode::REQUEST_TIMEOUT | StatusCode::TOO_MANY_REQUESTS
                    ) =>
            {
                let (_, message) = answer.error();
                Err(SourceError::Rejected(format!(
                    "the server refused the registration of delegate {:?}: {message}",
                    self.registration.name
                )))
            }
            _ => Err(answer.unexpected("the registration")),
        }
    }

    /// Registers, trying again with back-off while the server cannot be reached or answers
    /// with a transient error, until it accepts, refuses for good, or `shutdown` resolves
    /// (then `Ok(None)`).
    pub async fn register_with_retry(
        &self,
        shutdown: impl Future<Output = ()>,
    ) -> Result<Option<RegisterResponse>, SourceError> {
        tokio::pin!(shutdown);
        let mut backoff = Backoff::new();
        loop {
            let error = tokio::select! {
                () = &mut shutdown => return Ok(None),
                registered = self.register() => match registered {
                    Ok(registered) => return Ok(Some(registered)),
                    Err(error) if error.is_fatal() => return Err(error),
                    Err(error) => error,
                },
            };
            let pause = backoff.pause();
            tracing::warn!(
                %error,
                retry_in_ms = u64::try_from(pause.as_millis()).unwrap_or(u64::MAX),
                "cannot register with the server; retrying"
            );
            tokio::select! {
                () = &mut shutdown => return Ok(None),
                () = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// Tells the server which tasks are still running (`POST /api/delegate/heartbeat`), which
    /// extends their leases; the answer lists the tasks to stop.
    pub async fn heartbeat(&self, running: Vec<TaskId>) -> Result<HeartbeatResponse, SourceError> {
        let request = HeartbeatRequest { running };
        let answer = self
            .post(&["heartbeat"], None, Some(&request), true, REQUEST_TIMEOUT)
            .await?;
        match answer.status {
            StatusCode::OK => answer.json("a heartbeat"),
            _ => Err(answer.unexpected("a heartbeat")),
        }
    }

    /// Sends one request to `/api/delegate/<segments>`; for a request that names the delegate,
    /// registers again and repeats it once when the server has forgotten the delegate. A 401
    /// is the fatal [`SourceError::Unauthorized`]; every other answer goes to the caller.
    async fn post(
        &self,
        segments: &[&str],
        wait_ms: Option<u64>,
        body: Option<&(impl Serialize + ?Sized)>,
        named: bool,
        timeout: Duration,
    ) -> Result<Answer, SourceError> {
        let answer = self.send(segments, wait_ms, body, named, timeout).await?;
        if named && answer.status == StatusCode::NOT_FOUND && answer.has_code("unknown_delegate") {
            tracing::info!(
                "the server has forgotten this delegate (it restarted?); registering again"
            );
            self.register().await?;
            return self.send(segments, wait_ms, body, named, timeout).await;
        }
        Ok(answer)
    }

    async fn send(
        &self,
        segments: &[&str],
        wait_ms: Option<u64>,
        body: Option<&(impl Serialize + ?Sized)>,
        named: bool,
        timeout: Duration,
    ) -> Result<Answer, SourceError> {
        let url = self.endpoint(segments, wait_ms)?;
        let mut request = self
            .http
            .post(url)
            .timeout(timeout)
            .bearer_auth(self.token.expose_secret());
        if named {
            request = request.header(DELEGATE_NAME_HEADER, self.name_header.clone());
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let unreachable = |e: reqwest::Error| {
            SourceError::Unavailable(format!(
                "cannot reach the reposync server at {}: {}",
                self.base,
                describe(&e)
            ))
        };
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        let body = response.bytes().await.map_err(unreachable)?.to_vec();
        self.refused_for_good(Answer { status, body })
    }

    /// The answer, unless it refuses the delegate for good: 401 (the token) is the fatal
    /// [`SourceError::Unauthorized`], 409 `name_taken` the fatal [`SourceError::Rejected`].
    fn refused_for_good(&self, answer: Answer) -> Result<Answer, SourceError> {
        if answer.status == StatusCode::UNAUTHORIZED {
            let (_, message) = answer.error();
            return Err(SourceError::Unauthorized(format!(
                "the server refused the delegate token: {message} (a revoked token stays refused; `reposync delegate-token create NAME` makes a new one)"
            )));
        }
        // The name belongs to another token's delegate, which keeps running; this one must
        // not keep trying under it.
        if answer.status == StatusCode::CONFLICT && answer.has_code("name_taken") {
            let (_, message) = answer.error();
            return Err(SourceError::Rejected(format!(
                "the server refused the delegate name {:?}: {message}",
                self.registration.name
            )));
        }
        Ok(answer)
    }

    /// `PUT /api/delegate/tasks/{id}/archive` with the file at `archive` as the body, streamed
    /// from disk, never read whole.
    async fn put_archive(&self, task_id: &TaskId, archive: &Path) -> Result<Answer, SourceError> {
        let unreadable = |e: std::io::Error| {
            SourceError::Unavailable(format!("cannot read the fetch's archive: {e}"))
        };
        let file = tokio::fs::File::open(archive).await.map_err(unreadable)?;
        let length = file.metadata().await.map_err(unreadable)?.len();
        let url = self.endpoint(&["tasks", task_id.as_str(), "archive"], None)?;
        let unreachable = |e: reqwest::Error| {
            SourceError::Unavailable(format!(
                "cannot reach the reposync server at {}: {}",
                self.base,
                describe(&e)
            ))
        };
        let response = self
            .http
            .put(url)
            .timeout(UPLOAD_TIMEOUT)
            .bearer_auth(self.token.expose_secret())
            .header(DELEGATE_NAME_HEADER, self.name_header.clone())
            .header(CONTENT_TYPE, "application/x-tar")
            .header(CONTENT_LENGTH, length)
            .body(reqwest::Body::from(file))
            .send()
            .await
            .map_err(unreachable)?;
        let status = response.status();
        let body = response.bytes().await.map_err(unreachable)?.to_vec();
        self.refused_for_good(Answer { status, body })
    }

    /// Tells the server the delegate is stopping (`POST /api/delegate/leave`), so that it is
    /// shown disconnected and its tasks go elsewhere at once. Best effort: a server that cannot
    /// be told finds out when the delegate's lease runs out.
    pub async fn leave(&self) -> Result<(), SourceError> {
        let answer = self
            .send(&["leave"], None, None::<&()>, true, LEAVE_TIMEOUT)
            .await?;
        match answer.status {
            StatusCode::OK | StatusCode::NO_CONTENT => Ok(()),
            _ => Err(answer.unexpected("a goodbye")),
        }
    }

    /// `<server>/api/delegate/<segments>[?wait_ms=…]`, each segment percent-encoded.
    fn endpoint(&self, segments: &[&str], wait_ms: Option<u64>) -> Result<Url, SourceError> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| SourceError::Rejected(format!("{} cannot be a base URL", self.base)))?
            .pop_if_empty()
            .extend(["api", "delegate"])
            .extend(segments);
        if let Some(wait_ms) = wait_ms {
            url.query_pairs_mut()
                .append_pair("wait_ms", &wait_ms.to_string());
        }
        Ok(url)
    }
}

#[async_trait::async_trait]
impl TaskSource for HttpTaskSource {
    /// `POST /api/delegate/claim?wait_ms=…`: a task (200) or none within the wait (204). The
    /// wait is capped to what the server allows.
    async fn claim(&self, wait: Duration) -> Result<Option<DelegateTask>, SourceError> {
        let wait = wait.min(self.session.lock().max_wait);
        let wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
        let answer = self
            .post(
                &["claim"],
                Some(wait_ms),
                None::<&()>,
                true,
                wait + CLAIM_MARGIN,
            )
            .await?;
        match answer.status {
            StatusCode::OK => answer.json("a claim").map(Some),
            StatusCode::NO_CONTENT => Ok(None),
            _ => Err(answer.unexpected("a claim")),
        }
    }

    /// `POST /api/delegate/tasks/{id}/complete`. A task another delegate has now (409
    /// `lease_lost`) or that the server no longer knows (404) is logged and dropped: its
    /// outcome is no longer wanted.
    async fn complete(&self, task_id: &TaskId, outcome: TaskOutcome) -> Result<(), SourceError> {
        let answer = self
            .post(
                &["tasks", task_id.as_str(), "complete"],
                None,
                Some(&outcome),
                true,
                REQUEST_TIMEOUT,
            )
            .await?;
        match answer.status {
            StatusCode::OK | StatusCode::NO_CONTENT => Ok(()),
            StatusCode::CONFLICT | StatusCode::NOT_FOUND => {
                let (code, message) = answer.error();
                tracing::warn!(
                    task = %task_id,
                    code = %code,
                    %message,
                    "the server no longer wants this task's outcome; another delegate may have it"
                );
                Ok(())
            }
            _ => Err(answer.unexpected("a task's outcome")),
        }
    }

    /// `PUT /api/delegate/tasks/{id}/archive`, the body streamed from the file. A task another
    /// delegate has now (409 `lease_lost`) or that the server no longer knows (404) is logged
    /// and dropped, as its outcome will be.
    async fn upload_archive(&self, task_id: &TaskId, archive: &Path) -> Result<(), SourceError> {
        let mut answer = self.put_archive(task_id, archive).await?;
        if answer.status == StatusCode::NOT_FOUND && answer.has_code("unknown_delegate") {
            tracing::info!(
                "the server has forgotten this delegate (it restarted?); registering again"
            );
            self.register().await?;
            answer = self.put_archive(task_id, archive).await?;
        }
        match answer.status {
            StatusCode::OK | StatusCode::NO_CONTENT => Ok(()),
            StatusCode::CONFLICT | StatusCode::NOT_FOUND => {
                let (code, message) = answer.error();
                tracing::warn!(
                    task = %task_id,
                    code = %code,
                    %message,
                    "the server no longer wants this fetch's archive; another delegate may have the task"
                );
                Ok(())
            }
            _ => Err(answer.unexpected("a fetch's archive")),
        }
    }
}

/// Runs a remote delegate until `shutdown` resolves: registers (retrying while the server
/// cannot be reached), then sends heartbeats every interval the server asked for while
/// [`Agent::run_concurrently`] claims and runs up to `slots` tasks. Tasks the server takes
/// back in a heartbeat's answer are cancelled. A clean stop ends by telling the server the
/// delegate is leaving. Returns the fatal error that stopped it (a refused token, name or
/// registration); transient errors are logged and retried.
pub async fn run_remote(
    agent: &Agent,
    source: Arc<HttpTaskSource>,
    slots: NonZeroUsize,
    shutdown: impl Future<Output = ()>,
) -> Result<(), SourceError> {
    tokio::pin!(shutdown);
    if source.register_with_retry(&mut shutdown).await?.is_none() {
        return Ok(());
    }
    let heartbeats = heartbeat_loop(agent, &source);
    let claims =
        agent.run_concurrently(Arc::clone(&source) as Arc<dyn TaskSource>, slots, shutdown);
    let stopped = tokio::select! {
        stopped = claims => stopped,
        // Dropping the claim loop drops its tasks, which kills their git processes: they
        // could no longer report.
        fatal = heartbeats => Err(fatal),
    };
    if stopped.is_ok() {
        match source.leave().await {
            Ok(()) => tracing::info!("told the server this delegate is leaving"),
            Err(error) => {
                tracing::warn!(%error, "cannot tell the server this delegate is leaving; it will notice when the lease runs out")
            }
        }
    }
    stopped
}

/// Sends heartbeats until one fails for good, and cancels what the server takes back.
async fn heartbeat_loop(agent: &Agent, source: &HttpTaskSource) -> SourceError {
    loop {
        tokio::time::sleep(source.heartbeat_interval()).await;
        match source.heartbeat(agent.running()).await {
            Ok(answer) => {
                for task_id in answer.cancel {
                    if agent.cancel(&task_id) {
                        tracing::info!(task = %task_id, "stopped a task the server took back");
                    }
                }
            }
            Err(error) if error.is_fatal() => return error,
            Err(error) => tracing::warn!(%error, "cannot send a heartbeat"),
        }
    }
}

/// A reqwest error with its causes, which name the real problem (refused, certificate).
fn describe(error: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}
