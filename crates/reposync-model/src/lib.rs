//! The configuration-as-code domain of reposync: the values that cross its boundaries, parsed
//! once into types that cannot hold an invalid value.
//!
//! Every name, branch, URL, selector and address that arrives from an HTTP body, a CLI flag,
//! a YAML file or a database row goes through one parser here, so the rest of the system takes
//! the parsed type and never re-checks. This crate is pure: no I/O, no async, no database, no
//! processes. Errors say which field was wrong and why, in words a user can act on.

/// Implements `Display`, `Debug` and `Deserialize` for a newtype over `String` whose only
/// constructor is `parse`: deserialising goes through the same parser as every other input.
macro_rules! parsed_string_traits {
    ($type:ident) => {
        impl ::std::fmt::Display for $type {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl ::std::fmt::Debug for $type {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                ::std::fmt::Debug::fmt(&self.0, f)
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $type {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = <String as ::serde::Deserialize>::deserialize(d)?;
                Self::parse(&text).map_err(|e| ::serde::de::Error::custom(e.message))
            }
        }
    };
}
pub(crate) use parsed_string_traits;

pub mod commit;
mod connector;
pub mod connector_yaml;
mod email;
mod error;
pub mod kinds;
mod name;
mod path;
mod refname;
pub mod scope;
mod selector;
pub mod tree;
mod url;
pub mod validate;
pub mod yaml;

pub use connector::{
    ConnectorDraft, ConnectorScope, Credentials, DEFAULT_AUTHOR_EMAIL, DEFAULT_AUTHOR_NAME,
    GitConnector, Provider,
};
pub use email::EmailAddress;
pub use error::FieldError;
pub use name::{EntityName, RepoSlug, SecretName};
pub use path::{PathProblem, RepoPath, escape_path};
pub use refname::BranchName;
pub use selector::Selector;
pub use url::{Protocol, RepoUrl, SSH_USER};

/// True for characters in the Unicode Emoticons block (U+1F600–U+1F64F), which names refuse.
///
/// Harness rejected these in names and so do we: repositories adopted from it never hold them,
/// and they break tools that split paths on byte boundaries.
pub fn is_emoticon(c: char) -> bool {
    ('\u{1F600}'..='\u{1F64F}').contains(&c)
}
