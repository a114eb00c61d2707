//! git smart HTTP over TLS, backed by `git http-backend` run as CGI.
//!
//! The server runs on a runtime of its own, on its own thread (the accept loop of
//! [`crate::tls_server`]), so that a test may block its own thread on a synchronous git client
//! without starving the server.

use std::ffi::OsString;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context as TaskContext, Poll};

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use http::header::{AUTHORIZATION, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, HeaderName};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt as _;
use hyper::body::{Body, Bytes, Frame, Incoming};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::process::{ChildStdout, Command};
use tokio::sync::mpsc;

use crate::ca::TestCa;
use crate::process::base_env;
use crate::repo::RepoRoot;
use crate::tls_server::{Hangup, TlsServer, TlsService};

/// The largest CGI header block accepted from `git http-backend`.
const MAX_CGI_HEADER: usize = 64 * 1024;

/// git smart HTTP over TLS: an HTTPS server on 127.0.0.1 that checks HTTP Basic auth and runs
/// `git http-backend` as CGI for each request.
pub struct GitHttpsServer {
    server: TlsServer,
    ca_pem: String,
    state: Arc<State>,
}

/// What the serving thread and the handle share.
struct State {
    project_root: PathBuf,
    /// HOME for http-backend, so it finds no user configuration.
    home: TempDir,
    username: String,
    /// base64 of `username:password`, as sent after `Authorization: Basic`.
    basic_credentials: String,
    requests: AtomicUsize,
    log: Mutex<String>,
}

impl State {
    fn log(&self, line: impl AsRef<str>) {
        let mut log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        log.push_str(line.as_ref());
        if !log.ends_with('\n') {
            log.push('\n');
        }
    }
}

impl fmt::Debug for GitHttpsServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GitHttpsServer")
            .field("addr", &self.server.addr())
            .field("project_root", &self.state.project_root)
            .field("username", &self.state.username)
            .finish_non_exhaustive()
    }
}

impl GitHttpsServer {
    /// Starts serving `root` on a free port of 127.0.0.1, with a certificate issued by `ca`,
    /// accepting only HTTP Basic credentials `username`/`password`.
    pub async fn start(
        root: &RepoRoot,
        ca: &TestCa,
        username: &str,
        password: &str,
    ) -> Result<Self> {
        let home = tempfile::Builder::new()
            .prefix("reposync-http-backend-home-")
            .tempdir()
            .context("cannot create a HOME for git http-backend")?;
        let credentials = format!("{username}:{password}");
        let state = Arc::new(State {
            project_root: root.path().to_owned(),
            home,
            username: username.to_owned(),
            basic_credentials: BASE64.encode(credentials),
            requests: AtomicUsize::new(0),
            log: Mutex::new(String::new()),
        });

        let server = TlsServer::start("git-https", ca, Arc::clone(&state))?;

        Ok(Self {
            server,
            ca_pem: ca.cert_pem(),
            state,
        })
    }

