//! reposync-sync.
