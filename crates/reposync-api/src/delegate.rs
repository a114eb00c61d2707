//! What the server hands a delegate, and what the delegate hands back.

use reposync_model::{
    ChangesetId, FetchMode, PathProblem, Person, RestAuth, RestEndpoint, RestPlatform, TaskId,
};
use serde::{Deserialize, Serialize};

use reposync_model::commit::FileOp;

use crate::SecretValue;

/// A claimed task, with the credentials it needs attached.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DelegateTask {
    pub id: TaskId,
    pub spec: TaskSpec,
}

/// The work itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TaskSpec {
    /// Boxed, like `Sync`, so that the enum stays small; the JSON is the same.
    TestConnection(Box<TestConnectionSpec>),
    /// Boxed: a commit job is much larger than a pointer. The JSON is the same.
    Sync(Box<SyncSpec>),
    /// Boxed, like the others. A delegate that predates it cannot read the task and fails it.
    FetchFiles(Box<FetchFilesSpec>),
}

/// The largest archive a fetch may make, which is also the most the server accepts of one
/// upload: fetches are for manifests, and a bound keeps a mistaken path (the whole
/// repository) from filling the server's disk.
pub const MAX_FETCH_ARCHIVE_BYTES: u64 = 1024 * 1024 * 1024;

/// Read files of a repository at one revision into a plain tar archive, which the delegate
/// hands the server (`PUT /api/delegate/tasks/{id}/archive`, or in-process for the built-in
/// delegate) before it reports the outcome, a [`FetchResult`].
///
/// `paths` are repository-relative files or folders, already parsed by the server; `ref` is a
/// branch, a tag or a full commit id as `reposync_model::Revision` writes it, and absent for
/// `branch` (the connector's), or the repository's default branch when that is absent too.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FetchFilesSpec {
    pub url: String,
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    pub paths: Vec<String>,
    /// Names the delegate's local clones of the repository for fetches (one per branch read),
    /// apart from the clones Git Sync keeps.
    pub clone_key: String,
    pub auth: TaskAuth,
    pub timeout_secs: u64,
    /// What the fetch planner needs to choose how to read; absent, reads go through git.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub planning: Option<ReadPlanning>,
}

/// What a fetch read, as the successful result of its task: the commit the ref resolved to,
/// the files the archive holds (paths as in the repository) and the entries it left out (a
/// symbolic link or a submodule, reported and never followed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchResult {
    pub commit: String,
    /// The ref read, in full: `refs/heads/main`, `refs/tags/v1`, or the commit id asked for.
    #[serde(rename = "ref")]
    pub reference: String,
    pub files: Vec<FetchedFile>,
    #[serde(default)]
    pub unrepresentable: Vec<FetchProblem>,
    pub read: ReadReport,
    /// The size of the tar archive the server keeps for download.
    pub archive_bytes: u64,
}

/// A file in a fetch's archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchedFile {
    pub path: String,
    pub size: u64,
}

/// An entry a fetch left out of its archive, and why: `{"path": "Setup/link",
/// "problem": "symlink"}`. A path that is not UTF-8 is shown with its bytes escaped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchProblem {
    pub path: String,
    #[serde(flatten)]
    pub problem: PathProblem,
}

/// Git Sync work on one branch, in the delegate's reusable local clone of it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SyncSpec {
    pub target: SyncTarget,
    pub job: SyncJob,
    pub auth: TaskAuth,
    pub timeout_secs: u64,
    /// What the fetch planner needs to choose how to read; absent, reads go through git.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub planning: Option<ReadPlanning>,
}

/// What the fetch planner knows of a connector: its `--fetch`, its repository's REST API, and
/// what its last Test found the server can do (unknown until a Test ran).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReadPlanning {
    pub fetch: FetchMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rest: Option<RestTarget>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial_clone: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive_path_filter: Option<bool>,
    /// The repository's size as Cloud reported it at the last Test.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository_bytes: Option<u64>,
}

/// The branch to work on. `clone_key` names the local clone: one per connector, repository
/// and branch, so clones are reused and never shared between them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SyncTarget {
    pub url: String,
    pub branch: String,
    pub clone_key: String,
}

