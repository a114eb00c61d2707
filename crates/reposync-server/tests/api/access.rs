//! Who may call what: the policy table covers every route the server serves; each role gets
//! from each route exactly the answer the table says; delegate and personal tokens stay
//! apart; and guessing passwords neither slows the server for others nor locks the rightful
//! user out past the window.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use std::sync::Arc;

use reposync_model::scope::Scope;
use reposync_model::{EntityName, Rights, Role};
use reposync_server::{Need, POLICIES, Touches};
use reposync_store::{ManualClock, NewSyncLink};
use reqwest::Method;
use serde_json::{Value, json};

use super::{Api, Backend, StatusCode, openapi_document, operations};

/// A caller of the matrix: a user with a role everywhere, or an editor of `Shop` only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Viewer,
    ShopEditor,
    Editor,
    Admin,
}

const EVERYONE: [Who; 4] = [Who::Viewer, Who::ShopEditor, Who::Editor, Who::Admin];

impl Who {
    fn name(self) -> &'static str {
        match self {
            Who::Viewer => "vera",
            Who::ShopEditor => "sam",
            Who::Editor => "ed",
            Who::Admin => "ada",
        }
    }

    fn rights(self) -> Rights {
        let (role, apps) = match self {
            Who::Viewer => (Role::Viewer, vec![]),
            Who::ShopEditor => (Role::Editor, vec![EntityName::parse("Shop").expect("name")]),
            Who::Editor => (Role::Editor, vec![]),
            Who::Admin => (Role::Admin, vec![]),
        };
        Rights { role, apps }
    }
}

const SERVICE_PATH: &str = "Setup/Applications/Shop/Services/cart/Index.yaml";
const SERVICE: &str = "harnessApiVersion: '1.0'\ntype: SERVICE\ndeploymentType: KUBERNETES\n";
const TESS_PASSWORD: &str = "a long enough password";

/// A server holding one of everything the routes act on, and a token per caller.
struct Seeded {
    api: Api,
    tokens: HashMap<&'static str, String>,
    task: String,
    changeset: String,
}

async fn seeded(backend: Backend) -> Seeded {
    let api = Api::spawn(backend).await;
    let made = |status: StatusCode, answer: &Value, what: &str| {
        assert!(status.is_success(), "seeding {what}: {status} {answer}");
    };
    for secret in ["bb-token", "spare"] {
        let (status, answer) = api
            .post(
                "/api/v1/secrets",
                json!({"name": secret, "value": "tok-value-1234567"}),
            )
            .await;
        made(status, &answer, secret);
    }
    let connector = json!({
        "name": "Config",
        "url": "https://127.0.0.1:9/acme/config.git",
        "username": "jdoe",
        "password_secret": "bb-token",
        "branch": "main",
        "generate_webhook_url": true,
    });
    let (status, answer) = api.post("/api/v1/connectors", connector).await;
    made(status, &answer, "connector");
    for app in ["Shop", "Bank"] {
        let (status, answer) = api.post("/api/v1/apps", json!({"name": app})).await;
        made(status, &answer, app);
    }
    let service = format!("/api/v1/entities?path={SERVICE_PATH}");
    let (status, answer) = api
        .send(Method::PUT, &service, Some(json!({"content": SERVICE})))
        .await;
    made(status, &answer, "service");
    let mut tokens = HashMap::new();
    for who in EVERYONE {
        let apps: Vec<String> = who.rights().apps.iter().map(|a| a.to_string()).collect();
        let user = json!({"name": who.name(), "role": who.rights().role.as_str(), "apps": apps});
        let (status, answer) = api.post("/api/v1/users", user).await;
        made(status, &answer, who.name());
        for token in ["main", "spare"] {
            let url = format!("/api/v1/users/{}/tokens", who.name());
            let (status, answer) = api.post(&url, json!({"name": token})).await;
            made(status, &answer, token);
            if token == "main" {
                tokens.insert(
                    who.name(),
                    answer["token"].as_str().expect("token").to_owned(),
                );
            }
        }
    }
    let tess = json!({"name": "tess", "role": "viewer", "password": TESS_PASSWORD});
    let (status, answer) = api.post("/api/v1/users", tess).await;
    made(status, &answer, "tess");
    let (status, answer) = api
        .post("/api/v1/users/tess/tokens", json!({"name": "t1"}))
        .await;
    made(status, &answer, "tess's token");
    let (status, answer) = api
        .post("/api/v1/delegate-tokens", json!({"name": "fleet"}))
        .await;
    made(status, &answer, "delegate token");
    let (status, answer) = api.post("/api/v1/connectors/Config/test", json!({})).await;
    made(status, &answer, "task");
    let task = answer["id"].as_str().expect("task id").to_owned();
    // A live link for Shop, and a changeset waiting in it.
    let config = api
        .store
        .get_connector(&EntityName::parse("Config").expect("name"))
        .await
        .expect("connector");
    let link = api
        .store
        .create_link(
            &NewSyncLink {
                app: Some("Shop".into()),
                connector_id: config.id.clone(),
                repo: None,
                branch: "main".into(),
                base_commit: None,
            },
            &[],
        )
        .await
        .expect("link");
    let changed = SERVICE.replace("KUBERNETES", "SSH");
    let (status, answer) = api
        .send(Method::PUT, &service, Some(json!({"content": changed})))
        .await;
    made(status, &answer, "a change");
    let changesets = api
        .store
        .list_changesets(std::slice::from_ref(&link.id), 10)
        .await
        .expect("changesets");
    let changeset = changesets.first().expect("a changeset").id.to_string();
    Seeded {
        api,
        tokens,
        task,
        changeset,
    }
}

