//! Golden round trip over a corpus of Harness-style files: every file reads and writes back
//! byte for byte, and is already canonical.

#![allow(clippy::expect_used)] // Test helpers outside #[test] functions may panic.

use std::path::{Path, PathBuf};

use reposync_model::yaml::{Limits, Value, canonicalize, emit, parse};

fn corpus_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

/// Every YAML file of the corpus except manifest files, which are opaque text.
fn corpus_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .expect("corpus folder is readable")
            .map(|e| e.expect("corpus entry is readable").path())
            .collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "yaml")
                && !path.to_string_lossy().contains("/Manifests/Files/")
            {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&corpus_root(), &mut out);
    out
}

fn relative(path: &Path) -> String {
    path.strip_prefix(corpus_root())
        .expect("corpus files are under the corpus root")
        .to_string_lossy()
        .into_owned()
}

/// A readable report of the first differing line.
fn first_difference(want: &str, got: &str) -> String {
    for (i, (w, g)) in want.lines().zip(got.lines()).enumerate() {
        if w != g {
            return format!("line {}:\n  file: {w:?}\n  emit: {g:?}", i + 1);
        }
    }
    format!(
        "lengths differ: file has {} lines, emit has {}",
        want.lines().count(),
        got.lines().count()
    )
}

#[test]
fn corpus_has_every_kind() {
    let files: Vec<String> = corpus_files().iter().map(|p| relative(p)).collect();
    assert!(files.len() >= 40, "only {} corpus files", files.len());
    let mut types = Vec::new();
    for path in corpus_files() {
        let doc = parse(&std::fs::read(&path).unwrap(), &Limits::default()).unwrap();
        let t = doc
            .root_map()
            .and_then(|m| m.get("type"))
            .and_then(|n| n.as_str());
        types.push(t.unwrap_or_default().to_string());
    }
    for kind in [
        "ACCOUNT_DEFAULTS",
        "TAG",
        "KUBERNETES_CLUSTER",
        "AWS",
        "GCP",
        "DOCKER",
        "NEXUS",
        "ARTIFACTORY",
        "JENKINS",
        "SMTP",
        "SLACK",
        "GIT",
        "NOTIFICATION_GROUP",
        "APPLICATION",
        "APPLICATION_DEFAULTS",
        "SERVICE",
        "ECR",
        "APPLICATION_MANIFEST",
        "ENVIRONMENT",
        "INFRA_DEFINITION",
        "BASIC",
        "CANARY",
        "ROLLING",
        "MULTI_SERVICE",
        "BUILD",
        "BLUE_GREEN",
        "CUSTOM",
        "PIPELINE",
        "TRIGGER",
        "TERRAFORM",
        "CLOUD_FORMATION",
        "SHELL_SCRIPT",
        "PROMETHEUS",
        "ECS",
    ] {
        assert!(
            types.iter().any(|t| t == kind),
            "no corpus file of type {kind}"
        );
    }
}

#[test]
fn every_corpus_file_round_trips_byte_for_byte() {
    let mut failures = Vec::new();
    for path in corpus_files() {
        let bytes = std::fs::read(&path).unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        match parse(&bytes, &Limits::default()) {
            Ok(doc) => {
                let out = emit(&doc);
                if out != text {
                    failures.push(format!(
                        "{}: {}",
                        relative(&path),
                        first_difference(&text, &out)
                    ));
                }
            }
            Err(e) => failures.push(format!("{}: {e}", relative(&path))),
        }
    }
    assert!(
        failures.is_empty(),
        "{} files differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_corpus_file_is_already_canonical() {
    let mut failures = Vec::new();
    for path in corpus_files() {
        let bytes = std::fs::read(&path).unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        let mut doc = parse(&bytes, &Limits::default()).unwrap();
        canonicalize(&mut doc);
        let out = emit(&doc);
        if out != text {
            failures.push(format!(
                "{}: {}",
                relative(&path),
                first_difference(&text, &out)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} files are not canonical:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn corpus_files_start_with_api_version_and_type() {
    for path in corpus_files() {
        let doc = parse(&std::fs::read(&path).unwrap(), &Limits::default()).unwrap();
        let map = doc.root_map().unwrap();
        let keys: Vec<&str> = map.keys().take(2).filter_map(|k| k.as_str()).collect();
        assert_eq!(keys, ["harnessApiVersion", "type"], "{}", relative(&path));
        assert_eq!(
            map.get("harnessApiVersion").map(|n| &n.value),
            Some(&Value::String("1.0".into())),
            "{}",
            relative(&path)
        );
    }
}
