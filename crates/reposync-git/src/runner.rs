use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use reposync_model::{BranchName, ObjectId};
use tokio::io::AsyncWriteExt as _;
use tokio::process::Command;

use crate::auth::{GitAuth, Remote};
use crate::error::{GitError, GitErrorKind, scrub};
use crate::temp::TempRoot;

/// The oldest git reposync supports: 2.29 brought `git fetch --stdin` and
/// `--no-write-fetch-head`, with which the local clone fetches many missing file contents in
/// one request without touching `FETCH_HEAD`.
pub const MIN_GIT_VERSION: GitVersion = GitVersion {
    major: 2,
    minor: 29,
    patch: 0,
};

/// A git version, as printed by `git --version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct GitVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl std::fmt::Display for GitVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl GitVersion {
    /// Parses `git version 2.47.3` (and vendor suffixes such as `(Apple Git-146)` or `.windows.1`).
    pub fn parse(output: &str) -> Option<GitVersion> {
        let rest = output.trim().strip_prefix("git version ")?;
        let mut numbers = rest
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty());
        let major = numbers.next()?.parse().ok()?;
        let minor = numbers.next()?.parse().ok()?;
        let patch = numbers.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        Some(GitVersion {
            major,
            minor,
            patch,
        })
    }
}

/// One ref advertised by a remote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteRef {
    /// The full ref name (`refs/heads/main`).
    pub name: String,
    /// The commit (or tag object) id.
    pub commit: ObjectId,
}

/// Configuration every git command gets, whatever the repository's own config says (the
/// environment's configuration outranks a repository's), so that it holds for clones made by
/// older versions too. Nothing git starts may outlive the operation or run behind its back:
/// a detached `git maintenance` or `git gc` would hold locks that the next operation takes
/// for a crash, and would escape the process-group kill that ends a timed-out or cancelled
/// operation. [`crate::LocalClone`] compacts its repository itself, in the foreground.
const NO_BACKGROUND_WORK: &[(&str, &str)] = &[
    ("gc.auto", "0"),
    ("gc.autoDetach", "false"),
    ("gc.writeCommitGraph", "false"),
    ("maintenance.auto", "false"),
    ("maintenance.autoDetach", "false"),
    ("fetch.writeCommitGraph", "false"),
    ("fetch.recurseSubmodules", "false"),
    ("submodule.recurse", "false"),
    // The file-system monitor is a daemon that outlives the command that starts it.
    ("core.fsmonitor", "false"),
    // No hook of any repository runs: a clone has none, and none must be slipped in.
    ("core.hooksPath", "/dev/null"),
];

/// Runs git with a fixed, isolated environment and a timeout.
#[derive(Debug, Clone)]
pub struct GitRunner {
    git: PathBuf,
    search_path: OsString,
    timeout: Duration,
    /// Where each operation's private directory is made; the system's temporary directory
    /// when `None`, which only library tests should rely on.
    temp_root: Option<TempRoot>,
}

impl GitRunner {
    /// A runner for the git found on `PATH`, with a 60-second limit per operation.
    pub fn new() -> GitRunner {
        GitRunner::with_program("git")
    }

    /// A runner for a specific git binary.
    pub fn with_program(git: impl Into<PathBuf>) -> GitRunner {
        // PATH is the one variable inherited: git needs it to find ssh, and it tells the
        // operator's choice of binaries rather than changing git's behaviour.
        let search_path =
            std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
        GitRunner {
            git: git.into(),
            search_path,
            timeout: Duration::from_secs(60),
            temp_root: None,
        }
    }

    /// Makes every operation's private directory (its `HOME`, key and CA files, scratch
    /// files) inside `root`, which the process has prepared (wiped and locked) at start, so
    /// that nothing an operation leaves behind when the process is killed survives the next
    /// start.
    pub fn temp_root(mut self, root: TempRoot) -> GitRunner {
        self.temp_root = Some(root);
        self
    }

