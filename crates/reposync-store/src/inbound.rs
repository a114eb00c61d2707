//! Git → reposync: the branches links sync with, where reading each one stands, and the log of
//! webhook deliveries that announce new heads.

use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::gate::{Read, Write, WriteTx};
use crate::webhook_log::{
    MAX_LOGGED_HEADER_BYTES, MAX_LOGGED_REASON_BYTES, bounded, bounded_payload,
};
use crate::{Store, StoreError, new_id};

/// A branch that live links sync with: once per connector, repository and branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncBranch {
    pub id: String,
    pub connector_id: String,
    /// The repository slug, for account-scope connectors.
    pub repo: Option<String>,
    pub branch: String,
    /// The last commit read and applied; `None` until the first read.
    pub processed_commit: Option<String>,
    /// A head announced and not yet processed: `Some(None)` when the branch was announced
    /// deleted.
    pub wanted: Option<Option<String>>,
    pub wanted_at: Option<i64>,
    /// Why the branch cannot be synced, while it cannot.
    pub broken: Option<String>,
    pub polled_at: Option<i64>,
}

/// How a delivery's signature fared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignatureCheck {
    /// Not reached: the delivery was refused before (its body could not be read).
    Unchecked,
    Valid,
    /// The connector has no HMAC secret, so none was asked for.
    NotRequired,
    Missing,
    Invalid,
}

impl SignatureCheck {
    pub fn as_str(self) -> &'static str {
        match self {
            SignatureCheck::Unchecked => "unchecked",
            SignatureCheck::Valid => "valid",
            SignatureCheck::NotRequired => "not_required",
            SignatureCheck::Missing => "missing",
            SignatureCheck::Invalid => "invalid",
        }
    }

    fn parse(text: &str) -> Result<Self, StoreError> {
        Ok(match text {
            "unchecked" => SignatureCheck::Unchecked,
            "valid" => SignatureCheck::Valid,
            "not_required" => SignatureCheck::NotRequired,
            "missing" => SignatureCheck::Missing,
            "invalid" => SignatureCheck::Invalid,
            other => return Err(StoreError::Corrupt(format!("signature check {other:?}"))),
        })
    }
}

/// What became of a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryOutcome {
    /// At least one branch change was queued for reading.
    Queued,
    Ping,
    /// Nothing in it concerns a live link (another branch, a tag, another event…).
    Ignored,
    /// Already delivered: the same delivery id, or heads already processed or queued.
    Duplicate,
    /// Refused: a body that is not a webhook. Deliveries that fail authentication are not
    /// logged, only counted ([`crate::UnauthenticatedDeliveries`]).
    Rejected,
}

impl DeliveryOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryOutcome::Queued => "queued",
            DeliveryOutcome::Ping => "ping",
            DeliveryOutcome::Ignored => "ignored",
            DeliveryOutcome::Duplicate => "duplicate",
            DeliveryOutcome::Rejected => "rejected",
        }
    }

    fn parse(text: &str) -> Result<Self, StoreError> {
        Ok(match text {
            "queued" => DeliveryOutcome::Queued,
            "ping" => DeliveryOutcome::Ping,
            "ignored" => DeliveryOutcome::Ignored,
            "duplicate" => DeliveryOutcome::Duplicate,
            "rejected" => DeliveryOutcome::Rejected,
            other => return Err(StoreError::Corrupt(format!("delivery outcome {other:?}"))),
        })
    }
}

/// A delivery to record. `changes` is the normalised payload, as JSON, for the log.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub connector_id: String,
    pub event: String,
    pub delivery_id: Option<String>,
    pub format: Option<String>,
    pub signature: SignatureCheck,
    pub changes_json: String,
    /// The outcome decided before the store is asked (rejected, ping, ignored); `None` when
    /// the delivery carries branch heads to queue.
    pub decided: Option<(DeliveryOutcome, String)>,
    /// The heads to queue: per branch, the new commit (`None`: the branch was deleted), with
    /// the links the change matched.
    pub heads: Vec<AnnouncedHead>,
}

/// A branch's new head, as a delivery or the poller announces it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnouncedHead {
    pub branch_id: String,
    pub commit: Option<String>,
    pub link_ids: Vec<String>,
}

/// A delivery as logged.
#[derive(Debug, Clone)]
pub struct DeliveryRecord {
    pub id: String,
    pub connector_id: String,
    pub received_at: i64,
    pub event: String,
    pub delivery_id: Option<String>,
    pub format: Option<String>,
    pub signature: SignatureCheck,
    pub outcome: DeliveryOutcome,
    pub reason: Option<String>,
    pub matched_links: Vec<String>,
    pub changes_json: String,
}

