//! The fixture shared by the test files of `LocalClone`: a repository root served over HTTPS
//! or SSH by reposync-testkit, a remote for it, a place for clones, and ways to make remote
//! activity that is not ours.

// Each test file uses a part of this module.
#![allow(dead_code)]
#![allow(clippy::expect_used)] // Test helpers outside #[test] functions may panic.

use std::path::{Path, PathBuf};

use reposync_git::{FileChange, GitAuth, GitRunner, LocalClone, Remote, Signature};
use reposync_model::{BranchName, ObjectId};
use reposync_testkit::{GitHttpsServer, RepoRoot, SshKeyFiles, SshServer, TestCa};
use secrecy::SecretString;
use tempfile::TempDir;

pub const REPO: &str = "acme/config.git";
pub const USER: &str = "deploy";
pub const PASSWORD: &str = "clone-canary-password-7f3a9c";
pub const PROVIDER: &str = "Setup/Source Repo Providers/Platform Git.yaml";

#[derive(Debug, Clone, Copy)]
pub enum Transport {
    Https,
    Ssh,
}

/// A repository root served over one transport, a remote for it, and a place for clones.
pub struct Fixture {
    pub root: RepoRoot,
    pub https: Option<GitHttpsServer>,
    pub ssh: Option<SshServer>,
    pub remote: Remote,
    /// Secret material the transport uses, which must never show up anywhere.
    pub secret: String,
    pub work: TempDir,
    pub runner: GitRunner,
}

impl Fixture {
    pub async fn new(transport: Transport) -> Fixture {
        let root = RepoRoot::new().expect("repo root");
        let work = tempfile::tempdir().expect("work dir");
        match transport {
            Transport::Https => {
                let ca = TestCa::new("clone test CA").expect("ca");
                let server = GitHttpsServer::start(&root, &ca, USER, PASSWORD)
                    .await
                    .expect("https server");
                let remote = Remote {
                    url: server.repo_url(REPO),
                    auth: GitAuth::Https {
                        username: USER.into(),
                        password: SecretString::from(PASSWORD),
                        ca_pem: Some(server.ca_pem()),
                    },
                };
                Fixture {
                    root,
                    https: Some(server),
                    ssh: None,
                    remote,
                    secret: PASSWORD.to_owned(),
                    work,
                    runner: GitRunner::new(),
                }
            }
            Transport::Ssh => {
                let key = SshKeyFiles::generate_ed25519(work.path(), "id_ed25519").expect("key");
                let server = SshServer::start(&root, std::slice::from_ref(&key.public_key))
                    .await
                    .expect("sshd");
                let private_key = key.private_key_openssh().expect("private key");
                std::fs::remove_file(&key.private_key).expect("remove the key file");
                let remote = Remote {
                    url: server.repo_url(REPO),
                    auth: GitAuth::Ssh {
                        private_key: SecretString::from(private_key.clone()),
                        known_hosts: Some(server.known_hosts_line()),
                    },
                };
                // The base64 body of the key, which a leak would most likely show.
                let secret = private_key
                    .lines()
                    .find(|l| !l.starts_with("-----") && l.len() > 40)
                    .expect("key body")
                    .to_owned();
                Fixture {
                    root,
                    https: None,
                    ssh: Some(server),
                    remote,
                    secret,
                    work,
                    runner: GitRunner::new(),
                }
            }
        }
    }

    /// A repository with a tree worth syncing, a second branch and a tag, none of which but
    /// `main` the clone should ever fetch. Returns the head of main.
    pub fn populate(&self) -> ObjectId {
        self.root
            .create_repo(
                REPO,
                "main",
                &[
                    ("Setup/Applications/shop/Index.yaml", "name: shop\n"),
                    (PROVIDER, "type: GIT\n"),
                    ("Setup/a.yaml", "a: 1\n"),
                    ("Setup/b.yaml", "b: 1\n"),
                    ("README.md", "hello\n"),
                ],
            )
            .expect("create repo");
        self.root
            .commit(REPO, "feature", &[("feature.txt", "wip\n")], "A feature")
            .expect("feature branch");
        self.bare(&["tag", "v1", "main"]);
        oid(&self.root.head(REPO, "main").expect("head").expect("main"))
    }

    pub fn clone_dir(&self, name: &str) -> PathBuf {
        self.work.path().join(name)
    }

    pub async fn open(&self, name: &str) -> LocalClone {
        self.open_branch(name, "main").await
    }

    pub async fn open_branch(&self, name: &str, branch: &str) -> LocalClone {
        let branch = BranchName::parse(branch).expect("branch name");
        LocalClone::open(&self.runner, &self.clone_dir(name), &self.remote, &branch)
            .await
            .expect("open the clone")
    }

    pub fn repo(&self) -> PathBuf {
        self.root.repo_path(REPO).expect("repo path")
    }

    /// Runs git in the bare repository.
    pub fn bare(&self, args: &[&str]) -> String {
        self.root
            .git()
            .run(&self.repo(), args)
            .expect("git in the bare repository")
    }

    pub fn head(&self, branch: &str) -> Option<ObjectId> {
        self.root
            .head(REPO, branch)
            .expect("head")
            .as_deref()
            .map(oid)
    }

