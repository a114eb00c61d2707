//! Webhook intake against the real binary: the URL token and the HMAC signature, limits,
//! every outcome in the delivery log, deduplication, and the offline inspector. Every test
//! but the offline inspector's runs on each backend (`on_each_backend!`): the SQLite file
//! always, a fresh PostgreSQL database when `REPOSYNC_TEST_POSTGRES` names a cluster.

#![allow(clippy::expect_used)] // Test helpers outside #[test] functions may panic.

use crate::common;

use common::Backend;
use common::git_fixture::Fixture;
use serde_json::{Value, json};

/// A linked application and the connector's webhook URL token and HMAC secret.
struct Hooked {
    f: Fixture,
    token: String,
    secret: String,
    http: reqwest::Client,
}

impl Hooked {
    fn new(backend: Backend) -> Hooked {
        Hooked::with_server_args(backend, &[])
    }

    fn with_server_args(backend: Backend, serve_args: &[&str]) -> Hooked {
        let f = Fixture::https_on(backend, &[("README.md", "x\n")], serve_args);
        let (token, secret) = f.webhook_credentials();
        f.app
            .cli(
                &["sync", "enable", "--app", "Shop", "--connector", "git"],
                None,
            )
            .ok();
        f.wait_pushed();
        Hooked {
            f,
            token,
            secret,
            http: reqwest::Client::new(),
        }
    }

    /// Posts a body to a token's URL with the given headers; returns status and JSON answer.
    fn post(&self, token: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, Value) {
        let mut request = self
            .http
            .post(format!("{}/api/webhooks/git/{token}", self.f.app.url))
            .body(body.to_vec());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let (status, text) = self.f.rt.block_on(async {
            let response = request.send().await.expect("delivery");
            let status = response.status().as_u16();
            (status, response.text().await.expect("answer"))
        });
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// A signed Cloud `repo:push`.
    fn push(&self, delivery_id: &str, body: &Value) -> (u16, Value) {
        let bytes = serde_json::to_vec(body).expect("json");
        let signature = reposync_bitbucket::sign(self.secret.as_bytes(), &bytes);
        self.post(
            &self.token,
            &[
                ("Content-Type", "application/json"),
                ("X-Event-Key", "repo:push"),
                ("X-Request-UUID", delivery_id),
                ("X-Hub-Signature", &signature),
            ],
            &bytes,
        )
    }

    fn deliveries(&self) -> Vec<Value> {
        self.f
            .app
            .cli(
                &["--json", "webhook", "deliveries", "--connector", "git"],
                None,
            )
            .ok()
            .json()["items"]
            .as_array()
            .expect("items")
            .clone()
    }
}

/// A Cloud push body in the shape Bitbucket sends, for the fixture's repository.
fn cloud_push(changes: Value) -> Value {
    json!({
        "actor": {"type": "user", "display_name": "Jane Doe"},
        "repository": {
            "type": "repository",
            "full_name": "acme/config",
            "name": "config",
            "links": {"html": {"href": "https://bitbucket.org/acme/config"}}
        },
        "push": {"changes": changes}
    })
}

fn branch_update(branch: &str, old: &str, new: &str) -> Value {
    json!({
        "new": {"type": "branch", "name": branch, "target": {"type": "commit", "hash": new}},
        "old": {"type": "branch", "name": branch, "target": {"type": "commit", "hash": old}},
        "created": false, "closed": false, "forced": false, "truncated": false, "commits": []
    })
}

#[test]
fn deliveries_are_authenticated_checked_recorded_and_deduplicated() {
    on_each_backend!(backend, {
        let h = Hooked::new(backend);
        let head = h.f.head().expect("head");
        let new = "1".repeat(40);
        let push = cloud_push(json!([branch_update("main", &head, &new)]));

        // A wrong token and a wrong signature get the same 401, which names nothing.
        let (status, answer) = h.post(&"x".repeat(43), &[], b"{}");
        assert_eq!(status, 401, "{answer}");
        let bytes = serde_json::to_vec(&push).expect("json");
        let forged = reposync_bitbucket::sign(b"not the secret", &bytes);
        let (status, forged_answer) = h.post(
            &h.token,
            &[("X-Event-Key", "repo:push"), ("X-Hub-Signature", &forged)],
            &bytes,
        );
        assert_eq!(status, 401);
        assert_eq!(forged_answer, answer, "no difference to learn from");
        assert!(!answer.to_string().contains("git"), "{answer}");
        let (status, _) = h.post(&h.token, &[("X-Event-Key", "repo:push")], &bytes);
        assert_eq!(status, 401, "unsigned, though the connector has a secret");

        // Too large, not JSON.
        let (status, answer) = h.post(&h.token, &[], &vec![b' '; 1024 * 1024 + 1]);
        assert_eq!(status, 413, "{answer}");
        let body = b"payload=not-json";
        let signature = reposync_bitbucket::sign(h.secret.as_bytes(), body);
        let (status, answer) = h.post(
            &h.token,
            &[
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("X-Hub-Signature", &signature),
            ],
            body,
        );
        assert_eq!(status, 415, "{answer}");

        // A ping, and an event that is not a push.
        let ping = br#"{"test": true}"#;
        let signature = reposync_bitbucket::sign(h.secret.as_bytes(), ping);
        let (status, _) = h.post(
            &h.token,
            &[
                ("X-Event-Key", "diagnostics:ping"),
                ("X-Hub-Signature", &signature),
            ],
            ping,
        );
        assert_eq!(status, 200);
        let pull_request = br#"{"pullrequest": {"id": 7}}"#;
        let signature = reposync_bitbucket::sign(h.secret.as_bytes(), pull_request);
        let (status, answer) = h.post(
            &h.token,
            &[
                ("X-Event-Key", "pullrequest:created"),
                ("X-Hub-Signature", &signature),
            ],
            pull_request,
        );
        assert_eq!(status, 202);
        assert_eq!(answer["outcome"], "ignored", "{answer}");

        // A push to the linked branch is queued once, however often it comes.
        let (status, answer) = h.push("d-1", &push);
        assert_eq!(status, 202, "{answer}");
        assert_eq!(answer["outcome"], "queued", "{answer}");
        let (_, again) = h.push("d-1", &push);
        assert_eq!(again["outcome"], "duplicate", "same delivery id: {again}");
        let (_, doubled) = h.push("d-2", &push);
        assert_eq!(doubled["outcome"], "duplicate", "same head: {doubled}");

        // A tag, another branch, another repository: ignored, each with its reason.
        let tag = json!({
            "new": {"type": "tag", "name": "main", "target": {"type": "commit", "hash": new}},
            "old": null, "created": true, "closed": false, "forced": false
        });
        let (_, answer) = h.push(
            "d-3",
            &cloud_push(json!([tag, branch_update("feature", &head, &new)])),
        );
        assert_eq!(answer["outcome"], "ignored", "{answer}");
        let reason = answer["reason"].as_str().expect("reason");
        assert!(reason.contains("refs/tags/main is a tag"), "{reason}");
        assert!(reason.contains("refs/heads/feature"), "{reason}");
        let mut elsewhere = cloud_push(json!([branch_update("main", &head, &"2".repeat(40))]));
        elsewhere["repository"]["full_name"] = json!("acme/other");
        let (_, answer) = h.push("d-4", &elsewhere);
        assert_eq!(answer["outcome"], "ignored", "{answer}");

        // The log has every authenticated delivery to a known token, with its signature check
        // and outcome. The three that failed authentication (wrong and missing signature, a body
        // too large to check) are counted, not logged: anyone with the URL can send them.
        let log = h.deliveries();
        let outcomes: Vec<(&str, &str)> = log
            .iter()
            .rev()
            .map(|d| {
                (
                    d["signature"].as_str().expect("signature"),
                    d["outcome"].as_str().expect("outcome"),
                )
            })
            .collect();
        assert_eq!(
            outcomes,
            [
                ("valid", "rejected"),
                ("valid", "ping"),
                ("valid", "ignored"),
                ("valid", "queued"),
                ("valid", "duplicate"),
                ("valid", "duplicate"),
                ("valid", "ignored"),
                ("valid", "ignored"),
            ],
            "{log:#?}"
        );
        let counted =
            h.f.app
                .cli(
                    &["--json", "webhook", "deliveries", "--connector", "git"],
                    None,
                )
                .ok()
                .json()["unauthenticated"]
                .clone();
        assert_eq!(counted[0]["connector"], "git", "{counted}");
        assert_eq!(counted[0]["count"], 3, "{counted}");
        assert_eq!(
            counted[0]["last_reason"],
            format!("the body is larger than {} bytes", 1024 * 1024)
        );
        let shown =
            h.f.app
                .cli(&["connector", "webhook", "git"], None)
                .ok()
                .stdout
                .clone();
        assert!(
            shown.contains("Unauthenticated deliveries: 3 (last at "),
            "{shown}"
        );
        let queued = &log[log.len() - 4];
        assert_eq!(queued["delivery_id"], "d-1");
        assert_eq!(queued["format"], "cloud");
        assert_eq!(queued["matched"], json!(["app:Shop"]));
        assert_eq!(queued["payload"]["changes"][0]["new"], new.as_str());
        let shown =
            h.f.app
                .cli(&["webhook", "deliveries"], None)
                .ok()
                .stdout
                .clone();
        assert!(
            shown.contains("repo:push") && shown.contains("app:Shop"),
            "{shown}"
        );
        assert!(
            shown.contains("git: deliveries that failed authentication (counted, not logged): 3"),
            "{shown}"
        );
        for value in [&h.secret, &h.token] {
            assert!(!shown.contains(value.as_str()));
            assert!(!log.iter().any(|d| d.to_string().contains(value.as_str())));
        }
        h.f.app.assert_not_logged_or_stored(&[&h.secret, &h.token]);
    });
}

/// On SQLite only: `webhook inspect` starts no server and opens no database, so no backend
/// could change what it does.
#[test]
fn inspect_normalises_a_payload_offline() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("body.json");
    let body = json!({
        "eventKey": "repo:refs_changed",
        "date": "2026-11-25T10:00:00+0000",
        "repository": {"slug": "config", "project": {"key": "ACME"}},
        "changes": [
            {"ref": {"id": "refs/heads/main", "displayId": "main", "type": "BRANCH"},
             "refId": "refs/heads/main", "fromHash": "a".repeat(40), "toHash": "b".repeat(40), "type": "UPDATE"},
            {"ref": {"id": "refs/tags/v1", "displayId": "v1", "type": "TAG"},
             "refId": "refs/tags/v1", "fromHash": "0".repeat(40), "toHash": "c".repeat(40), "type": "ADD"}
        ]
    });
    std::fs::write(&file, serde_json::to_vec(&body).expect("json")).expect("write");
    let output = std::process::Command::new(common::binary())
        .args([
            "webhook",
            "inspect",
            "--event-key",
            "repo:refs_changed",
            "--header",
            "X-Request-Id: 42",
            file.to_str().expect("utf-8"),
        ])
        .output()
        .expect("run");
    assert!(output.status.success(), "{output:?}");
    let shown: Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(shown["format"], "server_native", "{shown}");
    assert_eq!(shown["delivery_id"], "42");
    assert_eq!(shown["repository"]["full_name"], "ACME/config");
    let changes = shown["changes"].as_array().expect("changes");
    assert_eq!(changes.len(), 2);
    assert_eq!(changes[0]["ref"], "refs/heads/main");
    assert_eq!(changes[0]["kind"], "branch");
    assert_eq!(changes[0]["change"], "update");
    assert_eq!(changes[1]["kind"], "tag");
    assert_eq!(changes[1]["change"], "create");
    assert_eq!(changes[1]["old"], Value::Null);

