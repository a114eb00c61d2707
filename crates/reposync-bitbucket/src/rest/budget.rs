//! A request budget per credential: a rolling window of the requests sent, so that reposync
//! stays inside Bitbucket's limits on its own instead of learning them from 429s.
//!
//! Cloud allows about 1,000 REST requests an hour per API token's user (per token for access
//! tokens, scaled up to 10,000), in a rolling window, and often answers 429 without
//! `Retry-After` or any remaining-budget header. So the budget counts what was sent in the
//! last hour itself, takes the limit from `X-RateLimit-Limit` when Bitbucket sends it, treats
//! `X-RateLimit-NearLimit: true` as a budget nearly spent, and after a 429 refuses everything
//! until a cool-down has passed. The planner asks [`RequestBudget::remaining`] before it
//! chooses REST; the transport asks [`RequestBudget::take`] before each request, so a spent
//! budget moves work to git and never reaches Bitbucket.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::Serialize;
use sha2::{Digest as _, Sha256};

/// Cloud's published default: requests per rolling hour.
pub const DEFAULT_REQUESTS_PER_HOUR: u32 = 1_000;

/// The rolling window Bitbucket counts in.
const WINDOW: Duration = Duration::from_secs(60 * 60);

/// What `X-RateLimit-NearLimit: true` leaves usable: Bitbucket sends it when less than a
/// fifth of the hour's budget is left.
const NEAR_LIMIT_SHARE: u32 = 5;

/// The first cool-down after a 429 that named no wait, doubled at each further 429 up to
/// [`MAX_COOL_DOWN`]; Atlassian's advice and other clients' experience (§1.1 of the research)
/// put it at a minute.
pub const DEFAULT_FIRST_COOL_DOWN: Duration = Duration::from_secs(60);
const MAX_COOL_DOWN: Duration = Duration::from_secs(15 * 60);

/// The budget of one credential. Shared (`Arc`) by every client using that credential in this
/// process.
#[derive(Debug)]
pub struct RequestBudget {
    window: Mutex<Window>,
}

#[derive(Debug)]
struct Window {
    /// Requests per rolling hour: configured, or learnt from `X-RateLimit-Limit`.
    limit: u32,
    /// When each request of the last hour was sent, oldest first.
    sent: VecDeque<Instant>,
    /// Whether the last answer said `X-RateLimit-NearLimit: true`.
    near_limit: bool,
    /// Whether any answer carried `X-RateLimit-*` headers.
    headers_seen: bool,
    /// After a 429: nothing is sent before this instant.
    cool_down_until: Option<Instant>,
    /// The next cool-down when a 429 names no wait.
    next_cool_down: Duration,
    first_cool_down: Duration,
}

/// A budget's state, for `sync activity` and the capability report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BudgetSnapshot {
    pub limit: u32,
    pub used: u32,
    pub remaining: u32,
    pub near_limit: bool,
    pub headers_seen: bool,
    /// Seconds left of a cool-down after a 429.
    pub cooling_down_secs: Option<u64>,
}

/// Why [`RequestBudget::take`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spent {
    pub used: u32,
    pub limit: u32,
}

/// What the rate-limit headers of one answer said.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateLimitHeaders {
    /// `X-RateLimit-Limit`: requests per hour.
    pub limit: Option<u32>,
    /// `X-RateLimit-NearLimit`.
    pub near_limit: Option<bool>,
    /// `X-RateLimit-Remaining`, which Data Center's rate limiting may send.
    pub remaining: Option<u32>,
}

impl RateLimitHeaders {
    /// Reads the headers of an answer; `None` when it carried none of them.
    pub fn read(headers: &http::HeaderMap) -> Option<RateLimitHeaders> {
        let number = |name: &str| {
            headers
                .get(name)
                .and_then(|value| value.to_str().ok())
                .and_then(|text| text.trim().parse::<u32>().ok())
        };
        let near_limit = headers
            .get("x-ratelimit-nearlimit")
            .and_then(|value| value.to_str().ok())
            .map(|text| text.trim().eq_ignore_ascii_case("true"));
        let read = RateLimitHeaders {
            limit: number("x-ratelimit-limit"),
            near_limit,
            remaining: number("x-ratelimit-remaining"),
        };
        (read != RateLimitHeaders::default()).then_some(read)
    }
}

impl RequestBudget {
    /// A budget of `requests_per_hour`, with Cloud's one-minute first cool-down.
    pub fn new(requests_per_hour: u32) -> RequestBudget {
        RequestBudget::with_cool_down(requests_per_hour, DEFAULT_FIRST_COOL_DOWN)
    }

