use std::collections::{HashMap, HashSet};

use sqlx::Row;
use sqlx::any::AnyRow;

use reposync_model::connector_yaml;
use reposync_model::{EntityName, LinkId, Person, TaskId};

use crate::cluster::{Fence, check_fence};
use crate::error::StoreError;
use crate::gate::{Read, WriteTx};
use crate::inbound::commits::{
    FileError, InboundCommit, pending_paths, record_branch_errors_in, record_inbound,
};
use crate::records::{ChangeOutcome, EntityChange, EntityRecord, EntityWrite};
use crate::rows::new_id;
use crate::store::Store;
use crate::sync::backlog::LinkBacklog;
use crate::sync::branches::branch_id_of_link;
use crate::sync::changesets::FileChangeRecord;
use crate::sync::links::{NewSyncLink, SyncLink, insert_link};
use crate::sync::outbox::record_changesets;
use crate::sync::reads::{BranchRead, record_read_in};
use crate::tasks::finish_local_task_in;

/// Where a batch comes from: a change made in reposync (which goes out to Git), or a commit
/// read from Git (which does not).
#[derive(Clone, Copy)]
enum BatchOrigin<'a> {
    Local {
        dry_run: bool,
        by: Option<&'a Person>,
    },
    /// A commit read from Git, applied under the branch's lease when one is named.
    Git(&'a InboundCommit, Option<&'a Fence>),
    /// Enabling sync: the links of the set, with ids `.0` in the set's order, are created in
    /// the batch's transaction.
    Enable(&'a [LinkId], &'a EnablingSet<'a>),
}

/// Everything enabling sync writes, committed together or not at all: the branch's files
/// taken into the tree and the application's `Index.yaml` (`changes`), the link with its
/// first changeset, the errors about entries of the branch reposync cannot hold, and how the
/// branch was read.
#[derive(Debug, Clone, Copy)]
pub struct Enabling<'a> {
    pub changes: &'a [EntityChange],
    pub link: &'a NewSyncLink,
    pub initial_files: &'a [FileChangeRecord],
    /// Errors of the branch read at the link's base commit; their link is the new one.
    pub branch_errors: &'a [FileError],
    /// How the branch was read, when the delegate said; recorded with the new link. The
    /// branch's row may only come into being in this transaction, and an enabling refused
    /// leaves nothing behind, its read included.
    pub read: Option<&'a BranchRead>,
    /// The task that asked for it, which succeeds in the same transaction: a task still
    /// running after a crash is work not done, safe to run again.
    pub task: Option<EnablingTask<'a>>,
    /// The person who asked for it, whom its changesets record.
    pub by: Option<&'a Person>,
}

/// The running local task an [`Enabling`] ends, and how its result reads once the link
/// exists: given the link, what it starts with (its first changeset, its branch's errors),
/// and what became of each file of the batch.
#[derive(Clone, Copy)]
pub struct EnablingTask<'a> {
    pub id: &'a TaskId,
    pub result: &'a EnablingResult<'a>,
}

/// How an enabling task's result is written (see [`EnablingTask`]).
pub type EnablingResult<'a> =
    dyn Fn(&SyncLink, LinkBacklog, &[(String, ChangeOutcome)]) -> String + Send + Sync + 'a;

impl std::fmt::Debug for EnablingTask<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnablingTask")
            .field("id", &self.id)
            .finish()
    }
}

/// One link an [`EnablingSet`] creates, and what it starts with.
#[derive(Debug, Clone, Copy)]
pub struct LinkStart<'a> {
    pub link: &'a NewSyncLink,
    /// The files of its first changeset.
    pub initial_files: &'a [FileChangeRecord],
    /// Errors of the branch read at the link's base commit; their link is the new one.
    pub branch_errors: &'a [FileError],
}

/// Enabling sync for several scopes of one branch at once (the account and every
/// application, from one read of the branch), committed together or not at all: the
/// branch's files taken into the tree and the applications' `Index.yaml` files (`changes`),
/// every link with its first changeset and its errors, the one read, recorded with the first
/// link, and the task's end. An [`Enabling`] is a set of one.
#[derive(Debug, Clone, Copy)]
pub struct EnablingSet<'a> {
    pub changes: &'a [EntityChange],
    /// The links to create; none is allowed (every scope was linked already), which only ends
    /// the task.
    pub links: &'a [LinkStart<'a>],
    /// How the branch was read, when the delegate said: one read enabled every link, so it is
    /// recorded once, naming the first.
    pub read: Option<&'a BranchRead>,
    pub task: Option<EnablingSetTask<'a>>,
    pub by: Option<&'a Person>,
}

