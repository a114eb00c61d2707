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
    /// Read secret references of another Harness secret manager (`gcpkms:NAME`,
    /// `hashicorpvault:NAME`, …) as reposync's secret NAME, which must exist (repeatable).
    /// Each mapping is reported, and the stored files name `reposync:NAME`.
    #[arg(long = "map-secret-manager", value_name = "MANAGER")]
    map_secret_managers: Vec<String>,
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
    // A bad manager is named before anything is read or sent.
    reposync_model::connector_yaml::MappedManagers::parse(
        &args.map_secret_managers,
        "--map-secret-manager",
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
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
        map_secret_managers: args.map_secret_managers.clone(),
    };
    let spinner = crate::progress::Spinner::start(format!(
        "importing {} files from {}",
        request.files.len(),
        args.dir.display()
    ));
    let answer = client
        .send(
            Method::POST,
            &["api", "v1", "import"],
            &[],
            Some(&request),
            Duration::from_secs(600),
        )
        .await;
    spinner.finish().await;
    let (report, failed) = match answer {
        Ok(value) => (decode::<ImportReport>(value)?, false),
        Err(ClientError::Api { body, .. }) if body.get("report").is_some() => {
            (decode::<ImportReport>(body["report"].clone())?, true)
        }
        Err(other) => return Err(other.into()),
    };
    if globals.output.is_data() {
        crate::output::data(globals.output, &report)?;
    } else {
        for problem in &report.problems {
            outln!("{problem}");
        }
        print_notes(&report);
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

/// A write's warnings and secret mappings, on standard error: they are for the person, and
/// never change the outcome. `--json` carries them in the report instead.
fn print_notes(report: &ImportReport) {
    for warning in &report.warnings {
        eprintln!("warning: {warning}");
    }
    for m in &report.mapped_secrets {
        eprintln!(
            "{}",
            crate::offline::mapped_line(&m.path, m.line, &m.key, &m.reference, &m.secret)
        );
    }
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
    if globals.output.is_data() {
        crate::output::data(globals.output, &answer)?;
    } else {
        let entity: EntityView = decode(answer)?;
        out!("{}", entity.content);
    }
    Ok(ExitCode::SUCCESS)
}

/// Deletes one entity, once confirmed.
pub async fn delete(path: String, yes: bool, globals: &Globals) -> anyhow::Result<ExitCode> {
    let client = client(globals)?;
    // What will go is only worth asking the server for when someone will read it.
    if !yes {
        let scope = reposync_model::scope::Scope::of_path(&path);
        let mut consequences = vec![format!("delete {path}")];
        consequences.extend(crate::confirm::sync_consequence(&client, &scope).await?);
        crate::confirm::confirm(&format!("Deleting {path}"), &consequences, false)?;
    }
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

#[derive(Debug, clap::Subcommand)]
pub enum AppCommand {
    /// Create an application.
    Create {
        /// The application's name.
        name: String,
        /// What the application is for.
        #[arg(long)]
        description: Option<String>,
    },
    /// List applications.
    List,
    /// Show one application.
    Show {
        /// The application.
        name: String,
    },
    /// Rename an application; its folder moves.
    Rename {
        /// The application.
        name: String,
        /// Its new name.
        new_name: String,
    },
    /// Delete an application and everything in it.
    Delete {
        /// The application.
        name: String,
        /// Delete without asking (required when not at a terminal).
        #[arg(long)]
        yes: bool,
    },
}

/// Runs an `app` subcommand.
pub async fn app(command: AppCommand, globals: &Globals) -> anyhow::Result<ExitCode> {
    let client = client(globals)?;
    let answer = match &command {
        AppCommand::Create { name, description } => {
            let body = reposync_api::AppRequest {
                name: name.clone(),
                description: description.clone(),
            };
            write_answer(client.call(Method::POST, &["apps"], &body).await)?
        }
        AppCommand::List => client.get(&["apps"], &[], Duration::from_secs(30)).await?,
        AppCommand::Show { name } => {
            client
                .get(&["apps", name], &[], Duration::from_secs(30))
                .await?
        }
        AppCommand::Rename { name, new_name } => {
            let body = reposync_api::AppRequest {
                name: new_name.clone(),
                description: None,
            };
            write_answer(
                client
                    .call(Method::POST, &["apps", name, "rename"], &body)
                    .await,
            )?
        }
        AppCommand::Delete { name, yes } => {
            let scope = reposync_model::scope::Scope::of_app(Some(name));
            // Whether it is synced decides what is said after; the files (their contents
            // come with them) are fetched only for someone who will read the list.
            let synced = crate::confirm::sync_consequence(&client, &scope).await?;
            if !*yes {
                let files: ExportResponse = decode(
                    client
                        .get(
                            &["export"],
                            &[("app", name.clone())],
                            Duration::from_secs(600),
                        )
                        .await?,
                )?;
                let mut consequences: Vec<String> = files
                    .files
                    .iter()
                    .map(|f| format!("delete {}", f.path))
                    .collect();
                if let Some(push) = &synced {
                    consequences.push(push.clone());
                    consequences
                        .push("and end its sync link once that commit is pushed".to_owned());
                }
                crate::confirm::confirm(
                    &format!("Deleting application {name:?}"),
                    &consequences,
                    false,
                )?;
            }
            let answer = write_answer(client.delete(&["apps", name]).await)?;
            if synced.is_some() {
                eprintln!(
                    "Its sync link ends once Git Sync has pushed the deletion; `reposync sync status` shows when."
                );
            }
            answer
        }
    };
    if globals.output.is_data() {
        crate::output::data(globals.output, &answer)?;
        return Ok(ExitCode::SUCCESS);
    }
    match command {
        AppCommand::List => {
            let list: reposync_api::ListResponse<reposync_api::AppView> = decode(answer)?;
            let rows: Vec<Vec<String>> = list
                .items
                .iter()
                .map(|a| {
                    vec![
                        a.name.clone(),
                        a.services.to_string(),
                        a.environments.to_string(),
                        a.workflows.to_string(),
                        a.pipelines.to_string(),
                        a.files.to_string(),
                        a.sync.as_ref().map_or_else(
                            || "-".to_owned(),
                            |s| format!("{} ({}) through {}", s.url, s.branch, s.connector),
                        ),
                        a.description.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            use crate::output::{column, wide_column};
            crate::output::table_in(
                globals.output,
                &[
                    column("NAME"),
                    column("SERVICES"),
                    column("ENVIRONMENTS"),
                    column("WORKFLOWS"),
                    column("PIPELINES"),
                    column("FILES"),
                    wide_column("GIT SYNC"),
                    wide_column("DESCRIPTION"),
                ],
                &rows,
            );
        }
        AppCommand::Show { .. } => {
            let a: reposync_api::AppView = decode(answer)?;
            let sync = match &a.sync {
                Some(sync) => format!("{} ({}) through {}", sync.url, sync.branch, sync.connector),
                None => "not synced".to_owned(),
            };
            crate::output::fields(&[
                ("Name", Some(a.name)),
                ("Description", a.description),
                ("Git Sync", Some(sync)),
                ("Services", Some(a.services.to_string())),
                ("Environments", Some(a.environments.to_string())),
                ("Workflows", Some(a.workflows.to_string())),
                ("Pipelines", Some(a.pipelines.to_string())),
                ("Files", Some(a.files.to_string())),
            ]);
        }
        AppCommand::Create { name, .. } => {
            print_notes(&decode(answer)?);
            outln!("Created application {name:?}")
        }
        AppCommand::Rename { name, new_name } => {
            print_notes(&decode(answer)?);
            outln!("Renamed application {name:?} to {new_name:?}")
        }
        AppCommand::Delete { name, .. } => outln!("Deleted application {name:?}"),
    }
    Ok(ExitCode::SUCCESS)
}

/// Creates or updates one entity from a YAML file.
pub async fn apply(path: String, file: PathBuf, globals: &Globals) -> anyhow::Result<ExitCode> {
    let client = client(globals)?;
    let content = std::fs::read_to_string(&file)
        .with_context(|| format!("cannot read {}", file.display()))?;
    let answer = client
        .send(
            Method::PUT,
            &["api", "v1", "entities"],
            &[("path", path.clone())],
            Some(&reposync_api::ApplyRequest { content }),
            Duration::from_secs(60),
        )
        .await;
    let report: ImportReport = decode(write_answer(answer)?)?;
    if globals.output.is_data() {
        crate::output::data(globals.output, &report)?;
        return Ok(ExitCode::SUCCESS);
    }
    print_notes(&report);
    if report.created > 0 {
        eprintln!("created {path}");
    } else if report.changed > 0 {
        eprintln!("changed {path}");
    } else {
        eprintln!("{path} is unchanged");
    }
    Ok(ExitCode::SUCCESS)
}

/// The answer of a write, or an error listing every problem of a refused tree.
fn write_answer(
    answer: Result<serde_json::Value, ClientError>,
) -> anyhow::Result<serde_json::Value> {
    match answer {
        Ok(value) => Ok(value),
        Err(ClientError::Api { body, error, .. }) if body.get("report").is_some() => {
            let report: ImportReport = decode(body["report"].clone())?;
            let lines: Vec<String> = report.problems.iter().map(ToString::to_string).collect();
            bail!("{}\n{}", error.message, lines.join("\n"))
        }
        Err(other) => Err(other.into()),
    }
}

/// Renames an entity (moving its folder for applications, services and environments) and
/// rewrites every reference to it.
pub async fn rename(path: String, new_name: String, globals: &Globals) -> anyhow::Result<ExitCode> {
    let client = client(globals)?;
    let body = serde_json::json!({ "path": path, "name": new_name });
    let answer = write_answer(
        client
            .call(Method::POST, &["entities", "rename"], &body)
            .await,
    )?;
    if globals.output.is_data() {
        crate::output::data(globals.output, &answer)?;
    } else {
        let report: ImportReport = decode(answer)?;
        print_notes(&report);
        eprintln!(
            "renamed {path} to {new_name:?}: {} files written, {} moved away",
            report.created + report.changed,
            report.deleted
        );
    }
    Ok(ExitCode::SUCCESS)
}
