use reposync_model::connector_yaml;
use reposync_model::{ConnectorId, Credentials, EntityName, GitConnector, Person, SecretName};
use reposync_secrets::{SealedValue, open, seal};
use sqlx::Row;
use sqlx::any::AnyRow;
use zeroize::Zeroizing;

use crate::error::StoreError;
use crate::gate::{Read, Write, WriteTx};
use crate::records::{
    ConnectorRecord, ConnectorWrite, EntityChange, WebhookChange, WebhookCredentials,
};
use crate::rows::{id_column, new_id};
use crate::secrets::SecretKind;
use crate::store::Store;

fn webhook_binding(connector_id: &ConnectorId, part: &str) -> Vec<u8> {
    format!("reposync:connector:{connector_id}:{part}").into_bytes()
}

const CONNECTOR_COLUMNS: &str =
    "id, spec, file, webhook_token_hash, last_test, revision, created_at, updated_at";

impl Store {
    /// Stores a new connector, checking that the secrets it names exist and are of the right
    /// kind. Its file is rendered from the spec alone. `by` is the person who made it.
    pub async fn create_connector(
        &self,
        spec: &GitConnector,
        webhook: WebhookChange,
        by: Option<&Person>,
    ) -> Result<ConnectorRecord, StoreError> {
        let write = ConnectorWrite {
            current: None,
            file: connector_yaml::render(spec, None),
            spec: spec.clone(),
            webhook,
        };
        self.apply_entities(&[EntityChange::PutConnector(Box::new(write))], false, by)
            .await?;
        self.get_connector(&spec.name).await
    }

    /// Replaces a connector's spec (possibly renaming it) and changes its webhook credentials.
    /// `current` is the record the change was computed from: if the connector changed since,
    /// nothing is written and [`StoreError::Conflict`] says so, so no update is lost. A rename
    /// is refused while files refer to the old name; the server rewrites them in the same
    /// batch with [`Store::apply_entities`]. `by` is the person who changed it.
    pub async fn update_connector(
        &self,
        current: &ConnectorRecord,
        spec: &GitConnector,
        webhook: WebhookChange,
        by: Option<&Person>,
    ) -> Result<ConnectorRecord, StoreError> {
        let write = ConnectorWrite::update(current, spec.clone(), webhook);
        self.apply_entities(&[EntityChange::PutConnector(Box::new(write))], false, by)
            .await?;
        self.get_connector(&spec.name).await
    }

    /// One connector by name.
    pub async fn get_connector(&self, name: &EntityName) -> Result<ConnectorRecord, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {CONNECTOR_COLUMNS} FROM connectors WHERE name = $1"
        ))
        .bind(name.as_str())
        .read_optional(&self.db)
        .await?
        .ok_or_else(|| StoreError::NotFound {
            what: "connector",
            name: name.to_string(),
        })?;
        connector_from_row(&row)
    }

    /// One connector by id.
    pub async fn get_connector_by_id(
        &self,
        id: &ConnectorId,
    ) -> Result<ConnectorRecord, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {CONNECTOR_COLUMNS} FROM connectors WHERE id = $1"
        ))
        .bind(id.as_str())
        .read_optional(&self.db)
        .await?
        .ok_or_else(|| StoreError::NotFound {
            what: "connector",
            name: id.to_string(),
        })?;
        connector_from_row(&row)
    }

    /// Every connector, by name.
    pub async fn list_connectors(&self) -> Result<Vec<ConnectorRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {CONNECTOR_COLUMNS} FROM connectors ORDER BY name"
        ))
        .read_all(&self.db)
        .await?;
        rows.iter().map(connector_from_row).collect()
    }

    /// Deletes a connector, unless files still refer to it. `by` is the person who deleted it.
    pub async fn delete_connector(
        &self,
        name: &EntityName,
        by: Option<&Person>,
    ) -> Result<(), StoreError> {
        self.apply_entities(
            &[EntityChange::DeleteConnector { name: name.clone() }],
            false,
            by,
        )
        .await?;
        Ok(())
    }

    /// Opens a connector's webhook token and HMAC secret.
    pub async fn webhook_credentials(
        &self,
        name: &EntityName,
    ) -> Result<Option<WebhookCredentials>, StoreError> {
        let row =
            sqlx::query("SELECT id, webhook_token, webhook_secret FROM connectors WHERE name = $1")
                .bind(name.as_str())
                .read_optional(&self.db)
                .await?
                .ok_or_else(|| StoreError::NotFound {
                    what: "connector",
                    name: name.to_string(),
                })?;
        let id: ConnectorId = id_column(&row, "id")?;
        let token: Option<Vec<u8>> = row.try_get("webhook_token")?;
        let secret: Option<Vec<u8>> = row.try_get("webhook_secret")?;
        let (Some(token), Some(secret)) = (token, secret) else {
            return Ok(None);
        };
        Ok(Some(WebhookCredentials {
            token: self.open_text(&id, "webhook_token", token)?,
            secret: self.open_text(&id, "webhook_secret", secret)?,
        }))
    }

    /// The connector whose webhook URL token has this SHA-256 hash (hex), with its opened
    /// token and HMAC secret. Looking up by hash means the token itself is never compared
    /// byte by byte against stored values.
    pub async fn connector_by_webhook_hash(
        &self,
        token_hash: &str,
    ) -> Result<Option<(ConnectorRecord, WebhookCredentials)>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {CONNECTOR_COLUMNS}, webhook_token, webhook_secret FROM connectors WHERE webhook_token_hash = $1"
        ))
        .bind(token_hash)
        .read_optional(&self.db)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let record = connector_from_row(&row)?;
        let token: Option<Vec<u8>> = row.try_get("webhook_token")?;
        let secret: Option<Vec<u8>> = row.try_get("webhook_secret")?;
        let (Some(token), Some(secret)) = (token, secret) else {
            return Ok(None);
        };
        let credentials = WebhookCredentials {
            token: self.open_text(&record.id, "webhook_token", token)?,
            secret: self.open_text(&record.id, "webhook_secret", secret)?,
        };
        Ok(Some((record, credentials)))
    }

    /// Records the outcome of a connector's latest Test.
    pub async fn set_connector_last_test(
        &self,
        connector_id: &ConnectorId,
        result_json: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE connectors SET last_test = $1 WHERE id = $2")
            .bind(result_json)
            .bind(connector_id.as_str())
            .write(&self.db)
            .await?;
        Ok(())
    }

    fn seal_webhook(
        &self,
        id: &ConnectorId,
        credentials: &WebhookCredentials,
    ) -> Result<(Vec<u8>, Vec<u8>), StoreError> {
        let seal_part = |part: &str, value: &str| {
            seal(&self.master, &webhook_binding(id, part), value.as_bytes())
                .map(|s| s.as_bytes().to_vec())
                .map_err(|e| StoreError::Crypto(e.to_string()))
        };
        Ok((
            seal_part("webhook_token", &credentials.token)?,
            seal_part("webhook_secret", &credentials.secret)?,
        ))
    }

    fn open_text(
        &self,
        id: &ConnectorId,
        part: &str,
        bytes: Vec<u8>,
    ) -> Result<Zeroizing<String>, StoreError> {
        let sealed =
            SealedValue::from_bytes(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let plain = open(&self.master, &webhook_binding(id, part), &sealed)
            .map_err(|e| StoreError::Crypto(e.to_string()))?;
        String::from_utf8(plain.to_vec())
            .map(Zeroizing::new)
            .map_err(|_| StoreError::Corrupt(format!("connector {id}: {part} is not UTF-8")))
    }
}

