//! Bitbucket Server and Data Center's REST API 1.0, for one repository: the server's version,
//! branches, commits, recursive file lists, `browse`, `raw`, path-filtered archives and
//! `changes`.
//!
//! Pages are followed through `isLastPage` and `nextPageStart`. `changes` is the exception:
//! Data Center caps it (`page.max.changes`) and cannot page past the cap, so a capped answer
//! says so and the planner reads the range another way.

use std::sync::Arc;

use reposync_model::ObjectId;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tokio::io::AsyncWrite;
use url::Url;

use super::budget::RequestBudget;
use super::cloud::object_id;
use super::error::RestError;
use super::transport::{RestConfig, Traffic, Transport};
use super::types::{Commit, DiffStatus, FileChange, TreeEntry, TreeEntryKind};

/// The page size asked for; Data Center caps it per resource, and its answer says what it used.
const PAGE_LIMIT: &str = "1000";
/// How many pages one listing may follow before it is judged runaway.
const MAX_PAGES: usize = 10_000;

/// A client of one Data Center repository, project `project` and slug `repo`.
#[derive(Debug, Clone)]
pub struct DcClient {
    transport: Transport,
    project: String,
    repo: String,
}

/// The server's product and version (`application-properties`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerProperties {
    pub version: String,
    #[serde(default)]
    pub display_name: Option<String>,
}

impl ServerProperties {
    /// Whether the version is at least `major.minor`; an unreadable version is not.
    pub fn at_least(&self, major: u32, minor: u32) -> bool {
        let mut parts = self.version.split('.').map(|part| part.parse::<u32>().ok());
        match (parts.next().flatten(), parts.next().flatten()) {
            (Some(have_major), Some(have_minor)) => (have_major, have_minor) >= (major, minor),
            _ => false,
        }
    }

    /// `archive` with `path=` exists from 5.1.
    pub fn has_archive_path_filter(&self) -> bool {
        self.at_least(5, 1)
    }
}

