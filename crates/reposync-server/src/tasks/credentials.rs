//! Credentials attached to a task at claim time, and never before: the secrets a claimed
//! task needs, opened for that one task.

use reposync_api::{SecretValue, SyncSpec, TaskAuth, TaskKind, TaskSpec, TestConnectionSpec};
use reposync_model::{ConnectorId, Credentials, GitConnector, SecretName};
use reposync_store::TaskRecord;
use serde::de::DeserializeOwned;

use super::{SYNC_TIMEOUT, SyncPayload, TEST_TIMEOUT, TaskHub, TestConnectionPayload};

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
                let auth = match (&payload.draft, &payload.connector_id) {
                    // A draft is parsed again by the rules its rows would meet, as the store
                    // reads a saved one.
                    (Some(draft), _) => {
                        let spec = GitConnector::parse(draft)
                            .map_err(|e| format!("the connector tested is invalid: {e}"))?;
                        self.task_auth(&spec).await?
                    }
                    (None, Some(connector_id)) => self.connector_auth(connector_id).await?,
                    (None, None) => {
                        return Err("the Test names no connector".to_owned());
                    }
                };
                Ok(TaskSpec::TestConnection(TestConnectionSpec {
                    url: payload.url,
                    branch: payload.branch,
                    auth,
                    timeout_secs: TEST_TIMEOUT.as_secs(),
                }))
            }
            Some(TaskKind::Sync) => {
                let (payload, auth) = self
                    .payload_with_auth(task, |p: &SyncPayload| &p.connector_id)
                    .await?;
                // A task run again after its delegate was lost needs nothing special: a
                // push that landed is found on the branch by its trailers.
                Ok(TaskSpec::Sync(Box::new(SyncSpec {
                    target: payload.target,
                    job: payload.job,
                    auth,
                    timeout_secs: SYNC_TIMEOUT.as_secs(),
                })))
            }
            other => Err(format!("unknown task kind {other:?}")),
        }
    }

    /// A task's stored payload, and the credentials of the connector it names.
    async fn payload_with_auth<P: DeserializeOwned>(
        &self,
        task: &TaskRecord,
        connector_of: impl Fn(&P) -> &ConnectorId,
    ) -> Result<(P, TaskAuth), String> {
        let payload: P = serde_json::from_str(&task.payload)
            .map_err(|e| format!("unreadable task payload: {e}"))?;
        let auth = self.connector_auth(connector_of(&payload)).await?;
        Ok((payload, auth))
    }

    /// A saved connector's credentials, opened for one task.
    async fn connector_auth(&self, connector_id: &ConnectorId) -> Result<TaskAuth, String> {
        let connector = self
            .inner
            .store
            .get_connector_by_id(connector_id)
            .await
            .map_err(|e| format!("the connector is gone: {e}"))?;
        self.task_auth(&connector.spec).await
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
