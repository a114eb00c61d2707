//! Reads of synced branches: how a delegate read each (the method, why it was chosen, the
//! method it fell back from and why), and what the read cost, for `sync activity`.
//!
//! What a read reports comes from a delegate, and its reasons may quote what a Git server
//! answered, so free text is cut to a bound ([`bounded`]) before it is written: a hostile
//! server's message cannot bloat the database.

use reposync_model::{BranchId, LinkId, ObjectId, TaskId};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::error::StoreError;
use crate::gate::{Read, WriteTx};
use crate::rows::{
    id_column, new_id, optional_id_column, optional_object_id_column, placeholders_from,
};
use crate::store::Store;
use crate::webhook_log::bounded;

/// The most bytes of a method's name a read keeps.
pub const MAX_READ_METHOD_BYTES: usize = 128;
/// The most bytes of a reason (why a method was chosen, why one refused) a read keeps.
pub const MAX_READ_REASON_BYTES: usize = 1024;

/// What a read was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReadKind {
    /// The branch read whole when sync was enabled.
    Enable,
    /// The commits since the last one read.
    Incremental,
    /// The branch read whole by the inbox: its first read, or its history rewritten.
    Snapshot,
}

impl ReadKind {
    /// Every kind.
    pub const ALL: [ReadKind; 3] = [ReadKind::Enable, ReadKind::Incremental, ReadKind::Snapshot];

    /// `enable`, `incremental` or `snapshot`.
    pub fn as_str(self) -> &'static str {
        match self {
            ReadKind::Enable => "enable",
            ReadKind::Incremental => "incremental",
            ReadKind::Snapshot => "snapshot",
        }
    }

    /// The kind [`ReadKind::as_str`] writes as `text`, if any.
    pub fn parse(text: &str) -> Option<ReadKind> {
        ReadKind::ALL.into_iter().find(|kind| kind.as_str() == text)
    }
}

impl std::fmt::Display for ReadKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How one read of a branch was done, as a delegate reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BranchRead {
    pub kind: ReadKind,
    /// The branch's head as read; `None` when the branch did not exist.
    pub head: Option<ObjectId>,
    /// `git`, `cloud-rest`, `dc-archive`, `dc-rest`…
    pub method: String,
    /// Why this method was chosen.
    pub reason: String,
    /// The method tried first, when it refused and this one took over.
    pub fallback_from: Option<String>,
    /// Why the first method refused.
    pub fallback_reason: Option<String>,
    /// REST requests sent.
    pub requests: u64,
    /// Bytes received.
    pub bytes: u64,
    pub duration_ms: u64,
    /// The delegate task that read, when a task did.
    pub task_id: Option<TaskId>,
}

/// A read as recorded, with its branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadRecord {
    pub id: String,
    pub branch_id: BranchId,
    /// The branch's name.
    pub branch: String,
    /// The link enabled with this read, for an [`ReadKind::Enable`] read.
    pub link_id: Option<LinkId>,
    pub read: BranchRead,
    /// Milliseconds since the epoch.
    pub read_at: i64,
}

/// A count as a column holds it: SQLite's integers are signed, and no real count reaches
/// the top of the range, so a larger one is kept as the largest.
fn count_column(count: u64) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

/// A count read back; a negative one was not written by reposync.
fn count_from(row: &AnyRow, column: &str) -> Result<u64, StoreError> {
    let value: i64 = row.try_get(column)?;
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("sync_reads.{column}: {value}")))
}

/// Records `read` of `branch_id` inside a transaction; `link_id` is the link enabled with it.
pub(crate) async fn record_read_in(
    tx: &mut WriteTx,
    branch_id: &BranchId,
    link_id: Option<&LinkId>,
    read: &BranchRead,
    now: i64,
) -> Result<(), StoreError> {
    let method = |text: &str| bounded(text, MAX_READ_METHOD_BYTES).into_owned();
    let reason = |text: &str| bounded(text, MAX_READ_REASON_BYTES).into_owned();
    sqlx::query(
        "INSERT INTO sync_reads (id, branch_id, link_id, kind, head, method, reason, fallback_from,
             fallback_reason, requests, bytes, duration_ms, task_id, read_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(new_id::<String>())
    .bind(branch_id.as_str())
    .bind(link_id.map(|id| id.as_str().to_owned()))
    .bind(read.kind.as_str())
    .bind(read.head.as_ref().map(ObjectId::to_string))
    .bind(method(&read.method))
    .bind(reason(&read.reason))
    .bind(read.fallback_from.as_deref().map(method))
    .bind(read.fallback_reason.as_deref().map(reason))
    .bind(count_column(read.requests))
    .bind(count_column(read.bytes))
    .bind(count_column(read.duration_ms))
    .bind(read.task_id.as_ref().map(|id| id.as_str().to_owned()))
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Store {
    /// Records a read of a branch at the store's time now.
    pub async fn record_read(
        &self,
        branch_id: &BranchId,
        read: &BranchRead,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        record_read_in(&mut tx, branch_id, None, read, self.now()).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Reads of the given branches, or of all when none is given, newest first.
    pub async fn list_reads(
        &self,
        branch_ids: &[BranchId],
        limit: i64,
    ) -> Result<Vec<ReadRecord>, StoreError> {
        let filter = if branch_ids.is_empty() {
            String::new()
        } else {
            format!(
                " WHERE r.branch_id IN ({})",
                placeholders_from(2, branch_ids.len())
            )
        };
        let sql = format!(
            "SELECT r.id, r.branch_id, r.link_id, r.kind, r.head, r.method, r.reason, r.fallback_from,
                 r.fallback_reason, r.requests, r.bytes, r.duration_ms, r.task_id, r.read_at, b.branch
             FROM sync_reads r JOIN sync_branches b ON b.id = r.branch_id{filter}
             ORDER BY r.read_at DESC, r.id DESC LIMIT $1"
        );
        let mut query = sqlx::query(&sql).bind(limit);
        for id in branch_ids {
            query = query.bind(id.as_str());
        }
        query
            .read_all(&self.db)
            .await?
            .iter()
            .map(read_record)
            .collect()
    }
}

fn read_record(row: &AnyRow) -> Result<ReadRecord, StoreError> {
    let kind: String = row.try_get("kind")?;
    Ok(ReadRecord {
        id: row.try_get("id")?,
        branch_id: id_column(row, "branch_id")?,
        branch: row.try_get("branch")?,
        link_id: optional_id_column(row, "link_id")?,
        read: BranchRead {
            kind: ReadKind::parse(&kind)
                .ok_or_else(|| StoreError::Corrupt(format!("sync_reads.kind: {kind:?}")))?,
            head: optional_object_id_column(row, "sync_reads", "head")?,
            method: row.try_get("method")?,
            reason: row.try_get("reason")?,
            fallback_from: row.try_get("fallback_from")?,
            fallback_reason: row.try_get("fallback_reason")?,
            requests: count_from(row, "requests")?,
            bytes: count_from(row, "bytes")?,
            duration_ms: count_from(row, "duration_ms")?,
            task_id: optional_id_column(row, "task_id")?,
        },
        read_at: row.try_get("read_at")?,
    })
}
