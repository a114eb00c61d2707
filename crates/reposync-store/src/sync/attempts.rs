//! Commit attempts: the waiting changesets of a link taken together into one commit, pushed by
//! a delegate, and how each attempt ended (pushed, nothing to push, a conflict, a failure, a
//! retry, a connection that held it).

use std::collections::HashMap;

use reposync_model::{AttemptId, ChangesetId, LinkId, ObjectId, SyncErrorId, TaskId};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::cluster::{Fence, check_fence};
use crate::error::StoreError;
use crate::gate::{Read, Write, WriteTx};
use crate::rows::{
    id_column, json_column, new_id, object_id_column, optional_id_column,
    optional_object_id_column, to_json,
};
use crate::store::Store;
use crate::sync::branches::{branch_id_of_link, processed_commit, want_head};
use crate::sync::changesets::{
    CHANGESET_COLUMNS, ChangesetRecord, FileChangeRecord, changeset_from_row, mark_pushed,
};
use crate::sync::errors::{CONNECTION_FAILED, resolve_landed_errors};
use crate::sync::files::file_contents_in;
use crate::sync::links::{SyncLink, disable_link_in};

/// A commit attempt as stored.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub id: AttemptId,
    pub link_id: LinkId,
    /// running, pushed, nothing, conflict, failed, interrupted.
    pub status: String,
    pub changesets: Vec<ChangesetId>,
    pub files: Vec<FileChangeRecord>,
    pub task_id: Option<TaskId>,
    pub commit_id: Option<ObjectId>,
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
        commit: Option<ObjectId>,
        files: Vec<FileChangeRecord>,
        landed: Vec<Landed>,
    },
    /// Remote commits touched the same files; the changesets wait for a person or for the
    /// Git → reposync side. One sync error per file keeps both versions.
    Conflict {
        head: ObjectId,
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
    pub changeset: ChangesetId,
    pub commit: ObjectId,
}

/// Both versions of a file in conflict.
#[derive(Debug, Clone)]
pub struct ConflictRecord {
    pub path: String,
    pub ours: Option<Vec<u8>>,
    pub theirs: Option<Vec<u8>>,
}

const ATTEMPT_COLUMNS: &str =
    "id, link_id, status, changesets, files, task_id, commit_id, error, started_at, finished_at";

fn attempt_from_row(row: &AnyRow) -> Result<AttemptRecord, StoreError> {
    Ok(AttemptRecord {
        id: id_column(row, "id")?,
        link_id: id_column(row, "link_id")?,
        status: row.try_get("status")?,
        changesets: json_column(row, "changesets")?,
        files: json_column(row, "files")?,
        task_id: optional_id_column(row, "task_id")?,
        commit_id: optional_object_id_column(row, "commit_attempts", "commit_id")?,
        error: row.try_get("error")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
    })
}

/// How many of a branch's newest pushed changesets are looked at for commits not read back
/// yet. The Git -> reposync side reads every push within moments, so only a few are ever
/// unread.
const UNREAD_OWN_COMMITS: i64 = 2000;

/// Ends an attempt that pushed nothing.
async fn end_attempt(
    tx: &mut WriteTx,
    attempt_id: &AttemptId,
    status: &str,
    remote_head: Option<&ObjectId>,
    error: &str,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE commit_attempts SET status = $1, remote_head = $2, error = $3, finished_at = $4 WHERE id = $5",
    )
    .bind(status)
    .bind(remote_head.map(ObjectId::to_string))
    .bind(error)
    .bind(now)
    .bind(attempt_id.as_str())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Moves the changesets an attempt still carries to `status`, saying why.
