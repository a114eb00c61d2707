//! Several servers on one database: who each replica is, which replica works on each synced
//! branch (a lease with a fencing token), and the delegates connected to each replica.
//!
//! Every time here is the database's clock ([`Store::lease_now`]), never a replica's: two
//! machines whose clocks disagree still agree on when a lease ran out. A lease is a row that
//! is never deleted, so its token only grows; a write made for a branch names the token it
//! was made under ([`Fence`]) and is refused once another replica holds the branch.

use std::time::Duration;

use reposync_model::BranchId;
use sqlx::Row as _;

use crate::error::StoreError;
use crate::gate::{Read, Write, WriteTx};
use crate::rows::id_column;
use crate::store::Store;
use crate::tasks::Eligibility;

/// A replica not heard from for this long is gone: its delegates no longer count as
/// connected, and its local tasks are taken up by another replica.
pub const REPLICA_GONE_AFTER: Duration = Duration::from_secs(15);

/// Who a replica is: a name kept in its data directory, the same across its restarts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReplicaId(String);

impl ReplicaId {
    pub fn new(id: impl Into<String>) -> ReplicaId {
        ReplicaId(id.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ReplicaId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The lease a replica held on a branch when it read what it is about to write: the write
/// commits only if the branch's lease still has this token and holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub branch: BranchId,
    pub token: i64,
}

/// A delegate connected to a replica, as the other replicas see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DelegatePresence {
    pub name: String,
    pub eligibility: Eligibility,
    pub lease: Duration,
    pub builtin: bool,
    pub token_id: Option<String>,
    /// Long polls it has open on that replica.
    pub polling: u32,
    /// How long ago that replica last heard from it, by the database's clock.
    pub since_seen: Duration,
}

impl DelegatePresence {
    /// Whether it counts as connected: the built-in one of a live replica always, a remote
    /// one while it waits in a claim or was heard from within its lease (the same rule as a
    /// replica's own delegates).
    pub fn connected(&self) -> bool {
        self.builtin || self.polling > 0 || self.since_seen < self.lease
    }
}

/// The columns of `branch_leases` that decide a lease.
struct LeaseRow {
    holder: Option<String>,
    token: i64,
    expires_at: i64,
}

impl Store {
    /// Records this replica as started (or started again), by the database's clock.
    pub async fn register_replica(&self, hostname: &str) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let now = self.lease_now_in(&mut tx).await?;
        sqlx::query(
            "INSERT INTO replicas (id, hostname, started_at, seen_at) VALUES ($1, $2, $3, $3)
             ON CONFLICT (id) DO UPDATE SET hostname = $2, started_at = $3, seen_at = $3",
        )
        .bind(self.replica().as_str())
        .bind(hostname)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The host name another live replica with this replica's id runs on, if one is heard
    /// from: two servers sharing an id (a data directory copied whole) would each think they
    /// hold the other's leases. Only another host's is reported: on this host the data
    /// directory's lock already keeps a second server out, so a fresh row is this replica's
    /// own before a restart.
    pub async fn replica_running_elsewhere(
        &self,
        hostname: &str,
    ) -> Result<Option<String>, StoreError> {
        let now = self.lease_now().await?;
        let row = sqlx::query("SELECT hostname, seen_at FROM replicas WHERE id = $1")
            .bind(self.replica().as_str())
            .read_optional(&self.db)
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let other: String = row.try_get("hostname")?;
        let seen_at: i64 = row.try_get("seen_at")?;
        let alive = now - seen_at < millis(REPLICA_GONE_AFTER);
        Ok((alive && other != hostname).then_some(other))
    }