    let bad =
        json!({"repository": {"full_name": "acme/config"}, "push": {"changes": [{"new": 7}]}});
    std::fs::write(&file, serde_json::to_vec(&bad).expect("json")).expect("write");
    let output = std::process::Command::new(common::binary())
        .args([
            "webhook",
            "inspect",
            "--event-key",
            "repo:push",
            file.to_str().expect("utf-8"),
        ])
        .output()
        .expect("run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("push.changes[0]"),
        "names the field: {stderr}"
    );
}

#[test]
fn a_sender_that_cannot_sign_is_let_in_once_the_signature_is_turned_off() {
    on_each_backend!(backend, {
        let h = Hooked::new(backend);
        let head = h.f.head().expect("head");
        let mut plugin = cloud_push(json!([branch_update("main", &head, &"3".repeat(40))]));
        plugin["repository"] =
            json!({"slug": "config", "project": {"key": "ACME", "name": "Acme"}});
        let body = serde_json::to_vec(&plugin).expect("json");
        let headers = [
            ("Content-Type", "application/json"),
            ("X-Event-Key", "repo:push"),
            ("X-Bitbucket-Type", "server"),
        ];
        let (status, _) = h.post(&h.token, &headers, &body);
        assert_eq!(status, 401, "unsigned while a secret is set");

        let off =
            h.f.app
                .cli(&["connector", "webhook", "git", "--signature", "off"], None);
        assert!(off.ok().stdout.contains("none"), "{}", off.stdout);
        let (status, answer) = h.post(&h.token, &headers, &body);
        assert_eq!(status, 202, "{answer}");
        assert_eq!(answer["outcome"], "queued", "{answer}");
        let log = h.deliveries();
        assert_eq!(log[0]["signature"], "not_required");
        assert_eq!(log[0]["format"], "post_webhooks");

        // On again: a new secret, and unsigned deliveries are refused once more.
        let on =
            h.f.app
                .cli(
                    &["--json", "connector", "webhook", "git", "--signature", "on"],
                    None,
                )
                .ok()
                .json();
        let secret = on["secret"].as_str().expect("secret");
        assert!(secret.len() >= 32 && secret != h.secret);
        let (status, _) = h.post(&h.token, &headers, &body);
        assert_eq!(status, 401);
    });
}

/// On PostgreSQL, "nothing" includes the database: the settings are refused before it is
/// reached, so no table is made in it.
#[test]
fn serve_refuses_a_bad_webhook_limit_naming_the_flag_and_creates_nothing() {
    on_each_backend!(backend, {
        let dir = tempfile::tempdir().expect("dir");
        let data = dir.path().join("data");
        let database = backend.database();
        for (args, env, named) in [
            (
                &["--webhook-rate-limit=-3"][..],
                None,
                "--webhook-rate-limit",
            ),
            (
                &["--webhook-rate-limit", "NaN"][..],
                None,
                "--webhook-rate-limit",
            ),
            (&["--webhook-burst", "0"][..], None, "--webhook-burst"),
            (
                &["--webhook-retention-days", "0"][..],
                None,
                "--webhook-retention-days",
            ),
            (
                &["--webhook-deliveries-kept", "lots"][..],
                None,
                "--webhook-deliveries-kept",
            ),
            (
                &[][..],
                Some(("REPOSYNC_WEBHOOK_RATE_LIMIT", "fast")),
                "--webhook-rate-limit",
            ),
        ] {
            let mut command = std::process::Command::new(common::binary());
            common::hermetic(&mut command, dir.path());
            if let Some((name, value)) = env {
                command.env(name, value);
            }
            if let Some(database) = &database {
                command.env("REPOSYNC_DATABASE_URL", database.url());
            }
            let output = command
                .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
                .arg(&data)
                .args(args)
                .output()
                .expect("run");
            assert!(!output.status.success(), "{args:?} {env:?}");
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(stderr.contains(named), "{args:?} {env:?}: {stderr}");
            assert!(!data.exists(), "nothing created for {args:?} {env:?}");
            if let Some(database) = &database {
                let dump = database.dump().expect("the test database");
                assert!(
                    dump.is_empty(),
                    "{args:?} {env:?} made tables:\n{}",
                    String::from_utf8_lossy(&dump)
                );
            }
        }
    });
}