/// The running local task an [`EnablingSet`] ends, and how its result reads once the links
/// exist: given each link with what it starts with, in the set's order, and what became of
/// each file of the batch.
#[derive(Clone, Copy)]
pub struct EnablingSetTask<'a> {
    pub id: &'a TaskId,
    pub result: &'a EnablingSetResult<'a>,
}

/// How an enabling set's task result is written (see [`EnablingSetTask`]).
pub type EnablingSetResult<'a> =
    dyn Fn(&[(SyncLink, LinkBacklog)], &[(String, ChangeOutcome)]) -> String + Send + Sync + 'a;

impl std::fmt::Debug for EnablingSetTask<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnablingSetTask")
            .field("id", &self.id)
            .finish()
    }
}

const ENTITY_COLUMNS: &str = "path, kind, app, content, revision, created_at, updated_at";

/// The paths a batch writes (with the references each holds) and deletes.
struct BatchPaths<'a> {
    put: HashMap<String, &'a [(String, String)]>,
    deleted: HashSet<String>,
}

impl<'a> BatchPaths<'a> {
    fn of(changes: &'a [EntityChange]) -> Result<Self, StoreError> {
        let mut put: HashMap<String, &'a [(String, String)]> = HashMap::new();
        let mut deleted = HashSet::new();
        let mut add_put = |path: String, refs: &'a [(String, String)]| {
            if put.insert(path.clone(), refs).is_some() {
                return Err(StoreError::Invalid {
                    field: path,
                    message: "is given more than once in one batch".into(),
                });
            }
            Ok(())
        };
        for change in changes {
            match change {
                EntityChange::Put(write) => add_put(write.path.clone(), &write.references)?,
                EntityChange::PutConnector(write) => {
                    add_put(write.path(), &[])?;
                    // A rename deletes the file at the old name.
                    if let Some(current) = &write.current
                        && current.spec.name != write.spec.name
                    {
                        deleted.insert(connector_yaml::path(&current.spec.name));
                    }
                }
                EntityChange::Delete { path } => {
                    deleted.insert(path.clone());
                }
                EntityChange::DeleteConnector { name } => {
                    deleted.insert(connector_yaml::path(name));
                }
            }
        }
        if let Some(both) = deleted.iter().find(|p| put.contains_key(*p)) {
            return Err(StoreError::Invalid {
                field: both.clone(),
                message: "is both written and deleted in one batch".into(),
            });
        }
        Ok(BatchPaths { put, deleted })
    }
}

impl Store {
    /// Applies a batch of changes in one transaction: all of them, or none.
    ///
    /// References are checked against the tree as it will be after the batch: a reference to
    /// a path that neither exists nor is put by the batch, or to a path the batch deletes,
    /// fails the batch with [`StoreError::Invalid`] naming the file and field. A delete of a
    /// path that a file outside the batch still refers to fails with [`StoreError::InUse`].
    /// Connectors are files of the tree too (Source Repo Providers), written in the same
    /// transaction. Everything is read with one query per table, never per file. The
    /// changesets the batch writes record `by`, the person who made the change, if one did.
    pub async fn apply_entities(
        &self,
        changes: &[EntityChange],
        dry_run: bool,
        by: Option<&Person>,
    ) -> Result<Vec<(String, ChangeOutcome)>, StoreError> {
        self.apply_batch(changes, BatchOrigin::Local { dry_run, by })
            .await
    }

    /// Applies a commit read from Git: the changes, and the record of what became of the
    /// commit (its files' errors, new links, the branch's position), in one transaction. No
    /// changeset is written: the files came from the branch, so there is nothing to push
    /// back. If reposync has meanwhile accepted a change to one of these files that is not
    /// pushed yet, nothing is applied and [`StoreError::Conflict`] asks the caller to plan the
    /// commit again: reposync's change wins.
    pub async fn apply_from_git(
        &self,
        changes: &[EntityChange],
        inbound: &InboundCommit,
        fence: Option<&Fence>,
    ) -> Result<Vec<(String, ChangeOutcome)>, StoreError> {
        self.apply_batch(changes, BatchOrigin::Git(inbound, fence))
            .await
    }

