//! The Source Repo Provider file (`Setup/Source Repo Providers/<name>.yaml`, `type: GIT`): the
//! same object as a connector, seen as Harness's YAML.
//!
//! The connector is the authority for what it models; the file is the authority for everything
//! else. A connector therefore keeps the last file it was written as, and rendering overlays
//! the connector's fields on that file: keys reposync does not model (`description`, anything
//! a newer Harness added) survive, and so does the way a file spelled a value reposync reads
//! the same either way (`safeharness:` rather than `reposync:`, `GITHUB` rather than `GIT`).

use crate::connector::{
    ConnectorDraft, ConnectorScope, Credentials, DEFAULT_AUTHOR_EMAIL, DEFAULT_AUTHOR_NAME,
    GitConnector, Provider,
};
use crate::name::EntityName;
use crate::problem::{MappedSecret, TreeProblem, TreeWarning};
use crate::tree::ROOT;
use crate::yaml::{Document, Mapping, Node, emit, order_top_level};

/// The secret manager name reposync writes in secret references (`reposync:<secret>`).
pub const SECRET_MANAGER: &str = "reposync";

/// Secret manager names that resolve to reposync's own secrets. `safeharness` is Harness's
/// built-in manager: files adopted from Harness name their secrets that way.
pub const SECRET_MANAGERS: &[&str] = &[SECRET_MANAGER, "safeharness"];

/// The path of a connector's file.
pub fn path(name: &EntityName) -> String {
    format!("{ROOT}/Source Repo Providers/{name}.yaml")
}

/// A connector as its Harness YAML. `source` is the file the connector was last written as,
/// if any: its unmodelled keys and spellings are kept. Secret values never appear, only the
/// secrets' names; the webhook token is never written.
pub fn render(spec: &GitConnector, source: Option<&Document>) -> String {
    let mut map = source
        .and_then(Document::root_map)
        .cloned()
        .unwrap_or_default();
    let had = |key: &str| map.contains_key(key);
    // A file that left the author out meant the default; writing the default into it would
    // change a file nobody changed.
    let author_name_shown = spec.author_name != DEFAULT_AUTHOR_NAME || source.is_none();
    let author_email_shown = spec.author_email.as_str() != DEFAULT_AUTHOR_EMAIL || source.is_none();
    let author_name_shown = author_name_shown || had("authorName");
    let author_email_shown = author_email_shown || had("authorEmailId");

    if !map.contains_key("harnessApiVersion") {
        map.insert("harnessApiVersion", Node::string("1.0"));
    }
    map.insert("type", Node::string("GIT"));
    set_or_remove(
        &mut map,
        "authorEmailId",
        author_email_shown.then(|| Node::string(spec.author_email.as_str())),
    );
    set_or_remove(
        &mut map,
        "authorName",
        author_name_shown.then(|| Node::string(spec.author_name.as_str())),
    );
    set_or_remove(
        &mut map,
        "branch",
        spec.branch.as_ref().map(|b| Node::string(b.as_str())),
    );
    set_or_remove(
        &mut map,
        "commitMessage",
        spec.commit_message.as_deref().map(Node::string),
    );
    let selectors = (!spec.selectors.is_empty()).then(|| {
        Node::seq(
            spec.selectors
                .iter()
                .map(|s| Node::string(s.as_str()))
                .collect(),
        )
    });
    set_or_remove(&mut map, "delegateSelectors", selectors);
    match &spec.credentials {
        Credentials::Https {
            username,
            password_secret,
        } => {
            map.insert("keyAuth", Node::bool(false));
            let kept = map
                .get("password")
                .and_then(Node::as_str)
                .filter(|text| {
                    secret_reference(text).is_ok_and(|name| name == password_secret.as_str())
                })
                .map(str::to_owned);
            let reference = kept.unwrap_or_else(|| format!("{SECRET_MANAGER}:{password_secret}"));
            map.insert("password", Node::string(reference));
            map.insert("username", Node::string(username.as_str()));
            map.remove("sshKeyName");
        }
        Credentials::Ssh { ssh_key_secret } => {
            map.insert("keyAuth", Node::bool(true));
            let kept = map
                .get("sshKeyName")
                .and_then(Node::as_str)
                .filter(|text| {
                    secret_reference(text).is_ok_and(|name| name == ssh_key_secret.as_str())
                })
                .map(str::to_owned);
            map.insert(
                "sshKeyName",
                Node::string(kept.unwrap_or_else(|| ssh_key_secret.to_string())),
            );
            map.remove("password");
            map.remove("username");
        }
    }
    let provider_kept = map
        .get("providerType")
        .and_then(Node::as_str)
        .filter(|t| is_bitbucket_type(t) == is_bitbucket(spec.provider))
        .map(str::to_owned);
    let provider = provider_kept.unwrap_or_else(|| {
        if is_bitbucket(spec.provider) {
            "BITBUCKET".to_owned()
        } else {
            "GIT".to_owned()
        }
    });
    map.insert("providerType", Node::string(provider));
    map.insert("url", Node::string(spec.url.to_string()));
    map.insert(
        "urlType",
        Node::string(match spec.scope {
            ConnectorScope::Repo => "REPO",
            ConnectorScope::Account => "ACCOUNT",
        }),
    );
    let mut document = Document::from_mapping(map);
    order_top_level(&mut document);
    emit(&document)
}

