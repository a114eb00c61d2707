//! What the engine counts, through the `metrics` facade: the binary that runs it decides
//! whether and how the counts are exported.

use std::time::Duration;

use reposync_api::SyncJobResult;
use reposync_store::AttemptEnd;

/// Describes the engine's metrics, for the exporter's HELP lines.
pub fn describe_metrics() {
    use metrics::{describe_counter, describe_histogram};
    describe_counter!(
        "reposync_commit_attempts_total",
        "Outbox commit attempts, by outcome: pushed, conflict, failed (needs a person), retry, held (a connection failed its Test)."
    );
    describe_counter!(
        "reposync_git_reads_total",
        "Reads of a synced branch from Git, by outcome: commits, snapshot (read whole), branch_gone, failed."
    );
    describe_histogram!(
        "reposync_git_read_duration_seconds",
        "Time a delegate took to fetch a branch's new commits, by outcome."
    );
    describe_counter!(
        "reposync_git_read_bytes_total",
        "Bytes of file content fetched from Git by reads of synced branches."
    );
}

/// Counts one finished commit attempt.
pub(crate) fn attempt_ended(end: &AttemptEnd) {
    let outcome = match end {
        AttemptEnd::Pushed { .. } => "pushed",
        AttemptEnd::Conflict { .. } => "conflict",
        AttemptEnd::Failed { .. } => "failed",
        AttemptEnd::Retry { .. } => "retry",
        AttemptEnd::Held { .. } => "held",
    };
    metrics::counter!("reposync_commit_attempts_total", "outcome" => outcome).increment(1);
}

/// Counts one fetch of a branch's changes: its outcome, time, and the content it brought.
pub(crate) fn branch_read(read: Result<&SyncJobResult, ()>, took: Duration) {
    let (outcome, bytes) = match read {
        Ok(SyncJobResult::Commits { commits, .. }) => (
            "commits",
            commits
                .iter()
                .flat_map(|commit| &commit.files)
                .map(|file| file.content.as_ref().map_or(0, |c| decoded_len(c)))
                .sum(),
        ),
        Ok(SyncJobResult::Snapshot { files, .. }) => (
            "snapshot",
            files
                .iter()
                .map(|file| file.content.as_ref().map_or(0, |c| decoded_len(c)))
                .sum(),
        ),
        Ok(SyncJobResult::BranchGone) => ("branch_gone", 0),
        Ok(_) | Err(()) => ("failed", 0),
    };
    metrics::counter!("reposync_git_reads_total", "outcome" => outcome).increment(1);
    metrics::histogram!("reposync_git_read_duration_seconds", "outcome" => outcome).record(took);
    metrics::counter!("reposync_git_read_bytes_total").increment(bytes);
}

/// The length of base64 `text` once decoded, without decoding it.
fn decoded_len(text: &str) -> u64 {
    let padding = text.bytes().rev().take_while(|&b| b == b'=').count();
    (text.len() / 4 * 3).saturating_sub(padding) as u64
}

#[cfg(test)]
mod tests {
    #[test]
    fn decoded_length_follows_the_padding() {
        use base64::Engine as _;
        for text in ["", "a", "ab", "abc", "abcd", "kind: Service\n"] {
            let encoded = base64::engine::general_purpose::STANDARD.encode(text);
            assert_eq!(super::decoded_len(&encoded), text.len() as u64, "{text:?}");
        }
    }
}