#[test]
fn a_flood_of_forged_deliveries_is_counted_not_stored_and_logged_at_a_bounded_rate() {
    on_each_backend!(backend, {
        const FORGED: usize = 10_000;
        const UNKNOWN: usize = 1_000;
        const SENDERS: usize = 16;
        // A rate limit far above the flood, so that every forged delivery reaches the signature
        // check and the count is exact.
        let mut h = Hooked::with_server_args(
            backend,
            &[
                "--webhook-rate-limit",
                "1000000",
                "--webhook-burst",
                "1000000",
            ],
        );
        let huge_event_key = "k".repeat(60 * 1024);
        let bytes_before = h.f.app.database_bytes();
        let log_before = h.f.app.server_log().len();
        let started = std::time::Instant::now();
        let statuses = h.f.rt.block_on(async {
            let mut senders = tokio::task::JoinSet::new();
            for first in 0..SENDERS {
                // One keep-alive connection per sender, reused for every delivery it sends.
                let http = h.http.clone();
                let base = format!("{}/api/webhooks/git", h.f.app.url);
                let token = h.token.clone();
                let event_key = huge_event_key.clone();
                senders.spawn(async move {
                    let mut statuses = Vec::new();
                    for n in (first..FORGED + UNKNOWN).step_by(SENDERS) {
                        let forged = n < FORGED;
                        let to = if forged {
                            token.clone()
                        } else {
                            format!("unknown-{n:040}")
                        };
                        let response = http
                            .post(format!("{base}/{to}"))
                            .header("Content-Type", "application/json")
                            .header("X-Event-Key", &event_key)
                            .header("X-Request-UUID", format!("flood-{n}"))
                            .header("X-Hub-Signature", format!("sha256={}", "0".repeat(64)))
                            .body(r#"{"push": {"changes": []}}"#)
                            .send()
                            .await
                            .expect("delivery");
                        let status = response.status().as_u16();
                        response.bytes().await.expect("answer");
                        statuses.push((forged, status));
                    }
                    statuses
                });
            }
            let mut all = Vec::new();
            while let Some(sent) = senders.join_next().await {
                all.extend(sent.expect("sender"));
            }
            all
        });
        let elapsed = started.elapsed();
        assert_eq!(statuses.len(), FORGED + UNKNOWN);
        assert!(
            statuses.iter().all(|(_, status)| *status == 401),
            "every one refused alike"
        );

        // Counted exactly, at once, and not logged one by one.
        let shown =
            h.f.app
                .cli(&["--json", "connector", "webhook", "git"], None)
                .ok()
                .json();
        assert_eq!(shown["unauthenticated"]["count"], FORGED, "{shown}");
        assert_eq!(
            shown["unauthenticated"]["last_reason"],
            "the X-Hub-Signature does not match the body"
        );
        assert!(h.deliveries().is_empty(), "no row per forged delivery");

        // The server log has a line per topic per 10 s at most, and never the header.
        let log = h.f.app.server_log();
        let flood_log = &log[log_before..];

        let periods = usize::try_from(elapsed.as_secs() / 10).expect("seconds") + 2;
        let forged_lines = flood_log
            .lines()
            .filter(|l| l.contains("failed authentication"))
            .count();
        let unknown_lines = flood_log
            .lines()
            .filter(|l| l.contains("unknown URL token"))
            .count();
        assert!(
            (1..=periods).contains(&forged_lines),
            "{forged_lines} lines about forged deliveries in {elapsed:?}"
        );
        assert!(
            (1..=periods).contains(&unknown_lines),
            "{unknown_lines} lines about unknown tokens in {elapsed:?}"
        );
        assert!(
            !flood_log.contains(&huge_event_key[..1024]),
            "header logged"
        );

        // The database barely grew. Stopping writes the counts and checkpoints the log.
        assert_eq!(h.f.app.stop(), 0);
        let grown = h.f.app.database_bytes().saturating_sub(bytes_before);
        assert!(grown < 1024 * 1024, "the database grew by {grown} bytes");
        h.f.app.crash_and_restart();
        let shown =
            h.f.app
                .cli(&["--json", "connector", "webhook", "git"], None)
                .ok()
                .json();
        assert_eq!(
            shown["unauthenticated"]["count"], FORGED,
            "kept across a restart: {shown}"
        );
    });
}

/// Waits until `check` passes, polling.
fn eventually(what: &str, app: &common::TestApp, mut check: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !check() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not after 30 s\n{}",
            app.server_log()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// A linked application, and an emulator that delivers every push to reposync in `format`.
fn with_emulator(
    backend: Backend,
    format: reposync_testkit::WebhookFormat,
) -> (Hooked, reposync_testkit::BitbucketEmulator) {
    with_emulator_and(backend, format, &[])
}

fn with_emulator_and(
    backend: Backend,
    format: reposync_testkit::WebhookFormat,
    serve_args: &[&str],
) -> (Hooked, reposync_testkit::BitbucketEmulator) {
    use reposync_testkit::{BitbucketEmulator, WebhookTarget};

    let h = Hooked::with_server_args(backend, serve_args);
    let signed = format != reposync_testkit::WebhookFormat::PostWebhooks;
    if !signed {
        h.f.app
            .cli(&["connector", "webhook", "git", "--signature", "off"], None)
            .ok();
    }
    let emulator =
        h.f.rt
            .block_on(BitbucketEmulator::start(&h.f.root))
            .expect("emulator");
    let mut target = WebhookTarget::new(
        format!("{}/api/webhooks/git/{}", h.f.app.url, h.token),
        format,
    );
    if signed {
        target = target.with_secret(h.secret.clone());
    }
    emulator
        .add_webhook(common::git_fixture::REPO, target)
        .expect("webhook");
    (h, emulator)
}

fn round_trip(backend: Backend, format: reposync_testkit::WebhookFormat) {
    let (h, emulator) = with_emulator(backend, format);
    // A push in Git shows up in reposync.
    let path = format!("{}/Workflows/from git.yaml", common::git_fixture::SHOP);
    let yaml = common::git_fixture::workflow("written in git");
    emulator
        .commit(
            common::git_fixture::REPO,
            "main",
            &[(path.as_str(), yaml.as_str())],
            "Add a workflow",
        )
        .expect("commit");
    eventually("the pushed workflow in reposync", &h.f.app, || {
        h.f.app.cli(&["get", &path], None).code == 0
    });
    let shown = h.f.app.cli(&["get", &path], None).ok().stdout.clone();
    assert!(shown.contains("written in git"), "{shown}");

    // A change in reposync goes out, and its own webhook coming back changes nothing.
    h.f.put(&path, &common::git_fixture::workflow("changed in reposync"));
    let pushed = h.f.wait_pushed();
    // Our push's delivery is the one announcing the pushed commit. (Counting queued
    // deliveries would race with the first poll, which may queue the earlier head before its
    // webhook comes, making that delivery a duplicate.)
    eventually("our push's delivery processed", &h.f.app, || {
        h.deliveries().iter().any(|d| {
            d["payload"]["changes"]
                .as_array()
                .is_some_and(|changes| changes.iter().any(|c| c["new"] == pushed.as_str()))
        }) && h.f.app.cli(&["--json", "sync", "status"], None).ok().json()["items"][0]["base_commit"]
            == pushed.as_str()
    });
    // Once our commit was read back and reposync is quiet, nothing followed it.
    h.f.wait_read_back();
    assert_eq!(h.f.wait_settled(), pushed, "no echo commit");
    let shown = h.f.app.cli(&["get", &path], None).ok().stdout.clone();
    assert!(shown.contains("changed in reposync"), "{shown}");
    // Every delivery was read as the format the emulator sent. (Whether one queues a read
    // or is a duplicate depends on who announced the head first: the webhook, the first poll,
    // or reposync queueing its own push for reading.)
    let expected = match format {
        reposync_testkit::WebhookFormat::Cloud => "cloud",
        reposync_testkit::WebhookFormat::ServerNative => "server_native",
        reposync_testkit::WebhookFormat::PostWebhooks => "post_webhooks",
    };
    let formats: Vec<Value> = h
        .deliveries()
        .iter()
        .filter(|d| d["outcome"] == "queued" || d["outcome"] == "duplicate")
        .map(|d| d["format"].clone())
        .collect();
    assert!(
        !formats.is_empty() && formats.iter().all(|f| f == expected),
        "{formats:?}"
    );
    h.f.rt
        .block_on(emulator.wait_idle(std::time::Duration::from_secs(10)))
        .expect("emulator idle");
}

#[test]
fn a_cloud_push_round_trips_without_an_echo() {
    on_each_backend!(backend, {
        round_trip(backend, reposync_testkit::WebhookFormat::Cloud);
    });
}

#[test]
fn a_server_push_round_trips_without_an_echo() {
    on_each_backend!(backend, {
        round_trip(backend, reposync_testkit::WebhookFormat::ServerNative);
    });
}

#[test]
fn a_post_webhooks_push_round_trips_without_an_echo() {
    on_each_backend!(backend, {
        round_trip(backend, reposync_testkit::WebhookFormat::PostWebhooks);
    });
}

/// The application's files as reposync holds them: path → content.
fn tree_of_shop(h: &Hooked) -> std::collections::BTreeMap<String, String> {
    let dir = tempfile::tempdir().expect("dir");
    h.f.app
        .cli(
            &[
                "export",
                dir.path().to_str().expect("utf-8"),
                "--app",
                "Shop",
            ],
            None,
        )
        .ok();
    let mut files = std::collections::BTreeMap::new();
    let mut stack = vec![dir.path().to_path_buf()];
    while let Some(folder) = stack.pop() {
        for entry in std::fs::read_dir(&folder).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let relative = path
                    .strip_prefix(dir.path())
                    .expect("relative")
                    .to_string_lossy()
                    .into_owned();
                files.insert(relative, std::fs::read_to_string(&path).expect("read"));
            }
        }
    }
    files
}

