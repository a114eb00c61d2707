//! End-to-end checks of the test servers with a real, hermetic git client.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use anyhow::{Context, Result};
use reposync_testkit::{
    GitHttpsServer, HermeticGit, RepoRoot, SshKeyFiles, SshServer, TestCa, ensure_git_user,
};
use tempfile::TempDir;

const REPO: &str = "acme/config.git";
const USER: &str = "deploy";
const PASSWORD: &str = "s3cret-pass";

/// A client machine: its own git environment and a scratch directory for clones and files.
struct Client {
    git: HermeticGit,
    dir: TempDir,
}

impl Client {
    fn new() -> Result<Self> {
        Ok(Self {
            git: HermeticGit::new()?,
            dir: tempfile::tempdir()?,
        })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, content: &str) -> Result<PathBuf> {
        let path = self.path(name);
        fs::write(&path, content).with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }

    /// Runs git in the scratch directory and returns the output whatever the exit status.
    fn git(&self, args: &[&str], env: &[(&str, &str)]) -> Result<Output> {
        self.git.output_with_env(self.dir.path(), args, env)
    }
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn with_credentials(url: &str, user: &str, password: &str) -> String {
    url.replacen("https://", &format!("https://{user}:{password}@"), 1)
}

fn path_str(path: &Path) -> &str {
    path.to_str().unwrap_or_default()
}

async fn https_fixture() -> Result<(RepoRoot, GitHttpsServer, String)> {
    ensure_git_user()?;
    let root = RepoRoot::new()?;
    let commit = root.create_repo(REPO, "main", &[("config.yaml", "replicas: 1\n")])?;
    let ca = TestCa::new("reposync test CA")?;
    let server = GitHttpsServer::start(&root, &ca, USER, PASSWORD).await?;
    Ok((root, server, commit))
}

#[tokio::test]
async fn https_clone_with_right_password_shows_the_file() -> Result<()> {
    let (_root, server, commit) = https_fixture().await?;
    let client = Client::new()?;
    let ca = client.write("ca.pem", &server.ca_pem())?;
    let ca_config = format!("http.sslCAInfo={}", ca.display());
    let url = with_credentials(&server.repo_url(REPO), USER, PASSWORD);

    let output = client.git(&["-c", &ca_config, "clone", &url, "checkout"], &[])?;

    assert!(
        output.status.success(),
        "clone failed: {}\n{}",
        stderr(&output),
        server.log()
    );
    let checkout = client.path("checkout");
    assert_eq!(
        fs::read_to_string(checkout.join("config.yaml"))?,
        "replicas: 1\n"
    );
    assert_eq!(client.git.run(&checkout, &["rev-parse", "HEAD"])?, commit);
    assert!(server.request_count() >= 2, "{}", server.log());
    Ok(())
}

#[tokio::test]
async fn https_wrong_password_fails_with_an_auth_error() -> Result<()> {
    let (_root, server, _) = https_fixture().await?;
    let client = Client::new()?;
    let ca = client.write("ca.pem", &server.ca_pem())?;
    let ca_config = format!("http.sslCAInfo={}", ca.display());
    let url = with_credentials(&server.repo_url(REPO), USER, "wrong");

    let output = client.git(&["-c", &ca_config, "ls-remote", &url], &[])?;

    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("Authentication failed"),
        "{}",
        stderr(&output)
    );
    assert!(server.log().contains("-> 401"), "{}", server.log());
    Ok(())
}

#[tokio::test]
async fn https_without_credentials_is_challenged_and_cannot_prompt() -> Result<()> {
    let (_root, server, _) = https_fixture().await?;
    let client = Client::new()?;
    let ca = client.write("ca.pem", &server.ca_pem())?;
    let ca_config = format!("http.sslCAInfo={}", ca.display());

    let output = client.git(
        &["-c", &ca_config, "ls-remote", &server.repo_url(REPO)],
        &[],
    )?;

    // GIT_TERMINAL_PROMPT=0 turns the 401 challenge into an error instead of a hang.
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("terminal prompts disabled"),
        "{}",
        stderr(&output)
    );
    assert_eq!(server.request_count(), 1, "{}", server.log());
    Ok(())
}

