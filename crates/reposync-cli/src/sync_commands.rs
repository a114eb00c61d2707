//! `reposync sync …`: link the account or an application to a branch, and watch what goes out.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;
use clap::{Args, Subcommand};
use reposync_api::{
    ChangesetView, ListResponse, ReadView, RefreshedBranch, SyncActivity, SyncDisableRequest,
    SyncEnableRequest, SyncEnabled, SyncEnabledAll, SyncErrorView, SyncLinkView,
    SyncRefreshRequest, TaskFailure, TaskView, decode,
};
use reposync_model::{AttemptId, ObjectId};
use reqwest::Method;
use serde_json::Value;

use crate::Globals;
use crate::client_commands::{client, in_flag_terms, wait_for_task};
use crate::output::{
    OutputFormat, byte_size, column, duration_ms, fields, local_time, local_time_or_dash, table_in,
    wide_column,
};

/// The flags of `sync enable`, by the API field each one sets.
const ENABLE_FLAGS: &[(&str, &str)] = &[
    ("app", "--app"),
    ("all", "--all"),
    ("connector", "--connector"),
    ("branch", "--branch"),
    ("repo", "--repo"),
    ("initial", "--initial"),
    ("confirm_deletes", "--yes"),
    ("create_branch", "--create-branch"),
];

/// Which part of the tree: the account's own files, or one application.
#[derive(Debug, Args, Clone)]
#[group(required = true, multiple = false)]
pub struct Scope {
    /// The account's own files (connectors, cloud providers, …).
    #[arg(long)]
    account: bool,
    /// One application's folder.
    #[arg(long, value_name = "NAME")]
    app: Option<String>,
}

/// Which scopes `sync enable` links: the account's own files, one application, or every
/// scope at once.
#[derive(Debug, Args, Clone)]
#[group(required = true, multiple = false)]
pub struct EnableScope {
    /// The account's own files (connectors, cloud providers, …).
    #[arg(long)]
    account: bool,
    /// One application's folder.
    #[arg(long, value_name = "NAME")]
    app: Option<String>,
    /// The account and every application, from one read of the branch: the applications
    /// the branch holds (those reposync lacks are created from it, as `--initial import`
    /// would) and those reposync holds (an application the branch lacks is pushed). Scopes
    /// linked already are left as they are, so running it again finishes an interrupted run.
    #[arg(long)]
    all: bool,
}

/// Which links `sync refresh` reads: one scope's, or every live link's.
#[derive(Debug, Args, Clone)]
#[group(required = true, multiple = false)]
pub struct RefreshScope {
    /// The account's own files.
    #[arg(long)]
    account: bool,
    /// One application's link.
    #[arg(long, value_name = "NAME")]
    app: Option<String>,
    /// Every live link.
    #[arg(long)]
    all: bool,
}

