//! Reading a commit's tree: the files under a prefix with their contents, the entries
//! reposync cannot hold listed beside them, and contents read by one process.

use std::collections::HashMap;

use reposync_model::ObjectId;

use crate::auth::Remote;
use crate::error::GitError;

use super::entry::{FileChangeKind, UnrepresentableEntry, representable_file};
use super::handle::LocalClone;
use super::parse::{parse_cat_file_batch, parse_ls_tree};

/// The files under a prefix at one commit, as [`LocalClone::read_files`] reads them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TreeFiles {
    /// Regular files at paths reposync can represent, with contents, sorted by path.
    pub files: Vec<(String, Vec<u8>)>,
    /// Every other entry (a path that is not UTF-8 or holds `.git`, `..`, control
    /// characters…, a symbolic link, a submodule), sorted by path, as additions.
    pub unrepresentable: Vec<UnrepresentableEntry>,
}

impl LocalClone {
    /// Every file under `prefix` (e.g. `Setup/`) at `commit`, with contents, sorted by path;
    /// entries that reposync cannot hold as files are listed apart, without contents.
    ///
    /// The prefix is matched as a plain string against whole paths. Contents missing from the
    /// partial clone are fetched in one request, never one process per file.
    pub async fn read_files(
        &self,
        remote: &Remote,
        commit: &ObjectId,
        prefix: &str,
    ) -> Result<TreeFiles, GitError> {
        self.check_remote(remote)?;
        self.ensure_commit(remote, commit).await?;
        // Only the directory part narrows the listing; the rest of the prefix is matched here.
        let directory = prefix.rfind('/').map_or("", |slash| &prefix[..=slash]);
        let mut args = vec!["ls-tree", "-r", "-z", "--full-tree", commit.as_str()];
        if !directory.is_empty() {
            args.extend(["--", directory]);
        }
        let listing = self.local(&args).await?;
        let mut entries = Vec::new();
        let mut unrepresentable = Vec::new();
        for entry in parse_ls_tree(&listing)? {
            if !entry.path.starts_with(prefix.as_bytes()) {
                continue;
            }
            match representable_file(&entry.mode, &entry.path) {
                Ok(path) => entries.push((path, entry.oid)),
                Err(problem) => unrepresentable.push(UnrepresentableEntry {
                    path: entry.path,
                    problem,
                    change: FileChangeKind::Added,
                }),
            }
        }
        if entries.is_empty() {
            return Ok(TreeFiles {
                files: Vec::new(),
                unrepresentable,
            });
        }
        let tree = if directory.is_empty() {
            format!("{commit}^{{tree}}")
        } else {
            format!("{commit}:{}", directory.trim_end_matches('/'))
        };
        let wanted: Vec<String> = entries.iter().map(|(_, oid)| oid.clone()).collect();
        let contents = self.read_blobs(remote, &tree, &wanted).await?;
        let files = entries
            .into_iter()
            .map(|(path, oid)| {
                // Cloned, not moved: files with equal contents share one object.
                let content = contents
                    .get(&oid)
                    .cloned()
                    .ok_or_else(|| self.missing_object(&oid, &path))?;
                Ok((path, content))
            })
            .collect::<Result<_, GitError>>()?;
        Ok(TreeFiles {
            files,
            unrepresentable,
        })
    }

    /// The contents of `oids`, all of them blobs within `tree`. Those missing from the partial
    /// clone are fetched first, in one request.
    pub(super) async fn read_blobs(
        &self,
        remote: &Remote,
        tree: &str,
        oids: &[String],
    ) -> Result<HashMap<String, Vec<u8>>, GitError> {
        // A clone made anew holds the whole files of its head, which is what callers read.
        self.fetch_missing(remote, &[tree.to_owned()], oids).await?;
        self.cat_blobs(oids).await
    }

    /// The contents of `oids`, read by one process; those the clone lacks are left out.
    pub(super) async fn cat_blobs(
        &self,
        oids: &[String],
    ) -> Result<HashMap<String, Vec<u8>>, GitError> {
        if oids.is_empty() {
            return Ok(HashMap::new());
        }
        let mut unique: Vec<&str> = oids.iter().map(String::as_str).collect();
        unique.sort_unstable();
        unique.dedup();
        let mut input = unique.join("\n");
        input.push('\n');
        let out = self
            .run(self.local_command(&["cat-file", "--batch"]).stdin(input))
            .await?;
        parse_cat_file_batch(&out)
    }
}
