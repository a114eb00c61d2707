//! HTTPS on `serve` itself, so that Bitbucket Cloud can deliver webhooks without a reverse
//! proxy: a certificate and key in PEM files, reloaded in place (on SIGHUP) without dropping
//! a connection.
//!
//! Handshakes run in tasks of their own, so a client that stalls its handshake holds up
//! nobody else; the listener hands axum only connections whose handshake finished.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;

/// How long a client may take over its handshake before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshaken connections waiting for axum to take them.
const ACCEPTED_BACKLOG: usize = 64;

/// The certificate and key files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Why the certificate or key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("{} holds no PEM certificate (--tls-cert expects the chain, leaf first)", path.display())]
    NoCertificate { path: PathBuf },
    #[error("{} holds no PEM private key (--tls-key expects PKCS#8, PKCS#1 or SEC1)", path.display())]
    NoKey { path: PathBuf },
    #[error("the certificate {} and the key {} do not go together: {reason}", cert.display(), key.display())]
    Mismatch {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
}

/// The server's TLS settings, shared by every connection and swapped whole on reload.
#[derive(Debug, Clone)]
pub struct ServerTls {
    files: TlsFiles,
    current: Arc<RwLock<Arc<rustls::ServerConfig>>>,
}

impl ServerTls {
    /// Reads the files; a server whose certificate cannot be used does not start.
    pub fn load(files: &TlsFiles) -> Result<ServerTls, TlsError> {
        let config = read_config(files)?;
        Ok(ServerTls {
            files: files.clone(),
            current: Arc::new(RwLock::new(config)),
        })
    }

    /// Reads the files again. New handshakes use them from now on; connections already open
    /// keep theirs. When the new files cannot be used, the old ones stay in force.
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = read_config(&self.files)?;
        *self.current.write() = config;
        Ok(())
    }

    /// The files this server reads.
    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(Arc::clone(&self.current.read()))
    }
}

fn read_config(files: &TlsFiles) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let cert_pem = read(&files.cert)?;
    let key_pem = read(&files.key)?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .filter_map(Result::ok)
        .collect::<Vec<_>>();
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: files.cert.clone(),
        });
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| TlsError::NoKey {
        path: files.key.clone(),
    })?;
    // The provider is named, so that no process-wide default has to be installed.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mismatch = |reason: rustls::Error| TlsError::Mismatch {
        cert: files.cert.clone(),
        key: files.key.clone(),
        reason: reason.to_string(),
    };
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(mismatch)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(mismatch)?;
    // The server speaks HTTP/1.1 only.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

/// A listener that accepts TCP connections and hands on those that finished a TLS handshake.
#[derive(Debug)]
pub struct TlsListener {
    local_addr: SocketAddr,
    accepted: mpsc::Receiver<(TlsStream<tokio::net::TcpStream>, SocketAddr)>,
    acceptor_task: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    /// Starts accepting on `listener` with `tls`.
    pub fn new(listener: TcpListener, tls: ServerTls) -> io::Result<TlsListener> {
        let local_addr = listener.local_addr()?;
        let (sender, accepted) = mpsc::channel(ACCEPTED_BACKLOG);
        let acceptor_task = tokio::spawn(accept_loop(listener, tls, sender));
        Ok(TlsListener {
            local_addr,
            accepted,
            acceptor_task,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.acceptor_task.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    tls: ServerTls,
    accepted: mpsc::Sender<(TlsStream<tokio::net::TcpStream>, SocketAddr)>,
) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(connection) => connection,
            Err(error) => {
                // As axum's own listener does: out of file descriptors and the like pass;
                // waiting a moment keeps the loop from spinning meanwhile.
                tracing::warn!(%error, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let acceptor = tls.acceptor();
        let accepted = accepted.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => {
                    let _ = accepted.send((stream, peer)).await;
                }
                Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.accepted.recv().await {
            Some(connection) => connection,
            // The accept loop only ends when this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local_addr)
    }
}
