//! Git → reposync: applying each commit read from a branch to the tree, with the same checks
//! as an import, file by file.
//!
//! A commit's files go to the scope that covers them: the account's own files if the account
//! is linked to this branch, an application's folder if that application is. A folder of an
//! application reposync does not have yet creates it and links it to the branch. Files of
//! other scopes are not reposync's to apply here and are left alone.
//!
//! A file that fails (bad YAML, unknown path, a schema error, a missing reference) becomes a
//! Git Sync error holding its content; files that depend on it fail naming it; the rest
//! applies. An entry that reposync cannot hold as a file at all (a path that is not UTF-8 or
//! holds `.git`, `..` or control characters, a symbolic link, a submodule) becomes an
//! `unrepresentable_path` error named by its escaped path, which a later commit removing the
//! entry clears. When reposync holds an unpushed change to a file that Git also changed,
//! reposync's change wins: Git's version is kept in an `overridden` sync error and reposync's
//! is pushed over it.

use std::collections::{HashMap, HashSet};

use reposync_model::connector_yaml::MappedManagers;
use reposync_model::scope::app_index;
use reposync_model::tree::{EntityKind, PathClass, classify};
use reposync_model::validate::{TreeProblem, TreeWarning, isolate_failures, read_files};
use reposync_model::yaml::Limits;
use reposync_model::{LinkId, ObjectId, PathProblem, connector_yaml, escape_path};
use reposync_store::{
    ConnectorRecord, EntityChange, Fence, FileError, InboundCommit, InboundFile, InboundStatus,
    InboundWarning, SecretKind, Store, StoreError, SyncBranch, SyncLink, app_of_path,
};
use reposync_sync::{ReadChange, ReadCommit, UnrepresentableFile};

use crate::tree::{
    connector_from_file, connectors_by_name, entity_put, existing_paths, source_repo_provider_name,
};

/// The code of the sync error about an entry reposync cannot hold as a file.
pub const UNREPRESENTABLE_PATH: &str = "unrepresentable_path";

/// What a path of the commit becomes.
enum Fate {
    /// reposync syncs this scope with this branch: apply it.
    Apply { link: Option<LinkId> },
    /// An application reposync does not have: create it, linked to this branch.
    NewApp(String),
    /// Another scope's file: not applied from this branch.
    NotOurs,
}

/// How often a commit is planned again when reposync's own changes keep landing between its
/// planning and its applying.
const PLANS: usize = 3;

/// Applies one commit (or snapshot) read from the branch, recording it in the same
/// transaction. reposync's own changes can land between planning and applying; the store then
/// refuses, and the commit is planned again against them. One that keeps meeting new changes
/// is left as a conflict, to be read again later.
///
/// `fence` is the lease on the branch the commit was read under: the store refuses the commit
/// once another replica holds the branch.
pub async fn apply_commit(
    store: &Store,
    branch: &SyncBranch,
    commit: &ReadCommit,
    fence: Option<&Fence>,
) -> Result<(), StoreError> {
    for _ in 1..PLANS {
        match apply_planned(store, branch, commit, fence).await {
            Err(StoreError::Conflict { .. }) => continue,
            other => return other,
        }
    }
    apply_planned(store, branch, commit, fence).await
}