fn open_errors(h: &Hooked) -> Vec<Value> {
    h.f.app.cli(&["--json", "sync", "errors"], None).ok().json()["items"]
        .as_array()
        .expect("items")
        .clone()
}

#[test]
fn several_commits_apply_in_order_and_a_bad_file_fails_alone_until_fixed() {
    on_each_backend!(backend, {
        use common::git_fixture::{REPO, SHOP, workflow};
        let (h, emulator) = with_emulator(backend, reposync_testkit::WebhookFormat::Cloud);
        let at = |name: &str| format!("{SHOP}/Workflows/{name}.yaml");
        let service = |name: &str| format!("{SHOP}/Services/{name}/Index.yaml");
        let service_yaml = "harnessApiVersion: '1.0'\ntype: SERVICE\ndeploymentType: KUBERNETES\n";

        let start = h.f.head().expect("head");
        // Several commits in one real push: add, modify, then a rename and a delete, each
        // applied in order.
        let root = &h.f.root;
        let repo = root.repo_path(REPO).expect("repo");
        let work = tempfile::tempdir().expect("work");
        let checkout = work.path().join("checkout");
        let git = |args: &[&str]| root.git().run(work.path(), args).expect("git");
        git(&[
            "clone",
            "--quiet",
            repo.to_str().expect("utf-8"),
            checkout.to_str().expect("utf-8"),
        ]);
        let in_checkout = |args: &[&str]| root.git().run(&checkout, args).expect("git");
        let write = |path: &str, text: &str| {
            let file = checkout.join(path);
            std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
            std::fs::write(file, text).expect("write");
        };
        write(&at("one"), &workflow("first"));
        write(&service("api"), service_yaml);
        in_checkout(&["add", "-A"]);
        in_checkout(&["commit", "--quiet", "-m", "add"]);
        write(&at("one"), &workflow("second"));
        in_checkout(&["commit", "--quiet", "-am", "modify"]);
        in_checkout(&["mv", &at("one"), &at("renamed")]);
        in_checkout(&["rm", "--quiet", &service("cart")]);
        in_checkout(&["commit", "--quiet", "-m", "rename one, delete cart"]);
        in_checkout(&["push", "--quiet", "origin", "main"]);

        eventually("the renamed workflow in reposync", &h.f.app, || {
            tree_of_shop(&h).contains_key(&at("renamed"))
        });
        let files = tree_of_shop(&h);
        assert!(
            files[&at("renamed")].contains("second"),
            "modified before the rename"
        );
        assert!(!files.contains_key(&at("one")), "the old name is gone");
        assert!(files.contains_key(&service("api")));
        assert!(!files.contains_key(&service("cart")), "deleted in Git");

        // A commit with a bad file and a good one: the good one applies, the bad one is an error
        // with its content; a workflow naming the bad service fails naming it.
        let bad_service = "harnessApiVersion: '1.0'\ntype: [unclosed\n";
        let depends = "harnessApiVersion: '1.0'\ntype: BASIC\nphases:\n- type: KUBERNETES\n  serviceName: web\n";
        let broken = emulator
            .commit(
                REPO,
                "main",
                &[
                    (&service("web"), bad_service),
                    (&at("uses web"), depends),
                    (&at("good"), &workflow("good")),
                ],
                "a bad service",
            )
            .expect("commit");
        eventually("the good file applied", &h.f.app, || {
            tree_of_shop(&h).contains_key(&at("good"))
        });
        let errors = open_errors(&h);
        let bad = errors
            .iter()
            .find(|e| e["path"] == service("web").as_str())
            .unwrap_or_else(|| panic!("an error for the bad file: {errors:#?}"));
        assert_eq!(bad["code"], "invalid_file");
        assert_eq!(bad["commit_id"], broken.as_str());
        let of_app = |app: &str| {
            h.f.app
                .cli(&["--json", "sync", "errors", "--app", app], None)
                .ok()
                .json()["items"]
                .as_array()
                .expect("items")
                .len()
        };
        assert_eq!(of_app("Shop"), errors.len(), "every error is Shop's");
        assert_eq!(of_app("Elsewhere"), 0);
        assert_eq!(bad["theirs"], bad_service);
        let dependent = errors
            .iter()
            .find(|e| e["path"] == at("uses web").as_str())
            .unwrap_or_else(|| panic!("an error for the dependent: {errors:#?}"));
        assert_eq!(dependent["code"], "depends_on_failed");
        assert!(
            dependent["message"]
                .as_str()
                .expect("message")
                .contains(&service("web")),
            "{dependent}"
        );
        assert!(!tree_of_shop(&h).contains_key(&service("web")));

        // A later commit fixes the file: both apply and the errors are resolved.
        emulator
            .commit(
                REPO,
                "main",
                &[(&service("web"), service_yaml)],
                "fix the service",
            )
            .expect("commit");
        // The workflow did not change in that commit: it applies because what it depends on now
        // does.
        eventually("both fixed", &h.f.app, || {
            let files = tree_of_shop(&h);
            files.contains_key(&service("web")) && files.contains_key(&at("uses web"))
        });
        let errors = open_errors(&h);
        assert!(errors.is_empty(), "{errors:#?}");
        // Activity lists the commits read, in order, with what became of each.
        let activity =
            h.f.app
                .cli(&["--json", "sync", "activity", "--app", "Shop"], None)
                .ok()
                .json();
        let statuses: Vec<&str> = activity["inbound"]
            .as_array()
            .expect("inbound")
            .iter()
            .map(|c| c["status"].as_str().expect("status"))
            .collect();
        assert_eq!(
            &statuses[..5],
            ["applied", "partial", "applied", "applied", "applied"],
            "newest first: {activity:#}"
        );
        assert!(activity["inbound"][4]["subject"] == "add", "{activity:#}");
        let shown = h.f.app.cli(&["sync", "activity"], None).ok().stdout.clone();
        assert!(shown.contains("Commits read from Git"), "{shown}");
        // Nothing of this went back to Git as a commit of reposync's.
        let log = h.f.git(&["log", "--format=%an", &format!("{start}..main")]);
        assert!(!log.is_empty() && !log.contains("Sync Bot"), "{log}");
    });
}

