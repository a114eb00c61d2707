//! The configuration-as-code domain of reposync: the values that cross its boundaries, parsed
//! once into types that cannot hold an invalid value.
//!
//! Every name, branch, URL, selector and address that arrives from an HTTP body, a CLI flag,
//! a YAML file or a database row goes through one parser here, so the rest of the system takes
//! the parsed type and never re-checks. This crate is pure: no I/O, no async, no database, no
//! processes. Errors say which field was wrong and why, in words a user can act on.

pub mod access;
pub mod commit;
mod connector;
pub mod connector_yaml;
mod email;
mod error;
mod ids;
pub mod kinds;
mod name;
mod newtype;
mod objectid;
mod path;
mod problem;
mod refname;
pub mod rest;
mod revision;
pub mod scope;
mod selector;
pub mod tree;
mod url;
pub mod validate;
pub mod yaml;

pub use access::{Person, Rights, Role, UserName};
pub use connector::{
    ConnectorDraft, ConnectorScope, Credentials, DEFAULT_AUTHOR_EMAIL, DEFAULT_AUTHOR_NAME,
    GitConnector, Provider,
};
pub use email::EmailAddress;
pub use error::FieldError;
pub use ids::{AttemptId, BranchId, ChangesetId, ConnectorId, LinkId, SyncErrorId, TaskId};
pub use name::{EntityName, RepoSlug, SecretName, is_emoticon, mixed_script_warning};
pub use objectid::ObjectId;
pub use path::{PathProblem, RepoPath, escape_path};
pub use refname::BranchName;
pub use rest::{ApiUrl, FetchMode, RestAuth, RestEndpoint, RestPlatform};
pub use revision::{RefName, Revision};
pub use selector::Selector;
pub use url::{Protocol, RepoUrl, SSH_USER};
