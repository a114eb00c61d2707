//! `reposync store migrate`: an installation's embedded SQLite database copied, every row,
//! into a fresh PostgreSQL database, through `reposync-store` directly (no server runs).

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use reposync_server::{BootstrapError, DataDirLock};
use reposync_store::StoreError;

use crate::Globals;
use crate::output::{self, OutputFormat};

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Copy every row of an installation's SQLite database into a fresh PostgreSQL database,
    /// secrets still sealed under the same master key. The server must be stopped; the SQLite
    /// file is only read, and a copy that fails leaves the target empty, to be run again.
    Migrate(MigrateArgs),
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The database to copy: `sqlite:PATH`, the reposync.db in the server's data directory.
    #[arg(long, value_name = "sqlite:PATH")]
    from: String,
    /// The PostgreSQL database to copy into, which must hold no rows:
    /// `postgres://USER@HOST/DATABASE`. Give its password in PGPASSWORD or ~/.pgpass rather
    /// than here, where other users of the machine can read it.
    #[arg(long, value_name = "postgres://…")]
    to: String,
}

pub async fn store(command: StoreCommand, globals: &Globals) -> anyhow::Result<ExitCode> {
    let StoreCommand::Migrate(args) = command;
    migrate(args, globals.output).await
}

/// Copies the database `--from` names into `--to`, while no server can change it.
async fn migrate(args: MigrateArgs, format: OutputFormat) -> anyhow::Result<ExitCode> {
    let target = reposync_store::redacted_url(&args.to);
    if target != args.to {
        eprintln!(
            "warning: --to holds a password, which other users of this machine can read in the list of processes while this runs; next time leave it out and set PGPASSWORD (or ~/.pgpass) instead"
        );
    }
    let database = reposync_store::sqlite_source_file(&args.from).map_err(flag_error)?;
    // The database's directory is the data directory a server would lock.
    let data_dir = match database.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let _no_server = DataDirLock::acquire(data_dir).map_err(|e| match e {
        BootstrapError::InUse { path, holder } => anyhow::anyhow!(
            "--from: {} is in use by a reposync server{}; stop it first, so that the copy holds every change it made",
            path.display(),
            holder.map(|pid| format!(" (process {pid})")).unwrap_or_default()
        ),
        other => anyhow::Error::new(other).context("--from: cannot lock the data directory"),
    })?;
    let report = reposync_store::copy_sqlite_to_postgres(&args.from, &args.to)
        .await
        .map_err(flag_error)
        .context("cannot copy the store")?;

    if format.is_data() {
        let tables: Vec<serde_json::Value> = report
            .tables
            .iter()
            .map(|t| serde_json::json!({ "table": t.table, "rows": t.rows }))
            .collect();
        output::data(
            format,
            &serde_json::json!({
                "from": args.from,
                "to": target,
                "tables": tables,
                "rows": report.total_rows(),
            }),
        )?;
    } else {
        let rows: Vec<Vec<String>> = report
            .tables
            .iter()
            .map(|t| vec![t.table.clone(), t.rows.to_string()])
            .collect();
        output::table(&["TABLE", "ROWS"], &rows);
        outln!(
            "Copied {} rows in {} tables from {} to {target}.",
            report.total_rows(),
            report.tables.len(),
            database.display()
        );
    }
    let key_file = data_dir.join("master.key");
    let key = if key_file.is_file() {
        format!(
            "the key in {} (serve with that --data-dir, copy the file into the new data directory, or give its contents as REPOSYNC_MASTER_KEY)",
            key_file.display()
        )
    } else {
        "REPOSYNC_MASTER_KEY as the old server had it (no master.key lies beside the database)"
            .to_owned()
    };
    eprintln!(
        "Next: start `reposync serve` with REPOSYNC_DATABASE_URL (or database_url in its configuration file) naming the PostgreSQL database, and with the same master key: {key}. Without that key the copied secrets cannot be opened. {} is left as it was; keep it until the new installation works.",
        database.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// A store error as the user gave it: a refusal of `from` or `to` names the flag.
fn flag_error(error: StoreError) -> anyhow::Error {
    match error {
        StoreError::Invalid { field, message } if field == "from" || field == "to" => {
            anyhow::anyhow!("--{field}: {message}")
        }
        other => anyhow::Error::new(other),
    }
}