/// A request that succeeds on a seeded server when its caller may make it: its URL, body,
/// the answer an allowed caller gets, and the scope it touches.
struct Probe {
    url: String,
    body: Option<Value>,
    allowed: StatusCode,
    scope: Scope,
}

fn probe(method: &Method, route: &str, seeded: &Seeded) -> Probe {
    let ok = StatusCode::OK;
    let created = StatusCode::CREATED;
    let accepted = StatusCode::ACCEPTED;
    let shop = || Scope::App("Shop".into());
    let p = |url: &str, body: Option<Value>, allowed: StatusCode, scope: Scope| Probe {
        url: url.to_owned(),
        body,
        allowed,
        scope,
    };
    let account = Scope::Account;
    let draft = json!({
        "name": "Draft",
        "url": "https://127.0.0.1:9/acme/draft.git",
        "username": "jdoe",
        "password_secret": "bb-token",
        "branch": "main",
    });
    let key = reposync_secrets::generate_ed25519("probe").expect("key");
    match (method.as_str(), route) {
        ("GET", "/api/v1/openapi.json") => p(route, None, ok, account),
        ("POST", "/api/v1/login") => p(
            route,
            Some(json!({"user": "tess", "password": TESS_PASSWORD})),
            created,
            account,
        ),
        ("GET", "/api/v1/tasks/{id}") => {
            p(&format!("/api/v1/tasks/{}", seeded.task), None, ok, account)
        }
        // The seeded task is a Test, which has no archive: past the policy, the handler's own
        // 404 says so.
        ("GET", "/api/v1/tasks/{id}/archive") => p(
            &format!("/api/v1/tasks/{}/archive", seeded.task),
            None,
            StatusCode::NOT_FOUND,
            account,
        ),
        ("GET", "/api/v1/entities") => p(
            &format!("/api/v1/entities?path={SERVICE_PATH}"),
            None,
            ok,
            account,
        ),
        ("GET", route) => p(
            &route
                .replace("{name}/tokens", "tess/tokens")
                .replace("users/{name}", "users/tess")
                .replace("secrets/{name}", "secrets/bb-token")
                .replace("connectors/{name}", "connectors/Config")
                .replace("apps/{name}", "apps/Shop"),
            None,
            ok,
            account,
        ),
        ("POST", "/api/v1/secrets") => p(
            route,
            Some(json!({"name": "new", "value": "v-1234567"})),
            created,
            account,
        ),
        ("POST", "/api/v1/secrets/ssh") => p(
            route,
            Some(json!({"name": "deploy", "private_key": key.private_key_openssh.as_str()})),
            created,
            account,
        ),
        ("POST", "/api/v1/secrets/ssh/generate") => {
            p(route, Some(json!({"name": "gen"})), created, account)
        }
        ("PUT", "/api/v1/secrets/{name}") => p(
            "/api/v1/secrets/bb-token",
            Some(json!({"value": "v-7654321"})),
            ok,
            account,
        ),
        ("DELETE", "/api/v1/secrets/{name}") => p("/api/v1/secrets/spare", None, ok, account),
        ("POST", "/api/v1/connectors") => p(route, Some(draft), created, account),
        ("PATCH", "/api/v1/connectors/{name}") => p(
            "/api/v1/connectors/Config",
            Some(json!({"branch": "dev"})),
            ok,
            account,
        ),
        ("DELETE", "/api/v1/connectors/{name}") => p(
            "/api/v1/connectors/Config",
            None,
            StatusCode::CONFLICT,
            account,
        ),
        ("POST", "/api/v1/connectors/{name}/webhook/regenerate") => p(
            "/api/v1/connectors/Config/webhook/regenerate",
            Some(json!({})),
            ok,
            account,
        ),
        ("POST", "/api/v1/connectors/{name}/webhook/signature") => p(
            "/api/v1/connectors/Config/webhook/signature",
            Some(json!({"required": false})),
            ok,
            account,
        ),
        ("POST", "/api/v1/connectors/{name}/test") => p(
            "/api/v1/connectors/Config/test",
            Some(json!({})),
            accepted,
            account,
        ),
        ("POST", "/api/v1/connector-tests") => p(route, Some(draft), accepted, account),
        ("POST", "/api/v1/connectors/{name}/fetch") => p(
            "/api/v1/connectors/Config/fetch",
            Some(json!({"ref": "main", "paths": ["Setup/Index.yaml"]})),
            accepted,
            account,
        ),
        ("POST", "/api/v1/import") => p(
            route,
            Some(json!({"files": [{"path": SERVICE_PATH, "content": STANDARD.encode(SERVICE)}]})),
            ok,
            shop(),
        ),
        ("PUT", "/api/v1/entities") => p(
            &format!("/api/v1/entities?path={SERVICE_PATH}"),
            Some(json!({"content": SERVICE})),
            ok,
            shop(),
        ),
        ("DELETE", "/api/v1/entities") => p(
            &format!("/api/v1/entities?path={SERVICE_PATH}"),
            None,
            ok,
            shop(),
        ),
        ("POST", "/api/v1/entities/rename") => p(
            route,
            Some(json!({"path": SERVICE_PATH, "name": "basket"})),
            ok,
            shop(),
        ),
        ("POST", "/api/v1/apps") => p(
            route,
            Some(json!({"name": "Fresh"})),
            ok,
            Scope::App("Fresh".into()),
        ),
        ("DELETE", "/api/v1/apps/{name}") => {
            p("/api/v1/apps/Bank", None, ok, Scope::App("Bank".into()))
        }
        ("POST", "/api/v1/apps/{name}/rename") => p(
            "/api/v1/apps/Bank/rename",
            Some(json!({"name": "Vault"})),
            ok,
            account,
        ),
        ("POST", "/api/v1/sync/enable") => p(
            route,
            Some(json!({"app": "Bank", "connector": "Config"})),
            accepted,
            Scope::App("Bank".into()),
        ),
        ("POST", "/api/v1/sync/disable") => p(route, Some(json!({"app": "Shop"})), ok, shop()),
        ("POST", "/api/v1/sync/refresh") => {
            p(route, Some(json!({"app": "Shop"})), accepted, shop())
        }
        // An error id that names nothing is judged as the account's, the strictest scope.
        ("POST", "/api/v1/sync/errors/{id}/discard") => p(
            "/api/v1/sync/errors/nothing/discard",
            Some(json!({})),
            StatusCode::NOT_FOUND,
            account,
        ),
        ("POST", "/api/v1/sync/changesets/{id}/retry") => p(
            &format!("/api/v1/sync/changesets/{}/retry", seeded.changeset),
            Some(json!({})),
            // A waiting changeset is not retried: the handler's own refusal, past the policy.
            StatusCode::UNPROCESSABLE_ENTITY,
            shop(),
        ),
        ("POST", "/api/v1/delegate-tokens") => {
            p(route, Some(json!({"name": "eu"})), created, account)
        }
        ("DELETE", "/api/v1/delegate-tokens/{name}") => {
            p("/api/v1/delegate-tokens/fleet", None, ok, account)
        }
        ("POST", "/api/v1/tokens") => p(route, Some(json!({"name": "new"})), created, account),
        ("DELETE", "/api/v1/tokens/{name}") => p("/api/v1/tokens/spare", None, ok, account),
        ("POST", "/api/v1/users/{name}/password-link") => p(
            "/api/v1/users/tess/password-link",
            Some(json!({})),
            created,
            account,
        ),
        // Public: the link's token is the credential, and this one names no link.
        ("POST", "/api/v1/password") => p(
            route,
            Some(json!({"token": "rspw_no-such-link", "password": "a long enough password"})),
            StatusCode::UNAUTHORIZED,
            account,
        ),
        ("POST", "/api/v1/users") => p(
            route,
            Some(json!({"name": "newbie", "role": "viewer"})),
            created,
            account,
        ),
        ("PATCH", "/api/v1/users/{name}") => p(
            "/api/v1/users/tess",
            Some(json!({"role": "editor"})),
            ok,
            account,
        ),
        ("DELETE", "/api/v1/users/{name}") => p("/api/v1/users/tess", None, ok, account),
        ("POST", "/api/v1/users/{name}/tokens") => p(
            "/api/v1/users/tess/tokens",
            Some(json!({"name": "t2"})),
            created,
            account,
        ),
        ("DELETE", "/api/v1/users/{name}/tokens/{token}") => {
            p("/api/v1/users/tess/tokens/t1", None, ok, account)
        }
        (method, route) => panic!("{method} {route}: the matrix has no probe for it; add one"),
    }
}

