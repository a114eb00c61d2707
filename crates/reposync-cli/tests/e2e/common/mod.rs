//! Runs the real `reposync` binary: a server on a free loopback port with its own data
//! directory, and CLI commands against it. Every output is kept so that tests can check that
//! no secret leaked into any of it. A server runs on a [`Backend`]: the SQLite file in its
//! data directory, or a fresh PostgreSQL database of the test cluster; `on_each_backend!`
//! runs a test's body on each one this run has.

#![allow(dead_code, clippy::expect_used, clippy::unwrap_used)]

pub mod balancer;
pub mod browser;
pub mod delegate;
pub mod generated;
pub mod git_fixture;
pub mod hold;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reposync_testkit::TestPostgres;

/// The store a test server runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The SQLite file in the server's data directory (`REPOSYNC_DATABASE_URL` unset).
    Sqlite,
    /// A fresh database of the test cluster `REPOSYNC_TEST_POSTGRES` names, dropped with the
    /// [`TestApp`] (restarts included: the database outlives the server process).
    Postgres,
}

impl Backend {
    /// The backends this run has: PostgreSQL only when a cluster is named, so that a bare
    /// `cargo test` still runs every test (on SQLite).
    pub fn all() -> Vec<Backend> {
        let mut backends = vec![Backend::Sqlite];
        if TestPostgres::available() {
            backends.push(Backend::Postgres);
        }
        backends
    }

    /// A fresh database for one server on this backend; `None` for SQLite, whose file the
    /// server makes in its data directory.
    pub fn database(self) -> Option<TestPostgres> {
        match self {
            Backend::Sqlite => None,
            Backend::Postgres => Some(
                TestPostgres::create_blocking()
                    .expect("a test database")
                    .expect("Backend::all offers PostgreSQL only when a cluster is named"),
            ),
        }
    }
}

/// One run of a test body on a backend (see `on_each_backend!`): says which backend it is on
/// when it starts, and again after the panic when it fails, so that a failure is never read
/// as the other backend's.
pub struct OnBackend(Backend);

impl OnBackend {
    pub fn start(backend: Backend) -> OnBackend {
        eprintln!("on {backend:?}");
        OnBackend(backend)
    }
}

impl Drop for OnBackend {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("the test failed on {:?}", self.0);
        }
    }
}

/// Runs `$body` once per backend of [`Backend::all`], with `$backend` bound to each in turn
/// (SQLite first); a failure names the backend it was on. (The benches share this module
/// and use none of it.)
#[allow(unused_macros)]
macro_rules! on_each_backend {
    ($backend:ident, $body:block) => {
        for $backend in $crate::common::Backend::all() {
            let _on = $crate::common::OnBackend::start($backend);
            $body
        }
    };
}

/// A `reposync serve` process and the outputs of every command run against it.
pub struct TestApp {
    pub dir: tempfile::TempDir,
    pub url: String,
    pub token: String,
    server: Child,
    server_log: PathBuf,
    transcript: Arc<Mutex<String>>,
    /// The `serve` arguments it was started with, used again on every restart.
    serve_args: Vec<String>,
    /// The PostgreSQL database the server runs on, `None` on SQLite. Every restart uses it
    /// again, and it is dropped only after `Drop::drop` has killed the server (fields drop
    /// after it).
    postgres: Option<Arc<TestPostgres>>,
    /// The URL the server reaches that database at: the database's own, or a proxy's.
    database_url: Option<String>,
}

/// One CLI run.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    #[track_caller]
    pub fn ok(&self) -> &Self {
        assert_eq!(
            self.code, 0,
            "expected success\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub fn fails(&self) -> &Self {
        assert_ne!(
            self.code, 0,
            "expected failure\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }
}

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_reposync")
}

/// A temporary directory whose `data` holds the master key `key` (base64), mode 0600, as
/// an operator gives every replica the same key.
fn dir_with_master_key(key: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&data)
        .expect("data dir");
    let file = data.join("master.key");
    std::fs::write(&file, format!("{}\n", key.trim())).expect("the master key");
    std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("key mode");
    dir
}

/// The environment every child gets: nothing of the host's but PATH.
pub fn hermetic(command: &mut Command, home: &Path) {
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home);
}

