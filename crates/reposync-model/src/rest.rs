//! How a connector reaches its platform's REST API: whether reposync may use it
//! ([`FetchMode`]), at which base ([`ApiUrl`], or the platform's default), for which
//! repository, and how the connector's token authenticates there ([`RestAuth`]).
//!
//! These are reposync's own settings: the Source Repo Provider file does not carry them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::connector::{Credentials, GitConnector, Provider};
use crate::error::FieldError;
use crate::name::RepoSlug;
use crate::url::{Protocol, RepoUrl};

/// Cloud's REST base.
pub const CLOUD_API_BASE: &str = "https://api.bitbucket.org/2.0";

/// The git username of Cloud access tokens (repository, project, workspace), which use Bearer
/// auth for REST.
pub const CLOUD_ACCESS_TOKEN_USER: &str = "x-token-auth";

/// Whether a connector reads and writes through git, through REST, or as the planner judges.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum FetchMode {
    /// The cheapest correct way for each read, within the platform's limits.
    #[default]
    Auto,
    /// Never REST.
    Git,
    /// REST wherever the platform can, as Harness's `OPTIMIZED_GIT_FETCH_FILES` did.
    Api,
}

impl FetchMode {
    /// The spelling used in flags and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            FetchMode::Auto => "auto",
            FetchMode::Git => "git",
            FetchMode::Api => "api",
        }
    }

    pub fn is_auto(&self) -> bool {
        *self == FetchMode::Auto
    }
}

impl fmt::Display for FetchMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FetchMode {
    type Err = FieldError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "" | "auto" => Ok(FetchMode::Auto),
            "git" => Ok(FetchMode::Git),
            "api" => Ok(FetchMode::Api),
            other => Err(FieldError::new(
                "fetch",
                format!("unknown fetch mode {other:?}; use auto, git or api"),
            )),
        }
    }
}

/// A REST API base URL: `https://`, no credentials, query or fragment, no trailing `/`.
#[derive(Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct ApiUrl(String);

impl ApiUrl {
    /// Parses a base URL, reporting problems against the field `api_url`.
    pub fn parse(text: &str) -> Result<ApiUrl, FieldError> {
        let err = |message: &str| FieldError::new("api_url", message);
        let text = text.trim();
        let parsed = ::url::Url::parse(text)
            .map_err(|e| FieldError::new("api_url", format!("is not a URL: {e}")))?;
        if parsed.scheme() != "https" {
            return Err(err(
                "must be an https:// URL, such as https://api.bitbucket.org/2.0",
            ));
        }
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err(err("names no host"));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(err(
                "must not hold credentials; the connector's token goes separately",
            ));
        }
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(err("takes no query or fragment"));
        }
        Ok(ApiUrl(parsed.as_str().trim_end_matches('/').to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

crate::newtype::parsed_string_traits!(ApiUrl);

/// Which REST API a connector's platform has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RestPlatform {
    /// Bitbucket Cloud, API 2.0.
    Cloud,
    /// Bitbucket Server or Data Center, API 1.0.
    DataCenter,
}

/// How the connector's token authenticates to REST.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RestAuth {
    /// Basic with this user and the connector's token: Cloud API tokens (with the account's
    /// email), or a Data Center user named by `api_username`.
    Basic { username: String },
    /// The token as a Bearer token: Cloud access tokens and Data Center HTTP access tokens.
    Bearer,
}

/// Where and how one repository's REST API is reached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestEndpoint {
    pub platform: RestPlatform,
    /// The API base, without a trailing `/`.
    pub base: String,
    /// Cloud's workspace, or Data Center's project key (upper-case, `~USER` for a person's).
    pub owner: String,
    /// The repository slug.
    pub slug: String,
    /// How the token authenticates, or why REST cannot be used with these credentials.
    pub auth: Result<RestAuth, String>,
}

impl GitConnector {
    /// The REST endpoint of the connector's repository (`repo` for an account connector), or
    /// `None` for a plain git server or a URL that names no repository.
    pub fn rest_endpoint(&self, repo: Option<&RepoSlug>) -> Option<RestEndpoint> {
        self.rest_endpoint_at(&self.repository_url(repo).ok()?)
    }

