//! Bitbucket Cloud's REST API 2.0, for one repository: the reads the planner needs (branch
//! heads, commits, `src` listings and files, `diffstat`) and the one write (`POST src`).
//!
//! Every `src` call names a commit id, never a branch: a branch whose name holds `/` cannot be
//! addressed inside a `src` path, so callers resolve the branch with [`CloudClient::branch_head`]
//! first. Pages are followed through the opaque `next` link, and only while it stays on our
//! API's origin.

use std::collections::VecDeque;
use std::sync::Arc;

use reposync_model::ObjectId;
use reqwest::Method;
use reqwest::header::LOCATION;
use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::io::AsyncWrite;
use url::Url;

use super::budget::RequestBudget;
use super::error::RestError;
use super::transport::{RestConfig, Traffic, Transport};
use super::types::{Commit, DiffStatus, FileChange, TreeEntry, TreeEntryKind, split_signature};

/// Cloud's largest page.
const PAGE_LENGTH: &str = "100";
/// Diffstat's documented page.
const DIFFSTAT_PAGE_LENGTH: &str = "500";
/// How deep one listing reaches; deeper folders are listed again from where it stopped.
const LISTING_DEPTH: usize = 8;
/// Cloud's answer when a `max_depth` listing takes too long.
const LISTING_TIMED_OUT: u16 = 555;
/// How many pages one listing may follow before it is judged runaway.
const MAX_PAGES: usize = 10_000;

/// Cloud's partial responses (`fields=`) ask only for what the client reads: Cloud's answers
/// carry links and nested objects that would otherwise cost more than the files themselves.
const BRANCH_FIELDS: &str = "target.hash";
const COMMIT_FIELDS: &str = "hash,parents.hash,message,author.raw,date";
const ENTRY_FIELDS: &str = "path,type,size,attributes";
const LISTING_FIELDS: &str = "values.path,values.type,values.size,values.attributes,next";
const DIFFSTAT_FIELDS: &str = "values.status,values.old.path,values.new.path,next";

/// The public Cloud API base.
pub const CLOUD_API_BASE: &str = "https://api.bitbucket.org/2.0";

/// A client of one Cloud repository, `workspace/repo`.
#[derive(Debug, Clone)]
pub struct CloudClient {
    transport: Transport,
    workspace: String,
    repo: String,
}

/// A commit to make through `POST src`: the files to write and to delete, on `branch`, on top
/// of `parent`.
#[derive(Debug, Clone)]
pub struct CloudCommitRequest {
    pub branch: String,
    /// The head the change was built on; Bitbucket answers 409 when the branch has moved.
    pub parent: Option<ObjectId>,
    pub message: String,
    /// `Name <email>`.
    pub author: String,
    pub write: Vec<(String, Vec<u8>)>,
    pub delete: Vec<String>,
}

#[derive(Deserialize)]
struct Page<T> {
    values: Vec<T>,
    #[serde(default)]
    next: Option<String>,
}

#[derive(Deserialize)]
struct RawRepository {
    #[serde(default)]
    size: Option<u64>,
}

#[derive(Deserialize)]
struct RawBranch {
    target: RawCommit,
}

#[derive(Deserialize)]
struct RawCommit {
    hash: String,
    #[serde(default)]
    parents: Vec<RawParent>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    author: Option<RawAuthor>,
    #[serde(default)]
    date: Option<String>,
}

#[derive(Deserialize)]
struct RawAuthor {
    #[serde(default)]
    raw: Option<String>,
}

#[derive(Deserialize)]
struct RawParent {
    hash: String,
}

#[derive(Deserialize)]
struct RawSrcEntry {
    path: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    size: Option<u64>,
    #[serde(default)]
    attributes: Vec<String>,
}

#[derive(Deserialize)]
struct RawDiffstat {
    status: String,
    #[serde(default)]
    old: Option<RawDiffPath>,
    #[serde(default)]
    new: Option<RawDiffPath>,
}

#[derive(Deserialize)]
struct RawDiffPath {
    path: String,
}

