//! A delegate's name, as it travels in the `X-Reposync-Delegate` header.

use std::fmt;

/// Longest delegate name accepted, in bytes: room for a fully qualified host name's first
/// labels, short enough to read in a table.
const MAX_NAME_BYTES: usize = 128;

/// A delegate's name: 1 to 128 ASCII letters, digits, `.`, `-` and `_`, starting with a
/// letter or digit. Host names qualify, so a host name is the default; the name is sent in an
/// HTTP header, which is why it is kept to plain ASCII.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DelegateName(String);

/// Why a text is not a delegate name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid delegate name {name:?}: {reason}")]
pub struct InvalidDelegateName {
    pub name: String,
    pub reason: String,
}

impl DelegateName {
    /// Parses a name, trimmed of surrounding whitespace.
    pub fn parse(text: &str) -> Result<DelegateName, InvalidDelegateName> {
        let name = text.trim();
        let invalid = |reason: String| InvalidDelegateName {
            name: name.to_owned(),
            reason,
        };
        if name.is_empty() {
            return Err(invalid("it is empty".into()));
        }
        if name.len() > MAX_NAME_BYTES {
            return Err(invalid(format!(
                "it is {} bytes long; the limit is {MAX_NAME_BYTES}",
                name.len()
            )));
        }
        if let Some(c) = name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
        {
            return Err(invalid(format!(
                "it contains {c:?}; use ASCII letters, digits, '.', '-' and '_'"
            )));
        }
        if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            return Err(invalid("it must start with a letter or a digit".into()));
        }
        Ok(DelegateName(name.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DelegateName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_are_delegate_names() {
        for name in ["build-01", "eu-west.example.com", "DELEGATE_2", "7a"] {
            assert_eq!(
                DelegateName::parse(name).map(|n| n.to_string()),
                Ok(name.to_owned())
            );
        }
        assert_eq!(
            DelegateName::parse("  padded \n").map(|n| n.to_string()),
            Ok("padded".to_owned())
        );
    }

    #[test]
    fn names_that_cannot_travel_in_a_header_are_refused() {
        for (name, says) in [
            ("", "empty"),
            ("two words", "' '"),
            ("caf\u{e9}", "'\u{e9}'"),
            ("line\nbreak", "'\\n'"),
            ("-leading", "start with"),
            ("a,b", "','"),
        ] {
            let error = DelegateName::parse(name).expect_err(name);
            assert!(error.to_string().contains(says), "{name:?}: {error}");
        }
        assert!(DelegateName::parse(&"a".repeat(129)).is_err());
        assert!(DelegateName::parse(&"a".repeat(128)).is_ok());
    }
}
