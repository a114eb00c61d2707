//! The tree's one write path: an edit (files, deletes, connector writes) is checked, every
//! file on its own and every link against the tree as it will be, and turned into the store's
//! changes in apply order, written as one all-or-nothing batch. Imports, single writes,
//! renames, application and connector changes, enabling sync and commits read from Git all
//! go through [`plan_edit`].

use std::collections::{HashMap, HashSet};

use reposync_api::{ImportReport, MappedSecretView, TreeProblemView};
use reposync_model::connector_yaml::MappedManagers;
use reposync_model::kinds::{references, retarget};
use reposync_model::tree::{EntityKind, EntityPath, PathClass, classify};
use reposync_model::validate::{
    MappedSecret, ParsedFile, TreeProblem, TreeWarning, check_links, read_files,
};
use reposync_model::yaml::{Document, Limits, emit, parse};
use reposync_model::{
    Credentials, EntityName, GitConnector, Person, connector_yaml, mixed_script_warning,
};
use reposync_store::{
    ChangeOutcome, ConnectorRecord, ConnectorWrite, EntityChange, EntityWrite, SecretKind, Store,
    StoreError, WebhookChange,
};

/// One all-or-nothing change to the tree.
#[derive(Debug, Default)]
pub struct TreeEdit {
    /// Files to create or replace, as bytes to parse and check.
    pub files: Vec<(String, Vec<u8>)>,
    /// Problems already found (undecodable input), reported with the rest.
    pub problems: Vec<TreeProblem>,
    /// Paths to delete. A Source Repo Provider path deletes the connector.
    pub deletes: Vec<String>,
    /// Connector changes that do not come from a file (the connector API).
    pub connectors: Vec<ConnectorWrite>,
    /// Other secret managers whose references Source Repo Provider files may use, read as
    /// reposync's secrets of the same name (`import --map-secret-manager`).
    pub mapped_managers: MappedManagers,
    pub dry_run: bool,
    /// The person making the edit, whom its changesets record; `None` when no person does
    /// (reposync itself). Commits read from Git are not edits and record nobody.
    pub by: Option<Person>,
}

/// What an edit came to: applied, or refused with every problem listed.
#[derive(Debug)]
pub enum TreeOutcome {
    Applied(ImportReport),
    Rejected(ImportReport),
}

impl TreeOutcome {
    /// The report of an applied edit, or a refused one as an `invalid_tree` error naming every
    /// problem with its file and line.
    pub fn into_result(self) -> Result<ImportReport, crate::error::CoreError> {
        match self {
            TreeOutcome::Applied(report) => Ok(report),
            TreeOutcome::Rejected(report) => Err(crate::error::CoreError::refused_tree(report)),
        }
    }
}

/// Writes files, connectors and deletes as one all-or-nothing batch, after checking every
/// file on its own and every link against the tree as it will be.
pub async fn apply_edit(store: &Store, mut edit: TreeEdit) -> Result<TreeOutcome, StoreError> {
    let dry_run = edit.dry_run;
    let by = edit.by.take();
    let (changes, mut summary) = match plan_edit(store, edit).await? {
        PlannedEdit::Ready { changes, summary } => (changes, summary),
        PlannedEdit::Rejected(report) => return Ok(TreeOutcome::Rejected(report)),
    };
    let outcomes = store.apply_entities(&changes, dry_run, by.as_ref()).await?;
    count_outcomes(&mut summary, &outcomes);
    summary.applied = !dry_run;
    tracing::info!(
        created = summary.created,
        changed = summary.changed,
        unchanged = summary.unchanged,
        deleted = summary.deleted,
        dry_run,
        "wrote tree"
    );
    Ok(TreeOutcome::Applied(summary))
}

/// An edit checked and turned into the store's changes (with the report to fill in once they
/// are written), or refused with every problem listed.
#[derive(Debug)]
pub enum PlannedEdit {
    Ready {
        changes: Vec<EntityChange>,
        summary: ImportReport,
    },
    Rejected(ImportReport),
}

/// Adds what the store did with each path to a report.
pub fn count_outcomes(summary: &mut ImportReport, outcomes: &[(String, ChangeOutcome)]) {
    for (_, outcome) in outcomes {
        match outcome {
            ChangeOutcome::Created => summary.created += 1,
            ChangeOutcome::Changed => summary.changed += 1,
            ChangeOutcome::Unchanged => summary.unchanged += 1,
            ChangeOutcome::Deleted => summary.deleted += 1,
        }
    }
}

