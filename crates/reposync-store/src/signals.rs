//! What wakes the workers and the waiters, on every replica: changesets to push, heads to
//! read, tasks queued and finished, delegates connecting.
//!
//! Within a process a signal is a `Notify` or a channel, as before there were replicas. On
//! PostgreSQL each signal is also sent with `NOTIFY`, and every replica `LISTEN`s
//! ([`Signals::listen`]) and wakes its own waiters the same way. A notification is only a
//! hint to look at the tables again, never the news itself: one lost while a replica's
//! listening connection was down costs a look at the tables (everything is woken when it
//! comes back) and every waiter looks again on a timer anyway.

use std::sync::Arc;

use reposync_model::TaskId;
use tokio::sync::{Notify, broadcast, watch};

use crate::gate::Database;

/// The channel every replica listens on.
const CHANNEL: &str = "reposync";

/// Something that happened that some worker or waiter may be waiting for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal {
    /// Changesets were written: the outbox has work.
    Outbox,
    /// A branch head was queued for reading: the inbox has work.
    Inbox,
    /// A task was queued: delegates waiting in a claim look again.
    TaskQueued,
    /// A task reached its end: whoever waits for it looks.
    TaskFinished(TaskId),
    /// A delegate connected, left, or lost its token: work waiting for one looks again.
    Presence,
}

impl Signal {
    fn encode(&self) -> String {
        match self {
            Signal::Outbox => "outbox".into(),
            Signal::Inbox => "inbox".into(),
            Signal::TaskQueued => "queued".into(),
            Signal::TaskFinished(id) => format!("finished {id}"),
            Signal::Presence => "presence".into(),
        }
    }

    fn decode(text: &str) -> Option<Signal> {
        Some(match text.split_once(' ') {
            Some(("finished", id)) => Signal::TaskFinished(TaskId::new(id)),
            None if text == "outbox" => Signal::Outbox,
            None if text == "inbox" => Signal::Inbox,
            None if text == "queued" => Signal::TaskQueued,
            None if text == "presence" => Signal::Presence,
            _ => return None,
        })
    }
}

/// The process's signals, shared by every clone of the store.
#[derive(Clone)]
pub struct Signals {
    inner: Arc<Inner>,
}

struct Inner {
    outbox: Arc<Notify>,
    inbox: Arc<Notify>,
    queued: Notify,
    finished: broadcast::Sender<TaskId>,
    presence: watch::Sender<u64>,
    /// Sends to the other replicas; `None` on SQLite, where there are none.
    remote: Option<Remote>,
}

struct Remote {
    db: Database,
    url: String,
    /// Tells this process's own notifications apart when they come back.
    origin: String,
}

impl std::fmt::Debug for Signals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signals")
            .field("remote", &self.inner.remote.is_some())
            .finish_non_exhaustive()
    }
}

impl Signals {
    /// The signals of a store on `db`, reached at `url`.
    pub(crate) fn new(db: &Database, url: &str) -> Signals {
        let remote = (db.backend() == crate::Backend::Postgres).then(|| Remote {
            db: db.clone(),
            url: url.to_owned(),
            origin: uuid::Uuid::new_v4().simple().to_string(),
        });
        Signals {
            inner: Arc::new(Inner {
                outbox: Arc::new(Notify::new()),
                inbox: Arc::new(Notify::new()),
                queued: Notify::new(),
                finished: broadcast::channel(1024).0,
                presence: watch::Sender::new(0),
                remote,
            }),
        }
    }

    /// Wakes this process's waiters for `signal`, and the other replicas'.
    pub fn publish(&self, signal: Signal) {
        self.deliver(&signal);
        let Some(remote) = &self.inner.remote else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let payload = format!("{} {}", remote.origin, signal.encode());
        let db = remote.db.clone();
        runtime.spawn(async move {
            if let Err(error) = db.notify(CHANNEL, &payload).await {
                tracing::debug!(%error, "cannot notify the other replicas; they will look on their own timer");
            }
        });
    }

