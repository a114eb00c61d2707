//! Bitbucket's REST API for tests: Cloud 2.0 or Server/Data Center 1.0 over HTTPS, serving
//! the same bare repositories of a [`RepoRoot`] that [`GitHttpsServer`] and [`SshServer`]
//! serve and that [`BitbucketEmulator`] sends webhooks for. It is the one allowed stand-in for
//! Bitbucket's REST API in tests.
//!
//! # How answers are made
//!
//! Every answer is computed from the repository by real git (`rev-parse`, `ls-tree -z`,
//! `cat-file`, `diff-tree -z`, `archive`, and plumbing for commits): nothing about a
//! repository's content is made up, so a client that fetches through this API and one that
//! clones see the same thing. Requests are handled on a blocking thread of the server's own
//! runtime; archives are streamed from `git archive` as it writes them.
//!
//! # Shapes and behaviour
//!
//! The JSON follows real responses (see `shared/fixtures/bitbucket/` and
//! `shared/BITBUCKET.md`): Cloud's error envelope `{"type":"error","error":{"message":…}}`,
//! DC's `{"errors":[{"context":null,"message":…,"exceptionName":…}]}`, Cloud's opaque `src`
//! page cursors, DC's `start`/`limit`/`isLastPage`/`nextPageStart` pages, DC's hard cap on
//! `changes`, Cloud's reversed `diffstat` spec and its merge-base default, and Cloud's refusal
//! to address a branch with a `/` inside `src`. The endpoint modules (`cloud`, `dc`)
//! document each endpoint and where the emulator is knowingly simpler than Bitbucket.
//!
//! # Authentication, faults and limits
//!
//! Requests carry `Authorization: Basic` or `Bearer` credentials matching [`ApiAuth`]; a
//! refusal is `401` (Cloud: plain text for Basic or none, as Cloud does, and its JSON
//! "Token is invalid" envelope for a bad Bearer token; DC: its JSON envelope). DC's
//! `application-properties` needs none. After authentication, in this order: an injected
//! [`ApiFault`] answers the next request to a repository endpoint; then the rate limit
//! ([`BitbucketApi::set_rate_limit`]) refuses authenticated requests beyond the limit in a
//! rolling hour with `429`.
//!
//! # Webhooks
//!
//! A commit made through Cloud's `POST …/src` is written to the repository's push journal
//! when a [`BitbucketEmulator`] watches it, so the webhook follows as it would for a push.
//!
//! [`GitHttpsServer`]: crate::GitHttpsServer
//! [`SshServer`]: crate::SshServer
//! [`BitbucketEmulator`]: crate::BitbucketEmulator

mod cloud;
mod dc;
mod faults;
mod form;
mod git_read;
mod git_write;
mod reply;

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderName};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Limited};
use hyper::body::{Bytes, Incoming};
use tokio::io::AsyncReadExt as _;
use tokio::sync::mpsc;

use crate::ca::TestCa;
use crate::repo::RepoRoot;
use crate::tls_server::{Hangup, TlsListener, TlsServer, TlsService};
use faults::Controls;
use reply::{ApiBody, ApiRequest, Reply, header_map};

/// The largest request body accepted (a `POST …/src` with its files).
const MAX_REQUEST_BODY: usize = 64 * 1024 * 1024;

/// Which Bitbucket the API pretends to be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApiFlavour {
    /// Bitbucket Cloud, REST 2.0 under `/2.0`.
    Cloud,
    /// Bitbucket Server/Data Center, REST 1.0 under `[/<context>]/rest/api/1.0`.
    DataCenter {
        /// The version `application-properties` reports, e.g. `8.19.1`; versions before 5.1
        /// have no `archive` endpoint.
        version: String,
        /// The context path the server is deployed under, e.g. `bitbucket`.
        context: Option<String>,
    },
}

/// The credentials the API accepts; anything else is refused with `401`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ApiAuth {
    /// `Authorization: Basic base64(user:password)` (on Cloud the user of an API token is
    /// the account's email).
    pub basic: Option<(String, String)>,
    /// `Authorization: Bearer <token>` (Cloud access tokens, DC HTTP access tokens).
    pub bearer: Option<String>,
}

