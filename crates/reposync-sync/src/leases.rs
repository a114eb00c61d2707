//! Which branches this replica works on. Several servers may share one database; the work of
//! a branch (its outbox, inbox and polls) runs on one of them at a time, the one holding the
//! branch's lease in the store. The outbox and the inbox ask [`BranchLeases::hold`] before
//! working on a branch, and every write they then make names the lease's token (a
//! [`Fence`]), which the store refuses once another replica took the branch over.
//!
//! A replica keeps the branches it took while it lives ([`BranchLeases::run`] renews them);
//! when it dies, another takes each over at its next look once the lease ran out, so within
//! one lease.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use reposync_model::BranchId;
use reposync_store::{Fence, Signal, Store, StoreError};

/// How long a branch's lease lasts unless renewed, by default.
pub const DEFAULT_BRANCH_LEASE: Duration = Duration::from_secs(30);

/// The leases this replica holds, kept alive while it runs.
pub struct BranchLeases {
    store: Store,
    lease: Duration,
    /// The branches held at the last look, with their tokens.
    held: Mutex<HashMap<BranchId, i64>>,
}

impl std::fmt::Debug for BranchLeases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BranchLeases")
            .field("lease", &self.lease)
            .field("held", &self.held.lock().len())
            .finish_non_exhaustive()
    }
}

impl BranchLeases {
    pub fn new(store: Store, lease: Duration) -> Arc<BranchLeases> {
        Arc::new(BranchLeases {
            store,
            lease,
            held: Mutex::default(),
        })
    }

    /// The lease on `branch` for this replica, taken or kept; `None` while another replica
    /// holds it (that one does the branch's work).
    pub async fn hold(&self, branch: &BranchId) -> Result<Option<Fence>, StoreError> {
        let fence = self.store.acquire_branch_lease(branch, self.lease).await?;
        let mut held = self.held.lock();
        match &fence {
            Some(fence) => {
                if held.insert(branch.clone(), fence.token) != Some(fence.token) {
                    tracing::debug!(branch = %branch, token = fence.token, "holding the branch's lease");
                }
            }
            None => {
                held.remove(branch);
            }
        }
        Ok(fence)
    }

    /// Takes over the branches whose holder stopped renewing their leases: the work it left
    /// cut off (a commit attempt running, a head to read) waits for nobody else. Only this
    /// wakes up a branch with nothing new to do.
    async fn take_over_abandoned(&self) {
        let abandoned = match self.store.abandoned_branches().await {
            Ok(abandoned) => abandoned,
            Err(error) => {
                tracing::warn!(%error, "cannot look for branches whose server died");
                return;
            }
        };
        for branch in abandoned {
            match self.hold(&branch).await {
                Ok(Some(_)) => {
                    tracing::info!(branch = %branch, "took over a branch whose server stopped renewing its lease");
                    // What the previous holder cut off waits in the outbox and the inbox again.
                    self.store.signals().publish(Signal::Outbox);
                    self.store.signals().publish(Signal::Inbox);
                }
                Ok(None) => {}
                Err(error) => tracing::warn!(branch = %branch, %error, "cannot take over a branch"),
            }
        }
    }

    /// Renews every lease held, a few times per lease, until `stop`: a push or a read that
    /// takes longer than a lease keeps its branch. A lease found lost (the database was out
    /// of reach longer than a lease, and another replica took the branch) is dropped; the
    /// work in flight for it is refused by its fence when it tries to record anything.
    pub async fn run(self: Arc<Self>, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        let mut every = tokio::time::interval(self.lease / 3);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = &mut stop => break,
                _ = every.tick() => {}
            }
            self.take_over_abandoned().await;
            match self.store.renew_branch_leases(self.lease).await {
                Ok(still) => {
                    let still: HashMap<BranchId, i64> =
                        still.into_iter().map(|f| (f.branch, f.token)).collect();
                    let mut held = self.held.lock();
                    for (branch, token) in held.iter() {
                        if still.get(branch) != Some(token) {
                            tracing::warn!(branch = %branch, "lost the lease on a branch; another server works on it now");
                        }
                    }
                    *held = still;
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot renew the branches' leases");
                }
            }
        }
    }
}
