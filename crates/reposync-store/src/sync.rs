//! Git Sync state: links between a scope of the tree and a branch, the outbox of changesets
//! written with every change, commit attempts, and the sync errors that need a person.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::entities::ChangeOutcome;
use crate::gate::{Read, Write, WriteTx};
use crate::{Store, StoreError, new_id, placeholders_from};

pub use reposync_model::scope::app_of_path;

pub use reposync_model::commit::FileOp;

/// One file of a changeset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileChangeRecord {
    pub op: FileOp,
    pub path: String,
}

/// A scope linked to a branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncLink {
    pub id: String,
    /// `None` for the account's own files.
    pub app: Option<String>,
    pub connector_id: String,
    pub repo: Option<String>,
    pub branch: String,
    pub base_commit: Option<String>,
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
    pub connector_id: String,
    pub repo: Option<String>,
    pub branch: String,
    pub base_commit: Option<String>,
}

/// Where a changeset is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangesetStatus {
    Waiting,
    Pushing,
    Pushed,
    Failed,
    Conflict,
}

impl ChangesetStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangesetStatus::Waiting => "waiting",
            ChangesetStatus::Pushing => "pushing",
            ChangesetStatus::Pushed => "pushed",
            ChangesetStatus::Failed => "failed",
            ChangesetStatus::Conflict => "conflict",
        }
    }

    fn parse(text: &str) -> Result<Self, StoreError> {
        Ok(match text {
            "waiting" => ChangesetStatus::Waiting,
            "pushing" => ChangesetStatus::Pushing,
            "pushed" => ChangesetStatus::Pushed,
            "failed" => ChangesetStatus::Failed,
            "conflict" => ChangesetStatus::Conflict,
            other => {
                return Err(StoreError::Corrupt(format!(
                    "unknown changeset status {other:?}"
                )));
            }
        })
    }
}

/// A changeset as stored.
#[derive(Debug, Clone)]
pub struct ChangesetRecord {
    pub id: String,
    pub link_id: String,
    pub status: ChangesetStatus,
    pub files: Vec<FileChangeRecord>,
    pub attempt_id: Option<String>,
    pub commit_id: Option<String>,
    pub error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A commit attempt as stored.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub id: String,
    pub link_id: String,
    /// running, pushed, nothing, conflict, failed, interrupted.
    pub status: String,
    pub changesets: Vec<String>,
    pub files: Vec<FileChangeRecord>,
    pub task_id: Option<String>,
    pub commit_id: Option<String>,
    pub error: Option<String>,
    pub started_at: i64,
    pub finished_at: Option<i64>,
}

/// A commit attempt just started: its changesets, oldest first, every path they touched
/// (sorted), and the contents those paths have in the store (absent: no file).
#[derive(Debug, Clone)]
pub struct StartedAttempt {
    pub attempt: AttemptRecord,
    pub changesets: Vec<ChangesetRecord>,
    pub paths: Vec<String>,
    pub contents: HashMap<String, Vec<u8>>,
}

/// How an attempt ended.
#[derive(Debug, Clone)]
pub enum AttemptEnd {
    /// The branch now holds every change of the attempt: pushed as `commit` (changing
    /// `files`), or, with no commit, already held. Changesets named in `landed` were carried
    /// by an earlier commit (a push whose answer was lost); the others by `commit`.
    Pushed {
        commit: Option<String>,
        files: Vec<FileChangeRecord>,
        landed: Vec<Landed>,
    },
    /// Remote commits touched the same files; the changesets wait for a person or for the
    /// Git → reposync side. One sync error per file keeps both versions.
    Conflict {
        head: String,
        files: Vec<ConflictRecord>,
    },
    /// A failure that retrying will not fix: the changesets stop until `sync retry`.
    Failed { code: String, message: String },
    /// Not pushed this time, to be planned again: a failure that may pass (the network, a
    /// busy server), which backs off, or a base that moved on (`at_once`), which does not.
    Retry { message: String, at_once: bool },
    /// A connection the scope depends on failed its Test, so nothing was tried: the
    /// changesets wait again, and one open sync error (per link and connector file) says
    /// which connection and why, until an attempt gets past the check.
    Held {
        connector_path: String,
        message: String,
    },
}

/// A changeset that a commit on the branch already carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Landed {
    pub changeset: String,
    pub commit: String,
}

/// Both versions of a file in conflict.
#[derive(Debug, Clone)]
pub struct ConflictRecord {
    pub path: String,
    pub ours: Option<Vec<u8>>,
    pub theirs: Option<Vec<u8>>,
}

/// A sync error as stored.
#[derive(Debug, Clone)]
pub struct SyncErrorRecord {
    pub id: String,
    /// The link of the file's scope; none for a file of a scope without one (yet).
    pub link_id: Option<String>,
    /// For errors from reading Git: the branch and the commit.
    pub branch_id: Option<String>,
    pub commit_id: Option<String>,
    pub attempt_id: Option<String>,
    pub path: Option<String>,
    pub code: String,
    pub message: String,
    pub ours: Option<Vec<u8>>,
    pub theirs: Option<Vec<u8>>,
    pub created_at: i64,
    /// When and how it was resolved; `None` while it is open.
    pub resolved: Option<(i64, String)>,
}

/// The code of the sync error that says a connection the scope depends on failed its Test.
pub const CONNECTION_FAILED: &str = "connection_failed";