fn set_or_remove(map: &mut Mapping, key: &str, value: Option<Node>) {
    match value {
        Some(node) => {
            map.insert(key, node);
        }
        None => {
            map.remove(key);
        }
    }
}

fn is_bitbucket(provider: Provider) -> bool {
    matches!(
        provider,
        Provider::BitbucketCloud | Provider::BitbucketServer
    )
}

fn is_bitbucket_type(provider_type: &str) -> bool {
    provider_type.eq_ignore_ascii_case("BITBUCKET")
}

/// The secret a reference names: `reposync:<name>`, `safeharness:<name>`, or a bare name.
/// Any other manager is refused, because reposync cannot read it.
pub fn secret_reference(text: &str) -> Result<&str, String> {
    secret_reference_mapped(text, &MappedManagers::default()).map(|(name, _)| name)
}

/// Other Harness secret managers (`gcpkms`, `amazonkms`, `azurevault`, `hashicorpvault`, …)
/// whose references a migration reads as reposync's own secrets of the same name
/// (`reposync import --map-secret-manager gcpkms`): `gcpkms:db-password` then means reposync's
/// secret `db-password`. Empty by default, so that a reference to a manager reposync cannot
/// read is refused rather than guessed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MappedManagers(Vec<String>);

impl MappedManagers {
    /// Parses the managers given, each as `NAME` or `NAME=` (the same: the secret keeps the
    /// reference's name), reporting a bad one against `field`.
    pub fn parse(managers: &[String], field: &str) -> Result<Self, crate::FieldError> {
        let mut parsed = Vec::new();
        for raw in managers {
            let manager = raw.trim().strip_suffix('=').unwrap_or(raw.trim());
            let error = |why: String| crate::FieldError::new(field, format!("{raw:?}: {why}"));
            if manager.is_empty() {
                return Err(error(
                    "names no secret manager; give the prefix of the references, such as gcpkms"
                        .into(),
                ));
            }
            if manager.contains('=') {
                return Err(error(
                    "maps a manager to its secrets by the same name only; write the manager alone, such as gcpkms".into(),
                ));
            }
            if let Some(bad) = manager
                .chars()
                .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
            {
                return Err(error(format!(
                    "contains {bad:?}; a secret manager's prefix uses letters, digits, '-', '_' and '.'"
                )));
            }
            if SECRET_MANAGERS.contains(&manager) {
                return Err(error(format!(
                    "is reposync's own manager already; references {manager}:<name> need no mapping"
                )));
            }
            if !parsed.iter().any(|m| m == manager) {
                parsed.push(manager.to_owned());
            }
        }
        Ok(Self(parsed))
    }

