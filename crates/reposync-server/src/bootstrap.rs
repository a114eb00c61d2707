use std::fs::{self, File};
use std::io::{Read as _, Seek as _, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use reposync_delegate::Agent;
use reposync_delegate::TempRootError;
use reposync_secrets::{MasterKey, MasterKeyOrigin};
use reposync_store::Store;
use rustix::fs::{FlockOperation, flock};

use crate::config::ServerConfig;
use crate::state::AppState;
use reposync_core::tokens::new_token;
use reposync_core::users;

/// The file in the data directory naming the replica this server is, when several share one
/// database: the same across restarts, so that a restarted server takes its own branches up
/// again at once instead of waiting for their leases to run out.
pub const REPLICA_FILE_NAME: &str = "replica-id";

/// The file in the data directory holding the admin token, for the local CLI.
pub const TOKEN_FILE_NAME: &str = "admin.token";

/// The folder of the data directory that holds the temporary files of git operations (key
/// files among them); emptied at every start, never worth a backup.
pub const TEMP_DIR_NAME: &str = "tmp";

/// The file whose lock gives a data directory to one server; it also holds that server's
/// process id, to name it to whoever finds the directory taken.
pub const LOCK_FILE_NAME: &str = "serve.lock";

/// A data directory held by this server until dropped: an OS advisory lock (`flock`) on its
/// lock file, which the kernel releases when the process dies, however it dies, so a stale
/// lock never blocks a restart.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

impl DataDirLock {
    /// Creates the data directory if needed and locks it without waiting. Another live server
    /// holding it is [`BootstrapError::InUse`], naming that server's process.
    pub fn acquire(data_dir: &Path) -> Result<DataDirLock, BootstrapError> {
        create_data_dir(data_dir)?;
        let path = data_dir.join(LOCK_FILE_NAME);
        let error = |source| BootstrapError::DataDir {
            path: path.clone(),
            source,
        };
        let mut file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(error)?;
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {
                file.set_len(0).map_err(error)?;
                file.rewind().map_err(error)?;
                writeln!(file, "{}", std::process::id()).map_err(error)?;
                Ok(DataDirLock { _file: file })
            }
            Err(errno) if errno == rustix::io::Errno::WOULDBLOCK => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                Err(BootstrapError::InUse {
                    path: data_dir.to_owned(),
                    holder: holder.trim().parse().ok(),
                })
            }
            Err(errno) => Err(error(errno.into())),
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
    #[error(
        "the data directory {} is in use by another reposync server{}; stop it, or give this one a data directory of its own (--data-dir)",
        path.display(),
        holder.map(|pid| format!(" (process {pid})")).unwrap_or_default()
    )]
    InUse { path: PathBuf, holder: Option<u32> },
    #[error(transparent)]
    TempRoot(#[from] TempRootError),
    #[error(transparent)]
    MasterKey(#[from] reposync_secrets::MasterKeyError),
    #[error(transparent)]
    Store(#[from] reposync_store::StoreError),
    #[error("{} holds no reposync database; give the data directory of the server (--data-dir)", .0.display())]
    NoStore(PathBuf),
    #[error("cannot reset: {0}")]
    Reset(String),
    #[error("cannot create the first admin user: {0}")]
    FirstAdmin(String),
    #[error(
        "replica {id} (kept in {}) is running on {host} too: a data directory was copied whole. Give this server a data directory of its own, or delete that file to make it a new replica",
        file.display()
    )]
    ReplicaTwice {
        id: String,
        file: PathBuf,
        host: String,
    },
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
    create_data_dir(data_dir)?;
    // First, before anything can start a git operation: a key file left by a server killed
    // mid-operation goes now.
    let (builtin, tools) =
        Agent::prepare(data_dir.join("delegate"), data_dir.join(TEMP_DIR_NAME)).await?;
    let builtin = (
        builtin.rest_requests_per_hour(config.rest_requests_per_hour),
        tools,
    );
    let (master, origin) = MasterKey::load_or_create(data_dir, config.master_key.as_deref())?;
    let url = config
        .database_url
        .clone()
        .unwrap_or_else(|| Store::sqlite_url(data_dir));
    let replica_file = data_dir.join(REPLICA_FILE_NAME);
    let replica = replica_id(&replica_file)?;
    let store = Store::open(&url, master).await?.as_replica(replica.clone());
    let hostname = config.hostname.clone().unwrap_or_default();
    if let Some(host) = store.replica_running_elsewhere(&hostname).await? {
        return Err(BootstrapError::ReplicaTwice {
            id: replica.to_string(),
            file: replica_file,
            host,
        });
    }
    store.register_replica(&hostname).await?;
    let token_file = data_dir.join(TOKEN_FILE_NAME);
    // The first start makes the first admin user, with the token the local CLI reads. An
    // installation from before users had its shared token made that user's by a migration.
    let new_admin_token = if store.count_users().await? == 0 {
        let token = new_token(users::TOKEN_PREFIX);
        // The file first: if the insert fails, the next start tries again; the other way
        // round, a crash between the two would leave a token nobody can ever see.
        write_token_file(&token_file, &token)?;
        match users::create_first_admin(&store, &token).await {
            Ok(_) => Some(token),
            // Another replica sharing the database made the first admin meanwhile; its
            // token is the one printed, by that replica.
            Err(_) if store.count_users().await? > 0 => {
                let _ = fs::remove_file(&token_file);
                None
            }
            Err(error) => {
                let _ = fs::remove_file(&token_file);
                return Err(BootstrapError::FirstAdmin(error.to_string()));
            }
        }
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

/// What `reposync admin reset` did.
#[derive(Debug)]
pub struct AdminReset {
    /// The new token, shown once.
    pub token: reposync_api::SecretValue,
    /// The token file rewritten with it, when the reset admin is the first one.
    pub token_file: Option<PathBuf>,
}

/// Issues a new admin token for the admin `user` straight in the data directory's store,
/// whether or not a server runs on it: every token they had is revoked, and they are enabled.
/// For the first admin, the token file the local CLI reads is rewritten too.
pub async fn reset_admin(config: &ServerConfig, user: &str) -> Result<AdminReset, BootstrapError> {
    let data_dir = &config.data_dir;
    let url = match &config.database_url {
        Some(url) => url.clone(),
        None => {
            let database = data_dir.join(reposync_store::DATABASE_FILE);
            if !database.exists() {
                return Err(BootstrapError::NoStore(data_dir.clone()));
            }
            Store::sqlite_url(data_dir)
        }
    };
    let (master, _) = MasterKey::load_or_create(data_dir, config.master_key.as_deref())?;
    let store = Store::open(&url, master).await?;
    let token = users::reset_admin(&store, user)
        .await
        .map_err(|e| BootstrapError::Reset(e.to_string()))?;
    let audited = store
        .record_audit(&reposync_store::NewAuditEvent {
            actor_kind: reposync_store::ActorKind::System,
            actor: "reposync admin reset",
            token: None,
            client_addr: None,
            use_case: "admin.reset",
            target: Some(user),
            app: None,
            outcome: reposync_store::AuditOutcome::Accepted,
            status: None,
            detail: Some("a new admin token was issued from the data directory; every earlier token of this user is revoked"),
        })
        .await;
    if let Err(error) = audited {
        tracing::error!(%error, "cannot record the admin reset in the audit trail");
    }
    let token_file = if user == users::FIRST_ADMIN {
        let path = data_dir.join(TOKEN_FILE_NAME);
        write_token_file(&path, token.expose())?;
        Some(path)
    } else {
        None
    };
    store.close().await;
    Ok(AdminReset { token, token_file })
}

/// Creates the data directory, private (0700), if it does not exist.
fn create_data_dir(data_dir: &Path) -> Result<(), BootstrapError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(data_dir)
        .map_err(|source| BootstrapError::DataDir {
            path: data_dir.to_owned(),
            source,
        })
}

/// The replica id kept in `path`, made (a random one) on the first start.
fn replica_id(path: &Path) -> Result<reposync_store::ReplicaId, BootstrapError> {
    let error = |source| BootstrapError::DataDir {
        path: path.to_owned(),
        source,
    };
    match fs::read_to_string(path) {
        Ok(text) if !text.trim().is_empty() => {
            return Ok(reposync_store::ReplicaId::new(text.trim()));
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(error(e)),
    }
    let id = uuid::Uuid::new_v4().simple().to_string();
    // Written whole or not at all: a crash mid-write leaves no half id.
    let partial = path.with_extension("new");
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&partial)
        .map_err(error)?;
    file.write_all(format!("{id}\n").as_bytes())
        .map_err(error)?;
    file.sync_all().map_err(error)?;
    fs::rename(&partial, path).map_err(error)?;
    Ok(reposync_store::ReplicaId::new(id))
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
