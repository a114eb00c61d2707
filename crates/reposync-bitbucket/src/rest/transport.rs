//! The one way a REST request leaves reposync: authenticated for the credential's kind,
//! bounded in time and size, counted against the credential's budget, retried on 5xx and 429
//! with back-off and jitter, and measured.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand::Rng as _;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use secrecy::{ExposeSecret as _, SecretString};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncWrite, AsyncWriteExt as _};
use url::Url;

use super::budget::{RateLimitHeaders, RequestBudget};
use super::error::RestError;

/// How long a connection may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How a credential authenticates to the REST API.
///
/// Cloud API tokens use Basic with the account's email (git uses the username instead); Cloud
/// access tokens and Data Center HTTP access tokens are Bearer tokens.
#[derive(Clone)]
pub enum RestCredential {
    Basic {
        username: String,
        password: SecretString,
    },
    Bearer(SecretString),
    /// No credentials: Data Center's `application-properties` needs none.
    Anonymous,
}

impl fmt::Debug for RestCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RestCredential::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .finish_non_exhaustive(),
            RestCredential::Bearer(_) => f.write_str("Bearer(..)"),
            RestCredential::Anonymous => f.write_str("Anonymous"),
        }
    }
}

impl RestCredential {
    /// The parts that identify the credential for its budget: its kind, user and secret.
    pub fn identity(&self) -> Vec<&[u8]> {
        match self {
            RestCredential::Basic { username, password } => vec![
                b"basic".as_slice(),
                username.as_bytes(),
                password.expose_secret().as_bytes(),
            ],
            RestCredential::Bearer(token) => {
                vec![b"bearer".as_slice(), token.expose_secret().as_bytes()]
            }
            RestCredential::Anonymous => vec![b"anonymous".as_slice()],
        }
    }

    /// The kind, for capability reports: `basic`, `bearer` or `anonymous`.
    pub fn kind(&self) -> &'static str {
        match self {
            RestCredential::Basic { .. } => "basic",
            RestCredential::Bearer(_) => "bearer",
            RestCredential::Anonymous => "anonymous",
        }
    }
}

/// When and how often a failed request is tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries in all, the first included.
    pub attempts: u32,
    /// The wait before the first retry of a 5xx or a dropped connection, doubled each time.
    pub base_delay: Duration,
    /// The longest wait between two tries, whether computed or asked for by `Retry-After`;
    /// a longer wait gives up, so that the caller can take another way.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 4,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
        }
    }
}

/// Everything a client needs to reach one REST API.
#[derive(Debug, Clone)]
pub struct RestConfig {
    /// The API base, e.g. `https://api.bitbucket.org/2.0`.
    pub base: Url,
    pub credential: RestCredential,
    /// PEM certificates to trust instead of the system's, as the connector's git does.
    pub ca_pem: Option<String>,
    /// The longest one request may take, answer included.
    pub timeout: Duration,
    pub retry: RetryPolicy,
    /// The largest answer held in memory (JSON, single files); archives stream to a sink.
    pub max_in_memory: u64,
}

impl RestConfig {
    /// A configuration with the defaults: two minutes per request, 32 MiB in memory.
    pub fn new(base: Url, credential: RestCredential, ca_pem: Option<String>) -> RestConfig {
        RestConfig {
            base,
            credential,
            ca_pem,
            timeout: Duration::from_secs(120),
            retry: RetryPolicy::default(),
            max_in_memory: 32 * 1024 * 1024,
        }
    }
}

/// What one client has sent and received: the figures `sync activity` shows for a read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Traffic {
    pub requests: u64,
    pub bytes: u64,
}

#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    bytes: AtomicU64,
}

/// An HTTP client for one API base and one credential.
#[derive(Debug, Clone)]
pub(crate) struct Transport {
    http: reqwest::Client,
    base: Url,
    credential: RestCredential,
    retry: RetryPolicy,
    max_in_memory: u64,
    budget: Arc<RequestBudget>,
    counters: Arc<Counters>,
}

impl Transport {
    pub(crate) fn new(config: RestConfig, budget: Arc<RequestBudget>) -> Result<Self, RestError> {
        let mut base = config.base;
        if base.scheme() != "https" && base.scheme() != "http" {
            return Err(RestError::Config {
                field: "api_url",
                reason: format!("{base} is not an http(s) URL"),
            });
        }
        if !base.username().is_empty() || base.password().is_some() {
            return Err(RestError::Config {
                field: "api_url",
                reason: "the REST base URL must not hold credentials".into(),
            });
        }
        if base.query().is_some() || base.fragment().is_some() {
            return Err(RestError::Config {
                field: "api_url",
                reason: "the REST base URL takes no query or fragment".into(),
            });
        }
        // Joined segments go after the base's own path.
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let mut builder = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(config.timeout)
            // A proxy from the environment would send Bitbucket's traffic somewhere the
            // connector never named; git gets none either. `--api-url` serves proxies.
            .no_proxy()
            // A redirect (LFS files answer 301 to another host) must not carry our credentials
            // anywhere; it is reported instead.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("reposync/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = &config.ca_pem {
            let certificates =
                reqwest::Certificate::from_pem_bundle(pem.as_bytes()).map_err(|err| {
                    RestError::Config {
                        field: "ca_certificate",
                        reason: format!("cannot read the CA certificate: {err}"),
                    }
                })?;
            if certificates.is_empty() {
                return Err(RestError::Config {
                    field: "ca_certificate",
                    reason: "the CA certificate holds no PEM certificate".into(),
                });
            }
            builder = builder.tls_built_in_root_certs(false);
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let http = builder.build().map_err(|err| RestError::Config {
            field: "api_url",
            reason: format!("cannot build the HTTP client: {err}"),
        })?;
        Ok(Transport {
            http,
            base,
            credential: config.credential,
            retry: config.retry,
            max_in_memory: config.max_in_memory,
            budget,
            counters: Arc::default(),
        })
    }

