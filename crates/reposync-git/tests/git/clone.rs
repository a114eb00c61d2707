//! `LocalClone` against real servers: git http-backend over TLS with Basic auth, and OpenSSH
//! sshd for user `git`, both from reposync-testkit. Remote activity that is not ours is made by
//! a separate hermetic git clone pushing to the same bare repository, or by server hooks.

#![allow(clippy::expect_used)] // Test helpers outside #[test] functions may panic.

use crate::common;

use std::path::Path;

use common::{
    Fixture, PASSWORD, PROVIDER, REPO, Transport, USER, bot, delete, main, oid, raw_stdout, write,
};
use reposync_git::{
    CommitOutcome, CommitRequest, ConflictFile, FileChange, GitAuth, GitError, GitErrorKind,
    LocalClone, Remote, Signature,
};
use reposync_model::{ChangesetId, EmailAddress, ObjectId, Person, UserName};
use secrecy::SecretString;

fn owned(files: &[(&str, &str)]) -> Vec<(String, String)> {
    files
        .iter()
        .map(|(p, c)| ((*p).to_owned(), (*c).to_owned()))
        .collect()
}

/// `commit_and_push` with no changesets and no commits of our own to know about.
trait CommitFiles {
    async fn commit_files(
        &self,
        remote: &Remote,
        base: Option<&ObjectId>,
        files: &[FileChange],
        author: &Signature,
        summary: &str,
        max_attempts: u32,
    ) -> Result<CommitOutcome, GitError>;
}

impl CommitFiles for LocalClone {
    async fn commit_files(
        &self,
        remote: &Remote,
        base: Option<&ObjectId>,
        files: &[FileChange],
        author: &Signature,
        summary: &str,
        max_attempts: u32,
    ) -> Result<CommitOutcome, GitError> {
        let request = CommitRequest {
            base,
            files,
            author,
            summary: Some(summary),
            changesets: &[],
            made_by: &[],
            author_from_user: false,
            own_commits: &[],
            max_attempts,
        };
        self.commit_and_push(remote, &request).await
    }
}

fn pushed(outcome: CommitOutcome) -> (ObjectId, Option<ObjectId>, u32) {
    match outcome {
        CommitOutcome::Pushed {
            commit,
            parent,
            attempts,
            ..
        } => (commit, parent, attempts),
        other => panic!("expected a push, got {other:?}"),
    }
}

/// The first push creates the branch of an empty repository; a second push reuses the warm
/// clone, deletes and adds paths with spaces and non-ASCII, and only the branch is fetched.
async fn main_flow(transport: Transport) {
    let fx = Fixture::new(transport).await;
    fx.root
        .create_empty_repo(REPO, "main")
        .expect("empty repository");
    let clone = fx.open("clone").await;
    assert_eq!(clone.fetch(&fx.remote).await.expect("fetch"), None);

    let first = clone
        .commit_files(
            &fx.remote,
            None,
            &[
                write(PROVIDER, "type: GIT\n"),
                write("Setup/Applications/été/Index.yaml", "name: été\n"),
                write("Setup/a.yaml", "a: 1\n"),
            ],
            &bot(),
            "Create the tree",
            3,
        )
        .await
        .expect("first push");
    let (first, parent, attempts) = pushed(first);
    assert_eq!((parent, attempts), (None, 1));
    assert_eq!(fx.head("main").as_ref(), Some(&first));
    let raw = raw_stdout(
        &fx.root,
        &fx.repo(),
        &["cat-file", "commit", first.as_str()],
    );
    assert!(!raw.contains("\nparent "), "{raw}");
    assert!(
        raw.contains("\nauthor Config Bot <config-bot@example.invalid> "),
        "{raw}"
    );
    assert!(
        raw.contains("\ncommitter Config Bot <config-bot@example.invalid> "),
        "{raw}"
    );
    assert!(
        raw.ends_with(
            "\n\nCreate the tree\n\nADD: Setup/Applications/été/Index.yaml\nADD: Setup/Source Repo Providers/Platform Git.yaml\nADD: Setup/a.yaml\n"
        ),
        "the message lists exactly what the commit adds: {raw:?}"
    );

    // The clone stays on disk; opening it again must reuse it, not make it anew.
    let marker = clone.dir().join(".git").join("reused-marker");
    std::fs::write(&marker, "").expect("marker");
    let clone = fx.open("clone").await;
    assert!(marker.exists(), "the warm clone was recreated");

    let renamed = "Setup/Source Repo Providers/Other Git.yaml";
    let second = clone
        .commit_files(
            &fx.remote,
            Some(&first),
            &[delete(PROVIDER), write(renamed, "type: GIT\nurl: x\n")],
            &bot(),
            "Rename the provider\n\nWith a body.\n",
            3,
        )
        .await
        .expect("second push");
    let (second, parent, _) = pushed(second);
    assert_eq!(parent.as_ref(), Some(&first));
    assert_eq!(fx.head("main").as_ref(), Some(&second));
    let raw = raw_stdout(
        &fx.root,
        &fx.repo(),
        &["cat-file", "commit", second.as_str()],
    );
    assert!(
        raw.ends_with(&format!(
            "\n\nRename the provider\n\nWith a body.\n\nADD: {renamed}\nDELETE: {PROVIDER}\n"
        )),
        "{raw:?}"
    );
    let expected = [
        ("Setup/Applications/été/Index.yaml", "name: été\n"),
        (renamed, "type: GIT\nurl: x\n"),
        ("Setup/a.yaml", "a: 1\n"),
    ];
    let mut tree = fx.tree(&second);
    tree.sort();
    let mut want = owned(&expected);
    want.sort();
    assert_eq!(tree, want);

    let files = clone
        .read_files(&fx.remote, &second, "Setup/")
        .await
        .expect("read files")
        .files;
    let files: Vec<(String, String)> = files
        .into_iter()
        .map(|(p, c)| (p, String::from_utf8(c).expect("utf-8")))
        .collect();
    let mut sorted = files.clone();
    sorted.sort();
    assert_eq!(files, sorted, "sorted by path");
    assert_eq!(sorted, want);

    assert_eq!(
        fx.in_clone(&clone, &["for-each-ref", "--format=%(refname)"]),
        "refs/remotes/origin/main",
        "only the branch is fetched"
    );
    assert!(
        !fx.clone_files_text(&clone).contains(&fx.secret),
        "a secret was written into the clone"
    );
}

#[tokio::test]
async fn https_first_push_creates_the_branch_and_the_warm_clone_pushes_again() {
    main_flow(Transport::Https).await;
}

#[tokio::test]
async fn ssh_first_push_creates_the_branch_and_the_warm_clone_pushes_again() {
    main_flow(Transport::Ssh).await;
}

