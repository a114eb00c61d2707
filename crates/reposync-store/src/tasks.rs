use std::time::Duration;

use reposync_model::{ConnectorId, TaskId};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::error::StoreError;
use crate::gate::{Read, Write, WriteTx};
use crate::rows::{id_column, new_id};
use crate::store::Store;

/// Where a task is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
}

impl TaskStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Queued => "queued",
            TaskStatus::Running => "running",
            TaskStatus::Succeeded => "succeeded",
            TaskStatus::Failed => "failed",
        }
    }

    fn parse(text: &str) -> Result<TaskStatus, StoreError> {
        match text {
            "queued" => Ok(TaskStatus::Queued),
            "running" => Ok(TaskStatus::Running),
            "succeeded" => Ok(TaskStatus::Succeeded),
            "failed" => Ok(TaskStatus::Failed),
            other => Err(StoreError::Corrupt(format!(
                "unknown task status {other:?}"
            ))),
        }
    }

    /// Whether the task will not change any more.
    pub fn is_final(self) -> bool {
        matches!(self, TaskStatus::Succeeded | TaskStatus::Failed)
    }
}

/// A task to enqueue.
#[derive(Debug, Clone)]
pub struct NewTask {
    pub kind: String,
    /// JSON naming what to work on; never credentials.
    pub payload: String,
    /// A delegate must have every one of these to run the task.
    pub selectors: Vec<String>,
    pub max_attempts: i64,
    /// The delegate that should have the first chance at it, for `PREFER_FOR`.
    pub prefer: Option<String>,
    /// The delegate that should have the last chance at it, after `AVOID_FOR`.
    pub avoid: Option<String>,
}

/// Which tasks a delegate may run, judged by the selectors a task asks for.
///
/// This is the one definition of "qualifies": the claim, the hub's check that a connected
/// delegate can take a task at all, and its choice of a preferred delegate all use it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Eligibility {
    /// The delegate's selectors, normalised (its name and host name among them where they
    /// count).
    pub selectors: Vec<String>,
    /// For a delegate whose token is restricted, the selectors that token allows.
    pub restricted_to: Option<Vec<String>>,
}

impl Eligibility {
    /// A delegate with these selectors whose token is not restricted.
    pub fn unrestricted(selectors: Vec<String>) -> Eligibility {
        Eligibility {
            selectors,
            restricted_to: None,
        }
    }

    /// Whether the delegate may run a task that asks for `task_selectors`: it has every one
    /// of them and, when its token is restricted, the task asks for at least one selector and
    /// the token allows every one. A task that asks for none could be any connector's, so a
    /// restricted token never gets it.
    pub fn admits(&self, task_selectors: &[String]) -> bool {
        let has_all = task_selectors.iter().all(|s| self.selectors.contains(s));
        match &self.restricted_to {
            None => has_all,
            Some(allowed) => {
                has_all
                    && !task_selectors.is_empty()
                    && task_selectors.iter().all(|s| allowed.contains(s))
            }
        }
    }
}

/// How long only the preferred delegate may claim a task.
pub const PREFER_FOR: std::time::Duration = std::time::Duration::from_millis(200);
/// How long the avoided delegate is kept from a task, while others may take it.
pub const AVOID_FOR: std::time::Duration = std::time::Duration::from_secs(2);

/// What a claim found.
#[derive(Debug, Clone)]
pub enum Claim {
    Task(TaskRecord),
    /// Nothing for this delegate now.
    Nothing,
    /// A task this delegate may take only after a while (another delegate has the first
    /// chance at it): look again then.
    Later(std::time::Duration),
}

impl Claim {
    /// The task claimed, if one was.
    pub fn task(self) -> Option<TaskRecord> {
        match self {
            Claim::Task(task) => Some(task),
            Claim::Nothing | Claim::Later(_) => None,
        }
    }
}

/// A task as stored.
#[derive(Debug, Clone)]
pub struct TaskRecord {
    pub id: TaskId,
    pub kind: String,
    pub payload: String,
    pub selectors: Vec<String>,
    pub status: TaskStatus,
    pub delegate: Option<String>,
    pub attempts: i64,
    pub max_attempts: i64,
    pub result: Option<String>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

const TASK_COLUMNS: &str = "id, kind, payload, selectors, status, delegate, attempts, max_attempts, result, created_at, started_at, finished_at";

/// How many queued tasks one claim looks at. Selector matching happens in Rust (it is a subset
/// test that portable SQL does badly), so a claim reads a window of the oldest tasks.
const CLAIM_WINDOW: i64 = 64;

impl Store {
    /// Adds a task to the queue.
    pub async fn enqueue_task(&self, task: &NewTask) -> Result<TaskRecord, StoreError> {
        let id: TaskId = new_id();
        let selectors = serde_json::to_string(&task.selectors)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        sqlx::query(
            "INSERT INTO tasks (id, kind, payload, selectors, status, attempts, max_attempts, created_at, prefer, avoid)
             VALUES ($1, $2, $3, $4, 'queued', 0, $5, $6, $7, $8)",
        )
        .bind(id.as_str())
        .bind(&task.kind)
        .bind(&task.payload)
        .bind(selectors)
        .bind(task.max_attempts)
        .bind(self.now())
        .bind(task.prefer.clone())
        .bind(task.avoid.clone())
        .write(&self.db)
        .await?;
        self.get_task(&id).await
    }

