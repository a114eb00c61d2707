//! The Source Repo Provider file (`Setup/Source Repo Providers/<name>.yaml`, `type: GIT`): the
//! same object as a connector, seen as Harness's YAML.

use reposync_model::tree::ROOT;
use reposync_model::yaml::{Document, Mapping, Node, Value, canonicalize, emit};
use reposync_model::{ConnectorScope, Credentials, EntityName, GitConnector, Provider};

/// The secret manager name reposync writes in secret references (`reposync:<secret>`).
pub const SECRET_MANAGER: &str = "reposync";

/// The path of a connector's file.
pub fn path(name: &EntityName) -> String {
    format!("{ROOT}/Source Repo Providers/{name}.yaml")
}

/// A connector as its Harness YAML, in the canonical format. Secret values never appear: only
/// references to the secrets by name. The webhook token is never written.
pub fn render(spec: &GitConnector) -> String {
    let mut map = Mapping::new();
    map.insert("harnessApiVersion", Node::string("1.0"));
    map.insert("type", Node::string("GIT"));
    map.insert("authorEmailId", Node::string(spec.author_email.as_str()));
    map.insert("authorName", Node::string(spec.author_name.as_str()));
    if let Some(branch) = &spec.branch {
        map.insert("branch", Node::string(branch.as_str()));
    }
    if let Some(message) = &spec.commit_message {
        map.insert("commitMessage", Node::string(message.as_str()));
    }
    if !spec.selectors.is_empty() {
        let selectors = spec
            .selectors
            .iter()
            .map(|s| Node::string(s.as_str()))
            .collect();
        map.insert("delegateSelectors", Node::new(Value::Seq(selectors)));
    }
    match &spec.credentials {
        Credentials::Https {
            username,
            password_secret,
        } => {
            map.insert("keyAuth", Node::bool(false));
            map.insert(
                "password",
                Node::string(format!("{SECRET_MANAGER}:{password_secret}")),
            );
            map.insert("username", Node::string(username.as_str()));
        }
        Credentials::Ssh { ssh_key_secret } => {
            map.insert("keyAuth", Node::bool(true));
            map.insert("sshKeyName", Node::string(ssh_key_secret.as_str()));
        }
    }
    let provider = match spec.provider {
        Provider::BitbucketCloud | Provider::BitbucketServer => "BITBUCKET",
        Provider::Git => "GIT",
    };
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
    canonicalize(&mut document);
    emit(&document)
}

#[cfg(test)]
mod tests {
    use reposync_model::ConnectorDraft;

    use super::*;

    #[test]
    fn renders_a_bitbucket_https_connector_as_harness_wrote_it() {
        let spec = GitConnector::parse(&ConnectorDraft {
            name: Some("Platform Git".into()),
            url: Some("https://bitbucket.org/acme/config.git".into()),
            username: Some("jdoe".into()),
            password_secret: Some("bb-token".into()),
            branch: Some("main".into()),
            selectors: Some(vec!["eu".into()]),
            ..Default::default()
        })
        .expect("valid");
        assert_eq!(
            render(&spec),
            "harnessApiVersion: '1.0'\ntype: GIT\nauthorEmailId: git-sync@reposync.invalid\nauthorName: reposync\nbranch: main\ndelegateSelectors:\n- eu\nkeyAuth: false\npassword: reposync:bb-token\nproviderType: BITBUCKET\nurl: https://bitbucket.org/acme/config.git\nurlType: REPO\nusername: jdoe\n"
        );
    }
}
