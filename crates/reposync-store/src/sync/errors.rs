//! Sync errors: what needs a person (a conflict, a push that failed for good, a connection
//! that holds a link, a file read from Git that did not apply), open until it is resolved.

use reposync_model::{AttemptId, BranchId, LinkId, ObjectId, SyncErrorId};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::error::StoreError;
use crate::gate::{Read, Write, WriteTx};
use crate::rows::{id_column, optional_id_column, optional_object_id_column, placeholders_from};
use crate::store::Store;

/// A sync error as stored.
#[derive(Debug, Clone)]
pub struct SyncErrorRecord {
    pub id: SyncErrorId,
    /// The link of the file's scope; none for a file of a scope without one (yet).
    pub link_id: Option<LinkId>,
    /// For errors from reading Git: the branch and the commit.
    pub branch_id: Option<BranchId>,
    pub commit_id: Option<ObjectId>,
    pub attempt_id: Option<AttemptId>,
    pub path: Option<String>,
    pub code: String,
    pub message: String,
    pub ours: Option<Vec<u8>>,
    pub theirs: Option<Vec<u8>>,
    pub created_at: i64,
    /// When and how it was resolved; `None` while it is open.
    pub resolved: Option<(i64, String)>,
}

/// The code of the sync error that says a connection the scope depends on failed its Test.
pub const CONNECTION_FAILED: &str = "connection_failed";

const SYNC_ERROR_COLUMNS: &str = "id, link_id, branch_id, commit_id, attempt_id, path, code, message, ours, theirs, created_at, resolved_at, resolution";

fn sync_error_from_row(r: &AnyRow) -> Result<SyncErrorRecord, StoreError> {
    let resolved_at: Option<i64> = r.try_get("resolved_at")?;
    let resolution: Option<String> = r.try_get("resolution")?;
    Ok(SyncErrorRecord {
        id: id_column(r, "id")?,
        link_id: optional_id_column(r, "link_id")?,
        branch_id: optional_id_column(r, "branch_id")?,
        commit_id: optional_object_id_column(r, "sync_errors", "commit_id")?,
        attempt_id: optional_id_column(r, "attempt_id")?,
        path: r.try_get("path")?,
        code: r.try_get("code")?,
        message: r.try_get("message")?,
        ours: r.try_get("ours")?,
        theirs: r.try_get("theirs")?,
        created_at: r.try_get("created_at")?,
        resolved: resolved_at.map(|at| (at, resolution.unwrap_or_default())),
    })
}

/// Resolves the conflict and overridden errors of `paths` on a link: reposync's change to
/// them is on the branch now, so they no longer say anything true.
pub(crate) async fn resolve_landed_errors(
    tx: &mut WriteTx,
    link_id: &LinkId,
    paths: &[&str],
    now: i64,
) -> Result<(), StoreError> {
    for chunk in paths.chunks(500) {
        let sql = format!(
            "UPDATE sync_errors SET resolved_at = $1, resolution = 'landed'
             WHERE link_id = $2 AND code IN ('conflict', 'overridden') AND resolved_at IS NULL AND path IN ({})",
            placeholders_from(3, chunk.len())
        );
        let mut query = sqlx::query(&sql).bind(now).bind(link_id.as_str());
        for path in chunk {
            query = query.bind(*path);
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

impl Store {
    /// Discards an open sync error: a person has seen it. A conflict's changesets stay as
    /// they are; `sync retry` is what pushes them again.
    pub async fn discard_sync_error(&self, id: &SyncErrorId) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE sync_errors SET resolved_at = $1, resolution = 'discarded' WHERE id = $2 AND resolved_at IS NULL",
        )
        .bind(self.now())
        .bind(id.as_str())
        .write(&self.db)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound {
                what: "open sync error",
                name: id.to_string(),
            });
        }
        Ok(())
    }

    /// Sync errors not yet resolved, oldest first.
    pub async fn open_sync_errors(&self) -> Result<Vec<SyncErrorRecord>, StoreError> {
        let sql = format!(
            "SELECT {SYNC_ERROR_COLUMNS} FROM sync_errors WHERE resolved_at IS NULL ORDER BY created_at, id"
        );
        sqlx::query(&sql)
            .read_all(&self.db)
            .await?
            .iter()
            .map(sync_error_from_row)
            .collect()
    }

    /// The sync errors resolved most recently, newest first, at most `limit`: how each ended
    /// (fixed in Git, landed, retried, discarded…).
    pub async fn resolved_sync_errors(
        &self,
        limit: i64,
    ) -> Result<Vec<SyncErrorRecord>, StoreError> {
        let sql = format!(
            "SELECT {SYNC_ERROR_COLUMNS} FROM sync_errors WHERE resolved_at IS NOT NULL ORDER BY resolved_at DESC, id DESC LIMIT $1"
        );
        sqlx::query(&sql)
            .bind(limit)
            .read_all(&self.db)
            .await?
            .iter()
            .map(sync_error_from_row)
            .collect()
    }
}
