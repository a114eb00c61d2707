//! Who is asking, and whether they may: the one layer in front of every `/api/v1` route.
//!
//! [`POLICIES`] is the one table that decides every route: the role it needs, where that role
//! must hold (the account, or the applications the request touches, read from the path, the
//! query or the body), the use case it is, for the audit trail, and what it acts on. The layer
//! authenticates the bearer token, finds the route's entry, works out the scopes, refuses with
//! 403 naming the missing grant, and records every write (accepted or refused) in the audit
//! trail. Handlers never check rights themselves; they find the caller in the request's
//! extensions when they need to know who it is.

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, FromRequestParts, MatchedPath, RawPathParams, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use reposync_core::tokens::hash_token;
use reposync_core::users::{self, Caller};
use reposync_model::scope::Scope;
use reposync_model::{ChangesetId, Role, SyncErrorId};
use reposync_store::SyncRow;
use serde_json::Value;

use crate::error::AppError;
use crate::state::AppState;

/// What a route needs of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Nothing: no token is asked for (the login, the OpenAPI document).
    Public,
    /// A user whose role, in every scope the request touches, is at least this one.
    Role(Role),
}

/// Where a value of the request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Nothing,
    /// A path parameter, by name.
    Param(&'static str),
    /// A query parameter, by name.
    Query(&'static str),
    /// A top-level string field of the JSON body.
    Body(&'static str),
}

/// Which scopes of the tree a request touches, for the role check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Touches {
    /// The account as a whole: connectors, secrets, users, delegates, and everything read.
    Account,
    /// The application the value names; none (an absent `app`) is the account. A body with
    /// `all: true` (every scope) touches the account too, whose role is the one that holds
    /// in every application.
    App(Part),
    /// The scope of the tree path the value holds.
    Path(Part),
    /// The scopes of every file of an import's `files`.
    ImportedFiles,
    /// The scope of the sync error the `id` parameter names.
    SyncError,
    /// The scope of the changeset the `id` parameter names.
    Changeset,
}

/// One route's entry in the policy table.
#[derive(Debug, Clone)]
pub struct Policy {
    pub method: Method,
    /// The route template, as the router matched it.
    pub route: &'static str,
    pub need: Need,
    pub touches: Touches,
    /// What it acts on, for the audit trail: a path, a connector, a secret, a user…
    pub target: Part,
    /// The use case, as the audit trail names it.
    pub use_case: &'static str,
}

const VIEWER: Need = Need::Role(Role::Viewer);
const EDITOR: Need = Need::Role(Role::Editor);
const ADMIN: Need = Need::Role(Role::Admin);

const fn rule(
    method: Method,
    route: &'static str,
    need: Need,
    touches: Touches,
    target: Part,
    use_case: &'static str,
) -> Policy {
    Policy {
        method,
        route,
        need,
        touches,
        target,
        use_case,
    }
}

/// Reading needs a viewer anywhere: viewers read everything but secret material, which no
/// route returns.
const fn read(route: &'static str, use_case: &'static str) -> Policy {
    rule(
        Method::GET,
        route,
        VIEWER,
        Touches::Account,
        Part::Nothing,
        use_case,
    )
}

/// The policy table: every `/api/v1` route, exactly once. A test walks the route table and
/// fails on a route missing here, and another checks what each role gets from each route.
#[rustfmt::skip]
pub const POLICIES: &[Policy] = &[
    rule(Method::GET, "/api/v1/openapi.json", Need::Public, Touches::Account, Part::Nothing, "openapi"),
    rule(Method::POST, "/api/v1/login", Need::Public, Touches::Account, Part::Body("user"), "login"),
    // The link's token is the credential; the handler records the attempt.
    rule(Method::POST, "/api/v1/password", Need::Public, Touches::Account, Part::Nothing, "password.set_by_link"),
    read("/api/v1/version", "version"),
    read("/api/v1/me", "me"),
    // Secrets: an admin's. Nobody reads a value back.
    read("/api/v1/secrets", "secret.list"),
    read("/api/v1/secrets/{name}", "secret.show"),
    rule(Method::POST, "/api/v1/secrets", ADMIN, Touches::Account, Part::Body("name"), "secret.create"),
    rule(Method::POST, "/api/v1/secrets/ssh", ADMIN, Touches::Account, Part::Body("name"), "secret.create"),
    rule(Method::POST, "/api/v1/secrets/ssh/generate", ADMIN, Touches::Account, Part::Body("name"), "secret.generate"),
    rule(Method::PUT, "/api/v1/secrets/{name}", ADMIN, Touches::Account, Part::Param("name"), "secret.update"),
    rule(Method::DELETE, "/api/v1/secrets/{name}", ADMIN, Touches::Account, Part::Param("name"), "secret.delete"),
    // Connectors: an admin's; Tests are an editor's.
    read("/api/v1/connectors", "connector.list"),
    read("/api/v1/connectors/{name}", "connector.show"),
    rule(Method::POST, "/api/v1/connectors", ADMIN, Touches::Account, Part::Body("name"), "connector.create"),
    rule(Method::PATCH, "/api/v1/connectors/{name}", ADMIN, Touches::Account, Part::Param("name"), "connector.update"),
    rule(Method::DELETE, "/api/v1/connectors/{name}", ADMIN, Touches::Account, Part::Param("name"), "connector.delete"),
    // The webhook URL carries its token: it is a credential, so only admins see it.
    rule(Method::GET, "/api/v1/connectors/{name}/webhook", ADMIN, Touches::Account, Part::Param("name"), "connector.webhook"),
    rule(Method::POST, "/api/v1/connectors/{name}/webhook/regenerate", ADMIN, Touches::Account, Part::Param("name"), "connector.webhook.regenerate"),
    rule(Method::POST, "/api/v1/connectors/{name}/webhook/signature", ADMIN, Touches::Account, Part::Param("name"), "connector.webhook.signature"),
    rule(Method::POST, "/api/v1/connectors/{name}/test", EDITOR, Touches::Account, Part::Param("name"), "connector.test"),
    rule(Method::POST, "/api/v1/connector-tests", EDITOR, Touches::Account, Part::Body("name"), "connector.test_draft"),
    // Reading files of a connector's repository needs what testing that connector needs: the
    // files may hold more than the tree shows, so viewers do not get them.
    rule(Method::POST, "/api/v1/connectors/{name}/fetch", EDITOR, Touches::Account, Part::Param("name"), "connector.fetch"),
    read("/api/v1/tasks/{id}", "task.show"),
    rule(Method::GET, "/api/v1/tasks/{id}/archive", EDITOR, Touches::Account, Part::Param("id"), "task.archive"),
    // The tree: an editor's, in the scopes it touches.
    rule(Method::POST, "/api/v1/import", EDITOR, Touches::ImportedFiles, Part::Nothing, "tree.import"),
    read("/api/v1/export", "tree.export"),
    read("/api/v1/entities", "tree.show"),
    rule(Method::PUT, "/api/v1/entities", EDITOR, Touches::Path(Part::Query("path")), Part::Query("path"), "tree.apply"),
    rule(Method::DELETE, "/api/v1/entities", EDITOR, Touches::Path(Part::Query("path")), Part::Query("path"), "tree.delete"),
    rule(Method::POST, "/api/v1/entities/rename", EDITOR, Touches::Path(Part::Body("path")), Part::Body("path"), "tree.rename"),
    read("/api/v1/apps", "app.list"),
    read("/api/v1/apps/{name}", "app.show"),
    rule(Method::POST, "/api/v1/apps", EDITOR, Touches::App(Part::Body("name")), Part::Body("name"), "app.create"),
    rule(Method::DELETE, "/api/v1/apps/{name}", EDITOR, Touches::App(Part::Param("name")), Part::Param("name"), "app.delete"),
    // A rename changes which application the grants name, so it is the account's to make.
    rule(Method::POST, "/api/v1/apps/{name}/rename", EDITOR, Touches::Account, Part::Param("name"), "app.rename"),
    // Git Sync: an editor's, in the linked scope; with `all`, the account's editor.
    rule(Method::POST, "/api/v1/sync/enable", EDITOR, Touches::App(Part::Body("app")), Part::Body("app"), "sync.enable"),
    rule(Method::POST, "/api/v1/sync/disable", EDITOR, Touches::App(Part::Body("app")), Part::Body("app"), "sync.disable"),
    rule(Method::POST, "/api/v1/sync/refresh", EDITOR, Touches::App(Part::Body("app")), Part::Body("app"), "sync.refresh"),
    read("/api/v1/sync/status", "sync.status"),
    read("/api/v1/sync/activity", "sync.activity"),
    read("/api/v1/sync/errors", "sync.errors"),
    rule(Method::POST, "/api/v1/sync/errors/{id}/discard", EDITOR, Touches::SyncError, Part::Param("id"), "sync.discard"),
    rule(Method::POST, "/api/v1/sync/changesets/{id}/retry", EDITOR, Touches::Changeset, Part::Param("id"), "sync.retry"),
    read("/api/v1/webhooks/deliveries", "webhook.deliveries"),
    // Delegates: an admin's.
    read("/api/v1/delegates", "delegate.list"),
    read("/api/v1/delegate-tokens", "delegate_token.list"),
    rule(Method::POST, "/api/v1/delegate-tokens", ADMIN, Touches::Account, Part::Body("name"), "delegate_token.create"),
    rule(Method::DELETE, "/api/v1/delegate-tokens/{name}", ADMIN, Touches::Account, Part::Param("name"), "delegate_token.revoke"),
    // A user's own tokens: theirs to manage, whatever their role.
    read("/api/v1/tokens", "token.list"),
    rule(Method::POST, "/api/v1/tokens", VIEWER, Touches::Account, Part::Body("name"), "token.create"),
    rule(Method::DELETE, "/api/v1/tokens/{name}", VIEWER, Touches::Account, Part::Param("name"), "token.revoke"),
    // Users, and their rights: an admin's, reading included (failed logins in detail).
    rule(Method::GET, "/api/v1/users", ADMIN, Touches::Account, Part::Nothing, "user.list"),
    rule(Method::POST, "/api/v1/users", ADMIN, Touches::Account, Part::Body("name"), "user.create"),
    rule(Method::GET, "/api/v1/users/{name}", ADMIN, Touches::Account, Part::Param("name"), "user.show"),
    rule(Method::PATCH, "/api/v1/users/{name}", ADMIN, Touches::Account, Part::Param("name"), "user.update"),
    rule(Method::DELETE, "/api/v1/users/{name}", ADMIN, Touches::Account, Part::Param("name"), "user.delete"),
    rule(Method::POST, "/api/v1/users/{name}/password-link", ADMIN, Touches::Account, Part::Param("name"), "user.password_link"),
    rule(Method::GET, "/api/v1/users/{name}/tokens", ADMIN, Touches::Account, Part::Param("name"), "user.token.list"),
    rule(Method::POST, "/api/v1/users/{name}/tokens", ADMIN, Touches::Account, Part::Param("name"), "user.token.create"),
    rule(Method::DELETE, "/api/v1/users/{name}/tokens/{token}", ADMIN, Touches::Account, Part::Param("name"), "user.token.revoke"),
    rule(Method::GET, "/api/v1/audit", ADMIN, Touches::Account, Part::Nothing, "audit.list"),
];

/// The entry of a route, if the table has one.
pub fn policy(method: &Method, route: &str) -> Option<&'static Policy> {
    POLICIES
        .iter()
        .find(|p| p.method == *method && p.route == route)
}

