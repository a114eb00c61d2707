//! Paths reposync can represent: the one rule that the API, reads from Git and the git layer
//! all apply to a repository path.
//!
//! Git stores names as bytes and accepts almost anything in a tree, including names that no
//! checkout can hold (`.git`, `..`) and names that are not text. reposync keeps paths as UTF-8
//! strings, writes them into trees and onto other people's disks, and shows them in messages,
//! so a path must be text, relative, made of ordinary components, and never name git's own
//! directory under any spelling a file system would treat as `.git`. A path that breaks the
//! rule is refused where it comes in (the API), reported as an error about that one entry where
//! it is read (a commit from Git), and never written (the git layer).
//!
//! Whether the path also fits the Configuration as Code layout is [`crate::tree::classify`]'s
//! question, asked after this one.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A repository path that reposync can represent: relative, `/`-separated, UTF-8, and made of
/// components that are neither empty, `.`, `..`, nor any spelling of `.git`, with no control
/// characters or backslashes.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RepoPath(String);

/// Why a repository path or tree entry cannot be represented by reposync.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
pub enum PathProblem {
    /// The name is not valid UTF-8.
    NotUtf8,
    /// The path is empty.
    Empty,
    /// A leading, trailing or doubled `/`.
    EmptyComponent,
    /// A `.` or `..` component, which would point outside the path's own folder.
    DotComponent { component: String },
    /// `.git` in some letter case, or a name that Windows (NTFS) or macOS (HFS+) file systems
    /// treat as `.git`.
    GitComponent { component: String },
    /// A control character (U+0000–U+001F, U+007F–U+009F).
    ControlCharacter { character: char },
    /// A backslash, which Windows reads as a folder separator.
    Backslash,
    /// A symbolic link: reposync syncs regular files only.
    Symlink,
    /// A submodule (a gitlink entry): reposync syncs regular files only.
    Submodule,
}

impl fmt::Display for PathProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathProblem::NotUtf8 => f.write_str("its name is not valid UTF-8"),
            PathProblem::Empty => f.write_str("it is empty"),
            PathProblem::EmptyComponent => {
                f.write_str("it has an empty component (a leading, trailing or doubled `/`)")
            }
            PathProblem::DotComponent { component } => {
                write!(f, "it has a `{component}` component")
            }
            PathProblem::GitComponent { component } if component.eq_ignore_ascii_case(".git") => {
                write!(
                    f,
                    "it has a `{component}` component, git's own folder in some letter case"
                )
            }
            PathProblem::GitComponent { component } => write!(
                f,
                "it has a component {} that Windows or macOS file systems read as `.git`",
                escape_path(component.as_bytes())
            ),
            PathProblem::ControlCharacter { character } => write!(
                f,
                "it holds the control character U+{:04X}",
                u32::from(*character)
            ),
            PathProblem::Backslash => {
                f.write_str("it holds a backslash, which Windows reads as a folder separator")
            }
            PathProblem::Symlink => {
                f.write_str("it is a symbolic link; reposync syncs regular files only")
            }
            PathProblem::Submodule => {
                f.write_str("it is a submodule (a gitlink); reposync syncs regular files only")
            }
        }
    }
}

impl RepoPath {
    /// Parses a path given as text.
    pub fn parse(text: &str) -> Result<RepoPath, PathProblem> {
        if text.is_empty() {
            return Err(PathProblem::Empty);
        }
        for component in text.split('/') {
            check_component(component)?;
        }
        Ok(RepoPath(text.to_owned()))
    }

    /// Parses a path as git stores it: bytes, which must be UTF-8.
    pub fn from_bytes(bytes: &[u8]) -> Result<RepoPath, PathProblem> {
        let text = std::str::from_utf8(bytes).map_err(|_| PathProblem::NotUtf8)?;
        RepoPath::parse(text)
    }

    /// The path as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path as an owned string.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for RepoPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RepoPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl<'de> Deserialize<'de> for RepoPath {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <String as Deserialize>::deserialize(d)?;
        RepoPath::parse(&text).map_err(|problem| {
            serde::de::Error::custom(format!("not a path reposync can represent: {problem}"))
        })
    }
}

impl Serialize for RepoPath {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// Checks one component of a path (a file or folder name).
pub(crate) fn check_component(component: &str) -> Result<(), PathProblem> {
    match component {
        "" => return Err(PathProblem::EmptyComponent),
        "." | ".." => {
            return Err(PathProblem::DotComponent {
                component: component.to_owned(),
            });
        }
        _ => {}
    }
    if let Some(character) = component.chars().find(|c| c.is_control()) {
        return Err(PathProblem::ControlCharacter { character });
    }
    if component.contains('\\') {
        return Err(PathProblem::Backslash);
    }
    if reads_as_dot_git(component) {
        return Err(PathProblem::GitComponent {
            component: component.to_owned(),
        });
    }
    Ok(())
}

/// Whether a file system that git supports would open this name as `.git`.
///
/// The checks follow git's own `verify_path` protections (core.protectNTFS, core.protectHFS),
/// without its hashed 8.3 short names: letter case is ignored everywhere that matters; HFS+
/// ignores some invisible code points when comparing names; NTFS drops trailing dots and
/// spaces and reads `name:stream` as `name`, and gives `.git` the short name `GIT~1`.
pub(crate) fn reads_as_dot_git(component: &str) -> bool {
    let visible: String = component
        .chars()
        .filter(|c| !is_hfs_ignorable(*c))
        .collect::<String>()
        .to_ascii_lowercase();
    let before_stream = visible.split(':').next().unwrap_or_default();
    let trimmed = before_stream.trim_end_matches(['.', ' ']);
    trimmed == ".git" || trimmed == "git~1"
}

/// The code points HFS+ leaves out when it compares names (git's `is_hfs_dotgit` list).
fn is_hfs_ignorable(c: char) -> bool {
    matches!(c,
        '\u{200C}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{206A}'..='\u{206F}' | '\u{FEFF}')
}

/// A path as bytes, shown as text that names it unambiguously: UTF-8 as it is, a backslash
/// doubled, ASCII control characters and bytes that are not UTF-8 as `\xNN`, other control
/// characters as `\u{NNNN}`.
///
/// The result never equals a path that [`RepoPath`] accepts unless it is that path: valid
/// paths hold no backslash, and every escape starts with one. It is how an entry that reposync
/// cannot represent is named in sync errors, and the key that a later commit removing the same
/// entry clears its error by.
pub fn escape_path(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                c if c.is_ascii_control() => out.push_str(&format!("\\x{:02x}", u32::from(c))),
                c if c.is_control() => out.push_str(&format!("\\u{{{:04x}}}", u32::from(c))),
                c => out.push(c),
            }
        }
        for byte in chunk.invalid() {
            out.push_str(&format!("\\x{byte:02x}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_shows_every_byte_and_keeps_text() {
        assert_eq!(
            escape_path(b"Setup/Applications/a/\xff.yaml"),
            "Setup/Applications/a/\\xff.yaml"
        );
        assert_eq!(escape_path("été/a b.yaml".as_bytes()), "été/a b.yaml");
        assert_eq!(escape_path(b"a\x01\nb\\c"), "a\\x01\\x0ab\\\\c");
        assert_eq!(escape_path("a\u{85}".as_bytes()), "a\\u{0085}");
        // An invalid byte and the text of its escape are told apart.
        assert_ne!(escape_path(b"\xff"), escape_path(b"\\xff"));
    }
}
