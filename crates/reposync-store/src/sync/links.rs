//! Sync links: a scope of the tree (an application, or the account's own files) linked to a
//! branch. A scope has one live link at most; disabled ones stay as history.

use reposync_model::scope::app_of_path;
use reposync_model::{ConnectorId, LinkId, ObjectId, Person};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::error::StoreError;
use crate::gate::{Read, WriteTx};
use crate::rows::{id_column, new_id, optional_object_id_column};
use crate::store::Store;
use crate::sync::branches::{BRANCH_COLUMNS, SyncBranch, branch_from_row, ensure_branch};
use crate::sync::changesets::{FileChangeRecord, insert_changeset};

/// A scope linked to a branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncLink {
    pub id: LinkId,
    /// `None` for the account's own files.
    pub app: Option<String>,
    pub connector_id: ConnectorId,
    pub repo: Option<String>,
    pub branch: String,
    pub base_commit: Option<ObjectId>,
    pub enabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

impl SyncLink {
    /// Whether a file of the tree belongs to this link's scope.
    pub fn covers(&self, path: &str) -> bool {
        app_of_path(path) == self.app.as_deref()
    }
}

/// A link to create.
#[derive(Debug, Clone)]
pub struct NewSyncLink {
    pub app: Option<String>,
    pub connector_id: ConnectorId,
    pub repo: Option<String>,
    pub branch: String,
    pub base_commit: Option<ObjectId>,
}

pub(crate) const LINK_COLUMNS: &str =
    "id, app, connector_id, repo, branch, base_commit, enabled, created_at, updated_at";

pub(crate) fn link_from_row(row: &AnyRow) -> Result<SyncLink, StoreError> {
    let app: String = row.try_get("app")?;
    Ok(SyncLink {
        id: id_column(row, "id")?,
        app: (!app.is_empty()).then_some(app),
        connector_id: id_column(row, "connector_id")?,
        repo: Some(row.try_get::<String, _>("repo")?).filter(|r| !r.is_empty()),
        branch: row.try_get("branch")?,
        base_commit: optional_object_id_column(row, "sync_links", "base_commit")?,
        enabled: row.try_get::<i64, _>("enabled")? != 0,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// Inserts a link with id `id` and its first changeset, and makes sure its branch exists,
/// positioned at the commit the link was enabled on. A second live link for the same scope
/// is refused, naming the existing one.
pub(crate) async fn insert_link(
    tx: &mut WriteTx,
    id: &LinkId,
    link: &NewSyncLink,
    initial_files: &[FileChangeRecord],
    by: Option<&Person>,
    now: i64,
) -> Result<(), StoreError> {
    let app = link.app.clone().unwrap_or_default();
    if let Some(existing) = sqlx::query(&format!(
        "SELECT {LINK_COLUMNS} FROM sync_links WHERE app = $1 AND enabled = 1"
    ))
    .bind(&app)
    .fetch_optional(&mut **tx)
    .await?
    {
        let existing = link_from_row(&existing)?;
        return Err(StoreError::AlreadyExists {
            what: "sync link of",
            name: existing.app.unwrap_or_else(|| "the account".into()),
        });
    }
    sqlx::query(
        "INSERT INTO sync_links (id, app, connector_id, repo, branch, base_commit, enabled, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $8)",
    )
    .bind(id.as_str())
    .bind(&app)
    .bind(link.connector_id.as_str())
    .bind(link.repo.clone().unwrap_or_default())
    .bind(&link.branch)
    .bind(link.base_commit.as_ref().map(ObjectId::to_string))
    .bind(now)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    if !initial_files.is_empty() {
        insert_changeset(tx, id, initial_files, by, now).await?;
    }
    ensure_branch(
        tx,
        &link.connector_id,
        link.repo.as_deref(),
        &link.branch,
        link.base_commit.as_ref(),
        now,
    )
    .await
}

impl Store {
    /// Creates a link, with a first changeset carrying `initial_files` (the whole scope, when
    /// the branch is empty or is to be overwritten) in the same transaction, made by no
    /// person. A second live link for the same scope is refused, naming the existing one.
    pub async fn create_link(
        &self,
        link: &NewSyncLink,
        initial_files: &[FileChangeRecord],
    ) -> Result<SyncLink, StoreError> {
        let id: LinkId = new_id();
        let mut tx = self.begin_write().await?;
        insert_link(&mut tx, &id, link, initial_files, None, self.now()).await?;
        tx.commit().await?;
        self.outbox_changed();
        self.link_by_id(&id).await
    }

    /// Ends a link. Its history stays; changesets still waiting are dropped from the outbox
    /// (marked failed), because nothing will push them.
    pub async fn disable_link(&self, id: &LinkId) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        disable_link_in(&mut tx, id, self.now()).await?;
        tx.commit().await?;
        Ok(())
    }

    /// A link by id, live or not.
    pub async fn link_by_id(&self, id: &LinkId) -> Result<SyncLink, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {LINK_COLUMNS} FROM sync_links WHERE id = $1"
        ))
        .bind(id.as_str())
        .read_optional(&self.db)
        .await?
        .ok_or_else(|| StoreError::NotFound {
            what: "sync link",
            name: id.to_string(),
        })?;
        link_from_row(&row)
    }

    /// The live links.
    pub async fn live_links(&self) -> Result<Vec<SyncLink>, StoreError> {
        sqlx::query(&format!(
            "SELECT {LINK_COLUMNS} FROM sync_links WHERE enabled = 1 ORDER BY app"
        ))
        .read_all(&self.db)
        .await?
        .iter()
        .map(link_from_row)
        .collect()
    }

    /// The Source Repo Provider files that the entities of a scope (`None` = the account's
    /// own files) refer to, such as an application's `gitConnector` or a trigger's
    /// `gitConnectorName`.
    pub async fn scope_connector_paths(
        &self,
        app: Option<&str>,
    ) -> Result<Vec<String>, StoreError> {
        let scope = match app {
            Some(_) => "e.app = $1",
            None => "e.app = ''",
        };
        let sql = format!(
            "SELECT DISTINCT r.to_path FROM entity_references r JOIN entities e ON e.id = r.from_id
             WHERE {scope} AND substr(r.to_path, 1, 28) = 'Setup/Source Repo Providers/' ORDER BY r.to_path"
        );
        let mut query = sqlx::query(&sql);
        if let Some(app) = app {
            query = query.bind(app);
        }
        query
            .read_all(&self.db)
            .await?
            .iter()
            .map(|row| Ok(row.try_get("to_path")?))
            .collect()
    }

    /// Every link ever made, live or disabled, oldest first: the history that activity is
    /// read against.
    pub async fn all_links(&self) -> Result<Vec<SyncLink>, StoreError> {
        sqlx::query(&format!(
            "SELECT {LINK_COLUMNS} FROM sync_links ORDER BY created_at, id"
        ))
        .read_all(&self.db)
        .await?
        .iter()
        .map(link_from_row)
        .collect()
    }

    /// The live link of a scope (`None` = the account).
    pub async fn live_link(&self, app: Option<&str>) -> Result<Option<SyncLink>, StoreError> {
        sqlx::query(&format!(
            "SELECT {LINK_COLUMNS} FROM sync_links WHERE enabled = 1 AND app = $1"
        ))
        .bind(app.unwrap_or_default())
        .read_optional(&self.db)
        .await?
        .as_ref()
        .map(link_from_row)
        .transpose()
    }

    /// The branch a link reads from.
    pub async fn branch_of_link(&self, link: &SyncLink) -> Result<Option<SyncBranch>, StoreError> {
        sqlx::query(&format!(
            "SELECT {BRANCH_COLUMNS} FROM sync_branches WHERE connector_id = $1 AND repo = $2 AND branch = $3"
        ))
        .bind(link.connector_id.as_str())
        .bind(link.repo.clone().unwrap_or_default())
        .bind(&link.branch)
        .read_optional(&self.db)
        .await?
        .as_ref()
        .map(branch_from_row)
        .transpose()
    }
}

