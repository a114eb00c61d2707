//! `LocalClone::fetch_changes` against real servers: what changed under `Setup/` since a
//! commit, commit by commit, on shallow and partial clones, through forced updates, deleted
//! branches and merges.

#![allow(clippy::expect_used)] // Test helpers outside #[test] functions may panic.

use crate::common;

use common::{Fixture, PROVIDER, REPO, Transport, USER, main, oid};
use reposync_git::{
    BranchChanges, ChangedFile, CommitChanges, FileChangeKind, GitAuth, GitErrorKind, LocalClone,
    Remote,
};
use reposync_model::ObjectId;
use reposync_testkit::{TEST_USER_EMAIL, TEST_USER_NAME};
use secrecy::SecretString;

const SETUP: &str = "Setup/";
const SERVICE: &str = "Setup/Applications/shop/Service.yaml";
const SERVICE_MOVED: &str = "Setup/Applications/store/Service.yaml";
const PROVIDER_MOVED: &str = "Setup/Source Repo Providers/Main Git.yaml";
const SERVICE_YAML: &str =
    "name: shop\nkind: service\nreplicas: 2\nport: 8080\nimage: shop:1\nowner: team-a\n";
const SERVICE_YAML_2: &str =
    "name: shop\nkind: service\nreplicas: 2\nport: 8080\nimage: shop:2\nowner: team-a\n";

async fn fetch_changes(
    clone: &LocalClone,
    fx: &Fixture,
    since: Option<&ObjectId>,
    max_commits: usize,
) -> BranchChanges {
    clone
        .fetch_changes(&fx.remote, since, SETUP, max_commits)
        .await
        .expect("fetch changes")
}

fn commits(changes: BranchChanges) -> (ObjectId, Vec<CommitChanges>, bool) {
    match changes {
        BranchChanges::Commits {
            head,
            commits,
            complete,
        } => (head, commits, complete),
        other => panic!("expected commits, got {other:?}"),
    }
}

fn snapshot(changes: BranchChanges) -> (ObjectId, Vec<(String, String)>, bool) {
    match changes {
        BranchChanges::Snapshot {
            head,
            files,
            since_lost,
            unrepresentable,
        } => {
            assert!(unrepresentable.is_empty(), "{unrepresentable:?}");
            let files = files
                .into_iter()
                .map(|(p, c)| (p, String::from_utf8(c).expect("utf-8")))
                .collect();
            (head, files, since_lost)
        }
        other => panic!("expected a snapshot, got {other:?}"),
    }
}

fn added(path: &str, content: &str) -> ChangedFile {
    changed(path, FileChangeKind::Added, Some(content))
}

fn modified(path: &str, content: &str) -> ChangedFile {
    changed(path, FileChangeKind::Modified, Some(content))
}

fn deleted(path: &str) -> ChangedFile {
    changed(path, FileChangeKind::Deleted, None)
}

fn renamed(from: &str, path: &str, content: &str) -> ChangedFile {
    let from = from.to_owned();
    changed(path, FileChangeKind::Renamed { from }, Some(content))
}

fn changed(path: &str, change: FileChangeKind, content: Option<&str>) -> ChangedFile {
    ChangedFile {
        path: path.into(),
        change,
        content: content.map(|c| c.as_bytes().to_vec()),
    }
}

/// The files of the repository that `populate` makes, under `Setup/`, sorted by path.
fn populated_setup() -> Vec<(String, String)> {
    [
        ("Setup/Applications/shop/Index.yaml", "name: shop\n"),
        (PROVIDER, "type: GIT\n"),
        ("Setup/a.yaml", "a: 1\n"),
        ("Setup/b.yaml", "b: 1\n"),
    ]
    .iter()
    .map(|(p, c)| ((*p).to_owned(), (*c).to_owned()))
    .collect()
}

