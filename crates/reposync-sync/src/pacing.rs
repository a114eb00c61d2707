//! How the workers pace themselves: gathering a burst of wake-ups into one round, and backing
//! off from work that keeps failing.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use reposync_store::Clock;
use tokio::sync::Notify;
use tokio::time::Instant;

/// After a first wake-up, waits until `signal` has been quiet for `quiet`, or `max` has
/// passed since the first, so that a burst is handled once and a steady stream still is.
pub(crate) async fn gather_burst(signal: &Notify, quiet: Duration, max: Duration) {
    let started = Instant::now();
    while started.elapsed() < max && tokio::time::timeout(quiet, signal.notified()).await.is_ok() {}
}

/// Per-key back-off: after each failure in a row the key waits twice as long, from `first` up
/// to `last`; a success clears it. Time is the store's clock, so tests move it on by hand.
#[derive(Debug)]
pub(crate) struct Backoff {
    first: Duration,
    last: Duration,
    clock: Arc<dyn Clock>,
    /// Per key: failures in a row, and until when (milliseconds) it waits.
    keys: Mutex<HashMap<String, (u32, i64)>>,
}

impl Backoff {
    pub(crate) fn new(first: Duration, last: Duration, clock: Arc<dyn Clock>) -> Backoff {
        Backoff {
            first,
            last,
            clock,
            keys: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `key` is still waiting out a failure.
    pub(crate) fn is_waiting(&self, key: &str) -> bool {
        let now = self.clock.now_millis();
        self.keys
            .lock()
            .get(key)
            .is_some_and(|(_, until)| *until > now)
    }

    /// Records a failure of `key` and returns how long it now waits.
    pub(crate) fn failed(&self, key: &str) -> Duration {
        let mut keys = self.keys.lock();
        let failures = keys.get(key).map_or(0, |(n, _)| *n) + 1;
        let delay = self
            .first
            .saturating_mul(1 << failures.saturating_sub(1).min(6))
            .min(self.last);
        let until = self
            .clock
            .now_millis()
            .saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX));
        keys.insert(key.to_owned(), (failures, until));
        delay
    }

    /// Clears `key`: its next failure starts from `first` again.
    pub(crate) fn succeeded(&self, key: &str) {
        self.keys.lock().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn failures_double_the_wait_up_to_the_last_and_a_success_clears_it() {
        let clock = reposync_store::ManualClock::starting_now();
        let backoff = Backoff::new(
            Duration::from_secs(1),
            Duration::from_secs(5),
            clock.clone(),
        );
        assert!(!backoff.is_waiting("a"));
        assert_eq!(backoff.failed("a"), Duration::from_secs(1));
        assert_eq!(backoff.failed("a"), Duration::from_secs(2));
        assert_eq!(backoff.failed("a"), Duration::from_secs(4));
        assert_eq!(backoff.failed("a"), Duration::from_secs(5));
        assert!(backoff.is_waiting("a"));
        assert!(!backoff.is_waiting("b"));
        clock.advance(4999);
        assert!(backoff.is_waiting("a"));
        clock.advance(1);
        assert!(!backoff.is_waiting("a"), "waited its 5 s");
        backoff.succeeded("a");
        assert!(!backoff.is_waiting("a"));
        assert_eq!(backoff.failed("a"), Duration::from_secs(1));
    }
}
