//! The tree's records: a file (an entity) and a connector as stored, and the changes a batch
//! applies to them. They sit below the modules that read and write them, which would use each
//! other if either held them: a batch of entity changes carries connector writes, and a
//! connector is created, changed or deleted as a batch of entity changes. The outbox reads
//! what a batch did ([`ChangeOutcome`]) from here too.

use reposync_model::connector_yaml;
use reposync_model::yaml::{Limits, parse};
use reposync_model::{ConnectorId, EntityName, GitConnector};
use zeroize::Zeroizing;

/// One file of the tree as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityRecord {
    pub path: String,
    pub kind: String,
    pub app: Option<String>,
    pub content: Vec<u8>,
    pub revision: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A file to create or replace, already parsed and checked by the caller.
#[derive(Debug, Clone)]
pub struct EntityWrite {
    pub path: String,
    pub kind: String,
    pub app: Option<String>,
    pub content: Vec<u8>,
    /// `(field, target path)` for every reference the file holds.
    pub references: Vec<(String, String)>,
}

/// A change in a batch.
#[derive(Debug)]
pub enum EntityChange {
    Put(EntityWrite),
    Delete {
        path: String,
    },
    /// A Source Repo Provider file: the connector itself, created, changed or renamed.
    PutConnector(Box<ConnectorWrite>),
    DeleteConnector {
        name: EntityName,
    },
}

/// What a batch did to one path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeOutcome {
    Created,
    Changed,
    Unchanged,
    Deleted,
}

/// A connector as stored: its validated spec plus server-side state.
#[derive(Debug, Clone)]
pub struct ConnectorRecord {
    pub id: ConnectorId,
    pub spec: GitConnector,
    /// Whether a webhook URL token and HMAC secret exist.
    pub has_webhook: bool,
    /// The last Test result, as the JSON the API defines.
    pub last_test: Option<String>,
    /// Bumped by every update; an update names the revision it was based on.
    pub revision: i64,
    /// The connector as its Source Repo Provider file.
    pub file: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A connector to create (`current` is `None`) or update, in a batch of tree changes.
#[derive(Debug)]
pub struct ConnectorWrite {
    /// The record this change was computed from; the write is refused if it changed since.
    pub current: Option<ConnectorRecord>,
    pub spec: GitConnector,
    /// The Source Repo Provider file as it will be.
    pub file: String,
    pub webhook: WebhookChange,
}

impl ConnectorWrite {
    /// An update of `current` to `spec`, its file re-rendered over the one it has.
    pub fn update(current: &ConnectorRecord, spec: GitConnector, webhook: WebhookChange) -> Self {
        let source = parse(current.file.as_bytes(), &Limits::default()).ok();
        ConnectorWrite {
            current: Some(current.clone()),
            file: connector_yaml::render(&spec, source.as_ref()),
            spec,
            webhook,
        }
    }

    /// The path of the file after the write.
    pub fn path(&self) -> String {
        connector_yaml::path(&self.spec.name)
    }

    /// True when the write would store exactly what is there.
    pub(crate) fn is_noop(&self) -> bool {
        matches!(self.webhook, WebhookChange::Keep)
            && self
                .current
                .as_ref()
                .is_some_and(|c| c.spec == self.spec && c.file == self.file)
    }
}

/// A webhook URL token and its HMAC secret, in clear, on their way in or out. A copy zeroes
/// its memory on drop too.
#[derive(Clone)]
pub struct WebhookCredentials {
    pub token: Zeroizing<String>,
    pub secret: Zeroizing<String>,
}

impl std::fmt::Debug for WebhookCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookCredentials(<redacted>)")
    }
}

/// What an update does to the webhook credentials.
#[derive(Debug)]
pub enum WebhookChange {
    Keep,
    Set {
        credentials: WebhookCredentials,
        token_hash: String,
    },
    Remove,
}
