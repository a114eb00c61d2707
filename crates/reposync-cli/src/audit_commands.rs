//! `reposync audit`: the audit trail, newest first.

use std::process::ExitCode;

use reposync_api::{AuditActorKind, AuditEventView, AuditOutcomeView, AuditQuery, ListResponse};

use crate::Globals;
use crate::client_commands::client;
use crate::output::{column, listing, local_time, table_in, wide_column};

/// `reposync audit`'s filters.
#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// Only what this user (or delegate) did, and failed logins as this name.
    #[arg(long, value_name = "USER")]
    user: Option<String>,
    /// Only events since this time: RFC 3339 (`2026-11-25T10:00:00Z`) or a duration back from
    /// now (`90s`, `30m`, `24h`, `7d`, `2w`).
    #[arg(long, value_name = "TIME", value_parser = parse_since)]
    since: Option<String>,
    /// Only events in this application.
    #[arg(long, value_name = "APP")]
    app: Option<String>,
    /// How many to show, newest first (1 to 1000).
    #[arg(
        long,
        value_name = "N",
        default_value_t = 100,
        value_parser = clap::value_parser!(u32).range(1..=1000)
    )]
    limit: u32,
}

pub async fn audit(args: AuditArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let query = AuditQuery {
        user: args.user,
        since: args.since,
        app: args.app,
        limit: Some(args.limit.to_string()),
    };
    let answer = client(globals)?.audit(&query).await?;
    listing(
        globals.output,
        answer,
        |list: ListResponse<AuditEventView>, format| {
            let rows: Vec<Vec<String>> = list.items.iter().map(row).collect();
            table_in(
                format,
                &[
                    column("TIME"),
                    column("USER"),
                    wide_column("TOKEN"),
                    wide_column("ADDRESS"),
                    column("USE CASE"),
                    column("TARGET"),
                    column("APP"),
                    column("OUTCOME"),
                    wide_column("ID"),
                ],
                &rows,
            );
        },
    )?;
    Ok(ExitCode::SUCCESS)
}

/// One event's cells, the wide ones included.
fn row(event: &AuditEventView) -> Vec<String> {
    let dash = |value: &Option<String>| value.clone().unwrap_or_else(|| "-".into());
    vec![
        local_time(&event.at),
        who(event),
        dash(&event.token),
        dash(&event.client_addr),
        event.use_case.clone(),
        dash(&event.target),
        dash(&event.app),
        outcome(event),
        event.id.clone(),
    ]
}

/// The actor, with what kind of actor it is unless a user.
fn who(event: &AuditEventView) -> String {
    match event.actor_kind {
        AuditActorKind::User => event.actor.clone(),
        AuditActorKind::Delegate => format!("{} (delegate)", event.actor),
        AuditActorKind::System => format!("{} (system)", event.actor),
        AuditActorKind::Anonymous => format!("{} (not signed in)", event.actor),
    }
}

/// `accepted`, or `refused 403: needs editor in application Shop`.
fn outcome(event: &AuditEventView) -> String {
    let mut text = match event.outcome {
        AuditOutcomeView::Accepted => "accepted",
        AuditOutcomeView::Refused => "refused",
        AuditOutcomeView::Failed => "failed",
    }
    .to_owned();
    if let Some(status) = event.status {
        text.push_str(&format!(" {status}"));
    }
    if let Some(detail) = &event.detail {
        text.push_str(&format!(": {detail}"));
    }
    text
}

/// `--since`: an RFC 3339 time, or a duration back from now (a whole number and `s`, `m`,
/// `h`, `d` or `w`), as the RFC 3339 time the API takes.
fn parse_since(text: &str) -> Result<String, String> {
    since_at(text, time::OffsetDateTime::now_utc())
}

fn since_at(text: &str, now: time::OffsetDateTime) -> Result<String, String> {
    use time::format_description::well_known::Rfc3339;
    let wrong = || {
        format!(
            "{text:?} is neither an RFC 3339 time (2026-11-25T10:00:00Z) nor a duration back from now (30m, 24h, 7d)"
        )
    };
    if let Ok(at) = time::OffsetDateTime::parse(text, &Rfc3339) {
        return at.format(&Rfc3339).map_err(|_| wrong());
    }
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(wrong)?;
    let (number, unit) = text.split_at(split);
    let number: i64 = number.parse().map_err(|_| wrong())?;
    let seconds_each = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 60 * 60,
        "d" => 24 * 60 * 60,
        "w" => 7 * 24 * 60 * 60,
        _ => return Err(wrong()),
    };
    number
        .checked_mul(seconds_each)
        .and_then(|seconds| now.checked_sub(time::Duration::seconds(seconds)))
        .and_then(|at| at.format(&Rfc3339).ok())
        .ok_or_else(wrong)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_a_time_or_a_duration_back_from_now() {
        let now = time::macros::datetime!(2026-11-25 10:00:00 UTC);
        for (given, expected) in [
            ("2026-11-24T08:30:00Z", "2026-11-24T08:30:00Z"),
            ("2026-11-24T10:30:00+02:00", "2026-11-24T10:30:00+02:00"),
            ("90s", "2026-11-25T09:58:30Z"),
            ("30m", "2026-11-25T09:30:00Z"),
            ("24h", "2026-11-24T10:00:00Z"),
            ("7d", "2026-11-18T10:00:00Z"),
            ("2w", "2026-11-11T10:00:00Z"),
        ] {
            assert_eq!(since_at(given, now).as_deref(), Ok(expected), "{given}");
        }
        for wrong in [
            "",
            "7",
            "d",
            "7y",
            "-7d",
            "7 d",
            "yesterday",
            "99999999999999999999d",
        ] {
            let error = since_at(wrong, now).expect_err(wrong);
            assert!(error.contains("RFC 3339"), "{wrong}: {error}");
        }
    }

    #[test]
    fn the_outcome_says_its_status_and_why() {
        let mut event: AuditEventView = serde_json::from_value(serde_json::json!({
            "id": "e", "at": "2026-11-25T10:00:00Z", "actor_kind": "anonymous",
            "actor": "mallory", "token": null, "client_addr": null, "use_case": "login",
            "target": null, "app": null, "outcome": "refused", "status": 401,
            "detail": "wrong password"
        }))
        .expect("an event");
        assert_eq!(outcome(&event), "refused 401: wrong password");
        assert_eq!(who(&event), "mallory (not signed in)");
        event.status = None;
        event.detail = None;
        event.outcome = AuditOutcomeView::Accepted;
        assert_eq!(outcome(&event), "accepted");
        let cells = row(&event);
        assert_eq!(cells.len(), 9, "one cell per column");
        assert_eq!(cells[2], "-", "no token");
    }
}
