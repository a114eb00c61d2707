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
    take_up_cut_off_work(&state).await;
    local_tasks::resume(&state).await;
    // Other replicas' signals (PostgreSQL only): their tasks queued and finished, their
    // changesets, their delegates.
    let (signals, stop) = (state.store.signals().clone(), stopped());
    if signals.shared() {
        spawn(
            "replica signals",
            Box::pin(async move { signals.listen(stop).await }),
        );
        let (hub, stop) = (state.tasks.clone(), stopped());
        spawn(
            "delegate presence",
            Box::pin(async move { hub.run_presence_publisher(stop).await }),
        );
    }
    // This replica's heartbeat, and the local tasks of replicas that are gone.
    let (replica, stop) = (state.clone(), stopped());
    spawn(
        "replica heartbeat",
        Box::pin(async move { local_tasks::run_replica_heartbeat(&replica, stop).await }),
    );
    // The branches this replica works on: one lease each, shared by its outbox and inbox.
    let leases = reposync_sync::BranchLeases::new(state.store.clone(), state.config.branch_lease);
    let (renewals, stop) = (std::sync::Arc::clone(&leases), stopped());
    spawn(
        "branch leases",
        Box::pin(async move { renewals.run(stop).await }),
    );
    // reposync -> Git: waiting changesets become commits.
    let outbox = std::sync::Arc::new(
        reposync_sync::Outbox::new(
            state.store.clone(),
            std::sync::Arc::new(state.tasks.clone()),
        )
        .with_leases(std::sync::Arc::clone(&leases)),
    );
    let stop = stopped();
    spawn("outbox", Box::pin(async move { outbox.run(stop).await }));
    // Git -> reposync: branches whose head a webhook (or the poller) announced.
    let inbox = std::sync::Arc::new(
        reposync_sync::Inbox::new(
            state.store.clone(),
            std::sync::Arc::new(state.tasks.clone()),
        )
        .poll_every(Some(state.config.poll_interval))
        .with_leases(leases),
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
    // The other replicas take this one's branches and delegates up at once.
    if let Err(error) = state.store.leave_replica().await {
        tracing::warn!(%error, "cannot hand this server's branches over; the other servers take them when their leases run out");
    }
    state.store.close().await;
    result
}

/// Takes up the work a previous stop or crash of this server cut off. With the embedded
/// database this server is the only one (the data directory's lock says so): every commit
/// attempt left running was cut off, and every sync task left has nobody waiting for it.
/// With a shared database only this replica's own are: those of the branches it held, whose
/// leases it lets go to take them again; other replicas' work goes on, and a dead replica's
/// branches are taken over when their leases run out.
async fn take_up_cut_off_work(state: &AppState) {
    if state.store.backend() == reposync_store::Backend::Sqlite {
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
    }
    match state.store.recover_replica().await {
        Ok(0) => {}
        Ok(interrupted) => {
            tracing::info!(
                interrupted,
                "planning again the commit attempts this server's last run cut off"
            );
        }
        Err(error) => tracing::warn!(%error, "cannot take up this server's cut-off work"),
    }
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
