//! `reposync backup` and `reposync restore`: the store's database, copied while the server
//! runs and put back while it does not.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use reposync_server::DataDirLock;

use crate::Globals;

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The file to write the backup to; it must not exist yet.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// A file written by `reposync backup`.
    backup: PathBuf,
    /// Replace the database the data directory holds already.
    #[arg(long)]
    replace: bool,
}

/// Refuses an installation whose store is PostgreSQL: backup and restore copy the embedded
/// SQLite file, and PostgreSQL has its own tools for that.
fn refuse_postgres(what: &str) -> anyhow::Result<()> {
    let Some(url) = std::env::var("REPOSYNC_DATABASE_URL")
        .ok()
        .filter(|v| !v.is_empty())
    else {
        return Ok(());
    };
    if reposync_store::Backend::of_url(&url).ok() == Some(reposync_store::Backend::Postgres) {
        anyhow::bail!(
            "cannot {what}: REPOSYNC_DATABASE_URL names a PostgreSQL database, and `reposync {what}` copies only the embedded SQLite one; use pg_dump and pg_restore"
        );
    }
    Ok(())
}

/// Copies the database of the data directory, consistently, whether or not a server runs.
pub async fn backup(args: BackupArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    refuse_postgres("backup")?;
    let done = reposync_store::backup_sqlite(&globals.data_dir, &args.out)
        .await
        .context("cannot back up the store")?;
    outln!(
        "Backed up {} to {} ({} bytes).",
        done.database.display(),
        args.out.display(),
        done.bytes
    );
    eprintln!(
        "Keep the master key ({} or REPOSYNC_MASTER_KEY) too, stored apart from this backup: without it the backup's secrets cannot be read.",
        globals.data_dir.join("master.key").display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Puts a backup back as the data directory's database; refused while a server uses it.
pub async fn restore(args: RestoreArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    refuse_postgres("restore")?;
    let _no_server = DataDirLock::acquire(&globals.data_dir).context("cannot restore")?;
    let database = reposync_store::restore_sqlite(&args.backup, &globals.data_dir, args.replace)
        .await
        .context("cannot restore")?;
    outln!(
        "Restored {} as {}.",
        args.backup.display(),
        database.display()
    );
    if !globals.data_dir.join("master.key").exists() {
        eprintln!(
            "Put the master key the backup was made under in {}, or set REPOSYNC_MASTER_KEY, before `reposync serve`.",
            globals.data_dir.join("master.key").display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
