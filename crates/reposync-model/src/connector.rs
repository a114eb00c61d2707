use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::email::EmailAddress;
use crate::error::FieldError;
use crate::name::{EntityName, RepoSlug, SecretName};
use crate::refname::BranchName;
use crate::rest::{ApiUrl, FetchMode, parse_api_username};
use crate::selector::Selector;
use crate::url::{Protocol, RepoUrl};

/// The Git host a connector talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Provider {
    /// bitbucket.org.
    BitbucketCloud,
    /// Bitbucket Server or Data Center, self-hosted.
    BitbucketServer,
    /// Any other git server: only plain git operations are used.
    Git,
}

impl Provider {
    /// Guesses the provider from a URL: `bitbucket.org` is Cloud; the `/scm/` path segment or
    /// SSH port 7999 are Bitbucket Server's conventions; anything else is plain git.
    pub fn detect(url: &RepoUrl) -> Provider {
        let host = url.host();
        if host == "bitbucket.org" || host.ends_with(".bitbucket.org") {
            return Provider::BitbucketCloud;
        }
        let scm_segment = url.path().split('/').any(|s| s == "scm");
        let server_ssh_port = url.protocol() == Protocol::Ssh && url.port() == Some(7999);
        if (url.protocol() == Protocol::Https && scm_segment) || server_ssh_port {
            Provider::BitbucketServer
        } else {
            Provider::Git
        }
    }

    /// The spelling used in flags and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::BitbucketCloud => "bitbucket-cloud",
            Provider::BitbucketServer => "bitbucket-server",
            Provider::Git => "git",
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Provider {
    type Err = FieldError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "bitbucket-cloud" => Ok(Provider::BitbucketCloud),
            "bitbucket-server" => Ok(Provider::BitbucketServer),
            "git" => Ok(Provider::Git),
            other => Err(FieldError::new(
                "provider",
                format!("unknown provider {other:?}; use bitbucket-cloud, bitbucket-server or git"),
            )),
        }
    }
}

/// Whether a connector points at one repository or at an account holding many.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConnectorScope {
    /// The URL is one repository, and the connector names its branch.
    Repo,
    /// The URL is an account (workspace or project); each use names the repository.
    Account,
}

impl ConnectorScope {
    /// The spelling used in flags and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectorScope::Repo => "repo",
            ConnectorScope::Account => "account",
        }
    }
}

impl fmt::Display for ConnectorScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ConnectorScope {
    type Err = FieldError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "repo" => Ok(ConnectorScope::Repo),
            "account" => Ok(ConnectorScope::Account),
            other => Err(FieldError::new(
                "scope",
                format!("unknown scope {other:?}; use repo or account"),
            )),
        }
    }
}

/// How a connector authenticates, which follows from its URL's protocol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Credentials {
    /// HTTPS: a username and the secret holding the token or password.
    Https {
        username: String,
        password_secret: SecretName,
    },
    /// SSH: the secret holding the private key (the user is always `git`).
    Ssh { ssh_key_secret: SecretName },
}

/// Everything a user may set on a connector, as raw text: the input to [`GitConnector::parse`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConnectorDraft {
    pub name: Option<String>,
    pub provider: Option<String>,
    pub scope: Option<String>,
    pub url: Option<String>,
    pub username: Option<String>,
    pub password_secret: Option<String>,
    pub ssh_key_secret: Option<String>,
    pub branch: Option<String>,
    pub selectors: Option<Vec<String>>,
    pub generate_webhook_url: Option<bool>,
    pub author_name: Option<String>,
    pub author_email: Option<String>,
    pub commit_message: Option<String>,
    pub known_hosts: Option<String>,
    pub ca_certificate: Option<String>,
    pub poll_interval_seconds: Option<u32>,
    pub author_from_user: Option<bool>,
    pub api_url: Option<String>,
    pub api_username: Option<String>,
    pub api_token_secret: Option<String>,
    pub fetch: Option<String>,
}

/// The longest poll interval a connector may set: a week.
pub const MAX_POLL_INTERVAL_SECONDS: u32 = 7 * 24 * 60 * 60;

