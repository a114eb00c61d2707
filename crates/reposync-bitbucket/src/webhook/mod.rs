//! Webhook deliveries: the four push formats normalised into one [`Delivery`], and the HMAC
//! signature check.
//!
//! Parsing is liberal about fields it does not need and strict about the ones it does: every
//! error names the JSON path that was wrong (`push.changes[1].new.target.hash is missing`).

mod clone_url;
mod formats;
mod json;
mod signature;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use formats::normalise;
pub use signature::{SignatureError, sign, verify_signature};

/// Which of the four push formats a body was in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookFormat {
    /// Bitbucket Cloud `repo:push`.
    Cloud,
    /// Bitbucket Server/Data Center's own webhooks, `repo:refs_changed`.
    ServerNative,
    /// The "Post Webhooks for Bitbucket" plugin for Server (Cloud-like `push.changes[]`).
    PostWebhooks,
    /// The old Server Post-Receive hook, a body with `refChanges[]` and no event header.
    PostReceive,
}

impl fmt::Display for WebhookFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WebhookFormat::Cloud => "cloud",
            WebhookFormat::ServerNative => "server_native",
            WebhookFormat::PostWebhooks => "post_webhooks",
            WebhookFormat::PostReceive => "post_receive",
        })
    }
}

/// One webhook delivery, whatever format it came in.
///
/// As JSON the kind is flattened into the delivery: `{"format": "cloud", "event": "repo:push",
/// "delivery_id": "…", "kind": "push", "repository": {…}, "changes": […]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// The push format; `None` exactly when the delivery is not a push (a ping, an ignored event).
    pub format: Option<WebhookFormat>,
    /// The event key as given (`X-Event-Key`, else the body's `eventKey`), or inferred from the
    /// body's shape (`repo:push` for `refChanges` bodies, `diagnostics:ping` for `{"test": true}`).
    pub event: String,
    /// `X-Request-UUID` (Cloud) or `X-Request-Id` (Server); the plugin and the Post-Receive hook
    /// send none.
    pub delivery_id: Option<String>,
    /// What the delivery asks of reposync.
    #[serde(flatten)]
    pub kind: DeliveryKind,
}

/// What a delivery is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DeliveryKind {
    /// Refs of one repository moved. The list may be empty (Cloud sends such pushes, and old
    /// plugin bodies carry no list at all); refs other than branches and tags are left out.
    Push {
        /// The repository pushed to.
        repository: Repository,
        /// The refs that changed, in payload order.
        changes: Vec<RefChange>,
    },
    /// Bitbucket Server's "Test connection" (`diagnostics:ping`).
    Ping,
    /// An event that is not a push (pull requests, repository settings, mirrors, …).
    Ignored {
        /// Why it was ignored, as a sentence.
        reason: String,
    },
}

/// The repository a delivery is about, from structured payload fields only.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Repository {
    /// Cloud: the workspace; Server, the plugin and Post-Receive: the project key (`~user` for a
    /// personal repository).
    pub owner: String,
    /// The repository slug.
    pub slug: String,
    /// `owner/slug`.
    pub full_name: String,
}

impl Repository {
    /// Builds a repository from its owner and slug, deriving `full_name`.
    pub fn new(owner: impl Into<String>, slug: impl Into<String>) -> Self {
        let owner = owner.into();
        let slug = slug.into();
        let full_name = format!("{owner}/{slug}");
        Self {
            owner,
            slug,
            full_name,
        }
    }

    /// Whether this repository is the one a clone URL points at.
    ///
    /// The last two path segments of the URL are compared with the owner and slug, ignoring
    /// case (Server project keys are upper case while its URLs are lower case), after removing
    /// an optional `.git` and percent-decoding. That covers every shape Bitbucket hands out:
    /// `https://[user@]bitbucket.org/ws/repo.git`, `git@bitbucket.org:ws/repo.git`,
    /// `ssh://git@host:7999/proj/repo.git`, `https://host[/<context>]/scm/proj/repo.git`
    /// (`scm/~user/repo.git` for personal repositories) and a plain
    /// `https://127.0.0.1:PORT/owner/slug.git`. The host is not compared: a delivery does not
    /// name its server in a structured field, so the caller matches the host through the
    /// connector the webhook was registered for. Anything that is not a URL or an scp-like
    /// `host:path` does not match.
    pub fn matches_clone_url(&self, url: &str) -> bool {
        clone_url::matches(&self.owner, &self.slug, url)
    }
}