/// What queuing a delivery's heads came to: the outcome, its reason, the links matched, and
/// the heads queued (branch id and commit, '' for a deletion).
type QueuedHeads = (DeliveryOutcome, String, Vec<String>, Vec<(String, String)>);

const BRANCH_COLUMNS: &str =
    "id, connector_id, repo, branch, processed_commit, wanted_commit, wanted_at, broken, polled_at";
const DELIVERY_COLUMNS: &str = "id, connector_id, received_at, event, delivery_id, format, signature, outcome, reason, matched_links, changes";

fn branch_from_row(row: &AnyRow) -> Result<SyncBranch, StoreError> {
    let repo: String = row.try_get("repo")?;
    let wanted: Option<String> = row.try_get("wanted_commit")?;
    Ok(SyncBranch {
        id: row.try_get("id")?,
        connector_id: row.try_get("connector_id")?,
        repo: (!repo.is_empty()).then_some(repo),
        branch: row.try_get("branch")?,
        processed_commit: row.try_get("processed_commit")?,
        wanted: wanted.map(|w| (!w.is_empty()).then_some(w)),
        wanted_at: row.try_get("wanted_at")?,
        broken: row.try_get("broken")?,
        polled_at: row.try_get("polled_at")?,
    })
}

fn delivery_from_row(row: &AnyRow) -> Result<DeliveryRecord, StoreError> {
    let matched: String = row.try_get("matched_links")?;
    Ok(DeliveryRecord {
        id: row.try_get("id")?,
        connector_id: row.try_get("connector_id")?,
        received_at: row.try_get("received_at")?,
        event: row.try_get("event")?,
        delivery_id: row.try_get("delivery_id")?,
        format: row.try_get("format")?,
        signature: SignatureCheck::parse(&row.try_get::<String, _>("signature")?)?,
        outcome: DeliveryOutcome::parse(&row.try_get::<String, _>("outcome")?)?,
        reason: row.try_get("reason")?,
        matched_links: serde_json::from_str(&matched)
            .map_err(|e| StoreError::Corrupt(format!("matched links: {e}")))?,
        changes_json: row.try_get("changes")?,
    })
}

