//! Which delegates are connected: registration, presence (heard from within a lease, or
//! waiting in a claim), and why none may run a task.

use std::time::Duration;

use reposync_store::{DelegatePresence, Eligibility, Signal, StoreError};

use super::TaskHub;

/// A delegate the hub knows of.
#[derive(Debug, Clone)]
pub struct DelegateInfo {
    pub name: String,
    /// Which tasks it may claim: its selectors (normalised, its own name among them where it
    /// counts) and the restriction of its token.
    pub eligibility: Eligibility,
    /// How long a claim holds a task before another delegate may take it over; a remote
    /// delegate's heartbeats extend it. A remote delegate not heard from for this long is
    /// disconnected.
    pub lease: Duration,
    /// The built-in delegate lives as long as the server and is always connected.
    pub builtin: bool,
    /// The delegate token it registered with; none for the built-in delegate.
    pub token_id: Option<String>,
}

/// A registered delegate and when it was last heard from.
#[derive(Debug, Clone)]
pub(super) struct Known {
    info: DelegateInfo,
    /// When its last request arrived. Only requests count: the end of a long poll says
    /// nothing of whether the delegate is still there.
    last_seen: tokio::time::Instant,
    /// Claims in progress. A delegate waiting in a long poll is connected; a claim's wait is
    /// never longer than the lease, so a poll left open by a delegate that vanished keeps it
    /// connected for at most one lease after its last request.
    polling: u32,
}

impl Known {
    /// Whether the delegate counts as connected at `now`: the built-in one always, a remote
    /// one while it waits in a claim or was heard from within its lease.
    pub(super) fn connected(&self, now: tokio::time::Instant) -> bool {
        self.info.builtin
            || self.polling > 0
            || now.saturating_duration_since(self.last_seen) < self.info.lease
    }

    /// When a remote delegate stops counting as connected unless it is heard from again.
    pub(super) fn lapses_at(&self) -> Option<tokio::time::Instant> {
        (!self.info.builtin).then(|| self.last_seen + self.info.lease)
    }
}

/// Counts a claim as waiting for as long as it lives. A claim's future is dropped when its
/// client goes away mid-wait (a killed delegate's connection closes), so the count goes down
/// in `Drop`, never after an `.await` that may not come.
pub(super) struct Polling<'a> {
    hub: &'a TaskHub,
    name: &'a str,
}

impl Drop for Polling<'_> {
    fn drop(&mut self) {
        let now = tokio::time::Instant::now();
        let mut delegates = self.hub.inner.delegates.lock();
        if let Some(known) = delegates.iter_mut().find(|d| d.info.name == self.name) {
            known.polling = known.polling.saturating_sub(1);
            // The end of this poll may be what disconnects the delegate: let the sweeper see
            // whether tasks are left that nobody can take.
            if !known.connected(now) {
                self.hub.inner.presence.notify_one();
            }
        }
        drop(delegates);
        self.hub.unpublished(self.name);
    }
}

impl TaskHub {
    /// Records that a delegate is connected and may be given tasks. A delegate registering
    /// again keeps the count of its claims in progress.
    pub fn register_delegate(&self, delegate: DelegateInfo) {
        let mut delegates = self.inner.delegates.lock();
        let polling = delegates
            .iter()
            .find(|d| d.info.name == delegate.name)
            .map_or(0, |d| d.polling);
        delegates.retain(|d| d.info.name != delegate.name);
        let name = delegate.name.clone();
        delegates.push(Known {
            info: delegate,
            last_seen: tokio::time::Instant::now(),
            polling,
        });
        drop(delegates);
        self.unpublished(&name);
        self.signals().publish(Signal::Presence);
    }

    /// The registered delegate of this name: this replica's, or one that registered with
    /// another replica (behind a load balancer a delegate's requests reach any replica),
    /// which this replica then knows as its own.
    pub async fn registered_anywhere(&self, name: &str) -> Option<DelegateInfo> {
        if let Some(info) = self.registered(name) {
            return Some(info);
        }
        if !self.signals().shared() {
            return None;
        }
        let elsewhere = match self.inner.store.presence_elsewhere().await {
            Ok(elsewhere) => elsewhere,
            Err(error) => {
                tracing::warn!(%error, "cannot read the delegates of the other replicas");
                return None;
            }
        };
        let found = elsewhere.into_iter().find(|d| d.name == name)?;
        let info = DelegateInfo {
            name: found.name,
            eligibility: found.eligibility,
            lease: found.lease,
            builtin: false,
            token_id: found.token_id,
        };
        // Only remote delegates move between replicas; each replica has its own built-in one.
        if found.builtin {
            return None;
        }
        self.register_delegate(info.clone());
        Some(info)
    }

