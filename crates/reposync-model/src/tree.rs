//! The Harness "Configuration as Code" tree: which file path is which kind of entity.
//!
//! An entity's identity is its path. Folder and file names are display names, so a path is
//! parsed into its names (application, service, environment, entity) with the same rules as
//! any other name, and rendered back from them. Only `Setup/` is ours: anything else in a
//! repository is ignored, as are non-YAML files outside a service's `Manifests/Files/`.

use std::fmt;

use crate::error::FieldError;
use crate::name::EntityName;
use crate::path::{PathProblem, RepoPath, escape_path};

/// Every kind of file reposync knows in the tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EntityKind {
    // Account level.
    SourceRepoProvider,
    AccountDefaults,
    Tags,
    CloudProvider,
    ArtifactServer,
    CollaborationProvider,
    NotificationGroup,
    // Application level.
    Application,
    ApplicationDefaults,
    Service,
    ArtifactStream,
    ManifestIndex,
    ManifestFile,
    Environment,
    InfrastructureDefinition,
    Provisioner,
    Workflow,
    Pipeline,
    Trigger,
    /// A kind of Harness's layout that reposync keeps as an opaque document: parsed,
    /// round-tripped, synced and listed, but not interpreted.
    Opaque(OpaqueKind),
}

/// The opaque kinds, by the folder they live in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OpaqueKind {
    VerificationProvider,
    AccountTemplateLibrary,
    Governance,
    DeploymentSpecification,
    ConfigFile,
    ServiceValues,
    EnvironmentValues,
    ServiceVerification,
    ServiceInfrastructure,
    ApplicationTemplateLibrary,
}

impl EntityKind {
    /// The position of this kind in the documented apply order (additions and modifications
    /// in this order, deletions in the reverse). Opaque kinds go with the closest modelled
    /// kind they belong to.
    pub fn apply_rank(self) -> u8 {
        match self {
            EntityKind::SourceRepoProvider => 0,
            EntityKind::AccountDefaults => 1,
            EntityKind::Tags => 2,
            EntityKind::CloudProvider => 3,
            EntityKind::ArtifactServer => 4,
            EntityKind::CollaborationProvider => 5,
            EntityKind::NotificationGroup => 6,
            EntityKind::Opaque(OpaqueKind::VerificationProvider) => 7,
            EntityKind::Opaque(OpaqueKind::AccountTemplateLibrary | OpaqueKind::Governance) => 8,
            EntityKind::Application => 9,
            EntityKind::ApplicationDefaults => 10,
            EntityKind::Opaque(OpaqueKind::ApplicationTemplateLibrary) => 11,
            EntityKind::Service => 12,
            EntityKind::ArtifactStream => 13,
            EntityKind::ManifestIndex => 14,
            EntityKind::ManifestFile => 15,
            EntityKind::Opaque(
                OpaqueKind::DeploymentSpecification
                | OpaqueKind::ConfigFile
                | OpaqueKind::ServiceValues,
            ) => 16,
            EntityKind::Environment => 17,
            EntityKind::InfrastructureDefinition => 18,
            EntityKind::Opaque(
                OpaqueKind::EnvironmentValues
                | OpaqueKind::ServiceVerification
                | OpaqueKind::ServiceInfrastructure,
            ) => 19,
            EntityKind::Provisioner => 20,
            EntityKind::Workflow => 21,
            EntityKind::Pipeline => 22,
            EntityKind::Trigger => 23,
        }
    }

