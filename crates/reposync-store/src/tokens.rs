use sqlx::Row;

use crate::error::StoreError;
use crate::gate::{Read, Write};
use crate::rows::new_id;
use crate::store::Store;

/// An API token, known only by the hash of its value.
#[derive(Debug, Clone)]
pub struct ApiTokenRecord {
    pub id: String,
    pub name: String,
    pub created_at: i64,
}

impl Store {
    /// Stores a token under `name` by its hash.
    pub async fn create_api_token(
        &self,
        name: &str,
        token_hash: &str,
    ) -> Result<ApiTokenRecord, StoreError> {
        let record = ApiTokenRecord {
            id: new_id(),
            name: name.to_owned(),
            created_at: self.now(),
        };
        sqlx::query(
            "INSERT INTO api_tokens (id, name, token_hash, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&record.id)
        .bind(&record.name)
        .bind(token_hash)
        .bind(record.created_at)
        .write(&self.db)
        .await
        .map_err(|e| StoreError::from_unique_violation(e, "API token", name))?;
        Ok(record)
    }

    /// The token with this hash, if any.
    pub async fn find_api_token(
        &self,
        token_hash: &str,
    ) -> Result<Option<ApiTokenRecord>, StoreError> {
        let row = sqlx::query("SELECT id, name, created_at FROM api_tokens WHERE token_hash = $1")
            .bind(token_hash)
            .read_optional(&self.db)
            .await?;
        row.map(|r| {
            Ok(ApiTokenRecord {
                id: r.try_get("id")?,
                name: r.try_get("name")?,
                created_at: r.try_get("created_at")?,
            })
        })
        .transpose()
    }

    /// How many API tokens exist; zero means this is a first start.
    pub async fn count_api_tokens(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query("SELECT COUNT(*) AS n FROM api_tokens")
            .read_one(&self.db)
            .await?
            .try_get("n")?)
    }
}