/// What to do on the branch.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "job", rename_all = "snake_case")]
pub enum SyncJob {
    /// Read every file under `prefix` at the branch head.
    ReadBranch { prefix: String },
    /// Make the branch hold `files` as given (content, or none) with one commit on top of it,
    /// never with force. The commit holds exactly the files the branch holds otherwise, and its
    /// message lists them under `summary`, then carries one `Reposync-Changeset:` trailer per
    /// changeset that no commit since `base` carries yet: a push whose answer was lost is
    /// recognised on the branch and never made again. Commits since `base` that are neither
    /// one of `own_commits` nor carry one of `changesets`, and changed the same files, make it
    /// a conflict instead.
    ///
    /// `made_by` names the person who made each changeset a person made, and the commit
    /// carries one `Reposync-User:` trailer per person among the changesets it carries. With
    /// `author_from_user`, a commit whose carried changesets were all made by one person with
    /// an e-mail address has them as author and `author_name`/`author_email` as committer;
    /// otherwise those are both. Both fields are left out when empty or false, and a delegate
    /// that predates them ignores them: its commits name nobody.
    CommitAndPush {
        base: Option<String>,
        author_name: String,
        author_email: String,
        summary: Option<String>,
        changesets: Vec<ChangesetId>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        made_by: Vec<MadeBy>,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        author_from_user: bool,
        #[serde(default)]
        own_commits: Vec<String>,
        files: Vec<FileContent>,
        max_attempts: u32,
    },
    /// Fetch the branch and return, commit by commit (first parent, oldest first), what
    /// changed under `prefix` since `since`; with no `since`, or one no longer in the
    /// branch's history, a snapshot of every file under `prefix` at the head.
    FetchChanges {
        since: Option<String>,
        prefix: String,
        max_commits: usize,
    },
    /// Only where the branch points now (`git ls-remote`), for the poller: cheap, no fetch.
    ReadHead,
}

/// The person who made a changeset of a `CommitAndPush` job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MadeBy {
    pub changeset: ChangesetId,
    pub by: Person,
}

/// A file's content as base64, or `None` for a deleted file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileContent {
    pub path: String,
    pub content: Option<String>,
}

/// What a sync job found or did, as the successful result of its task.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum SyncJobResult {
    /// The branch's head (none if the branch does not exist) and its files.
    Branch {
        head: Option<String>,
        files: Vec<FileContent>,
        /// Entries under the prefix that reposync cannot hold as files.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        unrepresentable: Vec<UnrepresentableRead>,
        /// How the read was done; absent from a delegate that predates it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        read: Option<ReadReport>,
    },
    /// Pushed as `commit`, changing `files`; `landed` names the changesets an earlier commit
    /// already carried.
    Pushed {
        commit: String,
        parent: Option<String>,
        attempts: u32,
        files: Vec<CommittedFileView>,
        #[serde(default)]
        landed: Vec<LandedView>,
    },
    /// The branch already held exactly these files; `landed` as for `Pushed`.
    NothingToCommit {
        head: Option<String>,
        #[serde(default)]
        landed: Vec<LandedView>,
    },
    /// Remote commits changed the same files; `files` are their versions at `head`.
    Conflict {
        head: String,
        files: Vec<FileContent>,
    },
    /// The branch does not exist.
    BranchGone,
    /// Where the branch points, if it exists.
    Head { head: Option<String> },
    /// The commits after `since`, oldest first. `complete` is false when more remain after
    /// the last one: ask again from there.
    Commits {
        head: String,
        commits: Vec<CommitRead>,
        complete: bool,
        /// How the read was done; absent from a delegate that predates it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        read: Option<ReadReport>,
    },
    /// Every file under the prefix at `head`; `since_lost` when the `since` asked for is no
    /// longer in the branch's history (a forced update).
    Snapshot {
        head: String,
        files: Vec<FileContent>,
        /// Entries under the prefix that reposync cannot hold as files, all as `add`.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        unrepresentable: Vec<UnrepresentableRead>,
        since_lost: bool,
        /// How the read was done; absent from a delegate that predates it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        read: Option<ReadReport>,
    },
}

/// How one read of a branch was done: the method the fetch planner chose and why, the method
/// it fell back from (and why) when one refused, and what the read cost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReadReport {
    /// `git` (the local clone, partial when the server honours it), `cloud-rest` (`src` and
    /// `diffstat`), `dc-archive` (a path-filtered archive), `dc-rest` (`changes` and `raw`).
    pub method: String,
    /// Why this method was chosen.
    pub reason: String,
    /// The method tried first, when it refused and this one took over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_from: Option<String>,
    /// Why the first method refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_reason: Option<String>,
    /// REST requests sent (git's own requests are not counted).
    pub requests: u64,
    /// Bytes received: REST answers, or git's transfer as the local clone measured it.
    pub bytes: u64,
    pub duration_ms: u64,
}

