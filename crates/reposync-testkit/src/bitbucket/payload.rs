//! Headers and JSON bodies of the deliveries, one function per Bitbucket flavour.
//!
//! Pure functions of a resolved push: no git, no I/O, so the shapes can be read in one place.
//! Fields reposync reads are always present; descriptive fields Bitbucket also sends (links,
//! avatars, display names) are included in their usual shape so that a parser which is too
//! strict about them fails here rather than in production. Links point at the hosts in
//! [`Endpoints`] and are never the way to identify a repository: the structured fields are.

use anyhow::{Context as _, Result};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use time::OffsetDateTime;
use time::macros::format_description;
use uuid::Uuid;

use super::identity::{RepoIdentity, stable_number, stable_uuid};
use super::resolve::{Change, CommitInfo, PushEvent, RefKind, Side};

/// The Cloud User-Agent, as Bitbucket Cloud sends it.
const CLOUD_USER_AGENT: &str = "Bitbucket-Webhooks/2.0";
/// A Server User-Agent in the shape Bitbucket Data Center's HTTP client uses.
const SERVER_USER_AGENT: &str = "Atlassian HttpClient 4.2.0 / Bitbucket-8.19.0 (8019000) / Default";

/// The hosts that links inside payloads point at.
///
/// Fake but well-formed hosts for now; the REST emulation will point them at itself.
#[derive(Clone, Debug)]
pub(super) struct Endpoints {
    /// Cloud web UI, e.g. `https://bitbucket.org`.
    pub cloud_web: String,
    /// Cloud REST API base, e.g. `https://api.bitbucket.org/2.0`.
    pub cloud_api: String,
    /// Server base URL (web UI, `/scm/` clones and `/rest/`).
    pub server_web: String,
    /// Server SSH base, e.g. `ssh://git@bitbucket.example.invalid:7999`.
    pub server_ssh: String,
}

impl Default for Endpoints {
    fn default() -> Self {
        Self {
            cloud_web: "https://bitbucket.org".into(),
            cloud_api: "https://api.bitbucket.org/2.0".into(),
            server_web: "https://bitbucket.example.invalid".into(),
            server_ssh: "ssh://git@bitbucket.example.invalid:7999".into(),
        }
    }
}

/// A delivery ready to send.
#[derive(Clone, Debug)]
pub(super) struct Rendered {
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Who and what a push delivery is about.
#[derive(Debug)]
pub(super) struct PushContext<'a> {
    pub identity: &'a RepoIdentity,
    pub endpoints: &'a Endpoints,
    pub event: &'a PushEvent,
    pub secret: Option<&'a str>,
    pub now: OffsetDateTime,
}

/// Cloud `repo:push`: `X-Request-UUID` is the delivery id, `X-Hook-UUID` names the webhook.
pub(super) fn cloud_push(context: &PushContext<'_>, hook_uuid: Uuid) -> Result<Rendered> {
    let identity = context.identity;
    let links = CloudLinks::new(context.endpoints, identity);
    let changes: Vec<Value> = context
        .event
        .changes
        .iter()
        .map(|change| cloud_change(change, &links))
        .collect();
    let body = json!({
        "actor": cloud_user(context.endpoints, &context.event.actor),
        "repository": {
            "type": "repository",
            "full_name": identity.full_name(),
            "name": identity.slug(),
            "uuid": braced(identity.uuid()),
            "scm": "git",
            "is_private": true,
            "links": {
                "self": {"href": links.api.clone()},
                "html": {"href": links.web.clone()},
                "avatar": {"href": format!("{}/avatar/", links.web)},
            },
            "workspace": {
                "type": "workspace",
                "slug": identity.workspace(),
                "name": identity.workspace(),
                "uuid": braced(stable_uuid(&format!("workspace {}", identity.workspace()))),
                "links": {
                    "self": {"href": format!("{}/workspaces/{}", context.endpoints.cloud_api, identity.workspace())},
                    "html": {"href": format!("{}/{}/", context.endpoints.cloud_web, identity.workspace())},
                },
            },
            "project": {
                "type": "project",
                "key": identity.project_key(),
                "name": identity.workspace(),
                "uuid": braced(stable_uuid(&format!("cloud project {}", identity.full_name()))),
            },
        },
        "push": {"changes": changes},
    });
    let headers = vec![
        ("Content-Type", "application/json".to_owned()),
        ("User-Agent", CLOUD_USER_AGENT.to_owned()),
        ("X-Event-Key", "repo:push".to_owned()),
        ("X-Hook-UUID", hook_uuid.to_string()),
        ("X-Request-UUID", Uuid::new_v4().to_string()),
        ("X-Attempt-Number", "1".to_owned()),
    ];
    finish(headers, &body, context.secret)
}

