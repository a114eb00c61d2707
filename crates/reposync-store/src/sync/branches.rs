//! The branches live links sync with, one per connector, repository and branch: where reading
//! each one from Git stands (the commit processed, a head wanted), when it was polled, and
//! whether it is broken. Pushes read it too: it is the position conflicts are judged from.

use reposync_model::{BranchId, ConnectorId, LinkId, ObjectId, SyncErrorId};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::error::StoreError;
use crate::gate::{Read, Write, WriteTx};
use crate::rows::{id_column, new_id, optional_object_id_column, parse_object_id};
use crate::store::Store;

/// A branch that live links sync with: once per connector, repository and branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncBranch {
    pub id: BranchId,
    pub connector_id: ConnectorId,
    /// The repository slug, for account-scope connectors.
    pub repo: Option<String>,
    pub branch: String,
    /// The last commit read and applied; `None` until the first read.
    pub processed_commit: Option<ObjectId>,
    /// A head announced and not yet processed: `Some(None)` when the branch was announced
    /// deleted.
    pub wanted: Option<Option<ObjectId>>,
    pub wanted_at: Option<i64>,
    /// Why the branch cannot be synced, while it cannot.
    pub broken: Option<String>,
    pub polled_at: Option<i64>,
}

pub(crate) const BRANCH_COLUMNS: &str =
    "id, connector_id, repo, branch, processed_commit, wanted_commit, wanted_at, broken, polled_at";

pub(crate) fn branch_from_row(row: &AnyRow) -> Result<SyncBranch, StoreError> {
    let repo: String = row.try_get("repo")?;
    let wanted: Option<String> = row.try_get("wanted_commit")?;
    Ok(SyncBranch {
        id: id_column(row, "id")?,
        connector_id: id_column(row, "connector_id")?,
        repo: (!repo.is_empty()).then_some(repo),
        branch: row.try_get("branch")?,
        processed_commit: optional_object_id_column(row, "sync_branches", "processed_commit")?,
        // '' is a branch announced deleted.
        wanted: wanted
            .map(|w| {
                (!w.is_empty())
                    .then(|| parse_object_id("sync_branches", "wanted_commit", &w))
                    .transpose()
            })
            .transpose()?,
        wanted_at: row.try_get("wanted_at")?,
        broken: row.try_get("broken")?,
        polled_at: row.try_get("polled_at")?,
    })
}

/// Makes sure a branch row exists for a new link (inserted just before), positioned at the
/// head the link was enabled on. A branch that other live links read keeps its position; one
/// that only links disabled since had read moves to the head: the new link took the branch as
/// it is there, and reading the commits before it again would replay them over what enabling
/// just set up.
pub(crate) async fn ensure_branch(
    tx: &mut WriteTx,
    connector_id: &ConnectorId,
    repo: Option<&str>,
    branch: &str,
    head: Option<&ObjectId>,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO sync_branches (id, connector_id, repo, branch, processed_commit, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (connector_id, repo, branch) DO NOTHING",
    )
    .bind(new_id::<BranchId>().into_string())
    .bind(connector_id.as_str())
    .bind(repo.unwrap_or_default())
    .bind(branch)
    .bind(head.map(ObjectId::to_string))
    .bind(now)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "UPDATE sync_branches SET processed_commit = $1, wanted_commit = NULL, wanted_at = NULL, broken = NULL, updated_at = $2
         WHERE connector_id = $3 AND repo = $4 AND branch = $5
             AND (SELECT COUNT(*) FROM sync_links l WHERE l.enabled = 1 AND l.connector_id = $3
                  AND l.repo = $4 AND l.branch = $5) = 1",
    )
    .bind(head.map(ObjectId::to_string))
    .bind(now)
    .bind(connector_id.as_str())
    .bind(repo.unwrap_or_default())
    .bind(branch)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The branch (the Git -> reposync position) that a link pushes to, if it has one.
pub(crate) async fn branch_id_of_link(
    tx: &mut WriteTx,
    link_id: &LinkId,
) -> Result<Option<BranchId>, StoreError> {
    sqlx::query(
        "SELECT b.id AS id FROM sync_links l JOIN sync_branches b
             ON l.connector_id = b.connector_id AND l.repo = b.repo AND l.branch = b.branch
         WHERE l.id = $1",
    )
    .bind(link_id.as_str())
    .fetch_optional(&mut **tx)
    .await?
    .map(|r| id_column(&r, "id"))
    .transpose()
}

