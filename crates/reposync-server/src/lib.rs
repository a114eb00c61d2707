//! The reposync server: the REST API, the task hub that feeds delegates, and the built-in
//! delegate, on axum.
//!
//! [`build_app`] returns the one route table; [`serve`] runs it on a listener the caller has
//! already bound, so tests run the real server on port 0. A request never waits on git: work
//! that needs git becomes a task, and the request returns it; a client that wants the outcome
//! long-polls the task. Errors become HTTP responses in exactly one place ([`error::AppError`]),
//! in the shape `{"error": {"code", "message", "field"}}`. Spans record the route template,
//! never the raw URL.

mod access;
mod audit;
mod auth;
pub use access::{Need, POLICIES, Policy, Touches};
pub use audit::ClientAddr;
pub use reposync_core::users::FIRST_ADMIN;
mod bootstrap;
mod config;
mod config_file;
mod error;
mod handlers;
mod intake;
mod local_tasks;
mod metrics;
mod openapi;
mod routes;
mod state;
mod tasks;
mod tls;
mod ui;
mod views;
mod workers;

pub use bootstrap::{
    AdminReset, BootstrapError, Bootstrapped, DataDirLock, LOCK_FILE_NAME, TEMP_DIR_NAME,
    TOKEN_FILE_NAME, bootstrap, reset_admin,
};
pub use config::{DeliveryLog, RateLimit, ServerConfig};
pub use config_file::{ConfigFile, ConfigFileError, LogFormat};
pub use handlers::health::{BUILD_DATE, GIT_COMMIT, VERSION};
pub use routes::build_app;
pub use state::AppState;
pub use tasks::{BuiltinDelegate, TaskHub};
pub use tls::{ServerTls, TlsError, TlsFiles, TlsListener};

use std::future::Future;

/// Serves `state` on `listener` (plain TCP, or a [`TlsListener`]) until `shutdown` resolves,
/// with the built-in delegate running beside it when the configuration asks for one.
/// In-flight requests finish before it returns.
pub async fn serve<L>(
    listener: L,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
    for<'a> ClientAddr: axum::extract::connect_info::Connected<axum::serve::IncomingStream<'a, L>>,
{
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut background = Vec::new();
    // Each worker runs until the stop signal, marked running for `/readyz` meanwhile.
    let mut spawn = |name: &'static str,
                     work: std::pin::Pin<Box<dyn Future<Output = ()> + Send>>| {
        let running = state.workers.start(name);
        background.push(tokio::spawn(async move {
            let _running = running;
            work.await;
        }));
    };
    let stopped = || {
        let mut stop = stop_rx.clone();
        async move { while stop.changed().await.is_ok() && !*stop.borrow() {} }
    };
    if state.config.builtin_delegate {
        let delegate = BuiltinDelegate::new(
            &state.tasks,
            &state.config.builtin_delegate_selectors,
            state.config.hostname.as_deref(),
            state.builtin.clone(),
        );
        let stop = stopped();
        spawn(
            "builtin delegate",
            Box::pin(async move { delegate.run(stop).await }),
        );
    }
    // Attempts cut off by a previous stop are planned again; their tasks have nobody waiting
    // for them.
    if let Err(error) = state.store.interrupt_attempts().await {
        tracing::warn!(%error, "cannot reset interrupted sync attempts");
    }
    let abandoned = reposync_api::TaskFailure::new(
        reposync_api::FailureCode::Interrupted,
        "the server restarted; the work is planned again",
    )
    .to_value()
    .to_string();
    if let Err(error) = state
        .store
        .abandon_tasks(reposync_api::TaskKind::Sync.as_str(), &abandoned)
        .await
    {
        tracing::warn!(%error, "cannot abandon old sync tasks");
    }
    local_tasks::resume(&state).await;
    // reposync -> Git: waiting changesets become commits.
    let outbox = std::sync::Arc::new(reposync_sync::Outbox::new(
        state.store.clone(),
        std::sync::Arc::new(state.tasks.clone()),
    ));
    let stop = stopped();
    spawn("outbox", Box::pin(async move { outbox.run(stop).await }));
    // Git -> reposync: branches whose head a webhook (or the poller) announced.
    let inbox = std::sync::Arc::new(
        reposync_sync::Inbox::new(
            state.store.clone(),
            std::sync::Arc::new(state.tasks.clone()),
        )
        .poll_every(Some(state.config.poll_interval)),
    );
    let stop = stopped();
    spawn("inbox", Box::pin(async move { inbox.run(stop).await }));
    let (sweeper, stop) = (state.clone(), stopped());
    spawn(
        "lease sweeper",
        Box::pin(async move {
            sweeper
                .tasks
                .run_lease_sweeper(sweeper.config.delegate_lease, stop)
                .await;
        }),
    );
    // Webhook intake: counts of refused deliveries written, the delivery log pruned.
    let (upkeep, stop) = (state.clone(), stopped());
    spawn(
        "webhook upkeep",
        Box::pin(async move {
            let log = upkeep.config.delivery_log;
            intake::run_upkeep(&upkeep.intake, &upkeep.store, &log, stop).await;
        }),
    );
    // Retention: history and audit events past their ages leave the database, hourly; the
    // archives of fetches past their hour leave the data directory, every few minutes.
    let (retention, stop) = (state.clone(), stopped());
    spawn(
        "retention",
        Box::pin(async move {
            let ages = reposync_store::RetentionAges {
                history: retention.config.history_retention,
                audit: retention.config.audit_retention,
            };
            prune_history(&retention.store, &retention.tasks, ages, stop).await;
        }),
    );
    let app = build_app(state.clone());
    let hub = state.tasks.clone();
    let shutdown = async move {
        shutdown.await;
        hub.close();
    };
    // Each request knows its client's address, for the audit trail and the login throttle.
    let app = app.into_make_service_with_connect_info::<audit::ClientAddr>();
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    let _ = stop_tx.send(true);
    for task in background {
        let _ = task.await;
    }
    state.store.close().await;
    result
}

/// Prunes the history and audit events past their `ages` at start and then every hour, and
/// fetches' archives past their hour (`tasks::ARCHIVE_KEPT`) every five minutes, until `stop`.
async fn prune_history(
    store: &reposync_store::Store,
    tasks: &TaskHub,
    ages: reposync_store::RetentionAges,
    stop: impl std::future::Future<Output = ()>,
) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(60 * 60));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Archives are refused for download once past their hour whenever they are removed;
    // removing them soon after keeps the disk from holding them much longer.
    let mut archives = tokio::time::interval(std::time::Duration::from_secs(5 * 60));
    archives.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => break,
            _ = archives.tick() => {
                let removed = tasks.prune_archives().await;
                if removed > 0 {
                    tracing::info!(removed, "removed fetches' archives past their hour");
                }
            }
            _ = every.tick() => match store.prune_history(ages).await {
                Ok(pruned) if pruned.total() == 0 => {}
                Ok(pruned) => tracing::info!(
                    tasks = pruned.tasks,
                    attempts = pruned.attempts,
                    changesets = pruned.changesets,
                    commits_read = pruned.commits_read,
                    reads = pruned.reads,
                    resolved_errors = pruned.resolved_errors,
                    audit_events = pruned.audit_events,
                    "pruned history past its age"
                ),
                Err(error) => tracing::warn!(%error, "cannot prune the history"),
            },
        }
    }
}
