//! Bitbucket Server/Data Center's REST 1.0 endpoints, under `[/<context>]/rest/api/1.0` (or
//! `…/latest`), for repository `projects/{KEY}/repos/{slug}`, which is `{key}/{slug}.git`
//! under the root (`~USER` becomes `~user`):
//!
//! * `GET application-properties`: the version, without authentication.
//! * `GET …/branches?filterText=&orderBy=` and `…/branches/default`.
//! * `GET …/commits/{commitId}`: a commit id or a ref name.
//! * `GET …/tags/{name}`: one tag (the name may hold `/`), with the commit it peels to.
//! * `GET …/files[/{path}]?at=`: every file below the directory, relative to it, paged.
//! * `GET …/browse[/{path}]?at=`: a directory's children, or a file's lines, paged.
//! * `GET …/raw/{path}?at=`: a file's bytes.
//! * `GET …/archive?at=&format=&path=&prefix=&filename=` (5.1 and later): `git archive`,
//!   streamed, limited to the `path`s given.
//! * `GET …/changes?since=&until=`: changed paths, with the hard cap `page.max.changes`:
//!   beyond it nothing can be paged to.
//!
//! Pages take `start` and `limit` (default 25, at most 1000; `files` up to 100,000 as
//! `page.max.directory.recursive.children`; file lines 500, at most 5000) and answer
//! `size`, `limit`, `isLastPage`, `start`, `values` and, unless last, `nextPageStart`.
//!
//! Simpler than DC: users are not looked up (authors carry only `name` and `emailAddress`),
//! `branches` lists alphabetically unless `orderBy=MODIFICATION`, copies are found only among
//! modified files (`git diff-tree -C`), and `browse` serves a binary file's lines as text.

use anyhow::{Context as _, Result, bail};
use http::header::{CONTENT_DISPOSITION, CONTENT_TYPE, RETRY_AFTER};
use http::{Method, StatusCode};
use serde_json::{Value, json};

use super::git_read::{
    Change, ChangeStatus, Commit, DiffOptions, EntryKind, Repo, TreeEntry, plausible_path,
    plausible_ref_name,
};
use super::reply::{ApiRequest, Reply};
use super::{Access, Ctx};
use crate::bitbucket::RepoIdentity;

const NO_SUCH_REPOSITORY: &str = "com.atlassian.bitbucket.repository.NoSuchRepositoryException";
const NO_SUCH_COMMIT: &str = "com.atlassian.bitbucket.commit.NoSuchCommitException";
const NO_SUCH_TAG: &str = "com.atlassian.bitbucket.repository.NoSuchTagException";
const NO_SUCH_PATH: &str = "com.atlassian.bitbucket.content.NoSuchPathException";
const BAD_AUTH: &str = "com.atlassian.bitbucket.auth.IncorrectPasswordAuthenticationException";
const BAD_ARCHIVE_FORMAT: &str = "com.atlassian.bitbucket.scm.UnsupportedArchiveFormatException";

/// Default and largest page sizes.
const LIMIT: usize = 25;
const MAX_LIMIT: usize = 1000;
const MAX_FILES_LIMIT: usize = 100_000;
const LINES_LIMIT: usize = 500;
const MAX_LINES_LIMIT: usize = 5000;

/// A DC installation: its version and the context path it is deployed under.
#[derive(Clone, Debug)]
pub(super) struct Deployment {
    version: String,
    parsed: (u32, u32, u32),
    /// Without slashes, e.g. `bitbucket`.
    context: Option<String>,
}