/// A file a pushed commit changed: `op` is ADD, MODIFY or DELETE.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommittedFileView {
    pub op: FileOp,
    pub path: String,
}

/// A changeset that a commit already on the branch carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LandedView {
    pub changeset: ChangesetId,
    pub commit: String,
}

/// One commit read from a branch: who, what it says, and the files it changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitRead {
    pub commit: String,
    pub parent: Option<String>,
    pub message: String,
    pub author_name: String,
    pub author_email: String,
    pub committed_at: i64,
    pub files: Vec<ChangedFileRead>,
    /// Entries the commit changed that reposync cannot hold as files.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unrepresentable: Vec<UnrepresentableRead>,
}

/// A file a commit changed: `op` is add, modify, delete or rename (with `from`); the content
/// is base64, absent for a deletion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangedFileRead {
    pub op: String,
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    pub content: Option<String>,
}

/// A tree entry that reposync cannot hold as a file (a path that is not UTF-8 or that holds
/// `.git`, `..` or control characters, a symbolic link, a submodule), read from a branch:
/// `op` is add, modify or delete; `path` is the path's bytes as git stores them, in base64,
/// since they may not be text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnrepresentableRead {
    pub op: String,
    pub path: String,
    /// What is wrong: `"problem": "not_utf8"`, `"problem": "git_component", "component":
    /// ".GIT"`, and so on.
    #[serde(flatten)]
    pub problem: PathProblem,
}

/// Run `git ls-remote` against `url` and, when `branch` is set, check it exists; then probe
/// what the server can do: git's capabilities, and REST through `rest` when the platform has
/// it. `platform` is the connector's provider; both are absent from a server that predates
/// them, and such a Test reports no capabilities.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TestConnectionSpec {
    pub url: String,
    pub branch: Option<String>,
    pub auth: TaskAuth,
    pub timeout_secs: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rest: Option<RestTarget>,
}

/// A repository's REST API, for a delegate: where it is and how the task's token
/// authenticates there (`auth` absent, with `unusable` saying why, when it cannot).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RestTarget {
    pub platform: RestPlatform,
    pub base: String,
    pub owner: String,
    pub slug: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<RestAuth>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unusable: Option<String>,
    /// The connector's own REST token (`--api-token-secret`), opened for this one task; git's
    /// token serves when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<SecretValue>,
    /// PEM certificates to trust for the REST API instead of the system's (the connector's
    /// CA, which an SSH connector with a REST token may also name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_certificate: Option<String>,
}

impl RestTarget {
    /// The target of a connector's REST endpoint.
    pub fn from_endpoint(endpoint: RestEndpoint) -> RestTarget {
        let (auth, unusable) = match endpoint.auth {
            Ok(auth) => (Some(auth), None),
            Err(reason) => (None, Some(reason)),
        };
        RestTarget {
            platform: endpoint.platform,
            base: endpoint.base,
            owner: endpoint.owner,
            slug: endpoint.slug,
            auth,
            unusable,
            token: None,
            ca_certificate: None,
        }
    }
}

/// Credentials, decrypted by the server for this one task.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TaskAuth {
    Https {
        username: String,
        password: SecretValue,
        ca_certificate: Option<String>,
    },
    Ssh {
        private_key: SecretValue,
        known_hosts: Option<String>,
    },
}

/// The delegate's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskOutcome {
    pub succeeded: bool,
    /// Task-specific JSON (for a Test, a [`crate::TestResult`] without the server's fields).
    pub result: serde_json::Value,
}

impl TaskOutcome {
    /// A task that failed, for a reason other than a Test's (whose result is a `TestResult`).
    pub fn failed(failure: &crate::TaskFailure) -> TaskOutcome {
        TaskOutcome {
            succeeded: false,
            result: failure.to_value(),
        }
    }
}

/// The header that names the delegate on every request after registration; the bearer token
/// authenticates it.
pub const DELEGATE_NAME_HEADER: &str = "X-Reposync-Delegate";