    /// Says this replica is alive, and keeps the delegates connected to it counted as such.
    pub async fn replica_heartbeat(&self) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let now = self.lease_now_in(&mut tx).await?;
        sqlx::query("UPDATE replicas SET seen_at = $1 WHERE id = $2")
            .bind(now)
            .bind(self.replica().as_str())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// A stopping replica lets go at once of its branches and its delegates, and is gone, so
    /// that the others take its work up without waiting for its leases to run out.
    pub async fn leave_replica(&self) -> Result<(), StoreError> {
        let me = self.replica().as_str();
        let mut tx = self.begin_write().await?;
        let_go_of_branches_and_delegates(&mut tx, me).await?;
        sqlx::query("UPDATE replicas SET seen_at = 0 WHERE id = $1")
            .bind(me)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Takes up, at a start, what this replica's previous run left: the commit attempts on
    /// the branches it held were cut off (their changesets wait again), its leases are let
    /// go (and so taken again with a new token), and its delegates are forgotten.
    pub async fn recover_replica(&self) -> Result<u64, StoreError> {
        let me = self.replica().as_str();
        let mut tx = self.begin_write().await?;
        let now = self.now();
        let held: Vec<BranchId> =
            sqlx::query("SELECT branch_id FROM branch_leases WHERE holder = $1")
                .bind(me)
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|row| id_column(row, "branch_id"))
                .collect::<Result<_, _>>()?;
        let mut interrupted = 0;
        for branch in &held {
            interrupted += interrupt_branch_attempts(&mut tx, branch, now).await?;
        }
        let_go_of_branches_and_delegates(&mut tx, me).await?;
        tx.commit().await?;
        Ok(interrupted)
    }

    /// Takes or keeps the lease on `branch` for `lease`: kept (same token) when this replica
    /// holds it, taken (next token) when nobody does or the holder's ran out, `None` while
    /// another replica holds it. Taking a branch over interrupts the commit attempts its
    /// last holder left running, in the same transaction, so the new holder plans them
    /// again; a push of theirs that landed all the same is found by its trailers.
    pub async fn acquire_branch_lease(
        &self,
        branch: &BranchId,
        lease: Duration,
    ) -> Result<Option<Fence>, StoreError> {
        self.retrying("acquire_branch_lease", || {
            self.acquire_branch_lease_once(branch, lease)
        })
        .await
    }

    async fn acquire_branch_lease_once(
        &self,
        branch: &BranchId,
        lease: Duration,
    ) -> Result<Option<Fence>, StoreError> {
        let me = self.replica().as_str();
        let mut tx = self.begin_write().await?;
        let now = self.lease_now_in(&mut tx).await?;
        let expires_at = now.saturating_add(millis(lease));
        let current = sqlx::query(&format!(
            "SELECT holder, token, expires_at FROM branch_leases WHERE branch_id = $1{}",
            self.db.backend().lock_for_update()
        ))
        .bind(branch.as_str())
        .fetch_optional(&mut *tx)
        .await?
        .map(|row| -> Result<LeaseRow, StoreError> {
            Ok(LeaseRow {
                holder: row.try_get("holder")?,
                token: row.try_get("token")?,
                expires_at: row.try_get("expires_at")?,
            })
        })
        .transpose()?;
        let token = match current {
            None => {
                let inserted = sqlx::query(
                    "INSERT INTO branch_leases (branch_id, holder, token, expires_at) VALUES ($1, $2, 1, $3)
                     ON CONFLICT (branch_id) DO NOTHING",
                )
                .bind(branch.as_str())
                .bind(me)
                .bind(expires_at)
                .execute(&mut *tx)
                .await?;
                // Another replica made the branch's first lease between the look and here.
                if inserted.rows_affected() == 0 {
                    return Ok(None);
                }
                interrupt_branch_attempts(&mut tx, branch, self.now()).await?;
                1
            }
            Some(row) if row.holder.as_deref() == Some(me) => {
                sqlx::query("UPDATE branch_leases SET expires_at = $1 WHERE branch_id = $2")
                    .bind(expires_at)
                    .bind(branch.as_str())
                    .execute(&mut *tx)
                    .await?;
                row.token
            }
            Some(row) if row.holder.is_none() || row.expires_at <= now => {
                let token = row.token + 1;
                sqlx::query(
                    "UPDATE branch_leases SET holder = $1, token = $2, expires_at = $3 WHERE branch_id = $4",
                )
                .bind(me)
                .bind(token)
                .bind(expires_at)
                .bind(branch.as_str())
                .execute(&mut *tx)
                .await?;
                if let Some(previous) = &row.holder {
                    tracing::info!(branch = %branch, previous, "took over a branch whose lease ran out");
                }
                interrupt_branch_attempts(&mut tx, branch, self.now()).await?;
                token
            }
            Some(_) => return Ok(None),
        };
        tx.commit().await?;
        Ok(Some(Fence {
            branch: branch.clone(),
            token,
        }))
    }

