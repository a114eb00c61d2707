use std::sync::Arc;

use reposync_git::GitRunner;
use reposync_store::Store;

use crate::bootstrap::ServerConfig;
use crate::intake::IntakeGuard;
use crate::tasks::TaskHub;

/// What every handler shares.
#[derive(Clone, Debug)]
pub struct AppState {
    pub store: Store,
    pub tasks: TaskHub,
    pub config: Arc<ServerConfig>,
    /// The runner of the built-in delegate's git operations, which keep their temporary
    /// files in the data directory's `tmp` folder.
    pub git: GitRunner,
    /// Webhook intake's rate limits, log throttles and counts.
    pub intake: Arc<IntakeGuard>,
}

impl AppState {
    pub fn new(store: Store, config: ServerConfig, git: GitRunner) -> AppState {
        AppState {
            tasks: TaskHub::new(store.clone()),
            store,
            intake: Arc::new(IntakeGuard::new(config.webhook_rate_limit)),
            config: Arc::new(config),
            git,
        }
    }
}
