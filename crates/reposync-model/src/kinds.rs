//! What each modelled kind requires of its document, and the references it holds.
//!
//! The checks here are the ones that need nothing but the file itself (its `type:`, its
//! required keys) plus the list of references, each with the field and position it came from,
//! so that a caller holding the whole tree (or the database) can say which ones do not
//! resolve. Opaque kinds have no rules beyond being valid YAML.

use crate::name::EntityName;
use crate::tree::{EntityKind, EntityPath};
use crate::yaml::{Document, Mapping, Node, Value};

/// The `harnessApiVersion` every document carries.
pub const API_VERSION: &str = "1.0";

/// Which `type:` values a kind accepts.
#[derive(Debug, Clone, Copy)]
pub enum TypeRule {
    /// Exactly one of these.
    OneOf(&'static [&'static str]),
    /// Any upper-case identifier: the kind has open-ended subtypes (cloud providers, artifact
    /// servers, …) that reposync stores without interpreting.
    AnyIdentifier,
}

/// The rules of one kind.
#[derive(Debug, Clone, Copy)]
pub struct KindRules {
    pub types: TypeRule,
    /// Top-level keys that must be present (besides `harnessApiVersion` and `type`).
    pub required: &'static [&'static str],
}

/// The workflow types of Harness FirstGen.
pub const WORKFLOW_TYPES: &[&str] = &[
    "BASIC",
    "CANARY",
    "ROLLING",
    "MULTI_SERVICE",
    "BUILD",
    "BLUE_GREEN",
    "CUSTOM",
];

/// The rules of a modelled kind; `None` for opaque kinds and manifest files.
pub fn rules(kind: EntityKind) -> Option<KindRules> {
    use EntityKind as K;
    use TypeRule::{AnyIdentifier, OneOf};
    let (types, required): (TypeRule, &'static [&'static str]) = match kind {
        K::AccountDefaults => (OneOf(&["ACCOUNT_DEFAULTS"]), &[]),
        K::Tags => (OneOf(&["TAG"]), &[]),
        K::CloudProvider | K::ArtifactServer | K::CollaborationProvider => (AnyIdentifier, &[]),
        K::SourceRepoProvider => (OneOf(&["GIT"]), &["url"]),
        K::NotificationGroup => (OneOf(&["NOTIFICATION_GROUP"]), &[]),
        K::Application => (OneOf(&["APPLICATION"]), &[]),
        K::ApplicationDefaults => (OneOf(&["APPLICATION_DEFAULTS"]), &[]),
        K::Service => (OneOf(&["SERVICE"]), &[]),
        K::ArtifactStream => (AnyIdentifier, &["serverName"]),
        K::ManifestIndex => (OneOf(&["APPLICATION_MANIFEST"]), &[]),
        K::Environment => (OneOf(&["ENVIRONMENT"]), &["environmentType"]),
        K::InfrastructureDefinition => (OneOf(&["INFRA_DEFINITION"]), &["infrastructure"]),
        K::Provisioner => (AnyIdentifier, &[]),
        K::Workflow => (OneOf(WORKFLOW_TYPES), &[]),
        K::Pipeline => (OneOf(&["PIPELINE"]), &["pipelineStages"]),
        K::Trigger => (OneOf(&["TRIGGER"]), &["executionName", "executionType"]),
        K::ManifestFile | K::Opaque(_) => return None,
    };
    Some(KindRules { types, required })
}

