//! Building a commit without a work tree or an index: the files to write, hashed into the
//! clone, and the head's tree with only the folders that hold a change rebuilt.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::path::Path;

use reposync_model::{ObjectId, RepoPath, escape_path};

use crate::error::GitError;

use super::check::{invalid, printed_object_id, unusable};
use super::entry::{FILE_MODE, TREE_MODE};
use super::handle::LocalClone;
use super::parse::{BatchObject, RawTreeEntry, parse_cat_file_objects, parse_tree_object, text};

/// One file change to commit: `content: None` deletes the path.
#[derive(Clone, PartialEq, Eq)]
pub struct FileChange {
    /// A path relative to the repository root, with `/` separators (`Setup/Applications/x.yaml`).
    pub path: String,
    pub content: Option<Vec<u8>>,
}

impl fmt::Debug for FileChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Contents can be large; their size says enough in logs and test failures.
        f.debug_struct("FileChange")
            .field("path", &self.path)
            .field("bytes", &self.content.as_ref().map(Vec::len))
            .finish()
    }
}

/// A name and e-mail as git writes them for a commit's author or committer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    pub name: String,
    pub email: String,
}

impl LocalClone {
    /// Hashes every new content into the clone: one object id per change, `None` for deletes.
    pub(super) async fn write_blobs(
        &self,
        changes: &[FileChange],
        scratch: &Path,
    ) -> Result<Vec<Change>, GitError> {
        let mut files = Vec::new();
        for (number, change) in changes.iter().enumerate() {
            if let Some(content) = &change.content {
                // Our own names for the files, so that the newline-separated list is safe.
                let file = scratch.join(format!("blob-{number}"));
                tokio::fs::write(&file, content)
                    .await
                    .map_err(|e| self.io_error("write a file to commit", e))?;
                files.push(file);
            }
        }
        let mut oids = Vec::new();
        if !files.is_empty() {
            let mut input = Vec::new();
            for file in &files {
                input.extend_from_slice(file.as_os_str().as_encoded_bytes());
                input.push(b'\n');
            }
            // --no-filters: the bytes are committed exactly as given, whatever attributes say.
            let out = self
                .run(
                    self.local_command(&["hash-object", "-w", "--no-filters", "--stdin-paths"])
                        .stdin(input),
                )
                .await?;
            oids = String::from_utf8_lossy(&out)
                .lines()
                .map(str::to_owned)
                .collect();
        }
        if oids.len() != files.len() {
            return Err(invalid(format!(
                "git hash-object gave {} ids for {} files",
                oids.len(),
                files.len()
            )));
        }
        let mut oids = oids.into_iter();
        Ok(changes
            .iter()
            .map(|change| Change {
                path: change.path.clone(),
                oid: change.content.as_ref().and_then(|_| oids.next()),
            })
            .collect())
    }

    /// Builds the commit of `changes` on `head`, without a work tree or an index. `None` when
    /// the result is `head`'s own tree.
    ///
    /// No index is used because `git read-tree` refuses a tree that holds entries such as
    /// `.git`, so one hostile entry anywhere on the branch would stop every commit. See
    /// [`LocalClone::build_tree`].
    pub(super) async fn build_commit(
        &self,
        head: Option<&ObjectId>,
        changes: &[&Change],
        author: &Signature,
        committer: &Signature,
        message: &str,
    ) -> Result<Option<ObjectId>, GitError> {
        if head.is_none() && changes.iter().all(|c| c.oid.is_none()) {
            return Ok(None);
        }
        let tree = self.build_tree(head, changes).await?;
        if let Some(head) = head {
            let head_tree = text(
                self.local(&["rev-parse", &format!("{head}^{{tree}}")])
                    .await?,
            );
            if head_tree == tree {
                return Ok(None);
            }
        }
        let mut args = vec!["commit-tree", tree.as_str()];
        if let Some(head) = head {
            args.extend(["-p", head.as_str()]);
        }
        let mut message = message.to_owned();
        if !message.ends_with('\n') {
            message.push('\n');
        }
        let mut command = self.local_command(&args).stdin(message);
        for (variable, value) in [
            ("GIT_AUTHOR_NAME", &author.name),
            ("GIT_AUTHOR_EMAIL", &author.email),
            ("GIT_COMMITTER_NAME", &committer.name),
            ("GIT_COMMITTER_EMAIL", &committer.email),
        ] {
            command.env.push((variable, value.into()));
        }
        let commit = text(self.run(command).await?);
        printed_object_id(&commit, "git commit-tree").map(Some)
    }