impl ApiAuth {
    /// Accepts exactly this user and password over Basic auth.
    pub fn basic(user: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            basic: Some((user.into(), password.into())),
            bearer: None,
        }
    }

    /// Accepts exactly this Bearer token.
    pub fn bearer(token: impl Into<String>) -> Self {
        Self {
            basic: None,
            bearer: Some(token.into()),
        }
    }
}

impl fmt::Debug for ApiAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiAuth")
            .field(
                "basic",
                &self
                    .basic
                    .as_ref()
                    .map(|(user, _)| (user.as_str(), "<redacted>")),
            )
            .field("bearer", &self.bearer.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// A failure the API produces on purpose, for the next request to a repository endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApiFault {
    /// `429`. Cloud: plain text, with `Retry-After` only when given (Cloud usually sends
    /// none); DC: its JSON envelope, with `Retry-After` only when given.
    TooManyRequests { retry_after: Option<u64> },
    /// This status, with the flavour's error envelope.
    ServerError(u16),
    /// The TCP connection is closed without any answer.
    DropConnection,
    /// The next WRITE (a `POST`; reads pass it by) is carried out (a commit made, the branch
    /// moved), then the connection is closed before the answer: the window in which a client
    /// cannot know that its write landed.
    DropAfterHandling,
    /// The next WRITE is refused with this status (409: the branch moved) and not carried
    /// out; reads pass it by.
    RefuseWrite(u16),
    /// The next WRITE is carried out, and its answer held back until
    /// [`BitbucketApi::release_held`]: the window in which a test kills the client after its
    /// write landed and before it learnt so. [`BitbucketApi::held_writes`] says when a write
    /// is waiting there.
    HoldAfterHandling,
}

/// Bitbucket's REST API over the repositories of a [`RepoRoot`]; see the module
/// documentation. Dropping it stops the server.
pub struct BitbucketApi {
    server: TlsServer,
    ca_pem: String,
    shared: Arc<Shared>,
}

/// The flavour with its DC version parsed.
#[derive(Clone, Debug)]
enum Flavour {
    Cloud,
    DataCenter(dc::Deployment),
}

/// What the handle and the serving thread share.
struct Shared {
    root: RepoRoot,
    flavour: Flavour,
    auth: ApiAuth,
    /// `https://127.0.0.1:PORT`, the host of every link the API writes.
    origin: String,
    requests: AtomicUsize,
    bytes: AtomicU64,
    log: Mutex<String>,
    controls: Mutex<Controls>,
    /// Answers held back by `HoldAfterHandling`, and the release they wait for.
    held: AtomicUsize,
    released: std::sync::atomic::AtomicBool,
    release: tokio::sync::Notify,
}

/// Who may call an endpoint, and whether faults apply to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Access {
    /// No credentials needed (DC `application-properties`, and unknown paths, which answer
    /// 404 either way). Credentials that are sent must still be right.
    Open,
    /// Credentials needed.
    Authenticated,
    /// Credentials needed, and an injected fault answers instead.
    Repository,
}

/// What an endpoint needs besides the request.
struct Ctx<'a> {
    pub root: &'a RepoRoot,
    pub origin: &'a str,
    /// The authenticated user (Basic) or `x-token-auth` (Bearer); the actor of pushes.
    pub actor: &'a str,
    pub changes_cap: usize,
}

/// The outcome of checking a request's credentials.
enum Caller {
    None,
    Accepted { actor: String },
    Refused { bearer: bool },
}

impl fmt::Debug for BitbucketApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BitbucketApi")
            .field("addr", &self.server.addr())
            .field("flavour", &self.shared.flavour)
            .field("auth", &self.shared.auth)
            .field("root", &self.shared.root.path())
            .finish_non_exhaustive()
    }
}

