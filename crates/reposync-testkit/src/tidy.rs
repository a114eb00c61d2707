//! Tidy tests: the workspace's own rules about where things may happen, checked on its
//! sources, as rust-analyzer's tidy tests do. Each rule names the files that break it.

use std::path::{Path, PathBuf};

/// The workspace's `crates` folder.
fn crates_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The library and binary sources (`src/`) of every crate but those named, as (crate, file,
/// text); the text with comments dropped, so that prose may name what code may not do, and
/// without the unit tests at the end of a file (from `#[cfg(test)]` on), which may spell out
/// paths and processes as test data.
fn sources_except(crates: &[&str]) -> Vec<(String, PathBuf, String)> {
    let mut all = Vec::new();
    let Ok(entries) = std::fs::read_dir(crates_dir()) else {
        return all;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if crates.contains(&name.as_str()) {
            continue;
        }
        for file in rust_files(&entry.path().join("src")) {
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            let code: String = text
                .lines()
                .take_while(|line| line.trim() != "#[cfg(test)]")
                .filter(|line| !line.trim_start().starts_with("//"))
                .collect::<Vec<_>>()
                .join("\n");
            all.push((name.clone(), file, code));
        }
    }
    all
}

/// The files among `sources` whose code holds any of `needles`.
fn offenders(sources: &[(String, PathBuf, String)], needles: &[&str]) -> Vec<String> {
    sources
        .iter()
        .filter(|(_, _, code)| needles.iter().any(|n| code.contains(n)))
        .map(|(_, file, _)| file.display().to_string())
        .collect()
}

#[test]
fn only_reposync_git_starts_processes() {
    // The testkit runs the test servers; it is never part of reposync.
    let sources = sources_except(&["reposync-git", "reposync-testkit"]);
    assert!(!sources.is_empty(), "no sources found");
    let found = offenders(
        &sources,
        &["Command::new", "process::Command", "tokio::process"],
    );
    assert!(
        found.is_empty(),
        "processes are started only by reposync-git (its runner builds the child's environment and kills its process group): {found:?}"
    );
}

#[test]
fn only_reposync_store_writes_sql() {
    let sources = sources_except(&["reposync-store", "reposync-testkit"]);
    let found = offenders(
        &sources,
        &[
            "sqlx::",
            "\"SELECT ",
            "INSERT INTO ",
            "DELETE FROM ",
            "CREATE TABLE",
        ],
    );
    assert!(found.is_empty(), "SQL belongs to reposync-store: {found:?}");
}

#[test]
fn only_the_model_knows_where_applications_live() {
    let sources = sources_except(&["reposync-model", "reposync-testkit"]);
    let found = offenders(&sources, &["Applications/", "\"Applications\""]);
    assert!(
        found.is_empty(),
        "the tree's layout belongs to reposync_model::scope (Scope, app_of_path, app_folder, app_index): {found:?}"
    );
}

#[test]
fn no_application_and_no_repository_are_stored_one_way() {
    // '' means none for both (migration 0011): joins compare them with plain equality.
    let store: Vec<(String, PathBuf, String)> = sources_except(&[])
        .into_iter()
        .filter(|(krate, _, _)| krate == "reposync-store")
        .collect();
    let found = offenders(
        &store,
        &[
            "COALESCE(repo",
            "COALESCE(l.repo",
            "COALESCE(app",
            "app IS NULL",
            "repo IS NULL",
        ],
    );
    assert!(
        found.is_empty(),
        "no application or repository is stored as '', never NULL: {found:?}"
    );
}

#[test]
fn locks_never_poison() {
    // A panic while a std mutex is held poisons it, and code that then skips the work (or
    // unwraps) stops a whole worker; parking_lot's mutex has no poisoning.
    let sources = sources_except(&["reposync-testkit"]);
    let found = offenders(
        &sources,
        &[
            "std::sync::Mutex",
            "std::sync::RwLock",
            "sync::{Arc, Mutex",
            "PoisonError",
        ],
    );
    assert!(
        found.is_empty(),
        "use parking_lot's Mutex and RwLock, which never poison: {found:?}"
    );
}

#[test]
fn every_test_file_belongs_to_a_test_binary() {
    let mut orphans = Vec::new();
    let Ok(crates) = std::fs::read_dir(crates_dir()) else {
        panic!("cannot read {}", crates_dir().display());
    };
    for krate in crates.flatten() {
        let tests = krate.path().join("tests");
        let Ok(entries) = std::fs::read_dir(&tests) else {
            continue;
        };
        for entry in entries.flatten() {
            let dir = entry.path();
            if !dir.is_dir() {
                continue; // `tests/*.rs` is a test binary of its own.
            }
            let files = rust_files(&dir);
            let main = dir.join("main.rs");
            let Ok(root) = std::fs::read_to_string(&main) else {
                // A folder of data (a corpus) holds no Rust; one that does is never built.
                orphans.extend(files.iter().map(|f| f.display().to_string()));
                continue;
            };
            for file in &files {
                if *file == main {
                    continue;
                }
                let Ok(relative) = file.strip_prefix(&dir) else {
                    continue;
                };
                // `x.rs` or `x/mod.rs` is declared by `mod x;` in main.rs; a file deeper down
                // by its parent module, which this check does not follow.
                let top = relative
                    .components()
                    .next()
                    .map(|c| {
                        c.as_os_str()
                            .to_string_lossy()
                            .trim_end_matches(".rs")
                            .to_owned()
                    })
                    .unwrap_or_default();
                let deeper = relative.components().count() > 2
                    || (relative.components().count() == 2 && !relative.ends_with("mod.rs"));
                if !deeper && !root.contains(&format!("mod {top};")) {
                    orphans.push(file.display().to_string());
                }
            }
        }
    }
    assert!(
        orphans.is_empty(),
        "test files that no test binary builds: {orphans:?}"
    );
}