/// Ends a link inside a write: what it had not pushed fails, and its open errors resolve as
/// `disabled`.
pub(crate) async fn disable_link_in(
    tx: &mut WriteTx,
    id: &LinkId,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE sync_links SET enabled = 0, updated_at = $1 WHERE id = $2")
        .bind(now)
        .bind(id.as_str())
        .execute(&mut **tx)
        .await?;
    sqlx::query(
        "UPDATE changesets SET status = 'failed', error = 'sync was disabled before this change was pushed', updated_at = $1
         WHERE link_id = $2 AND status IN ('waiting', 'conflict')",
    )
    .bind(now)
    .bind(id.as_str())
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "UPDATE sync_errors SET resolved_at = $1, resolution = 'disabled' WHERE link_id = $2 AND resolved_at IS NULL",
    )
    .bind(now)
    .bind(id.as_str())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Store {
    /// The scope a sync error or a changeset is about, for deciding who may act on it: the
    /// application of its link, or of its path when it has no link; `None` when there is no
    /// such row.
    pub async fn scope_of_sync_row(
        &self,
        row: SyncRow<'_>,
    ) -> Result<Option<reposync_model::scope::Scope>, StoreError> {
        let sql = match row {
            SyncRow::Error(_) => {
                "SELECT l.app AS app, e.path AS path FROM sync_errors e
                 LEFT JOIN sync_links l ON l.id = e.link_id WHERE e.id = $1"
            }
            SyncRow::Changeset(_) => {
                "SELECT l.app AS app, NULL AS path FROM changesets c
                 JOIN sync_links l ON l.id = c.link_id WHERE c.id = $1"
            }
        };
        let id = match row {
            SyncRow::Error(id) => id.as_str(),
            SyncRow::Changeset(id) => id.as_str(),
        };
        let Some(found) = sqlx::query(sql).bind(id).read_optional(&self.db).await? else {
            return Ok(None);
        };
        let app: Option<String> = found.try_get("app")?;
        let path: Option<String> = found.try_get("path")?;
        Ok(Some(match (app, path) {
            (Some(app), _) if !app.is_empty() => reposync_model::scope::Scope::App(app),
            (None, Some(path)) => reposync_model::scope::Scope::of_path(&path),
            _ => reposync_model::scope::Scope::Account,
        }))
    }
}

/// A row of Git Sync that a person acts on by id.
#[derive(Debug, Clone, Copy)]
pub enum SyncRow<'a> {
    Error(&'a reposync_model::SyncErrorId),
    Changeset(&'a reposync_model::ChangesetId),
}
