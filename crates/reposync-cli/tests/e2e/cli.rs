//! The CLI's own contract: global flags in any position, finding the token, exit codes, and
//! clean shutdown of `serve`.

#![allow(clippy::expect_used)] // Test helpers outside #[test] functions may panic.

use crate::common;

use std::process::{Command, Stdio};

use common::{TestApp, binary, hermetic};

#[test]
fn global_flags_work_before_and_after_the_subcommand() {
    let app = TestApp::spawn();
    app.cli(
        &["secret", "create", "tok", "--value-stdin"],
        Some("value-1234567"),
    )
    .ok();
    let before = app.cli(&["--json", "secret", "list"], None);
    let after = app.cli(&["secret", "list", "--json"], None);
    assert_eq!(before.ok().json(), after.ok().json());
    assert_eq!(before.json()["items"][0]["name"], "tok");

    // --server and --token after the subcommand too.
    let mut command = Command::new(binary());
    hermetic(&mut command, app.dir.path());
    let output = command
        .args([
            "secret", "list", "--server", &app.url, "--token", &app.token,
        ])
        .output()
        .expect("run");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(
        table.starts_with("NAME") && table.contains("Encrypted Text"),
        "{table}"
    );
}

#[test]
fn without_a_token_the_cli_reads_the_data_directory_token_file() {
    let app = TestApp::spawn();
    let mut command = Command::new(binary());
    hermetic(&mut command, app.dir.path());
    let output = command
        .args(["secret", "list", "--server", &app.url, "--data-dir"])
        .arg(app.data_dir())
        .output()
        .expect("run");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let mut command = Command::new(binary());
    hermetic(&mut command, app.dir.path());
    let output = command
        .args([
            "secret",
            "list",
            "--server",
            &app.url,
            "--data-dir",
            "/nonexistent",
        ])
        .output()
        .expect("run");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("no API token"));
}

#[test]
fn failures_exit_non_zero_with_the_message_on_stderr() {
    let app = TestApp::spawn();
    let run = app.cli(&["connector", "show", "nope"], None);
    run.fails();
    assert!(run.stdout.is_empty());
    assert!(
        run.stderr.contains("connector \"nope\" does not exist"),
        "{}",
        run.stderr
    );

    let run = app.cli(
        &[
            "connector",
            "add",
            "--name",
            "x",
            "--url",
            "https://bitbucket.org/acme/r.git",
        ],
        None,
    );
    assert!(
        run.fails().stderr.contains("--branch: is required"),
        "the flag, not the API field: {}",
        run.stderr
    );

    // A missing secret names the flag and the command that makes one of the right kind.
    let add = |url: &str, secret_flag: &str| {
        app.cli(
            &[
                "connector",
                "add",
                "--name",
                "x",
                "--url",
                url,
                "--username",
                "u",
                "--branch",
                "main",
                secret_flag,
                "nope",
            ],
            None,
        )
    };
    let run = add("https://bitbucket.org/acme/r.git", "--password-secret");
    assert!(
        run.fails().stderr.contains(
            "--password-secret: secret \"nope\" does not exist; create it first with `reposync secret create nope --value-stdin`"
        ),
        "{}",
        run.stderr
    );
    let run = app.cli(
        &[
            "connector",
            "add",
            "--name",
            "x",
            "--url",
            "git@bitbucket.org:acme/r.git",
            "--branch",
            "main",
            "--ssh-key-secret",
            "nokey",
        ],
        None,
    );
    let stderr = &run.fails().stderr;
    assert!(
        stderr.contains("--ssh-key-secret: secret \"nokey\" does not exist")
            && stderr.contains("secret create-ssh nokey --key-file FILE")
            && stderr.contains("secret generate-ssh-key nokey"),
        "{stderr}"
    );

    // A Bitbucket page copied from the browser is refused with the clone URL to use.
    let run = app.cli(
        &[
            "connector",
            "add",
            "--name",
            "page",
            "--url",
            "https://bitbucket.org/acme/config/src/main/",
            "--username",
            "u",
            "--password-secret",
            "s",
            "--branch",
            "main",
        ],
        None,
    );
    assert!(
        run.fails()
            .stderr
            .contains("not a clone URL; use https://bitbucket.org/acme/config.git"),
        "{}",
        run.stderr
    );

    // Names that differ only in letter case collide on case-insensitive checkouts.
    app.cli(&["app", "create", "TODO"], None).ok();
    let run = app.cli(&["app", "create", "Todo"], None);
    assert!(
        run.fails().stderr.contains(
            "Setup/Applications/Todo differs only in letter case from Setup/Applications/TODO"
        ),
        "{}",
        run.stderr
    );

    // Names that deceive: a zero-width space makes "To​do" look like "Todo".
    let run = app.cli(&["app", "create", "To\u{200B}do"], None);
    assert!(
        run.fails()
            .stderr
            .contains("invisible character (found U+200B)"),
        "{}",
        run.stderr
    );
    assert!(
        !app.cli(&["app", "list"], None)
            .ok()
            .stdout
            .contains("To\u{200B}do"),
        "nothing was created"
    );

    let mut command = Command::new(binary());
    hermetic(&mut command, app.dir.path());
    let output = command
        .args([
            "--server",
            "http://127.0.0.1:9",
            "--token",
            "t",
            "secret",
            "list",
        ])
        .output()
        .expect("run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot reach the reposync server"),
        "{stderr}"
    );
    assert!(
        stderr.contains("is `reposync serve` running there?") && stderr.contains("--server"),
        "points at serve and --server: {stderr}"
    );

    // A server given without its scheme is refused, saying what to write.
    for (server, want) in [
        ("127.0.0.1:9", "give http://127.0.0.1:9"),
        ("localhost:9", "give http://localhost:9"),
        ("http://", "names no host"),
    ] {
        let mut command = Command::new(binary());
        hermetic(&mut command, app.dir.path());
        let output = command
            .args(["--server", server, "--token", "t", "secret", "list"])
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{server}");
        assert!(
            stderr.contains("--server") && stderr.contains(want),
            "{server}: {stderr}"
        );
    }
}

