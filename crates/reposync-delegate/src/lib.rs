//! reposync-delegate.