/// A first call gives a snapshot of `Setup/`; after additions, changes, renames, deletions,
/// a commit outside `Setup/` and a merge, the next call gives each commit in order.
async fn main_flow(transport: Transport) {
    let fx = Fixture::new(transport).await;
    let base = fx.populate();
    fx.bare(&["config", "uploadpack.allowFilter", "true"]);
    let clone = fx.open("clone").await;

    let (head, files, since_lost) = snapshot(fetch_changes(&clone, &fx, None, 100).await);
    assert_eq!(head, base);
    assert_eq!(
        files,
        populated_setup(),
        "Setup/ only, sorted, without README.md"
    );
    assert!(!since_lost);

    let first = fx.external_commit(
        &[
            (SERVICE, Some(SERVICE_YAML)),
            ("Setup/Applications/été/Index.yaml", Some("name: été\n")),
            ("Setup/a.yaml", Some("a: 2\n")),
        ],
        "Add the shop service\n\nWith a body.\n\nReposync-Changeset: 41\n",
    );
    // One content moves unchanged, another moves with a change: both are renames.
    let second = fx.external_commit(
        &[
            (SERVICE, None),
            (SERVICE_MOVED, Some(SERVICE_YAML_2)),
            (PROVIDER, None),
            (PROVIDER_MOVED, Some("type: GIT\n")),
            ("README.md", Some("moved things\n")),
        ],
        "Move things",
    );
    let third = fx.external_commit(&[("Setup/b.yaml", None)], "Delete b");
    let outside = fx.external_commit(&[("README.md", Some("docs only\n"))], "Docs");
    // A side branch with two commits, merged into main with a merge commit.
    fx.bare(&["branch", "side", third.as_str()]);
    let side = fx.checkout("side");
    side.change(&[("Setup/side.yaml", Some("s: 1\n"))], "Side one");
    side.change(
        &[
            ("Setup/side.yaml", Some("s: 2\n")),
            ("side.txt", Some("x\n")),
        ],
        "Side two",
    );
    side.push("side");
    let main = fx.checkout("main");
    main.git(&[
        "merge",
        "--quiet",
        "--no-ff",
        "-m",
        "Merge side",
        "origin/side",
    ]);
    let merge = main.push("main");

    let (head, list, complete) = commits(fetch_changes(&clone, &fx, Some(&base), 100).await);
    assert_eq!(head, merge);
    assert!(complete);
    let ids: Vec<(&str, &str)> = list
        .iter()
        .map(|c| (c.commit.as_str(), c.parent.as_str()))
        .collect();
    assert_eq!(
        ids,
        vec![
            (first.as_str(), base.as_str()),
            (second.as_str(), first.as_str()),
            (third.as_str(), second.as_str()),
            (outside.as_str(), third.as_str()),
            (merge.as_str(), outside.as_str()),
        ],
        "first parents, oldest first"
    );
    assert_eq!(
        list[0].files,
        vec![
            added(SERVICE, SERVICE_YAML),
            added("Setup/Applications/été/Index.yaml", "name: été\n"),
            modified("Setup/a.yaml", "a: 2\n"),
        ]
    );
    assert_eq!(
        list[0].message,
        "Add the shop service\n\nWith a body.\n\nReposync-Changeset: 41\n"
    );
    assert_eq!(list[0].author_name, TEST_USER_NAME);
    assert_eq!(list[0].author_email, TEST_USER_EMAIL);
    assert!(
        list[0].committed_at > 1_600_000_000,
        "{}",
        list[0].committed_at
    );
    assert_eq!(
        list[1].files,
        vec![
            renamed(SERVICE, SERVICE_MOVED, SERVICE_YAML_2),
            renamed(PROVIDER, PROVIDER_MOVED, "type: GIT\n"),
        ],
        "renames within Setup/, README.md left out"
    );
    assert_eq!(list[1].message, "Move things\n");
    assert_eq!(list[2].files, vec![deleted("Setup/b.yaml")]);
    assert_eq!(list[3].files, Vec::new(), "a commit outside Setup/");
    assert_eq!(list[3].message, "Docs\n");
    assert_eq!(
        list[4].files,
        vec![added("Setup/side.yaml", "s: 2\n")],
        "the merge brings the side branch's changes once"
    );
    assert!(
        list[4].message.starts_with("Merge side"),
        "{}",
        list[4].message
    );

    let (head, list, complete) = commits(fetch_changes(&clone, &fx, Some(&merge), 100).await);
    assert_eq!(
        (head.as_str(), list.len(), complete),
        (merge.as_str(), 0, true)
    );

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
async fn https_changes_since_a_commit_come_commit_by_commit() {
    main_flow(Transport::Https).await;
}

#[tokio::test]
async fn ssh_changes_since_a_commit_come_commit_by_commit() {
    main_flow(Transport::Ssh).await;
}

/// Makes `count` commits on main that change only README.md; returns the last.
fn filler_commits(fx: &Fixture, count: usize) -> ObjectId {
    let mut last = None;
    for n in 0..count {
        let content = format!("filler {n}\n");
        let commit = fx
            .root
            .commit(REPO, "main", &[("README.md", &content)], "Filler")
            .expect("commit");
        last = Some(oid(&commit));
    }
    last.expect("at least one commit")
}

/// Makes `count` commits on main, the n-th setting `Setup/a.yaml` to `a: vn`; returns them
/// in order.
fn commits_changing_a(fx: &Fixture, count: usize) -> Vec<ObjectId> {
    (1..=count)
        .map(|n| {
            let content = format!("a: v{n}\n");
            let message = format!("Change a to {n}");
            let commit = fx
                .root
                .commit(REPO, "main", &[("Setup/a.yaml", &content)], &message)
                .expect("commit");
            oid(&commit)
        })
        .collect()
}

#[tokio::test]
async fn a_shallow_clone_deepens_only_as_far_as_the_since_commit() {
    let fx = Fixture::new(Transport::Https).await;
    fx.populate();
    fx.bare(&["config", "uploadpack.allowFilter", "true"]);
    let since = filler_commits(&fx, 30);
    let later = commits_changing_a(&fx, 5);
    // A fresh clone holds the head alone.
    let clone = fx.open("clone").await;
    clone.fetch(&fx.remote).await.expect("fetch");
    assert_eq!(
        fx.in_clone(&clone, &["rev-list", "--count", "origin/main"]),
        "1"
    );

    let before = fx.upload_pack_posts();
    let (head, list, complete) = commits(fetch_changes(&clone, &fx, Some(&since), 100).await);
    assert_eq!(head, later[4]);
    assert!(complete);
    let ids: Vec<&ObjectId> = list.iter().map(|c| &c.commit).collect();
    assert_eq!(ids, later.iter().collect::<Vec<_>>());
    for (n, commit) in list.iter().enumerate() {
        let content = format!("a: v{}\n", n + 1);
        assert_eq!(commit.files, vec![modified("Setup/a.yaml", &content)]);
        assert_eq!(commit.message, format!("Change a to {}\n", n + 1));
    }
    assert_eq!(
        fx.in_clone(&clone, &["rev-parse", "--is-shallow-repository"]),
        "true",
        "deepened by a few commits, not unshallowed"
    );
    let depth: usize = fx
        .in_clone(&clone, &["rev-list", "--count", "origin/main"])
        .parse()
        .expect("count");
    // The head and one deepening of 16 commits, of the 36 the branch has.
    assert_eq!(depth, 17, "local history of {depth} commits");
    assert_eq!(fx.blobs_in_clone(&clone), 5, "only the contents reported");
    // The fetch of the branch lists refs and finds nothing new (1 request), the deepening
    // lists refs and gets a pack (2), and the five contents come in one request (1).
    let requests = fx.upload_pack_posts() - before;
    assert!(
        requests <= 4,
        "{requests} requests:\n{}",
        fx.https.as_ref().expect("https").log()
    );
}

#[tokio::test]
async fn ssh_a_server_that_cannot_send_contents_by_id_still_gives_the_changes() {
    // Over the testkit's sshd git speaks protocol v0, where upload-pack accepts the filter but
    // will not send blobs by id: the clone is made anew with whole files, and deepened again.
    let fx = Fixture::new(Transport::Ssh).await;
    let base = fx.populate();
    fx.bare(&["config", "uploadpack.allowFilter", "true"]);
    let clone = fx.open("clone").await;
    clone.fetch(&fx.remote).await.expect("fetch");
    assert_eq!(fx.blobs_in_clone(&clone), 0, "blobless at first");
    let later = commits_changing_a(&fx, 3);

    let (head, list, complete) = commits(fetch_changes(&clone, &fx, Some(&base), 100).await);
    assert_eq!(head, later[2]);
    assert!(complete);
    let contents: Vec<Vec<ChangedFile>> = list.into_iter().map(|c| c.files).collect();
    assert_eq!(
        contents,
        vec![
            vec![modified("Setup/a.yaml", "a: v1\n")],
            vec![modified("Setup/a.yaml", "a: v2\n")],
            vec![modified("Setup/a.yaml", "a: v3\n")],
        ]
    );
}

#[tokio::test]
async fn a_forced_update_gives_a_snapshot_with_since_lost() {
    let fx = Fixture::new(Transport::Https).await;
    let base = fx.populate();
    fx.bare(&["config", "uploadpack.allowFilter", "true"]);
    let dropped = oid(&fx
        .root
        .commit(REPO, "main", &[("Setup/a.yaml", "a: dropped\n")], "Dropped")
        .expect("commit"));
    let clone = fx.open("clone").await;
    assert_eq!(
        clone.fetch(&fx.remote).await.expect("fetch"),
        Some(dropped.clone())
    );
    // The branch is rewritten: `dropped` is no longer in its history.
    fx.bare(&["update-ref", "refs/heads/main", base.as_str()]);
    let rewritten = oid(&fx
        .root
        .commit(REPO, "main", &[("Setup/c.yaml", "c: 1\n")], "Rewritten")
        .expect("commit"));

    let (head, files, since_lost) = snapshot(fetch_changes(&clone, &fx, Some(&dropped), 100).await);
    assert_eq!(head, rewritten);
    assert!(since_lost);
    let mut want = populated_setup();
    want.push(("Setup/c.yaml".into(), "c: 1\n".into()));
    want.sort();
    assert_eq!(files, want);

    // A commit the server never had is lost in the same way.
    let never = oid(&"1".repeat(40));
    let (head, _, since_lost) = snapshot(fetch_changes(&clone, &fx, Some(&never), 100).await);
    assert_eq!((head.as_str(), since_lost), (rewritten.as_str(), true));

    // So is a commit the branch was moved back from.
    fx.bare(&["update-ref", "refs/heads/main", base.as_str()]);
    let (head, files, since_lost) =
        snapshot(fetch_changes(&clone, &fx, Some(&rewritten), 100).await);
    assert_eq!((head.as_str(), since_lost), (base.as_str(), true));
    assert_eq!(files, populated_setup());
}

#[tokio::test]
async fn a_branch_moved_back_is_told_without_deepening_its_whole_history() {
    let fx = Fixture::new(Transport::Https).await;
    fx.populate();
    fx.bare(&["config", "uploadpack.allowFilter", "true"]);
    filler_commits(&fx, 30);
    let older = commits_changing_a(&fx, 2);
    let clone = fx.open("clone").await;
    clone.fetch(&fx.remote).await.expect("fetch");
    let newer = commits_changing_a(&fx, 3);
    let (_, list, _) = commits(fetch_changes(&clone, &fx, Some(&older[1]), 100).await);
    assert_eq!(list.len(), 3);

    fx.bare(&["update-ref", "refs/heads/main", older[1].as_str()]);
    let (head, _, since_lost) = snapshot(fetch_changes(&clone, &fx, Some(&newer[2]), 100).await);
    assert_eq!((head.as_str(), since_lost), (older[1].as_str(), true));
    assert_eq!(
        fx.in_clone(&clone, &["rev-parse", "--is-shallow-repository"]),
        "true",
        "the history was not deepened to its start"
    );
}

#[tokio::test]
async fn a_deleted_branch_is_gone() {
    let fx = Fixture::new(Transport::Https).await;
    fx.populate();
    let feature = fx.head("feature").expect("feature");
    let clone = fx.open_branch("feature", "feature").await;
    let (head, _, _) = snapshot(fetch_changes(&clone, &fx, None, 100).await);
    assert_eq!(head, feature);
    fx.bare(&["update-ref", "-d", "refs/heads/feature"]);
    assert_eq!(
        fetch_changes(&clone, &fx, Some(&feature), 100).await,
        BranchChanges::Gone
    );
    assert_eq!(
        fx.in_clone(&clone, &["for-each-ref", "--format=%(refname)"]),
        "",
        "the tracking ref is gone too"
    );
    let never = fx.open_branch("never", "never/made").await;
    assert_eq!(
        fetch_changes(&never, &fx, None, 100).await,
        BranchChanges::Gone
    );
}

#[tokio::test]
async fn more_commits_than_allowed_come_oldest_first_over_several_calls() {
    let fx = Fixture::new(Transport::Https).await;
    let base = fx.populate();
    let clone = fx.open("clone").await;
    clone.fetch(&fx.remote).await.expect("fetch");
    let later = commits_changing_a(&fx, 5);

    let mut since = base;
    let mut seen = Vec::new();
    let mut calls = 0;
    loop {
        calls += 1;
        let (head, list, complete) = commits(fetch_changes(&clone, &fx, Some(&since), 2).await);
        assert_eq!(head, later[4]);
        assert!(list.len() <= 2);
        since = list.last().expect("at least one commit").commit.clone();
        seen.extend(list.into_iter().map(|c| c.commit));
        if complete {
            break;
        }
    }
    assert_eq!(seen, later);
    assert_eq!(calls, 3);
}

#[tokio::test]
async fn a_merge_that_brings_since_through_its_second_parent_is_compared_with_since() {
    let fx = Fixture::new(Transport::Https).await;
    fx.populate();
    fx.bare(&["config", "uploadpack.allowFilter", "true"]);
    // Someone starts work on main while we push `ours`, then pulls with a merge and pushes:
    // `ours` is the second parent of the merge, not on the first-parent chain.
    let theirs = fx.checkout("main");
    let their_commit = theirs.change(&[("Setup/theirs.yaml", Some("t: 1\n"))], "Theirs");
    let ours = oid(&fx
        .root
        .commit(REPO, "main", &[("Setup/ours.yaml", "o: 1\n")], "Ours")
        .expect("commit"));
    let clone = fx.open("clone").await;
    clone.fetch(&fx.remote).await.expect("fetch");
    theirs.git(&[
        "pull",
        "--quiet",
        "--no-rebase",
        "--no-edit",
        "origin",
        "main",
    ]);
    let merge = theirs.push("main");
    let parents = fx.bare(&["rev-list", "--parents", "-n1", merge.as_str()]);
    assert_eq!(parents, format!("{merge} {their_commit} {ours}"));

    let (head, list, complete) = commits(fetch_changes(&clone, &fx, Some(&ours), 100).await);
    assert_eq!(head, merge);
    assert!(complete);
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(
        (list[0].commit.as_str(), list[0].parent.as_str()),
        (merge.as_str(), ours.as_str())
    );
    assert_eq!(list[0].files, vec![added("Setup/theirs.yaml", "t: 1\n")]);
}

#[tokio::test]
async fn an_invalid_prefix_or_since_is_refused() {
    let fx = Fixture::new(Transport::Https).await;
    let base = fx.populate();
    let clone = fx.open("clone").await;
    for bad in [
        "",
        "/",
        "Setup",
        "/Setup/",
        "Setup//",
        "../x/",
        "a/./b/",
        ".git/",
        "Setup/.GIT/",
        "a\nb/",
    ] {
        let error = clone
            .fetch_changes(&fx.remote, Some(&base), bad, 10)
            .await
            .expect_err("refused");
        assert_eq!(error.kind, GitErrorKind::InvalidRequest, "{bad:?}: {error}");
        assert!(error.to_string().contains("not a valid folder"), "{error}");
    }
    let (_, list, _) = commits(fetch_changes(&clone, &fx, Some(&base), 0).await);
    assert!(list.is_empty(), "since is the head");
}

#[tokio::test]
async fn wrong_credentials_are_classified_and_never_echoed() {
    let fx = Fixture::new(Transport::Https).await;
    let base = fx.populate();
    let wrong = "wrong-canary-password-5e2b";
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
    let error = clone
        .fetch_changes(&remote, Some(&base), SETUP, 10)
        .await
        .expect_err("refused");
    assert_eq!(error.kind, GitErrorKind::AuthFailed, "{error}");
    assert!(!format!("{error} {error:?}").contains(wrong));
    assert!(!fx.clone_files_text(&clone).contains(wrong));
}

/// The hostile entries `hostile_commit` puts under `Setup/`, as (path, what is wrong), sorted
/// by path as git sorts bytes.
fn hostile_entries() -> Vec<(&'static [u8], reposync_model::PathProblem)> {
    use reposync_model::PathProblem;
    let mut entries: Vec<(&'static [u8], PathProblem)> = vec![
        (b"Setup/Applications/shop/\xff.yaml", PathProblem::NotUtf8),
        (
            b"Setup/Applications/shop/Template Library/.git/config",
            PathProblem::GitComponent {
                component: ".git".into(),
            },
        ),
        (
            b"Setup/Applications/shop/Values/../x.yaml",
            PathProblem::DotComponent {
                component: "..".into(),
            },
        ),
        (
            b"Setup/Applications/shop/Config Files/./y.yaml",
            PathProblem::DotComponent {
                component: ".".into(),
            },
        ),
        (
            b"Setup/Applications/shop/Governance/.GIT/z.yaml",
            PathProblem::GitComponent {
                component: ".GIT".into(),
            },
        ),
        (b"Setup/Applications/shop/link.yaml", PathProblem::Symlink),
        (b"Setup/Applications/shop/vendored", PathProblem::Submodule),
    ];
    entries.sort_by(|a, b| a.0.cmp(b.0));
    entries
}

/// A commit, made with plumbing on `main`, that adds a good file and every hostile entry.
fn hostile_commit(fx: &Fixture) -> ObjectId {
    use reposync_testkit::RawEntry;
    let mut entries: Vec<(&[u8], RawEntry)> = vec![(
        b"Setup/Applications/shop/Good.yaml",
        RawEntry::File(b"good: 1\n".to_vec()),
    )];
    for (path, problem) in hostile_entries() {
        let entry = match problem {
            reposync_model::PathProblem::Symlink => RawEntry::Symlink("../../../etc/passwd".into()),
            reposync_model::PathProblem::Submodule => RawEntry::Submodule("c".repeat(40)),
            _ => RawEntry::File(b"hostile: 1\n".to_vec()),
        };
        entries.push((path, entry));
    }
    oid(&fx
        .root
        .commit_raw(REPO, "main", &entries, "hostile entries")
        .expect("hostile commit"))
}

fn unrepresentable(
    entries: &[reposync_git::UnrepresentableEntry],
) -> Vec<(Vec<u8>, reposync_model::PathProblem, FileChangeKind)> {
    entries
        .iter()
        .map(|e| (e.path.clone(), e.problem.clone(), e.change.clone()))
        .collect()
}

fn expected_hostile(
    change: FileChangeKind,
) -> Vec<(Vec<u8>, reposync_model::PathProblem, FileChangeKind)> {
    hostile_entries()
        .into_iter()
        .map(|(path, problem)| (path.to_vec(), problem, change.clone()))
        .collect()
}

#[tokio::test]
async fn hostile_entries_are_reported_apart_and_never_fail_a_read() {
    let fx = Fixture::new(Transport::Https).await;
    let base = fx.populate();
    fx.bare(&["config", "uploadpack.allowFilter", "true"]);
    let clone = fx.open("clone").await;
    let hostile = hostile_commit(&fx);

    // Commit by commit: the good file is a file, each hostile entry is reported once.
    let (head, list, complete) = commits(fetch_changes(&clone, &fx, Some(&base), 100).await);
    assert_eq!(
        (head.as_str(), complete, list.len()),
        (hostile.as_str(), true, 1)
    );
    assert_eq!(
        list[0].files,
        vec![added("Setup/Applications/shop/Good.yaml", "good: 1\n")]
    );
    assert_eq!(
        unrepresentable(&list[0].unrepresentable),
        expected_hostile(FileChangeKind::Added)
    );

    // A snapshot (a first read) reports them too, beside every file.
    let fresh = fx.open("fresh").await;
    match fetch_changes(&fresh, &fx, None, 100).await {
        BranchChanges::Snapshot {
            head,
            files,
            unrepresentable: entries,
            since_lost,
        } => {
            assert_eq!((head.as_str(), since_lost), (hostile.as_str(), false));
            let paths: Vec<&str> = files.iter().map(|(p, _)| p.as_str()).collect();
            assert_eq!(
                paths,
                [
                    "Setup/Applications/shop/Good.yaml",
                    "Setup/Applications/shop/Index.yaml",
                    PROVIDER,
                    "Setup/a.yaml",
                    "Setup/b.yaml",
                ]
            );
            assert_eq!(
                unrepresentable(&entries),
                expected_hostile(FileChangeKind::Added)
            );
        }
        other => panic!("expected a snapshot, got {other:?}"),
    }

    // A commit that removes them reports each as deleted. It also adds and deletes files, so
    // renames are looked for, which reads the removed entries' contents: they are fetched
    // with the rest rather than failing the read.
    let mut entries: Vec<(&[u8], reposync_testkit::RawEntry)> = hostile_entries()
        .into_iter()
        .map(|(path, _)| (path, reposync_testkit::RawEntry::Delete))
        .collect();
    entries.push((b"Setup/a.yaml", reposync_testkit::RawEntry::Delete));
    entries.push((
        b"Setup/c.yaml",
        reposync_testkit::RawEntry::File(b"c: 1\n".to_vec()),
    ));
    let cleaned = fx
        .root
        .commit_raw(REPO, "main", &entries, "remove them")
        .expect("commit");
    let (head, list, _) = commits(fetch_changes(&clone, &fx, Some(&hostile), 100).await);
    assert_eq!(head, cleaned);
    assert_eq!(
        list[0].files,
        vec![deleted("Setup/a.yaml"), added("Setup/c.yaml", "c: 1\n")]
    );
    assert_eq!(
        unrepresentable(&list[0].unrepresentable),
        expected_hostile(FileChangeKind::Deleted)
    );
}
