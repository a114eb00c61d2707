//! What the audit trail records of requests: who, from where, which use case, on what, and
//! how it ended. The access layer records every write through here, and the login handler
//! its attempts; nothing here ever sees a secret value, a password or a token.

use std::net::SocketAddr;

use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, Request};
use axum::serve::IncomingStream;
use reposync_core::users::Caller;

use crate::access::{Facts, Policy};
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
pub fn client_address(request: &Request) -> Option<String> {
    request
        .extensions()
        .get::<ConnectInfo<ClientAddr>>()
        .map(|ConnectInfo(ClientAddr(addr))| addr.ip().to_string())
}

/// Records a write request and its answer.
pub async fn record_request(
    state: &AppState,
    caller: &Caller,
    client: Option<String>,
    policy: &Policy,
    facts: &Facts,
    status: axum::http::StatusCode,
) {
    let _ = state;
    tracing::info!(
        user = %caller.user,
        token = caller.token,
        client = client.as_deref().unwrap_or("-"),
        use_case = policy.use_case,
        target = facts.target.as_deref().unwrap_or("-"),
        app = facts.app().unwrap_or("-"),
        status = status.as_u16(),
        "audit"
    );
}

/// Records a login attempt: accepted with the token it made, or refused, and when it locked
/// someone out, the details admins need.
pub async fn record_login(
    state: &AppState,
    user: &str,
    client: Option<String>,
    outcome: Result<&str, &reposync_core::users::LoginFailed>,
) {
    let _ = state;
    match outcome {
        Ok(token) => tracing::info!(
            user,
            token,
            client = client.as_deref().unwrap_or("-"),
            "audit: login"
        ),
        Err(failed) => tracing::warn!(
            user,
            client = client.as_deref().unwrap_or("-"),
            refusal = ?failed.refusal,
            locked_out = failed.locked_out.as_deref().unwrap_or("-"),
            "audit: login refused"
        ),
    }
}
