//! The Git Sync engine, in both directions.
//!
//! reposync → Git: the outbox worker turns waiting changesets into one commit per branch,
//! and the rules for what that commit holds and says. Git → reposync: the inbox worker reads
//! branches whose head moved, commit by commit, and hands each commit to be applied.
//!
//! It reaches Git only through delegate tasks, behind [`Dispatch`] and [`Inbound`], so the
//! same engine runs with the built-in delegate or remote ones. [`Outbox::step`] and
//! [`Inbox::step`] do one round of work and are what tests drive; `run` is the thin loop
//! around each. Every read of a branch is recorded with how the delegate did it
//! ([`read_of`]), for `sync activity`.

mod inbox;
mod leases;
mod measure;
mod outbox;
mod pacing;
mod plan;
mod reads;

pub use inbox::{Inbound, Inbox, ReadChange, ReadCommit, ReadFile, UnrepresentableFile};
pub use leases::{BranchLeases, DEFAULT_BRANCH_LEASE};
pub use measure::describe_metrics;
pub use outbox::{ConnectionFailure, Dispatch, DispatchFailure, JobAnswer, Outbox, result_commit};
pub use plan::differences;
pub use reads::read_of;
