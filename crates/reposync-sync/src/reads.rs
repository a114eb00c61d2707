//! What the store keeps of each read of a branch: how the delegate says it read (the method,
//! why, the method it fell back from and why) and what the read cost, for `sync activity`.
//! One place turns a delegate's answer into that record, for the inbox's reads and for the
//! read that enables sync alike.

use reposync_api::{ReadReport, SyncJobResult};
use reposync_model::ObjectId;
use reposync_store::{BranchRead, ReadKind};

use crate::outbox::JobAnswer;

/// How the read `answer` carries was done, as the store records it: the branch read whole
/// when sync is enabled, the commits since the last one read, or the branch read whole by the
/// inbox. `None` when the answer is not a read, or comes from a delegate that predates
/// reporting how it read.
pub fn read_of(answer: &JobAnswer) -> Option<BranchRead> {
    let (kind, head, report) = match &answer.result {
        SyncJobResult::Branch { head, read, .. } => (ReadKind::Enable, head.as_deref(), read),
        SyncJobResult::Commits { head, read, .. } => {
            (ReadKind::Incremental, Some(head.as_str()), read)
        }
        SyncJobResult::Snapshot { head, read, .. } => {
            (ReadKind::Snapshot, Some(head.as_str()), read)
        }
        _ => return None,
    };
    let report: &ReadReport = report.as_ref()?;
    Some(BranchRead {
        kind,
        // A head that does not parse fails the read where it is used; the record of how the
        // read was done does without it.
        head: head.and_then(|head| ObjectId::parse(head).ok()),
        method: report.method.clone(),
        reason: report.reason.clone(),
        fallback_from: report.fallback_from.clone(),
        fallback_reason: report.fallback_reason.clone(),
        requests: report.requests,
        bytes: report.bytes,
        duration_ms: report.duration_ms,
        task_id: answer.task.clone(),
    })
}

#[cfg(test)]
mod tests {
    use reposync_model::TaskId;
    use serde_json::{Value, json};

    use super::*;

    /// A delegate's answer as the wire carries it, by task `task`.
    fn answer(result: Value) -> JobAnswer {
        JobAnswer {
            result: serde_json::from_value(result).expect("a sync result"),
            task: Some(TaskId::new("t1")),
        }
    }

    fn report() -> Value {
        json!({
            "method": "git",
            "reason": "REST refused",
            "fallback_from": "dc-archive",
            "fallback_reason": "archive took no path filter",
            "requests": 1,
            "bytes": 2048,
            "duration_ms": 300
        })
    }

    #[test]
    fn each_read_is_recorded_as_its_kind_with_what_the_delegate_reported() {
        let head = "a".repeat(40);
        let enable = read_of(&answer(json!({
            "status": "branch", "head": null, "files": [], "read": report()
        })))
        .expect("a read");
        assert_eq!((enable.kind, enable.head), (ReadKind::Enable, None));
        assert_eq!(enable.method, "git");
        assert_eq!(enable.fallback_from.as_deref(), Some("dc-archive"));
        assert_eq!(
            enable.fallback_reason.as_deref(),
            Some("archive took no path filter")
        );
        assert_eq!(
            (enable.requests, enable.bytes, enable.duration_ms),
            (1, 2048, 300)
        );
        assert_eq!(enable.task_id, Some(TaskId::new("t1")));

        let incremental = read_of(&answer(json!({
            "status": "commits", "head": head, "commits": [], "complete": true, "read": report()
        })))
        .expect("a read");
        assert_eq!(incremental.kind, ReadKind::Incremental);
        assert_eq!(
            incremental.head.as_ref().map(ObjectId::as_str),
            Some(&*head)
        );

        let snapshot = read_of(&answer(json!({
            "status": "snapshot", "head": head, "files": [], "since_lost": true, "read": report()
        })))
        .expect("a read");
        assert_eq!(snapshot.kind, ReadKind::Snapshot);
    }

    #[test]
    fn an_answer_without_a_report_or_that_is_no_read_records_nothing() {
        let old_delegate = answer(json!({
            "status": "commits", "head": "a".repeat(40), "commits": [], "complete": true
        }));
        assert_eq!(read_of(&old_delegate), None);
        assert_eq!(read_of(&answer(json!({"status": "branch_gone"}))), None);
    }
}