#[test]
fn serve_stops_cleanly_on_sigint_and_sigterm_and_keeps_its_state() {
    let mut app = TestApp::spawn();
    app.cli(
        &["secret", "create", "kept", "--value-stdin"],
        Some("value-abcdefgh"),
    )
    .ok();
    let pid = app_pid(&app);
    let status = Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill");
    assert!(status.success());
    assert_eq!(app.stop(), 0, "exit code after SIGINT");

    // A second start on the same data directory reuses the key and the database, and prints
    // no new token.
    let (mut server, url) = serve_existing(app.dir.path(), &app.data_dir());
    let mut list = Command::new(binary());
    hermetic(&mut list, app.dir.path());
    let output = list
        .args([
            "--json", "--server", &url, "--token", &app.token, "secret", "list",
        ])
        .output()
        .expect("list");
    assert!(String::from_utf8_lossy(&output.stdout).contains("\"kept\""));
    let _ = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status();
    assert_eq!(server.wait().expect("wait").code(), Some(0));
}

/// Starts `serve` on a data directory that holds a store already, and answers the server and
/// its URL. Its first line is the address: no new admin token is printed.
fn serve_existing(home: &std::path::Path, data: &std::path::Path) -> (std::process::Child, String) {
    let mut command = Command::new(binary());
    hermetic(&mut command, home);
    let mut server = command
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve");
    let mut stdout = std::io::BufReader::new(server.stdout.take().expect("stdout"));
    let mut first = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut first).expect("line");
    let url = first
        .trim()
        .strip_prefix("reposync listening on ")
        .unwrap_or_else(|| panic!("no new token, just the address: {first}"))
        .to_owned();
    (server, url)
}

fn app_pid(app: &TestApp) -> String {
    app.pid().to_string()
}

