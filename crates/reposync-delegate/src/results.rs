//! What git answered, as the task protocol's results and failure codes.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reposync_api::{
    ChangedFileRead, CommitRead, CommittedFileView, FailureCode, FileContent, LandedView,
    SyncJobResult, UnrepresentableRead,
};
use reposync_git::{
    BranchChanges, CommitOutcome, FileChangeKind, GitErrorKind, LandedChangeset,
    UnrepresentableEntry,
};
use reposync_model::ObjectId;

pub(crate) fn job_result(outcome: CommitOutcome) -> SyncJobResult {
    match outcome {
        CommitOutcome::Pushed {
            commit,
            parent,
            attempts,
            files,
            landed,
        } => SyncJobResult::Pushed {
            commit: commit.into_string(),
            parent: parent.map(ObjectId::into_string),
            attempts,
            files: files
                .into_iter()
                .map(|f| CommittedFileView {
                    op: f.op,
                    path: f.path,
                })
                .collect(),
            landed: landed_views(landed),
        },
        CommitOutcome::NothingToCommit { head, landed } => SyncJobResult::NothingToCommit {
            head: head.map(ObjectId::into_string),
            landed: landed_views(landed),
        },
        CommitOutcome::Conflict { head, files } => SyncJobResult::Conflict {
            head: head.into_string(),
            files: files
                .into_iter()
                .map(|f| FileContent {
                    path: f.path,
                    content: f.theirs.map(|b| STANDARD.encode(b)),
                })
                .collect(),
        },
    }
}

/// The protocol's failure code of a git error; a new kind of error must be given one here.
pub(crate) fn failure_code(kind: GitErrorKind) -> FailureCode {
    match kind {
        GitErrorKind::HostUnreachable => FailureCode::HostUnreachable,
        GitErrorKind::TlsUntrusted => FailureCode::TlsUntrusted,
        GitErrorKind::HostKeyUnknown => FailureCode::HostKeyUnknown,
        GitErrorKind::HostKeyMismatch => FailureCode::HostKeyMismatch,
        GitErrorKind::AuthFailed => FailureCode::AuthFailed,
        GitErrorKind::RepoNotFound => FailureCode::RepoNotFound,
        GitErrorKind::Timeout => FailureCode::Timeout,
        GitErrorKind::GitUnavailable => FailureCode::GitUnavailable,
        GitErrorKind::SshUnavailable => FailureCode::SshUnavailable,
        GitErrorKind::PushRejected => FailureCode::PushRejected,
        GitErrorKind::PushRaced => FailureCode::PushRaced,
        GitErrorKind::InvalidRequest => FailureCode::InvalidRequest,
        GitErrorKind::Other => FailureCode::GitFailed,
    }
}

fn landed_views(landed: Vec<LandedChangeset>) -> Vec<LandedView> {
    landed
        .into_iter()
        .map(|l| LandedView {
            changeset: l.changeset,
            commit: l.commit.into_string(),
        })
        .collect()
}

pub(crate) fn changes_result(changes: BranchChanges) -> SyncJobResult {
    let encode = |content: Option<Vec<u8>>| content.map(|b| STANDARD.encode(b));
    match changes {
        BranchChanges::Gone => SyncJobResult::BranchGone,
        BranchChanges::Commits {
            head,
            commits,
            complete,
        } => SyncJobResult::Commits {
            head: head.into_string(),
            complete,
            read: None,
            commits: commits
                .into_iter()
                .map(|c| CommitRead {
                    commit: c.commit.into_string(),
                    parent: Some(c.parent.into_string()),
                    message: c.message,
                    author_name: c.author_name,
                    author_email: c.author_email,
                    committed_at: c.committed_at,
                    files: c
                        .files
                        .into_iter()
                        .map(|f| {
                            let (op, from) = match f.change {
                                FileChangeKind::Added => ("add", None),
                                FileChangeKind::Modified => ("modify", None),
                                FileChangeKind::Deleted => ("delete", None),
                                FileChangeKind::Renamed { from } => ("rename", Some(from)),
                            };
                            ChangedFileRead {
                                op: op.to_owned(),
                                path: f.path,
                                from,
                                content: encode(f.content),
                            }
                        })
                        .collect(),
                    unrepresentable: unrepresentable_reads(c.unrepresentable),
                })
                .collect(),
        },
        BranchChanges::Snapshot {
            head,
            files,
            unrepresentable,
            since_lost,
        } => SyncJobResult::Snapshot {
            read: None,
            head: head.into_string(),
            since_lost,
            files: files
                .into_iter()
                .map(|(path, bytes)| FileContent {
                    path,
                    content: Some(STANDARD.encode(bytes)),
                })
                .collect(),
            unrepresentable: unrepresentable_reads(unrepresentable),
        },
    }
}

/// Entries that reposync cannot hold as files, passed on as read: their paths as base64
/// bytes, since they may not be text.
pub(crate) fn unrepresentable_reads(
    entries: Vec<UnrepresentableEntry>,
) -> Vec<UnrepresentableRead> {
    entries
        .into_iter()
        .map(|entry| UnrepresentableRead {
            op: match entry.change {
                FileChangeKind::Added => "add",
                FileChangeKind::Deleted => "delete",
                FileChangeKind::Modified | FileChangeKind::Renamed { .. } => "modify",
            }
            .to_owned(),
            path: STANDARD.encode(&entry.path),
            problem: entry.problem,
        })
        .collect()
}