impl Deployment {
    /// Checks the version (`major.minor[.patch]`) and the context path.
    pub fn new(version: &str, context: Option<&str>) -> Result<Self> {
        let mut numbers = version.split('.').map(|part| {
            part.parse::<u32>()
                .with_context(|| format!("DC version {version:?} is not like 8.19.1"))
        });
        let major = numbers.next().transpose()?.unwrap_or(0);
        let minor = numbers.next().transpose()?.unwrap_or(0);
        let patch = numbers.next().transpose()?.unwrap_or(0);
        if numbers.next().is_some() {
            bail!("DC version {version:?} is not like 8.19.1");
        }
        let context = context
            .map(|context| context.trim_matches('/').to_owned())
            .filter(|context| !context.is_empty());
        if let Some(context) = &context
            && !context
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || b"-_.~/".contains(&byte))
        {
            bail!("DC context path {context:?} must be plain URL path segments");
        }
        Ok(Self {
            version: version.to_owned(),
            parsed: (major, minor, patch),
            context,
        })
    }

    /// `[/context]/rest/api/1.0`.
    pub fn api_prefix(&self) -> String {
        match &self.context {
            Some(context) => format!("/{context}/rest/api/1.0"),
            None => "/rest/api/1.0".to_owned(),
        }
    }

    /// The archive endpoint came with 5.1.
    fn has_archive(&self) -> bool {
        self.parsed >= (5, 1, 0)
    }

    /// The segments after `[/context]/rest/api/{1.0|latest}`, or `None` for other paths.
    fn api_segments<'r>(&self, request: &'r ApiRequest) -> Option<Vec<&'r str>> {
        let mut segments = request.segments.iter().map(String::as_str);
        if let Some(context) = &self.context {
            for part in context.split('/') {
                if segments.next() != Some(part) {
                    return None;
                }
            }
        }
        let (Some("rest"), Some("api"), Some("1.0" | "latest")) =
            (segments.next(), segments.next(), segments.next())
        else {
            return None;
        };
        Some(segments.collect())
    }
}

/// Who may call the endpoint `request` is for.
pub(super) fn access(request: &ApiRequest, deployment: &Deployment) -> Access {
    match deployment.api_segments(request).as_deref() {
        Some(["application-properties"]) | None => Access::Open,
        Some(["projects", _, "repos", _, _, ..]) => Access::Repository,
        Some(_) => Access::Authenticated,
    }
}

/// DC's error envelope.
pub(super) fn error(status: StatusCode, message: &str, exception: Option<&str>) -> Reply {
    Reply::json(
        status,
        &json!({"errors": [{"context": null, "message": message, "exceptionName": exception}]}),
    )
}

pub(super) fn unauthorized() -> Reply {
    error(
        StatusCode::UNAUTHORIZED,
        "Authentication failed. Please check your credentials and try again.",
        Some(BAD_AUTH),
    )
}

/// `429` in the JSON envelope, with `Retry-After` when given.
pub(super) fn too_many_requests(retry_after: Option<u64>) -> Reply {
    let reply = error(
        StatusCode::TOO_MANY_REQUESTS,
        "You have been rate limited. Please wait before making further requests.",
        None,
    );
    match retry_after {
        Some(seconds) => reply.with_header(RETRY_AFTER, seconds.to_string()),
        None => reply,
    }
}

fn not_found() -> Reply {
    error(StatusCode::NOT_FOUND, "Not Found", None)
}

fn bad_request(message: &str) -> Reply {
    error(StatusCode::BAD_REQUEST, message, None)
}

/// Answers a request under the API prefix.
pub(super) fn respond(
    ctx: &Ctx<'_>,
    deployment: &Deployment,
    request: &ApiRequest,
) -> Result<Reply> {
    let Some(segments) = deployment.api_segments(request) else {
        return Ok(not_found());
    };
    let get = request.method == Method::GET;
    match segments.as_slice() {
        ["application-properties"] if get => Ok(application_properties(deployment)),
        ["projects", key, "repos", slug, rest @ ..] => {
            let missing = || {
                error(
                    StatusCode::NOT_FOUND,
                    &format!("Repository {key}/{slug} does not exist."),
                    Some(NO_SUCH_REPOSITORY),
                )
            };
            let Ok(identity) = RepoIdentity::parse(&format!("{}/{slug}.git", key.to_lowercase()))
            else {
                return Ok(missing());
            };
            let Some(repo) = Repo::open(ctx.root, &identity)? else {
                return Ok(missing());
            };
            let dc = Dc {
                ctx,
                repo,
                identity,
            };
            match rest {
                ["branches"] if get => dc.branches(request),
                ["branches", "default"] if get => dc.default_branch(),
                ["commits", id @ ..] if get && !id.is_empty() => dc.commit(&id.join("/")),
                ["tags", name @ ..] if get && !name.is_empty() => dc.tag(&name.join("/")),
                ["files", path @ ..] if get => dc.files(request, path),
                ["browse", path @ ..] if get => dc.browse(request, path),
                ["raw", path @ ..] if get && !path.is_empty() => dc.raw(request, path),
                ["archive"] if get && deployment.has_archive() => dc.archive(request),
                ["changes"] if get => dc.changes(request),
                _ => Ok(not_found()),
            }
        }
        _ => Ok(not_found()),
    }
}

