//! The audit trail: one row per write through the API, and per login, failed login, token
//! creation or revocation and role change, read back newest first and pruned by its own age
//! ([`Store::prune_history`]).
//!
//! What a row holds is chosen by whoever records it, so the types say what may go in: a
//! token's *name*, a client's IP address, a short reason. No secret value, password or token
//! may ever be given; nothing here could tell one apart from a name. Free text is cut to a
//! bound ([`bounded`]), since a failed login records the name someone tried, whatever it was.

use std::net::IpAddr;

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::error::StoreError;
use crate::gate::{Read, Write};
use crate::rows::new_id;
use crate::store::Store;
use crate::webhook_log::bounded;

/// The most events one listing returns, whatever it asks for.
pub const MAX_AUDIT_EVENTS_LISTED: u32 = 1000;

/// The most bytes of a name (actor, token, use case) an event keeps.
const MAX_NAME_BYTES: usize = 256;
/// The most bytes of a target or a detail an event keeps.
const MAX_TEXT_BYTES: usize = 1024;

/// Who acted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActorKind {
    /// A user, with their own token or a login.
    User,
    /// A delegate, with a delegate token.
    Delegate,
    /// reposync itself (`reposync` as the actor): a worker, a start.
    System,
    /// Someone not authenticated: a failed login, with the name they tried as the actor.
    Anonymous,
}

impl ActorKind {
    /// Every kind.
    pub const ALL: [ActorKind; 4] = [
        ActorKind::User,
        ActorKind::Delegate,
        ActorKind::System,
        ActorKind::Anonymous,
    ];

    /// `user`, `delegate`, `system` or `anonymous`.
    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::User => "user",
            ActorKind::Delegate => "delegate",
            ActorKind::System => "system",
            ActorKind::Anonymous => "anonymous",
        }
    }

    /// The kind [`ActorKind::as_str`] writes as `text`, if any.
    pub fn parse(text: &str) -> Option<ActorKind> {
        ActorKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == text)
    }
}

impl std::fmt::Display for ActorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How an audited request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditOutcome {
    /// It was done (or, for a request answered with a task, accepted to be done).
    Accepted,
    /// It was refused: not authenticated, not allowed, or not valid.
    Refused,
    /// It was allowed and valid but reposync failed to do it.
    Failed,
}

impl AuditOutcome {
    /// Every outcome.
    pub const ALL: [AuditOutcome; 3] = [
        AuditOutcome::Accepted,
        AuditOutcome::Refused,
        AuditOutcome::Failed,
    ];

    /// `accepted`, `refused` or `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditOutcome::Accepted => "accepted",
            AuditOutcome::Refused => "refused",
            AuditOutcome::Failed => "failed",
        }
    }

    /// The outcome [`AuditOutcome::as_str`] writes as `text`, if any.
    pub fn parse(text: &str) -> Option<AuditOutcome> {
        AuditOutcome::ALL
            .into_iter()
            .find(|outcome| outcome.as_str() == text)
    }
}

impl std::fmt::Display for AuditOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An event to record; its id and time are the store's.
#[derive(Debug, Clone, Copy)]
pub struct NewAuditEvent<'a> {
    pub actor_kind: ActorKind,
    /// The user's or delegate's name, `reposync` for the system, or for a failed login the
    /// name someone tried.
    pub actor: &'a str,
    /// The name of the token used, never its value.
    pub token: Option<&'a str>,
    pub client_addr: Option<IpAddr>,
    /// What was asked for: `tree.apply`, `user.create`, `login`…
    pub use_case: &'a str,
    /// What it was about: a path, a connector, a secret's or a user's name.
    pub target: Option<&'a str>,
    /// The application the target is in, for listing an application's events.
    pub app: Option<&'a str>,
    pub outcome: AuditOutcome,
    /// The HTTP status answered, when there was one.
    pub status: Option<u16>,
    /// A short reason (`needs editor in application Shop`); never a value sent.
    pub detail: Option<&'a str>,
}

/// A recorded event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEventRecord {
    pub id: String,
    /// Milliseconds since the epoch.
    pub at: i64,
    pub actor_kind: ActorKind,
    pub actor: String,
    pub token: Option<String>,
    pub client_addr: Option<IpAddr>,
    pub use_case: String,
    pub target: Option<String>,
    pub app: Option<String>,
    pub outcome: AuditOutcome,
    pub status: Option<u16>,
    pub detail: Option<String>,
}

