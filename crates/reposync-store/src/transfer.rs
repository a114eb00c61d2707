//! Moving an installation from the embedded SQLite database to PostgreSQL (`reposync store
//! migrate`): every row of every table, copied as it is stored.
//!
//! Rows are copied, not re-created through [`Store`](crate::Store), so that secrets stay
//! sealed: each sealed value is bound to its row's id under the master key, and the
//! ciphertext and the ids cross byte for byte, readable under the same key and never
//! decrypted here. The tables and their columns are read from the source's own schema, not
//! from a list that would rot with the next migration, and checked against the target's
//! before anything is written. The source is only read, in one snapshot; the target gets its
//! migrations as `Store::open` gives them, must hold no row, and receives everything in one
//! transaction, parents before the tables that refer to them. A copy that stops anywhere (a
//! row PostgreSQL refuses, a dropped connection, a killed process) leaves the target as empty
//! as it found it, so the copy can simply be run again.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use futures_util::TryStreamExt as _;
use sqlx::any::{AnyRow, AnyTypeInfoKind};
use sqlx::{AnyConnection, Connection as _, Row as _, ValueRef as _};

use crate::error::StoreError;
use crate::gate::{Backend, Database, Read as _};
use crate::store::{POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS, open_database};

/// The table that records applied migrations; each database's own, never copied.
const MIGRATIONS_TABLE: &str = "_sqlx_migrations";

/// PostgreSQL's limit on the parameters of one statement (they are numbered with 16 bits).
const MAX_PARAMETERS: usize = 65_535;

/// At most this many rows go in one `INSERT`: past a few hundred, longer statements save
/// little and cost the server more to plan.
const MAX_ROWS_PER_INSERT: usize = 500;

/// An `INSERT` is sent once the values gathered for it pass this many bytes, so that a table
/// of large rows (files, sealed values) never sits in memory whole.
const MAX_BYTES_PER_INSERT: usize = 8 * 1024 * 1024;

/// What a copy carried: each table with its rows, in the order they were copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyReport {
    pub tables: Vec<TableCopied>,
}

/// One table of a [`CopyReport`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableCopied {
    pub table: String,
    pub rows: u64,
}

impl CopyReport {
    /// Every row copied, all tables together.
    pub fn total_rows(&self) -> u64 {
        self.tables.iter().map(|t| t.rows).sum()
    }
}

/// Copies every row of the SQLite database `from` (`sqlite:PATH`, an existing file, only
/// read) into the PostgreSQL database `to` (`postgres://…`), which is migrated first and must
/// hold no row. Both schemas must be this reposync's newest. Errors about either name it by
/// its parameter (`from`, `to`), and never show the password `to` may hold.
pub async fn copy_sqlite_to_postgres(from: &str, to: &str) -> Result<CopyReport, StoreError> {
    let source_file = sqlite_source_file(from)?;
    if Backend::of_url(to).ok() != Some(Backend::Postgres) {
        return Err(invalid(
            "to",
            format!(
                "{} is not a PostgreSQL database; give a postgres:// URL of a fresh, empty database (to copy the SQLite file itself, use `reposync backup`)",
                redacted_url(to)
            ),
        ));
    }
    let mut source = crate::backup::connect(&source_file).await?;
    // One snapshot for everything read: the schema, the rows and their counts.
    let mut snapshot = source.begin().await?;
    let copied = copy_snapshot(&mut snapshot, to).await;
    let ended = snapshot.rollback().await;
    let report = copied?;
    ended?;
    source.close().await?;
    Ok(report)
}

/// The SQLite file a `sqlite:` URL names, which must exist: the source of a copy.
/// Options after `?` (`mode=rwc`) are ignored, since the copy opens the file read-only.
pub fn sqlite_source_file(from: &str) -> Result<PathBuf, StoreError> {
    let Some(rest) = from.strip_prefix("sqlite:") else {
        return Err(invalid(
            "from",
            format!(
                "{} is not a SQLite database; give it as sqlite:PATH, the reposync.db of the data directory",
                redacted_url(from)
            ),
        ));
    };
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return Err(invalid(
            "from",
            "names no file; give sqlite:PATH, the reposync.db of the data directory".to_owned(),
        ));
    }
    let path = PathBuf::from(path);
    if !path.is_file() {
        return Err(invalid(
            "from",
            format!(
                "{} is not a file; give the reposync.db of the data directory (sqlite:DATA_DIR/reposync.db)",
                path.display()
            ),
        ));
    }
    Ok(path)
}