/// `reposync … | head -1`: the reader goes away, and every command that prints ends quietly
/// and successfully instead of panicking. The pipe's read end is closed before the command
/// starts, so every write it makes fails.
#[test]
fn a_closed_pipe_ends_every_printing_command_quietly() {
    let app = TestApp::spawn();
    app.cli(
        &["secret", "create", "tok", "--value-stdin"],
        Some("value-1234567"),
    )
    .ok();
    app.cli(&["app", "create", "Shop"], None).ok();
    let commands: &[&[&str]] = &[
        &["secret", "list"],
        &["secret", "list", "--json"],
        &["app", "list"],
        &["app", "show", "Shop"],
        &["sync", "activity"],
        &["sync", "status"],
        &["delegate", "list"],
        &["--help"],
        &["sync", "--help"],
    ];
    for args in commands {
        let (reader, writer) = std::io::pipe().expect("pipe");
        drop(reader);
        let mut command = Command::new(binary());
        hermetic(&mut command, app.dir.path());
        let output = command
            .args(["--server", &app.url, "--token", &app.token])
            .args(*args)
            .stdin(Stdio::null())
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .expect("run reposync");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

/// One server per data directory: a second `serve` on it is refused at once, naming the
/// process that holds it, and the first keeps serving.
#[test]
fn a_second_server_on_the_same_data_directory_is_refused_naming_the_first() {
    let app = TestApp::spawn();
    let mut command = Command::new(binary());
    hermetic(&mut command, app.dir.path());
    let output = command
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(app.data_dir())
        .stdin(Stdio::null())
        .output()
        .expect("second serve");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_ne!(output.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "is in use by another reposync server (process {})",
            app.pid()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("--data-dir"), "says what to do: {stderr}");
    app.cli(&["secret", "list"], None).ok();
}

/// Ready means ready: the port opens only once the database is migrated and the admin token
/// file written, so a CLI started the moment it opens finds its token and a working server.
#[test]
fn the_port_opens_only_once_the_server_is_ready() {
    let home = tempfile::tempdir().expect("tempdir");
    let data = home.path().join("data");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let address = format!("127.0.0.1:{port}");
    let mut command = Command::new(binary());
    hermetic(&mut command, home.path());
    let mut server = command
        .args(["serve", "--listen", &address, "--data-dir"])
        .arg(&data)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::net::TcpStream::connect(&address).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "the port never opened"
        );
        assert!(server.try_wait().expect("status").is_none(), "serve exited");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let token_file = data.join("admin.token");
    assert!(
        std::fs::read_to_string(&token_file).is_ok_and(|t| t.starts_with("rsp_")),
        "the token file is written before the port opens"
    );
    // Ready means the database answers and every background worker runs.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (status, body) = runtime.block_on(async {
        let response = reqwest::get(format!("http://{address}/readyz"))
            .await
            .expect("readyz");
        (
            response.status().as_u16(),
            response.text().await.unwrap_or_default(),
        )
    });
    assert_eq!((status, body.as_str()), (200, r#"{"status":"ready"}"#));
    let mut list = Command::new(binary());
    hermetic(&mut list, home.path());
    let output = list
        .args(["--server", &format!("http://{address}"), "--data-dir"])
        .arg(&data)
        .args(["secret", "list"])
        .output()
        .expect("list");
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let _ = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status();
    assert_eq!(server.wait().expect("wait").code(), Some(0));
}

/// `reposync backup` during writes, then `reposync restore` into a new data directory: a
/// server started on it holds every write acknowledged before the backup began. A restore
/// over the data directory of a running server is refused.
#[test]
fn a_backup_taken_during_writes_restores_every_acknowledged_write() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    let app = TestApp::spawn();
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (url, token, home) = (
            app.url.clone(),
            app.token.clone(),
            app.dir.path().to_owned(),
        );
        let (acknowledged, stop) = (acknowledged.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                let name = format!("s{n}");
                let mut command = Command::new(binary());
                hermetic(&mut command, &home);
                let mut child = command
                    .args(["--server", &url, "--token", &token])
                    .args(["secret", "create", &name, "--value-stdin"])
                    .stdin(Stdio::piped())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("secret create");
                std::io::Write::write_all(
                    &mut child.stdin.take().expect("stdin"),
                    b"value-0123456789",
                )
                .expect("value");
                if child.wait().expect("wait").success() {
                    acknowledged.lock().expect("names").push(name);
                }
                n += 1;
            }
        })
    };
    // Some writes are acknowledged before the backup begins, and more go on during it.
    while acknowledged.lock().expect("names").len() < 5 {
        std::thread::yield_now();
    }
    let before: Vec<String> = acknowledged.lock().expect("names").clone();
    let out = app.dir.path().join("store.backup");
    let backup = app.cli(
        &[
            "--data-dir",
            app.data_dir().to_str().expect("utf-8"),
            "backup",
            "--out",
            out.to_str().expect("utf-8"),
        ],
        None,
    );
    backup.ok();
    assert!(backup.stderr.contains("master key"), "{}", backup.stderr);
    stop.store(true, Ordering::SeqCst);
    writer.join().expect("writer");

    // A backup never overwrites a file, and a file that is not a backup is never restored.
    let again = app.cli(
        &[
            "--data-dir",
            app.data_dir().to_str().expect("utf-8"),
            "backup",
            "--out",
            out.to_str().expect("utf-8"),
        ],
        None,
    );
    assert!(
        again.fails().stderr.contains("exists already"),
        "{}",
        again.stderr
    );
    let not_a_backup = app.dir.path().join("notes.txt");
    std::fs::write(&not_a_backup, "hello").expect("write");
    let wrong = app.cli(
        &[
            "--data-dir",
            app.dir.path().join("other").to_str().expect("utf-8"),
            "restore",
            not_a_backup.to_str().expect("utf-8"),
        ],
        None,
    );
    assert!(
        wrong.fails().stderr.contains("is not a reposync backup"),
        "{}",
        wrong.stderr
    );
    assert!(
        !app.dir.path().join("other/reposync.db").exists(),
        "nothing was put in place"
    );

    // The running server's data directory cannot be restored over.
    let refused = app.cli(
        &[
            "--data-dir",
            app.data_dir().to_str().expect("utf-8"),
            "restore",
            out.to_str().expect("utf-8"),
            "--replace",
        ],
        None,
    );
    assert!(
        refused
            .fails()
            .stderr
            .contains("in use by another reposync server"),
        "{}",
        refused.stderr
    );

    let elsewhere = tempfile::tempdir().expect("tempdir");
    let data = elsewhere.path().join("data");
    app.cli(
        &[
            "--data-dir",
            data.to_str().expect("utf-8"),
            "restore",
            out.to_str().expect("utf-8"),
        ],
        None,
    )
    .ok();
    std::fs::copy(app.data_dir().join("master.key"), data.join("master.key")).expect("key");
    let (mut server, url) = serve_existing(elsewhere.path(), &data);
    let mut list = Command::new(binary());
    hermetic(&mut list, elsewhere.path());
    let output = list
        .args([
            "--json", "--server", &url, "--token", &app.token, "secret", "list",
        ])
        .output()
        .expect("list");
    let listed = String::from_utf8_lossy(&output.stdout);
    for name in &before {
        assert!(
            listed.contains(&format!("\"{name}\"")),
            "{name} was acknowledged before the backup: {listed}"
        );
    }
    let _ = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status();
    assert_eq!(server.wait().expect("wait").code(), Some(0));
}

