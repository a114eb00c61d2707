//! The application's use cases, shared by every way in: the REST API, and later the web UI.
//!
//! A handler parses its request, calls one function here and renders what comes back; nothing
//! here knows HTTP. The store does the SQL, the model the rules of the tree; this crate puts
//! them together into what a user (or a commit read from Git) asks for.

pub mod connections;
pub mod error;
pub mod inbound;
pub mod links;
pub mod tree;
