//! Remote delegates: their tokens, their registrations, and what they ran.

use reposync_model::TaskId;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::error::StoreError;
use crate::gate::{Read, Write};
use crate::rows::new_id;
use crate::store::Store;

/// A delegate token, known only by the hash of its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DelegateTokenRecord {
    pub id: String,
    pub name: String,
    /// The selectors its delegates are restricted to (normalised, sorted); `None` for an
    /// unrestricted token, whose delegates may claim any task they have the selectors for.
    pub selectors: Option<Vec<String>>,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

/// A delegate as it registered, with its counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DelegateRecord {
    pub name: String,
    pub token_name: Option<String>,
    pub selectors: Vec<String>,
    pub version: String,
    pub hostname: String,
    pub git_version: String,
    pub ssh_version: String,
    pub registered_at: i64,
    pub last_heartbeat: Option<i64>,
    pub tasks_run: i64,
    pub tasks_succeeded: i64,
    pub tasks_failed: i64,
}

/// What a delegate says of itself when it registers.
#[derive(Debug, Clone)]
pub struct NewDelegate {
    pub name: String,
    pub token_id: Option<String>,
    pub selectors: Vec<String>,
    pub version: String,
    pub hostname: String,
    pub git_version: String,
    pub ssh_version: String,
}

const TOKEN_COLUMNS: &str = "id, name, selectors, created_at, revoked_at";