    /// A budget whose first cool-down after a 429 without `Retry-After` is `first_cool_down`.
    pub fn with_cool_down(requests_per_hour: u32, first_cool_down: Duration) -> RequestBudget {
        RequestBudget {
            window: Mutex::new(Window {
                limit: requests_per_hour,
                sent: VecDeque::new(),
                near_limit: false,
                headers_seen: false,
                cool_down_until: None,
                next_cool_down: first_cool_down,
                first_cool_down,
            }),
        }
    }

    /// How many requests may still be sent now.
    pub fn remaining(&self) -> u32 {
        self.snapshot_at(Instant::now()).remaining
    }

    /// The budget's state now.
    pub fn snapshot(&self) -> BudgetSnapshot {
        self.snapshot_at(Instant::now())
    }

    /// Counts one request about to be sent, or refuses when the budget is spent or cooling
    /// down after a 429.
    pub fn take(&self) -> Result<(), Spent> {
        self.take_at(Instant::now())
    }

    /// Learns from an answer's rate-limit headers; a success also ends the 429 back-off.
    pub fn answered(&self, headers: Option<RateLimitHeaders>) {
        let mut window = self.window.lock();
        window.next_cool_down = window.first_cool_down;
        let Some(headers) = headers else { return };
        window.headers_seen = true;
        if let Some(limit) = headers.limit.filter(|limit| *limit > 0) {
            window.limit = limit;
        }
        if let Some(near) = headers.near_limit {
            window.near_limit = near;
        }
        if let Some(remaining) = headers.remaining {
            // Data Center counts per node and per user; believe it when it says less is left
            // than we think, by counting the difference as sent now.
            let now = Instant::now();
            window.expire(now);
            let ours = window.limit.saturating_sub(window.sent_count());
            for _ in remaining..ours {
                window.sent.push_back(now);
            }
        }
    }

    /// Records a 429: nothing is sent until `retry_after` has passed, or, when Bitbucket
    /// named no wait, an exponential cool-down. Returns how long the cool-down lasts.
    pub fn throttled(&self, retry_after: Option<Duration>) -> Duration {
        self.throttled_at(Instant::now(), retry_after)
    }

    pub(crate) fn take_at(&self, now: Instant) -> Result<(), Spent> {
        let mut window = self.window.lock();
        window.expire(now);
        let used = window.sent_count();
        if window.cool_down_until.is_some_and(|until| now < until) || window.usable() == 0 {
            return Err(Spent {
                used,
                limit: window.limit,
            });
        }
        window.sent.push_back(now);
        Ok(())
    }

    pub(crate) fn throttled_at(&self, now: Instant, retry_after: Option<Duration>) -> Duration {
        let mut window = self.window.lock();
        let wait = match retry_after {
            Some(wait) => wait,
            None => {
                let wait = window.next_cool_down;
                window.next_cool_down = (wait * 2).min(MAX_COOL_DOWN);
                wait
            }
        };
        window.cool_down_until = Some(now + wait);
        wait
    }

    pub(crate) fn snapshot_at(&self, now: Instant) -> BudgetSnapshot {
        let mut window = self.window.lock();
        window.expire(now);
        let cooling = window
            .cool_down_until
            .filter(|until| now < *until)
            .map(|until| (until - now).as_secs().max(1));
        BudgetSnapshot {
            limit: window.limit,
            used: window.sent_count(),
            remaining: if cooling.is_some() {
                0
            } else {
                window.usable()
            },
            near_limit: window.near_limit,
            headers_seen: window.headers_seen,
            cooling_down_secs: cooling,
        }
    }
}

impl Window {
    fn expire(&mut self, now: Instant) {
        while self
            .sent
            .front()
            .is_some_and(|sent| now.saturating_duration_since(*sent) >= WINDOW)
        {
            self.sent.pop_front();
        }
    }

    fn sent_count(&self) -> u32 {
        u32::try_from(self.sent.len()).unwrap_or(u32::MAX)
    }

    /// What may still be sent: the limit less what was sent, and no more than a fifth of the
    /// limit once Bitbucket says the limit is near.
    fn usable(&self) -> u32 {
        let left = self.limit.saturating_sub(self.sent_count());
        if self.near_limit {
            left.min(self.limit / NEAR_LIMIT_SHARE)
        } else {
            left
        }
    }
}

/// The budgets of this process, one per credential, so that every read with the same token
/// draws on one window whichever connector or task it serves.
#[derive(Debug)]
pub struct Budgets {
    requests_per_hour: u32,
    first_cool_down: Duration,
    by_credential: Mutex<HashMap<[u8; 32], Arc<RequestBudget>>>,
}

impl Default for Budgets {
    fn default() -> Self {
        Budgets::new(DEFAULT_REQUESTS_PER_HOUR)
    }
}

