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
    /// OpenSSH's client is missing, so SSH remotes cannot be reached from this machine.
    /// Another delegate may have it: retrying elsewhere can help.
    SshUnavailable,
    /// The server refused a push for good: a protected branch, a hook that declined it, or
    /// credentials that may read but not write. Retrying the same push will not help.
    PushRejected,
    /// A push was still rejected because the branch had moved on the server (not a fast
    /// forward) after every attempt allowed.
    PushRaced,
    /// The request itself cannot be carried out (a bad branch name, path or author, a clone
    /// directory reposync did not make); retrying it unchanged will fail the same way.
    InvalidRequest,
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
            GitErrorKind::SshUnavailable => "ssh_unavailable",
            GitErrorKind::PushRejected => "push_rejected",
            GitErrorKind::PushRaced => "push_raced",
            GitErrorKind::InvalidRequest => "invalid_request",
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
        // git runs ssh through `sh -c` (GIT_SSH_COMMAND): a missing ssh reads "ssh: not
        // found", which must not be mistaken for a missing repository below.
        let (kind, message) = if has(&[
            "ssh: not found",
            "ssh: command not found",
            "cannot run ssh",
        ]) {
            (
                GitErrorKind::SshUnavailable,
                format!(
                    "OpenSSH's client (ssh) is not installed on this delegate, so it cannot reach {url}; install it, or run SSH connectors on a delegate that has it"
                ),
            )
        } else if has(&[
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
            // Unclassified: git's own words are the only explanation there is, so they go
            // into the message itself, which is what sync errors and logs show.
            (
                GitErrorKind::Other,
                format!("git failed for {url}: {}", first_error_line(stderr)),
            )
        };
        GitError::new(kind, message, detail)
    }
}

impl GitError {
    /// A failed command on a local repository. Its words are not matched against the remote
    /// failures above: "does not exist" there is about an object or a path, not a repository.
    pub(crate) fn local(stderr: &str, subcommand: &str, place: &str) -> GitError {
        GitError::new(
            GitErrorKind::Other,
            format!(
                "`git {subcommand}` failed in {place}: {}",
                first_error_line(stderr)
            ),
            last_meaningful_lines(stderr),
        )
    }

    /// Classifies a failed `git push`: a branch that moved under us ([`GitErrorKind::PushRaced`],
    /// worth fetching and trying again), a refusal that will not change
    /// ([`GitErrorKind::PushRejected`]), or any failure an ordinary fetch could also have.
    pub(crate) fn classify_push(stderr: &str, url: &str) -> GitError {
        let lower = stderr.to_ascii_lowercase();
        let has = |needles: &[&str]| needles.iter().any(|n| lower.contains(n));
        // The ref update itself is refused by the client (it saw a newer head) or by the
        // server (the ref moved between its advertisement and its update, e.g. another push).
        let moved = (has(&["[rejected]"])
            && has(&["(non-fast-forward)", "(fetch first)", "(stale info)"]))
            || has(&[
                "cannot lock ref",
                "failed to update ref",
                "incorrect old value provided",
            ]);
        if moved {
            return GitError::new(
                GitErrorKind::PushRaced,
                format!("the branch on {url} moved while we were pushing"),
                push_detail(stderr),
            );
        }
        let base = GitError::classify(stderr, url);
        let network_or_trust = matches!(
            base.kind,
            GitErrorKind::HostUnreachable
                | GitErrorKind::TlsUntrusted
                | GitErrorKind::HostKeyUnknown
                | GitErrorKind::HostKeyMismatch
                | GitErrorKind::Timeout
        );
        // Wrong credentials are not a refusal to write: the caller should fix the token or key.
        let credentials_refused = has(&[
            "authentication failed",
            "permission denied (publickey",
            "returned error: 401",
            "could not read username",
            "could not read password",
            "terminal prompts disabled",
            "invalid username or password",
            "invalid credentials",
        ]);
        let refused = has(&[
            "[remote rejected]",
            "hook declined",
            "protected branch",
            "returned error: 403",
            "denied",
            "read-only",
            "read only",
            "not allowed to push",
            "write access",
        ]);
        if refused && !network_or_trust && !credentials_refused {
            return GitError::new(
                GitErrorKind::PushRejected,
                format!(
                    "{url} refused the push: the branch is protected, a server hook declined it, or the credentials may read but not write; retrying will not help"
                ),
                push_detail(stderr),
            );
        }
        base
    }
}

/// The server's own explanation of a refused push (its `remote:` lines, where hooks and
/// branch protection speak) and git's verdict on the ref, rather than the generic last lines.
fn push_detail(stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| {
            let from_server = l
                .strip_prefix("remote:")
                .is_some_and(|rest| !rest.trim().is_empty());
            from_server || l.contains("rejected]") || l.starts_with("fatal:")
        })
        .collect();
    if lines.is_empty() {
        return last_meaningful_lines(stderr);
    }
    let start = lines.len().saturating_sub(6);
    truncate_detail(lines[start..].join(" / "))
}

