use reposync_model::SecretName;
use reposync_secrets::{SealedValue, open, seal};
use sqlx::Row;
use sqlx::any::AnyRow;
use zeroize::Zeroizing;

use crate::error::StoreError;
use crate::gate::{Read, Write};
use crate::rows::new_id;
use crate::store::Store;

/// The two kinds of secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretKind {
    /// A password or token.
    Text,
    /// An SSH private key, stored normalised as an unencrypted OpenSSH key inside the envelope.
    SshKey,
}

impl SecretKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SecretKind::Text => "text",
            SecretKind::SshKey => "ssh_key",
        }
    }

    fn parse(text: &str) -> Result<SecretKind, StoreError> {
        match text {
            "text" => Ok(SecretKind::Text),
            "ssh_key" => Ok(SecretKind::SshKey),
            other => Err(StoreError::Corrupt(format!(
                "unknown secret kind {other:?}"
            ))),
        }
    }
}

/// What may be shown of an SSH key secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshKeyInfo {
    pub algorithm: String,
    pub fingerprint: String,
    pub public_key: String,
}

/// A secret's metadata. The value is never part of it.
#[derive(Debug, Clone)]
pub struct SecretRecord {
    pub id: String,
    pub name: SecretName,
    pub kind: SecretKind,
    pub ssh: Option<SshKeyInfo>,
    /// Names of the connectors that use this secret.
    pub used_by: Vec<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// The associated data that binds a sealed value to its row: moving the ciphertext to another
/// row, or relabelling its kind, makes it fail to open.
fn binding(id: &str, kind: SecretKind) -> Vec<u8> {
    format!("reposync:secret:{id}:{}", kind.as_str()).into_bytes()
}

const SECRET_COLUMNS: &str =
    "id, name, kind, ssh_algorithm, ssh_fingerprint, ssh_public_key, created_at, updated_at";

impl Store {
    /// Seals and stores a new secret.
    pub async fn create_secret(
        &self,
        name: &SecretName,
        kind: SecretKind,
        value: &[u8],
        ssh: Option<&SshKeyInfo>,
    ) -> Result<SecretRecord, StoreError> {
        let id: String = new_id();
        let sealed = seal(&self.master, &binding(&id, kind), value)
            .map_err(|e| StoreError::Crypto(e.to_string()))?;
        let now = self.now();
        sqlx::query(
            "INSERT INTO secrets (id, name, kind, sealed_value, ssh_algorithm, ssh_fingerprint, ssh_public_key, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&id)
        .bind(name.as_str())
        .bind(kind.as_str())
        .bind(sealed.as_bytes().to_vec())
        .bind(ssh.map(|s| s.algorithm.clone()))
        .bind(ssh.map(|s| s.fingerprint.clone()))
        .bind(ssh.map(|s| s.public_key.clone()))
        .bind(now)
        .bind(now)
        .write(&self.db)
        .await
        .map_err(|e| StoreError::from_unique_violation(e, "secret", name.as_str()))?;
        self.get_secret(name).await
    }

    /// Replaces a secret's value; its kind cannot change.
    pub async fn update_secret(
        &self,
        name: &SecretName,
        kind: SecretKind,
        value: &[u8],
        ssh: Option<&SshKeyInfo>,
    ) -> Result<SecretRecord, StoreError> {
        let existing = self.get_secret(name).await?;
        if existing.kind != kind {
            return Err(StoreError::Invalid {
                field: "kind".into(),
                message: format!(
                    "secret {name:?} is of kind {}; delete it and create a new one to change its kind",
                    existing.kind.as_str()
                ),
            });
        }
        let sealed = seal(&self.master, &binding(&existing.id, kind), value)
            .map_err(|e| StoreError::Crypto(e.to_string()))?;
        sqlx::query(
            "UPDATE secrets SET sealed_value = $1, ssh_algorithm = $2, ssh_fingerprint = $3, ssh_public_key = $4, updated_at = $5
             WHERE id = $6",
        )
        .bind(sealed.as_bytes().to_vec())
        .bind(ssh.map(|s| s.algorithm.clone()))
        .bind(ssh.map(|s| s.fingerprint.clone()))
        .bind(ssh.map(|s| s.public_key.clone()))
        .bind(self.now())
        .bind(&existing.id)
        .write(&self.db)
        .await?;
        self.get_secret(name).await
    }

    /// A secret's metadata.
    pub async fn get_secret(&self, name: &SecretName) -> Result<SecretRecord, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {SECRET_COLUMNS} FROM secrets WHERE name = $1"
        ))
        .bind(name.as_str())
        .read_optional(&self.db)
        .await?
        .ok_or_else(|| StoreError::NotFound {
            what: "secret",
            name: name.to_string(),
        })?;
        let mut record = secret_from_row(&row)?;
        let mut conn = self.db.read_connection().await?;
        record.used_by = connectors_using_secret(&mut *conn, &record.id).await?;
        Ok(record)
    }

    /// Every secret's metadata, by name.
    pub async fn list_secrets(&self) -> Result<Vec<SecretRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {SECRET_COLUMNS} FROM secrets ORDER BY name"
        ))
        .read_all(&self.db)
        .await?;
        let mut records = Vec::with_capacity(rows.len());
        let mut conn = self.db.read_connection().await?;
        for row in &rows {
            let mut record = secret_from_row(row)?;
            record.used_by = connectors_using_secret(&mut *conn, &record.id).await?;
            records.push(record);
        }
        Ok(records)
    }

    /// Opens a secret's value. Only the task path calls this, to hand credentials to a delegate.
    pub async fn reveal_secret(
        &self,
        name: &SecretName,
    ) -> Result<(SecretRecord, Zeroizing<Vec<u8>>), StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {SECRET_COLUMNS}, sealed_value FROM secrets WHERE name = $1"
        ))
        .bind(name.as_str())
        .read_optional(&self.db)
        .await?
        .ok_or_else(|| StoreError::NotFound {
            what: "secret",
            name: name.to_string(),
        })?;
        let record = secret_from_row(&row)?;
        let sealed = SealedValue::from_bytes(row.try_get("sealed_value")?)
            .map_err(|e| StoreError::Corrupt(format!("secret {name:?}: {e}")))?;
        let value = open(&self.master, &binding(&record.id, record.kind), &sealed)
            .map_err(|e| StoreError::Crypto(format!("secret {name:?}: {e}")))?;
        Ok((record, value))
    }

    /// Deletes a secret, unless a connector uses it.
    pub async fn delete_secret(&self, name: &SecretName) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let id: Option<String> = sqlx::query("SELECT id FROM secrets WHERE name = $1")
            .bind(name.as_str())
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| r.try_get("id"))
            .transpose()?;
        let id = id.ok_or_else(|| StoreError::NotFound {
            what: "secret",
            name: name.to_string(),
        })?;
        let users = connectors_using_secret(&mut *tx, &id).await?;
        if !users.is_empty() {
            return Err(StoreError::InUse {
                what: "secret",
                name: name.to_string(),
                user_kind: "connector",
                used_by: users,
            });
        }
        sqlx::query("DELETE FROM secrets WHERE id = $1")
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}

