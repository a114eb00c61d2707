//! The application's use cases, shared by every way in: the REST API, and later the web UI.
//!
//! A handler parses its request, calls one function here and renders what comes back; nothing
//! here knows HTTP. The store does the SQL, the model the rules of the tree; this crate puts
//! them together into what a user (or a commit read from Git) asks for.
//!
//! - [`tree`]: the one write path of the tree; every other module writes through it.
//! - [`entities`], [`apps`], [`connectors`]: what a user edits.
//! - [`links`], [`resolve`]: Git Sync as a user drives it (enable, disable, retry, discard).
//! - [`inbound`]: commits read from Git, applied.
//! - [`fetches`]: files of a connector's repository at a ref, read on a delegate.
//! - [`connections`]: reaching Git through the delegates, and the connection checks.
//! - [`audit`]: reading the audit trail.
//! - [`error`], [`tokens`]: leaves the others share.

pub mod activity;
pub mod apps;
pub mod audit;
pub mod connections;
pub mod connectors;
pub mod entities;
pub mod error;
pub mod fetches;
pub mod inbound;
pub mod links;
pub mod resolve;
pub mod secrets;
pub mod tokens;
pub mod tree;
pub mod users;

pub use error::{CoreError, ErrorKind};