    /// A short, stable name for messages and the API (`workflow`, `cloud-provider`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            EntityKind::SourceRepoProvider => "source-repo-provider",
            EntityKind::AccountDefaults => "account-defaults",
            EntityKind::Tags => "tags",
            EntityKind::CloudProvider => "cloud-provider",
            EntityKind::ArtifactServer => "artifact-server",
            EntityKind::CollaborationProvider => "collaboration-provider",
            EntityKind::NotificationGroup => "notification-group",
            EntityKind::Application => "application",
            EntityKind::ApplicationDefaults => "application-defaults",
            EntityKind::Service => "service",
            EntityKind::ArtifactStream => "artifact-stream",
            EntityKind::ManifestIndex => "manifests",
            EntityKind::ManifestFile => "manifest-file",
            EntityKind::Environment => "environment",
            EntityKind::InfrastructureDefinition => "infrastructure-definition",
            EntityKind::Provisioner => "provisioner",
            EntityKind::Workflow => "workflow",
            EntityKind::Pipeline => "pipeline",
            EntityKind::Trigger => "trigger",
            EntityKind::Opaque(kind) => match kind {
                OpaqueKind::VerificationProvider => "verification-provider",
                OpaqueKind::AccountTemplateLibrary => "template-library",
                OpaqueKind::Governance => "governance",
                OpaqueKind::DeploymentSpecification => "deployment-specification",
                OpaqueKind::ConfigFile => "config-file",
                OpaqueKind::ServiceValues => "service-values",
                OpaqueKind::EnvironmentValues => "environment-values",
                OpaqueKind::ServiceVerification => "service-verification",
                OpaqueKind::ServiceInfrastructure => "service-infrastructure",
                OpaqueKind::ApplicationTemplateLibrary => "application-template-library",
            },
        }
    }

    /// Whether the file is YAML (everything but manifest files and opaque non-YAML files).
    pub fn is_modelled(self) -> bool {
        !matches!(self, EntityKind::Opaque(_) | EntityKind::ManifestFile)
    }
}

impl fmt::Display for EntityKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parsed path in the tree: its kind and the names that make up its identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntityPath {
    pub kind: EntityKind,
    pub app: Option<EntityName>,
    pub service: Option<EntityName>,
    pub environment: Option<EntityName>,
    /// The entity's own name (the file name without `.yaml`), for kinds that have one.
    pub name: Option<EntityName>,
    /// For manifest files and opaque folders, the path below the kind's folder.
    pub rest: Option<String>,
}

/// What a repository path is to reposync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathClass {
    /// A file of the tree.
    Entity(EntityPath),
    /// Outside `Setup/`, or a non-YAML file that Harness's layout does not hold: not synced.
    Ignored,
}

/// The root folder of the tree.
pub const ROOT: &str = "Setup";
const APPS: &str = "Applications";

/// Classifies a repository path (relative, `/`-separated).
///
/// A path under `Setup/` must first be one reposync can represent ([`RepoPath`]); the error
/// then names the path escaped, since it may hold control characters. Paths outside `Setup/`
/// are ignored whatever they hold: reposync neither reads nor writes them.
pub fn classify(path: &str) -> Result<PathClass, FieldError> {
    if !path.starts_with("Setup/") {
        return Ok(PathClass::Ignored);
    }
    let parsed = RepoPath::parse(path).map_err(|problem| unrepresentable(path, &problem))?;
    parsed.classify()
}

/// The error for a path reposync cannot represent, naming it escaped.
pub fn unrepresentable(path: &str, problem: &PathProblem) -> FieldError {
    FieldError::new(
        escape_path(path.as_bytes()),
        format!("not a path reposync can represent: {problem}"),
    )
}

impl RepoPath {
    /// Classifies the path: a file of the Configuration as Code tree, or one reposync ignores.
    pub fn classify(&self) -> Result<PathClass, FieldError> {
        classify_parsed(self.as_str())
    }
}

