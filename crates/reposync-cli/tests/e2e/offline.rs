//! `reposync fmt` and `reposync validate`: offline, no server.

#![allow(clippy::expect_used)] // Test helpers outside #[test] functions may panic.

use crate::common;

use std::path::Path;
use std::process::Command;

use common::{binary, hermetic};

fn run(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let mut command = Command::new(binary());
    hermetic(&mut command, dir);
    let output = command
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run reposync");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn write(root: &Path, path: &str, text: &str) {
    let file = root.join(path);
    std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
    std::fs::write(file, text).expect("write");
}

#[test]
fn fmt_check_lists_files_fmt_rewrites_them_and_then_check_passes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    write(
        root,
        "Setup/Applications/Shop/Index.yaml",
        "harnessApiVersion: '1.0'\ntype: APPLICATION\n",
    );
    write(
        root,
        "Setup/Applications/Shop/Services/cart/Index.yaml",
        "type: SERVICE\ndescription: cart\nharnessApiVersion: '1.0'\n",
    );
    write(
        root,
        "Setup/Applications/Shop/Services/cart/Manifests/Files/values.yaml",
        "z: 1\na:   2\n",
    );

    let (code, stdout, _) = run(root, &["fmt", "--check", "Setup"]);
    assert_eq!(code, 1);
    assert_eq!(
        stdout.trim(),
        "Setup/Applications/Shop/Services/cart/Index.yaml"
    );
    let untouched =
        std::fs::read_to_string(root.join("Setup/Applications/Shop/Services/cart/Index.yaml"))
            .expect("read");
    assert!(
        untouched.starts_with("type: SERVICE"),
        "--check changes nothing"
    );

    let (code, _, stderr) = run(root, &["fmt", "Setup"]);
    assert_eq!(code, 0, "{stderr}");
    let formatted =
        std::fs::read_to_string(root.join("Setup/Applications/Shop/Services/cart/Index.yaml"))
            .expect("read");
    assert_eq!(
        formatted,
        "harnessApiVersion: '1.0'\ntype: SERVICE\ndescription: cart\n"
    );
    let manifest = std::fs::read_to_string(
        root.join("Setup/Applications/Shop/Services/cart/Manifests/Files/values.yaml"),
    )
    .expect("read");
    assert_eq!(
        manifest, "z: 1\na:   2\n",
        "manifest files are the user's own text"
    );

    let (code, _, _) = run(root, &["fmt", "--check", "Setup"]);
    assert_eq!(code, 0);
}

#[test]
fn fmt_check_accepts_the_corpus_unchanged() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../reposync-model/tests/corpus");
    let (code, stdout, stderr) = run(&corpus, &["fmt", "--check", "Setup"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
}

#[test]
fn validate_prints_one_line_per_problem_and_fails() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    write(
        root,
        "Setup/Applications/Shop/Index.yaml",
        "harnessApiVersion: '1.0'\ntype: APPLICATION\ngitConnector: Missing Repo\n",
    );
    write(
        root,
        "Setup/Applications/Shop/Workflows/bad.yaml",
        "harnessApiVersion: '1.0'\ntype: CANARY\nphases: [\n",
    );
    write(root, "Setup/Wrong/x.yaml", "a: 1\n");
    let (code, stdout, _) = run(root, &["validate", "."]);
    assert_eq!(code, 1);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert!(
        lines.iter().any(|l| l.starts_with(
            "Setup/Applications/Shop/Index.yaml:3:15: gitConnector refers to source-repo-provider"
        )),
        "{stdout}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("Setup/Applications/Shop/Workflows/bad.yaml:")),
        "{stdout}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("Setup/Wrong/x.yaml:1:1: unknown path")),
        "{stdout}"
    );

    // Given the Setup folder itself, paths are still reported from the repository root.
    let (code, stdout, _) = run(root, &["validate", "Setup"]);
    assert_eq!(code, 1);
    assert!(stdout.contains("Setup/Wrong/x.yaml"), "{stdout}");
}

#[test]
fn validate_accepts_the_corpus() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../reposync-model/tests/corpus");
    let (code, stdout, stderr) = run(&corpus, &["validate", "."]);
    assert_eq!(code, 0, "{stdout}{stderr}");
}

/// Only `Setup/` is the tree: a directory without one is refused, and whatever else a
/// repository holds is never read.
#[test]
fn validate_reads_only_setup_and_refuses_a_directory_without_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    write(root, "README.md", "not: [yaml\n");
    write(root, "target/debug/build.yaml", "not: [yaml\n");
    let (code, _, stderr) = run(root, &["validate", "."]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("holds no Setup/ folder"), "{stderr}");

    write(
        root,
        "Setup/Applications/Shop/Index.yaml",
        "harnessApiVersion: '1.0'\ntype: APPLICATION\n",
    );
    let (code, stdout, stderr) = run(root, &["validate", "."]);
    assert_eq!(
        code, 0,
        "the files outside Setup/ are not read: {stdout}{stderr}"
    );
    assert!(stderr.contains("1 files checked"), "{stderr}");
}

