//! Fetches over the API and the delegate protocol: what a fetch task carries, who may upload
//! its archive and how much, when it can be downloaded, and a success without an archive.

use reqwest::Method;
use serde_json::{Value, json};

use super::{Api, StatusCode, as_delegate, connector, with_token_secret};

/// A server without a built-in delegate, connector `Config`, and a registered delegate; its
/// token.
async fn with_delegate(api: &Api) -> String {
    with_token_secret(api).await;
    let (status, answer) = api.post("/api/v1/connectors", connector("Config")).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let (_, created) = api
        .post("/api/v1/delegate-tokens", json!({"name": "fleet"}))
        .await;
    let token = created["token"].as_str().expect("token").to_owned();
    let register = json!({"name": "far", "selectors": [], "version": "0.1.0",
        "hostname": "h", "git_version": "2.43.0", "ssh_version": "none"});
    let (status, answer) = as_delegate(api, &token, None, "/api/delegate/register", register).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    token
}

/// Queues a fetch and claims it as delegate `far`; the task's id and spec.
async fn claimed_fetch(api: &Api, token: &str) -> (String, Value) {
    let (status, queued) = api
        .post(
            "/api/v1/connectors/Config/fetch",
            json!({"ref": "v1.2", "paths": ["deploy/", "values.yaml"]}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
    assert_eq!(queued["kind"], "fetch_files", "{queued}");
    let (status, task) = as_delegate(
        api,
        token,
        Some("far"),
        "/api/delegate/claim?wait_ms=5000",
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{task}");
    (
        task["id"].as_str().expect("id").to_owned(),
        task["spec"].clone(),
    )
}

/// `PUT /api/delegate/tasks/{id}/archive` as delegate `name`.
async fn upload(
    api: &Api,
    token: &str,
    name: &str,
    id: &str,
    body: Vec<u8>,
) -> (StatusCode, Value) {
    let response = api
        .http
        .put(format!("{}/api/delegate/tasks/{id}/archive", api.base))
        .bearer_auth(token)
        .header("X-Reposync-Delegate", name)
        .header("Content-Type", "application/x-tar")
        .body(body)
        .send()
        .await
        .expect("upload");
    let status = response.status();
    let text = response.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn download(api: &Api, id: &str) -> (StatusCode, Option<String>, Vec<u8>) {
    let response = api
        .http
        .get(format!("{}/api/v1/tasks/{id}/archive", api.base))
        .bearer_auth(&api.token)
        .send()
        .await
        .expect("download");
    let status = response.status();
    let kind = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (status, kind, response.bytes().await.expect("body").to_vec())
}

#[tokio::test]
async fn a_fetch_carries_its_ref_and_paths_and_its_archive_is_kept_only_from_the_delegate_holding_it()
 {
    on_each_backend!(backend, {
        let api = Api::spawn_with(backend, |c| c.builtin_delegate = false).await;
        let token = with_delegate(&api).await;
        let (id, spec) = claimed_fetch(&api, &token).await;
        assert_eq!(spec["kind"], "fetch_files", "{spec}");
        assert_eq!(spec["ref"], "v1.2");
        assert_eq!(
            spec["paths"],
            json!(["deploy", "values.yaml"]),
            "parsed, slash dropped"
        );
        assert_eq!(spec["branch"], "main");
        assert_eq!(spec["auth"]["password"], "tok-value-1234567");
        assert!(spec["clone_key"].as_str().is_some_and(|k| !k.is_empty()));
        assert_eq!(spec["planning"]["fetch"], "auto", "{spec}");

        // Not downloadable while it runs.
        let (status, _, body) = download(&api, &id).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(String::from_utf8_lossy(&body).contains("not finished"));

        // Another delegate may not send it.
        let (_, created) = api
            .post("/api/v1/delegate-tokens", json!({"name": "other"}))
            .await;
        let other = created["token"].as_str().expect("token").to_owned();
        let register = json!({"name": "near", "selectors": [], "version": "0.1.0",
            "hostname": "h2", "git_version": "2.43.0", "ssh_version": "none"});
        as_delegate(&api, &other, None, "/api/delegate/register", register).await;
        let (status, answer) = upload(&api, &other, "near", &id, b"tar".to_vec()).await;
        assert_eq!(status, StatusCode::CONFLICT, "{answer}");
        assert_eq!(answer["error"]["code"], "lease_lost");

        // The delegate holding it sends it, then reports; the download is the same bytes.
        let archive: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let (status, answer) = upload(&api, &token, "far", &id, archive.clone()).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer["bytes"], 200_000);
        let (status, _) = as_delegate(
            &api,
            &token,
            Some("far"),
            &format!("/api/delegate/tasks/{id}/complete"),
            json!({"succeeded": true, "result": {"commit": "a".repeat(40), "ref": "refs/tags/v1.2",
                "files": [], "unrepresentable": [], "archive_bytes": 200_000,
                "read": {"method": "git", "reason": "r", "requests": 0, "bytes": 0, "duration_ms": 1}}}),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let (_, shown) = api.get(&format!("/api/v1/tasks/{id}")).await;
        assert_eq!(shown["status"], "succeeded", "{shown}");
        let (status, kind, body) = download(&api, &id).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(kind.as_deref(), Some("application/x-tar"));
        assert_eq!(body, archive);
        // Downloads may be repeated within the hour.
        assert_eq!(download(&api, &id).await.2, archive);
    });
}

#[tokio::test]
async fn a_fetch_reported_done_without_its_archive_failed_and_bad_requests_queue_nothing() {
    on_each_backend!(backend, {
        let api = Api::spawn_with(backend, |c| c.builtin_delegate = false).await;
        let token = with_delegate(&api).await;
        let (id, _) = claimed_fetch(&api, &token).await;
        let (status, _) = as_delegate(
            &api,
            &token,
            Some("far"),
            &format!("/api/delegate/tasks/{id}/complete"),
            json!({"succeeded": true, "result": {}}),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let (_, shown) = api.get(&format!("/api/v1/tasks/{id}")).await;
        assert_eq!(shown["status"], "failed", "{shown}");
        assert!(
            shown["result"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("archive never arrived")),
            "{shown}"
        );
        let (status, _, body) = download(&api, &id).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(String::from_utf8_lossy(&body).contains("failed"));

        // Refusals name their field and queue nothing: the delegate finds no task.
        for (body, field) in [
            (json!({"paths": ["../etc/passwd"]}), "paths"),
            (json!({"paths": []}), "paths"),
            (json!({"paths": ["a"], "ref": "main~1"}), "ref"),
            (json!({"paths": ["a"], "repo": "other"}), "repo"),
        ] {
            let (status, answer) = api
                .send(
                    Method::POST,
                    "/api/v1/connectors/Config/fetch",
                    Some(body.clone()),
                )
                .await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {answer}");
            assert_eq!(answer["error"]["field"], field, "{body}: {answer}");
        }
        let (status, _) = as_delegate(
            &api,
            &token,
            Some("far"),
            "/api/delegate/claim?wait_ms=200",
            json!({}),
        )
        .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "nothing was queued");
        // A task that is not a fetch has no archive, and says so.
        let (_, test) = api.post("/api/v1/connectors/Config/test", json!({})).await;
        let test_id = test["id"].as_str().expect("id");
        let (status, _, body) = download(&api, test_id).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(String::from_utf8_lossy(&body).contains("not a fetch"));
    });
}
