//! Git Sync's activity: the changesets going out, the commit attempts that carry them, the
//! commits read from Git, and how each read of a branch was done, newest first, for the API
//! and the web UI alike.

use std::collections::HashMap;

use reposync_api::{
    ChangedFileView, ChangesetView, CommitAttemptView, InboundCommitView, ReadView, SyncActivity,
    TreeProblemView, timestamp,
};
use reposync_model::{LinkId, TaskId};
use reposync_store::{ChangesetRecord, FileChangeRecord, ReadRecord, Store};

use crate::error::CoreError;

/// The activity of one application (its earlier links included) or of everything: at most
/// `limit` of each kind (100 unless given, at most 10,000), newest first.
pub async fn activity(
    store: &Store,
    app: Option<&str>,
    limit: Option<i64>,
) -> Result<SyncActivity, CoreError> {
    let limit = limit.unwrap_or(100).clamp(1, 10_000);
    let scopes = crate::links::scopes_by_link(store).await?;
    // An application's activity includes that of its earlier, disabled links.
    let ids: Vec<LinkId> = match app.filter(|a| !a.is_empty()) {
        Some(app) => {
            let ids: Vec<LinkId> = store
                .all_links()
                .await?
                .into_iter()
                .filter(|l| l.app.as_deref() == Some(app))
                .map(|l| l.id)
                .collect();
            if ids.is_empty() {
                return Err(CoreError::not_found(format!(
                    "application {app:?} has never been synced"
                ))
                .with_field("app"));
            }
            ids
        }
        None => Vec::new(),
    };
    let scope = |link_id: &LinkId| scopes.get(link_id).cloned().unwrap_or_default();
    let changesets = store
        .list_changesets(&ids, limit)
        .await?
        .into_iter()
        .map(|c| changeset_view(&c, scope(&c.link_id)))
        .collect();
    let attempts = store.list_attempts(&ids, limit).await?;
    let task_ids: Vec<TaskId> = attempts.iter().filter_map(|a| a.task_id.clone()).collect();
    let delegates = store.task_delegates(&task_ids).await?;
    let attempts = attempts
        .into_iter()
        .map(|a| CommitAttemptView {
            delegate: a.task_id.as_ref().and_then(|t| delegates.get(t).cloned()),
            scope: scope(&a.link_id),
            id: a.id,
            status: a.status,
            changesets: a.changesets,
            files: files_view(&a.files),
            commit_id: a.commit_id,
            error: a.error,
            started_at: timestamp(a.started_at),
            finished_at: a.finished_at.map(timestamp),
        })
        .collect();
    // Commits read from Git, and how the branches were read: of the branches the selected
    // links read, or all.
    let mut branch_ids = Vec::new();
    if !ids.is_empty() {
        for link in store.all_links().await? {
            if ids.contains(&link.id)
                && let Some(branch) = store.branch_of_link(&link).await?
                && !branch_ids.contains(&branch.id)
            {
                branch_ids.push(branch.id);
            }
        }
    }
    let any_branch = ids.is_empty() || !branch_ids.is_empty();
    let inbound = if any_branch {
        store
            .list_inbound_commits(&branch_ids, limit)
            .await?
            .into_iter()
            .map(|c| InboundCommitView {
                warnings: c
                    .files
                    .iter()
                    .flat_map(|f| {
                        f.warnings.iter().map(|w| TreeProblemView {
                            path: f.path.clone(),
                            line: w.line,
                            column: w.column,
                            message: w.message.clone(),
                        })
                    })
                    .collect(),
                commit_id: c.commit_id,
                branch: c.branch,
                status: c.status,
                files: c
                    .files
                    .into_iter()
                    .map(|f| ChangedFileView {
                        op: f.op,
                        path: match f.from {
                            Some(from) => format!("{from} -> {}", f.path),
                            None => f.path,
                        },
                    })
                    .collect(),
                errors: u64::try_from(c.errors).unwrap_or_default(),
                author: c.author,
                subject: c.message.lines().next().unwrap_or_default().to_owned(),
                applied_at: timestamp(c.applied_at),
            })
            .collect()
    } else {
        Vec::new()
    };
    let reads = if any_branch {
        let reads = store.list_reads(&branch_ids, limit).await?;
        let task_ids: Vec<TaskId> = reads
            .iter()
            .filter_map(|r| r.read.task_id.clone())
            .collect();
        let delegates = store.task_delegates(&task_ids).await?;
        reads
            .into_iter()
            .map(|r| read_view(r, &delegates))
            .collect()
    } else {
        Vec::new()
    };
    Ok(SyncActivity {
        changesets,
        attempts,
        inbound,
        reads,
    })
}

/// A read as the API shows it; `delegates` names the delegate of each task still kept.
fn read_view(record: ReadRecord, delegates: &HashMap<TaskId, String>) -> ReadView {
    let read = record.read;
    ReadView {
        delegate: read
            .task_id
            .as_ref()
            .and_then(|task| delegates.get(task).cloned()),
        branch: record.branch,
        kind: read.kind.as_str().to_owned(),
        head: read.head,
        method: read.method,
        reason: read.reason,
        fallback_from: read.fallback_from,
        fallback_reason: read.fallback_reason,
        requests: read.requests,
        bytes: read.bytes,
        duration_ms: read.duration_ms,
        read_at: timestamp(record.read_at),
    }
}

pub fn files_view(files: &[FileChangeRecord]) -> Vec<ChangedFileView> {
    files
        .iter()
        .map(|f| ChangedFileView {
            op: f.op.as_str().to_owned(),
            path: f.path.clone(),
        })
        .collect()
}

pub fn changeset_view(c: &ChangesetRecord, scope: String) -> ChangesetView {
    ChangesetView {
        id: c.id.clone(),
        scope,
        status: c.status.as_str().to_owned(),
        files: files_view(&c.files),
        attempt_id: c.attempt_id.clone(),
        commit_id: c.commit_id.clone(),
        error: c.error.clone(),
        created_at: timestamp(c.created_at),
        updated_at: timestamp(c.updated_at),
    }
}
