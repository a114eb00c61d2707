use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::FieldError;
use crate::name::RepoSlug;

/// How git reaches the server, which follows from the URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// `https://…`, with a username and a token or password.
    Https,
    /// `ssh://git@…` or `git@host:path`, with a private key.
    Ssh,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Https => "https",
            Protocol::Ssh => "ssh",
        })
    }
}

/// A clone URL (or, for account scope, the URL of an account), in any shape Bitbucket hands
/// out: `https://[user@]host[:port]/path`, `ssh://git@host[:port]/path` and `git@host:path`.
///
/// It never holds a password: the parser refuses one, because a URL ends up in logs, process
/// listings and `.git/config`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RepoUrl {
    protocol: Protocol,
    /// The user named in the URL: a hint for HTTPS, always `git` for SSH.
    user: Option<String>,
    host: String,
    port: Option<u16>,
    /// The path without its leading or trailing `/`.
    path: String,
    /// SSH URLs written `git@host:path` are given back in that shape.
    scp_like: bool,
}

/// The SSH user Bitbucket (Cloud and Server) accepts; reposync insists on it.
pub const SSH_USER: &str = "git";

impl RepoUrl {
    /// Parses a URL, reporting problems against the field `url`.
    pub fn parse(text: &str) -> Result<Self, FieldError> {
        let err = |m: String| FieldError::new("url", m);
        let text = text.trim();
        if text.is_empty() {
            return Err(err("must not be empty".into()));
        }
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(err("must not contain spaces or control characters".into()));
        }
        if let Some(scheme_end) = text.find("://") {
            let scheme = text[..scheme_end].to_ascii_lowercase();
            match scheme.as_str() {
                "https" | "ssh" => {}
                "http" => {
                    return Err(err(
                        "plain http would send credentials unencrypted; use an https:// or SSH URL"
                            .into(),
                    ));
                }
                "git" => {
                    return Err(err(
                        "the git:// protocol is unauthenticated and read-only; use https:// or ssh://"
                            .into(),
                    ));
                }
                other => {
                    return Err(err(format!(
                        "unsupported scheme {other:?}; use https:// or ssh://"
                    )));
                }
            }
            let parsed =
                ::url::Url::parse(text).map_err(|e| err(format!("does not parse: {e}")))?;
            Self::from_parsed(&parsed, scheme == "ssh")
        } else {
            Self::parse_scp_like(text)
        }
    }

    fn from_parsed(parsed: &::url::Url, ssh: bool) -> Result<Self, FieldError> {
        let err = |m: String| FieldError::new("url", m);
        if parsed.password().is_some() {
            // Never echo the URL back: it holds the password.
            return Err(err(
                "contains a password; remove it from the URL and store it as a secret instead"
                    .into(),
            ));
        }
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(err("must not have a query (?…) or a fragment (#…)".into()));
        }
        let host = parsed
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| err("has no host".into()))?
            .to_ascii_lowercase();
        let user = match parsed.username() {
            "" => None,
            u => Some(percent_decode(u)),
        };
        if ssh {
            check_ssh_user(user.as_deref())?;
        }
        let path = parsed.path().trim_matches('/').to_owned();
        if path.is_empty() {
            return Err(err(
                "has no path: name the account or repository after the host".into(),
            ));
        }
        Ok(Self {
            protocol: if ssh { Protocol::Ssh } else { Protocol::Https },
            user: if ssh { Some(SSH_USER.into()) } else { user },
            host,
            port: parsed.port(),
            path,
            scp_like: false,
        })
    }

    fn parse_scp_like(text: &str) -> Result<Self, FieldError> {
        let err = |m: String| FieldError::new("url", m);
        let shape_hint =
            "is not a clone URL; use https://host/…, ssh://git@host/… or git@host:path";
        let Some((user_host, path)) = text.split_once(':') else {
            return Err(err(shape_hint.into()));
        };
        let (user, host) = match user_host.rsplit_once('@') {
            Some((user, host)) => (Some(user.to_owned()), host),
            None => (None, user_host),
        };
        if host.is_empty() || host.contains('/') || path.is_empty() {
            return Err(err(shape_hint.into()));
        }
        if path.contains('@') {
            // `user:token@host/...` is an HTTPS URL with its scheme left off, not SSH; say so
            // without repeating it, since it holds a password.
            return Err(err(
                "looks like an https:// URL with its scheme left off and a password in it; \
                 write https://host/… and store the password as a secret"
                    .into(),
            ));
        }
        check_ssh_user(user.as_deref())?;
        // `git@host:/srv/repo.git` names an absolute path on the host, `git@host:srv/repo.git`
        // one under the user's home: the leading `/` is kept.
        let path = path.trim_end_matches('/').to_owned();
        if path.trim_start_matches('/').is_empty() {
            return Err(err("has no path after ':'".into()));
        }
        Ok(Self {
            protocol: Protocol::Ssh,
            user: Some(SSH_USER.into()),
            host: host.to_ascii_lowercase(),
            port: None,
            path,
            scp_like: true,
        })
    }

    /// HTTPS or SSH.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// The host name or address, lower-cased.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port, when the URL names one.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// The path, without leading or trailing `/`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// For HTTPS, the user named in the URL (`https://user@host/…`), a hint for the username.
    pub fn username_hint(&self) -> Option<&str> {
        match self.protocol {
            Protocol::Https => self.user.as_deref(),
            Protocol::Ssh => None,
        }
    }

    /// The URL to hand to git: for HTTPS without any user part, since the username travels
    /// through the credential helper with the token.
    pub fn git_url(&self) -> String {
        self.render(false)
    }

    /// The URL of repository `slug` inside this account URL.
    pub fn join_repo(&self, slug: &RepoSlug) -> RepoUrl {
        let mut joined = self.clone();
        joined.path = format!("{}/{}.git", self.path, slug.as_str());
        joined
    }

    /// For the address of a Bitbucket web page (copied from the browser rather than from the
    /// Clone dialog), the clone URL of the repository it shows: Cloud's
    /// `/<workspace>/<repo>/src/…` and `/branch/…`, Server's
    /// `[/<context>]/projects/<KEY>/repos/<repo>/browse…` and `/users/<user>/repos/<repo>…`.
    pub fn browser_page_clone_url(&self) -> Option<String> {
        if self.protocol != Protocol::Https {
            return None;
        }
        let segments: Vec<&str> = self.path.split('/').collect();
        let port = self.port.map(|p| format!(":{p}")).unwrap_or_default();
        let origin = format!("https://{}{port}", self.host);
        if self.host == "bitbucket.org" || self.host == "www.bitbucket.org" {
            const PAGES: &[&str] = &[
                "src",
                "branch",
                "branches",
                "commits",
                "pull-requests",
                "downloads",
                "admin",
            ];
            return match segments.as_slice() {
                [workspace, repo, page, ..] if PAGES.contains(page) => Some(format!(
                    "https://bitbucket.org/{workspace}/{}.git",
                    repo.trim_end_matches(".git")
                )),
                _ => None,
            };
        }
        let owner = segments
            .iter()
            .position(|s| *s == "projects" || *s == "users")?;
        match &segments[owner..] {
            [kind, key, "repos", repo, ..] => {
                let context: String = segments[..owner].iter().map(|s| format!("/{s}")).collect();
                let owner = if *kind == "users" {
                    format!("~{}", key.to_ascii_lowercase())
                } else {
                    key.to_ascii_lowercase()
                };
                Some(format!("{origin}{context}/scm/{owner}/{repo}.git"))
            }
            _ => None,
        }
    }

    /// Whether the path looks like it names a repository rather than an account, judged by
    /// the conventions of each provider.
    pub fn names_repository(&self) -> bool {
        if self.path.ends_with(".git") {
            return true;
        }
        let segments: Vec<&str> = self.path.split('/').collect();
        match segments.iter().position(|s| *s == "scm") {
            // Bitbucket Server over HTTPS: `[/<context>]/scm/<project>/<repo>`.
            Some(scm) if self.protocol == Protocol::Https => segments.len() - scm > 2,
            _ => segments.len() >= 2,
        }
    }

    fn render(&self, with_user: bool) -> String {
        let port = self.port.map(|p| format!(":{p}")).unwrap_or_default();
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        match self.protocol {
            Protocol::Ssh if self.scp_like => format!("{SSH_USER}@{host}:{}", self.path),
            Protocol::Ssh => format!("ssh://{SSH_USER}@{host}{port}/{}", self.path),
            Protocol::Https => {
                let user = match (&self.user, with_user) {
                    (Some(u), true) => format!("{}@", percent_encode_userinfo(u)),
                    _ => String::new(),
                };
                format!("https://{user}{host}{port}/{}", self.path)
            }
        }
    }
}