#[tokio::test]
async fn the_first_fetch_is_shallow_and_blobless_and_blobs_come_in_one_request() {
    let fx = Fixture::new(Transport::Https).await;
    fx.populate();
    fx.root
        .commit(REPO, "main", &[("Setup/a.yaml", "a: 2\n")], "Second")
        .expect("commit");
    let many: Vec<(String, String)> = (0..20)
        .map(|n| (format!("Setup/Many/file {n}.yaml"), format!("n: {n}\n")))
        .collect();
    let many_refs: Vec<(&str, &str)> = many.iter().map(|(p, c)| (p.as_str(), c.as_str())).collect();
    let head = oid(&fx
        .root
        .commit(REPO, "main", &many_refs, "Third")
        .expect("commit"));
    fx.bare(&["config", "uploadpack.allowFilter", "true"]);

    let clone = fx.open("clone").await;
    assert_eq!(
        clone.fetch(&fx.remote).await.expect("fetch").as_ref(),
        Some(&head)
    );
    assert_eq!(
        fx.in_clone(&clone, &["rev-parse", "--is-shallow-repository"]),
        "true"
    );
    assert_eq!(
        fx.in_clone(&clone, &["rev-list", "--count", head.as_str()]),
        "1",
        "depth 1"
    );
    assert_eq!(fx.blobs_in_clone(&clone), 0, "no file contents fetched");
    assert_eq!(
        fx.in_clone(&clone, &["for-each-ref", "--format=%(refname)"]),
        "refs/remotes/origin/main",
        "no other branch and no tag"
    );

    let before = fx.upload_pack_posts();
    let files = clone
        .read_files(&fx.remote, &head, "Setup/Many/")
        .await
        .expect("read files")
        .files;
    assert_eq!(files.len(), 20);
    for (path, content) in &files {
        let expected = many.iter().find(|(p, _)| p == path).expect("known path");
        assert_eq!(content, expected.1.as_bytes());
    }
    let requests = fx.upload_pack_posts() - before;
    assert!(
        requests <= 2,
        "20 contents took {requests} requests:\n{}",
        fx.https.as_ref().expect("https").log()
    );
    assert_eq!(fx.blobs_in_clone(&clone), 20, "only the files read");

    // Read again: everything is local now.
    let before = fx.upload_pack_posts();
    let all = clone
        .read_files(&fx.remote, &head, "Setup/")
        .await
        .expect("read files")
        .files;
    assert_eq!(all.len(), 24);
    assert!(
        all.iter()
            .any(|(p, c)| p == "Setup/a.yaml" && c == b"a: 2\n")
    );
    assert!(all.iter().all(|(p, _)| p.starts_with("Setup/")));
    let again = clone
        .read_files(&fx.remote, &head, "Setup/")
        .await
        .expect("read files")
        .files;
    assert_eq!(all, again);
    assert_eq!(
        fx.upload_pack_posts() - before,
        1,
        "only the 4 new contents"
    );

    // A later fetch is incremental: it keeps the history it had instead of starting over.
    let next = oid(&fx
        .root
        .commit(REPO, "main", &[("Setup/b.yaml", "b: 2\n")], "Fourth")
        .expect("commit"));
    assert_eq!(
        clone.fetch(&fx.remote).await.expect("fetch").as_ref(),
        Some(&next)
    );
    assert_eq!(
        fx.in_clone(&clone, &["rev-list", "--count", next.as_str()]),
        "2"
    );
}

#[tokio::test]
async fn a_server_that_refuses_filters_gets_a_full_shallow_fetch() {
    let fx = Fixture::new(Transport::Https).await;
    let head = fx.populate();
    // The server advertises filters but refuses this one, so git fails rather than ignore it.
    fx.bare(&["config", "uploadpack.allowFilter", "true"]);
    fx.bare(&["config", "uploadpackfilter.allow", "false"]);

    let clone = fx.open("clone").await;
    assert_eq!(
        clone.fetch(&fx.remote).await.expect("fetch").as_ref(),
        Some(&head)
    );
    assert_eq!(
        fx.in_clone(&clone, &["rev-parse", "--is-shallow-repository"]),
        "true"
    );
    assert_eq!(fx.blobs_in_clone(&clone), 5, "whole files");
    let before = fx.upload_pack_posts();
    let files = clone
        .read_files(&fx.remote, &head, "Setup/")
        .await
        .expect("read files")
        .files;
    assert_eq!(files.len(), 4);
    assert_eq!(fx.upload_pack_posts(), before, "nothing left to fetch");
    let (_, parent, _) = pushed(
        clone
            .commit_files(
                &fx.remote,
                Some(&head),
                &[write("Setup/a.yaml", "a: 3\n")],
                &bot(),
                "Change a",
                3,
            )
            .await
            .expect("push"),
    );
    assert_eq!(parent.as_ref(), Some(&head));
}

#[tokio::test]
async fn ssh_a_server_that_cannot_send_contents_by_id_gets_a_clone_with_whole_files() {
    // The testkit's sshd does not accept GIT_PROTOCOL, so git speaks protocol v0 over it:
    // upload-pack accepts the filter but refuses to send blobs that no ref advertises.
    let fx = Fixture::new(Transport::Ssh).await;
    let head = fx.populate();
    fx.bare(&["config", "uploadpack.allowFilter", "true"]);
    let clone = fx.open("clone").await;
    clone.fetch(&fx.remote).await.expect("fetch");
    assert_eq!(fx.blobs_in_clone(&clone), 0, "blobless at first");

    let files = clone
        .read_files(&fx.remote, &head, "Setup/")
        .await
        .expect("read files")
        .files;
    assert_eq!(files.len(), 4);
    assert!(files.contains(&("Setup/b.yaml".to_owned(), b"b: 1\n".to_vec())));
    assert_eq!(fx.blobs_in_clone(&clone), 5, "whole files of the head");
    assert_eq!(
        fx.in_clone(&clone, &["rev-parse", "--is-shallow-repository"]),
        "true"
    );
    // The clone stays one with whole files: reopening reuses it.
    let marker = clone.dir().join(".git").join("reused-marker");
    std::fs::write(&marker, "").expect("marker");
    let clone = fx.open("clone").await;
    assert!(marker.exists());
    let (_, parent, _) = pushed(
        clone
            .commit_files(
                &fx.remote,
                Some(&head),
                &[write("Setup/a.yaml", "a: 2\n")],
                &bot(),
                "Change",
                3,
            )
            .await
            .expect("push"),
    );
    assert_eq!(parent, Some(head));
}

