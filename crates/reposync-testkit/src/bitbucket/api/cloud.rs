//! Bitbucket Cloud's REST 2.0 endpoints, under `/2.0/repositories/{workspace}/{slug}`:
//!
//! * `GET refs/branches/{name}`: the branch and its target commit (the name is the rest of
//!   the path, so `feature%2Fx` and `feature/x` both work).
//! * `GET refs/tags/{name}`: the tag and its target commit (an annotated tag peeled).
//! * `GET commit/{rev}`: one commit.
//! * `GET src/{rev}/{path}`: a directory's paged listing (`pagelen`, `max_depth`, and an
//!   opaque `page` cursor that only `next` carries), a file's raw bytes, or with
//!   `format=meta` either one's metadata. `rev` is a commit id or a branch or tag name
//!   without `/`: Cloud cannot address `feature/x` there, so neither can the emulator.
//! * `GET diffstat/{new}..{old}` or `diffstat/{commit}`: changed paths, in Cloud's reversed
//!   order, a merge-base diff unless `topic=false`, numeric pages of 500.
//! * `POST src`: a commit from a form (`message`, `author`, `branch`, `parents`, `files`,
//!   and one field per file written), refused with `409` when `parents` is not the tip.
//!
//! Simpler than Cloud: no `q`/`sort`/`fields` filtering, no LFS redirects, no ETags, and
//! links point at the emulator's origin (the `html` ones too). Mime types come from a short
//! table of the extensions `/etc/mime.types` knows (Cloud uses such a table; `.yaml` is not
//! in it, so its `mimetype` is null, as `LICENSE`'s is in the fixture).

use std::collections::HashMap;

use anyhow::Result;
use http::header::{CONTENT_DISPOSITION, LOCATION, WWW_AUTHENTICATE};
use http::{Method, StatusCode};
use serde_json::{Value, json};

use super::form;
use super::git_read::{
    ChangeStatus, DiffOptions, EntryKind, Repo, TreeEntry, plausible_path, plausible_ref_name,
};
use super::git_write::{self, Edit, Outcome};
use super::reply::{ApiRequest, Reply, encode_path, encode_segment, query_string};
use super::{Access, Ctx, content_type};
use crate::bitbucket::RepoIdentity;
use crate::git::{TEST_USER_EMAIL, TEST_USER_NAME};

/// `src` listings: default and largest `pagelen`.
const SRC_PAGELEN: usize = 10;
const SRC_MAX_PAGELEN: usize = 100;
/// The deepest `max_depth` answered; deeper ones "time out" with 555, as Cloud's do.
const MAX_DEPTH: usize = 20;
/// `diffstat`: default and largest `pagelen`.
const DIFFSTAT_PAGELEN: usize = 500;
const DIFFSTAT_MAX_PAGELEN: usize = 500;
/// Cloud's non-standard status for a request that took too long.
const TIMEOUT_STATUS: u16 = 555;

/// What Cloud answers a Basic login it refuses, as plain text.
const LOGIN_FAILED: &str = "Login failed due to incorrect login credentials or method.\n\
For information on authentication methods for Bitbucket Cloud APIs, visit:\n    \
https://developer.atlassian.com/cloud/bitbucket/rest/intro/#authentication\n";
/// What Cloud answers a Bearer token it refuses, in its JSON envelope.
const TOKEN_INVALID: &str = "Token is invalid, expired, or not supported for this endpoint.";
/// Cloud's `429` body, plain text.
const RATE_LIMITED: &str = "Rate limit for this resource has been exceeded";

/// Who may call the endpoint `request` is for.
pub(super) fn access(request: &ApiRequest) -> Access {
    match request.segments.as_slice() {
        [version, repositories, _, _, _, ..]
            if version == "2.0" && repositories == "repositories" =>
        {
            Access::Repository
        }
        [version, ..] if version == "2.0" => Access::Authenticated,
        _ => Access::Open,
    }
}

/// Cloud's error envelope.
pub(super) fn error(status: StatusCode, message: &str) -> Reply {
    Reply::json(
        status,
        &json!({"type": "error", "error": {"message": message}}),
    )
}

/// `401`: plain text for Basic credentials (or none), JSON for a Bearer token.
pub(super) fn unauthorized(bearer: bool) -> Reply {
    if bearer {
        return error(StatusCode::UNAUTHORIZED, TOKEN_INVALID);
    }
    Reply::text(StatusCode::UNAUTHORIZED, LOGIN_FAILED)
        .with_header(WWW_AUTHENTICATE, "Basic realm=\"Bitbucket.org HTTP\"")
}