impl BitbucketApi {
    /// Starts the API on a free port of 127.0.0.1 with a certificate issued by `ca`.
    pub async fn start(
        root: &RepoRoot,
        ca: &TestCa,
        flavour: ApiFlavour,
        auth: ApiAuth,
    ) -> Result<Self> {
        let flavour = match flavour {
            ApiFlavour::Cloud => Flavour::Cloud,
            ApiFlavour::DataCenter { version, context } => {
                Flavour::DataCenter(dc::Deployment::new(&version, context.as_deref())?)
            }
        };
        let listener = TlsListener::bind("bitbucket-api")?;
        let shared = Arc::new(Shared {
            root: root.share(),
            flavour,
            auth,
            origin: format!("https://{}", listener.addr()),
            requests: AtomicUsize::new(0),
            bytes: AtomicU64::new(0),
            log: Mutex::new(String::new()),
            controls: Mutex::new(Controls::default()),
            held: AtomicUsize::new(0),
            released: std::sync::atomic::AtomicBool::new(false),
            release: tokio::sync::Notify::new(),
        });
        let server = listener.serve(ca, Arc::clone(&shared))?;
        Ok(Self {
            server,
            ca_pem: ca.cert_pem(),
            shared,
        })
    }

    /// The REST base: `https://127.0.0.1:PORT/2.0` on Cloud,
    /// `https://127.0.0.1:PORT[/context]/rest/api/1.0` on DC.
    pub fn base_url(&self) -> String {
        match &self.shared.flavour {
            Flavour::Cloud => format!("{}/2.0", self.shared.origin),
            Flavour::DataCenter(deployment) => {
                format!("{}{}", self.shared.origin, deployment.api_prefix())
            }
        }
    }

    /// `https://127.0.0.1:PORT`.
    pub fn origin(&self) -> String {
        self.shared.origin.clone()
    }

    /// The PEM of the CA that signed the server certificate.
    pub fn ca_pem(&self) -> String {
        self.ca_pem.clone()
    }

    /// Queues `fault`: the next request that reaches a repository endpoint (after
    /// authentication) answers with it instead; one request per queued fault, oldest first.
    pub fn inject(&self, fault: ApiFault) {
        self.shared.controls().inject(fault);
    }

    /// Limits authenticated requests to this many in a rolling hour (`None` lifts the limit),
    /// counting from now. Beyond it, requests get `429`: on Cloud as plain text "Rate limit
    /// for this resource has been exceeded" without `Retry-After`; on DC as its JSON
    /// envelope with `Retry-After: 1`. Refused requests do not count.
    pub fn set_rate_limit(&self, requests_per_hour: Option<u32>) {
        self.shared.controls().set_rate_limit(requests_per_hour);
    }

    /// On Cloud, adds the headers Cloud sends to access tokens on "scaled" endpoints to every
    /// authenticated answer: `X-RateLimit-Limit: <limit>`, `X-RateLimit-Resource: api-repo`
    /// and `X-RateLimit-NearLimit: <near_limit>`; `None` stops them. DC has no such headers,
    /// so there the setting changes nothing.
    pub fn set_rate_limit_headers(&self, limit: Option<u32>, near_limit: bool) {
        self.shared.controls().rate_limit_headers = limit.map(|limit| (limit, near_limit));
    }

    /// DC's `page.max.changes` (default 1000): `changes` never lists more than this many.
    pub fn set_changes_cap(&self, cap: usize) {
        self.shared.controls().changes_cap = cap;
    }

    /// How many requests have arrived, whatever their answer (401 and 429 included).
    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// How many response body bytes have been sent.
    pub fn bytes_sent(&self) -> u64 {
        self.shared.bytes.load(Ordering::SeqCst)
    }

    /// Sets [`BitbucketApi::requests`] and [`BitbucketApi::bytes_sent`] back to zero; the log
    /// and the rate limit's window are kept.
    pub fn reset_counts(&self) {
        self.shared.requests.store(0, Ordering::SeqCst);
        self.shared.bytes.store(0, Ordering::SeqCst);
    }

    /// How many writes were carried out and wait, their answers held back
    /// ([`ApiFault::HoldAfterHandling`]).
    pub fn held_writes(&self) -> usize {
        self.shared.held.load(Ordering::SeqCst)
    }

