//! Users for admins (roles, applications, password links, disabling), and each user's own API
//! tokens, through the same use cases and policy as `reposync user` and `reposync token`.

use askama::Template;
use axum::extract::{ConnectInfo, Extension, Form, Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use reposync_api::{TokenRequest, UserRequest, UserUpdateRequest};
use reposync_core::error::CoreError;
use reposync_core::users::{self, Caller};
use reposync_model::UserName;
use reposync_model::scope::Scope;
use serde::Deserialize;

use super::session::UiCaller;
use super::{Layout, act, forbidden_page, page, url_encode};
use crate::access;
use crate::audit::ClientAddr;
use crate::error::AppError;
use crate::state::AppState;

struct UserRow {
    name: String,
    role: String,
    apps: String,
    rights: String,
    email: String,
    state: &'static str,
    disabled: bool,
    password: &'static str,
    failures: String,
}

#[derive(Template)]
#[template(path = "users.html")]
struct UsersPage {
    layout: Layout,
    users: Vec<UserRow>,
    notice: Option<String>,
    error: Option<String>,
    link: Option<(String, String)>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Shown {
    notice: Option<String>,
}

/// `GET /ui/users` (admins).
pub async fn list(
    State(state): State<AppState>,
    UiCaller(caller): UiCaller,
    Query(shown): Query<Shown>,
) -> Response {
    render(&state, &caller, shown.notice, None, None, StatusCode::OK).await
}

async fn render(
    state: &AppState,
    caller: &Caller,
    notice: Option<String>,
    error: Option<&CoreError>,
    link: Option<(String, String)>,
    status: StatusCode,
) -> Response {
    if let Err(error) = access::require(caller, &Method::GET, "/api/v1/users", &[Scope::Account]) {
        return forbidden_page(caller, error);
    }
    let listed = match users::list(&state.store).await {
        Ok(listed) => listed,
        Err(error) => return AppError::from(error).into_response(),
    };
    let mut rows = Vec::with_capacity(listed.len());
    for user in listed {
        // The list has no failures; they are read for each user, for admins.
        let failures = match UserName::parse(&user.name) {
            Ok(name) => users::login_failures(&state.store, &name)
                .await
                .ok()
                .flatten(),
            Err(_) => None,
        };
        let failures = failures
            .map(|f| match f.blocked_until {
                Some(until) => format!(
                    "{}, refused until {}",
                    f.failures,
                    until.get(..19).unwrap_or_default().replace('T', " ")
                ),
                None => f.failures.to_string(),
            })
            .unwrap_or_else(|| "none".into());
        rows.push(UserRow {
            rights: if user.apps.is_empty() {
                user.role.clone()
            } else {
                format!("{} in {}", user.role, user.apps.join(", "))
            },
            apps: user.apps.join(", "),
            role: user.role,
            email: user.email.unwrap_or_default(),
            state: if user.disabled { "disabled" } else { "enabled" },
            disabled: user.disabled,
            password: if user.has_password { "set" } else { "none" },
            failures,
            name: user.name,
        });
    }
    page(
        status,
        &UsersPage {
            layout: Layout::new("Users", Some(caller)).with_errors(error.is_some()),
            users: rows,
            notice,
            error: error.map(ToString::to_string),
            link,
        },
    )
}

fn apps(text: &str) -> Vec<String> {
    text.split([',', ' '])
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(str::to_owned)
        .collect()
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct NewUser {
    name: String,
    role: String,
    apps: String,
    email: String,
}

/// `POST /ui/users`: a new user, and a one-time link for them to set their password.
pub async fn create(
    State(state): State<AppState>,
    UiCaller(caller): UiCaller,
    connection: Option<Extension<ConnectInfo<ClientAddr>>>,
    Form(form): Form<NewUser>,
) -> Response {
    let client = connection.map(|c| c.0.0.0.ip());
    let request = UserRequest {
        name: form.name.clone(),
        role: form.role.clone(),
        apps: apps(&form.apps),
        email: (!form.email.trim().is_empty()).then(|| form.email.trim().to_owned()),
        password: None,
    };
    let work = users::add(&state.store, request);
    match act(
        &state,
        &caller,
        client,
        (Method::POST, "/api/v1/users"),
        &form.name,
        work,
    )
    .await
    {
        Err(response) => response,
        Ok(Err(error)) => {
            render(
                &state,
                &caller,
                None,
                Some(&error),
                None,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
        Ok(Ok(user)) => {
            link_page(
                &state,
                &caller,
                client,
                &user.name,
                format!("Added {}", user.name),
            )
            .await
        }
    }
}

/// Makes a password link for `name` and shows it on the users page.
async fn link_page(
    state: &AppState,
    caller: &Caller,
    client: Option<std::net::IpAddr>,
    name: &str,
    notice: String,
) -> Response {
    let base = state.config.public_base_url();
    let work = users::password_link(&state.store, name, &base);
    match act(
        state,
        caller,
        client,
        (Method::POST, "/api/v1/users/{name}/password-link"),
        name,
        work,
    )
    .await
    {
        Err(response) => response,
        Ok(Err(error)) => {
            render(
                state,
                caller,
                None,
                Some(&error),
                None,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
        Ok(Ok(link)) => {
            let shown = (link.user.clone(), link.url.expose().to_owned());
            render(
                state,
                caller,
                Some(notice),
                None,
                Some(shown),
                StatusCode::OK,
            )
            .await
        }
    }
}

/// `POST /ui/users/{name}/password-link`.
pub async fn password_link(
    State(state): State<AppState>,
    UiCaller(caller): UiCaller,
    connection: Option<Extension<ConnectInfo<ClientAddr>>>,
    Path(name): Path<String>,
) -> Response {
    let client = connection.map(|c| c.0.0.0.ip());
    link_page(
        &state,
        &caller,
        client,
        &name,
        format!("A new link for {name}"),
    )
    .await
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RoleForm {
    role: String,
    apps: String,
}

/// `POST /ui/users/{name}/role`.
pub async fn set_role(
    State(state): State<AppState>,
    UiCaller(caller): UiCaller,
    connection: Option<Extension<ConnectInfo<ClientAddr>>>,
    Path(name): Path<String>,
    Form(form): Form<RoleForm>,
) -> Response {
    let client = connection.map(|c| c.0.0.0.ip());
    let update = UserUpdateRequest {
        role: Some(form.role),
        apps: Some(apps(&form.apps)),
        ..UserUpdateRequest::default()
    };
    change(&state, &caller, client, &name, update, "role set").await
}

/// `POST /ui/users/{name}/disable` and `/enable`.
pub async fn set_enabled(
    State(state): State<AppState>,
    UiCaller(caller): UiCaller,
    connection: Option<Extension<ConnectInfo<ClientAddr>>>,
    Path((name, what)): Path<(String, String)>,
) -> Response {
    let client = connection.map(|c| c.0.0.0.ip());
    let disabled = match what.as_str() {
        "disable" => true,
        "enable" => false,
        _ => return AppError::not_found("no such action").into_response(),
    };
    let update = UserUpdateRequest {
        disabled: Some(disabled),
        ..UserUpdateRequest::default()
    };
    change(
        &state,
        &caller,
        client,
        &name,
        update,
        if disabled { "disabled" } else { "enabled" },
    )
    .await
}

async fn change(
    state: &AppState,
    caller: &Caller,
    client: Option<std::net::IpAddr>,
    name: &str,
    update: UserUpdateRequest,
    done: &str,
) -> Response {
    let work = users::update(&state.store, name, update);
    match act(
        state,
        caller,
        client,
        (Method::PATCH, "/api/v1/users/{name}"),
        name,
        work,
    )
    .await
    {
        Err(response) => response,
        Ok(Err(error)) => {
            render(
                state,
                caller,
                None,
                Some(&error),
                None,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
        Ok(Ok(_)) => Redirect::to(&format!(
            "/ui/users?notice={}",
            url_encode(&format!("{name}: {done}"))
        ))
        .into_response(),
    }
}

struct TokenRow {
    name: String,
    role: String,
    expires: String,
    last_used: String,
}

#[derive(Template)]
#[template(path = "tokens.html")]
struct TokensPage {
    layout: Layout,
    tokens: Vec<TokenRow>,
    notice: Option<String>,
    error: Option<String>,
    created: Option<String>,
}

/// `GET /ui/tokens`: the caller's own tokens.
pub async fn tokens(
    State(state): State<AppState>,
    UiCaller(caller): UiCaller,
    Query(shown): Query<Shown>,
) -> Response {
    render_tokens(&state, &caller, shown.notice, None, None).await
}

async fn render_tokens(
    state: &AppState,
    caller: &Caller,
    notice: Option<String>,
    error: Option<&CoreError>,
    created: Option<String>,
) -> Response {
    let listed = match users::list_tokens(&state.store, &caller.user).await {
        Ok(listed) => listed,
        Err(error) => return AppError::from(error).into_response(),
    };
    let time = |at: Option<&str>| {
        at.map_or_else(
            || "never".to_owned(),
            |at| at.get(..19).unwrap_or(at).replace('T', " "),
        )
    };
    let tokens = listed
        .iter()
        .map(|t| TokenRow {
            name: t.name.clone(),
            role: t.role.clone().unwrap_or_else(|| "yours".into()),
            expires: time(t.expires_at.as_deref()),
            last_used: time(t.last_used_at.as_deref()),
        })
        .collect();
    page(
        if error.is_some() {
            StatusCode::UNPROCESSABLE_ENTITY
        } else {
            StatusCode::OK
        },
        &TokensPage {
            layout: Layout::new("Your API tokens", Some(caller)).with_errors(error.is_some()),
            tokens,
            notice,
            error: error.map(ToString::to_string),
            created,
        },
    )
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct TokenForm {
    name: String,
    expires: Option<u64>,
    role: String,
}

/// `POST /ui/tokens`: a new token of the caller's, shown this once.
pub async fn create_token(
    State(state): State<AppState>,
    UiCaller(caller): UiCaller,
    connection: Option<Extension<ConnectInfo<ClientAddr>>>,
    Form(form): Form<TokenForm>,
) -> Response {
    let client = connection.map(|c| c.0.0.0.ip());
    let request = TokenRequest {
        name: form.name.clone(),
        expires_in_seconds: form.expires,
        role: (!form.role.is_empty()).then(|| form.role.clone()),
    };
    let work = users::create_token(
        &state.store,
        &caller.user,
        request,
        Some(caller.rights.role),
    );
    match act(
        &state,
        &caller,
        client,
        (Method::POST, "/api/v1/tokens"),
        &form.name,
        work,
    )
    .await
    {
        Err(response) => response,
        Ok(Err(error)) => render_tokens(&state, &caller, None, Some(&error), None).await,
        Ok(Ok(token)) => {
            let value = token.token.map(|v| v.expose().to_owned());
            render_tokens(
                &state,
                &caller,
                Some(format!("Created {}", token.name)),
                None,
                value,
            )
            .await
        }
    }
}

/// `POST /ui/tokens/{name}/revoke`.
pub async fn revoke_token(
    State(state): State<AppState>,
    UiCaller(caller): UiCaller,
    connection: Option<Extension<ConnectInfo<ClientAddr>>>,
    Path(name): Path<String>,
) -> Response {
    let client = connection.map(|c| c.0.0.0.ip());
    let work = users::revoke_token(&state.store, &caller.user, &name);
    match act(
        &state,
        &caller,
        client,
        (Method::DELETE, "/api/v1/tokens/{name}"),
        &name,
        work,
    )
    .await
    {
        Err(response) => response,
        Ok(Err(error)) => render_tokens(&state, &caller, None, Some(&error), None).await,
        Ok(Ok(())) => Redirect::to(&format!(
            "/ui/tokens?notice={}",
            url_encode(&format!("Revoked {name}"))
        ))
        .into_response(),
    }
}
