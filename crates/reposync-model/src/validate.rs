//! Offline checks of a whole tree: paths, YAML, each kind's rules, and references that must
//! resolve within the tree. This is what `reposync validate` runs before anyone pushes.

use std::collections::HashSet;

use crate::connector_yaml::MappedManagers;
use crate::kinds::{check, references, unknown_keys};
use crate::name::mixed_script_warning;
use crate::tree::{EntityKind, EntityPath, PathClass, classify};
use crate::yaml::{Document, Limits, parse};

pub use crate::problem::{MappedSecret, TreeProblem, TreeWarning};

/// A file that parsed: its place in the tree and its document (`None` for manifest files,
/// which are opaque text).
#[derive(Debug, Clone)]
pub struct ParsedFile {
    pub path: String,
    pub entity: EntityPath,
    pub document: Option<Document>,
}

/// The outcome of reading a tree: the files that parsed, and every problem found.
#[derive(Debug, Default)]
pub struct TreeReport {
    pub files: Vec<ParsedFile>,
    pub ignored: Vec<String>,
    pub problems: Vec<TreeProblem>,
    /// What is accepted but worth a look (unknown keys, mixed-script names, a Source Repo
    /// Provider without a branch); never a reason to refuse.
    pub warnings: Vec<TreeWarning>,
    /// Secret references read through `--map-secret-manager`.
    pub mapped: Vec<MappedSecret>,
}

/// Parses and checks every file of a tree given as `(relative path, bytes)`, each file once,
/// including references, which must resolve within the tree.
pub fn validate_tree(files: &[(String, Vec<u8>)], limits: &Limits) -> TreeReport {
    validate_tree_with(files, limits, &HashSet::new())
}

/// [`validate_tree`], with references also resolving to `elsewhere`: paths that exist outside
/// the tree, such as the Source Repo Providers of a server an application-only repository is
/// synced with.
pub fn validate_tree_with(
    files: &[(String, Vec<u8>)],
    limits: &Limits,
    elsewhere: &HashSet<String>,
) -> TreeReport {
    validate_tree_mapped(files, limits, elsewhere, &MappedManagers::default())
}

/// [`validate_tree_with`], reading secret references of the `mapped` managers as reposync's
/// own secrets, as `import --map-secret-manager` will.
pub fn validate_tree_mapped(
    files: &[(String, Vec<u8>)],
    limits: &Limits,
    elsewhere: &HashSet<String>,
    mapped: &MappedManagers,
) -> TreeReport {
    let mut report = read_files(files, limits);
    // Offline, a Source Repo Provider file is checked as the connector it would become (its
    // URL, scope, branch and credentials); whether its secrets exist is the server's to say.
    let failed: HashSet<String> = report.problems.iter().map(|p| p.path.clone()).collect();
    for file in &report.files {
        if let (EntityKind::SourceRepoProvider, Some(name), Some(document)) =
            (file.entity.kind, &file.entity.name, &file.document)
            && !failed.contains(&file.path)
        {
            match crate::connector_yaml::read_connector(&file.path, name, document, None, mapped) {
                Ok(read) => {
                    report.warnings.extend(read.warnings);
                    report.mapped.extend(read.mapped);
                }
                Err(problem) => report.problems.push(problem),
            }
        }
    }
    check_links(&mut report, elsewhere);
    report.warnings.sort();
    report.mapped.sort();
    report
}

/// Checks that every reference, and every file's application, service or environment, is a
/// file of the tree or one of `elsewhere` (paths that exist outside it, such as what a server
/// already holds).
pub fn check_links(report: &mut TreeReport, elsewhere: &HashSet<String>) {
    check_references(report, elsewhere);
    check_parents(report, elsewhere);
    check_letter_case(report, elsewhere);
    report.problems.sort();
}

