//! The `reposync` command: parses flags, sets up logging, and calls into the libraries.

#[macro_use]
mod output;

mod audit_commands;
mod backup_commands;
mod client_commands;
mod confirm;
mod delegate_command;
mod delegate_token_commands;
mod fetch_command;
mod help_files;
mod login;
mod offline;
mod progress;
mod serve;
mod store_commands;
mod sync_commands;
mod test_then_submit;
mod tree_commands;
mod user_commands;
mod webhook_commands;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};

/// The help section of the flags every command takes.
const GLOBAL: &str = "Global options";

/// reposync: configuration as code, kept in sync with Bitbucket.
#[derive(Debug, Parser)]
#[command(name = "reposync", version, about)]
struct Cli {
    /// The reposync server to talk to.
    #[arg(
        long,
        global = true,
        env = "REPOSYNC_SERVER",
        default_value = "http://127.0.0.1:8080",
        help_heading = GLOBAL
    )]
    server: String,
    /// The reposync API token (`rsp_…`), never a Bitbucket token or password; by default the
    /// token file of the local data directory is read. `--token` is an alias.
    #[arg(
        long = "api-token",
        alias = "token",
        global = true,
        env = "REPOSYNC_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN",
        help_heading = GLOBAL
    )]
    token: Option<String>,
    /// How to print answers: `table`, `wide` (every column), `json` (the API's JSON) or
    /// `yaml` (the same data as YAML).
    #[arg(
        short = 'o',
        long = "output",
        global = true,
        value_enum,
        value_name = "FORMAT",
        help_heading = GLOBAL
    )]
    output: Option<output::OutputFormat>,
    /// Print the API's JSON instead of tables: the same as `-o json`.
    #[arg(long, global = true, help_heading = GLOBAL)]
    json: bool,
    /// The data directory (the server's store; the CLI reads its token file).
    #[arg(
        long,
        global = true,
        env = "REPOSYNC_DATA_DIR",
        default_value = "./reposync-data",
        help_heading = GLOBAL
    )]
    data_dir: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server, with SQLite embedded in the data directory and a built-in delegate.
    Serve(serve::ServeArgs),
    /// Remember a server and an API token for every later command, from any directory; saved
    /// in a file only you can read. The token is read from standard input, or made by logging
    /// in with --user and a password.
    Login(login::LoginArgs),
    /// Forget the saved server and API token.
    Logout,
    /// Show this client's version and build, and the server's with its database schema.
    Version,
    /// Copy the store's database to a file, consistently, while the server runs.
    Backup(backup_commands::BackupArgs),
    /// Put a backup back as the data directory's database (the server must be stopped).
    Restore(backup_commands::RestoreArgs),
    /// The store itself: `store migrate` moves an installation from SQLite to PostgreSQL.
    #[command(subcommand)]
    Store(store_commands::StoreCommand),
    /// Manage secrets: Encrypted Text and SSH Key Credentials.
    #[command(subcommand)]
    Secret(client_commands::SecretCommand),
    /// Manage Source Repo Providers (Git connectors).
    #[command(subcommand)]
    Connector(Box<client_commands::ConnectorCommand>),
    /// Read files or folders of a connector's repository at a branch, tag or commit (through
    /// a delegate): into --out DIR, or one file to standard output. Prints the commit read.
    Fetch(fetch_command::FetchArgs),
    /// Rewrite YAML files in the canonical Harness format (offline).
    Fmt(offline::FmtArgs),
    /// Check a tree offline: paths, YAML, required fields and references (within the tree, or
    /// to connectors known elsewhere).
    Validate(offline::ValidateArgs),
    /// Validate a whole tree on the server, then apply it all or nothing.
    Import(tree_commands::ImportArgs),
    /// Write the whole tree (or one application's) as files.
    Export(tree_commands::ExportArgs),
    /// Manage applications.
    #[command(subcommand)]
    App(tree_commands::AppCommand),
    /// Create or update one entity from a YAML file.
    Apply {
        /// The entity's path in the tree (`Setup/…`).
        #[arg(long)]
        path: String,
        /// The YAML file.
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
    },
    /// Rename an entity: folders move, and every reference to it is rewritten.
    Rename {
        /// The entity's path in the tree (`Setup/…`).
        path: String,
        /// Its new name.
        new_name: String,
    },
    /// Print one entity's YAML.
    Get {
        /// The entity's path in the tree (`Setup/…`).
        path: String,
    },
    /// Delete one entity (refused while others refer to it).
    Delete {
        /// The entity's path in the tree (`Setup/…`).
        path: String,
        /// Delete without asking (required when not at a terminal).
        #[arg(long)]
        yes: bool,
    },
    /// Git Sync: link the account or an application to a branch, and see what goes out.
    #[command(subcommand)]
    Sync(sync_commands::SyncCommand),
    /// Webhooks from Bitbucket: the delivery log, and an offline payload inspector.
    #[command(subcommand)]
    Webhook(webhook_commands::WebhookCommand),
    /// Run a remote delegate against --server, or list the delegates (`delegate list`).
    Delegate(delegate_command::DelegateArgs),
    /// Tokens for remote delegates: create (shown once), list, revoke.
    #[command(subcommand)]
    DelegateToken(delegate_token_commands::DelegateTokenCommand),
    /// Who the API token in use belongs to, and the role it acts with.
    Whoami,
    /// Set your password through a one-time link an admin made for you; the password is read
    /// from standard input.
    SetPassword(user_commands::SetPasswordArgs),
    /// Users and their rights: add, list, show, set-role, set-password, disable, enable,
    /// delete.
    #[command(subcommand)]
    User(user_commands::UserCommand),
    /// Your personal API tokens: create (shown once), list, revoke.
    #[command(subcommand)]
    Token(user_commands::TokenCommand),
    /// Recovery on the server's machine: `admin reset` issues a new admin token from the data
    /// directory.
    #[command(subcommand)]
    Admin(user_commands::AdminCommand),
    /// The audit trail, newest first: who changed what, from where, and how it ended; logins,
    /// failed logins, tokens and role changes too.
    Audit(audit_commands::AuditArgs),
    /// Print a shell completion script (see the README for where each shell reads it).
    Completions(help_files::CompletionsArgs),
    /// Write the man pages: reposync.1 and one per subcommand.
    Man(help_files::ManArgs),
}