/// Checks every file of an edit on its own and every link against the tree as it will be,
/// and turns the edit into the store's changes, in apply order. Nothing is written.
pub async fn plan_edit(store: &Store, edit: TreeEdit) -> Result<PlannedEdit, StoreError> {
    let TreeEdit {
        files,
        problems,
        deletes,
        connectors: connector_writes,
        mapped_managers,
        dry_run,
        // Only writing records who made an edit; checking it is the same for anyone.
        by: _,
    } = edit;
    let mut report = read_files(&files, &Limits::default());
    report.problems.extend(problems);
    // A connector written through the API is judged by its name like a file is.
    for write in &connector_writes {
        let renamed = write
            .current
            .as_ref()
            .is_none_or(|current| current.spec.name != write.spec.name);
        if renamed && let Some(message) = mixed_script_warning(write.spec.name.as_str()) {
            report.warnings.push(TreeWarning {
                path: write.path(),
                line: 0,
                column: 0,
                message,
            });
        }
    }
    let connectors = connectors_by_name(store).await?;
    let mut elsewhere = existing_paths(store).await?;
    for path in &deletes {
        elsewhere.remove(path);
    }
    for write in &connector_writes {
        if let Some(current) = &write.current {
            elsewhere.remove(&connector_yaml::path(&current.spec.name));
        }
        elsewhere.insert(write.path());
    }
    check_links(&mut report, &elsewhere);

    // Source Repo Provider files are connectors: each becomes a connector write.
    let mut changes: Vec<EntityChange> = Vec::new();
    let secrets: HashMap<String, SecretKind> = store
        .list_secrets()
        .await?
        .into_iter()
        .map(|s| (s.name.to_string(), s.kind))
        .collect();
    for file in &report.files {
        let (EntityKind::SourceRepoProvider, Some(name), Some(document)) =
            (file.entity.kind, &file.entity.name, &file.document)
        else {
            continue;
        };
        match connector_from_file(
            &file.path,
            name,
            document,
            connectors.get(name.as_str()),
            &secrets,
            &mapped_managers,
        ) {
            Ok(read) => {
                report.warnings.extend(read.warnings);
                report.mapped.extend(read.mapped);
                changes.push(EntityChange::PutConnector(Box::new(read.write)));
            }
            Err(problem) => report.problems.push(problem),
        }
    }
    report
        .files
        .retain(|f| f.entity.kind != EntityKind::SourceRepoProvider);
    report.warnings.sort();
    report.mapped.sort();
    let mut summary = ImportReport {
        dry_run,
        ignored: report.ignored.len(),
        warnings: report.warnings.iter().map(warning_view).collect(),
        mapped_secrets: report.mapped.iter().map(mapped_view).collect(),
        ..Default::default()
    };
    if !report.problems.is_empty() {
        report.problems.sort();
        summary.problems = report.problems.iter().map(problem_view).collect();
        return Ok(PlannedEdit::Rejected(summary));
    }

    let mut parsed = report.files;
    parsed.sort_by_key(|f| (f.entity.kind.apply_rank(), f.path.clone()));
    let raw: HashMap<&str, &Vec<u8>> = files.iter().map(|(p, b)| (p.as_str(), b)).collect();
    changes.extend(
        connector_writes
            .into_iter()
            .map(|w| EntityChange::PutConnector(Box::new(w))),
    );
    changes.extend(parsed.iter().map(|file| entity_put(file, &raw)));
    changes.extend(
        deletes
            .into_iter()
            .map(|path| match source_repo_provider_name(&path) {
                Some(name) => EntityChange::DeleteConnector { name },
                None => EntityChange::Delete { path },
            }),
    );
    Ok(PlannedEdit::Ready { changes, summary })
}

/// The write of a parsed file: its canonical YAML with the references it holds, or a
/// manifest's bytes as they came.
pub fn entity_put(file: &ParsedFile, raw: &HashMap<&str, &Vec<u8>>) -> EntityChange {
    let (content, refs) = match &file.document {
        Some(document) => (
            emit(document).into_bytes(),
            references(&file.entity, document)
                .into_iter()
                .map(|r| (r.field, r.target.to_path()))
                .collect(),
        ),
        None => (
            raw.get(file.path.as_str())
                .map(|b| (*b).clone())
                .unwrap_or_default(),
            Vec::new(),
        ),
    };
    EntityChange::Put(EntityWrite {
        path: file.path.clone(),
        kind: file.entity.kind.as_str().to_owned(),
        app: file.entity.app.as_ref().map(ToString::to_string),
        content,
        references: refs,
    })
}

/// A Source Repo Provider file as the connector write it means (over `current`, the connector
/// of that name if there is one), or the problem with it: a bad field, or a secret that does
/// not exist or is of the wrong kind.
pub fn connector_from_file(
    path: &str,
    name: &EntityName,
    document: &Document,
    current: Option<&ConnectorRecord>,
    secrets: &HashMap<String, SecretKind>,
    mapped: &MappedManagers,
) -> Result<FileConnector, TreeProblem> {
    let read =
        connector_yaml::read_connector(path, name, document, current.map(|c| &c.spec), mapped)?;
    let spec = read.connector;
    if let Some(mut problem) = missing_secret(path, &spec, document, secrets) {
        if let Some(mapping) = read.mapped.iter().find(|m| m.line == problem.line) {
            problem.message.push_str(&format!(
                " (the file's {} was read as reposync's secret {:?} through --map-secret-manager)",
                mapping.reference, mapping.secret
            ));
        }
        return Err(problem);
    }
    // The stored file names the secret where it now lives (`reposync:<name>`): the mapping is
    // a migration's decision, and every later reader of the tree (Git Sync, validate in CI, an
    // export imported again) must read it without being told again.
    Ok(FileConnector {
        write: ConnectorWrite {
            current: current.cloned(),
            file: connector_yaml::render(&spec, Some(document)),
            spec,
            webhook: WebhookChange::Keep,
        },
        warnings: read.warnings,
        mapped: read.mapped,
    })
}

