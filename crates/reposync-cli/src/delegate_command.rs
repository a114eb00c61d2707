//! `reposync delegate`: a remote delegate, and `reposync delegate list`.
//!
//! Running a delegate is all flags and start-up checks here; registering, heartbeats, claims
//! and tasks are `reposync_delegate::run_remote`.

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use reposync_api::{DelegateView, ListResponse};
use reposync_delegate::{Agent, DelegateName, HttpConfig, HttpTaskSource, run_remote};
use reposync_model::Selector;
use secrecy::SecretString;
use tracing_subscriber::EnvFilter;

use crate::Globals;
use crate::client_commands::client;
use crate::output::{column, listing, local_time, table_in, wide_column};

/// The environment variable that holds the delegate token.
const TOKEN_ENV: &str = "REPOSYNC_DELEGATE_TOKEN";

/// The exit status when the server refuses the delegate for good (an unknown or revoked
/// token, an invalid registration), so that a service manager can stop restarting it
/// (systemd: `RestartPreventExitStatus=3`).
const EXIT_REFUSED: u8 = 3;

#[derive(Debug, Args)]
#[command(
    args_conflicts_with_subcommands = true,
    after_help = "The delegate token comes from REPOSYNC_DELEGATE_TOKEN or --token-file \
                  (`reposync delegate-token create NAME` makes one). The delegate exits with \
                  status 3 when the server refuses its token or registration."
)]
pub struct DelegateArgs {
    #[command(subcommand)]
    command: Option<DelegateCommand>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
pub enum DelegateCommand {
    /// List the delegates the server knows: selectors, versions, heartbeat and task counts.
    List,
}

/// Flags of a running delegate; the server is the global `--server`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The delegate's name (by default this machine's host name).
    #[arg(long, env = "REPOSYNC_DELEGATE_NAME")]
    name: Option<String>,
    /// A selector connectors can ask for (repeatable, or comma-separated in the environment).
    #[arg(
        long = "selector",
        value_name = "S",
        env = "REPOSYNC_DELEGATE_SELECTORS",
        value_delimiter = ','
    )]
    selectors: Vec<String>,
    /// Where the delegate keeps its clones and, in `tmp`, the temporary files of git
    /// operations (by default <data-dir>/delegate). One delegate per directory.
    #[arg(long, env = "REPOSYNC_DELEGATE_WORK_DIR", value_name = "DIR")]
    work_dir: Option<PathBuf>,
    /// A file holding the delegate token (instead of REPOSYNC_DELEGATE_TOKEN).
    #[arg(long, env = "REPOSYNC_DELEGATE_TOKEN_FILE", value_name = "PATH")]
    token_file: Option<PathBuf>,
    /// CA certificates (PEM) to trust for an https server, besides the system's.
    #[arg(long, env = "REPOSYNC_DELEGATE_CA_FILE", value_name = "PEM")]
    ca_file: Option<PathBuf>,
    /// How many tasks run at once.
    #[arg(
        long,
        env = "REPOSYNC_DELEGATE_CONCURRENCY",
        value_name = "N",
        default_value = "8"
    )]
    concurrency: NonZeroUsize,
    /// REST requests this delegate may send per Bitbucket credential and rolling hour (Cloud
    /// allows 1,000); Bitbucket's rate-limit headers, when sent, take over.
    #[arg(
        long,
        env = "REPOSYNC_REST_REQUESTS_PER_HOUR",
        default_value_t = 1000,
        value_name = "N",
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    rest_requests_per_hour: u32,
}

/// `reposync delegate [list]`. `token_on_command_line` says whether the global `--token` was
/// given in argv (rather than through REPOSYNC_TOKEN, which holds an API token).
pub async fn delegate(
    args: DelegateArgs,
    globals: &Globals,
    token_on_command_line: bool,
) -> anyhow::Result<ExitCode> {
    match args.command {
        Some(DelegateCommand::List) => list(globals).await,
        None => run(args.run, globals, token_on_command_line).await,
    }
}

async fn list(globals: &Globals) -> anyhow::Result<ExitCode> {
    let answer = client(globals)?
        .get(&["delegates"], &[], Duration::from_secs(30))
        .await?;
    listing(
        globals.output,
        answer,
        |list: ListResponse<DelegateView>, format| {
            let rows = list
                .items
                .iter()
                .map(|d| {
                    vec![
                        d.name.clone(),
                        d.selectors.join(","),
                        d.version.clone(),
                        d.hostname.clone(),
                        d.last_heartbeat
                            .as_deref()
                            .map_or_else(|| "never".into(), local_time),
                        if d.connected { "yes" } else { "no" }.to_owned(),
                        d.tasks_run.to_string(),
                        d.tasks_succeeded.to_string(),
                        d.tasks_failed.to_string(),
                        d.git_version.clone(),
                        d.ssh_version.clone(),
                        d.token.clone().unwrap_or_else(|| "-".into()),
                    ]
                })
                .collect::<Vec<_>>();
            table_in(
                format,
                &[
                    column("NAME"),
                    column("SELECTORS"),
                    column("VERSION"),
                    column("HOST"),
                    column("HEARTBEAT"),
                    column("CONNECTED"),
                    column("RUN"),
                    column("OK"),
                    column("FAILED"),
                    wide_column("GIT"),
                    wide_column("SSH"),
                    wide_column("TOKEN"),
                ],
                &rows,
            );
        },
    )?;
    Ok(ExitCode::SUCCESS)
}