/// The files changed in a range, and whether Data Center's cap cut the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changes {
    pub files: Vec<FileChange>,
    /// The cap was hit: the list is incomplete and cannot be paged further.
    pub capped: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Page<T> {
    values: Vec<T>,
    #[serde(default)]
    is_last_page: bool,
    #[serde(default)]
    next_page_start: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawBranch {
    id: String,
    latest_commit: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawTag {
    id: String,
    latest_commit: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawCommit {
    id: String,
    #[serde(default)]
    parents: Vec<RawParent>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    author: Option<RawPerson>,
    #[serde(default)]
    committer_timestamp: Option<i64>,
    #[serde(default)]
    author_timestamp: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawPerson {
    #[serde(default)]
    name: String,
    #[serde(default)]
    email_address: Option<String>,
}

#[derive(Deserialize)]
struct RawParent {
    id: String,
}

#[derive(Deserialize)]
struct RawPath {
    #[serde(rename = "toString")]
    to_string: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawChange {
    path: RawPath,
    #[serde(default)]
    src_path: Option<RawPath>,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct RawBrowse {
    children: Page<RawChild>,
}

#[derive(Deserialize)]
struct RawChild {
    path: RawPath,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    size: Option<u64>,
}

impl DcClient {
    /// A client of `project/repo` through `config`, drawing on `budget`.
    pub fn new(
        config: RestConfig,
        budget: Arc<RequestBudget>,
        project: &str,
        repo: &str,
    ) -> Result<DcClient, RestError> {
        Ok(DcClient {
            transport: Transport::new(config, budget)?,
            project: project.to_owned(),
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

    fn repo_segments<'a>(&'a self, rest: &[&'a str]) -> Vec<&'a str> {
        let mut segments = vec![
            "projects",
            self.project.as_str(),
            "repos",
            self.repo.as_str(),
        ];
        segments.extend_from_slice(rest);
        segments
    }

    /// The server's version (`application-properties`, which needs no permission).
    pub async fn server_properties(&self) -> Result<ServerProperties, RestError> {
        let url = self.transport.url(&["application-properties"]);
        self.transport
            .get_json("dc application-properties", &url, &[])
            .await
    }

    /// The commit a branch points at, found by its exact full name among the branches
    /// `filterText` returns (a ref holding `/` cannot go in a path).
    pub async fn branch_head(&self, branch: &str) -> Result<ObjectId, RestError> {
        const ENDPOINT: &str = "dc branches";
        let url = self.transport.url(&self.repo_segments(&["branches"]));
        let full = format!("refs/heads/{branch}");
        let branches: Vec<RawBranch> = self
            .pages(ENDPOINT, &url, &[("filterText", branch)])
            .await?;
        let found = branches
            .into_iter()
            .find(|candidate| candidate.id == full)
            .ok_or_else(|| RestError::NotFound {
                endpoint: ENDPOINT,
                message: format!("no branch {branch:?}"),
            })?;
        object_id(ENDPOINT, &found.latest_commit)
    }

    /// The commit a tag points at (`tags/{name}`, whose `latestCommit` is the commit an
    /// annotated tag peels to). The name goes into the path as it is, `/` included, which is
    /// how Data Center addresses tags.
    pub async fn tag_commit(&self, tag: &str) -> Result<ObjectId, RestError> {
        const ENDPOINT: &str = "dc tag";
        let url = self
            .transport
            .url_with_path(&self.repo_segments(&["tags"]), tag);
        let raw: RawTag = self.transport.get_json(ENDPOINT, &url, &[]).await?;
        if raw.id != format!("refs/tags/{tag}") {
            return Err(RestError::NotFound {
                endpoint: ENDPOINT,
                message: format!("no tag {tag:?} (Data Center answered with {:?})", raw.id),
            });
        }
        object_id(ENDPOINT, &raw.latest_commit)
    }

    /// A commit by id or ref name.
    pub async fn commit(&self, revision: &str) -> Result<Commit, RestError> {
        const ENDPOINT: &str = "dc commit";
        let url = self
            .transport
            .url(&self.repo_segments(&["commits", revision]));
        let raw: RawCommit = self.transport.get_json(ENDPOINT, &url, &[]).await?;
        let author = raw.author.unwrap_or(RawPerson {
            name: String::new(),
            email_address: None,
        });
        Ok(Commit {
            id: object_id(ENDPOINT, &raw.id)?,
            parents: raw
                .parents
                .iter()
                .map(|parent| object_id(ENDPOINT, &parent.id))
                .collect::<Result<_, _>>()?,
            message: raw.message.unwrap_or_default(),
            author_name: author.name,
            author_email: author.email_address.unwrap_or_default(),
            // Data Center's timestamps are milliseconds.
            committed_at: raw
                .committer_timestamp
                .or(raw.author_timestamp)
                .unwrap_or_default()
                / 1000,
        })
    }

    /// Every file under `dir` at `commit`, recursively, as paths from the repository's root.
    pub async fn files(&self, commit: &ObjectId, dir: &str) -> Result<Vec<String>, RestError> {
        let dir = dir.trim_matches('/');
        let url = self
            .transport
            .url_with_path(&self.repo_segments(&["files"]), dir);
        let relative: Vec<String> = self
            .pages("dc files", &url, &[("at", commit.as_str())])
            .await?;
        Ok(relative
            .into_iter()
            .map(|path| {
                if dir.is_empty() {
                    path
                } else {
                    format!("{dir}/{path}")
                }
            })
            .collect())
    }

    /// The direct children of the folder `dir` at `commit`.
    pub async fn browse(&self, commit: &ObjectId, dir: &str) -> Result<Vec<TreeEntry>, RestError> {
        const ENDPOINT: &str = "dc browse";
        let dir = dir.trim_matches('/');
        let url = self
            .transport
            .url_with_path(&self.repo_segments(&["browse"]), dir);
        let mut entries = Vec::new();
        let mut start = 0u64;
        for _ in 0..MAX_PAGES {
            let first = start.to_string();
            let page: RawBrowse = self
                .transport
                .get_json(
                    ENDPOINT,
                    &url,
                    &[
                        ("at", commit.as_str()),
                        ("start", &first),
                        ("limit", PAGE_LIMIT),
                    ],
                )
                .await?;
            for child in page.children.values {
                let kind = match child.kind.as_str() {
                    "FILE" => TreeEntryKind::File,
                    "DIRECTORY" => TreeEntryKind::Directory,
                    "SUBMODULE" => TreeEntryKind::Submodule,
                    other => {
                        return Err(RestError::Decode {
                            endpoint: ENDPOINT,
                            reason: format!("unknown child type {other:?}"),
                        });
                    }
                };
                let name = child.path.to_string;
                entries.push(TreeEntry {
                    path: if dir.is_empty() {
                        name
                    } else {
                        format!("{dir}/{name}")
                    },
                    kind,
                    size: child.size,
                    executable: false,
                    binary: false,
                });
            }
            match (page.children.is_last_page, page.children.next_page_start) {
                (false, Some(next)) if next > start => start = next,
                _ => return Ok(entries),
            }
        }
        Err(RestError::Decode {
            endpoint: ENDPOINT,
            reason: format!("more than {MAX_PAGES} pages"),
        })
    }

    /// The content of the file at `path` and `commit`.
    pub async fn raw(&self, commit: &ObjectId, path: &str) -> Result<Vec<u8>, RestError> {
        let url = self
            .transport
            .url_with_path(&self.repo_segments(&["raw"]), path.trim_matches('/'));
        self.transport
            .get_bytes("dc raw", &url, &[("at", commit.as_str())])
            .await
    }

    /// A gzipped tar of `paths` (folders or files; everything when empty) at `commit`, held
    /// in memory up to the client's bound. Needs Data Center 5.1 or later.
    pub async fn archive(&self, commit: &ObjectId, paths: &[&str]) -> Result<Vec<u8>, RestError> {
        let url = self.transport.url(&self.repo_segments(&["archive"]));
        let query = archive_query(commit, paths);
        self.transport.get_bytes("dc archive", &url, &query).await
    }

    /// A gzipped tar of `paths` (folders or files; everything when empty) at `commit`,
    /// streamed into `sink`; returns the bytes written. Needs Data Center 5.1 or later.
    pub async fn archive_to(
        &self,
        commit: &ObjectId,
        paths: &[&str],
        sink: &mut (impl AsyncWrite + Unpin),
    ) -> Result<u64, RestError> {
        let url = self.transport.url(&self.repo_segments(&["archive"]));
        let query = archive_query(commit, paths);
        self.transport
            .get_to("dc archive", &url, &query, sink)
            .await
    }

    /// The files changed from `since` to `until`, in one request: Data Center cannot page past
    /// its cap, so a capped answer says so instead of paging.
    pub async fn changes(&self, since: &ObjectId, until: &ObjectId) -> Result<Changes, RestError> {
        const ENDPOINT: &str = "dc changes";
        let url = self.transport.url(&self.repo_segments(&["changes"]));
        let page: Page<RawChange> = self
            .transport
            .get_json(
                ENDPOINT,
                &url,
                &[
                    ("since", since.as_str()),
                    ("until", until.as_str()),
                    ("limit", PAGE_LIMIT),
                ],
            )
            .await?;
        let files = page
            .values
            .into_iter()
            .map(|change| {
                let status = DiffStatus::parse(&change.kind);
                let path = change.path.to_string;
                match status {
                    DiffStatus::Added => FileChange {
                        status,
                        old_path: None,
                        new_path: Some(path),
                    },
                    DiffStatus::Removed => FileChange {
                        status,
                        old_path: Some(path),
                        new_path: None,
                    },
                    DiffStatus::Renamed | DiffStatus::Copied => FileChange {
                        status,
                        old_path: change.src_path.map(|src| src.to_string),
                        new_path: Some(path),
                    },
                    DiffStatus::Modified | DiffStatus::Other(_) => FileChange {
                        status,
                        old_path: Some(path.clone()),
                        new_path: Some(path),
                    },
                }
            })
            .collect();
        Ok(Changes {
            files,
            capped: !page.is_last_page,
        })
    }

    /// Follows a paged answer through `nextPageStart`.
    async fn pages<T: DeserializeOwned>(
        &self,
        endpoint: &'static str,
        url: &Url,
        query: &[(&str, &str)],
    ) -> Result<Vec<T>, RestError> {
        let mut values = Vec::new();
        let mut start = 0u64;
        for _ in 0..MAX_PAGES {
            let first = start.to_string();
            let mut full: Vec<(&str, &str)> = query.to_vec();
            full.extend([("start", first.as_str()), ("limit", PAGE_LIMIT)]);
            let mut page: Page<T> = self.transport.get_json(endpoint, url, &full).await?;
            values.append(&mut page.values);
            match (page.is_last_page, page.next_page_start) {
                (false, Some(next)) if next > start => start = next,
                _ => return Ok(values),
            }
        }
        Err(RestError::Decode {
            endpoint,
            reason: format!("more than {MAX_PAGES} pages"),
        })
    }
}

fn archive_query<'a>(commit: &'a ObjectId, paths: &[&'a str]) -> Vec<(&'static str, &'a str)> {
    let mut query = vec![("at", commit.as_str()), ("format", "tgz")];
    query.extend(paths.iter().map(|path| ("path", path.trim_matches('/'))));
    query
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_gate_the_archive_filter() {
        let at = |version: &str| ServerProperties {
            version: version.into(),
            display_name: None,
        };
        assert!(at("8.19.1").has_archive_path_filter());
        assert!(at("5.1.0").has_archive_path_filter());
        assert!(!at("5.0.2").has_archive_path_filter());
        assert!(!at("4.14.0").has_archive_path_filter());
        assert!(!at("unknown").has_archive_path_filter());
        assert!(at("7.13.0").at_least(7, 13));
    }

    #[test]
    fn a_files_page_reads_like_the_documented_one() {
        let page: Page<String> = serde_json::from_str(
            r#"{"size":2,"limit":25,"isLastPage":true,"values":["a/b.yaml","c.yaml"],"start":0}"#,
        )
        .expect("a page");
        assert!(page.is_last_page);
        assert_eq!(page.values, ["a/b.yaml", "c.yaml"]);
    }
}
