//! Backups of the embedded SQLite database: a consistent copy taken while a server runs, and
//! putting one back in place of a data directory's database.
//!
//! Copying `reposync.db` alone is not a backup: the newest writes sit in `reposync.db-wal`
//! until a checkpoint moves them. `VACUUM INTO` reads one snapshot of the database, write-ahead
//! log included, and writes it as a single compact file. It runs on a read-only connection of
//! its own, so it never waits on a server's write gate and never blocks its writers for longer
//! than SQLite's own reads do.

use std::path::{Path, PathBuf};
use std::str::FromStr as _;

use sqlx::any::AnyConnectOptions;
use sqlx::{Connection as _, Executor as _};

use crate::error::StoreError;

/// The database file of a data directory.
pub const DATABASE_FILE: &str = "reposync.db";

/// What a backup wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupDone {
    pub database: PathBuf,
    pub bytes: u64,
}

/// Writes a consistent copy of the database of `data_dir` to `out`, which must not exist yet.
pub async fn backup_sqlite(data_dir: &Path, out: &Path) -> Result<BackupDone, StoreError> {
    let database = data_dir.join(DATABASE_FILE);
    if !database.is_file() {
        return Err(invalid(
            "data_dir",
            format!(
                "{} holds no reposync database ({DATABASE_FILE}); give the server's --data-dir",
                data_dir.display()
            ),
        ));
    }
    if out.exists() {
        return Err(invalid(
            "out",
            format!(
                "{} exists already; give a new file, so that no backup is overwritten",
                out.display()
            ),
        ));
    }
    let out_text = out
        .to_str()
        .ok_or_else(|| invalid("out", "the path must be UTF-8".to_owned()))?;
    let mut connection = connect(&database).await?;
    // Waits, as the server's connections do, rather than failing on a momentary lock.
    connection.execute("PRAGMA busy_timeout = 10000").await?;
    sqlx::query("VACUUM INTO $1")
        .bind(out_text)
        .execute(&mut connection)
        .await?;
    connection.close().await?;
    let bytes = std::fs::metadata(out)
        .map(|m| m.len())
        .map_err(|e| invalid("out", format!("cannot read {}: {e}", out.display())))?;
    Ok(BackupDone { database, bytes })
}

/// Puts the backup `backup` in place as the database of `data_dir`, which no server may be
/// using (the caller holds the data directory's lock). An existing database is replaced only
/// when `replace` is set. The backup is checked first, and copied next to its place before it
/// is renamed over it, so a failure at any point leaves the data directory as it was.
pub async fn restore_sqlite(
    backup: &Path,
    data_dir: &Path,
    replace: bool,
) -> Result<PathBuf, StoreError> {
    if !backup.is_file() {
        return Err(invalid(
            "backup",
            format!("{} is not a file", backup.display()),
        ));
    }
    check_backup(backup).await?;
    let database = data_dir.join(DATABASE_FILE);
    if database.exists() && !replace {
        return Err(invalid(
            "data_dir",
            format!(
                "{} holds a database already; move it away, or pass --replace to overwrite it",
                data_dir.display()
            ),
        ));
    }
    let io = |what: &str, e: std::io::Error| invalid("data_dir", format!("cannot {what}: {e}"));
    std::fs::create_dir_all(data_dir).map_err(|e| io("create the data directory", e))?;
    let staged = data_dir.join(format!("{DATABASE_FILE}.restoring"));
    std::fs::copy(backup, &staged).map_err(|e| io("copy the backup", e))?;
    std::fs::File::open(&staged)
        .and_then(|f| f.sync_all())
        .map_err(|e| io("flush the copy", e))?;
    // The log and index of the database being replaced belong to it, not to the backup.
    for suffix in ["-wal", "-shm"] {
        let leftover = data_dir.join(format!("{DATABASE_FILE}{suffix}"));
        match std::fs::remove_file(&leftover) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&format!("remove {}", leftover.display()), e)),
        }
    }
    std::fs::rename(&staged, &database).map_err(|e| io("put the backup in place", e))?;
    Ok(database)
}

/// Refuses a file that is not a sound reposync database.
async fn check_backup(backup: &Path) -> Result<(), StoreError> {
    let not_ours = |why: String| {
        invalid(
            "backup",
            format!("{} is not a reposync backup: {why}", backup.display()),
        )
    };
    let mut connection = connect(backup).await.map_err(|e| not_ours(e.to_string()))?;
    let integrity: (String,) = sqlx::query_as("PRAGMA integrity_check")
        .fetch_one(&mut connection)
        .await
        .map_err(|e| not_ours(e.to_string()))?;
    if integrity.0 != "ok" {
        return Err(not_ours(format!(
            "SQLite finds it damaged ({})",
            integrity.0
        )));
    }
    let migrations: (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name IN ('_sqlx_migrations', 'entities')",
    )
    .fetch_one(&mut connection)
    .await
    .map_err(|e| not_ours(e.to_string()))?;
    connection.close().await?;
    if migrations.0 != 2 {
        return Err(not_ours("it holds no reposync tables".to_owned()));
    }
    Ok(())
}

/// A read-only connection of its own to a database file.
pub(crate) async fn connect(database: &Path) -> Result<sqlx::AnyConnection, StoreError> {
    sqlx::any::install_default_drivers();
    let url = format!("sqlite://{}?mode=ro", database.display());
    let options = AnyConnectOptions::from_str(&url)?;
    Ok(sqlx::AnyConnection::connect_with(&options).await?)
}

fn invalid(field: &str, message: String) -> StoreError {
    StoreError::Invalid {
        field: field.to_owned(),
        message,
    }
}