/// Commits on other files since our base are kept: ours goes on top of them.
async fn external_commit_on_other_files(transport: Transport) {
    let fx = Fixture::new(transport).await;
    let base = fx.populate();
    let clone = fx.open("clone").await;
    clone.fetch(&fx.remote).await.expect("fetch");
    let theirs = fx.external_commit(
        &[
            ("README.md", Some("hello again\n")),
            ("Setup/theirs.yaml", Some("t: 1\n")),
            ("Setup/b.yaml", None),
        ],
        "Their change",
    );

    let outcome = clone
        .commit_files(
            &fx.remote,
            Some(&base),
            &[write("Setup/a.yaml", "a: ours\n")],
            &bot(),
            "Our change",
            3,
        )
        .await
        .expect("push");
    let (commit, parent, attempts) = pushed(outcome);
    assert_eq!(parent.as_ref(), Some(&theirs));
    assert_eq!(attempts, 1);
    assert_eq!(fx.head("main").as_ref(), Some(&commit));
    let tree = fx.tree(&commit);
    let content = |path: &str| {
        tree.iter()
            .find(|(p, _)| p == path)
            .map(|(_, c)| c.as_str())
    };
    assert_eq!(content("Setup/a.yaml"), Some("a: ours\n"));
    assert_eq!(content("README.md"), Some("hello again\n"));
    assert_eq!(content("Setup/theirs.yaml"), Some("t: 1\n"));
    assert_eq!(content("Setup/b.yaml"), None);
}

#[tokio::test]
async fn https_an_external_commit_on_other_files_is_kept_under_ours() {
    external_commit_on_other_files(Transport::Https).await;
}

#[tokio::test]
async fn ssh_an_external_commit_on_other_files_is_kept_under_ours() {
    external_commit_on_other_files(Transport::Ssh).await;
}

/// A commit since our base that changed our paths is a conflict, and nothing is pushed.
async fn external_commit_on_the_same_files(transport: Transport) {
    let fx = Fixture::new(transport).await;
    let base = fx.populate();
    fx.bare(&["config", "uploadpack.allowFilter", "true"]);
    let clone = fx.open("clone").await;
    clone.fetch(&fx.remote).await.expect("fetch");
    let theirs = fx.external_commit(
        &[
            ("Setup/a.yaml", Some("a: theirs\n")),
            ("Setup/b.yaml", None),
            (PROVIDER, Some("type: GIT\nurl: theirs\n")),
            ("README.md", Some("unrelated\n")),
        ],
        "Their change",
    );

    let outcome = clone
        .commit_files(
            &fx.remote,
            Some(&base),
            &[
                write("Setup/a.yaml", "a: ours\n"),
                write("Setup/b.yaml", "b: ours\n"),
                write("Setup/new.yaml", "n: 1\n"),
                // Changed on both sides to the same content: no conflict.
                write(PROVIDER, "type: GIT\nurl: theirs\n"),
            ],
            &bot(),
            "Our change",
            3,
        )
        .await
        .expect("no error");
    assert_eq!(
        outcome,
        CommitOutcome::Conflict {
            head: theirs.clone(),
            files: vec![
                ConflictFile {
                    path: "Setup/a.yaml".into(),
                    theirs: Some(b"a: theirs\n".to_vec()),
                },
                ConflictFile {
                    path: "Setup/b.yaml".into(),
                    theirs: None,
                },
            ],
        }
    );
    assert_eq!(fx.head("main").as_ref(), Some(&theirs), "nothing pushed");
}

#[tokio::test]
async fn https_an_external_commit_on_the_same_file_is_a_conflict() {
    external_commit_on_the_same_files(Transport::Https).await;
}

#[tokio::test]
async fn ssh_an_external_commit_on_the_same_file_is_a_conflict() {
    external_commit_on_the_same_files(Transport::Ssh).await;
}

#[tokio::test]
async fn changes_the_branch_already_holds_are_nothing_to_commit() {
    let fx = Fixture::new(Transport::Https).await;
    let base = fx.populate();
    let clone = fx.open("clone").await;
    let theirs = fx.external_commit(&[("Setup/a.yaml", Some("a: 2\n"))], "Same as ours");
    let outcome = clone
        .commit_files(
            &fx.remote,
            Some(&base),
            &[
                write("Setup/a.yaml", "a: 2\n"),
                delete("Setup/never-existed.yaml"),
            ],
            &bot(),
            "Our change",
            3,
        )
        .await
        .expect("no error");
    assert_eq!(
        outcome,
        CommitOutcome::NothingToCommit {
            head: Some(theirs.clone()),
            landed: Vec::new(),
        }
    );
    assert_eq!(fx.head("main"), Some(theirs));
}

#[tokio::test]
async fn a_new_branch_is_created_without_a_parent() {
    let fx = Fixture::new(Transport::Https).await;
    let main = fx.populate();
    let clone = fx.open_branch("release", "release/next").await;
    let (commit, parent, _) = pushed(
        clone
            .commit_files(
                &fx.remote,
                None,
                &[write("Setup/a.yaml", "a: 9\n")],
                &bot(),
                "Start release",
                3,
            )
            .await
            .expect("push"),
    );
    assert_eq!(parent, None);
    assert_eq!(fx.head("release/next"), Some(commit.clone()));
    assert_eq!(fx.tree(&commit), owned(&[("Setup/a.yaml", "a: 9\n")]));
    assert_eq!(fx.head("main"), Some(main), "main untouched");
}

/// A pre-receive hook that records each call and declines every push.
const DECLINING_HOOK: &str = "#!/bin/sh
cat >/dev/null
echo call >> \"$PWD/hook-calls\"
echo 'protected branch: changes to main need a pull request' >&2
exit 1
";

/// A pre-receive hook that, on each of its first `races` calls, moves main (adding
/// racer.txt) before the pushed update applies, as a concurrent pusher would.
fn install_racing_hook(fx: &Fixture, races: u32) {
    fx.root
        .install_racing_hook(REPO, "main", "racer.txt", races)
        .expect("hook");
}

fn hook_calls(fx: &Fixture) -> usize {
    fx.root.hook_calls(REPO).expect("hook calls")
}

async fn declined_push(transport: Transport) {
    let fx = Fixture::new(transport).await;
    let base = fx.populate();
    fx.root
        .install_hook(REPO, "pre-receive", DECLINING_HOOK)
        .expect("hook");
    let clone = fx.open("clone").await;
    let error = clone
        .commit_files(
            &fx.remote,
            Some(&base),
            &[write("Setup/a.yaml", "a: 2\n")],
            &bot(),
            "Change",
            5,
        )
        .await
        .expect_err("declined");
    assert_eq!(error.kind, GitErrorKind::PushRejected, "{error}");
    assert!(
        error.detail.contains("need a pull request"),
        "the server's reason: {error}"
    );
    assert!(!error.to_string().contains(&fx.secret));
    assert_eq!(hook_calls(&fx), 1, "a refusal is not retried");
    assert_eq!(fx.head("main"), Some(base));
}