/// A Source Repo Provider file as the connector write it means, with what is worth telling.
#[derive(Debug)]
pub struct FileConnector {
    pub write: ConnectorWrite,
    pub warnings: Vec<TreeWarning>,
    pub mapped: Vec<MappedSecret>,
}

/// A problem if the secret a Source Repo Provider file names does not exist or is of the wrong
/// kind, at the line that names it.
fn missing_secret(
    path: &str,
    spec: &GitConnector,
    document: &Document,
    secrets: &HashMap<String, SecretKind>,
) -> Option<TreeProblem> {
    let (key, name, wanted, described) = match &spec.credentials {
        Credentials::Https {
            password_secret, ..
        } => (
            "password",
            password_secret.as_str(),
            SecretKind::Text,
            "an Encrypted Text secret (a token or password)",
        ),
        Credentials::Ssh { ssh_key_secret } => (
            "sshKeyName",
            ssh_key_secret.as_str(),
            SecretKind::SshKey,
            "an SSH Key Credential",
        ),
    };
    let message = match secrets.get(name) {
        Some(kind) if *kind == wanted => return None,
        Some(_) => format!("{key}: secret {name:?} is not {described}"),
        None => format!(
            "{key}: secret {name:?} does not exist; create it first with `reposync secret create`"
        ),
    };
    let node = document.root_map().and_then(|m| m.get(key));
    Some(TreeProblem {
        path: path.to_owned(),
        line: node.map_or(0, |n| n.line),
        column: node.map_or(0, |n| n.column),
        message,
        blocked_by: None,
    })
}

/// The connector a Source Repo Provider path names, if it is one.
pub fn source_repo_provider_name(path: &str) -> Option<EntityName> {
    match classify(path) {
        Ok(PathClass::Entity(EntityPath {
            kind: EntityKind::SourceRepoProvider,
            name,
            ..
        })) => name,
        _ => None,
    }
}

/// Every connector, by name.
pub async fn connectors_by_name(
    store: &Store,
) -> Result<HashMap<String, ConnectorRecord>, StoreError> {
    Ok(store
        .list_connectors()
        .await?
        .into_iter()
        .map(|c| (c.spec.name.to_string(), c))
        .collect())
}

/// Paths that exist in the store, and each connector as its Source Repo Provider file.
pub async fn existing_paths(store: &Store) -> Result<HashSet<String>, StoreError> {
    let mut paths: HashSet<String> = store.entity_paths().await?.into_iter().collect();
    for connector in store.list_connectors().await? {
        paths.insert(connector_yaml::path(&connector.spec.name));
    }
    Ok(paths)
}

pub fn problem_view(problem: &TreeProblem) -> TreeProblemView {
    TreeProblemView {
        path: problem.path.clone(),
        line: problem.line,
        column: problem.column,
        message: problem.message.clone(),
    }
}

pub fn warning_view(warning: &TreeWarning) -> TreeProblemView {
    TreeProblemView {
        path: warning.path.clone(),
        line: warning.line,
        column: warning.column,
        message: warning.message.clone(),
    }
}

pub fn mapped_view(mapped: &MappedSecret) -> MappedSecretView {
    MappedSecretView {
        path: mapped.path.clone(),
        line: mapped.line,
        key: mapped.key.clone(),
        reference: mapped.reference.clone(),
        secret: mapped.secret.clone(),
    }
}

/// The files that refer to `from`, rewritten to refer to `to`. A referrer that `moved`
/// (`(old path, new path, content)`) is rewritten at its new path.
pub async fn rewritten_referrers(
    store: &Store,
    from: &EntityPath,
    to: &EntityPath,
    moved: &[(String, String, Vec<u8>)],
) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
    let mut files = Vec::new();
    for referrer in store.entity_referrers(&from.to_path()).await? {
        let stored = store.get_entity(&referrer).await?;
        let Ok(PathClass::Entity(entity)) = classify(&referrer) else {
            continue;
        };
        let Ok(mut document) = parse(&stored.content, &Limits::default()) else {
            continue;
        };
        if retarget(&entity, &mut document, from, to) == 0 {
            continue;
        }
        let target_path = moved
            .iter()
            .find(|(old, _, _)| *old == referrer)
            .map(|(_, new, _)| new.clone())
            .unwrap_or(referrer);
        files.push((target_path, emit(&document).into_bytes()));
    }
    Ok(files)
}