/// `POST /api/delegate/register`: a delegate introduces itself. Sent again after a restart or
/// when the server has forgotten it (it answers 404 `unknown_delegate` to the other calls).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RegisterRequest {
    pub name: String,
    pub selectors: Vec<String>,
    /// reposync's version on the delegate.
    pub version: String,
    pub hostname: String,
    pub git_version: String,
    pub ssh_version: String,
}

/// What the server made of a registration.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RegisterResponse {
    pub name: String,
    /// The delegate's selectors as matched: normalised, with its name and host name added.
    pub selectors: Vec<String>,
    /// How often to send a heartbeat: a sixth of the lease. A delegate the server has not
    /// heard from for a lease is disconnected, and its tasks' leases run out.
    pub heartbeat_secs: u64,
    /// The longest a claim may wait for a task (`wait_ms` is capped to it); never longer than
    /// the lease.
    pub max_wait_ms: u64,
}

/// `POST /api/delegate/heartbeat`: the tasks the delegate is running, whose leases it extends.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HeartbeatRequest {
    pub running: Vec<TaskId>,
}

/// The answer to a heartbeat: tasks the delegate must stop (their lease was lost or they were
/// cancelled), killing their git processes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HeartbeatResponse {
    pub cancel: Vec<TaskId>,
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    /// Serialises `value`, checks it against the frozen `expected`, and checks that reading
    /// `expected` back gives the same JSON again.
    fn frozen<T: Serialize + serde::de::DeserializeOwned>(value: &T, expected: Value) {
        assert_eq!(serde_json::to_value(value).expect("json"), expected);
        let read: T = serde_json::from_value(expected.clone()).expect("reads back");
        assert_eq!(serde_json::to_value(&read).expect("json"), expected);
    }

    /// What the fetch planner is told and reports, across versions: frozen.
    #[test]
    fn the_wire_format_of_planning_and_read_reports_is_frozen() {
        let planning = ReadPlanning {
            fetch: FetchMode::Auto,
            rest: Some(RestTarget {
                platform: RestPlatform::Cloud,
                base: "https://api.bitbucket.org/2.0".into(),
                owner: "acme".into(),
                slug: "config".into(),
                auth: Some(RestAuth::Basic {
                    username: "alice@example.com".into(),
                }),
                unusable: None,
                token: None,
                ca_certificate: None,
            }),
            partial_clone: Some(false),
            archive_path_filter: None,
            repository_bytes: None,
        };
        frozen(
            &planning,
            json!({
                "fetch": "auto",
                "rest": {
                    "platform": "cloud", "base": "https://api.bitbucket.org/2.0",
                    "owner": "acme", "slug": "config",
                    "auth": {"kind": "basic", "username": "alice@example.com"}
                },
                "partial_clone": false
            }),
        );
        let report = ReadReport {
            method: "git".into(),
            reason: "REST refused the read".into(),
            fallback_from: Some("cloud-rest".into()),
            fallback_reason: Some("budget".into()),
            requests: 3,
            bytes: 1024,
            duration_ms: 12,
        };
        frozen(
            &report,
            json!({
                "method": "git", "reason": "REST refused the read",
                "fallback_from": "cloud-rest", "fallback_reason": "budget",
                "requests": 3, "bytes": 1024, "duration_ms": 12
            }),
        );
    }

    /// The tasks a server hands its delegates, which may run another version: frozen.
    #[test]
    fn the_wire_format_of_tasks_is_frozen() {
        let auth = TaskAuth::Https {
            username: "u".into(),
            password: SecretValue::new("p"),
            ca_certificate: None,
        };
        let push = DelegateTask {
            id: TaskId::new("t1"),
            spec: TaskSpec::Sync(Box::new(SyncSpec {
                target: SyncTarget {
                    url: "https://example.com/r.git".into(),
                    branch: "main".into(),
                    clone_key: "k".into(),
                },
                job: SyncJob::CommitAndPush {
                    base: Some("a".repeat(40)),
                    author_name: "Bot".into(),
                    author_email: "bot@example.com".into(),
                    summary: None,
                    changesets: vec![ChangesetId::new("c1")],
                    made_by: vec![],
                    author_from_user: false,
                    own_commits: vec!["b".repeat(40)],
                    files: vec![FileContent {
                        path: "Setup/a.yaml".into(),
                        content: Some("YTogMQo=".into()),
                    }],
                    max_attempts: 3,
                },
                auth: auth.clone(),
                timeout_secs: 120,
                planning: None,
            })),
        };
        frozen(
            &push,
            json!({
                "id": "t1",
                "spec": {
                    "kind": "sync",
                    "target": {"url": "https://example.com/r.git", "branch": "main", "clone_key": "k"},
                    "job": {
                        "job": "commit_and_push", "base": "a".repeat(40), "author_name": "Bot",
                        "author_email": "bot@example.com", "summary": null, "changesets": ["c1"],
                        "own_commits": ["b".repeat(40)],
                        "files": [{"path": "Setup/a.yaml", "content": "YTogMQo="}],
                        "max_attempts": 3
                    },
                    "auth": {"kind": "https", "username": "u", "password": "p", "ca_certificate": null},
                    "timeout_secs": 120
                }
            }),
        );
        let fetch = SyncJob::FetchChanges {
            since: None,
            prefix: "Setup/".into(),
            max_commits: 200,
        };
        // A job with people, and the option on, adds exactly two keys.
        let with_people = SyncJob::CommitAndPush {
            base: None,
            author_name: "Bot".into(),
            author_email: "bot@example.com".into(),
            summary: None,
            changesets: vec![ChangesetId::new("c1"), ChangesetId::new("c2")],
            made_by: vec![MadeBy {
                changeset: ChangesetId::new("c1"),
                by: Person {
                    name: reposync_model::UserName::parse("alice").expect("name"),
                    email: Some(
                        reposync_model::EmailAddress::parse("alice@example.com").expect("email"),
                    ),
                },
            }],
            author_from_user: true,
            own_commits: vec![],
            files: vec![],
            max_attempts: 3,
        };
        frozen(
            &with_people,
            json!({
                "job": "commit_and_push", "base": null, "author_name": "Bot",
                "author_email": "bot@example.com", "summary": null, "changesets": ["c1", "c2"],
                "made_by": [{"changeset": "c1", "by": {"name": "alice", "email": "alice@example.com"}}],
                "author_from_user": true,
                "own_commits": [], "files": [], "max_attempts": 3
            }),
        );
        frozen(
            &fetch,
            json!({"job": "fetch_changes", "since": null, "prefix": "Setup/", "max_commits": 200}),
        );
        frozen(&SyncJob::ReadHead, json!({"job": "read_head"}));
        frozen(
            &SyncJob::ReadBranch {
                prefix: "Setup/".into(),
            },
            json!({"job": "read_branch", "prefix": "Setup/"}),
        );
        let test = TaskSpec::TestConnection(Box::new(TestConnectionSpec {
            url: "git@example.com:r.git".into(),
            branch: Some("main".into()),
            auth: TaskAuth::Ssh {
                private_key: SecretValue::new("key"),
                known_hosts: None,
            },
            timeout_secs: 30,
            platform: None,
            rest: None,
        }));
        frozen(
            &test,
            json!({
                "kind": "test_connection", "url": "git@example.com:r.git", "branch": "main",
                "auth": {"kind": "ssh", "private_key": "key", "known_hosts": null},
                "timeout_secs": 30
            }),
        );
    }

    /// A job written by a server that predates people (no `made_by`, no
    /// `author_from_user`) still reads, as a commit naming nobody; and a person whose name
    /// does not parse refuses the job rather than reaching a commit message.
    #[test]
    fn a_commit_job_without_people_still_reads() {
        let old = json!({
            "job": "commit_and_push", "base": null, "author_name": "Bot",
            "author_email": "bot@example.com", "summary": null, "changesets": ["c1"],
            "files": [], "max_attempts": 3
        });
        let SyncJob::CommitAndPush {
            made_by,
            author_from_user,
            own_commits,
            ..
        } = serde_json::from_value(old).expect("an old job reads")
        else {
            panic!("not a commit job");
        };
        assert!(made_by.is_empty() && !author_from_user && own_commits.is_empty());
        let forged = json!({
            "job": "commit_and_push", "base": null, "author_name": "Bot",
            "author_email": "bot@example.com", "summary": null, "changesets": ["c1"],
            "made_by": [{"changeset": "c1", "by": {"name": "eve\nReposync-Changeset: c9", "email": null}}],
            "files": [], "max_attempts": 3
        });
        assert!(serde_json::from_value::<SyncJob>(forged).is_err());
    }

    /// A fetch, as the server hands it and the delegate answers it: frozen.
    #[test]
    fn the_wire_format_of_fetches_is_frozen() {
        let task = TaskSpec::FetchFiles(Box::new(FetchFilesSpec {
            url: "https://example.com/r.git".into(),
            reference: Some("refs/tags/v1".into()),
            branch: Some("main".into()),
            paths: vec!["deploy".into(), "values.yaml".into()],
            clone_key: "k".into(),
            auth: TaskAuth::Ssh {
                private_key: SecretValue::new("key"),
                known_hosts: None,
            },
            timeout_secs: 120,
            planning: None,
        }));
        frozen(
            &task,
            json!({
                "kind": "fetch_files", "url": "https://example.com/r.git", "ref": "refs/tags/v1",
                "branch": "main", "paths": ["deploy", "values.yaml"], "clone_key": "k",
                "auth": {"kind": "ssh", "private_key": "key", "known_hosts": null},
                "timeout_secs": 120
            }),
        );
        let result = FetchResult {
            commit: "a".repeat(40),
            reference: "refs/tags/v1".into(),
            files: vec![FetchedFile {
                path: "deploy/app.yaml".into(),
                size: 12,
            }],
            unrepresentable: vec![FetchProblem {
                path: "deploy/link.yaml".into(),
                problem: PathProblem::Symlink,
            }],
            read: ReadReport {
                method: "dc-rest".into(),
                reason: "one path-filtered archive of the scope".into(),
                fallback_from: None,
                fallback_reason: None,
                requests: 2,
                bytes: 512,
                duration_ms: 40,
            },
            archive_bytes: 2048,
        };
        frozen(
            &result,
            json!({
                "commit": "a".repeat(40), "ref": "refs/tags/v1",
                "files": [{"path": "deploy/app.yaml", "size": 12}],
                "unrepresentable": [{"path": "deploy/link.yaml", "problem": "symlink"}],
                "read": {"method": "dc-rest", "reason": "one path-filtered archive of the scope",
                    "requests": 2, "bytes": 512, "duration_ms": 40},
                "archive_bytes": 2048
            }),
        );
    }

    /// The results delegates hand back: frozen too.
    #[test]
    fn the_wire_format_of_results_is_frozen() {
        let pushed = SyncJobResult::Pushed {
            commit: "c".repeat(40),
            parent: None,
            attempts: 1,
            files: vec![CommittedFileView {
                op: FileOp::Add,
                path: "Setup/a.yaml".into(),
            }],
            landed: vec![LandedView {
                changeset: ChangesetId::new("c0"),
                commit: "d".repeat(40),
            }],
        };
        frozen(
            &pushed,
            json!({
                "status": "pushed", "commit": "c".repeat(40), "parent": null, "attempts": 1,
                "files": [{"op": "ADD", "path": "Setup/a.yaml"}],
                "landed": [{"changeset": "c0", "commit": "d".repeat(40)}]
            }),
        );
        let commits = SyncJobResult::Commits {
            head: "e".repeat(40),
            complete: true,
            read: None,
            commits: vec![CommitRead {
                commit: "e".repeat(40),
                parent: Some("f".repeat(40)),
                message: "m\n".into(),
                author_name: "A".into(),
                author_email: "a@example.com".into(),
                committed_at: 1_700_000_000,
                files: vec![ChangedFileRead {
                    op: "rename".into(),
                    path: "Setup/b.yaml".into(),
                    from: Some("Setup/a.yaml".into()),
                    content: Some("Yg==".into()),
                }],
                unrepresentable: vec![UnrepresentableRead {
                    op: "add".into(),
                    path: "U2V0dXAvLmdpdA==".into(),
                    problem: PathProblem::GitComponent {
                        component: ".git".into(),
                    },
                }],
            }],
        };
        frozen(
            &commits,
            json!({
                "status": "commits", "head": "e".repeat(40), "complete": true,
                "commits": [{
                    "commit": "e".repeat(40), "parent": "f".repeat(40), "message": "m\n",
                    "author_name": "A", "author_email": "a@example.com",
                    "committed_at": 1_700_000_000,
                    "files": [{"op": "rename", "path": "Setup/b.yaml", "from": "Setup/a.yaml", "content": "Yg=="}],
                    "unrepresentable": [{"op": "add", "path": "U2V0dXAvLmdpdA==", "problem": "git_component", "component": ".git"}]
                }]
            }),
        );
        frozen(&SyncJobResult::BranchGone, json!({"status": "branch_gone"}));
        frozen(
            &SyncJobResult::Head { head: None },
            json!({"status": "head", "head": null}),
        );
    }
}
