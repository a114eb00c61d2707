//! Recognising a delivery's format and normalising each of the four push formats.

use serde_json::Value;

use super::json::{At, describe, quote};
use super::{
    BRANCH_PREFIX, ChangeKind, Delivery, DeliveryKind, PayloadError, RefChange, RefKind,
    Repository, TAG_PREFIX, WebhookFormat,
};

type Result<T> = std::result::Result<T, PayloadError>;

const PUSH: &str = "repo:push";
const REFS_CHANGED: &str = "repo:refs_changed";
const PING: &str = "diagnostics:ping";
const MIRROR_SYNCHRONIZED: &str = "mirror:repo_synchronized";

/// Normalises one webhook delivery from its headers and raw body.
///
/// `header` looks a request header up by name, case-insensitively. The format is taken from
/// the headers first (`X-Event-Key`, `X-Bitbucket-Type`), then from the body (`eventKey`, then
/// the presence of `refChanges`, `push`, `changes` or `{"test": true}`). A ping or an event that
/// is not a push, when named by `X-Event-Key`, is answered without reading the body, since
/// nothing in it is needed. The signature is not checked here: see
/// [`verify_signature`](super::verify_signature), which must see the raw body first.
pub fn normalise(header: &dyn Fn(&str) -> Option<String>, body: &[u8]) -> Result<Delivery> {
    let header = |name: &str| {
        header(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let request_uuid = header("X-Request-UUID");
    let request_id = header("X-Request-Id");
    let any_request_id = || request_uuid.clone().or_else(|| request_id.clone());
    let not_a_push = |event: String, kind: DeliveryKind| Delivery {
        format: None,
        event,
        delivery_id: any_request_id(),
        kind,
    };

    let header_event = header("X-Event-Key");
    if let Some(event) = &header_event
        && let Some(kind) = not_a_push_kind(event)
    {
        return Ok(not_a_push(event.clone(), kind));
    }

    let value = parse_json(body)?;
    if !value.is_object() {
        return Err(PayloadError::NotAnObject {
            found: describe(&value),
        });
    }
    let root = At::root(&value);

    let (event, shape) = match header_event {
        Some(event) => {
            let shape = shape_of_event(&event);
            (event, shape)
        }
        None => match root.opt("eventKey")? {
            Some(key) => {
                let event = key.non_empty_str()?.trim().to_owned();
                if let Some(kind) = not_a_push_kind(&event) {
                    return Ok(not_a_push(event, kind));
                }
                let shape = shape_of_event(&event);
                (event, shape)
            }
            None => match shape_of_body(&root)? {
                Some(Shape::Ping) => return Ok(not_a_push(PING.to_owned(), DeliveryKind::Ping)),
                Some(shape) => (shape.inferred_event().to_owned(), shape),
                None => return Err(PayloadError::Unrecognised),
            },
        },
    };

    let (format, delivery_id, repository, changes) = match shape {
        Shape::RefsChanged => (
            WebhookFormat::ServerNative,
            request_id,
            server_repository(&root)?,
            server_changes(&root.req("changes")?)?,
        ),
        Shape::RefChanges => (
            WebhookFormat::PostReceive,
            None,
            server_repository(&root)?,
            server_changes(&root.req("refChanges")?)?,
        ),
        Shape::Ping => return Ok(not_a_push(event, DeliveryKind::Ping)),
        Shape::Push => {
            if is_plugin(header("X-Bitbucket-Type").as_deref(), &root)? {
                (
                    WebhookFormat::PostWebhooks,
                    None,
                    server_repository(&root)?,
                    plugin_changes(&root)?,
                )
            } else {
                (
                    WebhookFormat::Cloud,
                    request_uuid,
                    cloud_repository(&root)?,
                    push_changes(&root.req("push")?.req("changes")?)?,
                )
            }
        }
    };
    Ok(Delivery {
        format: Some(format),
        event,
        delivery_id,
        kind: DeliveryKind::Push {
            repository,
            changes,
        },
    })
}

/// Which parser a body needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// `push.changes[]`: Cloud or the Post Webhooks plugin.
    Push,
    /// Server's `changes[]`.
    RefsChanged,
    /// The Post-Receive hook's `refChanges[]`.
    RefChanges,
    /// `{"test": true}`.
    Ping,
}

impl Shape {
    fn inferred_event(self) -> &'static str {
        match self {
            Shape::Push | Shape::RefChanges => PUSH,
            Shape::RefsChanged => REFS_CHANGED,
            Shape::Ping => PING,
        }
    }
}