#[tokio::test]
async fn https_unknown_repo_fails_with_not_found() -> Result<()> {
    let (_root, server, _) = https_fixture().await?;
    let client = Client::new()?;
    let ca = client.write("ca.pem", &server.ca_pem())?;
    let ca_config = format!("http.sslCAInfo={}", ca.display());
    let url = with_credentials(&server.repo_url("acme/missing.git"), USER, PASSWORD);

    let output = client.git(&["-c", &ca_config, "ls-remote", &url], &[])?;

    assert!(!output.status.success());
    assert!(stderr(&output).contains("not found"), "{}", stderr(&output));
    assert!(server.log().contains("-> 404"), "{}", server.log());
    Ok(())
}

#[tokio::test]
async fn https_client_trusting_another_ca_fails_with_a_certificate_error() -> Result<()> {
    let (_root, server, _) = https_fixture().await?;
    let client = Client::new()?;
    let other_ca = TestCa::new("some other CA")?;
    let ca = client.write("other-ca.pem", &other_ca.cert_pem())?;
    let ca_config = format!("http.sslCAInfo={}", ca.display());
    let url = with_credentials(&server.repo_url(REPO), USER, PASSWORD);

    let output = client.git(&["-c", &ca_config, "ls-remote", &url], &[])?;

    assert!(!output.status.success());
    let message = stderr(&output).to_lowercase();
    assert!(message.contains("certificate"), "{message}");
    assert_eq!(server.request_count(), 0, "{}", server.log());
    Ok(())
}

#[tokio::test]
async fn https_push_of_a_new_commit_updates_the_branch() -> Result<()> {
    let (root, server, first) = https_fixture().await?;
    let client = Client::new()?;
    let ca = client.write("ca.pem", &server.ca_pem())?;
    let ca_config = format!("http.sslCAInfo={}", ca.display());
    let url = with_credentials(&server.repo_url(REPO), USER, PASSWORD);
    client.git.run(
        client.dir.path(),
        &["-c", &ca_config, "clone", &url, "checkout"],
    )?;
    let checkout = client.path("checkout");
    fs::write(checkout.join("config.yaml"), "replicas: 2\n")?;
    client
        .git
        .run(&checkout, &["commit", "-q", "-am", "Scale up"])?;
    let pushed = client.git.run(&checkout, &["rev-parse", "HEAD"])?;

    client
        .git
        .run(&checkout, &["-c", &ca_config, "push", "origin", "main"])
        .with_context(|| server.log())?;

    assert_ne!(pushed, first);
    assert_eq!(root.head(REPO, "main")?, Some(pushed));
    assert_eq!(root.read_file(REPO, "main", "config.yaml")?, "replicas: 2");
    Ok(())
}

#[tokio::test]
async fn https_server_stops_when_dropped() -> Result<()> {
    let (_root, server, _) = https_fixture().await?;
    let port = server.port();
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
    );

    drop(server);

    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
    );
    Ok(())
}

/// A client set up for SSH: a key, a known_hosts file and the `GIT_SSH_COMMAND` using both.
struct SshClient {
    client: Client,
    key: SshKeyFiles,
    known_hosts: PathBuf,
}

impl SshClient {
    fn new() -> Result<Self> {
        let client = Client::new()?;
        let key = SshKeyFiles::generate_ed25519(client.dir.path(), "id_ed25519")?;
        let known_hosts = client.write("known_hosts", "")?;
        Ok(Self {
            client,
            key,
            known_hosts,
        })
    }

    fn ssh_command(&self) -> String {
        format!(
            "ssh -F /dev/null -i {} -o IdentitiesOnly=yes -o UserKnownHostsFile={} \
             -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes -o BatchMode=yes",
            self.key.private_key.display(),
            self.known_hosts.display()
        )
    }

