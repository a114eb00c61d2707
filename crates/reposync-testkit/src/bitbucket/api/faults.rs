//! What a test can make the REST emulator do besides answering: injected faults, a rate
//! limit over a rolling hour, Cloud's rate-limit headers, and DC's cap on changes.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::ApiFault;

/// The length of the rate limit's rolling window, as Bitbucket Cloud counts.
const WINDOW: Duration = Duration::from_secs(60 * 60);

/// DC's default `page.max.changes`.
pub(super) const DEFAULT_CHANGES_CAP: usize = 1000;

/// The knobs a test turns, behind one lock.
#[derive(Debug)]
pub(super) struct Controls {
    faults: VecDeque<ApiFault>,
    rate_limit: Option<u32>,
    /// When each request admitted since the limit was set arrived, oldest first.
    window: VecDeque<Instant>,
    /// `X-RateLimit-Limit` and `X-RateLimit-NearLimit`, when a test asked for them.
    pub rate_limit_headers: Option<(u32, bool)>,
    pub changes_cap: usize,
}

impl Default for Controls {
    fn default() -> Self {
        Self {
            faults: VecDeque::new(),
            rate_limit: None,
            window: VecDeque::new(),
            rate_limit_headers: None,
            changes_cap: DEFAULT_CHANGES_CAP,
        }
    }
}

impl Controls {
    /// Queues a fault for a later repository request.
    pub fn inject(&mut self, fault: ApiFault) {
        self.faults.push_back(fault);
    }

    /// The oldest queued fault, taken off the queue; a fault meant for a write waits for
    /// one.
    pub fn next_fault(&mut self, is_write: bool) -> Option<ApiFault> {
        let for_a_write = matches!(
            self.faults.front(),
            Some(
                ApiFault::DropAfterHandling
                    | ApiFault::HoldAfterHandling
                    | ApiFault::RefuseWrite(_)
            )
        );
        if for_a_write && !is_write {
            return None;
        }
        self.faults.pop_front()
    }

    /// Sets (or lifts) the limit; counting starts afresh, so that a test's set-up requests do
    /// not count against a limit set after them.
    pub fn set_rate_limit(&mut self, requests_per_hour: Option<u32>) {
        self.rate_limit = requests_per_hour;
        self.window.clear();
    }

    /// Counts an authenticated request arriving `now`; `false` when the limit is already
    /// used up in the last hour, in which case the request is refused and not counted.
    pub fn admit(&mut self, now: Instant) -> bool {
        let Some(limit) = self.rate_limit else {
            return true;
        };
        while self
            .window
            .front()
            .is_some_and(|oldest| now.duration_since(*oldest) >= WINDOW)
        {
            self.window.pop_front();
        }
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        if self.window.len() >= limit {
            return false;
        }
        self.window.push_back(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_counts_a_rolling_hour() {
        let mut controls = Controls::default();
        let start = Instant::now();
        assert!(controls.admit(start), "no limit, no refusal");
        controls.set_rate_limit(Some(2));
        assert!(controls.admit(start));
        assert!(controls.admit(start + Duration::from_secs(10)));
        assert!(!controls.admit(start + Duration::from_secs(20)));
        // The first request leaves the window an hour after it arrived.
        assert!(controls.admit(start + WINDOW));
        assert!(!controls.admit(start + WINDOW + Duration::from_secs(1)));
        controls.set_rate_limit(None);
        assert!(controls.admit(start + WINDOW + Duration::from_secs(2)));
    }

    #[test]
    fn faults_come_out_in_order() {
        let mut controls = Controls::default();
        controls.inject(ApiFault::ServerError(502));
        controls.inject(ApiFault::DropConnection);
        assert_eq!(controls.next_fault(false), Some(ApiFault::ServerError(502)));
        assert_eq!(controls.next_fault(false), Some(ApiFault::DropConnection));
        assert_eq!(controls.next_fault(false), None);
    }

    #[test]
    fn a_fault_for_a_write_lets_reads_pass() {
        let mut controls = Controls::default();
        controls.inject(ApiFault::DropAfterHandling);
        assert_eq!(controls.next_fault(false), None);
        assert_eq!(controls.next_fault(true), Some(ApiFault::DropAfterHandling));
        assert_eq!(controls.next_fault(true), None);
    }
}