/// `reposync version` names this client's build and the server's, with the database schema;
/// the commit is the checkout's, read at build time.
#[test]
fn version_shows_the_client_and_the_server_with_its_schema() {
    let app = TestApp::spawn();
    let shown = app.cli(&["version"], None).ok().stdout.clone();
    let lines: Vec<&str> = shown.lines().collect();
    assert_eq!(lines.len(), 2, "{shown}");
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        lines[0].starts_with(&format!("client  {version} (commit ")),
        "{shown}"
    );
    assert!(
        lines[1].starts_with(&format!("server  {version} (commit ")),
        "{shown}"
    );
    assert!(lines[1].contains(", database schema "), "{shown}");

    let json = app.cli(&["--json", "version"], None).ok().json();
    assert_eq!(
        json["client"],
        serde_json::json!({
            "version": version,
            "git_commit": json["server"]["git_commit"],
            "build_date": json["server"]["build_date"],
        })
    );
    assert!(
        json["server"]["schema_version"]
            .as_i64()
            .is_some_and(|v| v > 0),
        "{json}"
    );
    let commit = json["server"]["git_commit"].as_str().expect("commit");
    let checkout = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.git");
    if checkout.exists() {
        assert!(
            commit.len() == 40 && commit.bytes().all(|b| b.is_ascii_hexdigit()),
            "a checkout names its commit: {commit}"
        );
    }
    let date = json["server"]["build_date"].as_str().expect("date");
    assert!(date.len() == 10 && date.starts_with("20"), "{date}");
}

