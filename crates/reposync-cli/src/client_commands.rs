//! Commands that talk to a running server through its API.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use reposync_api::{
    Client, ClientError, ConnectorSaved, ConnectorView, CreateSshSecret, CreateTextSecret,
    GenerateSshSecret, ListResponse, SecretValue, SecretView, TaskView, TestRequest,
    UnauthenticatedView, UpdateSecret, WebhookView, decode,
};
use reqwest::Method;
use serde_json::{Map, Value, json};

use crate::Globals;
use crate::output::{column, fields, listing, local_time, table_in, wide_column};
use crate::test_then_submit::{
    Draft, TestFlags, TestOutcome, capabilities_summary, save, test_before_saving,
};

#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Create an Encrypted Text secret (a token or password).
    Create {
        /// The secret's name, as connectors refer to it.
        name: String,
        #[command(flatten)]
        value: ValueSource,
    },
    /// Create an SSH Key Credential from a private key file.
    CreateSsh {
        /// The secret's name, as connectors refer to it.
        name: String,
        /// The private key (OpenSSH, PEM or PKCS#8; RSA, ECDSA or Ed25519).
        #[arg(long, value_name = "F")]
        key_file: PathBuf,
        /// Read the key's passphrase from standard input.
        #[arg(long)]
        passphrase_stdin: bool,
        /// The SSH user; Bitbucket requires exactly `git`.
        #[arg(long, default_value = "git")]
        username: String,
    },
    /// Generate an Ed25519 key, store it, and print the public key to add to Bitbucket.
    GenerateSshKey {
        /// The secret's name, as connectors refer to it.
        name: String,
    },
    /// List secrets (never their values).
    List,
    /// Show one secret's metadata.
    Show {
        /// The secret.
        name: String,
    },
    /// Replace a secret's value.
    Update {
        /// The secret.
        name: String,
        /// Read the new value from standard input.
        #[arg(long, conflicts_with_all = ["value_file", "key_file"])]
        value_stdin: bool,
        /// Read the new value from a file.
        #[arg(long, value_name = "F", conflicts_with = "key_file")]
        value_file: Option<PathBuf>,
        /// A new private key, for an SSH Key Credential.
        #[arg(long, value_name = "F")]
        key_file: Option<PathBuf>,
        /// Read the new key's passphrase from standard input.
        #[arg(long, requires = "key_file")]
        passphrase_stdin: bool,
    },
    /// Delete a secret no connector uses.
    Delete {
        /// The secret.
        name: String,
        /// Delete without asking (required when not at a terminal).
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct ValueSource {
    /// Read the value from standard input.
    #[arg(long)]
    value_stdin: bool,
    /// Read the value from a file.
    #[arg(long, value_name = "F")]
    value_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum ConnectorCommand {
    /// Add a Source Repo Provider: its connection is tested first, and a failed Test saves
    /// nothing (see --no-test, --save-anyway).
    Add {
        #[command(flatten)]
        flags: ConnectorFlags,
        #[command(flatten)]
        test: TestFlags,
    },
    /// List connectors.
    List,
    /// Show one connector.
    Show {
        /// The connector.
        name: String,
    },
    /// Change a connector; only the flags given change. A change to the connection (URL,
    /// credentials, branch, trust, selectors…) is tested before it is saved.
    Update {
        /// The connector to change; `--name` renames it.
        #[arg(id = "connector", value_name = "NAME")]
        connector: String,
        #[command(flatten)]
        flags: ConnectorFlags,
        #[command(flatten)]
        test: TestFlags,
        /// Remove every delegate selector.
        #[arg(long)]
        clear_selectors: bool,
        /// Turn the webhook URL off.
        #[arg(long, conflicts_with = "generate_webhook_url")]
        no_webhook_url: bool,
        /// Make every commit's author the connector's again (see --author-from-user).
        #[arg(long, conflicts_with = "author_from_user")]
        no_author_from_user: bool,
    },
    /// Delete a connector.
    Delete {
        /// The connector.
        name: String,
        /// Delete without asking (required when not at a terminal).
        #[arg(long)]
        yes: bool,
    },
    /// Show the webhook URL and secret to paste into Bitbucket, or rotate them.
    Webhook {
        /// The connector.
        name: String,
        /// Make a new webhook URL and secret; the old ones stop working at once.
        #[arg(long, conflicts_with = "signature")]
        regenerate: bool,
        /// Require an HMAC signature on deliveries (`on`, with a new secret), or not (`off`,
        /// for senders that cannot sign: the Post Webhooks plugin, the Post-Receive hook).
        #[arg(long, value_parser = ["on", "off"])]
        signature: Option<String>,
    },
    /// Test the connection: git ls-remote with the connector's credentials, and the branch.
    Test {
        /// The connector.
        name: String,
        /// The repository, for an account-scope connector.
        #[arg(long)]
        repo: Option<String>,
    },
}

#[derive(Debug, Args, Default)]
pub struct ConnectorFlags {
    /// Display name.
    #[arg(long)]
    name: Option<String>,
    /// bitbucket-cloud, bitbucket-server or git (detected from the URL by default).
    #[arg(long)]
    provider: Option<String>,
    /// repo or account.
    #[arg(long)]
    scope: Option<String>,
    /// The clone URL (HTTPS or SSH, as Bitbucket's Clone dialog shows it), or for account
    /// scope the account's URL.
    #[arg(long)]
    url: Option<String>,
    /// The branch Git Sync uses by default.
    #[arg(long)]
    branch: Option<String>,
    /// HTTPS username (see the README for which one each Bitbucket credential needs).
    #[arg(long)]
    username: Option<String>,
    /// Name of the Encrypted Text secret holding the token or password (HTTPS).
    #[arg(long, value_name = "NAME")]
    password_secret: Option<String>,
    /// Name of the SSH Key Credential (SSH).
    #[arg(long, value_name = "NAME")]
    ssh_key_secret: Option<String>,
    /// Delegate selector (repeatable).
    #[arg(long = "selector", value_name = "S")]
    selectors: Vec<String>,
    /// Generate a webhook URL and HMAC secret.
    #[arg(long)]
    generate_webhook_url: bool,
    /// Author and committer name of the commits Git Sync pushes (only their committer where
    /// --author-from-user makes a person the author).
    #[arg(long)]
    author_name: Option<String>,
    /// Author and committer e-mail address of the commits Git Sync pushes (see --author-name).
    #[arg(long)]
    author_email: Option<String>,
    /// First line of the commits Git Sync pushes, instead of "Git Sync from reposync".
    #[arg(long)]
    commit_message: Option<String>,
    /// known_hosts lines to trust for an SSH URL.
    #[arg(long, value_name = "F")]
    known_hosts_file: Option<PathBuf>,
    /// PEM CA certificate(s) to trust for an HTTPS URL.
    #[arg(long, value_name = "F")]
    ca_file: Option<PathBuf>,
    /// Seconds between polls of this connector's synced branches, which catch pushes whose
    /// webhook was missed; 0 turns polling off for it, and `default` leaves it to the
    /// server's `--poll-interval`.
    #[arg(long, value_name = "SECONDS", value_parser = parse_poll_interval)]
    poll_interval: Option<PollInterval>,
    /// Make a commit that holds only one person's changes theirs: their name and e-mail
    /// address as its author, with the connector's author as committer. Commits of several
    /// people, or of a person without an address, keep the connector's author.
    #[arg(long)]
    author_from_user: bool,
    /// The REST API base, when not the platform's default (Cloud
    /// https://api.bitbucket.org/2.0; Data Center <origin>[/<context>]/rest/api/1.0 from the
    /// clone URL): a proxy, for instance.
    #[arg(long, value_name = "URL")]
    api_url: Option<String>,
    /// The user REST calls authenticate as with the connector's token: for a Cloud API token,
    /// the account's email (git uses the username).
    #[arg(long, value_name = "USER")]
    api_username: Option<String>,
    /// The Encrypted Text secret holding a token for REST when git's credentials cannot serve
    /// (an SSH connector), or should not.
    #[arg(long, value_name = "NAME")]
    api_token_secret: Option<String>,
    /// How reads and writes go: auto (the cheapest correct way each time), git (never REST)
    /// or api (REST wherever the platform can).
    #[arg(long, value_name = "MODE", value_parser = ["auto", "git", "api"])]
    fetch: Option<String>,
}

/// `--poll-interval`: a number of seconds, or the server's interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PollInterval {
    Seconds(u32),
    ServerDefault,
}

fn parse_poll_interval(text: &str) -> Result<PollInterval, String> {
    if text == "default" {
        return Ok(PollInterval::ServerDefault);
    }
    text.parse().map(PollInterval::Seconds).map_err(|_| {
        format!("{text:?} is not a number of seconds (0 turns polling off; `default` uses the server's interval)")
    })
}

impl ConnectorFlags {
    /// The fields given, as JSON.
    fn to_json(&self) -> anyhow::Result<Map<String, Value>> {
        let mut body = Map::new();
        let mut put = |key: &str, value: &Option<String>| {
            if let Some(v) = value {
                body.insert(key.to_owned(), json!(v));
            }
        };
        put("name", &self.name);
        put("provider", &self.provider);
        put("scope", &self.scope);
        put("url", &self.url);
        put("branch", &self.branch);
        put("username", &self.username);
        put("password_secret", &self.password_secret);
        put("ssh_key_secret", &self.ssh_key_secret);
        put("author_name", &self.author_name);
        put("author_email", &self.author_email);
        put("commit_message", &self.commit_message);
        put("api_url", &self.api_url);
        put("api_username", &self.api_username);
        put("api_token_secret", &self.api_token_secret);
        put("fetch", &self.fetch);
        if let Some(path) = &self.known_hosts_file {
            body.insert(
                "known_hosts".into(),
                json!(read_text(path, "--known-hosts-file")?),
            );
        }
        if let Some(path) = &self.ca_file {
            body.insert(
                "ca_certificate".into(),
                json!(read_text(path, "--ca-file")?),
            );
        }
        if !self.selectors.is_empty() {
            body.insert("selectors".into(), json!(self.selectors));
        }
        if self.generate_webhook_url {
            body.insert("generate_webhook_url".into(), json!(true));
        }
        if self.author_from_user {
            body.insert("author_from_user".into(), json!(true));
        }
        match self.poll_interval {
            Some(PollInterval::Seconds(seconds)) => {
                body.insert("poll_interval_seconds".into(), json!(seconds));
            }
            // `null` clears the connector's own interval.
            Some(PollInterval::ServerDefault) => {
                body.insert("poll_interval_seconds".into(), Value::Null);
            }
            None => {}
        }
        Ok(body)
    }
}

/// A client of the server the flags name, with the token they give; without them, the saved
/// login (`reposync login`) for its server, then the token file of the local data directory.
pub(crate) fn client(globals: &Globals) -> anyhow::Result<Client> {
    let saved = crate::login::saved_login()
        .filter(|saved| !globals.server_given || saved.server == globals.server);
    let server = match (&saved, globals.server_given) {
        (Some(saved), false) => saved.server.clone(),
        _ => globals.server.clone(),
    };
    check_server_url(&server)?;
    let token = match (&globals.token, saved) {
        (Some(token), _) => token.clone(),
        (None, Some(saved)) => saved.token,
        (None, None) => {
            let path = globals.data_dir.join(reposync_server::TOKEN_FILE_NAME);
            match std::fs::read_to_string(&path) {
                Ok(text) => text.trim().to_owned(),
                Err(_) => bail!(
                    "no API token: run `reposync login --server URL` (the token on standard input), pass --api-token or set REPOSYNC_TOKEN, or run where {} exists",
                    path.display()
                ),
            }
        }
    };
    Ok(Client::new(&server, Some(token))?)
}

/// Refuses a `--server` that is not an `http://` or `https://` URL with a host, saying what
/// to write instead: `localhost:8080` would otherwise read as a URL of scheme `localhost`.
pub(crate) fn check_server_url(server: &str) -> anyhow::Result<()> {
    let has_scheme = server.starts_with("http://") || server.starts_with("https://");
    if !has_scheme {
        let rest = server.split_once("://").map_or(server, |(_, rest)| rest);
        bail!(
            "--server {server:?} needs the scheme: give http://{rest} (or https://{rest} when the server has TLS)"
        );
    }
    let host = server.split_once("://").map_or("", |(_, rest)| rest);
    if host.is_empty() || host.starts_with('/') {
        bail!("--server {server:?} names no host: give it like http://127.0.0.1:8080");
    }
    Ok(())
}

/// `reposync version`: this client's build, then the server's with its database schema.
pub async fn version(globals: &Globals) -> anyhow::Result<ExitCode> {
    let client_build = serde_json::json!({
        "version": reposync_server::VERSION,
        "git_commit": reposync_server::GIT_COMMIT,
        "build_date": reposync_server::BUILD_DATE,
    });
    let describe = |build: &Value| {
        let text = |key: &str| build[key].as_str().unwrap_or("unknown").to_owned();
        let commit = text("git_commit");
        format!(
            "{} (commit {}, built {})",
            text("version"),
            commit.get(..12).unwrap_or(&commit),
            text("build_date")
        )
    };
    if !globals.output.is_data() {
        outln!("client  {}", describe(&client_build));
    }
    let server = client(globals)?
        .get(&["version"], &[], Duration::from_secs(10))
        .await
        .context("cannot ask the server for its version")?;
    if globals.output.is_data() {
        crate::output::data(
            globals.output,
            &serde_json::json!({"client": client_build, "server": server}),
        )?;
    } else {
        outln!(
            "server  {}, database schema {}",
            describe(&server),
            server["schema_version"]
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The flags of `connector add` and `connector update`, by the API field each one sets.
pub(crate) const CONNECTOR_FLAGS: &[(&str, &str)] = &[
    ("name", "--name"),
    ("provider", "--provider"),
    ("scope", "--scope"),
    ("url", "--url"),
    ("branch", "--branch"),
    ("username", "--username"),
    ("password_secret", "--password-secret"),
    ("ssh_key_secret", "--ssh-key-secret"),
    ("selectors", "--selector"),
    ("generate_webhook_url", "--generate-webhook-url"),
    ("author_name", "--author-name"),
    ("author_email", "--author-email"),
    ("commit_message", "--commit-message"),
    ("known_hosts", "--known-hosts-file"),
    ("ca_certificate", "--ca-file"),
    ("poll_interval_seconds", "--poll-interval"),
    ("api_url", "--api-url"),
    ("api_username", "--api-username"),
    ("api_token_secret", "--api-token-secret"),
    ("fetch", "--fetch"),
    ("author_from_user", "--author-from-user"),
    ("repo", "--repo"),
];

/// The flags of `secret create-ssh` (and of `secret update` with a key), by API field. The
/// passphrase is only ever read from standard input.
const SSH_KEY_FLAGS: &[(&str, &str)] = &[
    ("private_key", "--key-file"),
    ("passphrase", "--passphrase-stdin"),
    ("username", "--username"),
];

/// An API error in the CLI's words: the flag that sets the field the server names, rather
/// than the field itself.
pub(crate) fn in_flag_terms(error: ClientError, flags: &[(&str, &str)]) -> anyhow::Error {
    if let ClientError::Api { error: api, .. } = &error
        && let Some(flag) = api
            .field
            .as_deref()
            .and_then(|field| flags.iter().find(|(f, _)| *f == field))
            .map(|(_, flag)| *flag)
    {
        return anyhow::anyhow!("{flag}: {}", api.message);
    }
    error.into()
}

pub async fn secret(command: SecretCommand, globals: &Globals) -> anyhow::Result<ExitCode> {
    let client = client(globals)?;
    let answer = match command {
        SecretCommand::Create { name, value } => {
            let value = match (&value.value_file, value.value_stdin) {
                (Some(path), _) => read_secret_file(path, "--value-file")?,
                (None, _) => read_stdin_secret("the secret value")?,
            };
            client
                .call(
                    Method::POST,
                    &["secrets"],
                    &CreateTextSecret { name, value },
                )
                .await?
        }
        SecretCommand::CreateSsh {
            name,
            key_file,
            passphrase_stdin,
            username,
        } => {
            let private_key = read_secret_file(&key_file, "--key-file")?;
            let passphrase = if passphrase_stdin {
                Some(read_stdin_secret("the passphrase")?)
            } else {
                None
            };
            let body = CreateSshSecret {
                name,
                private_key,
                passphrase,
                username: Some(username),
            };
            client
                .call(Method::POST, &["secrets", "ssh"], &body)
                .await
                .map_err(|e| in_flag_terms(e, SSH_KEY_FLAGS))?
        }
        SecretCommand::GenerateSshKey { name } => {
            let answer = client
                .call(
                    Method::POST,
                    &["secrets", "ssh", "generate"],
                    &GenerateSshSecret { name },
                )
                .await?;
            if !globals.output.is_data() {
                let view: SecretView = decode(answer)?;
                for warning in &view.warnings {
                    eprintln!("warning: {warning}");
                }
                let ssh = view.ssh.as_ref();
                outln!(
                    "Created SSH key secret {:?} ({})",
                    view.name,
                    ssh.map(|s| s.fingerprint.as_str()).unwrap_or("")
                );
                outln!(
                    "Add this public key to Bitbucket (Personal settings > SSH keys, or the repository's Access keys):"
                );
                outln!("{}", ssh.map(|s| s.public_key.as_str()).unwrap_or(""));
                return Ok(ExitCode::SUCCESS);
            }
            answer
        }
        SecretCommand::List => {
            let answer = client
                .get(&["secrets"], &[], Duration::from_secs(30))
                .await?;
            listing(
                globals.output,
                answer,
                |list: ListResponse<SecretView>, format| {
                    let rows = list
                        .items
                        .iter()
                        .map(|s| {
                            let ssh = s.ssh.as_ref();
                            vec![
                                s.name.clone(),
                                kind_label(s).to_owned(),
                                ssh.map(|k| k.fingerprint.clone()).unwrap_or_default(),
                                s.used_by.join(", "),
                                local_time(&s.updated_at),
                                ssh.map(|k| k.username.clone()).unwrap_or_default(),
                                ssh.map(|k| k.algorithm.clone()).unwrap_or_default(),
                                local_time(&s.created_at),
                            ]
                        })
                        .collect::<Vec<_>>();
                    table_in(
                        format,
                        &[
                            column("NAME"),
                            column("KIND"),
                            column("FINGERPRINT"),
                            column("USED BY"),
                            column("UPDATED"),
                            wide_column("SSH USER"),
                            wide_column("ALGORITHM"),
                            wide_column("CREATED"),
                        ],
                        &rows,
                    );
                },
            )?;
            return Ok(ExitCode::SUCCESS);
        }
        SecretCommand::Show { name } => {
            client
                .get(&["secrets", &name], &[], Duration::from_secs(30))
                .await?
        }
        SecretCommand::Update {
            name,
            value_stdin,
            value_file,
            key_file,
            passphrase_stdin,
        } => {
            let mut body = UpdateSecret::default();
            if let Some(path) = key_file {
                body.private_key = Some(read_secret_file(&path, "--key-file")?);
                if passphrase_stdin {
                    body.passphrase = Some(read_stdin_secret("the passphrase")?);
                }
            } else if let Some(path) = value_file {
                body.value = Some(read_secret_file(&path, "--value-file")?);
            } else if value_stdin {
                body.value = Some(read_stdin_secret("the secret value")?);
            } else {
                bail!(
                    "give the new value: --value-stdin, --value-file F, or --key-file F for an SSH key"
                );
            }
            client.call(Method::PUT, &["secrets", &name], &body).await?
        }
        SecretCommand::Delete { name, yes } => {
            crate::confirm::confirm(
                &format!("Deleting secret {name:?}"),
                &[format!(
                    "delete the secret {name:?} for good: its value cannot be read back"
                )],
                yes,
            )?;
            let answer = client.delete(&["secrets", &name]).await?;
            if !globals.output.is_data() {
                outln!("Deleted secret {name:?}");
                return Ok(ExitCode::SUCCESS);
            }
            answer
        }
    };
    if globals.output.is_data() {
        crate::output::data(globals.output, &answer)?;
    } else {
        let view: SecretView = decode(answer)?;
        for warning in &view.warnings {
            eprintln!("warning: {warning}");
        }
        print_secret(&view);
    }
    Ok(ExitCode::SUCCESS)
}

fn kind_label(secret: &SecretView) -> &'static str {
    match secret.kind {
        reposync_api::SecretKindView::Text => "Encrypted Text",
        reposync_api::SecretKindView::SshKey => "SSH Key",
    }
}

fn print_secret(secret: &SecretView) {
    let ssh = secret.ssh.as_ref();
    fields(&[
        ("Name", Some(secret.name.clone())),
        ("Kind", Some(kind_label(secret).to_owned())),
        ("User", ssh.map(|s| s.username.clone())),
        ("Algorithm", ssh.map(|s| s.algorithm.clone())),
        ("Fingerprint", ssh.map(|s| s.fingerprint.clone())),
        ("Public key", ssh.map(|s| s.public_key.clone())),
        (
            "Used by",
            (!secret.used_by.is_empty()).then(|| secret.used_by.join(", ")),
        ),
        ("Created", Some(local_time(&secret.created_at))),
        ("Updated", Some(local_time(&secret.updated_at))),
    ]);
}

pub async fn connector(command: ConnectorCommand, globals: &Globals) -> anyhow::Result<ExitCode> {
    let client = client(globals)?;
    match command {
        ConnectorCommand::Add { flags, test } => {
            let body = flags.to_json()?;
            let tested_by = test_before_saving(&client, Draft::New(&body), &test).await?;
            let answer = save(&client, Draft::New(&body), tested_by).await?;
            print_saved(answer, globals)?;
        }
        ConnectorCommand::Update {
            connector: name,
            flags,
            test,
            clear_selectors,
            no_webhook_url,
            no_author_from_user,
        } => {
            let mut body = flags.to_json()?;
            if clear_selectors {
                body.insert("selectors".into(), json!([]));
            }
            if no_webhook_url {
                body.insert("generate_webhook_url".into(), json!(false));
            }
            if no_author_from_user {
                body.insert("author_from_user".into(), json!(false));
            }
            if body.is_empty() {
                bail!(
                    "nothing to change: give at least one flag (see `reposync connector update --help`)"
                );
            }
            let changes = Draft::Changes {
                name: &name,
                patch: &body,
            };
            let tested_by = test_before_saving(&client, changes, &test).await?;
            let answer = save(&client, changes, tested_by).await?;
            print_saved(answer, globals)?;
        }
        ConnectorCommand::List => {
            let answer = client
                .get(&["connectors"], &[], Duration::from_secs(30))
                .await?;
            listing(
                globals.output,
                answer,
                |list: ListResponse<ConnectorView>, format| {
                    let rows = list
                        .items
                        .iter()
                        .map(|c| {
                            vec![
                                c.name.clone(),
                                c.provider.clone(),
                                c.scope.clone(),
                                c.url.clone(),
                                c.branch.clone().unwrap_or_default(),
                                c.last_test
                                    .as_ref()
                                    .map(test_summary)
                                    .unwrap_or_else(|| "never".into()),
                                c.protocol.clone(),
                                credential_summary(c),
                                c.selectors.join(","),
                                c.webhook_url.clone().unwrap_or_else(|| "-".into()),
                                format!("{} <{}>", c.author_name, c.author_email),
                                local_time(&c.created_at),
                                local_time(&c.updated_at),
                            ]
                        })
                        .collect::<Vec<_>>();
                    table_in(
                        format,
                        &[
                            column("NAME"),
                            column("PROVIDER"),
                            column("SCOPE"),
                            column("URL"),
                            column("BRANCH"),
                            column("LAST TEST"),
                            wide_column("PROTOCOL"),
                            wide_column("CREDENTIAL"),
                            wide_column("SELECTORS"),
                            wide_column("WEBHOOK URL"),
                            wide_column("AUTHOR"),
                            wide_column("CREATED"),
                            wide_column("UPDATED"),
                        ],
                        &rows,
                    );
                },
            )?;
        }
        ConnectorCommand::Show { name } => {
            let answer = client
                .get(&["connectors", &name], &[], Duration::from_secs(30))
                .await?;
            if globals.output.is_data() {
                crate::output::data(globals.output, &answer)?;
            } else {
                print_connector(&decode(answer)?);
            }
        }
        ConnectorCommand::Delete { name, yes } => {
            crate::confirm::confirm(
                &format!("Deleting connector {name:?}"),
                &[
                    format!("delete the connector {name:?} and its Source Repo Provider file"),
                    "stop its webhook URL from working".to_owned(),
                ],
                yes,
            )?;
            let answer = client.delete(&["connectors", &name]).await?;
            if globals.output.is_data() {
                crate::output::data(globals.output, &answer)?;
            } else {
                outln!("Deleted connector {name:?}");
            }
        }
        ConnectorCommand::Webhook {
            name,
            regenerate,
            signature,
        } => {
            let answer = if let Some(signature) = signature {
                client
                    .call(
                        Method::POST,
                        &["connectors", &name, "webhook", "signature"],
                        &json!({ "required": signature == "on" }),
                    )
                    .await?
            } else if regenerate {
                client
                    .call(
                        Method::POST,
                        &["connectors", &name, "webhook", "regenerate"],
                        &json!({}),
                    )
                    .await?
            } else {
                client
                    .get(
                        &["connectors", &name, "webhook"],
                        &[],
                        Duration::from_secs(30),
                    )
                    .await?
            };
            if globals.output.is_data() {
                crate::output::data(globals.output, &answer)?;
            } else {
                print_webhook(&decode(answer)?);
            }
        }
        ConnectorCommand::Test { name, repo } => {
            let queued: TaskView = decode(
                client
                    .call(
                        Method::POST,
                        &["connectors", &name, "test"],
                        &TestRequest {
                            repo,
                            changes: None,
                        },
                    )
                    .await
                    .map_err(|e| in_flag_terms(e, CONNECTOR_FLAGS))?,
            )?;
            let task = wait_for_task(&client, queued, "the Test").await?;
            let outcome = TestOutcome::of(&task);
            if globals.output.is_data() {
                crate::output::data(globals.output, outcome.result())?;
            }
            if outcome.ok {
                if !globals.output.is_data() {
                    outln!("{}", outcome.success());
                }
                return Ok(ExitCode::SUCCESS);
            }
            eprintln!("error: {}", outcome.failure());
            return Ok(ExitCode::FAILURE);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Long-polls a task until it is final; each request waits up to 30 s on the server. The work
/// has its own time limits, so this deadline only guards against a task nobody picks up.
pub async fn wait_for_task(
    client: &Client,
    queued: TaskView,
    what: &str,
) -> anyhow::Result<TaskView> {
    let mut task = queued;
    let spinner = crate::progress::Spinner::start(format!("waiting for {what} (task {})", task.id));
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    while !matches!(task.status.as_str(), "succeeded" | "failed") {
        if std::time::Instant::now() > deadline {
            bail!(
                "{what} (task {}) is still {} after 5 minutes; is a delegate running?",
                task.id,
                task.status
            );
        }
        let answer = client
            .get(
                &["tasks", task.id.as_str()],
                &[("wait_ms", "30000".to_owned())],
                Duration::from_secs(45),
            )
            .await?;
        task = decode(answer)?;
    }
    spinner.finish().await;
    Ok(task)
}

fn test_summary(result: &reposync_api::TestResult) -> String {
    let outcome = if result.ok {
        "ok"
    } else {
        result.code.as_deref().unwrap_or("failed")
    };
    format!("{outcome} {}", local_time(&result.tested_at))
}

/// Who the connector connects as: `user / secret` over HTTPS, `ssh key secret` over SSH.
fn credential_summary(c: &ConnectorView) -> String {
    match (&c.username, &c.password_secret, &c.ssh_key_secret) {
        (_, _, Some(key)) => format!("ssh key {key}"),
        (Some(user), Some(secret), None) => format!("{user} / {secret}"),
        (None, Some(secret), None) => secret.clone(),
        _ => "-".to_owned(),
    }
}

fn print_saved(answer: Value, globals: &Globals) -> anyhow::Result<()> {
    if globals.output.is_data() {
        return crate::output::data(globals.output, &answer);
    }
    let saved: ConnectorSaved = decode(answer)?;
    for warning in &saved.warnings {
        eprintln!("warning: {warning}");
    }
    print_connector(&saved.connector);
    if let Some(webhook) = &saved.webhook {
        outln!();
        print_webhook(webhook);
    }
    Ok(())
}

fn print_connector(c: &ConnectorView) {
    fields(&[
        ("Name", Some(c.name.clone())),
        ("Provider", Some(c.provider.clone())),
        ("Scope", Some(c.scope.clone())),
        ("URL", Some(c.url.clone())),
        ("Protocol", Some(c.protocol.clone())),
        ("Username", c.username.clone()),
        ("Password secret", c.password_secret.clone()),
        ("SSH key secret", c.ssh_key_secret.clone()),
        ("Branch", c.branch.clone()),
        (
            "Selectors",
            (!c.selectors.is_empty()).then(|| c.selectors.join(", ")),
        ),
        ("Webhook URL", c.webhook_url.clone()),
        (
            "Author",
            Some(format!("{} <{}>", c.author_name, c.author_email)),
        ),
        (
            "Author from user",
            Some(
                if c.author_from_user {
                    "on (a commit of one person's changes is theirs; the author above commits it)"
                } else {
                    "off"
                }
                .to_owned(),
            ),
        ),
        ("Commit message", c.commit_message.clone()),
        (
            "Known hosts",
            c.known_hosts.as_ref().map(|k| {
                format!(
                    "{} entries",
                    k.lines().filter(|l| !l.trim().is_empty()).count()
                )
            }),
        ),
        (
            "CA certificate",
            c.ca_certificate.as_ref().map(|_| "custom".to_owned()),
        ),
        (
            "Poll interval",
            Some(match c.poll_interval_seconds {
                None => "the server's".to_owned(),
                Some(0) => "off".to_owned(),
                Some(seconds) => format!("{seconds} s"),
            }),
        ),
        ("Fetch", Some(c.fetch.clone())),
        ("API URL", c.api_url.clone()),
        ("API username", c.api_username.clone()),
        ("API token secret", c.api_token_secret.clone()),
        (
            "Capabilities",
            c.capabilities.as_ref().map(capabilities_summary),
        ),
        ("Last test", c.last_test.as_ref().map(test_summary)),
    ]);
}

fn print_webhook(webhook: &WebhookView) {
    outln!("Webhook URL:    {}", webhook.url);
    if webhook.secret.expose().is_empty() {
        outln!("Webhook secret: none (deliveries need no signature)");
        outln!("In Bitbucket, add a webhook with this URL for push events.");
    } else {
        outln!("Webhook secret: {}", webhook.secret.expose());
        outln!("In Bitbucket, add a webhook with this URL and secret for push events.");
    }
    if let Some(unauthenticated) = &webhook.unauthenticated {
        outln!(
            "Unauthenticated deliveries: {}",
            unauthenticated_summary(unauthenticated)
        );
    }
}

/// `N (last at T: reason)`, or `none`: deliveries that failed authentication.
pub fn unauthenticated_summary(counted: &UnauthenticatedView) -> String {
    match (&counted.last_at, &counted.last_reason) {
        (Some(at), Some(reason)) if counted.count > 0 => {
            format!("{} (last at {}: {reason})", counted.count, local_time(at))
        }
        _ if counted.count > 0 => counted.count.to_string(),
        _ => "none".to_owned(),
    }
}

fn read_text(path: &Path, flag: &str) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("{flag}: cannot read {}", path.display()))
}

/// Reads a secret from a file, dropping one trailing newline (editors add one).
fn read_secret_file(path: &Path, flag: &str) -> anyhow::Result<SecretValue> {
    let text = read_text(path, flag)?;
    Ok(SecretValue::new(strip_newline(text)))
}

fn read_stdin_secret(what: &str) -> anyhow::Result<SecretValue> {
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .with_context(|| format!("cannot read {what} from standard input"))?;
    Ok(SecretValue::new(strip_newline(text)))
}

fn strip_newline(mut text: String) -> String {
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    text
}
