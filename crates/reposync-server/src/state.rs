use std::sync::Arc;

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
    /// Webhook intake's rate limits, log throttles and counts.
    pub intake: Arc<IntakeGuard>,
}

impl AppState {
    pub fn new(store: Store, config: ServerConfig) -> AppState {
        AppState {
            tasks: TaskHub::new(store.clone()),
            store,
            intake: Arc::new(IntakeGuard::new(config.webhook_rate_limit)),
            config: Arc::new(config),
        }
    }
}
