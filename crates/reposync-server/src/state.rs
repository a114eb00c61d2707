use std::sync::Arc;

use reposync_delegate::{Agent, Tools};
use reposync_store::Store;

use crate::config::ServerConfig;
use crate::intake::IntakeGuard;
use crate::tasks::TaskHub;
use crate::workers::Workers;

/// What every handler shares.
#[derive(Clone, Debug)]
pub struct AppState {
    pub store: Store,
    pub tasks: TaskHub,
    pub config: Arc<ServerConfig>,
    /// The built-in delegate's agent (its operations keep their temporary files in the data
    /// directory's `tmp` folder) and the tools it found.
    pub builtin: (Agent, Tools),
    /// Webhook intake's rate limits, log throttles and counts.
    pub intake: Arc<IntakeGuard>,
    /// The background workers, for readiness.
    pub workers: Arc<Workers>,
}

impl AppState {
    pub fn new(store: Store, config: ServerConfig, builtin: (Agent, Tools)) -> AppState {
        AppState {
            tasks: TaskHub::with_archives(
                store.clone(),
                config.data_dir.join(crate::tasks::FETCHES_DIR_NAME),
            ),
            store,
            intake: Arc::new(IntakeGuard::new(config.webhook_rate_limit)),
            config: Arc::new(config),
            builtin,
            workers: Arc::default(),
        }
    }
}
