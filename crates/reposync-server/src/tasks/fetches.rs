//! Fetches on the hub: queued like a Test (on a delegate the connector's selectors choose),
//! their archives received from the delegate that holds the task, and kept for download.
//!
//! An archive lives at `<data-dir>/fetches/<task-id>.tar`. It arrives streamed, into a file
//! named for that one upload (`<task-id>.<nonce>.part`), never whole in memory, and becomes
//! the task's archive by a rename once complete, so that a download never sees half of one.
//! It is kept for [`ARCHIVE_KEPT`] after it arrived: downloads past that age are refused as
//! expired, and the retention worker removes it ([`TaskHub::prune_archives`]), with any upload
//! left unfinished by a crash.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use axum::http::StatusCode;
use futures_util::{Stream, StreamExt as _};
use reposync_api::{FailureCode, MAX_FETCH_ARCHIVE_BYTES, TaskFailure, TaskKind};
use reposync_core::fetches::{FetchOrder, Fetches};
use reposync_model::{ConnectorId, Revision, TaskId};
use reposync_store::{ConnectorRecord, StoreError, TaskRecord, TaskStatus, now_millis};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt as _;

use super::TaskHub;
use crate::error::AppError;

/// How long a fetch's archive is kept for download after it arrived.
pub const ARCHIVE_KEPT: Duration = Duration::from_secs(60 * 60);

/// The size of the pieces an archive is stored in when replicas share the database.
const ARCHIVE_PIECE_BYTES: usize = 1024 * 1024;

/// A fetch's archive, ready for download: a file of this replica's, or pieces another
/// replica stored in the shared database.
#[derive(Debug)]
pub enum Archive {
    File {
        file: tokio::fs::File,
        size: u64,
    },
    Stored {
        store: reposync_store::Store,
        task: TaskId,
        pieces: i64,
        size: u64,
    },
}

impl Archive {
    /// Its size in bytes.
    pub fn size(&self) -> u64 {
        match self {
            Archive::File { size, .. } | Archive::Stored { size, .. } => *size,
        }
    }

    /// Its bytes, streamed: the file read as it goes, or the pieces read one at a time.
    pub fn into_body(self) -> axum::body::Body {
        match self {
            Archive::File { file, .. } => {
                axum::body::Body::from_stream(tokio_util::io::ReaderStream::new(file))
            }
            Archive::Stored {
                store,
                task,
                pieces,
                ..
            } => {
                let pieces = futures_util::stream::unfold(0, move |seq| {
                    let (store, task) = (store.clone(), task.clone());
                    async move {
                        if seq >= pieces {
                            return None;
                        }
                        let piece = store
                            .archive_piece(&task, seq)
                            .await
                            .map(axum::body::Bytes::from)
                            .map_err(std::io::Error::other);
                        Some((piece, seq + 1))
                    }
                });
                axum::body::Body::from_stream(pieces)
            }
        }
    }
}

/// [`ARCHIVE_KEPT`] in milliseconds.
fn kept_ms() -> i64 {
    i64::try_from(ARCHIVE_KEPT.as_millis()).unwrap_or(i64::MAX)
}

/// The folder of the data directory archives are kept in.
pub const FETCHES_DIR_NAME: &str = "fetches";

/// What a fetch task names; the credentials are attached at claim time.
#[derive(Debug, Serialize, Deserialize)]
pub struct FetchPayload {
    pub connector_id: ConnectorId,
    pub url: String,
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    pub paths: Vec<String>,
    /// Names the delegate's clones of this connector's repository for fetches.
    pub clone_key: String,
}

