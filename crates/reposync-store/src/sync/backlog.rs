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
    /// Changesets still to push (those being pushed included).
    pub waiting: i64,
    /// Of those, the ones being pushed now.
    pub pushing: i64,
    /// Changesets held because Git changed the same file.
    pub conflicts: i64,
    pub open_errors: i64,
    /// When the oldest changeset still to push was made.
    pub waiting_since: Option<i64>,
}

impl Store {
    /// Per link, how many changesets are still to push and how many sync errors are open.
    pub async fn link_backlogs(&self) -> Result<HashMap<LinkId, LinkBacklog>, StoreError> {
        let mut backlogs: HashMap<LinkId, LinkBacklog> = HashMap::new();
        let waiting = sqlx::query(
            "SELECT link_id, status, COUNT(*) AS n, MIN(created_at) AS oldest FROM changesets
             WHERE status IN ('waiting', 'pushing', 'conflict') GROUP BY link_id, status",
        )
        .read_all(&self.db)
        .await?;
        for row in waiting {
            let backlog = backlogs.entry(id_column(&row, "link_id")?).or_default();
            let status: String = row.try_get("status")?;
            let n: i64 = row.try_get("n")?;
            let oldest: i64 = row.try_get("oldest")?;
            if status != "conflict" {
                backlog.waiting_since =
                    Some(backlog.waiting_since.map_or(oldest, |o| o.min(oldest)));
            }
            match status.as_str() {
                "conflict" => backlog.conflicts = n,
                "pushing" => {
                    backlog.pushing = n;
                    backlog.waiting += n;
                }
                _ => backlog.waiting += n,
            }
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