async fn run(
    args: RunArgs,
    globals: &Globals,
    token_on_command_line: bool,
) -> anyhow::Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("REPOSYNC_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, never in files or journald.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

    let token = delegate_token(&args, globals, token_on_command_line)?;
    let hostname = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty());
    let name = match (&args.name, &hostname) {
        (Some(name), _) => DelegateName::parse(name).context("--name")?,
        (None, Some(host)) => DelegateName::parse(host).with_context(|| {
            format!("the host name {host:?} cannot name a delegate; pass --name")
        })?,
        (None, None) => DelegateName::parse("delegate").context("the default name")?,
    };
    let selectors = args
        .selectors
        .iter()
        .map(|s| Selector::parse(s))
        .collect::<Result<Vec<_>, _>>()
        .context("--selector")?;
    let ca_pem = args
        .ca_file
        .as_deref()
        .map(|path| {
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read --ca-file {}", path.display()))
        })
        .transpose()?;
    let work_dir = args
        .work_dir
        .clone()
        .unwrap_or_else(|| globals.data_dir.join("delegate"));
    std::fs::create_dir_all(&work_dir)
        .with_context(|| format!("cannot create the work directory {}", work_dir.display()))?;
    // Before any git runs: the lock keeps a second delegate off this work directory (its
    // clones and temporary files), and what a killed delegate left there, key files
    // included, is removed. Then the tools: a delegate that cannot run git must not take
    // tasks.
    let (agent, tools) = Agent::prepare(&work_dir, work_dir.join("tmp"))
        .await
        .with_context(|| format!("cannot use the work directory {}", work_dir.display()))?;
    let agent = agent.rest_requests_per_hour(args.rest_requests_per_hour);
    let git_version = tools.git.clone().context("cannot start the delegate")?;
    if let Err(error) = &tools.ssh {
        tracing::warn!(%error, "this delegate can run only connectors over https");
    }
    let ssh_version = tools.ssh_version();
    tracing::info!(%git_version, %ssh_version, "tools found");

    let config = HttpConfig {
        server: globals.server.clone(),
        token,
        ca_pem,
        name: name.clone(),
        selectors,
        hostname: hostname.unwrap_or_default(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        git_version,
        ssh_version,
    };
    let source = Arc::new(HttpTaskSource::new(config)?);
    if plain_http_to_another_host(source.server()) {
        tracing::warn!(
            server = %source.server(),
            "the server URL is plain http to another host: the delegate token and the tasks' credentials travel unencrypted; use https"
        );
    }
    tracing::info!(
        server = %source.server(),
        %name,
        work_dir = %work_dir.display(),
        concurrency = args.concurrency.get(),
        "delegate starting"
    );
    match run_remote(&agent, source, args.concurrency, shutdown_signal()).await {
        Ok(()) => {
            tracing::info!("stopped");
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            eprintln!("error: {error}");
            Ok(ExitCode::from(EXIT_REFUSED))
        }
    }
}

/// The delegate token, from `--token-file`, the command line (with a warning) or
/// REPOSYNC_DELEGATE_TOKEN, in that order.
fn delegate_token(
    args: &RunArgs,
    globals: &Globals,
    token_on_command_line: bool,
) -> anyhow::Result<SecretString> {
    let from_argv = globals.token.clone().filter(|_| token_on_command_line);
    let token = match (&args.token_file, from_argv) {
        (Some(_), Some(_)) => bail!("give the delegate token once: --token-file or --token"),
        (Some(path), None) => read_token_file(path)?,
        (None, Some(token)) => {
            tracing::warn!(
                "--token puts the delegate token in this process's command line, which every user of this machine can read; use {TOKEN_ENV} or --token-file instead"
            );
            token
        }
        (None, None) => match std::env::var(TOKEN_ENV) {
            Ok(token) => token,
            Err(_) => bail!(
                "no delegate token: set {TOKEN_ENV} or pass --token-file (`reposync delegate-token create NAME` makes one)"
            ),
        },
    };
    let token = token.trim().to_owned();
    if token.is_empty() {
        bail!("the delegate token is empty");
    }
    Ok(SecretString::from(token))
}

fn read_token_file(path: &Path) -> anyhow::Result<String> {
    let token = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read --token-file {}", path.display()))?;
    if let Ok(metadata) = std::fs::metadata(path) {
        use std::os::unix::fs::PermissionsExt as _;
        if metadata.permissions().mode() & 0o077 != 0 {
            tracing::warn!(
                path = %path.display(),
                "the token file can be read by other users; make it private (chmod 600)"
            );
        }
    }
    Ok(token)
}

/// Whether `server` is `http://` to a host other than this one.
fn plain_http_to_another_host(server: &str) -> bool {
    let Ok(url) = reqwest::Url::parse(server) else {
        return false;
    };
    let host = url.host_str().unwrap_or_default();
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    url.scheme() == "http" && !loopback
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
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received; stopping"),
        _ = terminate.recv() => tracing::info!("SIGTERM received; stopping"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_is_flagged_only_off_this_host() {
        assert!(plain_http_to_another_host("http://reposync.example.com"));
        assert!(plain_http_to_another_host("http://10.0.0.5:8080"));
        assert!(!plain_http_to_another_host("http://127.0.0.1:8080"));
        assert!(!plain_http_to_another_host("http://localhost:8080"));
        assert!(!plain_http_to_another_host("http://[::1]:8080"));
        assert!(!plain_http_to_another_host("https://reposync.example.com"));
    }
}