/// Refuses a file whose path, or one of whose folders, differs only in letter case from
/// another in the same folder (`TODO` beside `Todo`, `Services/Web` beside `Services/web`):
/// on a case-insensitive checkout (Windows, macOS) the two are one, and one silently wins.
fn check_letter_case(report: &mut TreeReport, elsewhere: &HashSet<String>) {
    // Every folder and file path, by its lower-case spelling; existing paths first, so that
    // the file that arrives is the one refused.
    let mut spellings: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    let mut sorted_elsewhere: Vec<&String> = elsewhere.iter().collect();
    sorted_elsewhere.sort();
    let prefixes = |path: &str| -> Vec<String> {
        let mut at = Vec::new();
        for (i, c) in path.char_indices() {
            if c == '/' {
                at.push(path[..i].to_owned());
            }
        }
        at.push(path.to_owned());
        at
    };
    for path in sorted_elsewhere {
        for prefix in prefixes(path) {
            spellings.entry(prefix.to_lowercase()).or_insert(prefix);
        }
    }
    let mut problems = Vec::new();
    for file in &report.files {
        for prefix in prefixes(&file.path) {
            let seen = spellings
                .entry(prefix.to_lowercase())
                .or_insert_with(|| prefix.clone());
            if *seen != prefix {
                problems.push(TreeProblem {
                    path: file.path.clone(),
                    line: 0,
                    column: 0,
                    message: format!(
                        "{prefix} differs only in letter case from {seen}, which exists: the two are one on case-insensitive checkouts (Windows, macOS); use the same spelling, or another name"
                    ),
                    blocked_by: None,
                });
                break;
            }
        }
    }
    report.problems.extend(problems);
}

/// Parses and checks each file on its own. Links between files are left to [`check_links`],
/// since what they may resolve to depends on where the files are going.
pub fn read_files(files: &[(String, Vec<u8>)], limits: &Limits) -> TreeReport {
    let mut report = TreeReport::default();
    for (path, bytes) in files {
        let problem = |line, column, message: String| TreeProblem {
            path: path.clone(),
            line,
            column,
            message,
            blocked_by: None,
        };
        let entity = match classify(path) {
            Ok(PathClass::Entity(entity)) => entity,
            Ok(PathClass::Ignored) => {
                report.ignored.push(path.clone());
                continue;
            }
            Err(error) => {
                report.problems.push(problem(0, 0, error.message));
                continue;
            }
        };
        let document = if entity.kind == EntityKind::ManifestFile {
            None
        } else {
            match parse(bytes, limits) {
                Ok(document) => Some(document),
                Err(error) => {
                    report
                        .problems
                        .push(problem(error.line, error.column, error.kind.to_string()));
                    continue;
                }
            }
        };
        if let Some(document) = &document {
            for p in check(&entity, document) {
                report.problems.push(problem(p.line, p.column, p.message));
            }
            for w in unknown_keys(&entity, document) {
                report.warnings.push(TreeWarning {
                    path: path.clone(),
                    line: w.line,
                    column: w.column,
                    message: w.message,
                });
            }
        }
        if let Some(message) = own_name(&entity).and_then(|n| mixed_script_warning(n.as_str())) {
            report.warnings.push(TreeWarning {
                path: path.clone(),
                line: 0,
                column: 0,
                message,
            });
        }
        report.files.push(ParsedFile {
            path: path.clone(),
            entity,
            document,
        });
    }
    report.problems.sort();
    report.warnings.sort();
    report
}

/// The name a file gives its entity, which is where a name is judged once: an application's,
/// service's or environment's `Index.yaml` names its folder, and the files of the kinds that
/// have a name of their own name themselves. The files inside a folder do not repeat it.
fn own_name(entity: &EntityPath) -> Option<&crate::name::EntityName> {
    match entity.kind {
        EntityKind::Application => entity.app.as_ref(),
        EntityKind::Service => entity.service.as_ref(),
        EntityKind::Environment => entity.environment.as_ref(),
        _ => entity.name.as_ref(),
    }
}

fn check_references(report: &mut TreeReport, elsewhere: &HashSet<String>) {
    let present: HashSet<String> = report
        .files
        .iter()
        .map(|f| f.path.clone())
        .chain(elsewhere.iter().cloned())
        .collect();
    let mut problems = Vec::new();
    for file in &report.files {
        let Some(document) = &file.document else {
            continue;
        };
        for reference in references(&file.entity, document) {
            if !present.contains(&reference.target.to_path()) {
                problems.push(TreeProblem {
                    path: file.path.clone(),
                    line: reference.line,
                    column: reference.column,
                    message: format!(
                        "{} refers to {} {:?}, which is not in the tree ({})",
                        reference.field,
                        reference.target.kind,
                        reference
                            .target
                            .name
                            .as_ref()
                            .or(reference.target.service.as_ref())
                            .or(reference.target.environment.as_ref())
                            .map(|n| n.as_str())
                            .unwrap_or_default(),
                        reference.target.to_path()
                    ),
                    blocked_by: None,
                });
            }
        }
    }
    report.problems.extend(problems);
}

