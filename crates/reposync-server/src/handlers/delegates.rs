//! Remote delegates: the protocol they speak (`/api/delegate/…`, authenticated by a delegate
//! token), and the administration of tokens and the delegate list (`/api/v1/…`, API token).

use std::collections::HashSet;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use reposync_api::{
    ApiErrorBody, DELEGATE_NAME_HEADER, DelegateTask, DelegateTokenRequest, DelegateTokenView,
    DelegateView, FailureCode, HeartbeatRequest, HeartbeatResponse, ListResponse, RegisterRequest,
    RegisterResponse, SecretValue, TaskFailure, TaskOutcome,
};
use reposync_model::{EntityName, Selector, TaskId};
use reposync_store::{DelegateTokenRecord, Eligibility, NewDelegate, StoreError};
use serde::Deserialize;
use serde_json::json;

use crate::auth::bearer_token;
use crate::error::AppError;
use crate::handlers::ApiJson;
use crate::state::AppState;
use crate::tasks::DelegateInfo;
use crate::views::timestamp;
use reposync_core::tokens::{hash_token, new_token};

/// The longest a claim may wait for a task.
const MAX_WAIT: Duration = Duration::from_secs(25);

/// The delegate token a request carries, if it is known and not revoked.
async fn delegate_token(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<DelegateTokenRecord, AppError> {
    let Some(token) = bearer_token(headers) else {
        return Err(AppError::unauthorized(
            "missing delegate token: send `Authorization: Bearer <token>`",
        ));
    };
    state
        .store
        .find_delegate_token(&hash_token(token))
        .await?
        .ok_or_else(|| AppError::unauthorized("this delegate token is unknown or was revoked"))
}

/// The registered delegate a request comes from: its token, and the name it registered under
/// with that same token. The delegate counts as heard from now.
async fn delegate(state: &AppState, headers: &HeaderMap) -> Result<DelegateInfo, AppError> {
    let token = delegate_token(state, headers).await?;
    let name = headers
        .get(DELEGATE_NAME_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            AppError::invalid(
                DELEGATE_NAME_HEADER,
                "is required: the name the delegate registered under",
            )
        })?;
    let Some(info) = state.tasks.registered_anywhere(name).await else {
        return Err(AppError::new(
            StatusCode::NOT_FOUND,
            "unknown_delegate",
            format!("no delegate {name:?} is registered (the server restarted?); register again"),
        ));
    };
    // Another token's request under this name neither speaks for the delegate nor keeps it
    // connected.
    if info.token_id.as_deref() != Some(token.id.as_str()) {
        return Err(name_taken(format!(
            "delegate name {name:?} was registered with another delegate token; this token cannot speak for it"
        )));
    }
    state.tasks.heard_from(name);
    Ok(info)
}

/// The answer to a request under a delegate name another token holds. The delegate stops on
/// it: retrying cannot help.
fn name_taken(message: String) -> AppError {
    AppError::new(StatusCode::CONFLICT, "name_taken", message).with_field("name")
}