#[tokio::test]
async fn https_a_declining_hook_is_push_rejected_without_retries() {
    declined_push(Transport::Https).await;
}

#[tokio::test]
async fn ssh_a_declining_hook_is_push_rejected_without_retries() {
    declined_push(Transport::Ssh).await;
}

/// A pre-receive hook that takes the server's receive-pack down with it: git's words are all
/// that explains such a failure.
const DYING_HOOK: &str = "#!/bin/sh
cat >/dev/null
kill -9 $PPID
";

#[tokio::test]
async fn a_push_that_fails_in_an_unclassified_way_says_what_git_said() {
    let fx = Fixture::new(Transport::Https).await;
    let base = fx.populate();
    fx.root
        .install_hook(REPO, "pre-receive", DYING_HOOK)
        .expect("hook");
    let clone = fx.open("clone").await;
    let error = clone
        .commit_files(
            &fx.remote,
            Some(&base),
            &[write("Setup/a.yaml", "a: 2\n")],
            &bot(),
            "Change",
            3,
        )
        .await
        .expect_err("the server died");
    assert_eq!(error.kind, GitErrorKind::Other, "{error:?}");
    assert_eq!(error.kind.code(), "git_failed");
    // The message itself carries git's first error line ("fatal: the remote end hung up
    // unexpectedly"), not only "git failed".
    let prefix = format!("git failed for {}: ", fx.remote.url);
    let said = error
        .message
        .strip_prefix(&prefix)
        .and_then(|rest| rest.strip_suffix(" (branch main)"))
        .unwrap_or_else(|| panic!("{error:?}"));
    assert!(
        said.starts_with("fatal: ") || said.starts_with("error: "),
        "{error:?}"
    );
    assert!(error.detail.contains(said), "{error:?}");
    assert!(!error.to_string().contains(&fx.secret));
    assert_eq!(fx.head("main"), Some(base));
}

#[tokio::test]
async fn a_branch_that_moves_during_the_push_is_fetched_and_pushed_again() {
    let fx = Fixture::new(Transport::Https).await;
    let base = fx.populate();
    install_racing_hook(&fx, 1);
    let clone = fx.open("clone").await;
    let outcome = clone
        .commit_files(
            &fx.remote,
            Some(&base),
            &[write("Setup/a.yaml", "a: 2\n")],
            &bot(),
            "Change",
            3,
        )
        .await
        .expect("push");
    let (commit, parent, attempts) = pushed(outcome);
    assert_eq!(attempts, 2);
    assert_eq!(hook_calls(&fx), 2);
    let racer = parent.expect("a parent");
    assert_ne!(racer, base);
    assert_eq!(
        fx.bare(&["log", "--format=%an", "-1", racer.as_str()]),
        "Racer",
        "ours went on top of the racing commit"
    );
    assert_eq!(fx.head("main"), Some(commit.clone()));
    let tree = fx.tree(&commit);
    assert!(tree.contains(&("racer.txt".into(), "race 1\n".into())));
    assert!(tree.contains(&("Setup/a.yaml".into(), "a: 2\n".into())));
}

#[tokio::test]
async fn a_branch_that_keeps_moving_exhausts_the_attempts_as_push_raced() {
    let fx = Fixture::new(Transport::Https).await;
    let base = fx.populate();
    install_racing_hook(&fx, 100);
    let clone = fx.open("clone").await;
    let error = clone
        .commit_files(
            &fx.remote,
            Some(&base),
            &[write("Setup/a.yaml", "a: 2\n")],
            &bot(),
            "Change",
            3,
        )
        .await
        .expect_err("raced");
    assert_eq!(error.kind, GitErrorKind::PushRaced, "{error}");
    assert_eq!(hook_calls(&fx), 3);
    let head = fx.head("main").expect("main");
    assert_eq!(
        fx.bare(&["log", "--format=%an", "-1", head.as_str()]),
        "Racer"
    );
}

/// Breaks the git directory of a clone in one way.
type Corruption = fn(&Path);

/// Each way a clone directory can be broken, applied to a warm clone.
fn corruptions() -> Vec<(&'static str, Corruption)> {
    vec![
        ("garbage in HEAD", |git: &Path| {
            std::fs::write(git.join("HEAD"), "garbage\n").expect("write")
        }),
        ("objects deleted", |git: &Path| {
            std::fs::remove_dir_all(git.join("objects")).expect("remove")
        }),
        ("objects emptied", |git: &Path| {
            for entry in std::fs::read_dir(git.join("objects"))
                .expect("read")
                .flatten()
            {
                std::fs::remove_dir_all(entry.path()).expect("remove");
            }
        }),
        ("another URL", |git: &Path| {
            let config = std::fs::read_to_string(git.join("config")).expect("read");
            let moved = config.replace("acme/config.git", "acme/other.git");
            std::fs::write(git.join("config"), moved).expect("write")
        }),
        ("an unfinished creation", |git: &Path| {
            let config = std::fs::read_to_string(git.join("config")).expect("read");
            let cut = config.find("[reposync]").expect("marker section");
            std::fs::write(git.join("config"), &config[..cut]).expect("write")
        }),
    ]
}

#[tokio::test]
async fn open_starts_afresh_from_a_broken_clone() {
    let fx = Fixture::new(Transport::Https).await;
    let head = fx.populate();
    fx.bare(&["config", "uploadpack.allowFilter", "true"]);
    for (name, corrupt) in corruptions() {
        let clone = fx.open(name).await;
        assert_eq!(
            clone.fetch(&fx.remote).await.expect("fetch").as_ref(),
            Some(&head)
        );
        let git_dir = clone.dir().join(".git");
        std::fs::write(git_dir.join("reused-marker"), "").expect("marker");
        corrupt(&git_dir);

        let clone = LocalClone::open(&fx.runner, &fx.clone_dir(name), &fx.remote, &main())
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            !git_dir.join("reused-marker").exists(),
            "{name}: not recloned"
        );
        assert_eq!(
            clone.fetch(&fx.remote).await.expect("fetch").as_ref(),
            Some(&head),
            "{name}"
        );
        let files = clone
            .read_files(&fx.remote, &head, "Setup/a")
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .files;
        assert_eq!(
            files,
            vec![("Setup/a.yaml".to_owned(), b"a: 1\n".to_vec())],
            "{name}"
        );
    }
}

