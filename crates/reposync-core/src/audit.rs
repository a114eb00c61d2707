//! Reading the audit trail: a query's filters parsed, each refused by its own name, and the
//! events they select as the API shows them. Recording events is the store's
//! ([`Store::record_audit`]), called by whoever authenticates the request.

use reposync_api::{AuditActorKind, AuditEventView, AuditOutcomeView, AuditQuery, timestamp};
use reposync_model::EntityName;
use reposync_store::{
    ActorKind, AuditEventRecord, AuditFilter, AuditOutcome, MAX_AUDIT_EVENTS_LISTED, Store,
};

use crate::error::CoreError;

/// How many events a query that gives no limit lists.
pub const DEFAULT_LIMIT: u32 = 100;

/// The events `query` selects, newest first.
pub async fn list(store: &Store, query: &AuditQuery) -> Result<Vec<AuditEventView>, CoreError> {
    let filter = filter(query)?;
    Ok(store.list_audit(&filter).await?.iter().map(view).collect())
}

/// The store's filter for `query`: an empty value filters nothing, `since` is an RFC 3339
/// time, `app` an application's name, `limit` 1 to [`MAX_AUDIT_EVENTS_LISTED`].
pub fn filter(query: &AuditQuery) -> Result<AuditFilter, CoreError> {
    let given = |value: &Option<String>| value.clone().filter(|v| !v.is_empty());
    let since = given(&query.since)
        .map(|text| {
            reposync_api::parse_timestamp(&text).ok_or_else(|| {
                CoreError::invalid(
                    "since",
                    format!("{text:?} is not an RFC 3339 time (2026-11-25T10:00:00Z)"),
                )
            })
        })
        .transpose()?;
    let app = given(&query.app)
        .map(|text| {
            EntityName::parse(&text)
                .map(|name| name.as_str().to_owned())
                .map_err(|e| CoreError::invalid("app", e.message))
        })
        .transpose()?;
    let limit = match given(&query.limit) {
        None => DEFAULT_LIMIT,
        Some(text) => text
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_AUDIT_EVENTS_LISTED).contains(n))
            .ok_or_else(|| {
                CoreError::invalid(
                    "limit",
                    format!("{text:?} is not a whole number from 1 to {MAX_AUDIT_EVENTS_LISTED}"),
                )
            })?,
    };
    Ok(AuditFilter {
        user: given(&query.user),
        since,
        app,
        limit,
    })
}

/// An event as the API shows it.
pub fn view(event: &AuditEventRecord) -> AuditEventView {
    AuditEventView {
        id: event.id.clone(),
        at: timestamp(event.at),
        actor_kind: match event.actor_kind {
            ActorKind::User => AuditActorKind::User,
            ActorKind::Delegate => AuditActorKind::Delegate,
            ActorKind::System => AuditActorKind::System,
            ActorKind::Anonymous => AuditActorKind::Anonymous,
        },
        actor: event.actor.clone(),
        token: event.token.clone(),
        client_addr: event.client_addr.map(|addr| addr.to_string()),
        use_case: event.use_case.clone(),
        target: event.target.clone(),
        app: event.app.clone(),
        outcome: match event.outcome {
            AuditOutcome::Accepted => AuditOutcomeView::Accepted,
            AuditOutcome::Refused => AuditOutcomeView::Refused,
            AuditOutcome::Failed => AuditOutcomeView::Failed,
        },
        status: event.status,
        detail: event.detail.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> AuditQuery {
        let value = |name: &str| {
            pairs
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        };
        AuditQuery {
            user: value("user"),
            since: value("since"),
            app: value("app"),
            limit: value("limit"),
        }
    }

    #[test]
    fn a_query_parses_into_the_stores_filter() {
        assert_eq!(
            filter(&AuditQuery::default()).expect("parses"),
            AuditFilter {
                limit: DEFAULT_LIMIT,
                ..AuditFilter::default()
            }
        );
        let parsed = filter(&query(&[
            ("user", "alice"),
            ("since", "2026-11-25T12:00:00+02:00"),
            ("app", "Shop"),
            ("limit", "1000"),
        ]))
        .expect("parses");
        assert_eq!(
            parsed,
            AuditFilter {
                user: Some("alice".into()),
                since: Some(1_795_600_800_000),
                app: Some("Shop".into()),
                limit: 1000,
            }
        );
        let empty = filter(&query(&[
            ("user", ""),
            ("since", ""),
            ("app", ""),
            ("limit", ""),
        ]))
        .expect("parses");
        assert_eq!(empty, filter(&AuditQuery::default()).expect("parses"));
    }

    #[test]
    fn a_wrong_value_is_refused_naming_its_field() {
        for (field, value) in [
            ("since", "yesterday"),
            ("since", "1764064800000"),
            ("limit", "0"),
            ("limit", "1001"),
            ("limit", "-1"),
            ("limit", "ten"),
            ("app", "a/b"),
        ] {
            let error = filter(&query(&[(field, value)])).expect_err(value);
            assert_eq!(error.field.as_deref(), Some(field), "{value}: {error:?}");
            assert_eq!(error.code, "invalid", "{value}");
        }
    }
}
