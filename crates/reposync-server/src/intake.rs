//! What keeps webhook intake bounded. Anyone who has a webhook URL, or guesses at them, can
//! send as much as they like, so nothing they send may cost more than a bounded share of the
//! server:
//! - each URL token has token buckets ([`IntakeGuard::admit`], `429` past them): one for its
//!   authenticated deliveries and one for the rest; every unknown token shares one;
//! - log lines about refused deliveries are throttled per topic ([`IntakeGuard::may_log`]);
//! - deliveries that fail authentication are counted in memory and written to the store at
//!   most once per [`FLUSH_EVERY`], never row by row.
//!
//! The periodic [`run_upkeep`] writes the counts and prunes the delivery log.
//!
//! All of it is in memory and per process, which is enough: a restart forgets a bucket's
//! level, which only lets a burst through once more.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use reposync_model::ConnectorId;
use reposync_store::{Store, UnauthenticatedDeliveries};
use tokio::time::Instant;

use crate::config::{DeliveryLog, RateLimit};

/// At most one log line per topic in this long; the next line says how many it left out.
pub const LOG_EVERY: Duration = Duration::from_secs(10);
/// How often counted deliveries are written to the store.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// How often the delivery log is pruned.
pub const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// Whose bucket a delivery takes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Sender {
    /// A token no connector has. They all share one bucket: they are never legitimate, and a
    /// bucket per random token would let a sender fill memory and never meet the limit.
    UnknownToken,
    /// A connector's token (by id), on a delivery that failed authentication. These have a
    /// bucket of their own, so that someone who has the URL but not the secret cannot use up
    /// the limit of the deliveries Bitbucket signs.
    Unauthenticated(ConnectorId),
    /// A connector's token (by id), on an authenticated delivery (or any, when the connector
    /// asks for no signature: its URL is then the only credential).
    Authenticated(ConnectorId),
}

/// What a throttled log line is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LogTopic {
    UnknownToken,
    RateLimited(Sender),
    /// Deliveries to this connector (by id) that failed authentication.
    Unauthenticated(ConnectorId),
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

#[derive(Debug)]
struct Throttled {
    last_line: Instant,
    suppressed: u64,
}

/// Counts waiting to be written, and a lock held while they are written, so that a reader
/// who takes it sees every count either in the store or still waiting, never in flight.
#[derive(Debug, Default)]
struct Tally {
    waiting: Mutex<HashMap<ConnectorId, UnauthenticatedDeliveries>>,
    writing: tokio::sync::Mutex<()>,
}

/// The webhook intake's rate limits, log throttles and counts, shared by every request.
#[derive(Debug)]
pub struct IntakeGuard {
    limit: Option<RateLimit>,
    buckets: Mutex<HashMap<Sender, Bucket>>,
    log_lines: Mutex<HashMap<LogTopic, Throttled>>,
    unauthenticated: Tally,
}

impl IntakeGuard {
    /// A guard with this limit per URL token; `None` admits everything.
    pub fn new(limit: Option<RateLimit>) -> IntakeGuard {
        IntakeGuard {
            limit,
            buckets: Mutex::new(HashMap::new()),
            log_lines: Mutex::new(HashMap::new()),
            unauthenticated: Tally::default(),
        }
    }