/// `url` with its password, in the user part or as a `password=` option, replaced by `***`:
/// the form every message shows.
pub fn redacted_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{user}:***@{host}"),
            None => authority.to_owned(),
        },
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let options: Vec<String> = query
                .split('&')
                .map(|option| match option.split_once('=') {
                    Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
                    _ => option.to_owned(),
                })
                .collect();
            format!("{path}?{}", options.join("&"))
        }
        None => tail.to_owned(),
    };
    format!("{scheme}://{authority}{tail}")
}

/// The copy, from one snapshot of the source.
async fn copy_snapshot(source: &mut AnyConnection, to: &str) -> Result<CopyReport, StoreError> {
    check_schema_version(
        &applied_source_migrations(source).await?,
        &SQLITE_MIGRATIONS,
        "from",
    )?;
    let tables = in_foreign_key_order(source_tables(source).await?)?;
    let shown = redacted_url(to);
    let target = open_database(to).await.map_err(|e| match e {
        StoreError::Migrate(e) => invalid(
            "to",
            format!(
                "cannot bring {shown}'s schema to this reposync's ({e}); give a fresh, empty database"
            ),
        ),
        StoreError::Database(e) => invalid(
            "to",
            format!(
                "cannot connect to {shown}: {}; check the URL, and that PostgreSQL runs there and lets this user in",
                describe(&e)
            ),
        ),
        other => other,
    })?;
    let copied = copy_into(source, &target, &tables, &shown).await;
    target.close().await;
    copied
}