impl TestApp {
    /// Starts a server with debug logging on SQLite and waits until it answers.
    pub fn spawn() -> TestApp {
        TestApp::spawn_with(&[])
    }

    /// [`TestApp::spawn`] with extra `serve` arguments.
    pub fn spawn_with(extra_args: &[&str]) -> TestApp {
        TestApp::spawn_on(Backend::Sqlite, extra_args)
    }

    /// Starts a server on `backend` with extra `serve` arguments: on PostgreSQL, in a fresh
    /// database that only this server's process is told of (`REPOSYNC_DATABASE_URL`).
    pub fn spawn_on(backend: Backend, extra_args: &[&str]) -> TestApp {
        let postgres = backend.database().map(Arc::new);
        TestApp::start_on(postgres, |url| url.to_owned(), extra_args)
    }

    /// Starts a server on a fresh PostgreSQL database that it reaches at the URL `route`
    /// makes of the database's own (through a proxy the test can cut, say).
    pub fn spawn_on_postgres_via(
        route: impl FnOnce(&str) -> String,
        extra_args: &[&str],
    ) -> TestApp {
        let postgres = Backend::Postgres.database().map(Arc::new);
        TestApp::start_on(postgres, route, extra_args)
    }

    fn start_on(
        postgres: Option<Arc<TestPostgres>>,
        route: impl FnOnce(&str) -> String,
        extra_args: &[&str],
    ) -> TestApp {
        let dir = tempfile::tempdir().expect("tempdir");
        let database_url = postgres.as_deref().map(|db| route(db.url()));
        let (server, url, token, transcript, server_log) = start_server(
            dir.path(),
            "127.0.0.1:0",
            extra_args,
            database_url.as_deref(),
        );
        assert!(token.starts_with("rsp_"), "no admin token printed");
        assert!(
            postgres.is_none() || !dir.path().join("data/reposync.db").exists(),
            "the server made a SQLite file though it was given PostgreSQL"
        );
        TestApp {
            dir,
            url,
            token,
            server,
            server_log,
            transcript,
            serve_args: extra_args.iter().map(|a| (*a).to_owned()).collect(),
            postgres,
            database_url,
        }
    }

    /// Starts another replica of this server: a data directory of its own, the same
    /// PostgreSQL database, and the same master key (its file copied, as an operator would).
    /// It makes no first admin; this server's admin token works on it.
    pub fn spawn_replica(&self, extra_args: &[&str]) -> TestApp {
        let postgres = self
            .postgres
            .clone()
            .expect("replicas share a PostgreSQL database");
        let key =
            std::fs::read_to_string(self.data_dir().join("master.key")).expect("the master key");
        let dir = dir_with_master_key(&key);
        let (server, url, token, transcript, server_log) = start_server(
            dir.path(),
            "127.0.0.1:0",
            extra_args,
            self.database_url.as_deref(),
        );
        assert!(
            token.is_empty(),
            "a second replica made another first admin"
        );
        TestApp {
            dir,
            url,
            token: self.token.clone(),
            server,
            server_log,
            transcript,
            serve_args: extra_args.iter().map(|a| (*a).to_owned()).collect(),
            postgres: Some(postgres),
            database_url: self.database_url.clone(),
        }
    }

