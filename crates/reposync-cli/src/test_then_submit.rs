//! Test, then Submit: `connector add` tests the connection of the connector it is about to save,
//! and `connector update` tests again when a connection field changes, before anything is
//! saved. A failed Test saves nothing unless `--save-anyway`; `--no-test` skips it.

use std::time::Duration;

use anyhow::bail;
use clap::Args;
use reposync_api::{Capabilities, Client, ClientError, TaskView, TestRequest, decode};
use reposync_model::TaskId;
use reqwest::Method;
use serde_json::{Map, Value};

use crate::client_commands::{CONNECTOR_FLAGS, in_flag_terms, wait_for_task};

/// The flags that decide whether and how a connector is tested before it is saved.
#[derive(Debug, Args, Default)]
pub struct TestFlags {
    /// Save without testing the connection first.
    #[arg(long)]
    no_test: bool,
    /// Save even when the connection Test fails (the Test still runs, and its failure is shown).
    #[arg(long, conflicts_with = "no_test")]
    save_anyway: bool,
    /// The repository to test an account-scope connector against (`config` for
    /// `https://bitbucket.org/acme/config.git`).
    #[arg(long, value_name = "REPO")]
    repo: Option<String>,
}

/// The API fields of a connector that decide whether and how it connects: changing one of
/// them makes `connector update` test again. The author, commit message, name and webhook do
/// not touch the connection.
const CONNECTION_FIELDS: &[&str] = &[
    "provider",
    "scope",
    "url",
    "branch",
    "username",
    "password_secret",
    "ssh_key_secret",
    "selectors",
    "known_hosts",
    "ca_certificate",
    "api_url",
    "api_username",
    "api_token_secret",
    "fetch",
];

/// How a Test ended, read from its task's result (`reposync_api::TestResult`'s shape, or a
/// failure's).
#[derive(Debug)]
pub struct TestOutcome {
    pub ok: bool,
    result: Value,
}

impl TestOutcome {
    pub fn of(task: &TaskView) -> TestOutcome {
        let result = task.result.clone().unwrap_or(Value::Null);
        let ok = result.get("ok").and_then(Value::as_bool).unwrap_or(false);
        TestOutcome { ok, result }
    }

    /// The task's result as the API gave it, for `-o json|yaml`.
    pub fn result(&self) -> &Value {
        &self.result
    }

    fn text(&self, key: &str) -> Option<String> {
        self.result
            .get(key)
            .and_then(Value::as_str)
            .map(str::to_owned)
    }

    /// `OK: URL BRANCH at COMMIT`, and what the server can do on a second line.
    pub fn success(&self) -> String {
        let branch = self.text("branch").unwrap_or_default();
        let commit = self
            .text("commit")
            .unwrap_or_else(|| "(empty repository)".into());
        let mut line = format!(
            "OK: {} {branch} at {commit}",
            self.text("url").unwrap_or_default()
        );
        let capabilities = self
            .result
            .get("capabilities")
            .and_then(|found| serde_json::from_value::<Capabilities>(found.clone()).ok());
        if let Some(found) = capabilities {
            line.push_str(&format!("\n  server: {}", capabilities_summary(&found)));
        }
        line
    }

    /// `test failed (CODE): MESSAGE`, with what git said on a line of its own.
    pub fn failure(&self) -> String {
        let code = self.text("code").unwrap_or_else(|| "failed".into());
        let mut message = self.text("message").unwrap_or_default();
        if let Some(detail) = self.text("detail").filter(|d| !d.is_empty()) {
            message.push_str(&format!("\n  git said: {detail}"));
        }
        format!("test failed ({code}): {message}")
    }
}

/// Saves what was tested: creates the connector or applies the changes, naming the Test that
/// ran on it (if one did) so that its result becomes the connector's last Test.
pub async fn save(
    client: &Client,
    draft: Draft<'_>,
    tested_by: Option<TaskId>,
) -> anyhow::Result<Value> {
    let query: Vec<(&str, String)> = tested_by
        .map(|task| ("tested_by", task.to_string()))
        .into_iter()
        .collect();
    let (method, path, body) = match draft {
        Draft::New(body) => (Method::POST, vec!["api", "v1", "connectors"], body),
        Draft::Changes { name, patch } => {
            (Method::PATCH, vec!["api", "v1", "connectors", name], patch)
        }
    };
    client
        .send(method, &path, &query, Some(body), Duration::from_secs(30))
        .await
        .map_err(|e| in_flag_terms(e, CONNECTOR_FLAGS))
}