    /// Enables sync as [`Enabling`] describes, in one transaction. If anything fails (the
    /// scope got a link meanwhile, a write is refused), nothing is written.
    pub async fn enable_link(
        &self,
        enabling: &Enabling<'_>,
    ) -> Result<(SyncLink, Vec<(String, ChangeOutcome)>), StoreError> {
        let start = [LinkStart {
            link: enabling.link,
            initial_files: enabling.initial_files,
            branch_errors: enabling.branch_errors,
        }];
        let result =
            |links: &[(SyncLink, LinkBacklog)], outcomes: &[(String, ChangeOutcome)]| match (
                enabling.task,
                links,
            ) {
                (Some(task), [(link, backlog)]) => (task.result)(link, *backlog, outcomes),
                _ => String::new(),
            };
        let set = EnablingSet {
            changes: enabling.changes,
            links: &start,
            read: enabling.read,
            task: enabling.task.map(|task| EnablingSetTask {
                id: task.id,
                result: &result,
            }),
            by: enabling.by,
        };
        let (links, outcomes) = self.enable_links(&set).await?;
        let link = links.into_iter().next().ok_or_else(|| {
            StoreError::Corrupt("an enabling of one link created none".to_owned())
        })?;
        Ok((link, outcomes))
    }

    /// Enables sync for every link of [`EnablingSet`] in one transaction, and answers the
    /// links in the set's order. If anything fails (a scope got a link meanwhile, a write is
    /// refused), nothing is written: no link, no file, no read, and the task still runs.
    pub async fn enable_links(
        &self,
        set: &EnablingSet<'_>,
    ) -> Result<(Vec<SyncLink>, Vec<(String, ChangeOutcome)>), StoreError> {
        let ids: Vec<LinkId> = set.links.iter().map(|_| new_id()).collect();
        let outcomes = self
            .apply_batch(set.changes, BatchOrigin::Enable(&ids, set))
            .await?;
        let mut links = Vec::with_capacity(ids.len());
        for id in &ids {
            links.push(self.link_by_id(id).await?);
        }
        Ok((links, outcomes))
    }

    /// Applies a batch in one transaction, run again when the database gave it up for
    /// another (see [`Store::retrying`]).
    async fn apply_batch(
        &self,
        changes: &[EntityChange],
        origin: BatchOrigin<'_>,
    ) -> Result<Vec<(String, ChangeOutcome)>, StoreError> {
        self.retrying("apply_batch", || self.apply_batch_once(changes, origin))
            .await
    }