/// [`classify`] for a path that [`RepoPath`] accepted: no empty, `.`, `..` or `.git`
/// components, no control characters.
fn classify_parsed(path: &str) -> Result<PathClass, FieldError> {
    let unknown = |why: &str| FieldError::new(path, format!("unknown path: {why}"));
    let Some(inside) = path.strip_prefix("Setup/") else {
        return Ok(PathClass::Ignored);
    };
    let parts: Vec<&str> = inside.split('/').collect();
    let in_manifest_files = parts.len() >= 6
        && parts[0] == APPS
        && parts[2] == "Services"
        && parts[4] == "Manifests"
        && parts[5] == "Files";
    let is_yaml = path.ends_with(".yaml");
    if !is_yaml && !in_manifest_files {
        if path.ends_with(".yml") {
            return Err(unknown("Harness's tree uses the .yaml extension, not .yml"));
        }
        return Ok(PathClass::Ignored);
    }
    let name = |file: &str| -> Result<EntityName, FieldError> {
        let stem = file.strip_suffix(".yaml").unwrap_or(file);
        EntityName::parse(stem)
            .map_err(|e| FieldError::new(path, format!("invalid name {stem:?}: {}", e.message)))
    };
    let folder = |part: &str| -> Result<EntityName, FieldError> {
        EntityName::parse(part)
            .map_err(|e| FieldError::new(path, format!("invalid name {part:?}: {}", e.message)))
    };
    let entity = |kind, app, service, environment, entity_name, rest| {
        Ok(PathClass::Entity(EntityPath {
            kind,
            app,
            service,
            environment,
            name: entity_name,
            rest,
        }))
    };
    let rest_of = |from: usize| Some(parts[from..].join("/"));

    match parts.as_slice() {
        ["Defaults.yaml"] => entity(EntityKind::AccountDefaults, None, None, None, None, None),
        ["Tags.yaml"] => entity(EntityKind::Tags, None, None, None, None, None),
        [folder_name, file] if account_kind(folder_name).is_some() => {
            let kind = account_kind(folder_name).unwrap_or(EntityKind::Tags);
            entity(kind, None, None, None, Some(name(file)?), None)
        }
        ["Template Library", ..] if parts.len() >= 2 => entity(
            EntityKind::Opaque(OpaqueKind::AccountTemplateLibrary),
            None,
            None,
            None,
            None,
            rest_of(1),
        ),
        ["Governance", ..] if parts.len() >= 2 => entity(
            EntityKind::Opaque(OpaqueKind::Governance),
            None,
            None,
            None,
            None,
            rest_of(1),
        ),
        [APPS, app, app_rest @ ..] => {
            let app = Some(folder(app)?);
            match app_rest {
                ["Index.yaml"] => entity(EntityKind::Application, app, None, None, None, None),
                ["Defaults.yaml"] => {
                    entity(EntityKind::ApplicationDefaults, app, None, None, None, None)
                }
                ["Template Library", more @ ..] if !more.is_empty() => entity(
                    EntityKind::Opaque(OpaqueKind::ApplicationTemplateLibrary),
                    app,
                    None,
                    None,
                    None,
                    rest_of(3),
                ),
                [folder_name, file] if app_kind(folder_name).is_some() => {
                    let kind = app_kind(folder_name).unwrap_or(EntityKind::Workflow);
                    entity(kind, app, None, None, Some(name(file)?), None)
                }
                ["Services", service, service_rest @ ..] => {
                    let service = Some(folder(service)?);
                    match service_rest {
                        ["Index.yaml"] => {
                            entity(EntityKind::Service, app, service, None, None, None)
                        }
                        ["Artifact Servers", file] => entity(
                            EntityKind::ArtifactStream,
                            app,
                            service,
                            None,
                            Some(name(file)?),
                            None,
                        ),
                        ["Manifests", "Index.yaml"] => {
                            entity(EntityKind::ManifestIndex, app, service, None, None, None)
                        }
                        ["Manifests", "Files", more @ ..] if !more.is_empty() => entity(
                            EntityKind::ManifestFile,
                            app,
                            service,
                            None,
                            None,
                            rest_of(6),
                        ),
                        ["Deployment Specifications", file] => entity(
                            EntityKind::Opaque(OpaqueKind::DeploymentSpecification),
                            app,
                            service,
                            None,
                            Some(name(file)?),
                            None,
                        ),
                        ["Config Files", more @ ..] if !more.is_empty() => entity(
                            EntityKind::Opaque(OpaqueKind::ConfigFile),
                            app,
                            service,
                            None,
                            None,
                            rest_of(5),
                        ),
                        ["Values", more @ ..] if !more.is_empty() => entity(
                            EntityKind::Opaque(OpaqueKind::ServiceValues),
                            app,
                            service,
                            None,
                            None,
                            rest_of(5),
                        ),
                        _ => Err(unknown("not a file of a service's folder")),
                    }
                }
                ["Environments", environment, env_rest @ ..] => {
                    let environment = Some(folder(environment)?);
                    match env_rest {
                        ["Index.yaml"] => {
                            entity(EntityKind::Environment, app, None, environment, None, None)
                        }
                        ["Infrastructure Definitions", file] => entity(
                            EntityKind::InfrastructureDefinition,
                            app,
                            None,
                            environment,
                            Some(name(file)?),
                            None,
                        ),
                        ["Service Verification", file] => entity(
                            EntityKind::Opaque(OpaqueKind::ServiceVerification),
                            app,
                            None,
                            environment,
                            Some(name(file)?),
                            None,
                        ),
                        ["Service Infrastructure", file] => entity(
                            EntityKind::Opaque(OpaqueKind::ServiceInfrastructure),
                            app,
                            None,
                            environment,
                            Some(name(file)?),
                            None,
                        ),
                        ["Values", more @ ..] if !more.is_empty() => entity(
                            EntityKind::Opaque(OpaqueKind::EnvironmentValues),
                            app,
                            None,
                            environment,
                            None,
                            rest_of(5),
                        ),
                        _ => Err(unknown("not a file of an environment's folder")),
                    }
                }
                _ => Err(unknown("not a file of an application's folder")),
            }
        }
        _ => Err(unknown(
            "matches none of the Configuration as Code patterns under Setup/",
        )),
    }
}