/// Checks the target's schema against the source's, copies in one transaction, and checks
/// the counts once it is committed.
async fn copy_into(
    source: &mut AnyConnection,
    target: &Database,
    tables: &[SourceTable],
    shown: &str,
) -> Result<CopyReport, StoreError> {
    let applied: Vec<i64> =
        sqlx::query("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
            .read_all(target)
            .await?
            .iter()
            .map(|row| row.try_get("version"))
            .collect::<Result<_, _>>()?;
    check_schema_version(&applied, &POSTGRES_MIGRATIONS, "to")?;
    let target_tables = target_tables(target).await?;
    let plans = plan_copies(tables, &target_tables)?;

    let mut tx = target.begin_write().await?;
    let report = match copy_rows(source, &mut tx, &plans, target_tables.keys(), shown).await {
        Ok(report) => report,
        Err(e) => {
            // Dropping the transaction would roll it back too, but only once its connection
            // is next used; this way the target is empty again before the error is told. A
            // rollback that fails has lost its connection, and PostgreSQL ends a transaction
            // whose connection is gone without committing it: the copy's error is the one
            // to tell.
            let _ = tx.rollback().await;
            return Err(e);
        }
    };
    tx.commit().await.map_err(|e| {
        invalid(
            "to",
            format!(
                "the copy could not be committed ({}); if {shown} now holds rows, drop it, create it afresh and run the copy again",
                describe(&e)
            ),
        )
    })?;

    for copied in &report.tables {
        let table = quoted(&copied.table);
        let count = format!("SELECT COUNT(*) AS n FROM {table}");
        let in_source: i64 = sqlx::query(&count)
            .fetch_one(&mut *source)
            .await?
            .try_get("n")?;
        let in_target: i64 = sqlx::query(&count).read_one(target).await?.try_get("n")?;
        if i64::try_from(copied.rows).ok() != Some(in_source) || in_target != in_source {
            return Err(invalid(
                "to",
                format!(
                    "after the copy, table {} holds {in_target} rows in {shown} and {in_source} in the source; drop the target database, create it afresh and run the copy again",
                    copied.table
                ),
            ));
        }
    }
    Ok(report)
}

/// Inside the target's transaction: refuses a target that holds any row (checked here, so
/// that nothing can slip in between), then copies every table in `plans`' order.
async fn copy_rows(
    source: &mut AnyConnection,
    target: &mut AnyConnection,
    plans: &[TablePlan],
    target_tables: impl Iterator<Item = &String>,
    shown: &str,
) -> Result<CopyReport, StoreError> {
    for table in target_tables {
        let found = sqlx::query(&format!("SELECT 1 AS found FROM {} LIMIT 1", quoted(table)))
            .fetch_optional(&mut *target)
            .await?;
        if found.is_some() {
            return Err(invalid(
                "to",
                format!(
                    "{shown} is not empty: table {table} holds rows already; give a fresh database (CREATE DATABASE …), so that nothing is mixed or overwritten"
                ),
            ));
        }
    }
    let mut report = CopyReport { tables: Vec::new() };
    for plan in plans {
        let rows = copy_table(source, target, plan).await?;
        report.tables.push(TableCopied {
            table: plan.name.clone(),
            rows,
        });
    }
    reset_sequences(target).await?;
    Ok(report)
}

/// The migrations a database applied, against those this binary knows for its backend: the
/// same set, or a message saying what to do.
fn check_schema_version(
    applied: &[i64],
    known: &sqlx::migrate::Migrator,
    field: &str,
) -> Result<(), StoreError> {
    let known: Vec<i64> = known.iter().map(|m| m.version).collect();
    if applied == known.as_slice() {
        return Ok(());
    }
    let newest_applied = applied.iter().max().copied().unwrap_or(0);
    let newest_known = known.iter().max().copied().unwrap_or(0);
    let which = if field == "from" { "source" } else { "target" };
    let message = if newest_applied > newest_known {
        format!(
            "the {which}'s schema is at version {newest_applied}, newer than this reposync knows ({newest_known}); copy with the reposync that wrote it, or upgrade this one"
        )
    } else if newest_applied < newest_known && field == "from" {
        format!(
            "the source's schema is at version {newest_applied}, older than this reposync's ({newest_known}); start this version's `reposync serve` on it once (it brings the schema up to date), stop it, then run the copy again"
        )
    } else {
        format!(
            "the {which}'s migrations ({applied:?}) are not this reposync's ({known:?}); give a database this reposync made{}",
            if field == "to" {
                ", fresh and empty"
            } else {
                ""
            }
        )
    };
    Err(invalid(field, message))
}

/// The migrations the source applied, refusing a file that is not a reposync database.
async fn applied_source_migrations(source: &mut AnyConnection) -> Result<Vec<i64>, StoreError> {
    let has_table: i64 = sqlx::query(
        "SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
    )
    .fetch_one(&mut *source)
    .await?
    .try_get("n")?;
    if has_table == 0 {
        return Err(invalid(
            "from",
            "is not a reposync database: it has no migrations table; give the reposync.db of the data directory".to_owned(),
        ));
    }
    sqlx::query("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
        .fetch_all(&mut *source)
        .await?
        .iter()
        .map(|row| Ok(row.try_get("version")?))
        .collect()
}

/// A table of the source: its columns with their declared types, and the tables its foreign
/// keys refer to.
#[derive(Debug)]
struct SourceTable {
    name: String,
    columns: Vec<(String, String)>,
    parents: BTreeSet<String>,
}

/// Every table of the source but SQLite's own and the migrations', by name.
async fn source_tables(source: &mut AnyConnection) -> Result<Vec<SourceTable>, StoreError> {
    let names: Vec<String> = sqlx::query(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite!_%' ESCAPE '!' AND name <> '_sqlx_migrations' ORDER BY name",
    )
    .fetch_all(&mut *source)
    .await?
    .iter()
    .map(|row| row.try_get("name"))
    .collect::<Result<_, _>>()?;
    let mut tables = Vec::new();
    for name in names {
        let columns = sqlx::query("SELECT name, type FROM pragma_table_info($1) ORDER BY cid")
            .bind(&name)
            .fetch_all(&mut *source)
            .await?
            .iter()
            .map(|row| Ok((row.try_get("name")?, row.try_get("type")?)))
            .collect::<Result<_, sqlx::Error>>()?;
        let parents =
            sqlx::query("SELECT DISTINCT \"table\" AS parent FROM pragma_foreign_key_list($1)")
                .bind(&name)
                .fetch_all(&mut *source)
                .await?
                .iter()
                .map(|row| row.try_get("parent"))
                .collect::<Result<_, _>>()?;
        tables.push(SourceTable {
            name,
            columns,
            parents,
        });
    }
    Ok(tables)
}

/// `tables` with every table after those its foreign keys refer to (by name where that
/// leaves a choice), so that each row's parents are in the target before it. A table that
/// refers to itself is fine; tables that refer to each other in a circle cannot be ordered.
fn in_foreign_key_order(tables: Vec<SourceTable>) -> Result<Vec<SourceTable>, StoreError> {
    let names: BTreeSet<String> = tables.iter().map(|t| t.name.clone()).collect();
    let mut placed = BTreeSet::new();
    let mut ordered = Vec::with_capacity(tables.len());
    let mut pending = tables;
    while !pending.is_empty() {
        let (ready, waiting): (Vec<SourceTable>, Vec<SourceTable>) =
            pending.into_iter().partition(|table| {
                table.parents.iter().all(|parent| {
                    parent == &table.name || placed.contains(parent) || !names.contains(parent)
                })
            });
        if ready.is_empty() {
            let circle: Vec<&str> = waiting.iter().map(|t| t.name.as_str()).collect();
            return Err(invalid(
                "from",
                format!(
                    "tables {} refer to each other in a circle, so no order of copying satisfies their foreign keys",
                    circle.join(", ")
                ),
            ));
        }
        placed.extend(ready.iter().map(|t| t.name.clone()));
        ordered.extend(ready);
        pending = waiting;
    }
    Ok(ordered)
}

/// Every table of the target (the migrations' aside) with its columns and their types.
async fn target_tables(
    target: &Database,
) -> Result<BTreeMap<String, BTreeMap<String, String>>, StoreError> {
    let rows = sqlx::query(
        "SELECT c.table_name::text AS table_name, c.column_name::text AS column_name, c.data_type::text AS data_type \
         FROM information_schema.columns c \
         JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name \
         WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'",
    )
    .read_all(target)
    .await?;
    let mut tables: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for row in rows {
        let table: String = row.try_get("table_name")?;
        if table == MIGRATIONS_TABLE {
            continue;
        }
        tables
            .entry(table)
            .or_default()
            .insert(row.try_get("column_name")?, row.try_get("data_type")?);
    }
    Ok(tables)
}

/// What a column holds, the same on both sides: how its values are read and bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ColumnKind {
    /// SQLite's `INTEGER`, PostgreSQL's `bigint` (flags are 0/1 integers on both).
    Integer,
    /// `TEXT` on both.
    Text,
    /// SQLite's `BLOB`, PostgreSQL's `bytea`.
    Blob,
}

impl ColumnKind {
    /// The kind a column declared `sqlite` in the source and of type `postgres` in the
    /// target holds, if the two are the same kind.
    fn of(sqlite: &str, postgres: &str) -> Option<ColumnKind> {
        match (sqlite.to_ascii_uppercase().as_str(), postgres) {
            ("INTEGER", "bigint") => Some(ColumnKind::Integer),
            ("TEXT", "text") => Some(ColumnKind::Text),
            ("BLOB", "bytea") => Some(ColumnKind::Blob),
            _ => None,
        }
    }

    /// Its name in messages, and SQLite's `typeof` for the values it holds.
    fn sqlite_name(self) -> &'static str {
        match self {
            ColumnKind::Integer => "integer",
            ColumnKind::Text => "text",
            ColumnKind::Blob => "blob",
        }
    }
}