/// Makes sure a branch row exists for a new link (inserted just before), positioned at the
/// head the link was enabled on. A branch that other live links read keeps its position; one
/// that only links disabled since had read moves to the head: the new link took the branch as
/// it is there, and reading the commits before it again would replay them over what enabling
/// just set up.
pub(crate) async fn ensure_branch(
    tx: &mut WriteTx,
    connector_id: &str,
    repo: Option<&str>,
    branch: &str,
    head: Option<&str>,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO sync_branches (id, connector_id, repo, branch, processed_commit, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (connector_id, repo, branch) DO NOTHING",
    )
    .bind(new_id())
    .bind(connector_id)
    .bind(repo.unwrap_or_default())
    .bind(branch)
    .bind(head.map(str::to_owned))
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
    .bind(head.map(str::to_owned))
    .bind(now)
    .bind(connector_id)
    .bind(repo.unwrap_or_default())
    .bind(branch)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Store {
    /// The branches that live links of a connector sync with.
    pub async fn live_branches_of_connector(
        &self,
        connector_id: &str,
    ) -> Result<Vec<SyncBranch>, StoreError> {
        sqlx::query(&format!(
            "SELECT {BRANCH_COLUMNS} FROM sync_branches b WHERE connector_id = $1 AND EXISTS (
                 SELECT 1 FROM sync_links l WHERE l.enabled = 1 AND l.connector_id = b.connector_id
                 AND l.repo = b.repo AND l.branch = b.branch)
             ORDER BY repo, branch"
        ))
        .bind(connector_id)
        .read_all(&self.db)
        .await?
        .iter()
        .map(branch_from_row)
        .collect()
    }

    /// A branch by id.
    pub async fn sync_branch(&self, id: &str) -> Result<SyncBranch, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {BRANCH_COLUMNS} FROM sync_branches WHERE id = $1"
        ))
        .bind(id)
        .read_optional(&self.db)
        .await?
        .ok_or_else(|| StoreError::NotFound {
            what: "sync branch",
            name: id.to_owned(),
        })?;
        branch_from_row(&row)
    }

    /// Records a delivery, and queues the heads it announces, in one transaction. A delivery
    /// id seen before from the same connector, and heads already processed or already
    /// queued, make it a duplicate: a retried or doubled delivery never applies twice. The
    /// event key, delivery id and reason are kept [`bounded`], and so is the payload; the
    /// record returned is what was kept.
    pub async fn record_delivery(
        &self,
        delivery: &NewDelivery,
    ) -> Result<DeliveryRecord, StoreError> {
        let now = self.now();
        let event = bounded(&delivery.event, MAX_LOGGED_HEADER_BYTES).into_owned();
        // Deduplication compares the id as it was kept, as every earlier one was.
        let delivery_id = delivery
            .delivery_id
            .as_deref()
            .map(|id| bounded(id, MAX_LOGGED_HEADER_BYTES).into_owned());
        let changes_json = bounded_payload(&delivery.changes_json).into_owned();
        let mut tx = self.begin_write().await?;
        let (outcome, reason, matched, queued) = match &delivery.decided {
            Some((outcome, reason)) => (*outcome, reason.clone(), Vec::new(), Vec::new()),
            None => {
                self.queue_heads(&mut tx, delivery, delivery_id.as_deref(), now)
                    .await?
            }
        };
        let reason = bounded(&reason, MAX_LOGGED_REASON_BYTES).into_owned();
        let id = new_id();
        sqlx::query(&format!(
            "INSERT INTO webhook_deliveries ({DELIVERY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        ))
        .bind(&id)
        .bind(&delivery.connector_id)
        .bind(now)
        .bind(&event)
        .bind(delivery_id.clone())
        .bind(delivery.format.clone())
        .bind(delivery.signature.as_str())
        .bind(outcome.as_str())
        .bind(&reason)
        .bind(serde_json::to_string(&matched).map_err(|e| StoreError::Corrupt(e.to_string()))?)
        .bind(&changes_json)
        .execute(&mut *tx)
        .await?;
        // The heads it queued keep it from being pruned until they are read.
        for (branch_id, commit) in &queued {
            sqlx::query(
                "INSERT INTO webhook_delivery_heads (delivery_id, branch_id, commit_id) VALUES ($1, $2, $3)
                 ON CONFLICT (delivery_id, branch_id) DO NOTHING",
            )
            .bind(&id)
            .bind(branch_id)
            .bind(commit)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        if outcome == DeliveryOutcome::Queued {
            self.inbox_changed();
        }
        Ok(DeliveryRecord {
            id,
            connector_id: delivery.connector_id.clone(),
            received_at: now,
            event,
            delivery_id,
            format: delivery.format.clone(),
            signature: delivery.signature,
            outcome,
            reason: Some(reason),
            matched_links: matched,
            changes_json,
        })
    }

    /// Queues the heads a delivery announces; returns the outcome, its reason, the links
    /// matched, and the heads queued (branch and commit, '' for a deletion).
    async fn queue_heads(
        &self,
        tx: &mut WriteTx,
        delivery: &NewDelivery,
        delivery_id: Option<&str>,
        now: i64,
    ) -> Result<QueuedHeads, StoreError> {
        let mut matched: Vec<String> = delivery
            .heads
            .iter()
            .flat_map(|h| h.link_ids.iter().cloned())
            .collect();
        matched.sort();
        matched.dedup();
        if let Some(delivery_id) = delivery_id {
            let seen = sqlx::query(
                "SELECT 1 FROM webhook_deliveries WHERE connector_id = $1 AND delivery_id = $2 AND outcome <> 'rejected'",
            )
            .bind(&delivery.connector_id)
            .bind(delivery_id)
            .fetch_optional(&mut **tx)
            .await?;
            if seen.is_some() {
                return Ok((
                    DeliveryOutcome::Duplicate,
                    format!("delivery {delivery_id} was received before"),
                    matched,
                    Vec::new(),
                ));
            }
        }
        if delivery.heads.is_empty() {
            return Ok((
                DeliveryOutcome::Ignored,
                "no change in it is to a branch that a live link syncs".into(),
                matched,
                Vec::new(),
            ));
        }
        let mut queued = Vec::new();
        for head in &delivery.heads {
            let commit = head.commit.clone().unwrap_or_default();
            // A head already processed, queued, or read as a commit of the branch is not news.
            let known = sqlx::query(
                "SELECT 1 FROM sync_branches b WHERE b.id = $1 AND (b.processed_commit = $2 OR b.wanted_commit = $2
                     OR EXISTS (SELECT 1 FROM inbound_commits c WHERE c.branch_id = b.id AND c.commit_id = $2)
                     OR ($2 <> '' AND EXISTS (SELECT 1 FROM announced_heads a WHERE a.branch_id = b.id AND a.commit_id = $2)))",
            )
            .bind(&head.branch_id)
            .bind(&commit)
            .fetch_optional(&mut **tx)
            .await?;
            if known.is_some() {
                continue;
            }
            sqlx::query(
                "UPDATE sync_branches SET wanted_commit = $1, wanted_at = $2, updated_at = $2 WHERE id = $3",
            )
            .bind(&commit)
            .bind(now)
            .bind(&head.branch_id)
            .execute(&mut **tx)
            .await?;
            // A deletion is not remembered: the branch may come back and go again.
            if !commit.is_empty() {
                sqlx::query(
                    "INSERT INTO announced_heads (branch_id, commit_id, announced_at) VALUES ($1, $2, $3)
                     ON CONFLICT (branch_id, commit_id) DO NOTHING",
                )
                .bind(&head.branch_id)
                .bind(&commit)
                .bind(now)
                .execute(&mut **tx)
                .await?;
            }
            queued.push((head.branch_id.clone(), commit));
        }
        Ok(if queued.is_empty() {
            (
                DeliveryOutcome::Duplicate,
                "every head in it was already processed or queued".into(),
                matched,
                queued,
            )
        } else {
            (
                DeliveryOutcome::Queued,
                format!("{} branch head(s) queued for reading", queued.len()),
                matched,
                queued,
            )
        })
    }

    /// Deliveries, newest first, of one connector or all.
    pub async fn list_deliveries(
        &self,
        connector_id: Option<&str>,
        limit: i64,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        let filter = if connector_id.is_some() {
            "WHERE connector_id = $2"
        } else {
            ""
        };
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries {filter} ORDER BY received_at DESC, id DESC LIMIT $1"
        );
        let mut query = sqlx::query(&sql).bind(limit);
        if let Some(id) = connector_id {
            query = query.bind(id);
        }
        query
            .read_all(&self.db)
            .await?
            .iter()
            .map(delivery_from_row)
            .collect()
    }

    /// The paths of changes reposync accepted for a branch's scopes and has not pushed yet:
    /// Git's versions of these do not apply, reposync's win.
    pub async fn pending_paths_of_branch(
        &self,
        branch_id: &str,
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
        commit_id: &str,
        changeset_ids: &[String],
    ) -> Result<bool, StoreError> {
        let pushed = sqlx::query(
            "SELECT 1 FROM commit_attempts WHERE commit_id = $1 AND status IN ('pushed', 'nothing')",
        )
        .bind(commit_id)
        .read_optional(&self.db)
        .await?;
        if pushed.is_some() {
            return Ok(true);
        }
        for id in changeset_ids {
            let known = sqlx::query("SELECT 1 FROM changesets WHERE id = $1")
                .bind(id)
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
        branch_id: &str,
        path: &str,
    ) -> Result<Vec<String>, StoreError> {
        sqlx::query(
            "SELECT commit_id FROM sync_errors WHERE branch_id = $1 AND path = $2 AND commit_id IS NOT NULL ORDER BY created_at, id",
        )
        .bind(branch_id)
        .bind(path)
        .read_all(&self.db)
        .await?
        .iter()
        .map(|r| Ok(r.try_get("commit_id")?))
        .collect()
    }

    /// The branch is gone (deleted on the remote): it is marked broken, with one open sync
    /// error on each of its links saying so. Nothing is deleted from the tree.
    pub async fn mark_branch_broken(
        &self,
        branch_id: &str,
        reason: &str,
    ) -> Result<(), StoreError> {
        let now = self.now();
        let mut tx = self.begin_write().await?;
        let branch = sqlx::query(&format!(
            "SELECT {BRANCH_COLUMNS} FROM sync_branches WHERE id = $1"
        ))
        .bind(branch_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::NotFound {
            what: "sync branch",
            name: branch_id.to_owned(),
        })?;
        let branch = branch_from_row(&branch)?;
        sqlx::query(
            "UPDATE sync_branches SET broken = $1, wanted_commit = NULL, wanted_at = NULL, updated_at = $2 WHERE id = $3",
        )
        .bind(reason)
        .bind(now)
        .bind(branch_id)
        .execute(&mut *tx)
        .await?;
        let open = sqlx::query(
            "SELECT 1 FROM sync_errors WHERE branch_id = $1 AND code = 'branch_deleted' AND resolved_at IS NULL",
        )
        .bind(branch_id)
        .fetch_optional(&mut *tx)
        .await?;
        if open.is_none() {
            let links = sqlx::query(
                "SELECT id FROM sync_links WHERE enabled = 1 AND connector_id = $1 AND repo = $2 AND branch = $3",
            )
            .bind(&branch.connector_id)
            .bind(branch.repo.clone().unwrap_or_default())
            .bind(&branch.branch)
            .fetch_all(&mut *tx)
            .await?;
            for link in links {
                let link_id: String = link.try_get("id")?;
                sqlx::query(
                    "INSERT INTO sync_errors (id, link_id, branch_id, code, message, created_at) VALUES ($1, $2, $3, 'branch_deleted', $4, $5)",
                )
                .bind(new_id())
                .bind(&link_id)
                .bind(branch_id)
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
    pub async fn branch_read(&self, branch_id: &str, started_at: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE sync_branches SET wanted_commit = NULL, wanted_at = NULL, broken = NULL WHERE id = $1 AND (wanted_at IS NULL OR wanted_at <= $2)",
        )
        .bind(branch_id)
        .bind(started_at)
        .write(&self.db)
        .await?;
        Ok(())
    }

    /// Live branches not polled since `before` (milliseconds), least recently polled first.
    pub async fn branches_to_poll(&self, before: i64) -> Result<Vec<SyncBranch>, StoreError> {
        sqlx::query(&format!(
            "SELECT {BRANCH_COLUMNS} FROM sync_branches b WHERE COALESCE(polled_at, 0) <= $1 AND EXISTS (
                 SELECT 1 FROM sync_links l WHERE l.enabled = 1 AND l.connector_id = b.connector_id
                 AND l.repo = b.repo AND l.branch = b.branch)
             ORDER BY COALESCE(polled_at, 0), id"
        ))
        .bind(before)
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
        branch_id: &str,
        head: Option<&str>,
    ) -> Result<bool, StoreError> {
        let now = self.now();
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE sync_branches SET polled_at = $1 WHERE id = $2")
            .bind(now)
            .bind(branch_id)
            .execute(&mut *tx)
            .await?;
        let queued =
            crate::sync::want_head(&mut tx, branch_id, head.unwrap_or_default(), now).await?;
        tx.commit().await?;
        if queued {
            self.inbox_changed();
        }
        Ok(queued)
    }

    /// Commits read from Git, newest first, of the given branches or of all.
    pub async fn list_inbound_commits(
        &self,
        branch_ids: &[String],
        limit: i64,
    ) -> Result<Vec<InboundCommitRecord>, StoreError> {
        let filter = if branch_ids.is_empty() {
            String::new()
        } else {
            format!(
                " WHERE c.branch_id IN ({})",
                crate::placeholders_from(2, branch_ids.len())
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
                    commit_id: r.try_get("commit_id")?,
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

    /// The branch a link reads from.
    pub async fn branch_of_link(
        &self,
        link: &crate::SyncLink,
    ) -> Result<Option<SyncBranch>, StoreError> {
        sqlx::query(&format!(
            "SELECT {BRANCH_COLUMNS} FROM sync_branches WHERE connector_id = $1 AND repo = $2 AND branch = $3"
        ))
        .bind(&link.connector_id)
        .bind(link.repo.clone().unwrap_or_default())
        .bind(&link.branch)
        .read_optional(&self.db)
        .await?
        .as_ref()
        .map(branch_from_row)
        .transpose()
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

/// A commit read from Git, as recorded.
#[derive(Debug, Clone)]
pub struct InboundCommitRecord {
    pub commit_id: String,
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
}

/// A file of a commit that could not be applied, as a Git Sync error.
#[derive(Debug, Clone)]
pub struct FileError {
    pub path: String,
    /// The link of the file's scope, when it has one.
    pub link_id: Option<String>,
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
    pub branch_id: String,
    pub commit_id: String,
    pub status: InboundStatus,
    pub files: Vec<InboundFile>,
    pub message: String,
    pub author: String,
    pub errors: Vec<FileError>,
    /// For one of reposync's own commits, the changesets its trailers name: they are on the
    /// branch, whatever their push's answer said (or if it never came).
    pub changesets: Vec<String>,
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
    link: &crate::NewSyncLink,
    commit_id: &str,
    errors: &[FileError],
    now: i64,
) -> Result<(), StoreError> {
    let branch_id: String = sqlx::query(
        "SELECT id FROM sync_branches WHERE connector_id = $1 AND repo = $2 AND branch = $3",
    )
    .bind(&link.connector_id)
    .bind(link.repo.clone().unwrap_or_default())
    .bind(&link.branch)
    .fetch_one(&mut **tx)
    .await?
    .try_get("id")?;
    insert_file_errors(tx, &branch_id, commit_id, errors, now).await
}

async fn insert_file_errors(
    tx: &mut WriteTx,
    branch_id: &str,
    commit_id: &str,
    errors: &[FileError],
    now: i64,
) -> Result<(), StoreError> {
    for error in errors {
        sqlx::query(
            "UPDATE sync_errors SET resolved_at = $1, resolution = 'superseded' WHERE branch_id = $2 AND path = $3 AND resolved_at IS NULL",
        )
        .bind(now)
        .bind(branch_id)
        .bind(&error.path)
        .execute(&mut **tx)
        .await?;
        sqlx::query(
            "INSERT INTO sync_errors (id, link_id, branch_id, commit_id, path, code, message, ours, theirs, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(new_id())
        .bind(error.link_id.clone())
        .bind(branch_id)
        .bind(commit_id)
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
    branch_id: &str,
) -> Result<std::collections::HashSet<String>, StoreError> {
    let rows = sqlx::query(
        "SELECT c.files FROM changesets c JOIN sync_links l ON l.id = c.link_id JOIN sync_branches b
             ON l.connector_id = b.connector_id AND l.repo = b.repo AND l.branch = b.branch
         WHERE b.id = $1 AND l.enabled = 1 AND c.status IN ('waiting', 'pushing', 'conflict')",
    )
    .bind(branch_id)
    .fetch_all(&mut *conn)
    .await?;
    let mut paths = std::collections::HashSet::new();
    for row in rows {
        let files: String = row.try_get("files")?;
        let files: Vec<crate::sync::FileChangeRecord> = serde_json::from_str(&files)
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
    changeset_ids: &[String],
    commit: &str,
    now: i64,
) -> Result<(), StoreError> {
    for id in changeset_ids {
        let Some(row) = sqlx::query("SELECT link_id, files FROM changesets WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?
        else {
            continue;
        };
        if !crate::sync::mark_pushed(tx, id, Some(commit), now).await? {
            continue;
        }
        tracing::info!(changeset = %id, %commit, "a change whose push was not recorded is on the branch");
        let link_id: String = row.try_get("link_id")?;
        let files: String = row.try_get("files")?;
        let files: Vec<crate::sync::FileChangeRecord> = serde_json::from_str(&files)
            .map_err(|e| StoreError::Corrupt(format!("changeset files: {e}")))?;
        let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        crate::sync::resolve_landed_errors(tx, &link_id, &paths, now).await?;
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
    .bind(&inbound.branch_id)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(|| StoreError::NotFound {
        what: "sync branch",
        name: inbound.branch_id.clone(),
    })?;
    let branch = branch_from_row(&branch)?;
    sqlx::query(
        "INSERT INTO inbound_commits (id, branch_id, commit_id, status, files, errors, message, author, applied_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(new_id())
    .bind(&inbound.branch_id)
    .bind(&inbound.commit_id)
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
        .bind(&inbound.branch_id)
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
            .bind(new_id())
            .bind(app)
            .bind(&branch.connector_id)
            .bind(repo.clone().unwrap_or_default())
            .bind(&branch.branch)
            .bind(&inbound.commit_id)
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
    .bind(&inbound.commit_id)
    .bind(now)
    .bind(&inbound.branch_id)
    .execute(&mut **tx)
    .await?;
    let links_of_branch = "SELECT id FROM sync_links WHERE enabled = 1 AND connector_id = $1 AND repo = $2 AND branch = $3";
    sqlx::query(&format!(
        "UPDATE sync_links SET base_commit = $4, updated_at = $5 WHERE id IN ({links_of_branch})"
    ))
    .bind(&branch.connector_id)
    .bind(branch.repo.clone().unwrap_or_default())
    .bind(&branch.branch)
    .bind(&inbound.commit_id)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    let requeued = sqlx::query(&format!(
        "UPDATE changesets SET status = 'waiting', attempt_id = NULL, updated_at = $4 WHERE status = 'conflict' AND link_id IN ({links_of_branch})"
    ))
    .bind(&branch.connector_id)
    .bind(branch.repo.clone().unwrap_or_default())
    .bind(&branch.branch)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(requeued.rows_affected())
}
