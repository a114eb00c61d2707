//! A JSON value together with the path it was reached by, so that every error names its field.

use serde_json::Value;

use super::PayloadError;

/// A JSON value and its path from the body's root (`push.changes[1].new`).
#[derive(Debug, Clone)]
pub(super) struct At<'a> {
    value: &'a Value,
    path: String,
}

type Result<T> = std::result::Result<T, PayloadError>;

impl<'a> At<'a> {
    /// The body's root object.
    pub(super) fn root(value: &'a Value) -> Self {
        Self {
            value,
            path: String::new(),
        }
    }

    pub(super) fn path(&self) -> &str {
        &self.path
    }

    pub(super) fn value(&self) -> &'a Value {
        self.value
    }

    pub(super) fn error(&self, problem: impl Into<String>) -> PayloadError {
        PayloadError::field(self.path.clone(), problem)
    }

    /// An error for the member `key` of this object.
    pub(super) fn child_error(&self, key: &str, problem: impl Into<String>) -> PayloadError {
        PayloadError::field(self.child_path(key), problem)
    }

    /// The error for a member `key` that this object lacks.
    pub(super) fn missing(&self, key: &str) -> PayloadError {
        self.child_error(key, "is missing")
    }

    fn child_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// The member `key`, or `None` when it is absent or null; an error when this is not an
    /// object.
    pub(super) fn opt(&self, key: &str) -> Result<Option<At<'a>>> {
        let Value::Object(map) = self.value else {
            return Err(self.error(format!("must be an object, not {}", describe(self.value))));
        };
        Ok(map.get(key).filter(|v| !v.is_null()).map(|value| At {
            value,
            path: self.child_path(key),
        }))
    }

    /// The member `key`, which must be present and not null.
    pub(super) fn req(&self, key: &str) -> Result<At<'a>> {
        match self.opt(key)? {
            Some(at) => Ok(at),
            None => {
                let path = self.child_path(key);
                let problem = match self.value.get(key) {
                    Some(Value::Null) => "is null",
                    _ => "is missing",
                };
                Err(PayloadError::field(path, problem))
            }
        }
    }

    /// This value as a string.
    pub(super) fn str(&self) -> Result<&'a str> {
        self.value
            .as_str()
            .ok_or_else(|| self.error(format!("must be a string, not {}", describe(self.value))))
    }

    /// This value as a string that is not empty or blank.
    pub(super) fn non_empty_str(&self) -> Result<&'a str> {
        let s = self.str()?;
        if s.trim().is_empty() {
            return Err(self.error("must not be empty"));
        }
        Ok(s)
    }

    /// This value as a boolean.
    pub(super) fn bool(&self) -> Result<bool> {
        self.value.as_bool().ok_or_else(|| {
            self.error(format!(
                "must be true or false, not {}",
                describe(self.value)
            ))
        })
    }

    /// The member `key` as a boolean, `false` when absent or null.
    pub(super) fn flag(&self, key: &str) -> Result<bool> {
        match self.opt(key)? {
            Some(at) => at.bool(),
            None => Ok(false),
        }
    }

    /// The elements of this array, each with its indexed path.
    pub(super) fn array(&self) -> Result<Vec<At<'a>>> {
        let Value::Array(items) = self.value else {
            return Err(self.error(format!("must be an array, not {}", describe(self.value))));
        };
        Ok(items
            .iter()
            .enumerate()
            .map(|(i, value)| At {
                value,
                path: format!("{}[{i}]", self.path),
            })
            .collect())
    }
}

/// A value's JSON type, with its article, for messages.
pub(super) fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A payload string quoted for a message, cut short so that a huge value cannot flood a log.
pub(super) fn quote(s: &str) -> String {
    const MAX: usize = 80;
    if s.chars().count() <= MAX {
        format!("{s:?}")
    } else {
        let head: String = s.chars().take(MAX).collect();
        format!("{head:?}…")
    }
}