    /// `https://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("https://{}", self.server.addr())
    }

    /// The URL of a repository under the root, e.g. `repo_url("acme/config.git")`.
    pub fn repo_url(&self, relative: &str) -> String {
        format!("{}/{}", self.base_url(), relative.trim_start_matches('/'))
    }

    /// The PEM of the CA that signed the server certificate.
    pub fn ca_pem(&self) -> String {
        self.ca_pem.clone()
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.server.addr().port()
    }

    /// How many HTTP requests have arrived, including those refused with 401.
    pub fn request_count(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// One line per request (method, path, status) plus anything http-backend wrote to stderr.
    pub fn log(&self) -> String {
        self.state
            .log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl TlsService for State {
    type Body = CgiBody;

    async fn call(
        self: Arc<Self>,
        request: Request<Incoming>,
        peer: SocketAddr,
    ) -> Result<Response<CgiBody>, Hangup> {
        Ok(handle(request, peer, self).await)
    }

    fn note(&self, line: String) {
        self.log(line);
    }
}

async fn handle(
    request: Request<Incoming>,
    peer: SocketAddr,
    state: Arc<State>,
) -> Response<CgiBody> {
    state.requests.fetch_add(1, Ordering::SeqCst);
    let method = request.method().clone();
    let uri = request.uri().clone();
    // Noted in the log so that tests can tell which body framings they exercised.
    let mut framing = String::new();
    if let Some(encoding) = request.headers().get(CONTENT_ENCODING) {
        framing.push_str(&format!(" [{}]", encoding.to_str().unwrap_or("?")));
    }
    if request
        .headers()
        .contains_key(http::header::TRANSFER_ENCODING)
    {
        framing.push_str(" [chunked]");
    }
    let response = if authorized(&request, &state) {
        match run_cgi(request, peer, &state).await {
            Ok(response) => response,
            Err(err) => {
                state.log(format!("CGI failed: {err:#}"));
                plain(StatusCode::INTERNAL_SERVER_ERROR, format!("{err:#}\n"))
            }
        }
    } else {
        unauthorized()
    };
    state.log(format!(
        "{method} {uri}{framing} -> {}",
        response.status().as_u16()
    ));
    response
}

fn authorized(request: &Request<Incoming>, state: &State) -> bool {
    request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        .is_some_and(|(scheme, credentials)| {
            scheme.eq_ignore_ascii_case("Basic") && credentials.trim() == state.basic_credentials
        })
}

fn unauthorized() -> Response<CgiBody> {
    let mut response = plain(StatusCode::UNAUTHORIZED, "authentication required\n".into());
    // git sends credentials only after being challenged.
    response.headers_mut().insert(
        http::header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"git\""),
    );
    response
}

fn plain(status: StatusCode, body: String) -> Response<CgiBody> {
    let mut response = Response::new(CgiBody::full(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Runs `git http-backend` for one request, streaming the body in and the response out.
async fn run_cgi(
    request: Request<Incoming>,
    peer: SocketAddr,
    state: &Arc<State>,
) -> Result<Response<CgiBody>> {
    let (parts, body) = request.into_parts();
    let header = |name: &HeaderName| {
        parts
            .headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };

    let mut env: Vec<(OsString, OsString)> = base_env(state.home.path());
    let mut set = |key: &str, value: &str| env.push((key.into(), value.into()));
    set("GIT_PROJECT_ROOT", &state.project_root.to_string_lossy());
    set("GIT_HTTP_EXPORT_ALL", "1");
    set("GIT_CONFIG_NOSYSTEM", "1");
    set("GIT_CONFIG_GLOBAL", "/dev/null");
    // The repositories may be owned by the `git` user after a push over SSH.
    set("GIT_CONFIG_COUNT", "1");
    set("GIT_CONFIG_KEY_0", "safe.directory");
    set("GIT_CONFIG_VALUE_0", "*");
    set("GATEWAY_INTERFACE", "CGI/1.1");
    set("SERVER_PROTOCOL", "HTTP/1.1");
    set("SERVER_SOFTWARE", "reposync-testkit");
    set("REQUEST_METHOD", parts.method.as_str());
    set("PATH_INFO", parts.uri.path());
    set("QUERY_STRING", parts.uri.query().unwrap_or(""));
    set("REMOTE_USER", &state.username);
    set("REMOTE_ADDR", &peer.ip().to_string());
    if let Some(value) = header(&CONTENT_TYPE) {
        set("CONTENT_TYPE", &value);
    }
    if let Some(value) = header(&CONTENT_LENGTH) {
        set("CONTENT_LENGTH", &value);
    }
    // http-backend inflates gzip request bodies itself when told about them.
    if let Some(value) = header(&CONTENT_ENCODING) {
        set("HTTP_CONTENT_ENCODING", &value);
    }
    // Carries the protocol version (v2) negotiation.
    if let Some(value) = header(&HeaderName::from_static("git-protocol")) {
        set("HTTP_GIT_PROTOCOL", &value);
    }

    let mut child = Command::new("git")
        .arg("http-backend")
        .env_clear()
        .envs(env)
        .current_dir(&state.project_root)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("cannot spawn git http-backend")?;
    let (Some(mut stdin), Some(mut stdout), Some(mut stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        bail!("git http-backend was spawned without pipes");
    };

    // The body is fed from its own task so that a backend which starts answering before it
    // has read everything cannot deadlock against us.
    let feed_state = Arc::clone(state);
    tokio::spawn(async move {
        let mut body = body;
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(frame) => {
                    if let Ok(data) = frame.into_data()
                        && stdin.write_all(&data).await.is_err()
                    {
                        break;
                    }
                }
                Err(err) => {
                    feed_state.log(format!("reading the request body failed: {err}"));
                    break;
                }
            }
        }
        // Dropping stdin signals end of input to the backend.
        drop(stdin);
    });
    let stderr_task = tokio::spawn(async move {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text).await;
        text
    });

    let (head, rest) = match read_cgi_head(&mut stdout).await {
        Ok(read) => read,
        Err(err) => {
            let status = child.wait().await.ok();
            let stderr = stderr_task.await.unwrap_or_default();
            bail!("{err:#} (http-backend exit: {status:?}, stderr: {stderr})");
        }
    };
    let mut response = Response::builder();
    let mut status = StatusCode::OK;
    for line in head.lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("Status") {
            status = value
                .get(..3)
                .and_then(|code| code.parse::<u16>().ok())
                .and_then(|code| StatusCode::from_u16(code).ok())
                .with_context(|| format!("bad CGI Status line {line:?}"))?;
        } else {
            response = response.header(name.trim(), value);
        }
    }

    let (tx, rx) = mpsc::channel(16);
    let pump_state = Arc::clone(state);
    tokio::spawn(async move {
        let outcome = pump(rest, &mut stdout, &tx).await;
        if outcome.is_err() {
            // The client went away: stop the backend rather than let it run on.
            let _ = child.kill().await;
        }
        let status: io::Result<ExitStatus> = child.wait().await;
        let stderr = stderr_task.await.unwrap_or_default();
        let failed = !matches!(&status, Ok(status) if status.success());
        if failed || !stderr.trim().is_empty() {
            pump_state.log(format!("http-backend exit {status:?}: {}", stderr.trim()));
        }
    });
    response
        .status(status)
        .body(CgiBody::streaming(rx))
        .context("http-backend produced an invalid response header")
}

/// Reads the CGI header block; returns it and whatever body bytes came with it.
async fn read_cgi_head(stdout: &mut ChildStdout) -> Result<(String, Bytes)> {
    let mut buffer = Vec::with_capacity(1024);
    let mut chunk = [0_u8; 4096];
    loop {
        if let Some((end, separator)) = find_header_end(&buffer) {
            let head = String::from_utf8_lossy(&buffer[..end]).into_owned();
            let rest = Bytes::copy_from_slice(&buffer[end + separator..]);
            return Ok((head, rest));
        }
        if buffer.len() > MAX_CGI_HEADER {
            bail!("http-backend sent more than {MAX_CGI_HEADER} bytes of headers");
        }
        let read = stdout.read(&mut chunk).await?;
        if read == 0 {
            bail!(
                "http-backend closed stdout before ending its headers: {:?}",
                String::from_utf8_lossy(&buffer)
            );
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
}

/// Finds the blank line that ends CGI headers; CGI allows bare `\n` line ends.
fn find_header_end(buffer: &[u8]) -> Option<(usize, usize)> {
    let crlf = buffer
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .map(|at| (at, 4));
    let lf = buffer
        .windows(2)
        .position(|window| window == b"\n\n")
        .map(|at| (at, 2));
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

/// Copies the rest of stdout into the response channel; errs when the client is gone.
async fn pump(
    first: Bytes,
    stdout: &mut ChildStdout,
    tx: &mpsc::Sender<io::Result<Bytes>>,
) -> Result<(), ()> {
    if !first.is_empty() {
        tx.send(Ok(first)).await.map_err(|_| ())?;
    }
    let mut chunk = vec![0_u8; 64 * 1024];
    loop {
        match stdout.read(&mut chunk).await {
            Ok(0) => return Ok(()),
            Ok(read) => tx
                .send(Ok(Bytes::copy_from_slice(&chunk[..read])))
                .await
                .map_err(|_| ())?,
            Err(err) => {
                let _ = tx.send(Err(err)).await;
                return Err(());
            }
        }
    }
}

/// A response body that is either fixed or streamed from a CGI child through a channel.
struct CgiBody {
    first: Option<Bytes>,
    rest: Option<mpsc::Receiver<io::Result<Bytes>>>,
}

impl CgiBody {
    fn full(bytes: Bytes) -> Self {
        Self {
            first: Some(bytes),
            rest: None,
        }
    }

    fn streaming(rx: mpsc::Receiver<io::Result<Bytes>>) -> Self {
        Self {
            first: None,
            rest: Some(rx),
        }
    }
}

impl Body for CgiBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        if let Some(first) = self.first.take() {
            return Poll::Ready(Some(Ok(Frame::data(first))));
        }
        match &mut self.rest {
            None => Poll::Ready(None),
            Some(rx) => rx
                .poll_recv(cx)
                .map(|next| next.map(|chunk| chunk.map(Frame::data))),
        }
    }
}