    /// Records work the server runs itself (enabling sync) as a task that is already
    /// running: no delegate claims it (it is not queued) and no lease expires it (it has none).
    /// The work ends it, or after a crash [`Store::take_up_local_tasks`] finds it again.
    pub async fn start_local_task(
        &self,
        kind: &str,
        payload: &str,
    ) -> Result<TaskRecord, StoreError> {
        let id: TaskId = new_id();
        let now = self.now();
        sqlx::query(
            "INSERT INTO tasks (id, kind, payload, selectors, status, attempts, max_attempts, created_at, started_at, replica)
             VALUES ($1, $2, $3, '[]', 'running', 1, 1, $4, $5, $6)",
        )
        .bind(id.as_str())
        .bind(kind)
        .bind(payload)
        .bind(now)
        .bind(now)
        .bind(self.replica().as_str())
        .write(&self.db)
        .await?;
        self.get_task(&id).await
    }

    /// The local tasks of `kind` still running, oldest first, whoever runs them.
    pub async fn running_local_tasks(&self, kind: &str) -> Result<Vec<TaskRecord>, StoreError> {
        sqlx::query(&format!(
            "SELECT {TASK_COLUMNS} FROM tasks WHERE kind = $1 AND status = 'running' AND delegate IS NULL ORDER BY created_at, id"
        ))
        .bind(kind)
        .read_all(&self.db)
        .await?
        .iter()
        .map(task_from_row)
        .collect()
    }

    /// The local tasks of `kind` that nobody runs any more, oldest first, now this
    /// replica's to run again: at a start, the ones its own stop or crash cut off (and any
    /// from before replicas were recorded); at any time, those of replicas that are gone.
    /// Each is taken by a conditional update, so two replicas never take up the same one.
    pub async fn take_up_local_tasks(
        &self,
        kind: &str,
        at_start: bool,
    ) -> Result<Vec<TaskRecord>, StoreError> {
        let me = self.replica().as_str().to_owned();
        let gone = self.gone_replicas().await?;
        let rows = sqlx::query(&format!(
            "SELECT {TASK_COLUMNS}, COALESCE(replica, '') AS runner FROM tasks
             WHERE kind = $1 AND status = 'running' AND delegate IS NULL ORDER BY created_at, id"
        ))
        .bind(kind)
        .read_all(&self.db)
        .await?;
        let mut taken = Vec::new();
        for row in &rows {
            // '' is a task recorded before replicas were.
            let runner: String = row.try_get("runner")?;
            let orphaned = if runner.is_empty() || runner == me {
                at_start
            } else {
                gone.contains(&runner)
            };
            if !orphaned {
                continue;
            }
            let task = task_from_row(row)?;
            let done = sqlx::query(
                "UPDATE tasks SET replica = $1 WHERE id = $2 AND status = 'running' AND COALESCE(replica, '') = $3",
            )
            .bind(&me)
            .bind(task.id.as_str())
            .bind(&runner)
            .write(&self.db)
            .await?;
            if done.rows_affected() == 1 {
                taken.push(task);
            }
        }
        Ok(taken)
    }

