//! Which background workers run, for readiness. A worker holds a guard while it runs; the
//! guard's drop (the worker returned, or panicked and was unwound) marks it stopped, so a
//! server whose outbox died answers `/readyz` with 503 instead of looking healthy.

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::Mutex;

/// The workers started, and whether each still runs.
#[derive(Debug, Default)]
pub struct Workers {
    running: Mutex<BTreeMap<&'static str, bool>>,
}

impl Workers {
    /// Marks `name` running until the returned guard is dropped.
    pub fn start(self: &Arc<Self>, name: &'static str) -> WorkerGuard {
        self.running.lock().insert(name, true);
        WorkerGuard {
            workers: Arc::clone(self),
            name,
        }
    }

    /// The workers that were started and have stopped.
    pub fn stopped(&self) -> Vec<&'static str> {
        self.running
            .lock()
            .iter()
            .filter(|(_, running)| !**running)
            .map(|(name, _)| *name)
            .collect()
    }
}

/// Held by a running worker; see [`Workers::start`].
#[derive(Debug)]
pub struct WorkerGuard {
    workers: Arc<Workers>,
    name: &'static str,
}

impl Drop for WorkerGuard {
    fn drop(&mut self) {
        self.workers.running.lock().insert(self.name, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_worker_that_returns_or_panics_is_stopped() {
        let workers = Arc::new(Workers::default());
        let outbox = workers.start("outbox");
        let inbox = workers.start("inbox");
        assert!(workers.stopped().is_empty());
        drop(outbox);
        assert_eq!(workers.stopped(), vec!["outbox"]);
        let panicking = tokio::spawn(async move {
            let _running = inbox;
            panic!("a worker bug");
        });
        assert!(panicking.await.is_err());
        assert_eq!(workers.stopped(), vec!["inbox", "outbox"]);
    }
}
