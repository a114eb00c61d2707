//! Webhook deliveries as logged, and the branch heads they queue for reading. A retried or
//! doubled delivery never applies twice.

use reposync_model::{BranchId, ConnectorId, LinkId, ObjectId};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::error::StoreError;
use crate::gate::{Read, WriteTx};
use crate::rows::{id_column, new_id};
use crate::store::Store;
use crate::webhook_log::{
    MAX_LOGGED_HEADER_BYTES, MAX_LOGGED_REASON_BYTES, bounded, bounded_payload,
};

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
    pub connector_id: ConnectorId,
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
    pub branch_id: BranchId,
    pub commit: Option<ObjectId>,
    pub link_ids: Vec<LinkId>,
}

/// A delivery as logged.
#[derive(Debug, Clone)]
pub struct DeliveryRecord {
    pub id: String,
    pub connector_id: ConnectorId,
    pub received_at: i64,
    pub event: String,
    pub delivery_id: Option<String>,
    pub format: Option<String>,
    pub signature: SignatureCheck,
    pub outcome: DeliveryOutcome,
    pub reason: Option<String>,
    pub matched_links: Vec<LinkId>,
    pub changes_json: String,
}

/// What queuing a delivery's heads came to: the outcome, its reason, the links matched, and
/// the heads queued (branch id and commit, '' for a deletion).
type QueuedHeads = (
    DeliveryOutcome,
    String,
    Vec<LinkId>,
    Vec<(BranchId, String)>,
);

const DELIVERY_COLUMNS: &str = "id, connector_id, received_at, event, delivery_id, format, signature, outcome, reason, matched_links, changes";

fn delivery_from_row(row: &AnyRow) -> Result<DeliveryRecord, StoreError> {
    let matched: String = row.try_get("matched_links")?;
    Ok(DeliveryRecord {
        id: row.try_get("id")?,
        connector_id: id_column(row, "connector_id")?,
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

impl Store {
    /// Records a delivery, and queues the heads it announces, in one transaction. A delivery
    /// id seen before from the same connector, and heads already processed or already
    /// queued, make it a duplicate: a retried or doubled delivery never applies twice. The
    /// event key, delivery id and reason are kept [`bounded`], and so is the payload; the
    /// record returned is what was kept.
    pub async fn record_delivery(
        &self,
        delivery: &NewDelivery,
    ) -> Result<DeliveryRecord, StoreError> {
        self.retrying("record_delivery", || self.record_delivery_once(delivery))
            .await
    }

    async fn record_delivery_once(
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
        let id: String = new_id();
        sqlx::query(&format!(
            "INSERT INTO webhook_deliveries ({DELIVERY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        ))
        .bind(&id)
        .bind(delivery.connector_id.as_str())
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
            .bind(branch_id.as_str())
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
        let mut matched: Vec<LinkId> = delivery
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
            .bind(delivery.connector_id.as_str())
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
            // '' is how the tables say the branch was announced deleted.
            let commit = head
                .commit
                .as_ref()
                .map(ObjectId::to_string)
                .unwrap_or_default();
            // A head already processed, queued, or read as a commit of the branch is not news.
            let known = sqlx::query(
                "SELECT 1 FROM sync_branches b WHERE b.id = $1 AND (b.processed_commit = $2 OR b.wanted_commit = $2
                     OR EXISTS (SELECT 1 FROM inbound_commits c WHERE c.branch_id = b.id AND c.commit_id = $2)
                     OR ($2 <> '' AND EXISTS (SELECT 1 FROM announced_heads a WHERE a.branch_id = b.id AND a.commit_id = $2)))",
            )
            .bind(head.branch_id.as_str())
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
            .bind(head.branch_id.as_str())
            .execute(&mut **tx)
            .await?;
            // A deletion is not remembered: the branch may come back and go again.
            if !commit.is_empty() {
                sqlx::query(
                    "INSERT INTO announced_heads (branch_id, commit_id, announced_at) VALUES ($1, $2, $3)
                     ON CONFLICT (branch_id, commit_id) DO NOTHING",
                )
                .bind(head.branch_id.as_str())
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
        connector_id: Option<&ConnectorId>,
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
            query = query.bind(id.as_str());
        }
        query
            .read_all(&self.db)
            .await?
            .iter()
            .map(delivery_from_row)
            .collect()
    }
}