/// Names of the connectors that use a secret, by name.
async fn connectors_using_secret<'c>(
    executor: impl sqlx::Executor<'c, Database = sqlx::Any>,
    secret_id: &str,
) -> Result<Vec<String>, StoreError> {
    let rows = sqlx::query(
        "SELECT c.name AS name FROM connector_secrets cs JOIN connectors c ON c.id = cs.connector_id
         WHERE cs.secret_id = $1 ORDER BY c.name",
    )
    .bind(secret_id)
    .fetch_all(executor)
    .await?;
    rows.iter()
        .map(|r| r.try_get("name").map_err(StoreError::from))
        .collect()
}

fn secret_from_row(row: &AnyRow) -> Result<SecretRecord, StoreError> {
    let name: String = row.try_get("name")?;
    let name = SecretName::parse(&name).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let kind = SecretKind::parse(&row.try_get::<String, _>("kind")?)?;
    let algorithm: Option<String> = row.try_get("ssh_algorithm")?;
    let ssh = match algorithm {
        Some(algorithm) => Some(SshKeyInfo {
            algorithm,
            fingerprint: row
                .try_get::<Option<String>, _>("ssh_fingerprint")?
                .unwrap_or_default(),
            public_key: row
                .try_get::<Option<String>, _>("ssh_public_key")?
                .unwrap_or_default(),
        }),
        None => None,
    };
    Ok(SecretRecord {
        id: row.try_get("id")?,
        name,
        kind,
        ssh,
        used_by: Vec::new(),
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}
