use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::parser::ValueSource;
use clap::{ArgMatches, Args};
use reposync_model::Selector;
use reposync_server::{
    ConfigFile, DataDirLock, DeliveryLog, LogFormat, RateLimit, ServerConfig, ServerTls, TlsFiles,
    TlsListener, bootstrap, serve,
};
use tracing_subscriber::EnvFilter;

use crate::Globals;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// A configuration file (TOML; `dist/reposync.toml` shows every key). Precedence, lowest
    /// first: defaults, this file, `REPOSYNC_*` variables, flags.
    #[arg(long, env = "REPOSYNC_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
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
    /// REST requests the built-in delegate may send per Bitbucket credential and rolling
    /// hour (Cloud allows 1,000); Bitbucket's rate-limit headers, when sent, take over.
    #[arg(
        long,
        env = "REPOSYNC_REST_REQUESTS_PER_HOUR",
        default_value_t = 1000,
        value_name = "N",
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    rest_requests_per_hour: u32,
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
    /// Seconds a server's lease on a synced branch lasts unless renewed, when several servers
    /// share one PostgreSQL database: the branch's work moves to another server this long
    /// after the one doing it dies.
    #[arg(
        long,
        env = "REPOSYNC_BRANCH_LEASE",
        default_value_t = 30,
        value_name = "SECONDS"
    )]
    branch_lease: u64,
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
    /// Days the audit trail keeps an event (pruned hourly).
    #[arg(
        long,
        env = "REPOSYNC_AUDIT_RETENTION_DAYS",
        default_value_t = 400,
        value_name = "DAYS",
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    audit_retention_days: u32,
    /// The TLS certificate chain (PEM, leaf first): serve HTTPS, without a reverse proxy.
    /// SIGHUP reloads it and the key.
    #[arg(
        long,
        env = "REPOSYNC_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    tls_cert: Option<PathBuf>,
    /// The TLS private key (PEM) of --tls-cert.
    #[arg(
        long,
        env = "REPOSYNC_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    tls_key: Option<PathBuf>,
    /// How log lines are written: `text` for people, `json` (one object a line, with the
    /// fields of its spans: route, task, link) for log collectors. `REPOSYNC_LOG` sets the
    /// level.
    #[arg(
        long,
        env = "REPOSYNC_LOG_FORMAT",
        default_value = "text",
        value_name = "FORMAT",
        value_parser = parse_log_format
    )]
    log_format: LogFormat,
}

fn parse_log_format(text: &str) -> Result<LogFormat, String> {
    match text {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err(format!("{text:?} is not a log format: write text or json")),
    }
}

/// One setting, layered: a flag or a `REPOSYNC_*` variable wins over the configuration file,
/// which wins over the default.
fn layered<T>(matches: &ArgMatches, id: &str, from_args: T, from_file: Option<T>) -> T {
    match matches.value_source(id) {
        Some(ValueSource::CommandLine | ValueSource::EnvVariable) => from_args,
        _ => from_file.unwrap_or(from_args),
    }
}

