//! Running the server: its configuration file and the layers above it, HTTPS with a
//! certificate reloaded on SIGHUP, and JSON logs.

#![allow(clippy::expect_used)] // Test helpers outside #[test] functions may panic.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reposync_testkit::TestCa;

use crate::common::{self, TestApp, binary, hermetic};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// Starts `serve` with `args` and `env`, and returns it with the address it says it listens
/// on; a server that exits first fails the test with what it printed.
fn serve_with(home: &Path, args: &[&str], env: &[(&str, &str)]) -> (Child, String) {
    let mut command = Command::new(binary());
    hermetic(&mut command, home);
    command
        .envs(env.iter().copied())
        .arg("serve")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut server = command.spawn().expect("serve");
    let stdout = BufReader::new(server.stdout.take().expect("stdout"));
    for line in stdout.lines().map_while(Result::ok) {
        if let Some(url) = line.strip_prefix("reposync listening on ") {
            return (server, url.trim().to_owned());
        }
    }
    let output = server.wait_with_output().expect("exited");
    panic!(
        "serve exited without listening: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn stop(mut server: Child) {
    common::signal("TERM", server.id());
    let _ = server.wait();
}

/// Defaults, then the file, then `REPOSYNC_*` variables, then flags: each layer wins over the
/// ones before it, seen in the address the real server listens on and the data directory it
/// fills.
#[test]
fn the_configuration_file_sits_between_the_defaults_and_the_environment_and_flags() {
    let home = tempfile::tempdir().expect("tempdir");
    let (file_port, env_port, flag_port) = (free_port(), free_port(), free_port());
    let data = home.path().join("data-from-file");
    let config = home.path().join("reposync.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{file_port}\"\ndata_dir = {:?}\n\n[webhooks]\nburst = 5\n",
            data.display().to_string()
        ),
    )
    .expect("config");
    let config = config.to_str().expect("utf-8");

    // The file wins over the defaults, named by flag or by REPOSYNC_CONFIG.
    let (server, url) = serve_with(home.path(), &["--config", config], &[]);
    assert_eq!(url, format!("http://127.0.0.1:{file_port}"));
    assert!(
        data.join("admin.token").exists(),
        "the data directory came from the file"
    );
    stop(server);
    let (server, url) = serve_with(home.path(), &[], &[("REPOSYNC_CONFIG", config)]);
    assert_eq!(url, format!("http://127.0.0.1:{file_port}"));
    stop(server);

    // A variable wins over the file, and a flag over the variable.
    let env_listen = format!("127.0.0.1:{env_port}");
    let (server, url) = serve_with(
        home.path(),
        &["--config", config],
        &[("REPOSYNC_LISTEN", &env_listen)],
    );
    assert_eq!(url, format!("http://{env_listen}"));
    stop(server);
    let flag_listen = format!("127.0.0.1:{flag_port}");
    let (server, url) = serve_with(
        home.path(),
        &["--config", config, "--listen", &flag_listen],
        &[("REPOSYNC_LISTEN", &env_listen)],
    );
    assert_eq!(url, format!("http://{flag_listen}"));
    stop(server);
}

/// A file that names an unknown key is refused with its line, and nothing is created.
#[test]
fn a_configuration_file_with_a_misspelt_key_stops_the_start_naming_its_line() {
    let home = tempfile::tempdir().expect("tempdir");
    let data = home.path().join("data");
    let config = home.path().join("reposync.toml");
    std::fs::write(&config, "poll_interval_seconds = 60\npoll_intervall = 5\n").expect("config");
    let mut command = Command::new(binary());
    hermetic(&mut command, home.path());
    let output = command
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(&data)
        .stdin(Stdio::null())
        .output()
        .expect("serve");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_ne!(output.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!("{}, line 2: ", config.display())),
        "{stderr}"
    );
    assert!(stderr.contains("poll_intervall"), "{stderr}");
    assert!(!data.exists(), "nothing was created");
}

/// The leaf certificate the server at `port` presents, trusting `ca`.
fn presented_certificate(port: u16, ca: &TestCa) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(ca.cert_pem().as_bytes()) {
        roots.add(cert.expect("CA pem")).expect("CA");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("name");
    let mut connection = rustls::ClientConnection::new(Arc::new(config), name).expect("client");
    let mut socket = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let mut stream = rustls::Stream::new(&mut connection, &mut socket);
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .expect("a request over TLS");
    let mut answer = String::new();
    let _ = std::io::Read::read_to_string(&mut stream, &mut answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    connection.peer_certificates().expect("certificates")[0].to_vec()
}

fn leaf_der(chain_pem: &str) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject as _;
    rustls::pki_types::CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .next()
        .expect("a certificate")
        .expect("pem")
        .to_vec()
}