/// A validated Source Repo Provider (Git connector).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitConnector {
    pub name: EntityName,
    pub provider: Provider,
    pub scope: ConnectorScope,
    pub url: RepoUrl,
    pub credentials: Credentials,
    /// The default branch of sync links; `None` follows the repository's default branch
    /// (its HEAD) for a repository connector, and leaves it to each link for an account one.
    pub branch: Option<BranchName>,
    /// Sorted and without duplicates.
    pub selectors: Vec<Selector>,
    pub generate_webhook_url: bool,
    pub author_name: String,
    pub author_email: EmailAddress,
    pub commit_message: Option<String>,
    /// OpenSSH known_hosts lines to trust for an SSH URL.
    pub known_hosts: Option<String>,
    /// PEM certificates to trust for an HTTPS URL, instead of the system's.
    pub ca_certificate: Option<String>,
    /// How often its branches are polled for a push no webhook announced, in seconds; zero
    /// turns polling off for it, and `None` leaves it to the server's interval. reposync's
    /// own setting: the Source Repo Provider file does not carry it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll_interval_seconds: Option<u32>,
    /// Whether a commit holding only one person's changes has that person (who has an
    /// e-mail address) as its author, with `author_name`/`author_email` as its committer.
    /// Off, or for any other commit, both are the connector's. reposync's own setting: the
    /// Source Repo Provider file does not carry it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub author_from_user: bool,
    /// The REST API base, when not the platform's default (a proxy, a test). reposync's own
    /// setting, like those below: the Source Repo Provider file does not carry it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_url: Option<ApiUrl>,
    /// The user REST calls authenticate as, with the connector's token: the account's email
    /// for a Cloud API token, which git knows by the username instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_username: Option<String>,
    /// The secret holding a token for REST, when the git credentials cannot serve: an SSH
    /// connector's, or a token other than git's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_token_secret: Option<SecretName>,
    /// Whether reads and writes may go through REST.
    #[serde(default, skip_serializing_if = "FetchMode::is_auto")]
    pub fetch: FetchMode,
}

/// The commit author used when a connector does not set one.
pub const DEFAULT_AUTHOR_NAME: &str = "reposync";
/// The commit author e-mail used when a connector does not set one. `.invalid` is reserved
/// (RFC 2606), so this can never reach a real mailbox or match a real Bitbucket user.
pub const DEFAULT_AUTHOR_EMAIL: &str = "git-sync@reposync.invalid";

impl GitConnector {
    /// Parses a draft that a person wrote (through the API, the CLI or a file): the rules of
    /// [`GitConnector::parse`], and those that catch mistakes in new input, which rows stored
    /// by earlier versions need not meet: the address of a Bitbucket web page instead of a
    /// clone URL, a URL naming another user than the username, and a provider the host
    /// contradicts.
    pub fn parse_input(draft: &ConnectorDraft) -> Result<GitConnector, FieldError> {
        GitConnector::input_checks(GitConnector::parse_checked(draft, false)?)
    }

    /// The rules that catch mistakes in new input, on a parsed connector.
    fn input_checks(connector: GitConnector) -> Result<GitConnector, FieldError> {
        if let Some(clone_url) = connector.url.browser_page_clone_url() {
            return Err(FieldError::new(
                "url",
                format!("is the address of a Bitbucket page, not a clone URL; use {clone_url}"),
            ));
        }
        if let (Some(in_url), Credentials::Https { username, .. }) =
            (connector.url.username_hint(), &connector.credentials)
            && in_url != username
        {
            return Err(FieldError::new(
                "username",
                format!(
                    "is {username:?}, but the URL names the user {in_url:?}; make them agree, or drop the user from the URL"
                ),
            ));
        }
        if connector.provider == Provider::BitbucketServer
            && Provider::detect(&connector.url) == Provider::BitbucketCloud
        {
            return Err(FieldError::new(
                "provider",
                format!(
                    "is bitbucket-server, but {} is Bitbucket Cloud; use bitbucket-cloud, or leave the provider out to detect it",
                    connector.url.host()
                ),
            ));
        }
        Ok(connector)
    }

    /// [`GitConnector::parse_input`] for a connector created through the API or the CLI: a
    /// repository connector names its branch there. A person adding one can say which branch,
    /// and the Test before saving should check that one; a Source Repo Provider file adopted
    /// from Harness may leave it out and follow the repository's default branch, as it did
    /// in Harness.
    pub fn parse_new(draft: &ConnectorDraft) -> Result<GitConnector, FieldError> {
        GitConnector::input_checks(GitConnector::parse_checked(draft, true)?)
    }

