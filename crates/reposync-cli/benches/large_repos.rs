//! Prints the fetch planner's figures of issue 16 on a generated large repository; asserts
//! nothing. Run with `cargo bench -p reposync-cli --bench large_repos`.
//!
//! The repository: 3 commits and more than 500 MB of packed history (three generations of
//! incompressible assets), more than 20,000 files at the tip, 5,000 YAML files under
//! `Setup/` (100 applications of 50 files), and 200 MB of binary assets at the tip. It is
//! served by the testkit's HTTPS git server with partial clone refused (as Bitbucket Cloud
//! does) and by the Bitbucket REST emulator, Cloud and Data Center, over the same repository;
//! the real `reposync` binary reads it. Each figure is a ratio measured in the same run:
//!
//! - Cloud, first sync of one application (50 files): REST requests, and bytes received
//!   against the files' own bytes (the listings counted apart).
//! - Cloud, onboarding the whole repository (`sync enable --all`): the planner picks git and
//!   says why; what git cost.
//! - Cloud, a commit changing one YAML file and adding a 5 MB asset: bytes received against
//!   the file's bytes.
//! - Data Center, first sync of all of `Setup/` through one archive: bytes against the
//!   compressed folder (`git archive --format=tar.gz`).
//! - `reposync fetch` of one folder through Cloud REST, against `git clone --depth 1` and a
//!   checkout of the repository: bytes and time.
//! - A server that honours partial clone: reposync's read of `Setup/` against a hand-tuned
//!   `git clone --depth 1 --filter=blob:none --sparse` of `Setup/` (bytes on disk).

#![allow(clippy::expect_used, clippy::unwrap_used)]

#[path = "../tests/e2e/common/mod.rs"]
mod common;

use std::io::Write as _;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::TestApp;
use reposync_testkit::{ApiAuth, ApiFlavour, BitbucketApi, GitHttpsServer, RepoRoot, TestCa};
use serde_json::Value;

const REPO: &str = "acme/big.git";
const USER: &str = "jdoe";
const EMAIL: &str = "jdoe@example.com";
const TOKEN: &str = "bench-token-4f1e2d";
const APPS: usize = 100;
const FILES_PER_APP: usize = 50;
const OTHER_FILES: usize = 15_000;
const ASSETS: usize = 20;
/// Bytes per asset in each generation; the last is the tip's.
const GENERATIONS: [usize; 3] = [8 << 20, 8 << 20, 10 << 20];

/// A fast generator of incompressible bytes (xorshift64*), so that assets cost what real
/// binaries cost in a pack.
struct Noise(u64);

impl Noise {
    fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            let word = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
    }
}

fn service_yaml(app: usize, service: usize) -> String {
    // About 1.5 KB, like a real service file with its description and variables.
    let padding: String = (0..20)
        .map(|line| format!("  - name: var{line}\n    value: app{app}-svc{service}-{line}\n"))
        .collect();
    format!(
        "harnessApiVersion: '1.0'\ntype: SERVICE\ndeploymentType: KUBERNETES\ndescription: service {service} of app {app}\nserviceVariables:\n{padding}"
    )
}

fn app_name(app: usize) -> String {
    format!("app{app:03}")
}

