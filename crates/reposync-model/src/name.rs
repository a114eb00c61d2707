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

/// A script whose letters are confused with another's: Latin `o`, Cyrillic `о` and Greek `ο`
/// are three letters that look like one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Script {
    Latin,
    Greek,
    Cyrillic,
    Armenian,
    Georgian,
    Cherokee,
}

impl Script {
    fn as_str(self) -> &'static str {
        match self {
            Script::Latin => "Latin",
            Script::Greek => "Greek",
            Script::Cyrillic => "Cyrillic",
            Script::Armenian => "Armenian",
            Script::Georgian => "Georgian",
            Script::Cherokee => "Cherokee",
        }
    }

    /// The script of a letter, by its Unicode block, or `None` for everything else: digits,
    /// punctuation, spaces, emoji and combining marks (Unicode's Common and Inherited), and
    /// letters of scripts that do not pass for Latin, Greek or Cyrillic (CJK, Arabic, …),
    /// which people mix with Latin on purpose (`Web サービス`).
    fn of(c: char) -> Option<Script> {
        if !c.is_alphabetic() {
            return None;
        }
        Some(match c {
            'A'..='Z'
            | 'a'..='z'
            | '\u{00AA}'
            | '\u{00BA}'
            | '\u{00C0}'..='\u{00D6}'
            | '\u{00D8}'..='\u{00F6}'
            | '\u{00F8}'..='\u{02AF}'
            | '\u{1E00}'..='\u{1EFF}'
            | '\u{2C60}'..='\u{2C7F}'
            | '\u{A720}'..='\u{A7FF}'
            | '\u{AB30}'..='\u{AB5A}'
            | '\u{FB00}'..='\u{FB06}'
            | '\u{FF21}'..='\u{FF3A}'
            | '\u{FF41}'..='\u{FF5A}' => Script::Latin,
            '\u{0370}'..='\u{03FF}' | '\u{1F00}'..='\u{1FFF}' => Script::Greek,
            '\u{0400}'..='\u{052F}'
            | '\u{1C80}'..='\u{1C8F}'
            | '\u{2DE0}'..='\u{2DFF}'
            | '\u{A640}'..='\u{A69F}' => Script::Cyrillic,
            '\u{0531}'..='\u{058F}' | '\u{FB13}'..='\u{FB17}' => Script::Armenian,
            '\u{10A0}'..='\u{10FF}' | '\u{1C90}'..='\u{1CBF}' | '\u{2D00}'..='\u{2D2F}' => {
                Script::Georgian
            }
            '\u{13A0}'..='\u{13FF}' | '\u{AB70}'..='\u{ABBF}' => Script::Cherokee,
            _ => return None,
        })
    }
}

/// A warning when `name` mixes letters of more than one of the scripts whose letters look
/// alike (Latin, Greek, Cyrillic, Armenian, Georgian, Cherokee): `Tоdo` with a Cyrillic `о`
/// reads as `Todo` and is another name. It is a warning and not a refusal, because a name
/// may mix scripts on purpose (`Москва prod`); the words say which letter to look at.
pub fn mixed_script_warning(name: &str) -> Option<String> {
    let mut first: Option<Script> = None;
    for c in name.chars() {
        let Some(script) = Script::of(c) else {
            continue;
        };
        match first {
            None => first = Some(script),
            Some(seen) if seen == script => {}
            Some(seen) => {
                return Some(format!(
                    "the name {name:?} mixes {} and {} letters ({c:?}, U+{:04X}, is {}): it can pass for another name that looks the same; if that is not meant, type the name again in one script",
                    seen.as_str(),
                    script.as_str(),
                    c as u32,
                    script.as_str()
                ));
            }
        }
    }
    None
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
    fn a_name_mixing_look_alike_scripts_gets_a_warning_naming_the_letter() {
        let warning = mixed_script_warning("T\u{043E}do").expect("Cyrillic о among Latin");
        assert_eq!(
            warning,
            "the name \"Tоdo\" mixes Latin and Cyrillic letters ('о', U+043E, is Cyrillic): it can pass for another name that looks the same; if that is not meant, type the name again in one script"
        );
        // Greek omicron, Armenian օ, and a Latin letter inside a Cyrillic word.
        assert!(mixed_script_warning("T\u{03BF}do").is_some_and(|w| w.contains("Latin and Greek")));
        assert!(mixed_script_warning("t\u{0585}do").is_some_and(|w| w.contains("Armenian")));
        assert!(
            mixed_script_warning("\u{041C}\u{043E}c\u{043A}\u{0432}\u{0430}")
                .is_some_and(|w| w.contains("Cyrillic and Latin"))
        );
        // The name is still accepted: this is a warning.
        assert!(EntityName::parse("T\u{043E}do").is_ok());
    }

    #[test]
    fn one_script_with_digits_punctuation_emoji_and_marks_is_not_mixed() {
        for name in [
            "Todo",
            "prod-eu (2)",
            "Ünïcödé repo",
            "e\u{0301}te\u{0301}",
            "ship \u{1F680}",
            "\u{041C}\u{043E}\u{0441}\u{043A}\u{0432}\u{0430}-1",
            "\u{0391}\u{03B8}\u{03AE}\u{03BD}\u{03B1}",
            "Web \u{30B5}\u{30FC}\u{30D3}\u{30B9}",
            "\u{00B5}s latency",
        ] {
            assert_eq!(mixed_script_warning(name), None, "{name:?}");
        }
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