#[tokio::test]
async fn a_directory_that_is_not_a_clone_is_left_alone() {
    let fx = Fixture::new(Transport::Https).await;
    fx.populate();
    let dir = fx.clone_dir("precious");
    std::fs::create_dir_all(dir.join(".git")).expect("mkdir");
    std::fs::write(dir.join("notes.txt"), "keep me").expect("write");
    let error = LocalClone::open(&fx.runner, &dir, &fx.remote, &main())
        .await
        .expect_err("refused");
    assert_eq!(error.kind, GitErrorKind::InvalidRequest, "{error}");
    assert!(error.to_string().contains("notes.txt"), "{error}");
    assert!(dir.join("notes.txt").exists());
    assert!(dir.join(".git").exists());
}

#[tokio::test]
async fn wrong_credentials_are_classified_and_never_echoed() {
    let fx = Fixture::new(Transport::Https).await;
    fx.populate();
    let wrong = "wrong-canary-password-0c1d";
    let remote = Remote {
        url: fx.remote.url.clone(),
        auth: GitAuth::Https {
            username: USER.into(),
            password: SecretString::from(wrong),
            ca_pem: Some(fx.https.as_ref().expect("https").ca_pem()),
        },
    };
    let clone = LocalClone::open(&fx.runner, &fx.clone_dir("clone"), &remote, &main())
        .await
        .expect("open needs no network");
    let error = clone.fetch(&remote).await.expect_err("refused");
    assert_eq!(error.kind, GitErrorKind::AuthFailed, "{error}");
    assert!(!format!("{error} {error:?}").contains(wrong));
    assert!(!fx.clone_files_text(&clone).contains(wrong));
}

#[tokio::test]
async fn a_clone_refuses_another_remote_and_bad_input_before_running_git() {
    let fx = Fixture::new(Transport::Https).await;
    let base = fx.populate();
    let clone = fx.open("clone").await;
    let other = Remote {
        url: format!("{}x", fx.remote.url),
        auth: GitAuth::Https {
            username: USER.into(),
            password: SecretString::from(PASSWORD),
            ca_pem: None,
        },
    };
    assert!(clone.fetch(&other).await.is_err());
    for bad in [
        "../escape.yaml",
        "Setup//a.yaml",
        ".git/config",
        "Setup/.GIT/config",
        "Setup/git~1/x.yaml",
        "Setup/a\u{1}b.yaml",
    ] {
        let error = clone
            .commit_files(
                &fx.remote,
                Some(&base),
                &[write(bad, "x")],
                &bot(),
                "Bad",
                3,
            )
            .await
            .expect_err("refused");
        assert_eq!(error.kind, GitErrorKind::InvalidRequest, "{error}");
        // The error names the path, escaped, and why it cannot be written.
        let escaped = reposync_model::escape_path(bad.as_bytes());
        assert!(
            error.to_string().contains(&format!(
                "cannot write {escaped}: it is not a path reposync can represent"
            )),
            "{error}"
        );
    }
    let twice = clone
        .commit_files(
            &fx.remote,
            Some(&base),
            &[write("Setup/a.yaml", "x"), delete("Setup/a.yaml")],
            &bot(),
            "Twice",
            3,
        )
        .await
        .expect_err("refused");
    assert_eq!(twice.kind, GitErrorKind::InvalidRequest, "{twice}");
    assert!(twice.to_string().contains("changed twice"), "{twice}");
    assert_eq!(fx.head("main"), Some(base));
}

/// A request carrying changesets, as the outbox sends it.
fn request<'a>(
    base: Option<&'a ObjectId>,
    files: &'a [FileChange],
    author: &'a Signature,
    changesets: &'a [ChangesetId],
    own_commits: &'a [ObjectId],
) -> CommitRequest<'a> {
    CommitRequest {
        base,
        files,
        author,
        summary: None,
        changesets,
        made_by: &[],
        author_from_user: false,
        own_commits,
        max_attempts: 3,
    }
}

fn ids(ids: &[&str]) -> Vec<ChangesetId> {
    ids.iter().map(|id| ChangesetId::new(*id)).collect()
}

/// The regression of a lost delete: a push landed, its answer was lost, and the file it
/// created was deleted meanwhile. Asked again from the old base with both changesets, the
/// clone finds the first on the branch by its trailer, carries only the second, and deletes
/// the file that "created then deleted" would have folded away.
#[tokio::test]
async fn a_push_whose_answer_was_lost_is_found_by_its_trailer_and_never_carried_again() {
    let fx = Fixture::new(Transport::Https).await;
    let base = fx.populate();
    let clone = fx.open("clone").await;
    let author = bot();
    let created = [write("Setup/new.yaml", "n: 1\n")];
    let first = clone
        .commit_and_push(
            &fx.remote,
            &request(Some(&base), &created, &author, &ids(&["c1"]), &[]),
        )
        .await
        .expect("first push");
    let (landed_commit, _, _) = pushed(first);

    // The answer was lost: the same base, c1 again, and c2 which deleted the file.
    let deleted = [delete("Setup/new.yaml")];
    let outcome = clone
        .commit_and_push(
            &fx.remote,
            &request(Some(&base), &deleted, &author, &ids(&["c1", "c2"]), &[]),
        )
        .await
        .expect("second push");
    let CommitOutcome::Pushed {
        commit,
        files,
        landed,
        ..
    } = outcome
    else {
        panic!("expected a push, got {outcome:?}");
    };
    assert_eq!(
        landed,
        vec![reposync_git::LandedChangeset {
            changeset: ChangesetId::new("c1"),
            commit: landed_commit.clone(),
        }]
    );
    assert_eq!(
        files,
        vec![reposync_git::CommittedFile {
            op: reposync_model::commit::FileOp::Delete,
            path: "Setup/new.yaml".into(),
        }]
    );
    let message = raw_stdout(
        &fx.root,
        &fx.repo(),
        &["log", "-1", "--format=%B", commit.as_str()],
    );
    assert_eq!(
        message.trim_end(),
        "Git Sync from reposync\n\nDELETE: Setup/new.yaml\n\nReposync-Changeset: c2"
    );
    assert!(
        !fx.tree(&commit).iter().any(|(p, _)| p == "Setup/new.yaml"),
        "the file is gone from Git"
    );

    // Asked a third time (this answer lost too), nothing is left to do, and both are known.
    let outcome = clone
        .commit_and_push(
            &fx.remote,
            &request(Some(&base), &deleted, &author, &ids(&["c1", "c2"]), &[]),
        )
        .await
        .expect("third attempt");
    assert_eq!(
        outcome,
        CommitOutcome::NothingToCommit {
            head: Some(commit.clone()),
            landed: vec![
                reposync_git::LandedChangeset {
                    changeset: ChangesetId::new("c1"),
                    commit: landed_commit,
                },
                reposync_git::LandedChangeset {
                    changeset: ChangesetId::new("c2"),
                    commit,
                },
            ],
        }
    );
}

