//! reposync-git.