/// Streams the repository into `git fast-import`: three commits, assets replaced each time.
fn generate(root: &RepoRoot) {
    let repo = root.create_empty_repo(REPO, "main").expect("repo");
    let mut child = root
        .git()
        .command()
        .current_dir(&repo)
        .args(["fast-import", "--quiet"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("fast-import");
    let mut stdin = std::io::BufWriter::with_capacity(1 << 20, child.stdin.take().expect("stdin"));
    let mut noise = Noise(0x9E37_79B9_7F4A_7C15);
    let mut mark = 0usize;
    let blob = |out: &mut dyn std::io::Write, data: &[u8], mark: &mut usize| -> usize {
        *mark += 1;
        write!(out, "blob\nmark :{mark}\ndata {}\n", data.len()).unwrap();
        out.write_all(data).unwrap();
        out.write_all(b"\n").unwrap();
        *mark
    };
    for (generation, size) in GENERATIONS.iter().enumerate() {
        let mut entries: Vec<(usize, String)> = Vec::new();
        let mut asset = vec![0u8; *size];
        for n in 0..ASSETS {
            noise.fill(&mut asset);
            let id = blob(&mut stdin, &asset, &mut mark);
            entries.push((id, format!("assets/asset{n:02}.bin")));
        }
        if generation == 0 {
            for app in 0..APPS {
                let name = app_name(app);
                let index =
                    format!("harnessApiVersion: '1.0'\ntype: APPLICATION\ndescription: {name}\n");
                let id = blob(&mut stdin, index.as_bytes(), &mut mark);
                entries.push((id, format!("Setup/Applications/{name}/Index.yaml")));
                for service in 0..FILES_PER_APP - 1 {
                    let id = blob(&mut stdin, service_yaml(app, service).as_bytes(), &mut mark);
                    entries.push((
                        id,
                        format!("Setup/Applications/{name}/Services/svc{service:02}/Index.yaml"),
                    ));
                }
            }
            for n in 0..OTHER_FILES {
                let text = format!("// source file {n}\n{}\n", "fn main() {}\n".repeat(60));
                let id = blob(&mut stdin, text.as_bytes(), &mut mark);
                entries.push((id, format!("src/module{:03}/file{n:05}.rs", n / 100)));
            }
        }
        let message = format!("generation {generation}");
        write!(
            stdin,
            "commit refs/heads/main\ncommitter Bench <bench@example.com> {} +0000\ndata {}\n{message}\n",
            1_700_000_000 + generation * 1000,
            message.len()
        )
        .unwrap();
        for (id, path) in entries {
            writeln!(stdin, "M 100644 :{id} {path}").unwrap();
        }
        stdin.write_all(b"\n").unwrap();
    }
    drop(stdin);
    assert!(
        child.wait().expect("fast-import").success(),
        "fast-import failed"
    );
    root.git()
        .run(&repo, &["repack", "-a", "-d", "-q"])
        .expect("repack");
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            total += dir_bytes(&entry.path());
        } else if kind.is_file() {
            total += entry.metadata().unwrap().len();
        }
    }
    total
}

