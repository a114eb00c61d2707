//! Row ids: which connector, link, branch, commit attempt, task, changeset or sync error a
//! value names, as types, so that one kind of id cannot be passed where another is expected.
//!
//! An id is opaque. The store makes them (UUID v7, or random hex for the branch rows an old
//! migration created) and is the only judge of whether a row has one, so there is nothing to
//! parse: any string is an id that names a row or does not, and an id nobody stored answers
//! "not found" like any other. On the wire and in JSON an id is its string, unchanged.

/// Defines an opaque id over `String`: serialised as the bare string, ordered and hashed as
/// it, built from a string only by `new`, read back with `as_str` and `into_string`.
macro_rules! row_id {
    ($($(#[$doc:meta])* $type:ident;)+) => {$(
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, ::serde::Serialize, ::serde::Deserialize)]
        #[serde(transparent)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        pub struct $type(String);

        impl $type {
            /// The id held in `id`: one the store made, or one a request or a commit names.
            pub fn new(id: impl Into<String>) -> Self {
                $type(id.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl AsRef<str> for $type {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

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
    )+};
}

row_id! {
    /// A connector's row: the connector whatever its name becomes (a rename keeps it).
    ConnectorId;
    /// A sync link's row: one scope linked to one branch, live or disabled.
    LinkId;
    /// A synced branch's row: one connector, repository and branch, and where reading it
    /// from Git stands.
    BranchId;
    /// A commit attempt: the changesets of a link taken together into one commit.
    AttemptId;
    /// A task, queued for a delegate or run by the server itself.
    TaskId;
    /// A changeset of the outbox, also named by the `Reposync-Changeset:` trailers of the
    /// commits that carry it.
    ChangesetId;
    /// A sync error, open or resolved.
    SyncErrorId;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_its_string_in_json_and_in_text() {
        let id = LinkId::new("0190c8e2-7f00-7000-8000-000000000001");
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, "\"0190c8e2-7f00-7000-8000-000000000001\"");
        assert_eq!(serde_json::from_str::<LinkId>(&json).unwrap(), id);
        assert_eq!(id.to_string(), id.as_str());
        assert_eq!(format!("{id:?}"), format!("{:?}", id.as_str()));
        assert_eq!(id.clone().into_string(), id.as_str());
    }
}
