//! The configuration tree: import, export, and single files by path.

use std::collections::HashSet;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reposync_api::{
    ApiError, EntityView, ExportResponse, ImportReport, ImportRequest, TreeFile, TreeProblemView,
};
use reposync_model::kinds::references;
use reposync_model::tree::{EntityKind, EntityPath, ROOT};
use reposync_model::validate::{TreeProblem, check_links, read_files};
use reposync_model::yaml::{Limits, emit};
use reposync_store::{ChangeOutcome, EntityChange, EntityWrite};
use serde::{Deserialize, Serialize};

use crate::connector_yaml;
use crate::error::AppError;
use crate::handlers::{ApiJson, Deleted};
use crate::state::AppState;
use crate::views;

/// Validates a whole tree first, then applies it in the documented order, all or nothing.
/// Files already stored and absent from the tree are left alone: an import adds and changes,
/// it never deletes.
pub async fn import(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<ImportRequest>,
) -> Result<Response, AppError> {
    let mut files = Vec::with_capacity(request.files.len());
    let mut problems = Vec::new();
    for file in request.files {
        match STANDARD.decode(file.content.as_bytes()) {
            Ok(bytes) => files.push((file.path, bytes)),
            Err(_) => problems.push(TreeProblem {
                path: file.path,
                line: 0,
                column: 0,
                message: "content is not base64".into(),
            }),
        }
    }
    write_tree(&state, files, problems, Vec::new(), request.dry_run).await
}

/// Writes files and deletes paths as one all-or-nothing batch, after checking every file on
/// its own and every link against the tree as it will be. Answers with the report, or with
/// `422 invalid_tree` and the report listing every failing file.
pub async fn write_tree(
    state: &AppState,
    files: Vec<(String, Vec<u8>)>,
    problems: Vec<TreeProblem>,
    deletes: Vec<String>,
    dry_run: bool,
) -> Result<Response, AppError> {
    let mut report = read_files(&files, &Limits::default());
    report.problems.extend(problems);
    let mut elsewhere = existing_paths(state).await?;
    for path in &deletes {
        elsewhere.remove(path);
    }
    check_links(&mut report, &elsewhere);
    // Source Repo Providers are connectors. A file identical to the connector's own rendering
    // (an exported tree coming back) is left alone; changing them from YAML is not done yet.
    let mut unchanged_connectors = 0;
    let mut connector_files = HashSet::new();
    for file in &report.files {
        if file.entity.kind != EntityKind::SourceRepoProvider {
            continue;
        }
        connector_files.insert(file.path.clone());
        let same = match (connector_for_path(state, &file.path).await?, &file.document) {
            (Some(connector), Some(document)) => {
                connector_yaml::render(&connector.spec) == emit(document)
            }
            _ => false,
        };
        if same {
            unchanged_connectors += 1;
        } else {
            report.problems.push(TreeProblem {
                path: file.path.clone(),
                line: 0,
                column: 0,
                message: "Source Repo Providers are connectors: create or change them with `reposync connector add|update` (from YAML, this comes with Git Sync)".into(),
            });
        }
    }
    report.files.retain(|f| !connector_files.contains(&f.path));
    let mut summary = ImportReport {
        dry_run,
        ignored: report.ignored.len(),
        ..Default::default()
    };
    if !report.problems.is_empty() {
        report.problems.sort();
        summary.problems = report.problems.iter().map(problem_view).collect();
        return Ok(rejected(summary));
    }

    let mut parsed = report.files;
    parsed.sort_by_key(|f| (f.entity.kind.apply_rank(), f.path.clone()));
    let raw: std::collections::HashMap<&str, &Vec<u8>> =
        files.iter().map(|(p, b)| (p.as_str(), b)).collect();
    let mut changes: Vec<EntityChange> = parsed
        .iter()
        .map(|file| {
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
        })
        .collect();
    changes.extend(
        deletes
            .into_iter()
            .map(|path| EntityChange::Delete { path }),
    );
    let outcomes = state
        .store
        .apply_entities(&changes, &elsewhere, dry_run)
        .await?;
    for (_, outcome) in &outcomes {
        match outcome {
            ChangeOutcome::Created => summary.created += 1,
            ChangeOutcome::Changed => summary.changed += 1,
            ChangeOutcome::Unchanged => summary.unchanged += 1,
            ChangeOutcome::Deleted => summary.deleted += 1,
        }
    }
    summary.unchanged += unchanged_connectors;
    summary.applied = !dry_run;
    tracing::info!(
        created = summary.created,
        changed = summary.changed,
        unchanged = summary.unchanged,
        dry_run,
        "wrote tree"
    );
    Ok(Json(summary).into_response())
}