fn check_ssh_user(user: Option<&str>) -> Result<(), FieldError> {
    match user {
        None | Some(SSH_USER) => Ok(()),
        Some(other) => Err(FieldError::new(
            "url",
            format!(
                "SSH user is {other:?}, but Bitbucket accepts only `{SSH_USER}` (write ssh://git@host/… or git@host:…)"
            ),
        )),
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn percent_encode_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl fmt::Display for RepoUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(true))
    }
}

impl fmt::Debug for RepoUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RepoUrl({})", self.render(true))
    }
}

impl Serialize for RepoUrl {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RepoUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text).map_err(|e| serde::de::Error::custom(e.message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> RepoUrl {
        RepoUrl::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn accepts_every_bitbucket_clone_url_shape() {
        let cloud = url("https://bitbucket.org/ws/repo.git");
        assert_eq!(
            (cloud.protocol(), cloud.host(), cloud.path()),
            (Protocol::Https, "bitbucket.org", "ws/repo.git")
        );

        let hinted = url("https://jdoe@bitbucket.org/ws/repo.git");
        assert_eq!(hinted.username_hint(), Some("jdoe"));
        assert_eq!(hinted.git_url(), "https://bitbucket.org/ws/repo.git");
        assert_eq!(hinted.to_string(), "https://jdoe@bitbucket.org/ws/repo.git");

        let scp = url("git@bitbucket.org:ws/repo.git");
        assert_eq!((scp.protocol(), scp.path()), (Protocol::Ssh, "ws/repo.git"));
        assert_eq!(scp.git_url(), "git@bitbucket.org:ws/repo.git");

        let server_ssh = url("ssh://git@host:7999/proj/repo.git");
        assert_eq!(
            (server_ssh.port(), server_ssh.path()),
            (Some(7999), "proj/repo.git")
        );
        assert_eq!(server_ssh.git_url(), "ssh://git@host:7999/proj/repo.git");

        assert_eq!(
            url("https://host/scm/proj/repo.git").path(),
            "scm/proj/repo.git"
        );
        assert_eq!(
            url("https://host/bitbucket/scm/proj/repo.git").path(),
            "bitbucket/scm/proj/repo.git"
        );
    }

    #[test]
    fn a_password_in_the_url_is_refused_without_echoing_it() {
        let err = RepoUrl::parse("https://jdoe:hunter2-token@bitbucket.org/ws/repo.git")
            .expect_err("password");
        assert_eq!(err.field, "url");
        assert!(err.message.contains("password"));
        assert!(!err.message.contains("hunter2"));
    }

    #[test]
    fn an_https_url_without_its_scheme_is_not_taken_for_ssh() {
        let err = RepoUrl::parse("jdoe:tok3n-value@bitbucket.org/ws/r.git").expect_err("not ssh");
        assert!(err.message.contains("https://"));
        assert!(!err.message.contains("tok3n"));
    }

    #[test]
    fn a_bitbucket_page_names_the_clone_url_it_stands_for() {
        let clone = |u: &str| url(u).browser_page_clone_url();
        for (page, want) in [
            (
                "https://bitbucket.org/acme/config/src/main/",
                "https://bitbucket.org/acme/config.git",
            ),
            (
                "https://bitbucket.org/acme/config/src/main/Setup/Index.yaml",
                "https://bitbucket.org/acme/config.git",
            ),
            (
                "https://bitbucket.org/acme/config/branch/release",
                "https://bitbucket.org/acme/config.git",
            ),
            (
                "https://bb.corp/projects/PLAT/repos/config/browse",
                "https://bb.corp/scm/plat/config.git",
            ),
            (
                "https://bb.corp:8443/bitbucket/projects/PLAT/repos/config/browse/Setup",
                "https://bb.corp:8443/bitbucket/scm/plat/config.git",
            ),
            (
                "https://bb.corp/users/Jdoe/repos/sandbox/browse",
                "https://bb.corp/scm/~jdoe/sandbox.git",
            ),
        ] {
            assert_eq!(clone(page).as_deref(), Some(want), "{page}");
        }
        for not_a_page in [
            "https://bitbucket.org/acme/config.git",
            "https://bitbucket.org/acme",
            "https://bb.corp/scm/plat/config.git",
            "git@bitbucket.org:acme/config.git",
            "https://git.corp/projects/x.git",
        ] {
            assert_eq!(clone(not_a_page), None, "{not_a_page}");
        }
    }

    #[test]
    fn an_scp_url_keeps_an_absolute_path() {
        assert_eq!(
            url("git@host:/srv/git/r.git").git_url(),
            "git@host:/srv/git/r.git"
        );
        assert_eq!(
            url("git@host:srv/git/r.git").git_url(),
            "git@host:srv/git/r.git"
        );
        assert!(RepoUrl::parse("git@host:/").is_err());
    }

    #[test]
    fn ssh_insists_on_the_git_user() {
        let err = RepoUrl::parse("ssh://admin@host:7999/p/r.git").expect_err("user");
        assert!(err.message.contains("\"admin\""));
        assert!(RepoUrl::parse("deploy@host:p/r.git").is_err());
        assert_eq!(
            url("ssh://host/p/r.git").git_url(),
            "ssh://git@host/p/r.git"
        );
    }

    #[test]
    fn other_shapes_are_refused() {
        for bad in [
            "",
            "bitbucket.org/ws/repo",
            "http://host/r.git",
            "git://host/r.git",
            "ftp://x/y",
            "https://host",
            "https://host/r.git?x=1",
            "https://ho st/r",
        ] {
            assert!(RepoUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tells_account_urls_from_repository_urls() {
        assert!(!url("https://bitbucket.org/acme").names_repository());
        assert!(url("https://bitbucket.org/acme/config").names_repository());
        assert!(!url("https://host/scm/proj").names_repository());
        assert!(!url("https://host/ctx/scm/proj").names_repository());
        assert!(url("https://host/ctx/scm/proj/repo").names_repository());
        assert!(!url("ssh://git@host:7999/proj").names_repository());
        assert!(url("git@bitbucket.org:acme/repo.git").names_repository());
    }

    #[test]
    fn joins_a_repository_onto_an_account() {
        let slug = RepoSlug::parse("config").expect("slug");
        assert_eq!(
            url("https://bitbucket.org/acme/")
                .join_repo(&slug)
                .git_url(),
            "https://bitbucket.org/acme/config.git"
        );
        assert_eq!(
            url("ssh://git@h:7999/proj").join_repo(&slug).git_url(),
            "ssh://git@h:7999/proj/config.git"
        );
    }

    #[test]
    fn percent_decoding_of_user_hint() {
        assert_eq!(
            url("https://a%40b.com@host/x/y").username_hint(),
            Some("a@b.com")
        );
    }
}