/// Whether `caller` may do what the API route `method route` does, in `scopes`, by the same
/// table: the web UI asks this both to refuse and to leave out the controls a caller may not
/// use. The policy comes back with a refusal's 403 otherwise.
pub fn require(
    caller: &Caller,
    method: &Method,
    route: &str,
    scopes: &[Scope],
) -> Result<&'static Policy, AppError> {
    let Some(policy) = policy(method, route) else {
        return Err(AppError::new(
            axum::http::StatusCode::FORBIDDEN,
            "forbidden",
            "this action has no access policy",
        ));
    };
    let Need::Role(need) = policy.need else {
        return Ok(policy);
    };
    match scopes
        .iter()
        .find(|scope| caller.rights.role_in(scope) < need)
    {
        Some(scope) => Err(forbidden(caller, need, scope)),
        None => Ok(policy),
    }
}

/// What the layer found out about a request: the scopes it touches, what it acts on, and for
/// changes of rights, what they change.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub scopes: Vec<Scope>,
    pub target: Option<String>,
    pub change: Option<String>,
}

/// The body fields whose values the audit trail notes, for the use cases that change rights
/// and for fetches (what was read, never what it held): never a field that holds a secret (a
/// password is noted only as set).
fn noted_fields(use_case: &str) -> &'static [&'static str] {
    match use_case {
        "user.create" | "user.update" => &["role", "apps", "email", "disabled"],
        "token.create" | "user.token.create" => &["role", "expires_in_seconds"],
        "connector.fetch" => &["repo", "ref", "paths"],
        _ => &[],
    }
}

