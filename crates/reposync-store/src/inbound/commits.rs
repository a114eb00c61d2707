//! Commits read from Git: what became of each (applied, partly, failed, reposync's own…), the
//! errors of its files, and the branch position it moves on. Recording one settles the
//! changesets it carried and the conflicts it answered.

use reposync_model::{BranchId, ChangesetId, LinkId, ObjectId, SyncErrorId};
use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::error::StoreError;
use crate::gate::{Read, WriteTx};
use crate::rows::{id_column, new_id, object_id_column, placeholders_from};
use crate::store::Store;
use crate::sync::branches::{BRANCH_COLUMNS, branch_from_row};
use crate::sync::changesets::{FileChangeRecord, mark_pushed};
use crate::sync::errors::resolve_landed_errors;
use crate::sync::links::NewSyncLink;

/// A commit read from Git, as recorded.
#[derive(Debug, Clone)]
pub struct InboundCommitRecord {
    pub commit_id: ObjectId,
    pub branch: String,
    pub status: String,
    pub files: Vec<InboundFile>,
    pub errors: i64,
    pub author: String,
    pub message: String,
    pub applied_at: i64,
}

/// What became of a commit read from Git.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboundStatus {
    /// Every file of ours in it applied.
    Applied,
    /// Some files applied, some became sync errors.
    Partial,
    /// Every file of ours in it became a sync error.
    Failed,
    /// reposync made it: recognised, not applied again.
    Ours,
    /// It changed nothing that reposync syncs.
    Nothing,
    /// Not a commit but the whole branch read at once (a first sync, or history rewritten).
    Snapshot,
}

impl InboundStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            InboundStatus::Applied => "applied",
            InboundStatus::Partial => "partial",
            InboundStatus::Failed => "failed",
            InboundStatus::Ours => "ours",
            InboundStatus::Nothing => "nothing",
            InboundStatus::Snapshot => "snapshot",
        }
    }
}

/// A file of a commit read from Git: `op` is ADD, MODIFY, DELETE or RENAME (from `from`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboundFile {
    pub op: String,
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// What was worth a look in the file as read (an unknown key, a mixed-script name): it
    /// applied all the same. Kept in the commit's `files` JSON, so sync activity shows it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<InboundWarning>,
}

/// A warning about a file read from Git, at its line (0 for the file as a whole).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboundWarning {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// A file of a commit that could not be applied, as a Git Sync error.
#[derive(Debug, Clone)]
pub struct FileError {
    pub path: String,
    /// The link of the file's scope, when it has one.
    pub link_id: Option<LinkId>,
    /// `invalid_file`, `depends_on_failed`, `not_synced`, `overridden`, …
    pub code: String,
    pub message: String,
    /// The file's content in the commit.
    pub theirs: Option<Vec<u8>>,
    /// reposync's content, when reposync's version won over it.
    pub ours: Option<Vec<u8>>,
}

/// A commit read from Git and what became of it, recorded with its changes.
#[derive(Debug, Clone)]
pub struct InboundCommit {
    pub branch_id: BranchId,
    pub commit_id: ObjectId,
    pub status: InboundStatus,
    pub files: Vec<InboundFile>,
    pub message: String,
    pub author: String,
    pub errors: Vec<FileError>,
    /// For one of reposync's own commits, the changesets its trailers name: they are on the
    /// branch, whatever their push's answer said (or if it never came).
    pub changesets: Vec<ChangesetId>,
    /// Paths that applied: their open errors from earlier commits are resolved.
    pub fixed: Vec<String>,
    /// Applications the commit brought that reposync did not have: linked to this branch.
    pub new_apps: Vec<String>,
}