    fn trust(&self, line: &str) -> Result<()> {
        fs::write(&self.known_hosts, format!("{line}\n"))?;
        Ok(())
    }

    fn git(&self, args: &[&str]) -> Result<Output> {
        let command = self.ssh_command();
        self.client.git(args, &[("GIT_SSH_COMMAND", &command)])
    }

    fn git_in(&self, dir: &Path, args: &[&str]) -> Result<String> {
        let command = self.ssh_command();
        self.client
            .git
            .run_with_env(dir, args, &[("GIT_SSH_COMMAND", &command)])
    }
}

async fn ssh_fixture(authorized: &[&SshKeyFiles]) -> Result<(RepoRoot, SshServer, String)> {
    ensure_git_user()?;
    let root = RepoRoot::new()?;
    let commit = root.create_repo(REPO, "main", &[("config.yaml", "replicas: 1\n")])?;
    let keys: Vec<String> = authorized
        .iter()
        .map(|key| key.public_key.clone())
        .collect();
    let server = SshServer::start(&root, &keys).await?;
    Ok((root, server, commit))
}

#[tokio::test]
async fn ssh_ls_remote_works_with_an_authorised_key() -> Result<()> {
    let client = SshClient::new()?;
    let (_root, server, commit) = ssh_fixture(&[&client.key]).await?;
    client.trust(&server.known_hosts_line())?;

    let output = client.git(&["ls-remote", &server.repo_url(REPO)])?;

    assert!(
        output.status.success(),
        "{}\n{}",
        stderr(&output),
        server.log()
    );
    let listing = String::from_utf8_lossy(&output.stdout);
    assert!(
        listing.contains(&format!("{commit}\trefs/heads/main")),
        "{listing}"
    );
    Ok(())
}

#[tokio::test]
async fn ssh_unauthorised_key_is_denied() -> Result<()> {
    let authorised = SshClient::new()?;
    let stranger = SshClient::new()?;
    let (_root, server, _) = ssh_fixture(&[&authorised.key]).await?;
    stranger.trust(&server.known_hosts_line())?;

    let output = stranger.git(&["ls-remote", &server.repo_url(REPO)])?;

    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("Permission denied (publickey)"),
        "{}",
        stderr(&output)
    );
    Ok(())
}

#[tokio::test]
async fn ssh_empty_known_hosts_fails_host_key_verification() -> Result<()> {
    let client = SshClient::new()?;
    let (_root, server, _) = ssh_fixture(&[&client.key]).await?;

    let output = client.git(&["ls-remote", &server.repo_url(REPO)])?;

    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("Host key verification failed"),
        "{}",
        stderr(&output)
    );
    Ok(())
}

#[tokio::test]
async fn ssh_wrong_known_hosts_line_reports_a_changed_host_key() -> Result<()> {
    let client = SshClient::new()?;
    let (_root, server, _) = ssh_fixture(&[&client.key]).await?;
    let wrong = server.wrong_known_hosts_line()?;
    assert_ne!(wrong, server.known_hosts_line());
    client.trust(&wrong)?;

    let output = client.git(&["ls-remote", &server.repo_url(REPO)])?;

    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("REMOTE HOST IDENTIFICATION HAS CHANGED"),
        "{}",
        stderr(&output)
    );
    Ok(())
}

