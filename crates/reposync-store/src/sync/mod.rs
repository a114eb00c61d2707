//! Git Sync's state: links between a scope of the tree and a branch, the branches they sync
//! with and where reading each one stands, the outbox of changesets written with every change,
//! commit attempts, the sync errors that need a person, and how each read of a branch was
//! done.
//!
//! Each module holds one of these with its records and its SQL. They use one another one way
//! only: `branches`, `errors`, `files` and `reads` none of the others; `changesets` the
//! branches (a retried conflict asks for its head to be read again); `links` the changesets and branches
//! (a new link writes its first changeset and positions its branch); `outbox` the links and
//! changesets; `attempts` all but the outbox.

mod attempts;
pub(crate) mod backlog;
pub(crate) mod branches;
pub(crate) mod changesets;
pub(crate) mod errors;
mod files;
pub(crate) mod links;
pub(crate) mod outbox;
pub(crate) mod reads;

pub use attempts::{AttemptEnd, AttemptRecord, ConflictRecord, Landed, StartedAttempt};
pub use backlog::LinkBacklog;
pub use branches::SyncBranch;
pub use changesets::{ChangesetRecord, ChangesetStatus, FileChangeRecord, FileOp};
pub use errors::{CONNECTION_FAILED, SyncErrorRecord};
pub use links::{NewSyncLink, SyncLink, SyncRow};
pub use reads::{BranchRead, MAX_READ_METHOD_BYTES, MAX_READ_REASON_BYTES, ReadKind, ReadRecord};
pub use reposync_model::scope::app_of_path;