#[test]
fn duplicates_tags_and_other_branches_change_nothing_and_say_why() {
    on_each_backend!(backend, {
        use common::git_fixture::{REPO, SHOP, workflow};
        let (h, emulator) = with_emulator(backend, reposync_testkit::WebhookFormat::Cloud);
        let path = format!("{SHOP}/Workflows/once.yaml");
        emulator
            .commit(
                REPO,
                "main",
                &[(path.as_str(), workflow("once").as_str())],
                "once",
            )
            .expect("commit");
        eventually("applied", &h.f.app, || {
            h.f.app.cli(&["get", &path], None).code == 0
        });
        h.f.rt
            .block_on(emulator.wait_idle(std::time::Duration::from_secs(10)))
            .expect("idle");

        // The same delivery again: recorded as a duplicate, applied once.
        let last = emulator.deliveries().len() - 1;
        let status =
            h.f.rt
                .block_on(emulator.redeliver(last))
                .expect("redeliver");
        assert_eq!(status, 202);
        // A tag and another branch.
        let head = h.f.head().expect("head");
        h.f.git(&["tag", "v1", &head]);
        emulator
            .record_ref_update(REPO, "refs/tags/v1", None, Some(&head), false)
            .expect("tag push");
        emulator
            .commit(
                REPO,
                "feature",
                &[(path.as_str(), workflow("on a feature branch").as_str())],
                "elsewhere",
            )
            .expect("feature push");
        h.f.rt
            .block_on(emulator.wait_idle(std::time::Duration::from_secs(10)))
            .expect("idle");
        let log = h.deliveries();
        let reasons: Vec<String> = log
            .iter()
            .take(3)
            .map(|d| format!("{} {}", d["outcome"], d["reason"]))
            .collect();
        assert!(
            reasons[0].contains("ignored") && reasons[0].contains("refs/heads/feature"),
            "{reasons:?}"
        );
        assert!(
            reasons[1].contains("ignored") && reasons[1].contains("refs/tags/v1 is a tag"),
            "{reasons:?}"
        );
        assert!(reasons[2].contains("duplicate"), "{reasons:?}");
        let shown = h.f.app.cli(&["get", &path], None).ok().stdout.clone();
        assert!(shown.contains("description: once"), "{shown}");
    });
}

#[test]
fn a_missed_webhook_is_caught_by_polling() {
    on_each_backend!(backend, {
        caught_by_polling(backend, &["--poll-interval", "1"], &[]);
    });
}

/// A connector's own interval wins over the server's: here the server polls nothing, and
/// the connector every second. `default` gives it back to the server.
#[test]
fn a_connectors_own_poll_interval_wins_over_the_servers() {
    on_each_backend!(backend, {
        let h = caught_by_polling(
            backend,
            &["--poll-interval", "0"],
            &["--poll-interval", "1"],
        );
        let show = |h: &Hooked| {
            h.f.app
                .cli(&["connector", "show", "git"], None)
                .ok()
                .stdout
                .clone()
        };
        assert!(show(&h).contains("1 s"), "{}", show(&h));
        h.f.app
            .cli(
                &["connector", "update", "git", "--poll-interval", "default"],
                None,
            )
            .ok();
        assert!(show(&h).contains("the server's"), "{}", show(&h));
        let refused = h.f.app.cli(
            &["connector", "update", "git", "--poll-interval", "99999999"],
            None,
        );
        assert!(
            refused.fails().stderr.contains("--poll-interval"),
            "{}",
            refused.stderr
        );
    });
}

/// A commit no webhook announces is read by polling, with the server's `serve_args` and
/// the connector updated with `connector_flags`.
fn caught_by_polling(backend: Backend, serve_args: &[&str], connector_flags: &[&str]) -> Hooked {
    use common::git_fixture::{REPO, SHOP, workflow};
    let (h, emulator) = with_emulator_and(
        backend,
        reposync_testkit::WebhookFormat::ServerNative,
        serve_args,
    );
    if !connector_flags.is_empty() {
        let mut args = vec!["connector", "update", "git"];
        args.extend_from_slice(connector_flags);
        h.f.app.cli(&args, None).ok();
    }
    // Everything reposync pushed so far is read back, so only polling can find what follows.
    h.f.wait_read_back();
    emulator.pause(true);
    let path = format!("{SHOP}/Workflows/unannounced.yaml");
    emulator
        .commit(
            REPO,
            "main",
            &[(path.as_str(), workflow("no webhook").as_str())],
            "quiet",
        )
        .expect("commit");
    eventually("found by polling", &h.f.app, || {
        h.f.app.cli(&["get", &path], None).code == 0
    });
    assert!(
        h.deliveries().is_empty(),
        "no webhook delivery told reposync: {:?}",
        h.deliveries()
    );
    assert!(
        h.f.app
            .server_log()
            .contains("polling found a head no webhook announced")
    );
    drop(emulator);
    h
}

/// `sync refresh` reads the branch at once: a change no webhook announced, with polling
/// off, is applied without waiting for anything else.
#[test]
fn sync_refresh_reads_a_change_no_webhook_announced() {
    on_each_backend!(backend, {
        use common::git_fixture::{REPO, SHOP, workflow};
        let (h, emulator) = with_emulator_and(
            backend,
            reposync_testkit::WebhookFormat::ServerNative,
            &["--poll-interval", "0"],
        );
        h.f.wait_read_back();
        emulator.pause(true);
        let path = format!("{SHOP}/Workflows/refreshed.yaml");
        emulator
            .commit(
                REPO,
                "main",
                &[(path.as_str(), workflow("refreshed").as_str())],
                "quiet",
            )
            .expect("commit");
        let refreshed = h.f.app.cli(&["sync", "refresh", "--app", "Shop"], None);
        assert!(
            refreshed.ok().stdout.contains("(main) now, for app:Shop"),
            "{}",
            refreshed.stdout
        );
        eventually("read by the refresh", &h.f.app, || {
            h.f.app.cli(&["get", &path], None).code == 0
        });
        assert!(h.deliveries().is_empty(), "no webhook told reposync");

        let all = h.f.app.cli(&["--json", "sync", "refresh", "--all"], None);
        assert_eq!(all.ok().json()["items"][0]["scopes"][0], "app:Shop");
        let none = h.f.app.cli(&["sync", "refresh", "--app", "Nope"], None);
        assert!(
            none.fails().stderr.contains("is not synced"),
            "{}",
            none.stderr
        );
    });
}

#[test]
fn a_deleted_branch_marks_the_link_broken_and_deletes_nothing() {
    on_each_backend!(backend, {
        use common::git_fixture::{REPO, SHOP};
        let (h, emulator) = with_emulator(backend, reposync_testkit::WebhookFormat::ServerNative);
        let before = tree_of_shop(&h);
        let head = h.f.head().expect("head");
        h.f.git(&["update-ref", "-d", "refs/heads/main"]);
        emulator
            .record_ref_update(REPO, "refs/heads/main", Some(&head), None, false)
            .expect("deletion");
        eventually("a branch_deleted error", &h.f.app, || {
            open_errors(&h)
                .iter()
                .any(|e| e["code"] == "branch_deleted")
        });
        let error = open_errors(&h)
            .into_iter()
            .find(|e| e["code"] == "branch_deleted")
            .expect("error");
        assert_eq!(error["scope"], "app:Shop", "{error}");
        assert!(
            error["message"]
                .as_str()
                .expect("message")
                .contains("\"main\""),
            "{error}"
        );
        assert_eq!(tree_of_shop(&h), before, "nothing deleted");
        assert!(before.contains_key(&format!("{SHOP}/Index.yaml")));
    });
}