    /// Extends every lease this replica holds to `lease` from now; returns the branches it
    /// still holds, with their tokens.
    pub async fn renew_branch_leases(&self, lease: Duration) -> Result<Vec<Fence>, StoreError> {
        let me = self.replica().as_str();
        let mut tx = self.begin_write().await?;
        let now = self.lease_now_in(&mut tx).await?;
        sqlx::query("UPDATE branch_leases SET expires_at = $1 WHERE holder = $2")
            .bind(now.saturating_add(millis(lease)))
            .bind(me)
            .execute(&mut *tx)
            .await?;
        let held = sqlx::query("SELECT branch_id, token FROM branch_leases WHERE holder = $1")
            .bind(me)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|row| {
                Ok(Fence {
                    branch: id_column(row, "branch_id")?,
                    token: row.try_get("token")?,
                })
            })
            .collect::<Result<_, StoreError>>()?;
        tx.commit().await?;
        Ok(held)
    }

    /// Records that this replica keeps the archive of fetch `task` (in its data directory),
    /// so that the others know it arrived and where.
    pub async fn keep_archive_here(&self, task: &reposync_model::TaskId) -> Result<(), StoreError> {
        sqlx::query("UPDATE tasks SET replica = $1 WHERE id = $2")
            .bind(self.replica().as_str())
            .bind(task.as_str())
            .write(&self.db)
            .await?;
        Ok(())
    }

    /// The replica that keeps the archive of fetch `task`, and its host, once one arrived.
    pub async fn archive_keeper(
        &self,
        task: &reposync_model::TaskId,
    ) -> Result<Option<(ReplicaId, String)>, StoreError> {
        let row = sqlx::query(
            "SELECT t.replica AS replica, COALESCE(r.hostname, '') AS hostname
             FROM tasks t LEFT JOIN replicas r ON r.id = t.replica WHERE t.id = $1",
        )
        .bind(task.as_str())
        .read_optional(&self.db)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let Some(replica) = row.try_get::<Option<String>, _>("replica")? else {
            return Ok(None);
        };
        let hostname: String = row.try_get("hostname")?;
        Ok(Some((ReplicaId::new(replica), hostname)))
    }

    /// Forgets what the shared database holds of the archive of fetch `task`: its pieces,
    /// and which replica keeps it. Done before an upload's pieces are stored, so that pieces
    /// of an earlier upload never mix with them.
    pub async fn forget_archive(&self, task: &reposync_model::TaskId) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM fetch_archive_pieces WHERE task_id = $1")
            .bind(task.as_str())
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE tasks SET replica = NULL WHERE id = $1")
            .bind(task.as_str())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Stores piece `seq` of the archive of fetch `task`, for the other replicas to serve.
    pub async fn store_archive_piece(
        &self,
        task: &reposync_model::TaskId,
        seq: i64,
        data: &[u8],
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO fetch_archive_pieces (task_id, seq, data, bytes, stored_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (task_id, seq) DO UPDATE SET data = $3, bytes = $4, stored_at = $5",
        )
        .bind(task.as_str())
        .bind(seq)
        .bind(data)
        .bind(i64::try_from(data.len()).unwrap_or(i64::MAX))
        .bind(self.now())
        .write(&self.db)
        .await?;
        Ok(())
    }

