use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use reposync_api::{
    ConnectorDraft, ConnectorPatch, ConnectorSaved, ConnectorView, ListResponse, SecretValue,
    TaskView, TestRequest, WebhookView,
};
use reposync_model::tree::{EntityKind, EntityPath};
use reposync_model::{EntityName, GitConnector, RepoSlug, connector_yaml};
use reposync_store::{ConnectorRecord, ConnectorWrite, WebhookChange, WebhookCredentials};
use serde::Deserialize;
use serde_json::Value;
use zeroize::Zeroizing;

use crate::auth::{hash_token, new_token};
use crate::error::{AppError, json_data_error};
use reposync_core::tree::{TreeEdit, apply_edit, rewritten_referrers};

use crate::handlers::{ApiJson, Deleted};
use crate::state::AppState;
use crate::views;

pub async fn list(
    State(state): State<AppState>,
) -> Result<Json<ListResponse<ConnectorView>>, AppError> {
    let records = state.store.list_connectors().await?;
    let mut items = Vec::with_capacity(records.len());
    for record in &records {
        items.push(view(&state, record).await?);
    }
    Ok(Json(ListResponse { items }))
}

pub async fn show(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<ConnectorView>, AppError> {
    let record = state
        .store
        .get_connector(&EntityName::parse(&name)?)
        .await?;
    Ok(Json(view(&state, &record).await?))
}

pub async fn create(
    State(state): State<AppState>,
    ApiJson(draft): ApiJson<ConnectorDraft>,
) -> Result<(StatusCode, Json<ConnectorSaved>), AppError> {
    let spec = GitConnector::parse(&draft)?;
    let (change, webhook) = if spec.generate_webhook_url {
        let (credentials, token_hash) = new_webhook_credentials();
        let shown = webhook_view(&state, &credentials);
        (
            WebhookChange::Set {
                credentials,
                token_hash,
            },
            Some(shown),
        )
    } else {
        (WebhookChange::Keep, None)
    };
    let record = state.store.create_connector(&spec, change).await?;
    tracing::info!(connector = %spec.name, provider = %spec.provider, "created connector");
    Ok((
        StatusCode::CREATED,
        Json(ConnectorSaved {
            connector: view(&state, &record).await?,
            webhook,
        }),
    ))
}

pub async fn update(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiJson(patch): ApiJson<ConnectorPatch>,
) -> Result<Json<ConnectorSaved>, AppError> {
    let name = EntityName::parse(&name)?;
    let current = state.store.get_connector(&name).await?;
    let draft = merge(&current.spec, &patch)?;
    let spec = GitConnector::parse(&draft)?;
    let (change, fresh) = match (current.has_webhook, spec.generate_webhook_url) {
        (false, true) => {
            let (credentials, token_hash) = new_webhook_credentials();
            let shown = webhook_view(&state, &credentials);
            (
                WebhookChange::Set {
                    credentials,
                    token_hash,
                },
                Some(shown),
            )
        }
        (true, false) => (WebhookChange::Remove, None),
        _ => (WebhookChange::Keep, None),
    };
    // A rename rewrites every application's `gitConnector` in the same batch.
    let renamed = current.spec.name != spec.name;
    let referrers = if renamed {
        let as_path = |name: &EntityName| EntityPath {
            kind: EntityKind::SourceRepoProvider,
            app: None,
            service: None,
            environment: None,
            name: Some(name.clone()),
            rest: None,
        };
        rewritten_referrers(
            &state.store,
            &as_path(&current.spec.name),
            &as_path(&spec.name),
            &[],
        )
        .await?
    } else {
        Vec::new()
    };
    let edit = TreeEdit {
        files: referrers,
        connectors: vec![ConnectorWrite::update(&current, spec.clone(), change)],
        ..TreeEdit::default()
    };
    apply_edit(&state.store, edit).await?.into_result()?;
    let record = state.store.get_connector(&spec.name).await?;
    tracing::info!(connector = %spec.name, renamed, "updated connector");
    Ok(Json(ConnectorSaved {
        connector: view(&state, &record).await?,
        webhook: fresh,
    }))
}

pub async fn delete(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Deleted>, AppError> {
    let name = EntityName::parse(&name)?;
    // The connector is also the Source Repo Provider file that applications name in
    // `gitConnector`; it cannot go while they do.
    let as_file = connector_yaml::path(&name);
    let referrers = state.store.entity_referrers(&as_file).await?;
    if !referrers.is_empty() {
        return Err(AppError::new(
            StatusCode::CONFLICT,
            "in_use",
            format!(
                "connector {:?} is used by: {}",
                name.as_str(),
                referrers.join(", ")
            ),
        ));
    }
    state.store.delete_connector(&name).await?;
    tracing::info!(connector = %name, "deleted connector");
    Ok(Json(Deleted::new(&name)))
}

/// Shows the webhook URL and HMAC secret.
pub async fn webhook(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<WebhookView>, AppError> {
    let name = EntityName::parse(&name)?;
    let credentials = state
        .store
        .webhook_credentials(&name)
        .await?
        .ok_or_else(|| no_webhook(&name))?;
    let connector = state.store.get_connector(&name).await?;
    let counted = state
        .intake
        .unauthenticated(&state.store)
        .await?
        .remove(&connector.id);
    let mut view = webhook_view(&state, &credentials);
    view.unauthenticated = Some(views::unauthenticated(name.as_str(), counted.as_ref()));
    Ok(Json(view))
}

/// Replaces the webhook URL token and HMAC secret; the old URL stops working at once.
pub async fn regenerate_webhook(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<WebhookView>, AppError> {
    let name = EntityName::parse(&name)?;
    let current = state.store.get_connector(&name).await?;
    if !current.has_webhook {
        return Err(no_webhook(&name));
    }
    let (credentials, token_hash) = new_webhook_credentials();
    let shown = webhook_view(&state, &credentials);
    state
        .store
        .update_connector(
            &current,
            &current.spec,
            WebhookChange::Set {
                credentials,
                token_hash,
            },
        )
        .await?;
    tracing::info!(connector = %name, "regenerated webhook credentials");
    Ok(Json(shown))
}

/// `POST /api/v1/connectors/{name}/webhook/signature`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSignatureRequest {
    required: bool,
}

/// Turns the HMAC signature of webhook deliveries on (with a new secret) or off, keeping the
/// URL. Off is for senders that cannot sign: the Post Webhooks plugin and the Post-Receive
/// hook of Bitbucket Server; the URL token alone then authenticates, as in Harness.
pub async fn set_webhook_signature(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiJson(request): ApiJson<WebhookSignatureRequest>,
) -> Result<Json<WebhookView>, AppError> {
    let name = EntityName::parse(&name)?;
    let current = state.store.get_connector(&name).await?;
    let existing = state
        .store
        .webhook_credentials(&name)
        .await?
        .ok_or_else(|| no_webhook(&name))?;
    let secret = if request.required {
        new_token("")
    } else {
        String::new()
    };
    let credentials = WebhookCredentials {
        token: existing.token.clone(),
        secret: Zeroizing::new(secret),
    };
    let shown = webhook_view(&state, &credentials);
    state
        .store
        .update_connector(
            &current,
            &current.spec,
            WebhookChange::Set {
                token_hash: hash_token(&credentials.token),
                credentials,
            },
        )
        .await?;
    tracing::info!(connector = %name, required = request.required, "set webhook signature");
    Ok(Json(shown))
}

/// Queues a connection Test on a delegate and returns the task; clients long-poll it.
pub async fn test(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<TaskView>), AppError> {
    // The body is optional: a repo-scope Test needs nothing.
    let request: TestRequest = if body.iter().all(u8::is_ascii_whitespace) {
        TestRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| match e.classify() {
            serde_json::error::Category::Data => json_data_error(&e.to_string()),
            _ => AppError::new(
                StatusCode::BAD_REQUEST,
                "malformed_json",
                format!("the body is not valid JSON: {e}"),
            ),
        })?
    };
    let name = EntityName::parse(&name)?;
    let record = state.store.get_connector(&name).await?;
    let repo = request
        .repo
        .as_deref()
        .filter(|r| !r.trim().is_empty())
        .map(RepoSlug::parse)
        .transpose()?;
    let url = record.spec.repository_url(repo.as_ref())?.git_url();
    let task = state.tasks.enqueue_test(&record, url).await?;
    Ok((StatusCode::ACCEPTED, Json(views::task(&task))))
}

fn no_webhook(name: &EntityName) -> AppError {
    AppError::not_found(format!(
        "connector {name:?} has no webhook URL; turn it on with `reposync connector update {name} --generate-webhook-url`"
    ))
}

async fn view(state: &AppState, record: &ConnectorRecord) -> Result<ConnectorView, AppError> {
    let url = if record.has_webhook {
        state
            .store
            .webhook_credentials(&record.spec.name)
            .await?
            .map(|c| webhook_url(state, &c.token))
    } else {
        None
    };
    Ok(views::connector(record, url))
}

fn webhook_url(state: &AppState, token: &str) -> String {
    format!(
        "{}/api/webhooks/git/{token}",
        state.config.public_base_url()
    )
}

fn webhook_view(state: &AppState, credentials: &WebhookCredentials) -> WebhookView {
    WebhookView {
        url: webhook_url(state, &credentials.token),
        secret: SecretValue::new(credentials.secret.as_str()),
        unauthenticated: None,
    }
}

/// A 256-bit URL token (beyond the 160 bits asked for) and a 256-bit HMAC secret.
fn new_webhook_credentials() -> (WebhookCredentials, String) {
    let token = new_token("");
    let hash = hash_token(&token);
    (
        WebhookCredentials {
            token: Zeroizing::new(token),
            secret: Zeroizing::new(new_token("")),
        },
        hash,
    )
}

/// Applies a PATCH to a connector: present keys replace, `null` clears. Switching between
/// HTTPS and SSH credentials clears the other kind unless the patch sets it, and a new URL
/// re-detects the provider unless the patch names one.
fn merge(current: &GitConnector, patch: &ConnectorPatch) -> Result<ConnectorDraft, AppError> {
    let base = serde_json::to_value(current.to_draft())
        .map_err(|e| AppError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    let Value::Object(mut merged) = base else {
        return Err(AppError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "connector draft is not an object",
        ));
    };
    if patch.contains_key("ssh_key_secret")
        && !patch.get("ssh_key_secret").is_some_and(Value::is_null)
    {
        merged.insert("password_secret".into(), Value::Null);
        merged.insert("username".into(), Value::Null);
    }
    if patch.contains_key("password_secret")
        && !patch.get("password_secret").is_some_and(Value::is_null)
    {
        merged.insert("ssh_key_secret".into(), Value::Null);
    }
    let given = |key: &str| patch.contains_key(key);
    if given("url") && !given("provider") {
        merged.insert("provider".into(), Value::Null);
    }
    // A change of protocol drops the other protocol's trust settings, and a change to account
    // scope drops the branch, unless the patch sets them: otherwise every such switch would be
    // refused for a field the user did not touch.
    if let Some(Value::String(url)) = patch.get("url") {
        let new_protocol = reposync_model::RepoUrl::parse(url)
            .map(|u| u.protocol())
            .ok();
        if new_protocol != Some(current.url.protocol()) {
            if !given("known_hosts") {
                merged.insert("known_hosts".into(), Value::Null);
            }
            if !given("ca_certificate") {
                merged.insert("ca_certificate".into(), Value::Null);
            }
        }
    }
    if patch.get("scope").and_then(Value::as_str) == Some("account") && !given("branch") {
        merged.insert("branch".into(), Value::Null);
    }
    for (key, value) in patch {
        merged.insert(key.clone(), value.clone());
    }
    serde_json::from_value(Value::Object(merged)).map_err(|e| json_data_error(&e.to_string()))
}
