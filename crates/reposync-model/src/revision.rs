//! What a read of a repository is pinned to: a commit by its full id, a branch, a tag, or a
//! name that may be either.
//!
//! A revision reaches git (as a pattern of `ls-remote`) and Bitbucket's REST APIs (inside a URL
//! path), so it is parsed once here: a name must be one git accepts for a branch, which also
//! rules out everything git would read as an option or a revision expression (`-x`, `main~1`,
//! `@{upstream}`). A bare name means the branch of that name when the repository has one, and
//! otherwise the tag: `refs/heads/x` and `refs/tags/x` pick one explicitly, since the two are
//! different refs (`shared/BITBUCKET.md`: "match refs by their full name").

use std::fmt;

use crate::error::FieldError;
use crate::objectid::ObjectId;
use crate::refname::BranchName;

/// A branch or tag name without its `refs/…/` prefix, by git's rules for branch names (which
/// tag names share).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RefName(BranchName);

impl RefName {
    /// The short name (`main`, `v1.2`, `release/7`).
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The same name read as a branch.
    pub fn as_branch(&self) -> &BranchName {
        &self.0
    }
}

impl fmt::Debug for RefName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for RefName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a read is pinned to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Revision {
    /// A full commit id (40 or 64 hexadecimal digits, in any letter case).
    Commit(ObjectId),
    /// `refs/heads/<name>`: the branch, never a tag.
    Branch(RefName),
    /// `refs/tags/<name>`: the tag (an annotated tag is peeled to its commit), never a branch.
    Tag(RefName),
    /// A bare name: the branch of that name, or else the tag.
    Name(RefName),
}

impl Revision {
    /// Parses what a user gave as a ref, reporting problems against the field `ref`.
    pub fn parse(text: &str) -> Result<Revision, FieldError> {
        let text = text.trim();
        let invalid = |message: String| FieldError::new("ref", message);
        if text.is_empty() {
            return Err(invalid(
                "must not be empty: give a branch, a tag or a full commit id, or leave it out for the connector's branch".into(),
            ));
        }
        let hex = text.bytes().all(|b| b.is_ascii_hexdigit());
        if hex && (text.len() == 40 || text.len() == 64) {
            let commit = ObjectId::parse(&text.to_ascii_lowercase())
                .map_err(|error| error.for_field("ref"))?;
            return Ok(Revision::Commit(commit));
        }
        let name = |short: &str| {
            BranchName::parse(short).map(RefName).map_err(|error| {
                invalid(format!(
                    "{short:?} is not a branch or tag name: {}",
                    error.message
                ))
            })
        };
        if let Some(short) = text.strip_prefix("refs/heads/") {
            return name(short).map(Revision::Branch);
        }
        if let Some(short) = text.strip_prefix("refs/tags/") {
            return name(short).map(Revision::Tag);
        }
        if text.starts_with("refs/") {
            return Err(invalid(format!(
                "{text:?} is neither a branch (`refs/heads/…`) nor a tag (`refs/tags/…`)"
            )));
        }
        // A shorter run of hex digits is a name: an abbreviated id could name several
        // commits, so only full ids are taken and a commit is never a guess.
        name(text).map(Revision::Name)
    }

    /// The revision as it travels: the commit id, `refs/heads/x`, `refs/tags/x`, or the bare
    /// name; [`Revision::parse`] reads it back to the same value.
    pub fn as_text(&self) -> String {
        match self {
            Revision::Commit(commit) => commit.as_str().to_owned(),
            Revision::Branch(name) => format!("refs/heads/{name}"),
            Revision::Tag(name) => format!("refs/tags/{name}"),
            Revision::Name(name) => name.as_str().to_owned(),
        }
    }
}

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_branches_tags_and_names_are_told_apart() {
        let id = "a".repeat(40);
        assert_eq!(
            Revision::parse(&id.to_uppercase()).expect("commit"),
            Revision::Commit(ObjectId::parse(&id).expect("id"))
        );
        assert!(matches!(Revision::parse("main"), Ok(Revision::Name(n)) if n.as_str() == "main"));
        assert!(
            matches!(Revision::parse("refs/heads/feature/x"), Ok(Revision::Branch(n)) if n.as_str() == "feature/x")
        );
        assert!(
            matches!(Revision::parse("refs/tags/v1.0"), Ok(Revision::Tag(n)) if n.as_str() == "v1.0")
        );
        // A short hex string is a name, never an abbreviated id.
        assert!(matches!(Revision::parse("abc1234"), Ok(Revision::Name(_))));
        for text in ["main", "refs/heads/a/b", "refs/tags/v2", &id] {
            let parsed = Revision::parse(text).expect("parses");
            assert_eq!(Revision::parse(&parsed.as_text()), Ok(parsed));
        }
    }

    #[test]
    fn options_expressions_and_other_refs_are_refused_naming_the_field() {
        for bad in [
            "",
            "-x",
            "--upload-pack=evil",
            "main~1",
            "HEAD^",
            "@{u}",
            "a..b",
            "refs/remotes/origin/main",
            "refs/heads/",
            "with space",
            "bad\u{7}bell",
        ] {
            let error = Revision::parse(bad).expect_err(bad);
            assert_eq!(error.field, "ref", "{bad:?}");
            assert!(!error.message.is_empty());
        }
    }
}
