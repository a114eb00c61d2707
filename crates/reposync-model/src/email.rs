use serde::Serialize;

use crate::error::FieldError;

/// An e-mail address good enough to be a git author: `local@domain.tld`.
///
/// Git itself accepts almost anything; Bitbucket links commits to users by this address, so we
/// insist on the shape that can match a real account.
#[derive(Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct EmailAddress(String);

impl EmailAddress {
    /// Parses an address, reporting problems against the field `author_email`.
    pub fn parse(text: &str) -> Result<Self, FieldError> {
        let err = |m: &str| FieldError::new("author_email", m);
        if text.len() > 254 {
            return Err(err("is longer than 254 characters"));
        }
        let Some((local, domain)) = text.rsplit_once('@') else {
            return Err(err("is not an e-mail address: it has no '@'"));
        };
        if local.is_empty() || local.len() > 64 {
            return Err(err("needs 1 to 64 characters before the '@'"));
        }
        // These would break the `Name <email>` form of a git ident, or are never valid unquoted.
        if let Some(c) = local
            .chars()
            .find(|c| c.is_whitespace() || c.is_control() || "<>()[]\\,;:\"@".contains(*c))
        {
            return Err(FieldError::new(
                "author_email",
                format!("contains {c:?} before the '@', which an address may not"),
            ));
        }
        let labels: Vec<&str> = domain.split('.').collect();
        if labels.len() < 2 {
            return Err(err(
                "needs a domain with a dot after the '@' (for example example.com)",
            ));
        }
        for label in labels {
            let valid = !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_alphanumeric() || c == '-');
            if !valid {
                return Err(FieldError::new(
                    "author_email",
                    format!("has an invalid domain {domain:?} after the '@'"),
                ));
            }
        }
        Ok(Self(text.to_owned()))
    }

    /// The address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_addresses() {
        for ok in [
            "ops@example.com",
            "first.last+sync@sub.example.co.uk",
            "a@b.io",
        ] {
            assert!(EmailAddress::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_malformed_addresses() {
        for bad in [
            "",
            "nobody",
            "@example.com",
            "a@",
            "a@localhost",
            "a b@x.com",
            "a@-x.com",
            "a@x..com",
            "<a@x.com>",
        ] {
            let err = EmailAddress::parse(bad).expect_err(bad);
            assert_eq!(err.field, "author_email");
        }
    }
}

crate::newtype::parsed_string_traits!(EmailAddress);