    /// Marks a delegate's presence as changed, for the other replicas to see.
    pub(super) fn unpublished(&self, name: &str) {
        if !self.signals().shared() {
            return;
        }
        self.inner.unpublished.lock().insert(name.to_owned());
        self.inner.publish.notify_one();
    }

    /// Writes the presence of this replica's delegates where the other replicas read it,
    /// as it changes, until `stop`. Only when the database is shared.
    pub async fn run_presence_publisher(&self, stop: impl std::future::Future<Output = ()>) {
        if !self.signals().shared() {
            return;
        }
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => return,
                () = self.inner.publish.notified() => {}
            }
            let names: Vec<String> = self.inner.unpublished.lock().drain().collect();
            for name in names {
                let known = self
                    .inner
                    .delegates
                    .lock()
                    .iter()
                    .find(|d| d.info.name == name)
                    .cloned();
                let written = match known {
                    Some(known) => {
                        let presence = DelegatePresence {
                            name: known.info.name.clone(),
                            eligibility: known.info.eligibility.clone(),
                            lease: known.info.lease,
                            builtin: known.info.builtin,
                            token_id: known.info.token_id.clone(),
                            polling: known.polling,
                            since_seen: known.last_seen.elapsed(),
                        };
                        self.inner.store.publish_presence(&presence).await
                    }
                    None => self.inner.store.withdraw_presence(&name).await,
                };
                if let Err(error) = written {
                    tracing::warn!(delegate = name, %error, "cannot tell the other replicas of a delegate; retrying");
                    self.inner.unpublished.lock().insert(name);
                    tokio::select! {
                        () = &mut stop => return,
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                    self.inner.publish.notify_one();
                    break;
                }
            }
        }
    }

    /// The delegates connected to this replica or to any other live one, each once (this
    /// replica's own first).
    pub async fn connected_anywhere(&self) -> Vec<DelegateInfo> {
        let mut connected = self.connected();
        if !self.signals().shared() {
            return connected;
        }
        match self.inner.store.presence_elsewhere().await {
            Ok(elsewhere) => {
                for presence in elsewhere.into_iter().filter(DelegatePresence::connected) {
                    if connected.iter().any(|d| d.name == presence.name) {
                        continue;
                    }
                    connected.push(DelegateInfo {
                        name: presence.name,
                        eligibility: presence.eligibility,
                        lease: presence.lease,
                        builtin: presence.builtin,
                        token_id: presence.token_id,
                    });
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot read the delegates of the other replicas");
            }
        }
        connected
    }

    /// Waits until a connected delegate may run tasks with `selectors`, or `within` has
    /// passed; whether one may. After a restart the delegates connect again over their first
    /// poll, and work taken up at the start waits for them rather than failing `no_delegate`.
    pub async fn wait_for_delegate(&self, selectors: &[String], within: Duration) -> bool {
        let mut registrations = self.signals().presence();
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if self
                .connected_anywhere()
                .await
                .iter()
                .any(|d| d.eligibility.admits(selectors))
            {
                return true;
            }
            match tokio::time::timeout_at(self.look_again_by(deadline), registrations.changed())
                .await
            {
                Ok(Ok(())) => {}
                Err(_) if tokio::time::Instant::now() < deadline => {}
                Ok(Err(_)) | Err(_) => return false,
            }
        }
    }

    /// Forgets the delegates registered with a token (it was revoked), here and in what the
    /// other replicas read, and wakes their long polls, so that their next request is refused
    /// at once rather than when a poll ends.
    pub async fn forget_token(&self, token_id: &str) -> Result<(), StoreError> {
        self.inner
            .delegates
            .lock()
            .retain(|d| d.info.token_id.as_deref() != Some(token_id));
        self.inner
            .store
            .withdraw_presence_of_token(token_id)
            .await?;
        self.signals().queued().notify_waiters();
        self.inner.presence.notify_one();
        Ok(())
    }

    /// Forgets a delegate that said it is leaving (it stops cleanly) and ends the leases of
    /// the tasks it still held, so that they go to another delegate, or fail as
    /// `no_delegate` when no other may take them, without waiting for a lease to run out.
    pub async fn leave(&self, name: &str) -> Result<(), StoreError> {
        let ended = self.inner.store.end_leases_of(name).await?;
        self.inner.delegates.lock().retain(|d| d.info.name != name);
        self.unpublished(name);
        tracing::info!(delegate = name, tasks_returned = ended, "delegate left");
        self.signals().publish(Signal::TaskQueued);
        self.inner.presence.notify_one();
        Ok(())
    }

    pub(super) fn is_registered(&self, name: &str) -> bool {
        self.inner
            .delegates
            .lock()
            .iter()
            .any(|k| k.info.name == name)
    }

    /// The registered delegate of this name, as it registered.
    pub fn registered(&self, name: &str) -> Option<DelegateInfo> {
        let delegates = self.inner.delegates.lock();
        let known = delegates.iter().find(|d| d.info.name == name)?;
        Some(known.info.clone())
    }

    /// Changes what the hub knows of a registered delegate, if it is registered.
    pub(super) fn update_known(&self, name: &str, change: impl FnOnce(&mut Known)) {
        if let Some(known) = self
            .inner
            .delegates
            .lock()
            .iter_mut()
            .find(|d| d.info.name == name)
        {
            change(known);
        }
    }

    /// Marks a registered delegate as heard from now: one of its requests arrived.
    pub fn heard_from(&self, name: &str) {
        self.update_known(name, |known| {
            known.last_seen = tokio::time::Instant::now();
        });
        self.unpublished(name);
    }

    /// Counts a claim of `name` as waiting until the returned guard is dropped.
    pub(super) fn start_polling<'a>(&'a self, name: &'a str) -> Polling<'a> {
        self.update_known(name, |known| {
            known.polling = known.polling.saturating_add(1);
        });
        self.unpublished(name);
        Polling { hub: self, name }
    }

    /// How many claims of this delegate are waiting now (none for an unknown delegate).
    pub fn waiting_claims(&self, name: &str) -> u32 {
        self.inner
            .delegates
            .lock()
            .iter()
            .find(|d| d.info.name == name)
            .map_or(0, |d| d.polling)
    }

    /// The delegates connected now: the built-in one, and remote ones heard from within their
    /// lease or waiting in a claim.
    pub fn connected(&self) -> Vec<DelegateInfo> {
        let now = tokio::time::Instant::now();
        self.inner
            .delegates
            .lock()
            .iter()
            .filter(|d| d.connected(now))
            .map(|d| d.info.clone())
            .collect()
    }

    /// The next moment a connected remote delegate stops counting as connected unless it is
    /// heard from first. A delegate past that moment but still waiting in a claim is left
    /// out: the end of its claim wakes the sweeper.
    pub(super) fn next_lapse(&self) -> Option<tokio::time::Instant> {
        let now = tokio::time::Instant::now();
        let delegates = self.inner.delegates.lock();
        delegates
            .iter()
            .filter_map(Known::lapses_at)
            .filter(|at| *at > now)
            .min()
    }
}

/// Why no connected delegate may run a task that asks for `selectors`, naming the connected
/// delegates with what they may run.
pub(super) fn no_delegate_message(selectors: &[String], delegates: &[DelegateInfo]) -> String {
    let connected = if delegates.is_empty() {
        "no delegate is connected".to_owned()
    } else {
        let list: Vec<String> = delegates
            .iter()
            .map(|d| {
                let restricted = d
                    .eligibility
                    .restricted_to
                    .as_ref()
                    .map(|allowed| format!(" (its token allows only {})", allowed.join(", ")))
                    .unwrap_or_default();
                format!(
                    "{} [{}]{restricted}",
                    d.name,
                    d.eligibility.selectors.join(", ")
                )
            })
            .collect();
        format!("connected delegates: {}", list.join("; "))
    };
    let asked = if selectors.is_empty() {
        "none, which only delegates of unrestricted tokens take".to_owned()
    } else {
        selectors.join(", ")
    };
    format!("no connected delegate has every selector asked for ({asked}); {connected}")
}