/// The top-level keys Harness's format defines for a kind, besides `harnessApiVersion` and
/// `type`; `None` for kinds whose keys depend on their subtype (workflows, cloud providers,
/// artifact servers, …) or that reposync keeps opaque, where no key can be called unknown.
///
/// A key outside the list is kept and round-tripped like any other, and reported as a warning
/// with its line: a misspelt `branchNmae:` would otherwise be silently ignored.
pub fn known_keys(kind: EntityKind) -> Option<&'static [&'static str]> {
    use EntityKind as K;
    Some(match kind {
        K::AccountDefaults | K::ApplicationDefaults => &["defaults"],
        K::Tags => &["tag"],
        K::SourceRepoProvider => &[
            "authorEmailId",
            "authorName",
            "branch",
            "commitMessage",
            "delegateSelectors",
            "description",
            "keyAuth",
            "password",
            "providerType",
            "sshKeyName",
            "url",
            "urlType",
            "username",
        ],
        K::Application => &[
            "branchName",
            "description",
            "gitConnector",
            "isGitSyncEnabled",
            "isManualTriggerAuthorized",
            "repoName",
            "tags",
        ],
        K::Service => &[
            "applicationStack",
            "artifactType",
            "cfCliVersion",
            "configMapYaml",
            "configVariables",
            "deploymentType",
            "deploymentTypeTemplateUri",
            "description",
            "helmValueYaml",
            "helmVersion",
            "tags",
        ],
        K::Environment => &[
            "configMapYaml",
            "configMapYamlByServiceTemplateName",
            "description",
            "environmentType",
            "helmValueYaml",
            "helmValueYamlByServiceTemplateName",
            "tags",
            "variableOverrides",
        ],
        K::InfrastructureDefinition => &[
            "cloudProviderType",
            "deploymentType",
            "infrastructure",
            "provisioner",
            "scopedServices",
        ],
        K::Pipeline => &["description", "failureStrategies", "pipelineStages", "tags"],
        K::Trigger => &[
            "artifactSelections",
            "continueWithDefaultValues",
            "description",
            "executionName",
            "executionType",
            "manifestSelections",
            "tags",
            "triggerCondition",
            "workflowVariables",
        ],
        _ => return None,
    })
}

/// A warning for every top-level key of `doc` that its kind does not define, at the key's
/// line, suggesting the closest known key when one is near enough to be a misspelling.
pub fn unknown_keys(path: &EntityPath, doc: &Document) -> Vec<Problem> {
    let (Some(known), Some(map)) = (known_keys(path.kind), doc.root_map()) else {
        return Vec::new();
    };
    let mut warnings = Vec::new();
    for key in map.keys() {
        let Some(text) = key.value.scalar_text() else {
            continue;
        };
        if text == "harnessApiVersion" || text == "type" || known.contains(&text) {
            continue;
        }
        let hint = match closest(text, known) {
            Some(near) => format!("did you mean {near}?"),
            None => format!("{} files define only {}", path.kind, known.join(", ")),
        };
        warnings.push(Problem {
            line: key.line,
            column: key.column,
            message: format!(
                "unknown key {text}: reposync keeps it as written but does not read it; {hint}"
            ),
        });
    }
    warnings
}

/// The known key nearest to `key` by edit distance, if it is near enough to be a misspelling:
/// at most a third of the key's length (at least 1), and never more than 3.
pub fn closest<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    let limit = (key.chars().count() / 3).clamp(1, 3);
    known
        .iter()
        .map(|candidate| (edit_distance(key, candidate), *candidate))
        .filter(|(distance, _)| *distance <= limit)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// Levenshtein distance between two strings, counted in characters, with a difference of
/// letter case alone counting as one edit like any other.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        current[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

/// A problem in one document, at a position in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// A reference from one document to another entity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// The entity referred to.
    pub target: EntityPath,
    /// Where in the document, as a path of keys (`phases[0].serviceName`).
    pub field: String,
    pub line: usize,
    pub column: usize,
}