#[derive(Debug, Subcommand)]
pub enum ErrorsAction {
    /// Mark an error as seen; it no longer shows. A later commit that fixes a file resolves
    /// its error by itself.
    Discard {
        /// The error's id, as `sync errors` shows it.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum SyncCommand {
    /// Link the account or an application (or, with --all, every scope at once) to a branch;
    /// every later change is committed there.
    ///
    /// With --all, the branch is read once and every scope is linked in one transaction: a
    /// refusal anywhere (files that differ under fail-if-different, deletions --yes has not
    /// confirmed, a file that is not valid) links none, and says which scopes it is about.
    Enable {
        #[command(flatten)]
        scope: EnableScope,
        /// The Source Repo Provider to push with.
        #[arg(long)]
        connector: String,
        /// The branch (default: the connector's).
        #[arg(long)]
        branch: Option<String>,
        /// The repository, for an account-scope connector.
        #[arg(long)]
        repo: Option<String>,
        /// When the branch already holds YAML for this scope: `import` takes the branch's
        /// version of every file it has and keeps (and pushes) reposync's files it lacks;
        /// `mirror` does the same but deletes reposync's files the branch lacks (it lists
        /// them and needs --yes); `push` replaces the branch's files with reposync's;
        /// `fail-if-different` stops when they differ.
        #[arg(long, value_name = "MODE", default_value = "fail-if-different", value_parser = ["import", "mirror", "push", "fail-if-different"])]
        initial: String,
        /// Confirms the deletions of `--initial mirror`.
        #[arg(long)]
        yes: bool,
        /// Create the branch with the first commit when the repository has no such branch.
        #[arg(long)]
        create_branch: bool,
    },
    /// End a link; nothing more is pushed for that scope.
    Disable {
        #[command(flatten)]
        scope: Scope,
        /// Disable without asking (required when not at a terminal).
        #[arg(long)]
        yes: bool,
    },
    /// Read the branch now, as a webhook would have it read: for a change no webhook
    /// announced, without waiting for the poller.
    Refresh {
        #[command(flatten)]
        scope: RefreshScope,
    },
    /// The links, with what waits to be pushed.
    Status,
    /// Changesets, commit attempts, commits read from Git and how each branch was read, newest
    /// first.
    Activity {
        /// Only this application's link.
        #[arg(long)]
        app: Option<String>,
        /// How many of each to show.
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Sync errors that need a person, conflicts with both versions.
    Errors {
        #[command(subcommand)]
        action: Option<ErrorsAction>,
        /// Show the errors resolved lately instead, newest first, with how each ended.
        #[arg(long)]
        resolved: bool,
        /// Only this application's errors.
        #[arg(long, value_name = "NAME")]
        app: Option<String>,
    },
    /// Put a failed or conflicting changeset back in the outbox.
    Retry {
        /// The changeset's id, as `sync activity` shows it.
        id: String,
    },
}

pub async fn sync(command: SyncCommand, globals: &Globals) -> anyhow::Result<ExitCode> {
    let client = client(globals)?;
    let wait = Duration::from_secs(30);
    let answer = match &command {
        SyncCommand::Enable {
            scope,
            connector,
            branch,
            repo,
            initial,
            yes,
            create_branch,
        } => {
            let body = SyncEnableRequest {
                app: scope.app.clone(),
                all: scope.all,
                connector: connector.clone(),
                branch: branch.clone(),
                repo: repo.clone(),
                initial: Some(initial.clone()),
                confirm_deletes: *yes,
                create_branch: *create_branch,
            };
            let queued: TaskView = decode(
                client
                    .call(Method::POST, &["sync", "enable"], &body)
                    .await
                    .map_err(|e| in_flag_terms(e, ENABLE_FLAGS))?,
            )?;
            let scope_name = match (&scope.app, scope.all) {
                (_, true) => "every scope".to_owned(),
                (Some(app), _) => format!("app:{app}"),
                (None, _) => "account".to_owned(),
            };
            eprintln!(
                "Enabling sync for {scope_name}: a delegate reads the branch (task {})…",
                queued.id
            );
            let task = wait_for_task(&client, queued, "enabling sync").await?;
            let result = task.result.unwrap_or(Value::Null);
            if task.status != "succeeded" {
                let failure: TaskFailure = serde_json::from_value(result)
                    .unwrap_or_else(|_| TaskFailure::from_result(None));
                let field = failure
                    .field
                    .as_deref()
                    .map(|f| {
                        let flag = ENABLE_FLAGS.iter().find(|(name, _)| *name == f);
                        format!("{}: ", flag.map_or(f, |(_, flag)| *flag))
                    })
                    .unwrap_or_default();
                bail!("{field}{}", failure.explained());
            }
            result
        }
        SyncCommand::Disable { scope, yes } => {
            let scope_name = match &scope.app {
                Some(app) => format!("app:{app}"),
                None => "account".to_owned(),
            };
            crate::confirm::confirm(
                &format!("Disabling sync for {scope_name}"),
                &[format!(
                    "stop pushing {scope_name}'s changes to Git and applying Git's to it; nothing is deleted, here or in Git"
                )],
                *yes,
            )?;
            let body = SyncDisableRequest {
                app: scope.app.clone(),
            };
            client
                .call(Method::POST, &["sync", "disable"], &body)
                .await?
        }
        SyncCommand::Refresh { scope } => {
            let body = SyncRefreshRequest {
                app: scope.app.clone(),
                all: scope.all,
            };
            client
                .call(Method::POST, &["sync", "refresh"], &body)
                .await?
        }
        SyncCommand::Status => client.get(&["sync", "status"], &[], wait).await?,
        SyncCommand::Activity { app, limit } => {
            let mut query = vec![("limit", limit.to_string())];
            if let Some(app) = app {
                query.push(("app", app.clone()));
            }
            client.get(&["sync", "activity"], &query, wait).await?
        }
        SyncCommand::Errors {
            action: None,
            resolved,
            app,
        } => {
            let mut query = Vec::new();
            if *resolved {
                query.push(("resolved", "true".to_owned()));
            }
            if let Some(app) = app {
                query.push(("app", app.clone()));
            }
            client.get(&["sync", "errors"], &query, wait).await?
        }
        SyncCommand::Errors {
            action: Some(ErrorsAction::Discard { id }),
            ..
        } => {
            client
                .call(
                    Method::POST,
                    &["sync", "errors", id, "discard"],
                    &serde_json::json!({}),
                )
                .await?
        }
        SyncCommand::Retry { id } => {
            client
                .call(
                    Method::POST,
                    &["sync", "changesets", id, "retry"],
                    &serde_json::json!({}),
                )
                .await?
        }
    };
    if globals.output.is_data() {
        crate::output::data(globals.output, &answer)?;
        return Ok(ExitCode::SUCCESS);
    }
    let format = globals.output;
    let wide = format == OutputFormat::Wide;
    match command {
        SyncCommand::Enable { scope, .. } if scope.all => {
            print_enabled_all(&decode(answer)?);
        }
        SyncCommand::Enable { .. } => {
            let enabled: SyncEnabled = decode(answer)?;
            let link = &enabled.link;
            outln!(
                "Sync enabled: {} -> {} ({})",
                link.scope,
                link.url,
                link.branch
            );
            if let Some(imported) = &enabled.imported {
                outln!(
                    "Imported from the branch: {} created, {} changed, {} deleted",
                    imported.created,
                    imported.changed,
                    imported.deleted
                );
            }
            if !enabled.kept.is_empty() {
                outln!("Kept reposync's files the branch lacked (the first commit pushes them):");
                for path in &enabled.kept {
                    outln!("  {path}");
                }
            }
            if !enabled.deleted.is_empty() {
                outln!("Deleted reposync's files the branch lacked:");
                for path in &enabled.deleted {
                    outln!("  {path}");
                }
            }
            if enabled.pushing > 0 {
                outln!("{} file(s) queued for the first commit", enabled.pushing);
            } else {
                outln!("Nothing to push: the branch and reposync agree");
            }
        }
        SyncCommand::Disable { .. } => outln!("Sync disabled"),
        SyncCommand::Refresh { .. } => {
            let refreshed: ListResponse<RefreshedBranch> = decode(answer)?;
            for branch in &refreshed.items {
                outln!(
                    "Reading {} ({}) now, for {}",
                    branch.url,
                    branch.branch,
                    branch.scopes.join(", ")
                );
            }
            eprintln!("`reposync sync activity` shows what the read applied.");
        }
        SyncCommand::Status => {
            let links: ListResponse<SyncLinkView> = decode(answer)?;
            let rows: Vec<Vec<String>> = links
                .items
                .iter()
                .map(|l| {
                    vec![
                        l.scope.clone(),
                        l.connector.clone(),
                        l.url.clone(),
                        l.branch.clone(),
                        l.base_commit
                            .as_ref()
                            .map_or("-", |c| commit_text(c, wide))
                            .to_owned(),
                        l.waiting.to_string(),
                        l.errors.to_string(),
                        l.id.to_string(),
                        l.repo.clone().unwrap_or_else(|| "-".into()),
                        local_time(&l.created_at),
                    ]
                })
                .collect();
            table_in(
                format,
                &[
                    column("SCOPE"),
                    column("CONNECTOR"),
                    column("URL"),
                    column("BRANCH"),
                    column("COMMIT"),
                    column("WAITING"),
                    column("ERRORS"),
                    wide_column("LINK"),
                    wide_column("REPO"),
                    wide_column("SINCE"),
                ],
                &rows,
            );
        }
        SyncCommand::Activity { .. } => {
            let activity: SyncActivity = decode(answer)?;
            outln!("Changesets:");
            let rows: Vec<Vec<String>> = activity
                .changesets
                .iter()
                .map(|c| changeset_row(c, wide))
                .collect();
            table_in(
                format,
                &[
                    column("ID"),
                    column("SCOPE"),
                    column("STATUS"),
                    column("FILES"),
                    column("COMMIT"),
                    column("CREATED"),
                    column("ERROR"),
                    wide_column("UPDATED"),
                    wide_column("ATTEMPT"),
                    wide_column("PATHS"),
                ],
                &rows,
            );
            outln!("\nCommit attempts:");
            let rows: Vec<Vec<String>> = activity
                .attempts
                .iter()
                .map(|a| {
                    vec![
                        a.id.to_string(),
                        a.scope.clone(),
                        a.status.clone(),
                        a.delegate.clone().unwrap_or_else(|| "-".into()),
                        a.files.len().to_string(),
                        a.commit_id
                            .as_ref()
                            .map_or("-", |c| commit_text(c, wide))
                            .to_owned(),
                        local_time(&a.started_at),
                        a.error.clone().unwrap_or_default(),
                        local_time_or_dash(a.finished_at.as_deref()),
                        a.changesets
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(","),
                    ]
                })
                .collect();
            table_in(
                format,
                &[
                    column("ID"),
                    column("SCOPE"),
                    column("STATUS"),
                    column("DELEGATE"),
                    column("FILES"),
                    column("COMMIT"),
                    column("STARTED"),
                    column("ERROR"),
                    wide_column("FINISHED"),
                    wide_column("CHANGESETS"),
                ],
                &rows,
            );
            outln!("\nCommits read from Git:");
            let rows: Vec<Vec<String>> = activity
                .inbound
                .iter()
                .map(|c| {
                    vec![
                        commit_text(&c.commit_id, wide).to_owned(),
                        c.branch.clone(),
                        c.status.clone(),
                        c.files.len().to_string(),
                        c.errors.to_string(),
                        c.author.clone(),
                        local_time(&c.applied_at),
                        c.subject.clone(),
                        paths(&c.files),
                    ]
                })
                .collect();
            table_in(
                format,
                &[
                    column("COMMIT"),
                    column("BRANCH"),
                    column("STATUS"),
                    column("FILES"),
                    column("ERRORS"),
                    column("AUTHOR"),
                    column("READ"),
                    column("SUBJECT"),
                    wide_column("PATHS"),
                ],
                &rows,
            );
            for c in &activity.inbound {
                for w in &c.warnings {
                    eprintln!("warning: commit {}: {w}", commit_text(&c.commit_id, false));
                }
            }
            outln!("\nReads:");
            let rows: Vec<Vec<String>> = activity.reads.iter().map(|r| read_row(r, wide)).collect();
            table_in(
                format,
                &[
                    column("READ"),
                    column("BRANCH"),
                    column("KIND"),
                    column("METHOD"),
                    column("REQUESTS"),
                    column("BYTES"),
                    column("DURATION"),
                    column("FALLBACK"),
                    wide_column("HEAD"),
                    wide_column("DELEGATE"),
                    wide_column("REASON"),
                ],
                &rows,
            );
        }
        SyncCommand::Errors {
            action: Some(ErrorsAction::Discard { id }),
            ..
        } => outln!("Sync error {id} discarded"),
        SyncCommand::Errors { action: None, .. } => {
            let errors: ListResponse<SyncErrorView> = decode(answer)?;
            if errors.items.is_empty() {
                outln!("No sync errors");
            }
            for e in errors.items {
                fields(&[
                    ("Error", Some(e.id.into_string())),
                    ("Scope", Some(e.scope)),
                    ("Code", Some(e.code)),
                    ("Path", e.path),
                    ("Message", Some(e.message)),
                    ("Attempt", e.attempt_id.map(AttemptId::into_string)),
                    ("Commit", e.commit_id.map(ObjectId::into_string)),
                    ("At", Some(local_time(&e.created_at))),
                    (
                        "Resolved",
                        e.resolved_at.map(|at| {
                            format!("{} ({})", local_time(&at), e.resolution.unwrap_or_default())
                        }),
                    ),
                ]);
                if let Some(ours) = e.ours {
                    outln!("--- reposync's version\n{ours}");
                }
                if let Some(theirs) = e.theirs {
                    outln!("--- Git's version\n{theirs}");
                }
                outln!();
            }
        }
        SyncCommand::Retry { id } => outln!("Changeset {id} is waiting to be pushed again"),
    }
    Ok(ExitCode::SUCCESS)
}

/// A read's cells: the table's, then the wide ones. A read that fell back says from what and
/// why, since that is what a person looks for when a read was slow or costly.
fn read_row(r: &ReadView, wide: bool) -> Vec<String> {
    let fallback = match (&r.fallback_from, &r.fallback_reason) {
        (Some(from), Some(why)) => format!("fell back from {from}: {why}"),
        (Some(from), None) => format!("fell back from {from}"),
        (None, _) => String::new(),
    };
    vec![
        local_time(&r.read_at),
        r.branch.clone(),
        r.kind.clone(),
        r.method.clone(),
        r.requests.to_string(),
        byte_size(r.bytes),
        duration_ms(r.duration_ms),
        fallback,
        r.head
            .as_ref()
            .map_or("-", |head| commit_text(head, wide))
            .to_owned(),
        r.delegate.clone().unwrap_or_else(|| "-".into()),
        r.reason.clone(),
    ]
}

/// A changeset's cells: the table's, then the wide ones.
fn changeset_row(c: &ChangesetView, wide: bool) -> Vec<String> {
    vec![
        c.id.to_string(),
        c.scope.clone(),
        c.status.clone(),
        c.files.len().to_string(),
        c.commit_id
            .as_ref()
            .map_or("-", |commit| commit_text(commit, wide))
            .to_owned(),
        local_time(&c.created_at),
        c.error.clone().unwrap_or_default(),
        local_time(&c.updated_at),
        c.attempt_id
            .as_ref()
            .map_or_else(|| "-".to_owned(), ToString::to_string),
        paths(&c.files),
    ]
}

/// `op path` of each file, comma-separated: for `-o wide`.
fn paths(files: &[reposync_api::ChangedFileView]) -> String {
    files
        .iter()
        .map(|f| format!("{} {}", f.op, f.path))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A commit id as tables show it: its first 12 characters, or all of it with `-o wide`.
/// What `sync enable --all` did: one line per scope, then a summary.
fn print_enabled_all(all: &SyncEnabledAll) {
    outln!(
        "Sync enabled with {} ({}) through {}, initial mode {}, from one read of the branch:",
        all.url,
        all.branch,
        all.connector,
        all.initial
    );
    let width = all
        .linked
        .iter()
        .map(|e| e.link.scope.len())
        .chain(all.skipped.iter().map(|l| l.scope.len()))
        .max()
        .unwrap_or_default();
    for enabled in &all.linked {
        let scope = &enabled.link.scope;
        let created = enabled
            .link
            .app
            .as_ref()
            .is_some_and(|app| all.created_apps.contains(app));
        let mut said = vec![if created {
            "linked, created from the branch".to_owned()
        } else {
            "linked".to_owned()
        }];
        if let Some(imported) = &enabled.imported {
            said.push(format!(
                "imported {} created, {} changed, {} deleted",
                imported.created, imported.changed, imported.deleted
            ));
        }
        if !enabled.kept.is_empty() {
            said.push(format!("kept {} of reposync's", enabled.kept.len()));
        }
        if !enabled.deleted.is_empty() {
            said.push(format!("deleted {} of reposync's", enabled.deleted.len()));
        }
        said.push(if enabled.pushing > 0 {
            format!("{} file(s) queued for the first commit", enabled.pushing)
        } else {
            "nothing to push".to_owned()
        });
        outln!("  {scope:<width$}  {}", said.join("; "));
    }
    for link in &all.skipped {
        outln!(
            "  {:<width$}  already linked with {} ({}); left as it is",
            link.scope,
            link.url,
            link.branch
        );
    }
    let pushing: usize = all.linked.iter().map(|e| e.pushing).sum();
    outln!(
        "{} scope(s) linked ({} application(s) created from the branch), {} already linked; {pushing} file(s) queued for the first commits",
        all.linked.len(),
        all.created_apps.len(),
        all.skipped.len()
    );
}

fn commit_text(commit: &ObjectId, wide: bool) -> &str {
    let commit = commit.as_str();
    if wide {
        return commit;
    }
    commit.get(..12).unwrap_or(commit)
}
