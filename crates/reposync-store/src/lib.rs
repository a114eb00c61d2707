//! reposync's database: the only crate that writes SQL.
//!
//! It runs on sqlx's `Any` driver so that one set of queries serves SQLite (embedded, the
//! default) and PostgreSQL (13 or later), chosen by the database URL's scheme; each backend has
//! its own append-only migrations folder, embedded in the binary and applied at start, and
//! [`Backend`] carries the few real differences (how a write transaction begins, a function
//! one of them lacks). The SQL is kept portable: numbered `$n`
//! parameters, integer millisecond timestamps, JSON as text, `RETURNING` only where both
//! backends have it. Secret values enter this crate as plaintext only long enough to be sealed
//! under the master key with [`reposync_secrets::seal`], bound to their row; nothing readable
//! is ever written. The task queue lives here too, with leases, because claiming a task must
//! be atomic with respect to every other delegate.
//!
//! The modules use one another one way only. The leaves use nothing above them: `error`,
//! `gate` (the one way to the pool), `clock`, `rows` (row ids, parameters, JSON columns) and
//! `records` (the tree's files and connectors, and the changes a batch makes to them).
//! [`Store`] lives in `store`; each other module adds an `impl Store` for what it holds:
//! `sync` (Git Sync's links, branches, changesets, attempts and errors, and how each branch
//! was read), `inbound` (webhook deliveries and commits read from Git, on top of `sync`),
//! `entities` (the one batch that writes the tree, on top of both), and `connectors`,
//! `secrets`, `tasks`, `delegates`, `users` (users, their tokens, failed logins),
//! `webhook_log`, `audit` (the audit trail: who did what, from where, and how it ended; never
//! a secret) and `retention` (history and audit events past their ages). Two modules work on
//! database files rather than a `Store`: `backup` (the SQLite file copied and put back) and
//! `transfer` (every row of a SQLite database copied into an empty PostgreSQL one). This file
//! declares them and re-exports the public API.

mod audit;
mod backup;
mod clock;
mod cluster;
mod connectors;
mod delegates;
mod entities;
mod error;
mod gate;
mod inbound;
mod records;
mod retention;
mod rows;
mod secrets;
mod signals;
mod store;
mod sync;
mod tasks;
mod transfer;
mod users;
mod webhook_log;

pub use audit::{
    ActorKind, AuditEventRecord, AuditFilter, AuditOutcome, MAX_AUDIT_EVENTS_LISTED, NewAuditEvent,
};
pub use backup::{BackupDone, DATABASE_FILE, backup_sqlite, restore_sqlite};
pub use clock::{Clock, ManualClock, SystemClock, now_millis};
pub use cluster::{DelegatePresence, Fence, REPLICA_GONE_AFTER, ReplicaId};
pub use delegates::{DelegateRecord, DelegateTokenRecord, NewDelegate};
pub use entities::{
    Enabling, EnablingResult, EnablingSet, EnablingSetResult, EnablingSetTask, EnablingTask,
    LinkStart,
};
pub use error::StoreError;
pub use gate::Backend;
pub use inbound::{
    AnnouncedHead, DeliveryOutcome, DeliveryRecord, FileError, InboundCommit, InboundCommitRecord,
    InboundFile, InboundStatus, InboundWarning, NewDelivery, SignatureCheck,
};
pub use records::{
    ChangeOutcome, ConnectorRecord, ConnectorWrite, EntityChange, EntityRecord, EntityWrite,
    WebhookChange, WebhookCredentials,
};
pub use retention::{HistoryPruned, RetentionAges};
pub use secrets::{SecretKind, SecretRecord, SshKeyInfo};
pub use signals::{Signal, Signals};
pub use store::Store;
pub use sync::{
    AttemptEnd, AttemptRecord, BranchRead, CONNECTION_FAILED, ChangesetRecord, ChangesetStatus,
    ConflictRecord, FileChangeRecord, FileOp, Landed, LinkBacklog, MAX_READ_METHOD_BYTES,
    MAX_READ_REASON_BYTES, NewSyncLink, ReadKind, ReadRecord, StartedAttempt, SyncBranch,
    SyncErrorRecord, SyncLink, SyncRow, app_of_path,
};
pub use tasks::{AVOID_FOR, Claim, Eligibility, NewTask, PREFER_FOR, TaskRecord, TaskStatus};
pub use transfer::{
    CopyReport, TableCopied, copy_sqlite_to_postgres, redacted_url, sqlite_source_file,
};
pub use users::{
    LoginFailureRecord, LoginFailures, NewUser, NewUserToken, SessionRecord, UserRecord,
    UserTokenRecord, UserUpdate,
};
pub use webhook_log::{
    MAX_LOGGED_HEADER_BYTES, MAX_LOGGED_PAYLOAD_BYTES, MAX_LOGGED_REASON_BYTES,
    UnauthenticatedDeliveries, bounded,
};
