//! `reposync fetch`: files of a connector's repository at a branch, a tag or a commit, read on
//! a delegate, for deployment pipelines reading their manifests.
//!
//! The command queues the fetch, waits for its task, then downloads the archive to a private
//! temporary file (never whole in memory) and either extracts it under `--out DIR` or, for a
//! single file, writes its content to standard output. Extraction takes regular files only,
//! refuses any entry that would leave DIR, and never follows or creates a symbolic link.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek as _, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use reposync_api::{
    Client, FetchRequest, FetchResult, MAX_FETCH_ARCHIVE_BYTES, TaskFailure, TaskView, decode,
};
use reposync_model::RepoPath;
use reqwest::Method;

use crate::Globals;
use crate::client_commands::{client, in_flag_terms, wait_for_task};
use crate::output::byte_size;

/// The request's fields as the command's flags name them, for refusals.
const FETCH_FLAGS: &[(&str, &str)] = &[
    ("paths", "PATH"),
    ("ref", "--ref"),
    ("repo", "--repo"),
    ("name", "--connector"),
];

/// How long the archive's download may take.
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(15 * 60);

#[derive(Debug, Args)]
pub struct FetchArgs {
    /// The connector whose repository is read; the fetch runs on a delegate its selectors
    /// choose.
    #[arg(long, value_name = "NAME")]
    connector: String,
    /// The repository, for an account-scope connector.
    #[arg(long, value_name = "R")]
    repo: Option<String>,
    /// A branch, a tag or a full commit id (`refs/heads/…`, `refs/tags/…` pick one by its full
    /// name); by default the connector's branch, or the repository's default branch.
    #[arg(long = "ref", value_name = "REF")]
    reference: Option<String>,
    /// Write the files under this folder, at their paths in the repository (created if
    /// missing). Without it, a single file is written to standard output.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Files or folders of the repository, relative to its root; a folder brings everything
    /// under it.
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<String>,
}

