//! Git → reposync: the branches links sync with, where reading each one stands, and the log of
//! webhook deliveries that announce new heads.

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::{Store, StoreError, new_id, now_millis};

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
    /// Refused: a missing or wrong signature, or a body that is not a webhook.
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

/// Makes sure a branch row exists for a new link, positioned at the head the link was
/// enabled on. A branch that other links already read keeps its position.
pub(crate) async fn ensure_branch(
    tx: &mut Transaction<'static, Any>,
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
                 AND COALESCE(l.repo, '') = b.repo AND l.branch = b.branch)
             ORDER BY repo, branch"
        ))
        .bind(connector_id)
        .fetch_all(&self.pool)
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
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| StoreError::NotFound {
            what: "sync branch",
            name: id.to_owned(),
        })?;
        branch_from_row(&row)
    }

    /// Records a delivery, and queues the heads it announces, in one transaction. A delivery
    /// id seen before from the same connector, and heads already processed or already
    /// queued, make it a duplicate: a retried or doubled delivery never applies twice.
    pub async fn record_delivery(
        &self,
        delivery: &NewDelivery,
    ) -> Result<DeliveryRecord, StoreError> {
        let now = now_millis();
        let mut tx = self.begin_write().await?;
        let (outcome, reason, matched) = match &delivery.decided {
            Some((outcome, reason)) => (*outcome, reason.clone(), Vec::new()),
            None => self.queue_heads(&mut tx, delivery, now).await?,
        };
        let id = new_id();
        sqlx::query(&format!(
            "INSERT INTO webhook_deliveries ({DELIVERY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        ))
        .bind(&id)
        .bind(&delivery.connector_id)
        .bind(now)
        .bind(&delivery.event)
        .bind(delivery.delivery_id.clone())
        .bind(delivery.format.clone())
        .bind(delivery.signature.as_str())
        .bind(outcome.as_str())
        .bind(&reason)
        .bind(serde_json::to_string(&matched).map_err(|e| StoreError::Corrupt(e.to_string()))?)
        .bind(&delivery.changes_json)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        if outcome == DeliveryOutcome::Queued {
            self.inbox_changed();
        }
        Ok(DeliveryRecord {
            id,
            connector_id: delivery.connector_id.clone(),
            received_at: now,
            event: delivery.event.clone(),
            delivery_id: delivery.delivery_id.clone(),
            format: delivery.format.clone(),
            signature: delivery.signature,
            outcome,
            reason: Some(reason),
            matched_links: matched,
            changes_json: delivery.changes_json.clone(),
        })
    }

    async fn queue_heads(
        &self,
        tx: &mut Transaction<'static, Any>,
        delivery: &NewDelivery,
        now: i64,
    ) -> Result<(DeliveryOutcome, String, Vec<String>), StoreError> {
        let mut matched: Vec<String> = delivery
            .heads
            .iter()
            .flat_map(|h| h.link_ids.iter().cloned())
            .collect();
        matched.sort();
        matched.dedup();
        if let Some(delivery_id) = &delivery.delivery_id {
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
                ));
            }
        }
        if delivery.heads.is_empty() {
            return Ok((
                DeliveryOutcome::Ignored,
                "no change in it is to a branch that a live link syncs".into(),
                matched,
            ));
        }
        let mut queued = 0;
        for head in &delivery.heads {
            let commit = head.commit.clone().unwrap_or_default();
            // A head already processed, queued, or read as a commit of the branch is not news.
            let known = sqlx::query(
                "SELECT 1 FROM sync_branches b WHERE b.id = $1 AND (b.processed_commit = $2 OR b.wanted_commit = $2
                     OR EXISTS (SELECT 1 FROM inbound_commits c WHERE c.branch_id = b.id AND c.commit_id = $2))",
            )
            .bind(&head.branch_id)
            .bind(&commit)
            .fetch_optional(&mut **tx)
            .await?;
            if known.is_some() {
                continue;
            }
            sqlx::query(
                "UPDATE sync_branches SET wanted_commit = $1, wanted_at = COALESCE(wanted_at, $2), updated_at = $2 WHERE id = $3",
            )
            .bind(&commit)
            .bind(now)
            .bind(&head.branch_id)
            .execute(&mut **tx)
            .await?;
            queued += 1;
        }
        Ok(if queued == 0 {
            (
                DeliveryOutcome::Duplicate,
                "every head in it was already processed or queued".into(),
                matched,
            )
        } else {
            (
                DeliveryOutcome::Queued,
                format!("{queued} branch head(s) queued for reading"),
                matched,
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
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(delivery_from_row)
            .collect()
    }

    /// Branches with a queued head, oldest request first.
    pub async fn wanted_branches(&self) -> Result<Vec<SyncBranch>, StoreError> {
        sqlx::query(&format!(
            "SELECT {BRANCH_COLUMNS} FROM sync_branches WHERE wanted_commit IS NOT NULL ORDER BY wanted_at, id"
        ))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(branch_from_row)
        .collect()
    }
}