/// `role=editor apps=["Shop"] password=set`: what a change of rights asked for.
fn change_of_rights(use_case: &str, body: &Value) -> Option<String> {
    let mut noted: Vec<String> = noted_fields(use_case)
        .iter()
        .filter_map(|field| body.get(*field).map(|value| format!("{field}={value}")))
        .collect();
    if body.get("password").is_some_and(|p| !p.is_null()) {
        noted.push("password=set".to_owned());
    }
    (!noted.is_empty()).then(|| noted.join(" "))
}

impl Facts {
    /// The one application the request touches, if it touches exactly one.
    pub fn app(&self) -> Option<&str> {
        match self.scopes.as_slice() {
            [scope] => scope.app(),
            _ => None,
        }
    }
}

/// Authenticates and authorises every `/api/v1` request by [`POLICIES`], and records writes
/// in the audit trail.
pub async fn authorize(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_default();
    let Some(policy) = policy(&method, &route) else {
        // The policy tests make this unreachable; refusing is the safe side if it is not.
        tracing::error!(%method, route, "a route has no policy; refusing it");
        return axum::response::IntoResponse::into_response(AppError::new(
            axum::http::StatusCode::FORBIDDEN,
            "forbidden",
            "this route has no access policy",
        ));
    };
    let Need::Role(need) = policy.need else {
        return next.run(request).await;
    };
    let client = crate::audit::client_address(&request);
    let bearer = crate::auth::bearer_token(request.headers()).map(str::to_owned);
    let caller = match authenticate(&state, bearer.as_deref()).await {
        Ok(caller) => caller,
        Err(error) => return axum::response::IntoResponse::into_response(error),
    };
    let (mut request, facts) = match facts(&state, policy, request).await {
        Ok(found) => found,
        Err(error) => return axum::response::IntoResponse::into_response(error),
    };
    let refusal = facts
        .scopes
        .iter()
        .find(|scope| caller.rights.role_in(scope) < need)
        .map(|scope| forbidden(&caller, need, scope));
    let detail = refusal
        .as_ref()
        .map(|error| error.message.clone())
        .or_else(|| facts.change.clone());
    let response = match refusal {
        Some(error) => axum::response::IntoResponse::into_response(error),
        None => {
            request.extensions_mut().insert(caller.person());
            request.extensions_mut().insert(caller.clone());
            next.run(request).await
        }
    };
    if method != Method::GET {
        let status = response.status();
        crate::audit::record_request(
            &state,
            &caller,
            client,
            policy,
            &facts,
            status,
            detail.as_deref(),
        )
        .await;
    }
    response
}