impl CloudClient {
    /// A client of `workspace/repo` through `config`, drawing on `budget`.
    pub fn new(
        config: RestConfig,
        budget: Arc<RequestBudget>,
        workspace: &str,
        repo: &str,
    ) -> Result<CloudClient, RestError> {
        Ok(CloudClient {
            transport: Transport::new(config, budget)?,
            workspace: workspace.to_owned(),
            repo: repo.to_owned(),
        })
    }

    /// What this client has sent and received so far.
    pub fn traffic(&self) -> Traffic {
        self.transport.traffic()
    }

    /// The credential's budget.
    pub fn budget(&self) -> &Arc<RequestBudget> {
        self.transport.budget()
    }

    fn repo_url(&self, rest: &[&str]) -> Url {
        let mut segments = vec!["repositories", self.workspace.as_str(), self.repo.as_str()];
        segments.extend_from_slice(rest);
        self.transport.url(&segments)
    }

    /// The repository's size in bytes, as Cloud reports it (its object store): what a clone
    /// could cost when the server refuses partial clone.
    pub async fn repository_size(&self) -> Result<Option<u64>, RestError> {
        let url = self.repo_url(&[]);
        let raw: RawRepository = self
            .transport
            .get_json("cloud repository", &url, &[("fields", "size")])
            .await?;
        Ok(raw.size)
    }

    /// The commit a branch points at (`refs/branches/{name}`, the name one encoded segment).
    pub async fn branch_head(&self, branch: &str) -> Result<ObjectId, RestError> {
        const ENDPOINT: &str = "cloud branch";
        let url = self.repo_url(&["refs", "branches", branch]);
        let raw: RawBranch = self
            .transport
            .get_json(ENDPOINT, &url, &[("fields", BRANCH_FIELDS)])
            .await?;
        object_id(ENDPOINT, &raw.target.hash)
    }

    /// The commit a tag points at (`refs/tags/{name}`, the name one encoded segment); Cloud
    /// peels an annotated tag, so `target` is its commit either way.
    pub async fn tag_target(&self, tag: &str) -> Result<ObjectId, RestError> {
        const ENDPOINT: &str = "cloud tag";
        let url = self.repo_url(&["refs", "tags", tag]);
        let raw: RawBranch = self
            .transport
            .get_json(ENDPOINT, &url, &[("fields", BRANCH_FIELDS)])
            .await?;
        object_id(ENDPOINT, &raw.target.hash)
    }

    /// A commit by id, branch or tag name.
    pub async fn commit(&self, revision: &str) -> Result<Commit, RestError> {
        const ENDPOINT: &str = "cloud commit";
        let url = self.repo_url(&["commit", revision]);
        let raw: RawCommit = self
            .transport
            .get_json(ENDPOINT, &url, &[("fields", COMMIT_FIELDS)])
            .await?;
        let (author_name, author_email) = split_signature(
            raw.author
                .as_ref()
                .and_then(|author| author.raw.as_deref())
                .unwrap_or_default(),
        );
        let committed_at = match raw.date.as_deref() {
            Some(date) => OffsetDateTime::parse(date, &Rfc3339)
                .map_err(|err| RestError::Decode {
                    endpoint: ENDPOINT,
                    reason: format!("the commit's date {date:?} is not RFC 3339: {err}"),
                })?
                .unix_timestamp(),
            None => 0,
        };
        Ok(Commit {
            id: object_id(ENDPOINT, &raw.hash)?,
            parents: raw
                .parents
                .iter()
                .map(|parent| object_id(ENDPOINT, &parent.hash))
                .collect::<Result<_, _>>()?,
            message: raw.message.unwrap_or_default(),
            author_name,
            author_email,
            committed_at,
        })
    }

