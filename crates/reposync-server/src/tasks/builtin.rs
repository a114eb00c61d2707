//! The delegate that runs inside `reposync serve`, reaching the hub without HTTP.

use std::path::Path;
use std::sync::Arc;

use std::time::Duration;

use reposync_api::{DelegateTask, FailureCode, TaskFailure, TaskOutcome};
use reposync_delegate::{Agent, SourceError, TaskSource, Tools};
use reposync_store::{Eligibility, NewDelegate};

use super::{DelegateInfo, SYNC_TIMEOUT, TaskHub};
use reposync_model::{Selector, TaskId};

/// How long the built-in delegate's claim holds a task: it heartbeats nothing, and lives and
/// dies with the server, so its lease only has to outlast the longest task.
const BUILTIN_LEASE: Duration = Duration::from_secs(SYNC_TIMEOUT.as_secs() + 60);

/// The delegate that runs inside `reposync serve`, reaching the hub without HTTP.
#[derive(Debug, Clone)]
pub struct BuiltinDelegate {
    hub: TaskHub,
    info: DelegateInfo,
    hostname: String,
    agent: Agent,
    tools: Tools,
}

/// How many tasks the built-in delegate runs at once.
const BUILTIN_SLOTS: usize = 8;

/// The built-in delegate's name, which is also one of its selectors.
pub const BUILTIN_DELEGATE_NAME: &str = "builtin";

impl BuiltinDelegate {
    /// Registers the built-in delegate with the hub: it runs tasks with `agent`, has the
    /// selectors it is given, and its machine's `hostname`.
    pub fn new(
        hub: &TaskHub,
        selectors: &[Selector],
        hostname: Option<&str>,
        (agent, tools): (Agent, Tools),
    ) -> BuiltinDelegate {
        let mut selectors: Vec<String> = selectors.iter().map(|s| s.as_str().to_owned()).collect();
        selectors.push(BUILTIN_DELEGATE_NAME.to_owned());
        // A delegate's host name counts as one of its selectors.
        if let Some(host) = hostname {
            selectors.push(host.trim().to_lowercase());
        }
        selectors.sort();
        selectors.dedup();
        let info = DelegateInfo {
            name: BUILTIN_DELEGATE_NAME.to_owned(),
            eligibility: Eligibility::unrestricted(selectors),
            lease: BUILTIN_LEASE,
            builtin: true,
            token_id: None,
        };
        hub.register_delegate(info.clone());
        BuiltinDelegate {
            hub: hub.clone(),
            info,
            hostname: hostname.unwrap_or_default().to_owned(),
            agent,
            tools,
        }
    }

    /// Runs tasks until `shutdown` resolves. It is listed with the remote delegates, with what
    /// it found of git on this machine.
    pub async fn run(&self, shutdown: impl std::future::Future<Output = ()>) {
        if let Err(error) = &self.tools.git {
            tracing::warn!(%error, "the built-in delegate found no usable git");
        }
        let registered = self
            .hub
            .inner
            .store
            .register_delegate(&NewDelegate {
                name: self.info.name.clone(),
                token_id: None,
                selectors: self.info.eligibility.selectors.clone(),
                version: env!("CARGO_PKG_VERSION").to_owned(),
                hostname: self.hostname.clone(),
                git_version: self.tools.git_version(),
                ssh_version: self.tools.ssh_version(),
            })
            .await;
        if let Err(error) = registered {
            tracing::warn!(%error, "cannot list the built-in delegate");
        }
        // Several tasks at once: a long push must not hold up a Test.
        let source: Arc<dyn TaskSource> = Arc::new(self.clone());
        let slots =
            std::num::NonZeroUsize::new(BUILTIN_SLOTS).unwrap_or(std::num::NonZeroUsize::MIN);
        if let Err(error) = self.agent.run_concurrently(source, slots, shutdown).await {
            tracing::error!(%error, "the built-in delegate stopped");
        }
    }
}

#[async_trait::async_trait]
impl TaskSource for BuiltinDelegate {
    async fn claim(&self, wait: Duration) -> Result<Option<DelegateTask>, SourceError> {
        loop {
            let Some(task) = self
                .hub
                .claim(&self.info, wait)
                .await
                .map_err(|e| SourceError::Unavailable(e.to_string()))?
            else {
                return Ok(None);
            };
            match self.hub.hydrate(&task).await {
                Ok(spec) => return Ok(Some(DelegateTask { id: task.id, spec })),
                Err(message) => {
                    tracing::warn!(task = %task.id, %message, "cannot prepare task");
                    let outcome =
                        TaskOutcome::failed(&TaskFailure::new(FailureCode::Internal, message));
                    self.hub
                        .complete(&task.id, &self.info.name, outcome)
                        .await
                        .map_err(|e| SourceError::Unavailable(e.to_string()))?;
                }
            }
        }
    }

    async fn complete(&self, task_id: &TaskId, outcome: TaskOutcome) -> Result<(), SourceError> {
        self.hub
            .complete(task_id, &self.info.name, outcome)
            .await
            .map(|_| ())
            .map_err(|e| SourceError::Unavailable(e.to_string()))
    }

    /// Hands the archive over in-process: the hub copies the file into the data directory's
    /// `fetches` folder. A task that is no longer this delegate's is dropped, as its outcome
    /// will be.
    async fn upload_archive(&self, task_id: &TaskId, archive: &Path) -> Result<(), SourceError> {
        match self
            .hub
            .keep_archive_file(task_id, &self.info.name, archive)
            .await
        {
            Ok(_) => Ok(()),
            Err(error) if error.status == axum::http::StatusCode::CONFLICT => {
                tracing::warn!(task = %task_id, message = %error.message, "the hub no longer wants this fetch's archive");
                Ok(())
            }
            Err(error) => Err(SourceError::Unavailable(error.message)),
        }
    }
}