    /// The REST endpoint of the repository at `url`, one of this connector's repositories.
    pub fn rest_endpoint_at(&self, url: &RepoUrl) -> Option<RestEndpoint> {
        let platform = match self.provider {
            Provider::BitbucketCloud => RestPlatform::Cloud,
            Provider::BitbucketServer => RestPlatform::DataCenter,
            Provider::Git => return None,
        };
        let (owner, slug) = owner_and_slug(url)?;
        let base = match (&self.api_url, platform) {
            (Some(base), _) => base.as_str().to_owned(),
            (None, RestPlatform::Cloud) => CLOUD_API_BASE.to_owned(),
            (None, RestPlatform::DataCenter) => data_center_base(url),
        };
        let owner = match platform {
            RestPlatform::Cloud => owner,
            RestPlatform::DataCenter => owner.to_uppercase(),
        };
        Some(RestEndpoint {
            platform,
            base,
            owner,
            slug,
            auth: self.rest_auth(platform),
        })
    }

    /// How the connector's token authenticates to REST, or why it cannot.
    fn rest_auth(&self, platform: RestPlatform) -> Result<RestAuth, String> {
        // The git username says which kind of token git's is; a separate REST token says
        // nothing, so it is Bearer unless a REST user is named.
        let git_username = match (&self.credentials, &self.api_token_secret) {
            (Credentials::Https { username, .. }, None) => Some(username),
            (_, Some(_)) => None,
            (Credentials::Ssh { .. }, None) => {
                return Err(
                    "an SSH key cannot call Bitbucket's REST API; this connector reads through git only (give --api-token-secret for REST)"
                        .into(),
                );
            }
        };
        if let Some(api_username) = &self.api_username {
            return Ok(RestAuth::Basic {
                username: api_username.clone(),
            });
        }
        match (platform, git_username) {
            (RestPlatform::DataCenter, _) | (RestPlatform::Cloud, None) => Ok(RestAuth::Bearer),
            (RestPlatform::Cloud, Some(username)) if username == CLOUD_ACCESS_TOKEN_USER => {
                Ok(RestAuth::Bearer)
            }
            (RestPlatform::Cloud, Some(username)) if username.contains('@') => {
                Ok(RestAuth::Basic {
                    username: username.clone(),
                })
            }
            (RestPlatform::Cloud, Some(_)) => Err(
                "a Cloud API token needs the account's email for REST; set --api-username".into(),
            ),
        }
    }
}

/// The owner and slug a clone URL names: its last two path segments, the slug without `.git`.
fn owner_and_slug(url: &RepoUrl) -> Option<(String, String)> {
    let mut segments = url.path().rsplit('/').filter(|s| !s.is_empty());
    let slug = segments.next()?;
    let owner = segments.next()?;
    let slug = slug.strip_suffix(".git").unwrap_or(slug);
    if slug.is_empty() || owner == "scm" {
        return None;
    }
    Some((owner.to_owned(), slug.to_owned()))
}

/// Data Center's REST base for a clone URL: its origin and any context path before `/scm/`,
/// then `/rest/api/1.0`. An SSH URL's host is taken on the default HTTPS port.
fn data_center_base(url: &RepoUrl) -> String {
    let host = if url.host().contains(':') {
        format!("[{}]", url.host())
    } else {
        url.host().to_owned()
    };
    match url.protocol() {
        Protocol::Https => {
            let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
            let segments: Vec<&str> = url.path().split('/').collect();
            let context: String = segments
                .iter()
                .position(|s| *s == "scm")
                .map(|scm| segments[..scm].iter().map(|s| format!("/{s}")).collect())
                .unwrap_or_default();
            format!("https://{host}{port}{context}/rest/api/1.0")
        }
        Protocol::Ssh => format!("https://{host}/rest/api/1.0"),
    }
}