    /// The paths and contents of a commit in the bare repository.
    pub fn tree(&self, commit: &ObjectId) -> Vec<(String, String)> {
        let commit = commit.as_str();
        let paths = self.bare(&["ls-tree", "-r", "--name-only", "-z", commit]);
        paths
            .split('\0')
            .filter(|p| !p.is_empty())
            .map(|path| {
                let content = raw_stdout(
                    &self.root,
                    &self.repo(),
                    &["cat-file", "blob", &format!("{commit}:{path}")],
                );
                (path.to_owned(), content)
            })
            .collect()
    }

    /// Runs git on a clone without ever fetching: a missing object is an error.
    pub fn in_clone(&self, clone: &LocalClone, args: &[&str]) -> String {
        let git_dir = clone.dir().join(".git");
        self.root
            .git()
            .run_with_env(
                clone.dir(),
                args,
                &[
                    ("GIT_DIR", git_dir.to_str().expect("utf-8")),
                    ("GIT_NO_LAZY_FETCH", "1"),
                ],
            )
            .expect("git in the clone")
    }

    pub fn blobs_in_clone(&self, clone: &LocalClone) -> usize {
        self.in_clone(
            clone,
            &[
                "cat-file",
                "--batch-all-objects",
                "--batch-check=%(objecttype)",
            ],
        )
        .lines()
        .filter(|l| *l == "blob")
        .count()
    }

    /// A commit made elsewhere: a separate hermetic clone of the bare repository changes
    /// files (`None` deletes) and pushes to main.
    pub fn external_commit(&self, files: &[(&str, Option<&str>)], message: &str) -> ObjectId {
        let checkout = self.checkout("main");
        checkout.change(files, message);
        checkout.push("main")
    }

    /// A working clone of the bare repository, made by a separate hermetic git, with `branch`
    /// checked out.
    pub fn checkout(&self, branch: &str) -> Checkout<'_> {
        let scratch = tempfile::tempdir().expect("scratch");
        let dir = scratch.path().join("checkout");
        self.root
            .git()
            .run(
                scratch.path(),
                &[
                    "clone",
                    "--quiet",
                    "--no-hardlinks",
                    "--branch",
                    branch,
                    self.repo().to_str().expect("utf-8"),
                    dir.to_str().expect("utf-8"),
                ],
            )
            .expect("clone");
        Checkout {
            fx: self,
            _scratch: scratch,
            dir,
        }
    }

    /// Every file of a clone's git directory, as text, to search for leaked secrets.
    pub fn clone_files_text(&self, clone: &LocalClone) -> String {
        let mut text = String::new();
        let mut pending = vec![clone.dir().to_owned()];
        while let Some(dir) = pending.pop() {
            for entry in std::fs::read_dir(&dir).expect("read dir").flatten() {
                let path = entry.path();
                if path.is_dir() {
                    pending.push(path);
                } else if let Ok(bytes) = std::fs::read(&path) {
                    text.push_str(&String::from_utf8_lossy(&bytes));
                }
            }
        }
        text
    }

    pub fn upload_pack_posts(&self) -> usize {
        self.https
            .as_ref()
            .expect("https")
            .log()
            .lines()
            .filter(|l| l.starts_with("POST") && l.contains("git-upload-pack"))
            .count()
    }
}

/// A working clone made by [`Fixture::checkout`], which removes it when dropped.
pub struct Checkout<'a> {
    fx: &'a Fixture,
    _scratch: TempDir,
    pub dir: PathBuf,
}

impl Checkout<'_> {
    /// Runs git in the working clone.
    pub fn git(&self, args: &[&str]) -> String {
        self.fx
            .root
            .git()
            .run(&self.dir, args)
            .expect("git in the checkout")
    }

    /// Changes files (`None` deletes) and commits them all with `message`; returns the commit.
    pub fn change(&self, files: &[(&str, Option<&str>)], message: &str) -> ObjectId {
        for (path, content) in files {
            let file = self.dir.join(path);
            match content {
                Some(content) => {
                    std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
                    std::fs::write(&file, content).expect("write");
                }
                None => std::fs::remove_file(&file).expect("remove"),
            }
        }
        self.git(&["add", "--all"]);
        self.git(&["commit", "--quiet", "-m", message]);
        oid(&self.git(&["rev-parse", "HEAD"]))
    }

    /// Pushes what is checked out to `branch`, never forcing; returns the commit pushed.
    pub fn push(&self, branch: &str) -> ObjectId {
        self.git(&["push", "--quiet", "origin", &format!("HEAD:{branch}")]);
        oid(&self.git(&["rev-parse", "HEAD"]))
    }
}

/// The branch the fixtures work on.
pub fn main() -> BranchName {
    BranchName::parse("main").expect("branch name")
}

/// The object id git printed.
pub fn oid(text: &str) -> ObjectId {
    ObjectId::parse(text.trim()).expect("an object id")
}

pub fn raw_stdout(root: &RepoRoot, dir: &Path, args: &[&str]) -> String {
    let output = root
        .git()
        .output_with_env(dir, args, &[])
        .expect("spawn git");
    assert!(output.status.success(), "git {args:?} failed");
    String::from_utf8(output.stdout).expect("utf-8")
}

pub fn bot() -> Signature {
    Signature {
        name: "Config Bot".into(),
        email: "config-bot@example.invalid".into(),
    }
}

pub fn write(path: &str, content: &str) -> FileChange {
    FileChange {
        path: path.into(),
        content: Some(content.as_bytes().to_vec()),
    }
}

pub fn delete(path: &str) -> FileChange {
    FileChange {
        path: path.into(),
        content: None,
    }
}
