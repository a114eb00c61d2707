//! The delegate: claims tasks, runs them with `reposync-git`, and reports what happened.
//!
//! A delegate reaches the server only through a [`TaskSource`], so the same agent runs inside
//! `reposync serve` (an in-process source) and on another machine ([`HttpTaskSource`], which
//! holds nothing but a delegate token and opens no listening port). It holds no database
//! credentials: the secrets a task needs arrive with the task and live in memory, and on disk
//! only as the 0600 files `reposync-git` makes for one git operation. The agent exposes a step
//! function, [`Agent::run_next`], that tests drive directly; the loops around it are thin.
//! [`Agent::run_concurrently`] runs several tasks at once, each as its own tokio task, so
//! that one can be cancelled (its future dropped, which kills its git process group) when the
//! server takes it back.

mod agent;
mod backoff;
mod execute;
mod fetch;
mod http;
mod name;
mod planner;
mod reads;
mod rest;
mod rest_read;
mod rest_write;
mod results;
mod run;
mod source;

pub use agent::{Agent, Tools};
pub use http::{HttpConfig, HttpTaskSource, SetupError, run_remote};
pub use name::{DelegateName, InvalidDelegateName};
/// Why a delegate could not take its temporary folder ([`Agent::prepare`]).
pub use reposync_git::TempRootError;
pub use run::Step;
pub use source::{SourceError, TaskSource};