/// The last commit read from Git on a branch.
pub(crate) async fn processed_commit(
    tx: &mut WriteTx,
    branch_id: Option<&BranchId>,
) -> Result<Option<ObjectId>, StoreError> {
    let Some(branch_id) = branch_id else {
        return Ok(None);
    };
    Ok(
        sqlx::query("SELECT processed_commit FROM sync_branches WHERE id = $1")
            .bind(branch_id.as_str())
            .fetch_optional(&mut **tx)
            .await?
            .map(|r| optional_object_id_column(&r, "sync_branches", "processed_commit"))
            .transpose()?
            .flatten(),
    )
}

/// Queues `commit` to be read on a branch (`None`: the branch is gone), as a webhook
/// announcing it would, unless it is the commit processed or queued already. Returns whether
/// it was queued.
pub(crate) async fn want_head(
    tx: &mut WriteTx,
    branch_id: &BranchId,
    commit: Option<&ObjectId>,
    now: i64,
) -> Result<bool, StoreError> {
    // '' is how the table says the branch was announced deleted.
    let commit = commit.map_or("", ObjectId::as_str);
    let queued = sqlx::query(
        "UPDATE sync_branches SET wanted_commit = $1, wanted_at = $2, updated_at = $2
         WHERE id = $3 AND (broken IS NULL OR $1 <> '') AND COALESCE(processed_commit, '') <> $1
             AND COALESCE(wanted_commit, '-') <> $1",
    )
    .bind(commit)
    .bind(now)
    .bind(branch_id.as_str())
    .execute(&mut **tx)
    .await?
    .rows_affected()
        > 0;
    if queued && !commit.is_empty() {
        // A webhook announcing the same head later is then a duplicate.
        sqlx::query(
            "INSERT INTO announced_heads (branch_id, commit_id, announced_at) VALUES ($1, $2, $3)
             ON CONFLICT (branch_id, commit_id) DO NOTHING",
        )
        .bind(branch_id.as_str())
        .bind(commit)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    }
    Ok(queued)
}