/// The caller a bearer token names. A delegate token is refused by name: it speaks only the
/// delegate protocol.
async fn authenticate(state: &AppState, bearer: Option<&str>) -> Result<Caller, AppError> {
    let Some(token) = bearer else {
        return Err(AppError::unauthorized(
            "missing bearer token: send `Authorization: Bearer <token>` (see `reposync login`)",
        ));
    };
    match users::authenticate(&state.store, token).await {
        Ok(caller) => Ok(caller),
        Err(error) => {
            if error.kind == reposync_core::error::ErrorKind::Unauthenticated
                && state
                    .store
                    .find_delegate_token(&hash_token(token))
                    .await?
                    .is_some()
            {
                return Err(AppError::unauthorized(
                    "this is a delegate token, which can only speak the delegate protocol; call the API with a personal token (`reposync token create`)",
                ));
            }
            Err(error.into())
        }
    }
}

/// 403, naming the role that is missing and where, and what to ask an admin for.
fn forbidden(caller: &Caller, need: Role, scope: &Scope) -> AppError {
    let held = caller.rights.role_in(scope);
    let place = match scope {
        Scope::Account => "for the account".to_owned(),
        Scope::App(app) => format!("in application {app:?}"),
    };
    let grant = match scope {
        Scope::App(app) if need < Role::Admin => {
            format!(
                "reposync user set-role {} {need} --app {app:?}",
                caller.user
            )
        }
        _ => format!("reposync user set-role {} {need}", caller.user),
    };
    let limited = if caller.rights.apps.is_empty() {
        String::new()
    } else {
        let apps: Vec<&str> = caller.rights.apps.iter().map(|a| a.as_str()).collect();
        format!(" ({} only in {})", caller.rights.role, apps.join(", "))
    };
    AppError::new(
        axum::http::StatusCode::FORBIDDEN,
        "forbidden",
        format!(
            "this needs the {need} role {place}; {} is a {held} there{limited}. An admin can grant it: {grant}",
            caller.user
        ),
    )
}