/// Plans one commit against the store as it is, and applies it.
async fn apply_planned(
    store: &Store,
    branch: &SyncBranch,
    commit: &ReadCommit,
    fence: Option<&Fence>,
) -> Result<(), StoreError> {
    let started = std::time::Instant::now();
    let mut record = InboundCommit {
        branch_id: branch.id.clone(),
        commit_id: commit.commit.clone(),
        status: InboundStatus::Nothing,
        files: inbound_files(commit),
        message: commit.message.clone(),
        author: commit.author.clone(),
        errors: Vec::new(),
        changesets: Vec::new(),
        fixed: Vec::new(),
        new_apps: Vec::new(),
    };
    if !commit.snapshot
        && store
            .is_our_commit(&commit.commit, &commit.changeset_ids())
            .await?
    {
        record.status = InboundStatus::Ours;
        record.changesets = commit.changeset_ids();
        store.apply_from_git(&[], &record, fence).await?;
        tracing::debug!(commit = %commit.commit, "our own commit came back; not applied");
        return Ok(());
    }

    let all_links = store.live_links().await?;
    // The links that read this branch.
    let links: Vec<&SyncLink> = all_links
        .iter()
        .filter(|l| {
            l.connector_id == branch.connector_id
                && l.repo == branch.repo
                && l.branch == branch.branch
        })
        .collect();
    let existing = existing_paths(store).await?;
    let fate = |path: &str| -> Fate {
        let app = app_of_path(path);
        if let Some(link) = links.iter().find(|l| l.app.as_deref() == app) {
            return Fate::Apply {
                link: Some(link.id.clone()),
            };
        }
        match app {
            Some(app)
                if !existing.contains(&app_index(app))
                    && !all_links.iter().any(|l| l.app.as_deref() == Some(app)) =>
            {
                Fate::NewApp(app.to_owned())
            }
            _ => Fate::NotOurs,
        }
    };

    // What the commit asks: files to write, paths to delete, each in a scope of ours.
    let mut puts: Vec<(String, Vec<u8>)> = Vec::new();
    let mut deletes: Vec<String> = Vec::new();
    let mut link_of: HashMap<String, Option<LinkId>> = HashMap::new();
    let mut new_apps: HashSet<String> = HashSet::new();
    let mut consider = |path: &str, content: Option<&Vec<u8>>| {
        if !matches!(classify(path), Ok(PathClass::Entity(_)) | Err(_)) {
            return; // Outside the tree, or a file the layout does not hold: not synced.
        }
        let link = match fate(path) {
            Fate::Apply { link } => link,
            Fate::NewApp(app) => {
                new_apps.insert(app);
                None
            }
            Fate::NotOurs => return,
        };
        link_of.insert(path.to_owned(), link);
        match content {
            Some(bytes) => puts.push((path.to_owned(), bytes.clone())),
            None => deletes.push(path.to_owned()),
        }
    };
    for file in &commit.files {
        if let ReadChange::Renamed { from } = &file.change {
            consider(from, None);
        }
        consider(&file.path, file.content.as_ref());
    }
    // Entries that are not files reposync can hold, by the escaped path that names them.
    let entries: Vec<(String, &UnrepresentableFile)> = commit
        .unrepresentable
        .iter()
        .map(|entry| (escape_path(&entry.path), entry))
        .collect();
    if commit.snapshot {
        // The branch as a whole: what reposync holds in these scopes and the branch lacks
        // was deleted in Git. A file that Git now holds as an entry reposync cannot (a link
        // where the file was) is not deleted: it stays, with an error saying why.
        let present: HashSet<&str> = commit
            .files
            .iter()
            .map(|f| f.path.as_str())
            .chain(entries.iter().map(|(path, _)| path.as_str()))
            .collect();
        for path in &existing {
            if !present.contains(path.as_str()) && links.iter().any(|l| l.covers(path)) {
                consider(path, None);
            }
        }
    }
    // Deleting what reposync does not have is nothing to do.
    deletes.retain(|p| existing.contains(p));
    // Files that failed only because a file they depend on failed get another chance with
    // every commit, as Git last had them: fixing the file they depend on fixes them too.
    for error in store.open_sync_errors().await? {
        if error.branch_id.as_ref() == Some(&branch.id)
            && error.code == "depends_on_failed"
            && let (Some(path), Some(content)) = (error.path, error.theirs)
            && !puts.iter().any(|(p, _)| *p == path)
            && !deletes.contains(&path)
        {
            link_of.insert(path.clone(), error.link_id);
            puts.push((path, content));
        }
    }
    // Files that did not change are not news (a snapshot holds every file).
    if commit.snapshot {
        let stored = store
            .file_contents(&puts.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>())
            .await?;
        puts.retain(|(path, bytes)| stored.get(path) != Some(bytes));
    }

    // reposync's unpushed changes win over Git's versions of the same files.
    let pending = store.pending_paths_of_branch(&branch.id).await?;
    let overridden: Vec<String> = puts
        .iter()
        .map(|(p, _)| p.clone())
        .chain(deletes.iter().cloned())
        .filter(|p| pending.contains(p))
        .collect();
    if !overridden.is_empty() {
        let ours = store.file_contents(&overridden).await?;
        for path in &overridden {
            let theirs = puts.iter().find(|(p, _)| p == path).map(|(_, b)| b.clone());
            record.errors.push(FileError {
                path: path.clone(),
                link_id: link_of.get(path).cloned().flatten(),
                code: "overridden".into(),
                message: format!(
                    "{path} was changed in Git (commit {}) while reposync held a change to it that was not pushed yet; reposync's version wins and is pushed over it. Git's version is kept here",
                    short(&commit.commit)
                ),
                theirs,
                ours: ours.get(path).cloned(),
            });
        }
        puts.retain(|(p, _)| !pending.contains(p));
        deletes.retain(|p| !pending.contains(p));
    }
    let (entry_errors, entries_gone) = entry_outcomes(
        store,
        branch,
        commit,
        &entries,
        &pending,
        &fate,
        links.first().map(|l| l.id.clone()),
    )
    .await?;

    let (changes, problems, warnings) =
        plan_changes(store, branch, &puts, &deletes, &existing).await?;
    // Warnings do not stop a file; they are recorded with the commit's files, where sync
    // activity shows them, and logged.
    for warning in warnings {
        tracing::warn!(
            branch = %branch.branch,
            commit = %commit.commit,
            path = %warning.path,
            line = warning.line,
            "a file read from Git: {}",
            warning.message
        );
        if let Some(file) = record.files.iter_mut().find(|f| f.path == warning.path) {
            file.warnings.push(InboundWarning {
                line: warning.line,
                column: warning.column,
                message: warning.message,
            });
        }
    }
    let failed: HashSet<&str> = problems.iter().map(|p| p.path.as_str()).collect();
    let contents: HashMap<&str, &Vec<u8>> = puts.iter().map(|(p, b)| (p.as_str(), b)).collect();
    let mut messages: HashMap<&str, Vec<String>> = HashMap::new();
    for problem in &problems {
        let text = match problem.line {
            0 => problem.message.clone(),
            line => format!("{line}:{}: {}", problem.column, problem.message),
        };
        messages
            .entry(problem.path.as_str())
            .or_default()
            .push(text);
    }
    let mut failed_paths: Vec<&str> = failed.iter().copied().collect();
    failed_paths.sort_unstable();
    for path in failed_paths {
        let earlier = store.earlier_failures(&branch.id, path).await?;
        let mut message = format!(
            "{path} in commit {}: {}",
            short(&commit.commit),
            messages.get(path).map(|m| m.join("; ")).unwrap_or_default()
        );
        if !earlier.is_empty() {
            let earlier: Vec<&str> = earlier.iter().map(short).collect();
            message.push_str(&format!(" (it also failed in {})", earlier.join(", ")));
        }
        // Only blocked by a file it depends on: this file is fine and is tried again with
        // each later commit.
        let depends = problems
            .iter()
            .filter(|p| p.path == path)
            .all(|p| p.blocked_by.is_some());
        record.errors.push(FileError {
            path: path.to_owned(),
            link_id: link_of.get(path).cloned().flatten(),
            code: if depends {
                "depends_on_failed"
            } else {
                "invalid_file"
            }
            .into(),
            message,
            theirs: contents.get(path).map(|b| (*b).clone()),
            ours: None,
        });
    }
    record.errors.extend(entry_errors);
    let applied: Vec<String> = puts
        .iter()
        .map(|(p, _)| p.clone())
        .chain(deletes.iter().cloned())
        .filter(|p| !failed.contains(p.as_str()))
        .chain(entries_gone)
        .collect();
    record.new_apps = new_apps
        .into_iter()
        .filter(|app| applied.contains(&app_index(app)))
        .collect();
    record.new_apps.sort();
    record.status = match (applied.is_empty(), record.errors.is_empty()) {
        _ if commit.snapshot => InboundStatus::Snapshot,
        (true, true) => InboundStatus::Nothing,
        (false, true) => InboundStatus::Applied,
        (true, false) => InboundStatus::Failed,
        (false, false) => InboundStatus::Partial,
    };
    record.fixed = applied;
    let outcomes = store.apply_from_git(&changes, &record, fence).await?;
    tracing::info!(
        commit = %commit.commit,
        branch = %branch.branch,
        status = record.status.as_str(),
        applied = outcomes.len(),
        errors = record.errors.len(),
        new_apps = record.new_apps.len(),
        apply_ms = started.elapsed().as_millis(),
        "applied a commit from Git"
    );
    Ok(())
}