/// The connector a Source Repo Provider path names, if the path is one and the connector
/// exists.
async fn connector_for_path(
    state: &AppState,
    path: &str,
) -> Result<Option<reposync_store::ConnectorRecord>, AppError> {
    let Ok(reposync_model::tree::PathClass::Entity(entity)) = reposync_model::tree::classify(path)
    else {
        return Ok(None);
    };
    match (entity.kind, entity.name) {
        (EntityKind::SourceRepoProvider, Some(name)) => {
            Ok(state.store.get_connector(&name).await.ok())
        }
        _ => Ok(None),
    }
}

/// Paths that exist in the store, and each connector as its Source Repo Provider file.
async fn existing_paths(state: &AppState) -> Result<HashSet<String>, AppError> {
    let mut paths: HashSet<String> = state.store.entity_paths().await?.into_iter().collect();
    for connector in state.store.list_connectors().await? {
        let path = EntityPath {
            kind: EntityKind::SourceRepoProvider,
            app: None,
            service: None,
            environment: None,
            name: Some(connector.spec.name.clone()),
            rest: None,
        };
        paths.insert(path.to_path());
    }
    Ok(paths)
}

fn problem_view(problem: &TreeProblem) -> TreeProblemView {
    TreeProblemView {
        path: problem.path.clone(),
        line: problem.line,
        column: problem.column,
        message: problem.message.clone(),
    }
}

/// A refused tree: the usual error body, plus the report listing every failing file.
fn rejected(report: ImportReport) -> Response {
    #[derive(Serialize)]
    struct Body {
        error: ApiError,
        report: ImportReport,
    }
    let error = ApiError {
        code: "invalid_tree".into(),
        message: format!(
            "{} problem(s) in the tree; nothing was imported",
            report.problems.len()
        ),
        field: None,
    };
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        Json(Body { error, report }),
    )
        .into_response()
}

#[derive(Debug, Deserialize)]
pub struct ExportQuery {
    #[serde(default)]
    app: Option<String>,
}