/// The kind of a delivery whose event is not a push, or `None` for the two push events.
fn not_a_push_kind(event: &str) -> Option<DeliveryKind> {
    if event.eq_ignore_ascii_case(PUSH) || event.eq_ignore_ascii_case(REFS_CHANGED) {
        None
    } else if event.eq_ignore_ascii_case(PING) {
        Some(DeliveryKind::Ping)
    } else if event.eq_ignore_ascii_case(MIRROR_SYNCHRONIZED) {
        Some(DeliveryKind::Ignored {
            reason: format!(
                "event {event} reports a mirror catching up; reposync follows the primary \
                 server's {REFS_CHANGED}"
            ),
        })
    } else {
        Some(DeliveryKind::Ignored {
            reason: format!("event {event} is not a push"),
        })
    }
}

/// The parser for a push event key (`not_a_push_kind` returned `None` for it).
fn shape_of_event(event: &str) -> Shape {
    if event.eq_ignore_ascii_case(REFS_CHANGED) {
        Shape::RefsChanged
    } else {
        Shape::Push
    }
}

/// The parser a body without any event key needs, judged by its top-level fields.
fn shape_of_body(root: &At<'_>) -> Result<Option<Shape>> {
    Ok(if root.opt("refChanges")?.is_some() {
        Some(Shape::RefChanges)
    } else if root.opt("push")?.is_some() {
        Some(Shape::Push)
    } else if root.opt("changes")?.is_some() {
        Some(Shape::RefsChanged)
    } else if root.value().get("test") == Some(&Value::Bool(true)) {
        Some(Shape::Ping)
    } else {
        None
    })
}

/// Whether a `repo:push` delivery comes from the Post Webhooks plugin rather than Cloud:
/// `X-Bitbucket-Type` says so when present, otherwise a repository with a `project.key` and no
/// `full_name` does (Cloud repositories always have `full_name`, and may have a project too).
fn is_plugin(bitbucket_type: Option<&str>, root: &At<'_>) -> Result<bool> {
    if let Some(t) = bitbucket_type {
        return Ok(t.eq_ignore_ascii_case("server"));
    }
    let Some(repo) = root.opt("repository")? else {
        return Ok(false);
    };
    if !repo.value().is_object() || repo.opt("full_name")?.is_some() {
        return Ok(false);
    }
    Ok(repo
        .opt("project")?
        .is_some_and(|p| p.value().get("key").is_some_and(Value::is_string)))
}

fn parse_json(body: &[u8]) -> Result<Value> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(PayloadError::NotJson {
            detail: "it is empty".into(),
        });
    }
    serde_json::from_slice(body).map_err(|e| PayloadError::NotJson {
        detail: e.to_string(),
    })
}

/// Cloud: `repository.full_name` (`workspace/slug`), else `repository.workspace.slug` with
/// `repository.slug` or, last, `repository.name`.
fn cloud_repository(root: &At<'_>) -> Result<Repository> {
    let repo = root.req("repository")?;
    if let Some(full) = repo.opt("full_name")? {
        let text = full.non_empty_str()?;
        return match text.split_once('/') {
            Some((owner, slug))
                if !owner.trim().is_empty() && !slug.trim().is_empty() && !slug.contains('/') =>
            {
                Ok(Repository::new(owner, slug))
            }
            _ => Err(full.error(format!("must be workspace/slug, not {}", quote(text)))),
        };
    }
    let Some(workspace) = repo.opt("workspace")? else {
        return Err(repo.missing("full_name"));
    };
    let owner = name_part(&workspace.req("slug")?)?;
    let slug = match (repo.opt("slug")?, repo.opt("name")?) {
        (Some(slug), _) | (None, Some(slug)) => name_part(&slug)?,
        (None, None) => return Err(repo.missing("slug")),
    };
    Ok(Repository::new(owner, slug))
}