fn person(name: &str, email: Option<&str>) -> Person {
    Person {
        name: UserName::parse(name).expect("user name"),
        email: email.map(|e| EmailAddress::parse(e).expect("e-mail address")),
    }
}

/// `author <email>|committer <email>` and the message of a commit in the bare repository.
fn identities_and_message(fx: &Fixture, commit: &ObjectId) -> (String, String) {
    let show = |format: &str| {
        raw_stdout(
            &fx.root,
            &fx.repo(),
            &["log", "-1", &format!("--format={format}"), commit.as_str()],
        )
    };
    (
        show("%an <%ae>|%cn <%ce>").trim_end().to_owned(),
        show("%B").trim_end().to_owned(),
    )
}

/// A commit names every person whose changesets it carries, once each, after the changeset
/// trailers, and keeps the connector as author and committer; with `author_from_user`, one
/// person's commit is authored by them and committed by the connector, and several people's
/// falls back to the connector. A commit made again after a lost answer names only the people
/// of the changesets it still carries, and its author follows them.
#[tokio::test]
async fn commits_name_their_people_and_author_from_user_makes_one_person_the_author() {
    let fx = Fixture::new(Transport::Https).await;
    let base = fx.populate();
    let clone = fx.open("clone").await;
    let connector = bot();
    let alice = person("alice", Some("alice@example.com"));
    let bob = person("bob", Some("bob@example.com"));
    let made_by = vec![
        (ChangesetId::new("c1"), alice.clone()),
        (ChangesetId::new("c2"), bob.clone()),
        (ChangesetId::new("c3"), alice.clone()),
        (ChangesetId::new("c4"), alice.clone()),
        (ChangesetId::new("c5"), bob.clone()),
    ];
    let push = |base: ObjectId, files: Vec<FileChange>, changesets: &[&str], from_user: bool| {
        let (clone, fx, connector, made_by) = (&clone, &fx, &connector, &made_by);
        let changesets = ids(changesets);
        async move {
            let request = CommitRequest {
                made_by,
                author_from_user: from_user,
                ..request(Some(&base), &files, connector, &changesets, &[])
            };
            clone
                .commit_and_push(&fx.remote, &request)
                .await
                .expect("push")
        }
    };
    let bot_both =
        "Config Bot <config-bot@example.invalid>|Config Bot <config-bot@example.invalid>";

    // Two people (and alice twice), the option on: both named, the connector both ways.
    let (two, _, _) = pushed(
        push(
            base,
            vec![write(
                "Setup/a.yaml",
                "a: 2
",
            )],
            &["c1", "c2", "c3"],
            true,
        )
        .await,
    );
    let (who, message) = identities_and_message(&fx, &two);
    assert_eq!(who, bot_both);
    assert_eq!(
        message,
        "Git Sync from reposync

MODIFY: Setup/a.yaml

Reposync-Changeset: c1
Reposync-Changeset: c2
Reposync-Changeset: c3
Reposync-User: alice
Reposync-User: bob"
    );
    assert_eq!(
        reposync_model::commit::user_names(&message),
        ["alice", "bob"]
    );

    // One person, the option off: named, but the connector is still the author.
    let (off, _, _) = pushed(
        push(
            two.clone(),
            vec![write(
                "Setup/b.yaml",
                "b: 2
",
            )],
            &["c4"],
            false,
        )
        .await,
    );
    let (who, message) = identities_and_message(&fx, &off);
    assert_eq!(who, bot_both);
    assert!(
        message.ends_with(
            "Reposync-Changeset: c4
Reposync-User: alice"
        ),
        "{message}"
    );

    // One person, the option on: alice is the author, the connector the committer.
    let (one, _, _) = pushed(
        push(
            off.clone(),
            vec![write(
                "Setup/c.yaml",
                "c: 1
",
            )],
            &["c3"],
            true,
        )
        .await,
    );
    let (who, _) = identities_and_message(&fx, &one);
    assert_eq!(
        who,
        "alice <alice@example.com>|Config Bot <config-bot@example.invalid>"
    );

    // That answer was lost: asked again from the old base with c3 and bob's c5, the commit
    // carries only c5, names only bob, and is bob's.
    let outcome = push(
        off,
        vec![
            write(
                "Setup/c.yaml",
                "c: 1
",
            ),
            write(
                "Setup/d.yaml",
                "d: 1
",
            ),
        ],
        &["c3", "c5"],
        true,
    )
    .await;
    let CommitOutcome::Pushed { commit, landed, .. } = outcome else {
        panic!("expected a push, got {outcome:?}");
    };
    assert_eq!(
        landed,
        vec![reposync_git::LandedChangeset {
            changeset: ChangesetId::new("c3"),
            commit: one,
        }]
    );
    let (who, message) = identities_and_message(&fx, &commit);
    assert_eq!(
        who,
        "bob <bob@example.com>|Config Bot <config-bot@example.invalid>"
    );
    assert_eq!(
        message,
        "Git Sync from reposync

ADD: Setup/d.yaml

Reposync-Changeset: c5
Reposync-User: bob"
    );
    assert_eq!(reposync_model::commit::changeset_ids(&message), ["c5"]);
}

/// reposync's own commits since the base (pushed, not read back yet) never make a conflict;
/// the same change by someone else does, and the message always lists the commit's own diff.
#[tokio::test]
async fn own_commits_since_the_base_are_never_a_conflict_and_the_message_lists_the_diff() {
    let fx = Fixture::new(Transport::Https).await;
    let base = fx.populate();
    let clone = fx.open("clone").await;
    let author = bot();
    let ours = clone
        .commit_and_push(
            &fx.remote,
            &request(
                Some(&base),
                &[write("Setup/a.yaml", "a: 2\n")],
                &author,
                &ids(&["c1"]),
                &[],
            ),
        )
        .await
        .expect("first push");
    let (own, _, _) = pushed(ours);

    // The base has not moved (Git -> reposync has not read the push yet). Without knowing
    // the commit as ours, and with no trailer of the request in it, it would conflict.
    let files = [
        write("Setup/a.yaml", "a: 3\n"),
        // Already what the branch holds: not in the commit, not in the message.
        write("Setup/b.yaml", "b: 1\n"),
        delete("Setup/never-existed.yaml"),
    ];
    let outcome = clone
        .commit_and_push(
            &fx.remote,
            &request(Some(&base), &files, &author, &ids(&["c2"]), &[]),
        )
        .await
        .expect("no error");
    assert!(
        matches!(&outcome, CommitOutcome::Conflict { files, .. } if files.len() == 1 && files[0].path == "Setup/a.yaml"),
        "{outcome:?}"
    );
    let outcome = clone
        .commit_and_push(
            &fx.remote,
            &request(
                Some(&base),
                &files,
                &author,
                &ids(&["c2"]),
                std::slice::from_ref(&own),
            ),
        )
        .await
        .expect("push");
    let (commit, parent, _) = pushed(outcome);
    assert_eq!(parent.as_ref(), Some(&own));
    let message = raw_stdout(
        &fx.root,
        &fx.repo(),
        &["log", "-1", "--format=%B", commit.as_str()],
    );
    assert_eq!(
        message.trim_end(),
        "Git Sync from reposync\n\nMODIFY: Setup/a.yaml\n\nReposync-Changeset: c2"
    );
    let diff = raw_stdout(
        &fx.root,
        &fx.repo(),
        &[
            "diff-tree",
            "--no-commit-id",
            "--name-status",
            "-r",
            commit.as_str(),
        ],
    );
    assert_eq!(diff.trim_end(), "M\tSetup/a.yaml");
}

