//! Git Sync glue on the server side: where a link's branch is, and its scope's names.

use reposync_api::SyncTarget;
use reposync_model::{FieldError, RepoSlug};
use reposync_store::{ConnectorRecord, SyncLink};
use sha2::{Digest, Sha256};

/// The branch a link syncs with, and the name of the delegate's local clone of it: one per
/// connector, repository and branch.
pub fn target(connector: &ConnectorRecord, link: &SyncLink) -> Result<SyncTarget, FieldError> {
    let repo = link.repo.as_deref().map(RepoSlug::parse).transpose()?;
    let url = connector.spec.repository_url(repo.as_ref())?.git_url();
    let digest = Sha256::digest(format!("{}\n{url}\n{}", connector.id, link.branch).as_bytes());
    Ok(SyncTarget {
        url,
        branch: link.branch.clone(),
        clone_key: hex::encode(&digest[..16]),
    })
}

/// `account`, or `app:<name>`.
pub fn scope_name(app: Option<&str>) -> String {
    match app {
        Some(app) => format!("app:{app}"),
        None => "account".to_owned(),
    }
}

/// The folder of the tree a scope covers in the repository.
pub fn scope_prefix(app: Option<&str>) -> String {
    match app {
        Some(app) => format!("Setup/Applications/{app}/"),
        None => "Setup/".to_owned(),
    }
}