/// Server/Data Center `repo:refs_changed`: `X-Request-Id` is the delivery id.
pub(super) fn server_refs_changed(context: &PushContext<'_>) -> Result<Rendered> {
    let changes: Vec<Value> = context.event.changes.iter().map(server_change).collect();
    let body = json!({
        "eventKey": "repo:refs_changed",
        "date": server_date(context.now)?,
        "actor": server_user(context.endpoints, &context.event.actor),
        "repository": server_repository(context.endpoints, context.identity),
        "changes": changes,
    });
    let headers = vec![
        ("Content-Type", "application/json; charset=utf-8".to_owned()),
        ("User-Agent", SERVER_USER_AGENT.to_owned()),
        ("X-Event-Key", "repo:refs_changed".to_owned()),
        ("X-Request-Id", Uuid::new_v4().to_string()),
    ];
    finish(headers, &body, context.secret)
}

/// "Post Webhooks for Bitbucket" plugin `repo:push`: Cloud-like changes inside a Server-like
/// repository, no delivery id and never a signature.
pub(super) fn post_webhooks_push(context: &PushContext<'_>) -> Result<Rendered> {
    let identity = context.identity;
    let key = identity.project_key();
    let changes: Vec<Value> = context
        .event
        .changes
        .iter()
        .map(|change| {
            json!({
                "created": change.old.is_none(),
                "closed": change.new.is_none(),
                "old": change.old.as_ref().map(|side| plugin_side(change, side)),
                "new": change.new.as_ref().map(|side| plugin_side(change, side)),
            })
        })
        .collect();
    let body = json!({
        "actor": {
            "username": context.event.actor,
            "displayName": context.event.actor,
        },
        "repository": {
            "scmId": "git",
            "project": {"key": key, "name": identity.workspace()},
            "slug": identity.slug(),
            "links": {"self": [{"href": server_browse_url(context.endpoints, identity)}]},
            "public": false,
            "owner": {"username": key, "displayName": key},
            "fullName": format!("{key}/{}", identity.slug()),
            "ownerName": key,
        },
        "push": {"changes": changes},
    });
    let headers = vec![
        ("Content-Type", "application/json; charset=UTF-8".to_owned()),
        ("X-Event-Key", "repo:push".to_owned()),
        ("X-Bitbucket-Type", "server".to_owned()),
    ];
    finish(headers, &body, None)
}

/// Server's "Test connection": `diagnostics:ping` with body `{"test":true}`.
pub(super) fn server_ping(secret: Option<&str>) -> Result<Rendered> {
    let headers = vec![
        ("Content-Type", "application/json; charset=utf-8".to_owned()),
        ("User-Agent", SERVER_USER_AGENT.to_owned()),
        ("X-Event-Key", "diagnostics:ping".to_owned()),
        ("X-Request-Id", Uuid::new_v4().to_string()),
    ];
    finish(headers, &json!({"test": true}), secret)
}

/// `sha256=<hex HMAC-SHA256(secret, body)>`, the `X-Hub-Signature` of Cloud and Server.
pub(super) fn hub_signature(secret: &str, body: &[u8]) -> Result<String> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .context("HMAC-SHA256 refused the secret as a key")?;
    mac.update(body);
    Ok(format!(
        "sha256={}",
        hex::encode(mac.finalize().into_bytes())
    ))
}

fn finish(headers: Vec<(&str, String)>, body: &Value, secret: Option<&str>) -> Result<Rendered> {
    let body = serde_json::to_vec(body).context("cannot serialise a webhook body")?;
    let mut headers: Vec<(String, String)> = headers
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect();
    if let Some(secret) = secret {
        headers.push(("X-Hub-Signature".to_owned(), hub_signature(secret, &body)?));
    }
    Ok(Rendered { headers, body })
}

