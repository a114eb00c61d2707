use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};

/// How to authenticate to a remote, with the secret values already decrypted.
pub enum GitAuth {
    /// HTTPS Basic auth. `ca_pem` replaces the system's trusted roots when set.
    Https {
        username: String,
        password: SecretString,
        ca_pem: Option<String>,
    },
    /// SSH as user `git`. `private_key` is an unencrypted OpenSSH-format key;
    /// `known_hosts` the only host keys trusted.
    Ssh {
        private_key: SecretString,
        known_hosts: Option<String>,
    },
}

impl fmt::Debug for GitAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GitAuth::Https {
                username, ca_pem, ..
            } => f
                .debug_struct("Https")
                .field("username", username)
                .field("password", &"<redacted>")
                .field("ca_pem", &ca_pem.is_some())
                .finish(),
            GitAuth::Ssh { known_hosts, .. } => f
                .debug_struct("Ssh")
                .field("private_key", &"<redacted>")
                .field("known_hosts", &known_hosts.is_some())
                .finish(),
        }
    }
}

/// A repository to talk to: the URL given to git (never holding credentials) and how to log in.
#[derive(Debug)]
pub struct Remote {
    pub url: String,
    pub auth: GitAuth,
}

/// Names of the variables through which the credential helper receives HTTPS credentials.
pub(crate) const USERNAME_VAR: &str = "REPOSYNC_GIT_USERNAME";
pub(crate) const PASSWORD_VAR: &str = "REPOSYNC_GIT_PASSWORD";

/// A git credential helper that answers `get` from the child's environment. It is passed as
/// configuration, so it holds variable names, never values.
const CREDENTIAL_HELPER: &str = "!f() { test \"$1\" = get || exit 0; printf 'username=%s\\npassword=%s\\n' \"$REPOSYNC_GIT_USERNAME\" \"$REPOSYNC_GIT_PASSWORD\"; }; f";

/// What an operation's child needs on disk and in its environment to authenticate. Files live
/// in the operation's private directory and disappear with it.
pub(crate) struct PreparedAuth {
    pub config: Vec<(String, String)>,
    pub env: Vec<(String, SecretOrPlain)>,
}

/// An environment value, kept secret-typed so that debug output of the command never shows it.
pub(crate) enum SecretOrPlain {
    Plain(String),
    Secret(SecretString),
}

impl SecretOrPlain {
    pub fn expose(&self) -> &str {
        match self {
            SecretOrPlain::Plain(s) => s,
            SecretOrPlain::Secret(s) => s.expose_secret(),
        }
    }
}

impl GitAuth {
    pub(crate) fn prepare(
        &self,
        url: &str,
        dir: &Path,
        connect_timeout_secs: u64,
    ) -> std::io::Result<PreparedAuth> {
        match self {
            GitAuth::Https {
                username,
                password,
                ca_pem,
            } => {
                let mut config = vec![
                    // An empty value first clears any helper a config file might add.
                    ("credential.helper".to_owned(), String::new()),
                    // Scoped to the remote's origin: if the server redirects elsewhere, git asks
                    // for that host's credentials, finds no helper, and fails instead of
                    // handing our token to a stranger.
                    (
                        format!("credential.{}.helper", origin(url)),
                        CREDENTIAL_HELPER.to_owned(),
                    ),
                ];
                if let Some(pem) = ca_pem {
                    let path = write_private_file(dir, "ca.pem", pem.as_bytes())?;
                    config.push(("http.sslCAInfo".to_owned(), path_str(&path)));
                }
                Ok(PreparedAuth {
                    config,
                    env: vec![
                        (
                            USERNAME_VAR.to_owned(),
                            SecretOrPlain::Plain(username.clone()),
                        ),
                        (
                            PASSWORD_VAR.to_owned(),
                            SecretOrPlain::Secret(password.clone()),
                        ),
                    ],
                })
            }
            GitAuth::Ssh {
                private_key,
                known_hosts,
            } => {
                let mut key = private_key.expose_secret().to_owned();
                // OpenSSH refuses a key file without a final newline ("invalid format").
                if !key.ends_with('\n') {
                    key.push('\n');
                }
                let key_path = write_private_file(dir, "id", key.as_bytes())?;
                let known_hosts_path = write_private_file(
                    dir,
                    "known_hosts",
                    known_hosts.as_deref().unwrap_or("").as_bytes(),
                )?;
                let command = format!(
                    "ssh -F /dev/null -i {key} -o IdentitiesOnly=yes -o IdentityAgent=none \
                     -o UserKnownHostsFile={kh} -o GlobalKnownHostsFile=/dev/null \
                     -o StrictHostKeyChecking=yes -o BatchMode=yes -o PasswordAuthentication=no \
                     -o KbdInteractiveAuthentication=no -o ConnectTimeout={connect_timeout_secs} \
                     -o ServerAliveInterval=15 -o ServerAliveCountMax=2",
                    key = shell_quote(&path_str(&key_path)),
                    kh = shell_quote(&path_str(&known_hosts_path)),
                );
                Ok(PreparedAuth {
                    config: vec![],
                    env: vec![
                        ("GIT_SSH_COMMAND".to_owned(), SecretOrPlain::Plain(command)),
                        (
                            "GIT_SSH_VARIANT".to_owned(),
                            SecretOrPlain::Plain("ssh".to_owned()),
                        ),
                    ],
                })
            }
        }
    }