/// `POST /api/delegate/register`.
pub async fn register(
    State(state): State<AppState>,
    connection: Option<axum::Extension<axum::extract::ConnectInfo<crate::ClientAddr>>>,
    headers: HeaderMap,
    ApiJson(request): ApiJson<RegisterRequest>,
) -> Result<Json<RegisterResponse>, AppError> {
    let token = delegate_token(&state, &headers).await?;
    let name =
        EntityName::parse(request.name.trim()).map_err(|e| AppError::invalid("name", e.message))?;
    if name
        .as_str()
        .eq_ignore_ascii_case(crate::tasks::BUILTIN_DELEGATE_NAME)
    {
        return Err(AppError::invalid(
            "name",
            "\"builtin\" is the server's own delegate; choose another name",
        ));
    }
    let mut selectors: Vec<String> = request
        .selectors
        .iter()
        .map(|s| Selector::parse(s).map(|s| s.as_str().to_owned()))
        .collect::<Result<_, _>>()?;
    if let Some(allowed) = &token.selectors {
        let outside: Vec<&str> = selectors
            .iter()
            .filter(|s| !allowed.contains(s))
            .map(String::as_str)
            .collect();
        if !outside.is_empty() {
            return Err(AppError::invalid(
                "selectors",
                format!(
                    "delegate token {:?} allows only the selectors {}; not {}",
                    token.name,
                    allowed.join(", "),
                    outside.join(", ")
                ),
            ));
        }
    }
    // A delegate's name and host name count as selectors of its own. A restricted token's
    // delegate has them only where its token allows them: otherwise a connector that
    // selects a delegate by name would name a selector the token never allowed.
    let own = [name.as_str().trim(), request.hostname.trim()];
    for selector in own
        .iter()
        .filter(|s| !s.is_empty())
        .map(|s| s.to_lowercase())
    {
        if token
            .selectors
            .as_ref()
            .is_none_or(|allowed| allowed.contains(&selector))
        {
            selectors.push(selector);
        }
    }
    selectors.sort();
    selectors.dedup();
    let lease = state.config.delegate_lease;
    state
        .store
        .register_delegate(&NewDelegate {
            name: name.to_string(),
            token_id: Some(token.id.clone()),
            selectors: selectors.clone(),
            version: request.version.clone(),
            hostname: request.hostname.clone(),
            git_version: request.git_version.clone(),
            ssh_version: request.ssh_version.clone(),
        })
        .await
        .map_err(|error| match error {
            StoreError::Taken { .. } => name_taken(format!(
                "{error}; choose another name for this delegate, or revoke that token to free the name"
            )),
            other => other.into(),
        })?;
    state.tasks.register_delegate(DelegateInfo {
        name: name.to_string(),
        eligibility: Eligibility {
            selectors: selectors.clone(),
            restricted_to: token.selectors.clone(),
        },
        lease,
        builtin: false,
        token_id: Some(token.id),
    });
    tracing::info!(delegate = %name, selectors = ?selectors, restricted_to = ?token.selectors, version = %request.version, git = %request.git_version, "delegate registered");
    let client = connection.map(|c| c.0.0.0.ip());
    let detail = format!(
        "selectors {}; version {}, git {} on {}",
        selectors.join(","),
        request.version,
        request.git_version,
        request.hostname
    );
    crate::audit::record_delegate(
        &state,
        name.as_str(),
        &token.name,
        client,
        "delegate.register",
        &detail,
    )
    .await;
    Ok(Json(RegisterResponse {
        name: name.to_string(),
        selectors,
        heartbeat_secs: (lease.as_secs() / 6).max(1),
        max_wait_ms: u64::try_from(longest_claim(lease).as_millis()).unwrap_or(u64::MAX),
    }))
}

/// The longest a remote delegate's claim may wait: [`MAX_WAIT`], and never longer than its
/// lease, so that a poll left open by a delegate that vanished keeps it connected for at
/// most one lease after its last request.
fn longest_claim(lease: Duration) -> Duration {
    MAX_WAIT.min(lease)
}

#[derive(Debug, Deserialize)]
pub struct ClaimQuery {
    #[serde(default)]
    wait_ms: Option<u64>,
}

/// `POST /api/delegate/claim?wait_ms=N`: a task with its credentials, or 204 after the wait.
pub async fn claim(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<ClaimQuery>,
) -> Result<Response, AppError> {
    let info = delegate(&state, &headers).await?;
    let wait = Duration::from_millis(query.wait_ms.unwrap_or(0)).min(longest_claim(info.lease));
    loop {
        let Some(task) = state.tasks.claim(&info, wait).await? else {
            return Ok(StatusCode::NO_CONTENT.into_response());
        };
        match state.tasks.hydrate(&task).await {
            Ok(spec) => {
                return Ok(Json(DelegateTask { id: task.id, spec }).into_response());
            }
            Err(message) => {
                tracing::warn!(task = %task.id, %message, "cannot prepare task");
                let outcome =
                    TaskOutcome::failed(&TaskFailure::new(FailureCode::Internal, message));
                state.tasks.complete(&task.id, &info.name, outcome).await?;
            }
        }
    }
}