    /// Every entry under `dir` (`""` for the root) at `commit`, files and folders, at any
    /// depth; links and submodules are reported as such, never followed.
    ///
    /// Each request reaches [`LISTING_DEPTH`] levels; folders at that depth are listed again.
    /// When Cloud times out on a deep listing (555), the walk goes on one level at a time.
    /// More than `max_files` entries that are not folders end the walk, page by page, with
    /// [`RestError::TooLarge`], so that a caller deciding whether a tree is small enough for
    /// REST never pays for listing a big one.
    pub async fn list_tree(
        &self,
        commit: &ObjectId,
        dir: &str,
        max_files: usize,
    ) -> Result<Vec<TreeEntry>, RestError> {
        let mut depth = LISTING_DEPTH;
        let mut entries: Vec<TreeEntry> = Vec::new();
        let mut folders = VecDeque::from([dir.trim_matches('/').to_owned()]);
        let files = |entries: &[TreeEntry]| {
            entries
                .iter()
                .filter(|entry| entry.kind != TreeEntryKind::Directory)
                .count()
        };
        while let Some(folder) = folders.pop_front() {
            let already = files(&entries);
            let within = |listed: &[TreeEntry]| already + files(listed) <= max_files;
            let listed = match self.list(commit, &folder, depth, &within).await {
                Err(RestError::Status { status, .. })
                    if status == LISTING_TIMED_OUT && depth > 1 =>
                {
                    depth = 1;
                    self.list(commit, &folder, depth, &within).await?
                }
                other => other?,
            };
            for entry in listed {
                if entry.kind == TreeEntryKind::Directory
                    && levels_below(&folder, &entry.path) >= depth
                {
                    folders.push_back(entry.path.clone());
                }
                entries.push(entry);
            }
            if files(&entries) > max_files {
                return Err(RestError::TooLarge {
                    endpoint: "cloud src listing",
                    limit: max_files as u64,
                });
            }
        }
        Ok(entries)
    }

    /// The direct children of `dir` at `commit`, all pages.
    pub async fn list_dir(
        &self,
        commit: &ObjectId,
        dir: &str,
    ) -> Result<Vec<TreeEntry>, RestError> {
        self.list(commit, dir, 1, &|_: &[TreeEntry]| true).await
    }

    /// One listing of `dir` at `commit`, `max_depth` levels deep, page after page while
    /// `wanted` holds of what was listed so far.
    async fn list(
        &self,
        commit: &ObjectId,
        dir: &str,
        max_depth: usize,
        wanted: &(dyn Fn(&[TreeEntry]) -> bool + Sync),
    ) -> Result<Vec<TreeEntry>, RestError> {
        const ENDPOINT: &str = "cloud src listing";
        let depth = max_depth.to_string();
        let first = self
            .transport
            .url_with_path(&self.src_segments(commit), &directory_path(dir));
        let mut entries = Vec::new();
        let mut page: Page<RawSrcEntry> = self
            .transport
            .get_json(
                ENDPOINT,
                &first,
                &[
                    ("pagelen", PAGE_LENGTH),
                    ("max_depth", &depth),
                    ("fields", LISTING_FIELDS),
                ],
            )
            .await?;
        for _ in 0..MAX_PAGES {
            for raw in page.values.drain(..) {
                entries.push(tree_entry(ENDPOINT, raw)?);
            }
            let Some(next) = page.next.take() else {
                return Ok(entries);
            };
            if !wanted(&entries) {
                return Ok(entries);
            }
            page = self.follow(ENDPOINT, &next).await?;
        }
        Err(RestError::Decode {
            endpoint: ENDPOINT,
            reason: format!("more than {MAX_PAGES} pages"),
        })
    }

    fn src_segments<'a>(&'a self, commit: &'a ObjectId) -> Vec<&'a str> {
        vec![
            "repositories",
            self.workspace.as_str(),
            self.repo.as_str(),
            "src",
            commit.as_str(),
        ]
    }

    /// The content of the file at `path` and `commit`.
    pub async fn file(&self, commit: &ObjectId, path: &str) -> Result<Vec<u8>, RestError> {
        let url = self
            .transport
            .url_with_path(&self.src_segments(commit), path.trim_matches('/'));
        self.transport.get_bytes("cloud src file", &url, &[]).await
    }

