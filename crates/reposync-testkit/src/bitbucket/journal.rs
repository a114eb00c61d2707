//! The push journal: a log file in each watched bare repository to which its `post-receive`
//! hook, and the emulator itself, append one record per push.
//!
//! A file, rather than a socket or a pipe, because the hook runs in whatever process received
//! the push (root's `git http-backend`, or `git-receive-pack` as the `git` user under sshd),
//! long after and far from the test's runtime; appending to a world-writable file works for
//! all of them and survives the emulator being busy.
//!
//! A record is a `push <actor>` line, one `<old> <new> <ref>` line per updated ref (as
//! `post-receive` reads them on stdin), and a blank line that ends the record. The emulator may
//! add a fourth word to a ref line, `forced` or `fast-forward`, when the caller said which it
//! was. Records are appended with one `write`, so concurrent pushes do not interleave, and the
//! reader consumes only records whose blank line has arrived.

use std::fs::{self, OpenOptions};
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::Path;

use anyhow::{Context, Result, bail};

/// The journal's file name inside the bare repository.
pub(super) const JOURNAL_FILE: &str = "bitbucket-emulator-pushes.log";

/// A line of the hook script by which the emulator recognises its own hook.
const HOOK_MARKER: &str = "# reposync-testkit Bitbucket emulator: record every push";

/// The `post-receive` hook that appends each push to the journal.
///
/// The actor is the HTTP user (`REMOTE_USER`, set by `git http-backend`) or the system user
/// (`USER`, `git` under sshd). The record goes out in a single `printf`, which the shell writes
/// with one `write` for records up to its buffer size (8 KiB, some eighty refs).
pub(super) fn hook_script() -> String {
    format!(
        "#!/bin/sh
{HOOK_MARKER}
# for webhook delivery. Installed by BitbucketEmulator::add_webhook.
updates=$(cat)
[ -n \"$updates\" ] || exit 0
printf 'push %s\\n%s\\n\\n' \"${{REMOTE_USER:-${{USER:-unknown}}}}\" \"$updates\" \\
    >> \"${{GIT_DIR:-.}}/{JOURNAL_FILE}\"
"
    )
}

/// Whether `script` is a hook this module installed.
pub(super) fn is_our_hook(script: &str) -> bool {
    script.lines().any(|line| line == HOOK_MARKER)
}

/// One ref update as git reports it to `post-receive`; `None` stands for the all-zero id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct RefUpdate {
    /// The full ref name, e.g. `refs/heads/main`.
    pub reference: String,
    pub old: Option<String>,
    pub new: Option<String>,
    /// Whether the update was forced, when whoever recorded it said so.
    pub forced: Option<bool>,
}

/// One push: everything a single `git push` (or emulator call) changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Push {
    pub actor: String,
    pub updates: Vec<RefUpdate>,
}

impl Push {
    /// The record's text, ending with its blank line.
    fn encode(&self) -> String {
        let mut record = format!("push {}\n", self.actor);
        for update in &self.updates {
            // A missing side is written as zeros as long as the other side, as git does for
            // SHA-1 (40) and SHA-256 (64) repositories alike.
            let width = update
                .old
                .as_deref()
                .or(update.new.as_deref())
                .map_or(40, str::len);
            let zeros = "0".repeat(width);
            let old = update.old.as_deref().unwrap_or(&zeros);
            let new = update.new.as_deref().unwrap_or(&zeros);
            record.push_str(&format!("{old} {new} {}", update.reference));
            match update.forced {
                Some(true) => record.push_str(" forced"),
                Some(false) => record.push_str(" fast-forward"),
                None => {}
            }
            record.push('\n');
        }
        record.push('\n');
        record
    }
}

/// Appends `push` to the journal at `path` with a single write.
pub(super) fn append(path: &Path, push: &Push) -> Result<()> {
    if push.updates.is_empty() {
        return Ok(());
    }
    let record = push.encode();
    let mut file = OpenOptions::new()
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open the push journal {}", path.display()))?;
    file.write_all(record.as_bytes())
        .with_context(|| format!("cannot append to the push journal {}", path.display()))
}

/// The current length of the journal; a missing file counts as empty.
pub(super) fn len(path: &Path) -> Result<u64> {
    match fs::metadata(path) {
        Ok(metadata) => Ok(metadata.len()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(err) => Err(err).with_context(|| format!("cannot stat {}", path.display())),
    }
}

/// What [`read_from`] found after an offset.
#[derive(Debug, Default)]
pub(super) struct Batch {
    /// Complete records, oldest first; records that do not parse come as errors.
    pub records: Vec<Result<Push, String>>,
    /// The offset just after the last complete record.
    pub next: u64,
    /// Whether bytes of an unfinished record follow `next`.
    pub partial: bool,
}

/// Reads the complete records of the journal from `offset` on.
pub(super) fn read_from(path: &Path, offset: u64) -> Result<Batch> {
    let mut file = match fs::File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Batch {
                next: offset,
                ..Batch::default()
            });
        }
        Err(err) => {
            return Err(err).with_context(|| format!("cannot open {}", path.display()));
        }
    };
    file.seek(SeekFrom::Start(offset))
        .with_context(|| format!("cannot seek in {}", path.display()))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let (records, consumed) = parse_complete(&bytes);
    let consumed_u64 = u64::try_from(consumed).context("journal offset overflows u64")?;
    Ok(Batch {
        records,
        next: offset + consumed_u64,
        partial: consumed < bytes.len(),
    })
}