/// Checks a document against its kind's rules: `harnessApiVersion`, `type`, required keys.
pub fn check(path: &EntityPath, doc: &Document) -> Vec<Problem> {
    let Some(rules) = rules(path.kind) else {
        return Vec::new();
    };
    let at = |node: &Node, message: String| Problem {
        line: node.line,
        column: node.column,
        message,
    };
    let Value::Map(map) = &doc.root.value else {
        return vec![at(
            &doc.root,
            format!("a {} file must be a mapping of keys", path.kind),
        )];
    };
    let mut problems = Vec::new();
    match map.get("harnessApiVersion").map(|n| (n, n.value.as_str())) {
        Some((_, Some(API_VERSION))) => {}
        Some((node, _)) => problems.push(at(
            node,
            format!("harnessApiVersion must be '{API_VERSION}'"),
        )),
        None => problems.push(at(&doc.root, "harnessApiVersion is missing".into())),
    }
    match map.get("type").map(|n| (n, n.value.as_str())) {
        Some((node, Some(ty))) => {
            let allowed = match rules.types {
                TypeRule::OneOf(list) => list.contains(&ty),
                TypeRule::AnyIdentifier => {
                    !ty.is_empty()
                        && ty
                            .chars()
                            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
                }
            };
            if !allowed {
                let expected = match rules.types {
                    TypeRule::OneOf(list) => list.join(", "),
                    TypeRule::AnyIdentifier => "an upper-case identifier".to_owned(),
                };
                problems.push(at(
                    node,
                    format!(
                        "type {ty:?} is not valid for a {}; expected {expected}",
                        path.kind
                    ),
                ));
            }
        }
        Some((node, None)) => problems.push(at(node, "type must be a string".into())),
        None => problems.push(at(&doc.root, "type is missing".into())),
    }
    for key in rules.required {
        if map.get(key).is_none_or(|n| matches!(n.value, Value::Null)) {
            problems.push(at(
                &doc.root,
                format!("{key} is required in a {}", path.kind),
            ));
        }
    }
    problems
}