fn application_properties(deployment: &Deployment) -> Reply {
    let (major, minor, patch) = deployment.parsed;
    Reply::json(
        StatusCode::OK,
        &json!({
            "version": deployment.version,
            "buildNumber": format!("{major}{minor:03}{patch:03}"),
            "buildDate": "1717200000000",
            "displayName": "Bitbucket",
        }),
    )
}

/// `start` and `limit` of a page request.
#[derive(Clone, Copy, Debug)]
struct Paging {
    start: usize,
    limit: usize,
}

impl Paging {
    /// Reads `start` and `limit`, the latter defaulting to `default` and capped at `max`.
    fn read(request: &ApiRequest, default: usize, max: usize) -> Result<Self, Reply> {
        let number = |name: &str| -> Result<Option<usize>, Reply> {
            request
                .param(name)
                .map(|value| {
                    value
                        .trim()
                        .parse::<usize>()
                        .map_err(|_| bad_request(&format!("'{name}' must be a number: {value}")))
                })
                .transpose()
        };
        let start = number("start")?.unwrap_or(0);
        let limit = match number("limit")? {
            Some(0) | None => default,
            Some(limit) => limit,
        };
        Ok(Self {
            start,
            limit: limit.min(max).max(1),
        })
    }

    /// The page of `all` this request asks for, with `limit`, `isLastPage` and
    /// `nextPageStart`.
    fn page(&self, all: Vec<Value>) -> Value {
        let total = all.len();
        let values: Vec<Value> = all.into_iter().skip(self.start).take(self.limit).collect();
        let end = self.start.saturating_add(values.len());
        page_json(values, self.start, self.limit, end >= total)
    }
}

fn page_json(values: Vec<Value>, start: usize, limit: usize, last: bool) -> Value {
    let size = values.len();
    let mut page = json!({
        "size": size,
        "limit": limit,
        "isLastPage": last,
        "values": values,
        "start": start,
    });
    if !last {
        page["nextPageStart"] = json!(start + size);
    }
    page
}

/// DC's path object: `components`, `parent`, `name`, `extension` (when there is one),
/// `toString`.
fn path_json(path: &str) -> Value {
    let components: Vec<&str> = if path.is_empty() {
        Vec::new()
    } else {
        path.split('/').collect()
    };
    let name = components.last().copied().unwrap_or_default();
    let parent = components
        .split_last()
        .map(|(_, parents)| parents.join("/"))
        .unwrap_or_default();
    let mut value = json!({
        "components": components,
        "parent": parent,
        "name": name,
        "toString": path,
    });
    if let Some(extension) = extension(name) {
        value["extension"] = json!(extension);
    }
    value
}

/// A child's path object in `browse`: just its own name.
fn child_path_json(name: &str) -> Value {
    let mut value = json!({"components": [name], "name": name, "toString": name});
    if let Some(extension) = extension(name) {
        value["extension"] = json!(extension);
    }
    value
}

fn extension(name: &str) -> Option<&str> {
    name.rsplit_once('.')
        .map(|(_, extension)| extension)
        .filter(|extension| !extension.is_empty())
}

fn commit_json(commit: &Commit) -> Value {
    json!({
        "id": commit.hash,
        "displayId": display_id(&commit.hash),
        "author": {"name": commit.author_name, "emailAddress": commit.author_email},
        "authorTimestamp": commit.author_time.saturating_mul(1000),
        "committer": {"name": commit.committer_name, "emailAddress": commit.committer_email},
        "committerTimestamp": commit.committer_time.saturating_mul(1000),
        "message": commit.message.trim_end(),
        "parents": commit.parents.iter().map(|parent| json!({
            "id": parent,
            "displayId": display_id(parent),
        })).collect::<Vec<_>>(),
    })
}