    /// Lets every held answer go (to a client that may be gone), and every later one.
    pub fn release_held(&self) {
        self.shared.released.store(true, Ordering::SeqCst);
        self.shared.release.notify_waiters();
    }

    /// One line per request, `METHOD path?query -> status (N bytes)`, plus any internal
    /// error an endpoint met. A streamed answer's line is written when the stream ends.
    pub fn log(&self) -> String {
        self.shared
            .log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl TlsService for Shared {
    type Body = ApiBody;

    async fn call(
        self: Arc<Self>,
        request: Request<Incoming>,
        _peer: SocketAddr,
    ) -> Result<Response<ApiBody>, Hangup> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        let (parts, body) = request.into_parts();
        let line = format!(
            "{} {}",
            parts.method,
            parts
                .uri
                .path_and_query()
                .map_or_else(|| parts.uri.path(), |path| path.as_str())
        );
        let body = match Limited::new(body, MAX_REQUEST_BODY).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(err) => {
                let reply = self.error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    &format!("cannot read the request body: {err}"),
                );
                return Ok(self.send_full(&line, reply));
            }
        };
        let request = ApiRequest::new(
            parts.method,
            parts.uri.path(),
            parts.uri.query(),
            parts.headers,
            body,
        );
        let worker = Arc::clone(&self);
        // Endpoints run git synchronously; a blocking thread keeps other connections going.
        let reply = match tokio::task::spawn_blocking(move || worker.answer(&request)).await {
            Ok(reply) => reply,
            Err(err) => {
                self.note(format!("{line}: the endpoint panicked: {err}"));
                self.error(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error")
            }
        };
        let reply = match reply {
            Reply::Held(answer) => {
                self.held.fetch_add(1, Ordering::SeqCst);
                self.note(format!("{line}: carried out; the answer is held"));
                loop {
                    // Registered before the flag is read, so a release between the two is seen.
                    let released = self.release.notified();
                    if self.released.load(Ordering::SeqCst) {
                        break;
                    }
                    released.await;
                }
                self.held.fetch_sub(1, Ordering::SeqCst);
                *answer
            }
            other => other,
        };
        match reply {
            Reply::Hangup => {
                self.note(format!("{line} -> hangup (0 bytes)"));
                Err(Hangup)
            }
            Reply::Stream {
                headers,
                repo,
                args,
            } => Ok(self.send_stream(line, headers, &repo, args)),
            full => Ok(self.send_full(&line, full)),
        }
    }

    fn note(&self, line: String) {
        let mut log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        log.push_str(&line);
        if !log.ends_with('\n') {
            log.push('\n');
        }
    }
}

impl Shared {
    fn controls(&self) -> MutexGuard<'_, Controls> {
        self.controls.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Authenticates, applies faults and limits, and asks the flavour's endpoints.
    fn answer(&self, request: &ApiRequest) -> Reply {
        let access = match &self.flavour {
            Flavour::Cloud => cloud::access(request),
            Flavour::DataCenter(deployment) => dc::access(request, deployment),
        };
        let actor = match (self.caller(request), access) {
            (Caller::Refused { bearer }, _) => return self.unauthorized(bearer),
            (Caller::None, Access::Open) => None,
            (Caller::None, _) => return self.unauthorized(false),
            (Caller::Accepted { actor }, _) => Some(actor),
        };
        let reply = self.answer_as(request, access, actor.as_deref());
        match (&self.flavour, actor, self.controls().rate_limit_headers) {
            (Flavour::Cloud, Some(_), Some((limit, near_limit))) => reply
                .with_header(
                    HeaderName::from_static("x-ratelimit-limit"),
                    limit.to_string(),
                )
                .with_header(HeaderName::from_static("x-ratelimit-resource"), "api-repo")
                .with_header(
                    HeaderName::from_static("x-ratelimit-nearlimit"),
                    near_limit.to_string(),
                ),
            _ => reply,
        }
    }