/// Server, the plugin and Post-Receive: `repository.project.key` + `repository.slug`.
fn server_repository(root: &At<'_>) -> Result<Repository> {
    let repo = root.req("repository")?;
    let key = name_part(&repo.req("project")?.req("key")?)?;
    let slug = name_part(&repo.req("slug")?)?;
    Ok(Repository::new(key, slug))
}

/// One path segment of a repository's identity: a workspace, project key or slug.
fn name_part<'a>(at: &At<'a>) -> Result<&'a str> {
    let text = at.non_empty_str()?;
    if text.contains('/') {
        return Err(at.error(format!("must not contain '/', not {}", quote(text))));
    }
    Ok(text)
}

/// Cloud's and the plugin's `push.changes[]`.
fn push_changes(list: &At<'_>) -> Result<Vec<RefChange>> {
    let mut changes = Vec::new();
    for item in list.array()? {
        changes.extend(push_change(&item)?);
    }
    Ok(changes)
}

/// The plugin's body: `push.changes[]`, or for old plugin versions that sent no `push`, a
/// Post-Receive-like `refChanges[]`, or else no changes at all.
fn plugin_changes(root: &At<'_>) -> Result<Vec<RefChange>> {
    if let Some(push) = root.opt("push")? {
        push_changes(&push.req("changes")?)
    } else if let Some(ref_changes) = root.opt("refChanges")? {
        server_changes(&ref_changes)
    } else {
        Ok(Vec::new())
    }
}

/// One Cloud-style change; `None` for a Mercurial bookmark, which has no git ref.
fn push_change(item: &At<'_>) -> Result<Option<RefChange>> {
    let new = item.opt("new")?;
    let old = item.opt("old")?;
    let created = item.flag("created")?;
    let closed = item.flag("closed")?;
    let forced = item.flag("forced")?;

    let named = match (&new, &old) {
        (Some(new), _) => new,
        (None, Some(old)) => old,
        (None, None) => {
            return Err(item.error("has neither new nor old; one of them must describe the ref"));
        }
    };
    let type_at = named.req("type")?;
    let type_name = type_at.str()?;
    let kind = match type_name.to_ascii_lowercase().as_str() {
        "branch" | "named_branch" => RefKind::Branch,
        "tag" => RefKind::Tag,
        // Mercurial bookmarks: Cloud dropped Mercurial in 2020 and they are not git refs.
        "bookmark" => return Ok(None),
        _ => {
            return Err(type_at.error(format!(
                "must be branch, tag, named_branch or bookmark, not {}",
                quote(type_name)
            )));
        }
    };
    let name = named.req("name")?.non_empty_str()?;

    if created && new.is_none() {
        return Err(item.child_error("created", "is true but new is null"));
    }
    if closed && new.is_some() {
        return Err(item.child_error("closed", "is true but new is not null"));
    }
    let new_commit = new.map(|n| target_hash(&n)).transpose()?;
    let old_commit = old.map(|o| target_hash(&o)).transpose()?;
    let (change, old_commit, new_commit) = match (old_commit, new_commit) {
        (old, None) => (ChangeKind::Delete, old, None),
        (None, new) => (ChangeKind::Create, None, new),
        (Some(_), new) if created => (ChangeKind::Create, None, new),
        (old, new) if forced => (ChangeKind::Force, old, new),
        (old, new) => (ChangeKind::Update, old, new),
    };
    Ok(Some(RefChange {
        ref_name: format!("{}{name}", kind.prefix()),
        kind,
        change,
        old: old_commit,
        new: new_commit,
    }))
}