    /// The tree of `head` with `changes` applied, and its id.
    ///
    /// Only the folders that hold a change are rebuilt: each from its entries at `head`, with
    /// our files written or removed and the folders below it replaced by their new ids, deepest
    /// first (one `git mktree` per depth). Every other folder keeps its id, and the entries
    /// beside ours are copied as they are, bytes, modes and ids, without being read or checked:
    /// what someone else put on the branch (a `.git` folder, a name that is not UTF-8, a
    /// symbolic link) is left exactly as it was. Blobs are never read, so none is fetched.
    async fn build_tree(
        &self,
        head: Option<&ObjectId>,
        changes: &[&Change],
    ) -> Result<String, GitError> {
        // The folders that hold a change ("" is the root), with what changes in each.
        let mut folders: BTreeMap<String, FolderEdit> = BTreeMap::new();
        folders.entry(String::new()).or_default();
        for change in changes {
            let (folder, name) = split_path(&change.path);
            folders
                .entry(folder.to_owned())
                .or_default()
                .files
                .insert(name.to_owned(), change.oid.clone());
            let mut below = folder;
            while !below.is_empty() {
                let (parent, name) = split_path(below);
                folders
                    .entry(parent.to_owned())
                    .or_default()
                    .folders
                    .insert(name.to_owned());
                below = parent;
            }
        }
        let mut current = match head {
            Some(head) => self.read_folders(head, folders.keys()).await?,
            None => HashMap::new(),
        };
        let deepest = folders.keys().map(|f| depth(f)).max().unwrap_or_default();
        // Each rebuilt folder's new id; `None` when it ended up empty, as git keeps no empty
        // folders.
        let mut built: HashMap<String, Option<String>> = HashMap::new();
        for level in (0..=deepest).rev() {
            let mut batch: Vec<(String, Vec<RawTreeEntry>)> = Vec::new();
            for (folder, edit) in folders.iter().filter(|(f, _)| depth(f) == level) {
                let mut entries = current.remove(folder).unwrap_or_default();
                for (name, oid) in &edit.files {
                    let at = |e: &RawTreeEntry| e.name == name.as_bytes();
                    if entries.iter().any(|e| at(e) && e.is_tree()) {
                        if oid.is_some() {
                            return Err(unusable(format!(
                                "cannot write {}: branch {} holds a folder there",
                                join_path(folder, name),
                                self.branch
                            )));
                        }
                        // Deleting a folder's name deletes no file, as an index would have it.
                        continue;
                    }
                    entries.retain(|e| !at(e));
                    if let Some(oid) = oid {
                        entries.push(RawTreeEntry {
                            mode: FILE_MODE.to_owned(),
                            name: name.as_bytes().to_vec(),
                            oid: oid.clone(),
                        });
                    }
                }
                for name in &edit.folders {
                    let below = join_path(folder, name);
                    let new_id = built.remove(&below).flatten();
                    let at = |e: &RawTreeEntry| e.name == name.as_bytes();
                    if entries.iter().any(|e| at(e) && !e.is_tree()) {
                        if new_id.is_some() {
                            return Err(unusable(format!(
                                "cannot write into {below}/: branch {} holds a file at {below}",
                                self.branch
                            )));
                        }
                        // Only deletions below a file, which deleted nothing.
                        continue;
                    }
                    entries.retain(|e| !at(e));
                    if let Some(id) = new_id {
                        entries.push(RawTreeEntry {
                            mode: TREE_MODE.to_owned(),
                            name: name.as_bytes().to_vec(),
                            oid: id,
                        });
                    }
                }
                if entries.is_empty() && !folder.is_empty() {
                    built.insert(folder.clone(), None);
                } else {
                    batch.push((folder.clone(), entries));
                }
            }
            let ids = self.make_trees(&batch).await?;
            for ((folder, _), id) in batch.into_iter().zip(ids) {
                built.insert(folder, Some(id));
            }
        }
        built
            .remove("")
            .flatten()
            .ok_or_else(|| invalid("git mktree built no root tree".to_owned()))
    }

    /// The entries of each folder at `head`, by folder ("" is the root), read by one process.
    /// A folder that does not exist there, or that is a file there, is left out.
    async fn read_folders(
        &self,
        head: &ObjectId,
        folders: impl Iterator<Item = &String>,
    ) -> Result<HashMap<String, Vec<RawTreeEntry>>, GitError> {
        let folders: Vec<&String> = folders.collect();
        let mut input = String::new();
        for folder in &folders {
            if folder.is_empty() {
                input.push_str(&format!("{head}^{{tree}}\n"));
            } else {
                // `<commit>:<path>` takes the rest of the line as the path, spaces included;
                // our paths hold no line breaks.
                input.push_str(&format!("{head}:{folder}\n"));
            }
        }
        let out = self
            .run(self.local_command(&["cat-file", "--batch"]).stdin(input))
            .await?;
        let objects = parse_cat_file_objects(&out)?;
        if objects.len() != folders.len() {
            return Err(invalid(format!(
                "git cat-file answered {} of {} folders of {head}",
                objects.len(),
                folders.len()
            )));
        }
        let mut listings = HashMap::new();
        for (folder, object) in folders.into_iter().zip(objects) {
            if let BatchObject::Found { oid, kind, content } = object
                && kind == "tree"
            {
                listings.insert(folder.clone(), parse_tree_object(&content, oid.len() / 2)?);
            }
        }
        Ok(listings)
    }