/// Destructive commands ask first; without a terminal (as here) they need `--yes`, say what
/// they would do, and change nothing.
#[test]
fn destructive_commands_need_yes_away_from_a_terminal_and_change_nothing() {
    let app = TestApp::spawn();
    app.cli(
        &["secret", "create", "tok", "--value-stdin"],
        Some("value-1234567"),
    )
    .ok();
    app.cli(&["app", "create", "Shop"], None).ok();
    for (args, says) in [
        (
            &["app", "delete", "Shop"][..],
            "delete Setup/Applications/Shop/Index.yaml",
        ),
        (
            &["delete", "Setup/Applications/Shop/Index.yaml"][..],
            "delete Setup/Applications/Shop/Index.yaml",
        ),
        (
            &["secret", "delete", "tok"][..],
            "delete the secret \"tok\"",
        ),
    ] {
        let run = app.cli(args, None);
        let stderr = &run.fails().stderr;
        assert!(
            stderr.contains("needs --yes when it does not run at a terminal")
                && stderr.contains(says)
                && stderr.contains("nothing was changed"),
            "{args:?}: {stderr}"
        );
    }
    assert!(app.cli(&["app", "list"], None).ok().stdout.contains("Shop"));
    assert!(
        app.cli(&["secret", "list"], None)
            .ok()
            .stdout
            .contains("tok")
    );
    app.cli(&["app", "delete", "Shop", "--yes"], None).ok();
    assert!(!app.cli(&["app", "list"], None).ok().stdout.contains("Shop"));
}

/// `validate --connectors-from-server`: an application-only tree passes once the server holds
/// the connector it names.
#[test]
fn validate_takes_the_connectors_the_server_holds() {
    let app = TestApp::spawn();
    let tree = app.dir.path().join("apps-only");
    std::fs::create_dir_all(tree.join("Setup/Applications/Shop")).expect("mkdir");
    std::fs::write(
        tree.join("Setup/Applications/Shop/Index.yaml"),
        "harnessApiVersion: '1.0'\ntype: APPLICATION\ngitConnector: Platform\n",
    )
    .expect("write");
    let tree_arg = tree.to_str().expect("utf-8");
    let run = app.cli(&["validate", tree_arg, "--connectors-from-server"], None);
    assert!(
        run.fails().stdout.contains("gitConnector refers"),
        "{}",
        run.stdout
    );
    app.cli(
        &["secret", "create", "tok", "--value-stdin"],
        Some("value-1234567"),
    )
    .ok();
    app.cli(
        &[
            "connector",
            "add",
            // bitbucket.org is not reached from tests.
            "--no-test",
            "--name",
            "Platform",
            "--url",
            "https://bitbucket.org/acme/config.git",
            "--username",
            "u",
            "--password-secret",
            "tok",
            "--branch",
            "main",
        ],
        None,
    )
    .ok();
    app.cli(&["validate", tree_arg, "--connectors-from-server"], None)
        .ok();
}