/// What becomes of the entries of a commit that reposync cannot hold as files (`entries`, by
/// escaped path): one `unrepresentable_path` error for each added or changed one in a scope
/// of this branch, and the paths of those that are gone, whose errors the commit clears. For
/// a snapshot, an entry with an open error that the branch no longer holds is gone too. An
/// entry where reposync holds an unpushed change is left to that change, which replaces it.
async fn entry_outcomes(
    store: &Store,
    branch: &SyncBranch,
    commit: &ReadCommit,
    entries: &[(String, &UnrepresentableFile)],
    pending: &HashSet<String>,
    fate: &(dyn Fn(&str) -> Fate + Sync),
    first_link: Option<LinkId>,
) -> Result<(Vec<FileError>, Vec<String>), StoreError> {
    let mut errors = Vec::new();
    let mut gone = Vec::new();
    for (path, entry) in entries {
        let link = match fate(path) {
            Fate::Apply { link } => link,
            // A folder no link covers yet (an application reposync does not have): the error
            // goes on the branch's first link, so that it is counted and listed with it.
            Fate::NewApp(_) => first_link.clone(),
            Fate::NotOurs => continue,
        };
        if entry.change == ReadChange::Deleted {
            gone.push(path.clone());
            continue;
        }
        if pending.contains(path) {
            continue;
        }
        errors.push(unrepresentable_error(
            path,
            &entry.problem,
            &commit.commit,
            link,
        ));
    }
    if commit.snapshot {
        let present: HashSet<&str> = entries.iter().map(|(path, _)| path.as_str()).collect();
        for error in store.open_sync_errors().await? {
            if error.branch_id.as_ref() == Some(&branch.id)
                && error.code == UNREPRESENTABLE_PATH
                && let Some(path) = error.path
                && !present.contains(path.as_str())
            {
                gone.push(path);
            }
        }
    }
    Ok((errors, gone))
}