/// The environment variable's value, when it is set and not empty.
fn env_setting(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

/// The server's configuration, from its four layers.
fn server_config(
    args: ServeArgs,
    file: ConfigFile,
    globals: &Globals,
    matches: &ArgMatches,
) -> anyhow::Result<ServerConfig> {
    let data_dir = layered(matches, "data_dir", globals.data_dir.clone(), file.data_dir);
    let mut config = ServerConfig::new(data_dir);
    config.listen = layered(matches, "listen", args.listen, file.listen);
    config.public_url = args.public_url.or(file.public_url);
    let builtin = file.builtin_delegate;
    config.builtin_delegate = match matches.value_source("no_builtin_delegate") {
        Some(ValueSource::CommandLine) => false,
        _ => builtin.enabled.unwrap_or(true),
    };
    let selectors = layered(
        matches,
        "builtin_delegate_selectors",
        args.builtin_delegate_selectors,
        builtin.selectors,
    );
    config.builtin_delegate_selectors = selectors
        .iter()
        .map(|s| Selector::parse(s))
        .collect::<Result<Vec<_>, _>>()
        .context("--builtin-delegate-selector")?;
    config.rest_requests_per_hour = layered(
        matches,
        "rest_requests_per_hour",
        args.rest_requests_per_hour,
        builtin.rest_requests_per_hour,
    );
    let limits = file.limits;
    config.max_body_bytes = layered(
        matches,
        "max_body_bytes",
        args.max_body_bytes,
        limits.max_body_bytes,
    );
    config.max_webhook_bytes = layered(
        matches,
        "max_webhook_bytes",
        args.max_webhook_bytes,
        limits.max_webhook_bytes,
    );
    if let Some(bytes) = limits.max_import_bytes {
        config.max_import_bytes = bytes;
    }
    let poll_interval = layered(
        matches,
        "poll_interval",
        args.poll_interval,
        file.poll_interval_seconds,
    );
    config.poll_interval = std::time::Duration::from_secs(poll_interval);
    let lease = layered(
        matches,
        "delegate_lease",
        args.delegate_lease,
        file.delegate_lease_seconds,
    );
    config.delegate_lease = std::time::Duration::from_secs(lease.max(3));
    let branch_lease = layered(
        matches,
        "branch_lease",
        args.branch_lease,
        file.branch_lease_seconds,
    );
    config.branch_lease = std::time::Duration::from_secs(branch_lease.max(3));
    let webhooks = file.webhooks;
    let rate = layered(
        matches,
        "webhook_rate_limit",
        args.webhook_rate_limit,
        webhooks.rate_limit,
    );
    let burst = layered(matches, "webhook_burst", args.webhook_burst, webhooks.burst);
    config.webhook_rate_limit = (rate > 0.0).then_some(RateLimit {
        per_second: rate,
        burst,
    });
    let retention_days = layered(
        matches,
        "webhook_retention_days",
        args.webhook_retention_days,
        webhooks.retention_days,
    );
    config.delivery_log = DeliveryLog {
        retention: days(retention_days),
        kept_per_connector: layered(
            matches,
            "webhook_deliveries_kept",
            args.webhook_deliveries_kept,
            webhooks.deliveries_kept,
        ),
    };
    config.history_retention = days(layered(
        matches,
        "history_retention_days",
        args.history_retention_days,
        file.history_retention_days,
    ));
    config.audit_retention = days(layered(
        matches,
        "audit_retention_days",
        args.audit_retention_days,
        file.audit_retention_days,
    ));
    let from_args = args.tls_cert.zip(args.tls_key);
    config.tls = from_args
        .map(|(cert, key)| TlsFiles { cert, key })
        .or(file.tls.map(|tls| TlsFiles {
            cert: tls.cert,
            key: tls.key,
        }));
    // Settings that may hold a secret come from the environment or the file, never argv.
    config.database_url = env_setting("REPOSYNC_DATABASE_URL").or(file.database_url);
    config.master_key = env_setting("REPOSYNC_MASTER_KEY");
    config.metrics_token = env_setting("REPOSYNC_METRICS_TOKEN").or(file.metrics.token);
    config.hostname = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty());
    Ok(config)
}

fn days(days: u32) -> std::time::Duration {
    std::time::Duration::from_secs(u64::from(days) * 24 * 60 * 60)
}