    /// The temporary root this runner's operations keep their files in, if one was set: the
    /// place for any other per-operation file of the process (a fetch's archive), so that it
    /// too is wiped at the next start.
    pub fn temp_dir(&self) -> Option<&Path> {
        self.temp_root.as_ref().map(TempRoot::path)
    }

    /// A fresh private (0700) directory for one operation, removed when dropped: inside the
    /// temporary root when one is set, never silently elsewhere.
    pub(crate) fn private_dir(&self, prefix: &str) -> Result<tempfile::TempDir, GitError> {
        use std::os::unix::fs::PermissionsExt as _;
        let mut builder = tempfile::Builder::new();
        builder
            .prefix(prefix)
            .permissions(std::fs::Permissions::from_mode(0o700));
        let made = match &self.temp_root {
            Some(root) => builder.tempdir_in(root.path()),
            None => builder.tempdir(),
        };
        made.map_err(|e| {
            let place = self
                .temp_root
                .as_ref()
                .map(|root| format!(" in {}", root.path().display()))
                .unwrap_or_default();
            GitError::new(
                GitErrorKind::Other,
                format!("cannot create a private temporary directory{place}: {e}"),
                "",
            )
        })
    }

    /// Sets the directories searched for git, ssh and the helpers git starts (the `PATH` the
    /// children get); by default this process's `PATH`.
    pub fn search_path(mut self, path: impl Into<OsString>) -> GitRunner {
        self.search_path = path.into();
        self
    }

    /// Sets the time limit of each operation.
    pub fn timeout(mut self, timeout: Duration) -> GitRunner {
        self.timeout = timeout;
        self
    }

    /// The time limit of each operation.
    pub fn time_limit(&self) -> Duration {
        self.timeout
    }

    /// The installed git's version, or an error saying git is missing or too old.
    pub async fn version(&self) -> Result<GitVersion, GitError> {
        let stdout = self
            .run(&["--version"], None, None, "git")
            .await
            .map_err(|e| match e.kind {
                GitErrorKind::Other => GitError::new(
                    GitErrorKind::GitUnavailable,
                    format!("`git --version` failed: {}", e.message),
                    e.detail,
                ),
                _ => e,
            })?;
        let version = GitVersion::parse(&stdout).ok_or_else(|| {
            GitError::new(
                GitErrorKind::GitUnavailable,
                format!("cannot read git's version from {:?}", stdout.trim()),
                "",
            )
        })?;
        if version < MIN_GIT_VERSION {
            return Err(GitError::new(
                GitErrorKind::GitUnavailable,
                format!("git {version} is too old; reposync needs git {MIN_GIT_VERSION} or newer"),
                "",
            ));
        }
        Ok(version)
    }

