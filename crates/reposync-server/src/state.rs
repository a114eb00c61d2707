use std::sync::Arc;

use reposync_git::GitRunner;
use reposync_store::Store;

use crate::bootstrap::ServerConfig;
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
}

impl AppState {
    pub fn new(store: Store, config: ServerConfig, git: GitRunner) -> AppState {
        AppState {
            tasks: TaskHub::new(store.clone()),
            store,
            config: Arc::new(config),
            git,
        }
    }
}
