//! The REST API over a real listener and a real store: authentication, the error shape,
//! validation that names its field and changes nothing, and secrets that never come back.
//! Every test runs on each backend (see `backends`): the SQLite file always, PostgreSQL when
//! a test cluster is named.

#![allow(clippy::expect_used)] // Test helpers outside #[test] functions may panic.

use std::time::{Duration, Instant};

use reposync_server::{ServerConfig, TaskHub, bootstrap, serve};
use reposync_testkit::TestPostgres;

#[macro_use]
mod backends;
mod access;
mod fetches;

use backends::Backend;

use reqwest::StatusCode;
use serde_json::{Value, json};

struct Api {
    base: String,
    token: String,
    http: reqwest::Client,
    /// The server's task hub, for what the API does not show (claims waiting).
    hub: TaskHub,
    /// The server's store, for what no route writes yet (audit events).
    store: reposync_store::Store,
    _dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    /// The test's own PostgreSQL database, dropped after the server is told to stop (fields
    /// drop after `Drop::drop`, in order); `None` on SQLite.
    _postgres: Option<TestPostgres>,
}

impl Api {
    async fn spawn(backend: Backend) -> Api {
        Api::spawn_with(backend, |_| {}).await
    }

    async fn spawn_with(backend: Backend, configure: impl FnOnce(&mut ServerConfig)) -> Api {
        Api::start(backend, configure, None).await
    }

    /// A server whose store reads the time from `clock`, for what waits on it (windows).
    async fn spawn_with_clock(
        backend: Backend,
        clock: std::sync::Arc<dyn reposync_store::Clock>,
    ) -> Api {
        Api::start(backend, |_| {}, Some(clock)).await
    }

    async fn start(
        backend: Backend,
        configure: impl FnOnce(&mut ServerConfig),
        clock: Option<std::sync::Arc<dyn reposync_store::Clock>>,
    ) -> Api {
        // The server log, shown with a failing test's output: a 500 says no more than "see
        // the server log". Only the first call installs it; the rest find it there.
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_ansi(false)
            .try_init();
        let dir = tempfile::tempdir().expect("tempdir");
        let postgres = backend.database().await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let mut config = ServerConfig::new(dir.path().join("data"));
        config.listen = listener.local_addr().expect("addr");
        config.public_url = Some("https://reposync.example.com/".into());
        config.database_url = postgres.as_ref().map(|database| database.url().to_owned());
        configure(&mut config);
        let mut ready = bootstrap(config).await.expect("bootstrap");
        if let Some(clock) = clock {
            ready.state.store = ready.state.store.clone().with_clock(clock);
        }
        let token = ready.new_admin_token.expect("first start creates a token");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let hub = ready.state.tasks.clone();
        let store = ready.state.store.clone();
        tokio::spawn(serve(listener, ready.state, async move {
            let _ = stopped.await;
        }));
        Api {
            base,
            token,
            http: reqwest::Client::new(),
            hub,
            store,
            _dir: dir,
            stop: Some(stop),
            _postgres: postgres,
        }
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.send_as(&self.token, method, path, body).await
    }