/// Every file of the tree, or one application's.
pub async fn export(
    State(state): State<AppState>,
    query: Result<Query<ExportQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<ExportResponse>, AppError> {
    let Query(query) = query.map_err(|e| AppError::invalid("app", e.body_text()))?;
    if let Some(app) = &query.app {
        let index = format!("{ROOT}/Applications/{app}/Index.yaml");
        state
            .store
            .get_entity(&index)
            .await
            .map_err(|_| AppError::not_found(format!("application {app:?} does not exist")))?;
    }
    let mut files: Vec<TreeFile> = Vec::new();
    if query.app.is_none() {
        for connector in state.store.list_connectors().await? {
            files.push(TreeFile {
                path: connector_yaml::path(&connector.spec.name),
                content: STANDARD.encode(connector_yaml::render(&connector.spec)),
            });
        }
    }
    let stored: Vec<TreeFile> = state
        .store
        .list_entities(query.app.as_deref())
        .await?
        .into_iter()
        .map(|e| TreeFile {
            path: e.path,
            content: STANDARD.encode(&e.content),
        })
        .collect();
    files.extend(stored);
    Ok(Json(ExportResponse { files }))
}

#[derive(Debug, Deserialize)]
pub struct PathQuery {
    path: String,
}

/// One file by path.
pub async fn show(
    State(state): State<AppState>,
    query: Result<Query<PathQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<EntityView>, AppError> {
    let Query(query) = query.map_err(|e| AppError::invalid("path", e.body_text()))?;
    if let Some(connector) = connector_for_path(&state, &query.path).await? {
        return Ok(Json(EntityView {
            path: query.path,
            kind: EntityKind::SourceRepoProvider.as_str().to_owned(),
            content: connector_yaml::render(&connector.spec),
            revision: connector.revision,
            updated_at: views::timestamp(connector.updated_at),
        }));
    }
    let entity = state.store.get_entity(&query.path).await?;
    Ok(Json(EntityView {
        path: entity.path,
        kind: entity.kind,
        content: String::from_utf8_lossy(&entity.content).into_owned(),
        revision: entity.revision,
        updated_at: views::timestamp(entity.updated_at),
    }))
}

/// Deletes one file, unless others refer to it.
pub async fn delete(
    State(state): State<AppState>,
    query: Result<Query<PathQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Deleted>, AppError> {
    let Query(query) = query.map_err(|e| AppError::invalid("path", e.body_text()))?;
    state
        .store
        .apply_entities(
            &[EntityChange::Delete {
                path: query.path.clone(),
            }],
            &HashSet::new(),
            false,
        )
        .await?;
    tracing::info!(path = %query.path, "deleted entity");
    Ok(Json(Deleted::new(&query.path)))
}

/// Creates or updates one file from its YAML, with the same checks as an import.
pub async fn apply(
    State(state): State<AppState>,
    query: Result<Query<PathQuery>, axum::extract::rejection::QueryRejection>,
    ApiJson(request): ApiJson<reposync_api::ApplyRequest>,
) -> Result<Response, AppError> {
    let Query(query) = query.map_err(|e| AppError::invalid("path", e.body_text()))?;
    write_tree(
        &state,
        vec![(query.path, request.content.into_bytes())],
        Vec::new(),
        Vec::new(),
        false,
    )
    .await
}

/// `POST /api/v1/entities/rename`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenameRequest {
    path: String,
    name: String,
}

/// Renames an entity. An application, service or environment moves its whole folder; every
/// file that refers to the entity is rewritten to the new name; all in one batch.
pub async fn rename(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<RenameRequest>,
) -> Result<Response, AppError> {
    use reposync_model::kinds::retarget;
    use reposync_model::tree::{PathClass, classify};
    use reposync_model::yaml::parse;

    let from = match classify(&request.path)? {
        PathClass::Entity(entity) => entity,
        PathClass::Ignored => {
            return Err(AppError::invalid(
                "path",
                "is not a file of the Setup/ tree",
            ));
        }
    };
    let new_name = reposync_model::EntityName::parse(&request.name)?;
    let mut to = from.clone();
    match from.kind {
        EntityKind::Application => to.app = Some(new_name),
        EntityKind::Service => to.service = Some(new_name),
        EntityKind::Environment => to.environment = Some(new_name),
        EntityKind::SourceRepoProvider => {
            return Err(AppError::invalid(
                "path",
                "a Source Repo Provider is a connector: rename it with `reposync connector update NAME --name NEW`",
            ));
        }
        _ if from.name.is_some() => to.name = Some(new_name),
        _ => {
            return Err(AppError::invalid(
                "path",
                format!("a {} has no name of its own to change", from.kind),
            ));
        }
    }
    let old_path = from.to_path();
    let new_path = to.to_path();
    let existing = state.store.get_entity(&old_path).await?;
    if state.store.get_entity(&new_path).await.is_ok() {
        return Err(AppError::new(
            StatusCode::CONFLICT,
            "already_exists",
            format!("{new_path} already exists"),
        )
        .with_field("name"));
    }
    // What moves: the file, or the whole folder for applications, services and environments.
    let moved: Vec<(String, String, Vec<u8>)> = match from.kind {
        EntityKind::Application | EntityKind::Service | EntityKind::Environment => {
            let old_folder = old_path.trim_end_matches("Index.yaml").to_owned();
            let new_folder = new_path.trim_end_matches("Index.yaml").to_owned();
            state
                .store
                .list_entities(from.app.as_ref().map(|a| a.as_str()))
                .await?
                .into_iter()
                .filter_map(|e| {
                    let rest = e.path.strip_prefix(&old_folder)?.to_owned();
                    Some((e.path, format!("{new_folder}{rest}"), e.content))
                })
                .collect()
        }
        _ => {
            vec![(old_path.clone(), new_path.clone(), existing.content)]
        }
    };
    let moved_from: HashSet<&str> = moved.iter().map(|(old, _, _)| old.as_str()).collect();
    let mut files: Vec<(String, Vec<u8>)> = moved
        .iter()
        .map(|(_, new, content)| (new.clone(), content.clone()))
        .collect();
    // Files that refer to the entity get the new name; a referrer that moves too is rewritten
    // at its new path.
    for referrer in state.store.entity_referrers(&old_path).await? {
        let stored = state.store.get_entity(&referrer).await?;
        let Ok(PathClass::Entity(entity)) = classify(&referrer) else {
            continue;
        };
        let Ok(mut document) = parse(&stored.content, &Limits::default()) else {
            continue;
        };
        if retarget(&entity, &mut document, &from, &to) == 0 {
            continue;
        }
        let content = emit(&document).into_bytes();
        let target_path = moved
            .iter()
            .find(|(old, _, _)| *old == referrer)
            .map(|(_, new, _)| new.clone())
            .unwrap_or_else(|| referrer.clone());
        match files.iter_mut().find(|(p, _)| *p == target_path) {
            Some(file) => file.1 = content,
            None => files.push((target_path, content)),
        }
    }
    let deletes = moved_from.into_iter().map(str::to_owned).collect();
    tracing::info!(from = %old_path, to = %new_path, "renaming entity");
    write_tree(&state, files, Vec::new(), deletes, false).await
}