impl Store {
    /// Inserts or updates one connector inside a batch's transaction.
    pub(crate) async fn write_connector(
        &self,
        tx: &mut WriteTx,
        write: &ConnectorWrite,
        now: i64,
    ) -> Result<(), StoreError> {
        let spec = &write.spec;
        let secret_ids = resolve_secrets(tx, spec).await?;
        let id = match &write.current {
            None => {
                let id: ConnectorId = new_id();
                sqlx::query(
                    "INSERT INTO connectors (id, name, spec, file, created_at, updated_at, poll_interval_s)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(id.as_str())
                .bind(spec.name.as_str())
                .bind(spec_json(spec)?)
                .bind(&write.file)
                .bind(now)
                .bind(now)
                .bind(spec.poll_interval_seconds.map(i64::from))
                .execute(&mut **tx)
                .await
                .map_err(|e| {
                    StoreError::from_unique_violation(e, "connector", spec.name.as_str())
                })?;
                id
            }
            Some(current) => {
                let updated = sqlx::query(
                    // The last Test describes the connector as it was; a changed one is untested.
                    "UPDATE connectors SET name = $1, spec = $2, file = $3, updated_at = $4, revision = revision + 1,
                         last_test = CASE WHEN spec = $2 THEN last_test ELSE NULL END,
                         poll_interval_s = $7
                     WHERE id = $5 AND revision = $6",
                )
                .bind(spec.name.as_str())
                .bind(spec_json(spec)?)
                .bind(&write.file)
                .bind(now)
                .bind(current.id.as_str())
                .bind(current.revision)
                .bind(spec.poll_interval_seconds.map(i64::from))
                .execute(&mut **tx)
                .await
                .map_err(|e| {
                    StoreError::from_unique_violation(e, "connector", spec.name.as_str())
                })?;
                if updated.rows_affected() == 0 {
                    return Err(StoreError::Conflict {
                        what: "connector",
                        name: current.spec.name.to_string(),
                    });
                }
                sqlx::query("DELETE FROM connector_secrets WHERE connector_id = $1")
                    .bind(current.id.as_str())
                    .execute(&mut **tx)
                    .await?;
                current.id.clone()
            }
        };
        match &write.webhook {
            WebhookChange::Keep => {}
            WebhookChange::Set {
                credentials,
                token_hash,
            } => {
                let (token, secret) = self.seal_webhook(&id, credentials)?;
                sqlx::query(
                    "UPDATE connectors SET webhook_token = $1, webhook_token_hash = $2, webhook_secret = $3 WHERE id = $4",
                )
                .bind(token)
                .bind(token_hash)
                .bind(secret)
                .bind(id.as_str())
                .execute(&mut **tx)
                .await?;
            }
            WebhookChange::Remove => {
                sqlx::query(
                    "UPDATE connectors SET webhook_token = NULL, webhook_token_hash = NULL, webhook_secret = NULL WHERE id = $1",
                )
                .bind(id.as_str())
                .execute(&mut **tx)
                .await?;
            }
        }
        link_secrets(tx, &id, &secret_ids).await
    }
}

fn spec_json(spec: &GitConnector) -> Result<String, StoreError> {
    serde_json::to_string(spec).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn connector_from_row(row: &AnyRow) -> Result<ConnectorRecord, StoreError> {
    let spec: String = row.try_get("spec")?;
    let spec: GitConnector = serde_json::from_str(&spec)
        .map_err(|e| StoreError::Corrupt(format!("connector spec: {e}")))?;
    // Decoding goes through the same parser as input, so the cross-field rules hold for rows
    // written by any version.
    let spec = GitConnector::parse(&spec.to_draft())
        .map_err(|e| StoreError::Corrupt(format!("connector {:?}: {e}", spec.name.as_str())))?;
    let file = match row.try_get::<Option<String>, _>("file")? {
        Some(file) => file,
        None => connector_yaml::render(&spec, None),
    };
    Ok(ConnectorRecord {
        id: id_column(row, "id")?,
        file,
        spec,
        has_webhook: row
            .try_get::<Option<String>, _>("webhook_token_hash")?
            .is_some(),
        last_test: row.try_get("last_test")?,
        revision: row.try_get("revision")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// The secrets a connector names: the API field that names each, its name, and the kind it
/// must be.
fn named_secrets(spec: &GitConnector) -> Vec<(&'static str, &SecretName, SecretKind)> {
    let mut named = vec![match &spec.credentials {
        Credentials::Https {
            password_secret, ..
        } => ("password_secret", password_secret, SecretKind::Text),
        Credentials::Ssh { ssh_key_secret } => {
            ("ssh_key_secret", ssh_key_secret, SecretKind::SshKey)
        }
    }];
    if let Some(token) = &spec.api_token_secret {
        named.push(("api_token_secret", token, SecretKind::Text));
    }
    named
}

/// Looks up the secrets a connector names, in the same transaction that saves it, so that a
/// concurrent delete cannot slip between the check and the link.
async fn resolve_secrets(tx: &mut WriteTx, spec: &GitConnector) -> Result<Vec<String>, StoreError> {
    let mut ids = Vec::new();
    for (field, name, kind) in named_secrets(spec) {
        let row = sqlx::query("SELECT id, kind FROM secrets WHERE name = $1")
            .bind(name.as_str())
            .fetch_optional(&mut **tx)
            .await?;
        let id = check_secret(row, field, name, kind)?;
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    Ok(ids)
}

impl Store {
    /// Checks, writing nothing, that the secret a connector names exists and is of the right
    /// kind: a Test of a connector not saved refuses what saving it would refuse, before any
    /// delegate is asked.
    pub async fn check_connector_secrets(&self, spec: &GitConnector) -> Result<(), StoreError> {
        for (field, name, kind) in named_secrets(spec) {
            let row = sqlx::query("SELECT id, kind FROM secrets WHERE name = $1")
                .bind(name.as_str())
                .read_optional(&self.db)
                .await?;
            check_secret(row, field, name, kind)?;
        }
        Ok(())
    }
}

/// The id of the secret `row` holds, or why it cannot serve as `field`: missing (with the
/// command that makes one), or of the other kind.
fn check_secret(
    row: Option<AnyRow>,
    field: &str,
    name: &SecretName,
    expected: SecretKind,
) -> Result<String, StoreError> {
    let row = row.ok_or_else(|| StoreError::Invalid {
            field: field.to_owned(),
            message: match expected {
                SecretKind::Text => format!(
                    "secret {name:?} does not exist; create it first with `reposync secret create {name} --value-stdin`",
                    name = name.as_str()
                ),
                SecretKind::SshKey => format!(
                    "secret {name:?} does not exist; add the key with `reposync secret create-ssh {name} --key-file FILE`, or make one with `reposync secret generate-ssh-key {name}`",
                    name = name.as_str()
                ),
            },
        })?;
    let kind: String = row.try_get("kind")?;
    if kind != expected.as_str() {
        let wanted = match expected {
            SecretKind::Text => "an Encrypted Text secret (a token or password)",
            SecretKind::SshKey => "an SSH Key Credential",
        };
        return Err(StoreError::Invalid {
            field: field.to_owned(),
            message: format!("secret {:?} is not {wanted}", name.as_str()),
        });
    }
    Ok(row.try_get("id")?)
}

async fn link_secrets(
    tx: &mut WriteTx,
    connector_id: &ConnectorId,
    secret_ids: &[String],
) -> Result<(), StoreError> {
    for secret_id in secret_ids {
        sqlx::query("INSERT INTO connector_secrets (connector_id, secret_id) VALUES ($1, $2)")
            .bind(connector_id.as_str())
            .bind(secret_id)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}
