//! Filling the outbox: a batch of changes to the tree writes one changeset per live link whose
//! scope it touched, in the batch's own transaction.

use std::collections::HashMap;

use reposync_model::scope::app_of_path;
use reposync_model::{LinkId, Person};

use crate::error::StoreError;
use crate::gate::WriteTx;
use crate::records::ChangeOutcome;
use crate::sync::changesets::{FileChangeRecord, FileOp, insert_changeset};
use crate::sync::links::{LINK_COLUMNS, SyncLink, link_from_row};

/// Writes one changeset per live link for the files a batch changed, inside the batch's
/// transaction: the change and its way out to Git commit together or not at all. Each records
/// `by`, the person who made the change. Returns how many were written.
pub(crate) async fn record_changesets(
    tx: &mut WriteTx,
    outcomes: &[(String, ChangeOutcome)],
    by: Option<&Person>,
    now: i64,
) -> Result<usize, StoreError> {
    // An application renamed in this batch (its Index.yaml deleted under one name and created
    // under another) keeps its link: the link follows it, so that the new folder is pushed
    // in the same commit that deletes the old one.
    let index_of = |path: &str| reposync_model::scope::app_of_index(path).map(str::to_owned);
    let deleted_apps: Vec<String> = outcomes
        .iter()
        .filter(|(_, o)| *o == ChangeOutcome::Deleted)
        .filter_map(|(p, _)| index_of(p))
        .collect();
    let created_apps: Vec<String> = outcomes
        .iter()
        .filter(|(_, o)| *o == ChangeOutcome::Created)
        .filter_map(|(p, _)| index_of(p))
        .collect();
    let renamed = match (deleted_apps.as_slice(), created_apps.as_slice()) {
        ([from], [to]) => Some((from.clone(), to.clone())),
        _ => None,
    };
    if let Some((from, to)) = &renamed {
        sqlx::query(
            "UPDATE sync_links SET app = $1, updated_at = $2 WHERE app = $3 AND enabled = 1
             AND NOT EXISTS (SELECT 1 FROM sync_links WHERE app = $1 AND enabled = 1)",
        )
        .bind(to)
        .bind(now)
        .bind(from)
        .execute(&mut **tx)
        .await?;
    }
    let links: Vec<SyncLink> = sqlx::query(&format!(
        "SELECT {LINK_COLUMNS} FROM sync_links WHERE enabled = 1"
    ))
    .fetch_all(&mut **tx)
    .await?
    .iter()
    .map(link_from_row)
    .collect::<Result<_, _>>()?;
    if links.is_empty() {
        return Ok(0);
    }
    let mut per_link: HashMap<&LinkId, Vec<FileChangeRecord>> = HashMap::new();
    for (path, outcome) in outcomes {
        let op = match outcome {
            ChangeOutcome::Created => FileOp::Add,
            ChangeOutcome::Changed => FileOp::Modify,
            ChangeOutcome::Deleted => FileOp::Delete,
            ChangeOutcome::Unchanged => continue,
        };
        // The old folder's deletions go to the link that followed the application.
        let app = match (app_of_path(path), &renamed) {
            (Some(app), Some((from, to))) if app == from => Some(to.as_str()),
            (app, _) => app,
        };
        if let Some(link) = links.iter().find(|l| l.app.as_deref() == app) {
            per_link
                .entry(&link.id)
                .or_default()
                .push(FileChangeRecord {
                    op,
                    path: path.clone(),
                });
        }
    }
    let written = per_link.len();
    for (link_id, files) in per_link {
        insert_changeset(tx, link_id, &files, by, now).await?;
    }
    Ok(written)
}