    async fn apply_batch_once(
        &self,
        changes: &[EntityChange],
        origin: BatchOrigin<'_>,
    ) -> Result<Vec<(String, ChangeOutcome)>, StoreError> {
        let batch = BatchPaths::of(changes)?;
        let mut tx = self.begin_write().await?;
        if let BatchOrigin::Git(inbound, fence) = origin {
            if let Some(fence) = fence {
                check_fence(&mut tx, self, fence).await?;
            }
            let pending = pending_paths(&mut tx, &inbound.branch_id).await?;
            if let Some(path) = batch
                .put
                .keys()
                .chain(batch.deleted.iter())
                .find(|p| pending.contains(*p))
            {
                return Err(StoreError::Conflict {
                    what: "file",
                    name: path.clone(),
                });
            }
        }
        // Only what the batch touches is read: every path (to resolve references), the
        // contents of the files it writes, and the referrers of the paths it deletes. A
        // one-file change must not read the whole tree.
        let all_paths: HashSet<String> = sqlx::query("SELECT path FROM entities")
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|r| r.try_get("path"))
            .collect::<Result<_, sqlx::Error>>()?;
        let put_paths: Vec<&str> = batch.put.keys().map(String::as_str).collect();
        let mut existing: HashMap<String, (String, Vec<u8>)> = HashMap::new();
        for chunk in put_paths.chunks(LOOKUP_CHUNK) {
            let sql = format!(
                "SELECT id, path, content FROM entities WHERE path IN ({})",
                placeholders(chunk.len())
            );
            let mut query = sqlx::query(&sql);
            for path in chunk {
                query = query.bind(*path);
            }
            for row in query.fetch_all(&mut *tx).await? {
                existing.insert(
                    row.try_get("path")?,
                    (row.try_get("id")?, row.try_get("content")?),
                );
            }
        }
        let deleted_list: Vec<&str> = batch.deleted.iter().map(String::as_str).collect();
        let mut referrers: Vec<(String, String)> = Vec::new();
        for chunk in deleted_list.chunks(LOOKUP_CHUNK) {
            let sql = format!(
                "SELECT e.path AS from_path, r.to_path AS to_path FROM entity_references r JOIN entities e ON e.id = r.from_id WHERE r.to_path IN ({})",
                placeholders(chunk.len())
            );
            let mut query = sqlx::query(&sql);
            for path in chunk {
                query = query.bind(*path);
            }
            for row in query.fetch_all(&mut *tx).await? {
                referrers.push((row.try_get("from_path")?, row.try_get("to_path")?));
            }
        }
        let connector_rows: Vec<(String, String, i64)> =
            sqlx::query("SELECT id, name, revision FROM connectors")
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|r| Ok((r.try_get("id")?, r.try_get("name")?, r.try_get("revision")?)))
                .collect::<Result<_, sqlx::Error>>()?;
        let connectors: HashSet<String> = connector_rows
            .iter()
            .filter_map(|(_, name, _)| EntityName::parse(name).ok())
            .map(|name| connector_yaml::path(&name))
            .collect();
        let revisions: HashMap<&str, i64> = connector_rows
            .iter()
            .map(|(id, _, revision)| (id.as_str(), *revision))
            .collect();
        // A connector change computed from a stale read is refused, even one that would
        // change nothing against that read.
        for change in changes {
            if let EntityChange::PutConnector(write) = change
                && let Some(current) = &write.current
                && revisions.get(current.id.as_str()) != Some(&current.revision)
            {
                return Err(StoreError::Conflict {
                    what: "connector",
                    name: current.spec.name.to_string(),
                });
            }
        }

        let exists_now = |path: &str| all_paths.contains(path) || connectors.contains(path);
        let exists_after = |path: &str| {
            batch.put.contains_key(path) || (exists_now(path) && !batch.deleted.contains(path))
        };
        let mut put_paths: Vec<&String> = batch.put.keys().collect();
        put_paths.sort();
        for path in put_paths {
            for (field, target) in batch.put[path] {
                if !exists_after(target) {
                    return Err(StoreError::Invalid {
                        field: format!("{path}: {field}"),
                        message: format!("refers to {target}, which does not exist"),
                    });
                }
            }
        }
        let mut deleted_paths: Vec<&String> = batch.deleted.iter().collect();
        deleted_paths.sort();
        for path in deleted_paths {
            if !exists_now(path) {
                return Err(StoreError::NotFound {
                    what: "entity",
                    name: path.clone(),
                });
            }
            // Referrers that stay: not deleted themselves, and not rewritten without the
            // reference by this batch.
            let mut from: Vec<String> = referrers
                .iter()
                .filter(|(from, to)| to == path && !batch.deleted.contains(from))
                .filter(|(from, _)| match batch.put.get(from) {
                    Some(refs) => refs.iter().any(|(_, t)| t == path),
                    None => true,
                })
                .map(|(from, _)| from.clone())
                .collect();
            from.sort();
            from.dedup();
            if !from.is_empty() {
                return Err(StoreError::InUse {
                    what: "entity",
                    name: path.clone(),
                    user_kind: "file",
                    used_by: from,
                });
            }
        }

        let now = self.now();
        let mut outcomes = Vec::with_capacity(changes.len());
        // New files are inserted after the loop, many rows per statement: an import is
        // mostly new files, and one statement per file and per reference is what made it slow.
        let mut created: Vec<(String, &EntityWrite)> = Vec::new();
        for change in changes {
            match change {
                EntityChange::Delete { path } => {
                    sqlx::query("DELETE FROM entities WHERE path = $1")
                        .bind(path)
                        .execute(&mut *tx)
                        .await?;
                    outcomes.push((path.clone(), ChangeOutcome::Deleted));
                }
                EntityChange::DeleteConnector { name } => {
                    // Sync links name their connector; one still linked (or once linked, whose
                    // history keeps it) is refused by name rather than by the database.
                    let links = sqlx::query(
                        "SELECT l.app AS app, l.enabled AS enabled FROM sync_links l
                         JOIN connectors c ON c.id = l.connector_id WHERE c.name = $1
                         ORDER BY l.enabled DESC, l.app",
                    )
                    .bind(name.as_str())
                    .fetch_all(&mut *tx)
                    .await?;
                    if let Some(first) = links.first() {
                        let live: i64 = first.try_get("enabled")?;
                        let mut used_by = Vec::new();
                        for link in &links {
                            let app: String = link.try_get("app")?;
                            let scope = reposync_model::scope::Scope::of_app(
                                (!app.is_empty()).then_some(app.as_str()),
                            );
                            if !used_by.contains(&scope.to_string()) {
                                used_by.push(scope.to_string());
                            }
                        }
                        tx.rollback().await?;
                        return Err(StoreError::InUse {
                            what: "connector",
                            name: name.to_string(),
                            user_kind: if live == 1 {
                                "sync link"
                            } else {
                                "earlier sync link"
                            },
                            used_by,
                        });
                    }
                    sqlx::query("DELETE FROM connectors WHERE name = $1")
                        .bind(name.as_str())
                        .execute(&mut *tx)
                        .await?;
                    outcomes.push((connector_yaml::path(name), ChangeOutcome::Deleted));
                }
                EntityChange::PutConnector(write) => {
                    let outcome = if write.is_noop() {
                        ChangeOutcome::Unchanged
                    } else {
                        self.write_connector(&mut tx, write, now).await?;
                        if write.current.is_some() {
                            ChangeOutcome::Changed
                        } else {
                            ChangeOutcome::Created
                        }
                    };
                    if let Some(current) = &write.current
                        && current.spec.name != write.spec.name
                    {
                        outcomes.push((
                            connector_yaml::path(&current.spec.name),
                            ChangeOutcome::Deleted,
                        ));
                    }
                    outcomes.push((write.path(), outcome));
                }
                EntityChange::Put(write) => {
                    let outcome = match existing.get(&write.path) {
                        Some((_, content)) if *content == write.content => ChangeOutcome::Unchanged,
                        Some((id, _)) => {
                            sqlx::query(
                                "UPDATE entities SET content = $1, kind = $2, app = $3, revision = revision + 1, updated_at = $4 WHERE id = $5",
                            )
                            .bind(write.content.clone())
                            .bind(&write.kind)
                            .bind(write.app.clone().unwrap_or_default())
                            .bind(now)
                            .bind(id)
                            .execute(&mut *tx)
                            .await?;
                            replace_references(&mut tx, id, &write.references).await?;
                            ChangeOutcome::Changed
                        }
                        None => {
                            created.push((new_id(), write));
                            ChangeOutcome::Created
                        }
                    };
                    outcomes.push((write.path.clone(), outcome));
                }
            }
        }
        insert_created(&mut tx, &created, now).await?;
        // A dry run does all the work, then throws it away: the outcomes are exactly what a
        // real run would report.
        match origin {
            BatchOrigin::Local { dry_run: true, .. } => tx.rollback().await?,
            BatchOrigin::Local { dry_run: false, by } => {
                let changesets = record_changesets(&mut tx, &outcomes, by, now).await?;
                tx.commit().await?;
                if changesets > 0 {
                    self.outbox_changed();
                }
            }
            BatchOrigin::Git(inbound, _) => {
                let requeued = record_inbound(&mut tx, inbound, now).await?;
                tx.commit().await?;
                if requeued > 0 {
                    self.outbox_changed();
                }
            }
            BatchOrigin::Enable(ids, set) => {
                record_changesets(&mut tx, &outcomes, set.by, now).await?;
                let mut linked: Vec<(SyncLink, LinkBacklog)> = Vec::with_capacity(ids.len());
                for (id, start) in ids.iter().zip(set.links) {
                    let link = start.link;
                    insert_link(&mut tx, id, link, start.initial_files, set.by, now).await?;
                    if let (Some(head), false) = (&link.base_commit, start.branch_errors.is_empty())
                    {
                        let errors: Vec<FileError> = start
                            .branch_errors
                            .iter()
                            .map(|e| FileError {
                                link_id: Some(id.clone()),
                                ..e.clone()
                            })
                            .collect();
                        record_branch_errors_in(&mut tx, link, head, &errors, now).await?;
                    }
                    let created = SyncLink {
                        id: id.clone(),
                        app: link.app.clone(),
                        connector_id: link.connector_id.clone(),
                        repo: link.repo.clone(),
                        branch: link.branch.clone(),
                        base_commit: link.base_commit.clone(),
                        enabled: true,
                        created_at: now,
                        updated_at: now,
                    };
                    // A new link's backlog is what this transaction gave it.
                    let backlog = LinkBacklog {
                        waiting: i64::from(!start.initial_files.is_empty()),
                        open_errors: i64::try_from(start.branch_errors.len()).unwrap_or(i64::MAX),
                        ..LinkBacklog::default()
                    };
                    linked.push((created, backlog));
                }
                // One read enabled them all: it is recorded once, with the first link.
                // `insert_link` made sure the link's branch exists.
                if let (Some(read), Some(first)) = (set.read, ids.first())
                    && let Some(branch_id) = branch_id_of_link(&mut tx, first).await?
                {
                    record_read_in(&mut tx, &branch_id, Some(first), read, now).await?;
                }
                if let Some(task) = set.task {
                    let result = (task.result)(&linked, &outcomes);
                    finish_local_task_in(&mut tx, task.id, true, &result, now).await?;
                }
                tx.commit().await?;
                self.outbox_changed();
            }
        }
        Ok(outcomes)
    }

    /// Every stored path (without contents).
    pub async fn entity_paths(&self) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT path FROM entities")
            .read_all(&self.db)
            .await?;
        rows.iter()
            .map(|r| r.try_get("path").map_err(StoreError::from))
            .collect()
    }

    /// The names directly inside the folder `prefix` (which ends with `/`), sorted: a file's
    /// name, or a folder's followed by `/`. The database works out the next path segment itself, and
    /// the range on `path` uses its index, so a folder of a large tree lists without reading
    /// every path into the program.
    pub async fn tree_children(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        // Every path inside the folder sorts between `prefix` and `prefix` with its final `/`
        // (0x2F) raised to `0` (0x30).
        let upper = format!("{}0", prefix.trim_end_matches('/'));
        let start = i64::try_from(prefix.len() + 1).unwrap_or(i64::MAX);
        let rows = sqlx::query(&format!(
            "SELECT DISTINCT CASE WHEN {slash} > 0
                        THEN substr(path, CAST($2 AS INTEGER), {slash})
                        ELSE substr(path, CAST($2 AS INTEGER)) END AS child
                 FROM entities WHERE path >= $1 AND path < $3 ORDER BY child",
            slash = self
                .db
                .backend()
                .position("substr(path, CAST($2 AS INTEGER))", "'/'"),
        ))
        .bind(prefix)
        .bind(start)
        .bind(&upper)
        .read_all(&self.db)
        .await?;
        rows.iter()
            .map(|r| r.try_get("child").map_err(StoreError::from))
            .collect()
    }

    /// The names of the applications that have files, sorted.
    pub async fn app_names(&self) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT DISTINCT app FROM entities WHERE app <> '' ORDER BY app")
            .read_all(&self.db)
            .await?;
        rows.iter()
            .map(|r| r.try_get("app").map_err(StoreError::from))
            .collect()
    }

    /// The paths holding `text`, case-insensitively, sorted, at most `limit`.
    pub async fn search_paths(&self, text: &str, limit: i64) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT path FROM entities WHERE {} > 0 ORDER BY path LIMIT $2",
            self.db.backend().position("lower(path)", "lower($1)")
        ))
        .bind(text)
        .bind(limit)
        .read_all(&self.db)
        .await?;
        rows.iter()
            .map(|r| r.try_get("path").map_err(StoreError::from))
            .collect()
    }

    /// One file by path.
    pub async fn get_entity(&self, path: &str) -> Result<EntityRecord, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {ENTITY_COLUMNS} FROM entities WHERE path = $1"
        ))
        .bind(path)
        .read_optional(&self.db)
        .await?
        .ok_or_else(|| StoreError::NotFound {
            what: "entity",
            name: path.to_owned(),
        })?;
        entity_from_row(&row)
    }

    /// Every file, or one application's, by path.
    pub async fn list_entities(&self, app: Option<&str>) -> Result<Vec<EntityRecord>, StoreError> {
        let rows = match app {
            Some(app) => {
                sqlx::query(&format!(
                    "SELECT {ENTITY_COLUMNS} FROM entities WHERE app = $1 ORDER BY path"
                ))
                .bind(app)
                .read_all(&self.db)
                .await?
            }
            None => {
                sqlx::query(&format!(
                    "SELECT {ENTITY_COLUMNS} FROM entities ORDER BY path"
                ))
                .read_all(&self.db)
                .await?
            }
        };
        rows.iter().map(entity_from_row).collect()
    }

    /// The paths of the files that refer to `path`.
    pub async fn entity_referrers(&self, path: &str) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT DISTINCT e.path AS path FROM entity_references r JOIN entities e ON e.id = r.from_id
             WHERE r.to_path = $1 ORDER BY e.path",
        )
        .bind(path)
        .read_all(&self.db)
        .await?;
        rows.iter()
            .map(|r| r.try_get("path").map_err(StoreError::from))
            .collect()
    }
}