    /// The content of the file at `path` and `commit`, streamed into `sink`.
    pub async fn file_to(
        &self,
        commit: &ObjectId,
        path: &str,
        sink: &mut (impl AsyncWrite + Unpin),
    ) -> Result<u64, RestError> {
        let url = self
            .transport
            .url_with_path(&self.src_segments(commit), path.trim_matches('/'));
        self.transport
            .get_to("cloud src file", &url, &[], sink)
            .await
    }

    /// What `src?format=meta` says of one path: its kind, size and attributes.
    pub async fn meta(&self, commit: &ObjectId, path: &str) -> Result<TreeEntry, RestError> {
        const ENDPOINT: &str = "cloud src meta";
        let url = self
            .transport
            .url_with_path(&self.src_segments(commit), path.trim_matches('/'));
        let raw: RawSrcEntry = self
            .transport
            .get_json(
                ENDPOINT,
                &url,
                &[("format", "meta"), ("fields", ENTRY_FIELDS)],
            )
            .await?;
        tree_entry(ENDPOINT, raw)
    }

    /// The files that differ between `old` and `new`, as `git diff old new` would list them.
    ///
    /// Cloud's spec is written `{new}..{old}`, the reverse of git's, and without
    /// `topic=false` two commits give a merge-base diff; both are fixed here.
    pub async fn diffstat(
        &self,
        old: &ObjectId,
        new: &ObjectId,
    ) -> Result<Vec<FileChange>, RestError> {
        const ENDPOINT: &str = "cloud diffstat";
        let spec = format!("{new}..{old}");
        let url = self.repo_url(&["diffstat", &spec]);
        let raw: Vec<RawDiffstat> = self
            .pages(
                ENDPOINT,
                url,
                &[
                    ("topic", "false"),
                    ("renames", "true"),
                    ("pagelen", DIFFSTAT_PAGE_LENGTH),
                    ("fields", DIFFSTAT_FIELDS),
                ],
            )
            .await?;
        Ok(raw
            .into_iter()
            .map(|entry| FileChange {
                status: DiffStatus::parse(&entry.status),
                old_path: entry.old.map(|old| old.path),
                new_path: entry.new.map(|new| new.path),
            })
            .collect())
    }

    /// Makes one commit through `POST src` and returns its id. A 409 (the branch moved past
    /// `parent`) is [`RestError::Conflict`]; nothing is overwritten. The request is sent once,
    /// never retried: when its answer is lost, the commit may have landed, which only reading
    /// the branch tells.
    pub async fn commit_files(&self, request: &CloudCommitRequest) -> Result<ObjectId, RestError> {
        const ENDPOINT: &str = "cloud src commit";
        let url = self.repo_url(&["src"]);
        let mut form: Vec<(String, String)> = vec![
            ("message".into(), request.message.clone()),
            ("author".into(), request.author.clone()),
            ("branch".into(), request.branch.clone()),
        ];
        if let Some(parent) = &request.parent {
            form.push(("parents".into(), parent.to_string()));
        }
        for (path, content) in &request.write {
            let text = String::from_utf8(content.clone()).map_err(|_| RestError::Config {
                field: "files",
                reason: format!("{path} is not UTF-8 text, which a form field cannot carry"),
            })?;
            form.push((path.clone(), text));
        }
        for path in &request.delete {
            form.push(("files".into(), path.clone()));
        }
        let response = self
            .transport
            .send_once(ENDPOINT, Method::POST, &url, |builder| builder.form(&form))
            .await?;
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|value| value.to_str().ok())
            .ok_or_else(|| RestError::Decode {
                endpoint: ENDPOINT,
                reason: "the answer names no new commit (no Location header)".into(),
            })?;
        let hash = location
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or("");
        object_id(ENDPOINT, hash)
    }

    /// Follows a paged answer from `first` through its `next` links.
    async fn pages<T: serde::de::DeserializeOwned>(
        &self,
        endpoint: &'static str,
        first: Url,
        query: &[(&str, &str)],
    ) -> Result<Vec<T>, RestError> {
        let mut values = Vec::new();
        let mut page: Page<T> = self.transport.get_json(endpoint, &first, query).await?;
        for _ in 0..MAX_PAGES {
            values.append(&mut page.values);
            let Some(next) = page.next.take() else {
                return Ok(values);
            };
            page = self.follow(endpoint, &next).await?;
        }
        Err(RestError::Decode {
            endpoint,
            reason: format!("more than {MAX_PAGES} pages"),
        })
    }

    /// The page a `next` link names, which must stay on our API's origin: the link carries
    /// the whole query, cursor included.
    async fn follow<T: serde::de::DeserializeOwned>(
        &self,
        endpoint: &'static str,
        next: &str,
    ) -> Result<Page<T>, RestError> {
        let next = Url::parse(next).map_err(|err| RestError::Decode {
            endpoint,
            reason: format!("the next page's link is not a URL: {err}"),
        })?;
        if !self.transport.owns(&next) {
            return Err(RestError::Decode {
                endpoint,
                reason: "the next page's link leaves the API's origin; it is not followed".into(),
            });
        }
        self.transport.get_json(endpoint, &next, &[]).await
    }
}