fn account_kind(folder: &str) -> Option<EntityKind> {
    Some(match folder {
        "Cloud Providers" => EntityKind::CloudProvider,
        "Artifact Servers" => EntityKind::ArtifactServer,
        "Collaboration Providers" => EntityKind::CollaborationProvider,
        "Source Repo Providers" => EntityKind::SourceRepoProvider,
        "Notification Groups" => EntityKind::NotificationGroup,
        "Verification Providers" => EntityKind::Opaque(OpaqueKind::VerificationProvider),
        _ => return None,
    })
}

fn app_kind(folder: &str) -> Option<EntityKind> {
    Some(match folder {
        "Workflows" => EntityKind::Workflow,
        "Pipelines" => EntityKind::Pipeline,
        "Triggers" => EntityKind::Trigger,
        "Provisioners" => EntityKind::Provisioner,
        _ => return None,
    })
}

impl EntityPath {
    /// The path in the repository, the inverse of [`classify`].
    pub fn to_path(&self) -> String {
        let n = |name: &Option<EntityName>| {
            name.as_ref()
                .map(EntityName::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let app = format!("{ROOT}/{APPS}/{}", n(&self.app));
        let service = format!("{app}/Services/{}", n(&self.service));
        let environment = format!("{app}/Environments/{}", n(&self.environment));
        let file = format!("{}.yaml", n(&self.name));
        let rest = self.rest.clone().unwrap_or_default();
        match self.kind {
            EntityKind::AccountDefaults => format!("{ROOT}/Defaults.yaml"),
            EntityKind::Tags => format!("{ROOT}/Tags.yaml"),
            EntityKind::CloudProvider => format!("{ROOT}/Cloud Providers/{file}"),
            EntityKind::ArtifactServer => format!("{ROOT}/Artifact Servers/{file}"),
            EntityKind::CollaborationProvider => format!("{ROOT}/Collaboration Providers/{file}"),
            EntityKind::SourceRepoProvider => format!("{ROOT}/Source Repo Providers/{file}"),
            EntityKind::NotificationGroup => format!("{ROOT}/Notification Groups/{file}"),
            EntityKind::Opaque(OpaqueKind::VerificationProvider) => {
                format!("{ROOT}/Verification Providers/{file}")
            }
            EntityKind::Opaque(OpaqueKind::AccountTemplateLibrary) => {
                format!("{ROOT}/Template Library/{rest}")
            }
            EntityKind::Opaque(OpaqueKind::Governance) => format!("{ROOT}/Governance/{rest}"),
            EntityKind::Application => format!("{app}/Index.yaml"),
            EntityKind::ApplicationDefaults => format!("{app}/Defaults.yaml"),
            EntityKind::Opaque(OpaqueKind::ApplicationTemplateLibrary) => {
                format!("{app}/Template Library/{rest}")
            }
            EntityKind::Workflow => format!("{app}/Workflows/{file}"),
            EntityKind::Pipeline => format!("{app}/Pipelines/{file}"),
            EntityKind::Trigger => format!("{app}/Triggers/{file}"),
            EntityKind::Provisioner => format!("{app}/Provisioners/{file}"),
            EntityKind::Service => format!("{service}/Index.yaml"),
            EntityKind::ArtifactStream => format!("{service}/Artifact Servers/{file}"),
            EntityKind::ManifestIndex => format!("{service}/Manifests/Index.yaml"),
            EntityKind::ManifestFile => format!("{service}/Manifests/Files/{rest}"),
            EntityKind::Opaque(OpaqueKind::DeploymentSpecification) => {
                format!("{service}/Deployment Specifications/{file}")
            }
            EntityKind::Opaque(OpaqueKind::ConfigFile) => format!("{service}/Config Files/{rest}"),
            EntityKind::Opaque(OpaqueKind::ServiceValues) => format!("{service}/Values/{rest}"),
            EntityKind::Environment => format!("{environment}/Index.yaml"),
            EntityKind::InfrastructureDefinition => {
                format!("{environment}/Infrastructure Definitions/{file}")
            }
            EntityKind::Opaque(OpaqueKind::ServiceVerification) => {
                format!("{environment}/Service Verification/{file}")
            }
            EntityKind::Opaque(OpaqueKind::ServiceInfrastructure) => {
                format!("{environment}/Service Infrastructure/{file}")
            }
            EntityKind::Opaque(OpaqueKind::EnvironmentValues) => {
                format!("{environment}/Values/{rest}")
            }
        }
    }
}

impl fmt::Display for EntityPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_path())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entity(path: &str) -> EntityPath {
        match classify(path) {
            Ok(PathClass::Entity(e)) => e,
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn every_documented_path_classifies_and_renders_back() {
        let cases = [
            ("Setup/Defaults.yaml", EntityKind::AccountDefaults),
            ("Setup/Tags.yaml", EntityKind::Tags),
            (
                "Setup/Cloud Providers/prod k8s.yaml",
                EntityKind::CloudProvider,
            ),
            (
                "Setup/Artifact Servers/Docker Hub.yaml",
                EntityKind::ArtifactServer,
            ),
            (
                "Setup/Collaboration Providers/SMTP.yaml",
                EntityKind::CollaborationProvider,
            ),
            (
                "Setup/Source Repo Providers/Bitbucket.yaml",
                EntityKind::SourceRepoProvider,
            ),
            (
                "Setup/Notification Groups/On call.yaml",
                EntityKind::NotificationGroup,
            ),
            (
                "Setup/Verification Providers/Prometheus.yaml",
                EntityKind::Opaque(OpaqueKind::VerificationProvider),
            ),
            (
                "Setup/Template Library/Shared/Http Check.yaml",
                EntityKind::Opaque(OpaqueKind::AccountTemplateLibrary),
            ),
            (
                "Setup/Governance/Deployment Freeze.yaml",
                EntityKind::Opaque(OpaqueKind::Governance),
            ),
            (
                "Setup/Applications/Shop/Index.yaml",
                EntityKind::Application,
            ),
            (
                "Setup/Applications/Shop/Defaults.yaml",
                EntityKind::ApplicationDefaults,
            ),
            (
                "Setup/Applications/Shop/Services/cart/Index.yaml",
                EntityKind::Service,
            ),
            (
                "Setup/Applications/Shop/Services/cart/Artifact Servers/cart image.yaml",
                EntityKind::ArtifactStream,
            ),
            (
                "Setup/Applications/Shop/Services/cart/Manifests/Index.yaml",
                EntityKind::ManifestIndex,
            ),
            (
                "Setup/Applications/Shop/Services/cart/Manifests/Files/templates/deployment.yaml",
                EntityKind::ManifestFile,
            ),
            (
                "Setup/Applications/Shop/Services/cart/Manifests/Files/values.tpl",
                EntityKind::ManifestFile,
            ),
            (
                "Setup/Applications/Shop/Services/cart/Deployment Specifications/ECS.yaml",
                EntityKind::Opaque(OpaqueKind::DeploymentSpecification),
            ),
            (
                "Setup/Applications/Shop/Services/cart/Config Files/app.properties.yaml",
                EntityKind::Opaque(OpaqueKind::ConfigFile),
            ),
            (
                "Setup/Applications/Shop/Services/cart/Values/Index.yaml",
                EntityKind::Opaque(OpaqueKind::ServiceValues),
            ),
            (
                "Setup/Applications/Shop/Environments/prod/Index.yaml",
                EntityKind::Environment,
            ),
            (
                "Setup/Applications/Shop/Environments/prod/Infrastructure Definitions/eks.yaml",
                EntityKind::InfrastructureDefinition,
            ),
            (
                "Setup/Applications/Shop/Environments/prod/Service Verification/cart.yaml",
                EntityKind::Opaque(OpaqueKind::ServiceVerification),
            ),
            (
                "Setup/Applications/Shop/Environments/prod/Service Infrastructure/old.yaml",
                EntityKind::Opaque(OpaqueKind::ServiceInfrastructure),
            ),
            (
                "Setup/Applications/Shop/Environments/prod/Values/Index.yaml",
                EntityKind::Opaque(OpaqueKind::EnvironmentValues),
            ),
            (
                "Setup/Applications/Shop/Workflows/Deploy cart.yaml",
                EntityKind::Workflow,
            ),
            (
                "Setup/Applications/Shop/Pipelines/Release.yaml",
                EntityKind::Pipeline,
            ),
            (
                "Setup/Applications/Shop/Triggers/Nightly.yaml",
                EntityKind::Trigger,
            ),
            (
                "Setup/Applications/Shop/Provisioners/network.yaml",
                EntityKind::Provisioner,
            ),
            (
                "Setup/Applications/Shop/Template Library/Steps/notify.yaml",
                EntityKind::Opaque(OpaqueKind::ApplicationTemplateLibrary),
            ),
        ];
        for (path, kind) in cases {
            let parsed = entity(path);
            assert_eq!(parsed.kind, kind, "{path}");
            assert_eq!(parsed.to_path(), path);
        }
    }

    #[test]
    fn identity_is_built_from_the_names() {
        let e =
            entity("Setup/Applications/Shop/Environments/prod/Infrastructure Definitions/eks.yaml");
        assert_eq!(e.app.as_ref().map(EntityName::as_str), Some("Shop"));
        assert_eq!(e.environment.as_ref().map(EntityName::as_str), Some("prod"));
        assert_eq!(e.name.as_ref().map(EntityName::as_str), Some("eks"));
    }

    #[test]
    fn outside_setup_and_non_yaml_files_are_ignored() {
        for path in [
            "README.md",
            "bitbucket-pipelines.yml",
            "Setup/README.md",
            "Setup/Applications/Shop/notes.txt",
        ] {
            assert_eq!(classify(path), Ok(PathClass::Ignored), "{path}");
        }
    }

    #[test]
    fn unknown_paths_and_bad_names_are_errors_naming_the_file() {
        for path in [
            "Setup/Unknown Folder/x.yaml",
            "Setup/Applications/Shop/Services/cart/Other/x.yaml",
            "Setup/Applications/Shop/Workflows/deep/x.yaml",
            "Setup/Cloud Providers/x.yml",
            "Setup/Applications/Shop \u{1F600}/Index.yaml",
            "Setup/Cloud Providers/ lead.yaml",
            "Setup//Defaults.yaml",
        ] {
            let err = classify(path).expect_err(path);
            assert_eq!(err.field, path);
        }
        let err = classify("Setup/Applications/Shop \u{1F600}/Index.yaml").expect_err("emoji");
        assert!(err.message.contains("U+1F600"), "{}", err.message);
    }
}
