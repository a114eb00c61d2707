//! Webhook intake: `POST /api/webhooks/git/<token>`. The URL token is the credential (plus an
//! HMAC signature when the connector has a secret). A delivery is checked, normalised,
//! matched against the links of its connector, and stored with the heads it announces, all in
//! one transaction; the answer comes at once and the branches are read elsewhere. What keeps
//! this bounded against anyone who has the URL (rate limits, counting rather than logging
//! deliveries that fail authentication, throttled log lines) is in [`crate::intake`].

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use reposync_api::{ApiErrorBody, DeliveryLog, DeliveryView, UnauthenticatedView, WebhookAnswer};
use reposync_bitbucket::{
    Delivery, DeliveryKind, RefChange, RefKind, Repository, SignatureError, normalise,
    verify_signature,
};
use reposync_model::{
    BranchId, ConnectorId, ConnectorScope, EntityName, LinkId, ObjectId, RepoSlug,
};
use reposync_store::{
    AnnouncedHead, ConnectorRecord, DeliveryOutcome, DeliveryRecord, MAX_LOGGED_HEADER_BYTES,
    MAX_LOGGED_REASON_BYTES, NewDelivery, SignatureCheck, SyncBranch, bounded, now_millis,
};
use serde::Deserialize;
use subtle::ConstantTimeEq;
use tokio::time::Instant;

use crate::error::AppError;
use crate::intake::{LogTopic, Sender};
use crate::state::AppState;
use crate::views::{self, timestamp};
use reposync_core::tokens::hash_token;
use reposync_model::scope::Scope;

/// The one answer to a wrong token or signature: it must not tell which was wrong, nor
/// anything about a connector.
fn refused() -> AppError {
    AppError::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "this webhook URL is not valid, or the delivery's signature does not match",
    )
}

