//! Bitbucket's REST APIs: Cloud 2.0 ([`CloudClient`]) and Server/Data Center 1.0
//! ([`DcClient`]), typed, paged, reading both error envelopes, authenticated per kind of
//! credential, bounded in time and size, and kept inside each credential's request budget
//! ([`RequestBudget`]).
//!
//! This is the one part of the crate that does I/O. It decides nothing about when to use REST
//! rather than git; the fetch planner does, from what these clients report: their traffic,
//! their budget and their errors.

mod budget;
mod cloud;
mod dc;
mod error;
mod transport;
mod types;

pub use budget::{
    BudgetSnapshot, Budgets, DEFAULT_FIRST_COOL_DOWN, DEFAULT_REQUESTS_PER_HOUR, RateLimitHeaders,
    RequestBudget, Spent,
};
pub use cloud::{CLOUD_API_BASE, CloudClient, CloudCommitRequest};
pub use dc::{Changes, DcClient, ServerProperties};
pub use error::RestError;
pub use transport::{RestConfig, RestCredential, RetryPolicy, Traffic};
pub use types::{Commit, DiffStatus, FileChange, TreeEntry, TreeEntryKind};
