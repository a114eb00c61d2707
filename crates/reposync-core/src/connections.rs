//! Reaching Git through delegates: where a link's branch is (and its delegate-side clone),
//! and the connection checks that come before enabling sync and before every push.

use std::collections::HashSet;

use reposync_api::{SyncJob, SyncTarget, TestResult};
use reposync_model::scope::Scope;
use reposync_model::{
    AttemptId, ConnectorScope, FieldError, GitConnector, RepoSlug, TaskId, connector_yaml,
};
use reposync_store::{ConnectorRecord, Store, StoreError, SyncLink, TaskRecord};
use reposync_sync::{ConnectionFailure, DispatchFailure, JobAnswer};
use sha2::{Digest, Sha256};

use crate::tree::source_repo_provider_name;

/// What a Test is of: a saved connector, whose result becomes its last Test, or a draft that
/// is not saved (`connector add` and `update` test before they save), of which nothing is
/// stored but the task. Either way the delegate gets the same job, built from the parsed
/// connector.
#[derive(Debug, Clone, Copy)]
pub enum Tested<'a> {
    Saved(&'a ConnectorRecord),
    Draft(&'a GitConnector),
}

impl Tested<'_> {
    /// The connector's settings, saved or not.
    pub fn spec(&self) -> &GitConnector {
        match self {
            Tested::Saved(record) => &record.spec,
            Tested::Draft(spec) => spec,
        }
    }
}

/// The delegates, as the use cases reach them; the server's task hub is the one
/// implementation, so a use case never waits on git itself.
#[async_trait::async_trait]
pub trait Delegates: Send + Sync {
    /// Runs a sync job on the branch `target` on a delegate that may use `connector`, and
    /// waits for its result, which names the task that carried it; `attempt` is the commit
    /// attempt it carries, if any.
    async fn run_sync_job(
        &self,
        connector: &ConnectorRecord,
        target: SyncTarget,
        job: SyncJob,
        attempt: Option<&AttemptId>,
    ) -> Result<JobAnswer, DispatchFailure>;

    /// Queues a Test of `tested` against `url` and answers its task at once; for a saved
    /// connector the result becomes its last Test.
    async fn enqueue_test(&self, tested: Tested<'_>, url: String)
    -> Result<TaskRecord, StoreError>;

    /// The result of `task` when it is a finished Test of a draft whose settings are exactly
    /// `spec`: what `connector add` and `update` tested before saving, which then becomes the
    /// saved connector's last Test. `None` for any other task.
    async fn draft_test_result(
        &self,
        task: &TaskId,
        spec: &GitConnector,
    ) -> Result<Option<String>, StoreError>;

    /// Tests `connector` against `url` on a delegate and waits for the result, which also
    /// becomes the connector's last Test.
    async fn run_test(
        &self,
        connector: &ConnectorRecord,
        url: String,
    ) -> Result<TestResult, StoreError>;
}

/// The branch a link syncs with, and the name of the delegate's local clone of it: one per
/// connector, repository and branch.
pub fn target(connector: &ConnectorRecord, link: &SyncLink) -> Result<SyncTarget, FieldError> {
    branch_target(connector, link.repo.as_deref(), &link.branch)
}

/// The same for a branch read from Git: links and reads of one branch share one clone.
pub fn branch_target(
    connector: &ConnectorRecord,
    repo: Option<&str>,
    branch: &str,
) -> Result<SyncTarget, FieldError> {
    let repo = repo.map(RepoSlug::parse).transpose()?;
    let url = connector.spec.repository_url(repo.as_ref())?.git_url();
    let digest = Sha256::digest(format!("{}\n{url}\n{branch}", connector.id).as_bytes());
    Ok(SyncTarget {
        url,
        branch: branch.to_owned(),
        clone_key: hex::encode(&digest[..16]),
    })
}

/// Checks, before a scope is synced, the connections it depends on: the link's connector and
/// every connector the scope's entities refer to (an application's `gitConnector`, a
/// trigger's `gitConnectorName`). A connector whose last Test passed is taken as valid. One
/// whose last Test failed is tested afresh, so a connection that has recovered does not hold
/// the sync. An untested connector that the scope only refers to is tested now; the link's
/// own connector is not, because the sync itself reaches that very repository and reports.
pub async fn check_connections(
    store: &Store,
    delegates: &dyn Delegates,
    connector: &ConnectorRecord,
    link: &SyncLink,
) -> Result<(), ConnectionFailure> {
    check_scope_connections(store, delegates, connector, link, &[link.app.as_deref()]).await
}

/// [`check_connections`] for several scopes (`apps`, `None` for the account) that are to sync
/// with the branch of `link`: each connector is checked once, however many scopes depend on
/// it, so that enabling a hundred applications tests a failing connector once, not a hundred
/// times.
pub async fn check_scope_connections(
    store: &Store,
    delegates: &dyn Delegates,
    connector: &ConnectorRecord,
    link: &SyncLink,
    apps: &[Option<&str>],
) -> Result<(), ConnectionFailure> {
    let own_url = target(connector, link).ok().map(|t| t.url);
    check_connection(delegates, connector, own_url, false).await?;
    let mut checked: HashSet<String> = HashSet::new();
    for app in apps {
        let paths = store.scope_connector_paths(*app).await.map_err(|e| {
            failure(
                connector,
                format!("cannot read the scope's references: {e}"),
            )
        })?;
        for path in paths {
            let Some(name) = source_repo_provider_name(&path) else {
                continue;
            };
            if name == connector.spec.name || !checked.insert(name.as_str().to_owned()) {
                continue;
            }
            let dependency = store
                .get_connector(&name)
                .await
                .map_err(|e| ConnectionFailure {
                    connector_path: path.clone(),
                    message: format!(
                        "connector {:?}, which {} refers to, cannot be read: {e}",
                        name.as_str(),
                        Scope::of_app(*app)
                    ),
                })?;
            // An account-scope connector is tested against a repository: the one its last
            // Test used. Never tested, it has none to try, and does not hold the sync.
            let url = match dependency.spec.scope {
                ConnectorScope::Repo => Some(dependency.spec.url.git_url()),
                ConnectorScope::Account => None,
            };
            check_connection(delegates, &dependency, url, true).await?;
        }
    }
    Ok(())
}

async fn check_connection(
    delegates: &dyn Delegates,
    connector: &ConnectorRecord,
    url: Option<String>,
    test_if_untested: bool,
) -> Result<(), ConnectionFailure> {
    let last: Option<TestResult> = connector
        .last_test
        .as_deref()
        .and_then(|text| serde_json::from_str(text).ok());
    match &last {
        Some(result) if result.ok => return Ok(()),
        None if !test_if_untested => return Ok(()),
        _ => {}
    }
    let Some(url) = url.or_else(|| last.map(|result| result.url)) else {
        return Ok(());
    };
    let result = delegates
        .run_test(connector, url)
        .await
        .map_err(|e| failure(connector, format!("its Test could not run: {e}")))?;
    if result.ok {
        return Ok(());
    }
    Err(failure(
        connector,
        format!(
            "it failed its Test on {} at {}: {}: {}",
            result.url,
            result.tested_at,
            result.code.as_deref().unwrap_or("failed"),
            result.message.as_deref().unwrap_or("no reason given")
        ),
    ))
}

fn failure(connector: &ConnectorRecord, why: String) -> ConnectionFailure {
    ConnectionFailure {
        connector_path: connector_yaml::path(&connector.spec.name),
        message: format!(
            "connector {:?} is not valid: {why}",
            connector.spec.name.as_str()
        ),
    }
}