/// `429` as plain text, with `Retry-After` only when given.
pub(super) fn too_many_requests(retry_after: Option<u64>) -> Reply {
    let reply = Reply::text(StatusCode::TOO_MANY_REQUESTS, RATE_LIMITED);
    match retry_after {
        Some(seconds) => reply.with_header(http::header::RETRY_AFTER, seconds.to_string()),
        None => reply,
    }
}

fn not_found(message: &str) -> Reply {
    error(StatusCode::NOT_FOUND, message)
}

fn bad_request(message: &str) -> Reply {
    error(StatusCode::BAD_REQUEST, message)
}

/// Answers a request under `/2.0`.
pub(super) fn respond(ctx: &Ctx<'_>, request: &ApiRequest) -> Result<Reply> {
    let segments: Vec<&str> = request.segments.iter().map(String::as_str).collect();
    let ["2.0", "repositories", workspace, slug, rest @ ..] = segments.as_slice() else {
        return Ok(not_found("Resource not found"));
    };
    let repo_missing = || not_found(&format!("Repository {workspace}/{slug} not found"));
    let Ok(identity) = RepoIdentity::parse(&format!("{workspace}/{slug}.git")) else {
        return Ok(repo_missing());
    };
    let Some(repo) = Repo::open(ctx.root, &identity)? else {
        return Ok(repo_missing());
    };
    let cloud = Cloud {
        ctx,
        repo,
        api: format!(
            "{}/2.0/repositories/{}/{}",
            ctx.origin,
            encode_segment(workspace),
            encode_segment(slug)
        ),
        html: format!(
            "{}/{}/{}",
            ctx.origin,
            encode_segment(workspace),
            encode_segment(slug)
        ),
        identity,
    };
    let get = request.method == Method::GET;
    let reply = match rest {
        [] if get => cloud.repository_with_size(),
        ["refs", "branches", name @ ..] if get && !name.is_empty() => cloud.branch(&name.join("/")),
        ["refs", "tags", name @ ..] if get && !name.is_empty() => cloud.tag(&name.join("/")),
        ["commit", rev] if get => cloud.commit(rev),
        ["src", rev, path @ ..] if get && !path.is_empty() => cloud.src(request, rev, path),
        ["src"] if request.method == Method::POST => cloud.post_src(request),
        ["diffstat", spec] if get => cloud.diffstat(request, spec),
        _ => Ok(not_found("Resource not found")),
    }?;
    Ok(match request.param("fields") {
        Some(fields) => partial_response(reply, fields),
        None => reply,
    })
}

/// The bytes the files under `dir` hold.
fn directory_bytes(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            match entry.file_type() {
                Ok(kind) if kind.is_dir() => pending.push(entry.path()),
                Ok(kind) if kind.is_file() => {
                    total += entry.metadata().map(|m| m.len()).unwrap_or_default();
                }
                _ => {}
            }
        }
    }
    total
}

/// Cloud's partial responses: `fields=values.path,next` keeps only those fields of a
/// successful JSON answer (dotted paths through objects; a list applies them to each item).
fn partial_response(reply: Reply, fields: &str) -> Reply {
    let Reply::Full {
        status,
        headers,
        body,
    } = reply
    else {
        return reply;
    };
    let json = status.is_success()
        && headers.iter().any(|(name, value)| {
            *name == http::header::CONTENT_TYPE && value.starts_with("application/json")
        });
    let parsed = json
        .then(|| serde_json::from_slice::<serde_json::Value>(&body).ok())
        .flatten();
    let Some(value) = parsed else {
        return Reply::Full {
            status,
            headers,
            body,
        };
    };
    let paths: Vec<Vec<&str>> = fields
        .split(',')
        .map(|field| field.trim().split('.').collect())
        .filter(|path: &Vec<&str>| path.iter().all(|part| !part.is_empty()))
        .collect();
    Reply::Full {
        status,
        headers,
        body: select_fields(&value, &paths).to_string().into_bytes(),
    }
}

