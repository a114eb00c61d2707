//! Filling the partial clone: finding which contents it lacks and fetching them by id in one
//! request, or making the clone anew with whole files when the server cannot send them.

use std::collections::HashSet;

use crate::auth::Remote;
use crate::error::GitError;

use super::fetch::refuses_object_requests;
use super::handle::{LocalClone, ORIGIN};
use super::lifecycle::Contents;

impl LocalClone {
    /// Fetches, in one request, those of `oids` that the partial clone lacks; all of them are
    /// blobs within some of `trees` (tree-ish expressions such as `<commit>:Setup`).
    pub(super) async fn fetch_missing(
        &self,
        remote: &Remote,
        trees: &[String],
        oids: &[String],
    ) -> Result<Fill, GitError> {
        if oids.is_empty() {
            return Ok(Fill::InPlace);
        }
        // rev-list with --missing=print lists what the partial clone lacks without trying to
        // fetch it; it is the one command that does so on every git we support.
        let mut input = trees.join("\n");
        input.push('\n');
        let listing = self
            .run(
                self.local_command(&["rev-list", "--objects", "--missing=print", "--stdin"])
                    .stdin(input),
            )
            .await?;
        let wanted: HashSet<&str> = oids.iter().map(String::as_str).collect();
        let listing = String::from_utf8_lossy(&listing);
        let missing: HashSet<&str> = listing
            .lines()
            .filter_map(|line| line.strip_prefix('?'))
            .filter(|oid| wanted.contains(oid))
            .collect();
        if missing.is_empty() {
            return Ok(Fill::InPlace);
        }
        let missing: Vec<&str> = missing.into_iter().collect();
        self.fetch_objects(remote, &missing).await
    }

    /// Fetches objects by id, the way git's own lazy fetch does it: no negotiation (the server
    /// would leave out objects it thinks we have), no refs updated, ids on standard input.
    async fn fetch_objects(&self, remote: &Remote, oids: &[&str]) -> Result<Fill, GitError> {
        tracing::debug!(count = oids.len(), "fetching missing contents");
        let mut input = oids.join("\n");
        input.push('\n');
        let mut command = self
            .remote_command(
                remote,
                &[
                    "fetch",
                    "--no-tags",
                    "--no-write-fetch-head",
                    "--recurse-submodules=no",
                    "--stdin",
                    ORIGIN,
                ],
            )
            .stdin(input);
        command
            .config
            .push(("fetch.negotiationAlgorithm".into(), "noop".into()));
        let output = self.runner.output(&command).await?;
        if output.success {
            return Ok(Fill::InPlace);
        }
        // Over protocol v0 (an OpenSSH server that does not accept GIT_PROTOCOL), upload-pack
        // sends only advertised commits unless configured otherwise, even when it accepted
        // the filter. Such a server can never fill a partial clone, so the clone is made
        // anew, shallow, with the whole files of the branch head.
        if refuses_object_requests(&output.stderr) {
            tracing::warn!(url = %self.url, "the server cannot send file contents by id; making the clone anew with whole files");
            tokio::fs::remove_dir_all(&self.git_dir)
                .await
                .map_err(|e| self.io_error("remove the partial clone", e))?;
            self.create(Contents::Whole).await?;
            self.fetch(remote).await?;
            return Ok(Fill::CloneRemade);
        }
        Err(self.in_context(output.into_error(&command)))
    }
}

/// How missing contents came into the clone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fill {
    /// Fetched into the clone as it was (or nothing was missing).
    InPlace,
    /// The server cannot send contents by id, so the clone was made anew with whole files of
    /// the branch head, and the history it had is gone.
    CloneRemade,
}