    /// The base URL with `segments` appended, each percent-encoded as one path segment (so a
    /// branch `feature/x` stays one segment, and folder names may hold spaces).
    pub(crate) fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty();
            path.extend(segments);
        }
        url
    }

    /// The base URL with `path` (slash-separated, each part encoded) appended after
    /// `segments`; an empty path ends in `/`, as Cloud's directory listings need.
    pub(crate) fn url_with_path(&self, segments: &[&str], path: &str) -> Url {
        let mut url = self.url(segments);
        if let Ok(mut parts) = url.path_segments_mut() {
            if path.is_empty() {
                parts.push("");
            } else {
                parts.extend(path.split('/'));
            }
        }
        url
    }

    /// Whether `url` (a `next` link from an answer) points at our API, so that following it
    /// cannot send the credential to another host.
    pub(crate) fn owns(&self, url: &Url) -> bool {
        url.origin() == self.base.origin() && url.path().starts_with(self.base.path())
    }

    pub(crate) fn traffic(&self) -> Traffic {
        Traffic {
            requests: self.counters.requests.load(Ordering::Relaxed),
            bytes: self.counters.bytes.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn budget(&self) -> &Arc<RequestBudget> {
        &self.budget
    }

    /// Sends a request built by `build` (again for each try), and returns the successful
    /// answer; 5xx, 429 and dropped connections are retried as the policy allows.
    pub(crate) async fn send(
        &self,
        endpoint: &'static str,
        method: Method,
        url: &Url,
        build: impl Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<Response, RestError> {
        self.send_tries(endpoint, method, url, build, self.retry.attempts)
            .await
    }

    /// Sends a write exactly once: a write whose answer was lost may have landed, and only
    /// the caller can tell (by reading the branch) whether to make it again.
    pub(crate) async fn send_once(
        &self,
        endpoint: &'static str,
        method: Method,
        url: &Url,
        build: impl Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<Response, RestError> {
        self.send_tries(endpoint, method, url, build, 1).await
    }

    async fn send_tries(
        &self,
        endpoint: &'static str,
        method: Method,
        url: &Url,
        build: impl Fn(RequestBuilder) -> RequestBuilder,
        attempts: u32,
    ) -> Result<Response, RestError> {
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            if let Err(spent) = self.budget.take() {
                return Err(RestError::BudgetSpent {
                    endpoint,
                    used: spent.used,
                    limit: spent.limit,
                });
            }
            self.counters.requests.fetch_add(1, Ordering::Relaxed);
            let request = build(self.authorised(self.http.request(method.clone(), url.clone())));
            let failure = match request.send().await {
                Ok(response) if response.status().is_success() => {
                    self.budget
                        .answered(RateLimitHeaders::read(response.headers()));
                    return Ok(response);
                }
                Ok(response) => {
                    let status = response.status();
                    let retry_after = retry_after(response.headers());
                    let body = self.read_error_body(response).await;
                    let error =
                        RestError::from_answer(endpoint, status.as_u16(), retry_after, &body);
                    if status == StatusCode::TOO_MANY_REQUESTS {
                        let wait = self.budget.throttled(retry_after);
                        Retry::After(wait, error)
                    } else if status.is_server_error() {
                        Retry::Backoff(error)
                    } else if status.is_redirection() {
                        return Err(RestError::Status {
                            endpoint,
                            status: status.as_u16(),
                            message: "Bitbucket redirected the request (a file stored in Git \
                                      LFS, or a moved repository); reading through git instead"
                                .into(),
                        });
                    } else {
                        return Err(error);
                    }
                }
                Err(err) => Retry::Backoff(transport_error(endpoint, &err)),
            };
            let (wait, error) = match failure {
                Retry::After(wait, error) => (with_jitter(wait, 1.0, 1.25), error),
                Retry::Backoff(error) => {
                    let exponent = attempt.saturating_sub(1).min(16);
                    let wait = self.retry.base_delay.saturating_mul(1 << exponent);
                    (with_jitter(wait, 0.5, 1.0), error)
                }
            };
            if attempt >= attempts || wait > self.retry.max_delay {
                return Err(error);
            }
            tracing::debug!(endpoint, attempt, wait_ms = wait.as_millis() as u64, %error, "retrying a REST request");
            tokio::time::sleep(wait).await;
        }
    }

    /// GETs `url` and decodes its JSON answer, bounded by the in-memory limit.
    pub(crate) async fn get_json<T: DeserializeOwned>(
        &self,
        endpoint: &'static str,
        url: &Url,
        query: &[(&str, &str)],
    ) -> Result<T, RestError> {
        let body = self.get_bytes(endpoint, url, query).await?;
        serde_json::from_slice(&body).map_err(|err| RestError::Decode {
            endpoint,
            reason: err.to_string(),
        })
    }

    /// GETs `url` and returns its body, refusing one larger than the in-memory limit.
    pub(crate) async fn get_bytes(
        &self,
        endpoint: &'static str,
        url: &Url,
        query: &[(&str, &str)],
    ) -> Result<Vec<u8>, RestError> {
        let response = self
            .send(endpoint, Method::GET, url, |request| request.query(query))
            .await?;
        self.read_body(endpoint, response, self.max_in_memory).await
    }

    /// GETs `url` and streams its body into `sink`; returns the bytes written.
    pub(crate) async fn get_to(
        &self,
        endpoint: &'static str,
        url: &Url,
        query: &[(&str, &str)],
        sink: &mut (impl AsyncWrite + Unpin),
    ) -> Result<u64, RestError> {
        let mut response = self
            .send(endpoint, Method::GET, url, |request| request.query(query))
            .await?;
        let unwritable = |err: std::io::Error| RestError::Transport {
            endpoint,
            reason: format!("cannot write the answer: {err}"),
            timed_out: false,
        };
        let mut written = 0u64;
        while let Some(chunk) = self.next_chunk(endpoint, &mut response).await? {
            sink.write_all(&chunk).await.map_err(unwritable)?;
            written += chunk.len() as u64;
        }
        sink.flush().await.map_err(unwritable)?;
        Ok(written)
    }

    /// Reads a successful answer's body, refusing more than `limit` bytes.
    pub(crate) async fn read_body(
        &self,
        endpoint: &'static str,
        mut response: Response,
        limit: u64,
    ) -> Result<Vec<u8>, RestError> {
        if response
            .content_length()
            .is_some_and(|length| length > limit)
        {
            return Err(RestError::TooLarge { endpoint, limit });
        }
        let mut body = Vec::new();
        while let Some(chunk) = self.next_chunk(endpoint, &mut response).await? {
            if body.len() as u64 + chunk.len() as u64 > limit {
                return Err(RestError::TooLarge { endpoint, limit });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// The next piece of an answer's body, counted in this client's traffic.
    async fn next_chunk(
        &self,
        endpoint: &'static str,
        response: &mut Response,
    ) -> Result<Option<impl std::ops::Deref<Target = [u8]> + use<>>, RestError> {
        let chunk = response
            .chunk()
            .await
            .map_err(|err| transport_error(endpoint, &err))?;
        if let Some(chunk) = &chunk {
            self.counters
                .bytes
                .fetch_add(chunk.len() as u64, Ordering::Relaxed);
        }
        Ok(chunk)
    }

    /// An error answer's body, for its message: at most 64 KiB, and nothing when it cannot be
    /// read (the status still says what happened).
    async fn read_error_body(&self, response: Response) -> Vec<u8> {
        self.read_body("error answer", response, 64 * 1024)
            .await
            .unwrap_or_default()
    }

    fn authorised(&self, request: RequestBuilder) -> RequestBuilder {
        match &self.credential {
            RestCredential::Basic { username, password } => {
                request.basic_auth(username, Some(password.expose_secret()))
            }
            RestCredential::Bearer(token) => request.bearer_auth(token.expose_secret()),
            RestCredential::Anonymous => request,
        }
    }
}

enum Retry {
    /// A 429: wait what Bitbucket or the budget's cool-down says.
    After(Duration, RestError),
    /// A 5xx or a lost connection: exponential back-off.
    Backoff(RestError),
}

/// `Retry-After` in seconds; the HTTP-date form is not used by Bitbucket and is ignored.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// `wait` scaled by a random factor in `[low, high)`, so that many clients backing off at once
/// do not come back at once.
fn with_jitter(wait: Duration, low: f64, high: f64) -> Duration {
    wait.mul_f64(rand::thread_rng().gen_range(low..high))
}

/// What a request that got no answer reports; the URL is left out, as it may be long and
/// the endpoint already says what was asked.
fn transport_error(endpoint: &'static str, err: &reqwest::Error) -> RestError {
    let mut reason = if err.is_timeout() {
        "Bitbucket did not answer in time".to_owned()
    } else if err.is_connect() {
        "cannot connect to Bitbucket".to_owned()
    } else {
        "the connection to Bitbucket failed".to_owned()
    };
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        reason.push_str(": ");
        reason.push_str(&cause.to_string());
        source = cause.source();
    }
    RestError::Transport {
        endpoint,
        reason,
        timed_out: err.is_timeout(),
    }
}