    /// [`Api::send`] with another token.
    async fn send_as(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status();
        let text = response.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(reqwest::Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    async fn patch(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(reqwest::Method::PATCH, path, Some(body)).await
    }
}

impl Drop for Api {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn connector(name: &str) -> Value {
    json!({
        "name": name,
        "url": "https://bitbucket.org/acme/config.git",
        "username": "jdoe",
        "password_secret": "bb-token",
        "branch": "main",
    })
}

async fn with_token_secret(api: &Api) {
    let (status, _) = api
        .post(
            "/api/v1/secrets",
            json!({"name": "bb-token", "value": "tok-value-1234567"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
}

#[tokio::test]
async fn health_needs_no_token_but_the_api_does() {
    on_each_backend!(backend, {
        let api = Api::spawn(backend).await;
        let health = api
            .http
            .get(format!("{}/healthz", api.base))
            .send()
            .await
            .expect("healthz");
        assert_eq!(health.status(), StatusCode::OK);
        let ready = api
            .http
            .get(format!("{}/readyz", api.base))
            .send()
            .await
            .expect("readyz");
        assert_eq!(ready.status(), StatusCode::OK);

        for token in [None, Some("rsp_not-a-real-token")] {
            let mut request = api.http.get(format!("{}/api/v1/secrets", api.base));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await.expect("request");
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
            assert_eq!(
                response
                    .headers()
                    .get("www-authenticate")
                    .map(|v| v.as_bytes()),
                Some(&b"Bearer"[..])
            );
            let body: Value = response.json().await.expect("json error");
            assert_eq!(body["error"]["code"], "unauthorized");
        }
    });
}

#[tokio::test]
async fn unknown_paths_get_a_json_404() {
    on_each_backend!(backend, {
        let api = Api::spawn(backend).await;
        let (status, body) = api.get("/api/v1/nothing-here").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["error"]["code"], "not_found");
    });
}

#[tokio::test]
async fn secret_values_never_come_back() {
    on_each_backend!(backend, {
        let api = Api::spawn(backend).await;
        let (status, created) = api
            .post(
                "/api/v1/secrets",
                json!({"name": "bb-token", "value": "tok-value-1234567"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        let (_, listed) = api.get("/api/v1/secrets").await;
        let (_, shown) = api.get("/api/v1/secrets/bb-token").await;
        for body in [&created, &listed, &shown] {
            assert!(!body.to_string().contains("tok-value-1234567"), "{body}");
        }
        assert_eq!(shown["kind"], "text");
    });
}

#[tokio::test]
async fn bad_secret_input_is_refused_with_a_distinct_reason() {
    on_each_backend!(backend, {
        let api = Api::spawn(backend).await;
        let cases = [
            (
                json!({"name": "k", "private_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGSh3d7xYMJahgvgIZhegQiM9AMv2eDxe5ZXE7PezNOs me"}),
                "public_key_given",
            ),
            (
                json!({"name": "k", "private_key": "-----BEGIN DSA PRIVATE KEY-----\nMIIBuwIBAAKBgQD\n-----END DSA PRIVATE KEY-----\n"}),
                "dsa_unsupported",
            ),
            (
                json!({"name": "k", "private_key": "this is not a key at all"}),
                "unrecognized_key",
            ),
            (
                json!({"name": "k", "private_key": "x", "username": "Git"}),
                "invalid",
            ),
            (
                json!({"name": "smile \u{1F600}", "private_key": "x"}),
                "invalid",
            ),
        ];
        for (body, code) in cases {
            let (status, answer) = api.post("/api/v1/secrets/ssh", body.clone()).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {answer}");
            assert_eq!(answer["error"]["code"], code, "{answer}");
            assert!(
                answer["error"]["field"].is_string(),
                "names the field: {answer}"
            );
        }
        let (_, answer) = api
            .post(
                "/api/v1/secrets/ssh",
                json!({"name": "k", "private_key": "x", "username": "Git"}),
            )
            .await;
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains("`git`"),
            "{answer}"
        );
        let (_, listed) = api.get("/api/v1/secrets").await;
        assert_eq!(
            listed["items"].as_array().map(Vec::len),
            Some(0),
            "nothing was stored"
        );
    });
}

#[tokio::test]
async fn generated_keys_print_a_public_key_and_fingerprint() {
    on_each_backend!(backend, {
        let api = Api::spawn(backend).await;
        let (status, body) = api
            .post("/api/v1/secrets/ssh/generate", json!({"name": "deploy"}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert!(
            body["ssh"]["public_key"]
                .as_str()
                .unwrap_or("")
                .starts_with("ssh-ed25519 ")
        );
        assert!(
            body["ssh"]["fingerprint"]
                .as_str()
                .unwrap_or("")
                .starts_with("SHA256:")
        );
        assert_eq!(body["ssh"]["username"], "git");
    });
}

#[tokio::test]
async fn malformed_oversized_and_non_json_bodies_are_refused() {
    on_each_backend!(backend, {
        let api = Api::spawn_with(backend, |c| c.max_body_bytes = 4096).await;
        let url = format!("{}/api/v1/secrets", api.base);
        let not_json = api
            .http
            .post(&url)
            .bearer_auth(&api.token)
            .body("name=x")
            .send()
            .await
            .expect("send");
        assert_eq!(not_json.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let broken = api
            .http
            .post(&url)
            .bearer_auth(&api.token)
            .header("content-type", "application/json")
            .body("{\"name\": ")
            .send()
            .await
            .expect("send");
        assert_eq!(broken.status(), StatusCode::BAD_REQUEST);
        let (status, body) = api
            .post(
                "/api/v1/secrets",
                json!({"name": "x", "value": "a".repeat(10_000)}),
            )
            .await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
        let (status, body) = api
            .post(
                "/api/v1/secrets",
                json!({"name": "x", "value": "v", "colour": "red"}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains("colour"),
            "{body}"
        );
    });
}

#[tokio::test]
async fn connector_validation_names_the_field_and_changes_nothing() {
    on_each_backend!(backend, {
        let api = Api::spawn(backend).await;
        with_token_secret(&api).await;
        let cases = [
            (json!({"name": ""}), "name"),
            (json!({"name": "a/b"}), "name"),
            (json!({"name": "happy \u{1F600}"}), "name"),
            (
                json!({"url": "https://jdoe:pa55word@bitbucket.org/acme/config.git"}),
                "url",
            ),
            (json!({"url": "not a url"}), "url"),
            (json!({"branch": null}), "branch"),
            (json!({"branch": "https://bitbucket.org/acme"}), "branch"),
            (json!({"branch": "feature..x"}), "branch"),
            (json!({"author_email": "not-an-email"}), "author_email"),
            (json!({"password_secret": "missing"}), "password_secret"),
            (json!({"scope": "account", "branch": null}), "url"),
            (json!({"selectors": ["  "]}), "selectors"),
        ];
        for (change, field) in cases {
            let mut body = connector("Config");
            for (key, value) in change.as_object().expect("object") {
                body[key] = value.clone();
            }
            let (status, answer) = api.post("/api/v1/connectors", body.clone()).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {answer}");
            assert_eq!(answer["error"]["field"], field, "{body}: {answer}");
            assert!(
                !answer.to_string().contains("pa55word"),
                "never echo a password: {answer}"
            );
        }
        let (_, listed) = api.get("/api/v1/connectors").await;
        assert_eq!(
            listed["items"].as_array().map(Vec::len),
            Some(0),
            "nothing half-applied"
        );
    });
}

#[tokio::test]
async fn a_connector_round_trips_with_defaults_and_detected_provider() {
    on_each_backend!(backend, {
        let api = Api::spawn(backend).await;
        with_token_secret(&api).await;
        let mut body = connector("Config");
        body["selectors"] = json!([" EU ", "prod", "eu"]);
        let (status, saved) = api.post("/api/v1/connectors", body).await;
        assert_eq!(status, StatusCode::CREATED, "{saved}");
        let c = &saved["connector"];
        assert_eq!(c["provider"], "bitbucket-cloud");
        assert_eq!(c["protocol"], "https");
        assert_eq!(c["selectors"], json!(["eu", "prod"]));
        assert_eq!(c["author_name"], "reposync");
        assert!(saved.get("webhook").is_none());

        let (status, _) = api.post("/api/v1/connectors", connector("Config")).await;
        assert_eq!(status, StatusCode::CONFLICT, "names are unique");

        let (status, deleted) = api
            .send(reqwest::Method::DELETE, "/api/v1/secrets/bb-token", None)
            .await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert!(
            deleted["error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains("Config"),
            "{deleted}"
        );
    });
}

#[tokio::test]
async fn webhook_credentials_are_generated_shown_and_rotated() {
    on_each_backend!(backend, {
        let api = Api::spawn(backend).await;
        with_token_secret(&api).await;
        let mut body = connector("Config");
        body["generate_webhook_url"] = json!(true);
        let (_, saved) = api.post("/api/v1/connectors", body).await;
        let url = saved["webhook"]["url"]
            .as_str()
            .expect("webhook url")
            .to_owned();
        let secret = saved["webhook"]["secret"]
            .as_str()
            .expect("hmac secret")
            .to_owned();
        let token = url
            .strip_prefix("https://reposync.example.com/api/webhooks/git/")
            .expect("public base URL");
        assert!(token.len() * 6 >= 160, "at least 160 bits: {token}");
        assert_eq!(saved["connector"]["webhook_url"], url.as_str());

        let (_, shown) = api.get("/api/v1/connectors/Config/webhook").await;
        assert_eq!(shown["url"], url.as_str());
        assert_eq!(shown["secret"], secret.as_str());

        let (_, rotated) = api
            .post("/api/v1/connectors/Config/webhook/regenerate", json!({}))
            .await;
        assert_ne!(rotated["url"], url.as_str());
        assert_ne!(rotated["secret"], secret.as_str());

        let (_, off) = api
            .patch(
                "/api/v1/connectors/Config",
                json!({"generate_webhook_url": false}),
            )
            .await;
        assert!(off["connector"].get("webhook_url").is_none(), "{off}");
        let (status, _) = api.get("/api/v1/connectors/Config/webhook").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    });
}

/// Creates a connector with a webhook URL; returns its URL token and HMAC secret.
async fn hooked_connector(api: &Api, name: &str) -> (String, String) {
    let mut body = connector(name);
    body["generate_webhook_url"] = json!(true);
    let (status, saved) = api.post("/api/v1/connectors", body).await;
    assert_eq!(status, StatusCode::CREATED, "{saved}");
    let url = saved["webhook"]["url"].as_str().expect("webhook url");
    let token = url.rsplit('/').next().expect("token").to_owned();
    let secret = saved["webhook"]["secret"].as_str().expect("secret");
    (token, secret.to_owned())
}

impl Api {
    /// Posts a signed delivery (unsigned when `secret` is empty) to a webhook URL token.
    async fn deliver(
        &self,
        token: &str,
        secret: &str,
        event_key: &str,
        body: &[u8],
    ) -> reqwest::Response {
        let mut request = self
            .http
            .post(format!("{}/api/webhooks/git/{token}", self.base))
            .header("Content-Type", "application/json")
            .header("X-Event-Key", event_key)
            .body(body.to_vec());
        if !secret.is_empty() {
            let signature = reposync_bitbucket::sign(secret.as_bytes(), body);
            request = request.header("X-Hub-Signature", signature);
        }
        request.send().await.expect("delivery")
    }
}

#[tokio::test]
async fn deliveries_past_the_rate_limit_of_their_url_get_429_and_forgeries_cannot_spend_it() {
    on_each_backend!(backend, {
        // One delivery per 1,000 s after a burst of 3: nothing refills while the test runs.
        let api = Api::spawn_with(backend, |config| {
            config.webhook_rate_limit = Some(reposync_server::RateLimit {
                per_second: 0.001,
                burst: 3,
            });
        })
        .await;
        with_token_secret(&api).await;
        let (busy, busy_secret) = hooked_connector(&api, "Busy").await;
        let (quiet, quiet_secret) = hooked_connector(&api, "Quiet").await;
        let ping = br#"{"test": true}"#;
        for _ in 0..3 {
            let answer = api
                .deliver(&busy, &busy_secret, "diagnostics:ping", ping)
                .await;
            assert_eq!(answer.status(), StatusCode::OK);
        }
        let limited = api
            .deliver(&busy, &busy_secret, "diagnostics:ping", ping)
            .await;
        assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
        let retry_after: u64 = limited
            .headers()
            .get("retry-after")
            .expect("Retry-After")
            .to_str()
            .expect("ascii")
            .parse()
            .expect("whole seconds");
        assert!(
            (1..=1000).contains(&retry_after),
            "one delivery's worth: {retry_after}"
        );
        let body: Value = limited.json().await.expect("json");
        assert_eq!(body["error"]["code"], "rate_limited", "{body}");
        assert!(!body.to_string().contains("Busy"), "names no connector");
        let (_, log) = api.get("/api/v1/webhooks/deliveries?connector=Busy").await;
        assert_eq!(
            log["items"].as_array().expect("items").len(),
            3,
            "nothing logged of the refused one: {log}"
        );

        // Another URL has its own buckets. Forgeries to it (someone who has the URL, not the
        // secret) are refused, counted, then limited, and never spend the deliveries Bitbucket
        // signs.
        for _ in 0..3 {
            let answer = api
                .deliver(&quiet, "not the secret", "diagnostics:ping", ping)
                .await;
            assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
        }
        let answer = api
            .deliver(&quiet, "not the secret", "diagnostics:ping", ping)
            .await;
        assert_eq!(answer.status(), StatusCode::TOO_MANY_REQUESTS);
        let answer = api
            .deliver(&quiet, &quiet_secret, "diagnostics:ping", ping)
            .await;
        assert_eq!(
            answer.status(),
            StatusCode::OK,
            "the real one still goes in"
        );
        let (_, shown) = api.get("/api/v1/connectors/Quiet/webhook").await;
        assert_eq!(
            shown["unauthenticated"]["count"], 3,
            "the limited one is not counted: {shown}"
        );

        // Unknown tokens share one bucket: 401 until it is spent, then 429.
        for n in 0..3 {
            let answer = api
                .deliver(&format!("guess-{n}"), "", "diagnostics:ping", ping)
                .await;
            assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
        }
        let answer = api.deliver("guess-4", "", "diagnostics:ping", ping).await;
        assert_eq!(answer.status(), StatusCode::TOO_MANY_REQUESTS);
        let answer = api
            .deliver(&quiet, &quiet_secret, "diagnostics:ping", ping)
            .await;
        assert_eq!(answer.status(), StatusCode::OK, "still unaffected");
    });
}

#[tokio::test]
async fn a_valid_delivery_with_a_60_kb_event_key_is_logged_cut_and_forgeries_only_counted() {
    on_each_backend!(backend, {
        let api = Api::spawn(backend).await;
        with_token_secret(&api).await;
        let (token, secret) = hooked_connector(&api, "Config").await;
        let event_key = format!("repo:{}", "x".repeat(60 * 1024));
        let answer = api
            .deliver(&token, &secret, &event_key, br#"{"repository": {}}"#)
            .await;
        assert_eq!(answer.status(), StatusCode::ACCEPTED);
        let answer: Value = answer.json().await.expect("json");
        assert_eq!(answer["outcome"], "ignored", "{answer}");
        let marker = format!("… [truncated from {} bytes]", event_key.len());
        let (_, log) = api.get("/api/v1/webhooks/deliveries").await;
        let logged = &log["items"][0];
        let event = logged["event"].as_str().expect("event");
        assert!(
            event.len() <= reposync_store::MAX_LOGGED_HEADER_BYTES,
            "{} bytes kept",
            event.len()
        );
        assert!(
            event.starts_with("repo:xxx") && event.ends_with(&marker),
            "{event}"
        );
        assert_eq!(logged["payload"]["event"], event, "the payload's copy too");
        let reason = logged["reason"].as_str().expect("reason");
        assert!(
            reason.len() <= reposync_store::MAX_LOGGED_REASON_BYTES,
            "{} bytes kept",
            reason.len()
        );
        assert!(reason.starts_with("event repo:xxx"), "{reason}");
        assert!(reason.contains("[truncated from"), "{reason}");
        assert!(
            log.to_string().len() < 4096,
            "nothing of the 60 KB left anywhere: {} bytes",
            log.to_string().len()
        );

        // A forged one is answered as before and counted, with nothing logged of it.
        let forged = api
            .deliver(
                &token,
                "not the secret",
                &event_key,
                br#"{"repository": {}}"#,
            )
            .await;
        assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
        let (_, log) = api.get("/api/v1/webhooks/deliveries").await;
        assert_eq!(log["items"].as_array().expect("items").len(), 1, "{log}");
        assert_eq!(log["unauthenticated"][0]["connector"], "Config");
        assert_eq!(log["unauthenticated"][0]["count"], 1);
        let (_, shown) = api.get("/api/v1/connectors/Config/webhook").await;
        assert_eq!(shown["unauthenticated"]["count"], 1, "{shown}");
        assert_eq!(
            shown["unauthenticated"]["last_reason"],
            "the X-Hub-Signature does not match the body"
        );
    });
}

#[tokio::test]
async fn patch_renames_and_switches_to_ssh() {
    on_each_backend!(backend, {
        let api = Api::spawn(backend).await;
        with_token_secret(&api).await;
        api.post("/api/v1/connectors", connector("Config")).await;
        let (status, _) = api
            .post("/api/v1/secrets/ssh/generate", json!({"name": "deploy"}))
            .await;
        assert_eq!(status, StatusCode::CREATED);
        let (status, saved) = api
            .patch("/api/v1/connectors/Config", json!({"name": "Config SSH", "url": "ssh://git@bb.corp:7999/acme/config.git", "ssh_key_secret": "deploy"}))
            .await;
        assert_eq!(status, StatusCode::OK, "{saved}");
        assert_eq!(
            saved["connector"]["provider"], "bitbucket-server",
            "re-detected from the new URL"
        );
        assert_eq!(saved["connector"]["protocol"], "ssh");
        assert!(saved["connector"].get("password_secret").is_none());
        let (status, _) = api.get("/api/v1/connectors/Config").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        // The token secret is free again, the key is in use.
        let (status, _) = api
            .send(reqwest::Method::DELETE, "/api/v1/secrets/bb-token", None)
            .await;
        assert_eq!(status, StatusCode::OK);
        let (status, _) = api
            .patch("/api/v1/connectors/Config%20SSH", json!({"colour": "red"}))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    });
}

#[tokio::test]
async fn a_test_no_delegate_can_run_fails_at_once_naming_the_selectors() {
    on_each_backend!(backend, {
        let api = Api::spawn(backend).await;
        with_token_secret(&api).await;
        let mut body = connector("Config");
        body["selectors"] = json!(["eu-west"]);
        api.post("/api/v1/connectors", body).await;
        let (status, task) = api.post("/api/v1/connectors/Config/test", json!({})).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{task}");
        assert_eq!(task["status"], "failed");
        assert_eq!(task["result"]["code"], "no_delegate");
        let message = task["result"]["message"].as_str().unwrap_or("");
        assert!(
            message.contains("eu-west") && message.contains("builtin"),
            "{message}"
        );
    });
}

/// Test, then Submit: a connector that is not saved is tested from the body `create` takes
/// (or a saved one as a PATCH would leave it); nothing of it is stored but the task, and its
/// result is no connector's last Test.
#[tokio::test]
async fn a_draft_is_tested_without_being_saved() {
    on_each_backend!(backend, {
        let api = Api::spawn(backend).await;
        with_token_secret(&api).await;
        // Selectors no delegate has: the Test fails at once, without git.
        let mut draft = connector("Draft");
        draft["selectors"] = json!(["eu-west"]);
        let (status, task) = api.post("/api/v1/connector-tests", draft.clone()).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{task}");
        assert_eq!(task["kind"], "test_connection", "{task}");
        assert_eq!(task["result"]["code"], "no_delegate", "{task}");
        assert_eq!(
            task["result"]["url"],
            "https://bitbucket.org/acme/config.git"
        );
        let (_, listed) = api.get("/api/v1/connectors").await;
        assert_eq!(listed["items"], json!([]), "nothing saved");

        // Saved after its Test, naming it: the Test's result is its last Test, when the Test was
        // of exactly what is saved.
        let tested = task["id"].as_str().unwrap_or_default().to_owned();
        let mut other = draft.clone();
        other["name"] = json!("Other");
        other["url"] = json!("https://bitbucket.org/acme/other.git");
        let (status, saved) = api
            .post(&format!("/api/v1/connectors?tested_by={tested}"), other)
            .await;
        assert_eq!(status, StatusCode::CREATED, "{saved}");
        assert!(
            saved["connector"].get("last_test").is_none(),
            "another connector's Test is not its own: {saved}"
        );
        let (status, saved) = api
            .post(
                &format!("/api/v1/connectors?tested_by={tested}"),
                draft.clone(),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{saved}");
        assert_eq!(
            saved["connector"]["last_test"]["code"], "no_delegate",
            "{saved}"
        );
        for name in ["Draft", "Other"] {
            api.send(
                reqwest::Method::DELETE,
                &format!("/api/v1/connectors/{name}"),
                None,
            )
            .await;
        }

        // What `create` refuses, the Test refuses first, naming the field.
        let mut missing = connector("Draft");
        missing["password_secret"] = json!("nope");
        let (status, answer) = api.post("/api/v1/connector-tests", missing).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
        assert_eq!(answer["error"]["field"], "password_secret");
        let (status, answer) = api
            .post("/api/v1/connector-tests?colour=red", draft.clone())
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");

        // A saved connector, tested as a PATCH would leave it: its last Test stays as it was.
        let mut saved = connector("test");
        saved["selectors"] = json!(["eu-west"]);
        api.post("/api/v1/connectors", saved).await;
        let (status, task) = api
            .post(
                "/api/v1/connectors/test/test",
                json!({"changes": {"url": "https://bitbucket.org/acme/other.git"}}),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{task}");
        assert_eq!(
            task["result"]["url"], "https://bitbucket.org/acme/other.git",
            "{task}"
        );
        // A connector may be named `test`: the draft's route does not hide it.
        let (status, shown) = api.get("/api/v1/connectors/test").await;
        assert_eq!(status, StatusCode::OK, "{shown}");
        assert!(shown.get("last_test").is_none(), "{shown}");
        assert_eq!(shown["url"], "https://bitbucket.org/acme/config.git");
        // Its own Test is its last Test.
        api.post("/api/v1/connectors/test/test", json!({})).await;
        let (_, shown) = api.get("/api/v1/connectors/test").await;
        assert_eq!(shown["last_test"]["code"], "no_delegate", "{shown}");
    });
}

#[tokio::test]
async fn a_repo_scope_test_refuses_a_repo_and_account_scope_requires_one() {
    on_each_backend!(backend, {
        let api = Api::spawn(backend).await;
        with_token_secret(&api).await;
        api.post("/api/v1/connectors", connector("Config")).await;
        let (status, answer) = api
            .post("/api/v1/connectors/Config/test", json!({"repo": "other"}))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(answer["error"]["field"], "repo");
    });
}

#[tokio::test]
async fn a_failed_patch_changes_nothing_and_names_the_field() {
    on_each_backend!(backend, {
        let api = Api::spawn(backend).await;
        with_token_secret(&api).await;
        let (_, before) = api.post("/api/v1/connectors", connector("Config")).await;
        let cases = [
            (json!({"name": "a/b"}), "name"),
            (
                json!({"url": "https://jdoe:pa55word@bitbucket.org/acme/config.git"}),
                "url",
            ),
            (json!({"branch": "a..b"}), "branch"),
            (json!({"author_email": "nope"}), "author_email"),
            (json!({"password_secret": "missing"}), "password_secret"),
            (json!({"scope": "account"}), "url"),
            (json!({"colour": "red"}), "colour"),
        ];
        for (patch, field) in cases {
            let (status, answer) = api.patch("/api/v1/connectors/Config", patch.clone()).await;
            assert_eq!(
                status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{patch}: {answer}"
            );
            assert_eq!(answer["error"]["field"], field, "{patch}: {answer}");
            assert!(!answer.to_string().contains("pa55word"), "{answer}");
        }
        let (_, after) = api.get("/api/v1/connectors/Config").await;
        assert_eq!(after, before["connector"], "the connector is unchanged");
    });
}

#[tokio::test]
async fn secret_values_must_be_one_line_and_type_errors_never_echo_them() {
    on_each_backend!(backend, {
        let api = Api::spawn(backend).await;
        let (status, answer) = api
            .post(
                "/api/v1/secrets",
                json!({"name": "t", "value": "line1\nline2"}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(answer["error"]["field"], "value");
        let (status, answer) = api
            .post("/api/v1/secrets", json!({"name": "t", "value": 987654321}))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(!answer.to_string().contains("987654321"), "{answer}");
    });
}

#[tokio::test]
async fn wrong_methods_and_bad_queries_get_json_errors() {
    on_each_backend!(backend, {
        let api = Api::spawn(backend).await;
        let (status, answer) = api
            .send(reqwest::Method::PUT, "/api/v1/connectors", Some(json!({})))
            .await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(answer["error"]["code"], "method_not_allowed");
        let (status, answer) = api.get("/api/v1/tasks/x?wait_ms=soon").await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(answer["error"]["field"], "wait_ms");
        let response = api
            .http
            .get(format!("{}/api/v1/secrets", api.base))
            .header("authorization", format!("bearer {}", api.token))
            .send()
            .await
            .expect("send");
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "the scheme name is case-insensitive"
        );
    });
}

/// An accepted write by `actor` (with the token `laptop`, from 192.0.2.10) to `target`.
fn audited<'a>(
    actor: &'a str,
    target: &'a str,
    app: Option<&'a str>,
) -> reposync_store::NewAuditEvent<'a> {
    reposync_store::NewAuditEvent {
        actor_kind: reposync_store::ActorKind::User,
        actor,
        token: Some("laptop"),
        client_addr: Some(std::net::IpAddr::from([192, 0, 2, 10])),
        use_case: "tree.apply",
        target: Some(target),
        app,
        outcome: reposync_store::AuditOutcome::Accepted,
        status: Some(200),
        detail: None,
    }
}

/// The targets of a listing of audit events, in its order.
fn audit_targets(answer: &Value) -> Vec<&str> {
    answer["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|event| event["target"].as_str().unwrap_or("-"))
        .collect()
}

#[tokio::test]
async fn the_audit_trail_reads_back_newest_first_through_each_filter() {
    on_each_backend!(backend, {
        let api = Api::spawn(backend).await;
        let (status, empty) = api.get("/api/v1/audit").await;
        assert_eq!(status, StatusCode::OK, "{empty}");
        assert_eq!(empty, json!({"items": []}));

        for (actor, target, app) in [("alice", "a1", Some("Shop")), ("bob", "b1", None)] {
            api.store
                .record_audit(&audited(actor, target, app))
                .await
                .expect("record");
        }
        // The next events come a millisecond later at least, so that `since` can tell them apart.
        let (_, first) = api.get("/api/v1/audit").await;
        let last_at = first["items"][0]["at"].as_str().expect("at").to_owned();
        let last = reposync_api::parse_timestamp(&last_at).expect("an RFC 3339 time");
        eventually("the clock to move on", async || {
            reposync_store::now_millis() > last
        })
        .await;
        let refused = reposync_store::NewAuditEvent {
            outcome: reposync_store::AuditOutcome::Refused,
            status: Some(403),
            detail: Some("needs editor in application Shop"),
            ..audited("alice", "a2", Some("Shop"))
        };
        api.store.record_audit(&refused).await.expect("record");
        api.store
            .record_audit(&audited("carol", "c1", Some("Billing")))
            .await
            .expect("record");

        let (status, all) = api.get("/api/v1/audit").await;
        assert_eq!(status, StatusCode::OK, "{all}");
        assert_eq!(audit_targets(&all), ["c1", "a2", "b1", "a1"]);
        let shown = &all["items"][1];
        assert_eq!(shown["actor_kind"], "user", "{shown}");
        assert_eq!(shown["actor"], "alice", "{shown}");
        assert_eq!(shown["token"], "laptop", "{shown}");
        assert_eq!(shown["client_addr"], "192.0.2.10", "{shown}");
        assert_eq!(shown["use_case"], "tree.apply", "{shown}");
        assert_eq!(shown["app"], "Shop", "{shown}");
        assert_eq!(shown["outcome"], "refused", "{shown}");
        assert_eq!(shown["status"], 403, "{shown}");
        assert_eq!(shown["detail"], "needs editor in application Shop");
        assert!(
            reposync_api::parse_timestamp(shown["at"].as_str().expect("at")).is_some(),
            "{shown}"
        );
        assert_eq!(all["items"][2]["app"], Value::Null, "no application");

        let (_, alice) = api.get("/api/v1/audit?user=alice").await;
        assert_eq!(audit_targets(&alice), ["a2", "a1"]);
        let (_, shop) = api.get("/api/v1/audit?app=Shop").await;
        assert_eq!(audit_targets(&shop), ["a2", "a1"]);
        let (_, newest) = api.get("/api/v1/audit?limit=1").await;
        assert_eq!(audit_targets(&newest), ["c1"]);
        let after = reposync_api::timestamp(last + 1);
        let url = format!("/api/v1/audit?since={}", query_encoded(&after));
        let (status, since) = api.get(&url).await;
        assert_eq!(status, StatusCode::OK, "{since}");
        assert_eq!(audit_targets(&since), ["c1", "a2"]);
        let url = format!(
            "/api/v1/audit?user=alice&app=Shop&limit=10&since={}",
            query_encoded(&after)
        );
        let (_, combined) = api.get(&url).await;
        assert_eq!(audit_targets(&combined), ["a2"]);
    });
}

#[tokio::test]
async fn a_wrong_audit_filter_is_refused_naming_its_field() {
    on_each_backend!(backend, {
        let api = Api::spawn(backend).await;
        for (query, field) in [
            ("since=yesterday", "since"),
            ("since=1764064800000", "since"),
            ("since=2026-11-25", "since"),
            ("limit=0", "limit"),
            ("limit=1001", "limit"),
            ("limit=many", "limit"),
            ("app=a%2Fb", "app"),
        ] {
            let (status, answer) = api.get(&format!("/api/v1/audit?{query}")).await;
            assert_eq!(
                status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{query}: {answer}"
            );
            assert_eq!(answer["error"]["code"], "invalid", "{query}: {answer}");
            assert_eq!(answer["error"]["field"], field, "{query}: {answer}");
        }
        let (status, answer) = api.get("/api/v1/audit?limit=1000").await;
        assert_eq!(status, StatusCode::OK, "the largest limit: {answer}");
    });
}

/// A request as a remote delegate: its token, and its name once registered.
async fn as_delegate(
    api: &Api,
    token: &str,
    name: Option<&str>,
    path: &str,
    body: Value,
) -> (StatusCode, Value) {
    let mut request = api
        .http
        .post(format!("{}{path}", api.base))
        .bearer_auth(token)
        .json(&body);
    if let Some(name) = name {
        request = request.header("X-Reposync-Delegate", name);
    }
    let response = request.send().await.expect("request");
    let status = response.status();
    let text = response.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test]
async fn a_remote_delegate_registers_claims_with_credentials_completes_and_is_revoked() {
    on_each_backend!(backend, {
        let api = Api::spawn_with(backend, |c| c.builtin_delegate = false).await;
        with_token_secret(&api).await;
        let mut body = connector("Selected");
        body["selectors"] = json!(["DC-1", "linux"]);
        let (status, _) = api.post("/api/v1/connectors", body).await;
        assert_eq!(status, StatusCode::CREATED);

        let (status, created) = api
            .post("/api/v1/delegate-tokens", json!({"name": "dc"}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        let token = created["token"]
            .as_str()
            .expect("token shown once")
            .to_owned();
        let (_, listed) = api.get("/api/v1/delegate-tokens").await;
        assert!(!listed.to_string().contains(&token), "never shown again");

        // An unknown token gets nothing.
        let register = json!({"name": "dc-runner", "selectors": [" dc-1 ", "Linux", "extra"],
            "version": "0.1.0", "hostname": "Runner-Host", "git_version": "2.43.0", "ssh_version": "OpenSSH_9.6"});
        let (status, _) = as_delegate(
            &api,
            "rsd_nope",
            None,
            "/api/delegate/register",
            register.clone(),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, registered) =
            as_delegate(&api, &token, None, "/api/delegate/register", register).await;
        assert_eq!(status, StatusCode::OK, "{registered}");
        assert_eq!(
            registered["selectors"],
            json!(["dc-1", "dc-runner", "extra", "linux", "runner-host"]),
            "normalised, with its name and host name"
        );

        // A Test of the selected connector now has a delegate to go to; the claim carries the
        // credentials, and the outcome names the delegate.
        let (status, queued) = api
            .post("/api/v1/connectors/Selected/test", json!({}))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
        let (status, task) = as_delegate(
            &api,
            &token,
            Some("dc-runner"),
            "/api/delegate/claim?wait_ms=5000",
            json!({}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{task}");
        assert_eq!(task["spec"]["kind"], "test_connection", "{task}");
        assert_eq!(task["spec"]["auth"]["password"], "tok-value-1234567");
        let id = task["id"].as_str().expect("id").to_owned();
        let (status, beat) = as_delegate(
            &api,
            &token,
            Some("dc-runner"),
            "/api/delegate/heartbeat",
            json!({"running": [id, "not-mine"]}),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            beat["cancel"],
            json!(["not-mine"]),
            "only its own leases extend"
        );
        let (status, _) = as_delegate(
            &api,
            &token,
            Some("dc-runner"),
            &format!("/api/delegate/tasks/{id}/complete"),
            json!({"succeeded": true, "result": {"ok": true, "url": "x", "duration_ms": 3}}),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let (_, shown) = api.get(&format!("/api/v1/tasks/{id}")).await;
        assert_eq!(shown["status"], "succeeded", "{shown}");
        let (_, delegates) = api.get("/api/v1/delegates").await;
        let listed = delegates["items"]
            .as_array()
            .expect("items")
            .iter()
            .find(|d| d["name"] == "dc-runner")
            .expect("listed")
            .clone();
        assert_eq!(listed["connected"], true);
        assert_eq!(listed["tasks_run"], 1);
        assert_eq!(listed["tasks_succeeded"], 1);
        assert_eq!(listed["token"], "dc");
        assert_eq!(listed["git_version"], "2.43.0");

        // Nothing waits: an empty claim is 204 after the wait.
        let (status, _) = as_delegate(
            &api,
            &token,
            Some("dc-runner"),
            "/api/delegate/claim?wait_ms=50",
            json!({}),
        )
        .await;
        assert_eq!(status, StatusCode::NO_CONTENT);

        // Revoked: the very next request is refused.
        let (status, _) = api
            .send(reqwest::Method::DELETE, "/api/v1/delegate-tokens/dc", None)
            .await;
        assert_eq!(status, StatusCode::OK);
        let (status, refused) = as_delegate(
            &api,
            &token,
            Some("dc-runner"),
            "/api/delegate/heartbeat",
            json!({"running": []}),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{refused}");
    });
}

/// A new delegate token's value.
async fn delegate_token(api: &Api, body: Value) -> String {
    let (status, created) = api.post("/api/v1/delegate-tokens", body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created["token"].as_str().expect("token").to_owned()
}

/// A registration body for a delegate called `name`.
fn registration(name: &str, selectors: &[&str], hostname: &str) -> Value {
    json!({"name": name, "selectors": selectors, "version": "0.1.0", "hostname": hostname,
           "git_version": "2.43.0", "ssh_version": "none"})
}

/// Polls `check` until it holds, failing with `what` after a generous deadline.
async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The row of `name` in the delegate list.
async fn listed_delegate(api: &Api, name: &str) -> Value {
    let (_, delegates) = api.get("/api/v1/delegates").await;
    delegates["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|d| d["name"] == name)
        .cloned()
        .unwrap_or(Value::Null)
}

/// The task once it is final (the server's long poll, repeated up to a generous deadline).
async fn final_task(api: &Api, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, task) = api.get(&format!("/api/v1/tasks/{id}?wait_ms=5000")).await;
        if task["status"] == "succeeded" || task["status"] == "failed" {
            return task;
        }
        assert!(Instant::now() < deadline, "task never ended: {task}");
    }
}

#[tokio::test]
async fn a_second_token_cannot_take_a_registered_delegate_name_and_the_delegate_keeps_working() {
    on_each_backend!(backend, {
        let api = Api::spawn_with(backend, |c| c.builtin_delegate = false).await;
        with_token_secret(&api).await;
        api.post("/api/v1/connectors", connector("Config")).await;
        let fleet = delegate_token(&api, json!({"name": "fleet"})).await;
        let intruder = delegate_token(&api, json!({"name": "intruder"})).await;
        let (status, _) = as_delegate(
            &api,
            &fleet,
            None,
            "/api/delegate/register",
            registration("dc-runner", &[], "host-a"),
        )
        .await;
        assert_eq!(status, StatusCode::OK);

        // Registering the name (in any case) with another token is refused, naming the holder.
        for name in ["dc-runner", "DC-Runner"] {
            let (status, refused) = as_delegate(
                &api,
                &intruder,
                None,
                "/api/delegate/register",
                registration(name, &[], "host-b"),
            )
            .await;
            assert_eq!(status, StatusCode::CONFLICT, "{refused}");
            assert_eq!(refused["error"]["code"], "name_taken", "{refused}");
            let message = refused["error"]["message"].as_str().unwrap_or_default();
            assert!(
                message.contains("dc-runner") && message.contains("fleet"),
                "{message}"
            );
        }
        // Speaking under the name without registering is refused the same way.
        let (status, refused) = as_delegate(
            &api,
            &intruder,
            Some("dc-runner"),
            "/api/delegate/claim?wait_ms=0",
            json!({}),
        )
        .await;
        assert_eq!(status, StatusCode::CONFLICT, "{refused}");
        assert_eq!(refused["error"]["code"], "name_taken");

        // The real delegate was not touched: it is still its token's, and it gets the next task.
        let row = listed_delegate(&api, "dc-runner").await;
        assert_eq!(row["token"], "fleet", "{row}");
        assert_eq!(row["hostname"], "host-a", "{row}");
        let (_, queued) = api.post("/api/v1/connectors/Config/test", json!({})).await;
        assert_eq!(queued["status"], "queued", "{queued}");
        let (status, task) = as_delegate(
            &api,
            &fleet,
            Some("dc-runner"),
            "/api/delegate/claim?wait_ms=5000",
            json!({}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{task}");
        assert_eq!(task["id"], queued["id"]);
    });
}

#[tokio::test]
async fn a_restricted_tokens_delegate_claims_only_its_own_connectors_and_never_others_credentials()
{
    on_each_backend!(backend, {
        let api = Api::spawn_with(backend, |c| c.builtin_delegate = false).await;
        with_token_secret(&api).await;
        let other_secret = "eu-secret-value-4711";
        api.post(
            "/api/v1/secrets",
            json!({"name": "eu-token", "value": other_secret}),
        )
        .await;
        let mut mine = connector("Mine");
        mine["selectors"] = json!(["dc"]);
        let mut theirs = connector("Theirs");
        theirs["selectors"] = json!(["eu"]);
        theirs["password_secret"] = json!("eu-token");
        let mut open = connector("Open");
        open["password_secret"] = json!("eu-token");
        // Selects the restricted delegate by its name, which its token does not allow.
        let mut by_name = connector("ByName");
        by_name["selectors"] = json!(["dc-runner"]);
        by_name["password_secret"] = json!("eu-token");
        for body in [mine, theirs, open, by_name] {
            let (status, answer) = api.post("/api/v1/connectors", body).await;
            assert_eq!(status, StatusCode::CREATED, "{answer}");
        }

        let (status, refused) = api
            .post(
                "/api/v1/delegate-tokens",
                json!({"name": "none", "selectors": []}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
        assert_eq!(refused["error"]["field"], "selectors");
        let restricted =
            delegate_token(&api, json!({"name": "dc-only", "selectors": [" DC "]})).await;
        let fleet = delegate_token(&api, json!({"name": "fleet"})).await;
        let (_, tokens) = api.get("/api/v1/delegate-tokens").await;
        let restriction = |name: &str| {
            tokens["items"]
                .as_array()
                .expect("items")
                .iter()
                .find(|t| t["name"] == name)
                .expect("listed")["selectors"]
                .clone()
        };
        assert_eq!(restriction("dc-only"), json!(["dc"]));
        assert_eq!(restriction("fleet"), Value::Null, "unrestricted");

        // It may not declare a selector its token does not allow, and its name and host name
        // count as selectors only where the token allows them.
        let (status, refused) = as_delegate(
            &api,
            &restricted,
            None,
            "/api/delegate/register",
            registration("dc-runner", &["dc", "eu"], "dc-host"),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
        assert_eq!(refused["error"]["field"], "selectors");
        assert!(
            refused["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("eu") && m.contains("dc-only")),
            "{refused}"
        );
        let (status, registered) = as_delegate(
            &api,
            &restricted,
            None,
            "/api/delegate/register",
            registration("dc-runner", &["dc"], "eu"),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{registered}");
        assert_eq!(registered["selectors"], json!(["dc"]));
        let (status, _) = as_delegate(
            &api,
            &fleet,
            None,
            "/api/delegate/register",
            registration("eu-1", &["eu"], "eu-host"),
        )
        .await;
        assert_eq!(status, StatusCode::OK);

        // Selecting the restricted delegate by its name reaches no one.
        let (_, by_name) = api.post("/api/v1/connectors/ByName/test", json!({})).await;
        assert_eq!(by_name["status"], "failed", "{by_name}");
        assert_eq!(by_name["result"]["code"], "no_delegate", "{by_name}");
        assert!(
            by_name["result"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("its token allows only dc")),
            "{by_name}"
        );

        // The others' Tests are older in the queue; the restricted delegate gets only its own.
        let mut queued = std::collections::HashMap::new();
        for name in ["Theirs", "Open", "Mine"] {
            let (_, task) = api
                .post(&format!("/api/v1/connectors/{name}/test"), json!({}))
                .await;
            assert_eq!(task["status"], "queued", "{task}");
            queued.insert(task["id"].as_str().expect("id").to_owned(), name);
        }
        let claim = |token: &str, name: &str, wait_ms: u64| {
            let (token, name) = (token.to_owned(), name.to_owned());
            let api = &api;
            async move {
                as_delegate(
                    api,
                    &token,
                    Some(&name),
                    &format!("/api/delegate/claim?wait_ms={wait_ms}"),
                    json!({}),
                )
                .await
            }
        };
        let (status, task) = claim(&restricted, "dc-runner", 5000).await;
        assert_eq!(status, StatusCode::OK, "{task}");
        assert_eq!(queued[task["id"].as_str().expect("id")], "Mine");
        assert_eq!(task["spec"]["auth"]["password"], "tok-value-1234567");
        let (status, nothing) = claim(&restricted, "dc-runner", 300).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{nothing}");
        assert!(!nothing.to_string().contains(other_secret));

        // The unrestricted delegate takes the rest, credentials and all.
        let mut taken = Vec::new();
        for _ in 0..2 {
            let (status, task) = claim(&fleet, "eu-1", 5000).await;
            assert_eq!(status, StatusCode::OK, "{task}");
            assert_eq!(task["spec"]["auth"]["password"], other_secret);
            taken.push(queued[task["id"].as_str().expect("id")]);
        }
        taken.sort_unstable();
        assert_eq!(taken, ["Open", "Theirs"]);
    });
}

#[tokio::test]
async fn a_claim_dropped_mid_wait_no_longer_counts_as_waiting() {
    on_each_backend!(backend, {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let api = Api::spawn_with(backend, |c| c.builtin_delegate = false).await;
        let token = delegate_token(&api, json!({"name": "fleet"})).await;
        let (status, _) = as_delegate(
            &api,
            &token,
            None,
            "/api/delegate/register",
            registration("vanishing", &[], "host"),
        )
        .await;
        assert_eq!(status, StatusCode::OK);

        // A long poll over a connection of our own, which is then closed as a killed delegate's
        // would be.
        let address = api.base.trim_start_matches("http://").to_owned();
        let mut connection = tokio::net::TcpStream::connect(&address)
            .await
            .expect("connect");
        let request = format!(
            "POST /api/delegate/claim?wait_ms=25000 HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\nX-Reposync-Delegate: vanishing\r\nContent-Length: 0\r\n\r\n"
        );
        connection
            .write_all(request.as_bytes())
            .await
            .expect("send");
        eventually("the claim waits", async || {
            api.hub.waiting_claims("vanishing") == 1
        })
        .await;
        drop(connection);
        eventually("the dropped claim stops counting", async || {
            api.hub.waiting_claims("vanishing") == 0
        })
        .await;

        // A claim that runs to its end stops counting too.
        let mut connection = tokio::net::TcpStream::connect(&address)
            .await
            .expect("connect");
        let request = request.replace("wait_ms=25000", "wait_ms=200");
        connection
            .write_all(request.as_bytes())
            .await
            .expect("send");
        let mut answer = [0_u8; 12];
        connection.read_exact(&mut answer).await.expect("answer");
        assert_eq!(&answer, b"HTTP/1.1 204");
        eventually("the finished claim stops counting", async || {
            api.hub.waiting_claims("vanishing") == 0
        })
        .await;
    });
}

#[tokio::test]
async fn a_delegate_that_goes_silent_or_leaves_is_disconnected_and_tasks_only_it_could_run_fail() {
    on_each_backend!(backend, {
        let api = Api::spawn_with(backend, |c| {
            c.builtin_delegate = false;
            c.delegate_lease = Duration::from_secs(3);
        })
        .await;
        with_token_secret(&api).await;
        let mut body = connector("Silent");
        body["selectors"] = json!(["silent"]);
        api.post("/api/v1/connectors", body).await;
        let mut body = connector("Leaving");
        body["selectors"] = json!(["leaving"]);
        api.post("/api/v1/connectors", body).await;
        let token = delegate_token(&api, json!({"name": "fleet"})).await;
        for name in ["silent", "leaving"] {
            let (status, _) = as_delegate(
                &api,
                &token,
                None,
                "/api/delegate/register",
                registration(name, &[], "host"),
            )
            .await;
            assert_eq!(status, StatusCode::OK);
        }

        // The leaving delegate holds a task when it says goodbye: the task is not left to wait
        // for its lease, and, nobody else being able to run it, it fails as `no_delegate`.
        let (_, held) = api.post("/api/v1/connectors/Leaving/test", json!({})).await;
        let (status, claimed) = as_delegate(
            &api,
            &token,
            Some("leaving"),
            "/api/delegate/claim?wait_ms=5000",
            json!({}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{claimed}");
        assert_eq!(claimed["id"], held["id"]);
        let (status, _) = as_delegate(
            &api,
            &token,
            Some("leaving"),
            "/api/delegate/leave",
            json!({}),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(listed_delegate(&api, "leaving").await["connected"], false);

        // The silent delegate is heard from once more, then never again: its Test, queued while
        // it was connected, fails once its lease has passed, not at the Test's own timeout.
        let (status, _) = as_delegate(
            &api,
            &token,
            Some("silent"),
            "/api/delegate/heartbeat",
            json!({"running": []}),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let (_, queued) = api.post("/api/v1/connectors/Silent/test", json!({})).await;
        assert_eq!(queued["status"], "queued", "{queued}");

        for (task, selector) in [(&held, "leaving"), (&queued, "silent")] {
            let done = final_task(&api, task["id"].as_str().expect("id")).await;
            assert_eq!(done["status"], "failed", "{done}");
            assert_eq!(done["result"]["code"], "no_delegate", "{done}");
            let message = done["result"]["message"].as_str().unwrap_or_default();
            assert!(
                message.contains("went away") && message.contains(selector),
                "{message}"
            );
        }
        assert_eq!(listed_delegate(&api, "silent").await["connected"], false);
        let (_, shown) = api.get("/api/v1/connectors/Silent").await;
        assert_eq!(
            shown["last_test"]["code"], "no_delegate",
            "the connector's last Test says so: {shown}"
        );
    });
}

/// `text` percent-encoded for a query string.
fn query_encoded(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_./~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test]
async fn paths_with_git_dot_or_control_components_are_refused_in_every_free_form_folder() {
    on_each_backend!(backend, {
        let api = Api::spawn(backend).await;
        // The application, service and environment exist, so that only the path can be wrong.
        let (status, body) = api.post("/api/v1/apps", json!({"name": "Shop"})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        for (path, yaml) in [
            (
                "Setup/Applications/Shop/Services/cart/Index.yaml",
                "harnessApiVersion: '1.0'\ntype: SERVICE\ndeploymentType: KUBERNETES\n",
            ),
            (
                "Setup/Applications/Shop/Environments/prod/Index.yaml",
                "harnessApiVersion: '1.0'\ntype: ENVIRONMENT\nenvironmentType: PROD\n",
            ),
        ] {
            let (status, body) = api
                .send(
                    reqwest::Method::PUT,
                    &format!("/api/v1/entities?path={}", query_encoded(path)),
                    Some(json!({ "content": yaml })),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{path}: {body}");
        }
        let (status, before) = api.get("/api/v1/export").await;
        assert_eq!(status, StatusCode::OK);
        // The folders whose files may sit at any depth, where the layout names nothing.
        let folders = [
            "Setup/Template Library",
            "Setup/Governance",
            "Setup/Applications/Shop/Template Library",
            "Setup/Applications/Shop/Services/cart/Config Files",
            "Setup/Applications/Shop/Services/cart/Values",
            "Setup/Applications/Shop/Services/cart/Manifests/Files",
            "Setup/Applications/Shop/Environments/prod/Values",
        ];
        let components = [
            ".git",
            ".GIT",
            "..",
            ".",
            "a\u{1}b",
            "tab\there",
            ".git.",
            "GIT~1",
        ];
        for folder in folders {
            for component in components {
                for path in [
                    format!("{folder}/{component}/x.yaml"),
                    format!("{folder}/{component}"),
                ] {
                    let escaped = reposync_model::escape_path(path.as_bytes());
                    let (status, body) = api
                        .send(
                            reqwest::Method::PUT,
                            &format!("/api/v1/entities?path={}", query_encoded(&path)),
                            Some(json!({"content": "a: 1\n"})),
                        )
                        .await;
                    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{path:?}: {body}");
                    assert_eq!(body["error"]["field"], "path", "{path:?}: {body}");
                    let message = body["error"]["message"].as_str().expect("message");
                    assert!(
                        message.starts_with(&format!(
                            "{escaped} is not a path reposync can represent: "
                        )),
                        "{message}"
                    );

                    // An import names the file in its report.
                    let (status, body) = api
                        .post(
                            "/api/v1/import",
                            // "a: 1\n" in base64.
                            json!({"files": [{"path": path, "content": "YTogMQo="}]}),
                        )
                        .await;
                    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{path:?}: {body}");
                    assert_eq!(body["error"]["code"], "invalid_tree");
                    let problem = &body["report"]["problems"][0];
                    assert_eq!(problem["path"], path.as_str(), "{body}");
                    assert!(
                        problem["message"]
                            .as_str()
                            .expect("message")
                            .starts_with("not a path reposync can represent: "),
                        "{body}"
                    );
                }
            }
        }
        // Deleting such a path is refused the same way.
        let (status, body) = api
            .send(
                reqwest::Method::DELETE,
                &format!(
                    "/api/v1/entities?path={}",
                    query_encoded("Setup/Governance/.git/x.yaml")
                ),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["error"]["field"], "path");
        let (_, after) = api.get("/api/v1/export").await;
        assert_eq!(before, after, "nothing was written");
        // The same folders take ordinary paths.
        for folder in folders {
            let path = format!("{folder}/ok/x.yaml");
            let (status, body) = api
                .send(
                    reqwest::Method::PUT,
                    &format!("/api/v1/entities?path={}", query_encoded(&path)),
                    Some(json!({"content": "a: 1\n"})),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{path}: {body}");
        }
    });
}

// The OpenAPI contract (issue 13): `/api/v1/openapi.json` lists every route the server
// answers, and its examples and the server's real answers match its schemas.

/// Checks JSON values against the JSON Schema subset utoipa writes into an OpenAPI 3.1
/// document. A keyword it does not know is itself a problem, so that a schema it cannot judge
/// never passes by being skipped.
struct SchemaCheck<'a> {
    document: &'a Value,
}

impl SchemaCheck<'_> {
    /// Keywords that describe and never constrain.
    const ANNOTATIONS: [&'static str; 10] = [
        "description",
        "title",
        "format",
        "examples",
        "example",
        "default",
        "deprecated",
        "readOnly",
        "writeOnly",
        "contentEncoding",
    ];

    /// Every way `value` breaks `schema`, each with where (a JSON pointer into the value).
    fn problems(&self, schema: &Value, value: &Value) -> Vec<String> {
        let mut problems = Vec::new();
        self.check(schema, value, "", &mut problems);
        problems
    }

    fn resolve(&self, reference: &str) -> Option<&Value> {
        self.document.pointer(reference.strip_prefix('#')?)
    }

    fn check(&self, schema: &Value, value: &Value, at: &str, problems: &mut Vec<String>) {
        let Some(schema) = schema.as_object() else {
            if schema != &Value::Bool(true) {
                problems.push(format!("{at}: the schema {schema} is not an object"));
            }
            return;
        };
        for (keyword, rule) in schema {
            match keyword.as_str() {
                "$ref" => match rule.as_str().and_then(|r| self.resolve(r)) {
                    Some(target) => self.check(target, value, at, problems),
                    None => problems.push(format!("{at}: {rule} names no schema")),
                },
                "type" => {
                    let types: Vec<&str> = match rule {
                        Value::String(one) => vec![one.as_str()],
                        Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
                        _ => Vec::new(),
                    };
                    if !types.iter().any(|t| Self::is_of_type(value, t)) {
                        problems.push(format!("{at}: {value} is not of type {rule}"));
                    }
                }
                "enum" => {
                    if !rule
                        .as_array()
                        .is_some_and(|allowed| allowed.contains(value))
                    {
                        problems.push(format!("{at}: {value} is not one of {rule}"));
                    }
                }
                "const" => {
                    if rule != value {
                        problems.push(format!("{at}: {value} is not {rule}"));
                    }
                }
                "required" => {
                    if let Some(object) = value.as_object() {
                        for name in rule.as_array().into_iter().flatten() {
                            if !name.as_str().is_some_and(|n| object.contains_key(n)) {
                                problems.push(format!("{at}: {name} is required"));
                            }
                        }
                    }
                }
                "properties" => {
                    if let (Some(object), Some(properties)) = (value.as_object(), rule.as_object())
                    {
                        for (name, property) in properties {
                            if let Some(field) = object.get(name) {
                                self.check(property, field, &format!("{at}/{name}"), problems);
                            }
                        }
                    }
                }
                "additionalProperties" => {
                    if let Some(object) = value.as_object() {
                        let declared = schema.get("properties").and_then(Value::as_object);
                        for (name, field) in object {
                            if declared.is_some_and(|d| d.contains_key(name)) {
                                continue;
                            }
                            match rule {
                                Value::Bool(false) => {
                                    problems.push(format!("{at}: {name} is not a known field"));
                                }
                                Value::Bool(true) => {}
                                other => {
                                    self.check(other, field, &format!("{at}/{name}"), problems);
                                }
                            }
                        }
                    }
                }
                "propertyNames" => {
                    for name in value.as_object().into_iter().flat_map(|o| o.keys()) {
                        self.check(rule, &Value::String(name.clone()), at, problems);
                    }
                }
                "items" => {
                    for (i, item) in value.as_array().into_iter().flatten().enumerate() {
                        self.check(rule, item, &format!("{at}/{i}"), problems);
                    }
                }
                "minimum" | "maximum" => {
                    if let (Some(number), Some(bound)) = (value.as_f64(), rule.as_f64()) {
                        let within = if keyword == "minimum" {
                            number >= bound
                        } else {
                            number <= bound
                        };
                        if !within {
                            problems.push(format!("{at}: {number} is past the {keyword} {bound}"));
                        }
                    }
                }
                "allOf" | "anyOf" | "oneOf" => {
                    let branches = rule.as_array().cloned().unwrap_or_default();
                    let passing = branches
                        .iter()
                        .filter(|branch| self.problems(branch, value).is_empty())
                        .count();
                    let fits = match keyword.as_str() {
                        "allOf" => passing == branches.len(),
                        "anyOf" => passing >= 1,
                        _ => passing == 1,
                    };
                    if !fits {
                        problems.push(format!(
                            "{at}: {value} fits {passing} of the {} schemas of {keyword}",
                            branches.len()
                        ));
                    }
                }
                known if Self::ANNOTATIONS.contains(&known) => {}
                unknown => problems.push(format!(
                    "{at}: the check does not know the keyword {unknown:?}; teach it"
                )),
            }
        }
    }

    fn is_of_type(value: &Value, name: &str) -> bool {
        match name {
            "null" => value.is_null(),
            "boolean" => value.is_boolean(),
            "string" => value.is_string(),
            "array" => value.is_array(),
            "object" => value.is_object(),
            "number" => value.is_number(),
            "integer" => value.is_i64() || value.is_u64(),
            _ => false,
        }
    }
}

/// The OpenAPI document as the server serves it, fetched without a token.
async fn openapi_document(api: &Api) -> Value {
    let response = api
        .http
        .get(format!("{}/api/v1/openapi.json", api.base))
        .send()
        .await
        .expect("openapi.json");
    assert_eq!(response.status(), StatusCode::OK, "served without a token");
    response.json().await.expect("the document is JSON")
}

/// Every operation of the document: (path, method, operation).
fn operations(document: &Value) -> Vec<(String, String, Value)> {
    let mut found = Vec::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            found.push((path.clone(), method.clone(), operation.clone()));
        }
    }
    found
}

/// The schema the document gives for `status` of `method path`'s JSON answer.
fn response_schema(document: &Value, path: &str, method: &str, status: u16) -> Option<Value> {
    let method = method.to_lowercase();
    document["paths"][path][method.as_str()]["responses"][status.to_string()]["content"]
        ["application/json"]["schema"]
        .as_object()
        .map(|schema| Value::Object(schema.clone()))
}

#[tokio::test]
async fn the_openapi_document_is_3_1_names_its_version_and_its_token_scheme() {
    on_each_backend!(backend, {
        let api = Api::spawn(backend).await;
        let document = openapi_document(&api).await;
        assert_eq!(document["openapi"], "3.1.0");
        assert_eq!(document["info"]["version"], env!("CARGO_PKG_VERSION"));
        let scheme = &document["components"]["securitySchemes"]["api_token"];
        assert_eq!(scheme["type"], "http", "{scheme}");
        assert_eq!(scheme["scheme"], "bearer", "{scheme}");
        assert_eq!(document["security"], json!([{"api_token": []}]));
        let mut ids: Vec<String> = operations(&document)
            .iter()
            .map(|(_, _, operation)| {
                operation["operationId"]
                    .as_str()
                    .expect("operationId")
                    .to_owned()
            })
            .collect();
        let count = ids.len();
        for (path, method, operation) in operations(&document) {
            let summary = operation["summary"].as_str().unwrap_or_default();
            assert!(
                !summary.is_empty() && !summary.contains('\n'),
                "{method} {path}: a one-line summary, from the handler's doc comment: {summary:?}"
            );
        }
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), count, "operation ids are unique: {ids:?}");
    });
}

/// Every operation the document lists is served, at that path and method (never the table's
/// 404 or 405), behind the token exactly where the document says; and what the server answers
/// to a bare request (no body, `{}`, or names that do not exist) is a status the document
/// lists, with a body its schema accepts.
#[tokio::test]
async fn every_documented_operation_is_served_as_documented() {
    on_each_backend!(backend, {
        let api = Api::spawn(backend).await;
        let document = openapi_document(&api).await;
        let check = SchemaCheck {
            document: &document,
        };
        let listed = operations(&document);
        assert!(listed.len() >= 40, "every /api/v1 route: {}", listed.len());
        let mut problems = Vec::new();
        for (path, method, operation) in &listed {
            assert!(path.starts_with("/api/v1/"), "{path}");
            let url = path
                .split('/')
                .map(|part| {
                    if part.starts_with('{') {
                        "nothing-here"
                    } else {
                        part
                    }
                })
                .collect::<Vec<_>>()
                .join("/");
            let method =
                reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            let body = operation.get("requestBody").map(|_| json!({}));
            let public = operation["security"] == json!([{}]);
            let anonymous = api
                .http
                .request(method.clone(), format!("{}{url}", api.base))
                .send()
                .await
                .expect("request");
            // A public route answers a request without a token as it would any other (the login
            // refuses an empty body with 415); every other route asks for the token.
            if (anonymous.status() != StatusCode::UNAUTHORIZED) != public {
                problems.push(format!(
                    "{method} {path} without a token: {} (the document says it is {})",
                    anonymous.status(),
                    if public { "public" } else { "behind the token" }
                ));
            }
            let (status, answer) = api.send(method.clone(), &url, body).await;
            let fallback = status == StatusCode::METHOD_NOT_ALLOWED
                || answer["error"]["message"] == "no such endpoint";
            if fallback {
                problems.push(format!(
                    "{method} {path}: the route table does not serve it ({status})"
                ));
                continue;
            }
            if status == StatusCode::OK && path == "/api/v1/openapi.json" {
                continue; // The document itself: its schema is OpenAPI's own.
            }
            match response_schema(&document, path, method.as_str(), status.as_u16()) {
                None => problems.push(format!(
                    "{method} {path} answered {status}, which the document does not list: {answer}"
                )),
                Some(schema) => {
                    for problem in check.problems(&schema, &answer) {
                        problems.push(format!("{method} {path} {status}: {problem}: {answer}"));
                    }
                }
            }
        }
        assert!(problems.is_empty(), "{problems:#?}");
    });
}

/// An example of `schema`: its own first example or its target's; for an array, one item of
/// its items' example; for an object, its required fields from theirs. `None` where no
/// example covers it.
fn example_of(document: &Value, schema: &Value) -> Option<Value> {
    if let Some(first) = schema["examples"].as_array().and_then(|e| e.first()) {
        return Some(first.clone());
    }
    if let Some(reference) = schema["$ref"].as_str() {
        return example_of(document, document.pointer(reference.strip_prefix('#')?)?);
    }
    match schema["type"].as_str() {
        Some("array") => Some(Value::Array(vec![example_of(document, &schema["items"])?])),
        Some("object") => {
            let mut object = serde_json::Map::new();
            for name in schema["required"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                let field = example_of(document, &schema["properties"][name])?;
                object.insert(name.to_owned(), field);
            }
            Some(Value::Object(object))
        }
        _ => None,
    }
}

#[tokio::test]
async fn every_documented_answer_has_an_example_that_matches_its_schema() {
    on_each_backend!(backend, {
        let api = Api::spawn(backend).await;
        let document = openapi_document(&api).await;
        let check = SchemaCheck {
            document: &document,
        };
        let mut problems = Vec::new();
        // The examples the types give, each against its own schema.
        let mut examples = 0;
        for (name, schema) in document["components"]["schemas"]
            .as_object()
            .expect("schemas")
        {
            for example in schema["examples"].as_array().into_iter().flatten() {
                examples += 1;
                for problem in check.problems(schema, example) {
                    problems.push(format!("the example of {name}: {problem}: {example}"));
                }
            }
        }
        assert!(
            examples >= 25,
            "the answers' types give examples: {examples}"
        );
        // Every JSON answer of every operation, successes and errors, has one, and it fits.
        for (path, method, operation) in operations(&document) {
            for (status, response) in operation["responses"].as_object().expect("responses") {
                let schema = &response["content"]["application/json"]["schema"];
                if schema.is_null() || path.ends_with("/openapi.json") {
                    continue;
                }
                match example_of(&document, schema) {
                    None => problems.push(format!("{method} {path} {status}: no example")),
                    Some(example) => {
                        for problem in check.problems(schema, &example) {
                            problems
                                .push(format!("{method} {path} {status}: {problem}: {example}"));
                        }
                    }
                }
            }
        }
        assert!(problems.is_empty(), "{problems:#?}");
    });
}

/// The check would catch a wrong example: each way of breaking a good one is refused.
#[tokio::test]
async fn the_schema_check_refuses_an_example_that_breaks_its_schema() {
    on_each_backend!(backend, {
        let api = Api::spawn(backend).await;
        let document = openapi_document(&api).await;
        let check = SchemaCheck {
            document: &document,
        };
        let schemas = &document["components"]["schemas"];
        let good = example_of(&document, &schemas["SecretView"]).expect("an example");
        assert_eq!(
            check.problems(&schemas["SecretView"], &good),
            Vec::<String>::new()
        );
        type Breakage = (&'static str, fn(&mut Value));
        let breakages: [Breakage; 6] = [
            ("a kind outside the enum", |v| v["kind"] = json!("password")),
            ("a required field missing", |v| {
                v.as_object_mut().map(|o| o.remove("name"));
            }),
            ("a number for a string", |v| v["created_at"] = json!(5)),
            ("a string for an array", |v| v["used_by"] = json!("Config")),
            ("an SSH key without its fingerprint", |v| {
                v["ssh"] =
                    json!({"username": "git", "algorithm": "ssh-ed25519", "public_key": "k"});
            }),
            ("null for a field that is never null", |v| {
                v["name"] = Value::Null
            }),
        ];
        for (what, breakage) in breakages {
            let mut wrong = good.clone();
            breakage(&mut wrong);
            assert!(
                !check.problems(&schemas["SecretView"], &wrong).is_empty(),
                "{what} passed: {wrong}"
            );
        }
        let mut negative = example_of(&document, &schemas["TaskView"]).expect("an example");
        negative["queued_ms"] = json!(-1);
        assert!(
            !check.problems(&schemas["TaskView"], &negative).is_empty(),
            "a negative count passed"
        );
        assert!(
            !check
                .problems(&json!({"type": "string", "pattern": "^a"}), &json!("b"))
                .is_empty(),
            "a keyword the check does not know is a problem, never a pass"
        );
    });
}

/// Sends a request and checks the answer against the schema the document gives for its
/// operation (`template`) and status; returns the answer.
async fn answered_as_documented(
    api: &Api,
    document: &Value,
    (method, template, url): (reqwest::Method, &str, &str),
    body: Option<Value>,
    expected: StatusCode,
) -> Value {
    let (status, answer) = api.send(method.clone(), url, body).await;
    assert_eq!(status, expected, "{method} {url}: {answer}");
    let schema = response_schema(document, template, method.as_str(), status.as_u16())
        .unwrap_or_else(|| panic!("{method} {template} {status} is not in the document"));
    let problems = SchemaCheck { document }.problems(&schema, &answer);
    assert!(
        problems.is_empty(),
        "{method} {url} {status}: {problems:#?}\n{answer}"
    );
    answer
}

/// The server's real answers, through a session that touches most resources, fit the
/// document.
#[tokio::test]
async fn real_answers_match_their_documented_schemas() {
    on_each_backend!(backend, {
        use reqwest::Method;
        let api = Api::spawn(backend).await;
        let document = openapi_document(&api).await;
        let (ok, created, accepted) = (StatusCode::OK, StatusCode::CREATED, StatusCode::ACCEPTED);
        let get = |path: &'static str| (Method::GET, path, path);
        let post = |path: &'static str| (Method::POST, path, path);
        let doc = &document;
        answered_as_documented(&api, doc, get("/api/v1/version"), None, ok).await;
        let secret = json!({"name": "bb-token", "value": "tok-value-1234567"});
        answered_as_documented(&api, doc, post("/api/v1/secrets"), Some(secret), created).await;
        let key = json!({"name": "deploy-key"});
        let generate = post("/api/v1/secrets/ssh/generate");
        answered_as_documented(&api, doc, generate, Some(key), created).await;
        answered_as_documented(&api, doc, get("/api/v1/secrets"), None, ok).await;
        let deploy_key = (
            Method::GET,
            "/api/v1/secrets/{name}",
            "/api/v1/secrets/deploy-key",
        );
        answered_as_documented(&api, doc, deploy_key, None, ok).await;
        let new_value = Some(json!({"value": "tok-value-7654321"}));
        let update = (
            Method::PUT,
            "/api/v1/secrets/{name}",
            "/api/v1/secrets/bb-token",
        );
        answered_as_documented(&api, doc, update, new_value, ok).await;

        // No delegate has the selector, so that the Test fails at once, with no network.
        let mut body = connector("Config");
        body["selectors"] = json!(["nowhere"]);
        body["generate_webhook_url"] = json!(true);
        let saved =
            answered_as_documented(&api, doc, post("/api/v1/connectors"), Some(body), created)
                .await;
        assert!(saved["webhook"]["secret"].is_string(), "{saved}");
        answered_as_documented(&api, doc, get("/api/v1/connectors"), None, ok).await;
        let one = "/api/v1/connectors/{name}";
        let config = "/api/v1/connectors/Config";
        answered_as_documented(&api, doc, (Method::GET, one, config), None, ok).await;
        let patch = Some(json!({"commit_message": "reposync: {summary}"}));
        answered_as_documented(&api, doc, (Method::PATCH, one, config), patch, ok).await;
        let hook = (
            Method::GET,
            "/api/v1/connectors/{name}/webhook",
            "/api/v1/connectors/Config/webhook",
        );
        answered_as_documented(&api, doc, hook, None, ok).await;
        let signature = (
            Method::POST,
            "/api/v1/connectors/{name}/webhook/signature",
            "/api/v1/connectors/Config/webhook/signature",
        );
        let required = Some(json!({"required": true}));
        answered_as_documented(&api, doc, signature, required, ok).await;
        let regenerate = (
            Method::POST,
            "/api/v1/connectors/{name}/webhook/regenerate",
            "/api/v1/connectors/Config/webhook/regenerate",
        );
        answered_as_documented(&api, doc, regenerate, None, ok).await;
        let test = (
            Method::POST,
            "/api/v1/connectors/{name}/test",
            "/api/v1/connectors/Config/test",
        );
        let task = answered_as_documented(&api, doc, test, None, accepted).await;
        let id = task["id"].as_str().expect("task id");
        let url = format!("/api/v1/tasks/{id}?wait_ms=5000");
        let show_task = (Method::GET, "/api/v1/tasks/{id}", url.as_str());
        let task = answered_as_documented(&api, doc, show_task, None, ok).await;
        assert_eq!(task["result"]["code"], "no_delegate", "{task}");

        // The tree: an application, a file, a refused file, an export, a dry-run import.
        let shop = Some(json!({"name": "Shop", "description": "The web shop"}));
        answered_as_documented(&api, doc, post("/api/v1/apps"), shop, ok).await;
        answered_as_documented(&api, doc, get("/api/v1/apps"), None, ok).await;
        let app = (Method::GET, "/api/v1/apps/{name}", "/api/v1/apps/Shop");
        answered_as_documented(&api, doc, app, None, ok).await;
        let service = "/api/v1/entities?path=Setup/Applications/Shop/Services/cart/Index.yaml";
        let yaml = "harnessApiVersion: '1.0'\ntype: SERVICE\ndeploymentType: KUBERNETES\n";
        let put = (Method::PUT, "/api/v1/entities", service);
        let content = Some(json!({ "content": yaml }));
        answered_as_documented(&api, doc, put.clone(), content, ok).await;
        let wrong = Some(json!({"content": "harnessApiVersion: '1.0'\ntype: WIDGET\n"}));
        let refused =
            answered_as_documented(&api, doc, put, wrong, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(refused["error"]["code"], "invalid_tree", "{refused}");
        assert!(refused["report"]["problems"].is_array(), "{refused}");
        answered_as_documented(
            &api,
            doc,
            (Method::GET, "/api/v1/entities", service),
            None,
            ok,
        )
        .await;
        answered_as_documented(&api, doc, get("/api/v1/export"), None, ok).await;
        let dry_run = Some(json!({"files": [], "dry_run": true}));
        answered_as_documented(&api, doc, post("/api/v1/import"), dry_run, ok).await;
        let rename = (
            Method::POST,
            "/api/v1/apps/{name}/rename",
            "/api/v1/apps/Shop/rename",
        );
        let store = Some(json!({"name": "Store"}));
        answered_as_documented(&api, doc, rename, store, ok).await;
        let delete_app = (Method::DELETE, "/api/v1/apps/{name}", "/api/v1/apps/Store");
        answered_as_documented(&api, doc, delete_app, None, ok).await;

        // Sync, webhooks and delegates, with nothing synced yet.
        answered_as_documented(&api, doc, get("/api/v1/sync/status"), None, ok).await;
        answered_as_documented(&api, doc, get("/api/v1/sync/activity"), None, ok).await;
        answered_as_documented(&api, doc, get("/api/v1/sync/errors"), None, ok).await;
        let deliveries = get("/api/v1/webhooks/deliveries");
        answered_as_documented(&api, doc, deliveries, None, ok).await;
        let restricted = Some(json!({"name": "eu", "selectors": ["eu"]}));
        let tokens = post("/api/v1/delegate-tokens");
        let token = answered_as_documented(&api, doc, tokens, restricted, created).await;
        assert!(token["token"].is_string(), "{token}");
        answered_as_documented(&api, doc, get("/api/v1/delegate-tokens"), None, ok).await;
        answered_as_documented(&api, doc, get("/api/v1/delegates"), None, ok).await;
        let revoke = (
            Method::DELETE,
            "/api/v1/delegate-tokens/{name}",
            "/api/v1/delegate-tokens/eu",
        );
        answered_as_documented(&api, doc, revoke, None, ok).await;
        answered_as_documented(&api, doc, (Method::DELETE, one, config), None, ok).await;

        // The audit trail, with an event in it, and a filter refused.
        api.store
            .record_audit(&audited("alice", "Config", None))
            .await
            .expect("record");
        // Every write above is in it too (the access layer records them); alice's is the one
        // recorded here.
        let alices = (Method::GET, "/api/v1/audit", "/api/v1/audit?user=alice");
        let audit = answered_as_documented(&api, doc, alices, None, ok).await;
        assert_eq!(audit_targets(&audit), ["Config"]);
        let bad_limit = (Method::GET, "/api/v1/audit", "/api/v1/audit?limit=0");
        let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;
        answered_as_documented(&api, doc, bad_limit, None, unprocessable).await;
    });
}

/// An import may be larger than other requests: its own limit holds in the access layer too,
/// which reads the body to learn which applications it touches.
#[tokio::test]
async fn an_import_larger_than_other_requests_may_be_is_accepted_up_to_its_own_limit() {
    on_each_backend!(backend, {
        let api = Api::spawn_with(backend, |config| {
            config.max_body_bytes = 16 * 1024;
            config.max_import_bytes = 1024 * 1024;
        })
        .await;
        use base64::Engine as _;
        let files: Vec<Value> = (0..200)
            .map(|n| {
                let yaml = format!(
                    "harnessApiVersion: '1.0'\ntype: SERVICE\ndeploymentType: KUBERNETES\ndescription: {}\n",
                    "x".repeat(200 + n)
                );
                json!({
                    "path": format!("Setup/Applications/Big/Services/s{n}/Index.yaml"),
                    "content": base64::engine::general_purpose::STANDARD.encode(yaml),
                })
            })
            .chain(std::iter::once(json!({
                "path": "Setup/Applications/Big/Index.yaml",
                "content": base64::engine::general_purpose::STANDARD
                    .encode("harnessApiVersion: '1.0'\ntype: APPLICATION\n"),
            })))
            .collect();
        let body = json!({ "files": files });
        assert!(
            body.to_string().len() > 16 * 1024,
            "larger than other requests may be"
        );
        let (status, report) = api.post("/api/v1/import", body).await;
        assert_eq!(status, StatusCode::OK, "{report}");
        assert_eq!(report["created"], 201, "{report}");
        let (status, refused) = api
            .post("/api/v1/apps", json!({"name": "x".repeat(20 * 1024)}))
            .await;
        assert_eq!(
            status,
            StatusCode::PAYLOAD_TOO_LARGE,
            "other requests keep theirs: {refused}"
        );
    });
}
