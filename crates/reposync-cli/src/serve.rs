use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use reposync_model::Selector;
use reposync_server::{DataDirLock, DeliveryLog, RateLimit, ServerConfig, bootstrap, serve};
use tracing_subscriber::EnvFilter;

use crate::Globals;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The address to listen on.
    #[arg(long, env = "REPOSYNC_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The URL Bitbucket reaches this server at, used in webhook URLs.
    #[arg(long, env = "REPOSYNC_PUBLIC_URL")]
    public_url: Option<String>,
    /// Do not run the built-in delegate.
    #[arg(long)]
    no_builtin_delegate: bool,
    /// A selector of the built-in delegate (repeatable).
    #[arg(long = "builtin-delegate-selector", value_name = "S")]
    builtin_delegate_selectors: Vec<String>,
    /// Largest accepted API request body, in bytes.
    #[arg(long, env = "REPOSYNC_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    max_body_bytes: usize,
    /// Largest accepted webhook delivery body, in bytes; larger ones get 413.
    #[arg(long, env = "REPOSYNC_MAX_WEBHOOK_BYTES", default_value_t = 1024 * 1024)]
    max_webhook_bytes: usize,
    /// Seconds between polls of every synced branch, which catch pushes whose webhook was
    /// missed; 0 turns polling off.
    #[arg(
        long,
        env = "REPOSYNC_POLL_INTERVAL",
        default_value_t = 300,
        value_name = "SECONDS"
    )]
    poll_interval: u64,
    /// Seconds a remote delegate's claim holds a task without a heartbeat; a delegate that
    /// dies loses its tasks to another after this long.
    #[arg(
        long,
        env = "REPOSYNC_DELEGATE_LEASE",
        default_value_t = 30,
        value_name = "SECONDS"
    )]
    delegate_lease: u64,
    /// Webhook deliveries a second that each webhook URL may receive, sustained; past it they
    /// get 429 with Retry-After. Unknown URLs share one limit. 0 turns the limit off.
    #[arg(
        long,
        env = "REPOSYNC_WEBHOOK_RATE_LIMIT",
        default_value_t = RateLimit::DEFAULT.per_second,
        value_name = "PER_SECOND",
        value_parser = parse_rate
    )]
    webhook_rate_limit: f64,
    /// Webhook deliveries that each webhook URL may receive at once after a quiet spell.
    #[arg(
        long,
        env = "REPOSYNC_WEBHOOK_BURST",
        default_value_t = RateLimit::DEFAULT.burst,
        value_name = "N",
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    webhook_burst: u32,
    /// Days the webhook delivery log keeps a delivery (one whose branch head is still unread
    /// stays until it is read).
    #[arg(
        long,
        env = "REPOSYNC_WEBHOOK_RETENTION_DAYS",
        default_value_t = 14,
        value_name = "DAYS",
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    webhook_retention_days: u32,
    /// Webhook deliveries the log keeps per connector, newest first (pruned every minute).
    #[arg(
        long,
        env = "REPOSYNC_WEBHOOK_DELIVERIES_KEPT",
        default_value_t = 1000,
        value_name = "N",
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    webhook_deliveries_kept: u32,
    /// Days that finished tasks, commit attempts, commits read from Git and resolved sync
    /// errors are kept (pruned hourly); open sync errors are kept whatever their age.
    #[arg(
        long,
        env = "REPOSYNC_HISTORY_RETENTION_DAYS",
        default_value_t = 90,
        value_name = "DAYS",
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    history_retention_days: u32,
}

/// A rate in deliveries per second: a finite number, 0 or more.
fn parse_rate(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate >= 0.0 => Ok(rate),
        _ => Err(format!(
            "{text:?} is not a number of deliveries per second (0 or more; 0 turns the limit off)"
        )),
    }
}

pub async fn run(args: ServeArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("REPOSYNC_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, never in files or journald.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let selectors = args
        .builtin_delegate_selectors
        .iter()
        .map(|s| Selector::parse(s))
        .collect::<Result<Vec<_>, _>>()
        .context("--builtin-delegate-selector")?;
    let mut config = ServerConfig::new(&globals.data_dir);
    config.listen = args.listen;
    config.public_url = args.public_url;
    config.builtin_delegate = !args.no_builtin_delegate;
    config.builtin_delegate_selectors = selectors;
    config.max_body_bytes = args.max_body_bytes;
    config.max_webhook_bytes = args.max_webhook_bytes;
    config.poll_interval = std::time::Duration::from_secs(args.poll_interval);
    config.delegate_lease = std::time::Duration::from_secs(args.delegate_lease.max(3));
    config.webhook_rate_limit = (args.webhook_rate_limit > 0.0).then_some(RateLimit {
        per_second: args.webhook_rate_limit,
        burst: args.webhook_burst,
    });
    config.delivery_log = DeliveryLog {
        retention: std::time::Duration::from_secs(
            u64::from(args.webhook_retention_days) * 24 * 60 * 60,
        ),
        kept_per_connector: args.webhook_deliveries_kept,
    };
    config.history_retention =
        std::time::Duration::from_secs(u64::from(args.history_retention_days) * 24 * 60 * 60);
    config.hostname = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty());
    if config.public_url.is_none() && config.listen.ip().is_unspecified() {
        tracing::warn!(
            "listening on {} without --public-url: webhook URLs will name {}, which Bitbucket cannot reach; set --public-url",
            config.listen,
            config.public_base_url()
        );
    }
    config.database_url = std::env::var("REPOSYNC_DATABASE_URL")
        .ok()
        .filter(|v| !v.is_empty());
    config.master_key = std::env::var("REPOSYNC_MASTER_KEY")
        .ok()
        .filter(|v| !v.is_empty());
    // One server per data directory, refused before anything is touched.
    let _data_dir_lock =
        DataDirLock::acquire(&config.data_dir).context("cannot start the server")?;
    // The port is taken now, so a clash fails before any work, but connections are accepted
    // only once the database is migrated and the token file written: a client that finds the
    // port open finds the server ready.
    let listen = config.listen;
    let socket = reserve_port(listen).with_context(|| format!("cannot listen on {listen}"))?;
    let ready = bootstrap(config).await.context("cannot start the server")?;
    tracing::info!(origin = ?ready.master_key_origin, "master key loaded");
    if let Some(token) = &ready.new_admin_token {
        // Printed once, on the first start; the database keeps only its hash.
        outln!(
            "Admin API token (shown once; also saved to {}):\n{token}",
            ready.token_file.display()
        );
    }
    let listener = socket
        .listen(1024)
        .with_context(|| format!("cannot listen on {listen}"))?;
    let address = listener
        .local_addr()
        .context("cannot read the listening address")?;
    outln!("reposync listening on http://{address}");
    serve(listener, ready.state, shutdown_signal())
        .await
        .context("server failed")?;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// Binds the listening address without accepting connections yet.
fn reserve_port(address: SocketAddr) -> std::io::Result<tokio::net::TcpSocket> {
    let socket = if address.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    // As the standard library's listeners do: a restart may reuse the port at once.
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    Ok(socket)
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = match signal(SignalKind::terminate()) {
        Ok(stream) => stream,
        Err(error) => {
            tracing::error!(%error, "cannot listen for SIGTERM");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received; shutting down"),
        _ = terminate.recv() => tracing::info!("SIGTERM received; shutting down"),
    }
}
