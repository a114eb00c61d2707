//! Encrypted Text secrets (passwords and tokens) as users create them, from the API or the web
//! UI's inline "create one" alike; the store seals the value before it reaches SQL.

use reposync_api::SecretValue;
use reposync_model::SecretName;
use reposync_store::{SecretKind, SecretRecord, Store};

use crate::error::CoreError;

/// Longest value accepted, in bytes.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;

/// Creates an Encrypted Text secret.
pub async fn create_text(
    store: &Store,
    name: &str,
    value: &SecretValue,
) -> Result<SecretRecord, CoreError> {
    let name = SecretName::parse(name)?;
    let record = store
        .create_secret(&name, SecretKind::Text, text_value(value, "value")?, None)
        .await?;
    tracing::info!(secret = %name, "created text secret");
    Ok(record)
}

/// A text secret's value as git will read it: one line, not empty, not huge. Reported
/// against `field`.
pub fn text_value<'a>(value: &'a SecretValue, field: &str) -> Result<&'a [u8], CoreError> {
    let text = value.expose();
    if text.is_empty() {
        return Err(CoreError::invalid(field, "must not be empty"));
    }
    if text.len() > MAX_VALUE_BYTES {
        return Err(CoreError::invalid(
            field,
            format!("is longer than {MAX_VALUE_BYTES} bytes"),
        ));
    }
    // git reads credentials line by line: a line break would cut the token short and turn the
    // rest into fields of its own.
    if text.contains(['\r', '\n', '\0']) {
        return Err(CoreError::invalid(
            field,
            "must be one line: it contains a line break or NUL",
        ));
    }
    Ok(text.as_bytes())
}