/// The 11-character abbreviation DC shows.
fn display_id(hash: &str) -> &str {
    hash.get(..11).unwrap_or(hash)
}

/// The path a request's remaining segments name, without the trailing slash.
fn joined_path(segments: &[&str]) -> String {
    let segments = match segments.split_last() {
        Some((&"", before)) => before,
        _ => segments,
    };
    segments.join("/")
}

/// One repository's endpoints.
struct Dc<'a> {
    ctx: &'a Ctx<'a>,
    repo: Repo<'a>,
    identity: RepoIdentity,
}

impl Dc<'_> {
    fn no_such_commit(&self, rev: &str) -> Reply {
        error(
            StatusCode::NOT_FOUND,
            &format!(
                "Commit '{rev}' does not exist in repository '{}'.",
                self.identity.slug()
            ),
            Some(NO_SUCH_COMMIT),
        )
    }

    fn no_such_path(path: &str, revision: &str) -> Reply {
        error(
            StatusCode::NOT_FOUND,
            &format!("The path \"{path}\" does not exist at revision \"{revision}\""),
            Some(NO_SUCH_PATH),
        )
    }

    /// The commit `at` names (the default branch without it), and the revision as answers
    /// echo it; or the 404 to answer.
    fn at(&self, request: &ApiRequest) -> Result<Result<(String, String), Reply>> {
        let revision = match request.param("at") {
            Some(at) if !at.is_empty() => at.to_owned(),
            _ => match self.repo.default_branch()? {
                Some(branch) => format!("refs/heads/{branch}"),
                None => return Ok(Err(self.no_such_commit("HEAD"))),
            },
        };
        Ok(match self.repo.resolve(&revision)? {
            Some(commit) => Ok((commit, revision)),
            None => Err(self.no_such_commit(&revision)),
        })
    }

    fn branch_json(&self, name: &str, commit: &str, default: Option<&str>) -> Value {
        json!({
            "id": format!("refs/heads/{name}"),
            "displayId": name,
            "type": "BRANCH",
            "latestCommit": commit,
            "latestChangeset": commit,
            "isDefault": default == Some(name),
        })
    }

    /// One tag: `latestCommit` is the commit it peels to, `hash` the tag object of an
    /// annotated tag (the commit itself for a lightweight one).
    fn tag(&self, name: &str) -> Result<Reply> {
        let full = format!("refs/tags/{name}");
        let peeled = if plausible_ref_name(name) {
            self.repo.resolve(&full)?
        } else {
            None
        };
        let Some(commit) = peeled else {
            return Ok(error(
                StatusCode::NOT_FOUND,
                &format!(
                    "Tag '{name}' does not exist in repository '{}'.",
                    self.identity.slug()
                ),
                Some(NO_SUCH_TAG),
            ));
        };
        let hash = self
            .repo
            .text(&["rev-parse", "--verify", "--quiet", &full])?;
        Ok(Reply::json(
            StatusCode::OK,
            &json!({
                "id": full,
                "displayId": name,
                "type": "TAG",
                "latestCommit": commit,
                "latestChangeset": commit,
                "hash": hash,
            }),
        ))
    }

    fn branches(&self, request: &ApiRequest) -> Result<Reply> {
        let paging = match Paging::read(request, LIMIT, MAX_LIMIT) {
            Ok(paging) => paging,
            Err(reply) => return Ok(reply),
        };
        let default = self.repo.default_branch()?;
        let filter = request
            .param("filterText")
            .unwrap_or_default()
            .to_lowercase();
        let mut branches = self.repo.branches()?;
        branches.retain(|branch| branch.name.to_lowercase().contains(&filter));
        if request.param("orderBy") == Some("MODIFICATION") {
            branches.sort_by_key(|branch| std::cmp::Reverse(branch.committer_time));
        }
        let values = branches
            .iter()
            .map(|branch| self.branch_json(&branch.name, &branch.commit, default.as_deref()))
            .collect();
        Ok(Reply::json(StatusCode::OK, &paging.page(values)))
    }

    fn default_branch(&self) -> Result<Reply> {
        let default = self.repo.default_branch()?;
        let tip = match &default {
            Some(branch) => self.repo.branch_tip(branch)?,
            None => None,
        };
        match (default, tip) {
            (Some(branch), Some(tip)) => Ok(Reply::json(
                StatusCode::OK,
                &self.branch_json(&branch, &tip, Some(&branch)),
            )),
            _ => Ok(error(
                StatusCode::NOT_FOUND,
                &format!(
                    "Repository {}/{} does not have a default branch.",
                    self.identity.project_key(),
                    self.identity.slug()
                ),
                Some("com.atlassian.bitbucket.repository.NoDefaultBranchException"),
            )),
        }
    }

    fn commit(&self, id: &str) -> Result<Reply> {
        match self.repo.resolve(id)? {
            Some(hash) => Ok(Reply::json(
                StatusCode::OK,
                &commit_json(&self.repo.commit(&hash)?),
            )),
            None => Ok(self.no_such_commit(id)),
        }
    }

    fn files(&self, request: &ApiRequest, segments: &[&str]) -> Result<Reply> {
        let (commit, revision) = match self.at(request)? {
            Ok(at) => at,
            Err(reply) => return Ok(reply),
        };
        let paging = match Paging::read(request, LIMIT, MAX_FILES_LIMIT) {
            Ok(paging) => paging,
            Err(reply) => return Ok(reply),
        };
        let dir = joined_path(segments);
        let entries = if dir.is_empty() || plausible_path(&dir) {
            self.repo.descendants(&commit, &dir)?
        } else {
            None
        };
        let Some(entries) = entries else {
            return Ok(Self::no_such_path(&dir, &revision));
        };
        let skip = if dir.is_empty() { 0 } else { dir.len() + 1 };
        let values = entries
            .iter()
            .filter(|entry| entry.kind == EntryKind::Blob)
            .map(|entry| json!(entry.path.get(skip..).unwrap_or_default()))
            .collect();
        Ok(Reply::json(StatusCode::OK, &paging.page(values)))
    }

    fn browse(&self, request: &ApiRequest, segments: &[&str]) -> Result<Reply> {
        let (commit, revision) = match self.at(request)? {
            Ok(at) => at,
            Err(reply) => return Ok(reply),
        };
        let path = joined_path(segments);
        let entry = if path.is_empty() || plausible_path(&path) {
            self.repo.entry(&commit, &path)?
        } else {
            None
        };
        let Some(entry) = entry else {
            return Ok(Self::no_such_path(&path, &revision));
        };
        match entry.kind {
            EntryKind::Tree => {
                let paging = match Paging::read(request, LIMIT, MAX_LIMIT) {
                    Ok(paging) => paging,
                    Err(reply) => return Ok(reply),
                };
                let children = self.repo.children(&commit, &path)?.unwrap_or_default();
                let values = children.iter().map(child_json).collect();
                Ok(Reply::json(
                    StatusCode::OK,
                    &json!({
                        "path": path_json(&path),
                        "revision": revision,
                        "children": paging.page(values),
                    }),
                ))
            }
            EntryKind::Blob => {
                let paging = match Paging::read(request, LINES_LIMIT, MAX_LINES_LIMIT) {
                    Ok(paging) => paging,
                    Err(reply) => return Ok(reply),
                };
                let content = self.repo.blob(&entry.oid)?;
                let text = String::from_utf8_lossy(&content);
                let lines: Vec<&str> = text.lines().collect();
                let total = lines.len();
                let values: Vec<Value> = lines
                    .into_iter()
                    .skip(paging.start)
                    .take(paging.limit)
                    .map(|line| json!({"text": line}))
                    .collect();
                let size = values.len();
                let last = paging.start.saturating_add(size) >= total;
                let mut body = json!({
                    "lines": values,
                    "start": paging.start,
                    "size": size,
                    "isLastPage": last,
                });
                if !last {
                    body["nextPageStart"] = json!(paging.start + size);
                }
                Ok(Reply::json(StatusCode::OK, &body))
            }
            EntryKind::Commit => Ok(Self::no_such_path(&path, &revision)),
        }
    }

    fn raw(&self, request: &ApiRequest, segments: &[&str]) -> Result<Reply> {
        let (commit, revision) = match self.at(request)? {
            Ok(at) => at,
            Err(reply) => return Ok(reply),
        };
        let path = joined_path(segments);
        let entry = if plausible_path(&path) {
            self.repo.entry(&commit, &path)?
        } else {
            None
        };
        match entry {
            Some(entry) if entry.kind == EntryKind::Blob => {
                let content = self.repo.blob(&entry.oid)?;
                let binary = content.iter().take(8000).any(|byte| *byte == 0);
                let content_type = if binary {
                    "application/octet-stream"
                } else {
                    "text/plain;charset=UTF-8"
                };
                Ok(Reply::bytes(StatusCode::OK, content_type, content))
            }
            _ => Ok(Self::no_such_path(&path, &revision)),
        }
    }

    fn archive(&self, request: &ApiRequest) -> Result<Reply> {
        let format = request.param("format").unwrap_or("zip");
        let (git_format, content_type, extension) = match format {
            "zip" => ("zip", "application/zip", "zip"),
            "tar" => ("tar", "application/x-tar", "tar"),
            "tgz" => ("tar.gz", "application/gzip", "tgz"),
            "tar.gz" => ("tar.gz", "application/gzip", "tar.gz"),
            other => {
                return Ok(error(
                    StatusCode::BAD_REQUEST,
                    &format!(
                        "'{other}' is not a supported archive format. Use zip, tar, tar.gz or tgz."
                    ),
                    Some(BAD_ARCHIVE_FORMAT),
                ));
            }
        };
        let (commit, revision) = match self.at(request)? {
            Ok(at) => at,
            Err(reply) => return Ok(reply),
        };
        let mut paths = Vec::new();
        for path in request.params("path") {
            let path = path.trim_matches('/');
            if path.is_empty() {
                continue;
            }
            // Checked before answering: once the stream has started, a failure can only
            // cut it short.
            if !plausible_path(path) || self.repo.entry(&commit, path)?.is_none() {
                return Ok(Self::no_such_path(path, &revision));
            }
            paths.push(path.to_owned());
        }
        let mut args = vec!["archive".to_owned(), format!("--format={git_format}")];
        if let Some(prefix) = request.param("prefix").map(|p| p.trim_start_matches('/'))
            && !prefix.is_empty()
        {
            let prefix = if prefix.ends_with('/') {
                prefix.to_owned()
            } else {
                format!("{prefix}/")
            };
            args.push(format!("--prefix={prefix}"));
        }
        args.push(commit.clone());
        if !paths.is_empty() {
            args.push("--".to_owned());
            args.extend(paths);
        }
        let filename = match request.param("filename") {
            Some(filename) if !filename.is_empty() => filename.replace(['"', '\\', '/'], "_"),
            _ => format!(
                "{}-{}.{extension}",
                self.identity.slug(),
                display_id(&commit)
            ),
        };
        Ok(Reply::Stream {
            headers: Vec::new(),
            repo: self.repo.path().to_owned(),
            args,
        }
        .with_header(CONTENT_TYPE, content_type)
        .with_header(
            CONTENT_DISPOSITION,
            format!("attachment; filename=\"{filename}\""),
        ))
    }

    fn changes(&self, request: &ApiRequest) -> Result<Reply> {
        let Some(until_rev) = request.param("until").filter(|until| !until.is_empty()) else {
            return Ok(bad_request("An 'until' revision is required."));
        };
        let Some(until) = self.repo.resolve(until_rev)? else {
            return Ok(self.no_such_commit(until_rev));
        };
        let since = match request.param("since").filter(|since| !since.is_empty()) {
            Some(since_rev) => match self.repo.resolve(since_rev)? {
                Some(since) => Some(since),
                None => return Ok(self.no_such_commit(since_rev)),
            },
            // Without `since`, the first parent, as DC does; a root commit against nothing.
            None => self.repo.commit(&until)?.parents.first().cloned(),
        };
        let cap = self.ctx.changes_cap;
        let paging = match Paging::read(request, LIMIT, cap.max(1)) {
            Ok(paging) => paging,
            Err(reply) => return Ok(reply),
        };
        let old = match &since {
            Some(since) => since.clone(),
            None => self.repo.empty_tree()?,
        };
        let changes = self.repo.diff(
            &old,
            &until,
            &DiffOptions {
                renames: true,
                copies: true,
                paths: Vec::new(),
            },
        )?;
        // The hard cap: only the first `cap` changes can ever be listed, and a page that
        // reaches it says more exist without any way to reach them.
        let visible = changes.len().min(cap);
        let (values, last) = if paging.start >= visible {
            (Vec::new(), true)
        } else {
            let end = paging.start.saturating_add(paging.limit).min(visible);
            let values: Vec<Value> = changes[paging.start..end].iter().map(change_json).collect();
            (values, end >= changes.len())
        };
        let mut body = page_json(values, paging.start, paging.limit, last);
        body["fromHash"] = json!(since);
        body["toHash"] = json!(until);
        body["properties"] = json!({});
        Ok(Reply::json(StatusCode::OK, &body))
    }
}

