//! How Bitbucket names a repository of the root.

use std::fmt;

use anyhow::{Result, bail};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// A repository's Bitbucket identity, derived from its path under the [`RepoRoot`]: the path
/// `acme/config.git` is workspace `acme` and slug `config` on Cloud (`full_name`
/// `acme/config`), and project key `ACME` with slug `config` on Server.
///
/// The ids Bitbucket would assign (the Cloud UUID, the Server numeric ids) are derived from the
/// name, so the same repository keeps them across emulators and test runs.
///
/// [`RepoRoot`]: crate::RepoRoot
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RepoIdentity {
    relative: String,
    owner: String,
    slug: String,
}

impl fmt::Debug for RepoIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RepoIdentity").field(&self.relative).finish()
    }
}

impl RepoIdentity {
    /// Parses a repository path under the root, such as `acme/config.git`: exactly an owner
    /// directory and a repository directory, the latter usually ending in `.git`.
    pub fn parse(relative: &str) -> Result<Self> {
        let trimmed = relative.trim_start_matches('/');
        let mut parts = trimmed.split('/');
        let (Some(owner), Some(repo), None) = (parts.next(), parts.next(), parts.next()) else {
            bail!(
                "repository path {relative:?} must be <owner>/<slug>.git (like acme/config.git), \
                 because Bitbucket names every repository by exactly those two parts"
            );
        };
        let slug = repo.strip_suffix(".git").unwrap_or(repo);
        for (what, part) in [("owner", owner), ("slug", slug)] {
            if part.is_empty() || part == "." || part == ".." || part.contains(char::is_whitespace)
            {
                bail!("repository path {relative:?} has an unusable {what} {part:?}");
            }
        }
        Ok(Self {
            relative: trimmed.to_owned(),
            owner: owner.to_owned(),
            slug: slug.to_owned(),
        })
    }

    /// The path under the root, e.g. `acme/config.git`.
    pub fn relative(&self) -> &str {
        &self.relative
    }

    /// The Cloud workspace, e.g. `acme`; also the lower-case project part of Server URLs.
    pub fn workspace(&self) -> &str {
        &self.owner
    }

    /// The repository slug, e.g. `config`.
    pub fn slug(&self) -> &str {
        &self.slug
    }

    /// The Cloud `full_name`, e.g. `acme/config`.
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.owner, self.slug)
    }

    /// The Server project key, e.g. `ACME`; `~alice` (a personal project) becomes `~ALICE`.
    pub fn project_key(&self) -> String {
        self.owner.to_uppercase()
    }

    /// Whether the Server project is a user's personal one (its key starts with `~`).
    pub fn is_personal(&self) -> bool {
        self.owner.starts_with('~')
    }

    /// The Cloud repository UUID, stable for a given `full_name`.
    pub fn uuid(&self) -> Uuid {
        stable_uuid(&format!("repository {}", self.full_name()))
    }

    /// The Server repository id, stable for a given project key and slug.
    pub fn repository_id(&self) -> u32 {
        stable_number(&format!("repository {}/{}", self.project_key(), self.slug))
    }

    /// The Server project id, stable for a given project key.
    pub fn project_id(&self) -> u32 {
        stable_number(&format!("project {}", self.project_key()))
    }
}

/// A UUID (version 8, "custom") from the SHA-256 of `name`.
pub(super) fn stable_uuid(name: &str) -> Uuid {
    let digest = Sha256::digest(format!("reposync-testkit bitbucket {name}"));
    let mut bytes = [0_u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

/// A positive number below one million from the SHA-256 of `name`, shaped like Server's ids.
pub(super) fn stable_number(name: &str) -> u32 {
    let digest = Sha256::digest(format!("reposync-testkit bitbucket {name}"));
    let number = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
    number % 999_999 + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_and_slug_come_from_the_path() {
        let identity = RepoIdentity::parse("acme/config.git").unwrap();
        assert_eq!(identity.relative(), "acme/config.git");
        assert_eq!(identity.workspace(), "acme");
        assert_eq!(identity.slug(), "config");
        assert_eq!(identity.full_name(), "acme/config");
        assert_eq!(identity.project_key(), "ACME");
        assert!(!identity.is_personal());
        assert_eq!(identity, RepoIdentity::parse("/acme/config.git").unwrap());
    }

    #[test]
    fn personal_projects_keep_their_tilde() {
        let identity = RepoIdentity::parse("~alice/dotfiles.git").unwrap();
        assert_eq!(identity.project_key(), "~ALICE");
        assert!(identity.is_personal());
    }

    #[test]
    fn ids_are_stable_and_distinct() {
        let config = RepoIdentity::parse("acme/config.git").unwrap();
        let other = RepoIdentity::parse("acme/other.git").unwrap();
        assert_eq!(
            config.uuid(),
            RepoIdentity::parse("acme/config.git").unwrap().uuid()
        );
        assert_ne!(config.uuid(), other.uuid());
        assert_ne!(config.repository_id(), other.repository_id());
        assert_eq!(config.project_id(), other.project_id());
    }

    #[test]
    fn paths_that_are_not_owner_and_slug_are_refused() {
        for bad in [
            "config.git",
            "a/b/c.git",
            "acme/.git",
            "acme/",
            "/",
            "",
            "../x.git",
        ] {
            assert!(RepoIdentity::parse(bad).is_err(), "{bad}");
        }
    }
}
