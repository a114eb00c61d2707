//! reposync-api.