impl TaskHub {
    /// Queues a fetch on a delegate that may use `connector`; it fails at once, as
    /// `no_delegate`, when none connected may.
    pub async fn enqueue_fetch(
        &self,
        connector: &ConnectorRecord,
        order: FetchOrder,
    ) -> Result<TaskRecord, StoreError> {
        let digest = Sha256::digest(format!("{}\n{}\nfetch", connector.id, order.url).as_bytes());
        let payload = FetchPayload {
            connector_id: order.connector_id,
            url: order.url,
            reference: order.revision.as_ref().map(Revision::as_text),
            paths: order
                .paths
                .into_iter()
                .map(reposync_model::RepoPath::into_string)
                .collect(),
            clone_key: hex::encode(&digest[..12]),
        };
        self.enqueue(TaskKind::FetchFiles, &payload, &connector.spec, |message| {
            TaskFailure::new(FailureCode::NoDelegate, message).to_value()
        })
        .await
    }

    /// Where the archive of `task` is (or would be) kept; `None` when this hub keeps no
    /// archives, or for an id that is not one the store makes (it could not name a file).
    pub(crate) fn archive_path(&self, task: &TaskId) -> Option<PathBuf> {
        let dir = self.inner.archives.as_ref()?;
        let id = task.as_str();
        let plain = !id.is_empty()
            && id.len() <= 64
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        plain.then(|| dir.join(format!("{id}.tar")))
    }

    /// Whether a finished fetch's archive is here; a success without one is not a success.
    /// Whether the archive of `task` arrived: here, or at another replica sharing the
    /// database (the delegate's upload and its report may reach different replicas).
    pub(super) async fn has_archive(&self, task: &TaskId) -> bool {
        if self.archive_path(task).is_some_and(|path| path.is_file()) {
            return true;
        }
        matches!(self.inner.store.archive_keeper(task).await, Ok(Some(_)))
    }

