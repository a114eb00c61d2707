//! Commands that move the configuration tree between files and the server.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use clap::Args;
use reposync_api::{
    ClientError, EntityView, ExportResponse, ImportReport, ImportRequest, TreeFile, decode,
};
use reqwest::Method;

use crate::Globals;
use crate::client_commands::client;

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The repository root (holding `Setup/`), or the `Setup` folder itself.
    dir: PathBuf,
    /// Validate and report what would change; change nothing.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Where to write the tree (`DIR/Setup/…`).
    dir: PathBuf,
    /// Only this application's files.
    #[arg(long)]
    app: Option<String>,
}

/// Validates a whole tree on the server, then applies it all or nothing.
pub async fn import(args: ImportArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let client = client(globals)?;
    let files = crate::offline::read_tree(&args.dir)?
        .into_iter()
        .map(|(path, bytes)| TreeFile {
            path,
            content: STANDARD.encode(bytes),
        })
        .collect();
    let request = ImportRequest {
        files,
        dry_run: args.dry_run,
    };
    let answer = client
        .send(
            Method::POST,
            &["api", "v1", "import"],
            &[],
            Some(&request),
            Duration::from_secs(600),
        )
        .await;
    let (report, failed) = match answer {
        Ok(value) => (decode::<ImportReport>(value)?, false),
        Err(ClientError::Api { body, .. }) if body.get("report").is_some() => {
            (decode::<ImportReport>(body["report"].clone())?, true)
        }
        Err(other) => return Err(other.into()),
    };
    if globals.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for problem in &report.problems {
            println!(
                "{}:{}:{}: {}",
                problem.path,
                problem.line.max(1),
                problem.column.max(1),
                problem.message
            );
        }
        let verb = if report.dry_run { "would be" } else { "" };
        if failed {
            eprintln!("{} problem(s); nothing was imported", report.problems.len());
        } else if report.created + report.changed == 0 {
            eprintln!(
                "nothing to change: {} files already up to date",
                report.unchanged
            );
        } else {
            eprintln!(
                "{} created, {} changed, {} unchanged{}{}",
                report.created,
                report.changed,
                report.unchanged,
                if verb.is_empty() {
                    ""
                } else {
                    " (dry run: nothing "
                },
                if verb.is_empty() { "" } else { "was written)" },
            );
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Writes the whole tree (or one application's) as files under a directory.
pub async fn export(args: ExportArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let client = client(globals)?;
    let mut query = Vec::new();
    if let Some(app) = &args.app {
        query.push(("app", app.clone()));
    }
    let answer: ExportResponse = decode(
        client
            .get(&["export"], &query, Duration::from_secs(600))
            .await?,
    )?;
    for file in &answer.files {
        let target = safe_join(&args.dir, &file.path)?;
        let bytes = STANDARD
            .decode(file.content.as_bytes())
            .with_context(|| format!("{}: content is not base64", file.path))?;
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&target, bytes)
            .with_context(|| format!("cannot write {}", target.display()))?;
    }
    eprintln!(
        "exported {} files to {}",
        answer.files.len(),
        args.dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Prints one entity's YAML.
pub async fn get(path: String, globals: &Globals) -> anyhow::Result<ExitCode> {
    let client = client(globals)?;
    let answer = client
        .get(&["entities"], &[("path", path)], Duration::from_secs(30))
        .await?;
    if globals.json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
    } else {
        let entity: EntityView = decode(answer)?;
        print!("{}", entity.content);
    }
    Ok(ExitCode::SUCCESS)
}

/// Deletes one entity.
pub async fn delete(path: String, globals: &Globals) -> anyhow::Result<ExitCode> {
    let client = client(globals)?;
    let url_query = [("path", path.clone())];
    client
        .send(
            Method::DELETE,
            &["api", "v1", "entities"],
            &url_query,
            None::<&()>,
            Duration::from_secs(30),
        )
        .await?;
    eprintln!("deleted {path}");
    Ok(ExitCode::SUCCESS)
}

/// `root/relative`, refusing paths that would leave `root` (a server is not trusted to name
/// files outside the directory the user chose).
fn safe_join(root: &Path, relative: &str) -> anyhow::Result<PathBuf> {
    let path = Path::new(relative);
    if path.is_absolute()
        || path
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        bail!("refusing to write {relative:?}: not a relative path inside the export directory");
    }
    Ok(root.join(path))
}