    /// Parses and cross-checks a draft. The first problem found is returned, naming its field.
    pub fn parse(draft: &ConnectorDraft) -> Result<GitConnector, FieldError> {
        GitConnector::parse_checked(draft, false)
    }

    /// [`GitConnector::parse`], with a repository connector's branch required or not; the
    /// fields are checked in the order a person fills them in, so the first error is the
    /// first field to fix.
    fn parse_checked(
        draft: &ConnectorDraft,
        repo_branch_required: bool,
    ) -> Result<GitConnector, FieldError> {
        let name = EntityName::parse(required(&draft.name, "name")?)?;
        let url = RepoUrl::parse(required(&draft.url, "url")?)?;
        let provider = match &draft.provider {
            Some(p) if !p.trim().is_empty() => p.parse()?,
            _ => Provider::detect(&url),
        };
        let scope = match &draft.scope {
            Some(s) if !s.trim().is_empty() => s.parse()?,
            _ => ConnectorScope::Repo,
        };
        // The branch is optional for both scopes: the default for sync links, which may name
        // their own. A repository connector without one follows the repository's default
        // branch (its HEAD), as Harness's Source Repo Providers without `branch:` did; the
        // Test shows which branch that is, and `sync enable` resolves it then.
        let branch = non_empty(&draft.branch)
            .map(BranchName::parse)
            .transpose()?;
        if repo_branch_required && scope == ConnectorScope::Repo && branch.is_none() {
            return Err(FieldError::new(
                "branch",
                "is required for a repo-scope connector",
            ));
        }
        match scope {
            ConnectorScope::Account if url.names_repository() => {
                return Err(FieldError::new(
                    "url",
                    "names a repository, but an account-scope URL names only the account (for example https://bitbucket.org/acme)",
                ));
            }
            ConnectorScope::Repo if !url.names_repository() => {
                return Err(FieldError::new(
                    "url",
                    "names no repository; give the repository's clone URL, or use --scope account",
                ));
            }
            _ => {}
        }
        let credentials = parse_credentials(draft, &url)?;
        let mut selectors = draft
            .selectors
            .iter()
            .flatten()
            .map(|s| Selector::parse(s))
            .collect::<Result<Vec<_>, _>>()?;
        selectors.sort();
        selectors.dedup();
        let author_name = match non_empty(&draft.author_name) {
            Some(n) => parse_author_name(n)?,
            None => DEFAULT_AUTHOR_NAME.to_owned(),
        };
        let author_email = match non_empty(&draft.author_email) {
            Some(e) => EmailAddress::parse(e)?,
            None => EmailAddress::parse(DEFAULT_AUTHOR_EMAIL)?,
        };
        let commit_message = non_empty(&draft.commit_message)
            .map(parse_commit_message)
            .transpose()?;
        let known_hosts = non_empty(&draft.known_hosts)
            .map(parse_known_hosts)
            .transpose()?;
        let ca_certificate = non_empty(&draft.ca_certificate)
            .map(parse_ca_certificate)
            .transpose()?;
        if let Some(seconds) = draft.poll_interval_seconds
            && seconds > MAX_POLL_INTERVAL_SECONDS
        {
            return Err(FieldError::new(
                "poll_interval_seconds",
                format!(
                    "is {seconds} seconds; give at most {MAX_POLL_INTERVAL_SECONDS} (a week), or 0 to turn polling off for this connector"
                ),
            ));
        }
        let api_url = non_empty(&draft.api_url).map(ApiUrl::parse).transpose()?;
        let api_username = non_empty(&draft.api_username)
            .map(parse_api_username)
            .transpose()?;
        let api_token_secret = non_empty(&draft.api_token_secret)
            .map(|name| SecretName::parse(name.trim()).map_err(|e| e.for_field("api_token_secret")))
            .transpose()?;
        let fetch: FetchMode = match &draft.fetch {
            Some(mode) => mode.parse()?,
            None => FetchMode::Auto,
        };
        if provider == Provider::Git {
            let set = [
                ("api_url", api_url.is_some()),
                ("api_username", api_username.is_some()),
                ("api_token_secret", api_token_secret.is_some()),
                ("fetch", fetch == FetchMode::Api),
            ];
            if let Some((field, _)) = set.iter().find(|(_, set)| *set) {
                return Err(FieldError::new(
                    *field,
                    "applies only to Bitbucket connectors (bitbucket-cloud or bitbucket-server); a plain git server has no REST API",
                ));
            }
        }
        match url.protocol() {
            Protocol::Https if known_hosts.is_some() => {
                return Err(FieldError::new("known_hosts", "applies only to SSH URLs"));
            }
            // An SSH connector's REST calls may need it.
            Protocol::Ssh if ca_certificate.is_some() && api_token_secret.is_none() => {
                return Err(FieldError::new(
                    "ca_certificate",
                    "applies only to HTTPS URLs, or to the REST API of an SSH connector with --api-token-secret",
                ));
            }
            _ => {}
        }
        let connector = GitConnector {
            name,
            provider,
            scope,
            url,
            credentials,
            branch,
            selectors,
            generate_webhook_url: draft.generate_webhook_url.unwrap_or(false),
            author_name,
            author_email,
            commit_message,
            known_hosts,
            ca_certificate,
            poll_interval_seconds: draft.poll_interval_seconds,
            author_from_user: draft.author_from_user.unwrap_or(false),
            api_url,
            api_username,
            api_token_secret,
            fetch,
        };
        if connector.fetch == FetchMode::Api
            && let Some(endpoint) = connector.rest_endpoint(None)
            && let Err(reason) = endpoint.auth
        {
            let field = match connector.credentials {
                Credentials::Ssh { .. } => "fetch",
                Credentials::Https { .. } => "api_username",
            };
            return Err(FieldError::new(
                field,
                format!("cannot serve --fetch api: {reason}"),
            ));
        }
        Ok(connector)
    }