/// Flags shared by every command that talks to a server.
#[derive(Clone)]
pub struct Globals {
    pub server: String,
    /// Whether `--server` (or `REPOSYNC_SERVER`) was given, rather than the default.
    pub server_given: bool,
    pub token: Option<String>,
    /// `-o`, with `--json` folded in.
    pub output: output::OutputFormat,
    pub data_dir: PathBuf,
}

impl std::fmt::Debug for Globals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Globals")
            .field("server", &self.server)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("data_dir", &self.data_dir)
            .finish_non_exhaustive()
    }
}

/// Whether `--token` was given in argv, which every user of the machine can read, rather than
/// through the environment.
fn token_on_command_line(matches: &ArgMatches) -> bool {
    matches.value_source("token") == Some(ValueSource::CommandLine)
}

fn main() -> ExitCode {
    // Before anything starts a thread (the runtime below does): see `read_local_offset`.
    output::read_local_offset();
    let matches = Cli::command().get_matches();
    let token_in_argv = token_on_command_line(&matches);
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(error) => error.exit(),
    };
    let server_given = !matches!(
        matches.value_source("server"),
        None | Some(ValueSource::DefaultValue)
    );
    let output = match (cli.json, cli.output) {
        (false, format) => format.unwrap_or_default(),
        (true, None | Some(output::OutputFormat::Json)) => output::OutputFormat::Json,
        (true, Some(other)) => {
            let other = clap::ValueEnum::to_possible_value(&other)
                .map(|v| v.get_name().to_owned())
                .unwrap_or_default();
            eprintln!(
                "error: --json asks for JSON but -o asks for {other}; give one of them (`--json` is `-o json`)"
            );
            return ExitCode::from(2);
        }
    };
    let globals = Globals {
        server: cli.server,
        server_given,
        token: cli.token,
        output,
        data_dir: cli.data_dir,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => {
                let serve_matches = matches.subcommand_matches("serve").unwrap_or(&matches);
                serve::run(args, &globals, serve_matches).await
            }
            Command::Login(args) => login::login(args, &globals).await,
            Command::Logout => login::logout(),
            Command::Version => client_commands::version(&globals).await,
            Command::Backup(args) => backup_commands::backup(args, &globals).await,
            Command::Restore(args) => backup_commands::restore(args, &globals).await,
            Command::Store(command) => store_commands::store(command, &globals).await,
            Command::Secret(command) => client_commands::secret(command, &globals).await,
            Command::Connector(command) => client_commands::connector(*command, &globals).await,
            Command::Fetch(args) => fetch_command::fetch(args, &globals).await,
            Command::Fmt(args) => offline::fmt(args),
            Command::Validate(args) => offline::validate(args, &globals).await,
            Command::Import(args) => tree_commands::import(args, &globals).await,
            Command::Export(args) => tree_commands::export(args, &globals).await,
            Command::App(command) => tree_commands::app(command, &globals).await,
            Command::Apply { path, file } => tree_commands::apply(path, file, &globals).await,
            Command::Rename { path, new_name } => {
                tree_commands::rename(path, new_name, &globals).await
            }
            Command::Get { path } => tree_commands::get(path, &globals).await,
            Command::Delete { path, yes } => tree_commands::delete(path, yes, &globals).await,
            Command::Sync(command) => sync_commands::sync(command, &globals).await,
            Command::Webhook(command) => webhook_commands::webhook(command, &globals).await,
            Command::DelegateToken(command) => {
                delegate_token_commands::delegate_token(command, &globals).await
            }
            Command::Delegate(args) => {
                delegate_command::delegate(args, &globals, token_in_argv).await
            }
            Command::Whoami => user_commands::whoami(&globals).await,
            Command::SetPassword(args) => user_commands::set_password(args).await,
            Command::User(command) => user_commands::user(command, &globals).await,
            Command::Token(command) => user_commands::token(command, &globals).await,
            Command::Admin(command) => user_commands::admin(command, &globals).await,
            Command::Audit(args) => audit_commands::audit(args, &globals).await,
            Command::Completions(args) => help_files::completions(args, Cli::command()),
            Command::Man(args) => help_files::man_pages(args, Cli::command()),
        }
    });
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            let unreachable = error.chain().any(|cause| {
                matches!(
                    cause.downcast_ref::<reposync_api::ClientError>(),
                    Some(reposync_api::ClientError::Transport { .. })
                )
            });
            if unreachable {
                eprintln!(
                    "hint: is `reposync serve` running there? Start it, or point the CLI at your server with --server URL (or REPOSYNC_SERVER)"
                );
            }
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// clap checks its definitions only when a command is parsed in a debug build; this checks
    /// every subcommand at once, so that a clash cannot hide in one nobody ran.
    #[test]
    fn every_command_line_definition_is_well_formed() {
        super::Cli::command().debug_assert();
    }

    /// Every flag and argument of every command says what it is for, and the global flags
    /// have their own help section.
    #[test]
    fn every_flag_is_described_and_global_flags_stand_apart() {
        fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in command.get_arguments() {
                let id = arg.get_id().as_str();
                if matches!(id, "help" | "version") {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
                if arg.is_global_set() {
                    assert_eq!(arg.get_help_heading(), Some(super::GLOBAL), "{path} {id}");
                }
            }
            for sub in command.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&super::Cli::command(), "reposync", &mut missing);
        assert!(
            missing.is_empty(),
            "flags without a description: {missing:#?}"
        );
    }

    fn parse(args: &[&str]) -> (super::Cli, bool) {
        use clap::FromArgMatches as _;
        let matches = super::Cli::command()
            .try_get_matches_from(args)
            .expect("parses");
        let in_argv = super::token_on_command_line(&matches);
        (
            super::Cli::from_arg_matches(&matches).expect("matches"),
            in_argv,
        )
    }

    #[test]
    fn delegate_runs_with_flags_and_lists_with_a_subcommand() {
        let (cli, token_in_argv) = parse(&[
            "reposync",
            "delegate",
            "--server",
            "https://rs.example.com",
            "--token",
            "t",
            "--selector",
            "eu",
            "--selector",
            "linux",
            "--concurrency",
            "3",
        ]);
        assert_eq!(cli.server, "https://rs.example.com");
        assert!(token_in_argv, "a --token after the subcommand is seen");
        assert!(matches!(cli.command, super::Command::Delegate(_)));
        let (cli, token_in_argv) = parse(&["reposync", "delegate", "list", "--json"]);
        assert!(cli.json);
        assert!(!token_in_argv);
        assert!(matches!(cli.command, super::Command::Delegate(_)));
        assert!(
            super::Cli::command()
                .try_get_matches_from(["reposync", "delegate", "--concurrency", "0"])
                .is_err(),
            "at least one slot"
        );
    }
}
