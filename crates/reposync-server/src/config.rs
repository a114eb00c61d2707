//! How the server is set up: what `reposync serve` reads from its flags and environment.

use std::net::SocketAddr;
use std::path::PathBuf;

use reposync_model::Selector;

use crate::tls::TlsFiles;

/// How the server is set up.
#[derive(Clone)]
pub struct ServerConfig {
    pub data_dir: PathBuf,
    /// `REPOSYNC_DATABASE_URL`; the embedded SQLite file in `data_dir` when absent.
    pub database_url: Option<String>,
    /// `REPOSYNC_MASTER_KEY` (base64); the key file in `data_dir` when absent.
    pub master_key: Option<String>,
    pub listen: SocketAddr,
    /// The URL Bitbucket reaches this server at, for webhook URLs.
    pub public_url: Option<String>,
    pub builtin_delegate: bool,
    pub builtin_delegate_selectors: Vec<Selector>,
    /// Largest accepted request body for the REST API.
    pub max_body_bytes: usize,
    /// Largest accepted import body (a whole tree, base64-encoded).
    pub max_import_bytes: usize,
    /// Largest accepted webhook delivery body.
    pub max_webhook_bytes: usize,
    /// How often every synced branch is polled for a head no webhook announced; zero turns
    /// polling off.
    pub poll_interval: std::time::Duration,
    /// How long a remote delegate's claim holds a task without a heartbeat; its heartbeats
    /// (every sixth of this) extend it, so a delegate that dies loses its tasks this soon.
    pub delegate_lease: std::time::Duration,
    /// How long a replica's lease on a synced branch lasts unless renewed (every third of
    /// it): another replica takes the branch's work over this soon after one dies.
    pub branch_lease: std::time::Duration,
    /// This machine's host name, a selector of the built-in delegate.
    pub hostname: Option<String>,
    /// How fast each webhook URL token may deliver; `None` for no limit.
    pub webhook_rate_limit: Option<RateLimit>,
    /// How long webhook deliveries stay in the log, and how many it keeps.
    pub delivery_log: DeliveryLog,
    /// How long finished tasks, commit attempts, commits read from Git and resolved sync
    /// errors are kept; open sync errors are kept whatever their age.
    pub history_retention: std::time::Duration,
    /// How long audit events are kept.
    pub audit_retention: std::time::Duration,
    /// The certificate and key `serve` speaks HTTPS with; plain HTTP when absent.
    pub tls: Option<TlsFiles>,
    /// The bearer token `/metrics` asks for; open to anyone who reaches it when absent.
    pub metrics_token: Option<String>,
    /// The built-in delegate's REST request budget per credential and rolling hour.
    pub rest_requests_per_hour: u32,
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("data_dir", &self.data_dir)
            .field("database_url", &self.database_url.as_ref().map(|_| "<set>"))
            .field(
                "master_key",
                &self.master_key.as_ref().map(|_| "<redacted>"),
            )
            .field("listen", &self.listen)
            .field("public_url", &self.public_url)
            .field("builtin_delegate", &self.builtin_delegate)
            .field("tls", &self.tls)
            .field(
                "metrics_token",
                &self.metrics_token.as_ref().map(|_| "<redacted>"),
            )
            .finish_non_exhaustive()
    }
}

impl ServerConfig {
    /// Defaults: `./reposync-data`, `127.0.0.1:8080`, built-in delegate on, webhooks limited to
    /// 20 a second per URL with bursts of 100, and their log kept 14 days and 1,000
    /// deliveries per connector, history kept 90 days and audit events 400.
    pub fn new(data_dir: impl Into<PathBuf>) -> ServerConfig {
        ServerConfig {
            data_dir: data_dir.into(),
            database_url: None,
            master_key: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: None,
            builtin_delegate: true,
            builtin_delegate_selectors: Vec::new(),
            max_body_bytes: 1024 * 1024,
            max_import_bytes: 256 * 1024 * 1024,
            max_webhook_bytes: 1024 * 1024,
            poll_interval: std::time::Duration::from_secs(5 * 60),
            delegate_lease: std::time::Duration::from_secs(30),
            branch_lease: reposync_sync::DEFAULT_BRANCH_LEASE,
            hostname: None,
            webhook_rate_limit: Some(RateLimit::DEFAULT),
            delivery_log: DeliveryLog {
                retention: std::time::Duration::from_secs(14 * 24 * 60 * 60),
                kept_per_connector: 1000,
            },
            history_retention: std::time::Duration::from_secs(90 * 24 * 60 * 60),
            audit_retention: std::time::Duration::from_secs(400 * 24 * 60 * 60),
            tls: None,
            metrics_token: None,
            rest_requests_per_hour: reposync_bitbucket::rest::DEFAULT_REQUESTS_PER_HOUR,
        }
    }

    /// The base URL used in webhook URLs.
    pub fn public_base_url(&self) -> String {
        match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None if self.tls.is_some() => format!("https://{}", self.listen),
            None => format!("http://{}", self.listen),
        }
    }
}

/// How long webhook deliveries stay in the log, and how many it keeps per connector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryLog {
    pub retention: std::time::Duration,
    /// Newest first.
    pub kept_per_connector: u32,
}

/// How fast one URL token may deliver.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Deliveries per second, sustained.
    pub per_second: f64,
    /// Deliveries that may come at once after a quiet spell.
    pub burst: u32,
}

impl RateLimit {
    /// 20 a second with bursts of 100: a Bitbucket sends one delivery per push, so even a
    /// busy repository stays far below it, while a flood is held to a trickle.
    pub const DEFAULT: RateLimit = RateLimit {
        per_second: 20.0,
        burst: 100,
    };
}
