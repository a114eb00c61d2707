//! The Git Sync engine, reposync → Git: the outbox worker that turns waiting changesets into
//! one commit per branch, and the rules for what that commit holds and says.
//!
//! It reaches Git only through delegate tasks, behind [`Dispatch`], so the same engine runs
//! with the built-in delegate or remote ones. [`Outbox::step`] does one round of work and
//! is what tests drive; [`Outbox::run`] is the thin loop around it.

mod outbox;
mod plan;

pub use outbox::{ConnectionFailure, Dispatch, DispatchFailure, Outbox, PERMANENT_CODES};
pub use plan::{CommitPlan, commit_message, differences, plan_commit};
