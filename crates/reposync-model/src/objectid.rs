//! Git object ids: the commits reposync reads, pushes on top of and remembers.

use serde::Serialize;

use crate::error::FieldError;
use crate::newtype::parsed_string_traits;

/// A full git object id in lower-case hexadecimal: 40 digits (SHA-1) or 64 (SHA-256).
///
/// Only full ids are accepted, never an abbreviation or a revision expression such as `HEAD`
/// or `main~1`, so that an id handed to git names exactly one object and can never be read as
/// an option.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ObjectId(String);

impl ObjectId {
    /// Parses an object id, reporting problems against the field `commit`.
    pub fn parse(text: &str) -> Result<Self, FieldError> {
        let full_length = text.len() == 40 || text.len() == 64;
        let hex = text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if full_length && hex {
            Ok(ObjectId(text.to_owned()))
        } else {
            Err(FieldError::new(
                "commit",
                format!("{text:?} is not a full object id: 40 or 64 lower-case hexadecimal digits"),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }

    /// The first seven digits, as git abbreviates ids for people.
    pub fn short(&self) -> &str {
        &self.0[..7]
    }
}

impl AsRef<str> for ObjectId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for ObjectId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<String> for ObjectId {
    fn eq(&self, other: &String) -> bool {
        self.0 == *other
    }
}

impl PartialEq<&str> for ObjectId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

parsed_string_traits!(ObjectId);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_full_lower_case_ids_of_both_hashes() {
        for ok in ["a".repeat(40), "0123456789abcdef".repeat(4)] {
            let id = ObjectId::parse(&ok).expect(&ok);
            assert_eq!(id.as_str(), ok);
            assert_eq!(id.short(), &ok[..7]);
        }
    }

    #[test]
    fn refuses_abbreviations_revisions_upper_case_and_options() {
        for bad in [
            String::new(),
            "HEAD".to_owned(),
            "a".repeat(7),
            "a".repeat(39),
            "a".repeat(41),
            "A".repeat(40),
            "g".repeat(40),
            format!("-{}", "a".repeat(39)),
            format!("{}~1", "a".repeat(38)),
        ] {
            let err = ObjectId::parse(&bad).expect_err(&bad);
            assert_eq!(err.field, "commit");
            assert!(err.message.contains("full object id"), "{}", err.message);
        }
    }

    #[test]
    fn json_is_the_bare_id_and_reading_it_parses() {
        let id = ObjectId::parse(&"b".repeat(40)).unwrap();
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{}\"", "b".repeat(40)));
        assert_eq!(serde_json::from_str::<ObjectId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<ObjectId>("\"HEAD\"").is_err());
    }
}
