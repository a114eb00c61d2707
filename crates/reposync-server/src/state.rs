use std::sync::Arc;

use reposync_store::Store;

use crate::bootstrap::ServerConfig;
use crate::tasks::TaskHub;

/// What every handler shares.
#[derive(Clone, Debug)]
pub struct AppState {
    pub store: Store,
    pub tasks: TaskHub,
    pub config: Arc<ServerConfig>,
}

impl AppState {
    pub fn new(store: Store, config: ServerConfig) -> AppState {
        AppState {
            tasks: TaskHub::new(store.clone()),
            store,
            config: Arc::new(config),
        }
    }
}
