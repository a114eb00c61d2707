//! reposync-bitbucket.
