//! A real OpenSSH sshd serving the repository root to the `git` system user.

use std::fmt;
use std::fs::{self, File};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tempfile::TempDir;

use crate::process::{chmod, ensure_git_user, run_checked, shared_tempdir, system_command};
use crate::repo::RepoRoot;

/// sshd re-executes itself for every connection, which requires an absolute path.
const SSHD: &str = "/usr/sbin/sshd";

/// How many fresh ports to try when another process grabs the chosen one first.
const BIND_ATTEMPTS: usize = 5;

/// How long sshd may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(5);

/// OpenSSH sshd on 127.0.0.1 with its own host key, key-only auth, for user `git`.
pub struct SshServer {
    // Declared first so that sshd is stopped before its directory is removed.
    process: SshdProcess,
    dir: TempDir,
    port: u16,
    root: PathBuf,
    /// `ssh-ed25519 AAAA…`, without a comment.
    host_key: String,
    log_path: PathBuf,
}

impl fmt::Debug for SshServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SshServer")
            .field("port", &self.port)
            .field("root", &self.root)
            .field("dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}

impl SshServer {
    /// Starts sshd accepting, for user git, the OpenSSH public key lines in `authorized_keys`.
    ///
    /// Creates the `git` user if it is missing (see [`ensure_git_user`]).
    pub async fn start(root: &RepoRoot, authorized_keys: &[String]) -> Result<Self> {
        ensure_git_user()?;
        check_prerequisites()?;

        let dir = shared_tempdir("reposync-sshd-")?;
        let host_key_path = dir.path().join("ssh_host_ed25519_key");
        let host_key = generate_key(&host_key_path, "reposync-testkit-host")?;

        // sshd reads this file with the git user's privileges, hence world-readable.
        let authorized_keys_path = dir.path().join("authorized_keys");
        let mut keys = authorized_keys.join("\n");
        keys.push('\n');
        fs::write(&authorized_keys_path, keys).context("cannot write authorized_keys")?;
        chmod(&authorized_keys_path, 0o644)?;

        let config_path = dir.path().join("sshd_config");
        let mut last_log = String::new();
        for attempt in 0..BIND_ATTEMPTS {
            let port = free_port()?;
            let config = sshd_config(dir.path(), port, &host_key_path, &authorized_keys_path);
            fs::write(&config_path, config).context("cannot write sshd_config")?;
            let log_path = dir.path().join(format!("sshd-{attempt}.log"));
            let mut process = SshdProcess::spawn(&config_path, &log_path)?;
            match wait_until_listening(&mut process, port, &log_path).await? {
                Started::Listening => {
                    return Ok(Self {
                        process,
                        dir,
                        port,
                        root: root.path().to_owned(),
                        host_key,
                        log_path,
                    });
                }
                // Dropping `process` reaps the failed sshd before the next attempt.
                Started::PortTaken => last_log = read_log(&log_path),
            }
        }
        bail!("sshd could not bind a port after {BIND_ATTEMPTS} attempts; last log:\n{last_log}")
    }

    /// The port sshd listens on, on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `ssh://git@127.0.0.1:PORT<root abs path>/<relative>`.
    pub fn repo_url(&self, relative: &str) -> String {
        format!(
            "ssh://git@127.0.0.1:{}{}/{}",
            self.port,
            self.root.display(),
            relative.trim_start_matches('/')
        )
    }

    /// A known_hosts line for this server's host key, as `[127.0.0.1]:PORT ssh-ed25519 AAAA...`.
    pub fn known_hosts_line(&self) -> String {
        format!("[127.0.0.1]:{} {}", self.port, self.host_key)
    }

    /// A known_hosts line for the same host but a DIFFERENT key (for host-key-mismatch tests).
    pub fn wrong_known_hosts_line(&self) -> Result<String> {
        let scratch = tempfile::Builder::new()
            .prefix("wrong-host-key-")
            .tempdir_in(self.dir.path())
            .context("cannot create a directory for the wrong host key")?;
        let key = generate_key(&scratch.path().join("key"), "reposync-testkit-wrong-host")?;
        Ok(format!("[127.0.0.1]:{} {key}", self.port))
    }

    /// sshd's log so far (for debugging failed tests).
    pub fn log(&self) -> String {
        read_log(&self.log_path)
    }

    /// The process id of the listening sshd.
    pub fn pid(&self) -> u32 {
        self.process.0.id()
    }
}

/// A client key pair written by ssh-keygen, for tests that authenticate over SSH.
#[derive(Debug, Clone)]
pub struct SshKeyFiles {
    /// The unencrypted OpenSSH private key file, mode 0600 as ssh requires.
    pub private_key: PathBuf,
    /// The public key as an authorized_keys line, `ssh-ed25519 AAAA…`.
    pub public_key: String,
}

impl SshKeyFiles {
    /// Generates an unencrypted ed25519 key pair as `<dir>/<name>` and `<dir>/<name>.pub`.
    pub fn generate_ed25519(dir: &Path, name: &str) -> Result<Self> {
        let private_key = dir.join(name);
        let public_key = generate_key(&private_key, "reposync-testkit-client")?;
        Ok(Self {
            private_key,
            public_key,
        })
    }

    /// The private key in OpenSSH format, for code that takes key material rather than a path.
    pub fn private_key_openssh(&self) -> Result<String> {
        fs::read_to_string(&self.private_key)
            .with_context(|| format!("cannot read {}", self.private_key.display()))
    }
}

/// The listening sshd, killed and reaped when dropped.
struct SshdProcess(Child);

impl SshdProcess {
    fn spawn(config: &Path, log: &Path) -> Result<Self> {
        let log_file =
            File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
        let stdout = log_file
            .try_clone()
            .context("cannot duplicate the sshd log handle")?;
        // -D stays in the foreground so that we own the process; -e sends the log to stderr.
        let child = system_command(SSHD)
            .arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(config)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(log_file)
            .spawn()
            .context("cannot spawn sshd")?;
        Ok(Self(child))
    }
}

impl Drop for SshdProcess {
    fn drop(&mut self) {
        // sshd forks a process per connection that outlives the listener, so the whole tree
        // is found first (once the listener is gone its children are re-parented and can no
        // longer be told apart) and killed by process id.
        let descendants = descendants_of(self.0.id());
        if !descendants.is_empty() {
            // Failures only mean that some of them have exited meanwhile.
            let _ = system_command("kill")
                .arg("-KILL")
                .args(descendants.iter().map(u32::to_string))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        // An error means sshd has already exited; `wait` then just reaps it.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The ids of all live descendants of `root`, read from `/proc`.
fn descendants_of(root: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let parents: Vec<(u32, u32)> = entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // The command name in parentheses may itself hold spaces and parentheses, so the
            // fields are counted from the last ')': state, then the parent id.
            let (_, fields) = stat.rsplit_once(')')?;
            let ppid = fields.split_whitespace().nth(1)?.parse().ok()?;
            Some((pid, ppid))
        })
        .collect();
    let mut found = Vec::new();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for &(pid, ppid) in &parents {
            if ppid == parent && !found.contains(&pid) {
                found.push(pid);
                frontier.push(pid);
            }
        }
    }
    found
}

/// Polls until sshd reports it is listening on `port`, or dies, or times out.
async fn wait_until_listening(
    process: &mut SshdProcess,
    port: u16,
    log_path: &Path,
) -> Result<Started> {
    let listening = format!("Server listening on 127.0.0.1 port {port}.");
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Some(status) = process.0.try_wait().context("cannot poll sshd")? {
            let log = read_log(log_path);
            if log.contains("Address already in use") || log.contains("Cannot bind any address") {
                return Ok(Started::PortTaken);
            }
            bail!("sshd exited with {status} before listening; its log:\n{log}");
        }
        // The log line proves that it is our sshd that owns the port; the connection proves
        // that the port is accepting.
        if read_log(log_path).contains(&listening)
            && tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
        {
            return Ok(Started::Listening);
        }
        if Instant::now() >= deadline {
            bail!(
                "sshd did not listen on port {port} within {START_TIMEOUT:?}; its log:\n{}",
                read_log(log_path)
            );
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn read_log(path: &Path) -> String {
    fs::read(path)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_else(|err| format!("(cannot read {}: {err})", path.display()))
}

enum Started {
    Listening,
    PortTaken,
}

/// Fails with a hint when something sshd needs is missing from the machine.
fn check_prerequisites() -> Result<()> {
    if !Path::new(SSHD).exists() {
        bail!("{SSHD} is missing; install openssh-server");
    }
    // sshd refuses to start without its privilege separation directory.
    let privsep = Path::new("/run/sshd");
    if !privsep.exists() {
        fs::create_dir_all(privsep).context("cannot create /run/sshd")?;
        chmod(privsep, 0o755)?;
    }
    // sshd runs `git-upload-pack` through the git user's shell with its default PATH.
    let found = ["/usr/bin/git-upload-pack", "/usr/local/bin/git-upload-pack"]
        .iter()
        .any(|path| Path::new(path).exists());
    if !found {
        bail!("git-upload-pack is in neither /usr/bin nor /usr/local/bin; install git");
    }
    Ok(())
}

/// Generates an unencrypted ed25519 key at `path` and returns its public half without comment.
fn generate_key(path: &Path, comment: &str) -> Result<String> {
    run_checked(
        system_command("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
            .arg(path),
    )?;
    // ssh-keygen appends ".pub" to the whole name, whatever extension it already has.
    let mut public_path = path.as_os_str().to_owned();
    public_path.push(".pub");
    let public = fs::read_to_string(&public_path)
        .with_context(|| format!("cannot read the public key of {}", path.display()))?;
    let mut fields = public.split_whitespace();
    match (fields.next(), fields.next()) {
        (Some(kind), Some(key)) => Ok(format!("{kind} {key}")),
        _ => bail!("ssh-keygen wrote an unexpected public key: {public:?}"),
    }
}

/// Asks the kernel for a free port; sshd binds it a moment later, hence the retries above.
fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("cannot bind 127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

fn sshd_config(dir: &Path, port: u16, host_key: &Path, authorized_keys: &Path) -> String {
    format!(
        "\
ListenAddress 127.0.0.1
Port {port}
HostKey {host_key}
PidFile {pid}
AuthorizedKeysFile {authorized_keys}
# The key file lives in a root-owned temp dir that sshd would otherwise reject for user git.
StrictModes no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitEmptyPasswords no
HostbasedAuthentication no
UsePAM no
AllowUsers git
PermitRootLogin no
PermitUserEnvironment no
AllowTcpForwarding no
AllowAgentForwarding no
X11Forwarding no
PermitTTY no
PrintMotd no
UseDNS no
LogLevel VERBOSE
# The repositories are owned by root; without this git refuses them as dubious ownership.
SetEnv GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=safe.directory GIT_CONFIG_VALUE_0=* GIT_CONFIG_NOSYSTEM=1
",
        host_key = host_key.display(),
        pid = dir.join("sshd.pid").display(),
        authorized_keys = authorized_keys.display(),
    )
}
