//! Real git servers on loopback for reposync's tests: a directory of bare repositories
//! ([`RepoRoot`]) served over smart HTTP behind TLS ([`GitHttpsServer`], `git http-backend` as
//! CGI behind a throwaway CA) and over SSH ([`SshServer`], a real OpenSSH sshd for a `git`
//! system user), a Bitbucket emulator ([`BitbucketEmulator`]) that sends the webhooks
//! Bitbucket would for pushes to those repositories, and Bitbucket's REST API over the same
//! repositories ([`BitbucketApi`], Cloud or Data Center). Each test starts its own servers on
//! fresh ports and temporary directories, so tests run in parallel. The one design rule is
//! hermeticity: every child process (git, sshd, ssh-keygen, http-backend) starts from an empty
//! environment and gets an explicit one, because the machines export variables such as
//! `GIT_SSL_CAINFO` and `CURL_CA_BUNDLE` that would silently override what a test configures.
//! For the tests that run on both database backends, [`TestPostgres`] makes a fresh database
//! per test in the PostgreSQL cluster `scripts/test` starts.
//! This crate must never mutate its own process environment, and it is a dev-dependency only:
//! it needs root (for sshd and the `git` user) and is not fit for production code.

mod bitbucket;
mod ca;
mod git;
mod https;
mod postgres;
mod process;
mod repo;
mod ssh;
#[cfg(test)]
mod tidy;
mod tls_server;

pub use bitbucket::{
    ApiAuth, ApiFault, ApiFlavour, BitbucketApi, BitbucketEmulator, DeliveryKind, RepoIdentity,
    SentDelivery, WebhookFormat, WebhookTarget,
};
pub use ca::TestCa;
pub use git::{HermeticGit, RawEntry, TEST_USER_EMAIL, TEST_USER_NAME};
pub use https::GitHttpsServer;
pub use postgres::{TEST_POSTGRES_VAR, TestPostgres};
pub use process::ensure_git_user;
pub use repo::RepoRoot;
pub use ssh::{SshKeyFiles, SshServer};
