//! Logging in and out of the UI: a user name and password checked (and throttled) as the API's
//! login does, and a session in a cookie.

use askama::Template;
use axum::extract::{ConnectInfo, Extension, Form, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use reposync_api::SecretValue;
use reposync_core::users;
use serde::Deserialize;

use super::session;
use super::{Layout, page};
use crate::audit::ClientAddr;
use crate::state::AppState;

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    layout: Layout,
    next: String,
    user: String,
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct NextQuery {
    #[serde(default)]
    next: Option<String>,
}

/// `GET /ui/login`.
pub async fn form(Query(query): Query<NextQuery>) -> Response {
    let next = session::safe_next(query.next.as_deref().unwrap_or("/ui/")).to_owned();
    page(
        StatusCode::OK,
        &LoginPage {
            layout: Layout::new("Log in", None),
            next,
            user: String::new(),
            error: None,
        },
    )
}

#[derive(Deserialize)]
pub struct LoginForm {
    user: String,
    password: SecretValue,
    #[serde(default)]
    next: String,
}

/// `POST /ui/login`: a session on success, the form again with the reason otherwise.
pub async fn submit(
    State(state): State<AppState>,
    connection: Option<Extension<ConnectInfo<ClientAddr>>>,
    Form(login): Form<LoginForm>,
) -> Response {
    let client = connection.map(|c| c.0.0.0.ip());
    let address = client.map(|ip| ip.to_string());
    let next = session::safe_next(&login.next).to_owned();
    let refused = |status: StatusCode, message: String| {
        page(
            status,
            &LoginPage {
                layout: Layout::new("Log in", None).with_errors(true),
                next: next.clone(),
                user: login.user.clone(),
                error: Some(message),
            },
        )
    };
    match users::login(
        &state.store,
        &login.user,
        &login.password,
        address.as_deref(),
    )
    .await
    {
        Ok(user) => match users::start_session(&state.store, &user.name).await {
            Ok(id) => {
                crate::audit::record_login(
                    &state,
                    &login.user,
                    client,
                    Ok(users::SESSION_TOKEN_NAME),
                )
                .await;
                let cookie = session::start_cookie(id.expose(), super::secure(&state));
                ([(header::SET_COOKIE, cookie)], Redirect::to(&next)).into_response()
            }
            Err(error) => refused(StatusCode::INTERNAL_SERVER_ERROR, error.message),
        },
        Err(failed) => {
            crate::audit::record_login(&state, &login.user, client, Err(&failed)).await;
            let status = crate::error::AppError::from(failed.error.clone()).status;
            refused(status, failed.error.message.clone())
        }
    }
}

/// `POST /ui/logout`: ends the session, wherever it is used.
pub async fn logout(State(state): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    if let Some(id) = session::session_id(&headers)
        && let Err(error) = users::end_session(&state.store, &id).await
    {
        return crate::error::AppError::from(error).into_response();
    }
    let cookie = session::end_cookie(super::secure(&state));
    ([(header::SET_COOKIE, cookie)], Redirect::to("/ui/login")).into_response()
}

/// `POST /ui/logout/everywhere`: ends every session of the caller's, on every browser.
pub async fn logout_everywhere(
    State(state): State<AppState>,
    super::session::UiCaller(caller): super::session::UiCaller,
) -> Response {
    if let Err(error) = users::end_sessions(&state.store, &caller.user).await {
        return crate::error::AppError::from(error).into_response();
    }
    let cookie = session::end_cookie(super::secure(&state));
    ([(header::SET_COOKIE, cookie)], Redirect::to("/ui/login")).into_response()
}