    /// The version line of the OpenSSH client git would use (`ssh -V`), such as
    /// `OpenSSH_9.2p1 Debian-2+deb12u10, OpenSSL 3.0.19 27 Jan 2026`.
    ///
    /// ssh runs in the same environment built from nothing as git, so the version is that of
    /// the ssh found on the runner's search path, and a missing one is a
    /// [`GitErrorKind::SshUnavailable`] error.
    pub async fn ssh_version(&self) -> Result<String, GitError> {
        let unavailable = |message: String, detail: &str| {
            GitError::new(GitErrorKind::SshUnavailable, message, detail)
        };
        let private_dir = self.private_dir("reposync-ssh-")?;
        let mut command = Command::new("ssh");
        command
            .arg("-V")
            .env_clear()
            .env("PATH", &self.search_path)
            .env("HOME", private_dir.path())
            .env("LC_ALL", "C")
            .env("LANGUAGE", "C")
            .current_dir(private_dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let child = command.spawn().map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => unavailable(
                "OpenSSH's client is not installed (no \"ssh\" on PATH); SSH remotes cannot be reached"
                    .to_owned(),
                "",
            ),
            _ => unavailable(format!("cannot start ssh: {e}"), ""),
        })?;
        let _group = GroupKiller(child.id());
        let output = match tokio::time::timeout(self.timeout, child.wait_with_output()).await {
            Ok(result) => {
                result.map_err(|e| unavailable(format!("cannot wait for ssh: {e}"), ""))?
            }
            Err(_elapsed) => {
                return Err(GitError::new(
                    GitErrorKind::Timeout,
                    format!(
                        "`ssh -V` did not finish within {} s; it was stopped",
                        self.timeout.as_secs()
                    ),
                    "",
                ));
            }
        };
        // OpenSSH prints its version on standard error.
        let stderr = String::from_utf8_lossy(&output.stderr);
        let stdout = String::from_utf8_lossy(&output.stdout);
        let line = stderr
            .lines()
            .chain(stdout.lines())
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or_default();
        if !output.status.success() || line.is_empty() {
            return Err(unavailable(
                format!("`ssh -V` failed ({})", output.status),
                line,
            ));
        }
        Ok(line.to_owned())
    }

    /// Lists the branches of a remote and where its `HEAD` points (`git ls-remote --symref`).
    pub async fn ls_remote_heads(&self, remote: &Remote) -> Result<RemoteHeads, GitError> {
        let stdout = self
            .run(
                &ls_remote_args(remote),
                None,
                Some(&remote.auth),
                &remote.url,
            )
            .await?;
        Ok(parse_ls_remote(&stdout))
    }

    /// The refs of a remote whose full names are exactly among `names` (`refs/heads/x`,
    /// `refs/tags/x`, and `refs/tags/x^{}` for the commit an annotated tag peels to), as
    /// `git ls-remote` lists them. The names are built by the caller from parsed ref names
    /// and all start with `refs/`, so none can be read as an option; since git matches them
    /// as tails (`refs/heads/x` also matches `refs/heads/a/refs/heads/x`), only exact names
    /// are kept.
    pub async fn ls_remote_refs(
        &self,
        remote: &Remote,
        names: &[String],
    ) -> Result<Vec<RemoteRef>, GitError> {
        if names.iter().any(|name| !name.starts_with("refs/")) {
            return Err(GitError::new(
                GitErrorKind::InvalidRequest,
                "only full ref names (refs/…) can be looked up on a remote",
                "",
            ));
        }
        let mut args: Vec<&str> = vec!["ls-remote", "--", &remote.url];
        args.extend(names.iter().map(String::as_str));
        let stdout = self
            .run(&args, None, Some(&remote.auth), &remote.url)
            .await?;
        Ok(stdout
            .lines()
            .filter_map(|line| {
                let (commit, name) = line.split_once('\t')?;
                let name = name.trim();
                if !names.iter().any(|wanted| wanted == name) {
                    return None;
                }
                let commit = ObjectId::parse(commit.trim()).ok()?;
                Some(RemoteRef {
                    name: name.to_owned(),
                    commit,
                })
            })
            .collect())
    }

    /// [`GitRunner::ls_remote_heads`], also reading what the server's capability
    /// advertisement offers (git's packet trace of the same conversation): whether it speaks
    /// protocol v2, and honours partial clone (`filter`) and shallow fetches.
    pub async fn probe_remote(
        &self,
        remote: &Remote,
    ) -> Result<(RemoteHeads, ServerCapabilities), GitError> {
        let command = GitCommand {
            args: ls_remote_args(remote).iter().map(OsString::from).collect(),
            auth: Some(&remote.auth),
            url: remote.url.clone(),
            // The trace holds the pkt-lines only: refs and capabilities, never the
            // credentials, which travel in HTTP headers or the SSH handshake.
            env: vec![("GIT_TRACE_PACKET", "1".into())],
            ..GitCommand::default()
        };
        let output = self.output(&command).await?;
        if !output.success {
            return Err(output.into_error(&command));
        }
        let heads = parse_ls_remote(&String::from_utf8_lossy(&output.stdout));
        Ok((heads, ServerCapabilities::from_packet_trace(&output.stderr)))
    }

    /// Runs one git command in a fresh private directory that serves as `HOME` and holds the
    /// credential files, returning its standard output.
    async fn run(
        &self,
        args: &[&str],
        cwd: Option<&Path>,
        auth: Option<&GitAuth>,
        url: &str,
    ) -> Result<String, GitError> {
        let command = GitCommand {
            args: args.iter().map(OsString::from).collect(),
            cwd: cwd.map(Path::to_owned),
            auth,
            url: url.to_owned(),
            ..GitCommand::default()
        };
        let output = self.output(&command).await?;
        if output.success {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(output.into_error(&command))
        }
    }

    /// Runs `command` and fails, with a classified error, unless git exits with success.
    pub(crate) async fn run_command(&self, command: &GitCommand<'_>) -> Result<Vec<u8>, GitError> {
        let output = self.output(command).await?;
        if output.success {
            Ok(output.stdout)
        } else {
            Err(output.into_error(command))
        }
    }

    /// Runs `command` and returns what it printed whatever its exit status, for callers that
    /// must tell expected failures (a missing branch, a rejected push) from the others. Only a
    /// failure to run git at all, or a timeout, is an error here.
    pub(crate) async fn output(&self, command: &GitCommand<'_>) -> Result<GitOutput, GitError> {
        let url = command.url.as_str();
        let io_error = |what: &str, e: std::io::Error| {
            GitError::new(GitErrorKind::Other, format!("cannot {what}: {e}"), "")
        };
        let private_dir = self.private_dir("reposync-git-")?;
        let connect_timeout = self.timeout.as_secs().clamp(1, 30);
        let prepared = command
            .auth
            .map(|a| a.prepare(url, private_dir.path(), connect_timeout))
            .transpose()
            .map_err(|e| io_error("write credential files", e))?;

        let mut config: Vec<(String, String)> = vec![
            ("core.askPass".into(), String::new()),
            ("credential.interactive".into(), "false".into()),
            ("protocol.version".into(), "2".into()),
            // Abort transfers that stall instead of waiting for the overall timeout.
            ("http.lowSpeedLimit".into(), "1000".into()),
            ("http.lowSpeedTime".into(), connect_timeout.to_string()),
        ];
        config.extend(
            NO_BACKGROUND_WORK
                .iter()
                .map(|(key, value)| ((*key).to_owned(), (*value).to_owned())),
        );
        let mut child_command = Command::new(&self.git);
        child_command
            .env_clear()
            .env("PATH", &self.search_path)
            .env("HOME", private_dir.path())
            .env("XDG_CONFIG_HOME", private_dir.path())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_ASKPASS", "")
            .env("SSH_ASKPASS", "")
            .env("GIT_ALLOW_PROTOCOL", "https:ssh")
            .env("LC_ALL", "C")
            .env("LANGUAGE", "C");
        if let Some(prepared) = &prepared {
            config.extend(prepared.config.iter().cloned());
            for (name, value) in &prepared.env {
                child_command.env(name, value.expose());
            }
        }
        config.extend(command.config.iter().cloned());
        for (name, value) in &command.env {
            child_command.env(name, value);
        }
        // Configuration travels in the environment (GIT_CONFIG_COUNT/KEY/VALUE) rather than as
        // `-c` arguments, so that argv stays short and holds nothing but the operation.
        child_command.env("GIT_CONFIG_COUNT", config.len().to_string());
        for (index, (key, value)) in config.iter().enumerate() {
            child_command.env(format!("GIT_CONFIG_KEY_{index}"), key);
            child_command.env(format!("GIT_CONFIG_VALUE_{index}"), value);
        }
        let stdin = if command.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        };
        child_command
            .args(&command.args)
            .current_dir(command.cwd.as_deref().unwrap_or(private_dir.path()))
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);

        let mut child = child_command.spawn().map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => GitError::new(
                GitErrorKind::GitUnavailable,
                format!("git is not installed (no {:?} on PATH); install git {MIN_GIT_VERSION} or newer", self.git),
                "",
            ),
            _ => io_error("start git", e),
        })?;
        // The whole group dies when this guard drops: after git exits (git may leave an ssh
        // child behind when it exits on an error), after a timeout, and when the caller drops
        // this future mid-operation (a cancelled task), where `kill_on_drop` would reach only
        // git itself.
        let _group = GroupKiller(child.id());
        let child_stdin = child.stdin.take();
        // Input is written while the output is read, so that neither side can fill a pipe and
        // wait for the other forever.
        let feed = async {
            if let (Some(mut pipe), Some(input)) = (child_stdin, command.stdin.as_deref()) {
                // git may exit before reading everything (it failed); its error tells why.
                let _ = pipe.write_all(input).await;
                drop(pipe);
            }
        };
        let run = async { tokio::join!(feed, child.wait_with_output()).1 };
        let output = match tokio::time::timeout(self.timeout, run).await {
            Ok(result) => result.map_err(|e| io_error("wait for git", e))?,
            Err(_elapsed) => {
                return Err(GitError::new(
                    GitErrorKind::Timeout,
                    format!(
                        "git did not finish within {} s for {url}; it was stopped",
                        self.timeout.as_secs()
                    ),
                    "",
                ));
            }
        };
        let secrets = command.auth.map(GitAuth::secret_values).unwrap_or_default();
        Ok(GitOutput {
            success: output.status.success(),
            stdout: output.stdout,
            stderr: scrub(&String::from_utf8_lossy(&output.stderr), &secrets),
        })
    }
}