#[tokio::test]
async fn ssh_push_of_a_new_commit_updates_the_branch() -> Result<()> {
    let client = SshClient::new()?;
    let (root, server, first) = ssh_fixture(&[&client.key]).await?;
    client.trust(&server.known_hosts_line())?;
    let scratch = client.client.dir.path();
    client
        .git_in(scratch, &["clone", &server.repo_url(REPO), "checkout"])
        .with_context(|| server.log())?;
    let checkout = client.client.path("checkout");
    fs::create_dir_all(checkout.join("apps"))?;
    fs::write(checkout.join("apps/web.yaml"), "image: web:2\n")?;
    client.client.git.run(&checkout, &["add", "."])?;
    client
        .client
        .git
        .run(&checkout, &["commit", "-q", "-m", "Add web"])?;
    let pushed = client.client.git.run(&checkout, &["rev-parse", "HEAD"])?;

    client
        .git_in(&checkout, &["push", "origin", "HEAD:refs/heads/main"])
        .with_context(|| server.log())?;

    assert_ne!(pushed, first);
    assert_eq!(root.head(REPO, "main")?, Some(pushed));
    assert_eq!(
        root.read_file(REPO, "main", "apps/web.yaml")?,
        "image: web:2"
    );
    Ok(())
}

/// Objects pushed over SSH belong to the `git` user; root's later commits and HTTPS pushes
/// must still be able to write next to them, and SSH must read root's objects.
#[tokio::test]
async fn one_repo_takes_pushes_over_ssh_https_and_direct_commits() -> Result<()> {
    let ssh_client = SshClient::new()?;
    let (root, ssh, _) = ssh_fixture(&[&ssh_client.key]).await?;
    ssh_client.trust(&ssh.known_hosts_line())?;
    let ca = TestCa::new("mixed CA")?;
    let https = GitHttpsServer::start(&root, &ca, USER, PASSWORD).await?;

    // Push over SSH, as the `git` user.
    let scratch = ssh_client.client.dir.path();
    ssh_client.git_in(scratch, &["clone", &ssh.repo_url(REPO), "via-ssh"])?;
    let via_ssh = ssh_client.client.path("via-ssh");
    fs::write(via_ssh.join("config.yaml"), "replicas: 2\n")?;
    ssh_client
        .client
        .git
        .run(&via_ssh, &["commit", "-q", "-am", "over ssh"])?;
    ssh_client
        .git_in(&via_ssh, &["push", "origin", "main"])
        .with_context(|| ssh.log())?;

    // Commit directly as root, on top of the git-owned objects.
    let direct = root.commit(REPO, "main", &[("extra.yaml", "a: 1\n")], "direct")?;

    // Push over HTTPS, as root through http-backend.
    let https_client = Client::new()?;
    let ca_file = https_client.write("ca.pem", &https.ca_pem())?;
    let ca_config = format!("http.sslCAInfo={}", ca_file.display());
    let url = with_credentials(&https.repo_url(REPO), USER, PASSWORD);
    https_client.git.run(
        https_client.dir.path(),
        &["-c", &ca_config, "clone", &url, "via-https"],
    )?;
    let via_https = https_client.path("via-https");
    assert_eq!(
        https_client.git.run(&via_https, &["rev-parse", "HEAD"])?,
        direct
    );
    fs::write(via_https.join("config.yaml"), "replicas: 3\n")?;
    https_client
        .git
        .run(&via_https, &["commit", "-q", "-am", "over https"])?;
    https_client
        .git
        .run(&via_https, &["-c", &ca_config, "push", "origin", "main"])
        .with_context(|| https.log())?;

    // And SSH again sees and extends everything.
    ssh_client.git_in(&via_ssh, &["pull", "-q", "--ff-only"])?;
    assert_eq!(
        fs::read_to_string(via_ssh.join("config.yaml"))?,
        "replicas: 3\n"
    );
    fs::write(via_ssh.join("extra.yaml"), "a: 2\n")?;
    ssh_client
        .client
        .git
        .run(&via_ssh, &["commit", "-q", "-am", "ssh again"])?;
    ssh_client
        .git_in(&via_ssh, &["push", "origin", "main"])
        .with_context(|| ssh.log())?;
    assert_eq!(root.read_file(REPO, "main", "extra.yaml")?, "a: 2");
    Ok(())
}

#[tokio::test]
async fn ssh_server_process_is_gone_after_drop() -> Result<()> {
    let client = SshClient::new()?;
    let (_root, server, _) = ssh_fixture(&[&client.key]).await?;
    let proc_dir = PathBuf::from(format!("/proc/{}", server.pid()));
    assert!(proc_dir.exists());

    drop(server);

    assert!(!proc_dir.exists(), "sshd survived its SshServer");
    Ok(())
}

