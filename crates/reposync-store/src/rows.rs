//! What every module's SQL uses: new row ids, numbered parameters, and JSON columns.

use reposync_model::{
    AttemptId, BranchId, ChangesetId, ConnectorId, LinkId, ObjectId, SyncErrorId, TaskId,
};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::error::StoreError;

/// An id a row is made with or read back as: a typed row id of the model, or a bare string
/// for the tables whose ids nothing outside the store names (secrets, tokens, deliveries).
pub(crate) trait RowId: Sized {
    fn from_string(id: String) -> Self;
}

impl RowId for String {
    fn from_string(id: String) -> Self {
        id
    }
}

macro_rules! row_ids {
    ($($type:ty),+) => {$(
        impl RowId for $type {
            fn from_string(id: String) -> Self {
                <$type>::new(id)
            }
        }
    )+};
}

row_ids!(
    AttemptId,
    BranchId,
    ChangesetId,
    ConnectorId,
    LinkId,
    SyncErrorId,
    TaskId
);

/// A new row id. Version 7 ids sort by creation (within a process, strictly), so listings
/// ordered by time and then id keep the order things happened in the same millisecond.
pub(crate) fn new_id<I: RowId>() -> I {
    I::from_string(uuid::Uuid::now_v7().to_string())
}

/// The id in `column` of a row.
pub(crate) fn id_column<I: RowId>(row: &AnyRow, column: &str) -> Result<I, StoreError> {
    Ok(I::from_string(row.try_get(column)?))
}

/// The id in a nullable `column` of a row.
pub(crate) fn optional_id_column<I: RowId>(
    row: &AnyRow,
    column: &str,
) -> Result<Option<I>, StoreError> {
    Ok(row
        .try_get::<Option<String>, _>(column)?
        .map(I::from_string))
}

/// The git object id in `column` of a row of `table`. One that does not parse was not
/// written by reposync, and the row is corrupt.
pub(crate) fn object_id_column(
    row: &AnyRow,
    table: &str,
    column: &str,
) -> Result<ObjectId, StoreError> {
    parse_object_id(table, column, &row.try_get::<String, _>(column)?)
}

/// The git object id in a nullable `column` of a row of `table`.
pub(crate) fn optional_object_id_column(
    row: &AnyRow,
    table: &str,
    column: &str,
) -> Result<Option<ObjectId>, StoreError> {
    row.try_get::<Option<String>, _>(column)?
        .map(|text| parse_object_id(table, column, &text))
        .transpose()
}

/// A git object id read from `table.column`; one that does not parse is corrupt data.
pub(crate) fn parse_object_id(
    table: &str,
    column: &str,
    text: &str,
) -> Result<ObjectId, StoreError> {
    ObjectId::parse(text)
        .map_err(|e| StoreError::Corrupt(format!("{table}.{column}: {}", e.message)))
}

/// `$first, …, $(first + n - 1)`: numbered parameters for an `IN (…)` list.
pub(crate) fn placeholders_from(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn json_column<T: for<'de> Deserialize<'de>>(
    row: &AnyRow,
    column: &str,
) -> Result<T, StoreError> {
    let text: String = row.try_get(column)?;
    serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
}

pub(crate) fn to_json(value: &impl Serialize) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}