    /// Takes one delivery from the sender's bucket, or says how long until the bucket has one.
    pub fn admit(&self, sender: &Sender, now: Instant) -> Result<(), Duration> {
        let Some(limit) = self.limit else {
            return Ok(());
        };
        let burst = f64::from(limit.burst);
        let mut buckets = self.buckets.lock();
        let bucket = buckets.entry(sender.clone()).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * limit.per_second).min(burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - bucket.tokens) / limit.per_second;
            Err(Duration::try_from_secs_f64(wait).unwrap_or(Duration::MAX))
        }
    }

    /// Forgets buckets that have filled up again: they are the same as no bucket. This keeps
    /// the map to the senders of the last few seconds (connectors deleted meanwhile too).
    fn forget_full_buckets(&self, now: Instant) {
        let Some(limit) = self.limit else {
            return;
        };
        let burst = f64::from(limit.burst);
        self.buckets.lock().retain(|_, bucket| {
            let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
            bucket.tokens + elapsed * limit.per_second < burst
        });
    }

    /// Whether a line about `topic` may be logged now: `Some(n)` with the number of lines
    /// left out since the last one, at most once per [`LOG_EVERY`] per topic.
    pub fn may_log(&self, topic: LogTopic, now: Instant) -> Option<u64> {
        let mut lines = self.log_lines.lock();
        match lines.get_mut(&topic) {
            Some(line) if now.saturating_duration_since(line.last_line) < LOG_EVERY => {
                line.suppressed += 1;
                None
            }
            Some(line) => {
                let suppressed = line.suppressed;
                line.last_line = now;
                line.suppressed = 0;
                Some(suppressed)
            }
            None => {
                lines.insert(
                    topic,
                    Throttled {
                        last_line: now,
                        suppressed: 0,
                    },
                );
                Some(0)
            }
        }
    }

    /// Counts a delivery to a connector's URL that failed authentication; [`run_upkeep`]
    /// writes the count.
    pub fn count_unauthenticated(&self, connector_id: &ConnectorId, reason: &str, at_millis: i64) {
        let mut waiting = self.unauthenticated.waiting.lock();
        let tally =
            waiting
                .entry(connector_id.clone())
                .or_insert_with(|| UnauthenticatedDeliveries {
                    connector_id: connector_id.clone(),
                    count: 0,
                    last_at: at_millis,
                    last_reason: String::new(),
                });
        tally.count += 1;
        tally.last_at = at_millis;
        if tally.last_reason != reason {
            reason.clone_into(&mut tally.last_reason);
        }
    }

    /// Writes the waiting counts to the store. Counts that could not be written wait for the
    /// next time.
    pub async fn flush(
        &self,
        store: &reposync_store::Store,
    ) -> Result<(), reposync_store::StoreError> {
        let _writing = self.unauthenticated.writing.lock().await;
        let batch: Vec<UnauthenticatedDeliveries> = self
            .unauthenticated
            .waiting
            .lock()
            .drain()
            .map(|(_, tally)| tally)
            .collect();
        if let Err(error) = store.add_unauthenticated_deliveries(&batch).await {
            let mut waiting = self.unauthenticated.waiting.lock();
            for tally in batch {
                let newer = waiting.remove(&tally.connector_id);
                waiting.insert(tally.connector_id.clone(), merge(tally, newer));
            }
            return Err(error);
        }
        Ok(())
    }

    /// Every count of deliveries that failed authentication, per connector id: what the
    /// store holds plus what waits to be written.
    pub async fn unauthenticated(
        &self,
        store: &reposync_store::Store,
    ) -> Result<HashMap<ConnectorId, UnauthenticatedDeliveries>, reposync_store::StoreError> {
        let _writing = self.unauthenticated.writing.lock().await;
        let mut all: HashMap<ConnectorId, UnauthenticatedDeliveries> = store
            .unauthenticated_deliveries()
            .await?
            .into_iter()
            .map(|tally| (tally.connector_id.clone(), tally))
            .collect();
        for (id, waiting) in self.unauthenticated.waiting.lock().iter() {
            let stored = all.remove(id);
            let merged = match stored {
                Some(stored) => merge(stored, Some(waiting.clone())),
                None => waiting.clone(),
            };
            all.insert(id.clone(), merged);
        }
        Ok(all)
    }
}

/// An older count plus a newer one: the sum, and the newer one's last delivery.
fn merge(
    older: UnauthenticatedDeliveries,
    newer: Option<UnauthenticatedDeliveries>,
) -> UnauthenticatedDeliveries {
    match newer {
        Some(newer) => UnauthenticatedDeliveries {
            count: older.count + newer.count,
            ..newer
        },
        None => older,
    }
}

