//! What a person does about what Git Sync could not do: put a changeset back in the outbox, or
//! discard a sync error they have seen.

use reposync_model::{ChangesetId, SyncErrorId};
use reposync_store::{ChangesetRecord, Store};

/// Puts a failed or conflicting changeset back in the outbox, with every other changeset of
/// its attempt, and resolves its sync errors. Answers the changeset as it now waits.
pub async fn retry(
    store: &Store,
    changeset: &ChangesetId,
) -> Result<ChangesetRecord, crate::CoreError> {
    let retried = store.retry_changeset(changeset).await?;
    tracing::info!(%changeset, "retrying changeset");
    Ok(retried)
}

/// Discards an open sync error. A conflict's changesets stay as they are; [`retry`] is what
/// pushes them again.
pub async fn discard(store: &Store, error: &SyncErrorId) -> Result<(), crate::CoreError> {
    store.discard_sync_error(error).await?;
    tracing::info!(%error, "discarded sync error");
    Ok(())
}