fn select_fields(value: &serde_json::Value, paths: &[Vec<&str>]) -> serde_json::Value {
    match value {
        serde_json::Value::Array(items) => serde_json::Value::Array(
            items
                .iter()
                .map(|item| select_fields(item, paths))
                .collect(),
        ),
        serde_json::Value::Object(map) => {
            let mut kept = serde_json::Map::new();
            for (key, inner) in map {
                let below: Vec<Vec<&str>> = paths
                    .iter()
                    .filter(|path| path.first() == Some(&key.as_str()))
                    .map(|path| path[1..].to_vec())
                    .collect();
                if below.is_empty() {
                    continue;
                }
                if below.iter().any(Vec::is_empty) {
                    kept.insert(key.clone(), inner.clone());
                } else {
                    kept.insert(key.clone(), select_fields(inner, &below));
                }
            }
            serde_json::Value::Object(kept)
        }
        other => other.clone(),
    }
}

/// One repository's endpoints.
struct Cloud<'a> {
    ctx: &'a Ctx<'a>,
    repo: Repo<'a>,
    identity: RepoIdentity,
    /// `<origin>/2.0/repositories/<workspace>/<slug>`.
    api: String,
    /// The website's page of the repository, on the emulator's origin.
    html: String,
}

impl Cloud<'_> {
    /// A revision as Cloud resolves it in a URL segment: a commit id, or a branch or tag
    /// name without `/` (a `%2F` inside the segment addresses nothing).
    fn resolve(&self, rev: &str) -> Result<Option<String>> {
        if rev.contains('/') {
            return Ok(None);
        }
        self.repo.resolve(rev)
    }

    fn branch(&self, name: &str) -> Result<Reply> {
        let Some(tip) = self.repo.branch_tip(name)? else {
            return Ok(not_found(&format!("Branch \"{name}\" not found")));
        };
        let segment = encode_segment(name);
        Ok(Reply::json(
            StatusCode::OK,
            &json!({
                "name": name,
                "links": {
                    "commits": {"href": format!("{}/commits/{segment}", self.api)},
                    "self": {"href": format!("{}/refs/branches/{segment}", self.api)},
                    "html": {"href": format!("{}/branch/{segment}", self.html)},
                },
                "default_merge_strategy": "merge_commit",
                "merge_strategies": ["merge_commit", "squash", "fast_forward"],
                "type": "branch",
                "target": self.commit_object(&tip)?,
            }),
        ))
    }

    /// A tag and the commit it points at (peeled, as Cloud shows annotated tags).
    fn tag(&self, name: &str) -> Result<Reply> {
        let peeled = if plausible_ref_name(name) {
            self.repo.resolve(&format!("refs/tags/{name}"))?
        } else {
            None
        };
        let Some(commit) = peeled else {
            return Ok(not_found(&format!("Tag \"{name}\" not found")));
        };
        let segment = encode_segment(name);
        Ok(Reply::json(
            StatusCode::OK,
            &json!({
                "name": name,
                "links": {
                    "commits": {"href": format!("{}/commits/{segment}", self.api)},
                    "self": {"href": format!("{}/refs/tags/{segment}", self.api)},
                    "html": {"href": format!("{}/commits/tag/{segment}", self.html)},
                },
                "type": "tag",
                "target": self.commit_object(&commit)?,
            }),
        ))
    }

    fn commit(&self, rev: &str) -> Result<Reply> {
        match self.resolve(rev)? {
            Some(hash) => Ok(Reply::json(StatusCode::OK, &self.commit_object(&hash)?)),
            None => Ok(not_found(&format!("Commit not found: {rev}"))),
        }
    }

    /// A commit as `target` of a branch and `GET commit/{rev}` show it.
    fn commit_object(&self, hash: &str) -> Result<Value> {
        let commit = self.repo.commit(hash)?;
        let link = |path: &str| json!({"href": format!("{}/{path}/{}", self.api, commit.hash)});
        Ok(json!({
            "hash": commit.hash,
            "repository": self.repository(),
            "links": {
                "self": link("commit"),
                "comments": {"href": format!("{}/commit/{}/comments", self.api, commit.hash)},
                "patch": link("patch"),
                "html": {"href": format!("{}/commits/{}", self.html, commit.hash)},
                "diff": link("diff"),
                "approve": {"href": format!("{}/commit/{}/approve", self.api, commit.hash)},
                "statuses": {"href": format!("{}/commit/{}/statuses", self.api, commit.hash)},
            },
            "author": {"raw": commit.author_raw(), "type": "author"},
            "parents": commit.parents.iter().map(|parent| self.commit_ref(parent)).collect::<Vec<_>>(),
            "date": commit.author_date,
            "message": commit.message,
            "type": "commit",
        }))
    }

    /// A commit as entries and parents reference it.
    fn commit_ref(&self, hash: &str) -> Value {
        json!({
            "type": "commit",
            "hash": hash,
            "links": {
                "self": {"href": format!("{}/commit/{hash}", self.api)},
                "html": {"href": format!("{}/commits/{hash}", self.html)},
            },
        })
    }

    fn repository(&self) -> Value {
        json!({
            "links": {
                "self": {"href": self.api},
                "html": {"href": self.html},
                "avatar": {"href": format!("{}/avatar", self.html)},
            },
            "type": "repository",
            "name": self.identity.slug(),
            "full_name": self.identity.full_name(),
            "uuid": format!("{{{}}}", self.identity.uuid()),
        })
    }

    /// `GET /repositories/{ws}/{repo}`: the repository, with `size` in bytes as Cloud
    /// reports it (what its object store holds).
    fn repository_with_size(&self) -> Result<Reply> {
        let mut body = self.repository();
        body["size"] = json!(directory_bytes(&self.repo.path().join("objects")));
        body["is_private"] = json!(true);
        body["scm"] = json!("git");
        Ok(Reply::json(StatusCode::OK, &body))
    }

    fn src(&self, request: &ApiRequest, rev: &str, segments: &[&str]) -> Result<Reply> {
        let Some(commit) = self.resolve(rev)? else {
            return Ok(not_found(&format!("Commit not found: {rev}")));
        };
        // A trailing slash (the root's only form) leaves an empty last segment.
        let segments = match segments.split_last() {
            Some((&"", before)) => before,
            _ => segments,
        };
        let path = segments.join("/");
        if !path.is_empty() && !plausible_path(&path) {
            return Ok(no_such_path(&path));
        }
        let Some(entry) = self.repo.entry(&commit, &path)? else {
            return Ok(no_such_path(&path));
        };
        let meta = request.param("format") == Some("meta");
        match entry.kind {
            EntryKind::Tree if meta => Ok(Reply::json(
                StatusCode::OK,
                &self.directory_json(&commit, &entry),
            )),
            EntryKind::Tree => self.listing(request, &commit, &path),
            _ if meta => {
                let binary = entry.kind == EntryKind::Blob && self.repo.is_binary(&entry.oid)?;
                Ok(Reply::json(
                    StatusCode::OK,
                    &self.file_json(&commit, &entry, binary),
                ))
            }
            EntryKind::Blob => self.raw(&entry),
            // A submodule has no content to download.
            EntryKind::Commit => Ok(no_such_path(&path)),
        }
    }

    /// A file's bytes, typed by its extension, as an attachment.
    fn raw(&self, entry: &TreeEntry) -> Result<Reply> {
        let content = self.repo.blob(&entry.oid)?;
        let binary = content.iter().take(8000).any(|byte| *byte == 0);
        let content_type = mimetype(entry.name()).unwrap_or(if binary {
            "application/octet-stream"
        } else {
            "text/plain"
        });
        let filename = entry.name().replace(['"', '\\'], "_");
        Ok(
            Reply::bytes(StatusCode::OK, content_type, content).with_header(
                CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
        )
    }

    /// One page of a directory listing, breadth first to `max_depth`.
    fn listing(&self, request: &ApiRequest, commit: &str, dir: &str) -> Result<Reply> {
        let pagelen = match number(request.param("pagelen"), SRC_PAGELEN) {
            Some(pagelen) if pagelen > 0 => pagelen.min(SRC_MAX_PAGELEN),
            _ => return Ok(bad_request("Invalid pagelen")),
        };
        let max_depth = match number(request.param("max_depth"), 1) {
            Some(depth) if depth > MAX_DEPTH => {
                return Ok(error(
                    StatusCode::from_u16(TIMEOUT_STATUS).unwrap_or(StatusCode::GATEWAY_TIMEOUT),
                    "Request timed out. Try a smaller max_depth.",
                ));
            }
            Some(depth) if depth > 0 => depth,
            _ => return Ok(bad_request("Invalid max_depth")),
        };
        let offset = match request.param("page") {
            None => 0,
            Some(token) => match cursor_offset(token) {
                Some(offset) => offset,
                None => return Ok(bad_request("Invalid page")),
            },
        };
        let entries = self.breadth_first(commit, dir, max_depth)?;
        let page: Vec<&TreeEntry> = entries.iter().skip(offset).take(pagelen).collect();
        let blobs: Vec<&str> = page
            .iter()
            .filter(|entry| entry.kind == EntryKind::Blob)
            .map(|entry| entry.oid.as_str())
            .collect();
        let mut binary = self.repo.binary_flags(&blobs)?.into_iter();
        let values: Vec<Value> = page
            .iter()
            .map(|entry| match entry.kind {
                EntryKind::Tree => self.directory_json(commit, entry),
                EntryKind::Blob => self.file_json(commit, entry, binary.next().unwrap_or(false)),
                EntryKind::Commit => self.file_json(commit, entry, false),
            })
            .collect();
        let mut body = json!({
            "pagelen": pagelen,
            "values": values,
            "page": offset / pagelen + 1,
        });
        let next = offset + pagelen;
        if next < entries.len() {
            let mut pairs: Vec<(&str, String)> = request
                .query
                .iter()
                .filter(|(key, _)| key != "page")
                .map(|(key, value)| (key.as_str(), value.clone()))
                .collect();
            pairs.push(("page", cursor(next)));
            body["next"] = json!(format!(
                "{}{}?{}",
                self.ctx.origin,
                request.raw_path,
                query_string(&pairs)
            ));
        }
        Ok(Reply::json(StatusCode::OK, &body))
    }

    /// The entries below `dir` to `max_depth` levels, level by level; within a directory,
    /// subdirectories first, each group in git's order, as Cloud lists them.
    fn breadth_first(&self, commit: &str, dir: &str, max_depth: usize) -> Result<Vec<TreeEntry>> {
        let entries = if max_depth == 1 {
            self.repo.children(commit, dir)?
        } else {
            self.repo.descendants(commit, dir)?
        }
        .unwrap_or_default();
        // Each directory's children, in git's order, by the directory's path.
        let mut children: HashMap<String, Vec<TreeEntry>> = HashMap::new();
        for entry in entries {
            let parent = entry
                .path
                .rsplit_once('/')
                .map_or("", |(parent, _)| parent)
                .to_owned();
            children.entry(parent).or_default().push(entry);
        }
        // Level by level; within a level, grouped by parent in the order the parents were
        // listed on the level above, directories before files.
        let mut ordered: Vec<TreeEntry> = Vec::new();
        let mut parents: Vec<String> = vec![dir.to_owned()];
        for _ in 0..max_depth {
            let mut next_parents = Vec::new();
            for parent in &parents {
                let (directories, files): (Vec<TreeEntry>, Vec<TreeEntry>) = children
                    .remove(parent)
                    .unwrap_or_default()
                    .into_iter()
                    .partition(|entry| entry.kind == EntryKind::Tree);
                next_parents.extend(directories.iter().map(|entry| entry.path.clone()));
                ordered.extend(directories);
                ordered.extend(files);
            }
            parents = next_parents;
        }
        Ok(ordered)
    }

    fn src_href(&self, commit: &str, path: &str) -> String {
        format!("{}/src/{commit}/{}", self.api, encode_path(path))
    }

    fn directory_json(&self, commit: &str, entry: &TreeEntry) -> Value {
        let href = format!("{}/", self.src_href(commit, &entry.path));
        json!({
            "path": entry.path,
            "type": "commit_directory",
            "links": {
                "self": {"href": href},
                "meta": {"href": format!("{href}?format=meta")},
            },
            "commit": self.commit_ref(commit),
        })
    }

    fn file_json(&self, commit: &str, entry: &TreeEntry, binary: bool) -> Value {
        let mut attributes = Vec::new();
        if entry.is_symlink() {
            attributes.push("link");
        }
        if entry.is_executable() {
            attributes.push("executable");
        }
        if entry.kind == EntryKind::Commit {
            attributes.push("subrepository");
        }
        if binary {
            attributes.push("binary");
        }
        let href = self.src_href(commit, &entry.path);
        json!({
            "mimetype": mimetype(entry.name()),
            "links": {
                "self": {"href": href},
                "meta": {"href": format!("{href}?format=meta")},
                "history": {"href": format!("{}/filehistory/{commit}/{}", self.api, encode_path(&entry.path))},
            },
            "path": entry.path,
            "commit": self.commit_ref(commit),
            "attributes": attributes,
            "type": "commit_file",
            "size": entry.size,
        })
    }

    /// `diffstat/{new}..{old}`: the changes that turn `old` into `new`.
    fn diffstat(&self, request: &ApiRequest, spec: &str) -> Result<Reply> {
        let (new_rev, old_rev) = match spec.split_once("..") {
            Some((new, old)) => (new, Some(old)),
            None => (spec, None),
        };
        let Some(new) = self.resolve(new_rev)? else {
            return Ok(not_found(&format!("Commit not found: {new_rev}")));
        };
        let old = match old_rev {
            Some(old_rev) => {
                let Some(old) = self.resolve(old_rev)? else {
                    return Ok(not_found(&format!("Commit not found: {old_rev}")));
                };
                // Without `topic=false` Cloud compares with the merge base, like
                // `git diff old...new`.
                if flag(request.param("topic"), true) {
                    self.repo.merge_base(&old, &new)?.unwrap_or(old)
                } else {
                    old
                }
            }
            None => match self.repo.commit(&new)?.parents.first() {
                Some(parent) => parent.clone(),
                None => self.repo.empty_tree()?,
            },
        };
        let pagelen = match number(request.param("pagelen"), DIFFSTAT_PAGELEN) {
            Some(pagelen) if pagelen > 0 => pagelen.min(DIFFSTAT_MAX_PAGELEN),
            _ => return Ok(bad_request("Invalid pagelen")),
        };
        let page = match number(request.param("page"), 1) {
            Some(page) if page > 0 => page,
            _ => return Ok(bad_request("Invalid page")),
        };
        let options = DiffOptions {
            renames: flag(request.param("renames"), true),
            copies: false,
            paths: request
                .params("path")
                .into_iter()
                .map(|path| path.trim_matches('/'))
                .filter(|path| !path.is_empty())
                .collect(),
        };
        let changes = self.repo.diff(&old, &new, &options)?;
        let side = |commit: &str, path: &Option<String>| match path {
            Some(path) => json!({
                "path": path,
                "escaped_path": path,
                "type": "commit_file",
                "links": {"self": {"href": self.src_href(commit, path)}},
            }),
            None => Value::Null,
        };
        let values: Vec<Value> = changes
            .iter()
            .skip((page - 1).saturating_mul(pagelen))
            .take(pagelen)
            .map(|change| {
                let status = match change.status {
                    ChangeStatus::Added | ChangeStatus::Copied(_) => "added",
                    ChangeStatus::Deleted => "removed",
                    ChangeStatus::Modified | ChangeStatus::TypeChanged => "modified",
                    ChangeStatus::Renamed(_) => "renamed",
                };
                let old_path = match change.status {
                    ChangeStatus::Copied(_) => &None,
                    _ => &change.old_path,
                };
                json!({
                    "type": "diffstat",
                    "status": status,
                    "lines_added": change.lines_added,
                    "lines_removed": change.lines_removed,
                    "old": side(&old, old_path),
                    "new": side(&new, &change.new_path),
                })
            })
            .collect();
        let mut body = json!({
            "pagelen": pagelen,
            "values": values,
            "page": page,
            "size": changes.len(),
        });
        if page.saturating_mul(pagelen) < changes.len() {
            let mut pairs: Vec<(&str, String)> = request
                .query
                .iter()
                .filter(|(key, _)| key != "page")
                .map(|(key, value)| (key.as_str(), value.clone()))
                .collect();
            pairs.push(("page", (page + 1).to_string()));
            body["next"] = json!(format!(
                "{}{}?{}",
                self.ctx.origin,
                request.raw_path,
                query_string(&pairs)
            ));
        }
        Ok(Reply::json(StatusCode::OK, &body))
    }

    /// `POST src`: one commit from a form.
    fn post_src(&self, request: &ApiRequest) -> Result<Reply> {
        let fields = match form::parse(content_type(request), &request.body) {
            Ok(fields) => fields,
            Err(err) => return Ok(bad_request(&format!("{err:#}"))),
        };
        let mut message = None;
        let mut author = None;
        let mut branch = None;
        let mut parent_revs: Vec<String> = Vec::new();
        let mut listed: Vec<String> = Vec::new();
        let mut writes: Vec<(String, Vec<u8>)> = Vec::new();
        for field in fields {
            let text = || String::from_utf8_lossy(&field.value).into_owned();
            match field.name.as_str() {
                "message" => message = Some(text()),
                "author" => author = Some(text()),
                "branch" => branch = Some(text()),
                "parents" => parent_revs.extend(
                    text()
                        .split(',')
                        .map(str::trim)
                        .filter(|rev| !rev.is_empty())
                        .map(str::to_owned),
                ),
                "files" => listed.push(text()),
                path => {
                    let path = path.trim_start_matches('/').to_owned();
                    writes.retain(|(written, _)| *written != path);
                    writes.push((path, field.value));
                }
            }
        }
        let mut deletes: Vec<String> = Vec::new();
        for path in &listed {
            let path = path.trim_start_matches('/');
            if !writes.iter().any(|(written, _)| written == path)
                && !deletes.iter().any(|deleted| deleted == path)
            {
                deletes.push(path.to_owned());
            }
        }
        for path in writes.iter().map(|(path, _)| path).chain(&deletes) {
            if !plausible_path(path) || path.split('/').any(|part| part == ".git") {
                return Ok(bad_request(&format!("Invalid path: {path}")));
            }
        }
        let (author_name, author_email) = match author.as_deref() {
            None => (TEST_USER_NAME.to_owned(), TEST_USER_EMAIL.to_owned()),
            Some(raw) => match parse_author(raw) {
                Some(parsed) => parsed,
                None => {
                    return Ok(bad_request(&format!(
                        "Invalid author {raw:?}: expected \"Name <email>\""
                    )));
                }
            },
        };
        let default_branch = self
            .repo
            .default_branch()?
            .unwrap_or_else(|| "main".to_owned());
        let branch = branch.unwrap_or_else(|| default_branch.clone());
        if !super::git_read::plausible_ref_name(&branch) {
            return Ok(bad_request(&format!("Invalid branch name: {branch}")));
        }
        let mut parents = Vec::with_capacity(parent_revs.len());
        for rev in &parent_revs {
            match self.resolve(rev)? {
                Some(commit) => parents.push(commit),
                None => return Ok(bad_request(&format!("Parent commit not found: {rev}"))),
            }
        }
        let tip = self.repo.branch_tip(&branch)?;
        if let (Some(tip), Some(first)) = (&tip, parents.first())
            && !parents.contains(tip)
        {
            return Ok(error(
                StatusCode::CONFLICT,
                &format!(
                    "Branch {branch} has moved: its tip is {tip}, not the parent {first} the \
                     commit was based on"
                ),
            ));
        }
        if parents.is_empty() {
            // Without parents Cloud commits on the branch's tip, or for a new branch on the
            // main branch's tip.
            let base = match &tip {
                Some(tip) => Some(tip.clone()),
                None => self.repo.branch_tip(&default_branch)?,
            };
            parents.extend(base);
        }
        let edit = Edit {
            branch: &branch,
            parents: &parents,
            expected_tip: tip.as_deref(),
            message: message.as_deref().unwrap_or("Edited online with Bitbucket"),
            author_name: &author_name,
            author_email: &author_email,
            writes: &writes,
            deletes: &deletes,
            actor: self.ctx.actor,
        };
        match git_write::commit(&self.repo, &edit)? {
            Outcome::Committed(commit) => Ok(Reply::empty(StatusCode::CREATED)
                .with_header(LOCATION, format!("{}/commit/{commit}", self.api))),
            Outcome::Moved => Ok(error(
                StatusCode::CONFLICT,
                &format!("Branch {branch} has moved while the commit was being made"),
            )),
            Outcome::Refused(message) => Ok(bad_request(&message)),
        }
    }
}