/// Cloud lists a directory only with a trailing slash; the root is just `/`.
fn directory_path(dir: &str) -> String {
    let dir = dir.trim_matches('/');
    if dir.is_empty() {
        String::new()
    } else {
        format!("{dir}/")
    }
}

/// How many levels `path` lies below `folder` (1 for a direct child).
fn levels_below(folder: &str, path: &str) -> usize {
    let below = if folder.is_empty() {
        path
    } else {
        path.strip_prefix(folder)
            .map(|rest| rest.trim_start_matches('/'))
            .unwrap_or(path)
    };
    below.split('/').filter(|part| !part.is_empty()).count()
}

fn tree_entry(endpoint: &'static str, raw: RawSrcEntry) -> Result<TreeEntry, RestError> {
    let has = |attribute: &str| raw.attributes.iter().any(|a| a == attribute);
    let kind = match raw.kind.as_str() {
        "commit_directory" => TreeEntryKind::Directory,
        "commit_file" if has("link") => TreeEntryKind::Symlink,
        "commit_file" if has("subrepository") => TreeEntryKind::Submodule,
        "commit_file" => TreeEntryKind::File,
        other => {
            return Err(RestError::Decode {
                endpoint,
                reason: format!("unknown entry type {other:?} at {:?}", raw.path),
            });
        }
    };
    Ok(TreeEntry {
        kind,
        executable: has("executable"),
        binary: has("binary"),
        size: raw.size,
        path: raw.path,
    })
}

pub(crate) fn object_id(endpoint: &'static str, text: &str) -> Result<ObjectId, RestError> {
    ObjectId::parse(text).map_err(|_| RestError::Decode {
        endpoint,
        reason: format!("{text:?} is not a commit id"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_below_a_folder() {
        assert_eq!(levels_below("Setup", "Setup/a"), 1);
        assert_eq!(levels_below("Setup", "Setup/a/b/c"), 3);
        assert_eq!(levels_below("", "a/b"), 2);
        assert_eq!(
            directory_path("/Setup/Applications/"),
            "Setup/Applications/"
        );
        assert_eq!(directory_path(""), "");
    }

    #[test]
    fn entries_read_their_attributes() {
        let listing = r#"{"pagelen":10,"values":[
            {"path":"Setup/x","type":"commit_directory"},
            {"path":"Setup/a.yaml","type":"commit_file","size":10,"attributes":[]},
            {"path":"Setup/l","type":"commit_file","size":4,"attributes":["link"]},
            {"path":"Setup/run.sh","type":"commit_file","size":4,"attributes":["executable"]}
        ],"page":1}"#;
        let page: Page<RawSrcEntry> = serde_json::from_str(listing).expect("a page");
        let kinds: Vec<_> = page
            .values
            .into_iter()
            .map(|raw| tree_entry("test", raw).expect("known").kind)
            .collect();
        assert_eq!(
            kinds,
            [
                TreeEntryKind::Directory,
                TreeEntryKind::File,
                TreeEntryKind::Symlink,
                TreeEntryKind::File
            ]
        );
    }
}
