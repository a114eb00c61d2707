//! A reusable local clone of one branch, and the whole flow of committing files to it.
//!
//! The clone is made to be cheap to keep and cheap to refresh: it has no work tree and no
//! index (commits are built with plumbing, `mktree` over the head's folders), it holds only its one branch, its history
//! starts shallow, and it is a partial clone without blobs, so a fetch brings commits and trees
//! and only the contents that are read or changed are ever downloaded. Every command runs with
//! `GIT_DIR` set, so a broken clone can never make git fall back to a repository above it, and
//! with lazy fetching disabled, so that a missing object is an error instead of a silent
//! round trip per object: blobs are fetched explicitly, in one batch.
//!
//! Changes are read commit by commit along first parents, deepening the shallow history only
//! as far as the commit they start from; a start the history no longer holds (a forced
//! update) gives every file instead, since the commits in between cannot be known.
//!
//! Pushes never force. When the remote moved, the branch is fetched again and our changes are
//! applied on top of the new head, provided the commits we did not know about left our paths
//! alone; otherwise the caller gets the conflicting files and nothing is pushed.
//!
//! [`LocalClone`] is one type whose methods live beside what they do, one module each; this
//! module only gathers them. Their imports go one way, from `check`, `entry` and `parse` (no
//! git process) through `handle` (the type and how its commands run) up to `changes` and
//! `push`, and none imports from this one. Methods of the one type still call each other
//! across modules where the flow needs it: filling the partial clone may create the clone
//! anew, and deepening the history fetches.

mod changes;
mod check;
mod commit;
mod diff;
mod entry;
mod fetch;
mod handle;
mod history;
mod lifecycle;
mod parse;
mod partial;
mod push;
mod read;

pub use changes::{BranchChanges, ChangedFile, CommitChanges};
pub use commit::{FileChange, Signature};
pub use entry::{FileChangeKind, UnrepresentableEntry};
pub use handle::LocalClone;
pub use push::{
    CommitOutcome, CommitRequest, CommittedFile, ConflictFile, LANDED_LOOKBACK, LandedChangeset,
    commit_author, message_and_author, sort_commits_since,
};
pub use read::TreeFiles;