impl fmt::Display for Repository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full_name)
    }
}

/// One ref that moved in a push.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RefChange {
    /// The full ref name: `refs/heads/x` or `refs/tags/x`, also when the payload gave a short one.
    #[serde(rename = "ref")]
    pub ref_name: String,
    /// Branch or tag.
    pub kind: RefKind,
    /// Created, moved, deleted or force-moved.
    pub change: ChangeKind,
    /// The commit the ref pointed at before; `None` on create.
    pub old: Option<String>,
    /// The commit the ref points at now; `None` on delete.
    pub new: Option<String>,
}

impl RefChange {
    /// The short branch name (`feature/x` for `refs/heads/feature/x`) when this is a branch.
    pub fn branch(&self) -> Option<&str> {
        match self.kind {
            RefKind::Branch => self.ref_name.strip_prefix(BRANCH_PREFIX),
            RefKind::Tag => None,
        }
    }

    /// The short tag name when this is a tag.
    pub fn tag(&self) -> Option<&str> {
        match self.kind {
            RefKind::Tag => self.ref_name.strip_prefix(TAG_PREFIX),
            RefKind::Branch => None,
        }
    }
}

pub(crate) const BRANCH_PREFIX: &str = "refs/heads/";
pub(crate) const TAG_PREFIX: &str = "refs/tags/";

/// Whether a ref is a branch or a tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RefKind {
    /// `refs/heads/…`
    Branch,
    /// `refs/tags/…`
    Tag,
}

impl RefKind {
    /// The prefix of every full ref name of this kind (`refs/heads/`, `refs/tags/`).
    pub fn prefix(self) -> &'static str {
        match self {
            RefKind::Branch => BRANCH_PREFIX,
            RefKind::Tag => TAG_PREFIX,
        }
    }
}

impl fmt::Display for RefKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RefKind::Branch => "branch",
            RefKind::Tag => "tag",
        })
    }
}

/// How a ref moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    /// The ref is new (`old` is `None`).
    Create,
    /// The ref moved; Server reports every move this way, since it sends no force flag.
    Update,
    /// The ref was deleted (`new` is `None`).
    Delete,
    /// The ref moved to a commit that does not descend from the old one (Cloud's `forced`).
    Force,
}

impl fmt::Display for ChangeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ChangeKind::Create => "create",
            ChangeKind::Update => "update",
            ChangeKind::Delete => "delete",
            ChangeKind::Force => "force",
        })
    }
}

/// A body that could not be normalised.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// The body is not JSON at all (an HTTP layer answers 415 rather than 400).
    #[error("the body is not JSON ({detail})")]
    NotJson {
        /// What the JSON parser reported.
        detail: String,
    },
    /// The body is JSON but not an object.
    #[error("the body must be a JSON object, not {found}")]
    NotAnObject {
        /// What it is instead (`an array`, `a string`, …).
        found: &'static str,
    },
    /// A field the format needs is missing or has the wrong shape.
    #[error("{path} {problem}")]
    Field {
        /// The JSON path, as `push.changes[1].new.target.hash`.
        path: String,
        /// What is wrong with it, completing the sentence that starts with the path.
        problem: String,
    },
    /// Neither the headers nor the body's shape say which webhook this is.
    #[error(
        "cannot tell which Bitbucket webhook this is: there is no X-Event-Key header and the \
         body has none of eventKey, push, changes or refChanges"
    )]
    Unrecognised,
}

impl PayloadError {
    /// Whether the body was not JSON at all, as opposed to JSON of the wrong shape.
    pub fn is_not_json(&self) -> bool {
        matches!(self, PayloadError::NotJson { .. })
    }

    /// The JSON path of the offending field, when one field is to blame.
    pub fn path(&self) -> Option<&str> {
        match self {
            PayloadError::Field { path, .. } => Some(path),
            _ => None,
        }
    }

    pub(crate) fn field(path: impl Into<String>, problem: impl Into<String>) -> Self {
        PayloadError::Field {
            path: path.into(),
            problem: problem.into(),
        }
    }
}