    /// How many pieces the stored archive of `task` has, its size in bytes, and when it was
    /// stored; `None` when none is stored whole: pieces count only once a replica has named
    /// itself the keeper, after the last one (a replica killed half-way leaves none that
    /// count).
    pub async fn archive_pieces(
        &self,
        task: &reposync_model::TaskId,
    ) -> Result<Option<(i64, u64, i64)>, StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS pieces, CAST(COALESCE(SUM(bytes), 0) AS BIGINT) AS bytes, COALESCE(MIN(stored_at), 0) AS stored_at
             FROM fetch_archive_pieces
             WHERE task_id = $1 AND EXISTS (SELECT 1 FROM tasks t WHERE t.id = $1 AND t.replica IS NOT NULL)",
        )
        .bind(task.as_str())
        .read_one(&self.db)
        .await?;
        let pieces: i64 = row.try_get("pieces")?;
        let bytes: i64 = row.try_get("bytes")?;
        let stored_at: i64 = row.try_get("stored_at")?;
        Ok((pieces > 0).then(|| (pieces, u64::try_from(bytes).unwrap_or(0), stored_at)))
    }

    /// Piece `seq` of the stored archive of `task`.
    pub async fn archive_piece(
        &self,
        task: &reposync_model::TaskId,
        seq: i64,
    ) -> Result<Vec<u8>, StoreError> {
        let row =
            sqlx::query("SELECT data FROM fetch_archive_pieces WHERE task_id = $1 AND seq = $2")
                .bind(task.as_str())
                .bind(seq)
                .read_optional(&self.db)
                .await?
                .ok_or_else(|| StoreError::NotFound {
                    what: "archive piece",
                    name: format!("{task}/{seq}"),
                })?;
        Ok(row.try_get("data")?)
    }

    /// Removes the stored archives' pieces stored before `before` (milliseconds); how many.
    pub async fn prune_archive_pieces(&self, before: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM fetch_archive_pieces WHERE stored_at < $1")
            .bind(before)
            .write(&self.db)
            .await?;
        Ok(done.rows_affected())
    }

    /// The branches whose holder's lease ran out without being renewed or released: that
    /// replica died or lost the database. Another replica takes them over (and with them
    /// the work their holder left cut off).
    pub async fn abandoned_branches(&self) -> Result<Vec<BranchId>, StoreError> {
        let now = self.lease_now().await?;
        sqlx::query(
            "SELECT branch_id FROM branch_leases WHERE holder IS NOT NULL AND expires_at <= $1 ORDER BY branch_id",
        )
        .bind(now)
        .read_all(&self.db)
        .await?
        .iter()
        .map(|row| id_column(row, "branch_id"))
        .collect()
    }

    /// Records a delegate connected to this replica (or updates it), last heard from
    /// `since_seen` ago.
    pub async fn publish_presence(&self, delegate: &DelegatePresence) -> Result<(), StoreError> {
        let eligibility = serde_json::to_string(&delegate.eligibility)
            .map_err(|e| StoreError::Corrupt(format!("delegate eligibility: {e}")))?;
        let mut tx = self.begin_write().await?;
        let now = self.lease_now_in(&mut tx).await?;
        let seen_at = now.saturating_sub(millis(delegate.since_seen));
        sqlx::query(
            "INSERT INTO delegate_presence (replica_id, name, eligibility, lease_ms, builtin, token_id, seen_at, polling)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (replica_id, name) DO UPDATE SET eligibility = $3, lease_ms = $4,
                 builtin = $5, token_id = $6, seen_at = $7, polling = $8",
        )
        .bind(self.replica().as_str())
        .bind(&delegate.name)
        .bind(eligibility)
        .bind(millis(delegate.lease))
        .bind(i64::from(delegate.builtin))
        .bind(delegate.token_id.as_deref())
        .bind(seen_at)
        .bind(i64::from(delegate.polling))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Forgets a delegate connected to this replica (it left, or its token was revoked).
    pub async fn withdraw_presence(&self, name: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM delegate_presence WHERE replica_id = $1 AND name = $2")
            .bind(self.replica().as_str())
            .bind(name)
            .write(&self.db)
            .await?;
        Ok(())
    }

    /// Forgets the delegates registered with a revoked token, on every replica.
    pub async fn withdraw_presence_of_token(&self, token_id: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM delegate_presence WHERE token_id = $1")
            .bind(token_id)
            .write(&self.db)
            .await?;
        Ok(())
    }

    /// The delegates connected to the other live replicas.
    pub async fn presence_elsewhere(&self) -> Result<Vec<DelegatePresence>, StoreError> {
        let now = self.lease_now().await?;
        sqlx::query(
            "SELECT p.name, p.eligibility, p.lease_ms, p.builtin, p.token_id, p.seen_at, p.polling
             FROM delegate_presence p JOIN replicas r ON r.id = p.replica_id
             WHERE p.replica_id <> $1 AND r.seen_at > $2
             ORDER BY p.name, p.replica_id",
        )
        .bind(self.replica().as_str())
        .bind(now - millis(REPLICA_GONE_AFTER))
        .read_all(&self.db)
        .await?
        .iter()
        .map(|row| {
            let eligibility: String = row.try_get("eligibility")?;
            let seen_at: i64 = row.try_get("seen_at")?;
            Ok(DelegatePresence {
                name: row.try_get("name")?,
                eligibility: serde_json::from_str(&eligibility)
                    .map_err(|e| StoreError::Corrupt(format!("delegate eligibility: {e}")))?,
                lease: duration(row.try_get("lease_ms")?),
                builtin: row.try_get::<i64, _>("builtin")? != 0,
                token_id: row.try_get("token_id")?,
                polling: u32::try_from(row.try_get::<i64, _>("polling")?).unwrap_or(0),
                since_seen: duration(now - seen_at),
            })
        })
        .collect()
    }

    /// Replicas not heard from within [`REPLICA_GONE_AFTER`], other than this one.
    pub(crate) async fn gone_replicas(&self) -> Result<Vec<String>, StoreError> {
        let now = self.lease_now().await?;
        let rows = sqlx::query("SELECT id FROM replicas WHERE id <> $1 AND seen_at <= $2")
            .bind(self.replica().as_str())
            .bind(now - millis(REPLICA_GONE_AFTER))
            .read_all(&self.db)
            .await?;
        rows.iter()
            .map(|row| Ok(row.try_get::<String, _>("id")?))
            .collect()
    }
}

