//! What a clone refuses before git sees it (folders that leave the repository or that git
//! could read as options; branch names and object ids arrive parsed by the model), how it
//! reads the object ids git prints, and the two errors this module's siblings build by hand.

use reposync_model::ObjectId;

use crate::error::{GitError, GitErrorKind};

pub(super) fn invalid(message: String) -> GitError {
    GitError::new(GitErrorKind::Other, message, "")
}

/// A request or clone that cannot work however often it is retried: a bad branch name, path,
/// object id or author, a directory reposync did not make, a commit the server will not send.
pub(super) fn unusable(message: String) -> GitError {
    GitError::new(GitErrorKind::InvalidRequest, message, "")
}

/// Reads an object id that git printed (`what` says where), which must be a full one: git
/// printing anything else is an error of its own, never a value to go on with.
pub(super) fn printed_object_id(text: &str, what: &str) -> Result<ObjectId, GitError> {
    ObjectId::parse(text.trim()).map_err(|_| {
        invalid(format!(
            "unexpected {what} output {text:?}: not an object id"
        ))
    })
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
    fn printed_ids_must_be_full() {
        let id = "a".repeat(40);
        assert_eq!(
            printed_object_id(&format!("{id}\n"), "git rev-parse")
                .unwrap()
                .as_str(),
            id
        );
        let error = printed_object_id("HEAD", "git rev-parse").unwrap_err();
        assert!(error.to_string().contains("git rev-parse"), "{error}");
    }
}