/// How one table is copied: its columns, each with its kind.
#[derive(Debug)]
struct TablePlan {
    name: String,
    columns: Vec<(String, ColumnKind)>,
}

impl TablePlan {
    /// How many rows one `INSERT` carries, within PostgreSQL's limit on parameters.
    fn rows_per_insert(&self) -> usize {
        (MAX_PARAMETERS / self.columns.len().max(1)).clamp(1, MAX_ROWS_PER_INSERT)
    }
}

/// The plan for each source table, in the source's order, once the two schemas are found to
/// hold the same tables with the same columns of the same kinds.
fn plan_copies(
    source: &[SourceTable],
    target: &BTreeMap<String, BTreeMap<String, String>>,
) -> Result<Vec<TablePlan>, StoreError> {
    let differ = |what: String| {
        invalid(
            "to",
            format!(
                "{what}, so the two schemas differ although their versions match; give a fresh database that only this reposync has migrated"
            ),
        )
    };
    if let Some(extra) = target
        .keys()
        .find(|name| !source.iter().any(|t| &t.name == *name))
    {
        return Err(differ(format!(
            "the target has a table {extra} that the source lacks"
        )));
    }
    let mut plans = Vec::with_capacity(source.len());
    for table in source {
        let Some(target_columns) = target.get(&table.name) else {
            return Err(differ(format!(
                "the target has no table {}, which the source has",
                table.name
            )));
        };
        if let Some(extra) = target_columns
            .keys()
            .find(|name| !table.columns.iter().any(|(c, _)| &c == name))
        {
            return Err(differ(format!(
                "the target's table {} has a column {extra} that the source's lacks",
                table.name
            )));
        }
        let mut columns = Vec::with_capacity(table.columns.len());
        for (column, declared) in &table.columns {
            let Some(target_type) = target_columns.get(column) else {
                return Err(differ(format!(
                    "the target's table {} has no column {column}",
                    table.name
                )));
            };
            let Some(kind) = ColumnKind::of(declared, target_type) else {
                return Err(differ(format!(
                    "column {}.{column} is {declared} in the source and {target_type} in the target",
                    table.name
                )));
            };
            columns.push((column.clone(), kind));
        }
        plans.push(TablePlan {
            name: table.name.clone(),
            columns,
        });
    }
    Ok(plans)
}