    /// Wakes this process's waiters for `signal`.
    fn deliver(&self, signal: &Signal) {
        match signal {
            Signal::Outbox => self.inner.outbox.notify_one(),
            Signal::Inbox => self.inner.inbox.notify_one(),
            Signal::TaskQueued => self.inner.queued.notify_waiters(),
            Signal::TaskFinished(id) => {
                let _ = self.inner.finished.send(id.clone());
            }
            Signal::Presence => self.inner.presence.send_modify(|count| *count += 1),
        }
    }

    /// Wakes everything: after missing notifications, every waiter looks again.
    fn deliver_all(&self) {
        self.inner.outbox.notify_one();
        self.inner.inbox.notify_one();
        self.inner.queued.notify_waiters();
        self.inner.presence.send_modify(|count| *count += 1);
    }

    /// Whether other replicas may share the database (and so the signals cross processes).
    pub fn shared(&self) -> bool {
        self.inner.remote.is_some()
    }

    /// Notified after changesets are written. A notification sent while nobody waits is kept
    /// for the next wait, so none is lost.
    pub fn outbox(&self) -> Arc<Notify> {
        Arc::clone(&self.inner.outbox)
    }

    /// Notified after a branch head is queued for reading.
    pub fn inbox(&self) -> Arc<Notify> {
        Arc::clone(&self.inner.inbox)
    }

    /// Notified (every waiter) when a task is queued.
    pub fn queued(&self) -> &Notify {
        &self.inner.queued
    }

    /// The ids of tasks as they finish.
    pub fn finished(&self) -> broadcast::Receiver<TaskId> {
        self.inner.finished.subscribe()
    }

    /// Counts changes of who is connected, so that work can wait for a delegate.
    pub fn presence(&self) -> watch::Receiver<u64> {
        self.inner.presence.subscribe()
    }

    /// Listens for the other replicas' signals until `stop`, on PostgreSQL; returns at once
    /// on SQLite. A lost connection is opened again (with a pause that grows to a few
    /// seconds), and everything is woken once it is back, for what it missed meanwhile.
    pub async fn listen(&self, stop: impl std::future::Future<Output = ()>) {
        let Some(remote) = &self.inner.remote else {
            return;
        };
        tokio::pin!(stop);
        let mut pause = std::time::Duration::from_millis(100);
        loop {
            let listener = async {
                let mut listener = sqlx::postgres::PgListener::connect(&remote.url).await?;
                listener.listen(CHANNEL).await?;
                Ok::<_, sqlx::Error>(listener)
            };
            let mut listener = tokio::select! {
                () = &mut stop => return,
                listener = listener => match listener {
                    Ok(listener) => listener,
                    Err(error) => {
                        tracing::warn!(%error, "cannot listen for the other replicas' signals; trying again");
                        tokio::select! {
                            () = &mut stop => return,
                            () = tokio::time::sleep(pause) => {}
                        }
                        pause = (pause * 2).min(std::time::Duration::from_secs(5));
                        continue;
                    }
                },
            };
            pause = std::time::Duration::from_millis(100);
            self.deliver_all();
            loop {
                let next = tokio::select! {
                    () = &mut stop => return,
                    next = listener.try_recv() => next,
                };
                match next {
                    Ok(Some(notification)) => {
                        let Some((origin, text)) = notification.payload().split_once(' ') else {
                            continue;
                        };
                        if origin == remote.origin {
                            continue;
                        }
                        if let Some(signal) = Signal::decode(text) {
                            self.deliver(&signal);
                        }
                    }
                    // The connection was lost; `try_recv` reconnects on the next call, and
                    // what was sent meanwhile is lost, so everyone looks again.
                    Ok(None) => self.deliver_all(),
                    Err(error) => {
                        tracing::warn!(%error, "lost the connection that listens for the other replicas' signals");
                        break;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Signal;
    use reposync_model::TaskId;

    #[test]
    fn every_signal_reads_back_as_sent() {
        for signal in [
            Signal::Outbox,
            Signal::Inbox,
            Signal::TaskQueued,
            Signal::TaskFinished(TaskId::new("0190-abc")),
            Signal::Presence,
        ] {
            assert_eq!(Signal::decode(&signal.encode()), Some(signal));
        }
        assert_eq!(Signal::decode("finished"), None);
        assert_eq!(Signal::decode("nonsense"), None);
    }
}
