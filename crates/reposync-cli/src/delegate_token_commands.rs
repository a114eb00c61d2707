//! `reposync delegate-token …`: the tokens remote delegates authenticate with.

use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;
use reposync_api::{DelegateTokenRequest, DelegateTokenView, ListResponse, decode};
use reqwest::Method;

use crate::Globals;
use crate::client_commands::client;
use crate::output::{column, local_time, local_time_or_dash, table_in};

#[derive(Debug, Subcommand)]
pub enum DelegateTokenCommand {
    /// Create a token; its value is shown once. Give it to `reposync delegate` through
    /// REPOSYNC_DELEGATE_TOKEN or --token-file. Without --selector the token is unrestricted:
    /// its delegates are trusted with every connector's credentials.
    Create {
        /// The token's name, shown in `delegate list`.
        name: String,
        /// Restrict the token to this selector (repeatable): its delegates may register only
        /// these selectors and run only connectors that ask for at least one selector, every
        /// one of them among these.
        #[arg(long = "selector", value_name = "S")]
        selectors: Vec<String>,
    },
    /// Every token, with when it was created and revoked.
    List,
    /// Revoke a token: delegates using it are refused from their next request on.
    Revoke {
        /// The token.
        name: String,
    },
}

pub async fn delegate_token(
    command: DelegateTokenCommand,
    globals: &Globals,
) -> anyhow::Result<ExitCode> {
    let client = client(globals)?;
    let answer = match &command {
        DelegateTokenCommand::Create { name, selectors } => {
            let request = DelegateTokenRequest {
                name: name.clone(),
                selectors: (!selectors.is_empty()).then(|| selectors.clone()),
            };
            client
                .call(Method::POST, &["delegate-tokens"], &request)
                .await?
        }
        DelegateTokenCommand::List => {
            client
                .get(&["delegate-tokens"], &[], Duration::from_secs(30))
                .await?
        }
        DelegateTokenCommand::Revoke { name } => {
            client
                .call(
                    Method::DELETE,
                    &["delegate-tokens", name],
                    &serde_json::json!({}),
                )
                .await?
        }
    };
    if globals.output.is_data() {
        crate::output::data(globals.output, &answer)?;
        return Ok(ExitCode::SUCCESS);
    }
    match command {
        DelegateTokenCommand::Create { .. } => {
            let token: DelegateTokenView = decode(answer)?;
            outln!("Delegate token {:?} created.", token.name);
            match &token.selectors {
                Some(selectors) => outln!(
                    "Its delegates run only connectors whose selectors are all among: {}.",
                    selectors.join(", ")
                ),
                None => outln!(
                    "It is unrestricted: its delegates may run any connector and receive its credentials."
                ),
            }
            if let Some(value) = &token.token {
                outln!("Token (shown once): {}", value.expose());
            }
        }
        DelegateTokenCommand::List => {
            let tokens: ListResponse<DelegateTokenView> = decode(answer)?;
            let rows: Vec<Vec<String>> = tokens
                .items
                .iter()
                .map(|t| {
                    vec![
                        t.name.clone(),
                        t.selectors
                            .as_ref()
                            .map_or_else(|| "(unrestricted)".to_owned(), |s| s.join(",")),
                        local_time(&t.created_at),
                        local_time_or_dash(t.revoked_at.as_deref()),
                    ]
                })
                .collect();
            // A token has nothing the table leaves out: `wide` shows the same columns.
            table_in(
                globals.output,
                &[
                    column("NAME"),
                    column("RESTRICTED TO"),
                    column("CREATED"),
                    column("REVOKED"),
                ],
                &rows,
            );
        }
        DelegateTokenCommand::Revoke { name } => {
            outln!(
                "Delegate token {name:?} revoked; delegates using it stop at their next request"
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
