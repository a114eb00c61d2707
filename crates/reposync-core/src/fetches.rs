//! Fetching files of a connector's repository at a ref (`reposync fetch`): deployment pipelines
//! reading their manifests at a branch, a tag or a commit.
//!
//! Everything the request names is parsed here, before any task is queued: the ref, and every
//! path, which must stay inside the repository (`RepoPath`: no `..`, no absolute path, no
//! `.git`, no control characters). A refusal names the field and the path, and queues
//! nothing. The work itself is a task on a delegate the connector's selectors choose; its
//! archive is downloaded once the task succeeded.

use reposync_api::FetchRequest;
use reposync_model::{ConnectorId, EntityName, RepoPath, RepoSlug, Revision};
use reposync_store::{ConnectorRecord, Store, StoreError, TaskRecord};

use crate::error::CoreError;

/// The most paths one fetch may name: Data Center reads them in one archive request, whose URL
/// must stay within common limits.
pub const MAX_FETCH_PATHS: usize = 100;

/// A fetch, parsed: what the task carries.
#[derive(Debug, Clone)]
pub struct FetchOrder {
    pub connector_id: ConnectorId,
    /// The repository's clone URL.
    pub url: String,
    /// The ref asked for; `None` reads the connector's branch, or the default branch.
    pub revision: Option<Revision>,
    /// The paths, without duplicates, in the order given.
    pub paths: Vec<RepoPath>,
}

/// Where fetches are queued: the task hub.
#[async_trait::async_trait]
pub trait Fetches: Send + Sync {
    /// Queues `order` on a delegate that may use `connector`, and answers its task at once.
    async fn enqueue_fetch(
        &self,
        connector: &ConnectorRecord,
        order: FetchOrder,
    ) -> Result<TaskRecord, StoreError>;
}

/// Parses `request` for connector `name` and queues it; the task is answered at once.
pub async fn fetch(
    store: &Store,
    fetches: &dyn Fetches,
    name: &str,
    request: &FetchRequest,
) -> Result<TaskRecord, CoreError> {
    let name = EntityName::parse(name)?;
    // The request is parsed whole before the connector is looked up: a bad path is the
    // caller's to fix whatever the connector.
    let revision = request
        .reference
        .as_deref()
        .filter(|text| !text.trim().is_empty())
        .map(Revision::parse)
        .transpose()?;
    let paths = parse_paths(&request.paths)?;
    let repo = request
        .repo
        .as_deref()
        .filter(|repo| !repo.trim().is_empty())
        .map(RepoSlug::parse)
        .transpose()?;
    let connector = store.get_connector(&name).await?;
    let url = connector.spec.repository_url(repo.as_ref())?.git_url();
    let order = FetchOrder {
        connector_id: connector.id.clone(),
        url,
        revision,
        paths,
    };
    tracing::info!(
        connector = %connector.spec.name,
        reference = order.revision.as_ref().map(Revision::as_text).unwrap_or_default(),
        paths = order.paths.len(),
        "fetching files"
    );
    Ok(fetches.enqueue_fetch(&connector, order).await?)
}

/// The repository paths of a fetch, each a file or folder inside the repository: a trailing
/// `/` (a folder written as one) is dropped; duplicates go.
pub fn parse_paths(texts: &[String]) -> Result<Vec<RepoPath>, CoreError> {
    if texts.is_empty() {
        return Err(CoreError::invalid(
            "paths",
            "name at least one file or folder of the repository",
        ));
    }
    if texts.len() > MAX_FETCH_PATHS {
        return Err(CoreError::invalid(
            "paths",
            format!(
                "{} paths; one fetch takes at most {MAX_FETCH_PATHS} (name their folder instead)",
                texts.len()
            ),
        ));
    }
    let mut paths: Vec<RepoPath> = Vec::with_capacity(texts.len());
    for text in texts {
        let trimmed = text.strip_suffix('/').unwrap_or(text);
        let path = RepoPath::parse(trimmed).map_err(|problem| {
            CoreError::invalid(
                "paths",
                format!(
                    "the path \"{}\" cannot be fetched: {problem}; give a path relative to the repository's root, inside it",
                    reposync_model::escape_path(text.as_bytes())
                ),
            )
        })?;
        if !paths.contains(&path) {
            paths.push(path);
        }
    }
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_that_leave_the_repository_are_refused_naming_them() {
        for bad in [
            "../secrets.yaml",
            "deploy/../../etc/passwd",
            "/etc/passwd",
            ".git/config",
            "deploy/.GIT/hooks",
            "deploy/\u{1b}[31m",
            "",
            "a//b",
        ] {
            let error = parse_paths(&[bad.to_owned()]).expect_err(bad);
            assert_eq!(error.field.as_deref(), Some("paths"), "{bad:?}");
            assert_eq!(error.code, "invalid");
        }
        let error = parse_paths(&["../x.yaml".to_owned()]).expect_err("refused");
        assert!(error.message.contains("../x.yaml"), "{}", error.message);
        assert!(parse_paths(&[]).is_err());
        let many: Vec<String> = (0..=MAX_FETCH_PATHS).map(|i| format!("f{i}")).collect();
        assert!(parse_paths(&many).is_err());
    }

    #[test]
    fn folders_may_end_in_a_slash_and_duplicates_go() {
        let paths = parse_paths(&[
            "deploy/".to_owned(),
            "deploy".to_owned(),
            "values.yaml".to_owned(),
        ])
        .expect("parses");
        let texts: Vec<&str> = paths.iter().map(RepoPath::as_str).collect();
        assert_eq!(texts, ["deploy", "values.yaml"]);
    }
}