/// Every route the server serves (its OpenAPI document is built from the same route table)
/// has exactly one entry in the policy table, and every entry is a route that is served.
#[tokio::test]
async fn every_route_has_exactly_one_policy_and_every_policy_a_route() {
    on_each_backend!(backend, {
        let api = Api::spawn(backend).await;
        let document = openapi_document(&api).await;
        let served: Vec<(String, String)> = operations(&document)
            .into_iter()
            .map(|(path, method, _)| (method.to_uppercase(), path))
            .collect();
        let mut problems = Vec::new();
        for (method, path) in &served {
            let entries = POLICIES
                .iter()
                .filter(|p| p.method.as_str() == method && p.route == path)
                .count();
            if entries != 1 {
                problems.push(format!("{method} {path}: {entries} policy entries"));
            }
        }
        for policy in POLICIES {
            let listed = served
                .iter()
                .any(|(method, path)| policy.method.as_str() == method && policy.route == path);
            if !listed {
                problems.push(format!(
                    "{} {}: a policy for a route that is not served",
                    policy.method, policy.route
                ));
            }
        }
        assert!(problems.is_empty(), "{problems:#?}");
        assert!(served.len() >= 50, "{}", served.len());
    });
}

/// For every route and every caller, the answer is exactly what the table says: the route's
/// own success where the caller's role in the scope the request touches is enough, and 403
/// naming what is missing everywhere else. A refused request changes nothing, so the callers
/// go from the weakest up, and a server is seeded afresh after each write that went through.
#[tokio::test]
async fn each_role_gets_exactly_what_the_policy_table_says_from_every_route() {
    on_each_backend!(backend, {
        let mut seeded_server = seeded(backend).await;
        let document = openapi_document(&seeded_server.api).await;
        let mut problems = Vec::new();
        let mut checked = 0;
        for (path, method, _) in operations(&document) {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            let policy = POLICIES
                .iter()
                .find(|p| p.method == method && p.route == path)
                .expect("the coverage test holds every route to an entry");
            for who in EVERYONE {
                let probe = probe(&method, &path, &seeded_server);
                // The test states the scope of its request; the table must agree it is one the
                // route reads (an account-wide route never depends on an application).
                if policy.touches == Touches::Account {
                    assert_eq!(probe.scope, Scope::Account, "{method} {path}");
                }
                let allowed = match policy.need {
                    Need::Public => true,
                    Need::Role(need) => who.rights().role_in(&probe.scope) >= need,
                };
                let token = seeded_server.tokens[who.name()].clone();
                let (status, answer) = seeded_server
                    .api
                    .send_as(&token, method.clone(), &probe.url, probe.body.clone())
                    .await;
                checked += 1;
                let expected = if allowed {
                    probe.allowed
                } else {
                    StatusCode::FORBIDDEN
                };
                if status != expected {
                    problems.push(format!(
                        "{who:?} {method} {path}: {status}, the table says {expected}: {answer}"
                    ));
                }
                if !allowed && status == StatusCode::FORBIDDEN {
                    let message = answer["error"]["message"].as_str().unwrap_or_default();
                    if !message.contains("needs the") || !message.contains(who.name()) {
                        problems.push(format!(
                            "{who:?} {method} {path}: the refusal names no grant: {message}"
                        ));
                    }
                }
                if allowed && method != Method::GET && status.is_success() {
                    seeded_server = seeded(backend).await;
                }
            }
        }
        assert!(problems.is_empty(), "{problems:#?}");
        assert!(checked >= 200, "{checked}");
    });
}