/// A file inside an application, service or environment folder needs that folder's
/// `Index.yaml`.
fn check_parents(report: &mut TreeReport, elsewhere: &HashSet<String>) {
    let present: HashSet<String> = report
        .files
        .iter()
        .map(|f| f.path.clone())
        .chain(elsewhere.iter().cloned())
        .collect();
    let mut problems = Vec::new();
    for file in &report.files {
        let parents = parent_folders(&file.entity);
        for parent in parents {
            if !present.contains(&parent.to_path()) {
                problems.push(TreeProblem {
                    path: file.path.clone(),
                    line: 0,
                    column: 0,
                    message: format!("its {} has no {}", parent.kind, parent.to_path()),
                    blocked_by: None,
                });
            }
        }
    }
    report.problems.extend(problems);
}

/// Sets apart the files that cannot be applied, so that the rest can be: every file with a
/// problem, then every file that refers to one of them or sits in one of their folders (with
/// a problem naming it), then whatever no longer resolves against the files left and
/// `elsewhere`, until nothing more fails. `report.files` keeps only the files that can be
/// applied; `report.problems` holds one or more problems per file set apart.
///
/// This is how a commit read from Git is applied: a bad file becomes its own error and does
/// not stop the files that do not depend on it.
pub fn isolate_failures(report: &mut TreeReport, elsewhere: &HashSet<String>) {
    loop {
        let mut failed: HashSet<String> = report.problems.iter().map(|p| p.path.clone()).collect();
        // Dependents of a failed file fail too, naming it, through chains of any length.
        loop {
            let mut more = Vec::new();
            for file in &report.files {
                if failed.contains(&file.path) {
                    continue;
                }
                if let Some(blocker) = dependencies(file).into_iter().find(|d| failed.contains(d)) {
                    more.push(TreeProblem {
                        path: file.path.clone(),
                        line: 0,
                        column: 0,
                        message: format!("depends on {blocker}, which failed"),
                        blocked_by: Some(blocker.clone()),
                    });
                }
            }
            if more.is_empty() {
                break;
            }
            failed.extend(more.iter().map(|p| p.path.clone()));
            report.problems.extend(more);
        }
        report.files.retain(|f| !failed.contains(&f.path));
        // What is left must resolve against itself and `elsewhere`; anything that does not
        // fails in turn, and its dependents with it.
        let before = report.problems.len();
        check_links(report, elsewhere);
        if report.problems.len() == before {
            report.problems.dedup();
            return;
        }
    }
}

/// The paths a file needs: what it refers to, and the Index.yaml of its application,
/// service and environment folders.
fn dependencies(file: &ParsedFile) -> Vec<String> {
    let mut paths: Vec<String> = match &file.document {
        Some(document) => references(&file.entity, document)
            .into_iter()
            .map(|r| r.target.to_path())
            .collect(),
        None => Vec::new(),
    };
    paths.extend(parent_folders(&file.entity).iter().map(EntityPath::to_path));
    paths
}

/// The application, service and environment folders a file sits in, as their Index.yaml
/// entities.
fn parent_folders(e: &EntityPath) -> Vec<EntityPath> {
    let folder = |kind, service, environment| EntityPath {
        kind,
        app: e.app.clone(),
        service,
        environment,
        name: None,
        rest: None,
    };
    let mut parents = Vec::new();
    if e.kind != EntityKind::Application && e.app.is_some() {
        parents.push(folder(EntityKind::Application, None, None));
    }
    if e.kind != EntityKind::Service && e.service.is_some() {
        parents.push(folder(EntityKind::Service, e.service.clone(), None));
    }
    if e.kind != EntityKind::Environment && e.environment.is_some() {
        parents.push(folder(EntityKind::Environment, None, e.environment.clone()));
    }
    parents
}