/// Cloud writes UUIDs in braces inside bodies (but not in headers).
fn braced(uuid: Uuid) -> String {
    format!("{{{uuid}}}")
}

/// Server's event date, ISO-8601 with no colon in the offset: `2019-06-17T19:37:57+0000`.
fn server_date(now: OffsetDateTime) -> Result<String> {
    let format = format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second][offset_hour sign:mandatory][offset_minute]"
    );
    now.format(format).context("cannot format the event date")
}

/// Link bases of one Cloud repository.
struct CloudLinks {
    /// `https://api.bitbucket.org/2.0/repositories/acme/config`
    api: String,
    /// `https://bitbucket.org/acme/config`
    web: String,
}

impl CloudLinks {
    fn new(endpoints: &Endpoints, identity: &RepoIdentity) -> Self {
        Self {
            api: format!(
                "{}/repositories/{}",
                endpoints.cloud_api,
                identity.full_name()
            ),
            web: format!("{}/{}", endpoints.cloud_web, identity.full_name()),
        }
    }

    fn commit(&self, hash: &str) -> Value {
        json!({
            "self": {"href": format!("{}/commit/{hash}", self.api)},
            "html": {"href": format!("{}/commits/{hash}", self.web)},
        })
    }
}

fn cloud_user(endpoints: &Endpoints, actor: &str) -> Value {
    let uuid = braced(stable_uuid(&format!("user {actor}")));
    json!({
        "type": "user",
        "display_name": actor,
        "nickname": actor,
        "uuid": uuid,
        "account_id": format!("557058:{}", stable_uuid(&format!("account {actor}"))),
        "links": {
            "self": {"href": format!("{}/users/{uuid}", endpoints.cloud_api)},
            "html": {"href": format!("{}/{uuid}/", endpoints.cloud_web)},
            "avatar": {"href": format!("{}/account/{actor}/avatar/", endpoints.cloud_web)},
        },
    })
}

fn cloud_commit(commit: &CommitInfo, links: &CloudLinks) -> Value {
    let parents: Vec<Value> = commit
        .parents
        .iter()
        .map(|parent| json!({"type": "commit", "hash": parent, "links": links.commit(parent)}))
        .collect();
    json!({
        "type": "commit",
        "hash": commit.hash,
        "date": commit.date,
        "message": commit.message,
        "author": {"type": "author", "raw": commit.author_raw()},
        "parents": parents,
        "links": links.commit(&commit.hash),
    })
}

/// Cloud names the commit a tag points at, not the tag object.
fn cloud_side(change: &Change, side: &Side, links: &CloudLinks) -> Value {
    let target = match &side.commit {
        Some(commit) => cloud_commit(commit, links),
        None => json!({"type": "commit", "hash": side.id, "links": links.commit(&side.id)}),
    };
    let (kind, plural) = match change.kind {
        RefKind::Branch => ("branch", "branches"),
        RefKind::Tag => ("tag", "tags"),
    };
    json!({
        "type": kind,
        "name": change.name,
        "target": target,
        "links": {
            "self": {"href": format!("{}/refs/{plural}/{}", links.api, change.name)},
            "commits": {"href": format!("{}/commits/{}", links.api, change.name)},
            "html": {"href": format!("{}/{kind}/{}", links.web, change.name)},
        },
    })
}

fn cloud_change(change: &Change, links: &CloudLinks) -> Value {
    let commits: Vec<Value> = change
        .commits
        .iter()
        .map(|commit| cloud_commit(commit, links))
        .collect();
    let mut value = json!({
        "old": change.old.as_ref().map(|side| cloud_side(change, side, links)),
        "new": change.new.as_ref().map(|side| cloud_side(change, side, links)),
        "created": change.old.is_none(),
        "closed": change.new.is_none(),
        "forced": change.forced,
        "truncated": change.truncated,
        "commits": commits,
    });
    if let (Some(old), Some(new)) = (&change.old, &change.new) {
        let (old, new) = (old.commit_hash(), new.commit_hash());
        value["links"] = json!({
            "html": {"href": format!("{}/branches/compare/{new}..{old}", links.web)},
            "diff": {"href": format!("{}/diff/{new}..{old}", links.api)},
            "commits": {"href": format!("{}/commits?include={new}&exclude={old}", links.api)},
        });
    }
    value
}