    fn answer_as(&self, request: &ApiRequest, access: Access, actor: Option<&str>) -> Reply {
        let changes_cap = {
            let mut controls = self.controls();
            let is_write = request.method != http::Method::GET;
            if access == Access::Repository
                && let Some(fault) = controls.next_fault(is_write)
            {
                if fault == ApiFault::DropAfterHandling {
                    drop(controls);
                    let _lost = self.answer_as(request, access, actor);
                    return Reply::Hangup;
                }
                if fault == ApiFault::HoldAfterHandling {
                    drop(controls);
                    return Reply::Held(Box::new(self.answer_as(request, access, actor)));
                }
                if let ApiFault::RefuseWrite(code) = fault {
                    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::CONFLICT);
                    return self.error(status, "The branch has moved since the given parent");
                }
                return self.fault(fault);
            }
            if actor.is_some() && !controls.admit(Instant::now()) {
                return self.rate_limited();
            }
            controls.changes_cap
        };
        let ctx = Ctx {
            root: &self.root,
            origin: &self.origin,
            actor: actor.unwrap_or("anonymous"),
            changes_cap,
        };
        let answered = match &self.flavour {
            Flavour::Cloud => cloud::respond(&ctx, request),
            Flavour::DataCenter(deployment) => dc::respond(&ctx, deployment, request),
        };
        answered.unwrap_or_else(|err| {
            self.note(format!(
                "{} {}: internal error: {err:#}",
                request.method, request.raw_path
            ));
            self.error(StatusCode::INTERNAL_SERVER_ERROR, &format!("{err:#}"))
        })
    }

    /// Checks the `Authorization` header against [`ApiAuth`].
    fn caller(&self, request: &ApiRequest) -> Caller {
        let Some(header) = request.header(&AUTHORIZATION) else {
            return Caller::None;
        };
        let (scheme, credentials) = header.split_once(' ').unwrap_or((header, ""));
        let credentials = credentials.trim();
        if scheme.eq_ignore_ascii_case("Bearer") {
            return match &self.auth.bearer {
                Some(token) if token == credentials => Caller::Accepted {
                    actor: "x-token-auth".to_owned(),
                },
                _ => Caller::Refused { bearer: true },
            };
        }
        if scheme.eq_ignore_ascii_case("Basic") {
            let decoded = BASE64
                .decode(credentials)
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok());
            let pair = decoded.as_deref().and_then(|text| text.split_once(':'));
            return match (&self.auth.basic, pair) {
                (Some((user, password)), Some((sent_user, sent_password)))
                    if user == sent_user && password == sent_password =>
                {
                    Caller::Accepted {
                        actor: user.clone(),
                    }
                }
                _ => Caller::Refused { bearer: false },
            };
        }
        Caller::Refused { bearer: false }
    }

    fn unauthorized(&self, bearer: bool) -> Reply {
        match &self.flavour {
            Flavour::Cloud => cloud::unauthorized(bearer),
            Flavour::DataCenter(_) => dc::unauthorized(),
        }
    }

    fn rate_limited(&self) -> Reply {
        match &self.flavour {
            Flavour::Cloud => cloud::too_many_requests(None),
            Flavour::DataCenter(_) => dc::too_many_requests(Some(1)),
        }
    }

    fn fault(&self, fault: ApiFault) -> Reply {
        match fault {
            ApiFault::DropConnection
            | ApiFault::DropAfterHandling
            | ApiFault::HoldAfterHandling => Reply::Hangup,
            ApiFault::RefuseWrite(code) => {
                let status = StatusCode::from_u16(code).unwrap_or(StatusCode::CONFLICT);
                self.error(status, "The branch has moved since the given parent")
            }
            ApiFault::TooManyRequests { retry_after } => match &self.flavour {
                Flavour::Cloud => cloud::too_many_requests(retry_after),
                Flavour::DataCenter(_) => dc::too_many_requests(retry_after),
            },
            ApiFault::ServerError(code) => {
                let status =
                    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                self.error(status, "Something went wrong")
            }
        }
    }

    /// An error in the flavour's envelope.
    fn error(&self, status: StatusCode, message: &str) -> Reply {
        match &self.flavour {
            Flavour::Cloud => cloud::error(status, message),
            Flavour::DataCenter(_) => dc::error(status, message, None),
        }
    }

    /// Counts and logs a complete answer, then hands it to hyper.
    fn send_full(&self, line: &str, reply: Reply) -> Response<ApiBody> {
        let Reply::Full {
            status,
            headers,
            body,
        } = reply
        else {
            // Streams and hang-ups never come here; answer rather than panic if one did.
            return self.send_full(
                line,
                self.error(StatusCode::INTERNAL_SERVER_ERROR, "unexpected reply"),
            );
        };
        let len = body.len();
        self.bytes
            .fetch_add(u64::try_from(len).unwrap_or(u64::MAX), Ordering::SeqCst);
        // Logged before the answer leaves, so a client that has it finds it in the log.
        self.note(format!("{line} -> {} ({len} bytes)", status.as_u16()));
        let mut response = Response::new(ApiBody::full(body));
        *response.status_mut() = status;
        *response.headers_mut() = header_map(headers);
        response
    }

    /// Answers `200` with the standard output of git, streamed; the log line and the byte
    /// count are written as the stream goes, before its end reaches the client.
    fn send_stream(
        self: &Arc<Self>,
        line: String,
        headers: Vec<(HeaderName, String)>,
        repo: &std::path::Path,
        args: Vec<String>,
    ) -> Response<ApiBody> {
        let mut command = tokio::process::Command::from(self.root.git().command());
        command
            .current_dir(repo)
            .args(&args)
            .env("GIT_LITERAL_PATHSPECS", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let spawned = command
            .spawn()
            .context("cannot spawn git")
            .and_then(
                |mut child| match (child.stdout.take(), child.stderr.take()) {
                    (Some(stdout), Some(stderr)) => Ok((child, stdout, stderr)),
                    _ => bail!("git was spawned without pipes"),
                },
            );
        let (mut child, mut stdout, mut stderr) = match spawned {
            Ok(spawned) => spawned,
            Err(err) => {
                self.note(format!("{line}: {err:#}"));
                let reply = self.error(StatusCode::INTERNAL_SERVER_ERROR, &format!("{err:#}"));
                return self.send_full(&line, reply);
            }
        };
        let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(16);
        let shared = Arc::clone(self);
        tokio::spawn(async move {
            let stderr_task = tokio::spawn(async move {
                let mut text = String::new();
                let _ = stderr.read_to_string(&mut text).await;
                text
            });
            let mut sent: u64 = 0;
            let mut chunk = vec![0_u8; 64 * 1024];
            let mut client_gone = false;
            loop {
                match stdout.read(&mut chunk).await {
                    Ok(0) => break,
                    Ok(read) => {
                        let len = u64::try_from(read).unwrap_or(u64::MAX);
                        shared.bytes.fetch_add(len, Ordering::SeqCst);
                        sent += len;
                        let data = Bytes::copy_from_slice(&chunk[..read]);
                        if tx.send(Ok(data)).await.is_err() {
                            client_gone = true;
                            break;
                        }
                    }
                    Err(err) => {
                        let _ = tx.send(Err(err)).await;
                        break;
                    }
                }
            }
            if client_gone {
                let _ = child.kill().await;
            }
            let status = child.wait().await;
            let stderr = stderr_task.await.unwrap_or_default();
            let failure = match &status {
                Ok(status) if status.success() => None,
                Ok(status) => Some(format!("git exited with {status}: {}", stderr.trim())),
                Err(err) => Some(format!("waiting for git failed: {err}")),
            };
            let suffix = failure
                .as_ref()
                .map(|failure| format!(" [{failure}]"))
                .unwrap_or_default();
            shared.note(format!("{line} -> 200 ({sent} bytes){suffix}"));
            if let (Some(failure), false) = (failure, client_gone) {
                // Breaking the body makes the client see a failed download, not a short one.
                let _ = tx.send(Err(io::Error::other(failure))).await;
            }
        });
        let mut response = Response::new(ApiBody::streaming(rx));
        *response.headers_mut() = header_map(headers);
        response
    }
}

/// The content type of a form post, for endpoints that read one.
fn content_type(request: &ApiRequest) -> &str {
    request.header(&CONTENT_TYPE).unwrap_or_default()
}
