//! Credentials attached to a task at claim time, and never before: the secrets a claimed
//! task needs, opened for that one task.

use reposync_api::{
    FetchFilesSpec, ReadPlanning, RestTarget, SecretValue, SyncSpec, TaskAuth, TaskKind, TaskSpec,
    TestConnectionSpec, TestResult,
};
use reposync_model::{ConnectorId, Credentials, GitConnector, RepoUrl, SecretName};
use reposync_store::{ConnectorRecord, TaskRecord};

use super::{
    FETCH_TIMEOUT, FetchPayload, SYNC_TIMEOUT, SyncPayload, TEST_TIMEOUT, TaskHub,
    TestConnectionPayload,
};

impl TaskHub {
    /// Opens a secret for a task; both kinds of secret hold UTF-8 text.
    pub(super) async fn reveal_text(&self, name: &SecretName) -> Result<SecretValue, String> {
        let (_, value) = self
            .inner
            .store
            .reveal_secret(name)
            .await
            .map_err(|e| e.to_string())?;
        String::from_utf8(value.to_vec())
            .map(SecretValue::new)
            .map_err(|_| format!("secret {:?} is not UTF-8 text", name.as_str()))
    }

    /// Attaches what a claimed task needs to run, credentials included.
    pub async fn hydrate(&self, task: &TaskRecord) -> Result<TaskSpec, String> {
        match TaskKind::parse(&task.kind) {
            Some(TaskKind::TestConnection) => {
                let payload: TestConnectionPayload = serde_json::from_str(&task.payload)
                    .map_err(|e| format!("unreadable task payload: {e}"))?;
                let spec = match (&payload.draft, &payload.connector_id) {
                    // A draft is parsed again by the rules its rows would meet, as the store
                    // reads a saved one.
                    (Some(draft), _) => GitConnector::parse(draft)
                        .map_err(|e| format!("the connector tested is invalid: {e}"))?,
                    (None, Some(connector_id)) => self.connector(connector_id).await?.spec,
                    (None, None) => {
                        return Err("the Test names no connector".to_owned());
                    }
                };
                let auth = self.task_auth(&spec).await?;
                let rest = self.rest_target(&spec, &payload.url).await?;
                Ok(TaskSpec::TestConnection(Box::new(TestConnectionSpec {
                    url: payload.url,
                    branch: payload.branch,
                    auth,
                    timeout_secs: TEST_TIMEOUT.as_secs(),
                    platform: Some(spec.provider.to_string()),
                    rest,
                })))
            }
            Some(TaskKind::Sync) => {
                let payload: SyncPayload = serde_json::from_str(&task.payload)
                    .map_err(|e| format!("unreadable task payload: {e}"))?;
                let connector = self.connector(&payload.connector_id).await?;
                let auth = self.task_auth(&connector.spec).await?;
                let planning = self.read_planning(&connector, &payload.target.url).await?;
                // A task run again after its delegate was lost needs nothing special: a
                // push that landed is found on the branch by its trailers.
                Ok(TaskSpec::Sync(Box::new(SyncSpec {
                    target: payload.target,
                    job: payload.job,
                    auth,
                    timeout_secs: SYNC_TIMEOUT.as_secs(),
                    planning: Some(planning),
                })))
            }
            Some(TaskKind::FetchFiles) => {
                let payload: FetchPayload = serde_json::from_str(&task.payload)
                    .map_err(|e| format!("unreadable task payload: {e}"))?;
                let connector = self.connector(&payload.connector_id).await?;
                let auth = self.task_auth(&connector.spec).await?;
                let planning = self.read_planning(&connector, &payload.url).await?;
                Ok(TaskSpec::FetchFiles(Box::new(FetchFilesSpec {
                    branch: connector.spec.branch.as_ref().map(ToString::to_string),
                    url: payload.url,
                    reference: payload.reference,
                    paths: payload.paths,
                    clone_key: payload.clone_key,
                    auth,
                    timeout_secs: FETCH_TIMEOUT.as_secs(),
                    planning: Some(planning),
                })))
            }
            other => Err(format!("unknown task kind {other:?}")),
        }
    }

    /// A saved connector.
    async fn connector(&self, connector_id: &ConnectorId) -> Result<ConnectorRecord, String> {
        self.inner
            .store
            .get_connector_by_id(connector_id)
            .await
            .map_err(|e| format!("the connector is gone: {e}"))
    }

    /// The REST API of the connector's repository at `url`, with the connector's own REST
    /// token opened for this one task when it has one.
    async fn rest_target(
        &self,
        spec: &GitConnector,
        url: &str,
    ) -> Result<Option<RestTarget>, String> {
        let Some(endpoint) = RepoUrl::parse(url)
            .ok()
            .and_then(|url| spec.rest_endpoint_at(&url))
        else {
            return Ok(None);
        };
        let mut target = RestTarget::from_endpoint(endpoint);
        if let Some(secret) = &spec.api_token_secret {
            target.token = Some(self.reveal_text(secret).await?);
        }
        target.ca_certificate = spec.ca_certificate.clone();
        Ok(Some(target))
    }

    /// What the fetch planner needs of a connector for a repository at `url`: its settings,
    /// and what its last Test found (nothing when the Test is older than the connector's
    /// settings, since saving them clears it).
    async fn read_planning(
        &self,
        connector: &ConnectorRecord,
        url: &str,
    ) -> Result<ReadPlanning, String> {
        let capabilities = connector
            .last_test
            .as_deref()
            .and_then(|json| serde_json::from_str::<TestResult>(json).ok())
            .and_then(|test| test.capabilities);
        Ok(ReadPlanning {
            fetch: connector.spec.fetch,
            rest: self.rest_target(&connector.spec, url).await?,
            partial_clone: capabilities.as_ref().map(|found| found.partial_clone),
            archive_path_filter: capabilities
                .as_ref()
                .and_then(|found| found.archive_path_filter),
            repository_bytes: capabilities.and_then(|found| found.repository_bytes),
        })
    }

    /// A connector's credentials, opened for one task.
    pub(super) async fn task_auth(&self, spec: &GitConnector) -> Result<TaskAuth, String> {
        Ok(match &spec.credentials {
            Credentials::Https {
                username,
                password_secret,
            } => TaskAuth::Https {
                username: username.clone(),
                password: self.reveal_text(password_secret).await?,
                ca_certificate: spec.ca_certificate.clone(),
            },
            Credentials::Ssh { ssh_key_secret } => TaskAuth::Ssh {
                private_key: self.reveal_text(ssh_key_secret).await?,
                known_hosts: spec.known_hosts.clone(),
            },
        })
    }
}
