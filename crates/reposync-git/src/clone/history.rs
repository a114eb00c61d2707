//! The clone's shallow history: where a commit lies relative to the branch head, and
//! deepening the history until it reaches that commit.

use std::collections::HashSet;

use reposync_model::ObjectId;

use crate::auth::Remote;
use crate::error::GitError;

use super::check::invalid;
use super::handle::LocalClone;
use super::parse::text;

/// How many commits the first deepening of a shallow history asks for; each next one asks
/// for twice as many.
const FIRST_DEEPEN: u32 = 16;

impl LocalClone {
    /// Deepens the shallow local history of `head` until it reaches `since`: 16 commits and
    /// then twice as many each time, until `since` is found or the history is complete, in
    /// which case a forced update took it out. A branch moved back to an ancestor of a `since`
    /// the clone holds is told at once, without deepening. The head may move while deepening.
    pub(super) async fn reach(
        &self,
        remote: &Remote,
        since: &ObjectId,
        mut head: ObjectId,
    ) -> Result<Reach, GitError> {
        let mut depth = FIRST_DEEPEN;
        loop {
            if head == *since {
                return Ok(Reach::Ancestor { head });
            }
            let since_here = self.has_commit(since).await?;
            if since_here && self.is_ancestor(since, &head).await? {
                return Ok(Reach::Ancestor { head });
            }
            // Deepening cannot help when the history of the branch is complete, nor when the
            // branch was moved back to an ancestor of `since`.
            let moved_back = since_here && self.is_ancestor(&head, since).await?;
            if moved_back || !self.history_is_cut(&head).await? {
                return Ok(Reach::Lost { head });
            }
            tracing::debug!(depth, %since, branch = %self.branch, "deepening the local history to reach the commit");
            match self.deepen(remote, &head, depth).await? {
                Some(deeper) => head = deeper,
                None => return Ok(Reach::Gone),
            }
            depth = depth.saturating_mul(2);
        }
    }

    /// Whether the clone holds `commit`.
    pub(super) async fn has_commit(&self, commit: &ObjectId) -> Result<bool, GitError> {
        let check = self.local_command(&["cat-file", "-e", &format!("{commit}^{{commit}}")]);
        Ok(self.runner.output(&check).await?.success)
    }

    /// Whether `ancestor` is in the local history of `descendant`, which a shallow boundary
    /// may cut. Both commits must be in the clone.
    async fn is_ancestor(
        &self,
        ancestor: &ObjectId,
        descendant: &ObjectId,
    ) -> Result<bool, GitError> {
        let command = self.local_command(&[
            "merge-base",
            "--is-ancestor",
            ancestor.as_str(),
            descendant.as_str(),
        ]);
        let output = self.runner.output(&command).await?;
        if output.success {
            Ok(true)
        } else if output.stderr.trim().is_empty() {
            // `--is-ancestor` exits with 1 and says nothing when the answer is no.
            Ok(false)
        } else {
            Err(output.into_error(&command))
        }
    }

    /// Whether the local history of `head` stops at a shallow boundary, so that fetching
    /// deeper would bring older commits.
    ///
    /// Whether the clone is shallow is not enough: a boundary left by history that a forced
    /// update rewrote away stays in the clone, though no deepening of the branch can reach it.
    async fn history_is_cut(&self, head: &ObjectId) -> Result<bool, GitError> {
        // The `shallow` file lists the commits git treats as roots, one id per line (see
        // gitformat-shallow); it is absent from a complete clone.
        let shallow = match tokio::fs::read_to_string(self.git_dir.join("shallow")).await {
            Ok(shallow) => shallow,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(self.io_error("read the list of shallow commits", e)),
        };
        let boundaries: HashSet<&str> = shallow.split_whitespace().collect();
        if boundaries.is_empty() {
            return Ok(false);
        }
        let history = self.local(&["rev-list", head.as_str()]).await?;
        Ok(String::from_utf8_lossy(&history)
            .lines()
            .any(|commit| boundaries.contains(commit)))
    }

    /// How many commits the local history of `commit` holds.
    async fn count_commits(&self, commit: &ObjectId) -> Result<u64, GitError> {
        let count = text(
            self.local(&["rev-list", "--count", commit.as_str()])
                .await?,
        );
        count
            .parse()
            .map_err(|_| invalid(format!("unexpected git rev-list --count output {count:?}")))
    }

    /// Fetches `depth` more commits of the branch's history below the shallow boundary and
    /// returns the head, which may have moved meanwhile; `None` if the branch is gone.
    async fn deepen(
        &self,
        remote: &Remote,
        head: &ObjectId,
        depth: u32,
    ) -> Result<Option<ObjectId>, GitError> {
        let before = self.count_commits(head).await?;
        let deepen = format!("--deepen={depth}");
        let Some(deeper) = self.fetch_branch(remote, Some(&deepen), true).await? else {
            return Ok(None);
        };
        // A server that ignored the request would otherwise be asked again and again.
        if deeper == *head
            && self.count_commits(head).await? == before
            && self.history_is_cut(head).await?
        {
            return Err(invalid(format!(
                "{} did not send the older history of branch {} when asked for it",
                self.url, self.branch
            )));
        }
        Ok(Some(deeper))
    }
}

/// Where a commit lies relative to a branch head.
pub(super) enum Reach {
    /// In the history of `head` (or `head` itself).
    Ancestor { head: ObjectId },
    /// Not in the history of `head`: a forced update rewrote it away.
    Lost { head: ObjectId },
    /// The branch was deleted meanwhile.
    Gone,
}
