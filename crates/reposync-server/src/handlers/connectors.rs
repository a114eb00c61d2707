use axum::Extension;
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use reposync_api::{
    ApiErrorBody, ConnectorDraft, ConnectorPatch, ConnectorSaveQuery, ConnectorSaved,
    ConnectorView, DraftTestQuery, FetchRequest, ListResponse, SecretValue, TaskView, TestRequest,
    WebhookView,
};
use reposync_core::connectors::{self, Saved};
use reposync_model::{EntityName, Person};
use reposync_store::{ConnectorRecord, WebhookCredentials};
use serde::Deserialize;

use crate::error::{AppError, json_data_error};

use crate::handlers::{ApiJson, Deleted};
use crate::state::AppState;
use crate::views;

/// Every connector, by name.
#[utoipa::path(
    get,
    path = "/connectors",
    tag = "connectors",
    responses(
        (status = 200, description = "The connectors", body = ListResponse<ConnectorView>),
    ),
)]
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

/// One connector, with its last Test.
#[utoipa::path(
    get,
    path = "/connectors/{name}",
    tag = "connectors",
    params(("name" = String, Path, description = "The connector")),
    responses(
        (status = 200, description = "The connector", body = ConnectorView),
        (status = 404, description = "No such connector (`not_found`)", body = ApiErrorBody),
        (status = 422, description = "Not a valid connector name (`invalid`)", body = ApiErrorBody),
    ),
)]
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

/// Saves a connector; the webhook credentials, when it generates a webhook URL, come back once.
#[utoipa::path(
    post,
    path = "/connectors",
    tag = "connectors",
    params(ConnectorSaveQuery),
    request_body = ConnectorDraft,
    responses(
        (status = 201, description = "Saved", body = ConnectorSaved),
        (status = 409, description = "A connector of that name exists (`already_exists`)", body = ApiErrorBody),
        (status = 404, description = "A secret it names does not exist (`not_found`)", body = ApiErrorBody),
    ),
)]
pub async fn create(
    State(state): State<AppState>,
    query: Result<Query<ConnectorSaveQuery>, QueryRejection>,
    by: Option<Extension<Person>>,
    ApiJson(draft): ApiJson<ConnectorDraft>,
) -> Result<(StatusCode, Json<ConnectorSaved>), AppError> {
    let Query(query) = query.map_err(|e| AppError::invalid("tested_by", e.body_text()))?;
    let tested_by = query.tested_by.as_ref();
    let saved =
        connectors::create(&state.store, &state.tasks, &draft, tested_by, by.as_deref()).await?;
    Ok((StatusCode::CREATED, Json(saved_view(&state, saved).await?)))
}

/// Changes the fields present in the body; `null` clears an optional field.
#[utoipa::path(
    patch,
    path = "/connectors/{name}",
    tag = "connectors",
    params(("name" = String, Path, description = "The connector"), ConnectorSaveQuery),
    request_body(content = ConnectorDraft, description = "Only the fields present change; `null` clears an optional field (webhook, selectors, commit message, known hosts, CA)"),
    responses(
        (status = 200, description = "Saved", body = ConnectorSaved),
        (status = 404, description = "No such connector, or a secret it names does not exist (`not_found`)", body = ApiErrorBody),
        (status = 409, description = "The new name is taken (`already_exists`)", body = ApiErrorBody),
    ),
)]
pub async fn update(
    State(state): State<AppState>,
    Path(name): Path<String>,
    query: Result<Query<ConnectorSaveQuery>, QueryRejection>,
    by: Option<Extension<Person>>,
    ApiJson(patch): ApiJson<ConnectorPatch>,
) -> Result<Json<ConnectorSaved>, AppError> {
    let Query(query) = query.map_err(|e| AppError::invalid("tested_by", e.body_text()))?;
    let tested_by = query.tested_by.as_ref();
    let by = by.as_deref();
    let saved =
        connectors::update(&state.store, &state.tasks, &name, &patch, tested_by, by).await?;
    Ok(Json(saved_view(&state, saved).await?))
}

/// Deletes a connector no sync link uses.
#[utoipa::path(
    delete,
    path = "/connectors/{name}",
    tag = "connectors",
    params(("name" = String, Path, description = "The connector")),
    responses(
        (status = 200, description = "Deleted", body = Deleted),
        (status = 404, description = "No such connector (`not_found`)", body = ApiErrorBody),
        (status = 409, description = "Application files name it as their `gitConnector`, or a sync link uses it (`in_use`)", body = ApiErrorBody),
    ),
)]
pub async fn delete(
    State(state): State<AppState>,
    Path(name): Path<String>,
    by: Option<Extension<Person>>,
) -> Result<Json<Deleted>, AppError> {
    let name = connectors::delete(&state.store, &name, by.as_deref()).await?;
    Ok(Json(Deleted::new(&name)))
}

/// Shows the webhook URL and HMAC secret.
#[utoipa::path(
    get,
    path = "/connectors/{name}/webhook",
    tag = "connectors",
    params(("name" = String, Path, description = "The connector")),
    responses(
        (status = 200, description = "The webhook URL, its secret, and the deliveries that failed authentication", body = WebhookView),
        (status = 404, description = "No such connector, or it has no webhook URL (`not_found`)", body = ApiErrorBody),
    ),
)]
pub async fn webhook(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<WebhookView>, AppError> {
    let (connector, credentials) = connectors::webhook(&state.store, &name).await?;
    let counted = state
        .intake
        .unauthenticated(&state.store)
        .await?
        .remove(&connector.id);
    let mut view = webhook_view(&state, &credentials);
    view.unauthenticated = Some(views::unauthenticated(
        connector.spec.name.as_str(),
        counted.as_ref(),
    ));
    Ok(Json(view))
}

/// Replaces the webhook URL token and HMAC secret; the old URL stops working at once.
#[utoipa::path(
    post,
    path = "/connectors/{name}/webhook/regenerate",
    tag = "connectors",
    params(("name" = String, Path, description = "The connector")),
    responses(
        (status = 200, description = "The new webhook URL and secret", body = WebhookView),
        (status = 404, description = "No such connector, or it has no webhook URL (`not_found`)", body = ApiErrorBody),
    ),
)]
pub async fn regenerate_webhook(
    State(state): State<AppState>,
    Path(name): Path<String>,
    by: Option<Extension<Person>>,
) -> Result<Json<WebhookView>, AppError> {
    let credentials = connectors::regenerate_webhook(&state.store, &name, by.as_deref()).await?;
    Ok(Json(webhook_view(&state, &credentials)))
}

