//! Fetching files: the files and folders a deployment pipeline asks for, at a branch, a tag or
//! a commit, written into a plain tar archive that the task loop hands the server.
//!
//! The ref is resolved to a commit first, and everything afterwards names that commit, which
//! the result reports. The method is the fetch planner's (`planner::choose`, a snapshot):
//! Cloud's `src` (`format=meta` to tell a file from a folder, the listing for a folder, one
//! request per file, all within the read's [`Allowance`]), Data Center's one path-filtered
//! archive, or git; any refusal on the way falls back to git, and the report says why. A
//! symbolic link or a submodule is reported and never followed; a path that the commit does
//! not hold fails the task, naming it.
//!
//! The archive is a file in the delegate's temporary root (wiped at every start), written one
//! file at a time: a Cloud file streams to a scratch file before it joins the archive, and Data
//! Center's archive streams to disk and is copied entry by entry. Git's read holds the files of
//! one requested path in memory, as `LocalClone::read_files` returns them.

use std::collections::BTreeSet;
use std::io::{Read, Seek as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reposync_api::{
    FailureCode, FetchFilesSpec, FetchProblem, FetchResult, FetchedFile, MAX_FETCH_ARCHIVE_BYTES,
    ReadReport, TaskFailure, TaskOutcome, TaskSpec,
};
use reposync_bitbucket::rest::{RestError, RetryPolicy, TreeEntryKind};
use reposync_git::{GitError, LocalClone, Remote};
use reposync_model::{BranchName, ObjectId, PathProblem, RefName, RepoPath, Revision, escape_path};

use crate::agent::Agent;
use crate::execute::git_auth;
use crate::planner::{Allowance, Choice, Known, Method, ReadKind, choose};
use crate::reads::stored_bytes;
use crate::rest::RestClient;
use crate::results::failure_code;

/// The archive a fetch wrote, waiting to be handed to the server; its file is removed when
/// this is dropped.
#[derive(Debug)]
pub(crate) struct FetchArchive {
    file: tempfile::TempPath,
    pub(crate) bytes: u64,
}

impl FetchArchive {
    pub(crate) fn path(&self) -> &Path {
        &self.file
    }
}

/// A fetch's outcome, and its archive when it succeeded.
#[derive(Debug)]
pub(crate) struct FetchRun {
    pub(crate) outcome: TaskOutcome,
    pub(crate) archive: Option<FetchArchive>,
}

/// Why a fetch ended without an archive.
#[derive(Debug)]
enum Failed {
    /// A definite answer: the ref or a path does not exist, or the task is malformed.
    Task(TaskFailure),
    /// git failed.
    Git(GitError),
}

impl From<GitError> for Failed {
    fn from(error: GitError) -> Failed {
        Failed::Git(error)
    }
}

impl Failed {
    fn into_outcome(self) -> TaskOutcome {
        match self {
            Failed::Task(failure) => TaskOutcome::failed(&failure),
            Failed::Git(error) => TaskOutcome::failed(
                &TaskFailure::new(failure_code(error.kind), error.message)
                    .with_detail(error.detail),
            ),
        }
    }
}

/// Why REST gave up: either the read goes through git instead, or the answer is definite.
#[derive(Debug)]
enum RestRefusal {
    Fallback(String),
    Final(Failed),
}

impl From<RestError> for RestRefusal {
    fn from(error: RestError) -> RestRefusal {
        RestRefusal::Fallback(error.to_string())
    }
}

impl From<String> for RestRefusal {
    fn from(reason: String) -> RestRefusal {
        RestRefusal::Fallback(reason)
    }
}

impl From<Failed> for RestRefusal {
    fn from(failed: Failed) -> RestRefusal {
        RestRefusal::Final(failed)
    }
}

fn invalid(message: String) -> Failed {
    Failed::Task(TaskFailure::new(FailureCode::InvalidTask, message))
}

fn missing_path(path: &str, commit: &ObjectId) -> Failed {
    Failed::Task(
        TaskFailure::new(
            FailureCode::NotFound,
            format!("{path} does not exist at commit {commit}"),
        )
        .with_field("paths"),
    )
}

fn missing_ref(revision: &Revision) -> Failed {
    let what = match revision {
        Revision::Commit(commit) => format!("commit {commit} is not in the repository"),
        Revision::Branch(name) => format!("the repository has no branch {name:?}"),
        Revision::Tag(name) => format!("the repository has no tag {name:?}"),
        Revision::Name(name) => format!("the repository has no branch or tag {name:?}"),
    };
    Failed::Task(TaskFailure::new(FailureCode::NotFound, what).with_field("ref"))
}

fn io_failure(what: &str, error: &std::io::Error) -> Failed {
    Failed::Task(TaskFailure::new(
        FailureCode::Internal,
        format!("cannot {what}: {error}"),
    ))
}

/// What a fetch was asked, parsed again: the server parsed it too, but a delegate takes
/// nothing on trust.
struct Parsed {
    revision: Option<Revision>,
    branch: Option<BranchName>,
    paths: Vec<RepoPath>,
    clone_key: String,
}

fn parse(spec: &FetchFilesSpec) -> Result<Parsed, Failed> {
    let revision = spec
        .reference
        .as_deref()
        .map(Revision::parse)
        .transpose()
        .map_err(|error| invalid(format!("the task's ref {}", error.message)))?;
    let branch = spec
        .branch
        .as_deref()
        .map(BranchName::parse)
        .transpose()
        .map_err(|error| invalid(format!("the task's branch {}", error.message)))?;
    if spec.paths.is_empty() {
        return Err(invalid("the task names no path".into()));
    }
    let paths = spec
        .paths
        .iter()
        .map(|path| {
            RepoPath::parse(path)
                .map_err(|problem| invalid(format!("the task's path {path:?}: {problem}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    // Clone keys come from the server; kept to one safe path segment regardless.
    let clone_key: String = spec
        .clone_key
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    if clone_key.is_empty() {
        return Err(invalid("the task names no clone".into()));
    }
    Ok(Parsed {
        revision,
        branch,
        paths,
        clone_key,
    })
}

/// The commit a ref resolved to, and the ref in full as the result reports it.
#[derive(Debug, Clone)]
struct Resolved {
    commit: ObjectId,
    reference: String,
    /// The branch the ref is, when it is one: git then reads it with a fetch of that branch.
    branch: Option<BranchName>,
    /// The tag the ref is, when it is one: git then fetches that tag.
    tag: Option<BranchName>,
}

/// The tar archive being written, and what it holds so far.
struct ArchiveWriter {
    builder: tar::Builder<std::fs::File>,
    file: tempfile::TempPath,
    /// Where scratch files (a Cloud file on its way into the archive) go.
    dir: Option<PathBuf>,
    files: Vec<FetchedFile>,
    written: BTreeSet<String>,
    bytes: u64,
}

impl ArchiveWriter {
    /// A new, empty archive in `dir` (the delegate's temporary root), or the system's
    /// temporary folder when there is none (library tests).
    fn create(dir: Option<&Path>) -> Result<ArchiveWriter, Failed> {
        let named = scratch_file(dir, "reposync-fetch-")
            .map_err(|error| io_failure("create the fetch's archive", &error))?;
        let (file, path) = named.into_parts();
        let mut builder = tar::Builder::new(file);
        // Only regular files go in: nothing on the reading side is ever a link.
        builder.follow_symlinks(false);
        Ok(ArchiveWriter {
            builder,
            file: path,
            dir: dir.map(Path::to_owned),
            files: Vec::new(),
            written: BTreeSet::new(),
            bytes: 0,
        })
    }

    /// Appends one regular file of `size` bytes read from `content`; a path written already
    /// (two requested paths overlap) is skipped.
    fn append(&mut self, path: &str, size: u64, content: impl Read) -> Result<(), Failed> {
        if self.written.contains(path) {
            return Ok(());
        }
        // Each entry costs its content rounded up to 512 bytes, and a header.
        self.bytes = self.bytes.saturating_add(size.div_ceil(512) * 512 + 512);
        if self.bytes > MAX_FETCH_ARCHIVE_BYTES {
            return Err(Failed::Task(
                TaskFailure::new(
                    FailureCode::InvalidRequest,
                    format!(
                        "the files asked for exceed {} MiB; fetch fewer paths at a time",
                        MAX_FETCH_ARCHIVE_BYTES / (1024 * 1024)
                    ),
                )
                .with_field("paths"),
            ));
        }
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(size);
        header.set_mode(0o644);
        header.set_mtime(0);
        self.builder
            .append_data(&mut header, path, content)
            .map_err(|error| io_failure(&format!("write {path} into the archive"), &error))?;
        self.written.insert(path.to_owned());
        self.files.push(FetchedFile {
            path: path.to_owned(),
            size,
        });
        Ok(())
    }

    /// Finishes the archive; its size.
    fn finish(self) -> Result<(FetchArchive, Vec<FetchedFile>), Failed> {
        let ArchiveWriter {
            builder,
            file,
            files,
            ..
        } = self;
        let mut inner = builder
            .into_inner()
            .map_err(|error| io_failure("finish the archive", &error))?;
        inner
            .flush()
            .map_err(|error| io_failure("finish the archive", &error))?;
        let bytes = inner
            .metadata()
            .map_err(|error| io_failure("finish the archive", &error))?
            .len();
        Ok((FetchArchive { file, bytes }, files))
    }
}

/// A new file only this process can read, in `dir` or the system's temporary folder.
fn scratch_file(dir: Option<&Path>, prefix: &str) -> std::io::Result<tempfile::NamedTempFile> {
    let mut builder = tempfile::Builder::new();
    builder.prefix(prefix);
    match dir {
        Some(dir) => builder.tempfile_in(dir),
        None => builder.tempfile(),
    }
}

impl Agent {
    /// Runs a claimed task, keeping a fetch's archive for the task loop to hand the server
    /// before the outcome; other kinds run as [`Agent::run_task`] runs them.
    pub(crate) async fn run_claimed(&self, spec: &TaskSpec) -> FetchRun {
        match spec {
            TaskSpec::FetchFiles(fetch) => self.fetch_files(fetch).await,
            other => FetchRun {
                outcome: self.run_task(other).await,
                archive: None,
            },
        }
    }

    /// Fetches the files of `spec` into an archive, within the task's time limit.
    pub(crate) async fn fetch_files(&self, spec: &FetchFilesSpec) -> FetchRun {
        let limit = Duration::from_secs(spec.timeout_secs.max(1));
        let fetched = match tokio::time::timeout(limit, self.fetch(spec)).await {
            Ok(fetched) => fetched,
            Err(_) => Err(Failed::Task(TaskFailure::new(
                FailureCode::Timeout,
                format!("the fetch took longer than its {} s limit", limit.as_secs()),
            ))),
        };
        match fetched {
            Ok((result, archive)) => FetchRun {
                outcome: TaskOutcome {
                    succeeded: true,
                    result: serde_json::to_value(result).unwrap_or_default(),
                },
                archive: Some(archive),
            },
            Err(failed) => FetchRun {
                outcome: failed.into_outcome(),
                archive: None,
            },
        }
    }

    async fn fetch(&self, spec: &FetchFilesSpec) -> Result<(FetchResult, FetchArchive), Failed> {
        let started = Instant::now();
        let parsed = parse(spec)?;
        let remote = Remote {
            url: spec.url.clone(),
            auth: git_auth(&spec.auth),
        };
        let runner = self
            .runner
            .clone()
            .timeout(Duration::from_secs(spec.timeout_secs.max(1)));
        // Without a ref or a branch of the connector's, the repository's default branch: git
        // knows it from one cheap request whatever the method.
        let revision = match (&parsed.revision, &parsed.branch) {
            (Some(revision), _) => revision.clone(),
            (None, Some(branch)) => branch_revision(branch)?,
            (None, None) => {
                let heads = runner.ls_remote_heads(&remote).await?;
                let default = heads
                    .default_branch
                    .as_deref()
                    .and_then(|name| BranchName::parse(name).ok())
                    .ok_or_else(|| {
                        Failed::Task(
                            TaskFailure::new(
                                FailureCode::BranchNotFound,
                                "the repository has no default branch (is it empty?); give --ref",
                            )
                            .with_field("ref"),
                        )
                    })?;
                branch_revision(&default)?
            }
        };
        let planning = spec.planning.as_ref();
        let choice = match planning {
            Some(planning) => choose(Known::of(planning), ReadKind::Snapshot),
            None => Choice {
                method: Method::Git,
                reason: "the server sent no fetch planning".into(),
            },
        };
        let temp = self.runner.temp_dir().map(Path::to_owned);
        let mut spent = (0, 0);
        let mut fallback: Option<(Method, String)> = None;
        if let (Method::CloudRest | Method::DcRest, Some(planning)) = (choice.method, planning)
            && let Some(rest) = &planning.rest
        {
            let timeout = Duration::from_secs(spec.timeout_secs.max(1));
            match self.rest_client(rest, &spec.auth, timeout, RetryPolicy::default()) {
                Ok(client) => {
                    let allowance = Allowance::of(planning.fetch, client.remaining());
                    let mut archive = ArchiveWriter::create(temp.as_deref())?;
                    let read =
                        rest_fetch(&client, &revision, &parsed.paths, allowance, &mut archive)
                            .await;
                    spent = client.traffic();
                    match read {
                        Ok((resolved, problems)) => {
                            let report = ReadReport {
                                method: choice.method.to_string(),
                                reason: choice.reason,
                                fallback_from: None,
                                fallback_reason: None,
                                requests: spent.0,
                                bytes: spent.1,
                                duration_ms: millis(started),
                            };
                            return finished(archive, resolved, problems, report);
                        }
                        Err(RestRefusal::Final(failed)) => return Err(failed),
                        Err(RestRefusal::Fallback(reason)) => {
                            fallback = Some((choice.method, reason));
                        }
                    }
                }
                Err(reason) => fallback = Some((choice.method, reason)),
            }
        }
        if let Some((method, reason)) = &fallback {
            tracing::info!(%method, %reason, "REST refused the fetch; reading through git");
        }
        let mut archive = ArchiveWriter::create(temp.as_deref())?;
        let target = GitTarget {
            runner: &runner,
            remote: &remote,
            default_branch: parsed.branch.as_ref(),
            clone_key: &parsed.clone_key,
        };
        let (resolved, problems, grown) = self
            .git_fetch(&target, &revision, &parsed.paths, &mut archive)
            .await?;
        let reason = match &fallback {
            Some(_) => "REST refused the read".to_owned(),
            None => choice.reason,
        };
        let report = ReadReport {
            method: Method::Git.to_string(),
            reason,
            fallback_from: fallback.as_ref().map(|(method, _)| method.to_string()),
            fallback_reason: fallback.map(|(_, reason)| reason),
            requests: spent.0,
            bytes: spent.1 + grown,
            duration_ms: millis(started),
        };
        finished(archive, resolved, problems, report)
    }
}

fn branch_revision(branch: &BranchName) -> Result<Revision, Failed> {
    // A branch name is a ref name by the same rules, so this parse cannot fail for a parsed
    // branch; an error is still an error rather than a panic.
    Revision::parse(&format!("refs/heads/{branch}"))
        .map_err(|error| invalid(format!("the task's branch {}", error.message)))
}

fn finished(
    archive: ArchiveWriter,
    resolved: Resolved,
    unrepresentable: Vec<FetchProblem>,
    read: ReadReport,
) -> Result<(FetchResult, FetchArchive), Failed> {
    let (archive, files) = archive.finish()?;
    Ok((
        FetchResult {
            commit: resolved.commit.into_string(),
            reference: resolved.reference,
            files,
            unrepresentable,
            read,
            archive_bytes: archive.bytes,
        },
        archive,
    ))
}

fn millis(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

fn problem(path: &str, problem: PathProblem) -> FetchProblem {
    FetchProblem {
        path: path.to_owned(),
        problem,
    }
}

/// Whether `entry` is the requested `path` itself or lies under it.
fn within(path: &str, entry: &str) -> bool {
    entry == path
        || entry
            .strip_prefix(path)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// Resolves `revision` and reads `paths` through REST into `archive`.
async fn rest_fetch(
    client: &RestClient,
    revision: &Revision,
    paths: &[RepoPath],
    allowance: Allowance,
    archive: &mut ArchiveWriter,
) -> Result<(Resolved, Vec<FetchProblem>), RestRefusal> {
    let resolved = rest_resolve(client, revision).await?;
    let problems = match client {
        RestClient::Cloud(cloud) => {
            let mut wanted: BTreeSet<String> = BTreeSet::new();
            let mut problems = Vec::new();
            for path in paths {
                let path = path.as_str();
                allowance.check(client.traffic().0 + 1, &format!("telling what {path} is"))?;
                let entry = match cloud.meta(&resolved.commit, path).await {
                    Ok(entry) => entry,
                    // The commit is known to exist: Cloud does not hold this path there.
                    Err(RestError::NotFound { .. }) => {
                        return Err(missing_path(path, &resolved.commit).into());
                    }
                    Err(other) => return Err(other.into()),
                };
                match entry.kind {
                    TreeEntryKind::File => {
                        wanted.insert(path.to_owned());
                    }
                    TreeEntryKind::Symlink => problems.push(problem(path, PathProblem::Symlink)),
                    TreeEntryKind::Submodule => {
                        problems.push(problem(path, PathProblem::Submodule));
                    }
                    TreeEntryKind::Directory => {
                        // More files than the allowance could not be read one request each
                        // anyway, so the listing stops as soon as it knows.
                        let max_files = usize::try_from(allowance.requests).unwrap_or(usize::MAX);
                        let entries = match cloud.list_tree(&resolved.commit, path, max_files).await
                        {
                            Err(RestError::TooLarge { .. }) => {
                                return Err(RestRefusal::Fallback(format!(
                                    "{path} holds more than {max_files} files, one request each; this read may spend {} of the {} requests left this hour",
                                    allowance.requests, allowance.remaining
                                )));
                            }
                            other => other?,
                        };
                        for entry in entries {
                            if !within(path, &entry.path) {
                                continue;
                            }
                            match entry.kind {
                                TreeEntryKind::Directory => {}
                                TreeEntryKind::Symlink => {
                                    problems.push(problem(&entry.path, PathProblem::Symlink));
                                }
                                TreeEntryKind::Submodule => {
                                    problems.push(problem(&entry.path, PathProblem::Submodule));
                                }
                                TreeEntryKind::File => match RepoPath::parse(&entry.path) {
                                    Ok(_) => {
                                        wanted.insert(entry.path);
                                    }
                                    Err(found) => problems.push(problem(&entry.path, found)),
                                },
                            }
                        }
                    }
                }
            }
            allowance.check(
                client.traffic().0 + wanted.len() as u64,
                &format!("reading {} files", wanted.len()),
            )?;
            for path in &wanted {
                // One file at a time: it streams to a scratch file, then into the archive.
                let scratch = scratch_file(archive.dir.as_deref(), "reposync-fetch-file-")
                    .map_err(|error| io_failure("create a scratch file", &error))?;
                let (file, scratch_path) = scratch.into_parts();
                let mut sink = tokio::fs::File::from_std(file);
                let size = cloud.file_to(&resolved.commit, path, &mut sink).await?;
                let mut file = sink.into_std().await;
                file.rewind()
                    .map_err(|error| io_failure("read a scratch file", &error))?;
                archive.append(path, size, file)?;
                drop(scratch_path);
            }
            problems
        }
        RestClient::DataCenter(dc) => {
            allowance.check(client.traffic().0 + 1, "one archive of the paths")?;
            let scratch = scratch_file(archive.dir.as_deref(), "reposync-fetch-tgz-")
                .map_err(|error| io_failure("create a scratch file", &error))?;
            let (file, scratch_path) = scratch.into_parts();
            let mut sink = tokio::fs::File::from_std(file);
            let names: Vec<&str> = paths.iter().map(RepoPath::as_str).collect();
            dc.archive_to(&resolved.commit, &names, &mut sink).await?;
            let mut file = sink.into_std().await;
            file.rewind()
                .map_err(|error| io_failure("read the archive", &error))?;
            let problems = copy_archive(file, paths, archive)?;
            drop(scratch_path);
            problems
        }
    };
    Ok((resolved, problems))
}

/// The commit `revision` names, through REST. A bare name is a branch when the repository
/// has one, else a tag, as git's path reads it.
async fn rest_resolve(client: &RestClient, revision: &Revision) -> Result<Resolved, RestRefusal> {
    let branch = |name: &RefName, commit: ObjectId| Resolved {
        commit,
        reference: format!("refs/heads/{name}"),
        branch: Some(name.as_branch().clone()),
        tag: None,
    };
    let tag = |name: &RefName, commit: ObjectId| Resolved {
        commit,
        reference: format!("refs/tags/{name}"),
        branch: None,
        tag: Some(name.as_branch().clone()),
    };
    Ok(match revision {
        Revision::Commit(id) => {
            let commit = match client {
                RestClient::Cloud(cloud) => cloud.commit(id.as_str()).await?,
                RestClient::DataCenter(dc) => dc.commit(id.as_str()).await?,
            };
            if commit.id != *id {
                return Err(RestRefusal::Fallback(format!(
                    "Bitbucket answered commit {} for {id}",
                    commit.id
                )));
            }
            Resolved {
                commit: commit.id,
                reference: id.to_string(),
                branch: None,
                tag: None,
            }
        }
        Revision::Branch(name) => branch(name, rest_branch_head(client, name).await?),
        Revision::Tag(name) => tag(name, rest_tag_commit(client, name).await?),
        Revision::Name(name) => match rest_branch_head(client, name).await {
            Ok(commit) => branch(name, commit),
            Err(RestError::NotFound { .. }) => tag(name, rest_tag_commit(client, name).await?),
            Err(other) => return Err(other.into()),
        },
    })
}

async fn rest_branch_head(client: &RestClient, name: &RefName) -> Result<ObjectId, RestError> {
    match client {
        RestClient::Cloud(cloud) => cloud.branch_head(name.as_str()).await,
        RestClient::DataCenter(dc) => dc.branch_head(name.as_str()).await,
    }
}

async fn rest_tag_commit(client: &RestClient, name: &RefName) -> Result<ObjectId, RestError> {
    match client {
        RestClient::Cloud(cloud) => cloud.tag_target(name.as_str()).await,
        RestClient::DataCenter(dc) => dc.tag_commit(name.as_str()).await,
    }
}

/// Copies the regular files of Data Center's gzipped tar under the requested `paths` into
/// `archive`, one entry at a time; links are reported, never followed. A requested path the
/// archive does not hold is a refusal: git then says for certain whether it exists.
fn copy_archive(
    tgz: std::fs::File,
    paths: &[RepoPath],
    archive: &mut ArchiveWriter,
) -> Result<Vec<FetchProblem>, RestRefusal> {
    let bad = |error: std::io::Error| {
        RestRefusal::Fallback(format!(
            "the archive Bitbucket sent cannot be read: {error}"
        ))
    };
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(std::io::BufReader::new(tgz)));
    let mut problems = Vec::new();
    let mut found = vec![false; paths.len()];
    for entry in tar.entries().map_err(bad)? {
        let entry = entry.map_err(bad)?;
        let bytes = entry.path_bytes().into_owned();
        let kind = entry.header().entry_type();
        if kind.is_dir() || kind.is_pax_global_extensions() || kind.is_pax_local_extensions() {
            continue;
        }
        let Ok(path) = String::from_utf8(bytes.clone()) else {
            problems.push(problem(&escape_path(&bytes), PathProblem::NotUtf8));
            continue;
        };
        let Some(index) = paths.iter().position(|p| within(p.as_str(), &path)) else {
            continue;
        };
        found[index] = true;
        if kind.is_symlink() || kind.is_hard_link() {
            problems.push(problem(&path, PathProblem::Symlink));
            continue;
        }
        if !kind.is_file() {
            continue;
        }
        if let Err(found) = RepoPath::parse(&path) {
            problems.push(problem(&path, found));
            continue;
        }
        let size = entry.size();
        archive.append(&path, size, entry)?;
    }
    if let Some(index) = found.iter().position(|found| !found) {
        return Err(RestRefusal::Fallback(format!(
            "Data Center's archive holds nothing at {}",
            paths[index]
        )));
    }
    Ok(problems)
}

/// Where git reads for a fetch.
struct GitTarget<'a> {
    runner: &'a reposync_git::GitRunner,
    remote: &'a Remote,
    /// The connector's branch: the clone a tag or a commit is read from.
    default_branch: Option<&'a BranchName>,
    clone_key: &'a str,
}

impl Agent {
    /// Resolves `revision` with `ls-remote` and reads `paths` from a local clone into
    /// `archive`; also returns how much the clone grew (what git fetched).
    async fn git_fetch(
        &self,
        target: &GitTarget<'_>,
        revision: &Revision,
        paths: &[RepoPath],
        archive: &mut ArchiveWriter,
    ) -> Result<(Resolved, Vec<FetchProblem>, u64), Failed> {
        let resolved = git_resolve(target, revision).await?;
        // A branch is read from a clone of that branch, fetched; a tag or a commit from the
        // clone of the connector's (or the default) branch, which fetches just that commit.
        let clone_branch = match (&resolved.branch, target.default_branch) {
            (Some(branch), _) => branch.clone(),
            (None, Some(branch)) => branch.clone(),
            (None, None) => {
                let heads = target.runner.ls_remote_heads(target.remote).await?;
                heads
                    .default_branch
                    .as_deref()
                    .and_then(|name| BranchName::parse(name).ok())
                    .ok_or_else(|| missing_ref(revision))?
            }
        };
        let key = format!(
            "fetch-{}-{:016x}",
            target.clone_key,
            fnv1a(clone_branch.as_str().as_bytes())
        );
        let lock = {
            let mut locks = self.clone_locks.lock();
            Arc::clone(locks.entry(key.clone()).or_default())
        };
        let _one_at_a_time = lock.lock().await;
        let dir = self.work_dir.join("clones").join(&key);
        let before = stored_bytes(&dir);
        let clone = LocalClone::open(target.runner, &dir, target.remote, &clone_branch).await?;
        let mut resolved = resolved;
        // A branch or a tag as fetched now is what is read (it may have moved since
        // ls-remote); a commit by id is fetched alone when read.
        let fetched = if resolved.branch.is_some() {
            Some(clone.fetch(target.remote).await?)
        } else if let Some(tag) = &resolved.tag {
            Some(clone.fetch_tag(target.remote, tag).await?)
        } else {
            None
        };
        match fetched {
            Some(Some(commit)) => resolved.commit = commit,
            Some(None) => return Err(missing_ref(revision)),
            None => {}
        }
        let mut problems = Vec::new();
        for path in paths {
            let path = path.as_str();
            let mut tree = clone
                .read_files(target.remote, &resolved.commit, &format!("{path}/"))
                .await?;
            if tree.files.is_empty() && tree.unrepresentable.is_empty() {
                // Not a folder: the file itself, if it exists (the prefix also matches
                // `path.orig`, which is left out).
                tree = clone
                    .read_files(target.remote, &resolved.commit, path)
                    .await?;
                tree.files.retain(|(name, _)| name == path);
                tree.unrepresentable
                    .retain(|entry| entry.path == path.as_bytes());
            }
            if tree.files.is_empty() && tree.unrepresentable.is_empty() {
                return Err(missing_path(path, &resolved.commit));
            }
            for entry in tree.unrepresentable {
                problems.push(problem(&escape_path(&entry.path), entry.problem));
            }
            for (name, content) in tree.files {
                archive.append(&name, content.len() as u64, content.as_slice())?;
            }
        }
        let grown = stored_bytes(&dir).saturating_sub(before);
        Ok((resolved, problems, grown))
    }
}

/// The commit `revision` names on the remote, by `ls-remote`: a bare name is the branch when
/// there is one, else the tag; an annotated tag is peeled (`^{}`). A commit id is taken as
/// given: reading it fetches it by id, which fails if the remote does not have it (or, over
/// protocol v0, does not send commits by id).
async fn git_resolve(target: &GitTarget<'_>, revision: &Revision) -> Result<Resolved, Failed> {
    let (branch, tag) = match revision {
        Revision::Commit(commit) => {
            return Ok(Resolved {
                commit: commit.clone(),
                reference: commit.to_string(),
                branch: None,
                tag: None,
            });
        }
        Revision::Branch(name) => (Some(name), None),
        Revision::Tag(name) => (None, Some(name)),
        Revision::Name(name) => (Some(name), Some(name)),
    };
    let mut names = Vec::new();
    if let Some(name) = branch {
        names.push(format!("refs/heads/{name}"));
    }
    if let Some(name) = tag {
        names.push(format!("refs/tags/{name}"));
        names.push(format!("refs/tags/{name}^{{}}"));
    }
    let refs = target.runner.ls_remote_refs(target.remote, &names).await?;
    let find = |wanted: &str| {
        refs.iter()
            .find(|r| r.name == wanted)
            .map(|r| r.commit.clone())
    };
    if let Some(name) = branch
        && let Some(commit) = find(&format!("refs/heads/{name}"))
    {
        return Ok(Resolved {
            commit,
            reference: format!("refs/heads/{name}"),
            branch: Some(name.as_branch().clone()),
            tag: None,
        });
    }
    if let Some(name) = tag {
        let peeled = find(&format!("refs/tags/{name}^{{}}"));
        if let Some(commit) = peeled.or_else(|| find(&format!("refs/tags/{name}"))) {
            return Ok(Resolved {
                commit,
                reference: format!("refs/tags/{name}"),
                branch: None,
                tag: Some(name.as_branch().clone()),
            });
        }
    }
    Err(missing_ref(revision))
}

/// The 64-bit FNV-1a hash: a stable, dependency-free name for a branch's fetch clone (the
/// branch name itself may be longer than a file name may be).
fn fnv1a(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes.iter().fold(OFFSET, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(PRIME)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(archive: &Path) -> Vec<(String, Vec<u8>)> {
        let mut tar = tar::Archive::new(std::fs::File::open(archive).expect("open"));
        tar.entries()
            .expect("entries")
            .map(|entry| {
                let mut entry = entry.expect("entry");
                let path = entry.path().expect("path").display().to_string();
                let mut content = Vec::new();
                entry.read_to_end(&mut content).expect("read");
                (path, content)
            })
            .collect()
    }

    #[test]
    fn the_archive_holds_each_file_once_with_its_size() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut archive = ArchiveWriter::create(Some(dir.path())).expect("archive");
        archive
            .append("a/b.yaml", 5, b"b: 1\n".as_slice())
            .expect("b");
        archive
            .append("a/b.yaml", 5, b"b: 1\n".as_slice())
            .expect("again");
        archive.append("c.txt", 0, b"".as_slice()).expect("c");
        let (archive, files) = archive.finish().expect("finish");
        assert_eq!(
            files,
            [
                FetchedFile {
                    path: "a/b.yaml".into(),
                    size: 5
                },
                FetchedFile {
                    path: "c.txt".into(),
                    size: 0
                }
            ]
        );
        assert_eq!(
            archive.bytes,
            std::fs::metadata(archive.path()).expect("meta").len()
        );
        assert_eq!(
            entries(archive.path()),
            [
                ("a/b.yaml".to_owned(), b"b: 1\n".to_vec()),
                ("c.txt".to_owned(), Vec::new())
            ]
        );
        let path = archive.path().to_owned();
        drop(archive);
        assert!(!path.exists(), "the archive goes with its handle");
    }

    #[test]
    fn data_center_archives_keep_what_was_asked_and_report_links() {
        let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::fast(),
        ));
        let mut add = |path: &str, content: Option<&[u8]>| {
            let mut header = tar::Header::new_gnu();
            match content {
                Some(content) => {
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_size(content.len() as u64);
                    header.set_mode(0o644);
                    builder
                        .append_data(&mut header, path, content)
                        .expect("file");
                }
                None => {
                    header.set_entry_type(tar::EntryType::Symlink);
                    header.set_size(0);
                    builder
                        .append_link(&mut header, path, "../../etc/passwd")
                        .expect("link");
                }
            }
        };
        add("deploy/app.yaml", Some(b"app\n"));
        add("deploy/link.yaml", None);
        add("deployment/other.yaml", Some(b"no\n"));
        add("values.yaml", Some(b"v\n"));
        let tgz = builder.into_inner().expect("tar").finish().expect("gzip");
        let dir = tempfile::tempdir().expect("tempdir");
        let tgz_path = dir.path().join("in.tgz");
        std::fs::write(&tgz_path, tgz).expect("write");
        let paths = [
            RepoPath::parse("deploy").expect("path"),
            RepoPath::parse("values.yaml").expect("path"),
        ];
        let mut archive = ArchiveWriter::create(Some(dir.path())).expect("archive");
        let problems = copy_archive(
            std::fs::File::open(&tgz_path).expect("open"),
            &paths,
            &mut archive,
        )
        .expect("copied");
        assert_eq!(
            problems,
            [problem("deploy/link.yaml", PathProblem::Symlink)]
        );
        let (archive, _) = archive.finish().expect("finish");
        let names: Vec<String> = entries(archive.path())
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        assert_eq!(names, ["deploy/app.yaml", "values.yaml"]);

        // A path the archive does not hold is left to git to judge.
        let mut archive = ArchiveWriter::create(Some(dir.path())).expect("archive");
        let refused = copy_archive(
            std::fs::File::open(&tgz_path).expect("open"),
            &[RepoPath::parse("missing").expect("path")],
            &mut archive,
        );
        assert!(
            matches!(refused, Err(RestRefusal::Fallback(reason)) if reason.contains("missing"))
        );
    }

    #[test]
    fn paths_are_matched_by_whole_components() {
        assert!(within("deploy", "deploy"));
        assert!(within("deploy", "deploy/a.yaml"));
        assert!(!within("deploy", "deployment/a.yaml"));
        assert!(!within("deploy/a.yaml", "deploy/a.yaml.orig"));
        assert_ne!(fnv1a(b"main"), fnv1a(b"mainx"));
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
    }

    /// A task the server should never have sent fails before any git or REST runs, naming
    /// what was wrong, and leaves no archive.
    #[tokio::test]
    async fn a_fetch_naming_a_bad_path_or_ref_is_refused_before_anything_runs() {
        let work = tempfile::tempdir().expect("tempdir");
        let agent = Agent::new(reposync_git::GitRunner::new(), work.path());
        let spec = |reference: Option<&str>, paths: &[&str]| FetchFilesSpec {
            url: "https://127.0.0.1:9/repo.git".into(),
            reference: reference.map(str::to_owned),
            branch: Some("main".into()),
            paths: paths.iter().map(|p| (*p).to_owned()).collect(),
            clone_key: "key".into(),
            auth: reposync_api::TaskAuth::Https {
                username: "user".into(),
                password: reposync_api::SecretValue::new("password"),
                ca_certificate: None,
            },
            timeout_secs: 5,
            planning: None,
        };
        for (task, named) in [
            (spec(None, &["../etc/passwd"]), "path"),
            (spec(None, &["a/.git/config"]), "path"),
            (spec(Some("--upload-pack=x"), &["a"]), "ref"),
            (spec(None, &[]), "no path"),
        ] {
            let run = agent.fetch_files(&task).await;
            assert!(!run.outcome.succeeded);
            assert!(run.archive.is_none());
            assert_eq!(run.outcome.result["code"], "invalid_task");
            let message = run.outcome.result["message"].as_str().unwrap_or_default();
            assert!(message.contains(named), "{named}: {message}");
        }
        assert!(!work.path().join("clones").exists());
    }
}
