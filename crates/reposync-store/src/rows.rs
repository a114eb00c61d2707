//! What every module's SQL uses: new row ids, numbered parameters, and JSON columns.

use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::error::StoreError;

/// A new row id. Version 7 ids sort by creation (within a process, strictly), so listings
/// ordered by time and then id keep the order things happened in the same millisecond.
pub(crate) fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
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
