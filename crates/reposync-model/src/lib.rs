//! reposync-model.
