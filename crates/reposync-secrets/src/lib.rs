//! reposync-secrets.