/// The references a document holds, per CONFIG-AS-CODE.md: application → Source Repo
/// Provider; artifact stream → Artifact Server; Infrastructure Definition → Cloud Provider;
/// workflow → service, environment, Infrastructure Definition; pipeline stage → workflow;
/// trigger → pipeline or workflow (`executionName`, by `executionType`). Artifact streams of a
/// cloud's own registry (ECR, GCR, ACR, AMI, S3, GCS) name a cloud provider, not an artifact
/// server. A name that is not a valid entity name is reported by
/// [`check`]'s callers as a broken reference, so it is returned here with the raw text.
pub fn references(path: &EntityPath, doc: &Document) -> Vec<Reference> {
    let Value::Map(map) = &doc.root.value else {
        return Vec::new();
    };
    let mut refs = Vec::new();
    let app = path.app.clone();
    let mut push = |kind: EntityKind,
                    node: &Node,
                    field: String,
                    environment: Option<EntityName>| {
        let Some(text) = node
            .value
            .as_str()
            .filter(|t| !t.is_empty() && !t.starts_with("${"))
        else {
            return;
        };
        // Templatised values (`${service}`) are resolved at deployment time, not references.
        let Ok(name) = EntityName::parse(text) else {
            return;
        };
        // An infrastructure definition is named within its environment; without one (a
        // templatised environment) the reference cannot be checked from the file alone.
        if kind == EntityKind::InfrastructureDefinition && environment.is_none() {
            return;
        }
        let (app_part, service, environment, own) = match kind {
            EntityKind::Service => (app.clone(), Some(name), None, None),
            EntityKind::Environment => (app.clone(), None, Some(name), None),
            EntityKind::InfrastructureDefinition => (app.clone(), None, environment, Some(name)),
            EntityKind::Workflow | EntityKind::Pipeline => (app.clone(), None, None, Some(name)),
            _ => (None, None, None, Some(name)),
        };
        refs.push(Reference {
            target: EntityPath {
                kind,
                app: app_part,
                service,
                environment,
                name: own,
                rest: None,
            },
            field,
            line: node.line,
            column: node.column,
        });
    };
    match path.kind {
        EntityKind::Application => {
            if let Some(node) = map.get("gitConnector") {
                push(
                    EntityKind::SourceRepoProvider,
                    node,
                    "gitConnector".into(),
                    None,
                );
            }
        }
        EntityKind::ArtifactStream => {
            // Streams from a cloud's own registry or storage name the cloud provider.
            let target = match map.get("type").and_then(|n| n.value.as_str()) {
                Some("ECR" | "GCR" | "ACR" | "AMI" | "AMAZON_S3" | "GCS") => {
                    EntityKind::CloudProvider
                }
                _ => EntityKind::ArtifactServer,
            };
            if let Some(node) = map.get("serverName") {
                push(target, node, "serverName".into(), None);
            }
        }
        EntityKind::InfrastructureDefinition => {
            for (i, item) in seq_maps(map, "infrastructure") {
                if let Some(node) = item.get("cloudProviderName") {
                    push(
                        EntityKind::CloudProvider,
                        node,
                        format!("infrastructure[{i}].cloudProviderName"),
                        None,
                    );
                }
            }
        }
        EntityKind::Workflow => {
            let env_name = map
                .get("envName")
                .and_then(|n| n.value.as_str())
                .and_then(|t| EntityName::parse(t).ok());
            if let Some(node) = map.get("envName") {
                push(EntityKind::Environment, node, "envName".into(), None);
            }
            for list in ["phases", "rollbackPhases"] {
                for (i, phase) in seq_maps(map, list) {
                    if let Some(node) = phase.get("serviceName") {
                        push(
                            EntityKind::Service,
                            node,
                            format!("{list}[{i}].serviceName"),
                            None,
                        );
                    }
                    if let Some(node) = phase.get("infraDefinitionName") {
                        push(
                            EntityKind::InfrastructureDefinition,
                            node,
                            format!("{list}[{i}].infraDefinitionName"),
                            env_name.clone(),
                        );
                    }
                }
            }
        }
        EntityKind::Pipeline => {
            for (i, stage) in seq_maps(map, "pipelineStages") {
                if let Some(node) = stage.get("workflowName") {
                    push(
                        EntityKind::Workflow,
                        node,
                        format!("pipelineStages[{i}].workflowName"),
                        None,
                    );
                }
            }
        }
        EntityKind::Trigger => {
            if let Some(node) = map.get("executionName") {
                let target = match map.get("executionType").and_then(|n| n.value.as_str()) {
                    Some("Pipeline") => EntityKind::Pipeline,
                    _ => EntityKind::Workflow,
                };
                push(target, node, "executionName".into(), None);
            }
            // A Git webhook trigger names the Source Repo Provider its events come from.
            for (i, condition) in seq_maps(map, "triggerCondition") {
                if let Some(node) = condition.get("gitConnectorName") {
                    push(
                        EntityKind::SourceRepoProvider,
                        node,
                        format!("triggerCondition[{i}].gitConnectorName"),
                        None,
                    );
                }
            }
        }
        _ => {}
    }
    refs
}