    /// The credential fields as a user sets them: username, password secret, SSH key secret.
    pub fn credential_fields(&self) -> (Option<String>, Option<String>, Option<String>) {
        match &self.credentials {
            Credentials::Https {
                username,
                password_secret,
            } => (
                Some(username.clone()),
                Some(password_secret.to_string()),
                None,
            ),
            Credentials::Ssh { ssh_key_secret } => (None, None, Some(ssh_key_secret.to_string())),
        }
    }

    /// The draft that parses back to this connector; updates merge changed fields into it.
    pub fn to_draft(&self) -> ConnectorDraft {
        let (username, password_secret, ssh_key_secret) = self.credential_fields();
        ConnectorDraft {
            name: Some(self.name.to_string()),
            provider: Some(self.provider.to_string()),
            scope: Some(self.scope.to_string()),
            url: Some(self.url.to_string()),
            username,
            password_secret,
            ssh_key_secret,
            branch: self.branch.as_ref().map(ToString::to_string),
            selectors: Some(self.selectors.iter().map(ToString::to_string).collect()),
            generate_webhook_url: Some(self.generate_webhook_url),
            author_name: Some(self.author_name.clone()),
            author_email: Some(self.author_email.to_string()),
            commit_message: self.commit_message.clone(),
            known_hosts: self.known_hosts.clone(),
            ca_certificate: self.ca_certificate.clone(),
            poll_interval_seconds: self.poll_interval_seconds,
            author_from_user: Some(self.author_from_user),
            api_url: self.api_url.as_ref().map(ToString::to_string),
            api_username: self.api_username.clone(),
            api_token_secret: self.api_token_secret.as_ref().map(ToString::to_string),
            fetch: Some(self.fetch.to_string()),
        }
    }

    /// The secrets this connector needs.
    pub fn secret_names(&self) -> Vec<&SecretName> {
        let mut names = match &self.credentials {
            Credentials::Https {
                password_secret, ..
            } => vec![password_secret],
            Credentials::Ssh { ssh_key_secret } => vec![ssh_key_secret],
        };
        names.extend(&self.api_token_secret);
        names
    }

    /// The repository URL a Test or sync uses: the connector's own URL for repo scope; for
    /// account scope, the account URL joined with `repo`, which is then required.
    pub fn repository_url(&self, repo: Option<&RepoSlug>) -> Result<RepoUrl, FieldError> {
        match (self.scope, repo) {
            (ConnectorScope::Repo, None) => Ok(self.url.clone()),
            (ConnectorScope::Repo, Some(_)) => Err(FieldError::new(
                "repo",
                "is only for account-scope connectors; this connector names its repository in its URL",
            )),
            (ConnectorScope::Account, Some(slug)) => Ok(self.url.join_repo(slug)),
            (ConnectorScope::Account, None) => Err(FieldError::new(
                "repo",
                "is required: this account-scope connector needs the repository to use",
            )),
        }
    }
}

fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.trim().is_empty())
}

fn required<'a>(value: &'a Option<String>, field: &str) -> Result<&'a str, FieldError> {
    non_empty(value).ok_or_else(|| FieldError::new(field, "is required"))
}

fn parse_credentials(draft: &ConnectorDraft, url: &RepoUrl) -> Result<Credentials, FieldError> {
    let secret = |value: &Option<String>, field: &str| -> Result<Option<SecretName>, FieldError> {
        non_empty(value)
            .map(|v| SecretName::parse(v.trim()).map_err(|e| e.for_field(field)))
            .transpose()
    };
    let password_secret = secret(&draft.password_secret, "password_secret")?;
    let ssh_key_secret = secret(&draft.ssh_key_secret, "ssh_key_secret")?;
    match url.protocol() {
        Protocol::Https => {
            if ssh_key_secret.is_some() {
                return Err(FieldError::new(
                    "ssh_key_secret",
                    "applies only to SSH URLs; this URL is HTTPS and needs a username and password_secret",
                ));
            }
            let username = match non_empty(&draft.username).or(url.username_hint()) {
                Some(u) => parse_username(u)?,
                None => return Err(FieldError::new("username", "is required for an HTTPS URL")),
            };
            let password_secret = password_secret.ok_or_else(|| {
                FieldError::new(
                    "password_secret",
                    "is required for an HTTPS URL: name the secret holding the token",
                )
            })?;
            Ok(Credentials::Https {
                username,
                password_secret,
            })
        }
        Protocol::Ssh => {
            if password_secret.is_some() {
                return Err(FieldError::new(
                    "password_secret",
                    "applies only to HTTPS URLs; an SSH URL authenticates with ssh_key_secret",
                ));
            }
            if non_empty(&draft.username).is_some_and(|u| u != crate::url::SSH_USER) {
                return Err(FieldError::new(
                    "username",
                    "applies only to HTTPS URLs; over SSH the user is always `git`",
                ));
            }
            let ssh_key_secret = ssh_key_secret.ok_or_else(|| {
                FieldError::new(
                    "ssh_key_secret",
                    "is required for an SSH URL: name the SSH key secret",
                )
            })?;
            Ok(Credentials::Ssh { ssh_key_secret })
        }
    }
}

fn parse_username(text: &str) -> Result<String, FieldError> {
    let text = text.trim();
    if text.len() > 256 {
        return Err(FieldError::new("username", "is longer than 256 characters"));
    }
    if let Some(c) = text
        .chars()
        .find(|c| *c == ':' || c.is_whitespace() || c.is_control())
    {
        return Err(FieldError::new(
            "username",
            format!("must not contain {c:?}"),
        ));
    }
    Ok(text.to_owned())
}

fn parse_author_name(text: &str) -> Result<String, FieldError> {
    let text = text.trim();
    if text.chars().count() > 100 {
        return Err(FieldError::new(
            "author_name",
            "is longer than 100 characters",
        ));
    }
    // git refuses idents containing these; catching them here gives a better message.
    if let Some(c) = text
        .chars()
        .find(|c| matches!(c, '<' | '>') || c.is_control())
    {
        return Err(FieldError::new(
            "author_name",
            format!("must not contain {c:?}"),
        ));
    }
    Ok(text.to_owned())
}

fn parse_commit_message(text: &str) -> Result<String, FieldError> {
    if text.len() > 4096 {
        return Err(FieldError::new(
            "commit_message",
            "is longer than 4096 bytes",
        ));
    }
    if text.contains('\0') {
        return Err(FieldError::new("commit_message", "must not contain NUL"));
    }
    Ok(text.trim_end().to_owned())
}

fn parse_known_hosts(text: &str) -> Result<String, FieldError> {
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        // `[@marker] hosts keytype base64key [comment]`
        let offset = usize::from(fields.first().is_some_and(|f| f.starts_with('@')));
        let valid = fields.len() >= 3 + offset
            && (fields[1 + offset].starts_with("ssh-")
                || fields[1 + offset].starts_with("ecdsa-")
                || fields[1 + offset].starts_with("sk-"));
        if !valid {
            return Err(FieldError::new(
                "known_hosts",
                format!(
                    "line {} is not a known_hosts entry (`host keytype key`)",
                    index + 1
                ),
            ));
        }
    }
    Ok(text.to_owned())
}