/// The line of git's (already scrubbed) output that says what went wrong: the first `fatal:`
/// or `error:` line, its own or the server's, or else the first line that is not a hint or
/// the name of the remote; capped at 300 bytes.
fn first_error_line(stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("hint:") && !l.starts_with("@@@"))
        .collect();
    let is_error = |line: &str| {
        let line = line.strip_prefix("remote:").map_or(line, str::trim_start);
        line.starts_with("fatal:") || line.starts_with("error:")
    };
    let is_context = |line: &str| line.starts_with("To ") || line.starts_with("From ");
    let line = lines
        .iter()
        .find(|l| is_error(l))
        .or_else(|| lines.iter().find(|l| !is_context(l)))
        .copied()
        .unwrap_or("git printed no reason");
    let mut line = line.to_owned();
    if line.len() > 300 {
        let mut cut = 300;
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        line.truncate(cut);
        line.push('…');
    }
    line
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
    truncate_detail(lines[start..].join(" / "))
}

/// Caps a detail at 600 bytes, on a character boundary.
fn truncate_detail(mut joined: String) -> String {
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
    fn a_missing_ssh_is_not_a_missing_repository() {
        for stderr in [
            "sh: 1: ssh: not found\nfatal: Could not read from remote repository.\n\nPlease make sure you have the correct access rights\nand the repository exists.",
            "error: cannot run ssh: No such file or directory\nfatal: unable to fork",
            "bash: line 1: ssh: command not found",
        ] {
            assert_eq!(kind(stderr), GitErrorKind::SshUnavailable, "{stderr}");
        }
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
    fn an_unclassified_failure_says_what_git_said_in_its_message() {
        let error = GitError::classify(
            "To https://h/r.git\nerror: RPC failed; HTTP 500 curl 22 The requested URL returned error: 500\nsend-pack: unexpected disconnect while reading sideband packet\nfatal: the remote end hung up unexpectedly\n",
            "https://h/r.git",
        );
        assert_eq!(error.kind, GitErrorKind::Other);
        assert_eq!(
            error.message,
            "git failed for https://h/r.git: error: RPC failed; HTTP 500 curl 22 The requested URL returned error: 500"
        );
        let lock = GitError::local(
            "fatal: Unable to create '/c/.git/shallow.lock': File exists.\n\nAnother git process seems to be running in this repository\n",
            "fetch",
            "the local clone /c",
        );
        assert_eq!(
            lock.message,
            "`git fetch` failed in the local clone /c: fatal: Unable to create '/c/.git/shallow.lock': File exists."
        );
        assert_eq!(
            GitError::classify("remote: something broke\n", "u").message,
            "git failed for u: remote: something broke"
        );
        assert_eq!(
            GitError::classify("", "u").message,
            "git failed for u: git printed no reason"
        );
        let long = format!("fatal: {}", "é".repeat(400));
        let message = GitError::classify(&long, "u").message;
        assert!(message.len() < 330 && message.ends_with('…'), "{message}");
    }

    fn push_kind(stderr: &str) -> GitErrorKind {
        GitError::classify_push(stderr, "u").kind
    }

    #[test]
    fn classifies_pushes_refused_because_the_branch_moved() {
        assert_eq!(
            push_kind(
                "To https://h/r.git\n ! [rejected]        abc -> main (fetch first)\nerror: failed to push some refs to 'https://h/r.git'\nhint: Updates were rejected because the remote contains work that you do not\n"
            ),
            GitErrorKind::PushRaced
        );
        assert_eq!(
            push_kind(
                " ! [rejected]        abc -> main (non-fast-forward)\nerror: failed to push some refs"
            ),
            GitErrorKind::PushRaced
        );
        // Another push got in between the server's advertisement and its ref update.
        assert_eq!(
            push_kind(
                "remote: error: cannot lock ref 'refs/heads/main': is at fa8d but expected 1603\nTo ../srv.git\n ! [remote rejected] abc -> main (failed to update ref)\nerror: failed to push some refs"
            ),
            GitErrorKind::PushRaced
        );
    }

    #[test]
    fn classifies_permanent_push_refusals() {
        let hook = "remote: protected branch: pushes to main need a pull request\nTo https://h/r.git\n ! [remote rejected] abc -> main (pre-receive hook declined)\nerror: failed to push some refs to 'https://h/r.git'";
        let error = GitError::classify_push(hook, "https://h/r.git");
        assert_eq!(error.kind, GitErrorKind::PushRejected);
        assert!(
            error.detail.contains("need a pull request"),
            "{}",
            error.detail
        );
        assert_eq!(
            push_kind(
                "remote: error: GH006: Protected branch update failed for refs/heads/main.\n ! [remote rejected] main -> main (protected branch hook declined)"
            ),
            GitErrorKind::PushRejected
        );
        assert_eq!(
            push_kind(
                "remote: Permission to acme/config.git denied to jdoe.\nfatal: unable to access 'https://h/acme/config.git/': The requested URL returned error: 403"
            ),
            GitErrorKind::PushRejected
        );
        assert_eq!(
            push_kind(
                "repository access denied. access via a deployment key is read-only.\nfatal: Could not read from remote repository."
            ),
            GitErrorKind::PushRejected
        );
    }

    #[test]
    fn push_failures_of_credentials_or_network_keep_their_kind() {
        assert_eq!(
            push_kind(
                "remote: HTTP Basic: Access denied\nfatal: Authentication failed for 'https://h/r.git/'"
            ),
            GitErrorKind::AuthFailed
        );
        assert_eq!(
            push_kind(
                "git@h: Permission denied (publickey).\nfatal: Could not read from remote repository."
            ),
            GitErrorKind::AuthFailed
        );
        assert_eq!(
            push_kind("fatal: unable to access 'https://h/': Could not resolve host: h"),
            GitErrorKind::HostUnreachable
        );
        assert_eq!(push_kind("fatal: something odd"), GitErrorKind::Other);
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