/// The sync error about an entry of `commit` that reposync cannot hold as a file, named by its
/// escaped `path`.
pub fn unrepresentable_error(
    path: &str,
    problem: &PathProblem,
    commit: &ObjectId,
    link_id: Option<LinkId>,
) -> FileError {
    FileError {
        path: path.to_owned(),
        link_id,
        code: UNREPRESENTABLE_PATH.into(),
        message: format!(
            "{path} in commit {}: {problem}. reposync cannot sync this entry and applies the rest of the branch; remove or rename it in Git to clear this error",
            short(commit)
        ),
        theirs: None,
        ours: None,
    }
}

/// The changes to apply, the problems of the files set apart, and the warnings of the files
/// read: checked like an import, but a failing file does not stop the others.
async fn plan_changes(
    store: &Store,
    branch: &SyncBranch,
    puts: &[(String, Vec<u8>)],
    deletes: &[String],
    existing: &HashSet<String>,
) -> Result<(Vec<EntityChange>, Vec<TreeProblem>, Vec<TreeWarning>), StoreError> {
    let mut report = read_files(puts, &Limits::default());
    let connectors = connectors_by_name(store).await?;
    let secrets: HashMap<String, SecretKind> = store
        .list_secrets()
        .await?
        .into_iter()
        .map(|s| (s.name.to_string(), s.kind))
        .collect();
    let own = connectors
        .values()
        .find(|c| c.id == branch.connector_id)
        .cloned();

    // A deletion that files staying behind still refer to cannot apply.
    let deleting: HashSet<&str> = deletes.iter().map(String::as_str).collect();
    let rewritten: HashSet<&str> = puts.iter().map(|(p, _)| p.as_str()).collect();
    let mut kept_deletes = Vec::new();
    for path in deletes {
        if own
            .as_ref()
            .is_some_and(|c| connector_yaml::path(&c.spec.name) == *path)
        {
            report.problems.push(problem(
                path,
                "deleting this Source Repo Provider would break the sync link it arrived through; it was not deleted".into(),
            ));
            continue;
        }
        let referrers: Vec<String> = store
            .entity_referrers(path)
            .await?
            .into_iter()
            .filter(|r| !deleting.contains(r.as_str()) && !rewritten.contains(r.as_str()))
            .collect();
        if referrers.is_empty() {
            kept_deletes.push(path.clone());
        } else {
            report.problems.push(problem(
                path,
                format!(
                    "cannot be deleted: {} still refer(s) to it",
                    referrers.join(", ")
                ),
            ));
        }
    }

    // Source Repo Provider files are connectors.
    let mut connector_writes = Vec::new();
    for file in &report.files {
        let (EntityKind::SourceRepoProvider, Some(name), Some(document)) =
            (file.entity.kind, &file.entity.name, &file.document)
        else {
            continue;
        };
        let current = connectors.get(name.as_str());
        // A file from Git is read without mappings: a mapping is an import's decision, and
        // what reposync pushes names its own secrets.
        match connector_from_file(
            &file.path,
            name,
            document,
            current,
            &secrets,
            &MappedManagers::default(),
        ) {
            Ok(read) => {
                report.warnings.extend(read.warnings);
                let write = read.write;
                if let (Some(current), Some(own)) = (current, &own)
                    && current.id == own.id
                    && breaks_link(current, &write.spec, branch)
                {
                    report.problems.push(problem(
                        &file.path,
                        "this change would break the sync link it arrived through (its URL, scope, or branch for this repository); it was not applied".into(),
                    ));
                    continue;
                }
                connector_writes.push((file.path.clone(), write));
            }
            Err(problem) => report.problems.push(problem),
        }
    }

    let mut elsewhere = existing.clone();
    for path in &kept_deletes {
        elsewhere.remove(path);
    }
    // Files whose deletion failed stay; refusals above are per file, like any other problem.
    isolate_failures(&mut report, &elsewhere);
    let failed: HashSet<String> = report.problems.iter().map(|p| p.path.clone()).collect();

    let raw: HashMap<&str, &Vec<u8>> = puts.iter().map(|(p, b)| (p.as_str(), b)).collect();
    let mut parsed = report.files;
    parsed.retain(|f| f.entity.kind != EntityKind::SourceRepoProvider);
    parsed.sort_by_key(|f| (f.entity.kind.apply_rank(), f.path.clone()));
    let mut changes: Vec<EntityChange> = connector_writes
        .into_iter()
        .filter(|(path, _)| !failed.contains(path))
        .map(|(_, write)| EntityChange::PutConnector(Box::new(write)))
        .collect();
    changes.extend(parsed.iter().map(|file| entity_put(file, &raw)));
    changes.extend(
        kept_deletes
            .into_iter()
            .filter(|p| !failed.contains(p))
            .map(|path| match source_repo_provider_name(&path) {
                Some(name) => EntityChange::DeleteConnector { name },
                None => EntityChange::Delete { path },
            }),
    );
    report.warnings.sort();
    Ok((changes, report.problems, report.warnings))
}