    /// Checks that `delegate` holds `task`, a running fetch, and answers why not otherwise:
    /// 404 for a task that does not exist or is not a fetch, 409 `lease_lost` for one that is
    /// not this delegate's (any more).
    async fn held_fetch(&self, task: &TaskId, delegate: &str) -> Result<PathBuf, AppError> {
        let record = self.inner.store.get_task(task).await?;
        if TaskKind::parse(&record.kind) != Some(TaskKind::FetchFiles) {
            return Err(AppError::not_found(format!(
                "task {task} is not a fetch; only fetches send archives"
            )));
        }
        if record.status != TaskStatus::Running || record.delegate.as_deref() != Some(delegate) {
            return Err(AppError::new(
                StatusCode::CONFLICT,
                "lease_lost",
                format!(
                    "task {task} is no longer delegate {delegate}'s: its lease ran out and it went elsewhere"
                ),
            ));
        }
        self.archive_path(task).ok_or_else(|| {
            AppError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "no_archives",
                "this server keeps no fetch archives",
            )
        })
    }

    /// Receives the archive of `task` from `delegate`, which must hold it, chunk by chunk
    /// from `body`: at most [`MAX_FETCH_ARCHIVE_BYTES`] (413 above, and nothing is kept).
    /// Returns its size.
    pub async fn receive_archive<S, E>(
        &self,
        task: &TaskId,
        delegate: &str,
        mut body: S,
    ) -> Result<u64, AppError>
    where
        S: Stream<Item = Result<axum::body::Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let target = self.held_fetch(task, delegate).await?;
        let part = Part::create(&target).await?;
        let mut file = part.open().await?;
        let mut written: u64 = 0;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|error| {
                AppError::new(
                    StatusCode::BAD_REQUEST,
                    "upload_broken",
                    format!("the archive's upload broke off: {error}"),
                )
            })?;
            written += chunk.len() as u64;
            if written > MAX_FETCH_ARCHIVE_BYTES {
                return Err(too_large());
            }
            file.write_all(&chunk).await.map_err(|e| disk_error(&e))?;
        }
        file.flush().await.map_err(|e| disk_error(&e))?;
        file.sync_all().await.map_err(|e| disk_error(&e))?;
        drop(file);
        // The lease may have run out while the archive travelled.
        self.held_fetch(task, delegate).await?;
        part.keep_as(&target).await?;
        self.share_archive(task, &target).await?;
        tracing::info!(task = %task, delegate, bytes = written, "received a fetch's archive");
        Ok(written)
    }

    /// Keeps the archive the built-in delegate wrote at `archive` as the archive of `task`,
    /// copied (the delegate removes its own file), never read into memory.
    pub async fn keep_archive_file(
        &self,
        task: &TaskId,
        delegate: &str,
        archive: &Path,
    ) -> Result<u64, AppError> {
        let target = self.held_fetch(task, delegate).await?;
        let size = tokio::fs::metadata(archive)
            .await
            .map_err(|e| disk_error(&e))?
            .len();
        if size > MAX_FETCH_ARCHIVE_BYTES {
            return Err(too_large());
        }
        let part = Part::create(&target).await?;
        tokio::fs::copy(archive, &part.path)
            .await
            .map_err(|e| disk_error(&e))?;
        part.keep_as(&target).await?;
        self.share_archive(task, &target).await?;
        Ok(size)
    }

    /// Records that this replica keeps the archive of `task`, kept at `path`; when replicas
    /// share the database, stores it there first, piece by piece (never whole in memory), so
    /// that any replica serves its download.
    async fn share_archive(&self, task: &TaskId, path: &Path) -> Result<(), AppError> {
        if self.signals().shared() {
            use tokio::io::AsyncReadExt as _;
            self.inner.store.forget_archive(task).await?;
            let mut file = tokio::fs::File::open(path)
                .await
                .map_err(|e| disk_error(&e))?;
            let mut piece = Vec::with_capacity(ARCHIVE_PIECE_BYTES);
            for seq in 0.. {
                piece.clear();
                let read = (&mut file)
                    .take(ARCHIVE_PIECE_BYTES as u64)
                    .read_to_end(&mut piece)
                    .await
                    .map_err(|e| disk_error(&e))?;
                if read == 0 {
                    break;
                }
                self.inner
                    .store
                    .store_archive_piece(task, seq, &piece)
                    .await?;
            }
        }
        self.inner.store.keep_archive_here(task).await?;
        Ok(())
    }

    /// Removes the archives kept longer than [`ARCHIVE_KEPT`], and uploads a crash left
    /// unfinished; returns how many files went.
    pub async fn prune_archives(&self) -> usize {
        match self
            .inner
            .store
            .prune_archive_pieces(now_millis().saturating_sub(kept_ms()))
            .await
        {
            Ok(0) => {}
            Ok(pieces) => tracing::debug!(pieces, "removed stored archives past their hour"),
            Err(error) => tracing::warn!(%error, "cannot remove stored archives past their hour"),
        }
        let Some(dir) = self.inner.archives.clone() else {
            return 0;
        };
        let Ok(mut entries) = tokio::fs::read_dir(&dir).await else {
            return 0;
        };
        let mut removed = 0;
        while let Ok(Some(entry)) = entries.next_entry().await {
            let Ok(metadata) = entry.metadata().await else {
                continue;
            };
            if metadata.is_file()
                && expired(&metadata)
                && tokio::fs::remove_file(entry.path()).await.is_ok()
            {
                removed += 1;
            }
        }
        removed
    }

    /// The archive of a fetch that succeeded, open for download, with its size; 404 naming
    /// why there is none (not a fetch, not finished, failed, expired).
    pub async fn archive_for_download(&self, task: &TaskId) -> Result<Archive, AppError> {
        let record = self.inner.store.get_task(task).await?;
        if TaskKind::parse(&record.kind) != Some(TaskKind::FetchFiles) {
            return Err(AppError::not_found(format!(
                "task {task} is a {}, not a fetch; only fetches have archives",
                record.kind
            )));
        }
        match record.status {
            TaskStatus::Queued | TaskStatus::Running => {
                return Err(no_archive(
                    "not_ready",
                    format!(
                        "fetch {task} has not finished yet; wait for it (GET /api/v1/tasks/{task}?wait_ms=30000), then download"
                    ),
                ));
            }
            TaskStatus::Failed => {
                return Err(no_archive(
                    "fetch_failed",
                    format!("fetch {task} failed, so it has no archive; its result says why"),
                ));
            }
            TaskStatus::Succeeded => {}
        }
        let expired_error = || {
            no_archive(
                "expired",
                format!(
                    "the archive of fetch {task} has expired: archives are kept for {} minutes after the fetch; fetch again",
                    ARCHIVE_KEPT.as_secs() / 60
                ),
            )
        };
        let path = self.archive_path(task).ok_or_else(expired_error)?;
        let file = match tokio::fs::File::open(&path).await {
            Ok(file) => file,
            // Another replica received it: the database holds it.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return match self.inner.store.archive_pieces(task).await? {
                    Some((pieces, size, stored_at))
                        if now_millis().saturating_sub(stored_at) <= kept_ms() =>
                    {
                        Ok(Archive::Stored {
                            store: self.inner.store.clone(),
                            task: task.clone(),
                            pieces,
                            size,
                        })
                    }
                    _ => Err(expired_error()),
                };
            }
            Err(e) => return Err(disk_error(&e)),
        };
        let metadata = file.metadata().await.map_err(|e| disk_error(&e))?;
        if expired(&metadata) {
            return Err(expired_error());
        }
        Ok(Archive::File {
            size: metadata.len(),
            file,
        })
    }
}