/// `reposync login` remembers the server and the token (read from standard input, checked by
/// the server) in a 0600 file under the user's configuration directory, so the CLI works from
/// any directory; a refused token saves nothing; `logout` forgets them.
#[test]
fn login_remembers_the_server_from_any_directory_and_logout_forgets_it() {
    use std::os::unix::fs::PermissionsExt as _;
    let app = TestApp::spawn();
    let home = tempfile::tempdir().expect("home");
    let run = |args: &[&str], stdin: Option<&str>| {
        let mut command = Command::new(binary());
        hermetic(&mut command, home.path());
        let mut child = command
            .args(args)
            .current_dir(home.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("reposync");
        let input = stdin.unwrap_or_default().to_owned();
        std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), input.as_bytes())
            .expect("stdin");
        let output = child.wait_with_output().expect("wait");
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (code, _, stderr) = run(&["secret", "list"], None);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("reposync login --server URL"), "{stderr}");

    let (code, _, stderr) = run(
        &["login", "--server", &app.url],
        Some("rsp_not-the-token\n"),
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("nothing was saved"), "{stderr}");
    let file = home.path().join(".config/reposync/login.json");
    assert!(!file.exists());

    let (code, stdout, stderr) = run(
        &["login", "--server", &app.url],
        Some(&format!("{}\n", app.token)),
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        !stdout.contains(&app.token) && !stderr.contains(&app.token),
        "the token is never shown"
    );
    let mode = std::fs::metadata(&file)
        .expect("saved")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let (code, _, stderr) = run(&["secret", "list"], None);
    assert_eq!(
        code,
        Some(0),
        "from a directory without a data directory: {stderr}"
    );

    let (code, stdout, _) = run(&["logout"], None);
    assert_eq!(code, Some(0));
    assert!(stdout.contains("Logged out"));
    assert!(!file.exists());
    let (code, _, _) = run(&["secret", "list"], None);
    assert_eq!(code, Some(1));
}

/// The packaging (`dist/reposync.service`, `Dockerfile`) runs the binary with flags and
/// variables it has, as an unprivileged user, and the licence is the one `Cargo.toml` names.
/// Docker and systemd are not on the test machine; what they would run is checked here.
#[test]
fn the_packaging_runs_the_binary_with_flags_and_variables_it_has() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let read = |path: &str| std::fs::read_to_string(root.join(path)).expect(path);
    let mut command = Command::new(binary());
    hermetic(&mut command, &root);
    let help = String::from_utf8(
        command
            .args(["serve", "--help"])
            .output()
            .expect("serve --help")
            .stdout,
    )
    .expect("utf-8");
    let known_variable =
        |name: &str| name == "REPOSYNC_LOG" || help.contains(&format!("[env: {name}"));

    let unit = read("dist/reposync.service");
    let value = |key: &str| -> Vec<String> {
        unit.lines()
            .filter_map(|line| line.strip_prefix(&format!("{key}=")))
            .map(str::to_owned)
            .collect()
    };
    let exec = value("ExecStart");
    assert_eq!(exec.len(), 1, "{unit}");
    let mut words = exec[0].split_whitespace();
    assert_eq!(words.next(), Some("/usr/local/bin/reposync"));
    assert_eq!(words.next(), Some("serve"));
    for flag in words.filter(|w| w.starts_with("--")) {
        assert!(help.contains(flag), "serve has no {flag}");
    }
    for assignment in value("Environment") {
        let name = assignment.split('=').next().unwrap_or_default();
        assert!(known_variable(name), "serve reads no {name}");
    }
    assert_eq!(value("User"), ["reposync"]);
    assert_eq!(value("NoNewPrivileges"), ["true"]);
    assert_eq!(value("StateDirectoryMode"), ["0700"]);

    let dockerfile = read("Dockerfile");
    assert!(
        dockerfile.contains("\nUSER reposync\n"),
        "runs unprivileged"
    );
    assert!(dockerfile.contains("VOLUME [\"/var/lib/reposync\"]"));
    assert!(
        dockerfile.contains("git openssh-client"),
        "the built-in delegate needs them"
    );
    assert!(dockerfile.contains("cargo build --locked --release -p reposync-cli"));
    for name in ["REPOSYNC_DATA_DIR", "REPOSYNC_LISTEN"] {
        assert!(dockerfile.contains(name) && known_variable(name), "{name}");
    }

    assert!(read("Cargo.toml").contains("license = \"Apache-2.0\""));
    assert!(read("LICENSE").trim_start().starts_with("Apache License"));
}