    /// The secret values, so that anything echoed back by git can be scrubbed of them.
    pub(crate) fn secret_values(&self) -> Vec<&str> {
        match self {
            GitAuth::Https { password, .. } => vec![password.expose_secret()],
            GitAuth::Ssh { private_key, .. } => vec![private_key.expose_secret()],
        }
    }
}

/// `scheme://host[:port]` of a URL: the part git matches `credential.<url>.*` keys against.
fn origin(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url[after_scheme..].find('/') {
        Some(slash) => &url[..after_scheme + slash],
        None => url,
    }
}

fn write_private_file(dir: &Path, name: &str, contents: &[u8]) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(name);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    file.write_all(contents)?;
    file.sync_all()?;
    Ok(path)
}

fn path_str(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// Quotes a word for the POSIX shell that git runs `GIT_SSH_COMMAND` through.
fn shell_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_secrets() {
        let https = GitAuth::Https {
            username: "jdoe".into(),
            password: SecretString::from("s3cr3t-token"),
            ca_pem: None,
        };
        let ssh = GitAuth::Ssh {
            private_key: SecretString::from("PRIVATE-KEY-BYTES"),
            known_hosts: None,
        };
        assert!(!format!("{https:?}").contains("s3cr3t"));
        assert!(!format!("{ssh:?}").contains("PRIVATE-KEY"));
    }

    #[test]
    fn ssh_files_are_private_and_the_command_names_no_secret() {
        let dir = tempfile::tempdir().expect("tempdir");
        let auth = GitAuth::Ssh {
            private_key: SecretString::from("PRIVATE-KEY-CANARY"),
            known_hosts: Some("h ssh-ed25519 AAAA".into()),
        };
        let prepared = auth
            .prepare("ssh://git@h/r.git", dir.path(), 5)
            .expect("prepare");
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(dir.path().join("id"))
            .expect("key file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let command = prepared
            .env
            .iter()
            .find(|(k, _)| k == "GIT_SSH_COMMAND")
            .expect("ssh command");
        assert!(!command.1.expose().contains("PRIVATE-KEY-CANARY"));
        assert!(command.1.expose().contains("StrictHostKeyChecking=yes"));
    }

    #[test]
    fn the_credential_helper_is_scoped_to_the_remote_origin() {
        assert_eq!(
            origin("https://bb.example:8443/scm/p/r.git"),
            "https://bb.example:8443"
        );
        assert_eq!(origin("https://bitbucket.org"), "https://bitbucket.org");
    }

    #[test]
    fn shell_quote_survives_quotes() {
        assert_eq!(shell_quote("/tmp/a'b"), "'/tmp/a'\\''b'");
    }
}