/// Works out what a request touches and acts on, reading its body when the policy says the
/// answer is there; the body is handed on unchanged.
async fn facts(
    state: &AppState,
    policy: &Policy,
    request: Request,
) -> Result<(Request, Facts), AppError> {
    let needs_body = matches!(policy.target, Part::Body(_))
        || !noted_fields(policy.use_case).is_empty()
        || matches!(
            policy.touches,
            Touches::App(Part::Body(_)) | Touches::Path(Part::Body(_)) | Touches::ImportedFiles
        );
    let (mut parts, body) = request.into_parts();
    let params = RawPathParams::from_request_parts(&mut parts, state)
        .await
        .map(|raw| {
            raw.iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let query = axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
        .map(|q| q.0)
        .unwrap_or_default();
    let (body, json) = if needs_body {
        // Read through `Bytes`, which honours the route's body limit; a body that is not
        // JSON goes on to the handler, which refuses it with its own words.
        let bytes = if policy.touches == Touches::ImportedFiles {
            // An import has a limit of its own, which its route's layer would set only inside
            // this one.
            axum::body::to_bytes(body, state.config.max_import_bytes)
                .await
                .map_err(|_| {
                    AppError::new(
                        axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                        "body_too_large",
                        format!(
                            "the import is larger than {} bytes (`max_import_bytes` under `[limits]` in the configuration file)",
                            state.config.max_import_bytes
                        ),
                    )
                })?
        } else {
            let request = Request::from_parts(parts.clone(), body);
            Bytes::from_request(request, state)
                .await
                .map_err(|rejection| {
                    AppError::new(rejection.status(), "invalid", rejection.body_text())
                })?
        };
        let json = serde_json::from_slice::<Value>(&bytes).ok();
        (Body::from(bytes), json)
    } else {
        (body, None)
    };
    let value = |from: Part| -> Option<String> {
        match from {
            Part::Nothing => None,
            Part::Param(name) => params
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone()),
            Part::Query(name) => query
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone()),
            Part::Body(name) => json
                .as_ref()
                .and_then(|j| j.get(name))
                .and_then(Value::as_str)
                .map(str::to_owned),
        }
    };
    // `sync enable --all` and `sync refresh --all` act on every scope, the applications a
    // caller may not know of included.
    let every_scope = json
        .as_ref()
        .and_then(|j| j.get("all"))
        .and_then(Value::as_bool)
        == Some(true);
    let scopes = match policy.touches {
        Touches::Account => vec![Scope::Account],
        Touches::App(from) => {
            let named = Scope::of_app(value(from).as_deref());
            if every_scope && named != Scope::Account {
                vec![Scope::Account, named]
            } else {
                vec![named]
            }
        }
        Touches::Path(from) => vec![Scope::of_path(&value(from).unwrap_or_default())],
        Touches::ImportedFiles => {
            let mut scopes: Vec<Scope> = json
                .as_ref()
                .and_then(|j| j.get("files"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|file| file.get("path").and_then(Value::as_str))
                .map(Scope::of_path)
                .collect();
            scopes.sort();
            scopes.dedup();
            if scopes.is_empty() {
                scopes.push(Scope::Account);
            }
            scopes
        }
        Touches::SyncError | Touches::Changeset => {
            let id = value(Part::Param("id")).unwrap_or_default();
            let row = match policy.touches {
                Touches::SyncError => {
                    state
                        .store
                        .scope_of_sync_row(SyncRow::Error(&SyncErrorId::new(id.clone())))
                        .await?
                }
                _ => {
                    state
                        .store
                        .scope_of_sync_row(SyncRow::Changeset(&ChangesetId::new(id.clone())))
                        .await?
                }
            };
            // An id that names nothing is judged as the account's, the strictest scope.
            vec![row.unwrap_or(Scope::Account)]
        }
    };
    let target = value(policy.target).or_else(|| {
        if every_scope && matches!(policy.touches, Touches::App(_)) {
            return Some("every scope".to_owned());
        }
        (policy.touches == Touches::ImportedFiles).then(|| {
            let files = json
                .as_ref()
                .and_then(|j| j.get("files"))
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            format!("{files} file(s)")
        })
    });
    let change = json
        .as_ref()
        .and_then(|body| change_of_rights(policy.use_case, body));
    Ok((
        Request::from_parts(parts, body),
        Facts {
            scopes,
            target,
            change,
        },
    ))
}
