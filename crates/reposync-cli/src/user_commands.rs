//! `reposync user …`, `reposync token …` and `reposync admin reset`: who may use reposync,
//! with which rights, and with which personal API tokens.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use reposync_api::{
    ListResponse, SecretValue, TokenRequest, TokenView, UserRequest, UserUpdateRequest, UserView,
    decode,
};
use reqwest::Method;

use crate::Globals;
use crate::client_commands::client;
use crate::output::{OutputFormat, column, local_time, local_time_or_dash, table_in, wide_column};

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user. With --app, the role holds only in those applications and the user
    /// reads everything else as a viewer.
    Add {
        /// The user's name: letters, digits, `.`, `_` and `-`.
        name: String,
        /// What the user may do: viewer (read), editor (also change the tree, applications,
        /// sync links, and run Tests) or admin (also secrets, connectors, users, delegates).
        #[arg(long, value_name = "ROLE")]
        role: String,
        /// An application the role holds in (repeatable); without it, everywhere.
        #[arg(long = "app", value_name = "APP")]
        apps: Vec<String>,
        /// The user's e-mail address, for commits made with --author-from-user.
        #[arg(long)]
        email: Option<String>,
        /// Read the user's password (for logging in) from standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Every user, with their role and applications.
    List,
    /// One user, with their failed logins.
    Show {
        /// The user.
        name: String,
    },
    /// Change a user's role, and where it holds.
    SetRole {
        /// The user.
        name: String,
        /// viewer, editor or admin.
        role: String,
        /// An application the role holds in (repeatable); without it, everywhere.
        #[arg(long = "app", value_name = "APP")]
        apps: Vec<String>,
    },
    /// Set a user's password, read from standard input; it ends a lockout.
    SetPassword {
        /// The user.
        name: String,
        /// Read the password from standard input (the only way: never in argv).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Make a one-time link (valid for a day) for a user to set their own password with
    /// `reposync set-password --link URL`; an earlier link of theirs stops working.
    PasswordLink {
        /// The user.
        name: String,
    },
    /// Disable a user: their tokens and password stop working until they are enabled.
    Disable {
        /// The user.
        name: String,
    },
    /// Enable a disabled user.
    Enable {
        /// The user.
        name: String,
    },
    /// Delete a user and their tokens.
    Delete {
        /// The user.
        name: String,
        /// Delete without asking (required when not at a terminal).
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a personal API token (`rsp_…`); its value is shown once.
    Create {
        /// The token's name, such as `laptop` or `ci`.
        name: String,
        /// How long it lives: `90d` (the default), `12h`, `2w`, or `never`.
        #[arg(long, value_name = "AGE")]
        expires: Option<String>,
        /// Cap the token below your role: viewer, editor or admin.
        #[arg(long, value_name = "ROLE")]
        role: Option<String>,
        /// Make it for another user, such as a robot account (admins only).
        #[arg(long, value_name = "USER")]
        user: Option<String>,
    },
    /// Your tokens (or another user's, for admins), with their expiry and last use; never
    /// their values.
    List {
        /// Another user's tokens (admins only).
        #[arg(long, value_name = "USER")]
        user: Option<String>,
    },
    /// Revoke a token: its next request is refused.
    Revoke {
        /// The token's name.
        name: String,
        /// Another user's token (admins only).
        #[arg(long, value_name = "USER")]
        user: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Issue a new token for an admin straight in the data directory (--data-dir), whether
    /// or not the server runs: for when the admin token is lost. Their old tokens are revoked.
    Reset(ResetArgs),
}

#[derive(Debug, Args)]
pub struct ResetArgs {
    /// The admin to issue the token for.
    #[arg(default_value = reposync_server::FIRST_ADMIN)]
    user: String,
}

/// Reads a password from standard input: one line, without echo at a terminal.
pub fn read_password(what: &str) -> anyhow::Result<SecretValue> {
    let stdin = std::io::stdin();
    let at_terminal = stdin.is_terminal();
    let echo = if at_terminal {
        eprint!("{what}: ");
        let _ = std::io::stderr().flush();
        Some(EchoOff::new(&stdin)?)
    } else {
        None
    };
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    drop(echo);
    if at_terminal {
        eprintln!();
    }
    let password = line.trim_end_matches(['\n', '\r']).to_owned();
    if password.is_empty() {
        bail!("give the password on standard input: `reposync … --password-stdin < file`");
    }
    Ok(SecretValue::new(password))
}

/// The terminal's echo, turned off until dropped.
struct EchoOff {
    saved: rustix::termios::Termios,
}

impl EchoOff {
    fn new(stdin: &std::io::Stdin) -> anyhow::Result<EchoOff> {
        let saved = rustix::termios::tcgetattr(stdin).context("cannot read the terminal")?;
        let mut quiet = saved.clone();
        quiet.local_modes -= rustix::termios::LocalModes::ECHO;
        rustix::termios::tcsetattr(stdin, rustix::termios::OptionalActions::Now, &quiet)
            .context("cannot turn the terminal's echo off")?;
        Ok(EchoOff { saved })
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        let _ = rustix::termios::tcsetattr(
            std::io::stdin(),
            rustix::termios::OptionalActions::Now,
            &self.saved,
        );
    }
}

/// Seconds from an age such as `90d`, `12h`, `30m` or `2w`; `never` is `0`, which the API
/// reads as no expiry.
pub fn parse_age(text: &str) -> anyhow::Result<u64> {
    if text == "never" {
        return Ok(0);
    }
    let (number, unit) = text.split_at(text.len().saturating_sub(1));
    let seconds = match unit {
        "m" => 60,
        "h" => 3600,
        "d" => 24 * 3600,
        "w" => 7 * 24 * 3600,
        _ => bail!("{text:?} is not an age: write a number and m, h, d or w (`90d`), or `never`"),
    };
    let count: u64 = number.parse().ok().filter(|n| *n > 0).with_context(|| {
        format!("{text:?} is not an age: the number must be a whole one above 0")
    })?;
    Ok(count * seconds)
}

pub async fn user(command: UserCommand, globals: &Globals) -> anyhow::Result<ExitCode> {
    let client = client(globals)?;
    let answer = match &command {
        UserCommand::Add {
            name,
            role,
            apps,
            email,
            password_stdin,
        } => {
            let password = password_stdin
                .then(|| read_password("Password"))
                .transpose()?;
            let request = UserRequest {
                name: name.clone(),
                role: role.clone(),
                apps: apps.clone(),
                email: email.clone(),
                password,
            };
            client.call(Method::POST, &["users"], &request).await?
        }
        UserCommand::List => client.get(&["users"], &[], Duration::from_secs(30)).await?,
        UserCommand::Show { name } => {
            client
                .get(&["users", name], &[], Duration::from_secs(30))
                .await?
        }
        UserCommand::SetRole { name, role, apps } => {
            let request = UserUpdateRequest {
                role: Some(role.clone()),
                apps: Some(apps.clone()),
                ..UserUpdateRequest::default()
            };
            client
                .call(Method::PATCH, &["users", name], &request)
                .await?
        }
        UserCommand::SetPassword { name, .. } => {
            let request = UserUpdateRequest {
                password: Some(read_password("New password")?),
                ..UserUpdateRequest::default()
            };
            client
                .call(Method::PATCH, &["users", name], &request)
                .await?
        }
        UserCommand::PasswordLink { name } => {
            client
                .call(
                    Method::POST,
                    &["users", name, "password-link"],
                    &serde_json::json!({}),
                )
                .await?
        }
        UserCommand::Disable { name } | UserCommand::Enable { name } => {
            let request = UserUpdateRequest {
                disabled: Some(matches!(command, UserCommand::Disable { .. })),
                ..UserUpdateRequest::default()
            };
            client
                .call(Method::PATCH, &["users", name], &request)
                .await?
        }
        UserCommand::Delete { name, yes } => {
            crate::confirm::confirm(
                &format!("Delete user {name:?}"),
                &[format!(
                    "{name} and every token of theirs stop working at once"
                )],
                *yes,
            )?;
            client.delete(&["users", name]).await?
        }
    };
    if globals.output.is_data() {
        crate::output::data(globals.output, &answer)?;
        return Ok(ExitCode::SUCCESS);
    }
    match command {
        UserCommand::List => {
            let users: ListResponse<UserView> = decode(answer)?;
            print_users(&users.items, globals.output);
        }
        UserCommand::Delete { name, .. } => outln!("User {name:?} deleted, with their tokens."),
        UserCommand::PasswordLink { name } => {
            let link: reposync_api::PasswordLinkView = decode(answer)?;
            outln!(
                "A one-time link for {name} to set their password, until {}:",
                local_time(&link.expires_at)
            );
            outln!("{}", link.url.expose());
            outln!(
                "Hand it to {name} only; they run `reposync set-password --link URL` (or open it in the web UI)."
            );
        }
        UserCommand::Add { .. } | UserCommand::Show { .. } => {
            let user: UserView = decode(answer)?;
            print_user(&user);
            if !user.has_password {
                outln!(
                    "No password yet: send them a one-time link (`reposync user password-link {0}`), set one (`reposync user set-password {0} --password-stdin`), or give them a token (`reposync token create NAME --user {0}`).",
                    user.name
                );
            }
        }
        UserCommand::SetRole { .. }
        | UserCommand::SetPassword { .. }
        | UserCommand::Disable { .. }
        | UserCommand::Enable { .. } => {
            let user: UserView = decode(answer)?;
            print_user(&user);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `editor in Shop, Bank`, or `editor` when it holds everywhere.
fn rights(role: &str, apps: &[String]) -> String {
    match apps {
        [] => role.to_owned(),
        apps => format!("{role} in {}", apps.join(", ")),
    }
}

fn print_user(user: &UserView) {
    crate::output::fields(&[
        ("User", Some(user.name.clone())),
        ("Role", Some(rights(&user.role, &user.apps))),
        ("E-mail", user.email.clone()),
        (
            "Password",
            Some(if user.has_password { "set" } else { "none" }.to_owned()),
        ),
        ("Disabled", user.disabled.then(|| "yes".to_owned())),
        ("Created", Some(local_time(&user.created_at))),
        (
            "Failed logins",
            user.login_failures.as_ref().map(|f| {
                let blocked = f
                    .blocked_until
                    .as_deref()
                    .map(|until| format!("; refused until {}", local_time(until)))
                    .unwrap_or_default();
                format!(
                    "{} since {}, the last from {}{blocked}",
                    f.failures,
                    local_time(&f.since),
                    f.last_address.as_deref().unwrap_or("an unknown address")
                )
            }),
        ),
    ]);
}

fn print_users(users: &[UserView], format: OutputFormat) {
    let rows: Vec<Vec<String>> = users
        .iter()
        .map(|u| {
            vec![
                u.name.clone(),
                rights(&u.role, &u.apps),
                if u.disabled { "disabled" } else { "enabled" }.to_owned(),
                u.email.clone().unwrap_or_else(|| "-".into()),
                if u.has_password { "set" } else { "none" }.to_owned(),
                local_time(&u.created_at),
            ]
        })
        .collect();
    table_in(
        format,
        &[
            column("NAME"),
            column("ROLE"),
            column("STATE"),
            wide_column("E-MAIL"),
            wide_column("PASSWORD"),
            wide_column("CREATED"),
        ],
        &rows,
    );
}

pub async fn token(command: TokenCommand, globals: &Globals) -> anyhow::Result<ExitCode> {
    let client = client(globals)?;
    let answer = match &command {
        TokenCommand::Create {
            name,
            expires,
            role,
            user,
        } => {
            let request = TokenRequest {
                name: name.clone(),
                expires_in_seconds: expires.as_deref().map(parse_age).transpose()?,
                role: role.clone(),
            };
            let path: Vec<&str> = match user {
                Some(user) => vec!["users", user, "tokens"],
                None => vec!["tokens"],
            };
            client.call(Method::POST, &path, &request).await?
        }
        TokenCommand::List { user } => {
            let path: Vec<&str> = match user {
                Some(user) => vec!["users", user, "tokens"],
                None => vec!["tokens"],
            };
            client.get(&path, &[], Duration::from_secs(30)).await?
        }
        TokenCommand::Revoke { name, user } => {
            let path: Vec<&str> = match user {
                Some(user) => vec!["users", user, "tokens", name],
                None => vec!["tokens", name],
            };
            client.delete(&path).await?
        }
    };
    if globals.output.is_data() {
        crate::output::data(globals.output, &answer)?;
        return Ok(ExitCode::SUCCESS);
    }
    match command {
        TokenCommand::Create { .. } => {
            let token: TokenView = decode(answer)?;
            outln!(
                "Token {:?} of {} created; it expires {}.",
                token.name,
                token.user,
                token
                    .expires_at
                    .as_deref()
                    .map_or_else(|| "never".to_owned(), |at| format!("on {}", local_time(at)))
            );
            if let Some(value) = &token.token {
                outln!("Token (shown once): {}", value.expose());
            }
        }
        TokenCommand::List { .. } => {
            let tokens: ListResponse<TokenView> = decode(answer)?;
            let rows: Vec<Vec<String>> = tokens
                .items
                .iter()
                .map(|t| {
                    vec![
                        t.name.clone(),
                        t.role.clone().unwrap_or_else(|| "(owner's)".into()),
                        local_time_or_dash(t.expires_at.as_deref()),
                        local_time_or_dash(t.last_used_at.as_deref()),
                        local_time(&t.created_at),
                    ]
                })
                .collect();
            table_in(
                globals.output,
                &[
                    column("NAME"),
                    column("ROLE"),
                    column("EXPIRES"),
                    column("LAST USED"),
                    wide_column("CREATED"),
                ],
                &rows,
            );
        }
        TokenCommand::Revoke { name, .. } => {
            outln!("Token {name:?} revoked; its next request is refused.");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `reposync set-password --link URL`'s flags.
#[derive(Debug, Args)]
pub struct SetPasswordArgs {
    /// The one-time link an admin made (`reposync user password-link`); the new password is
    /// read from standard input.
    #[arg(long, value_name = "URL")]
    link: String,
}

/// `reposync set-password --link URL`: sets your password through a one-time link, at the
/// server the link names.
pub async fn set_password(args: SetPasswordArgs) -> anyhow::Result<ExitCode> {
    let Some((page, token)) = args.link.split_once('#') else {
        bail!("--link: give the whole link, with the part after `#`, as the admin sent it");
    };
    let Some(server) = page.strip_suffix("/set-password") else {
        bail!("--link: this is not a reposync password link (it ends with /set-password#…)");
    };
    crate::client_commands::check_server_url(server)?;
    let request = reposync_api::PasswordByLinkRequest {
        token: SecretValue::new(token),
        password: read_password("New password")?,
    };
    reposync_api::Client::new(server, None)?
        .call(Method::POST, &["password"], &request)
        .await
        .context("cannot set the password")?;
    outln!("Password set; log in with `reposync login --server {server} --user NAME`.");
    Ok(ExitCode::SUCCESS)
}

/// `reposync whoami`: who the token in use belongs to, and what it may do.
pub async fn whoami(globals: &Globals) -> anyhow::Result<ExitCode> {
    let answer = client(globals)?
        .get(&["me"], &[], Duration::from_secs(30))
        .await?;
    if globals.output.is_data() {
        crate::output::data(globals.output, &answer)?;
        return Ok(ExitCode::SUCCESS);
    }
    let me: reposync_api::MeView = decode(answer)?;
    crate::output::fields(&[
        ("User", Some(me.user)),
        ("Role", Some(rights(&me.role, &me.apps))),
        ("E-mail", me.email),
        ("Token", Some(me.token)),
    ]);
    Ok(ExitCode::SUCCESS)
}

pub async fn admin(command: AdminCommand, globals: &Globals) -> anyhow::Result<ExitCode> {
    let AdminCommand::Reset(args) = command;
    let mut config = reposync_server::ServerConfig::new(globals.data_dir.clone());
    config.database_url = std::env::var("REPOSYNC_DATABASE_URL")
        .ok()
        .filter(|v| !v.is_empty());
    config.master_key = std::env::var("REPOSYNC_MASTER_KEY")
        .ok()
        .filter(|v| !v.is_empty());
    let reset = reposync_server::reset_admin(&config, &args.user)
        .await
        .context("cannot reset the admin token")?;
    outln!(
        "Issued a new token for admin {:?}; every token they had is revoked.",
        args.user
    );
    outln!("Token (shown once): {}", reset.token.expose());
    if let Some(file) = &reset.token_file {
        outln!(
            "It is also in {}, which the local CLI reads.",
            file.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::parse_age;

    #[test]
    fn ages_read_as_seconds_and_never_as_zero() {
        assert_eq!(parse_age("90d").unwrap(), 90 * 86_400);
        assert_eq!(parse_age("12h").unwrap(), 43_200);
        assert_eq!(parse_age("2w").unwrap(), 14 * 86_400);
        assert_eq!(parse_age("never").unwrap(), 0);
        for bad in ["", "d", "0d", "90", "1y", "-1d"] {
            assert!(parse_age(bad).is_err(), "{bad:?}");
        }
    }
}