impl Budgets {
    /// Budgets of `requests_per_hour` each, until Bitbucket's headers say otherwise.
    pub fn new(requests_per_hour: u32) -> Budgets {
        Budgets::with_cool_down(requests_per_hour, DEFAULT_FIRST_COOL_DOWN)
    }

    /// Budgets whose first cool-down after a 429 without `Retry-After` is `first_cool_down`.
    pub fn with_cool_down(requests_per_hour: u32, first_cool_down: Duration) -> Budgets {
        Budgets {
            requests_per_hour,
            first_cool_down,
            by_credential: Mutex::new(HashMap::new()),
        }
    }

    /// The budget of the credential that `identity` names (host, kind, user and token). Only
    /// a digest of it is kept, so the map never holds a secret.
    pub fn for_credential(&self, identity: &[&[u8]]) -> Arc<RequestBudget> {
        let mut digest = Sha256::new();
        for part in identity {
            digest.update((part.len() as u64).to_be_bytes());
            digest.update(part);
        }
        let key: [u8; 32] = digest.finalize().into();
        Arc::clone(self.by_credential.lock().entry(key).or_insert_with(|| {
            Arc::new(RequestBudget::with_cool_down(
                self.requests_per_hour,
                self.first_cool_down,
            ))
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spent_budget_refuses_until_the_window_rolls_on() {
        let budget = RequestBudget::new(3);
        let start = Instant::now();
        for offset in 0..3 {
            budget
                .take_at(start + Duration::from_secs(offset))
                .expect("within the budget");
        }
        assert_eq!(
            budget.take_at(start + Duration::from_secs(10)),
            Err(Spent { used: 3, limit: 3 })
        );
        // The first request leaves the window an hour after it was sent; one slot returns.
        let later = start + WINDOW;
        assert_eq!(budget.snapshot_at(later).remaining, 1);
        budget.take_at(later).expect("a slot came back");
        assert!(budget.take_at(later).is_err());
    }

    #[test]
    fn a_429_without_retry_after_cools_down_exponentially() {
        let budget = RequestBudget::with_cool_down(1_000, Duration::from_secs(60));
        let now = Instant::now();
        assert_eq!(budget.throttled_at(now, None), Duration::from_secs(60));
        assert_eq!(budget.snapshot_at(now).remaining, 0);
        assert!(budget.take_at(now + Duration::from_secs(59)).is_err());
        assert!(budget.take_at(now + Duration::from_secs(60)).is_ok());
        let again = now + Duration::from_secs(61);
        assert_eq!(budget.throttled_at(again, None), Duration::from_secs(120));
        // A success resets the back-off; Retry-After, when given, is what counts.
        budget.answered(None);
        assert_eq!(
            budget.throttled_at(again, Some(Duration::from_secs(5))),
            Duration::from_secs(5)
        );
        assert_eq!(budget.throttled_at(again, None), Duration::from_secs(60));
    }

    #[test]
    fn headers_teach_the_limit_and_the_near_limit() {
        let budget = RequestBudget::new(1_000);
        let mut headers = http::HeaderMap::new();
        headers.insert("X-RateLimit-Limit", http::HeaderValue::from_static("2500"));
        headers.insert(
            "X-RateLimit-NearLimit",
            http::HeaderValue::from_static("false"),
        );
        budget.answered(RateLimitHeaders::read(&headers));
        let snapshot = budget.snapshot();
        assert_eq!((snapshot.limit, snapshot.remaining), (2_500, 2_500));
        assert!(snapshot.headers_seen);

        headers.insert(
            "X-RateLimit-NearLimit",
            http::HeaderValue::from_static("true"),
        );
        budget.answered(RateLimitHeaders::read(&headers));
        assert_eq!(budget.remaining(), 500);
        assert_eq!(RateLimitHeaders::read(&http::HeaderMap::new()), None);
    }

    #[test]
    fn remaining_from_data_center_is_believed_when_lower() {
        let budget = RequestBudget::new(100);
        let mut headers = http::HeaderMap::new();
        headers.insert("X-RateLimit-Remaining", http::HeaderValue::from_static("7"));
        budget.answered(RateLimitHeaders::read(&headers));
        assert_eq!(budget.remaining(), 7);
    }

    #[test]
    fn one_budget_per_credential() {
        let budgets = Budgets::new(10);
        let alice = budgets.for_credential(&[b"bitbucket.org", b"alice@example.com", b"t1"]);
        let same = budgets.for_credential(&[b"bitbucket.org", b"alice@example.com", b"t1"]);
        let other = budgets.for_credential(&[b"bitbucket.org", b"alice@example.com", b"t2"]);
        alice.take().expect("fresh");
        assert_eq!(same.remaining(), 9);
        assert_eq!(other.remaining(), 10);
    }
}