/// Enabling every scope (`all`) touches the account and every application, so it needs the
/// account's editor role: an editor of some applications only is refused with 403 naming the
/// grant that is missing (even with `app` naming one of theirs), the refusal is in the audit
/// trail as about every scope, and nothing is queued; the account's editor is let through.
#[tokio::test]
async fn enabling_every_scope_needs_the_accounts_editor_and_says_which_grant_is_missing() {
    on_each_backend!(backend, {
        let seeded = seeded(backend).await;
        let sam = &seeded.tokens[Who::ShopEditor.name()];
        for body in [
            json!({"all": true, "connector": "Config"}),
            json!({"all": true, "app": "Shop", "connector": "Config"}),
        ] {
            let (status, answer) = seeded
                .api
                .send_as(sam, Method::POST, "/api/v1/sync/enable", Some(body.clone()))
                .await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{body}: {answer}");
            let message = answer["error"]["message"].as_str().unwrap_or_default();
            assert!(
                message.contains("needs the editor role for the account")
                    && message.contains("editor only in Shop")
                    && message.contains("reposync user set-role sam editor"),
                "{message}"
            );
        }
        // Newest first: the request without `app` is the older one.
        let (_, trail) = seeded.api.get("/api/v1/audit?user=sam").await;
        let event = &trail["items"][1];
        assert_eq!(event["use_case"], "sync.enable", "{trail}");
        assert_eq!(event["outcome"], "refused", "{trail}");
        assert_eq!(event["target"], "every scope", "{trail}");
        let tasks = seeded
            .api
            .store
            .running_local_tasks("enable_sync")
            .await
            .expect("tasks");
        assert!(tasks.is_empty(), "a refusal queues nothing: {tasks:?}");

        let ed = &seeded.tokens[Who::Editor.name()];
        let (status, answer) = seeded
            .api
            .send_as(
                ed,
                Method::POST,
                "/api/v1/sync/enable",
                Some(json!({"all": true, "connector": "Config"})),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
        assert_eq!(answer["kind"], "enable_sync", "{answer}");
    });
}

/// A delegate token speaks only the delegate protocol and a personal token only the API:
/// each is refused on the other's routes, saying so.
#[tokio::test]
async fn delegate_tokens_and_personal_tokens_stay_on_their_own_routes() {
    on_each_backend!(backend, {
        let api = Api::spawn(backend).await;
        let (_, created) = api
            .post("/api/v1/delegate-tokens", json!({"name": "fleet"}))
            .await;
        let delegate = created["token"]
            .as_str()
            .expect("delegate token")
            .to_owned();
        let (status, answer) = api
            .send_as(&delegate, Method::GET, "/api/v1/apps", None)
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("delegate token"), "{message}");
        let register = json!({
            "name": "d1", "selectors": [], "version": "1", "hostname": "h",
            "git_version": "2", "ssh_version": "9",
        });
        let (status, answer) = api
            .send_as(
                &api.token,
                Method::POST,
                "/api/delegate/register",
                Some(register.clone()),
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
        let (status, answer) = api
            .send_as(
                &delegate,
                Method::POST,
                "/api/delegate/register",
                Some(register),
            )
            .await;
        assert!(
            status.is_success(),
            "the delegate token works where it belongs: {status} {answer}"
        );
        // The registration is in the audit trail, as the delegate's, with its token's name.
        let (_, trail) = api.get("/api/v1/audit?user=d1").await;
        let event = &trail["items"][0];
        assert_eq!(event["use_case"], "delegate.register", "{trail}");
        assert_eq!(event["actor_kind"], "delegate", "{trail}");
        assert_eq!(event["token"], "fleet", "{trail}");
        assert!(
            !trail.to_string().contains(&delegate),
            "never the token's value"
        );
    });
}

/// A thousand wrong passwords for one user, from one address, in a bounded loop: the first
/// few are checked, then each further one is refused unchecked (429 with `Retry-After`) and
/// the user is locked out for the window; meanwhile everyone else's requests and logins go
/// through. Once the window has passed (on the store's clock), the right password works.
#[tokio::test]
async fn a_thousand_wrong_passwords_lock_one_user_for_the_window_and_nobody_else() {
    on_each_backend!(backend, {
        let clock = ManualClock::starting_now();
        let api = Api::spawn_with_clock(
            backend,
            Arc::clone(&clock) as Arc<dyn reposync_store::Clock>,
        )
        .await;
        let tess = json!({"name": "tess", "role": "viewer", "password": TESS_PASSWORD});
        let (status, answer) = api.post("/api/v1/users", tess).await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
        let login = |user: &str, password: &str| {
            let http = api.http.clone();
            let url = format!("{}/api/v1/login", api.base);
            let body = json!({"user": user, "password": password});
            async move {
                let response = http.post(url).json(&body).send().await.expect("login");
                let status = response.status();
                let retry_after = response.headers().get("retry-after").cloned();
                let answer: Value = response.json().await.unwrap_or(Value::Null);
                (status, retry_after, answer)
            }
        };
        let mut counts: HashMap<StatusCode, usize> = HashMap::new();
        for attempt in 0..1000 {
            let (status, retry_after, answer) =
                login("tess", &format!("guess number {attempt}")).await;
            *counts.entry(status).or_default() += 1;
            match status {
                StatusCode::UNAUTHORIZED => {
                    assert_eq!(answer["error"]["message"], "wrong user name or password");
                }
                StatusCode::TOO_MANY_REQUESTS => {
                    assert!(retry_after.is_some(), "a refusal says when to come back");
                    let message = answer["error"]["message"].as_str().unwrap_or_default();
                    assert!(message.contains("too many failed logins"), "{message}");
                    // General terms: nothing of who exists, how many failures, or from where.
                    assert!(
                        !message.contains("tess") && !message.contains("127.0.0.1"),
                        "{message}"
                    );
                }
                other => panic!("attempt {attempt}: {other} {answer}"),
            }
            if attempt % 100 == 0 {
                // Everyone else keeps working while tess is locked.
                let (status, answer) = api.get("/api/v1/apps").await;
                assert_eq!(status, StatusCode::OK, "{answer}");
            }
        }
        let checked = counts.get(&StatusCode::UNAUTHORIZED).copied().unwrap_or(0);
        assert!(
            checked <= 15,
            "at most the free attempts and the doubling ones are checked, not {checked}: {counts:?}"
        );
        assert_eq!(checked + counts[&StatusCode::TOO_MANY_REQUESTS], 1000);
        // The right password is refused too while the lock holds: guessing it gains nothing.
        let (status, _, _) = login("tess", TESS_PASSWORD).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        // Admins see the lockout in detail: on the user, and in the audit trail.
        let (_, tess) = api.get("/api/v1/users/tess").await;
        assert!(
            tess["login_failures"]["blocked_until"].is_string(),
            "{tess}"
        );
        assert_eq!(
            tess["login_failures"]["last_address"], "127.0.0.1",
            "{tess}"
        );
        let (_, trail) = api.get("/api/v1/audit?user=tess&limit=1000").await;
        let details: Vec<&str> = trail["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter_map(|event| event["detail"].as_str())
            .collect();
        assert!(
            details.iter().any(|d| d.contains("locked out")),
            "{details:?}"
        );
        // The window passes (on the store's clock): tess logs in with her password.
        clock.advance(16 * 60 * 1000);
        let (status, _, answer) = login("tess", TESS_PASSWORD).await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
        assert!(
            answer["token"]
                .as_str()
                .is_some_and(|t| t.starts_with("rsp_")),
            "{answer}"
        );
        // And a thousand wrong tokens change nothing for the right one.
        for attempt in 0..1000 {
            let (status, _) = api
                .send_as(
                    &format!("rsp_wrong{attempt}"),
                    Method::GET,
                    "/api/v1/me",
                    None,
                )
                .await;
            assert_eq!(status, StatusCode::UNAUTHORIZED);
        }
        let (status, me) = api.get("/api/v1/me").await;
        assert_eq!(status, StatusCode::OK, "{me}");
        assert_eq!(me["user"], "admin");
    });
}
