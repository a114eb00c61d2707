//! Changesets, the outbox: each names the files one change touched in one link's scope, and
//! moves on from waiting to pushing, then pushed, failed or in conflict; `sync retry` puts a
//! failed or conflicting one back.

use reposync_model::{AttemptId, ChangesetId, EmailAddress, LinkId, ObjectId, Person, UserName};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::error::StoreError;
use crate::gate::{Read, WriteTx};
use crate::rows::{
    id_column, json_column, new_id, optional_id_column, optional_object_id_column,
    placeholders_from, to_json,
};
use crate::store::Store;
use crate::sync::branches::{branch_id_of_link, want_head};

pub use reposync_model::commit::FileOp;

/// One file of a changeset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileChangeRecord {
    pub op: FileOp,
    pub path: String,
}

/// Where a changeset is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangesetStatus {
    Waiting,
    Pushing,
    Pushed,
    Failed,
    Conflict,
}

impl ChangesetStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangesetStatus::Waiting => "waiting",
            ChangesetStatus::Pushing => "pushing",
            ChangesetStatus::Pushed => "pushed",
            ChangesetStatus::Failed => "failed",
            ChangesetStatus::Conflict => "conflict",
        }
    }

    fn parse(text: &str) -> Result<Self, StoreError> {
        Ok(match text {
            "waiting" => ChangesetStatus::Waiting,
            "pushing" => ChangesetStatus::Pushing,
            "pushed" => ChangesetStatus::Pushed,
            "failed" => ChangesetStatus::Failed,
            "conflict" => ChangesetStatus::Conflict,
            other => {
                return Err(StoreError::Corrupt(format!(
                    "unknown changeset status {other:?}"
                )));
            }
        })
    }
}

/// A changeset as stored.
#[derive(Debug, Clone)]
pub struct ChangesetRecord {
    pub id: ChangesetId,
    pub link_id: LinkId,
    pub status: ChangesetStatus,
    pub files: Vec<FileChangeRecord>,
    pub attempt_id: Option<AttemptId>,
    pub commit_id: Option<ObjectId>,
    pub error: Option<String>,
    /// The person who made the change, as they were then; `None` when no person did.
    pub by: Option<Person>,
    pub created_at: i64,
    pub updated_at: i64,
}

pub(crate) const CHANGESET_COLUMNS: &str = "id, link_id, status, files, attempt_id, commit_id, error, by_user, by_email, created_at, updated_at";

/// The person in `by_user` and `by_email` ('' for none). A name or address that does not
/// parse was not written by reposync, and the row is corrupt.
fn person_columns(row: &AnyRow) -> Result<Option<Person>, StoreError> {
    let corrupt = |column: &str, message: String| {
        StoreError::Corrupt(format!("changesets.{column}: {message}"))
    };
    let name: String = row.try_get("by_user")?;
    if name.is_empty() {
        return Ok(None);
    }
    let email: String = row.try_get("by_email")?;
    Ok(Some(Person {
        name: UserName::parse(&name).map_err(|e| corrupt("by_user", e.message))?,
        email: (!email.is_empty())
            .then(|| EmailAddress::parse(&email))
            .transpose()
            .map_err(|e| corrupt("by_email", e.message))?,
    }))
}