    /// Whether references of `manager` are read as reposync's secrets.
    pub fn maps(&self, manager: &str) -> bool {
        self.0.iter().any(|m| m == manager)
    }

    /// The managers, as given.
    pub fn names(&self) -> &[String] {
        &self.0
    }
}

/// [`secret_reference`], also reading the references of `mapped` managers as reposync's
/// secrets; the flag says whether the reference went through a mapping.
pub fn secret_reference_mapped<'t>(
    text: &'t str,
    mapped: &MappedManagers,
) -> Result<(&'t str, bool), String> {
    match text.split_once(':') {
        None => Ok((text, false)),
        Some((manager, name)) if SECRET_MANAGERS.contains(&manager) => Ok((name, false)),
        Some((manager, name)) if mapped.maps(manager) => Ok((name, true)),
        Some((manager, _)) => Err(format!(
            "names a secret in secret manager {manager:?}; reposync resolves only its own secrets, written `reposync:<name>` (or `safeharness:<name>`, its alias). To read {manager}:<name> as reposync's secret <name> when migrating, import with --map-secret-manager {manager} (validate takes it too), and create the secrets in reposync"
        )),
    }
}

/// A Source Repo Provider file read as a connector, with what is worth telling about it.
#[derive(Debug, Clone)]
pub struct ReadConnector {
    pub connector: GitConnector,
    /// Accepted, but worth a look: the file names no branch.
    pub warnings: Vec<TreeWarning>,
    /// Secret references read through a mapped manager.
    pub mapped: Vec<MappedSecret>,
}

/// The YAML key a connector field is written as, for pointing an error at its line.
fn yaml_key(field: &str) -> &'static str {
    match field {
        "url" => "url",
        "username" => "username",
        "password_secret" => "password",
        "ssh_key_secret" => "sshKeyName",
        "branch" => "branch",
        "selectors" => "delegateSelectors",
        "author_name" => "authorName",
        "author_email" => "authorEmailId",
        "commit_message" => "commitMessage",
        "scope" => "urlType",
        "provider" => "providerType",
        _ => "type",
    }
}

/// Reads a Source Repo Provider file into a connector. `name` comes from the file's path;
/// `current` is the connector of that name, if one exists: the fields YAML cannot carry (the
/// webhook switch, pinned host keys and CA certificates) are kept from it. Problems point at
/// the line of the key that is wrong.
pub fn to_connector(
    file_path: &str,
    name: &EntityName,
    document: &Document,
    current: Option<&GitConnector>,
) -> Result<GitConnector, TreeProblem> {
    read_connector(
        file_path,
        name,
        document,
        current,
        &MappedManagers::default(),
    )
    .map(|read| read.connector)
}