fn no_such_path(path: &str) -> Reply {
    not_found(&format!("No such file or directory: {path}"))
}

/// A numeric query parameter: `default` when absent, `None` when not a number.
fn number(value: Option<&str>, default: usize) -> Option<usize> {
    match value {
        None => Some(default),
        Some(text) => text.trim().parse().ok(),
    }
}

/// A boolean query parameter, Cloud-style (`true`/`false`, `1`/`0`).
fn flag(value: Option<&str>, default: bool) -> bool {
    match value.map(str::to_ascii_lowercase).as_deref() {
        Some("false" | "0") => false,
        Some("true" | "1") => true,
        _ => default,
    }
}

/// `Name <email>` split, as Cloud requires the `author` field.
fn parse_author(raw: &str) -> Option<(String, String)> {
    let (name, rest) = raw.trim().rsplit_once('<')?;
    let email = rest.strip_suffix('>')?.trim();
    let name = name.trim();
    (!name.is_empty() && email.contains('@')).then(|| (name.to_owned(), email.to_owned()))
}

/// Mixes offsets into cursors so they look like Cloud's (`8xhd`) and are never numbers.
const CURSOR_STRIDE: u64 = 7919;
const CURSOR_SALT: u64 = 104_729;

/// The opaque `page` cursor for an offset into a listing: letters only, so that it can never
/// be mistaken for (or forged as) a page number.
fn cursor(offset: usize) -> String {
    let mut value = u64::try_from(offset)
        .unwrap_or(u64::MAX / CURSOR_STRIDE)
        .saturating_mul(CURSOR_STRIDE)
        .saturating_add(CURSOR_SALT);
    let mut letters = Vec::new();
    loop {
        // `value % 26` is below 26, so the cast cannot truncate.
        letters.push(b'a' + (value % 26) as u8);
        value /= 26;
        if value == 0 {
            break;
        }
    }
    letters.reverse();
    String::from_utf8_lossy(&letters).into_owned()
}