/// What is about to be saved: a new connector, or changes to a saved one.
#[derive(Debug, Clone, Copy)]
pub enum Draft<'a> {
    New(&'a Map<String, Value>),
    Changes {
        name: &'a str,
        patch: &'a Map<String, Value>,
    },
}

/// Runs the Test of what is about to be saved and shows its result on standard error (standard
/// output is for the saved connector). Returns the Test's task when saving may go on, to be
/// named on the save so that its result becomes the connector's last Test (`None` when no Test
/// ran); refuses, saving nothing, when the Test failed without `--save-anyway`.
pub async fn test_before_saving(
    client: &Client,
    draft: Draft<'_>,
    flags: &TestFlags,
) -> anyhow::Result<Option<TaskId>> {
    if flags.no_test {
        return Ok(None);
    }
    if let Draft::Changes { patch, .. } = draft
        && !patch
            .keys()
            .any(|key| CONNECTION_FIELDS.contains(&key.as_str()))
    {
        // Nothing that decides the connection changes: the last Test still stands.
        return Ok(None);
    }
    let queued = match draft {
        Draft::New(body) => {
            let query: Vec<(&str, String)> =
                flags.repo.iter().map(|r| ("repo", r.clone())).collect();
            client
                .send(
                    Method::POST,
                    &["api", "v1", "connector-tests"],
                    &query,
                    Some(body),
                    Duration::from_secs(30),
                )
                .await
        }
        Draft::Changes { name, patch } => {
            let request = TestRequest {
                repo: flags.repo.clone(),
                changes: Some(patch.clone()),
            };
            client
                .call(Method::POST, &["connectors", name, "test"], &request)
                .await
        }
    }
    .map_err(|error| {
        // An account-scope connector is tested against one of its repositories.
        let needs_repo = flags.repo.is_none()
            && matches!(&error, ClientError::Api { error, .. } if error.field.as_deref() == Some("repo"));
        let error = in_flag_terms(error, CONNECTOR_FLAGS);
        if needs_repo {
            anyhow::anyhow!(
                "{error}\nthe Test before saving reads one repository of the account: give it with --repo REPO, or save without a Test with --no-test; nothing was saved"
            )
        } else {
            error
        }
    })?;
    let queued: TaskView = decode(queued)?;
    eprintln!("Testing the connection before saving (task {})…", queued.id);
    let task = wait_for_task(client, queued, "the Test").await?;
    let outcome = TestOutcome::of(&task);
    if outcome.ok {
        eprintln!("{}", outcome.success());
        return Ok(Some(task.id));
    }
    if flags.save_anyway {
        eprintln!(
            "warning: {}\nsaving anyway (--save-anyway)",
            outcome.failure()
        );
        return Ok(Some(task.id));
    }
    bail!(
        "{}\nnothing was saved: fix the connection and run this again, or save it as it is with --save-anyway",
        outcome.failure()
    )
}

/// What the last Test found the server can do, in one line.
pub(crate) fn capabilities_summary(found: &Capabilities) -> String {
    let mut parts = vec![match &found.version {
        Some(version) => format!("{} {version}", found.platform),
        None => found.platform.clone(),
    }];
    parts.push(
        if found.partial_clone {
            "partial clone"
        } else {
            "no partial clone"
        }
        .to_owned(),
    );
    parts.push(match (&found.rest_api, found.rest, &found.rest_problem) {
        (None, _, _) => "no REST API".to_owned(),
        (Some(_), true, _) => "REST answers".to_owned(),
        (Some(_), false, Some(problem)) => format!("REST unusable: {problem}"),
        (Some(_), false, None) => "REST unusable".to_owned(),
    });
    if found.rate_limit_headers {
        parts.push(match found.rate_limit {
            Some(limit) => format!("rate limit {limit}/h"),
            None => "rate-limit headers".to_owned(),
        });
    }
    if let Some(filter) = found.archive_path_filter {
        parts.push(
            if filter {
                "archive path filter"
            } else {
                "no archive path filter"
            }
            .to_owned(),
        );
    }
    parts.join("; ")
}
