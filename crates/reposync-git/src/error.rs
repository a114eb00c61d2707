use std::fmt;

/// What went wrong talking to a remote, as far as git's and ssh's messages tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GitErrorKind {
    /// DNS failed, the connection was refused or timed out at the network level.
    HostUnreachable,
    /// The HTTPS server's certificate is not trusted.
    TlsUntrusted,
    /// SSH: no trusted host key for this server.
    HostKeyUnknown,
    /// SSH: the server's host key differs from the trusted one.
    HostKeyMismatch,
    /// The credentials were refused.
    AuthFailed,
    /// The server answered, but there is no such repository (or no access to it).
    RepoNotFound,
    /// The operation ran past its time limit and was killed.
    Timeout,
    /// git is missing or too old.
    GitUnavailable,
    /// Anything else; the message carries git's own words.
    Other,
}

impl GitErrorKind {
    /// A stable snake_case code for the wire and for logs.
    pub fn code(self) -> &'static str {
        match self {
            GitErrorKind::HostUnreachable => "host_unreachable",
            GitErrorKind::TlsUntrusted => "tls_untrusted",
            GitErrorKind::HostKeyUnknown => "host_key_unknown",
            GitErrorKind::HostKeyMismatch => "host_key_mismatch",
            GitErrorKind::AuthFailed => "auth_failed",
            GitErrorKind::RepoNotFound => "repo_not_found",
            GitErrorKind::Timeout => "timeout",
            GitErrorKind::GitUnavailable => "git_unavailable",
            GitErrorKind::Other => "git_failed",
        }
    }
}

/// A failed git operation: its kind, a message that helps, and the tail of git's own output,
/// scrubbed of every secret value the operation held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitError {
    pub kind: GitErrorKind,
    pub message: String,
    pub detail: String,
}

impl fmt::Display for GitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.message)?;
        if !self.detail.is_empty() {
            write!(f, " (git said: {})", self.detail)?;
        }
        Ok(())
    }
}

impl std::error::Error for GitError {}

impl GitError {
    pub(crate) fn new(
        kind: GitErrorKind,
        message: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            kind,
            message: message.into(),
            detail: detail.into(),
        }
    }

    /// Classifies a failed operation from git's standard error, which is in English because the
    /// child runs with `LC_ALL=C`.
    pub(crate) fn classify(stderr: &str, url: &str) -> GitError {
        let lower = stderr.to_ascii_lowercase();
        let detail = last_meaningful_lines(stderr);
        let has = |needles: &[&str]| needles.iter().any(|n| lower.contains(n));
        let (kind, message) = if has(&[
            "remote host identification has changed",
            "host key for",
            "key mismatch",
        ]) && has(&["changed", "mismatch"])
        {
            (
                GitErrorKind::HostKeyMismatch,
                format!(
                    "the SSH host key of {url} differs from the trusted one: either the server was re-keyed or someone is intercepting the connection; check the key with the server's administrator, then update the connector's known hosts"
                ),
            )
        } else if has(&["host key is known", "host key verification failed"]) {
            (
                GitErrorKind::HostKeyUnknown,
                format!(
                    "no trusted SSH host key for {url}; add the server's key to the connector with --known-hosts-file (for example from `ssh-keyscan`), after checking its fingerprint"
                ),
            )
        } else if has(&["operation too slow"]) {
            (
                GitErrorKind::Timeout,
                format!(
                    "the transfer from {url} stalled (less than 1 kB/s); the server or the network is overloaded"
                ),
            )
        } else if has(&[
            "ssl certificate problem",
            "server certificate verification failed",
            "certificate verify failed",
            "unable to get local issuer certificate",
            "self-signed certificate",
            "self signed certificate",
            "no alternative certificate subject name",
            "certificate subject name",
            "does not match target host name",
            "certificate has expired",
        ]) {
            (
                GitErrorKind::TlsUntrusted,
                format!(
                    "the HTTPS certificate of {url} is not trusted; if the server uses a private CA, give its certificate with --ca-file"
                ),
            )
        } else if has(&[
            "could not resolve host",
            "could not resolve hostname",
            "connection refused",
            "failed to connect",
            "connection timed out",
            "no route to host",
            "network is unreachable",
            "name or service not known",
            "couldn't connect to server",
            "operation timed out",
            "connection reset",
        ]) {
            (
                GitErrorKind::HostUnreachable,
                format!(
                    "cannot reach the server of {url}; check the host, the port and the network between the delegate and the server"
                ),
            )
        } else if has(&[
            "authentication failed",
            "permission denied",
            "could not read username",
            "could not read password",
            "terminal prompts disabled",
            "http basic: access denied",
            "the requested url returned error: 401",
            "the requested url returned error: 403",
            "invalid credentials",
            "access denied",
            "not authorized",
        ]) {
            (
                GitErrorKind::AuthFailed,
                format!(
                    "the server refused the credentials for {url}; check the username and the token or SSH key (and that the key is added to the account or repository)"
                ),
            )
        } else if has(&[
            "repository not found",
            "does not appear to be a git repository",
            "not found",
            "the requested url returned error: 404",
            "no such file or directory",
            "not a git repository",
            "does not exist",
        ]) {
            (
                GitErrorKind::RepoNotFound,
                format!("no repository at {url}, or the credentials cannot see it"),
            )
        } else {
            (GitErrorKind::Other, format!("git failed for {url}"))
        };
        GitError::new(kind, message, detail)
    }
}