/// The offset a cursor made by [`cursor`] stands for; `None` for anything else (a page
/// number included).
fn cursor_offset(token: &str) -> Option<usize> {
    if token.is_empty() || token.len() > 13 || !token.bytes().all(|b| b.is_ascii_lowercase()) {
        return None;
    }
    let value = token.bytes().try_fold(0_u64, |value, byte| {
        value.checked_mul(26)?.checked_add(u64::from(byte - b'a'))
    })?;
    let mixed = value.checked_sub(CURSOR_SALT)?;
    (mixed % CURSOR_STRIDE == 0)
        .then(|| usize::try_from(mixed / CURSOR_STRIDE).ok())
        .flatten()
}

/// The type `/etc/mime.types` gives an extension, for the few that configuration
/// repositories hold; `None` for the rest (Cloud then reports `null`).
fn mimetype(name: &str) -> Option<&'static str> {
    let (stem, extension) = name.rsplit_once('.')?;
    if stem.is_empty() {
        return None;
    }
    Some(match extension.to_ascii_lowercase().as_str() {
        "json" => "application/json",
        "xml" => "application/xml",
        "txt" | "text" => "text/plain",
        "md" | "markdown" => "text/markdown",
        "html" | "htm" => "text/html",
        "css" => "text/css",
        "csv" => "text/csv",
        "js" | "mjs" => "text/javascript",
        "ts" => "text/vnd.trolltech.linguist",
        "py" => "text/x-python",
        "sh" => "text/x-sh",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "svg" => "image/svg+xml",
        "zip" => "application/zip",
        "gz" => "application/gzip",
        "tgz" => "application/x-gtar-compressed",
        "tar" => "application/x-tar",
        "pdf" => "application/pdf",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_page_numbers_are_not_cursors() {
        for offset in [0, 1, 10, 100, 12_345, 1 << 40] {
            let token = cursor(offset);
            assert!(token.bytes().all(|b| b.is_ascii_lowercase()), "{token}");
            assert_eq!(cursor_offset(&token), Some(offset), "{token}");
        }
        for bad in ["1", "2", "10", "", "abc", "ZZZ", "8xhd"] {
            assert_eq!(cursor_offset(bad), None, "{bad}");
        }
    }

    #[test]
    fn authors_need_a_name_and_an_email() {
        assert_eq!(
            parse_author("Ada Lovelace <ada@example.com>"),
            Some(("Ada Lovelace".to_owned(), "ada@example.com".to_owned()))
        );
        assert_eq!(parse_author("ada@example.com"), None);
        assert_eq!(parse_author("<ada@example.com>"), None);
    }

    #[test]
    fn mimetypes_follow_the_extension_table() {
        assert_eq!(mimetype("package.json"), Some("application/json"));
        assert_eq!(mimetype("index.ts"), Some("text/vnd.trolltech.linguist"));
        assert_eq!(mimetype("pipeline.yaml"), None);
        assert_eq!(mimetype("LICENSE"), None);
        assert_eq!(mimetype(".json"), None);
    }
}
