//! Setup → Secrets: where each is used, creating both kinds (an SSH key pasted, uploaded as
//! text, or made here), and deleting; a value is never shown again.

use askama::Template;
use axum::extract::{ConnectInfo, Extension, Form, Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use reposync_api::SecretValue;
use reposync_core::error::CoreError;
use reposync_core::secrets;
use reposync_core::users::Caller;
use reposync_model::scope::Scope;
use reposync_store::SecretKind;
use serde::Deserialize;

use super::session::UiCaller;
use super::{Layout, act, page, url_encode};
use crate::access;
use crate::audit::ClientAddr;
use crate::error::AppError;
use crate::state::AppState;

const PAGE: &str = "/ui/setup/secrets";

struct Row {
    name: String,
    kind: &'static str,
    used_by: String,
    fingerprint: String,
    created: String,
}

#[derive(Template)]
#[template(path = "secrets.html")]
struct SecretsPage {
    layout: Layout,
    rows: Vec<Row>,
    can_manage: bool,
    notice: Option<String>,
    error: Option<String>,
    public_key: Option<(String, String)>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Shown {
    notice: Option<String>,
    /// A key just generated, whose public half to show.
    generated: Option<String>,
}

/// `GET /ui/setup/secrets`.
pub async fn list(
    State(state): State<AppState>,
    UiCaller(caller): UiCaller,
    Query(shown): Query<Shown>,
) -> Response {
    render(
        &state,
        &caller,
        shown.notice,
        None,
        shown.generated,
        StatusCode::OK,
    )
    .await
}

async fn render(
    state: &AppState,
    caller: &Caller,
    notice: Option<String>,
    error: Option<&CoreError>,
    generated: Option<String>,
    status: StatusCode,
) -> Response {
    let records = match state.store.list_secrets().await {
        Ok(records) => records,
        Err(error) => return AppError::from(error).into_response(),
    };
    let public_key = generated.and_then(|name| {
        records
            .iter()
            .find(|r| r.name.as_str() == name)
            .and_then(|r| r.ssh.as_ref())
            .map(|ssh| (name.clone(), ssh.public_key.clone()))
    });
    let rows = records
        .iter()
        .map(|r| Row {
            name: r.name.to_string(),
            kind: match r.kind {
                SecretKind::Text => "Encrypted Text",
                SecretKind::SshKey => "SSH Key",
            },
            used_by: if r.used_by.is_empty() {
                "nothing".into()
            } else {
                r.used_by.join(", ")
            },
            fingerprint: r
                .ssh
                .as_ref()
                .map(|s| s.fingerprint.clone())
                .unwrap_or_default(),
            created: reposync_api::timestamp(r.created_at)
                .get(..19)
                .unwrap_or_default()
                .replace('T', " "),
        })
        .collect();
    page(
        status,
        &SecretsPage {
            layout: Layout::new("Secrets", Some(caller)).with_errors(error.is_some()),
            rows,
            can_manage: access::require(
                caller,
                &Method::POST,
                "/api/v1/secrets",
                &[Scope::Account],
            )
            .is_ok(),
            notice,
            error: error.map(ToString::to_string),
            public_key,
        },
    )
}

#[derive(Deserialize)]
pub struct TextForm {
    name: String,
    value: SecretValue,
}

#[derive(Deserialize)]
pub struct SshForm {
    name: String,
    #[serde(default)]
    private_key: Option<SecretValue>,
    #[serde(default)]
    passphrase: Option<SecretValue>,
    #[serde(default)]
    action: String,
}

/// `POST /ui/setup/secrets/text`.
pub async fn create_text(
    State(state): State<AppState>,
    UiCaller(caller): UiCaller,
    connection: Option<Extension<ConnectInfo<ClientAddr>>>,
    Form(form): Form<TextForm>,
) -> Response {
    let client = connection.map(|c| c.0.0.0.ip());
    let work = secrets::create_text(&state.store, &form.name, &form.value);
    match act(
        &state,
        &caller,
        client,
        (Method::POST, "/api/v1/secrets"),
        &form.name,
        work,
    )
    .await
    {
        Err(response) => response,
        Ok(Ok(record)) => Redirect::to(&format!(
            "{PAGE}?notice=Added+{}",
            url_encode(record.name.as_str())
        ))
        .into_response(),
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
    }
}

/// `POST /ui/setup/secrets/ssh`: a pasted key, or (`action=generate`) one made here, whose
/// public key the page then shows to paste into Bitbucket.
pub async fn create_ssh(
    State(state): State<AppState>,
    UiCaller(caller): UiCaller,
    connection: Option<Extension<ConnectInfo<ClientAddr>>>,
    Form(form): Form<SshForm>,
) -> Response {
    let client = connection.map(|c| c.0.0.0.ip());
    let generating = form.action == "generate";
    let outcome = if generating {
        let work = secrets::generate_ssh(&state.store, &form.name);
        act(
            &state,
            &caller,
            client,
            (Method::POST, "/api/v1/secrets/ssh/generate"),
            &form.name,
            work,
        )
        .await
    } else {
        let key = SecretValue::new(super::unix_lines(
            form.private_key.as_ref().map_or("", |k| k.expose()),
        ));
        let work = secrets::create_ssh(
            &state.store,
            &form.name,
            &key,
            form.passphrase.as_ref(),
            None,
        );
        act(
            &state,
            &caller,
            client,
            (Method::POST, "/api/v1/secrets/ssh"),
            &form.name,
            work,
        )
        .await
    };
    match outcome {
        Err(response) => response,
        Ok(Ok(record)) => {
            let name = url_encode(record.name.as_str());
            let shown = if generating {
                format!("&generated={name}")
            } else {
                String::new()
            };
            Redirect::to(&format!("{PAGE}?notice=Added+{name}{shown}")).into_response()
        }
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
    }
}

/// `POST /ui/setup/secrets/{name}/delete`: refused, naming the connectors, while any uses it.
pub async fn delete(
    State(state): State<AppState>,
    UiCaller(caller): UiCaller,
    connection: Option<Extension<ConnectInfo<ClientAddr>>>,
    Path(name): Path<String>,
) -> Response {
    let client = connection.map(|c| c.0.0.0.ip());
    let work = secrets::delete(&state.store, &name);
    match act(
        &state,
        &caller,
        client,
        (Method::DELETE, "/api/v1/secrets/{name}"),
        &name,
        work,
    )
    .await
    {
        Err(response) => response,
        Ok(Ok(_)) => {
            Redirect::to(&format!("{PAGE}?notice=Deleted+{}", url_encode(&name))).into_response()
        }
        Ok(Err(error)) => {
            render(
                &state,
                &caller,
                None,
                Some(&error),
                None,
                StatusCode::CONFLICT,
            )
            .await
        }
    }
}