/// A thin pack takes the remote's old versions of changed files as delta bases; a blobless
/// clone that never read them used to fail the push on a missing object (lazy fetching is
/// off), which Git Sync retried for ever as an unclassified `git failed`.
#[tokio::test]
async fn a_blobless_clone_pushes_changes_to_files_whose_old_contents_it_never_fetched() {
    let fx = Fixture::new(Transport::Https).await;
    let base = fx.populate();
    fx.bare(&["config", "uploadpack.allowFilter", "true"]);
    let clone = fx.open("clone").await;
    clone.fetch(&fx.remote).await.expect("fetch");
    assert_eq!(fx.blobs_in_clone(&clone), 0, "blobless");
    let (commit, parent, _) = pushed(
        clone
            .commit_files(
                &fx.remote,
                Some(&base),
                &[
                    write("Setup/a.yaml", "a: 1\nand: more\n"),
                    write(PROVIDER, "type: GIT\nurl: x\n"),
                ],
                &bot(),
                "Change existing files",
                3,
            )
            .await
            .expect("push"),
    );
    assert_eq!(parent.as_ref(), Some(&base));
    let tree = fx.tree(&commit);
    assert!(tree.contains(&("Setup/a.yaml".into(), "a: 1\nand: more\n".into())));
    assert!(tree.contains(&("Setup/b.yaml".into(), "b: 1\n".into())));
    fx.bare(&["fsck", "--no-dangling"]);
}

/// Every lock file a git killed mid-operation can leave, and a half-received pack.
const DEBRIS: &[&str] = &[
    "index.lock",
    "shallow.lock",
    "objects/maintenance.lock",
    "refs/remotes/origin/main.lock",
    "packed-refs.lock",
    "config.lock",
    "HEAD.lock",
    "objects/pack/tmp_pack_a1b2c3",
];

#[tokio::test]
async fn what_a_killed_git_leaves_is_removed_and_the_clone_is_reused() {
    let fx = Fixture::new(Transport::Https).await;
    fx.populate();
    fx.bare(&["config", "uploadpack.allowFilter", "true"]);
    for (number, debris) in DEBRIS.iter().enumerate() {
        let name = format!("clone-{number}");
        let clone = fx.open(&name).await;
        clone.fetch(&fx.remote).await.expect("fetch");
        let git_dir = clone.dir().join(".git");
        std::fs::write(git_dir.join("reused-marker"), "").expect("marker");
        std::fs::write(git_dir.join(debris), "").expect("plant");
        let head = fx.external_commit(
            &[("Setup/a.yaml", Some(&format!("a: {number}\n")))],
            "Elsewhere",
        );

        let clone = fx.open(&name).await;
        assert!(git_dir.join("reused-marker").exists(), "{debris}: recloned");
        assert!(!git_dir.join(debris).exists(), "{debris}: left in place");
        // The operations that take those locks work again.
        assert_eq!(
            clone.fetch(&fx.remote).await.expect("fetch").as_ref(),
            Some(&head),
            "{debris}"
        );
        let (_, parent, _) = pushed(
            clone
                .commit_files(
                    &fx.remote,
                    Some(&head),
                    &[write("Setup/b.yaml", &format!("b: {number}\n"))],
                    &bot(),
                    "Ours",
                    3,
                )
                .await
                .unwrap_or_else(|e| panic!("{debris}: {e}")),
        );
        assert_eq!(parent.as_ref(), Some(&head), "{debris}");
    }
}

#[tokio::test]
async fn a_lock_held_by_a_git_still_running_in_the_clone_is_left_alone() {
    let fx = Fixture::new(Transport::Https).await;
    let head = fx.populate();
    let clone = fx.open("clone").await;
    clone.fetch(&fx.remote).await.expect("fetch");
    let git_dir = clone.dir().join(".git");
    let lock = git_dir.join("shallow.lock");
    std::fs::write(&lock, "").expect("plant");
    // A process working in the clone as a git left behind by a killed reposync would.
    let mut survivor = std::process::Command::new("sleep")
        .arg("600")
        .env_clear()
        .env("GIT_DIR", &git_dir)
        .spawn()
        .expect("sleep");

    let error = LocalClone::open(&fx.runner, clone.dir(), &fx.remote, &main())
        .await
        .expect_err("in use");
    survivor.kill().expect("kill");
    survivor.wait().expect("wait");
    assert_eq!(error.kind, GitErrorKind::Other, "retried later: {error}");
    assert!(
        error.message.contains(&survivor.id().to_string()),
        "names the process: {error}"
    );
    assert!(lock.exists(), "the lock of a live process stays");

    let clone = fx.open("clone").await;
    assert!(!lock.exists());
    assert_eq!(
        clone.fetch(&fx.remote).await.expect("fetch").as_ref(),
        Some(&head)
    );
}

/// The packs in a clone's objects directory.
fn packs(clone: &LocalClone) -> usize {
    std::fs::read_dir(clone.dir().join(".git/objects/pack"))
        .expect("pack dir")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".pack"))
        .count()
}

/// Clones made by older versions may ask for background maintenance in their own config:
/// the runner's settings win, so nothing runs behind the operation's back.
#[tokio::test]
async fn no_command_leaves_maintenance_running_whatever_the_clone_config_says() {
    let fx = Fixture::new(Transport::Https).await;
    fx.populate();
    let clone = fx.open("clone").await;
    clone.fetch(&fx.remote).await.expect("fetch");
    for (key, value) in [
        ("fetch.writeCommitGraph", "true"),
        ("gc.auto", "1"),
        ("gc.autoPackLimit", "1"),
        ("gc.autoDetach", "false"),
        ("maintenance.auto", "true"),
        ("maintenance.autoDetach", "false"),
        // Every fetch keeps its own pack, so that two packs are there to repack.
        ("fetch.unpackLimit", "1"),
    ] {
        fx.in_clone(&clone, &["config", key, value]);
    }
    let before = packs(&clone);
    fx.external_commit(&[("Setup/a.yaml", Some("a: 2\n"))], "Elsewhere");
    clone.fetch(&fx.remote).await.expect("fetch");
    let objects = clone.dir().join(".git/objects");
    assert!(
        !objects.join("info/commit-graph").exists(),
        "commit graph written"
    );
    assert!(
        !objects.join("info/commit-graphs").exists(),
        "commit graph written"
    );
    assert!(!objects.join("maintenance.lock").exists());
    assert_eq!(packs(&clone), before + 1, "gc ran after the fetch");
}

