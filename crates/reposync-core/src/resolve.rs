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

/// The open sync errors, oldest first; with `resolved`, the most recently resolved ones
/// (at most `limit`, 100 unless given), newest first, with how each was resolved. With `app`,
/// only that application's scope.
pub async fn errors(
    store: &Store,
    resolved: bool,
    limit: Option<i64>,
    app: Option<&str>,
) -> Result<Vec<reposync_api::SyncErrorView>, crate::CoreError> {
    use reposync_model::scope::Scope;
    let only = app.map(|app| Scope::of_app(Some(app)).to_string());
    let scopes = crate::links::scopes_by_link(store).await?;
    let records = if resolved {
        store
            .resolved_sync_errors(limit.unwrap_or(100).clamp(1, 10_000))
            .await?
    } else {
        store.open_sync_errors().await?
    };
    Ok(records
        .into_iter()
        .map(|e| reposync_api::SyncErrorView {
            scope: match (&e.link_id, e.path.as_deref()) {
                (Some(link), _) => scopes.get(link).cloned().unwrap_or_default(),
                // A file of a scope that has no link (yet): name the scope it would be.
                (None, Some(path)) => Scope::of_path(path).to_string(),
                (None, None) => String::new(),
            },
            commit_id: e.commit_id,
            id: e.id,
            attempt_id: e.attempt_id,
            path: e.path,
            code: e.code,
            message: e.message,
            ours: e.ours.map(|b| String::from_utf8_lossy(&b).into_owned()),
            theirs: e.theirs.map(|b| String::from_utf8_lossy(&b).into_owned()),
            created_at: reposync_api::timestamp(e.created_at),
            resolved_at: e
                .resolved
                .as_ref()
                .map(|(at, _)| reposync_api::timestamp(*at)),
            resolution: e.resolved.map(|(_, how)| how),
        })
        .filter(|view| only.as_ref().is_none_or(|scope| view.scope == *scope))
        .collect())
}