/// `--tls-cert`/`--tls-key` (here from the configuration file) make the server speak HTTPS;
/// the CLI reaches it trusting the CA through `SSL_CERT_FILE`; SIGHUP puts a renewed
/// certificate in force without a restart, and a broken one is refused while the old stays.
/// The log is JSON lines whose request events carry the route template.
#[test]
fn serve_speaks_https_and_reloads_its_certificate_on_sighup() {
    let ca = TestCa::new("reposync test CA").expect("CA");
    let tls_dir = tempfile::tempdir().expect("tempdir");
    let (cert_path, key_path) = (
        tls_dir.path().join("cert.pem"),
        tls_dir.path().join("key.pem"),
    );
    let install = |(chain, key): &(String, String)| {
        std::fs::write(&cert_path, chain).expect("cert");
        std::fs::write(&key_path, key).expect("key");
    };
    let first = ca.issue_server_cert(&["127.0.0.1"]).expect("first cert");
    install(&first);
    let ca_file = tls_dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.cert_pem()).expect("ca");
    let config = tls_dir.path().join("reposync.toml");
    std::fs::write(
        &config,
        format!(
            "[tls]\ncert = {:?}\nkey = {:?}\n\n[log]\nformat = \"json\"\n",
            cert_path.display().to_string(),
            key_path.display().to_string()
        ),
    )
    .expect("config");
    let app = TestApp::spawn_with(&["--config", config.to_str().expect("utf-8")]);
    let port: u16 = app
        .url
        .strip_prefix("https://127.0.0.1:")
        .unwrap_or_else(|| panic!("not an https URL: {}", app.url))
        .parse()
        .expect("port");
    assert_eq!(presented_certificate(port, &ca), leaf_der(&first.0));

    let mut list = Command::new(binary());
    hermetic(&mut list, app.dir.path());
    let output = list
        .env("SSL_CERT_FILE", &ca_file)
        .args(["--server", &app.url, "--api-token", &app.token])
        .args(["secret", "list"])
        .output()
        .expect("secret list");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    // A renewed pair is in force after SIGHUP.
    let renewed = ca.issue_server_cert(&["127.0.0.1"]).expect("renewed cert");
    assert_ne!(leaf_der(&renewed.0), leaf_der(&first.0));
    install(&renewed);
    common::signal("HUP", app.pid());
    wait_for_log(&app, "SIGHUP: TLS certificate reloaded", 1);
    assert_eq!(presented_certificate(port, &ca), leaf_der(&renewed.0));

    // A broken pair is refused, and the one in force stays.
    std::fs::write(&key_path, "not a key").expect("broken key");
    common::signal("HUP", app.pid());
    wait_for_log(&app, "the TLS certificate was not reloaded", 1);
    assert_eq!(presented_certificate(port, &ca), leaf_der(&renewed.0));

    let log = app.server_log();
    let events: Vec<serde_json::Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    assert!(
        events.iter().any(|event| {
            event["spans"]
                .as_array()
                .is_some_and(|spans| spans.iter().any(|span| span["route"] == "/api/v1/secrets"))
        }),
        "no event carries its request's route: {log}"
    );
}

/// Waits until `text` appears `count` times in the server log: the server says when it has
/// acted on a signal, so the test waits for the fact, not for a time.
fn wait_for_log(app: &TestApp, text: &str, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while app.server_log().matches(text).count() < count {
        assert!(
            Instant::now() < deadline,
            "the server never logged {text:?}: {}",
            app.server_log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A SIGTERM sent as soon as the server says it listens is a clean stop: the server used to
/// listen for it only once its workers were started, and until then the signal's default
/// action killed it (exit by signal, not 0).
#[test]
fn a_sigterm_as_soon_as_the_server_listens_is_a_clean_stop() {
    let mut app = TestApp::spawn();
    assert_eq!(app.stop(), 0, "first start: {}", app.server_log());
    app.restart();
    assert_eq!(app.stop(), 0, "restart: {}", app.server_log());
    assert!(app.server_log().contains("SIGTERM received; shutting down"));
}
