//! Source Repo Providers (connectors): created, changed, renamed, deleted, tested, and their
//! webhook credentials.

use reposync_api::{ConnectorDraft, ConnectorPatch};
use reposync_model::tree::{EntityKind, EntityPath};
use reposync_model::{
    ConnectorScope, EntityName, GitConnector, Person, RepoSlug, RepoUrl, TaskId, connector_yaml,
};
use reposync_store::{
    ConnectorRecord, ConnectorWrite, Store, StoreError, TaskRecord, WebhookChange,
    WebhookCredentials,
};
use serde_json::Value;
use zeroize::Zeroizing;

use crate::connections::{Delegates, Tested};
use crate::error::{CoreError, ErrorKind};
use crate::tokens::{hash_token, new_token};
use crate::tree::{TreeEdit, apply_edit, rewritten_referrers};

/// A connector as saved, and its webhook credentials when they were made just now: they are
/// shown once, at that moment.
#[derive(Debug)]
pub struct Saved {
    pub connector: ConnectorRecord,
    pub fresh_webhook: Option<WebhookCredentials>,
    /// What is worth a look about the connector saved: its name mixing look-alike scripts.
    pub warnings: Vec<String>,
}

/// Creates a connector (and its webhook credentials, when it asks for a webhook URL).
/// `tested_by` is the Test run on it before it was saved, whose result becomes its last Test;
/// `by` is the person creating it.
pub async fn create(
    store: &Store,
    delegates: &dyn Delegates,
    draft: &ConnectorDraft,
    tested_by: Option<&TaskId>,
    by: Option<&Person>,
) -> Result<Saved, CoreError> {
    let spec = GitConnector::parse_new(draft)?;
    let (change, fresh_webhook) = if spec.generate_webhook_url {
        fresh_webhook_change()
    } else {
        (WebhookChange::Keep, None)
    };
    let connector = store.create_connector(&spec, change, by).await?;
    tracing::info!(connector = %spec.name, provider = %spec.provider, "created connector");
    let connector = adopt_test(store, delegates, connector, tested_by).await?;
    Ok(Saved {
        connector,
        fresh_webhook,
        warnings: reposync_model::mixed_script_warning(spec.name.as_str())
            .into_iter()
            .collect(),
    })
}

/// Applies a PATCH to a connector. A rename rewrites every file that names it (an
/// application's `gitConnector`, a trigger's) in the same batch. `tested_by` is the Test run
/// on the connector as changed, before it was saved, whose result becomes its last Test; `by`
/// is the person changing it.
pub async fn update(
    store: &Store,
    delegates: &dyn Delegates,
    name: &str,
    patch: &ConnectorPatch,
    tested_by: Option<&TaskId>,
    by: Option<&Person>,
) -> Result<Saved, CoreError> {
    let name = EntityName::parse(name)?;
    let current = store.get_connector(&name).await?;
    let spec = changed_spec(&current, patch)?;
    let (change, fresh_webhook) = match (current.has_webhook, spec.generate_webhook_url) {
        (false, true) => fresh_webhook_change(),
        (true, false) => (WebhookChange::Remove, None),
        _ => (WebhookChange::Keep, None),
    };
    let renamed = current.spec.name != spec.name;
    let referrers = if renamed {
        let as_path = |name: &EntityName| EntityPath {
            kind: EntityKind::SourceRepoProvider,
            app: None,
            service: None,
            environment: None,
            name: Some(name.clone()),
            rest: None,
        };
        rewritten_referrers(
            store,
            &as_path(&current.spec.name),
            &as_path(&spec.name),
            &[],
        )
        .await?
    } else {
        Vec::new()
    };
    let edit = TreeEdit {
        files: referrers,
        connectors: vec![ConnectorWrite::update(&current, spec.clone(), change)],
        by: by.cloned(),
        ..TreeEdit::default()
    };
    let report = apply_edit(store, edit).await?.into_result()?;
    let connector = store.get_connector(&spec.name).await?;
    tracing::info!(connector = %spec.name, renamed, "updated connector");
    let connector = adopt_test(store, delegates, connector, tested_by).await?;
    Ok(Saved {
        connector,
        fresh_webhook,
        // Only what is about this connector: the files rewritten beside it were warned of
        // when they were written.
        warnings: report
            .warnings
            .into_iter()
            .filter(|w| w.path == connector_yaml::path(&spec.name))
            .map(|w| w.message)
            .collect(),
    })
}

