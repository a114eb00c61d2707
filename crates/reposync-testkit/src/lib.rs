//! reposync-testkit.