/// Rows per multi-row INSERT: 7 parameters a row stays far below SQLite's 32,766.
const INSERT_CHUNK: usize = 500;

/// Paths per `IN (…)` lookup, well under SQLite's limit on bound parameters.
const LOOKUP_CHUNK: usize = 500;

/// `$1, $2, …, $n`.
fn placeholders(n: usize) -> String {
    crate::rows::placeholders_from(1, n)
}

async fn insert_created(
    tx: &mut WriteTx,
    created: &[(String, &EntityWrite)],
    now: i64,
) -> Result<(), StoreError> {
    for chunk in created.chunks(INSERT_CHUNK) {
        let values: Vec<String> = (0..chunk.len())
            .map(|i| {
                let p = i * 6;
                format!(
                    "(${}, ${}, ${}, ${}, ${}, 1, ${}, ${})",
                    p + 1,
                    p + 2,
                    p + 3,
                    p + 4,
                    p + 5,
                    p + 6,
                    p + 6
                )
            })
            .collect();
        let sql = format!(
            "INSERT INTO entities (id, path, kind, app, content, revision, created_at, updated_at) VALUES {}",
            values.join(", ")
        );
        let mut query = sqlx::query(&sql);
        for (id, write) in chunk {
            query = query
                .bind(id.clone())
                .bind(write.path.clone())
                .bind(write.kind.clone())
                .bind(write.app.clone().unwrap_or_default())
                .bind(write.content.clone())
                .bind(now);
        }
        query.execute(&mut **tx).await?;
    }
    let references: Vec<(&str, &str, &str)> = created
        .iter()
        .flat_map(|(id, write)| {
            write
                .references
                .iter()
                .map(move |(f, t)| (id.as_str(), f.as_str(), t.as_str()))
        })
        .collect();
    for chunk in references.chunks(INSERT_CHUNK) {
        let values: Vec<String> = (0..chunk.len())
            .map(|i| format!("(${}, ${}, ${})", i * 3 + 1, i * 3 + 2, i * 3 + 3))
            .collect();
        let sql = format!(
            "INSERT INTO entity_references (from_id, field, to_path) VALUES {}",
            values.join(", ")
        );
        let mut query = sqlx::query(&sql);
        for (id, field, target) in chunk {
            query = query
                .bind(id.to_string())
                .bind(field.to_string())
                .bind(target.to_string());
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

async fn replace_references(
    tx: &mut WriteTx,
    id: &str,
    references: &[(String, String)],
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM entity_references WHERE from_id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    for (field, target) in references {
        sqlx::query("INSERT INTO entity_references (from_id, field, to_path) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(field)
            .bind(target)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

fn entity_from_row(row: &AnyRow) -> Result<EntityRecord, StoreError> {
    Ok(EntityRecord {
        path: row.try_get("path")?,
        kind: row.try_get("kind")?,
        app: Some(row.try_get::<String, _>("app")?).filter(|a| !a.is_empty()),
        content: row.try_get("content")?,
        revision: row.try_get("revision")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}