async fn move_changesets(
    tx: &mut WriteTx,
    attempt_id: &AttemptId,
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
    .bind(attempt_id.as_str())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Store {
    /// Starts a commit attempt with every changeset of the link that is waiting, unless one is
    /// already running for the link. Returns the attempt, its changesets (oldest first) and
    /// the contents of the paths they touched, read in the same transaction: the commit
    /// carries exactly the changes of the changesets it names, none of a later one.
    pub async fn start_attempt(
        &self,
        link_id: &LinkId,
        fence: Option<&Fence>,
    ) -> Result<Option<StartedAttempt>, StoreError> {
        self.retrying("start_attempt", || self.start_attempt_once(link_id, fence))
            .await
    }

    async fn start_attempt_once(
        &self,
        link_id: &LinkId,
        fence: Option<&Fence>,
    ) -> Result<Option<StartedAttempt>, StoreError> {
        let now = self.now();
        let mut tx = self.begin_write().await?;
        if let Some(fence) = fence {
            check_fence(&mut tx, self, fence).await?;
        }
        let running: Option<AttemptId> =
            sqlx::query("SELECT id FROM commit_attempts WHERE link_id = $1 AND status = 'running'")
                .bind(link_id.as_str())
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| id_column(&r, "id"))
                .transpose()?;
        if running.is_some() {
            return Ok(None);
        }
        let changesets: Vec<ChangesetRecord> = sqlx::query(&format!(
            "SELECT {CHANGESET_COLUMNS} FROM changesets WHERE link_id = $1 AND status = 'waiting' ORDER BY created_at, id"
        ))
        .bind(link_id.as_str())
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(changeset_from_row)
        .collect::<Result<_, _>>()?;
        if changesets.is_empty() {
            return Ok(None);
        }
        let id: AttemptId = new_id();
        let ids: Vec<&ChangesetId> = changesets.iter().map(|c| &c.id).collect();
        let files: Vec<&FileChangeRecord> = changesets.iter().flat_map(|c| &c.files).collect();
        sqlx::query(
            "INSERT INTO commit_attempts (id, link_id, status, changesets, files, started_at) VALUES ($1, $2, 'running', $3, $4, $5)",
        )
        .bind(id.as_str())
        .bind(link_id.as_str())
        .bind(to_json(&ids)?)
        .bind(to_json(&files)?)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE changesets SET status = 'pushing', attempt_id = $1, updated_at = $2 WHERE link_id = $3 AND status = 'waiting'",
        )
        .bind(id.as_str())
        .bind(now)
        .bind(link_id.as_str())
        .execute(&mut *tx)
        .await?;
        let attempt = attempt_from_row(
            &sqlx::query(&format!(
                "SELECT {ATTEMPT_COLUMNS} FROM commit_attempts WHERE id = $1"
            ))
            .bind(id.as_str())
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
        attempt_id: &AttemptId,
        task_id: &TaskId,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE commit_attempts SET task_id = $1 WHERE id = $2")
            .bind(task_id.as_str())
            .bind(attempt_id.as_str())
            .write(&self.db)
            .await?;
        Ok(())
    }

    /// Ends an attempt and moves its changesets on, in one transaction.
    pub async fn finish_attempt(
        &self,
        attempt_id: &AttemptId,
        end: &AttemptEnd,
        fence: Option<&Fence>,
    ) -> Result<(), StoreError> {
        self.retrying("finish_attempt", || {
            self.finish_attempt_once(attempt_id, end, fence)
        })
        .await
    }

    async fn finish_attempt_once(
        &self,
        attempt_id: &AttemptId,
        end: &AttemptEnd,
        fence: Option<&Fence>,
    ) -> Result<(), StoreError> {
        let now = self.now();
        let mut tx = self.begin_write().await?;
        if let Some(fence) = fence {
            check_fence(&mut tx, self, fence).await?;
        }
        let row = sqlx::query("SELECT link_id, files FROM commit_attempts WHERE id = $1")
            .bind(attempt_id.as_str())
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| StoreError::NotFound {
                what: "commit attempt",
                name: attempt_id.to_string(),
            })?;
        let link_id: LinkId = id_column(&row, "link_id")?;
        // Every path the attempt's changesets touched, whatever became of it.
        let touched: Vec<FileChangeRecord> = json_column(&row, "files")?;
        let branch_id = branch_id_of_link(&mut tx, &link_id).await?;
        // A conflict with commits the Git -> reposync side has already read is settled: Git's
        // versions of our files were kept as `overridden` errors there, so reposync's change
        // goes out again on top of them.
        if let AttemptEnd::Conflict { head, .. } = end
            && processed_commit(&mut tx, branch_id.as_ref())
                .await?
                .as_ref()
                == Some(head)
        {
            let message = format!(
                "the remote moved to {head}, whose commits were already read from Git; pushing again on top of them"
            );
            sqlx::query(
                "UPDATE commit_attempts SET status = 'conflict', error = $1, remote_head = $2, finished_at = $3 WHERE id = $4",
            )
            .bind(&message)
            .bind(head.as_str())
            .bind(now)
            .bind(attempt_id.as_str())
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE changesets SET status = 'waiting', attempt_id = NULL, updated_at = $1 WHERE attempt_id = $2 AND status = 'pushing'",
            )
            .bind(now)
            .bind(attempt_id.as_str())
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
                .bind(recorded.as_ref().map(ObjectId::to_string))
                .bind(to_json(files)?)
                .bind(now)
                .bind(attempt_id.as_str())
                .execute(&mut *tx)
                .await?;
                for landed in landed {
                    mark_pushed(&mut tx, &landed.changeset, Some(&landed.commit), now).await?;
                }
                sqlx::query(
                    "UPDATE changesets SET status = 'pushed', commit_id = $1, error = NULL, updated_at = $2 WHERE attempt_id = $3 AND status = 'pushing'",
                )
                .bind(commit.as_ref().map(ObjectId::to_string))
                .bind(now)
                .bind(attempt_id.as_str())
                .execute(&mut *tx)
                .await?;
                let paths: Vec<&str> = touched.iter().map(|f| f.path.as_str()).collect();
                resolve_landed_errors(&mut tx, &link_id, &paths, now).await?;
                if let Some(commit) = &recorded {
                    sqlx::query(
                        "UPDATE sync_links SET base_commit = $1, updated_at = $2 WHERE id = $3",
                    )
                    .bind(commit.as_str())
                    .bind(now)
                    .bind(link_id.as_str())
                    .execute(&mut *tx)
                    .await?;
                    // The commit is read back like any other, so the Git -> reposync side's
                    // position (the next attempt's base) moves past it without a webhook.
                    if let Some(branch_id) = &branch_id {
                        queued_read = want_head(&mut tx, branch_id, Some(commit), now).await?;
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
                    .bind(link_id.as_str())
                    .bind(&file.path)
                    .execute(&mut *tx)
                    .await?;
                    sqlx::query(
                        "INSERT INTO sync_errors (id, link_id, attempt_id, path, code, message, ours, theirs, created_at)
                         VALUES ($1, $2, $3, $4, 'conflict', $5, $6, $7, $8)",
                    )
                    .bind(new_id::<SyncErrorId>().into_string())
                    .bind(link_id.as_str())
                    .bind(attempt_id.as_str())
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
                    queued_read = want_head(&mut tx, branch_id, Some(head), now).await?;
                }
            }
            AttemptEnd::Failed { code, message } => {
                let error = format!("{code}: {message}");
                end_attempt(&mut tx, attempt_id, "failed", None, &error, now).await?;
                move_changesets(&mut tx, attempt_id, "failed", &error, now).await?;
                sqlx::query(
                    "INSERT INTO sync_errors (id, link_id, attempt_id, code, message, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(new_id::<SyncErrorId>().into_string())
                .bind(link_id.as_str())
                .bind(attempt_id.as_str())
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
                .bind(attempt_id.as_str())
                .bind(link_id.as_str())
                .bind(CONNECTION_FAILED)
                .bind(connector_path)
                .execute(&mut *tx)
                .await?;
                if updated.rows_affected() == 0 {
                    sqlx::query(
                        "INSERT INTO sync_errors (id, link_id, attempt_id, path, code, message, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    )
                    .bind(new_id::<SyncErrorId>().into_string())
                    .bind(link_id.as_str())
                    .bind(attempt_id.as_str())
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
            .bind(link_id.as_str())
            .bind(CONNECTION_FAILED)
            .execute(&mut *tx)
            .await?;
        }
        let ended = if matches!(end, AttemptEnd::Pushed { .. }) {
            end_link_of_deleted_app(&mut tx, &link_id, now).await?
        } else {
            false
        };
        tx.commit().await?;
        if ended {
            tracing::info!(link = %link_id, "the application was deleted and its deletion pushed: its sync link ended");
        }
        if queued_read {
            self.inbox_changed();
        }
        Ok(())
    }

    /// Commits that reposync pushed to the branch of `link` and that the Git -> reposync side
    /// has not read back yet, newest first: they are reposync's own, never a conflict. They
    /// are read from the changesets, not the attempts: a push whose answer was lost is
    /// recorded only on the changesets it carried, by the attempt that found it.
    pub async fn unread_own_commits(&self, link: &SyncLink) -> Result<Vec<ObjectId>, StoreError> {
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
        .bind(link.connector_id.as_str())
        .bind(link.repo.clone().unwrap_or_default())
        .bind(&link.branch)
        .bind(UNREAD_OWN_COMMITS)
        .bind(branch.id.as_str())
        .read_all(&self.db)
        .await?
        .iter()
        .map(|r| object_id_column(r, "changesets", "commit_id"))
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

    /// Commit attempts, newest first, of the given links, or of all when none are given.
    pub async fn list_attempts(
        &self,
        link_ids: &[LinkId],
        limit: i64,
    ) -> Result<Vec<AttemptRecord>, StoreError> {
        let sql = format!("SELECT {ATTEMPT_COLUMNS} FROM commit_attempts");
        self.newest_of_links(&sql, "started_at", link_ids, limit, attempt_from_row)
            .await
    }
}

/// Ends the link of an application that no longer exists once nothing of it waits to be
/// pushed: the push that just landed carried its deletion. A new application of the same name
/// is then never linked by a link it did not ask for. Answers whether the link ended.
async fn end_link_of_deleted_app(
    tx: &mut WriteTx,
    link_id: &LinkId,
    now: i64,
) -> Result<bool, StoreError> {
    let deleted_app = sqlx::query(
        "SELECT 1 FROM sync_links l WHERE l.id = $1 AND l.enabled = 1 AND l.app <> ''
         AND NOT EXISTS (SELECT 1 FROM entities e WHERE e.app = l.app)
         AND NOT EXISTS (SELECT 1 FROM changesets c WHERE c.link_id = l.id AND c.status IN ('waiting', 'pushing', 'conflict'))",
    )
    .bind(link_id.as_str())
    .fetch_optional(&mut **tx)
    .await?
    .is_some();
    if deleted_app {
        disable_link_in(tx, link_id, now).await?;
    }
    Ok(deleted_app)
}