#[test]
fn repo_root_commits_and_reports_heads() -> Result<()> {
    let root = RepoRoot::new()?;
    let first = root.create_repo("team/app.git", "main", &[("a.yaml", "1\n")])?;
    assert_eq!(root.head("team/app.git", "main")?, Some(first.clone()));
    assert_eq!(root.head("team/app.git", "feature")?, None);

    let on_feature = root.commit("team/app.git", "feature", &[("b/c.yaml", "2\n")], "feature")?;
    let on_main = root.commit("team/app.git", "main", &[("a.yaml", "3\n")], "bump")?;

    assert_eq!(root.head("team/app.git", "feature")?, Some(on_feature));
    assert_eq!(root.head("team/app.git", "main")?, Some(on_main.clone()));
    // A later commit keeps the files it does not name.
    assert_eq!(root.read_file("team/app.git", "main", "a.yaml")?, "3");
    let parent = root.git().run(
        &root.repo_path("team/app.git")?,
        &["rev-parse", &format!("{on_main}^")],
    )?;
    assert_eq!(parent, first);
    let http_receivepack = root.git().run(
        &root.repo_path("team/app.git")?,
        &["config", "http.receivepack"],
    )?;
    assert_eq!(http_receivepack, "true");
    Ok(())
}

#[test]
fn repo_root_refuses_paths_outside_itself() -> Result<()> {
    let root = RepoRoot::new()?;
    assert!(root.create_repo("../escape.git", "main", &[]).is_err());
    assert!(root.create_repo("a/../../escape.git", "main", &[]).is_err());
    assert!(root.create_repo("", "main", &[]).is_err());
    assert!(path_str(root.path()).starts_with('/'));
    Ok(())
}

#[test]
fn hermetic_git_ignores_the_callers_environment() -> Result<()> {
    let git = HermeticGit::new()?;

    // A shell alias prints the environment git hands to its own children.
    let env = git.run(git.home(), &["-c", "alias.showenv=!env", "showenv"])?;

    for leaked in ["GIT_SSL_CAINFO", "SSL_CERT_FILE", "CURL_CA_BUNDLE", "CARGO"] {
        assert!(
            !env.lines()
                .any(|line| line.starts_with(&format!("{leaked}="))),
            "{env}"
        );
    }
    assert!(
        env.lines()
            .any(|line| line == format!("HOME={}", git.home().display())),
        "{env}"
    );
    let name = git.run(git.home(), &["config", "--get", "user.name"])?;
    assert_eq!(name, reposync_testkit::TEST_USER_NAME);
    let ident = git.run(git.home(), &["var", "GIT_COMMITTER_IDENT"])?;
    assert!(
        ident.starts_with(reposync_testkit::TEST_USER_NAME),
        "{ident}"
    );
    Ok(())
}

/// Bytes that no compressor shrinks, so that a push exceeds git's `http.postBuffer` (1 MiB)
/// and is sent chunked, without a Content-Length.
fn incompressible(len: usize) -> String {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            char::from(b'!' + (state % 90) as u8)
        })
        .collect()
}

#[tokio::test]
async fn https_push_larger_than_the_post_buffer_is_streamed_chunked() -> Result<()> {
    let (root, server, _) = https_fixture().await?;
    let client = Client::new()?;
    let ca = client.write("ca.pem", &server.ca_pem())?;
    let ca_config = format!("http.sslCAInfo={}", ca.display());
    let url = with_credentials(&server.repo_url(REPO), USER, PASSWORD);
    client.git.run(
        client.dir.path(),
        &["-c", &ca_config, "clone", &url, "checkout"],
    )?;
    let checkout = client.path("checkout");
    fs::write(checkout.join("big.txt"), incompressible(3 * 1024 * 1024))?;
    client.git.run(&checkout, &["add", "big.txt"])?;
    client
        .git
        .run(&checkout, &["commit", "-q", "-m", "Big file"])?;
    let pushed = client.git.run(&checkout, &["rev-parse", "HEAD"])?;

    client
        .git
        .run(&checkout, &["-c", &ca_config, "push", "origin", "main"])
        .with_context(|| server.log())?;

    assert_eq!(root.head(REPO, "main")?, Some(pushed));
    let log = server.log();
    assert!(log.contains("git-receive-pack [chunked] -> 200"), "{log}");
    Ok(())
}