fn parse_ca_certificate(text: &str) -> Result<String, FieldError> {
    if !text.contains("-----BEGIN CERTIFICATE-----") || !text.contains("-----END CERTIFICATE-----")
    {
        return Err(FieldError::new(
            "ca_certificate",
            "is not a PEM certificate (-----BEGIN CERTIFICATE-----)",
        ));
    }
    Ok(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft(url: &str) -> ConnectorDraft {
        ConnectorDraft {
            name: Some("Bitbucket Config".into()),
            url: Some(url.into()),
            username: Some("jdoe".into()),
            password_secret: Some("bb-token".into()),
            branch: Some("main".into()),
            ..Default::default()
        }
    }

    #[test]
    fn detects_the_provider_from_the_url() {
        let detect = |u: &str| Provider::detect(&RepoUrl::parse(u).expect("url"));
        assert_eq!(
            detect("https://bitbucket.org/ws/r.git"),
            Provider::BitbucketCloud
        );
        assert_eq!(
            detect("git@bitbucket.org:ws/r.git"),
            Provider::BitbucketCloud
        );
        assert_eq!(
            detect("https://bb.corp/scm/p/r.git"),
            Provider::BitbucketServer
        );
        assert_eq!(
            detect("ssh://git@bb.corp:7999/p/r.git"),
            Provider::BitbucketServer
        );
        assert_eq!(detect("https://git.corp/p/r.git"), Provider::Git);
    }

    #[test]
    fn a_full_https_draft_parses_with_defaults() {
        let c =
            GitConnector::parse(&draft("https://bitbucket.org/acme/config.git")).expect("valid");
        assert_eq!(c.provider, Provider::BitbucketCloud);
        assert_eq!(c.scope, ConnectorScope::Repo);
        assert_eq!(c.author_name, DEFAULT_AUTHOR_NAME);
        assert_eq!(c.author_email.as_str(), DEFAULT_AUTHOR_EMAIL);
        assert_eq!(GitConnector::parse(&c.to_draft()), Ok(c));
    }

    /// Mistakes in new input, refused by `parse_input` naming the field and what to write,
    /// while `parse` (which reads stored rows) still takes them.
    #[test]
    fn input_refuses_pages_users_that_disagree_and_providers_the_host_contradicts() {
        let page = draft("https://bitbucket.org/acme/config/src/main/");
        let error = GitConnector::parse_input(&page).expect_err("a page");
        assert_eq!(error.field, "url");
        assert!(
            error
                .message
                .contains("use https://bitbucket.org/acme/config.git"),
            "{error}"
        );

        let mut other_user = draft("https://alice@bitbucket.org/acme/config.git");
        other_user.username = Some("bob".into());
        let error = GitConnector::parse_input(&other_user).expect_err("two users");
        assert_eq!(error.field, "username");
        assert!(error.message.contains("\"alice\""), "{error}");
        other_user.username = Some("alice".into());
        assert!(GitConnector::parse_input(&other_user).is_ok());

        let mut server = draft("https://bitbucket.org/acme/config.git");
        server.provider = Some("bitbucket-server".into());
        let error = GitConnector::parse_input(&server).expect_err("cloud host");
        assert_eq!(error.field, "provider");
        assert!(error.message.contains("bitbucket-cloud"), "{error}");

        for stored in [page, server] {
            assert!(
                GitConnector::parse(&stored).is_ok(),
                "rows of earlier versions still read"
            );
        }
    }

    #[test]
    fn provider_can_be_overridden() {
        let mut d = draft("https://git.corp/p/r.git");
        d.provider = Some("bitbucket-server".into());
        assert_eq!(
            GitConnector::parse(&d).map(|c| c.provider),
            Ok(Provider::BitbucketServer)
        );
    }

    #[test]
    fn each_rule_names_its_field() {
        type Mutation = Box<dyn Fn(&mut ConnectorDraft)>;
        let cases: Vec<(Mutation, &str)> = vec![
            (Box::new(|d| d.name = None), "name"),
            (Box::new(|d| d.name = Some("a/b".into())), "name"),
            (Box::new(|d| d.url = Some("nonsense".into())), "url"),
            (
                Box::new(|d| d.branch = Some("https://x/y".into())),
                "branch",
            ),
            (Box::new(|d| d.password_secret = None), "password_secret"),
            (Box::new(|d| d.username = None), "username"),
            (
                Box::new(|d| d.ssh_key_secret = Some("k".into())),
                "ssh_key_secret",
            ),
            (
                Box::new(|d| d.author_email = Some("nope".into())),
                "author_email",
            ),
            (
                Box::new(|d| d.selectors = Some(vec![" ".into()])),
                "selectors",
            ),
            (
                Box::new(|d| d.known_hosts = Some("x".into())),
                "known_hosts",
            ),
            (
                Box::new(|d| d.ca_certificate = Some("x".into())),
                "ca_certificate",
            ),
            (Box::new(|d| d.scope = Some("org".into())), "scope"),
            (Box::new(|d| d.provider = Some("github".into())), "provider"),
        ];
        for (mutate, field) in cases {
            let mut d = draft("https://bitbucket.org/acme/config.git");
            mutate(&mut d);
            let err = GitConnector::parse(&d).expect_err(field);
            assert_eq!(err.field, field, "{err}");
        }
    }

    #[test]
    fn a_repository_connector_without_a_branch_follows_the_default_branch() {
        let mut d = draft("https://bitbucket.org/acme/config.git");
        d.branch = None;
        let c = GitConnector::parse_input(&d).expect("the repository's default branch");
        assert_eq!(c.branch, None);
        assert_eq!(GitConnector::parse(&c.to_draft()), Ok(c));
        // A connector created through the API names its branch.
        let error = GitConnector::parse_new(&d).expect_err("branch");
        assert_eq!(error.field, "branch");
        assert_eq!(error.message, "is required for a repo-scope connector");
        d.scope = Some("account".into());
        d.url = Some("https://bitbucket.org/acme".into());
        assert!(GitConnector::parse_new(&d).is_ok());
    }

    #[test]
    fn account_scope_takes_an_optional_default_branch_and_refuses_a_repository_url() {
        let mut d = draft("https://bitbucket.org/acme");
        d.scope = Some("account".into());
        let with_branch = GitConnector::parse(&d).expect("a default branch is allowed");
        assert_eq!(with_branch.branch.map(|b| b.to_string()), d.branch.clone());
        d.branch = Some("bad..branch".into());
        assert_eq!(GitConnector::parse(&d).expect_err("branch").field, "branch");
        d.branch = None;
        let c = GitConnector::parse(&d).expect("valid account connector");
        let slug = RepoSlug::parse("config").expect("slug");
        assert_eq!(
            c.repository_url(Some(&slug)).map(|u| u.git_url()),
            Ok("https://bitbucket.org/acme/config.git".into())
        );
        assert_eq!(
            c.repository_url(None).expect_err("repo needed").field,
            "repo"
        );
        d.url = Some("https://bitbucket.org/acme/config.git".into());
        assert_eq!(GitConnector::parse(&d).expect_err("repo url").field, "url");
    }

    #[test]
    fn ssh_needs_a_key_and_refuses_passwords() {
        let mut d = draft("git@bitbucket.org:acme/config.git");
        d.username = None;
        assert_eq!(
            GitConnector::parse(&d).expect_err("password").field,
            "password_secret"
        );
        d.password_secret = None;
        assert_eq!(
            GitConnector::parse(&d).expect_err("key").field,
            "ssh_key_secret"
        );
        d.ssh_key_secret = Some("deploy-key".into());
        assert!(matches!(
            GitConnector::parse(&d).map(|c| c.credentials),
            Ok(Credentials::Ssh { .. })
        ));
    }

    #[test]
    fn selectors_are_normalised_sorted_and_deduplicated() {
        let mut d = draft("https://bitbucket.org/acme/config.git");
        d.selectors = Some(vec![" EU ".into(), "prod".into(), "eu".into()]);
        let c = GitConnector::parse(&d).expect("valid");
        let names: Vec<&str> = c.selectors.iter().map(Selector::as_str).collect();
        assert_eq!(names, ["eu", "prod"]);
    }

    #[test]
    fn username_comes_from_the_url_hint_when_not_given() {
        let mut d = draft("https://x-token-auth@bitbucket.org/acme/config.git");
        d.username = None;
        assert!(matches!(
            GitConnector::parse(&d).map(|c| c.credentials),
            Ok(Credentials::Https { username, .. }) if username == "x-token-auth"
        ));
    }
}