/// An application-only repository passes when the connectors it names live elsewhere: named
/// with `--known-connector`; `--connectors-from-server` is tested against a server in `cli`.
#[test]
fn validate_takes_connectors_known_elsewhere() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    write(
        root,
        "Setup/Applications/Shop/Index.yaml",
        "harnessApiVersion: '1.0'\ntype: APPLICATION\ngitConnector: Platform\n",
    );
    let (code, stdout, _) = run(root, &["validate", "."]);
    assert_eq!(code, 1);
    assert!(
        stdout.contains("gitConnector refers to source-repo-provider"),
        "{stdout}"
    );
    let (code, stdout, stderr) = run(root, &["validate", ".", "--known-connector", "Platform"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let (code, _, stderr) = run(root, &["validate", ".", "--known-connector", "a/b"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("--known-connector \"a/b\""), "{stderr}");
}

/// A Source Repo Provider file without `branch:`, as Harness wrote them for repositories
/// that follow their default branch.
const BRANCHLESS_CONNECTOR: &str = "harnessApiVersion: '1.0'\ntype: GIT\nkeyAuth: false\npassword: reposync:git-token\nproviderType: GIT\nurl: https://git.example.com/acme/config.git\nurlType: REPO\nusername: jdoe\n";

/// Unknown keys, mixed-script names and a connector without a branch are warnings, on stderr
/// with their file and line: the tree still passes (issue 13).
#[test]
fn validate_warns_of_unknown_keys_mixed_scripts_and_a_missing_branch_and_passes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    write(
        root,
        "Setup/Applications/Shop/Index.yaml",
        "harnessApiVersion: '1.0'\ntype: APPLICATION\nbranchNmae: main\ngitConnector: Git\n",
    );
    write(
        root,
        "Setup/Applications/T\u{043E}do/Index.yaml",
        "harnessApiVersion: '1.0'\ntype: APPLICATION\n",
    );
    write(
        root,
        "Setup/Source Repo Providers/Git.yaml",
        BRANCHLESS_CONNECTOR,
    );
    let (code, stdout, stderr) = run(root, &["validate", "."]);
    assert_eq!(code, 0, "warnings never fail: {stdout}{stderr}");
    assert_eq!(stdout, "", "problems only go to stdout");
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("warning: "))
        .collect();
    assert_eq!(
        warnings,
        [
            "warning: Setup/Applications/Shop/Index.yaml:3:1: unknown key branchNmae: reposync keeps it as written but does not read it; did you mean branchName?",
            "warning: Setup/Applications/T\u{043E}do/Index.yaml:1:1: the name \"T\u{043E}do\" mixes Latin and Cyrillic letters ('\u{043E}', U+043E, is Cyrillic): it can pass for another name that looks the same; if that is not meant, type the name again in one script",
            "warning: Setup/Source Repo Providers/Git.yaml:1:1: branch: not set, so this connector follows the repository's default branch (its HEAD, which `reposync connector test \"Git\"` shows and `sync enable` takes); add `branch: <name>` to pin one",
        ],
        "{stderr}"
    );
    assert!(
        stderr.contains("3 files checked, no problems, 3 warning(s)"),
        "{stderr}"
    );
}

/// `--map-secret-manager gcpkms` reads `gcpkms:NAME` as reposync's secret NAME and says so;
/// without it, the reference is refused naming the option.
#[test]
fn validate_maps_another_secret_manager_only_when_asked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    write(
        root,
        "Setup/Source Repo Providers/Git.yaml",
        &BRANCHLESS_CONNECTOR
            .replace("reposync:git-token", "gcpkms:db-password")
            .replace("keyAuth", "branch: main\nkeyAuth"),
    );
    let (code, stdout, _) = run(root, &["validate", "."]);
    assert_eq!(code, 1);
    assert!(
        stdout.starts_with("Setup/Source Repo Providers/Git.yaml:5:11: password: names a secret in secret manager \"gcpkms\";"),
        "{stdout}"
    );
    assert!(
        stdout.contains("import with --map-secret-manager gcpkms"),
        "{stdout}"
    );

    let (code, stdout, stderr) = run(root, &["validate", ".", "--map-secret-manager", "gcpkms"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stderr.contains("mapped: Setup/Source Repo Providers/Git.yaml:5: password: gcpkms:db-password is reposync's secret \"db-password\"\n"),
        "{stderr}"
    );

    let (code, _, stderr) = run(
        root,
        &["validate", ".", "--map-secret-manager", "safeharness"],
    );
    assert_eq!(code, 1);
    assert!(
        stderr.contains("--map-secret-manager: \"safeharness\": is reposync's own manager already"),
        "{stderr}"
    );
}