#[tokio::test]
async fn https_fetch_with_a_long_negotiation_sends_gzip_bodies() -> Result<()> {
    let (root, server, _) = https_fixture().await?;
    let client = Client::new()?;
    let ca = client.write("ca.pem", &server.ca_pem())?;
    let ca_config = format!("http.sslCAInfo={}", ca.display());
    let url = with_credentials(&server.repo_url(REPO), USER, PASSWORD);
    client.git.run(
        client.dir.path(),
        &["-c", &ca_config, "clone", &url, "checkout"],
    )?;
    let checkout = client.path("checkout");
    // Local commits the server lacks become "have" lines, and git gzips a request body of
    // more than 1 KiB. They are dated after the cloned commit, because negotiation sends the
    // newest commits first: with equal timestamps git may offer the common commit (known as
    // origin/main) early, the server acknowledges it, and the requests stay small.
    let later = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs()
        + 3600;
    for number in 0..100 {
        let message = format!("local {number}");
        let date = format!("@{} +0000", later + number);
        client.git.run_with_env(
            &checkout,
            &["commit", "-q", "--allow-empty", "-m", &message],
            &[("GIT_AUTHOR_DATE", &date), ("GIT_COMMITTER_DATE", &date)],
        )?;
    }
    let remote = root.commit(REPO, "main", &[("remote.yaml", "x: 1\n")], "remote")?;

    client
        .git
        .run(&checkout, &["-c", &ca_config, "fetch", "origin"])
        .with_context(|| server.log())?;

    let fetched = client.git.run(&checkout, &["rev-parse", "origin/main"])?;
    assert_eq!(fetched, remote);
    let log = server.log();
    assert!(log.contains("git-upload-pack [gzip] -> 200"), "{log}");
    Ok(())
}

/// Live processes (not zombies) whose command line mentions `needle`.
fn live_processes_mentioning(needle: &str) -> Vec<String> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| {
            let pid: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let state = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .next()?
                .to_owned();
            let cmdline = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            (state != "Z" && cmdline.contains(needle)).then(|| format!("{pid} {cmdline}"))
        })
        .collect()
}

#[tokio::test]
async fn ssh_server_drop_ends_sessions_still_in_flight() -> Result<()> {
    let client = SshClient::new()?;
    let (root, server, _) = ssh_fixture(&[&client.key]).await?;
    client.trust(&server.known_hosts_line())?;
    let repo = root.repo_path(REPO)?;
    let repo = path_str(&repo).to_owned();
    // upload-pack advertises its refs and then waits for the client, which never answers.
    let mut session = std::process::Command::new("ssh")
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", client.client.dir.path())
        .args(client.ssh_command().split_whitespace().skip(1))
        .args(["-p", &server.port().to_string(), "git@127.0.0.1"])
        .arg(format!("git-upload-pack '{repo}'"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let mut advertisement = [0_u8; 4];
    let stdout = session.stdout.as_mut().context("no stdout")?;
    std::io::Read::read_exact(stdout, &mut advertisement)?;
    assert!(!live_processes_mentioning(&repo).is_empty());

    drop(server);

    let mut remaining = live_processes_mentioning(&repo);
    for _ in 0..40 {
        if remaining.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        remaining = live_processes_mentioning(&repo);
    }
    let _ = session.kill();
    let _ = session.wait();
    assert!(remaining.is_empty(), "{remaining:?}");
    Ok(())
}