/// Which events to list: each filter narrows, and `limit` bounds (at most
/// [`MAX_AUDIT_EVENTS_LISTED`], at least one).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Only events whose actor has this name (of whatever kind).
    pub user: Option<String>,
    /// Only events at or after this time (milliseconds since the epoch).
    pub since: Option<i64>,
    /// Only events in this application.
    pub app: Option<String>,
    pub limit: u32,
}

impl Store {
    /// Records `event` at the store's time now.
    pub async fn record_audit(&self, event: &NewAuditEvent<'_>) -> Result<(), StoreError> {
        let name = |text: &str| bounded(text, MAX_NAME_BYTES).into_owned();
        let text = |text: &str| bounded(text, MAX_TEXT_BYTES).into_owned();
        sqlx::query(
            "INSERT INTO audit_events (id, at, actor_kind, actor, token, client_addr, use_case,
                 target, app, outcome, status, detail)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(new_id::<String>())
        .bind(self.now())
        .bind(event.actor_kind.as_str())
        .bind(name(event.actor))
        .bind(event.token.map(name))
        .bind(event.client_addr.map(|addr| addr.to_string()))
        .bind(name(event.use_case))
        .bind(event.target.map(text))
        .bind(event.app.map(name).unwrap_or_default())
        .bind(event.outcome.as_str())
        .bind(event.status.map(i64::from))
        .bind(event.detail.map(text))
        .write(&self.db)
        .await?;
        Ok(())
    }

    /// The events `filter` selects, newest first.
    pub async fn list_audit(
        &self,
        filter: &AuditFilter,
    ) -> Result<Vec<AuditEventRecord>, StoreError> {
        let mut conditions = Vec::new();
        let mut texts = Vec::new();
        if let Some(user) = &filter.user {
            texts.push(user.as_str());
            conditions.push(format!("actor = ${}", texts.len()));
        }
        if let Some(app) = &filter.app {
            texts.push(app.as_str());
            conditions.push(format!("app = ${}", texts.len()));
        }
        let mut next = texts.len() + 1;
        if filter.since.is_some() {
            conditions.push(format!("at >= ${next}"));
            next += 1;
        }
        let mut sql = String::from(
            "SELECT id, at, actor_kind, actor, token, client_addr, use_case, target, app, outcome,
                 status, detail FROM audit_events",
        );
        if !conditions.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&conditions.join(" AND "));
        }
        sql.push_str(&format!(" ORDER BY at DESC, id DESC LIMIT ${next}"));
        let mut query = sqlx::query(&sql);
        for text in texts {
            query = query.bind(text);
        }
        if let Some(since) = filter.since {
            query = query.bind(since);
        }
        let limit = filter.limit.clamp(1, MAX_AUDIT_EVENTS_LISTED);
        query
            .bind(i64::from(limit))
            .read_all(&self.db)
            .await?
            .iter()
            .map(audit_event)
            .collect()
    }
}

fn audit_event(row: &AnyRow) -> Result<AuditEventRecord, StoreError> {
    let corrupt =
        |column: &str, text: &str| StoreError::Corrupt(format!("audit_events.{column}: {text:?}"));
    let kind: String = row.try_get("actor_kind")?;
    let outcome: String = row.try_get("outcome")?;
    let client_addr = row
        .try_get::<Option<String>, _>("client_addr")?
        .map(|text| text.parse().map_err(|_| corrupt("client_addr", &text)))
        .transpose()?;
    let status = row
        .try_get::<Option<i64>, _>("status")?
        .map(|status| u16::try_from(status).map_err(|_| corrupt("status", &status.to_string())))
        .transpose()?;
    let app: String = row.try_get("app")?;
    Ok(AuditEventRecord {
        id: row.try_get("id")?,
        at: row.try_get("at")?,
        actor_kind: ActorKind::parse(&kind).ok_or_else(|| corrupt("actor_kind", &kind))?,
        actor: row.try_get("actor")?,
        token: row.try_get("token")?,
        client_addr,
        use_case: row.try_get("use_case")?,
        target: row.try_get("target")?,
        app: (!app.is_empty()).then_some(app),
        outcome: AuditOutcome::parse(&outcome).ok_or_else(|| corrupt("outcome", &outcome))?,
        status,
        detail: row.try_get("detail")?,
    })
}