/// One value read from the source, typed for the target's column; `None` is NULL.
#[derive(Debug)]
enum Cell {
    Integer(Option<i64>),
    Text(Option<String>),
    Blob(Option<Vec<u8>>),
}

impl Cell {
    /// What the value costs in memory, roughly, to bound an `INSERT`.
    fn bytes(&self) -> usize {
        match self {
            Cell::Integer(_) => 8,
            Cell::Text(text) => text.as_ref().map_or(0, String::len),
            Cell::Blob(blob) => blob.as_ref().map_or(0, Vec::len),
        }
    }
}

/// Copies every row of one table, streamed from the source and sent in batches, and returns
/// how many there were. Any failure names the table; the caller's transaction is then
/// dropped, which rolls back every table copied before.
async fn copy_table(
    source: &mut AnyConnection,
    target: &mut AnyConnection,
    plan: &TablePlan,
) -> Result<u64, StoreError> {
    let failed = |e: sqlx::Error| StoreError::CopyFailed {
        table: plan.name.clone(),
        reason: describe(&e),
    };
    let column_list = plan
        .columns
        .iter()
        .map(|(name, _)| quoted(name))
        .collect::<Vec<_>>()
        .join(", ");
    let select = format!("SELECT {column_list} FROM {}", quoted(&plan.name));
    let mut rows = sqlx::query(&select).fetch(&mut *source);
    let mut batch: Vec<Vec<Cell>> = Vec::new();
    let mut batch_bytes = 0;
    let mut copied = 0;
    while let Some(row) = rows.try_next().await.map_err(failed)? {
        let cells = read_cells(&row, plan)?;
        batch_bytes += cells.iter().map(Cell::bytes).sum::<usize>();
        batch.push(cells);
        if batch.len() >= plan.rows_per_insert() || batch_bytes >= MAX_BYTES_PER_INSERT {
            copied += insert(target, plan, &column_list, std::mem::take(&mut batch))
                .await
                .map_err(failed)?;
            batch_bytes = 0;
        }
    }
    copied += insert(target, plan, &column_list, batch)
        .await
        .map_err(failed)?;
    Ok(copied)
}

/// A source row's values, each read as its column's kind. A value SQLite stored as another
/// kind (its columns accept anything) is refused, named by table and column, with the query
/// that finds it: the store could not read it either, and PostgreSQL would not take it.
fn read_cells(row: &AnyRow, plan: &TablePlan) -> Result<Vec<Cell>, StoreError> {
    let mut cells = Vec::with_capacity(plan.columns.len());
    for (index, (column, kind)) in plan.columns.iter().enumerate() {
        let stored = sqlite_type_name(row.try_get_raw(index)?.type_info().kind());
        let cell = match kind {
            ColumnKind::Integer => row.try_get(index).ok().map(Cell::Integer),
            ColumnKind::Text => row.try_get(index).ok().map(Cell::Text),
            ColumnKind::Blob => row.try_get(index).ok().map(Cell::Blob),
        };
        let Some(cell) = cell else {
            let expected = kind.sqlite_name();
            let problem = if stored == expected {
                format!("a {stored} value that cannot be read (text that is not UTF-8?)")
            } else {
                format!("a value stored as {stored} where {expected} is expected")
            };
            return Err(invalid(
                "from",
                format!(
                    "table {table}, column {column} holds {problem}, which PostgreSQL would not take; find it with `SELECT rowid, * FROM {table} WHERE typeof({column}) <> '{expected}'`, correct it, and run the copy again",
                    table = plan.name
                ),
            ));
        };
        cells.push(cell);
    }
    Ok(cells)
}