fn seq_maps<'a>(map: &'a Mapping, key: &str) -> Vec<(usize, &'a Mapping)> {
    match map.get(key).map(|n| &n.value) {
        Some(Value::Seq(items)) => items
            .iter()
            .enumerate()
            .filter_map(|(i, n)| match &n.value {
                Value::Map(m) => Some((i, m)),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Points every reference of `doc` that names `from` at `to` instead, returning how many
/// changed. `to` must be the same kind of entity as `from`; the name written is the part of
/// `to` that the referring field holds (a service's, environment's or entity's own name).
pub fn retarget(
    path: &EntityPath,
    doc: &mut Document,
    from: &EntityPath,
    to: &EntityPath,
) -> usize {
    let new_name = match to.kind {
        EntityKind::Service => to.service.clone(),
        EntityKind::Environment => to.environment.clone(),
        _ => to.name.clone(),
    };
    let Some(new_name) = new_name else {
        return 0;
    };
    let fields: Vec<String> = references(path, doc)
        .into_iter()
        .filter(|r| &r.target == from)
        .map(|r| r.field)
        .collect();
    let mut changed = 0;
    for field in &fields {
        if let Some(node) = node_at_mut(&mut doc.root, field) {
            node.value = Value::String(new_name.to_string());
            changed += 1;
        }
    }
    changed
}

/// The node at a field path such as `phases[0].serviceName`.
fn node_at_mut<'a>(root: &'a mut Node, field: &str) -> Option<&'a mut Node> {
    let mut node = root;
    for part in field.split('.') {
        let (key, index) = match part.split_once('[') {
            Some((key, rest)) => (key, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (part, None),
        };
        node = node.value.as_map_mut()?.get_mut(key)?;
        if let Some(index) = index {
            node = node.value.as_seq_mut()?.get_mut(index)?;
        }
    }
    Some(node)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::{PathClass, classify};
    use crate::yaml::{Limits, emit, parse};

    fn entity(path: &str) -> EntityPath {
        match classify(path) {
            Ok(PathClass::Entity(e)) => e,
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn an_unknown_key_is_reported_at_its_line_with_the_closest_known_key() {
        let path = entity("Setup/Applications/Shop/Index.yaml");
        let text = "harnessApiVersion: '1.0'\ntype: APPLICATION\nbranchNmae: main\ndescription: x\nownerTeam: web\n";
        let doc = parse(text.as_bytes(), &Limits::default()).expect("parse");
        let warnings = unknown_keys(&path, &doc);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert_eq!((warnings[0].line, warnings[0].column), (3, 1));
        assert_eq!(
            warnings[0].message,
            "unknown key branchNmae: reposync keeps it as written but does not read it; did you mean branchName?"
        );
        assert_eq!(warnings[1].line, 5);
        assert!(
            warnings[1]
                .message
                .starts_with("unknown key ownerTeam: reposync keeps it as written but does not read it; application files define only branchName, "),
            "{}",
            warnings[1].message
        );
    }

    #[test]
    fn kinds_whose_keys_depend_on_their_subtype_report_nothing() {
        let path = entity("Setup/Applications/Shop/Workflows/w.yaml");
        let text = "harnessApiVersion: '1.0'\ntype: CANARY\nanythingAtAll: 1\n";
        let doc = parse(text.as_bytes(), &Limits::default()).expect("parse");
        assert!(unknown_keys(&path, &doc).is_empty());
    }

    #[test]
    fn closest_suggests_only_near_misspellings() {
        let known = ["branchName", "description", "gitConnector", "repoName"];
        assert_eq!(closest("branchname", &known), Some("branchName"));
        assert_eq!(closest("brnchName", &known), Some("branchName"));
        assert_eq!(closest("descripton", &known), Some("description"));
        assert_eq!(closest("gitconector", &known), Some("gitConnector"));
        assert_eq!(closest("owner", &known), None);
        assert_eq!(closest("x", &known), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
    }

    #[test]
    fn retarget_rewrites_every_reference_to_the_renamed_entity_and_nothing_else() {
        let path = entity("Setup/Applications/Shop/Workflows/w.yaml");
        let text = "harnessApiVersion: '1.0'\ntype: MULTI_SERVICE\nenvName: prod\nphases:\n- type: KUBERNETES\n  serviceName: cart\n- type: KUBERNETES\n  serviceName: search\nrollbackPhases:\n- type: KUBERNETES\n  serviceName: cart\n";
        let mut doc = parse(text.as_bytes(), &Limits::default()).expect("parse");
        let from = entity("Setup/Applications/Shop/Services/cart/Index.yaml");
        let to = entity("Setup/Applications/Shop/Services/basket/Index.yaml");
        assert_eq!(retarget(&path, &mut doc, &from, &to), 2);
        assert_eq!(
            emit(&doc),
            text.replace("serviceName: cart", "serviceName: basket")
        );
    }
}