    /// Starts `count` replicas at the same moment on one fresh PostgreSQL database, each with
    /// a data directory of its own and the same master key (its file put there, as an
    /// operator would): they race to migrate the empty database and to make its first admin.
    /// Every replica carries the one admin token that was printed.
    pub fn spawn_replicas_at_once(count: usize, extra_args: &[&str]) -> Vec<TestApp> {
        let postgres = Backend::Postgres
            .database()
            .map(Arc::new)
            .expect("PostgreSQL");
        let key = reposync_secrets::MasterKey::generate().to_base64();
        let dirs: Vec<tempfile::TempDir> = (0..count).map(|_| dir_with_master_key(&key)).collect();
        let started: Vec<_> = std::thread::scope(|scope| {
            let starting: Vec<_> = dirs
                .iter()
                .map(|dir| {
                    let url = postgres.url();
                    scope.spawn(move || {
                        start_server(dir.path(), "127.0.0.1:0", extra_args, Some(url))
                    })
                })
                .collect();
            starting
                .into_iter()
                .map(|start| start.join().expect("a replica started"))
                .collect()
        });
        let tokens: Vec<String> = started
            .iter()
            .map(|(_, _, token, _, _)| token.clone())
            .filter(|token| !token.is_empty())
            .collect();
        assert_eq!(
            tokens.len(),
            1,
            "exactly one replica made the first admin: {tokens:?}"
        );
        dirs.into_iter()
            .zip(started)
            .map(|(dir, (server, url, _, transcript, server_log))| TestApp {
                dir,
                url,
                token: tokens[0].clone(),
                server,
                server_log,
                transcript,
                serve_args: extra_args.iter().map(|a| (*a).to_owned()).collect(),
                postgres: Some(Arc::clone(&postgres)),
                database_url: Some(postgres.url().to_owned()),
            })
            .collect()
    }

    /// The PostgreSQL database the server runs on, if it runs on one.
    pub fn database_url(&self) -> Option<&str> {
        self.postgres.as_deref().map(TestPostgres::url)
    }

    /// The backend the server runs on.
    pub fn backend(&self) -> Backend {
        if self.postgres.is_some() {
            Backend::Postgres
        } else {
            Backend::Sqlite
        }
    }

    /// Kills the server and every process it started (git, ssh, their helpers) with SIGKILL,
    /// no clean shutdown at all, and starts it again on the same data directory and database.
    /// The admin token stays the same.
    pub fn crash_and_restart(&mut self) {
        self.kill_with_children();
        self.restart();
    }

    /// SIGKILLs the server and all its descendants at once. The tree is frozen with SIGSTOP
    /// while it is collected, so nothing is started behind the collection's back; git runs
    /// in process groups of its own, so killing the server's group would miss it.
    pub fn kill_with_children(&mut self) {
        let root = self.server.id();
        let mut tree = vec![root];
        signal("STOP", root);
        loop {
            let children: Vec<u32> = processes()
                .into_iter()
                .filter(|(pid, parent)| tree.contains(parent) && !tree.contains(pid))
                .map(|(pid, _)| pid)
                .collect();
            if children.is_empty() {
                break;
            }
            for pid in children {
                signal("STOP", pid);
                tree.push(pid);
            }
        }
        for pid in &tree {
            signal("KILL", *pid);
        }
        let _ = self.server.wait();
    }

    /// Starts the server again on the same data directory, database and port, after
    /// `kill_with_children`: remote delegates and webhook senders find it where it was. The
    /// database has its users, so no new admin token is printed: the first one stays.
    pub fn restart(&mut self) {
        let args: Vec<&str> = self.serve_args.iter().map(String::as_str).collect();
        let listen = self
            .url
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        let (server, url, _, transcript, server_log) = start_server(
            self.dir.path(),
            &listen,
            &args,
            self.database_url.as_deref(),
        );
        self.server = server;
        self.url = url;
        self.server_log = server_log;
        if let (Ok(mut all), Ok(new)) = (self.transcript.lock(), transcript.lock()) {
            all.push_str(&new);
        }
    }

    /// Starts the server again, after `stop` or `kill_with_children`, with other `serve`
    /// arguments from now on.
    pub fn restart_with(&mut self, extra_args: &[&str]) {
        self.serve_args = extra_args.iter().map(|a| (*a).to_owned()).collect();
        self.restart();
    }