/// Installs the log subscriber: `REPOSYNC_LOG`, else the file's level, else `info`.
fn start_logging(format: LogFormat, file_level: Option<&str>) {
    let filter = EnvFilter::try_from_env("REPOSYNC_LOG")
        .ok()
        .or_else(|| file_level.and_then(|level| EnvFilter::try_new(level).ok()))
        .unwrap_or_else(|| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .init(),
        // Colour codes only for a person at a terminal, never in files or journald.
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
    }
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

pub async fn run(
    args: ServeArgs,
    globals: &Globals,
    matches: &ArgMatches,
) -> anyhow::Result<ExitCode> {
    let file = match &args.config {
        Some(path) => ConfigFile::read(path)?,
        None => ConfigFile::default(),
    };
    let log_format = layered(matches, "log_format", args.log_format, file.log.format);
    start_logging(log_format, file.log.level.as_deref());
    let mut config = server_config(args, file, globals, matches)?;
    // A certificate that cannot be used stops the start before anything is touched.
    let tls = config
        .tls
        .as_ref()
        .map(ServerTls::load)
        .transpose()
        .context("cannot start the server")?;
    if config.public_url.is_none() && config.listen.ip().is_unspecified() {
        tracing::warn!(
            "listening on {} without --public-url: webhook URLs will name {}, which Bitbucket cannot reach; set --public-url",
            config.listen,
            config.public_base_url()
        );
    }
    // One server per data directory, refused before anything is touched.
    let _data_dir_lock =
        DataDirLock::acquire(&config.data_dir).context("cannot start the server")?;
    // The port is taken now, so a clash fails before any work, but connections are accepted
    // only once the database is migrated and the token file written: a client that finds the
    // port open finds the server ready.
    let listen = config.listen;
    let socket = reserve_port(listen).with_context(|| format!("cannot listen on {listen}"))?;
    // Port 0 asks the system for a free port: the links the server makes (webhook URLs,
    // password links) name the one it got.
    config.listen = socket
        .local_addr()
        .context("cannot read the listening address")?;
    let ready = bootstrap(config).await.context("cannot start the server")?;
    tracing::info!(origin = ?ready.master_key_origin, "master key loaded");
    if let Some(token) = &ready.new_admin_token {
        // Printed once, on the first start; the database keeps only its hash.
        outln!(
            "Admin API token (shown once; also saved to {}):\n{token}",
            ready.token_file.display()
        );
    }
    let shutdown = shutdown_signal();
    let listener = socket
        .listen(1024)
        .with_context(|| format!("cannot listen on {listen}"))?;
    let address = listener
        .local_addr()
        .context("cannot read the listening address")?;
    match tls {
        Some(tls) => {
            outln!("reposync listening on https://{address}");
            tokio::spawn(reload_on_hangup(tls.clone()));
            serve(TlsListener::new(listener, tls)?, ready.state, shutdown).await
        }
        None => {
            outln!("reposync listening on http://{address}");
            tokio::spawn(reload_on_hangup_without_tls());
            serve(listener, ready.state, shutdown).await
        }
    }
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

/// Reads the certificate and key again at every SIGHUP, as certificate renewers expect; a
/// pair that cannot be used is reported and the old one kept.
async fn reload_on_hangup(tls: ServerTls) {
    let Some(mut hangups) = hangups() else { return };
    while hangups.recv().await.is_some() {
        match tls.reload() {
            Ok(()) => tracing::info!(
                cert = %tls.files().cert.display(),
                "SIGHUP: TLS certificate reloaded"
            ),
            Err(error) => tracing::error!(
                %error,
                "SIGHUP: the TLS certificate was not reloaded; the old one stays in use"
            ),
        }
    }
}

/// Without TLS there is nothing to reload, but a SIGHUP (a `systemctl reload`) must not end
/// the server, as its default action would.
async fn reload_on_hangup_without_tls() {
    let Some(mut hangups) = hangups() else { return };
    while hangups.recv().await.is_some() {
        tracing::info!("SIGHUP: nothing to reload (no TLS certificate is configured)");
    }
}

fn hangups() -> Option<tokio::signal::unix::Signal> {
    use tokio::signal::unix::{SignalKind, signal};
    signal(SignalKind::hangup())
        .inspect_err(|error| tracing::error!(%error, "cannot listen for SIGHUP"))
        .ok()
}

/// Listens for SIGTERM and SIGINT from the call on, and resolves at the first. Called before
/// the server says it listens: an `async fn` would listen only when first polled, once `serve`
/// has started its workers, and a stop sent before that was the signal's default action, a
/// kill.
fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};
    let listen = |kind: SignalKind, name: &'static str| {
        signal(kind)
            .inspect_err(|error| tracing::error!(%error, "cannot listen for {name}"))
            .ok()
    };
    let terminate = listen(SignalKind::terminate(), "SIGTERM");
    let interrupt = listen(SignalKind::interrupt(), "SIGINT");
    async move {
        // A signal nobody could listen for never comes through here.
        let next = |stream: Option<tokio::signal::unix::Signal>| async move {
            match stream {
                Some(mut stream) => stream.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = next(interrupt) => tracing::info!("SIGINT received; shutting down"),
            _ = next(terminate) => tracing::info!("SIGTERM received; shutting down"),
        }
    }
}