pub(crate) fn changeset_from_row(row: &AnyRow) -> Result<ChangesetRecord, StoreError> {
    Ok(ChangesetRecord {
        id: id_column(row, "id")?,
        link_id: id_column(row, "link_id")?,
        status: ChangesetStatus::parse(&row.try_get::<String, _>("status")?)?,
        files: json_column(row, "files")?,
        attempt_id: optional_id_column(row, "attempt_id")?,
        commit_id: optional_object_id_column(row, "changesets", "commit_id")?,
        error: row.try_get("error")?,
        by: person_columns(row)?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

pub(crate) async fn insert_changeset(
    tx: &mut WriteTx,
    link_id: &LinkId,
    files: &[FileChangeRecord],
    by: Option<&Person>,
    now: i64,
) -> Result<ChangesetId, StoreError> {
    let id: ChangesetId = new_id();
    sqlx::query(
        "INSERT INTO changesets (id, link_id, status, files, by_user, by_email, created_at, updated_at) VALUES ($1, $2, 'waiting', $3, $4, $5, $6, $7)",
    )
    .bind(id.as_str())
    .bind(link_id.as_str())
    .bind(to_json(&files)?)
    .bind(by.map_or("", |p| p.name.as_str()).to_owned())
    .bind(
        by.and_then(|p| p.email.as_ref())
            .map_or("", EmailAddress::as_str)
            .to_owned(),
    )
    .bind(now)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(id)
}

/// Records a changeset as carried by `commit` (none: the branch already held its files),
/// whatever it was waiting for.
pub(crate) async fn mark_pushed(
    tx: &mut WriteTx,
    changeset_id: &ChangesetId,
    commit: Option<&ObjectId>,
    now: i64,
) -> Result<bool, StoreError> {
    Ok(sqlx::query(
        "UPDATE changesets SET status = 'pushed', commit_id = $1, error = NULL, updated_at = $2
         WHERE id = $3 AND status IN ('waiting', 'pushing', 'conflict', 'failed')",
    )
    .bind(commit.map(ObjectId::to_string))
    .bind(now)
    .bind(changeset_id.as_str())
    .execute(&mut **tx)
    .await?
    .rows_affected()
        > 0)
}

impl Store {
    /// Live links with changesets waiting, with the time the oldest has waited since.
    pub async fn links_with_waiting(&self) -> Result<Vec<(LinkId, i64)>, StoreError> {
        sqlx::query(
            "SELECT c.link_id AS link_id, MIN(c.created_at) AS oldest FROM changesets c JOIN sync_links l ON l.id = c.link_id
             WHERE c.status = 'waiting' AND l.enabled = 1 GROUP BY c.link_id",
        )
        .read_all(&self.db)
        .await?
        .iter()
        .map(|r| Ok((id_column(r, "link_id")?, r.try_get("oldest")?)))
        .collect()
    }

    /// Puts a failed or conflicting changeset back in the outbox (with every other changeset
    /// of its attempt) and resolves its sync errors.
    pub async fn retry_changeset(&self, id: &ChangesetId) -> Result<ChangesetRecord, StoreError> {
        let now = self.now();
        let mut tx = self.begin_write().await?;
        let changeset = sqlx::query(&format!(
            "SELECT {CHANGESET_COLUMNS} FROM changesets WHERE id = $1"
        ))
        .bind(id.as_str())
        .fetch_optional(&mut *tx)
        .await?
        .as_ref()
        .map(changeset_from_row)
        .transpose()?
        .ok_or_else(|| StoreError::NotFound {
            what: "changeset",
            name: id.to_string(),
        })?;
        if !matches!(
            changeset.status,
            ChangesetStatus::Failed | ChangesetStatus::Conflict
        ) {
            return Err(StoreError::Invalid {
                field: "id".into(),
                message: format!(
                    "changeset {id} is {}; only failed or conflicting changesets can be retried",
                    changeset.status.as_str()
                ),
            });
        }
        let link = sqlx::query("SELECT enabled FROM sync_links WHERE id = $1")
            .bind(changeset.link_id.as_str())
            .fetch_one(&mut *tx)
            .await?;
        if link.try_get::<i64, _>("enabled")? == 0 {
            return Err(StoreError::Invalid {
                field: "id".into(),
                message: "its sync link is disabled; enable sync again instead".into(),
            });
        }
        let mut wants_read = false;
        match &changeset.attempt_id {
            Some(attempt) => {
                // A conflict is settled by reading Git's side: ask for the head it was met at
                // to be read again, in case that read failed or never came.
                let met_at = sqlx::query(
                    "SELECT remote_head FROM commit_attempts WHERE id = $1 AND status = 'conflict'",
                )
                .bind(attempt.as_str())
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| optional_object_id_column(&r, "commit_attempts", "remote_head"))
                .transpose()?
                .flatten();
                if let (Some(head), Some(branch_id)) = (
                    met_at,
                    branch_id_of_link(&mut tx, &changeset.link_id).await?,
                ) {
                    wants_read |= want_head(&mut tx, &branch_id, Some(&head), now).await?;
                }
                sqlx::query(
                    "UPDATE changesets SET status = 'waiting', error = NULL, updated_at = $1
                     WHERE attempt_id = $2 AND status IN ('failed', 'conflict')",
                )
                .bind(now)
                .bind(attempt.as_str())
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "UPDATE sync_errors SET resolved_at = $1, resolution = 'retried' WHERE attempt_id = $2 AND resolved_at IS NULL",
                )
                .bind(now)
                .bind(attempt.as_str())
                .execute(&mut *tx)
                .await?;
            }
            None => {
                sqlx::query(
                    "UPDATE changesets SET status = 'waiting', error = NULL, updated_at = $1 WHERE id = $2",
                )
                .bind(now)
                .bind(id.as_str())
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        self.outbox_changed();
        if wants_read {
            self.inbox_changed();
        }
        Ok(changeset)
    }

    /// Changesets, newest first, of the given links, or of all when none are given.
    pub async fn list_changesets(
        &self,
        link_ids: &[LinkId],
        limit: i64,
    ) -> Result<Vec<ChangesetRecord>, StoreError> {
        let sql = format!("SELECT {CHANGESET_COLUMNS} FROM changesets");
        self.newest_of_links(&sql, "created_at", link_ids, limit, changeset_from_row)
            .await
    }

    /// Runs `select` (a query without WHERE) for rows of the given links, newest by `time`
    /// first, at most `limit`.
    pub(crate) async fn newest_of_links<T>(
        &self,
        select: &str,
        time: &str,
        link_ids: &[LinkId],
        limit: i64,
        from_row: fn(&AnyRow) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let filter = if link_ids.is_empty() {
            String::new()
        } else {
            format!(
                " WHERE link_id IN ({})",
                placeholders_from(2, link_ids.len())
            )
        };
        let sql = format!("{select}{filter} ORDER BY {time} DESC, id DESC LIMIT $1");
        let mut query = sqlx::query(&sql).bind(limit);
        for id in link_ids {
            query = query.bind(id.as_str());
        }
        query
            .read_all(&self.db)
            .await?
            .iter()
            .map(from_row)
            .collect()
    }
}