/// What a link still owes: changesets not yet pushed and sync errors not yet resolved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkBacklog {
    pub waiting: i64,
    pub open_errors: i64,
}

const LINK_COLUMNS: &str =
    "id, app, connector_id, repo, branch, base_commit, enabled, created_at, updated_at";
const CHANGESET_COLUMNS: &str =
    "id, link_id, status, files, attempt_id, commit_id, error, created_at, updated_at";
const ATTEMPT_COLUMNS: &str =
    "id, link_id, status, changesets, files, task_id, commit_id, error, started_at, finished_at";

fn link_from_row(row: &AnyRow) -> Result<SyncLink, StoreError> {
    let app: String = row.try_get("app")?;
    Ok(SyncLink {
        id: row.try_get("id")?,
        app: (!app.is_empty()).then_some(app),
        connector_id: row.try_get("connector_id")?,
        repo: Some(row.try_get::<String, _>("repo")?).filter(|r| !r.is_empty()),
        branch: row.try_get("branch")?,
        base_commit: row.try_get("base_commit")?,
        enabled: row.try_get::<i64, _>("enabled")? != 0,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn json_column<T: for<'de> Deserialize<'de>>(row: &AnyRow, column: &str) -> Result<T, StoreError> {
    let text: String = row.try_get(column)?;
    serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
}

fn to_json(value: &impl Serialize) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn changeset_from_row(row: &AnyRow) -> Result<ChangesetRecord, StoreError> {
    Ok(ChangesetRecord {
        id: row.try_get("id")?,
        link_id: row.try_get("link_id")?,
        status: ChangesetStatus::parse(&row.try_get::<String, _>("status")?)?,
        files: json_column(row, "files")?,
        attempt_id: row.try_get("attempt_id")?,
        commit_id: row.try_get("commit_id")?,
        error: row.try_get("error")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn attempt_from_row(row: &AnyRow) -> Result<AttemptRecord, StoreError> {
    Ok(AttemptRecord {
        id: row.try_get("id")?,
        link_id: row.try_get("link_id")?,
        status: row.try_get("status")?,
        changesets: json_column(row, "changesets")?,
        files: json_column(row, "files")?,
        task_id: row.try_get("task_id")?,
        commit_id: row.try_get("commit_id")?,
        error: row.try_get("error")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
    })
}

/// Writes one changeset per live link for the files a batch changed, inside the batch's
/// transaction: the change and its way out to Git commit together or not at all. Returns how
/// many were written.
pub(crate) async fn record_changesets(
    tx: &mut WriteTx,
    outcomes: &[(String, ChangeOutcome)],
    now: i64,
) -> Result<usize, StoreError> {
    // An application renamed in this batch (its Index.yaml deleted under one name and created
    // under another) keeps its link: the link follows it, so that the new folder is pushed
    // in the same commit that deletes the old one.
    let index_of = |path: &str| reposync_model::scope::app_of_index(path).map(str::to_owned);
    let deleted_apps: Vec<String> = outcomes
        .iter()
        .filter(|(_, o)| *o == ChangeOutcome::Deleted)
        .filter_map(|(p, _)| index_of(p))
        .collect();
    let created_apps: Vec<String> = outcomes
        .iter()
        .filter(|(_, o)| *o == ChangeOutcome::Created)
        .filter_map(|(p, _)| index_of(p))
        .collect();
    let renamed = match (deleted_apps.as_slice(), created_apps.as_slice()) {
        ([from], [to]) => Some((from.clone(), to.clone())),
        _ => None,
    };
    if let Some((from, to)) = &renamed {
        sqlx::query(
            "UPDATE sync_links SET app = $1, updated_at = $2 WHERE app = $3 AND enabled = 1
             AND NOT EXISTS (SELECT 1 FROM sync_links WHERE app = $1 AND enabled = 1)",
        )
        .bind(to)
        .bind(now)
        .bind(from)
        .execute(&mut **tx)
        .await?;
    }
    let links: Vec<SyncLink> = sqlx::query(&format!(
        "SELECT {LINK_COLUMNS} FROM sync_links WHERE enabled = 1"
    ))
    .fetch_all(&mut **tx)
    .await?
    .iter()
    .map(link_from_row)
    .collect::<Result<_, _>>()?;
    if links.is_empty() {
        return Ok(0);
    }
    let mut per_link: HashMap<&str, Vec<FileChangeRecord>> = HashMap::new();
    for (path, outcome) in outcomes {
        let op = match outcome {
            ChangeOutcome::Created => FileOp::Add,
            ChangeOutcome::Changed => FileOp::Modify,
            ChangeOutcome::Deleted => FileOp::Delete,
            ChangeOutcome::Unchanged => continue,
        };
        // The old folder's deletions go to the link that followed the application.
        let app = match (app_of_path(path), &renamed) {
            (Some(app), Some((from, to))) if app == from => Some(to.as_str()),
            (app, _) => app,
        };
        if let Some(link) = links.iter().find(|l| l.app.as_deref() == app) {
            per_link
                .entry(link.id.as_str())
                .or_default()
                .push(FileChangeRecord {
                    op,
                    path: path.clone(),
                });
        }
    }
    let written = per_link.len();
    for (link_id, files) in per_link {
        insert_changeset(tx, link_id, &files, now).await?;
    }
    Ok(written)
}

async fn insert_changeset(
    tx: &mut WriteTx,
    link_id: &str,
    files: &[FileChangeRecord],
    now: i64,
) -> Result<String, StoreError> {
    let id = new_id();
    sqlx::query(
        "INSERT INTO changesets (id, link_id, status, files, created_at, updated_at) VALUES ($1, $2, 'waiting', $3, $4, $5)",
    )
    .bind(&id)
    .bind(link_id)
    .bind(to_json(&files)?)
    .bind(now)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(id)
}

/// How many of a branch's newest pushed changesets are looked at for commits not read back
/// yet. The Git -> reposync side reads every push within moments, so only a few are ever
/// unread.
const UNREAD_OWN_COMMITS: i64 = 2000;

/// The branch (the Git -> reposync position) that a link pushes to, if it has one.
async fn branch_id_of_link(tx: &mut WriteTx, link_id: &str) -> Result<Option<String>, StoreError> {
    sqlx::query(
        "SELECT b.id AS id FROM sync_links l JOIN sync_branches b
             ON l.connector_id = b.connector_id AND l.repo = b.repo AND l.branch = b.branch
         WHERE l.id = $1",
    )
    .bind(link_id)
    .fetch_optional(&mut **tx)
    .await?
    .map(|r| r.try_get("id"))
    .transpose()
    .map_err(StoreError::from)
}

/// The last commit read from Git on a branch.
async fn processed_commit(
    tx: &mut WriteTx,
    branch_id: Option<&str>,
) -> Result<Option<String>, StoreError> {
    let Some(branch_id) = branch_id else {
        return Ok(None);
    };
    Ok(
        sqlx::query("SELECT processed_commit FROM sync_branches WHERE id = $1")
            .bind(branch_id)
            .fetch_optional(&mut **tx)
            .await?
            .map(|r| r.try_get::<Option<String>, _>("processed_commit"))
            .transpose()?
            .flatten(),
    )
}

/// Queues `commit` to be read on a branch, as a webhook announcing it would, unless it is
/// the commit processed or queued already. Returns whether it was queued.
pub(crate) async fn want_head(
    tx: &mut WriteTx,
    branch_id: &str,
    commit: &str,
    now: i64,
) -> Result<bool, StoreError> {
    let queued = sqlx::query(
        "UPDATE sync_branches SET wanted_commit = $1, wanted_at = $2, updated_at = $2
         WHERE id = $3 AND (broken IS NULL OR $1 <> '') AND COALESCE(processed_commit, '') <> $1
             AND COALESCE(wanted_commit, '-') <> $1",
    )
    .bind(commit)
    .bind(now)
    .bind(branch_id)
    .execute(&mut **tx)
    .await?
    .rows_affected()
        > 0;
    if queued && !commit.is_empty() {
        // A webhook announcing the same head later is then a duplicate.
        sqlx::query(
            "INSERT INTO announced_heads (branch_id, commit_id, announced_at) VALUES ($1, $2, $3)
             ON CONFLICT (branch_id, commit_id) DO NOTHING",
        )
        .bind(branch_id)
        .bind(commit)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    }
    Ok(queued)
}

/// Records a changeset as carried by `commit` (none: the branch already held its files),
/// whatever it was waiting for.
pub(crate) async fn mark_pushed(
    tx: &mut WriteTx,
    changeset_id: &str,
    commit: Option<&str>,
    now: i64,
) -> Result<bool, StoreError> {
    Ok(sqlx::query(
        "UPDATE changesets SET status = 'pushed', commit_id = $1, error = NULL, updated_at = $2
         WHERE id = $3 AND status IN ('waiting', 'pushing', 'conflict', 'failed')",
    )
    .bind(commit)
    .bind(now)
    .bind(changeset_id)
    .execute(&mut **tx)
    .await?
    .rows_affected()
        > 0)
}

/// Resolves the conflict and overridden errors of `paths` on a link: reposync's change to
/// them is on the branch now, so they no longer say anything true.
pub(crate) async fn resolve_landed_errors(
    tx: &mut WriteTx,
    link_id: &str,
    paths: &[&str],
    now: i64,
) -> Result<(), StoreError> {
    for chunk in paths.chunks(500) {
        let sql = format!(
            "UPDATE sync_errors SET resolved_at = $1, resolution = 'landed'
             WHERE link_id = $2 AND code IN ('conflict', 'overridden') AND resolved_at IS NULL AND path IN ({})",
            placeholders_from(3, chunk.len())
        );
        let mut query = sqlx::query(&sql).bind(now).bind(link_id);
        for path in chunk {
            query = query.bind(*path);
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

/// The contents of `paths` as `conn` sees them: entities, and connectors as their files.
async fn file_contents_in(
    conn: &mut sqlx::AnyConnection,
    paths: &[String],
) -> Result<HashMap<String, Vec<u8>>, StoreError> {
    let mut contents = HashMap::new();
    for chunk in paths.chunks(500) {
        let sql = format!(
            "SELECT path, content FROM entities WHERE path IN ({})",
            placeholders_from(1, chunk.len())
        );
        let mut query = sqlx::query(&sql);
        for path in chunk {
            query = query.bind(path.as_str());
        }
        for row in query.fetch_all(&mut *conn).await? {
            contents.insert(row.try_get("path")?, row.try_get("content")?);
        }
    }
    if paths.iter().any(|p| app_of_path(p).is_none()) {
        for row in sqlx::query("SELECT name, file FROM connectors")
            .fetch_all(&mut *conn)
            .await?
        {
            let name: String = row.try_get("name")?;
            let Ok(name) = reposync_model::EntityName::parse(&name) else {
                continue;
            };
            let path = reposync_model::connector_yaml::path(&name);
            if paths.contains(&path) {
                let file: String = row.try_get("file")?;
                contents.insert(path, file.into_bytes());
            }
        }
    }
    Ok(contents)
}

/// Inserts a link with id `id` and its first changeset, and makes sure its branch exists,
/// positioned at the commit the link was enabled on. A second live link for the same scope
/// is refused, naming the existing one.
pub(crate) async fn insert_link(
    tx: &mut WriteTx,
    id: &str,
    link: &NewSyncLink,
    initial_files: &[FileChangeRecord],
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
    .bind(id)
    .bind(&app)
    .bind(&link.connector_id)
    .bind(link.repo.clone().unwrap_or_default())
    .bind(&link.branch)
    .bind(link.base_commit.clone())
    .bind(now)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    if !initial_files.is_empty() {
        insert_changeset(tx, id, initial_files, now).await?;
    }
    crate::inbound::ensure_branch(
        tx,
        &link.connector_id,
        link.repo.as_deref(),
        &link.branch,
        link.base_commit.as_deref(),
        now,
    )
    .await
}

/// Ends an attempt that pushed nothing.
async fn end_attempt(
    tx: &mut WriteTx,
    attempt_id: &str,
    status: &str,
    remote_head: Option<&str>,
    error: &str,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE commit_attempts SET status = $1, remote_head = $2, error = $3, finished_at = $4 WHERE id = $5",
    )
    .bind(status)
    .bind(remote_head)
    .bind(error)
    .bind(now)
    .bind(attempt_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Moves the changesets an attempt still carries to `status`, saying why.
async fn move_changesets(
    tx: &mut WriteTx,
    attempt_id: &str,
    status: &str,
    error: &str,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE changesets SET status = $1, error = $2, updated_at = $3 WHERE attempt_id = $4 AND status = 'pushing'",
    )
    .bind(status)
    .bind(error)
    .bind(now)
    .bind(attempt_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Store {
    /// Creates a link, with a first changeset carrying `initial_files` (the whole scope, when
    /// the branch is empty or is to be overwritten) in the same transaction. A second live
    /// link for the same scope is refused, naming the existing one.
    pub async fn create_link(
        &self,
        link: &NewSyncLink,
        initial_files: &[FileChangeRecord],
    ) -> Result<SyncLink, StoreError> {
        let id = new_id();
        let mut tx = self.begin_write().await?;
        insert_link(&mut tx, &id, link, initial_files, self.now()).await?;
        tx.commit().await?;
        self.outbox_changed();
        self.link_by_id(&id).await
    }

    /// Ends a link. Its history stays; changesets still waiting are dropped from the outbox
    /// (marked failed), because nothing will push them.
    pub async fn disable_link(&self, id: &str) -> Result<(), StoreError> {
        let now = self.now();
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE sync_links SET enabled = 0, updated_at = $1 WHERE id = $2")
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE changesets SET status = 'failed', error = 'sync was disabled before this change was pushed', updated_at = $1
             WHERE link_id = $2 AND status IN ('waiting', 'conflict')",
        )
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE sync_errors SET resolved_at = $1, resolution = 'disabled' WHERE link_id = $2 AND resolved_at IS NULL",
        )
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// A link by id, live or not.
    pub async fn link_by_id(&self, id: &str) -> Result<SyncLink, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {LINK_COLUMNS} FROM sync_links WHERE id = $1"
        ))
        .bind(id)
        .read_optional(&self.db)
        .await?
        .ok_or_else(|| StoreError::NotFound {
            what: "sync link",
            name: id.to_owned(),
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
             WHERE {scope} AND r.to_path LIKE 'Setup/Source Repo Providers/%' ORDER BY r.to_path"
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

    /// Live links with changesets waiting, with the time the oldest has waited since.
    pub async fn links_with_waiting(&self) -> Result<Vec<(String, i64)>, StoreError> {
        sqlx::query(
            "SELECT c.link_id AS link_id, MIN(c.created_at) AS oldest FROM changesets c JOIN sync_links l ON l.id = c.link_id
             WHERE c.status = 'waiting' AND l.enabled = 1 GROUP BY c.link_id",
        )
        .read_all(&self.db)
        .await?
        .iter()
        .map(|r| Ok((r.try_get("link_id")?, r.try_get("oldest")?)))
        .collect()
    }

    /// Starts a commit attempt with every changeset of the link that is waiting, unless one is
    /// already running for the link. Returns the attempt, its changesets (oldest first) and
    /// the contents of the paths they touched, read in the same transaction: the commit
    /// carries exactly the changes of the changesets it names, none of a later one.
    pub async fn start_attempt(&self, link_id: &str) -> Result<Option<StartedAttempt>, StoreError> {
        let now = self.now();
        let mut tx = self.begin_write().await?;
        let running: Option<String> =
            sqlx::query("SELECT id FROM commit_attempts WHERE link_id = $1 AND status = 'running'")
                .bind(link_id)
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| r.try_get("id"))
                .transpose()?;
        if running.is_some() {
            return Ok(None);
        }
        let changesets: Vec<ChangesetRecord> = sqlx::query(&format!(
            "SELECT {CHANGESET_COLUMNS} FROM changesets WHERE link_id = $1 AND status = 'waiting' ORDER BY created_at, id"
        ))
        .bind(link_id)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(changeset_from_row)
        .collect::<Result<_, _>>()?;
        if changesets.is_empty() {
            return Ok(None);
        }
        let id = new_id();
        let ids: Vec<&str> = changesets.iter().map(|c| c.id.as_str()).collect();
        let files: Vec<&FileChangeRecord> = changesets.iter().flat_map(|c| &c.files).collect();
        sqlx::query(
            "INSERT INTO commit_attempts (id, link_id, status, changesets, files, started_at) VALUES ($1, $2, 'running', $3, $4, $5)",
        )
        .bind(&id)
        .bind(link_id)
        .bind(to_json(&ids)?)
        .bind(to_json(&files)?)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE changesets SET status = 'pushing', attempt_id = $1, updated_at = $2 WHERE link_id = $3 AND status = 'waiting'",
        )
        .bind(&id)
        .bind(now)
        .bind(link_id)
        .execute(&mut *tx)
        .await?;
        let attempt = attempt_from_row(
            &sqlx::query(&format!(
                "SELECT {ATTEMPT_COLUMNS} FROM commit_attempts WHERE id = $1"
            ))
            .bind(&id)
            .fetch_one(&mut *tx)
            .await?,
        )?;
        let mut paths: Vec<String> = files.iter().map(|f| f.path.clone()).collect();
        paths.sort();
        paths.dedup();
        let contents = file_contents_in(&mut tx, &paths).await?;
        tx.commit().await?;
        Ok(Some(StartedAttempt {
            attempt,
            changesets,
            paths,
            contents,
        }))
    }

    /// Records which task carries an attempt.
    pub async fn set_attempt_task(
        &self,
        attempt_id: &str,
        task_id: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE commit_attempts SET task_id = $1 WHERE id = $2")
            .bind(task_id)
            .bind(attempt_id)
            .write(&self.db)
            .await?;
        Ok(())
    }

    /// Ends an attempt and moves its changesets on, in one transaction.
    pub async fn finish_attempt(
        &self,
        attempt_id: &str,
        end: &AttemptEnd,
    ) -> Result<(), StoreError> {
        let now = self.now();
        let mut tx = self.begin_write().await?;
        let row = sqlx::query("SELECT link_id, files FROM commit_attempts WHERE id = $1")
            .bind(attempt_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| StoreError::NotFound {
                what: "commit attempt",
                name: attempt_id.to_owned(),
            })?;
        let link_id: String = row.try_get("link_id")?;
        // Every path the attempt's changesets touched, whatever became of it.
        let touched: Vec<FileChangeRecord> = json_column(&row, "files")?;
        let branch_id = branch_id_of_link(&mut tx, &link_id).await?;
        // A conflict with commits the Git -> reposync side has already read is settled: Git's
        // versions of our files were kept as `overridden` errors there, so reposync's change
        // goes out again on top of them.
        if let AttemptEnd::Conflict { head, .. } = end
            && processed_commit(&mut tx, branch_id.as_deref())
                .await?
                .as_deref()
                == Some(head)
        {
            let message = format!(
                "the remote moved to {head}, whose commits were already read from Git; pushing again on top of them"
            );
            sqlx::query(
                "UPDATE commit_attempts SET status = 'conflict', error = $1, remote_head = $2, finished_at = $3 WHERE id = $4",
            )
            .bind(&message)
            .bind(head)
            .bind(now)
            .bind(attempt_id)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE changesets SET status = 'waiting', attempt_id = NULL, updated_at = $1 WHERE attempt_id = $2 AND status = 'pushing'",
            )
            .bind(now)
            .bind(attempt_id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            self.outbox_changed();
            return Ok(());
        }
        let mut queued_read = false;
        match end {
            AttemptEnd::Pushed {
                commit,
                files,
                landed,
            } => {
                // An attempt whose changes were all on the branch already, carried by a push
                // whose answer was lost (its own task run again, or an attempt cut off by a
                // restart), is recorded with that commit.
                let recorded = commit
                    .clone()
                    .or_else(|| landed.last().map(|l| l.commit.clone()));
                sqlx::query(
                    "UPDATE commit_attempts SET status = $1, commit_id = $2, files = $3, error = NULL, finished_at = $4 WHERE id = $5",
                )
                .bind(if recorded.is_some() { "pushed" } else { "nothing" })
                .bind(recorded.clone())
                .bind(to_json(files)?)
                .bind(now)
                .bind(attempt_id)
                .execute(&mut *tx)
                .await?;
                for landed in landed {
                    mark_pushed(&mut tx, &landed.changeset, Some(&landed.commit), now).await?;
                }
                sqlx::query(
                    "UPDATE changesets SET status = 'pushed', commit_id = $1, error = NULL, updated_at = $2 WHERE attempt_id = $3 AND status = 'pushing'",
                )
                .bind(commit.clone())
                .bind(now)
                .bind(attempt_id)
                .execute(&mut *tx)
                .await?;
                let paths: Vec<&str> = touched.iter().map(|f| f.path.as_str()).collect();
                resolve_landed_errors(&mut tx, &link_id, &paths, now).await?;
                if let Some(commit) = &recorded {
                    sqlx::query(
                        "UPDATE sync_links SET base_commit = $1, updated_at = $2 WHERE id = $3",
                    )
                    .bind(commit)
                    .bind(now)
                    .bind(&link_id)
                    .execute(&mut *tx)
                    .await?;
                    // The commit is read back like any other, so the Git -> reposync side's
                    // position (the next attempt's base) moves past it without a webhook.
                    if let Some(branch_id) = &branch_id {
                        queued_read = want_head(&mut tx, branch_id, commit, now).await?;
                    }
                }
            }
            AttemptEnd::Conflict { head, files } => {
                let error = format!(
                    "commits on the remote (up to {head}) changed the same files: {}",
                    files
                        .iter()
                        .map(|f| f.path.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                end_attempt(&mut tx, attempt_id, "conflict", Some(head), &error, now).await?;
                move_changesets(&mut tx, attempt_id, "conflict", &error, now).await?;
                for file in files {
                    // One open conflict per file: a newer one replaces the older.
                    sqlx::query(
                        "UPDATE sync_errors SET resolved_at = $1, resolution = 'superseded' WHERE link_id = $2 AND path = $3 AND code = 'conflict' AND resolved_at IS NULL",
                    )
                    .bind(now)
                    .bind(&link_id)
                    .bind(&file.path)
                    .execute(&mut *tx)
                    .await?;
                    sqlx::query(
                        "INSERT INTO sync_errors (id, link_id, attempt_id, path, code, message, ours, theirs, created_at)
                         VALUES ($1, $2, $3, $4, 'conflict', $5, $6, $7, $8)",
                    )
                    .bind(new_id())
                    .bind(&link_id)
                    .bind(attempt_id)
                    .bind(&file.path)
                    .bind(format!(
                        "{} was changed in Git (up to commit {head}) and in reposync; reposync's change waits until that commit is read from Git, then goes out on top of it",
                        file.path
                    ))
                    .bind(file.ours.clone())
                    .bind(file.theirs.clone())
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
                // Reading Git's side is what settles the conflict: ask for it now rather than
                // wait for a webhook or the next poll.
                if let Some(branch_id) = &branch_id {
                    queued_read = want_head(&mut tx, branch_id, head, now).await?;
                }
            }
            AttemptEnd::Failed { code, message } => {
                let error = format!("{code}: {message}");
                end_attempt(&mut tx, attempt_id, "failed", None, &error, now).await?;
                move_changesets(&mut tx, attempt_id, "failed", &error, now).await?;
                sqlx::query(
                    "INSERT INTO sync_errors (id, link_id, attempt_id, code, message, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(new_id())
                .bind(&link_id)
                .bind(attempt_id)
                .bind(code)
                .bind(message)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            AttemptEnd::Retry { message, .. } => {
                end_attempt(&mut tx, attempt_id, "failed", None, message, now).await?;
                move_changesets(&mut tx, attempt_id, "waiting", message, now).await?;
            }
            AttemptEnd::Held {
                connector_path,
                message,
            } => {
                end_attempt(&mut tx, attempt_id, "failed", None, message, now).await?;
                move_changesets(&mut tx, attempt_id, "waiting", message, now).await?;
                // One open error per held connection, kept current, not one per retry.
                let updated = sqlx::query(
                    "UPDATE sync_errors SET message = $1, attempt_id = $2 WHERE link_id = $3 AND code = $4 AND path = $5 AND resolved_at IS NULL",
                )
                .bind(message)
                .bind(attempt_id)
                .bind(&link_id)
                .bind(CONNECTION_FAILED)
                .bind(connector_path)
                .execute(&mut *tx)
                .await?;
                if updated.rows_affected() == 0 {
                    sqlx::query(
                        "INSERT INTO sync_errors (id, link_id, attempt_id, path, code, message, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    )
                    .bind(new_id())
                    .bind(&link_id)
                    .bind(attempt_id)
                    .bind(connector_path)
                    .bind(CONNECTION_FAILED)
                    .bind(message)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
        if !matches!(end, AttemptEnd::Held { .. }) {
            // This attempt got past the connection check, so no connection holds the link.
            sqlx::query(
                "UPDATE sync_errors SET resolved_at = $1, resolution = 'passed' WHERE link_id = $2 AND code = $3 AND resolved_at IS NULL",
            )
            .bind(now)
            .bind(&link_id)
            .bind(CONNECTION_FAILED)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        if queued_read {
            self.inbox_changed();
        }
        Ok(())
    }

    /// Commits that reposync pushed to the branch of `link` and that the Git -> reposync side
    /// has not read back yet, newest first: they are reposync's own, never a conflict. They
    /// are read from the changesets, not the attempts: a push whose answer was lost is
    /// recorded only on the changesets it carried, by the attempt that found it.
    pub async fn unread_own_commits(&self, link: &SyncLink) -> Result<Vec<String>, StoreError> {
        let Some(branch) = self.branch_of_link(link).await? else {
            return Ok(Vec::new());
        };
        sqlx::query(
            "SELECT commit_id, MAX(pushed_at) AS pushed_at FROM (
                 SELECT c.commit_id AS commit_id, c.updated_at AS pushed_at FROM changesets c
                 WHERE c.link_id IN (
                     SELECT id FROM sync_links WHERE connector_id = $1 AND repo = $2 AND branch = $3
                 ) AND c.status = 'pushed' AND c.commit_id IS NOT NULL
                 ORDER BY c.updated_at DESC LIMIT $4
             ) recent
             WHERE NOT EXISTS (SELECT 1 FROM inbound_commits i WHERE i.branch_id = $5 AND i.commit_id = recent.commit_id)
             GROUP BY commit_id ORDER BY pushed_at DESC",
        )
        .bind(&link.connector_id)
        .bind(link.repo.clone().unwrap_or_default())
        .bind(&link.branch)
        .bind(UNREAD_OWN_COMMITS)
        .bind(&branch.id)
        .read_all(&self.db)
        .await?
        .iter()
        .map(|r| Ok(r.try_get("commit_id")?))
        .collect()
    }

    /// After a restart: attempts that were running were cut off. Their changesets wait again.
    /// A cut-off push may have landed all the same; the next attempt finds it on the branch by
    /// its trailers and carries those changesets no further.
    pub async fn interrupt_attempts(&self) -> Result<u64, StoreError> {
        let now = self.now();
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE commit_attempts SET status = 'interrupted', error = 'the server stopped during the attempt', finished_at = $1 WHERE status = 'running'",
        )
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE changesets SET status = 'waiting', attempt_id = NULL, updated_at = $1 WHERE status = 'pushing'",
        )
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    /// Puts a failed or conflicting changeset back in the outbox (with every other changeset
    /// of its attempt) and resolves its sync errors.
    pub async fn retry_changeset(&self, id: &str) -> Result<ChangesetRecord, StoreError> {
        let now = self.now();
        let mut tx = self.begin_write().await?;
        let changeset = sqlx::query(&format!(
            "SELECT {CHANGESET_COLUMNS} FROM changesets WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .as_ref()
        .map(changeset_from_row)
        .transpose()?
        .ok_or_else(|| StoreError::NotFound {
            what: "changeset",
            name: id.to_owned(),
        })?;
        if !matches!(
            changeset.status,
            ChangesetStatus::Failed | ChangesetStatus::Conflict
        ) {
            return Err(StoreError::Invalid {
                field: "id".into(),
                message: format!(
                    "changeset {id} is {}; only failed or conflicting changesets can be retried",
                    changeset.status.as_str()
                ),
            });
        }
        let link = sqlx::query("SELECT enabled FROM sync_links WHERE id = $1")
            .bind(&changeset.link_id)
            .fetch_one(&mut *tx)
            .await?;
        if link.try_get::<i64, _>("enabled")? == 0 {
            return Err(StoreError::Invalid {
                field: "id".into(),
                message: "its sync link is disabled; enable sync again instead".into(),
            });
        }
        let mut wants_read = false;
        match &changeset.attempt_id {
            Some(attempt) => {
                // A conflict is settled by reading Git's side: ask for the head it was met at
                // to be read again, in case that read failed or never came.
                let met_at = sqlx::query(
                    "SELECT remote_head FROM commit_attempts WHERE id = $1 AND status = 'conflict'",
                )
                .bind(attempt)
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| r.try_get::<Option<String>, _>("remote_head"))
                .transpose()?
                .flatten();
                if let (Some(head), Some(branch_id)) = (
                    met_at,
                    branch_id_of_link(&mut tx, &changeset.link_id).await?,
                ) {
                    wants_read |= want_head(&mut tx, &branch_id, &head, now).await?;
                }
                sqlx::query(
                    "UPDATE changesets SET status = 'waiting', error = NULL, updated_at = $1
                     WHERE attempt_id = $2 AND status IN ('failed', 'conflict')",
                )
                .bind(now)
                .bind(attempt)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "UPDATE sync_errors SET resolved_at = $1, resolution = 'retried' WHERE attempt_id = $2 AND resolved_at IS NULL",
                )
                .bind(now)
                .bind(attempt)
                .execute(&mut *tx)
                .await?;
            }
            None => {
                sqlx::query(
                    "UPDATE changesets SET status = 'waiting', error = NULL, updated_at = $1 WHERE id = $2",
                )
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        self.outbox_changed();
        if wants_read {
            self.inbox_changed();
        }
        Ok(changeset)
    }

    /// Changesets, newest first, of the given links, or of all when none are given.
    pub async fn list_changesets(
        &self,
        link_ids: &[String],
        limit: i64,
    ) -> Result<Vec<ChangesetRecord>, StoreError> {
        let sql = format!("SELECT {CHANGESET_COLUMNS} FROM changesets");
        self.newest_of_links(&sql, "created_at", link_ids, limit, changeset_from_row)
            .await
    }

    /// Commit attempts, newest first, of the given links, or of all when none are given.
    pub async fn list_attempts(
        &self,
        link_ids: &[String],
        limit: i64,
    ) -> Result<Vec<AttemptRecord>, StoreError> {
        let sql = format!("SELECT {ATTEMPT_COLUMNS} FROM commit_attempts");
        self.newest_of_links(&sql, "started_at", link_ids, limit, attempt_from_row)
            .await
    }

    /// Runs `select` (a query without WHERE) for rows of the given links, newest by `time`
    /// first, at most `limit`.
    async fn newest_of_links<T>(
        &self,
        select: &str,
        time: &str,
        link_ids: &[String],
        limit: i64,
        from_row: fn(&AnyRow) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let filter = if link_ids.is_empty() {
            String::new()
        } else {
            format!(
                " WHERE link_id IN ({})",
                placeholders_from(2, link_ids.len())
            )
        };
        let sql = format!("{select}{filter} ORDER BY {time} DESC, id DESC LIMIT $1");
        let mut query = sqlx::query(&sql).bind(limit);
        for id in link_ids {
            query = query.bind(id.as_str());
        }
        query
            .read_all(&self.db)
            .await?
            .iter()
            .map(from_row)
            .collect()
    }

    /// Per link, how many changesets are still to push and how many sync errors are open.
    pub async fn link_backlogs(&self) -> Result<HashMap<String, LinkBacklog>, StoreError> {
        let mut backlogs: HashMap<String, LinkBacklog> = HashMap::new();
        let waiting = sqlx::query(
            "SELECT link_id, COUNT(*) AS n FROM changesets WHERE status IN ('waiting', 'pushing') GROUP BY link_id",
        )
        .read_all(&self.db)
        .await?;
        for row in waiting {
            backlogs.entry(row.try_get("link_id")?).or_default().waiting = row.try_get("n")?;
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
                .entry(row.try_get("link_id")?)
                .or_default()
                .open_errors = row.try_get("n")?;
        }
        Ok(backlogs)
    }

    /// Discards an open sync error: a person has seen it. A conflict's changesets stay as
    /// they are; `sync retry` is what pushes them again.
    pub async fn discard_sync_error(&self, id: &str) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE sync_errors SET resolved_at = $1, resolution = 'discarded' WHERE id = $2 AND resolved_at IS NULL",
        )
        .bind(self.now())
        .bind(id)
        .write(&self.db)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound {
                what: "open sync error",
                name: id.to_owned(),
            });
        }
        Ok(())
    }

    /// Sync errors not yet resolved, oldest first.
    pub async fn open_sync_errors(&self) -> Result<Vec<SyncErrorRecord>, StoreError> {
        let sql = format!(
            "SELECT {SYNC_ERROR_COLUMNS} FROM sync_errors WHERE resolved_at IS NULL ORDER BY created_at, id"
        );
        sqlx::query(&sql)
            .read_all(&self.db)
            .await?
            .iter()
            .map(sync_error_from_row)
            .collect()
    }

    /// The sync errors resolved most recently, newest first, at most `limit`: how each ended
    /// (fixed in Git, landed, retried, discarded…).
    pub async fn resolved_sync_errors(
        &self,
        limit: i64,
    ) -> Result<Vec<SyncErrorRecord>, StoreError> {
        let sql = format!(
            "SELECT {SYNC_ERROR_COLUMNS} FROM sync_errors WHERE resolved_at IS NOT NULL ORDER BY resolved_at DESC, id DESC LIMIT $1"
        );
        sqlx::query(&sql)
            .bind(limit)
            .read_all(&self.db)
            .await?
            .iter()
            .map(sync_error_from_row)
            .collect()
    }
}

const SYNC_ERROR_COLUMNS: &str = "id, link_id, branch_id, commit_id, attempt_id, path, code, message, ours, theirs, created_at, resolved_at, resolution";

fn sync_error_from_row(r: &AnyRow) -> Result<SyncErrorRecord, StoreError> {
    let resolved_at: Option<i64> = r.try_get("resolved_at")?;
    let resolution: Option<String> = r.try_get("resolution")?;
    Ok(SyncErrorRecord {
        id: r.try_get("id")?,
        link_id: r.try_get("link_id")?,
        branch_id: r.try_get("branch_id")?,
        commit_id: r.try_get("commit_id")?,
        attempt_id: r.try_get("attempt_id")?,
        path: r.try_get("path")?,
        code: r.try_get("code")?,
        message: r.try_get("message")?,
        ours: r.try_get("ours")?,
        theirs: r.try_get("theirs")?,
        created_at: r.try_get("created_at")?,
        resolved: resolved_at.map(|at| (at, resolution.unwrap_or_default())),
    })
}

impl Store {
    /// The files of a scope as they are now: the application's folder, or the account's own
    /// files, connectors included.
    pub async fn scope_files(
        &self,
        app: Option<&str>,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let rows = match app {
            Some(app) => {
                sqlx::query("SELECT path, content FROM entities WHERE app = $1")
                    .bind(app)
                    .read_all(&self.db)
                    .await?
            }
            None => {
                sqlx::query("SELECT path, content FROM entities WHERE app = ''")
                    .read_all(&self.db)
                    .await?
            }
        };
        let mut files: Vec<(String, Vec<u8>)> = rows
            .iter()
            .map(|r| Ok((r.try_get("path")?, r.try_get("content")?)))
            .collect::<Result<_, sqlx::Error>>()?;
        if app.is_none() {
            for connector in self.list_connectors().await? {
                files.push((
                    reposync_model::connector_yaml::path(&connector.spec.name),
                    connector.file.into_bytes(),
                ));
            }
        }
        files.sort();
        Ok(files)
    }

    /// The current contents of `paths`; paths that do not exist are left out.
    pub async fn file_contents(
        &self,
        paths: &[String],
    ) -> Result<HashMap<String, Vec<u8>>, StoreError> {
        let mut conn = self.db.read_connection().await?;
        file_contents_in(&mut conn, paths).await
    }

    /// Fails every unfinished task of `kind`: after a restart nobody waits for their results,
    /// and the work they carried is planned again.
    pub async fn abandon_tasks(&self, kind: &str, result: &str) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE tasks SET status = 'failed', result = $1, finished_at = $2 WHERE kind = $3 AND status IN ('queued', 'running')",
        )
        .bind(result)
        .bind(self.now())
        .bind(kind)
        .write(&self.db)
        .await?;
        Ok(done.rows_affected())
    }
}
