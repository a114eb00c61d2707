//! What a clone refuses before git sees it (branch names, object ids and folders that git
//! could read as options or that leave the repository), and the two errors this module's
//! siblings build by hand.

use crate::error::{GitError, GitErrorKind};

pub(super) fn invalid(message: String) -> GitError {
    GitError::new(GitErrorKind::Other, message, "")
}

/// A request or clone that cannot work however often it is retried: a bad branch name, path,
/// object id or author, a directory reposync did not make, a commit the server will not send.
pub(super) fn unusable(message: String) -> GitError {
    GitError::new(GitErrorKind::InvalidRequest, message, "")
}

/// Refuses branch names git would refuse, and any that could be read as an option.
pub(super) fn check_branch_name(branch: &str) -> Result<(), GitError> {
    let bad_component = branch
        .split('/')
        .any(|c| c.is_empty() || c.starts_with('.') || c.ends_with(".lock") || c.ends_with('.'));
    let bad_char = branch.chars().any(|c| {
        c.is_ascii_control() || matches!(c, ' ' | '~' | '^' | ':' | '?' | '*' | '[' | '\\')
    });
    if branch.is_empty()
        || branch.starts_with('-')
        || branch.contains("..")
        || branch.contains("@{")
        || branch == "@"
        || bad_component
        || bad_char
    {
        return Err(unusable(format!("{branch:?} is not a valid branch name")));
    }
    Ok(())
}

/// Refuses anything but a full hexadecimal object id, so that no argument can be read as an
/// option or a revision expression.
pub(super) fn check_object_id(oid: &str, what: &str) -> Result<(), GitError> {
    let full_length = oid.len() == 40 || oid.len() == 64;
    if full_length
        && oid
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Ok(())
    } else {
        Err(unusable(format!(
            "{what} {oid:?} is not a full lower-case object id"
        )))
    }
}

/// Refuses a prefix that is not a folder of the repository: relative, ending with `/`, with
/// no empty, `.`, `..` or `.git` parts, and no line breaks (it goes into line-based input).
pub(super) fn check_folder(prefix: &str) -> Result<(), GitError> {
    let folder = prefix.strip_suffix('/').unwrap_or_default();
    let bad_component = folder
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == ".." || c.eq_ignore_ascii_case(".git"));
    if bad_component || prefix.contains(['\0', '\n', '\r']) {
        return Err(unusable(format!(
            "{prefix:?} is not a valid folder: it must be relative and end with `/`, like `Setup/`, with no empty, `.`, `..` or `.git` parts"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_must_be_relative_folders() {
        for good in ["Setup/", "Setup/Applications/", "Set up/été/"] {
            assert!(check_folder(good).is_ok(), "{good:?}");
        }
        for bad in [
            "", "/", "Setup", "/Setup/", "Setup//", "./", "../", "a/../", ".git/", "a/.Git/",
            "a\nb/", "a\0/",
        ] {
            assert!(check_folder(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn refuses_bad_branch_names() {
        for good in ["main", "release/1.2", "feature/été"] {
            assert!(check_branch_name(good).is_ok(), "{good}");
        }
        for bad in [
            "", "-x", "a..b", "a b", "a/", "/a", ".hidden", "x.lock", "a@{1}", "a:b", "@",
        ] {
            assert!(check_branch_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn object_ids_must_be_full_and_lower_case() {
        assert!(check_object_id(&"a".repeat(40), "commit").is_ok());
        assert!(check_object_id(&"a".repeat(64), "commit").is_ok());
        assert!(check_object_id("HEAD", "commit").is_err());
        assert!(check_object_id(&"A".repeat(40), "commit").is_err());
        assert!(check_object_id(&format!("-{}", "a".repeat(39)), "commit").is_err());
    }
}