fn token_from_row(row: &AnyRow) -> Result<DelegateTokenRecord, StoreError> {
    let selectors: Option<String> = row.try_get("selectors")?;
    Ok(DelegateTokenRecord {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        selectors: selectors
            .map(|s| serde_json::from_str(&s))
            .transpose()
            .map_err(|e| StoreError::Corrupt(format!("delegate token selectors: {e}")))?,
        created_at: row.try_get("created_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

impl Store {
    /// Stores a new delegate token under `name`, by its hash, restricted to `selectors` when
    /// they are given (already parsed and normalised by the caller).
    pub async fn create_delegate_token(
        &self,
        name: &str,
        token_hash: &str,
        selectors: Option<Vec<String>>,
    ) -> Result<DelegateTokenRecord, StoreError> {
        let record = DelegateTokenRecord {
            id: new_id(),
            name: name.to_owned(),
            selectors,
            created_at: self.now(),
            revoked_at: None,
        };
        let selectors = record
            .selectors
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        sqlx::query(
            "INSERT INTO delegate_tokens (id, name, token_hash, selectors, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&record.id)
        .bind(&record.name)
        .bind(token_hash)
        .bind(selectors)
        .bind(record.created_at)
        .write(&self.db)
        .await
        .map_err(|e| StoreError::from_unique_violation(e, "delegate token", name))?;
        Ok(record)
    }

    /// Every delegate token, revoked ones too, by name.
    pub async fn list_delegate_tokens(&self) -> Result<Vec<DelegateTokenRecord>, StoreError> {
        sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM delegate_tokens ORDER BY name"
        ))
        .read_all(&self.db)
        .await?
        .iter()
        .map(token_from_row)
        .collect()
    }

    /// Revokes a token: the next request made with it is refused.
    pub async fn revoke_delegate_token(
        &self,
        name: &str,
    ) -> Result<DelegateTokenRecord, StoreError> {
        sqlx::query(
            "UPDATE delegate_tokens SET revoked_at = $1 WHERE name = $2 AND revoked_at IS NULL",
        )
        .bind(self.now())
        .bind(name)
        .write(&self.db)
        .await?;
        let row = sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM delegate_tokens WHERE name = $1"
        ))
        .bind(name)
        .read_optional(&self.db)
        .await?
        .ok_or_else(|| StoreError::NotFound {
            what: "delegate token",
            name: name.to_owned(),
        })?;
        token_from_row(&row)
    }

    /// The live (not revoked) token with this hash.
    pub async fn find_delegate_token(
        &self,
        token_hash: &str,
    ) -> Result<Option<DelegateTokenRecord>, StoreError> {
        sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM delegate_tokens WHERE token_hash = $1 AND revoked_at IS NULL"
        ))
        .bind(token_hash)
        .read_optional(&self.db)
        .await?
        .as_ref()
        .map(token_from_row)
        .transpose()
    }

    /// Records a registration, keeping the counters of a delegate seen before.
    ///
    /// A delegate's name belongs to the token that first registered it, for as long as that
    /// token is not revoked: a registration under a name another live token holds is refused
    /// with [`StoreError::Taken`] and changes nothing, so one token cannot take over (and
    /// knock out) another's delegate. Names are compared without regard to ASCII case,
    /// because the selector a name gives is lower case. The built-in delegate (no token)
    /// holds its own name the same way.
    pub async fn register_delegate(&self, delegate: &NewDelegate) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let holders = sqlx::query(
            "SELECT d.name, d.token_id, t.name AS token_name, t.revoked_at
             FROM delegates d LEFT JOIN delegate_tokens t ON t.id = d.token_id
             WHERE lower(d.name) = lower($1)",
        )
        .bind(&delegate.name)
        .fetch_all(&mut *tx)
        .await?;
        for holder in &holders {
            let token_id: Option<String> = holder.try_get("token_id")?;
            let revoked_at: Option<i64> = holder.try_get("revoked_at")?;
            let released = token_id.is_some() && revoked_at.is_some();
            if token_id != delegate.token_id && !released {
                tx.rollback().await?;
                let token_name: Option<String> = holder.try_get("token_name")?;
                return Err(StoreError::Taken {
                    what: "delegate name",
                    name: holder.try_get("name")?,
                    holder: token_name.map_or_else(
                        || "the server's built-in delegate".to_owned(),
                        |t| format!("delegate token {t:?}"),
                    ),
                });
            }
        }
        let now = self.now();
        let selectors = serde_json::to_string(&delegate.selectors)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        sqlx::query(
            "INSERT INTO delegates (name, token_id, selectors, version, hostname, git_version, ssh_version, registered_at, last_heartbeat)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)
             ON CONFLICT (name) DO UPDATE SET token_id = $2, selectors = $3, version = $4, hostname = $5,
                 git_version = $6, ssh_version = $7, registered_at = $8, last_heartbeat = $8",
        )
        .bind(&delegate.name)
        .bind(delegate.token_id.clone())
        .bind(selectors)
        .bind(&delegate.version)
        .bind(&delegate.hostname)
        .bind(&delegate.git_version)
        .bind(&delegate.ssh_version)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// A delegate was heard from.
    pub async fn delegate_heard(&self, name: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE delegates SET last_heartbeat = $1 WHERE name = $2")
            .bind(self.now())
            .bind(name)
            .write(&self.db)
            .await?;
        Ok(())
    }

    /// Every delegate that ever registered, by name.
    pub async fn list_delegates(&self) -> Result<Vec<DelegateRecord>, StoreError> {
        sqlx::query(
            "SELECT d.name, t.name AS token_name, d.selectors, d.version, d.hostname, d.git_version, d.ssh_version,
                    d.registered_at, d.last_heartbeat, d.tasks_run, d.tasks_succeeded, d.tasks_failed
             FROM delegates d LEFT JOIN delegate_tokens t ON t.id = d.token_id ORDER BY d.name",
        )
        .read_all(&self.db)
        .await?
        .iter()
        .map(|r| {
            let selectors: String = r.try_get("selectors")?;
            Ok(DelegateRecord {
                name: r.try_get("name")?,
                token_name: r.try_get("token_name")?,
                selectors: serde_json::from_str(&selectors)
                    .map_err(|e| StoreError::Corrupt(format!("delegate selectors: {e}")))?,
                version: r.try_get("version")?,
                hostname: r.try_get("hostname")?,
                git_version: r.try_get("git_version")?,
                ssh_version: r.try_get("ssh_version")?,
                registered_at: r.try_get("registered_at")?,
                last_heartbeat: r.try_get("last_heartbeat")?,
                tasks_run: r.try_get("tasks_run")?,
                tasks_succeeded: r.try_get("tasks_succeeded")?,
                tasks_failed: r.try_get("tasks_failed")?,
            })
        })
        .collect()
    }

    /// Extends the leases of the tasks a delegate says it is running; returns those it no
    /// longer holds (another delegate took them, or they ended), which it should stop.
    pub async fn extend_leases(
        &self,
        delegate: &str,
        running: &[TaskId],
        lease_ms: i64,
    ) -> Result<Vec<TaskId>, StoreError> {
        let until = self.lease_now().await?.saturating_add(lease_ms);
        let mut lost = Vec::new();
        for id in running {
            let extended = sqlx::query(
                "UPDATE tasks SET lease_expires_at = $1 WHERE id = $2 AND delegate = $3 AND status = 'running'",
            )
            .bind(until)
            .bind(id.as_str())
            .bind(delegate)
            .write(&self.db)
            .await?;
            if extended.rows_affected() == 0 {
                lost.push(id.clone());
            }
        }
        Ok(lost)
    }
}