#[tokio::test]
async fn a_clone_with_many_packs_is_compacted_when_opened() {
    let fx = Fixture::new(Transport::Https).await;
    let head = fx.populate();
    let clone = fx.open("clone").await;
    clone.fetch(&fx.remote).await.expect("fetch");
    // More packs than git's automatic gc allows (50), as many fetches would leave.
    let scratch = tempfile::tempdir().expect("scratch");
    let pack_base = clone.dir().join(".git/objects/pack/pack");
    for n in 0..51 {
        let file = scratch.path().join(format!("blob-{n}"));
        std::fs::write(&file, format!("content {n}\n")).expect("write");
        let oid = fx.in_clone(
            &clone,
            &["hash-object", "-w", file.to_str().expect("utf-8")],
        );
        let mut pack = fx.root.git().command();
        pack.current_dir(clone.dir())
            .env("GIT_DIR", clone.dir().join(".git"))
            .args(["pack-objects", "-q"])
            .arg(&pack_base)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null());
        let mut child = pack.spawn().expect("pack-objects");
        std::io::Write::write_all(
            &mut child.stdin.take().expect("stdin"),
            format!("{oid}\n").as_bytes(),
        )
        .expect("write oid");
        assert!(child.wait().expect("wait").success());
    }
    assert!(packs(&clone) > 50, "{}", packs(&clone));

    let clone = fx.open("clone").await;
    assert!(packs(&clone) < 5, "not compacted: {} packs", packs(&clone));
    let files = clone
        .read_files(&fx.remote, &head, "Setup/a")
        .await
        .expect("read");
    assert_eq!(
        files.files,
        vec![("Setup/a.yaml".to_owned(), b"a: 1\n".to_vec())]
    );
}

/// `git ls-tree -z` of a tree-ish in the bare repository, as bytes.
fn raw_listing(fx: &Fixture, treeish: &str) -> Vec<u8> {
    fx.root
        .git()
        .run_with_input(&fx.repo(), &["ls-tree", "-z", treeish], b"")
        .expect("ls-tree")
}

#[tokio::test]
async fn a_commit_builds_on_a_branch_whose_tree_holds_hostile_entries_and_keeps_them() {
    use reposync_testkit::RawEntry;
    let fx = Fixture::new(Transport::Https).await;
    let base = fx.populate();
    // Entries git's index refuses (`read-tree` fails on `.git`), anywhere on the branch: at
    // the root, outside `Setup/`, and right next to the files we write.
    let hostile: Vec<(&[u8], RawEntry)> = vec![
        (b".GIT/config", RawEntry::File(b"[core]\n".to_vec())),
        (b"docs/../escape.md", RawEntry::File(b"up\n".to_vec())),
        (b"Setup/\xff.yaml", RawEntry::File(b"x: 1\n".to_vec())),
        (
            b"Setup/Applications/shop/.git/HEAD",
            RawEntry::File(b"ref: x\n".to_vec()),
        ),
        (
            b"Setup/Applications/shop/link.yaml",
            RawEntry::Symlink("/etc/passwd".into()),
        ),
        (
            b"Setup/Applications/shop/vendored",
            RawEntry::Submodule("d".repeat(40)),
        ),
    ];
    let head = oid(&fx
        .root
        .commit_raw(REPO, "main", &hostile, "hostile entries")
        .expect("hostile commit"));
    let shop_before = raw_listing(&fx, &format!("{head}:Setup/Applications/shop"));
    let clone = fx.open("clone").await;

    // Based on the commit before them: the remote's changes since (a path that is not UTF-8
    // among them) are compared with ours first, and touch none of our paths.
    let outcome = clone
        .commit_files(
            &fx.remote,
            Some(&base),
            &[
                write("Setup/Applications/shop/Workflow.yaml", "w: 1\n"),
                delete("Setup/b.yaml"),
            ],
            &bot(),
            "Next to hostile entries",
            3,
        )
        .await
        .expect("the commit is built and pushed");
    let (commit, parent, _) = pushed(outcome);
    assert_eq!(parent.as_ref(), Some(&head));

    // Folders we did not touch keep their ids; the ones we did keep every other entry as it
    // was, byte for byte.
    for untouched in [".GIT", "docs", "Setup/Source Repo Providers"] {
        assert_eq!(
            fx.bare(&["rev-parse", &format!("{commit}:{untouched}")]),
            fx.bare(&["rev-parse", &format!("{head}:{untouched}")]),
            "{untouched}"
        );
    }
    let shop_after = raw_listing(&fx, &format!("{commit}:Setup/Applications/shop"));
    let records = |listing: &[u8]| -> Vec<Vec<u8>> {
        listing
            .split(|b| *b == 0)
            .filter(|r| !r.is_empty())
            .map(<[u8]>::to_vec)
            .collect()
    };
    let before = records(&shop_before);
    let after = records(&shop_after);
    for record in &before {
        assert!(
            after.contains(record),
            "lost {:?}",
            String::from_utf8_lossy(record)
        );
    }
    assert_eq!(after.len(), before.len() + 1, "only our file was added");
    let setup = records(&raw_listing(&fx, &format!("{commit}:Setup")));
    assert!(setup.iter().any(|r| r.ends_with(b"\t\xff.yaml")), "kept");
    assert!(!setup.iter().any(|r| r.ends_with(b"\tb.yaml")), "deleted");
    assert_eq!(
        fx.bare(&[
            "cat-file",
            "blob",
            &format!("{commit}:Setup/Applications/shop/Workflow.yaml")
        ]),
        "w: 1"
    );

    // The same change again is nothing to commit, and a deletion of what is not there too.
    let again = clone
        .commit_files(
            &fx.remote,
            Some(&commit),
            &[
                write("Setup/Applications/shop/Workflow.yaml", "w: 1\n"),
                delete("Setup/Applications/gone/Index.yaml"),
            ],
            &bot(),
            "Again",
            3,
        )
        .await
        .expect("nothing to commit");
    assert_eq!(
        again,
        CommitOutcome::NothingToCommit {
            head: Some(commit.clone()),
            landed: Vec::new(),
        }
    );
}