/// Receives one delivery.
pub async fn receive(
    State(state): State<AppState>,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, AppError> {
    let found = state
        .store
        .connector_by_webhook_hash(&hash_token(&token))
        .await?
        // The lookup was by hash; this compares the token itself too, in constant time.
        .filter(|(_, credentials)| {
            bool::from(token.as_bytes().ct_eq(credentials.token.as_bytes()))
        });
    let Some((connector, credentials)) = found else {
        // Every unknown token shares one bucket: a bucket per random token would let a
        // sender fill memory and never meet the limit.
        if let Some(limited) = over_limit(&state, &Sender::UnknownToken, "-") {
            return Ok(limited);
        }
        crate::metrics::webhook_delivery("unknown", "unknown_url");
        if let Some(suppressed) = state.intake.may_log(LogTopic::UnknownToken, Instant::now()) {
            tracing::info!(
                suppressed,
                "webhook delivery to an unknown URL token refused"
            );
        }
        return Ok(refused().into_response());
    };
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let event = header("x-event-key").unwrap_or_default();
    let delivery_id = header("x-request-uuid").or_else(|| header("x-request-id"));
    let mut record = NewDelivery {
        connector_id: connector.id.clone(),
        event,
        delivery_id,
        format: None,
        signature: SignatureCheck::Unchecked,
        changes_json: "[]".into(),
        decided: None,
        heads: Vec::new(),
    };
    let signature_required = !credentials.secret.is_empty();

    // Authentication first: a delivery that fails it is only counted.
    let body = match body {
        Ok(body) => body,
        Err(rejection) => {
            let status = rejection.status();
            let reason = if status == StatusCode::PAYLOAD_TOO_LARGE {
                format!(
                    "the body is larger than {} bytes",
                    state.config.max_webhook_bytes
                )
            } else {
                format!("the body could not be read: {}", rejection.body_text())
            };
            if signature_required {
                // Without the body the signature cannot be checked: the delivery is as
                // unauthenticated as a forged one.
                let answer = AppError::new(status, "body_rejected", reason.clone());
                return Ok(refuse_unauthenticated(&state, &connector, &reason, answer));
            }
            if let Some(limited) = over_authenticated_limit(&state, &connector) {
                return Ok(limited);
            }
            return reject(&state, record, status, "body_rejected", reason).await;
        }
    };
    let signature = header("x-hub-signature");
    record.signature = if signature_required {
        match verify_signature(credentials.secret.as_bytes(), &body, signature.as_deref()) {
            Ok(()) => SignatureCheck::Valid,
            Err(SignatureError::Missing) => SignatureCheck::Missing,
            Err(_) => SignatureCheck::Invalid,
        }
    } else {
        SignatureCheck::NotRequired
    };
    let unauthenticated = match record.signature {
        SignatureCheck::Missing => {
            Some("no X-Hub-Signature header, and the connector has a secret")
        }
        SignatureCheck::Invalid => Some("the X-Hub-Signature does not match the body"),
        _ => None,
    };
    if let Some(reason) = unauthenticated {
        return Ok(refuse_unauthenticated(
            &state,
            &connector,
            reason,
            refused(),
        ));
    }
    if let Some(limited) = over_authenticated_limit(&state, &connector) {
        return Ok(limited);
    }

    if let Some(content_type) = header(header::CONTENT_TYPE.as_str())
        && !is_json_media_type(&content_type)
    {
        let reason = format!("the body is {content_type}, not JSON");
        return reject(
            &state,
            record,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            reason,
        )
        .await;
    }
    let mut delivery = match normalise(&header, &body) {
        Ok(delivery) => delivery,
        Err(error) => {
            let status = if error.is_not_json() {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            } else {
                StatusCode::BAD_REQUEST
            };
            let code = if error.is_not_json() {
                "unsupported_media_type"
            } else {
                "invalid_webhook"
            };
            return reject(&state, record, status, code, error.to_string()).await;
        }
    };
    bound_for_log(&mut delivery);
    record.event.clone_from(&delivery.event);
    record.delivery_id.clone_from(&delivery.delivery_id);
    record.format = delivery.format.map(|f| f.to_string());
    record.changes_json = serde_json::to_string(&delivery).unwrap_or_else(|_| "null".into());
    let status = match &delivery.kind {
        DeliveryKind::Ping => {
            record.decided = Some((DeliveryOutcome::Ping, "a ping".into()));
            StatusCode::OK
        }
        DeliveryKind::Ignored { reason } => {
            record.decided = Some((DeliveryOutcome::Ignored, reason.clone()));
            StatusCode::ACCEPTED
        }
        DeliveryKind::Push {
            repository,
            changes,
        } => {
            let branches = state
                .store
                .live_branches_of_connector(&connector.id)
                .await?;
            let links = links_by_branch(&state, &connector, &branches).await?;
            let (heads, skipped) =
                match_changes(&connector, &branches, &links, repository, changes);
            if heads.is_empty() {
                record.decided = Some((DeliveryOutcome::Ignored, skipped.join("; ")));
            }
            record.heads = heads;
            StatusCode::ACCEPTED
        }
    };
    let stored = store_delivery(&state, &record).await?;
    log_delivery(&stored);
    Ok((status, Json(answer(&stored))).into_response())
}

/// `429` with `Retry-After` when the sender's bucket is empty (logged at a bounded rate);
/// nothing is written of such a delivery.
fn over_limit(state: &AppState, sender: &Sender, connector: &str) -> Option<Response> {
    let retry_after = state.intake.admit(sender, Instant::now()).err()?;
    crate::metrics::webhook_delivery("unknown", "rate_limited");
    if let Some(suppressed) = state
        .intake
        .may_log(LogTopic::RateLimited(sender.clone()), Instant::now())
    {
        let authenticated = matches!(sender, Sender::Authenticated(_));
        tracing::warn!(
            connector,
            authenticated,
            suppressed,
            "webhook deliveries refused: over the rate limit of their URL"
        );
    }
    Some(
        AppError::rate_limited(
            "too many deliveries to this webhook URL; retry later",
            retry_after,
        )
        .into_response(),
    )
}

/// `429` when the connector's authenticated deliveries are over the limit of its URL.
fn over_authenticated_limit(state: &AppState, connector: &ConnectorRecord) -> Option<Response> {
    let sender = Sender::Authenticated(connector.id.clone());
    over_limit(state, &sender, connector.spec.name.as_str())
}

/// Answers a delivery that failed authentication with `answer`, or `429` past the limit of
/// such deliveries to the URL. It is counted, and logged at a bounded rate, but nothing else
/// of it is stored: anyone who has the URL can send these. They have their own bucket, so
/// a flood of them never uses up the URL's limit for authenticated deliveries.
fn refuse_unauthenticated(
    state: &AppState,
    connector: &ConnectorRecord,
    reason: &str,
    answer: AppError,
) -> Response {
    let sender = Sender::Unauthenticated(connector.id.clone());
    if let Some(limited) = over_limit(state, &sender, connector.spec.name.as_str()) {
        return limited;
    }
    crate::metrics::webhook_delivery("unknown", "unauthenticated");
    state
        .intake
        .count_unauthenticated(&connector.id, reason, now_millis());
    if let Some(suppressed) = state.intake.may_log(
        LogTopic::Unauthenticated(connector.id.clone()),
        Instant::now(),
    ) {
        tracing::warn!(
            connector = %connector.spec.name,
            reason,
            suppressed,
            "webhook delivery refused: it failed authentication (counted, not logged)"
        );
    }
    answer.into_response()
}

/// Cuts what came from headers (and the reason that quotes the event key) to what the log
/// keeps, so that the stored payload is bounded as the other columns are.
fn bound_for_log(delivery: &mut Delivery) {
    delivery.event = bounded(&delivery.event, MAX_LOGGED_HEADER_BYTES).into_owned();
    if let Some(id) = &delivery.delivery_id {
        delivery.delivery_id = Some(bounded(id, MAX_LOGGED_HEADER_BYTES).into_owned());
    }
    if let DeliveryKind::Ignored { reason } = &mut delivery.kind {
        *reason = bounded(reason, MAX_LOGGED_REASON_BYTES).into_owned();
    }
}

/// `application/json`, or a `+json` type, with any parameters.
fn is_json_media_type(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

async fn reject(
    state: &AppState,
    mut record: NewDelivery,
    status: StatusCode,
    code: &'static str,
    reason: String,
) -> Result<Response, AppError> {
    record.decided = Some((DeliveryOutcome::Rejected, reason.clone()));
    let stored = store_delivery(state, &record).await?;
    tracing::info!(
        delivery = %stored.id,
        %status,
        reason = stored.reason.as_deref().unwrap_or(""),
        "webhook delivery rejected"
    );
    Ok(AppError::new(status, code, stored.reason.unwrap_or(reason)).into_response())
}

/// Writes a delivery to the log, and counts it by its format and outcome.
async fn store_delivery(
    state: &AppState,
    record: &NewDelivery,
) -> Result<DeliveryRecord, AppError> {
    let stored = state.store.record_delivery(record).await?;
    crate::metrics::webhook_delivery(
        record.format.as_deref().unwrap_or("unknown"),
        stored.outcome.as_str(),
    );
    Ok(stored)
}

fn answer(stored: &DeliveryRecord) -> WebhookAnswer {
    WebhookAnswer {
        delivery: stored.id.clone(),
        outcome: stored.outcome.as_str().to_owned(),
        reason: stored.reason.clone(),
    }
}

/// Logs an accepted delivery with the values as stored, which are bounded.
fn log_delivery(stored: &DeliveryRecord) {
    tracing::info!(
        delivery = %stored.id,
        event = %stored.event,
        delivery_id = stored.delivery_id.as_deref().unwrap_or("-"),
        outcome = stored.outcome.as_str(),
        reason = stored.reason.as_deref().unwrap_or(""),
        "webhook delivery"
    );
}

/// The live links of each branch, by branch id.
async fn links_by_branch(
    state: &AppState,
    connector: &ConnectorRecord,
    branches: &[SyncBranch],
) -> Result<HashMap<BranchId, Vec<LinkId>>, AppError> {
    let live = state.store.live_links().await?;
    Ok(branches
        .iter()
        .map(|b| {
            let ids = live
                .iter()
                .filter(|l| {
                    l.connector_id == connector.id && l.repo == b.repo && l.branch == b.branch
                })
                .map(|l| l.id.clone())
                .collect();
            (b.id.clone(), ids)
        })
        .collect())
}

/// The heads a push announces for the connector's branches, and a reason for every change
/// that announces none. Refs are matched by their full name, so branch `x` and tag `x` never
/// meet; the repository is matched by owner and slug, never by a link in the payload.
fn match_changes(
    connector: &ConnectorRecord,
    branches: &[SyncBranch],
    links: &HashMap<BranchId, Vec<LinkId>>,
    repository: &Repository,
    changes: &[RefChange],
) -> (Vec<AnnouncedHead>, Vec<String>) {
    let mut heads = Vec::new();
    let mut skipped = Vec::new();
    if changes.is_empty() {
        skipped.push("the push lists no ref changes".to_owned());
    }
    for change in changes {
        if change.kind == RefKind::Tag {
            skipped.push(format!("{} is a tag; tags are not synced", change.ref_name));
            continue;
        }
        let matching = branches.iter().find(|b| {
            format!("refs/heads/{}", b.branch) == change.ref_name
                && repository_url(connector, b)
                    .is_some_and(|url| repository.matches_clone_url(&url))
        });
        // The normaliser accepts only full ids, so this never fails; if it did, the change
        // would be skipped with its reason, and the poller would still find the head.
        let commit = match change.new.as_deref().map(ObjectId::parse).transpose() {
            Ok(commit) => commit,
            Err(error) => {
                skipped.push(format!("{}: {}", change.ref_name, error.message));
                continue;
            }
        };
        match matching {
            Some(branch) => heads.push(AnnouncedHead {
                branch_id: branch.id.clone(),
                commit,
                link_ids: links.get(&branch.id).cloned().unwrap_or_default(),
            }),
            None => skipped.push(format!(
                "{} of {} is not a branch that a live link syncs",
                change.ref_name, repository.full_name
            )),
        }
    }
    (heads, skipped)
}

/// The URL of a branch's repository: the connector's own, or for an account-scope connector
/// the repository under it that the links name.
fn repository_url(connector: &ConnectorRecord, branch: &SyncBranch) -> Option<String> {
    let repo = match (connector.spec.scope, &branch.repo) {
        (ConnectorScope::Account, Some(repo)) => Some(RepoSlug::parse(repo).ok()?),
        _ => None,
    };
    Some(connector.spec.repository_url(repo.as_ref()).ok()?.git_url())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveriesQuery {
    /// Only the deliveries to this connector's webhook URL.
    #[serde(default)]
    connector: Option<String>,
    /// At most this many, newest first: 100 unless given, at most 10,000.
    #[serde(default)]
    limit: Option<i64>,
}

/// The delivery log, newest first, and the counts of deliveries that failed authentication.
#[utoipa::path(
    get,
    path = "/webhooks/deliveries",
    tag = "webhooks",
    params(DeliveriesQuery),
    responses(
        (status = 200, description = "The delivery log", body = DeliveryLog),
        (status = 404, description = "No such connector (`not_found`)", body = ApiErrorBody),
        (status = 422, description = "A query parameter is not valid (`invalid`)", body = ApiErrorBody),
    ),
)]
pub async fn deliveries(
    State(state): State<AppState>,
    query: Result<Query<DeliveriesQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<DeliveryLog>, AppError> {
    let Query(query) = query.map_err(|e| AppError::invalid("connector", e.body_text()))?;
    Ok(Json(
        delivery_log(&state, query.connector.as_deref(), query.limit).await?,
    ))
}

/// The delivery log, newest first (at most `limit`, 100 unless given), for one connector or
/// all, and the counts of deliveries that failed authentication: for the API and the UI.
pub(crate) async fn delivery_log(
    state: &AppState,
    connector: Option<&str>,
    limit: Option<i64>,
) -> Result<DeliveryLog, AppError> {
    let limit = limit.unwrap_or(100).clamp(1, 10_000);
    let connectors: HashMap<ConnectorId, String> = state
        .store
        .list_connectors()
        .await?
        .into_iter()
        .map(|c| (c.id, c.spec.name.to_string()))
        .collect();
    let connector_id = match connector.filter(|c| !c.is_empty()) {
        Some(name) => {
            let name =
                EntityName::parse(name).map_err(|e| AppError::invalid("connector", e.message))?;
            Some(
                state
                    .store
                    .get_connector(&name)
                    .await
                    .map_err(|e| AppError::from(e).with_field("connector"))?
                    .id,
            )
        }
        None => None,
    };
    let scopes: HashMap<LinkId, String> = state
        .store
        .all_links()
        .await?
        .into_iter()
        .map(|l| (l.id, Scope::of_app(l.app.as_deref()).to_string()))
        .collect();
    let items = state
        .store
        .list_deliveries(connector_id.as_ref(), limit)
        .await?
        .into_iter()
        .map(|d| DeliveryView {
            connector: connectors.get(&d.connector_id).cloned().unwrap_or_default(),
            received_at: timestamp(d.received_at),
            event: d.event,
            delivery_id: d.delivery_id,
            format: d.format,
            signature: d.signature.as_str().to_owned(),
            outcome: d.outcome.as_str().to_owned(),
            reason: d.reason,
            matched: d
                .matched_links
                .iter()
                .map(|id| scopes.get(id).cloned().unwrap_or_else(|| id.to_string()))
                .collect(),
            payload: serde_json::from_str(&d.changes_json).unwrap_or_default(),
            id: d.id,
        })
        .collect();
    let mut unauthenticated: Vec<UnauthenticatedView> = state
        .intake
        .unauthenticated(&state.store)
        .await?
        .into_values()
        .filter(|c| connector_id.as_ref().is_none_or(|id| *id == c.connector_id))
        .filter_map(|c| {
            // A connector deleted since is no longer anyone's concern.
            let name = connectors.get(&c.connector_id)?;
            Some(views::unauthenticated(name, Some(&c)))
        })
        .collect();
    unauthenticated.sort_by(|a, b| a.connector.cmp(&b.connector));
    Ok(DeliveryLog {
        items,
        unauthenticated,
    })
}
