//! reposync-server.