/// Writes the counts of unauthenticated deliveries every [`FLUSH_EVERY`] and prunes the
/// delivery log every [`PRUNE_EVERY`] (and at once), until `stop` resolves; then writes the
/// counts a last time.
pub async fn run_upkeep(
    guard: &IntakeGuard,
    store: &Store,
    log: &DeliveryLog,
    stop: impl Future<Output = ()>,
) {
    let mut flush = tokio::time::interval(FLUSH_EVERY);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut prune = tokio::time::interval(PRUNE_EVERY);
    prune.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => break,
            _ = flush.tick() => {
                if let Err(error) = guard.flush(store).await {
                    tracing::warn!(%error, "cannot write the counts of unauthenticated webhook deliveries");
                }
            }
            _ = prune.tick() => {
                guard.forget_full_buckets(Instant::now());
                prune_deliveries(store, log).await;
            }
        }
    }
    if let Err(error) = guard.flush(store).await {
        tracing::warn!(%error, "cannot write the counts of unauthenticated webhook deliveries");
    }
}

async fn prune_deliveries(store: &Store, log: &DeliveryLog) {
    let retention = i64::try_from(log.retention.as_millis()).unwrap_or(i64::MAX);
    let received_before = reposync_store::now_millis().saturating_sub(retention);
    match store
        .prune_deliveries(received_before, log.kept_per_connector)
        .await
    {
        Ok(0) => {}
        Ok(deleted) => tracing::info!(deleted, "pruned the webhook delivery log"),
        Err(error) => tracing::warn!(%error, "cannot prune the webhook delivery log"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_admits_its_burst_then_its_rate_and_other_senders_keep_theirs() {
        let guard = IntakeGuard::new(Some(RateLimit {
            per_second: 2.0,
            burst: 3,
        }));
        let start = Instant::now();
        let a = Sender::Authenticated(ConnectorId::new("a"));
        for _ in 0..3 {
            assert_eq!(guard.admit(&a, start), Ok(()));
        }
        let wait = guard.admit(&a, start).expect_err("the burst is spent");
        assert_eq!(wait, Duration::from_millis(500), "one token takes 1/2 s");
        assert_eq!(
            guard.admit(&Sender::Unauthenticated(ConnectorId::new("a")), start),
            Ok(())
        );
        assert_eq!(guard.admit(&Sender::UnknownToken, start), Ok(()));
        // Half a second later one more goes through; never more than the burst.
        assert_eq!(guard.admit(&a, start + Duration::from_millis(500)), Ok(()));
        assert!(guard.admit(&a, start + Duration::from_millis(500)).is_err());
        let later = start + Duration::from_secs(3600);
        for _ in 0..3 {
            assert_eq!(guard.admit(&a, later), Ok(()));
        }
        assert!(guard.admit(&a, later).is_err());
    }

    #[test]
    fn no_limit_admits_everything_and_full_buckets_are_forgotten() {
        let open = IntakeGuard::new(None);
        let now = Instant::now();
        for _ in 0..10_000 {
            assert_eq!(open.admit(&Sender::UnknownToken, now), Ok(()));
        }
        let guard = IntakeGuard::new(Some(RateLimit {
            per_second: 1.0,
            burst: 2,
        }));
        guard.admit(&Sender::UnknownToken, now).expect("admitted");
        guard.forget_full_buckets(now);
        assert_eq!(guard.buckets.lock().len(), 1, "not full yet");
        guard.forget_full_buckets(now + Duration::from_secs(1));
        assert!(guard.buckets.lock().is_empty(), "full again");
    }

    #[test]
    fn a_topic_logs_once_per_period_and_then_counts_what_it_left_out() {
        let guard = IntakeGuard::new(None);
        let start = Instant::now();
        let topic = LogTopic::Unauthenticated(ConnectorId::new("c"));
        assert_eq!(guard.may_log(topic.clone(), start), Some(0));
        for second in 1..10 {
            let at = start + Duration::from_secs(second);
            assert_eq!(guard.may_log(topic.clone(), at), None);
        }
        assert_eq!(
            guard.may_log(LogTopic::UnknownToken, start),
            Some(0),
            "topics are apart"
        );
        assert_eq!(guard.may_log(topic.clone(), start + LOG_EVERY), Some(9));
        assert_eq!(guard.may_log(topic, start + LOG_EVERY), None);
    }
}