/// `POST /api/delegate/tasks/{id}/complete`.
pub async fn complete(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<TaskId>,
    ApiJson(outcome): ApiJson<TaskOutcome>,
) -> Result<Response, AppError> {
    let info = delegate(&state, &headers).await?;
    if state.tasks.complete(&id, &info.name, outcome).await? {
        Ok(Json(json!({})).into_response())
    } else {
        Err(AppError::new(
            StatusCode::CONFLICT,
            "lease_lost",
            format!(
                "task {id} is no longer this delegate's: its lease ran out and it went elsewhere"
            ),
        ))
    }
}

/// `PUT /api/delegate/tasks/{id}/archive`: the archive of a fetch this delegate holds, as the
/// raw body (`application/x-tar`), streamed to disk; at most `MAX_FETCH_ARCHIVE_BYTES` (413
/// above). A task that is not this delegate's (any more) is 409 `lease_lost`.
pub async fn upload_archive(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<TaskId>,
    body: axum::body::Body,
) -> Result<Response, AppError> {
    let info = delegate(&state, &headers).await?;
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > reposync_api::MAX_FETCH_ARCHIVE_BYTES) {
        // Refused before a byte is read.
        return Err(AppError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!(
                "the archive is larger than {} MiB, the most one fetch may bring",
                reposync_api::MAX_FETCH_ARCHIVE_BYTES / (1024 * 1024)
            ),
        ));
    }
    let bytes = state
        .tasks
        .receive_archive(&id, &info.name, body.into_data_stream())
        .await?;
    Ok(Json(json!({ "bytes": bytes })).into_response())
}

/// `POST /api/delegate/heartbeat`: extends the leases of the tasks the delegate runs.
pub async fn heartbeat(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(request): ApiJson<HeartbeatRequest>,
) -> Result<Json<HeartbeatResponse>, AppError> {
    let info = delegate(&state, &headers).await?;
    state.store.delegate_heard(&info.name).await?;
    // Tasks past their limit end as timeouts first; like tasks no longer this delegate's,
    // their leases then do not extend, so the answer tells the delegate to stop them.
    state
        .tasks
        .end_overdue(&info.name, &request.running)
        .await?;
    let lease_ms = i64::try_from(info.lease.as_millis()).unwrap_or(i64::MAX);
    let cancel = state
        .store
        .extend_leases(&info.name, &request.running, lease_ms)
        .await?;
    Ok(Json(HeartbeatResponse { cancel }))
}

/// `POST /api/delegate/leave`: a delegate stopping cleanly says so; it is disconnected at once,
/// and the tasks it still held go back to the queue.
pub async fn leave(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, AppError> {
    let info = delegate(&state, &headers).await?;
    state.tasks.leave(&info.name).await?;
    Ok(Json(json!({})))
}

/// `GET /api/v1/delegates`.
#[utoipa::path(
    get,
    path = "/delegates",
    tag = "delegates",
    responses(
        (status = 200, description = "Every delegate ever registered, connected or not", body = ListResponse<DelegateView>),
    ),
)]
pub async fn list(
    State(state): State<AppState>,
) -> Result<Json<ListResponse<DelegateView>>, AppError> {
    let items = delegate_views(&state).await?;
    Ok(Json(ListResponse { items }))
}

/// Every delegate ever registered, with whether it is connected now: for the API and the UI.
pub(crate) async fn delegate_views(state: &AppState) -> Result<Vec<DelegateView>, AppError> {
    let connected: HashSet<String> = state
        .tasks
        .connected_anywhere()
        .await
        .into_iter()
        .map(|d| d.name)
        .collect();
    let items = state
        .store
        .list_delegates()
        .await?
        .into_iter()
        .map(|d| DelegateView {
            connected: connected.contains(&d.name),
            name: d.name,
            selectors: d.selectors,
            version: d.version,
            hostname: d.hostname,
            git_version: d.git_version,
            ssh_version: d.ssh_version,
            token: d.token_name,
            last_heartbeat: d.last_heartbeat.map(timestamp),
            tasks_run: u64::try_from(d.tasks_run).unwrap_or_default(),
            tasks_succeeded: u64::try_from(d.tasks_succeeded).unwrap_or_default(),
            tasks_failed: u64::try_from(d.tasks_failed).unwrap_or_default(),
        })
        .collect();
    Ok(items)
}