    /// Writes each listing as a tree with `git mktree`, in one process, and returns their ids
    /// in order. Missing objects are allowed: untouched blobs are not in the partial clone.
    async fn make_trees(
        &self,
        trees: &[(String, Vec<RawTreeEntry>)],
    ) -> Result<Vec<String>, GitError> {
        if trees.is_empty() {
            return Ok(Vec::new());
        }
        // With -z, each entry ends with NUL, and in batch mode an empty entry ends a tree.
        let mut input = Vec::new();
        for (_, entries) in trees {
            for entry in entries {
                input.extend_from_slice(
                    format!("{} {} {}\t", entry.mode, entry.kind(), entry.oid).as_bytes(),
                );
                input.extend_from_slice(&entry.name);
                input.push(0);
            }
            input.push(0);
        }
        let out = self
            .run(
                self.local_command(&["mktree", "-z", "--missing", "--batch"])
                    .stdin(input),
            )
            .await?;
        let ids: Vec<String> = String::from_utf8_lossy(&out)
            .lines()
            .map(str::to_owned)
            .collect();
        if ids.len() != trees.len() || ids.iter().any(|id| ObjectId::parse(id).is_err()) {
            return Err(invalid(format!(
                "git mktree gave {} ids for {} trees",
                ids.len(),
                trees.len()
            )));
        }
        Ok(ids)
    }
}

/// One of our changes, with its content already hashed into the clone.
pub(super) struct Change {
    pub(super) path: String,
    pub(super) oid: Option<String>,
}

/// What changes in one folder of a commit we build.
#[derive(Debug, Default)]
struct FolderEdit {
    /// Files of the folder to write (with their blob) or delete (`None`), by name.
    files: BTreeMap<String, Option<String>>,
    /// Folders right below it that hold changes, by name.
    folders: BTreeSet<String>,
}

/// A path's folder ("" for the root) and its last component.
fn split_path(path: &str) -> (&str, &str) {
    path.rsplit_once('/').unwrap_or(("", path))
}

/// The path of `name` in `folder` ("" for the root).
fn join_path(folder: &str, name: &str) -> String {
    if folder.is_empty() {
        name.to_owned()
    } else {
        format!("{folder}/{name}")
    }
}

/// How deep a folder is: 0 for the root, 1 for `Setup`, 2 for `Setup/Applications`…
fn depth(folder: &str) -> usize {
    if folder.is_empty() {
        0
    } else {
        folder.matches('/').count() + 1
    }
}

/// Refuses paths reposync cannot represent ([`RepoPath`]: relative, no empty, `.`, `..` or
/// `.git` components, no control characters), and a path given twice.
pub(super) fn check_changes(changes: &[FileChange]) -> Result<(), GitError> {
    let mut seen = HashSet::new();
    for change in changes {
        let path = change.path.as_str();
        if let Err(problem) = RepoPath::parse(path) {
            return Err(unusable(format!(
                "cannot write {}: it is not a path reposync can represent: {problem}",
                escape_path(path.as_bytes())
            )));
        }
        if !seen.insert(path) {
            return Err(unusable(format!("{path:?} is changed twice in one commit")));
        }
    }
    Ok(())
}

/// Refuses identities that git would mangle: it drops `<`, `>` and newlines without a word.
pub(super) fn check_signature(signature: &Signature) -> Result<(), GitError> {
    for (what, value) in [("name", &signature.name), ("e-mail", &signature.email)] {
        if value.trim().is_empty() || value.contains(['<', '>', '\n', '\r', '\0']) {
            return Err(unusable(format!(
                "the commit author's {what} {value:?} is empty or holds <, > or a line break"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::GitErrorKind;

    #[test]
    fn refuses_bad_paths_and_duplicates() {
        let change = |path: &str| FileChange {
            path: path.into(),
            content: None,
        };
        assert!(check_changes(&[change("Setup/Source Repo Providers/Platform Git.yaml")]).is_ok());
        for bad in [
            "",
            "/abs",
            "a//b",
            "a/",
            "../x",
            "a/./b",
            ".git/config",
            "a/.GIT/x",
            "a/.git./x",
            "a/git~1/x",
            "a/b\nc",
            "a/b\u{7f}",
            "a\\b",
        ] {
            let error = check_changes(&[change(bad)]).expect_err(bad);
            assert_eq!(error.kind, GitErrorKind::InvalidRequest);
            assert!(error.message.contains("cannot write"), "{error}");
        }
        assert!(check_changes(&[change("a"), change("a")]).is_err());
    }

    #[test]
    fn refuses_identities_git_would_mangle() {
        let signature = |name: &str, email: &str| Signature {
            name: name.into(),
            email: email.into(),
        };
        assert!(check_signature(&signature("reposync", "git-sync@reposync.invalid")).is_ok());
        assert!(check_signature(&signature("a<b", "x@y")).is_err());
        assert!(check_signature(&signature("a", "x@y>")).is_err());
        assert!(check_signature(&signature(" ", "x@y")).is_err());
    }
}