/// One git invocation: its arguments and everything about its environment beyond the fixed,
/// isolated part that [`GitRunner`] always sets.
#[derive(Default)]
pub(crate) struct GitCommand<'a> {
    pub args: Vec<OsString>,
    /// The working directory; a fresh private directory when `None`.
    pub cwd: Option<PathBuf>,
    /// Credentials to prepare for this one child, scoped to `url`.
    pub auth: Option<&'a GitAuth>,
    /// The remote this command talks to, or a description of the local repository; it names
    /// the place in error messages and scopes the credential helper.
    pub url: String,
    /// Extra variables, such as `GIT_DIR` or `GIT_INDEX_FILE`. Never secrets: those come
    /// only from `auth`, so that they are scrubbed from errors.
    pub env: Vec<(&'static str, OsString)>,
    /// Extra configuration, passed like the fixed configuration through the environment.
    pub config: Vec<(String, String)>,
    /// Bytes for git's standard input; without them, standard input is `/dev/null`.
    pub stdin: Option<Vec<u8>>,
}

impl GitCommand<'_> {
    /// Gives git these bytes on standard input.
    pub(crate) fn stdin(mut self, input: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(input.into());
        self
    }

    /// The git subcommand (`fetch`, `write-tree`…), for messages.
    fn subcommand(&self) -> String {
        self.args
            .iter()
            .map(|a| a.to_string_lossy())
            .find(|a| !a.starts_with('-'))
            .map_or_else(|| "git".to_owned(), |a| a.into_owned())
    }
}

