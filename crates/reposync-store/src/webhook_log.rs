//! The bounds of the webhook delivery log. Anyone who has a connector's webhook URL can send to
//! it, so nothing such a sender controls may make the log grow without limit: values are cut
//! to a few hundred bytes ([`bounded`]), deliveries that fail authentication are only counted
//! per connector ([`UnauthenticatedDeliveries`]), and old deliveries are pruned by age and per
//! connector ([`Store::prune_deliveries`]), except those whose heads are still unread.

use std::borrow::Cow;

use reposync_model::ConnectorId;
use sqlx::Row;

use crate::error::StoreError;
use crate::gate::Read;
use crate::rows::id_column;
use crate::store::Store;

/// The most bytes of a header value (event key, delivery id) the log keeps.
pub const MAX_LOGGED_HEADER_BYTES: usize = 256;
/// The most bytes of a reason the log keeps.
pub const MAX_LOGGED_REASON_BYTES: usize = 512;
/// The most bytes of a normalised payload the log keeps; a larger one is replaced by a note
/// of its size. It is bounded by the body limit already, but a log of 1 MiB rows would still
/// be too large to keep a thousand of.
pub const MAX_LOGGED_PAYLOAD_BYTES: usize = 64 * 1024;

/// `text`, or when it is longer than `max_bytes`, as much of its start as fits in
/// `max_bytes` together with a mark that says it was cut and its original size. The cut falls
/// on a character boundary, and the result is never longer than `max_bytes`, so bounding a
/// bounded value changes nothing.
pub fn bounded(text: &str, max_bytes: usize) -> Cow<'_, str> {
    if text.len() <= max_bytes {
        return Cow::Borrowed(text);
    }
    let mark = format!("… [truncated from {} bytes]", text.len());
    let mut end = max_bytes.saturating_sub(mark.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}{mark}", &text[..end]))
}

/// A normalised payload as the log keeps it: the JSON itself, or a note of its size.
pub(crate) fn bounded_payload(json: &str) -> Cow<'_, str> {
    if json.len() <= MAX_LOGGED_PAYLOAD_BYTES {
        Cow::Borrowed(json)
    } else {
        Cow::Owned(serde_json::json!({"truncated": true, "bytes": json.len()}).to_string())
    }
}

/// Deliveries to one connector's URL that failed authentication: a count, and the last one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnauthenticatedDeliveries {
    pub connector_id: ConnectorId,
    pub count: i64,
    /// Milliseconds since the epoch.
    pub last_at: i64,
    pub last_reason: String,
}

/// A delivery that queued a head stays while the head is unread: its branch still has a head
/// queued, and the head is neither the processed commit nor a commit read since. Deliveries
/// logged before heads were recorded stay while any branch of their connector has one queued.
/// `d` is the delivery.
const KEEPS_AN_UNREAD_HEAD: &str = "d.outcome = 'queued' AND (
    EXISTS (SELECT 1 FROM webhook_delivery_heads h JOIN sync_branches b ON b.id = h.branch_id
        WHERE h.delivery_id = d.id AND b.wanted_commit IS NOT NULL
        AND (h.commit_id = '' OR (COALESCE(b.processed_commit, '') <> h.commit_id
            AND NOT EXISTS (SELECT 1 FROM inbound_commits c WHERE c.branch_id = b.id AND c.commit_id = h.commit_id))))
    OR (NOT EXISTS (SELECT 1 FROM webhook_delivery_heads h WHERE h.delivery_id = d.id)
        AND EXISTS (SELECT 1 FROM sync_branches b WHERE b.connector_id = d.connector_id AND b.wanted_commit IS NOT NULL)))";

impl Store {
    /// Adds to the counts of deliveries that failed authentication. A connector deleted
    /// meanwhile is skipped.
    pub async fn add_unauthenticated_deliveries(
        &self,
        tallies: &[UnauthenticatedDeliveries],
    ) -> Result<(), StoreError> {
        if tallies.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        for tally in tallies {
            sqlx::query(
                "INSERT INTO webhook_unauthenticated (connector_id, count, last_at, last_reason)
                 SELECT $1, $2, $3, $4 WHERE EXISTS (SELECT 1 FROM connectors WHERE id = $1)
                 ON CONFLICT (connector_id) DO UPDATE SET count = webhook_unauthenticated.count + excluded.count,
                     last_at = excluded.last_at, last_reason = excluded.last_reason",
            )
            .bind(tally.connector_id.as_str())
            .bind(tally.count)
            .bind(tally.last_at)
            .bind(bounded(&tally.last_reason, MAX_LOGGED_REASON_BYTES).into_owned())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The counts of deliveries that failed authentication, per connector that had any.
    pub async fn unauthenticated_deliveries(
        &self,
    ) -> Result<Vec<UnauthenticatedDeliveries>, StoreError> {
        sqlx::query(
            "SELECT connector_id, count, last_at, last_reason FROM webhook_unauthenticated ORDER BY connector_id",
        )
        .read_all(&self.db)
        .await?
        .iter()
        .map(|row| {
            Ok(UnauthenticatedDeliveries {
                connector_id: id_column(row, "connector_id")?,
                count: row.try_get("count")?,
                last_at: row.try_get("last_at")?,
                last_reason: row.try_get("last_reason")?,
            })
        })
        .collect()
    }

    /// Deletes deliveries received before `received_before` (milliseconds), and each
    /// connector's beyond its `keep_per_connector` newest, except those whose heads are still
    /// unread. Returns how many were deleted.
    pub async fn prune_deliveries(
        &self,
        received_before: i64,
        keep_per_connector: u32,
    ) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        let deleted = sqlx::query(&format!(
            "DELETE FROM webhook_deliveries WHERE id IN (
                 SELECT d.id FROM (
                     SELECT id, connector_id, outcome, received_at, ROW_NUMBER() OVER (
                         PARTITION BY connector_id ORDER BY received_at DESC, id DESC) AS newest
                     FROM webhook_deliveries) d
                 WHERE (d.received_at < $1 OR d.newest > $2) AND NOT ({KEEPS_AN_UNREAD_HEAD}))"
        ))
        .bind(received_before)
        .bind(i64::from(keep_per_connector))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(deleted)
    }
}
