use std::fs;
use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use reposync_delegate::Agent;
use reposync_delegate::TempRootError;
use reposync_model::Selector;
use reposync_secrets::{MasterKey, MasterKeyOrigin};
use reposync_store::Store;

use crate::intake::RateLimit;
use crate::state::AppState;
use reposync_core::tokens::{hash_token, new_token};

/// The file in the data directory holding the admin token, for the local CLI.
pub const TOKEN_FILE_NAME: &str = "admin.token";

/// The folder of the data directory that holds the temporary files of git operations (key
/// files among them); emptied at every start, never worth a backup.
pub const TEMP_DIR_NAME: &str = "tmp";

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
    /// This machine's host name, a selector of the built-in delegate.
    pub hostname: Option<String>,
    /// How fast each webhook URL token may deliver; `None` for no limit.
    pub webhook_rate_limit: Option<RateLimit>,
    /// How long webhook deliveries stay in the log.
    pub webhook_retention: std::time::Duration,
    /// How many webhook deliveries the log keeps per connector, newest first.
    pub webhook_deliveries_kept: u32,
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
            .finish_non_exhaustive()
    }
}

impl ServerConfig {
    /// Defaults: `./reposync-data`, `127.0.0.1:8080`, built-in delegate on, webhooks limited to
    /// 20 a second per URL with bursts of 100, and their log kept 14 days and 1,000
    /// deliveries per connector.
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
            hostname: None,
            webhook_rate_limit: Some(RateLimit::DEFAULT),
            webhook_retention: std::time::Duration::from_secs(14 * 24 * 60 * 60),
            webhook_deliveries_kept: 1000,
        }
    }

    /// The base URL used in webhook URLs.
    pub fn public_base_url(&self) -> String {
        match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("http://{}", self.listen),
        }
    }
}

/// A ready server state, and the admin token when this start created it.
#[derive(Debug)]
pub struct Bootstrapped {
    pub state: AppState,
    pub master_key_origin: MasterKeyOrigin,
    /// Set only on the first start: shown once, stored only as a hash.
    pub new_admin_token: Option<String>,
    pub token_file: PathBuf,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("cannot prepare the data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    TempRoot(#[from] TempRootError),
    #[error(transparent)]
    MasterKey(#[from] reposync_secrets::MasterKeyError),
    #[error(transparent)]
    Store(#[from] reposync_store::StoreError),
    #[error("cannot write the admin token file {path}: {source}")]
    TokenFile {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Prepares the data directory and its temporary folder, the master key, the database and,
/// on first start, the admin token.
pub async fn bootstrap(config: ServerConfig) -> Result<Bootstrapped, BootstrapError> {
    let data_dir = &config.data_dir;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(data_dir)
        .map_err(|source| BootstrapError::DataDir {
            path: data_dir.clone(),
            source,
        })?;
    // First, before anything can start a git operation: a key file left by a server killed
    // mid-operation goes now.
    let builtin = Agent::prepare(data_dir.join("delegate"), data_dir.join(TEMP_DIR_NAME)).await?;
    let (master, origin) = MasterKey::load_or_create(data_dir, config.master_key.as_deref())?;
    let url = config
        .database_url
        .clone()
        .unwrap_or_else(|| Store::sqlite_url(data_dir));
    let store = Store::open(&url, master).await?;
    let token_file = data_dir.join(TOKEN_FILE_NAME);
    let new_admin_token = if store.count_api_tokens().await? == 0 {
        let token = new_token("rs_");
        // The file first: if the insert fails, the next start tries again; the other way
        // round, a crash between the two would leave a token nobody can ever see.
        write_token_file(&token_file, &token)?;
        if let Err(error) = store.create_api_token("admin", &hash_token(&token)).await {
            let _ = fs::remove_file(&token_file);
            return Err(error.into());
        }
        Some(token)
    } else {
        None
    };
    Ok(Bootstrapped {
        state: AppState::new(store, config, builtin),
        master_key_origin: origin,
        new_admin_token,
        token_file,
    })
}

fn write_token_file(path: &Path, token: &str) -> Result<(), BootstrapError> {
    let error = |source| BootstrapError::TokenFile {
        path: path.to_owned(),
        source,
    };
    let _ = fs::remove_file(path);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(error)?;
    file.write_all(format!("{token}\n").as_bytes())
        .map_err(error)?;
    file.sync_all().map_err(error)
}