/// What a finished git printed; standard error is already scrubbed of the command's secrets.
#[derive(Debug)]
pub(crate) struct GitOutput {
    pub success: bool,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl GitOutput {
    /// The error for a failed command: classified from git's words when it talked to a remote,
    /// a plain failure of the named subcommand when it worked on a local repository.
    pub(crate) fn into_error(self, command: &GitCommand<'_>) -> GitError {
        let error = if command.auth.is_some() {
            GitError::classify(&self.stderr, &command.url)
        } else {
            GitError::local(&self.stderr, &command.subcommand(), &command.url)
        };
        tracing::debug!(code = error.kind.code(), detail = %error.detail, "git operation failed");
        error
    }
}

impl Default for GitRunner {
    fn default() -> Self {
        GitRunner::new()
    }
}

/// Kills the process group led by a child (started with `process_group(0)`) when dropped.
struct GroupKiller(Option<u32>);

impl Drop for GroupKiller {
    fn drop(&mut self) {
        kill_group(self.0);
    }
}

fn kill_group(pid: Option<u32>) {
    let Some(pid) = pid
        .and_then(|p| i32::try_from(p).ok())
        .and_then(rustix::process::Pid::from_raw)
    else {
        return;
    };
    // The group may be gone already; there is nothing to do about an error here.
    let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
}

/// A remote's branches, and the branch its `HEAD` names (its default branch).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemoteHeads {
    pub branches: Vec<RemoteRef>,
    pub default_branch: Option<String>,
}