fn server_user(endpoints: &Endpoints, actor: &str) -> Value {
    let slug = actor.to_lowercase();
    json!({
        "name": actor,
        "emailAddress": format!("{slug}@example.invalid"),
        "id": stable_number(&format!("server user {actor}")),
        "displayName": actor,
        "active": true,
        "slug": slug,
        "type": "NORMAL",
        "links": {"self": [{"href": format!("{}/users/{slug}", endpoints.server_web)}]},
    })
}

/// `…/projects/ACME/repos/config/browse`, or `…/users/alice/repos/…` for a personal project.
fn server_browse_url(endpoints: &Endpoints, identity: &RepoIdentity) -> String {
    let owner = match identity.workspace().strip_prefix('~') {
        Some(user) => format!("users/{}", user.to_lowercase()),
        None => format!("projects/{}", identity.project_key()),
    };
    format!(
        "{}/{owner}/repos/{}/browse",
        endpoints.server_web,
        identity.slug()
    )
}

fn server_repository(endpoints: &Endpoints, identity: &RepoIdentity) -> Value {
    let key = identity.project_key();
    let lower = key.to_lowercase();
    let slug = identity.slug();
    let mut project = json!({
        "key": key,
        "id": identity.project_id(),
        "name": identity.workspace(),
        "type": if identity.is_personal() { "PERSONAL" } else { "NORMAL" },
        "links": {"self": [{"href": format!("{}/projects/{key}", endpoints.server_web)}]},
    });
    if !identity.is_personal() {
        project["public"] = json!(false);
    }
    json!({
        "slug": slug,
        "id": identity.repository_id(),
        "name": slug,
        "hierarchyId": format!("{:020x}", identity.uuid().as_u128() >> 48),
        "scmId": "git",
        "state": "AVAILABLE",
        "statusMessage": "Available",
        "forkable": true,
        "project": project,
        "public": false,
        "archived": false,
        "links": {
            "clone": [
                {"href": format!("{}/{lower}/{slug}.git", endpoints.server_ssh), "name": "ssh"},
                {"href": format!("{}/scm/{lower}/{slug}.git", endpoints.server_web), "name": "http"},
            ],
            "self": [{"href": server_browse_url(endpoints, identity)}],
        },
    })
}

/// Server reports the ids git reported (an annotated tag's own id), and 40 zeros for none.
fn server_change(change: &Change) -> Value {
    let width = change
        .old
        .as_ref()
        .or(change.new.as_ref())
        .map_or(40, |side| side.id.len());
    let zeros = "0".repeat(width);
    let id = |side: &Option<Side>| side.as_ref().map_or(zeros.clone(), |side| side.id.clone());
    let kind = match (&change.old, &change.new) {
        (None, _) => "ADD",
        (_, None) => "DELETE",
        _ => "UPDATE",
    };
    json!({
        "ref": {
            "id": change.reference,
            "displayId": change.name,
            "type": match change.kind {
                RefKind::Branch => "BRANCH",
                RefKind::Tag => "TAG",
            },
        },
        "refId": change.reference,
        "fromHash": id(&change.old),
        "toHash": id(&change.new),
        "type": kind,
    })
}

fn plugin_side(change: &Change, side: &Side) -> Value {
    json!({
        "type": match change.kind {
            RefKind::Branch => "branch",
            RefKind::Tag => "tag",
        },
        "name": change.name,
        "target": {"type": "commit", "hash": side.commit_hash()},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_dates_have_no_colon_in_the_offset() {
        let date = OffsetDateTime::from_unix_timestamp(1_560_764_277).unwrap();
        assert_eq!(server_date(date).unwrap(), "2019-06-17T09:37:57+0000");
    }

    #[test]
    fn signature_matches_a_known_hmac() {
        // RFC 4231 test case 2.
        let signature = hub_signature("Jefe", b"what do ya want for nothing?").unwrap();
        assert_eq!(
            signature,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