/// Checks `api_username`: an account email or user name for Basic auth.
pub(crate) fn parse_api_username(text: &str) -> Result<String, FieldError> {
    let text = text.trim();
    if text.chars().any(|c| c.is_whitespace() || c.is_control()) || text.contains(':') {
        return Err(FieldError::new(
            "api_username",
            "must not contain spaces, control characters or ':'; give the account's email",
        ));
    }
    if text.len() > 254 {
        return Err(FieldError::new(
            "api_username",
            "is longer than 254 characters",
        ));
    }
    Ok(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connector::ConnectorDraft;

    fn connector(
        url: &str,
        username: &str,
        extra: impl FnOnce(&mut ConnectorDraft),
    ) -> GitConnector {
        let mut draft = ConnectorDraft {
            name: Some("c".into()),
            url: Some(url.into()),
            username: Some(username.into()),
            password_secret: Some("token".into()),
            branch: Some("main".into()),
            ..ConnectorDraft::default()
        };
        extra(&mut draft);
        GitConnector::parse_new(&draft).expect("a valid connector")
    }

    #[test]
    fn cloud_defaults_and_the_kinds_of_token() {
        let api_token = connector("https://bitbucket.org/acme/config.git", "alice", |_| {});
        let endpoint = api_token.rest_endpoint(None).expect("cloud");
        assert_eq!(endpoint.base, CLOUD_API_BASE);
        assert_eq!(
            (endpoint.owner.as_str(), endpoint.slug.as_str()),
            ("acme", "config")
        );
        assert!(
            endpoint
                .auth
                .expect_err("no email")
                .contains("--api-username")
        );

        let with_email = connector("https://bitbucket.org/acme/config.git", "alice", |d| {
            d.api_username = Some("alice@example.com".into());
        });
        assert_eq!(
            with_email.rest_endpoint(None).expect("cloud").auth,
            Ok(RestAuth::Basic {
                username: "alice@example.com".into()
            })
        );
        let access = connector(
            "https://bitbucket.org/acme/config.git",
            CLOUD_ACCESS_TOKEN_USER,
            |_| {},
        );
        assert_eq!(
            access.rest_endpoint(None).expect("cloud").auth,
            Ok(RestAuth::Bearer)
        );
    }

    #[test]
    fn data_center_base_follows_the_clone_url() {
        let dc = connector(
            "https://git.example.com/bitbucket/scm/ops/config.git",
            "bob",
            |_| {},
        );
        let endpoint = dc.rest_endpoint(None).expect("dc");
        assert_eq!(endpoint.platform, RestPlatform::DataCenter);
        assert_eq!(
            endpoint.base,
            "https://git.example.com/bitbucket/rest/api/1.0"
        );
        assert_eq!(
            (endpoint.owner.as_str(), endpoint.slug.as_str()),
            ("OPS", "config")
        );
        assert_eq!(endpoint.auth, Ok(RestAuth::Bearer));

        let proxied = connector(
            "https://git.example.com:8443/scm/ops/config.git",
            "bob",
            |d| {
                d.provider = Some("bitbucket-server".into());
                d.api_url = Some("https://proxy.example.com/bb/rest/api/1.0/".into());
            },
        );
        assert_eq!(
            proxied.rest_endpoint(None).expect("dc").base,
            "https://proxy.example.com/bb/rest/api/1.0"
        );
    }

    #[test]
    fn an_ssh_connector_is_git_only_and_fetch_api_is_refused() {
        let mut draft = ConnectorDraft {
            name: Some("c".into()),
            url: Some("git@bitbucket.org:acme/config.git".into()),
            ssh_key_secret: Some("key".into()),
            branch: Some("main".into()),
            ..ConnectorDraft::default()
        };
        let ssh = GitConnector::parse_new(&draft).expect("valid");
        let reason = ssh
            .rest_endpoint(None)
            .expect("cloud")
            .auth
            .expect_err("no token");
        assert!(reason.contains("SSH key"), "{reason}");
        draft.fetch = Some("api".into());
        let refused = GitConnector::parse_new(&draft).expect_err("no REST credentials");
        assert_eq!(refused.field, "fetch");
        assert!(
            refused.message.contains("reads through git only"),
            "{}",
            refused.message
        );

        // With a token of its own for REST, an SSH connector reads through REST too.
        draft.api_token_secret = Some("rest-token".into());
        let with_token = GitConnector::parse_new(&draft).expect("valid");
        assert_eq!(
            with_token.rest_endpoint(None).expect("cloud").auth,
            Ok(RestAuth::Bearer)
        );
        assert_eq!(with_token.secret_names().len(), 2);
    }

    #[test]
    fn plain_git_has_no_rest() {
        let git = connector("https://git.example.com/acme/config.git", "bob", |_| {});
        assert_eq!(git.rest_endpoint(None), None);
    }

    #[test]
    fn bad_api_urls_name_the_field() {
        for bad in [
            "http://api.example.com",
            "https://u:p@api.example.com",
            "https://a.example.com/?x=1",
            "nonsense",
        ] {
            assert_eq!(ApiUrl::parse(bad).expect_err(bad).field, "api_url");
        }
        assert_eq!(
            ApiUrl::parse("https://api.bitbucket.org/2.0/")
                .expect("valid")
                .as_str(),
            "https://api.bitbucket.org/2.0"
        );
        assert_eq!("API".parse::<FetchMode>(), Ok(FetchMode::Api));
        assert_eq!(
            "sometimes".parse::<FetchMode>().expect_err("bad").field,
            "fetch"
        );
    }
}