#[test]
fn a_change_reposync_has_not_pushed_wins_over_git_and_git_s_version_is_kept() {
    on_each_backend!(backend, {
        use common::git_fixture::{REPO, SHOP, workflow};
        let (h, emulator) = with_emulator(backend, reposync_testkit::WebhookFormat::Cloud);
        let path = format!("{SHOP}/Workflows/contested.yaml");
        h.f.put(&path, &workflow("first"));
        let base = h.f.wait_pushed();
        h.f.rt
            .block_on(emulator.wait_idle(std::time::Duration::from_secs(10)))
            .expect("idle");

        // Git changes the file without a webhook reaching reposync yet…
        emulator.pause(true);
        let git_version = workflow("edited in git");
        let theirs =
            h.f.root
                .commit(
                    REPO,
                    "main",
                    &[(path.as_str(), git_version.as_str())],
                    "edit in git",
                )
                .expect("commit");
        // …while reposync changes it too. Whichever side reads the other first (the push meets
        // Git's commit, or Git's commit is read before the push), the outcome is the same.
        h.f.put(&path, &workflow("edited in reposync"));

        // The webhook arrives: Git's commit is read, reposync's change wins and is pushed on top
        // of it (never over it: Git's commit stays in the history), and Git's version is kept in
        // a sync error.
        emulator.pause(false);
        emulator
            .record_ref_update(REPO, "refs/heads/main", Some(&base), Some(&theirs), false)
            .expect("announce");
        eventually("reposync's version pushed", &h.f.app, || {
            h.f.root
                .read_file(REPO, "main", &path)
                .is_ok_and(|t| t.contains("edited in reposync"))
        });
        h.f.git(&["merge-base", "--is-ancestor", &theirs, "main"]);
        let shown = h.f.app.cli(&["get", &path], None).ok().stdout.clone();
        assert!(shown.contains("edited in reposync"), "{shown}");
        // Git's version was kept in an error that said so while reposync's change was on its
        // way; it resolved itself once reposync's change landed.
        h.f.wait_settled();
        let resolved =
            h.f.app
                .cli(&["--json", "sync", "errors", "--resolved"], None)
                .ok()
                .json();
        let kept: Vec<&Value> = resolved["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter(|e| e["path"] == path.as_str())
            .collect();
        assert!(!kept.is_empty(), "Git's version was kept: {resolved}");
        for error in kept {
            assert!(
                error["code"] == "overridden" || error["code"] == "conflict",
                "{error}"
            );
            assert_eq!(error["theirs"], git_version.as_str(), "{error}");
            assert!(
                error["ours"]
                    .as_str()
                    .expect("ours")
                    .contains("edited in reposync"),
                "{error}"
            );
            assert_eq!(error["resolution"], "landed", "{error}");
        }
    });
}

#[test]
fn a_new_application_folder_in_git_creates_the_application_linked_to_the_branch() {
    on_each_backend!(backend, {
        use common::git_fixture::{REPO, workflow};
        let (h, emulator) = with_emulator(backend, reposync_testkit::WebhookFormat::ServerNative);
        let billing = "Setup/Applications/Billing";
        emulator
            .commit(
                REPO,
                "main",
                &[
                    (
                        &format!("{billing}/Index.yaml"),
                        "harnessApiVersion: '1.0'\ntype: APPLICATION\ndescription: copied from a template\n",
                    ),
                    (
                        &format!("{billing}/Services/invoices/Index.yaml"),
                        "harnessApiVersion: '1.0'\ntype: SERVICE\n",
                    ),
                ],
                "Onboard Billing from the template",
            )
            .expect("commit");
        eventually("Billing in reposync", &h.f.app, || {
            h.f.app.cli(&["app", "show", "Billing"], None).code == 0
        });
        let status = h.f.app.cli(&["--json", "sync", "status"], None).ok().json();
        let link = status["items"]
            .as_array()
            .expect("items")
            .iter()
            .find(|l| l["scope"] == "app:Billing")
            .unwrap_or_else(|| panic!("Billing is linked: {status}"))
            .clone();
        assert_eq!(link["branch"], "main");
        assert_eq!(link["connector"], "git");
        // A change made in reposync to the new application goes to the same branch.
        let path = format!("{billing}/Workflows/charge.yaml");
        h.f.put(
            &path,
            &workflow("charge").replace("serviceName: cart", "serviceName: invoices"),
        );
        h.f.wait_pushed();
        assert!(
            h.f.root
                .read_file(REPO, "main", &path)
                .expect("pushed")
                .contains("charge")
        );
    });
}

#[test]
fn a_source_repo_provider_changed_in_git_updates_the_connector_unless_it_breaks_the_link() {
    on_each_backend!(backend, {
        use common::git_fixture::REPO;
        let (h, emulator) = with_emulator(backend, reposync_testkit::WebhookFormat::Cloud);
        h.f.app
            .cli(&["sync", "enable", "--account", "--connector", "git"], None)
            .ok();
        h.f.wait_pushed();
        let provider = "Setup/Source Repo Providers/git.yaml";
        let file = h.f.root.read_file(REPO, "main", provider).expect("pushed") + "\n";
        assert!(file.contains("authorName: Sync Bot"), "{file}");

        emulator
            .commit(
                REPO,
                "main",
                &[(
                    provider,
                    &file.replace("authorName: Sync Bot", "authorName: Git Bot"),
                )],
                "rename the author",
            )
            .expect("commit");
        eventually("the connector updated", &h.f.app, || {
            h.f.app
                .cli(&["--json", "connector", "show", "git"], None)
                .ok()
                .json()["author_name"]
                == "Git Bot"
        });

        // Pointing the connector elsewhere would cut the link it came through: refused.
        let url = h.f.server.repo_url(REPO);
        let moved = file
            .replace("authorName: Sync Bot", "authorName: Git Bot")
            .replace(&url, &h.f.server.repo_url("acme/elsewhere.git"));
        assert_ne!(moved, file, "the URL is in the file");
        emulator
            .commit(REPO, "main", &[(provider, &moved)], "move the connector")
            .expect("commit");
        eventually("a sync error for the provider file", &h.f.app, || {
            open_errors(&h).iter().any(|e| e["path"] == provider)
        });
        let error = open_errors(&h)
            .into_iter()
            .find(|e| e["path"] == provider)
            .expect("error");
        assert!(
            error["message"]
                .as_str()
                .expect("message")
                .contains("would break the sync link"),
            "{error}"
        );
        let shown =
            h.f.app
                .cli(&["--json", "connector", "show", "git"], None)
                .ok()
                .json();
        assert_eq!(shown["url"], url.as_str(), "unchanged: {shown}");
    });
}

#[test]
fn a_forced_update_is_read_whole_and_an_unknown_path_is_an_error() {
    on_each_backend!(backend, {
        use common::git_fixture::{REPO, SHOP, workflow};
        let (h, emulator) = with_emulator(backend, reposync_testkit::WebhookFormat::Cloud);
        let kept = format!("{SHOP}/Workflows/kept.yaml");
        let dropped = format!("{SHOP}/Workflows/dropped.yaml");
        emulator
            .commit(
                REPO,
                "main",
                &[
                    (kept.as_str(), workflow("v1").as_str()),
                    (dropped.as_str(), workflow("v1").as_str()),
                ],
                "two workflows",
            )
            .expect("commit");
        eventually("both applied", &h.f.app, || {
            let files = tree_of_shop(&h);
            files.contains_key(&kept) && files.contains_key(&dropped)
        });
        let old = h.f.head().expect("head");

        // History is rewritten: a new commit on the parent of the old head, without `dropped`,
        // with `kept` changed and a file at a path the layout does not know.
        let parent = h.f.git(&["rev-parse", &format!("{old}^")]);
        let index = tempfile::tempdir().expect("index dir");
        let index_file = index.path().join("index");
        let env = [("GIT_INDEX_FILE", index_file.to_str().expect("utf-8"))];
        let repo = h.f.root.repo_path(REPO).expect("repo");
        let git = |args: &[&str]| h.f.root.git().run_with_env(&repo, args, &env).expect("git");
        git(&["read-tree", &parent]);
        let blob_file = index.path().join("blob");
        for (path, text) in [
            (kept.as_str(), workflow("rewritten").as_str().to_owned()),
            (&format!("{SHOP}/Nonsense/what.yaml"), "a: 1\n".to_owned()),
        ] {
            std::fs::write(&blob_file, text).expect("blob");
            let blob = git(&["hash-object", "-w", blob_file.to_str().expect("utf-8")]);
            git(&[
                "update-index",
                "--add",
                "--cacheinfo",
                &format!("100644,{blob},{path}"),
            ]);
        }
        let tree = git(&["write-tree"]);
        let forced = git(&[
            "commit-tree",
            &tree,
            "-p",
            &parent,
            "-m",
            "rewritten history",
        ]);
        git(&["update-ref", "refs/heads/main", &forced, &old]);
        emulator
            .record_ref_update(REPO, "refs/heads/main", Some(&old), Some(&forced), true)
            .expect("forced push");

        eventually("the rewritten branch applied", &h.f.app, || {
            tree_of_shop(&h)
                .get(&kept)
                .is_some_and(|t| t.contains("rewritten"))
        });
        let files = tree_of_shop(&h);
        assert!(
            !files.contains_key(&dropped),
            "gone from the branch, gone here"
        );
        let errors = open_errors(&h);
        let unknown = errors
            .iter()
            .find(|e| e["path"] == format!("{SHOP}/Nonsense/what.yaml").as_str())
            .unwrap_or_else(|| panic!("an error for the unknown path: {errors:#?}"));
        assert!(
            unknown["message"]
                .as_str()
                .expect("message")
                .contains("unknown path"),
            "{unknown}"
        );
        assert_eq!(unknown["commit_id"], forced.as_str());
        // An error a person has seen can be discarded; it no longer shows.
        let id = unknown["id"].as_str().expect("id");
        h.f.app.cli(&["sync", "errors", "discard", id], None).ok();
        assert!(!open_errors(&h).iter().any(|e| e["id"] == id));
    });
}

#[test]
fn an_account_scope_connector_takes_the_repository_from_the_payload() {
    on_each_backend!(backend, {
        const PLATFORM: &str = "acme/platform.git";
        let f = Fixture::https_on(backend, &[("README.md", "x\n")], &[]);
        f.root
            .create_repo(PLATFORM, "main", &[("README.md", "platform\n")])
            .expect("repo");
        f.add_connector(
            "acme",
            &format!("{}/acme", f.server.base_url()),
            &[
                "--scope",
                "account",
                "--generate-webhook-url",
                "--repo",
                "platform",
            ],
        );
        f.app
            .cli(
                &[
                    "sync",
                    "enable",
                    "--app",
                    "Shop",
                    "--connector",
                    "acme",
                    "--repo",
                    "platform",
                ],
                None,
            )
            .ok();
        f.wait_pushed();
        let shown = f
            .app
            .cli(&["--json", "connector", "webhook", "acme"], None)
            .ok()
            .json();
        let token = shown["url"]
            .as_str()
            .expect("url")
            .rsplit('/')
            .next()
            .expect("token")
            .to_owned();
        let h = Hooked {
            secret: shown["secret"].as_str().expect("secret").to_owned(),
            token,
            f,
            http: reqwest::Client::new(),
        };
        let head =
            h.f.root
                .head(PLATFORM, "main")
                .expect("head")
                .expect("main");
        let mut push = cloud_push(json!([branch_update("main", &head, &"4".repeat(40))]));
        push["repository"]["full_name"] = json!("acme/platform");
        let (_, answer) = h.push("p-1", &push);
        assert_eq!(
            answer["outcome"], "queued",
            "the linked repository: {answer}"
        );
        push["repository"]["full_name"] = json!("acme/config");
        let (_, answer) = h.push("p-2", &push);
        assert_eq!(
            answer["outcome"], "ignored",
            "a repository no link names: {answer}"
        );
        assert!(
            answer["reason"]
                .as_str()
                .expect("reason")
                .contains("acme/config"),
            "{answer}"
        );
    });
}

/// The hostile entries the end-to-end test pushes into `Shop`, with the escaped name each
/// sync error must show.
fn shop_hostile_entries() -> Vec<(Vec<u8>, reposync_testkit::RawEntry, String)> {
    use common::git_fixture::SHOP;
    use reposync_testkit::RawEntry;
    let file = || RawEntry::File(b"a: 1\n".to_vec());
    let at = |rest: &[u8]| [SHOP.as_bytes(), b"/", rest].concat();
    vec![
        (
            at(b"Workflows/\xff.yaml"),
            file(),
            format!("{SHOP}/Workflows/\\xff.yaml"),
        ),
        (
            at(b"Template Library/.git/config"),
            file(),
            format!("{SHOP}/Template Library/.git/config"),
        ),
        (
            at(b"Services/cart/Values/../x.yaml"),
            file(),
            format!("{SHOP}/Services/cart/Values/../x.yaml"),
        ),
        (
            at(b"Services/cart/Config Files/./y.yaml"),
            file(),
            format!("{SHOP}/Services/cart/Config Files/./y.yaml"),
        ),
        (
            at(b"Workflows/link.yaml"),
            RawEntry::Symlink("../../../../etc/passwd".into()),
            format!("{SHOP}/Workflows/link.yaml"),
        ),
        (
            at(b"Services/cart/Manifests/Files/vendored"),
            RawEntry::Submodule("e".repeat(40)),
            format!("{SHOP}/Services/cart/Manifests/Files/vendored"),
        ),
    ]
}

#[test]
fn hostile_entries_pushed_to_a_branch_are_one_error_each_and_never_wedge_it() {
    on_each_backend!(backend, {
        use common::git_fixture::{REPO, SHOP, workflow};
        use reposync_testkit::RawEntry;
        let (h, emulator) = with_emulator(backend, reposync_testkit::WebhookFormat::Cloud);
        let at = |name: &str| format!("{SHOP}/Workflows/{name}.yaml");
        let hostile = shop_hostile_entries();

        // A real push, from a clone elsewhere, of a commit made with plumbing: one good file and
        // every kind of entry reposync cannot hold.
        let root = &h.f.root;
        let repo = root.repo_path(REPO).expect("repo");
        let work = tempfile::tempdir().expect("work");
        let checkout = work.path().join("checkout");
        root.git()
            .run(
                work.path(),
                &[
                    "clone",
                    "--quiet",
                    repo.to_str().expect("utf-8"),
                    checkout.to_str().expect("utf-8"),
                ],
            )
            .expect("clone");
        let push = |entries: &[(&[u8], RawEntry)], message: &str| -> String {
            root.git()
                .run(&checkout, &["fetch", "--quiet", "origin"])
                .expect("fetch");
            let parent = root
                .git()
                .run(&checkout, &["rev-parse", "origin/main"])
                .expect("parent");
            let commit = root
                .git()
                .commit_entries(&checkout, Some(&parent), entries, message)
                .expect("commit");
            root.git()
                .run(
                    &checkout,
                    &[
                        "push",
                        "--quiet",
                        "origin",
                        &format!("{commit}:refs/heads/main"),
                    ],
                )
                .expect("push");
            commit
        };
        let good_path = at("good one");
        let mut entries: Vec<(&[u8], RawEntry)> = vec![(
            good_path.as_bytes(),
            RawEntry::File(workflow("first").into_bytes()),
        )];
        entries.extend(
            hostile
                .iter()
                .map(|(path, entry, _)| (path.as_slice(), entry.clone())),
        );
        let poisoned = push(&entries, "good and hostile");

        // The good file applies; each hostile entry is one error, named escaped, with the commit.
        eventually("the good file applied", &h.f.app, || {
            tree_of_shop(&h).contains_key(&at("good one"))
        });
        let errors = open_errors(&h);
        let mut paths: Vec<&str> = errors
            .iter()
            .map(|e| e["path"].as_str().expect("path"))
            .collect();
        paths.sort_unstable();
        let mut expected: Vec<&str> = hostile.iter().map(|(_, _, name)| name.as_str()).collect();
        expected.sort_unstable();
        assert_eq!(paths, expected, "{errors:#?}");
        for error in &errors {
            assert_eq!(error["code"], "unrepresentable_path", "{error}");
            assert_eq!(error["commit_id"], poisoned.as_str(), "{error}");
            assert_eq!(error["scope"], "app:Shop", "{error}");
        }
        let symlink = errors
            .iter()
            .find(|e| e["path"] == format!("{SHOP}/Workflows/link.yaml").as_str())
            .expect("the link's error");
        assert!(
            symlink["message"]
                .as_str()
                .expect("message")
                .contains("symbolic link"),
            "{symlink}"
        );
        // `sync status` counts them, and the human listing shows the escaped name.
        let status = h.f.app.cli(&["--json", "sync", "status"], None).ok().json();
        assert_eq!(status["items"][0]["errors"], hostile.len(), "{status}");
        let listing = h.f.app.cli(&["sync", "errors"], None).ok().stdout.clone();
        assert!(listing.contains("Workflows/\\xff.yaml"), "{listing}");

        // A change made in reposync afterwards is pushed on top of the hostile tree, which keeps
        // its entries.
        h.f.put(&at("from the api"), &workflow("api"));
        let pushed = h.f.wait_pushed();
        assert_ne!(pushed, poisoned);
        assert_eq!(
            h.f.git(&["show", &format!("{pushed}:{}", at("from the api"))]),
            workflow("api").trim_end()
        );
        let listing = root
            .git()
            .run_with_input(
                &repo,
                &["ls-tree", "-z", &format!("{pushed}:{SHOP}/Workflows")],
                b"",
            )
            .expect("ls-tree");
        assert!(
            listing
                .split(|b| *b == 0)
                .any(|r| r.ends_with(b"\t\xff.yaml")),
            "the hostile entry is still there"
        );

        // Later commits apply.
        let second = at("good two");
        push(
            &[(
                second.as_bytes(),
                RawEntry::File(workflow("second").into_bytes()),
            )],
            "a later good file",
        );
        eventually("the later file applied", &h.f.app, || {
            tree_of_shop(&h).contains_key(&at("good two"))
        });
        assert_eq!(open_errors(&h).len(), hostile.len());

        // A commit that removes the hostile entries clears their errors.
        let removals: Vec<(&[u8], RawEntry)> = hostile
            .iter()
            .map(|(path, _, _)| (path.as_slice(), RawEntry::Delete))
            .collect();
        push(&removals, "remove the hostile entries");
        eventually("every error cleared", &h.f.app, || {
            open_errors(&h).is_empty()
        });
        let files = tree_of_shop(&h);
        for name in ["good one", "good two", "from the api"] {
            assert!(files.contains_key(&at(name)), "{name}: {files:?}");
        }

        // A forced update is read whole, and a hostile entry in it is an error all the same.
        let head = h.f.head().expect("head");
        let again = at("again");
        let with_link = root
            .git()
            .commit_entries(
                &repo,
                Some(&head),
                &[(again.as_bytes(), RawEntry::Symlink("good one.yaml".into()))],
                "scratch",
            )
            .expect("commit");
        let tree = h.f.git(&["rev-parse", &format!("{with_link}^{{tree}}")]);
        let forced = h.f.git(&[
            "commit-tree",
            &tree,
            "-p",
            &format!("{head}^"),
            "-m",
            "rewritten with a link",
        ]);
        h.f.git(&["update-ref", "refs/heads/main", &forced, &head]);
        emulator
            .record_ref_update(REPO, "refs/heads/main", Some(&head), Some(&forced), true)
            .expect("forced push");
        eventually("the link's error", &h.f.app, || !open_errors(&h).is_empty());
        let errors = open_errors(&h);
        assert_eq!(errors.len(), 1, "{errors:#?}");
        assert_eq!(errors[0]["path"], at("again").as_str());
        assert_eq!(errors[0]["commit_id"], forced.as_str());
        assert_eq!(tree_of_shop(&h), files, "the snapshot changed no file");
    });
}

/// The value of the sample of `metric` whose labels include every one of `labels`.
fn sample(scrape: &str, metric: &str, labels: &[&str]) -> Option<f64> {
    scrape
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| {
            line.strip_prefix(metric)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .find(|line| labels.iter().all(|label| line.contains(label)))
        .and_then(|line| line.rsplit(' ').next()?.parse().ok())
}

/// `/metrics` after a real push from reposync and a real push to Git delivered by webhook:
/// requests by route template, webhook deliveries by format and outcome, commit attempts,
/// reads from Git with their time and bytes, tasks with wait and run times, and the levels
/// read from the store. With a metrics token, a scraper without it is refused.
#[test]
fn metrics_after_a_real_push_count_what_happened() {
    on_each_backend!(backend, {
        use common::git_fixture::{REPO, SHOP, workflow};
        let config_dir = tempfile::tempdir().expect("tempdir");
        let config = config_dir.path().join("reposync.toml");
        std::fs::write(&config, "[metrics]\ntoken = \"scrape-secret-1234\"\n").expect("config");
        let (h, emulator) = with_emulator_and(
            backend,
            reposync_testkit::WebhookFormat::Cloud,
            &["--config", config.to_str().expect("utf-8")],
        );
        // A change made in reposync goes out through the outbox.
        h.f.put(
            &format!("{SHOP}/Workflows/from-reposync.yaml"),
            &workflow("made in reposync"),
        );
        h.f.wait_pushed();
        let path = format!("{SHOP}/Workflows/from-git.yaml");
        emulator
            .commit(
                REPO,
                "main",
                &[(&path, &workflow("made in Git"))],
                "from Git",
            )
            .expect("commit");
        eventually("the commit read back", &h.f.app, || {
            h.f.app.cli(&["get", &path], None).code == 0
        });
        // One delivery that fails authentication.
        let (status, _) = h.post(&h.token, &[("X-Event-Key", "repo:push")], b"{}");
        assert_eq!(status, 401);

        let scrape = |token: Option<&str>| {
            let mut request = h.http.get(format!("{}/metrics", h.f.app.url));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            h.f.rt.block_on(async {
                let response = request.send().await.expect("scrape");
                let status = response.status().as_u16();
                (status, response.text().await.expect("text"))
            })
        };
        assert_eq!(scrape(None).0, 401, "the metrics token is asked for");
        assert_eq!(
            scrape(Some(&h.f.app.token)).0,
            401,
            "an API token is not it"
        );
        let (status, text) = scrape(Some("scrape-secret-1234"));
        assert_eq!(status, 200, "{text}");
        println!("{text}");

        let at_least = |metric: &str, labels: &[&str], floor: f64| {
            let value = sample(&text, metric, labels)
                .unwrap_or_else(|| panic!("no {metric} {labels:?} in:\n{text}"));
            assert!(value >= floor, "{metric} {labels:?} = {value}");
        };
        at_least(
            "reposync_http_requests_total",
            &[
                r#"method="PUT""#,
                r#"route="/api/v1/entities""#,
                r#"status="200""#,
            ],
            1.0,
        );
        at_least(
            "reposync_http_request_duration_seconds_count",
            &[r#"route="/api/v1/entities""#],
            1.0,
        );
        at_least(
            "reposync_webhook_deliveries_total",
            &[r#"format="cloud""#, r#"outcome="queued""#],
            1.0,
        );
        at_least(
            "reposync_webhook_deliveries_total",
            &[r#"outcome="unauthenticated""#],
            1.0,
        );
        at_least(
            "reposync_commit_attempts_total",
            &[r#"outcome="pushed""#],
            1.0,
        );
        at_least("reposync_git_reads_total", &[r#"outcome="commits""#], 1.0);
        at_least("reposync_git_read_duration_seconds_count", &[], 1.0);
        at_least("reposync_git_read_bytes_total", &[], 1.0);
        at_least(
            "reposync_tasks_total",
            &[r#"kind="sync""#, r#"outcome="succeeded""#],
            2.0,
        );
        at_least("reposync_task_wait_seconds_count", &[r#"kind="sync""#], 2.0);
        at_least("reposync_task_run_seconds_count", &[r#"kind="sync""#], 2.0);
        assert_eq!(
            sample(
                &text,
                "reposync_changesets_waiting",
                &[r#"scope="app:Shop""#]
            ),
            Some(0.0),
            "{text}"
        );
        assert_eq!(
            sample(&text, "reposync_sync_errors_open", &[r#"scope="app:Shop""#]),
            Some(0.0)
        );
        assert_eq!(
            sample(&text, "reposync_delegates_connected", &[]),
            Some(1.0)
        );
        assert!(
            !text.contains(&h.token),
            "a webhook URL's token never shows"
        );
    });
}