impl Store {
    /// The branches that live links of a connector sync with.
    pub async fn live_branches_of_connector(
        &self,
        connector_id: &ConnectorId,
    ) -> Result<Vec<SyncBranch>, StoreError> {
        sqlx::query(&format!(
            "SELECT {BRANCH_COLUMNS} FROM sync_branches b WHERE connector_id = $1 AND EXISTS (
                 SELECT 1 FROM sync_links l WHERE l.enabled = 1 AND l.connector_id = b.connector_id
                 AND l.repo = b.repo AND l.branch = b.branch)
             ORDER BY repo, branch"
        ))
        .bind(connector_id.as_str())
        .read_all(&self.db)
        .await?
        .iter()
        .map(branch_from_row)
        .collect()
    }

    /// A branch by id.
    pub async fn sync_branch(&self, id: &BranchId) -> Result<SyncBranch, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {BRANCH_COLUMNS} FROM sync_branches WHERE id = $1"
        ))
        .bind(id.as_str())
        .read_optional(&self.db)
        .await?
        .ok_or_else(|| StoreError::NotFound {
            what: "sync branch",
            name: id.to_string(),
        })?;
        branch_from_row(&row)
    }

    /// The branch is gone (deleted on the remote): it is marked broken, with one open sync
    /// error on each of its links saying so. Nothing is deleted from the tree.
    pub async fn mark_branch_broken(
        &self,
        branch_id: &BranchId,
        reason: &str,
    ) -> Result<(), StoreError> {
        let now = self.now();
        let mut tx = self.begin_write().await?;
        let branch = sqlx::query(&format!(
            "SELECT {BRANCH_COLUMNS} FROM sync_branches WHERE id = $1"
        ))
        .bind(branch_id.as_str())
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::NotFound {
            what: "sync branch",
            name: branch_id.to_string(),
        })?;
        let branch = branch_from_row(&branch)?;
        sqlx::query(
            "UPDATE sync_branches SET broken = $1, wanted_commit = NULL, wanted_at = NULL, updated_at = $2 WHERE id = $3",
        )
        .bind(reason)
        .bind(now)
        .bind(branch_id.as_str())
        .execute(&mut *tx)
        .await?;
        let open = sqlx::query(
            "SELECT 1 FROM sync_errors WHERE branch_id = $1 AND code = 'branch_deleted' AND resolved_at IS NULL",
        )
        .bind(branch_id.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        if open.is_none() {
            let links = sqlx::query(
                "SELECT id FROM sync_links WHERE enabled = 1 AND connector_id = $1 AND repo = $2 AND branch = $3",
            )
            .bind(branch.connector_id.as_str())
            .bind(branch.repo.clone().unwrap_or_default())
            .bind(&branch.branch)
            .fetch_all(&mut *tx)
            .await?;
            for link in links {
                let link_id: LinkId = id_column(&link, "id")?;
                sqlx::query(
                    "INSERT INTO sync_errors (id, link_id, branch_id, code, message, created_at) VALUES ($1, $2, $3, 'branch_deleted', $4, $5)",
                )
                .bind(new_id::<SyncErrorId>().into_string())
                .bind(link_id.into_string())
                .bind(branch_id.as_str())
                .bind(reason)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// A branch was read to its head, as it stood after `started_at`: heads announced before
    /// then are processed (or older than what was read) and are cleared; one announced since
    /// stays queued for the next read.
    pub async fn branch_read(
        &self,
        branch_id: &BranchId,
        started_at: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE sync_branches SET wanted_commit = NULL, wanted_at = NULL, broken = NULL WHERE id = $1 AND (wanted_at IS NULL OR wanted_at <= $2)",
        )
        .bind(branch_id.as_str())
        .bind(started_at)
        .write(&self.db)
        .await?;
        Ok(())
    }

    /// Live branches whose poll is due at `now` (milliseconds), least recently polled first:
    /// each by its connector's interval, or `default_seconds` where the connector sets none.
    /// An interval of 0 never polls.
    pub async fn branches_to_poll(
        &self,
        now: i64,
        default_seconds: u64,
    ) -> Result<Vec<SyncBranch>, StoreError> {
        let default_seconds = i64::try_from(default_seconds).unwrap_or(i64::MAX);
        sqlx::query(&format!(
            "SELECT {BRANCH_COLUMNS} FROM (
                 SELECT b.*, COALESCE(
                     (SELECT c.poll_interval_s FROM connectors c WHERE c.id = b.connector_id), $2
                 ) AS interval_s
                 FROM sync_branches b
             ) b
             WHERE b.interval_s > 0 AND COALESCE(b.polled_at, 0) <= $1 - b.interval_s * 1000
             AND EXISTS (
                 SELECT 1 FROM sync_links l WHERE l.enabled = 1 AND l.connector_id = b.connector_id
                 AND l.repo = b.repo AND l.branch = b.branch)
             ORDER BY COALESCE(b.polled_at, 0), b.id"
        ))
        .bind(now)
        .bind(default_seconds)
        .read_all(&self.db)
        .await?
        .iter()
        .map(branch_from_row)
        .collect()
    }

    /// Records a poll of a branch: when, and the head it found. A head that is not the one
    /// processed (or already queued) is queued, as a webhook would have; so is a branch that
    /// is gone. Returns whether something was queued.
    pub async fn record_poll(
        &self,
        branch_id: &BranchId,
        head: Option<&ObjectId>,
    ) -> Result<bool, StoreError> {
        let now = self.now();
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE sync_branches SET polled_at = $1 WHERE id = $2")
            .bind(now)
            .bind(branch_id.as_str())
            .execute(&mut *tx)
            .await?;
        let queued = want_head(&mut tx, branch_id, head, now).await?;
        tx.commit().await?;
        if queued {
            self.inbox_changed();
        }
        Ok(queued)
    }

    /// Asks for a read of the branch now, whatever its head: `sync refresh`, for a change no
    /// webhook announced and no poll found yet. A branch marked deleted is read again too, in
    /// case it came back. The inbox wakes at once.
    pub async fn request_read(&self, branch_id: &BranchId) -> Result<(), StoreError> {
        let now = self.now();
        // The wanted head only has to be set for the inbox to read; the read goes from the
        // processed commit to whatever the head is then.
        sqlx::query(
            "UPDATE sync_branches SET wanted_commit = COALESCE(wanted_commit, processed_commit, ''),
                 wanted_at = COALESCE(wanted_at, $1), updated_at = $1
             WHERE id = $2",
        )
        .bind(now)
        .bind(branch_id.as_str())
        .write(&self.db)
        .await?;
        self.inbox_changed();
        Ok(())
    }

    /// Branches with a queued head, oldest request first.
    pub async fn wanted_branches(&self) -> Result<Vec<SyncBranch>, StoreError> {
        sqlx::query(&format!(
            "SELECT {BRANCH_COLUMNS} FROM sync_branches WHERE wanted_commit IS NOT NULL ORDER BY wanted_at, id"
        ))
        .read_all(&self.db)
        .await?
        .iter()
        .map(branch_from_row)
        .collect()
    }
}
