use serde::Serialize;

use crate::error::FieldError;

/// Longest name accepted, in bytes. File systems allow 255 bytes per path component and a
/// name becomes a file name (`<name>.yaml`), so we leave room for the extension.
const MAX_NAME_BYTES: usize = 200;

/// The display name of an entity (connector, application, service, …), which is also its path
/// component in the YAML tree.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct EntityName(String);

impl EntityName {
    /// Parses a name, reporting problems against the field `name`.
    pub fn parse(text: &str) -> Result<Self, FieldError> {
        check_name(text)
            .map(|()| Self(text.to_owned()))
            .map_err(|m| FieldError::new("name", m))
    }

    /// The name as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn check_name(text: &str) -> Result<(), String> {
    if text.is_empty() {
        return Err("must not be empty".into());
    }
    if text.len() > MAX_NAME_BYTES {
        return Err(format!(
            "is {} bytes long; the limit is {MAX_NAME_BYTES}",
            text.len()
        ));
    }
    if text.starts_with(' ') || text.ends_with(' ') {
        return Err("must not start or end with a space".into());
    }
    if text == "." || text == ".." {
        return Err(format!("{text:?} is not allowed as a name"));
    }
    // A name becomes a folder or file name in the repository, where git refuses `.git`.
    if crate::path::reads_as_dot_git(text) {
        return Err(format!(
            "{text:?} is not allowed as a name: git reads it as its own `.git` folder"
        ));
    }
    for c in text.chars() {
        match c {
            '/' | '\\' => return Err(format!("must not contain {c:?} (it separates paths)")),
            '\0' => return Err("must not contain a NUL character".into()),
            c if deceptive(c).is_some() => {
                return Err(format!(
                    "must not contain {} (found U+{:04X}): it changes how the name reads without being seen; type the name again without it",
                    deceptive(c).unwrap_or_default(),
                    c as u32
                ));
            }
            c if c.is_control() => {
                return Err(format!(
                    "must not contain the control character U+{:04X}",
                    c as u32
                ));
            }
            c if is_emoticon(c) => {
                return Err(format!(
                    "must not contain emoji from the Emoticons block (found U+{:04X})",
                    c as u32
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// What a character is when it changes how a name is shown without showing itself: a
/// bidirectional control, which can make `gpj.exe` read as `exe.jpg` (Trojan Source), or a
/// zero-width character, which makes two names that look alike differ.
fn deceptive(c: char) -> Option<&'static str> {
    match c {
        '\u{061C}'
        | '\u{200E}'
        | '\u{200F}'
        | '\u{202A}'..='\u{202E}'
        | '\u{2066}'..='\u{2069}' => Some("a bidirectional control character"),
        '\u{00AD}'
        | '\u{180E}'
        | '\u{200B}'..='\u{200D}'
        | '\u{2060}'..='\u{2064}'
        | '\u{FEFF}' => Some("an invisible character"),
        _ => None,
    }
}

/// The unique name of a secret. Same rules as an entity name: secrets are referenced from YAML
/// as `<manager>:<name>`, and the name part must survive being a path-like reference.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct SecretName(String);

impl SecretName {
    /// Parses a secret name, reporting problems against the field `name`.
    pub fn parse(text: &str) -> Result<Self, FieldError> {
        check_name(text)
            .map(|()| Self(text.to_owned()))
            .map_err(|m| FieldError::new("name", m))
    }

    /// The name as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A repository's slug within an account (`config`, `platform-yaml`), as Bitbucket spells it.
#[derive(Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct RepoSlug(String);

impl RepoSlug {
    /// Parses a slug; a trailing `.git` is accepted and dropped, since users copy it from clone
    /// URLs.
    pub fn parse(text: &str) -> Result<Self, FieldError> {
        let err = |m: &str| FieldError::new("repo", m);
        let slug = text.strip_suffix(".git").unwrap_or(text);
        if slug.is_empty() {
            return Err(err("must not be empty"));
        }
        if slug.len() > 128 {
            return Err(err("is longer than 128 characters"));
        }
        if slug.starts_with('.') {
            return Err(err("must not start with '.'"));
        }
        if let Some(bad) = slug
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        {
            return Err(FieldError::new(
                "repo",
                format!(
                    "contains {bad:?}; a repository slug uses only letters, digits, '-', '_' and '.'"
                ),
            ));
        }
        Ok(Self(slug.to_owned()))
    }

    /// The slug, without `.git`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// True for characters in the Unicode Emoticons block (U+1F600–U+1F64F), which names refuse.
///
/// Harness rejected these in names and so do we: repositories adopted from it never hold them,
/// and they break tools that split paths on byte boundaries.
pub fn is_emoticon(c: char) -> bool {
    ('\u{1F600}'..='\u{1F64F}').contains(&c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names_with_spaces_and_unicode() {
        for ok in [
            "Bitbucket Config",
            "prod-eu",
            "Ünïcödé repo",
            "a.b",
            "x_y (1)",
        ] {
            assert_eq!(EntityName::parse(ok).map(|n| n.0), Ok(ok.to_owned()));
        }
    }

    #[test]
    fn rejects_each_forbidden_shape_with_a_reason() {
        let cases = [
            ("", "empty"),
            ("a/b", "'/'"),
            ("a\\b", "'\\\\'"),
            ("a\0b", "NUL"),
            (" lead", "space"),
            ("trail ", "space"),
            (".", "not allowed"),
            ("..", "not allowed"),
            (".git", "not allowed"),
            (".Git", "not allowed"),
            ("git~1", "not allowed"),
            (".git.", "not allowed"),
            ("happy \u{1F600}", "U+1F600"),
            ("tab\there", "control"),
            (
                "invoice\u{202E}fdp.exe",
                "bidirectional control character (found U+202E)",
            ),
            ("a\u{2066}b", "bidirectional"),
            ("a\u{200F}b", "bidirectional"),
            ("To\u{200B}do", "invisible character (found U+200B)"),
            ("a\u{200D}b", "invisible"),
            ("a\u{FEFF}", "invisible"),
            ("soft\u{00AD}hyphen", "invisible"),
        ];
        for (input, expected) in cases {
            let err = EntityName::parse(input).expect_err(input);
            assert_eq!(err.field, "name");
            assert!(err.message.contains(expected), "{input:?}: {}", err.message);
        }
    }

    #[test]
    fn emoji_outside_the_emoticons_block_are_allowed() {
        // U+1F680 (rocket) is in Transport and Map Symbols, not Emoticons.
        assert!(EntityName::parse("ship \u{1F680}").is_ok());
        assert!(EntityName::parse("edge \u{1F64F}").is_err());
        assert!(EntityName::parse("edge \u{1F650}").is_ok());
    }

    #[test]
    fn deserialising_goes_through_the_parser() {
        let err = serde_json::from_str::<EntityName>("\"a/b\"").expect_err("must fail");
        assert!(err.to_string().contains("'/'"));
    }

    #[test]
    fn repo_slug_drops_dot_git_and_rejects_paths() {
        assert_eq!(
            RepoSlug::parse("config.git").map(|s| s.0),
            Ok("config".into())
        );
        assert!(RepoSlug::parse("acme/config").is_err());
        assert!(RepoSlug::parse(".git").is_err());
    }
}

crate::newtype::parsed_string_traits!(EntityName);

crate::newtype::parsed_string_traits!(SecretName);

crate::newtype::parsed_string_traits!(RepoSlug);