/// The last few non-empty lines of git's output, which carry the reason; progress lines and
/// hints before them do not help.
fn last_meaningful_lines(stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("hint:") && !l.starts_with("@@@"))
        .collect();
    let start = lines.len().saturating_sub(3);
    let mut joined = lines[start..].join(" / ");
    if joined.len() > 600 {
        let mut cut = 600;
        while !joined.is_char_boundary(cut) {
            cut -= 1;
        }
        joined.truncate(cut);
        joined.push('…');
    }
    joined
}

/// Replaces every occurrence of each secret (and of each of its lines, for multi-line keys) in
/// `text`.
pub(crate) fn scrub(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_owned();
    for secret in secrets {
        let pieces = std::iter::once(*secret).chain(secret.lines());
        for piece in pieces {
            let piece = piece.trim();
            // Short fragments (PEM armour lines, one-character passwords) would scrub ordinary
            // words; such passwords cannot be hidden by text replacement anyway.
            if piece.len() >= 6 && !piece.starts_with("-----") {
                out = out.replace(piece, "[redacted]");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(stderr: &str) -> GitErrorKind {
        GitError::classify(stderr, "u").kind
    }

    #[test]
    fn classifies_real_git_and_ssh_messages() {
        assert_eq!(
            kind("fatal: unable to access 'https://x/': Could not resolve host: x"),
            GitErrorKind::HostUnreachable
        );
        assert_eq!(
            kind(
                "ssh: connect to host 127.0.0.1 port 1: Connection refused\r\nfatal: Could not read from remote repository."
            ),
            GitErrorKind::HostUnreachable
        );
        assert_eq!(
            kind(
                "fatal: unable to access 'https://127.0.0.1:1/r/': server certificate verification failed. CAfile: none CRLfile: none"
            ),
            GitErrorKind::TlsUntrusted
        );
        assert_eq!(
            kind(
                "fatal: unable to access 'https://h/': SSL certificate problem: unable to get local issuer certificate"
            ),
            GitErrorKind::TlsUntrusted
        );
        assert_eq!(
            kind(
                "No ED25519 host key is known for [127.0.0.1]:2222 and you have requested strict checking.\r\nHost key verification failed.\r\nfatal: Could not read from remote repository."
            ),
            GitErrorKind::HostKeyUnknown
        );
        assert_eq!(
            kind(
                "@@@@@@@@\r\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\r\nHost key verification failed."
            ),
            GitErrorKind::HostKeyMismatch
        );
        assert_eq!(
            kind(
                "remote: Invalid username or password.\nfatal: Authentication failed for 'https://h/r/'"
            ),
            GitErrorKind::AuthFailed
        );
        assert_eq!(
            kind(
                "git@127.0.0.1: Permission denied (publickey).\r\nfatal: Could not read from remote repository."
            ),
            GitErrorKind::AuthFailed
        );
        assert_eq!(
            kind("fatal: repository 'https://h/missing.git/' not found"),
            GitErrorKind::RepoNotFound
        );
        assert_eq!(
            kind("fatal: '/srv/missing.git' does not appear to be a git repository"),
            GitErrorKind::RepoNotFound
        );
        assert_eq!(
            kind(
                "fatal: unable to access 'https://h/': SSL: no alternative certificate subject name matches target host name 'h'"
            ),
            GitErrorKind::TlsUntrusted
        );
        assert_eq!(
            kind(
                "error: RPC failed; curl 28 Operation too slow. Less than 1000 bytes/sec transferred the last 30 seconds"
            ),
            GitErrorKind::Timeout
        );
        assert_eq!(kind("fatal: something odd"), GitErrorKind::Other);
    }

    #[test]
    fn scrub_removes_whole_secrets_and_key_lines() {
        let key = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----";
        let out = scrub(
            "token=hunter22 and b3BlbnNzaC1rZXktdjEAAAAA",
            &["hunter22", key],
        );
        assert_eq!(out, "token=[redacted] and [redacted]");
    }
}