fn token_view(record: &DelegateTokenRecord, token: Option<String>) -> DelegateTokenView {
    DelegateTokenView {
        name: record.name.clone(),
        selectors: record.selectors.clone(),
        created_at: timestamp(record.created_at),
        revoked_at: record.revoked_at.map(timestamp),
        token: token.map(SecretValue::new),
    }
}

/// `POST /api/v1/delegate-tokens`: a new token, shown once; restricted to selectors when the
/// request names some.
#[utoipa::path(
    post,
    path = "/delegate-tokens",
    tag = "delegates",
    request_body = DelegateTokenRequest,
    responses(
        (status = 201, description = "The token, with its value shown this once", body = DelegateTokenView),
        (status = 409, description = "A token of that name exists (`already_exists`)", body = ApiErrorBody),
    ),
)]
pub async fn create_token(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<DelegateTokenRequest>,
) -> Result<(StatusCode, Json<DelegateTokenView>), AppError> {
    let view = new_delegate_token(&state, &request).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// Makes a delegate token, restricted to the request's selectors when it names some; its
/// value is in the answer and nowhere else: for the API and the UI.
pub(crate) async fn new_delegate_token(
    state: &AppState,
    request: &DelegateTokenRequest,
) -> Result<DelegateTokenView, AppError> {
    let name =
        EntityName::parse(request.name.trim()).map_err(|e| AppError::invalid("name", e.message))?;
    let selectors = request
        .selectors
        .as_deref()
        .map(|selectors| {
            if selectors.is_empty() {
                return Err(AppError::invalid(
                    "selectors",
                    "a restricted token needs at least one selector; leave the field out for an unrestricted token",
                ));
            }
            let mut parsed: Vec<String> = selectors
                .iter()
                .map(|s| Selector::parse(s).map(|s| s.as_str().to_owned()))
                .collect::<Result<_, _>>()?;
            parsed.sort();
            parsed.dedup();
            Ok(parsed)
        })
        .transpose()?;
    let token = new_token("rsd_");
    let record = state
        .store
        .create_delegate_token(name.as_str(), &hash_token(&token), selectors)
        .await?;
    tracing::info!(token = %name, restricted_to = ?record.selectors, "created delegate token");
    Ok(token_view(&record, Some(token)))
}

/// `GET /api/v1/delegate-tokens`.
#[utoipa::path(
    get,
    path = "/delegate-tokens",
    tag = "delegates",
    responses(
        (status = 200, description = "The delegate tokens, never their values", body = ListResponse<DelegateTokenView>),
    ),
)]
pub async fn list_tokens(
    State(state): State<AppState>,
) -> Result<Json<ListResponse<DelegateTokenView>>, AppError> {
    let items = state
        .store
        .list_delegate_tokens()
        .await?
        .iter()
        .map(|t| token_view(t, None))
        .collect();
    Ok(Json(ListResponse { items }))
}

/// `DELETE /api/v1/delegate-tokens/{name}`: revokes; the delegates using it are refused from
/// their next request on.
#[utoipa::path(
    delete,
    path = "/delegate-tokens/{name}",
    tag = "delegates",
    params(("name" = String, Path, description = "The delegate token")),
    responses(
        (status = 200, description = "The revoked token", body = DelegateTokenView),
        (status = 404, description = "No such delegate token (`not_found`)", body = ApiErrorBody),
    ),
)]
pub async fn revoke_token(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<DelegateTokenView>, AppError> {
    Ok(Json(revoke_delegate_token(&state, &name).await?))
}

/// Revokes a delegate token: its delegates are refused from their next request on.
pub(crate) async fn revoke_delegate_token(
    state: &AppState,
    name: &str,
) -> Result<DelegateTokenView, AppError> {
    let record = state.store.revoke_delegate_token(name).await?;
    state.tasks.forget_token(&record.id).await?;
    tracing::info!(token = %name, "revoked delegate token");
    Ok(token_view(&record, None))
}
