use serde::Serialize;

use crate::error::FieldError;

/// A delegate selector: trimmed and lower-cased, so that matching is exact afterwards.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Selector(String);

impl Selector {
    /// Parses a selector, normalising case and surrounding whitespace.
    pub fn parse(text: &str) -> Result<Self, FieldError> {
        let err = |m: String| FieldError::new("selectors", m);
        let normalised = text.trim().to_lowercase();
        if normalised.is_empty() {
            return Err(err("a selector must not be empty".into()));
        }
        if normalised.len() > 128 {
            return Err(err(format!(
                "selector {normalised:?} is longer than 128 bytes"
            )));
        }
        if let Some(c) = normalised.chars().find(|c| c.is_control() || *c == ',') {
            return Err(err(format!(
                "selector {normalised:?} contains {c:?}; give each selector separately"
            )));
        }
        Ok(Self(normalised))
    }

    /// The normalised selector.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_and_lowercases() {
        assert_eq!(
            Selector::parse("  EU-West ").map(|s| s.0),
            Ok("eu-west".into())
        );
    }

    #[test]
    fn rejects_empty_and_lists() {
        assert!(Selector::parse("   ").is_err());
        assert!(
            Selector::parse("a,b")
                .expect_err("comma")
                .message
                .contains("separately")
        );
    }
}

crate::newtype::parsed_string_traits!(Selector);
