//! What the audit trail records of requests: who, from where, which use case, on what, and
//! how it ended. The access layer records every write through here, and the login handler
//! its attempts; nothing here ever sees a secret value, a password or a token.

use std::net::{IpAddr, SocketAddr};

use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, Request};
use axum::http::StatusCode;
use axum::serve::IncomingStream;
use reposync_core::users::{Caller, LoginFailed, LoginRefusal};
use reposync_store::{ActorKind, AuditOutcome, NewAuditEvent};

use crate::access::{Facts, Policy};
use crate::error::AppError;
use crate::state::AppState;

/// The TCP peer of a connection, as every request on it knows it: plain or TLS alike.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

impl Connected<IncomingStream<'_, tokio::net::TcpListener>> for ClientAddr {
    fn connect_info(stream: IncomingStream<'_, tokio::net::TcpListener>) -> ClientAddr {
        ClientAddr(*stream.remote_addr())
    }
}

impl Connected<IncomingStream<'_, crate::tls::TlsListener>> for ClientAddr {
    fn connect_info(stream: IncomingStream<'_, crate::tls::TlsListener>) -> ClientAddr {
        ClientAddr(*stream.remote_addr())
    }
}

/// The address of the client that sent a request: the TCP peer. Behind a reverse proxy this
/// is the proxy's.
pub fn client_address(request: &Request) -> Option<IpAddr> {
    request
        .extensions()
        .get::<ConnectInfo<ClientAddr>>()
        .map(|ConnectInfo(ClientAddr(addr))| addr.ip())
}

/// How a request ended, for the audit trail: its status read as an outcome.
fn outcome(status: StatusCode) -> AuditOutcome {
    if status.is_success() {
        AuditOutcome::Accepted
    } else if status.is_client_error() {
        AuditOutcome::Refused
    } else {
        AuditOutcome::Failed
    }
}

/// Records an event; a failure to record is logged, and never fails the request it is about.
async fn record(state: &AppState, event: &NewAuditEvent<'_>) {
    if let Err(error) = state.store.record_audit(event).await {
        tracing::error!(%error, use_case = event.use_case, "cannot record an audit event");
    }
}

/// Records a write request and its answer: accepted, refused (with the refusal's reason when
/// the access layer gave one) or failed.
pub async fn record_request(
    state: &AppState,
    caller: &Caller,
    client: Option<IpAddr>,
    policy: &Policy,
    facts: &Facts,
    status: StatusCode,
    detail: Option<&str>,
) {
    let event = NewAuditEvent {
        actor_kind: ActorKind::User,
        actor: caller.user.as_str(),
        token: Some(&caller.token),
        client_addr: client,
        use_case: policy.use_case,
        target: facts.target.as_deref(),
        app: facts.app(),
        outcome: outcome(status),
        status: Some(status.as_u16()),
        detail,
    };
    record(state, &event).await;
}

/// Records a login attempt: accepted, with the token it made, or refused; when it locked
/// someone out, the details admins need.
pub async fn record_login(
    state: &AppState,
    user: &str,
    client: Option<IpAddr>,
    outcome: Result<&str, &LoginFailed>,
) {
    let (actor_kind, result, status, detail) = match outcome {
        Ok(token) => (
            ActorKind::User,
            AuditOutcome::Accepted,
            StatusCode::CREATED,
            format!("made token {token:?}"),
        ),
        Err(failed) => {
            let reason = match &failed.refusal {
                LoginRefusal::Blocked { until } => format!(
                    "refused unchecked: too many failed logins, blocked until {}",
                    reposync_api::timestamp(*until)
                ),
                LoginRefusal::WrongCredentials => {
                    "wrong user name or password (or a user without a password)".to_owned()
                }
                LoginRefusal::Disabled => "the user is disabled".to_owned(),
            };
            let detail = match &failed.locked_out {
                Some(lockout) => format!("{reason}; locked out: {lockout}"),
                None => reason,
            };
            let status = AppError::from(failed.error.clone()).status;
            (ActorKind::Anonymous, AuditOutcome::Refused, status, detail)
        }
    };
    let event = NewAuditEvent {
        actor_kind,
        actor: user,
        token: None,
        client_addr: client,
        use_case: "login",
        target: Some(user),
        app: None,
        outcome: result,
        status: Some(status.as_u16()),
        detail: Some(&detail),
    };
    record(state, &event).await;
}

/// Records a password set through a one-time link, or a link refused.
pub async fn record_password_by_link(
    state: &AppState,
    client: Option<IpAddr>,
    outcome: Result<&str, reposync_core::error::CoreError>,
) {
    let (actor_kind, actor, result, status, detail) = match &outcome {
        Ok(user) => (
            ActorKind::User,
            *user,
            AuditOutcome::Accepted,
            StatusCode::OK,
            "set their password through a one-time link",
        ),
        Err(error) => (
            ActorKind::Anonymous,
            "-",
            AuditOutcome::Refused,
            AppError::from(error.clone()).status,
            "a password link was refused: unknown, used or expired, or a password not good enough",
        ),
    };
    let event = NewAuditEvent {
        actor_kind,
        actor,
        token: None,
        client_addr: client,
        use_case: "password.set_by_link",
        target: outcome.as_ref().ok().copied(),
        app: None,
        outcome: result,
        status: Some(status.as_u16()),
        detail: Some(detail),
    };
    record(state, &event).await;
}

/// Records what a delegate did that changes who runs the work: registering. Its task
/// outcomes stay in the task history rather than here, one per task, which would drown the
/// people's events.
pub async fn record_delegate(
    state: &AppState,
    delegate: &str,
    token: &str,
    client: Option<IpAddr>,
    use_case: &str,
    detail: &str,
) {
    let event = NewAuditEvent {
        actor_kind: ActorKind::Delegate,
        actor: delegate,
        token: Some(token),
        client_addr: client,
        use_case,
        target: Some(delegate),
        app: None,
        outcome: AuditOutcome::Accepted,
        status: Some(StatusCode::OK.as_u16()),
        detail: Some(detail),
    };
    record(state, &event).await;
}
