//! `reposync login` and `logout`: the CLI remembers a server and its API token in a file of
//! the user's own (mode 0600) under the user's configuration directory, so that it works from
//! any directory.

use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use crate::Globals;

/// What `login` saved.
#[derive(Clone, Serialize, Deserialize)]
pub struct SavedLogin {
    pub server: String,
    pub token: String,
}

impl std::fmt::Debug for SavedLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SavedLogin")
            .field("server", &self.server)
            .field("token", &"<redacted>")
            .finish()
    }
}

/// Where the login is kept: `$XDG_CONFIG_HOME/reposync/login.json`, else
/// `$HOME/.config/reposync/login.json`.
pub fn login_file() -> Option<PathBuf> {
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(|home| PathBuf::from(home).join(".config"))
        })?;
    Some(config.join("reposync").join("login.json"))
}

/// The saved login, if there is one that reads.
pub fn saved_login() -> Option<SavedLogin> {
    let text = std::fs::read_to_string(login_file()?).ok()?;
    serde_json::from_str(&text).ok()
}

/// `reposync login`'s flags.
#[derive(Debug, clap::Args)]
pub struct LoginArgs {
    /// Log in as this user with their password (read from standard input, without echo at a
    /// terminal), which makes a new personal token; without it, the API token itself is read
    /// from standard input.
    #[arg(long, value_name = "NAME")]
    user: Option<String>,
}

/// `reposync login --server URL [--user NAME]`: reads the API token (or the user's password,
/// exchanged for a new token) from standard input, checks it against the server, and saves
/// the server and token.
pub async fn login(args: LoginArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let token = match &args.user {
        Some(user) => password_login(user, globals).await?,
        None => {
            let mut token = String::new();
            std::io::stdin()
                .read_line(&mut token)
                .context("cannot read the API token from standard input")?;
            let token = token.trim().to_owned();
            if token.is_empty() {
                bail!(
                    "give the API token on standard input: `reposync login --server URL < token-file`, or log in with a password: `reposync login --server URL --user NAME`"
                );
            }
            token
        }
    };
    let checking = Globals {
        token: Some(token.clone()),
        ..globals.clone()
    };
    crate::client_commands::client(&checking)?
        .get(&["version"], &[], std::time::Duration::from_secs(30))
        .await
        .context("the server did not accept the token; nothing was saved")?;
    let path = login_file().context("no configuration directory: set HOME or XDG_CONFIG_HOME")?;
    let folder = path.parent().unwrap_or(&path);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(folder)
        .with_context(|| format!("cannot create {}", folder.display()))?;
    let saved = SavedLogin {
        server: globals.server.clone(),
        token,
    };
    // Written whole beside its place, then renamed: a crash leaves the old login or the new.
    let staged = path.with_extension("json.new");
    let _ = std::fs::remove_file(&staged);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&staged)
        .with_context(|| format!("cannot write {}", staged.display()))?;
    file.write_all(serde_json::to_string(&saved)?.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&staged, &path).with_context(|| format!("cannot write {}", path.display()))?;
    outln!("Logged in to {}; saved in {}", saved.server, path.display());
    Ok(ExitCode::SUCCESS)
}

/// Exchanges a user's password for a new personal token named after this machine.
async fn password_login(user: &str, globals: &Globals) -> anyhow::Result<String> {
    let password = crate::user_commands::read_password("Password")?;
    crate::client_commands::check_server_url(&globals.server)?;
    let client = reposync_api::Client::new(&globals.server, None)?;
    // Named after the machine and the moment, so that `token list` tells logins apart.
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let host: String = host.trim().chars().take(32).collect();
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let request = reposync_api::LoginRequest {
        user: user.to_owned(),
        password,
        token_name: Some(format!("cli-{host}-{seconds}")),
        expires_in_seconds: None,
    };
    let answer = client
        .call(reqwest::Method::POST, &["login"], &request)
        .await
        .context("cannot log in")?;
    let token: reposync_api::TokenView = reposync_api::decode(answer)?;
    let value = token
        .token
        .context("the server made a token but did not show it; log in again")?;
    Ok(value.expose().to_owned())
}

/// `reposync logout`: forgets the saved login.
pub fn logout() -> anyhow::Result<ExitCode> {
    let path = login_file().context("no configuration directory: set HOME or XDG_CONFIG_HOME")?;
    match std::fs::remove_file(&path) {
        Ok(()) => outln!("Logged out; removed {}", path.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => outln!("Not logged in"),
        Err(e) => return Err(e).with_context(|| format!("cannot remove {}", path.display())),
    }
    Ok(ExitCode::SUCCESS)
}