#[async_trait::async_trait]
impl Fetches for TaskHub {
    async fn enqueue_fetch(
        &self,
        connector: &ConnectorRecord,
        order: FetchOrder,
    ) -> Result<TaskRecord, StoreError> {
        TaskHub::enqueue_fetch(self, connector, order).await
    }
}

/// Whether a file was last written longer than [`ARCHIVE_KEPT`] ago.
fn expired(metadata: &std::fs::Metadata) -> bool {
    metadata
        .modified()
        .ok()
        .and_then(|modified| SystemTime::now().duration_since(modified).ok())
        .is_some_and(|age| age > ARCHIVE_KEPT)
}

/// 404 with `code`: there is no archive to download, and why.
fn no_archive(code: &'static str, message: String) -> AppError {
    AppError::new(StatusCode::NOT_FOUND, code, message)
}

fn too_large() -> AppError {
    AppError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        format!(
            "the archive is larger than {} MiB, the most one fetch may bring; fetch fewer paths at a time",
            MAX_FETCH_ARCHIVE_BYTES / (1024 * 1024)
        ),
    )
}

fn disk_error(error: &std::io::Error) -> AppError {
    tracing::error!(%error, "cannot write or read a fetch's archive");
    AppError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        format!("the server cannot keep the archive: {error}"),
    )
}

/// One upload's file beside the archive it becomes; removed unless kept.
struct Part {
    path: PathBuf,
    kept: bool,
}

impl Part {
    async fn create(target: &Path) -> Result<Part, AppError> {
        if let Some(dir) = target.parent() {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|e| disk_error(&e))?;
        }
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        let mut name = target.file_stem().unwrap_or_default().to_os_string();
        name.push(format!(".{nonce}.part"));
        Ok(Part {
            path: target.with_file_name(name),
            kept: false,
        })
    }

    async fn open(&self) -> Result<tokio::fs::File, AppError> {
        tokio::fs::File::create(&self.path)
            .await
            .map_err(|e| disk_error(&e))
    }

    async fn keep_as(mut self, target: &Path) -> Result<(), AppError> {
        tokio::fs::rename(&self.path, target)
            .await
            .map_err(|e| disk_error(&e))?;
        self.kept = true;
        Ok(())
    }
}

impl Drop for Part {
    fn drop(&mut self) {
        if !self.kept {
            // A refused or broken upload leaves nothing behind.
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