/// [`to_connector`], reading references of `mapped` managers as reposync's secrets, and with
/// the warnings and mappings to report: a repository connector without `branch:` follows the
/// repository's default branch (its `HEAD`), which is said, with how to pin one.
pub fn read_connector(
    file_path: &str,
    name: &EntityName,
    document: &Document,
    current: Option<&GitConnector>,
    mapped: &MappedManagers,
) -> Result<ReadConnector, TreeProblem> {
    let mut mappings = Vec::new();
    let problem = |node: Option<&Node>, message: String| TreeProblem {
        path: file_path.to_owned(),
        line: node.map_or(0, |n| n.line),
        column: node.map_or(0, |n| n.column),
        message,
        blocked_by: None,
    };
    let Some(map) = document.root_map() else {
        return Err(problem(Some(&document.root), "is not a mapping".into()));
    };
    let text = |key: &str| -> Result<Option<String>, TreeProblem> {
        match map.get(key) {
            None => Ok(None),
            Some(node) if node.is_null() => Ok(None),
            Some(node) => match node.value.scalar_text() {
                Some(t) => Ok(Some(t.to_owned())),
                None => Err(problem(
                    Some(node),
                    format!("{key}: must be a string, not a {}", node.value.kind_name()),
                )),
            },
        }
    };
    let key_auth = match map.get("keyAuth") {
        None => false,
        Some(node) => node
            .as_bool()
            .ok_or_else(|| problem(Some(node), "keyAuth: must be true or false".into()))?,
    };
    let mut reference = |key: &str| -> Result<Option<String>, TreeProblem> {
        match text(key)? {
            None => Ok(None),
            Some(t) => {
                let (secret, through_mapping) = secret_reference_mapped(&t, mapped)
                    .map_err(|m| problem(map.get(key), format!("{key}: {m}")))?;
                if through_mapping {
                    mappings.push(MappedSecret {
                        path: file_path.to_owned(),
                        line: map.get(key).map_or(0, |n| n.line),
                        key: key.to_owned(),
                        reference: t.clone(),
                        secret: secret.to_owned(),
                    });
                }
                Ok(Some(secret.to_owned()))
            }
        }
    };
    let (username, password_secret, ssh_key_secret) = if key_auth {
        (None, None, reference("sshKeyName")?)
    } else {
        (text("username")?, reference("password")?, None)
    };
    let url = text("url")?;
    let provider = match text("providerType")? {
        Some(t) if is_bitbucket_type(&t) => {
            // BITBUCKET covers Cloud and Server: the URL tells which, and a self-hosted URL
            // that does not follow Server's conventions is still Server.
            let kept = current.map(|c| c.provider).filter(|p| is_bitbucket(*p));
            let detected = url
                .as_deref()
                .and_then(|u| crate::url::RepoUrl::parse(u).ok())
                .map(|u| Provider::detect(&u));
            Some(match (kept, detected) {
                (Some(p), _) => p,
                (None, Some(Provider::BitbucketCloud)) => Provider::BitbucketCloud,
                (None, _) => Provider::BitbucketServer,
            })
        }
        _ => Some(Provider::Git),
    };
    let scope = match text("urlType")?.as_deref() {
        None | Some("REPO") => ConnectorScope::Repo,
        Some("ACCOUNT") => ConnectorScope::Account,
        Some(other) => {
            return Err(problem(
                map.get("urlType"),
                format!("urlType: must be REPO or ACCOUNT, not {other:?}"),
            ));
        }
    };
    let selectors = match map.get("delegateSelectors") {
        None => Vec::new(),
        Some(node) if node.is_null() => Vec::new(),
        Some(node) => {
            let items = node.as_seq().ok_or_else(|| {
                problem(
                    Some(node),
                    "delegateSelectors: must be a list of selectors".into(),
                )
            })?;
            items
                .iter()
                .map(|item| {
                    item.value.scalar_text().map(str::to_owned).ok_or_else(|| {
                        problem(
                            Some(item),
                            "delegateSelectors: every item must be a string".into(),
                        )
                    })
                })
                .collect::<Result<_, _>>()?
        }
    };
    let draft = ConnectorDraft {
        name: Some(name.to_string()),
        provider: provider.map(|p| p.to_string()),
        scope: Some(scope.to_string()),
        url,
        username,
        password_secret,
        ssh_key_secret,
        branch: text("branch")?,
        selectors: Some(selectors),
        generate_webhook_url: current.map(|c| c.generate_webhook_url),
        author_name: text("authorName")?,
        author_email: text("authorEmailId")?,
        commit_message: text("commitMessage")?,
        known_hosts: current.and_then(|c| c.known_hosts.clone()),
        ca_certificate: current.and_then(|c| c.ca_certificate.clone()),
        // reposync's own settings, which the file does not carry, stay as they were.
        poll_interval_seconds: current.and_then(|c| c.poll_interval_seconds),
        author_from_user: current.map(|c| c.author_from_user),
        api_url: current.and_then(|c| c.api_url.as_ref().map(ToString::to_string)),
        api_username: current.and_then(|c| c.api_username.clone()),
        api_token_secret: current
            .and_then(|c| c.api_token_secret.as_ref().map(ToString::to_string)),
        fetch: current.map(|c| c.fetch.to_string()),
    };
    let connector = GitConnector::parse_input(&draft).map_err(|e| {
        let key = yaml_key(&e.field);
        problem(map.get(key), format!("{key}: {}", e.message))
    })?;
    let mut warnings = Vec::new();
    if connector.scope == ConnectorScope::Repo && connector.branch.is_none() {
        warnings.push(TreeWarning {
            path: file_path.to_owned(),
            line: document.root.line,
            column: document.root.column,
            message: format!(
                "branch: not set, so this connector follows the repository's default branch (its HEAD, which `reposync connector test {:?}` shows and `sync enable` takes); add `branch: <name>` to pin one",
                name.as_str()
            ),
        });
    }
    Ok(ReadConnector {
        connector,
        warnings,
        mapped: mappings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::{Limits, parse};

    fn spec(draft: ConnectorDraft) -> GitConnector {
        GitConnector::parse(&draft).expect("valid")
    }

    fn https_draft() -> ConnectorDraft {
        ConnectorDraft {
            name: Some("Platform Git".into()),
            url: Some("https://bitbucket.org/acme/config.git".into()),
            username: Some("jdoe".into()),
            password_secret: Some("bb-token".into()),
            branch: Some("main".into()),
            selectors: Some(vec!["eu".into()]),
            ..Default::default()
        }
    }

    fn read(text: &str, current: Option<&GitConnector>) -> Result<GitConnector, TreeProblem> {
        let document = parse(text.as_bytes(), &Limits::default()).expect("yaml");
        let name = EntityName::parse("Platform Git").expect("name");
        to_connector("f.yaml", &name, &document, current)
    }

    #[test]
    fn renders_a_bitbucket_https_connector_as_harness_wrote_it() {
        assert_eq!(
            render(&spec(https_draft()), None),
            "harnessApiVersion: '1.0'\ntype: GIT\nauthorEmailId: git-sync@reposync.invalid\nauthorName: reposync\nbranch: main\ndelegateSelectors:\n- eu\nkeyAuth: false\npassword: reposync:bb-token\nproviderType: BITBUCKET\nurl: https://bitbucket.org/acme/config.git\nurlType: REPO\nusername: jdoe\n"
        );
    }

    #[test]
    fn a_rendering_reads_back_as_the_same_connector() {
        let original = spec(https_draft());
        let text = render(&original, None);
        assert_eq!(read(&text, None).expect("reads"), original);
    }

    #[test]
    fn a_harness_file_renders_back_byte_for_byte_with_its_own_spellings() {
        let harness = "harnessApiVersion: '1.0'\ntype: GIT\nbranch: master\ndescription: kept as written\nkeyAuth: false\npassword: safeharness:bb-token\nproviderType: BITBUCKET\nurl: https://bitbucket.org/acme/config.git\nurlType: REPO\nusername: jdoe\n";
        let connector = read(harness, None).expect("reads");
        assert_eq!(connector.provider, Provider::BitbucketCloud);
        assert_eq!(connector.author_name, DEFAULT_AUTHOR_NAME);
        let document = parse(harness.as_bytes(), &Limits::default()).expect("yaml");
        assert_eq!(render(&connector, Some(&document)), harness);
    }

    #[test]
    fn a_changed_secret_is_written_with_reposyncs_own_manager() {
        let harness = "harnessApiVersion: '1.0'\ntype: GIT\nbranch: main\nkeyAuth: false\npassword: safeharness:bb-token\nproviderType: BITBUCKET\nurl: https://bitbucket.org/acme/config.git\nurlType: REPO\nusername: jdoe\n";
        let document = parse(harness.as_bytes(), &Limits::default()).expect("yaml");
        let mut draft = https_draft();
        draft.password_secret = Some("new-token".into());
        draft.selectors = None;
        let rendered = render(&spec(draft), Some(&document));
        assert!(
            rendered.contains("password: reposync:new-token\n"),
            "{rendered}"
        );
        assert!(!rendered.contains("authorName"), "{rendered}");
    }

    #[test]
    fn the_corpus_source_repo_providers_read_and_render_back_byte_for_byte() {
        let files = [
            include_str!("../tests/corpus/Setup/Source Repo Providers/Platform Git.yaml"),
            include_str!("../tests/corpus/Setup/Source Repo Providers/Legacy SSH.yaml"),
        ];
        for text in files {
            let connector = read(text, None).expect("reads");
            let document = parse(text.as_bytes(), &Limits::default()).expect("yaml");
            assert_eq!(render(&connector, Some(&document)), text);
        }
    }

    #[test]
    fn ssh_files_name_the_key_secret_and_drop_the_password() {
        let text = "harnessApiVersion: '1.0'\ntype: GIT\nbranch: master\nkeyAuth: true\nproviderType: GIT\nsshKeyName: deploy-key\nurl: git@git.example.com:ops/config.git\nurlType: REPO\n";
        let connector = read(text, None).expect("reads");
        assert_eq!(
            connector.credentials,
            Credentials::Ssh {
                ssh_key_secret: crate::name::SecretName::parse("deploy-key").expect("name")
            }
        );
        let document = parse(text.as_bytes(), &Limits::default()).expect("yaml");
        assert_eq!(render(&connector, Some(&document)), text);
    }

    #[test]
    fn another_secret_manager_is_refused_at_its_line() {
        let text = "harnessApiVersion: '1.0'\ntype: GIT\nbranch: main\nkeyAuth: false\npassword: hashicorpvault:bb\nurl: https://bitbucket.org/acme/config.git\nusername: jdoe\n";
        let problem = read(text, None).expect_err("refused");
        assert_eq!((problem.line, problem.column), (5, 11));
        assert!(problem.message.contains("hashicorpvault"), "{problem}");
    }

    fn read_mapped(text: &str, managers: &[&str]) -> Result<ReadConnector, TreeProblem> {
        let document = parse(text.as_bytes(), &Limits::default()).expect("yaml");
        let name = EntityName::parse("Platform Git").expect("name");
        let managers: Vec<String> = managers.iter().map(|m| (*m).to_owned()).collect();
        let mapped = MappedManagers::parse(&managers, "--map-secret-manager").expect("managers");
        read_connector("f.yaml", &name, &document, None, &mapped)
    }

    #[test]
    fn a_mapped_secret_manager_reads_as_reposyncs_secret_and_is_reported() {
        let text = "harnessApiVersion: '1.0'\ntype: GIT\nbranch: main\nkeyAuth: false\npassword: gcpkms:db-password\nproviderType: GIT\nurl: https://bitbucket.org/acme/config.git\nurlType: REPO\nusername: jdoe\n";
        let refused = read_mapped(text, &[]).expect_err("not mapped");
        assert!(
            refused.message.contains("--map-secret-manager gcpkms"),
            "{refused}"
        );
        let read = read_mapped(text, &["amazonkms", "gcpkms"]).expect("mapped");
        assert_eq!(
            read.connector.credential_fields().1.as_deref(),
            Some("db-password")
        );
        assert_eq!(
            read.mapped,
            vec![MappedSecret {
                path: "f.yaml".into(),
                line: 5,
                key: "password".into(),
                reference: "gcpkms:db-password".into(),
                secret: "db-password".into(),
            }]
        );
        // What reposync stores and pushes names the secret where it now lives.
        let document = parse(text.as_bytes(), &Limits::default()).expect("yaml");
        let rendered = render(&read.connector, Some(&document));
        assert_eq!(
            rendered,
            text.replace("gcpkms:db-password", "reposync:db-password")
        );
        // Managers reposync already reads are not mapped again, and nothing is not a manager.
        let read = read_mapped(&text.replace("gcpkms:", "safeharness:"), &["gcpkms"]).expect("own");
        assert!(read.mapped.is_empty());
    }

    #[test]
    fn mapped_managers_are_parsed_with_the_flag_named() {
        let parse = |m: &[&str]| {
            MappedManagers::parse(
                &m.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>(),
                "--map-secret-manager",
            )
        };
        assert_eq!(
            parse(&["gcpkms", "gcpkms=", " azurevault "]).map(|m| m.names().to_vec()),
            Ok(vec!["gcpkms".to_owned(), "azurevault".to_owned()])
        );
        for (bad, why) in [
            ("", "names no secret manager"),
            ("gcpkms=reposync", "same name only"),
            ("gcp:kms", "contains ':'"),
            ("safeharness", "reposync's own manager"),
        ] {
            let error = parse(&[bad]).expect_err(bad);
            assert_eq!(error.field, "--map-secret-manager");
            assert!(error.message.contains(why), "{bad:?}: {error}");
        }
    }

    #[test]
    fn a_repository_connector_without_branch_follows_the_default_branch_with_a_warning() {
        let text = "harnessApiVersion: '1.0'\ntype: GIT\nkeyAuth: false\npassword: reposync:bb\nproviderType: GIT\nurl: https://bitbucket.org/acme/config.git\nurlType: REPO\nusername: jdoe\n";
        let read = read_mapped(text, &[]).expect("accepted");
        assert_eq!(read.connector.branch, None);
        assert_eq!(read.warnings.len(), 1);
        assert_eq!(read.warnings[0].path, "f.yaml");
        assert_eq!(read.warnings[0].line, 1);
        assert!(
            read.warnings[0].message.starts_with(
                "branch: not set, so this connector follows the repository's default branch"
            ),
            "{}",
            read.warnings[0].message
        );
        assert!(
            read.warnings[0]
                .message
                .contains("add `branch: <name>` to pin one")
        );
        // The file is kept as it was: no branch is written into it.
        let document = parse(text.as_bytes(), &Limits::default()).expect("yaml");
        assert_eq!(render(&read.connector, Some(&document)), text);
        // With a branch, or for an account connector, there is nothing to say.
        let pinned = text.replace("keyAuth", "branch: main\nkeyAuth");
        assert!(read_mapped(&pinned, &[]).expect("ok").warnings.is_empty());
    }

    #[test]
    fn a_field_the_connector_rules_refuse_points_at_its_key() {
        let text = "harnessApiVersion: '1.0'\ntype: GIT\nkeyAuth: false\npassword: reposync:bb\nurl: https://bitbucket.org/acme/config.git\nurlType: ACCOUNT\nusername: jdoe\n";
        let problem = read(text, None).expect_err("refused");
        assert_eq!(problem.line, 5, "{problem}");
        assert!(problem.message.starts_with("url: "), "{problem}");
    }

    #[test]
    fn fields_yaml_cannot_carry_are_kept_from_the_current_connector() {
        let mut draft = https_draft();
        draft.generate_webhook_url = Some(true);
        draft.author_from_user = Some(true);
        let current = spec(draft);
        let text = render(&current, None).replace("branch: main", "branch: release");
        let lower = text.to_lowercase();
        assert!(
            !lower.contains("fromuser") && !lower.contains("from_user"),
            "{text}"
        );
        let updated = read(&text, Some(&current)).expect("reads");
        assert!(updated.generate_webhook_url);
        assert!(updated.author_from_user);
        assert_eq!(updated.branch.expect("branch").as_str(), "release");
        // A file read without a connector to keep them from takes reposync's defaults.
        assert!(!read(&text, None).expect("reads").author_from_user);
    }
}