/// `POST /api/v1/connectors/{name}/webhook/signature`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookSignatureRequest {
    required: bool,
}

/// Turns the HMAC signature of webhook deliveries on (with a new secret) or off, keeping the
/// URL.
#[utoipa::path(
    post,
    path = "/connectors/{name}/webhook/signature",
    tag = "connectors",
    params(("name" = String, Path, description = "The connector")),
    request_body = WebhookSignatureRequest,
    responses(
        (status = 200, description = "The webhook URL and its secret", body = WebhookView),
        (status = 404, description = "No such connector, or it has no webhook URL (`not_found`)", body = ApiErrorBody),
    ),
)]
pub async fn set_webhook_signature(
    State(state): State<AppState>,
    Path(name): Path<String>,
    by: Option<Extension<Person>>,
    ApiJson(request): ApiJson<WebhookSignatureRequest>,
) -> Result<Json<WebhookView>, AppError> {
    let credentials =
        connectors::set_webhook_signature(&state.store, &name, request.required, by.as_deref())
            .await?;
    Ok(Json(webhook_view(&state, &credentials)))
}

/// Queues a connection Test on a delegate and returns the task; clients long-poll it.
#[utoipa::path(
    post,
    path = "/connectors/{name}/test",
    tag = "connectors",
    params(("name" = String, Path, description = "The connector")),
    request_body(content = Option<TestRequest>, description = "Optional: a repo-scope Test needs no body"),
    responses(
        (status = 202, description = "The Test's task; long-poll it for a `TestResult`", body = TaskView),
        (status = 404, description = "No such connector (`not_found`)", body = ApiErrorBody),
    ),
)]
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
    let repo = request.repo.as_deref();
    let task = match &request.changes {
        Some(changes) => {
            connectors::test_changes(&state.store, &state.tasks, &name, changes, repo).await?
        }
        None => connectors::test(&state.store, &state.tasks, &name, repo).await?,
    };
    Ok((StatusCode::ACCEPTED, Json(views::task(&task))))
}

/// Queues a fetch of files of the connector's repository at a ref, and returns the task.
///
/// The task runs on a delegate the connector's selectors choose, through the fetch planner;
/// its result names the commit the ref resolved to, the files read and the entries left out
/// (symbolic links, submodules). Once it succeeded, `GET /api/v1/tasks/{id}/archive`
/// downloads the files as a tar archive, for an hour.
#[utoipa::path(
    post,
    path = "/connectors/{name}/fetch",
    tag = "connectors",
    params(("name" = String, Path, description = "The connector")),
    request_body = FetchRequest,
    responses(
        (status = 202, description = "The fetch's task; long-poll it for its result, then download its archive", body = TaskView),
        (status = 404, description = "No such connector (`not_found`)", body = ApiErrorBody),
    ),
)]
pub async fn fetch(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiJson(request): ApiJson<FetchRequest>,
) -> Result<(StatusCode, Json<TaskView>), AppError> {
    let task = reposync_core::fetches::fetch(&state.store, &state.tasks, &name, &request).await?;
    Ok((StatusCode::ACCEPTED, Json(views::task(&task))))
}

/// Queues a Test of a connector that is not saved (the body is what creating one takes) and
/// returns the task; nothing but the task is stored.
#[utoipa::path(
    post,
    path = "/connector-tests",
    tag = "connectors",
    params(DraftTestQuery),
    request_body = ConnectorDraft,
    responses(
        (status = 202, description = "The Test's task; long-poll it for a `TestResult`", body = TaskView),
        (status = 409, description = "A connector of that name exists (`already_exists`)", body = ApiErrorBody),
        (status = 404, description = "A secret it names does not exist (`not_found`)", body = ApiErrorBody),
    ),
)]
pub async fn test_draft(
    State(state): State<AppState>,
    query: Result<Query<DraftTestQuery>, QueryRejection>,
    ApiJson(draft): ApiJson<ConnectorDraft>,
) -> Result<(StatusCode, Json<TaskView>), AppError> {
    let Query(query) = query.map_err(|e| AppError::invalid("repo", e.body_text()))?;
    let task =
        connectors::test_draft(&state.store, &state.tasks, &draft, query.repo.as_deref()).await?;
    Ok((StatusCode::ACCEPTED, Json(views::task(&task))))
}

async fn saved_view(state: &AppState, saved: Saved) -> Result<ConnectorSaved, AppError> {
    Ok(ConnectorSaved {
        connector: view(state, &saved.connector).await?,
        webhook: saved
            .fresh_webhook
            .map(|credentials| webhook_view(state, &credentials)),
        warnings: saved.warnings,
    })
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

pub(crate) fn webhook_view(state: &AppState, credentials: &WebhookCredentials) -> WebhookView {
    WebhookView {
        url: webhook_url(state, &credentials.token),
        secret: SecretValue::new(credentials.secret.as_str()),
        unauthenticated: None,
    }
}