/// Runs `reposync fetch`.
pub async fn fetch(args: FetchArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let client = client(globals)?;
    let request = FetchRequest {
        repo: args.repo.clone(),
        reference: args.reference.clone(),
        paths: args.paths.clone(),
    };
    let queued: TaskView = decode(
        client
            .call(
                Method::POST,
                &["connectors", &args.connector, "fetch"],
                &request,
            )
            .await
            .map_err(|e| in_flag_terms(e, FETCH_FLAGS))?,
    )?;
    let task = wait_for_task(&client, queued, "the fetch").await?;
    let result = task.result.clone().unwrap_or_default();
    if globals.output.is_data() {
        crate::output::data(globals.output, &result)?;
    }
    if task.status != "succeeded" {
        let failure = TaskFailure::from_result(Some(&result.to_string()));
        let flag = failure
            .field
            .as_deref()
            .and_then(|field| FETCH_FLAGS.iter().find(|(f, _)| *f == field))
            .map(|(_, flag)| format!("{flag}: "))
            .unwrap_or_default();
        eprintln!("error: {flag}{}", failure.explained());
        return Ok(ExitCode::FAILURE);
    }
    let fetched: FetchResult =
        decode(result).context("the fetch's result is not what this version reads")?;
    for left_out in &fetched.unrepresentable {
        eprintln!(
            "warning: {} was left out: {} (not followed)",
            left_out.path, left_out.problem
        );
    }
    match (&args.out, fetched.files.as_slice()) {
        (Some(out), _) => {
            let archive = download(&client, &task).await?;
            let written = extract(archive, out)?;
            if !globals.output.is_data() {
                outln!("commit {}", fetched.commit);
            }
            eprintln!(
                "fetched {written} file(s), {}, at {} ({}) through {} into {}",
                byte_size(fetched.files.iter().map(|f| f.size).sum()),
                fetched.reference,
                short(&fetched.commit),
                fetched.read.method,
                out.display()
            );
        }
        // With --json, standard output holds the result; the files need --out.
        (None, _) if globals.output.is_data() => {}
        (None, [file]) => {
            let archive = download(&client, &task).await?;
            write_single(archive, &file.path)?;
            eprintln!("commit {}", fetched.commit);
        }
        (None, []) => {
            bail!(
                "the fetch found no file to write at {} ({}); see the warnings above",
                fetched.reference,
                short(&fetched.commit)
            );
        }
        (None, files) => {
            bail!(
                "the fetch read {} files; give --out DIR to write them (standard output takes one file)",
                files.len()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn short(commit: &str) -> &str {
    commit.get(..7).unwrap_or(commit)
}

/// Downloads the task's archive into a private temporary file, chunk by chunk; the file is
/// removed when dropped.
async fn download(client: &Client, task: &TaskView) -> anyhow::Result<File> {
    let mut response = client
        .download(&["tasks", task.id.as_str(), "archive"], DOWNLOAD_TIMEOUT)
        .await?;
    let mut file = tempfile::tempfile().context("cannot create a temporary file")?;
    let mut received: u64 = 0;
    while let Some(chunk) = response
        .chunk()
        .await
        .context("the archive's download broke off")?
    {
        received += chunk.len() as u64;
        if received > MAX_FETCH_ARCHIVE_BYTES {
            bail!(
                "the server sent more than {} MiB; the download was stopped",
                MAX_FETCH_ARCHIVE_BYTES / (1024 * 1024)
            );
        }
        file.write_all(&chunk)
            .context("cannot write the downloaded archive")?;
    }
    file.rewind()
        .context("cannot read the downloaded archive")?;
    Ok(file)
}

/// The path of an archive entry, checked as a repository path (nothing that leaves the
/// folder it is extracted into: no `..`, no absolute path, no `.git`, no control character).
fn entry_path(entry: &tar::Entry<'_, File>) -> anyhow::Result<RepoPath> {
    let bytes = entry.path_bytes();
    RepoPath::from_bytes(&bytes).map_err(|problem| {
        anyhow::anyhow!(
            "the archive holds {}, which would leave the folder it is written to: {problem}; nothing more was written",
            reposync_model::escape_path(&bytes)
        )
    })
}

/// Extracts the archive's regular files under `out`, creating folders; an entry that would
/// leave `out`, or a symbolic link met on the way, refuses the rest. Returns how many files
/// were written.
fn extract(archive: File, out: &Path) -> anyhow::Result<usize> {
    fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut tar = tar::Archive::new(archive);
    let mut written = 0;
    for entry in tar.entries().context("cannot read the archive")? {
        let entry = entry.context("cannot read the archive")?;
        let path = entry_path(&entry)?;
        if !entry.header().entry_type().is_file() {
            eprintln!("warning: {path} in the archive is not a regular file; it was not written");
            continue;
        }
        let target = prepare_folders(out, &path)?;
        write_file(&target, entry)?;
        written += 1;
    }
    Ok(written)
}

/// Creates the folders of `path` under `out`, one component at a time, never through a
/// symbolic link or over a file; returns where the file goes.
fn prepare_folders(out: &Path, path: &RepoPath) -> anyhow::Result<PathBuf> {
    let components: Vec<&str> = path.as_str().split('/').collect();
    let (name, folders) = components
        .split_last()
        .ok_or_else(|| anyhow::anyhow!("an empty path in the archive"))?;
    let mut dir = out.to_path_buf();
    for folder in folders {
        dir.push(folder);
        match fs::symlink_metadata(&dir) {
            Ok(found) if found.is_dir() => {}
            Ok(_) => bail!(
                "{} is in the way of {path} (a file or a symbolic link, which is never followed); nothing more was written",
                dir.display()
            ),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir(&dir).with_context(|| format!("cannot create {}", dir.display()))?
            }
            Err(e) => return Err(e).with_context(|| format!("cannot look at {}", dir.display())),
        }
    }
    Ok(dir.join(name))
}

/// Writes `content` to `target`, replacing a regular file there, refusing a symbolic link.
fn write_file(target: &Path, mut content: impl Read) -> anyhow::Result<()> {
    if let Ok(found) = fs::symlink_metadata(target)
        && !found.is_file()
    {
        bail!(
            "{} exists and is not a regular file (a symbolic link is never followed); nothing more was written",
            target.display()
        );
    }
    // O_NOFOLLOW: a link put there since the look above is refused, not followed.
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(target)
        .with_context(|| format!("cannot write {}", target.display()))?;
    io::copy(&mut content, &mut file)
        .with_context(|| format!("cannot write {}", target.display()))?;
    Ok(())
}

/// Writes the content of the archive's one file, `expected`, to standard output.
fn write_single(archive: File, expected: &str) -> anyhow::Result<()> {
    let mut tar = tar::Archive::new(archive);
    for entry in tar.entries().context("cannot read the archive")? {
        let entry = entry.context("cannot read the archive")?;
        let path = entry_path(&entry)?;
        if path.as_str() != expected || !entry.header().entry_type().is_file() {
            continue;
        }
        crate::output::copy_to_stdout(entry)?;
        return Ok(());
    }
    bail!("the archive does not hold {expected}, which the fetch's result names")
}
