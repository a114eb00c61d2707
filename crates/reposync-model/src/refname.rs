use serde::Serialize;

use crate::error::FieldError;
use crate::name::is_emoticon;

/// A branch name that git accepts (`git check-ref-format --branch`), without `refs/heads/`.
#[derive(Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct BranchName(String);

impl BranchName {
    /// Parses a branch name, reporting problems against the field `branch`.
    pub fn parse(text: &str) -> Result<Self, FieldError> {
        check_branch(text)
            .map(|()| Self(text.to_owned()))
            .map_err(|m| FieldError::new("branch", m))
    }

    /// The short name (`main`).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The full ref (`refs/heads/main`), which is what remote refs are matched against.
    pub fn full_ref(&self) -> String {
        format!("refs/heads/{}", self.0)
    }
}

fn check_branch(text: &str) -> Result<(), String> {
    if text.is_empty() {
        return Err("must not be empty".into());
    }
    if text.contains("://") || text.starts_with("git@") {
        return Err("looks like a URL; give the branch name only (for example `main`)".into());
    }
    if let Some(rest) = text.strip_prefix("refs/") {
        let short = rest.strip_prefix("heads/").unwrap_or(rest);
        return Err(format!(
            "give the short branch name (`{short}`), not a full ref"
        ));
    }
    if text.len() > 250 {
        return Err("is longer than 250 bytes".into());
    }
    if text.starts_with('-') {
        return Err("must not start with '-'".into());
    }
    if text == "@" || text == "HEAD" {
        return Err(format!("{text:?} is not a branch name"));
    }
    if text.starts_with('/') || text.ends_with('/') || text.contains("//") {
        return Err("must not start or end with '/' or contain '//'".into());
    }
    if text.ends_with('.') {
        return Err("must not end with '.'".into());
    }
    if text.contains("..") {
        return Err("must not contain '..'".into());
    }
    if text.contains("@{") {
        return Err("must not contain '@{'".into());
    }
    for component in text.split('/') {
        if component.starts_with('.') {
            return Err(format!("the part {component:?} must not start with '.'"));
        }
        if component.ends_with(".lock") {
            return Err(format!("the part {component:?} must not end with '.lock'"));
        }
    }
    for c in text.chars() {
        if c.is_ascii_control() || c == '\u{7f}' {
            return Err(format!(
                "must not contain the control character U+{:04X}",
                c as u32
            ));
        }
        if matches!(c, ' ' | '~' | '^' | ':' | '?' | '*' | '[' | '\\') {
            return Err(format!(
                "must not contain {c:?} (git forbids it in branch names)"
            ));
        }
        if is_emoticon(c) {
            return Err(format!(
                "must not contain emoji from the Emoticons block (found U+{:04X})",
                c as u32
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_usual_branch_names() {
        for ok in [
            "main",
            "master",
            "release/2026.11",
            "feature/JIRA-12_x",
            "a-b.c",
        ] {
            assert!(BranchName::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_what_git_rejects_and_urls_and_emoji() {
        let cases = [
            ("", "empty"),
            ("https://bitbucket.org/acme/repo", "URL"),
            ("refs/heads/main", "`main`"),
            ("a..b", "'..'"),
            ("a b", "' '"),
            ("x.lock", ".lock"),
            ("/x", "'/'"),
            ("x/", "'/'"),
            ("a//b", "'//'"),
            (".hidden", "start with '.'"),
            ("-x", "'-'"),
            ("x@{1}", "'@{'"),
            ("wip:now", "':'"),
            ("dot.", "end with '.'"),
            ("smile\u{1F603}", "U+1F603"),
        ];
        for (input, expected) in cases {
            let err = BranchName::parse(input).expect_err(input);
            assert_eq!(err.field, "branch");
            assert!(err.message.contains(expected), "{input:?}: {}", err.message);
        }
    }

    #[test]
    fn full_ref_prefixes_heads() {
        assert_eq!(
            BranchName::parse("main").map(|b| b.full_ref()),
            Ok("refs/heads/main".into())
        );
    }
}

crate::newtype::parsed_string_traits!(BranchName);