/// `new.target.hash` or `old.target.hash`, which must name a commit.
fn target_hash(side: &At<'_>) -> Result<String> {
    let hash = side.req("target")?.req("hash")?;
    commit_id(&hash)?.ok_or_else(|| hash.error("must name a commit, not all zeros"))
}

/// Server's `changes[]` and Post-Receive's `refChanges[]`.
fn server_changes(list: &At<'_>) -> Result<Vec<RefChange>> {
    let mut changes = Vec::new();
    for item in list.array()? {
        changes.extend(server_change(&item)?);
    }
    Ok(changes)
}

/// One Server-style change; `None` for a ref that is neither a branch nor a tag.
fn server_change(item: &At<'_>) -> Result<Option<RefChange>> {
    let ref_object = item.opt("ref")?;
    let id_at = match (&ref_object, item.opt("refId")?) {
        (Some(r), _) => r.req("id")?,
        (None, Some(ref_id)) => ref_id,
        (None, None) => return Err(item.missing("ref")),
    };
    let id = id_at.non_empty_str()?;
    if !id.starts_with("refs/") {
        return Err(id_at.error(format!(
            "must be a full ref name (refs/heads/… or refs/tags/…), not {}",
            quote(id)
        )));
    }
    let kind = if id.starts_with(BRANCH_PREFIX) {
        RefKind::Branch
    } else if id.starts_with(TAG_PREFIX) {
        RefKind::Tag
    } else {
        // Notes, pull-request refs and the like: no sync follows them.
        return Ok(None);
    };
    if let Some(type_at) = ref_object
        .as_ref()
        .map(|r| r.opt("type"))
        .transpose()?
        .flatten()
    {
        let stated = type_at.str()?;
        let stated_kind = match stated.to_ascii_uppercase().as_str() {
            "BRANCH" => Some(RefKind::Branch),
            "TAG" => Some(RefKind::Tag),
            _ => None,
        };
        if stated_kind.is_some_and(|k| k != kind) {
            return Err(type_at.error(format!(
                "is {} but {} {} is a {kind}",
                quote(stated),
                id_at.path(),
                quote(id)
            )));
        }
    }

    let type_at = item.req("type")?;
    let type_name = type_at.str()?;
    let (change, old, new) = match type_name.to_ascii_uppercase().as_str() {
        "ADD" => (
            ChangeKind::Create,
            None,
            Some(required_commit(item, "toHash", "an ADD")?),
        ),
        "UPDATE" => (
            ChangeKind::Update,
            Some(required_commit(item, "fromHash", "an UPDATE")?),
            Some(required_commit(item, "toHash", "an UPDATE")?),
        ),
        "DELETE" => {
            let old = match item.opt("fromHash")? {
                Some(hash) => commit_id(&hash)?,
                None => None,
            };
            (ChangeKind::Delete, old, None)
        }
        _ => {
            return Err(type_at.error(format!(
                "must be ADD, UPDATE or DELETE, not {}",
                quote(type_name)
            )));
        }
    };
    Ok(Some(RefChange {
        ref_name: id.to_owned(),
        kind,
        change,
        old,
        new,
    }))
}

/// A `fromHash` / `toHash` that the change type needs to be a real commit.
fn required_commit(item: &At<'_>, key: &str, change: &str) -> Result<String> {
    let hash = item.req(key)?;
    commit_id(&hash)?
        .ok_or_else(|| hash.error(format!("must name a commit for {change}, not all zeros")))
}

/// A full commit id (40 hex digits, or 64 for SHA-256 repositories), lower-cased; `None` when
/// it is all zeros, which Server writes for "no commit".
fn commit_id(at: &At<'_>) -> Result<Option<String>> {
    let text = at.str()?.trim();
    let well_formed = matches!(text.len(), 40 | 64) && text.bytes().all(|b| b.is_ascii_hexdigit());
    if !well_formed {
        return Err(at.error(format!(
            "must be a full commit id (40 or 64 hex digits), not {}",
            quote(text)
        )));
    }
    if text.bytes().all(|b| b == b'0') {
        Ok(None)
    } else {
        Ok(Some(text.to_ascii_lowercase()))
    }
}