/// Refuses, inside a write transaction, a write for a branch whose lease is no longer the
/// one `fence` names: another replica took the branch over, and may be writing it. On
/// PostgreSQL the lease row stays locked until the transaction ends, so a takeover waits for
/// this write rather than slipping in between the check and the commit.
pub(crate) async fn check_fence(
    tx: &mut WriteTx,
    store: &Store,
    fence: &Fence,
) -> Result<(), StoreError> {
    let row = sqlx::query(&format!(
        "SELECT holder, token FROM branch_leases WHERE branch_id = $1{}",
        store.db.backend().lock_for_share()
    ))
    .bind(fence.branch.as_str())
    .fetch_optional(&mut **tx)
    .await?;
    let current = row
        .map(|row| -> Result<(Option<String>, i64), StoreError> {
            Ok((row.try_get("holder")?, row.try_get("token")?))
        })
        .transpose()?;
    match current {
        Some((Some(holder), token))
            if holder == store.replica().as_str() && token == fence.token =>
        {
            Ok(())
        }
        _ => Err(StoreError::Fenced {
            branch: fence.branch.to_string(),
        }),
    }
}

/// Lets go of every branch lease `replica` holds (keeping their tokens, which the next holder
/// raises) and forgets its delegates.
async fn let_go_of_branches_and_delegates(
    tx: &mut WriteTx,
    replica: &str,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE branch_leases SET holder = NULL, expires_at = 0 WHERE holder = $1")
        .bind(replica)
        .execute(&mut **tx)
        .await?;
    sqlx::query("DELETE FROM delegate_presence WHERE replica_id = $1")
        .bind(replica)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Marks the commit attempts left running on a branch's links interrupted, and their
/// changesets waiting again.
async fn interrupt_branch_attempts(
    tx: &mut WriteTx,
    branch: &BranchId,
    now: i64,
) -> Result<u64, StoreError> {
    const LINKS_OF_BRANCH: &str = "SELECT l.id FROM sync_links l JOIN sync_branches b
             ON l.connector_id = b.connector_id AND l.repo = b.repo AND l.branch = b.branch
         WHERE b.id = $2";
    let done = sqlx::query(&format!(
        "UPDATE commit_attempts SET status = 'interrupted',
             error = 'the server working on the branch stopped during the attempt', finished_at = $1
         WHERE status = 'running' AND link_id IN ({LINKS_OF_BRANCH})"
    ))
    .bind(now)
    .bind(branch.as_str())
    .execute(&mut **tx)
    .await?;
    sqlx::query(&format!(
        "UPDATE changesets SET status = 'waiting', attempt_id = NULL, updated_at = $1
         WHERE status = 'pushing' AND link_id IN ({LINKS_OF_BRANCH})"
    ))
    .bind(now)
    .bind(branch.as_str())
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected())
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

fn duration(ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}