impl RemoteHeads {
    /// The commit of `refs/heads/<branch>`, matched by full name.
    pub fn branch_commit(&self, branch: &BranchName) -> Option<&ObjectId> {
        let full = branch.full_ref();
        self.branches
            .iter()
            .find(|r| r.name == full)
            .map(|r| &r.commit)
    }
}

fn ls_remote_args(remote: &Remote) -> [&str; 6] {
    [
        "ls-remote",
        "--symref",
        "--",
        &remote.url,
        "HEAD",
        "refs/heads/*",
    ]
}

/// What a git server offers for fetching, as its capability advertisement says.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerCapabilities {
    /// It answered in protocol v2.
    pub protocol_v2: bool,
    /// It honours `--filter` (partial clone): Bitbucket Data Center from 7.13 unless an
    /// administrator turned it off; never Bitbucket Cloud.
    pub filter: bool,
    /// It honours `--depth`.
    pub shallow: bool,
}

impl ServerCapabilities {
    /// Reads the capabilities from git's packet trace (`GIT_TRACE_PACKET`) of a conversation:
    /// protocol v2 lists them one per line (`fetch=shallow wait-for-done filter`); v0 after a
    /// NUL on the first ref line, which the trace writes as `\0`.
    pub fn from_packet_trace(trace: &str) -> ServerCapabilities {
        let mut found = ServerCapabilities::default();
        for line in trace.lines() {
            // Only what the server sent: `<name>< <payload>`.
            let Some((_, packet)) = line.split_once("packet:") else {
                continue;
            };
            let Some((_, payload)) = packet.split_once("< ") else {
                continue;
            };
            let payload = payload.trim();
            if payload == "version 2" {
                found.protocol_v2 = true;
            }
            let features = if let Some(fetch) = payload.strip_prefix("fetch=") {
                fetch
            } else if let Some((_, v0)) = payload.split_once("\\0") {
                v0
            } else {
                continue;
            };
            for feature in features.split_whitespace() {
                match feature {
                    "filter" => found.filter = true,
                    "shallow" => found.shallow = true,
                    _ => {}
                }
            }
        }
        found
    }
}