/// Splits `bytes` into complete records (each ended by a blank line) and returns them with the
/// number of bytes they span; an unfinished record at the end is left for the next read.
pub(super) fn parse_complete(bytes: &[u8]) -> (Vec<Result<Push, String>>, usize) {
    let mut records = Vec::new();
    let mut start = 0;
    while let Some(end) = find(&bytes[start..], b"\n\n") {
        let text = String::from_utf8_lossy(&bytes[start..start + end]);
        records.push(parse_record(&text));
        start += end + 2;
    }
    (records, start)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

fn parse_record(text: &str) -> Result<Push, String> {
    let mut lines = text.lines();
    let actor = lines
        .next()
        .and_then(|line| line.strip_prefix("push "))
        .ok_or_else(|| format!("journal record does not start with `push <actor>`: {text:?}"))?;
    let updates = lines
        .map(parse_update)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| format!("{err} in journal record {text:?}"))?;
    Ok(Push {
        actor: actor.trim().to_owned(),
        updates,
    })
}

fn parse_update(line: &str) -> Result<RefUpdate, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let (old, new, reference, forced) = match words.as_slice() {
        [old, new, reference] => (*old, *new, *reference, None),
        [old, new, reference, "forced"] => (*old, *new, *reference, Some(true)),
        [old, new, reference, "fast-forward"] => (*old, *new, *reference, Some(false)),
        _ => return Err(format!("malformed ref update line {line:?}")),
    };
    Ok(RefUpdate {
        reference: reference.to_owned(),
        old: object_id(old)?,
        new: object_id(new)?,
        forced,
    })
}

/// A hex object id, or `None` for git's all-zero "no object".
fn object_id(word: &str) -> Result<Option<String>, String> {
    if word.is_empty() || !word.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return Err(format!("{word:?} is not an object id"));
    }
    Ok((!word.bytes().all(|byte| byte == b'0')).then(|| word.to_ascii_lowercase()))
}

/// Refuses ref names that would break the line format; git itself refuses them too.
pub(super) fn check_reference(reference: &str) -> Result<()> {
    if !reference.starts_with("refs/") || reference.contains(char::is_whitespace) {
        bail!("{reference:?} is not a full ref name such as refs/heads/main or refs/tags/v1");
    }
    Ok(())
}

/// Refuses object ids that would break the line format.
pub(super) fn check_object_id(id: &str) -> Result<()> {
    match object_id(id) {
        Ok(Some(_)) => Ok(()),
        Ok(None) => bail!("use None rather than the all-zero id {id:?} for a missing side"),
        Err(err) => bail!("{err}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "1111111111111111111111111111111111111111";
    const B: &str = "2222222222222222222222222222222222222222";
    const ZERO: &str = "0000000000000000000000000000000000000000";

    #[test]
    fn a_hook_record_with_several_refs_is_one_push() {
        let text = format!("push deploy\n{A} {B} refs/heads/main\n{ZERO} {A} refs/tags/v1\n\n");
        let (records, consumed) = parse_complete(text.as_bytes());
        assert_eq!(consumed, text.len());
        let push = records.into_iter().next().unwrap().unwrap();
        assert_eq!(push.actor, "deploy");
        assert_eq!(push.updates.len(), 2);
        assert_eq!(push.updates[1].old, None);
        assert_eq!(push.updates[1].new.as_deref(), Some(A));
        assert_eq!(push.updates[1].forced, None);
    }

    #[test]
    fn an_unfinished_record_waits_for_its_blank_line() {
        let done = format!("push a\n{A} {B} refs/heads/main\n\n");
        let text = format!("{done}push b\n{B} {A} refs/heads/main\n");
        let (records, consumed) = parse_complete(text.as_bytes());
        assert_eq!(records.len(), 1);
        assert_eq!(consumed, done.len());
    }

    #[test]
    fn encoding_round_trips_and_writes_zeros_for_missing_sides() {
        let push = Push {
            actor: "reposync-test".into(),
            updates: vec![
                RefUpdate {
                    reference: "refs/heads/gone".into(),
                    old: Some(A.into()),
                    new: None,
                    forced: Some(false),
                },
                RefUpdate {
                    reference: "refs/heads/main".into(),
                    old: Some(A.into()),
                    new: Some(B.into()),
                    forced: Some(true),
                },
            ],
        };
        let text = push.encode();
        assert!(text.contains(&format!("{A} {ZERO} refs/heads/gone fast-forward\n")));
        let (records, _) = parse_complete(text.as_bytes());
        assert_eq!(records, vec![Ok(push)]);
    }

    #[test]
    fn garbage_is_reported_not_skipped_silently() {
        let (records, _) = parse_complete(b"push x\nnot an update\n\nhello\n\n");
        assert_eq!(records.len(), 2);
        assert!(records.iter().all(Result::is_err));
    }

    #[test]
    fn the_hook_is_recognised() {
        assert!(is_our_hook(&hook_script()));
        assert!(!is_our_hook("#!/bin/sh\nexit 0\n"));
    }
}
