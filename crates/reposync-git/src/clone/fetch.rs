//! Fetching: the branch into its tracking ref (shallow the first time, blobless when the
//! server allows), and one commit by id.

use reposync_model::{BranchName, ObjectId};

use crate::auth::Remote;
use crate::error::GitError;

use super::check::{printed_object_id, unusable};
use super::handle::{LocalClone, ORIGIN};

impl LocalClone {
    /// Fetches only the branch and returns its head, or `None` if the remote has no such
    /// branch (an empty repository or a branch still to create).
    ///
    /// The first fetch is shallow (`--depth 1`) and blobless (`--filter=blob:none`, falling
    /// back to a full-blob shallow fetch if the server refuses filters); later fetches are
    /// blobless and incremental.
    pub async fn fetch(&self, remote: &Remote) -> Result<Option<ObjectId>, GitError> {
        self.check_remote(remote)?;
        let had_head = self.local_head().await?;
        let depth = had_head.is_none().then_some("--depth=1");
        self.fetch_branch(remote, depth, had_head.is_some()).await
    }

    /// The commit the remote-tracking ref holds, if any.
    pub(super) async fn local_head(&self) -> Result<Option<ObjectId>, GitError> {
        let tracking = self.tracking_ref();
        let command = self.local_command(&["rev-parse", "--verify", "--quiet", &tracking]);
        let output = self.runner.output(&command).await?;
        if output.success {
            let head = String::from_utf8_lossy(&output.stdout);
            printed_object_id(&head, "git rev-parse").map(Some)
        } else if output.stderr.trim().is_empty() {
            // `--verify --quiet` exits with 1 and says nothing when the ref does not exist.
            Ok(None)
        } else {
            Err(self.in_context(output.into_error(&command)))
        }
    }

    /// Fetches the branch into its tracking ref, with `depth` (`--depth=1`, `--deepen=16`) if
    /// given, and returns its head; `None`, with the tracking ref deleted, when the remote has
    /// no such branch.
    pub(super) async fn fetch_branch(
        &self,
        remote: &Remote,
        depth: Option<&str>,
        had_head: bool,
    ) -> Result<Option<ObjectId>, GitError> {
        let refspec = format!(
            "+refs/heads/{branch}:{tracking}",
            branch = self.branch,
            tracking = self.tracking_ref()
        );
        let mut args = vec![
            "fetch",
            "--no-tags",
            "--no-write-fetch-head",
            "--recurse-submodules=no",
        ];
        args.extend(depth);
        args.extend([ORIGIN, refspec.as_str()]);
        let command = self.remote_command(remote, &args);
        let mut output = self.runner.output(&command).await?;
        if !output.success && refuses_filters(&output.stderr) {
            tracing::info!(url = %self.url, "the server refuses partial clones; fetching whole files from now on");
            // Without the clone's default filter, this and every later fetch asks for whole
            // files, which the server accepts.
            self.local(&[
                "config",
                "--unset-all",
                &format!("remote.{ORIGIN}.partialclonefilter"),
            ])
            .await?;
            output = self.runner.output(&command).await?;
        }
        if !output.success {
            if output.stderr.contains("couldn't find remote ref") {
                if had_head {
                    self.local(&["update-ref", "-d", &self.tracking_ref()])
                        .await?;
                }
                return Ok(None);
            }
            return Err(self.in_context(output.into_error(&command)));
        }
        self.local_head().await
    }

    /// Fetches the tag `tag` (a name by git's rules for branch names), shallow, into a ref of
    /// the clone's own (`refs/reposync/tags/…`), and returns the commit it peels to; `None`
    /// when the remote has no such tag.
    ///
    /// A tag is fetched by its name rather than its commit by id: a server speaking protocol
    /// v0 sends only what it advertises, and it advertises an annotated tag's object, not the
    /// commit the tag points at.
    pub async fn fetch_tag(
        &self,
        remote: &Remote,
        tag: &BranchName,
    ) -> Result<Option<ObjectId>, GitError> {
        self.check_remote(remote)?;
        let local = format!("refs/reposync/tags/{tag}");
        let refspec = format!("+refs/tags/{tag}:{local}");
        let command = self.remote_command(
            remote,
            &[
                "fetch",
                "--no-tags",
                "--no-write-fetch-head",
                "--recurse-submodules=no",
                "--depth=1",
                ORIGIN,
                refspec.as_str(),
            ],
        );
        let output = self.runner.output(&command).await?;
        if !output.success {
            if output.stderr.contains("couldn't find remote ref") {
                return Ok(None);
            }
            return Err(self.in_context(output.into_error(&command)));
        }
        let peeled = format!("{local}^{{commit}}");
        let printed = self.local(&["rev-parse", "--verify", &peeled]).await?;
        printed_object_id(&String::from_utf8_lossy(&printed), "git rev-parse").map(Some)
    }

    /// Makes sure `commit` (and its trees) is in the clone, fetching it alone if not.
    pub(super) async fn ensure_commit(
        &self,
        remote: &Remote,
        commit: &ObjectId,
    ) -> Result<(), GitError> {
        if self.has_commit(commit).await? {
            return Ok(());
        }
        let command = self.remote_command(
            remote,
            &[
                "fetch",
                "--no-tags",
                "--no-write-fetch-head",
                "--recurse-submodules=no",
                "--depth=1",
                ORIGIN,
                commit.as_str(),
            ],
        );
        let output = self.runner.output(&command).await?;
        if output.success {
            return Ok(());
        }
        if refuses_object_requests(&output.stderr) {
            return Err(unusable(format!(
                "commit {commit} is not in the local clone and {} will not send it: it is no longer on any branch (history rewritten), or the server sends only branch heads",
                self.url
            )));
        }
        Err(self.in_context(output.into_error(&command)))
    }
}

/// Whether a failed fetch says that the server does not accept our filter.
fn refuses_filters(stderr: &str) -> bool {
    let lower = stderr.to_ascii_lowercase();
    lower.contains("filter") && (lower.contains("not supported") || lower.contains("not allowed"))
}

/// Whether a failed fetch by object id says that the server only sends advertised objects.
pub(super) fn refuses_object_requests(stderr: &str) -> bool {
    stderr.contains("unadvertised object") || stderr.contains("not our ref")
}
