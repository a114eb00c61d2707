//! Link backlogs, counted for `sync status`: per link, the changesets still to push and the
//! sync errors still open.

use std::collections::HashMap;

use reposync_model::LinkId;
use sqlx::Row;

use crate::error::StoreError;
use crate::gate::Read;
use crate::rows::id_column;
use crate::store::Store;

/// What a link still owes: changesets not yet pushed and sync errors not yet resolved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkBacklog {
    pub waiting: i64,
    pub open_errors: i64,
}

impl Store {
    /// Per link, how many changesets are still to push and how many sync errors are open.
    pub async fn link_backlogs(&self) -> Result<HashMap<LinkId, LinkBacklog>, StoreError> {
        let mut backlogs: HashMap<LinkId, LinkBacklog> = HashMap::new();
        let waiting = sqlx::query(
            "SELECT link_id, COUNT(*) AS n FROM changesets WHERE status IN ('waiting', 'pushing') GROUP BY link_id",
        )
        .read_all(&self.db)
        .await?;
        for row in waiting {
            backlogs
                .entry(id_column(&row, "link_id")?)
                .or_default()
                .waiting = row.try_get("n")?;
        }
        // An error of a scope that has no link yet (an application folder from Git whose
        // Index.yaml failed) belongs to no link's backlog; `sync errors` lists it.
        let errors = sqlx::query(
            "SELECT link_id, COUNT(*) AS n FROM sync_errors WHERE resolved_at IS NULL AND link_id IS NOT NULL GROUP BY link_id",
        )
        .read_all(&self.db)
        .await?;
        for row in errors {
            backlogs
                .entry(id_column(&row, "link_id")?)
                .or_default()
                .open_errors = row.try_get("n")?;
        }
        Ok(backlogs)
    }
}