/// Deletes a connector, unless files still name it. `by` is the person deleting it.
pub async fn delete(
    store: &Store,
    name: &str,
    by: Option<&Person>,
) -> Result<EntityName, CoreError> {
    let name = EntityName::parse(name)?;
    // The connector is also the Source Repo Provider file that applications name in
    // `gitConnector`; it cannot go while they do.
    let referrers = store.entity_referrers(&connector_yaml::path(&name)).await?;
    if !referrers.is_empty() {
        return Err(CoreError::new(
            ErrorKind::Conflict,
            "in_use",
            format!(
                "connector {:?} is used by: {}",
                name.as_str(),
                referrers.join(", ")
            ),
        ));
    }
    store
        .delete_connector(&name, by)
        .await
        .map_err(|error| match error {
            StoreError::InUse { user_kind: "sync link", .. } => {
                let message = format!("{error}; disable sync there first (`reposync sync disable`)");
                CoreError::new(ErrorKind::Conflict, "in_use", message)
            }
            StoreError::InUse { .. } => {
                let message = format!(
                    "{error}; its Git Sync history still names it, so keep it (a connector nothing links to does no work)"
                );
                CoreError::new(ErrorKind::Conflict, "in_use", message)
            }
            other => other.into(),
        })?;
    tracing::info!(connector = %name, "deleted connector");
    Ok(name)
}

/// A connector's webhook credentials.
pub async fn webhook(
    store: &Store,
    name: &str,
) -> Result<(ConnectorRecord, WebhookCredentials), CoreError> {
    let name = EntityName::parse(name)?;
    let credentials = store
        .webhook_credentials(&name)
        .await?
        .ok_or_else(|| no_webhook(&name))?;
    Ok((store.get_connector(&name).await?, credentials))
}

/// Replaces the webhook URL token and HMAC secret; the old URL stops working at once. `by` is
/// the person asking.
pub async fn regenerate_webhook(
    store: &Store,
    name: &str,
    by: Option<&Person>,
) -> Result<WebhookCredentials, CoreError> {
    let name = EntityName::parse(name)?;
    let current = store.get_connector(&name).await?;
    if !current.has_webhook {
        return Err(no_webhook(&name));
    }
    let (credentials, token_hash) = new_webhook_credentials();
    let shown = credentials.clone();
    store
        .update_connector(
            &current,
            &current.spec,
            WebhookChange::Set {
                credentials,
                token_hash,
            },
            by,
        )
        .await?;
    tracing::info!(connector = %name, "regenerated webhook credentials");
    Ok(shown)
}

/// Turns the HMAC signature of webhook deliveries on (with a new secret) or off, keeping the
/// URL. Off is for senders that cannot sign: the Post Webhooks plugin and the Post-Receive
/// hook of Bitbucket Server; the URL token alone then authenticates, as in Harness. `by` is
/// the person asking.
pub async fn set_webhook_signature(
    store: &Store,
    name: &str,
    required: bool,
    by: Option<&Person>,
) -> Result<WebhookCredentials, CoreError> {
    let (current, existing) = webhook(store, name).await?;
    let secret = if required {
        new_token("")
    } else {
        String::new()
    };
    let credentials = WebhookCredentials {
        token: existing.token.clone(),
        secret: Zeroizing::new(secret),
    };
    store
        .update_connector(
            &current,
            &current.spec,
            WebhookChange::Set {
                token_hash: hash_token(&credentials.token),
                credentials: credentials.clone(),
            },
            by,
        )
        .await?;
    tracing::info!(connector = %current.spec.name, required, "set webhook signature");
    Ok(credentials)
}

/// Queues a connection Test of a saved connector on a delegate and answers its task at once;
/// `repo` names the repository for an account-scope connector. The result becomes the
/// connector's last Test.
pub async fn test(
    store: &Store,
    delegates: &dyn Delegates,
    name: &str,
    repo: Option<&str>,
) -> Result<TaskRecord, CoreError> {
    let name = EntityName::parse(name)?;
    let connector = store.get_connector(&name).await?;
    let url = test_url(&connector.spec, repo)?;
    Ok(delegates
        .enqueue_test(Tested::Saved(&connector), url)
        .await?)
}

/// Queues a Test of a connector that is not saved, as `create` would save it: refused for
/// what `create` would refuse (its fields, a name taken, a secret missing or of the wrong
/// kind), so that Test, then Submit, fails early. Nothing of the draft is stored but the task.
pub async fn test_draft(
    store: &Store,
    delegates: &dyn Delegates,
    draft: &ConnectorDraft,
    repo: Option<&str>,
) -> Result<TaskRecord, CoreError> {
    let spec = GitConnector::parse_new(draft)?;
    if store.get_connector(&spec.name).await.is_ok() {
        return Err(CoreError::from(reposync_store::StoreError::AlreadyExists {
            what: "connector",
            name: spec.name.to_string(),
        }));
    }
    enqueue_draft_test(store, delegates, &spec, repo).await
}

/// Queues a Test of a saved connector as `patch` would leave it, saving nothing: `connector
/// update` tests a changed connection before it saves it. The result is not the connector's
/// last Test, since the connector tested is not the one saved.
pub async fn test_changes(
    store: &Store,
    delegates: &dyn Delegates,
    name: &str,
    patch: &ConnectorPatch,
    repo: Option<&str>,
) -> Result<TaskRecord, CoreError> {
    let name = EntityName::parse(name)?;
    let current = store.get_connector(&name).await?;
    let spec = changed_spec(&current, patch)?;
    enqueue_draft_test(store, delegates, &spec, repo).await
}

