//! Bitbucket's REST APIs from a delegate: the clients a task's [`RestTarget`] and credentials
//! make, drawing on the agent's per-credential budgets, and the capability probe of a Test.

use std::time::Duration;

use reposync_api::{Capabilities, RestTarget, TaskAuth};
use reposync_bitbucket::rest::{CloudClient, DcClient, RestConfig, RestCredential, RetryPolicy};
use reposync_git::ServerCapabilities;
use reposync_model::{RestAuth, RestPlatform};
use secrecy::SecretString;
use url::Url;

use crate::agent::Agent;

/// A client of one repository's REST API.
#[derive(Debug)]
pub(crate) enum RestClient {
    Cloud(CloudClient),
    DataCenter(DcClient),
}

impl Agent {
    /// A client of `target` with the task's credentials, or why there can be none.
    pub(crate) fn rest_client(
        &self,
        target: &RestTarget,
        auth: &TaskAuth,
        timeout: Duration,
        retry: RetryPolicy,
    ) -> Result<RestClient, String> {
        let credential = rest_credential(target, auth)?;
        let base = Url::parse(&target.base)
            .map_err(|e| format!("the REST base {:?} is not a URL: {e}", target.base))?;
        let ca_pem = match auth {
            TaskAuth::Https { ca_certificate, .. } => ca_certificate.clone(),
            TaskAuth::Ssh { .. } => None,
        }
        .or_else(|| target.ca_certificate.clone());
        let mut identity: Vec<&[u8]> = vec![base.host_str().unwrap_or_default().as_bytes()];
        identity.extend(credential.identity());
        let budget = self.budgets.for_credential(&identity);
        let mut config = RestConfig::new(base, credential, ca_pem);
        config.timeout = timeout;
        config.retry = retry;
        let client = match target.platform {
            RestPlatform::Cloud => {
                CloudClient::new(config, budget, &target.owner, &target.slug).map(RestClient::Cloud)
            }
            RestPlatform::DataCenter => DcClient::new(config, budget, &target.owner, &target.slug)
                .map(RestClient::DataCenter),
        };
        client.map_err(|e| e.to_string())
    }

    /// What a Test learns of the server beyond git: the platform's version, whether REST
    /// answers with these credentials (and agrees with git on `branch`'s head), its rate-limit
    /// headers, and whether archives take a path filter.
    pub(crate) async fn probe_capabilities(
        &self,
        platform: &str,
        target: Option<&RestTarget>,
        auth: &TaskAuth,
        git: ServerCapabilities,
        branch: Option<(&str, &str)>,
        timeout: Duration,
    ) -> Capabilities {
        let mut found = Capabilities {
            platform: platform.to_owned(),
            version: None,
            git_protocol_v2: git.protocol_v2,
            partial_clone: git.filter,
            rest_api: target.map(|t| t.base.clone()),
            rest: false,
            rest_problem: None,
            rate_limit_headers: false,
            rate_limit: None,
            archive_path_filter: None,
            repository_bytes: None,
        };
        let Some(target) = target else {
            return found;
        };
        // A Test waits for its answer, so it retries once, briefly.
        let retry = RetryPolicy {
            attempts: 2,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(5),
        };
        if target.platform == RestPlatform::DataCenter {
            // The version needs no credentials, so even an SSH connector learns it.
            let anonymous = RestTarget {
                auth: None,
                unusable: None,
                ..target.clone()
            };
            if let Ok(RestClient::DataCenter(client)) =
                self.rest_client(&anonymous, auth, timeout, retry)
            {
                match client.server_properties().await {
                    Ok(properties) => {
                        found.archive_path_filter = Some(properties.has_archive_path_filter());
                        found.version = Some(properties.version);
                    }
                    Err(error) => found.rest_problem = Some(error.to_string()),
                }
            }
        }
        let client = match self.rest_client(target, auth, timeout, retry) {
            Ok(client) => client,
            Err(reason) => {
                found.rest_problem = Some(reason);
                return found;
            }
        };
        let Some((branch, git_head)) = branch else {
            found.rest_problem = Some("the repository has no branch to read through REST".into());
            return found;
        };
        let (head, budget) = match &client {
            RestClient::Cloud(cloud) => {
                // What a clone would cost, since Cloud refuses partial clone: the planner
                // writes through REST when it is large.
                found.repository_bytes = cloud.repository_size().await.ok().flatten();
                (cloud.branch_head(branch).await, cloud.budget())
            }
            RestClient::DataCenter(dc) => (dc.branch_head(branch).await, dc.budget()),
        };
        match head {
            Ok(head) if head.as_str() == git_head => {
                found.rest = true;
                found.rest_problem = None;
            }
            Ok(head) => {
                found.rest_problem = Some(format!(
                    "REST says {branch} is at {head}, git says {git_head}; check --api-url names this repository's server"
                ));
            }
            Err(error) => found.rest_problem = Some(error.to_string()),
        }
        let budget = budget.snapshot();
        found.rate_limit_headers = budget.headers_seen;
        found.rate_limit = budget.headers_seen.then_some(budget.limit);
        found
    }
}

/// The REST credential of a task: the connector's token, Basic or Bearer as the target says.
fn rest_credential(target: &RestTarget, auth: &TaskAuth) -> Result<RestCredential, String> {
    let Some(rest_auth) = &target.auth else {
        return match &target.unusable {
            Some(reason) => Err(reason.clone()),
            None => Ok(RestCredential::Anonymous),
        };
    };
    let token = match (&target.token, auth) {
        (Some(token), _) => SecretString::from(token.expose()),
        (None, TaskAuth::Https { password, .. }) => SecretString::from(password.expose()),
        (None, TaskAuth::Ssh { .. }) => {
            return Err(
                "an SSH key cannot call Bitbucket's REST API; this connector reads through git only"
                    .into(),
            );
        }
    };
    Ok(match rest_auth {
        RestAuth::Basic { username } => RestCredential::Basic {
            username: username.clone(),
            password: token,
        },
        RestAuth::Bearer => RestCredential::Bearer(token),
    })
}