    /// Ends a local task with its result. `Ok(None)` when it had already ended.
    pub async fn finish_local_task(
        &self,
        id: &TaskId,
        succeeded: bool,
        result_json: &str,
    ) -> Result<Option<TaskRecord>, StoreError> {
        let mut tx = self.begin_write().await?;
        match finish_local_task_in(&mut tx, id, succeeded, result_json, self.now()).await {
            Ok(()) => {
                tx.commit().await?;
                self.get_task(id).await.map(Some)
            }
            Err(StoreError::Conflict { .. }) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// One task.
    pub async fn get_task(&self, id: &TaskId) -> Result<TaskRecord, StoreError> {
        let row = sqlx::query(&format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = $1"))
            .bind(id.as_str())
            .read_optional(&self.db)
            .await?
            .ok_or_else(|| StoreError::NotFound {
                what: "task",
                name: id.to_string(),
            })?;
        task_from_row(&row)
    }

    /// Claims the oldest queued task that `delegate` may run ([`Eligibility::admits`] it),
    /// leasing it for `lease`. Two delegates never claim the same task: the claim is a
    /// conditional update that only one of them wins.
    pub async fn claim_task(
        &self,
        delegate: &str,
        eligibility: &Eligibility,
        lease: Duration,
    ) -> Result<Claim, StoreError> {
        // Only what the choice needs is read; the claimed task is read whole afterwards.
        let rows = sqlx::query(
            "SELECT id, selectors, created_at, prefer, avoid FROM tasks WHERE status = 'queued' ORDER BY created_at LIMIT $1",
        )
        .bind(CLAIM_WINDOW)
        .read_all(&self.db)
        .await?;
        let mut later: Option<Duration> = None;
        for row in &rows {
            let selectors: String = row.try_get("selectors")?;
            let selectors: Vec<String> = serde_json::from_str(&selectors)
                .map_err(|e| StoreError::Corrupt(format!("task selectors: {e}")))?;
            if !eligibility.admits(&selectors) {
                continue;
            }
            let id: TaskId = id_column(row, "id")?;
            let created_at: i64 = row.try_get("created_at")?;
            let now = self.now();
            let age = Duration::from_millis(u64::try_from(now - created_at).unwrap_or(0));
            let prefer: Option<String> = row.try_get("prefer")?;
            let avoid: Option<String> = row.try_get("avoid")?;
            let wait = match (prefer.as_deref(), avoid.as_deref()) {
                (Some(p), _) if p != delegate && age < PREFER_FOR => Some(PREFER_FOR - age),
                (_, Some(a)) if a == delegate && age < AVOID_FOR => Some(AVOID_FOR - age),
                _ => None,
            };
            if let Some(wait) = wait {
                later = Some(later.map_or(wait, |l| l.min(wait)));
                continue;
            }
            let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
            // On PostgreSQL a row another claimer is taking is skipped rather than waited
            // for: it would not be queued any more when that claimer commits.
            let claimed = sqlx::query(&format!(
                "UPDATE tasks SET status = 'running', delegate = $1, lease_expires_at = $2,
                        attempts = attempts + 1, started_at = $3
                 WHERE id = $4 AND status = 'queued'
                     AND id IN (SELECT id FROM tasks WHERE id = $4{})",
                self.db.backend().skip_locked()
            ))
            .bind(delegate)
            .bind(self.lease_now().await?.saturating_add(lease_ms))
            .bind(now)
            .bind(id.as_str())
            .write(&self.db)
            .await?;
            if claimed.rows_affected() == 1 {
                return self.get_task(&id).await.map(Claim::Task);
            }
        }
        Ok(later.map_or(Claim::Nothing, Claim::Later))
    }

    /// The delegate that ran (or runs) each of these tasks.
    pub async fn task_delegates(
        &self,
        ids: &[TaskId],
    ) -> Result<std::collections::HashMap<TaskId, String>, StoreError> {
        let mut delegates = std::collections::HashMap::new();
        for chunk in ids.chunks(500) {
            let sql = format!(
                "SELECT id, delegate FROM tasks WHERE delegate IS NOT NULL AND id IN ({})",
                crate::rows::placeholders_from(1, chunk.len())
            );
            let mut query = sqlx::query(&sql);
            for id in chunk {
                query = query.bind(id.as_str());
            }
            for row in query.read_all(&self.db).await? {
                delegates.insert(id_column(&row, "id")?, row.try_get("delegate")?);
            }
        }
        Ok(delegates)
    }

    /// Records a task's outcome, with what follows from it, in one transaction: the
    /// delegate's counters and, for a Test, the connector's last Test (`last_test_of`). Only
    /// the delegate holding the lease may do so; a late answer from a delegate that lost its
    /// lease is ignored and reported as `Ok(None)`.
    pub async fn complete_task(
        &self,
        id: &TaskId,
        delegate: &str,
        succeeded: bool,
        result_json: &str,
        last_test_of: Option<&ConnectorId>,
    ) -> Result<Option<TaskRecord>, StoreError> {
        let status = if succeeded {
            TaskStatus::Succeeded
        } else {
            TaskStatus::Failed
        };
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE tasks SET status = $1, result = $2, finished_at = $3, lease_expires_at = NULL
             WHERE id = $4 AND status = 'running' AND delegate = $5",
        )
        .bind(status.as_str())
        .bind(result_json)
        .bind(self.now())
        .bind(id.as_str())
        .bind(delegate)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(None);
        }
        let column = if succeeded {
            "tasks_succeeded"
        } else {
            "tasks_failed"
        };
        sqlx::query(&format!(
            "UPDATE delegates SET tasks_run = tasks_run + 1, {column} = {column} + 1 WHERE name = $1"
        ))
        .bind(delegate)
        .execute(&mut *tx)
        .await?;
        if let Some(connector_id) = last_test_of {
            sqlx::query("UPDATE connectors SET last_test = $1 WHERE id = $2")
                .bind(result_json)
                .bind(connector_id.as_str())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        self.get_task(id).await.map(Some)
    }

    /// Fails a queued task without running it (for example, no delegate can ever take it).
    pub async fn fail_queued_task(
        &self,
        id: &TaskId,
        result_json: &str,
    ) -> Result<Option<TaskRecord>, StoreError> {
        let done = sqlx::query(
            "UPDATE tasks SET status = 'failed', result = $1, finished_at = $2 WHERE id = $3 AND status = 'queued'",
        )
        .bind(result_json)
        .bind(self.now())
        .bind(id.as_str())
        .write(&self.db)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        self.get_task(id).await.map(Some)
    }

    /// Every queued task, oldest first: what the hub checks against the connected delegates
    /// when one of them goes away.
    pub async fn queued_tasks(&self) -> Result<Vec<TaskRecord>, StoreError> {
        sqlx::query(&format!(
            "SELECT {TASK_COLUMNS} FROM tasks WHERE status = 'queued' ORDER BY created_at, id"
        ))
        .read_all(&self.db)
        .await?
        .iter()
        .map(task_from_row)
        .collect()
    }

    /// Ends the leases of the tasks `delegate` runs (it said it is leaving), so that the next
    /// [`Store::expire_leases`] returns them to the queue at once instead of after their lease.
    pub async fn end_leases_of(&self, delegate: &str) -> Result<u64, StoreError> {
        let ended = sqlx::query(
            "UPDATE tasks SET lease_expires_at = 0 WHERE delegate = $1 AND status = 'running'",
        )
        .bind(delegate)
        .write(&self.db)
        .await?;
        Ok(ended.rows_affected())
    }

    /// Returns running tasks whose lease ran out to the queue, or fails them with
    /// `expired_result` once they have used all their attempts. Returns how many changed.
    pub async fn expire_leases(&self, expired_result: &str) -> Result<u64, StoreError> {
        let now = self.lease_now().await?;
        let requeued = sqlx::query(
            "UPDATE tasks SET status = 'queued', delegate = NULL, lease_expires_at = NULL
             WHERE status = 'running' AND lease_expires_at < $1 AND attempts < max_attempts",
        )
        .bind(now)
        .write(&self.db)
        .await?;
        let failed = sqlx::query(
            "UPDATE tasks SET status = 'failed', result = $1, finished_at = $2, lease_expires_at = NULL
             WHERE status = 'running' AND lease_expires_at < $3",
        )
        .bind(expired_result)
        .bind(now)
        .bind(now)
        .write(&self.db)
        .await?;
        Ok(requeued.rows_affected() + failed.rows_affected())
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

/// Ends a running local task inside `tx`; [`StoreError::Conflict`] when it is not running
/// (it ended already), so that the work it stands for is not done twice.
pub(crate) async fn finish_local_task_in(
    tx: &mut WriteTx,
    id: &TaskId,
    succeeded: bool,
    result_json: &str,
    now: i64,
) -> Result<(), StoreError> {
    let status = if succeeded {
        TaskStatus::Succeeded
    } else {
        TaskStatus::Failed
    };
    let done = sqlx::query(
        "UPDATE tasks SET status = $1, result = $2, finished_at = $3
         WHERE id = $4 AND status = 'running' AND delegate IS NULL",
    )
    .bind(status.as_str())
    .bind(result_json)
    .bind(now)
    .bind(id.as_str())
    .execute(&mut **tx)
    .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::Conflict {
            what: "task",
            name: id.to_string(),
        });
    }
    Ok(())
}

fn task_from_row(row: &AnyRow) -> Result<TaskRecord, StoreError> {
    let selectors: String = row.try_get("selectors")?;
    Ok(TaskRecord {
        id: id_column(row, "id")?,
        kind: row.try_get("kind")?,
        payload: row.try_get("payload")?,
        selectors: serde_json::from_str(&selectors)
            .map_err(|e| StoreError::Corrupt(format!("task selectors: {e}")))?,
        status: TaskStatus::parse(&row.try_get::<String, _>("status")?)?,
        delegate: row.try_get("delegate")?,
        attempts: row.try_get("attempts")?,
        max_attempts: row.try_get("max_attempts")?,
        result: row.try_get("result")?,
        created_at: row.try_get("created_at")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
    })
}
