//! reposync-store.