fn mib(bytes: u64) -> String {
    format!("{:.2} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// The newest read of `kind` listed by `sync activity`, waiting for one to appear after
/// `seen` reads.
fn wait_read(app: &TestApp, seen: usize) -> Value {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let activity = app
            .cli(&["--json", "sync", "activity", "--limit", "1000"], None)
            .ok()
            .json();
        let reads = activity["reads"].as_array().cloned().unwrap_or_default();
        if reads.len() > seen {
            return reads[0].clone();
        }
        assert!(Instant::now() < deadline, "no read: {}", app.transcript());
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn reads_count(app: &TestApp) -> usize {
    app.cli(&["--json", "sync", "activity", "--limit", "1000"], None)
        .ok()
        .json()["reads"]
        .as_array()
        .map_or(0, Vec::len)
}

/// Waits until the branch's head has been read back (reposync reads its own pushes too).
fn wait_read_back(app: &TestApp, root: &RepoRoot) {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let head = root.head(REPO, "main").unwrap();
        let activity = app.cli(&["--json", "sync", "activity"], None).ok().json();
        let read = activity["inbound"].as_array().is_some_and(|commits| {
            commits
                .iter()
                .any(|c| head.as_deref() == c["commit_id"].as_str())
        });
        if read {
            return;
        }
        assert!(Instant::now() < deadline, "the head was never read back");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn describe(read: &Value) -> String {
    let fallback = match read["fallback_from"].as_str() {
        Some(from) => format!(
            ", fell back from {from}: {}",
            read["fallback_reason"].as_str().unwrap_or_default()
        ),
        None => String::new(),
    };
    format!(
        "{}: {} requests, {}, {} ms ({}{fallback})",
        read["method"].as_str().unwrap_or("?"),
        read["requests"],
        mib(read["bytes"].as_u64().unwrap_or(0)),
        read["duration_ms"],
        read["reason"].as_str().unwrap_or_default()
    )
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let root = RepoRoot::new().unwrap();
    let started = Instant::now();
    generate(&root);
    let repo = root.repo_path(REPO).unwrap();
    let files = root
        .git()
        .run(&repo, &["ls-tree", "-r", "--name-only", "main"])
        .unwrap()
        .lines()
        .count();
    println!(
        "repository: {} packed, {files} files at the tip, {} YAML under Setup/, {} of assets at the tip (generated in {:.1} s)",
        mib(dir_bytes(&repo.join("objects"))),
        APPS * FILES_PER_APP,
        mib((ASSETS * GENERATIONS[2]) as u64),
        started.elapsed().as_secs_f64()
    );

    let ca = TestCa::new("bench CA").unwrap();
    let git = rt
        .block_on(GitHttpsServer::start(&root, &ca, USER, TOKEN))
        .unwrap();
    let auth = ApiAuth {
        basic: Some((EMAIL.into(), TOKEN.into())),
        bearer: Some(TOKEN.into()),
    };
    let cloud = rt
        .block_on(BitbucketApi::start(
            &root,
            &ca,
            ApiFlavour::Cloud,
            auth.clone(),
        ))
        .unwrap();
    let dc = rt
        .block_on(BitbucketApi::start(
            &root,
            &ca,
            ApiFlavour::DataCenter {
                version: "8.19.1".into(),
                context: None,
            },
            auth,
        ))
        .unwrap();
    // One server per measurement, so that each reads the branch afresh with nothing linked.
    let ca_pem = ca.cert_pem();
    let server = |name: &str, provider: &str, api: Option<&BitbucketApi>, extra: &[&str]| {
        let app = TestApp::spawn();
        let ca_file = app.dir.path().join("ca.pem");
        std::fs::write(&ca_file, &ca_pem).unwrap();
        app.cli(&["secret", "create", "t", "--value-stdin"], Some(TOKEN))
            .ok();
        let url = git.repo_url(REPO);
        let base = api.map(BitbucketApi::base_url);
        let mut args = vec![
            "connector",
            "add",
            "--name",
            name,
            "--provider",
            provider,
            "--url",
            &url,
            "--username",
            USER,
            "--password-secret",
            "t",
            "--branch",
            "main",
            "--ca-file",
            ca_file.to_str().unwrap(),
        ];
        if let Some(base) = &base {
            args.extend(["--api-url", base.as_str()]);
        }
        args.extend_from_slice(extra);
        app.cli(&args, None).ok();
        app
    };
    // `scope` is `--app NAME` (the application is made first), `--account` or `--all`.
    let enable = |app: &TestApp, connector: &str, scope: &[&str]| -> Value {
        let seen = reads_count(app);
        let mut args = vec![
            "sync",
            "enable",
            "--connector",
            connector,
            "--initial",
            "import",
        ];
        if let ["--app", name] = scope {
            app.cli(&["app", "create", name], None).ok();
        }
        args.extend_from_slice(scope);
        app.cli(&args, None).ok();
        wait_read(app, seen)
    };

    // Cloud, first sync of one application.
    println!("\nCloud emulation (partial clone refused)");
    let one = app_name(7);
    let yaml_bytes: usize = (0..FILES_PER_APP - 1)
        .map(|s| service_yaml(7, s).len())
        .sum::<usize>()
        + format!("harnessApiVersion: '1.0'\ntype: APPLICATION\ndescription: {one}\n").len();
    let app = server(
        "cloud",
        "bitbucket-cloud",
        Some(&cloud),
        &["--api-username", EMAIL],
    );
    cloud.reset_counts();
    let read = enable(&app, "cloud", &["--app", &one]);
    let sent = cloud.bytes_sent();
    println!(
        "  first sync of {one} ({FILES_PER_APP} files, {yaml_bytes} bytes): {}",
        describe(&read)
    );
    println!(
        "    REST answers {} bytes = {:.2}x the files' bytes; listings and metadata {} bytes",
        sent,
        sent as f64 / yaml_bytes as f64,
        sent.saturating_sub(yaml_bytes as u64)
    );

    // The first commit (the link in the application's Index.yaml) is read back first, so
    // that the next read holds only the commit measured.
    wait_read_back(&app, &root);

    // Cloud, an incremental read of one YAML change plus a 5 MB asset.
    let path = format!("Setup/Applications/{one}/Services/svc03/Index.yaml");
    let changed = service_yaml(7, 3).replace("description: service 3", "description: changed");
    let mut asset = vec![0u8; 5 << 20];
    Noise(42).fill(&mut asset);
    let scratch = tempfile::tempdir().unwrap();
    let asset_file = scratch.path().join("asset.bin");
    std::fs::write(&asset_file, &asset).unwrap();
    let yaml_file = scratch.path().join("changed.yaml");
    std::fs::write(&yaml_file, &changed).unwrap();
    let hash = |file: &std::path::Path| {
        root.git()
            .run(&repo, &["hash-object", "-w", file.to_str().unwrap()])
            .unwrap()
    };
    let (asset_blob, yaml_blob) = (hash(&asset_file), hash(&yaml_file));
    let index = scratch.path().join("index");
    let env = [("GIT_INDEX_FILE", index.to_str().unwrap())];
    root.git()
        .run_with_env(&repo, &["read-tree", "main"], &env)
        .unwrap();
    for (blob, at) in [
        (asset_blob.as_str(), "assets/new5mb.bin"),
        (yaml_blob.as_str(), path.as_str()),
    ] {
        root.git()
            .run_with_env(
                &repo,
                &[
                    "update-index",
                    "--add",
                    "--cacheinfo",
                    &format!("100644,{blob},{at}"),
                ],
                &env,
            )
            .unwrap();
    }
    let tree = root
        .git()
        .run_with_env(&repo, &["write-tree"], &env)
        .unwrap();
    let parent = root.head(REPO, "main").unwrap().unwrap();
    let commit = root
        .git()
        .run(
            &repo,
            &[
                "commit-tree",
                &tree,
                "-p",
                &parent,
                "-m",
                "one YAML and a 5 MB asset",
            ],
        )
        .unwrap();
    root.git()
        .run(&repo, &["update-ref", "refs/heads/main", &commit, &parent])
        .unwrap();
    cloud.reset_counts();
    let seen = reads_count(&app);
    app.cli(&["sync", "refresh", "--app", &one], None).ok();
    let read = wait_read(&app, seen);
    println!(
        "  a commit changing one YAML file ({} bytes) and adding a 5 MB asset: {}",
        changed.len(),
        describe(&read)
    );
    println!(
        "    REST answers {} bytes = {:.2}x the file's bytes",
        cloud.bytes_sent(),
        cloud.bytes_sent() as f64 / changed.len() as f64
    );
    drop(app);

    // Cloud, onboarding the whole repository: `sync enable --all` reads all of Setup/ once.
    let app = server(
        "cloud",
        "bitbucket-cloud",
        Some(&cloud),
        &["--api-username", EMAIL],
    );
    cloud.reset_counts();
    let read = enable(&app, "cloud", &["--all"]);
    println!(
        "  onboarding the whole repository (enable --all, 100 applications, 5,000 files): {}",
        describe(&read)
    );
    println!(
        "    REST requests spent before choosing git: {}",
        cloud.requests()
    );
    drop(app);

    // Data Center, first sync of all of Setup/ through one archive.
    println!("\nData Center emulation (archive with a path filter)");
    let compressed = |folder: &str| {
        root.git()
            .command()
            .current_dir(&repo)
            .args(["archive", "--format=tar.gz", "main", folder])
            .output()
            .unwrap()
            .stdout
            .len()
    };
    let app = server("dc", "bitbucket-server", Some(&dc), &[]);
    dc.reset_counts();
    let read = enable(&app, "dc", &["--account"]);
    let setup = compressed("Setup");
    println!(
        "  first sync of all of Setup/: {}; {:.2}x the compressed folder ({} bytes)",
        describe(&read),
        dc.bytes_sent() as f64 / setup as f64,
        setup
    );
    drop(app);

    // `reposync fetch` of one folder through Cloud REST, against what a pipeline does
    // without it: a shallow clone and a checkout (the server refuses filters, as Cloud does).
    println!("\nreposync fetch of one folder (Cloud emulation)");
    let folder = format!("Setup/Applications/{}", app_name(9));
    let app = server(
        "cloud",
        "bitbucket-cloud",
        Some(&cloud),
        &["--api-username", EMAIL],
    );
    let out = app.dir.path().join("fetched");
    let started = Instant::now();
    let fetched = app
        .cli(
            &[
                "--json",
                "fetch",
                "--connector",
                "cloud",
                "--out",
                out.to_str().unwrap(),
                &folder,
            ],
            None,
        )
        .ok()
        .json();
    let fetch_time = started.elapsed();
    println!(
        "  reposync fetch {folder}: {} in {} ms ({} files, {})",
        mib(fetched["read"]["bytes"].as_u64().unwrap_or(0)),
        fetch_time.as_millis(),
        fetched["files"].as_array().map_or(0, Vec::len),
        describe(&fetched["read"])
    );
    drop(app);
    let plain = tempfile::tempdir().unwrap();
    let askpass = plain.path().join("askpass.sh");
    std::fs::write(
        &askpass,
        format!("#!/bin/sh\ncase \"$1\" in Username*) echo {USER};; *) echo {TOKEN};; esac\n"),
    )
    .unwrap();
    std::process::Command::new("chmod")
        .args(["700", askpass.to_str().unwrap()])
        .status()
        .unwrap();
    let plain_ca = plain.path().join("ca.pem");
    std::fs::write(&plain_ca, &ca_pem).unwrap();
    let plain_env = [
        ("GIT_SSL_CAINFO", plain_ca.to_str().unwrap()),
        ("GIT_ASKPASS", askpass.to_str().unwrap()),
    ];
    let started = Instant::now();
    root.git()
        .run_with_env(
            plain.path(),
            &[
                "clone",
                "--depth",
                "1",
                "--single-branch",
                &git.repo_url(REPO),
                "c",
            ],
            &plain_env,
        )
        .unwrap();
    let clone_time = started.elapsed();
    let clone_bytes = dir_bytes(&plain.path().join("c").join(".git").join("objects"));
    println!(
        "  git clone --depth 1 and checkout: {} in {} ms; reposync fetch takes {:.4}x the bytes and {:.2}x the time",
        mib(clone_bytes),
        clone_time.as_millis(),
        fetched["read"]["bytes"].as_f64().unwrap_or(0.0) / clone_bytes as f64,
        fetch_time.as_secs_f64() / clone_time.as_secs_f64()
    );
    drop(plain);

    // A server that honours partial clone: reposync's git read of Setup/ against a hand-tuned
    // sparse, blobless, shallow clone of it.
    println!("\nPartial-clone server");
    root.git()
        .run(&repo, &["config", "uploadpack.allowFilter", "true"])
        .unwrap();
    let app = server("partial", "git", None, &[]);
    let read = enable(&app, "partial", &["--account"]);
    println!("  reposync's read of all of Setup/: {}", describe(&read));
    let reposync_bytes = read["bytes"].as_u64().unwrap_or(0);
    drop(app);
    let tuned = tempfile::tempdir().unwrap();
    let askpass = tuned.path().join("askpass.sh");
    std::fs::write(
        &askpass,
        format!("#!/bin/sh\ncase \"$1\" in Username*) echo {USER};; *) echo {TOKEN};; esac\n"),
    )
    .unwrap();
    std::process::Command::new("chmod")
        .args(["700", askpass.to_str().unwrap()])
        .status()
        .unwrap();
    let ca_file = tuned.path().join("ca.pem");
    std::fs::write(&ca_file, &ca_pem).unwrap();
    let clone_env = [
        ("GIT_SSL_CAINFO", ca_file.to_str().unwrap()),
        ("GIT_ASKPASS", askpass.to_str().unwrap()),
    ];
    let started = Instant::now();
    root.git()
        .run_with_env(
            tuned.path(),
            &[
                "clone",
                "--depth",
                "1",
                "--filter=blob:none",
                "--sparse",
                "--no-checkout",
                &git.repo_url(REPO),
                "c",
            ],
            &clone_env,
        )
        .unwrap();
    let clone_dir = tuned.path().join("c");
    root.git()
        .run_with_env(&clone_dir, &["sparse-checkout", "set", "Setup"], &clone_env)
        .unwrap();
    root.git()
        .run_with_env(&clone_dir, &["checkout", "main"], &clone_env)
        .unwrap();
    let tuned_bytes = dir_bytes(&clone_dir.join(".git").join("objects"));
    println!(
        "  hand-tuned clone --depth 1 --filter=blob:none --sparse of Setup/: {} in {} ms; reposync {:.2}x its bytes",
        mib(tuned_bytes),
        started.elapsed().as_millis(),
        reposync_bytes as f64 / tuned_bytes as f64
    );
}
