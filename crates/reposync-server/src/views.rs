//! Records as the API shows them.

use reposync_api::{
    ConnectorView, SecretKindView, SecretView, SshKeyView, TaskView, TestResult,
    UnauthenticatedView,
};
use reposync_model::SSH_USER;
use reposync_store::{
    ConnectorRecord, SecretKind, SecretRecord, TaskRecord, UnauthenticatedDeliveries,
};

pub use reposync_api::timestamp;

pub fn secret(record: &SecretRecord) -> SecretView {
    SecretView {
        name: record.name.to_string(),
        kind: match record.kind {
            SecretKind::Text => SecretKindView::Text,
            SecretKind::SshKey => SecretKindView::SshKey,
        },
        ssh: record.ssh.as_ref().map(|ssh| SshKeyView {
            username: SSH_USER.into(),
            algorithm: ssh.algorithm.clone(),
            fingerprint: ssh.fingerprint.clone(),
            public_key: ssh.public_key.clone(),
        }),
        used_by: record.used_by.clone(),
        created_at: timestamp(record.created_at),
        updated_at: timestamp(record.updated_at),
        warnings: Vec::new(),
    }
}

/// A secret just created, with the warnings its name raises.
pub fn created_secret(record: &SecretRecord) -> SecretView {
    SecretView {
        warnings: reposync_model::mixed_script_warning(record.name.as_str())
            .into_iter()
            .collect(),
        ..secret(record)
    }
}

pub fn connector(record: &ConnectorRecord, webhook_url: Option<String>) -> ConnectorView {
    let spec = &record.spec;
    let (username, password_secret, ssh_key_secret) = spec.credential_fields();
    let last_test = record
        .last_test
        .as_deref()
        .and_then(|json| serde_json::from_str::<TestResult>(json).ok());
    ConnectorView {
        name: spec.name.to_string(),
        provider: spec.provider.to_string(),
        scope: spec.scope.to_string(),
        protocol: spec.url.protocol().to_string(),
        url: spec.url.to_string(),
        username,
        password_secret,
        ssh_key_secret,
        branch: spec.branch.as_ref().map(ToString::to_string),
        selectors: spec.selectors.iter().map(ToString::to_string).collect(),
        generate_webhook_url: spec.generate_webhook_url,
        webhook_url,
        author_name: spec.author_name.clone(),
        author_email: spec.author_email.to_string(),
        commit_message: spec.commit_message.clone(),
        known_hosts: spec.known_hosts.clone(),
        ca_certificate: spec.ca_certificate.clone(),
        poll_interval_seconds: spec.poll_interval_seconds,
        author_from_user: spec.author_from_user,
        api_url: spec.api_url.as_ref().map(ToString::to_string),
        api_username: spec.api_username.clone(),
        api_token_secret: spec.api_token_secret.as_ref().map(ToString::to_string),
        fetch: spec.fetch.to_string(),
        capabilities: last_test
            .as_ref()
            .and_then(|test| test.capabilities.clone()),
        last_test,
        created_at: timestamp(record.created_at),
        updated_at: timestamp(record.updated_at),
    }
}

pub fn task(record: &TaskRecord) -> TaskView {
    TaskView {
        id: record.id.clone(),
        kind: record.kind.clone(),
        status: record.status.as_str().to_owned(),
        delegate: record.delegate.clone(),
        attempts: record.attempts,
        created_at: timestamp(record.created_at),
        queued_ms: record
            .started_at
            .and_then(|started| u64::try_from(started - record.created_at).ok()),
        finished_at: record.finished_at.map(timestamp),
        result: record
            .result
            .as_deref()
            .and_then(|json| serde_json::from_str(json).ok()),
    }
}

/// The count of a connector's deliveries that failed authentication; none counted is zero.
pub fn unauthenticated(
    connector: &str,
    counted: Option<&UnauthenticatedDeliveries>,
) -> UnauthenticatedView {
    UnauthenticatedView {
        connector: connector.to_owned(),
        count: counted.map_or(0, |c| u64::try_from(c.count).unwrap_or(0)),
        last_at: counted.map(|c| timestamp(c.last_at)),
        last_reason: counted.map(|c| c.last_reason.clone()),
    }
}