/// The connector as `patch` would leave it. A repository connector read from a file without
/// `branch:` follows the default branch and may go on doing so; any other keeps the rule of
/// connectors made through the API.
fn changed_spec(
    current: &ConnectorRecord,
    patch: &ConnectorPatch,
) -> Result<GitConnector, CoreError> {
    let draft = merge(&current.spec, patch)?;
    let follows_default =
        current.spec.scope == ConnectorScope::Repo && current.spec.branch.is_none();
    Ok(if follows_default {
        GitConnector::parse_input(&draft)?
    } else {
        GitConnector::parse_new(&draft)?
    })
}

async fn enqueue_draft_test(
    store: &Store,
    delegates: &dyn Delegates,
    spec: &GitConnector,
    repo: Option<&str>,
) -> Result<TaskRecord, CoreError> {
    store.check_connector_secrets(spec).await?;
    let url = test_url(spec, repo)?;
    tracing::info!(connector = %spec.name, "testing a connector that is not saved");
    Ok(delegates.enqueue_test(Tested::Draft(spec), url).await?)
}

/// The URL a Test of `spec` reads, saved or draft: its own, or for an account-scope connector
/// the repository `repo` under it (required there).
fn test_url(spec: &GitConnector, repo: Option<&str>) -> Result<String, CoreError> {
    let repo = repo
        .filter(|r| !r.trim().is_empty())
        .map(RepoSlug::parse)
        .transpose()?;
    Ok(spec.repository_url(repo.as_ref())?.git_url())
}

/// Keeps the result of the Test run before `connector` was saved as its last Test, when
/// `tested_by` is a finished Test of exactly the connector saved. Any other task (another
/// connector's, one still running, one of settings that changed meanwhile) leaves the last
/// Test as it was: the result must be of what was saved.
async fn adopt_test(
    store: &Store,
    delegates: &dyn Delegates,
    connector: ConnectorRecord,
    tested_by: Option<&TaskId>,
) -> Result<ConnectorRecord, CoreError> {
    let Some(task) = tested_by else {
        return Ok(connector);
    };
    let Some(result) = delegates.draft_test_result(task, &connector.spec).await? else {
        tracing::debug!(connector = %connector.spec.name, %task, "the task is not a Test of the connector saved");
        return Ok(connector);
    };
    store
        .set_connector_last_test(&connector.id, &result)
        .await?;
    Ok(store.get_connector(&connector.spec.name).await?)
}

fn no_webhook(name: &EntityName) -> CoreError {
    CoreError::not_found(format!(
        "connector {name:?} has no webhook URL; turn it on with `reposync connector update {name} --generate-webhook-url`"
    ))
}

fn fresh_webhook_change() -> (WebhookChange, Option<WebhookCredentials>) {
    let (credentials, token_hash) = new_webhook_credentials();
    let shown = credentials.clone();
    (
        WebhookChange::Set {
            credentials,
            token_hash,
        },
        Some(shown),
    )
}

/// A 256-bit URL token (beyond the 160 bits asked for) and a 256-bit HMAC secret.
fn new_webhook_credentials() -> (WebhookCredentials, String) {
    let token = new_token("");
    let hash = hash_token(&token);
    (
        WebhookCredentials {
            token: Zeroizing::new(token),
            secret: Zeroizing::new(new_token("")),
        },
        hash,
    )
}

/// Applies a PATCH to a connector: present keys replace, `null` clears. Switching between
/// HTTPS and SSH credentials clears the other kind unless the patch sets it, and a new URL
/// re-detects the provider unless the patch names one.
fn merge(current: &GitConnector, patch: &ConnectorPatch) -> Result<ConnectorDraft, CoreError> {
    let Ok(Value::Object(mut merged)) = serde_json::to_value(current.to_draft()) else {
        return Err(CoreError::internal(
            "a connector's draft is not a JSON object",
        ));
    };
    let given = |key: &str| patch.contains_key(key);
    let set = |key: &str| patch.get(key).is_some_and(|v| !v.is_null());
    if set("ssh_key_secret") {
        merged.insert("password_secret".into(), Value::Null);
        merged.insert("username".into(), Value::Null);
    }
    if set("password_secret") {
        merged.insert("ssh_key_secret".into(), Value::Null);
    }
    if given("url") && !given("provider") {
        merged.insert("provider".into(), Value::Null);
    }
    // A change of protocol drops the other protocol's trust settings, and a change to account
    // scope drops the branch, unless the patch sets them: otherwise every such switch would be
    // refused for a field the user did not touch.
    if let Some(Value::String(url)) = patch.get("url") {
        let new_protocol = RepoUrl::parse(url).map(|u| u.protocol()).ok();
        if new_protocol != Some(current.url.protocol()) {
            for key in ["known_hosts", "ca_certificate"] {
                if !given(key) {
                    merged.insert(key.into(), Value::Null);
                }
            }
        }
    }
    if patch.get("scope").and_then(Value::as_str) == Some("account") && !given("branch") {
        merged.insert("branch".into(), Value::Null);
    }
    for (key, value) in patch {
        merged.insert(key.clone(), value.clone());
    }
    serde_json::from_value(Value::Object(merged))
        .map_err(|e| CoreError::malformed_data(&e.to_string()))
}