/// Runs `reposync ARGS` with no server, for the commands that need none.
fn offline(home: &std::path::Path, args: &[&str]) -> std::process::Output {
    let mut command = Command::new(binary());
    hermetic(&mut command, home);
    let output = command.args(args).output().expect("run reposync");
    assert!(
        output.status.success(),
        "reposync {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// The subcommands `reposync [PATH] --help` lists, each with its path (`connector add`).
fn subcommands(home: &std::path::Path, path: &[&str]) -> Vec<Vec<String>> {
    let mut args = path.to_vec();
    args.push("--help");
    let help = String::from_utf8_lossy(&offline(home, &args).stdout).into_owned();
    let Some(listed) = help.split("Commands:\n").nth(1) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for line in listed.lines() {
        // The list ends at the first line that is not an indented command.
        let Some(name) = line
            .strip_prefix("  ")
            .and_then(|l| l.split_whitespace().next())
        else {
            break;
        };
        if name == "help" {
            continue;
        }
        let mut sub: Vec<String> = path.iter().map(|p| (*p).to_owned()).collect();
        sub.push(name.to_owned());
        let nested: Vec<&str> = sub.iter().map(String::as_str).collect();
        found.extend(subcommands(home, &nested));
        found.push(sub);
    }
    found
}

/// Completion scripts name the subcommands and flags, bash accepts its script, and the man
/// pages come one per subcommand, each a roff page that `man` reads.
#[test]
fn completions_and_man_pages_cover_every_command() {
    let home = tempfile::tempdir().expect("home");
    let bash =
        String::from_utf8(offline(home.path(), &["completions", "bash"]).stdout).expect("utf-8");
    for word in [
        "connector",
        "delegate-token",
        "--api-token",
        "--password-secret",
    ] {
        assert!(bash.contains(word), "the bash script lacks {word}");
    }
    let script = home.path().join("reposync.bash");
    std::fs::write(&script, &bash).expect("script");
    let checked = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .expect("bash -n");
    assert!(
        checked.status.success(),
        "bash -n refused the script: {}",
        String::from_utf8_lossy(&checked.stderr)
    );
    for shell in ["zsh", "fish"] {
        let script =
            String::from_utf8(offline(home.path(), &["completions", shell]).stdout).expect("utf-8");
        assert!(
            script.contains("connector") && script.contains("api-token"),
            "{shell}: {script}"
        );
    }
    let refused = Command::new(binary())
        .args(["completions", "cmd.exe"])
        .output()
        .expect("run");
    assert!(!refused.status.success(), "an unknown shell is refused");

    let pages = home.path().join("man");
    offline(
        home.path(),
        &["man", "--out", pages.to_str().expect("utf-8")],
    );
    let commands = subcommands(home.path(), &[]);
    assert!(
        commands.iter().any(|c| c == &["connector", "add"]),
        "{commands:?}"
    );
    let man_available = Command::new("man")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    for command in std::iter::once(Vec::new()).chain(commands) {
        let name = std::iter::once("reposync".to_owned())
            .chain(command.iter().cloned())
            .collect::<Vec<_>>()
            .join("-");
        let page = pages.join(format!("{name}.1"));
        let roff = std::fs::read_to_string(&page)
            .unwrap_or_else(|e| panic!("no man page {}: {e}", page.display()));
        assert!(roff.contains(&format!(".TH {name} 1")), "{name}: {roff}");
        if man_available {
            let shown = Command::new("man")
                .env("MANWIDTH", "100")
                .arg("-l")
                .arg(&page)
                .output()
                .expect("man -l");
            let text = String::from_utf8_lossy(&shown.stdout);
            assert!(
                shown.status.success() && text.contains("NAME") && text.contains("SYNOPSIS"),
                "man -l {}: {text}{}",
                page.display(),
                String::from_utf8_lossy(&shown.stderr)
            );
        }
    }
    let add = std::fs::read_to_string(pages.join("reposync-connector-add.1")).expect("page");
    assert!(add.contains("password\\-secret"), "{add}");
}
