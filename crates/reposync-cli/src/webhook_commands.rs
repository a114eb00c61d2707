//! `reposync webhook …`: the delivery log, and an offline look at what a payload means.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Subcommand;
use reposync_api::{DeliveryLog, decode};
use reposync_bitbucket::normalise;

use crate::Globals;
use crate::client_commands::{client, unauthenticated_summary};
use crate::output::{column, local_time, table_in, wide_column};

#[derive(Debug, Subcommand)]
pub enum WebhookCommand {
    /// Webhook deliveries received, newest first: event, signature, outcome and why.
    Deliveries {
        /// Only deliveries to this connector's webhook URL.
        #[arg(long)]
        connector: Option<String>,
        /// How many to show.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Read a webhook payload offline and print what reposync makes of it, as JSON: per ref
    /// change, the repository, ref, kind, change, old and new commit.
    Inspect {
        /// The event key Bitbucket sent (`X-Event-Key`), e.g. repo:push or repo:refs_changed.
        #[arg(long)]
        event_key: Option<String>,
        /// Another request header, as `Name: value` (repeatable), e.g. 'X-Bitbucket-Type: server'.
        #[arg(long = "header", value_name = "NAME: VALUE")]
        headers: Vec<String>,
        /// The body, as saved from Bitbucket's request log (`-` for standard input).
        file: PathBuf,
    },
}

pub async fn webhook(command: WebhookCommand, globals: &Globals) -> anyhow::Result<ExitCode> {
    match command {
        WebhookCommand::Inspect {
            event_key,
            headers,
            file,
        } => inspect(event_key, &headers, &file, globals.output),
        WebhookCommand::Deliveries { connector, limit } => {
            let client = client(globals)?;
            let mut query = vec![("limit", limit.to_string())];
            if let Some(connector) = connector {
                query.push(("connector", connector));
            }
            let answer = client
                .get(&["webhooks", "deliveries"], &query, Duration::from_secs(30))
                .await?;
            if globals.output.is_data() {
                crate::output::data(globals.output, &answer)?;
                return Ok(ExitCode::SUCCESS);
            }
            let deliveries: DeliveryLog = decode(answer)?;
            let rows: Vec<Vec<String>> = deliveries
                .items
                .iter()
                .map(|d| {
                    vec![
                        local_time(&d.received_at),
                        d.connector.clone(),
                        d.event.clone(),
                        d.delivery_id.clone().unwrap_or_else(|| "-".into()),
                        d.signature.clone(),
                        d.outcome.clone(),
                        if d.matched.is_empty() {
                            "-".into()
                        } else {
                            d.matched.join(",")
                        },
                        d.reason.clone().unwrap_or_default(),
                        d.id.clone(),
                        d.format.clone().unwrap_or_else(|| "-".into()),
                    ]
                })
                .collect();
            table_in(
                globals.output,
                &[
                    column("RECEIVED"),
                    column("CONNECTOR"),
                    column("EVENT"),
                    column("DELIVERY"),
                    column("SIGNATURE"),
                    column("OUTCOME"),
                    column("MATCHED"),
                    column("REASON"),
                    wide_column("ID"),
                    wide_column("FORMAT"),
                ],
                &rows,
            );
            for counted in &deliveries.unauthenticated {
                outln!(
                    "{}: deliveries that failed authentication (counted, not logged): {}",
                    counted.connector,
                    unauthenticated_summary(counted)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Prints the normalised delivery as JSON (the table formats too: it is a nested document),
/// or as YAML with `-o yaml`.
fn inspect(
    event_key: Option<String>,
    headers: &[String],
    file: &PathBuf,
    format: crate::output::OutputFormat,
) -> anyhow::Result<ExitCode> {
    let mut named: Vec<(String, String)> = Vec::new();
    if let Some(key) = event_key {
        named.push(("x-event-key".into(), key));
    }
    for header in headers {
        let Some((name, value)) = header.split_once(':') else {
            bail!("--header {header:?} is not `Name: value`");
        };
        let name = name.trim();
        if name.is_empty() || name.contains(char::is_whitespace) {
            bail!("--header {header:?} has no valid header name before the colon");
        }
        named.push((name.to_ascii_lowercase(), value.trim().to_owned()));
    }
    let body = if file.as_os_str() == "-" {
        let mut body = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut body)
            .context("cannot read standard input")?;
        body
    } else {
        std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?
    };
    let lookup = |name: &str| {
        let name = name.to_ascii_lowercase();
        named
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
    };
    match normalise(&lookup, &body) {
        Ok(delivery) => {
            crate::output::data(format, &delivery)?;
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            eprintln!("error: {}: {error}", file.display());
            Ok(ExitCode::FAILURE)
        }
    }
}
