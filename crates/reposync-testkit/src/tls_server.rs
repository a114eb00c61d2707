//! The HTTPS accept loop that the test servers share: a TLS listener on 127.0.0.1, on a
//! runtime of its own on its own thread, handing each request to a [`TlsService`].
//!
//! The runtime is separate so that a test may block its own thread on a synchronous client
//! (git, say) without starving the server; the thread is joined when the [`TlsServer`] is
//! dropped, so nothing a request started outlives the test.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};
use http::{Request, Response};
use hyper::body::{Body, Bytes, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::ca::TestCa;

/// What a service returns to close the connection without answering at all, as a server that
/// crashed or a proxy that gave up would.
#[derive(Debug)]
pub(crate) struct Hangup;

impl fmt::Display for Hangup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the server hung up without answering")
    }
}

impl StdError for Hangup {}

/// One kind of server behind the shared accept loop.
pub(crate) trait TlsService: Send + Sync + 'static {
    /// The response body type.
    type Body: Body<Data = Bytes, Error = io::Error> + Send + 'static;

    /// Answers one request from `peer`, or hangs up.
    fn call(
        self: Arc<Self>,
        request: Request<Incoming>,
        peer: SocketAddr,
    ) -> impl Future<Output = Result<Response<Self::Body>, Hangup>> + Send;

    /// Notes something about the connection (a failed handshake, a failed accept) in the
    /// server's log.
    fn note(&self, line: String);
}

/// A running HTTPS server; dropping it stops the accept loop and joins its thread.
pub(crate) struct TlsServer {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl fmt::Debug for TlsServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl TlsServer {
    /// Binds a free port and serves `service` there at once; see [`TlsListener`].
    pub(crate) fn start<S: TlsService>(name: &str, ca: &TestCa, service: Arc<S>) -> Result<Self> {
        TlsListener::bind(name)?.serve(ca, service)
    }

    /// The address the server listens on.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// A bound port not served yet, for services that must know their own address (to write
/// links to themselves) before the first request arrives.
#[derive(Debug)]
pub(crate) struct TlsListener {
    name: String,
    listener: std::net::TcpListener,
    addr: SocketAddr,
}

impl TlsListener {
    /// Binds a free port of 127.0.0.1. `name` names the thread (`<name>-<port>`) and the
    /// server in error messages.
    pub(crate) fn bind(name: &str) -> Result<Self> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .with_context(|| format!("cannot bind 127.0.0.1:0 for the {name} server"))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        Ok(Self {
            name: name.to_owned(),
            listener,
            addr,
        })
    }

    /// The address that will be served.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves `service` behind a certificate for 127.0.0.1 and localhost issued by `ca`.
    pub(crate) fn serve<S: TlsService>(self, ca: &TestCa, service: Arc<S>) -> Result<TlsServer> {
        let Self {
            name,
            listener,
            addr,
        } = self;
        let config = ca.server_tls_config(&["127.0.0.1", "localhost"])?;
        let acceptor = TlsAcceptor::from(config);

        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .with_context(|| format!("cannot build the {name} server runtime"))?;
        let (shutdown_tx, shutdown_rx) = oneshot::channel();
        let label = name.clone();
        let thread = std::thread::Builder::new()
            .name(format!("{name}-{}", addr.port()))
            .spawn(move || {
                let served = runtime.block_on(async move {
                    let listener = TcpListener::from_std(listener)?;
                    serve(listener, acceptor, service, shutdown_rx).await;
                    Ok::<_, io::Error>(())
                });
                if let Err(err) = served {
                    eprintln!("reposync-testkit {label} server on {addr} failed: {err}");
                }
                // Dropping the runtime drops every remaining task, and with them the
                // `kill_on_drop` children of requests still in flight.
                runtime.shutdown_timeout(Duration::from_secs(2));
            })
            .with_context(|| format!("cannot spawn the {name} server thread"))?;

        Ok(TlsServer {
            addr,
            shutdown: Some(shutdown_tx),
            thread: Some(thread),
        })
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            // An error only means the thread has already stopped.
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            // Joining makes sure no child process of a request outlives the server.
            let _ = thread.join();
        }
    }
}

async fn serve<S: TlsService>(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    service: Arc<S>,
    mut shutdown: oneshot::Receiver<()>,
) {
    // Connections live in a JoinSet owned by this loop, so leaving it aborts all of them.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let acceptor = acceptor.clone();
                    let service = Arc::clone(&service);
                    connections.spawn(async move {
                        match acceptor.accept(stream).await {
                            Ok(tls) => serve_connection(tls, peer, service).await,
                            // Expected when a test's client rejects our certificate.
                            Err(err) => service.note(format!("TLS handshake with {peer} failed: {err}")),
                        }
                    });
                }
                Err(err) => {
                    service.note(format!("accept failed: {err}"));
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.shutdown().await;
}

async fn serve_connection<S: TlsService>(
    tls: tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
    peer: SocketAddr,
    service: Arc<S>,
) {
    let service = service_fn(move |request| Arc::clone(&service).call(request, peer));
    // Errors here are clients closing mid-response (e.g. a clone that failed on its side) or
    // a service hanging up on purpose, which say nothing about the server.
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(tls), service)
        .await;
}