/// SQLite's `typeof` name for a value of `kind`, for messages that come with a query.
fn sqlite_type_name(kind: AnyTypeInfoKind) -> &'static str {
    match kind {
        AnyTypeInfoKind::Null => "null",
        AnyTypeInfoKind::Bool
        | AnyTypeInfoKind::SmallInt
        | AnyTypeInfoKind::Integer
        | AnyTypeInfoKind::BigInt => "integer",
        AnyTypeInfoKind::Real | AnyTypeInfoKind::Double => "real",
        AnyTypeInfoKind::Text => "text",
        AnyTypeInfoKind::Blob => "blob",
    }
}

/// Inserts `rows` into the plan's table with one multi-row `INSERT`, each value bound as its
/// column's type (a NULL too, so that PostgreSQL needs to guess nothing).
async fn insert(
    target: &mut AnyConnection,
    plan: &TablePlan,
    column_list: &str,
    rows: Vec<Vec<Cell>>,
) -> Result<u64, sqlx::Error> {
    if rows.is_empty() {
        return Ok(0);
    }
    let width = plan.columns.len();
    let values = (0..rows.len())
        .map(|row| {
            format!(
                "({})",
                crate::rows::placeholders_from(row * width + 1, width)
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "INSERT INTO {} ({column_list}) VALUES {values}",
        quoted(&plan.name)
    );
    let mut query = sqlx::query(&sql);
    for cell in rows.into_iter().flatten() {
        query = match cell {
            Cell::Integer(value) => query.bind(value),
            Cell::Text(value) => query.bind(value),
            Cell::Blob(value) => query.bind(value),
        };
    }
    Ok(query.execute(&mut *target).await?.rows_affected())
}

/// Moves every sequence that feeds a column of the target past the values copied into it, so
/// that the next row the server makes does not collide. reposync's ids are text and its
/// schema has no sequence today; this keeps a later migration that adds one from breaking the
/// copy silently.
async fn reset_sequences(target: &mut AnyConnection) -> Result<(), StoreError> {
    let fed = sqlx::query(
        "SELECT c.table_name::text AS table_name, c.column_name::text AS column_name, \
                pg_get_serial_sequence(quote_ident(c.table_name::text), c.column_name::text) AS sequence \
         FROM information_schema.columns c \
         WHERE c.table_schema = current_schema() \
           AND pg_get_serial_sequence(quote_ident(c.table_name::text), c.column_name::text) IS NOT NULL",
    )
    .fetch_all(&mut *target)
    .await?;
    for row in fed {
        let table: String = row.try_get("table_name")?;
        let column: String = row.try_get("column_name")?;
        let sequence: String = row.try_get("sequence")?;
        sqlx::query(&format!(
            "SELECT setval($1::regclass, GREATEST(COALESCE(MAX({}), 0) + 1, 1), false) AS next FROM {}",
            quoted(&column),
            quoted(&table)
        ))
        .bind(sequence)
        .fetch_one(&mut *target)
        .await?;
    }
    Ok(())
}

/// A table or column name as an SQL identifier, quoted, the same on both backends.
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A database error as a message, with PostgreSQL's detail (which names the key a foreign
/// key or a unique constraint refused) when it gave one.
fn describe(error: &sqlx::Error) -> String {
    if let sqlx::Error::Database(db) = error {
        let detail = db
            .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
            .and_then(|pg| pg.detail())
            .map(|detail| format!(" ({detail})"))
            .unwrap_or_default();
        return format!("{}{detail}", db.message());
    }
    error.to_string()
}

fn invalid(field: &str, message: String) -> StoreError {
    StoreError::Invalid {
        field: field.to_owned(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::redacted_url;

    #[test]
    fn a_password_never_shows_in_a_url() {
        for (url, shown) in [
            (
                "postgres://reposync:s3cret@db:5432/reposync",
                "postgres://reposync:***@db:5432/reposync",
            ),
            (
                "postgres://reposync:p@ss@db/reposync?sslmode=require",
                "postgres://reposync:***@db/reposync?sslmode=require",
            ),
            (
                "postgresql://db/reposync?user=r&password=s3cret",
                "postgresql://db/reposync?user=r&password=***",
            ),
            (
                "postgres://reposync@db/reposync",
                "postgres://reposync@db/reposync",
            ),
            ("sqlite:/data/reposync.db", "sqlite:/data/reposync.db"),
        ] {
            assert_eq!(redacted_url(url), shown);
        }
    }
}
