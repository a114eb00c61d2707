//! The pause between tries at a task source that cannot be reached.

use std::time::Duration;

/// A pause that doubles after each failure, from a quarter second to ten seconds.
#[derive(Debug)]
pub(crate) struct Backoff {
    next: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(250);
    const LAST: Duration = Duration::from_secs(10);

    pub(crate) fn new() -> Backoff {
        Backoff { next: Self::FIRST }
    }

    /// The pause before the next try.
    pub(crate) fn pause(&mut self) -> Duration {
        let pause = self.next;
        self.next = (pause * 2).min(Self::LAST);
        pause
    }

    pub(crate) fn reset(&mut self) {
        self.next = Self::FIRST;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_ten_seconds_and_resets() {
        let mut backoff = Backoff::new();
        let pauses: Vec<u64> = (0..8)
            .map(|_| u64::try_from(backoff.pause().as_millis()).unwrap_or(u64::MAX))
            .collect();
        assert_eq!(pauses, [250, 500, 1000, 2000, 4000, 8000, 10_000, 10_000]);
        backoff.reset();
        assert_eq!(backoff.pause(), Duration::from_millis(250));
    }
}