/// Whether a connector change would stop the connector from reaching this branch's
/// repository as it does now.
fn breaks_link(
    current: &ConnectorRecord,
    spec: &reposync_model::GitConnector,
    branch: &SyncBranch,
) -> bool {
    let repo = branch
        .repo
        .as_deref()
        .and_then(|r| reposync_model::RepoSlug::parse(r).ok());
    let url = |s: &reposync_model::GitConnector| {
        s.repository_url(repo.as_ref()).ok().map(|u| u.git_url())
    };
    spec.scope != current.spec.scope
        || url(spec) != url(&current.spec)
        || spec.name != current.spec.name
}

fn problem(path: &str, message: String) -> TreeProblem {
    TreeProblem {
        path: path.to_owned(),
        line: 0,
        column: 0,
        message,
        blocked_by: None,
    }
}

/// The files of a commit for its record, entries reposync cannot hold named escaped.
fn inbound_files(commit: &ReadCommit) -> Vec<InboundFile> {
    let file = |change: &ReadChange, path: String| {
        let (op, from) = match change {
            ReadChange::Added => ("ADD", None),
            ReadChange::Modified => ("MODIFY", None),
            ReadChange::Deleted => ("DELETE", None),
            ReadChange::Renamed { from } => ("RENAME", Some(from.clone())),
        };
        InboundFile {
            op: op.to_owned(),
            path,
            from,
            warnings: Vec::new(),
        }
    };
    commit
        .files
        .iter()
        .map(|f| file(&f.change, f.path.clone()))
        .chain(
            commit
                .unrepresentable
                .iter()
                .map(|e| file(&e.change, escape_path(&e.path))),
        )
        .collect()
}

/// The first twelve digits of a commit id, as messages name it.
fn short(commit: &ObjectId) -> &str {
    let commit = commit.as_str();
    commit.get(..12).unwrap_or(commit)
}