fn parse_ls_remote(stdout: &str) -> RemoteHeads {
    let mut heads = RemoteHeads::default();
    for line in stdout.lines() {
        let Some((left, name)) = line.split_once('\t') else {
            continue;
        };
        if let Some(target) = left.strip_prefix("ref: ") {
            if name.trim() == "HEAD" {
                heads.default_branch = target.trim().strip_prefix("refs/heads/").map(str::to_owned);
            }
        } else if name.starts_with("refs/heads/") {
            // A head that is not a full object id names nothing reposync could fetch.
            if let Ok(commit) = ObjectId::parse(left.trim()) {
                heads.branches.push(RemoteRef {
                    name: name.trim().to_owned(),
                    commit,
                });
            }
        }
    }
    heads
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_git_versions() {
        assert_eq!(
            GitVersion::parse("git version 2.47.3\n"),
            Some(GitVersion {
                major: 2,
                minor: 47,
                patch: 3
            })
        );
        assert_eq!(
            GitVersion::parse("git version 2.39.3 (Apple Git-146)"),
            Some(GitVersion {
                major: 2,
                minor: 39,
                patch: 3
            })
        );
        assert_eq!(
            GitVersion::parse("git version 2.45.1.windows.1"),
            Some(GitVersion {
                major: 2,
                minor: 45,
                patch: 1
            })
        );
        assert_eq!(GitVersion::parse("hg 6"), None);
    }

    #[test]
    fn reads_capabilities_from_both_protocols() {
        let v2 = "12:00:00.1 pkt-line.c:86 packet: git< version 2\n\
                  12:00:00.1 pkt-line.c:86 packet: git< fetch=shallow wait-for-done filter\n";
        assert_eq!(
            ServerCapabilities::from_packet_trace(v2),
            ServerCapabilities {
                protocol_v2: true,
                filter: true,
                shallow: true
            }
        );
        let v0_without_filter = format!(
            "packet: git< {} HEAD\\0multi_ack thin-pack shallow no-progress\n",
            "a".repeat(40)
        );
        assert_eq!(
            ServerCapabilities::from_packet_trace(&v0_without_filter),
            ServerCapabilities {
                protocol_v2: false,
                filter: false,
                shallow: true
            }
        );
        // What the client sent asks for nothing about the server.
        assert_eq!(
            ServerCapabilities::from_packet_trace("packet: git> fetch=filter\n"),
            ServerCapabilities::default()
        );
    }

    #[test]
    fn parses_ls_remote_output() {
        let (a, b) = ("a".repeat(40), "b".repeat(40));
        let heads = parse_ls_remote(&format!(
            "ref: refs/heads/main\tHEAD\n{a}\tHEAD\n{a}\trefs/heads/main\n{b}\trefs/heads/dev\nHEAD\trefs/heads/odd\n"
        ));
        let b = ObjectId::parse(&b).unwrap();
        assert_eq!(
            heads.branches.len(),
            2,
            "the head that is no object id is left out"
        );
        assert_eq!(
            heads.branches[1],
            RemoteRef {
                name: "refs/heads/dev".into(),
                commit: b.clone()
            }
        );
        assert_eq!(heads.default_branch.as_deref(), Some("main"));
        let branch = |name| BranchName::parse(name).unwrap();
        assert_eq!(heads.branch_commit(&branch("dev")), Some(&b));
        assert_eq!(heads.branch_commit(&branch("de")), None);
    }

    #[tokio::test]
    async fn a_missing_git_is_reported_as_unavailable() {
        let err = GitRunner::with_program("/nonexistent/git")
            .version()
            .await
            .expect_err("no git");
        assert_eq!(err.kind, GitErrorKind::GitUnavailable);
    }

    #[tokio::test]
    async fn the_installed_ssh_reports_its_version() {
        let version = GitRunner::new().ssh_version().await.expect("ssh on PATH");
        assert!(version.starts_with("OpenSSH"), "{version}");
        assert!(!version.contains('\n'), "one line: {version:?}");
    }

    #[tokio::test]
    async fn a_missing_ssh_is_reported_as_unavailable() {
        let err = GitRunner::new()
            .search_path("/nonexistent")
            .ssh_version()
            .await
            .expect_err("no ssh");
        assert_eq!(err.kind, GitErrorKind::SshUnavailable);
        assert!(err.message.contains("not installed"), "{err}");
    }

    #[tokio::test]
    async fn the_installed_git_is_recent_enough() {
        let version = GitRunner::new().version().await.expect("git on PATH");
        assert!(version >= MIN_GIT_VERSION);
    }
}