fn child_json(entry: &TreeEntry) -> Value {
    let kind = match entry.kind {
        EntryKind::Blob => "FILE",
        EntryKind::Tree => "DIRECTORY",
        EntryKind::Commit => "SUBMODULE",
    };
    let mut value = json!({
        "path": child_path_json(entry.name()),
        "contentId": entry.oid,
        "type": kind,
    });
    if entry.kind == EntryKind::Blob {
        value["size"] = json!(entry.size);
    }
    value
}

fn change_json(change: &Change) -> Value {
    let (kind, git_kind, percent) = match change.status {
        ChangeStatus::Added => ("ADD", "ADD", -1),
        ChangeStatus::Deleted => ("DELETE", "DELETE", -1),
        ChangeStatus::Modified | ChangeStatus::TypeChanged => ("MODIFY", "MODIFY", -1),
        ChangeStatus::Renamed(score) => ("MOVE", "RENAME", i32::from(score)),
        ChangeStatus::Copied(score) => ("COPY", "COPY", i32::from(score)),
    };
    let path = change
        .new_path
        .as_deref()
        .or(change.old_path.as_deref())
        .unwrap_or_default();
    let node_type = if change.new_mode == "160000" || change.old_mode == "160000" {
        "SUBMODULE"
    } else {
        "FILE"
    };
    let mut value = json!({
        "contentId": change.new_oid,
        "fromContentId": change.old_oid,
        "path": path_json(path),
        "executable": change.new_mode == "100755",
        "percentUnchanged": percent,
        "type": kind,
        "nodeType": node_type,
        "srcExecutable": change.old_mode == "100755",
        "links": {"self": [null]},
        "properties": {"gitChangeType": git_kind},
    });
    if matches!(
        change.status,
        ChangeStatus::Renamed(_) | ChangeStatus::Copied(_)
    ) && let Some(source) = &change.old_path
    {
        value["srcPath"] = path_json(source);
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_contexts_are_checked() {
        let deployment = Deployment::new("8.19.1", Some("/bitbucket/")).unwrap();
        assert_eq!(deployment.api_prefix(), "/bitbucket/rest/api/1.0");
        assert!(deployment.has_archive());
        assert!(!Deployment::new("5.0.2", None).unwrap().has_archive());
        assert!(Deployment::new("5.1", None).unwrap().has_archive());
        assert!(Deployment::new("eight", None).is_err());
        assert!(Deployment::new("8.19.1", Some("a b")).is_err());
    }

    #[test]
    fn paths_are_described_as_dc_does() {
        let value = path_json("Setup/Cloud Providers/aws.yaml");
        assert_eq!(
            value["components"],
            json!(["Setup", "Cloud Providers", "aws.yaml"])
        );
        assert_eq!(value["parent"], "Setup/Cloud Providers");
        assert_eq!(value["name"], "aws.yaml");
        assert_eq!(value["extension"], "yaml");
        assert_eq!(value["toString"], "Setup/Cloud Providers/aws.yaml");
        assert!(path_json("LICENSE").get("extension").is_none());
    }
}