/// Opens one error per file read from `commit_id` of a branch, each replacing the file's open
/// error: one current error per file.
/// Opens errors about files of a link's branch read at `commit_id` outside the reading of a
/// commit (what `sync enable` found on the branch), each replacing the file's open error.
pub(crate) async fn record_branch_errors_in(
    tx: &mut WriteTx,
    link: &NewSyncLink,
    commit_id: &ObjectId,
    errors: &[FileError],
    now: i64,
) -> Result<(), StoreError> {
    let row = sqlx::query(
        "SELECT id FROM sync_branches WHERE connector_id = $1 AND repo = $2 AND branch = $3",
    )
    .bind(link.connector_id.as_str())
    .bind(link.repo.clone().unwrap_or_default())
    .bind(&link.branch)
    .fetch_one(&mut **tx)
    .await?;
    let branch_id: BranchId = id_column(&row, "id")?;
    insert_file_errors(tx, &branch_id, commit_id, errors, now).await
}

async fn insert_file_errors(
    tx: &mut WriteTx,
    branch_id: &BranchId,
    commit_id: &ObjectId,
    errors: &[FileError],
    now: i64,
) -> Result<(), StoreError> {
    for error in errors {
        sqlx::query(
            "UPDATE sync_errors SET resolved_at = $1, resolution = 'superseded' WHERE branch_id = $2 AND path = $3 AND resolved_at IS NULL",
        )
        .bind(now)
        .bind(branch_id.as_str())
        .bind(&error.path)
        .execute(&mut **tx)
        .await?;
        sqlx::query(
            "INSERT INTO sync_errors (id, link_id, branch_id, commit_id, path, code, message, ours, theirs, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(new_id::<SyncErrorId>().into_string())
        .bind(error.link_id.clone().map(LinkId::into_string))
        .bind(branch_id.as_str())
        .bind(commit_id.as_str())
        .bind(&error.path)
        .bind(&error.code)
        .bind(&error.message)
        .bind(error.ours.clone())
        .bind(error.theirs.clone())
        .bind(now)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// The paths of changes reposync accepted for this branch's scopes and has not pushed yet.
pub(crate) async fn pending_paths(
    conn: &mut sqlx::AnyConnection,
    branch_id: &BranchId,
) -> Result<std::collections::HashSet<String>, StoreError> {
    let rows = sqlx::query(
        "SELECT c.files FROM changesets c JOIN sync_links l ON l.id = c.link_id JOIN sync_branches b
             ON l.connector_id = b.connector_id AND l.repo = b.repo AND l.branch = b.branch
         WHERE b.id = $1 AND l.enabled = 1 AND c.status IN ('waiting', 'pushing', 'conflict')",
    )
    .bind(branch_id.as_str())
    .fetch_all(&mut *conn)
    .await?;
    let mut paths = std::collections::HashSet::new();
    for row in rows {
        let files: String = row.try_get("files")?;
        let files: Vec<FileChangeRecord> = serde_json::from_str(&files)
            .map_err(|e| StoreError::Corrupt(format!("changeset files: {e}")))?;
        paths.extend(files.into_iter().map(|f| f.path));
    }
    Ok(paths)
}

/// Records the changesets that one of reposync's own commits carries as pushed by it, and
/// resolves the conflict and overridden errors of their files. A push whose answer was lost
/// (the server died after it landed) is settled here as soon as its commit is read back.
async fn settle_own_changesets(
    tx: &mut WriteTx,
    changeset_ids: &[ChangesetId],
    commit: &ObjectId,
    now: i64,
) -> Result<(), StoreError> {
    for id in changeset_ids {
        let Some(row) = sqlx::query("SELECT link_id, files FROM changesets WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(&mut **tx)
            .await?
        else {
            continue;
        };
        if !mark_pushed(tx, id, Some(commit), now).await? {
            continue;
        }
        tracing::info!(changeset = %id, %commit, "a change whose push was not recorded is on the branch");
        let link_id: LinkId = id_column(&row, "link_id")?;
        let files: String = row.try_get("files")?;
        let files: Vec<FileChangeRecord> = serde_json::from_str(&files)
            .map_err(|e| StoreError::Corrupt(format!("changeset files: {e}")))?;
        let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        resolve_landed_errors(tx, &link_id, &paths, now).await?;
    }
    Ok(())
}

/// Records a commit read from Git inside the transaction that applied it: its row, its
/// files' errors (and the errors it fixed), links for the applications it brought, and the
/// branch's new position, which every live link on the branch now builds on. Changesets held
/// in conflict go back to waiting: Git's side is read, so reposync's change wins. Returns how
/// many changesets went back to waiting.
pub(crate) async fn record_inbound(
    tx: &mut WriteTx,
    inbound: &InboundCommit,
    now: i64,
) -> Result<u64, StoreError> {
    let branch = sqlx::query(&format!(
        "SELECT {BRANCH_COLUMNS} FROM sync_branches WHERE id = $1"
    ))
    .bind(inbound.branch_id.as_str())
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(|| StoreError::NotFound {
        what: "sync branch",
        name: inbound.branch_id.to_string(),
    })?;
    let branch = branch_from_row(&branch)?;
    sqlx::query(
        "INSERT INTO inbound_commits (id, branch_id, commit_id, status, files, errors, message, author, applied_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(new_id::<String>())
    .bind(inbound.branch_id.as_str())
    .bind(inbound.commit_id.as_str())
    .bind(inbound.status.as_str())
    .bind(serde_json::to_string(&inbound.files).map_err(|e| StoreError::Corrupt(e.to_string()))?)
    .bind(i64::try_from(inbound.errors.len()).unwrap_or(i64::MAX))
    .bind(&inbound.message)
    .bind(&inbound.author)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    if inbound.status == InboundStatus::Ours {
        settle_own_changesets(tx, &inbound.changesets, &inbound.commit_id, now).await?;
    }
    for path in &inbound.fixed {
        sqlx::query(
            "UPDATE sync_errors SET resolved_at = $1, resolution = 'fixed' WHERE branch_id = $2 AND path = $3 AND resolved_at IS NULL",
        )
        .bind(now)
        .bind(inbound.branch_id.as_str())
        .bind(path)
        .execute(&mut **tx)
        .await?;
    }
    insert_file_errors(
        tx,
        &inbound.branch_id,
        &inbound.commit_id,
        &inbound.errors,
        now,
    )
    .await?;
    let repo = branch.repo.clone();
    for app in &inbound.new_apps {
        let live = sqlx::query("SELECT 1 FROM sync_links WHERE app = $1 AND enabled = 1")
            .bind(app)
            .fetch_optional(&mut **tx)
            .await?;
        if live.is_none() {
            sqlx::query(
                "INSERT INTO sync_links (id, app, connector_id, repo, branch, base_commit, enabled, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $8)",
            )
            .bind(new_id::<LinkId>().into_string())
            .bind(app)
            .bind(branch.connector_id.as_str())
            .bind(repo.clone().unwrap_or_default())
            .bind(&branch.branch)
            .bind(inbound.commit_id.as_str())
            .bind(now)
            .bind(now)
            .execute(&mut **tx)
            .await?;
        }
    }
    sqlx::query(
        "UPDATE sync_branches SET processed_commit = $1, broken = NULL, updated_at = $2,
             wanted_commit = CASE WHEN wanted_commit = $1 THEN NULL ELSE wanted_commit END,
             wanted_at = CASE WHEN wanted_commit = $1 THEN NULL ELSE wanted_at END
         WHERE id = $3",
    )
    .bind(inbound.commit_id.as_str())
    .bind(now)
    .bind(inbound.branch_id.as_str())
    .execute(&mut **tx)
    .await?;
    let links_of_branch = "SELECT id FROM sync_links WHERE enabled = 1 AND connector_id = $1 AND repo = $2 AND branch = $3";
    sqlx::query(&format!(
        "UPDATE sync_links SET base_commit = $4, updated_at = $5 WHERE id IN ({links_of_branch})"
    ))
    .bind(branch.connector_id.as_str())
    .bind(branch.repo.clone().unwrap_or_default())
    .bind(&branch.branch)
    .bind(inbound.commit_id.as_str())
    .bind(now)
    .execute(&mut **tx)
    .await?;
    let requeued = sqlx::query(&format!(
        "UPDATE changesets SET status = 'waiting', attempt_id = NULL, updated_at = $4 WHERE status = 'conflict' AND link_id IN ({links_of_branch})"
    ))
    .bind(branch.connector_id.as_str())
    .bind(branch.repo.clone().unwrap_or_default())
    .bind(&branch.branch)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(requeued.rows_affected())
}

impl Store {
    /// The paths of changes reposync accepted for a branch's scopes and has not pushed yet:
    /// Git's versions of these do not apply, reposync's win.
    pub async fn pending_paths_of_branch(
        &self,
        branch_id: &BranchId,
    ) -> Result<std::collections::HashSet<String>, StoreError> {
        let mut tx = self.db.begin_read().await?;
        let paths = pending_paths(&mut tx, branch_id).await?;
        tx.rollback().await?;
        Ok(paths)
    }

    /// Whether reposync made a commit: it pushed that very commit, or the commit names one of
    /// its changesets in a `Reposync-Changeset:` trailer (a commit rebased elsewhere keeps it).
    pub async fn is_our_commit(
        &self,
        commit_id: &ObjectId,
        changeset_ids: &[ChangesetId],
    ) -> Result<bool, StoreError> {
        let pushed = sqlx::query(
            "SELECT 1 FROM commit_attempts WHERE commit_id = $1 AND status IN ('pushed', 'nothing')",
        )
        .bind(commit_id.as_str())
        .read_optional(&self.db)
        .await?;
        if pushed.is_some() {
            return Ok(true);
        }
        for id in changeset_ids {
            let known = sqlx::query("SELECT 1 FROM changesets WHERE id = $1")
                .bind(id.as_str())
                .read_optional(&self.db)
                .await?;
            if known.is_some() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The commits in which a file failed before, oldest first.
    pub async fn earlier_failures(
        &self,
        branch_id: &BranchId,
        path: &str,
    ) -> Result<Vec<ObjectId>, StoreError> {
        sqlx::query(
            "SELECT commit_id FROM sync_errors WHERE branch_id = $1 AND path = $2 AND commit_id IS NOT NULL ORDER BY created_at, id",
        )
        .bind(branch_id.as_str())
        .bind(path)
        .read_all(&self.db)
        .await?
        .iter()
        .map(|r| object_id_column(r, "sync_errors", "commit_id"))
        .collect()
    }

    /// Commits read from Git, newest first, of the given branches or of all.
    pub async fn list_inbound_commits(
        &self,
        branch_ids: &[BranchId],
        limit: i64,
    ) -> Result<Vec<InboundCommitRecord>, StoreError> {
        let filter = if branch_ids.is_empty() {
            String::new()
        } else {
            format!(
                " WHERE c.branch_id IN ({})",
                placeholders_from(2, branch_ids.len())
            )
        };
        let sql = format!(
            "SELECT c.commit_id, c.status, c.files, c.errors, c.author, c.message, c.applied_at, b.branch
             FROM inbound_commits c JOIN sync_branches b ON b.id = c.branch_id{filter}
             ORDER BY c.applied_at DESC, c.id DESC LIMIT $1"
        );
        let mut query = sqlx::query(&sql).bind(limit);
        for id in branch_ids {
            query = query.bind(id.as_str());
        }
        query
            .read_all(&self.db)
            .await?
            .iter()
            .map(|r| {
                let files: String = r.try_get("files")?;
                Ok(InboundCommitRecord {
                    commit_id: object_id_column(r, "inbound_commits", "commit_id")?,
                    branch: r.try_get("branch")?,
                    status: r.try_get("status")?,
                    files: serde_json::from_str(&files)
                        .map_err(|e| StoreError::Corrupt(format!("inbound files: {e}")))?,
                    errors: r.try_get("errors")?,
                    author: r.try_get("author")?,
                    message: r.try_get("message")?,
                    applied_at: r.try_get("applied_at")?,
                })
            })
            .collect()
    }
}