    pub fn pid(&self) -> u32 {
        self.server.id()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Runs `reposync ARGS` against this server, with `stdin` as standard input.
    pub fn cli(&self, args: &[&str], stdin: Option<&str>) -> Run {
        self.cli_with_env(args, stdin, &[])
    }

    /// [`TestApp::cli`] with environment variables besides the hermetic ones (`TZ`).
    pub fn cli_with_env(&self, args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Run {
        self.run_cli(Some(&self.token), args, stdin, env)
    }

    /// [`TestApp::cli`] with another user's token (through `REPOSYNC_TOKEN`, as a user would
    /// keep it), or with none, for the login the CLI saved.
    pub fn cli_as(&self, token: Option<&str>, args: &[&str], stdin: Option<&str>) -> Run {
        self.run_cli(token, args, stdin, &[])
    }

    fn run_cli(
        &self,
        token: Option<&str>,
        args: &[&str],
        stdin: Option<&str>,
        env: &[(&str, &str)],
    ) -> Run {
        let mut command = Command::new(binary());
        hermetic(&mut command, self.dir.path());
        command.envs(env.iter().copied());
        if let Some(token) = token {
            command.env("REPOSYNC_TOKEN", token);
        }
        command
            .args(["--server", &self.url])
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("run reposync");
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(input.as_bytes())
                .expect("write stdin");
        }
        let Output {
            status,
            stdout,
            stderr,
        } = child.wait_with_output().expect("wait");
        let run = Run {
            code: status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        };
        if let Ok(mut t) = self.transcript.lock() {
            t.push_str(&format!(
                "$ reposync {}\n{}{}",
                args.join(" "),
                run.stdout,
                run.stderr
            ));
        }
        run
    }

    /// Everything printed so far: CLI outputs (API responses) and the server's own output.
    pub fn transcript(&self) -> String {
        self.transcript
            .lock()
            .map(|t| t.clone())
            .unwrap_or_default()
    }

    pub fn server_log(&self) -> String {
        std::fs::read_to_string(&self.server_log).unwrap_or_default()
    }

    /// Stops the server with SIGTERM and waits until it has exited, so the database is closed.
    pub fn stop(&mut self) -> i32 {
        let pid = self.server.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = self.server.try_wait() {
                return status.code().unwrap_or(-1);
            }
            if Instant::now() > deadline {
                let _ = self.server.kill();
                panic!("server did not stop within 10 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Asserts that none of `secrets` appears in any output or in the database files.
    #[track_caller]
    pub fn assert_no_leak(&self, secrets: &[&str]) {
        self.assert_none_in(secrets, true);
    }

    /// Asserts that none of `secrets` appears in the server log or the database files: for
    /// values a command rightly shows its user (a webhook URL and secret).
    #[track_caller]
    pub fn assert_not_logged_or_stored(&self, secrets: &[&str]) {
        self.assert_none_in(secrets, false);
    }

    #[track_caller]
    fn assert_none_in(&self, secrets: &[&str], outputs_too: bool) {
        let mut places = Vec::new();
        if outputs_too {
            places.push((
                "CLI outputs and API responses".to_owned(),
                self.transcript().into_bytes(),
            ));
        }
        places.push(("server log".to_owned(), self.server_log().into_bytes()));
        let database = self.database_contents();
        assert!(
            database.first().is_some_and(|(_, bytes)| !bytes.is_empty()),
            "no database to search: {:?}",
            database.first().map(|(name, _)| name)
        );
        places.extend(database);
        for secret in secrets {
            assert!(
                secret.len() >= 8,
                "too short to search for reliably: {secret:?}"
            );
            for (name, bytes) in &places {
                let found = bytes.windows(secret.len()).any(|w| w == secret.as_bytes());
                assert!(!found, "a secret value leaked into the {name}");
            }
        }
    }

    /// What the database holds, by where it is, the main place first: on SQLite its files
    /// (the main file, empty if missing, then the write-ahead log and shared memory, when
    /// they exist), on PostgreSQL every value of every table (see `TestPostgres::dump`).
    pub fn database_contents(&self) -> Vec<(String, Vec<u8>)> {
        match &self.postgres {
            Some(database) => vec![(
                "PostgreSQL database".to_owned(),
                database.dump().expect("the test database's rows"),
            )],
            None => {
                let read = |file: &str| std::fs::read(self.data_dir().join(file));
                let main = read("reposync.db").unwrap_or_default();
                let mut files = vec![("reposync.db".to_owned(), main)];
                for file in ["reposync.db-wal", "reposync.db-shm"] {
                    if let Ok(bytes) = read(file) {
                        files.push((file.to_owned(), bytes));
                    }
                }
                files
            }
        }
    }

    /// The database's size on disk: SQLite's main file and its write-ahead log, or the
    /// PostgreSQL database's size.
    pub fn database_bytes(&self) -> u64 {
        match &self.postgres {
            Some(database) => database.size_bytes().expect("the test database's size"),
            None => ["reposync.db", "reposync.db-wal"]
                .iter()
                .map(|file| {
                    std::fs::metadata(self.data_dir().join(file))
                        .map(|m| m.len())
                        .unwrap_or(0)
                })
                .sum(),
        }
    }
}

/// Every process on the machine with its parent, from `/proc`.
pub fn processes() -> Vec<(u32, u32)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            // `pid (comm) state ppid …`: the command may hold spaces and parentheses.
            let after = &stat[stat.rfind(')')? + 1..];
            let parent = after.split_whitespace().nth(1)?.parse().ok()?;
            Some((pid, parent))
        })
        .collect()
}

pub fn signal(name: &str, pid: u32) {
    let _ = Command::new("kill")
        .args([format!("-{name}"), pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

/// Starts `reposync serve` on `dir/data` (and the PostgreSQL database `database_url` names,
/// if any), waits until it listens, and returns the process, its URL, the admin token if it
/// printed one, its stdout transcript and its log file.
#[allow(clippy::type_complexity)]
fn start_server(
    dir: &Path,
    listen: &str,
    extra_args: &[&str],
    database_url: Option<&str>,
) -> (Child, String, String, Arc<Mutex<String>>, PathBuf) {
    let mut number = 0;
    let server_log = loop {
        let candidate = dir.join(format!("server-{number}.log"));
        if !candidate.exists() {
            break candidate;
        }
        number += 1;
    };
    let log = std::fs::File::create(&server_log).expect("log file");
    let mut command = Command::new(binary());
    hermetic(&mut command, dir);
    // A system temporary directory of its own, so that tests can tell what the server left
    // outside its data directory.
    let system_tmp = dir.join("system-tmp");
    std::fs::create_dir_all(&system_tmp).expect("system tmp");
    // The database URL goes to the server only: CLI commands reach the store through it.
    if let Some(url) = database_url {
        command.env("REPOSYNC_DATABASE_URL", url);
    }
    command
        .env("TMPDIR", &system_tmp)
        .env("REPOSYNC_LOG", "debug")
        .args(["serve", "--listen", listen, "--data-dir"])
        .arg(dir.join("data"))
        .args(extra_args)
        .stdout(Stdio::piped())
        .stderr(log)
        .stdin(Stdio::null());
    let mut server = command.spawn().expect("start reposync serve");
    let stdout = server.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut token = String::new();
    let mut url = String::new();
    let mut printed = String::new();
    while url.is_empty() {
        let line = lines.next().and_then(Result::ok).unwrap_or_else(|| {
            panic!(
                "server exited early: {}",
                std::fs::read_to_string(&server_log).unwrap_or_default()
            )
        });
        printed.push_str(&line);
        printed.push('\n');
        if line.starts_with("rsp_") {
            token = line.trim().to_owned();
        }
        if let Some(address) = line.strip_prefix("reposync listening on ") {
            url = address.trim().to_owned();
        }
    }
    // Keep draining stdout so the server never blocks on a full pipe.
    let transcript = Arc::new(Mutex::new(printed));
    let sink = transcript.clone();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if let Ok(mut t) = sink.lock() {
                t.push_str(&line);
                t.push('\n');
            }
        }
    });
    (server, url, token, transcript, server_log)
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

/// The longest line of a key file: a piece of the private key that must never show up.
pub fn key_body_line(key_text: &str) -> String {
    key_text
        .lines()
        .max_by_key(|l| l.len())
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// Generates a key with ssh-keygen: `extra` selects type and format.
pub fn ssh_keygen(dir: &Path, name: &str, extra: &[&str], passphrase: &str) -> (PathBuf, String) {
    let path = dir.join(name);
    let mut command = Command::new("ssh-keygen");
    hermetic(&mut command, dir);
    let status = command
        .args(["-q", "-N", passphrase, "-C", name, "-f"])
        .arg(&path)
        .args(extra)
        .status()
        .expect("ssh-keygen");
    assert!(status.success(), "ssh-keygen failed for {name}");
    let public = std::fs::read_to_string(path.with_extension("pub")).expect("public key");
    (path, public.trim().to_owned())
}
