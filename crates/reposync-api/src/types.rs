use serde::{Deserialize, Serialize};

pub use reposync_model::ConnectorDraft;
use reposync_model::{AttemptId, ChangesetId, LinkId, ObjectId, SyncErrorId, TaskId};

use crate::SecretValue;

/// `GET /healthz` and `/readyz`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Health {
    pub status: String,
}

/// `GET /api/v1/version`: what the server was built from, and its database's schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(
    feature = "openapi",
    schema(examples(json!(crate::examples::version())))
)]
pub struct VersionView {
    pub version: String,
    /// The git commit of the checkout it was built from, or `unknown`.
    pub git_commit: String,
    /// `YYYY-MM-DD`, in UTC.
    pub build_date: String,
    /// The newest database migration applied.
    pub schema_version: i64,
}

/// The kind of a secret, as the API spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SecretKindView {
    /// Encrypted Text: a password or token.
    Text,
    /// SSH Key Credential.
    SshKey,
}

/// `POST /api/v1/secrets`: an Encrypted Text secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateTextSecret {
    pub name: String,
    pub value: SecretValue,
}

/// `POST /api/v1/secrets/ssh`: an SSH Key Credential from a private key.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateSshSecret {
    pub name: String,
    pub private_key: SecretValue,
    #[serde(default)]
    pub passphrase: Option<SecretValue>,
    /// Must be `git` when given; Bitbucket's SSH user.
    #[serde(default)]
    pub username: Option<String>,
}

/// `POST /api/v1/secrets/ssh/generate`: a new Ed25519 key made by the server.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct GenerateSshSecret {
    pub name: String,
}

/// `PUT /api/v1/secrets/{name}`: a new value for an existing secret, of the same kind.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateSecret {
    #[serde(default)]
    pub value: Option<SecretValue>,
    #[serde(default)]
    pub private_key: Option<SecretValue>,
    #[serde(default)]
    pub passphrase: Option<SecretValue>,
}

/// A secret as the API shows it: never its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(
    feature = "openapi",
    schema(examples(json!(crate::examples::secret()), json!(crate::examples::secret_2())))
)]
pub struct SecretView {
    pub name: String,
    pub kind: SecretKindView,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh: Option<SshKeyView>,
    pub used_by: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
    /// On creation only: what is worth a look about the name (it mixes look-alike scripts).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// What is shown of an SSH key: the user, the algorithm, the fingerprint and the public key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SshKeyView {
    pub username: String,
    pub algorithm: String,
    pub fingerprint: String,
    pub public_key: String,
}

/// A list response.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ListResponse<T> {
    pub items: Vec<T>,
}

/// `PATCH /api/v1/connectors/{name}`: only the fields present change; `null` clears an
/// optional field (webhook, selectors, commit message, known hosts, CA).
pub type ConnectorPatch = serde_json::Map<String, serde_json::Value>;

/// A connector as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(
    feature = "openapi",
    schema(examples(json!(crate::examples::connector())))
)]
pub struct ConnectorView {
    pub name: String,
    pub provider: String,
    pub scope: String,
    pub protocol: String,
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_key_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    pub selectors: Vec<String>,
    pub generate_webhook_url: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
    pub author_name: String,
    pub author_email: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known_hosts: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_certificate: Option<String>,
    /// Seconds between polls of its branches; absent when the server's interval applies, 0
    /// when it is not polled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll_interval_seconds: Option<u32>,
    /// Whether a commit holding one person's changes has that person (with their e-mail
    /// address) as author, and the connector's author as committer.
    #[serde(default)]
    pub author_from_user: bool,
    /// The REST API base the connector set, when not the platform's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_url: Option<String>,
    /// The user REST calls authenticate as (a Cloud API token's account email).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_username: Option<String>,
    /// The secret holding the REST token, when not git's (an SSH connector's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_token_secret: Option<String>,
    /// auto, git or api.
    #[serde(default = "default_fetch")]
    pub fetch: String,
    /// What the last Test found the server can do; kept until the connector changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Capabilities>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_test: Option<TestResult>,
    pub created_at: String,
    pub updated_at: String,
}

/// The response to saving a connector: the connector, and the webhook credentials when they
/// were just created, since the user must paste them into Bitbucket.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(
    feature = "openapi",
    schema(examples(json!(crate::examples::connector_saved())))
)]
pub struct ConnectorSaved {
    pub connector: ConnectorView,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookView>,
    /// What is worth a look about the connector saved (its name mixes look-alike scripts).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// A webhook URL and the HMAC secret to configure in Bitbucket.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(
    feature = "openapi",
    schema(examples(json!(crate::examples::webhook())))
)]
pub struct WebhookView {
    pub url: String,
    pub secret: SecretValue,
    /// Deliveries to the URL that failed authentication; shown by `GET
    /// /api/v1/connectors/{name}/webhook`, absent where the credentials were just made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unauthenticated: Option<UnauthenticatedView>,
}

/// Deliveries to a connector's webhook URL that failed authentication (a missing or wrong
/// signature, or a body that could not be read while a signature is required). Anyone with
/// the URL can send them, so they are counted rather than logged one by one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(
    feature = "openapi",
    schema(examples(json!(crate::examples::unauthenticated())))
)]
pub struct UnauthenticatedView {
    pub connector: String,
    pub count: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reason: Option<String>,
}

/// `POST /api/v1/connectors/{name}/test`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TestRequest {
    /// The repository to test, for account-scope connectors.
    #[serde(default)]
    pub repo: Option<String>,
    /// Test the connector as this PATCH would leave it, saving nothing (`connector update`
    /// tests a changed connection before saving it); the result is then not the connector's
    /// last Test.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<ConnectorDraft>))]
    pub changes: Option<ConnectorPatch>,
}

/// `POST /api/v1/connectors/{name}/fetch`: files of the connector's repository at a ref, read
/// on a delegate into a tar archive (`GET /api/v1/tasks/{id}/archive` once the task succeeded).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(
    feature = "openapi",
    schema(examples(json!(crate::examples::fetch_request())))
)]
#[serde(deny_unknown_fields)]
pub struct FetchRequest {
    /// The repository to read, for account-scope connectors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo: Option<String>,
    /// A branch, a tag (annotated ones are peeled) or a full commit id; `refs/heads/…` and
    /// `refs/tags/…` pick a branch or a tag by its full name. By default the connector's
    /// branch, or the repository's default branch.
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// Repository-relative files or folders (a folder brings everything under it).
    pub paths: Vec<String>,
}

/// The query of `POST /api/v1/connectors` and `PATCH /api/v1/connectors/{name}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct ConnectorSaveQuery {
    /// The Test run on the connector before it was saved (`POST /api/v1/connector-tests`, or
    /// `changes` on `POST /api/v1/connectors/{name}/test`): when it tested exactly what is
    /// saved, its result becomes the connector's last Test.
    #[serde(default)]
    pub tested_by: Option<TaskId>,
}

/// The query of `POST /api/v1/connector-tests`, whose body is a connector as `POST
/// /api/v1/connectors` takes it: the Test of a connector before it is saved.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct DraftTestQuery {
    /// The repository to test, for an account-scope connector.
    #[serde(default)]
    pub repo: Option<String>,
}

/// How a Test ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(
    feature = "openapi",
    schema(examples(json!(crate::examples::test_result()), json!(crate::examples::test_result_2())))
)]
pub struct TestResult {
    pub ok: bool,
    /// The repository URL tested.
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// The commit the branch points at, on success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// On failure: host_unreachable, tls_untrusted, host_key_unknown, host_key_mismatch,
    /// auth_failed, repo_not_found, branch_not_found, timeout, git_unavailable, ssh_unavailable,
    /// or no_delegate / internal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegate: Option<String>,
    /// What the Test found the server can do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Capabilities>,
    pub duration_ms: u64,
    pub tested_at: String,
}

/// What a connector's server can do, probed by a Test and kept on the connector: what the
/// fetch planner chooses from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Capabilities {
    /// bitbucket-cloud, bitbucket-server or git.
    pub platform: String,
    /// The server's version, where it says (Data Center's `application-properties`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Whether git speaks protocol v2 there.
    pub git_protocol_v2: bool,
    /// Whether git partial clone is honoured (the `filter` capability).
    pub partial_clone: bool,
    /// The REST base tried, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rest_api: Option<String>,
    /// Whether REST answers with these credentials.
    pub rest: bool,
    /// Why REST cannot be used, when it cannot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rest_problem: Option<String>,
    /// Whether answers carried `X-RateLimit-*` headers.
    pub rate_limit_headers: bool,
    /// The hourly request limit the headers gave.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<u32>,
    /// Whether `archive` takes a path filter (Data Center 5.1 and later); absent elsewhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive_path_filter: Option<bool>,
    /// The repository's size in bytes as Cloud reports it: what a clone may cost, since Cloud
    /// refuses partial clone. Absent elsewhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository_bytes: Option<u64>,
}

fn default_fetch() -> String {
    "auto".to_owned()
}

/// A delegate task as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(
    feature = "openapi",
    schema(examples(json!(crate::examples::task())))
)]
pub struct TaskView {
    pub id: TaskId,
    pub kind: String,
    /// queued, running, succeeded or failed.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegate: Option<String>,
    pub attempts: i64,
    pub created_at: String,
    /// How long the task waited before a delegate claimed it (its last claim).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queued_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
}

/// A file of the configuration tree on the wire; `content` is base64 so that bytes survive.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TreeFile {
    pub path: String,
    pub content: String,
}

/// `POST /api/v1/import`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ImportRequest {
    pub files: Vec<TreeFile>,
    #[serde(default)]
    pub dry_run: bool,
    /// Other Harness secret managers (`gcpkms`, `hashicorpvault`, …) whose references are
    /// read as reposync's secrets of the same name: `gcpkms:db-password` means reposync's
    /// secret `db-password`. Each mapping is reported in [`ImportReport::mapped_secrets`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub map_secret_managers: Vec<String>,
}

/// One problem in an imported or validated tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(
    feature = "openapi",
    schema(examples(json!(crate::examples::tree_problem())))
)]
pub struct TreeProblemView {
    pub path: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// `path:line:column: message`, as compilers write it; a problem with the file as a whole
/// points at its first line.
impl std::fmt::Display for TreeProblemView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.path,
            self.line.max(1),
            self.column.max(1),
            self.message
        )
    }
}

/// What an import did (or, for a dry run or a refused tree, would have done).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(
    feature = "openapi",
    schema(examples(json!(crate::examples::import_report())))
)]
pub struct ImportReport {
    pub dry_run: bool,
    /// Whether the changes were written: false for a dry run and for a tree with problems.
    pub applied: bool,
    pub created: usize,
    pub changed: usize,
    pub unchanged: usize,
    #[serde(default)]
    pub deleted: usize,
    pub ignored: usize,
    pub problems: Vec<TreeProblemView>,
    /// What was accepted but is worth a look, with its file and line: a key reposync does
    /// not know (kept as written), a name mixing look-alike scripts, a Source Repo Provider
    /// without a branch. Absent when there are none, so older clients read the answer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<TreeProblemView>,
    /// Secret references read through `map_secret_managers`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mapped_secrets: Vec<MappedSecretView>,
}

/// A secret reference of another secret manager read as one of reposync's secrets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MappedSecretView {
    pub path: String,
    pub line: usize,
    /// The YAML key holding the reference (`password`, `sshKeyName`).
    pub key: String,
    /// The reference as the file wrote it (`gcpkms:db-password`).
    pub reference: String,
    /// The reposync secret it now names (`db-password`); the stored file says
    /// `reposync:<secret>`.
    pub secret: String,
}

/// `GET /api/v1/export`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(
    feature = "openapi",
    schema(examples(json!(crate::examples::export_response())))
)]
pub struct ExportResponse {
    pub files: Vec<TreeFile>,
}

/// `GET /api/v1/entities?path=…`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(
    feature = "openapi",
    schema(examples(json!(crate::examples::entity())))
)]
pub struct EntityView {
    pub path: String,
    pub kind: String,
    pub content: String,
    pub revision: i64,
    pub updated_at: String,
}

/// `POST /api/v1/apps` (create) and `POST /api/v1/apps/{name}/rename` (the new name).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AppRequest {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
}

/// An application and how many files of each main kind it holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(
    feature = "openapi",
    schema(examples(json!(crate::examples::app())))
)]
pub struct AppView {
    pub name: String,
    pub files: usize,
    pub services: usize,
    pub environments: usize,
    pub workflows: usize,
    pub pipelines: usize,
    /// The `description` of its `Index.yaml` (in `GET /apps/{name}` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Where Git Sync keeps it, when it is synced (in `GET /apps/{name}` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync: Option<AppSync>,
}

/// An application's live sync link, as `app show` names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AppSync {
    pub connector: String,
    pub url: String,
    pub branch: String,
}

/// `PUT /api/v1/entities?path=…`: the file's new content.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ApplyRequest {
    pub content: String,
}

/// `POST /api/v1/sync/enable`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SyncEnableRequest {
    /// The application to link; absent for the account's own files.
    #[serde(default)]
    pub app: Option<String>,
    /// Links the account and every application (those the branch holds and those reposync
    /// holds) from one read of the branch; `app` must then be absent. Scopes linked already
    /// are left as they are. The task's result is a `SyncEnabledAll`.
    #[serde(default)]
    pub all: bool,
    pub connector: String,
    #[serde(default)]
    pub branch: Option<String>,
    #[serde(default)]
    pub repo: Option<String>,
    /// `import`, `mirror`, `push` or `fail-if-different` (the default).
    #[serde(default)]
    pub initial: Option<String>,
    /// Confirms the deletions `mirror` makes (`--yes`); without it, `mirror` only says what it
    /// would delete.
    #[serde(default)]
    pub confirm_deletes: bool,
    /// Creates the branch with the first commit when the repository has no such branch
    /// (`--create-branch`); without it, a branch that does not exist is refused, so that a
    /// mistyped name never makes a new root branch.
    #[serde(default)]
    pub create_branch: bool,
}

/// `POST /api/v1/sync/disable`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SyncDisableRequest {
    #[serde(default)]
    pub app: Option<String>,
}

/// `POST /api/v1/sync/refresh`: read the branch of one scope, or of every live link, now.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SyncRefreshRequest {
    #[serde(default)]
    pub app: Option<String>,
    #[serde(default)]
    pub all: bool,
}

/// A branch a refresh asked to read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(
    feature = "openapi",
    schema(examples(json!(crate::examples::refreshed_branch())))
)]
pub struct RefreshedBranch {
    pub scopes: Vec<String>,
    pub url: String,
    pub branch: String,
}

/// A link between a scope and a branch.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(
    feature = "openapi",
    schema(examples(json!(crate::examples::sync_link())))
)]
pub struct SyncLinkView {
    pub id: LinkId,
    /// `account`, or `app:<name>`.
    pub scope: String,
    pub app: Option<String>,
    pub connector: String,
    pub repo: Option<String>,
    pub branch: String,
    pub url: String,
    /// The remote commit outgoing changes build on.
    pub base_commit: Option<ObjectId>,
    /// Changesets not yet pushed.
    pub waiting: usize,
    /// Sync errors not yet resolved.
    pub errors: usize,
    /// Of the changesets waiting, those being pushed now.
    #[serde(default)]
    pub pushing: usize,
    /// Changesets held because Git changed the same file.
    #[serde(default)]
    pub conflicts: usize,
    /// When the oldest change still to push was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_since: Option<String>,
    pub created_at: String,
    /// The last commit of the branch read into reposync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_commit: Option<String>,
    /// When the branch was last polled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub polled_at: Option<String>,
    /// When the connector's webhook last received a delivery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_webhook_at: Option<String>,
    /// Why the branch cannot be read, when it cannot (deleted, force-pushed away…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broken: Option<String>,
}

/// How the branch compared with reposync when sync was enabled.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SyncDifferences {
    /// Files only reposync has.
    pub only_in_reposync: Vec<String>,
    /// Files only the branch has.
    pub only_in_git: Vec<String>,
    /// Files both have, with different contents.
    pub different: Vec<String>,
}

impl SyncDifferences {
    pub fn is_empty(&self) -> bool {
        self.only_in_reposync.is_empty() && self.only_in_git.is_empty() && self.different.is_empty()
    }
}

/// `POST /api/v1/sync/enable` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SyncEnabled {
    pub link: SyncLinkView,
    pub initial: String,
    /// The branch head when sync was enabled; none for a branch that did not exist.
    pub remote_head: Option<ObjectId>,
    pub differences: SyncDifferences,
    /// Files queued for the first commit.
    pub pushing: usize,
    /// What importing the branch did, for `--initial import` and `mirror`.
    pub imported: Option<ImportReport>,
    /// reposync's files that the branch lacked and that were kept: the first commit pushes
    /// them.
    #[serde(default)]
    pub kept: Vec<String>,
    /// reposync's files that the branch lacked and that `mirror` deleted.
    #[serde(default)]
    pub deleted: Vec<String>,
}

/// What enabling every scope at once did (`POST /api/v1/sync/enable` with `all`): one read of
/// the branch, and every scope linked from it in one transaction.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SyncEnabledAll {
    pub connector: String,
    pub url: String,
    pub branch: String,
    /// The initial mode asked for; an application the branch holds and reposync does not is
    /// imported whatever it says (its own `initial` says `import`).
    pub initial: String,
    /// The branch head read; none for a branch that did not exist.
    pub remote_head: Option<ObjectId>,
    /// Each scope linked, the account first, then the applications by name: what its
    /// initial mode did.
    pub linked: Vec<SyncEnabled>,
    /// The applications the branch held and reposync did not, created from the branch's
    /// files (each is among `linked` too).
    #[serde(default)]
    pub created_apps: Vec<String>,
    /// The scopes left as they were because they were linked already, with their links.
    #[serde(default)]
    pub skipped: Vec<SyncLinkView>,
}

/// One file of a changeset.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChangedFileView {
    pub op: String,
    pub path: String,
}

/// A changeset: what one change did to the files of a synced scope.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(
    feature = "openapi",
    schema(examples(json!(crate::examples::changeset())))
)]
pub struct ChangesetView {
    pub id: ChangesetId,
    pub scope: String,
    pub status: String,
    pub files: Vec<ChangedFileView>,
    pub attempt_id: Option<AttemptId>,
    pub commit_id: Option<ObjectId>,
    pub error: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// A commit attempt.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(
    feature = "openapi",
    schema(examples(json!(crate::examples::commit_attempt())))
)]
pub struct CommitAttemptView {
    pub id: AttemptId,
    pub scope: String,
    pub status: String,
    /// The delegate that ran the push.
    #[serde(default)]
    pub delegate: Option<String>,
    pub changesets: Vec<ChangesetId>,
    pub files: Vec<ChangedFileView>,
    pub commit_id: Option<ObjectId>,
    pub error: Option<String>,
    pub started_at: String,
    pub finished_at: Option<String>,
}

/// `GET /api/v1/sync/activity`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(
    feature = "openapi",
    schema(examples(json!(crate::examples::sync_activity())))
)]
pub struct SyncActivity {
    pub changesets: Vec<ChangesetView>,
    pub attempts: Vec<CommitAttemptView>,
    /// Commits read from Git (Git → reposync), newest first.
    #[serde(default)]
    pub inbound: Vec<InboundCommitView>,
    /// How each read of a branch was done, newest first; reads by a delegate that does not
    /// say are not listed.
    #[serde(default)]
    pub reads: Vec<ReadView>,
}

/// One read of a synced branch: what it was for (`enable`: the branch read whole when sync
/// was enabled; `incremental`: the commits since the last one read; `snapshot`: the branch
/// read whole by the inbox), the method the delegate chose and why, the method it fell back
/// from and why, and what the read cost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(examples(json!(crate::examples::read()))))]
pub struct ReadView {
    pub branch: String,
    /// enable, incremental or snapshot.
    pub kind: String,
    /// The branch's head as read; none when the branch did not exist yet.
    pub head: Option<ObjectId>,
    /// git, cloud-rest, dc-archive, dc-rest…
    pub method: String,
    /// Why this method was chosen.
    pub reason: String,
    /// The method tried first, when it refused and this one took over.
    pub fallback_from: Option<String>,
    /// Why the first method refused.
    pub fallback_reason: Option<String>,
    /// REST requests sent (git's own are not counted).
    pub requests: u64,
    /// Bytes received.
    pub bytes: u64,
    pub duration_ms: u64,
    pub read_at: String,
    /// The delegate that read, while its task is kept.
    #[serde(default)]
    pub delegate: Option<String>,
}

/// A commit read from a synced branch and what became of it: applied, partial, failed, ours
/// (reposync's own, not applied again), nothing (no file reposync syncs), or snapshot (the
/// branch read whole).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(
    feature = "openapi",
    schema(examples(json!(crate::examples::inbound_commit())))
)]
pub struct InboundCommitView {
    pub commit_id: ObjectId,
    pub branch: String,
    pub status: String,
    pub files: Vec<ChangedFileView>,
    pub errors: u64,
    pub author: String,
    /// The first line of the commit message.
    pub subject: String,
    pub applied_at: String,
    /// What was worth a look in the files read (an unknown key, a mixed-script name), which
    /// applied all the same; absent when there is none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<TreeProblemView>,
}

/// A sync error that needs a person. For a conflict, both versions of the file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(
    feature = "openapi",
    schema(examples(json!(crate::examples::sync_error())))
)]
pub struct SyncErrorView {
    pub id: SyncErrorId,
    pub scope: String,
    pub attempt_id: Option<AttemptId>,
    /// For an error from a commit read from Git: that commit.
    #[serde(default)]
    pub commit_id: Option<ObjectId>,
    pub path: Option<String>,
    pub code: String,
    pub message: String,
    pub ours: Option<String>,
    pub theirs: Option<String>,
    pub created_at: String,
    /// For a resolved error: when, and how (`fixed`, `landed`, `retried`, `discarded`,
    /// `superseded`, `passed`, `disabled`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<String>,
}

/// The answer to a webhook delivery: its id in the delivery log and what became of it. It
/// says nothing about the connector.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookAnswer {
    pub delivery: String,
    pub outcome: String,
    pub reason: Option<String>,
}

/// `GET /api/v1/webhooks/deliveries`: the delivery log, newest first, and the counts of
/// deliveries that failed authentication, which the log leaves out.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(
    feature = "openapi",
    schema(examples(json!(crate::examples::delivery_log())))
)]
pub struct DeliveryLog {
    pub items: Vec<DeliveryView>,
    /// Per connector that had any, in connector name order.
    #[serde(default)]
    pub unauthenticated: Vec<UnauthenticatedView>,
}

/// One webhook delivery in the log.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeliveryView {
    pub id: String,
    pub connector: String,
    pub received_at: String,
    pub event: String,
    pub delivery_id: Option<String>,
    /// cloud, server_native, post_webhooks or post_receive, when the body was read.
    pub format: Option<String>,
    /// valid or not_required; unchecked when the body could not be read (deliveries with a
    /// missing or wrong signature are only counted: see [`UnauthenticatedView`]).
    pub signature: String,
    /// queued, ping, ignored, duplicate or rejected.
    pub outcome: String,
    pub reason: Option<String>,
    /// The scopes (account, app:NAME) whose links a change matched.
    pub matched: Vec<String>,
    /// The delivery as normalised (format, event, repository, ref changes), when it was read.
    pub payload: serde_json::Value,
}

/// A delegate as `reposync delegate list` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(
    feature = "openapi",
    schema(examples(json!(crate::examples::delegate())))
)]
pub struct DelegateView {
    pub name: String,
    pub selectors: Vec<String>,
    pub version: String,
    pub hostname: String,
    pub git_version: String,
    pub ssh_version: String,
    /// The token it registered with (its name, never its value).
    pub token: Option<String>,
    pub last_heartbeat: Option<String>,
    pub connected: bool,
    pub tasks_run: u64,
    pub tasks_succeeded: u64,
    pub tasks_failed: u64,
}

/// `POST /api/v1/delegate-tokens`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DelegateTokenRequest {
    pub name: String,
    /// Restricts the token: its delegates may register only these selectors and claim only
    /// tasks whose connector asks for at least one selector, every one of them among these.
    /// Absent for an unrestricted token, which is trusted with every connector's credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selectors: Option<Vec<String>>,
}

/// A delegate token; `token` (the value) only in the answer that created it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(
    feature = "openapi",
    schema(examples(json!(crate::examples::delegate_token())))
)]
pub struct DelegateTokenView {
    pub name: String,
    /// The selectors the token is restricted to; `null` for an unrestricted token.
    #[serde(default)]
    pub selectors: Option<Vec<String>>,
    pub created_at: String,
    pub revoked_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<crate::SecretValue>,
}

/// `POST /api/v1/users`: a user to create. Without `password`, the user logs in only with
/// the tokens an admin issues them until one is set.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UserRequest {
    pub name: String,
    /// `viewer`, `editor` or `admin`.
    pub role: String,
    /// The applications the role applies in; absent or empty for everywhere. Elsewhere the
    /// user reads as a viewer. An admin's rights are not per application.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub apps: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<crate::SecretValue>,
}

/// `PATCH /api/v1/users/{name}`: what to change; an absent field stays as it is.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UserUpdateRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Replaces the applications the role applies in (empty: everywhere).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apps: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<crate::SecretValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
}

/// A user, never with their password.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(examples(json!(crate::examples::user()))))]
pub struct UserView {
    pub name: String,
    pub email: Option<String>,
    pub role: String,
    /// Where the role applies; empty for everywhere.
    pub apps: Vec<String>,
    pub has_password: bool,
    pub disabled: bool,
    pub created_at: String,
    /// Failed logins of the current window, for admins; absent when there are none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login_failures: Option<LoginFailuresView>,
}

/// A user's failed logins within the current window.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LoginFailuresView {
    pub failures: i64,
    pub since: String,
    /// Until when logins are refused without checking the password.
    pub blocked_until: Option<String>,
    /// The client address of the last failure.
    pub last_address: Option<String>,
}

/// `POST /api/v1/tokens` (the caller's own) or `/api/v1/users/{name}/tokens` (an admin's
/// for another user).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    pub name: String,
    /// Seconds until it expires; absent for the default of 90 days, `0` for never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_seconds: Option<u64>,
    /// Caps the token below its owner's role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

/// A personal API token; `token` (the value) only in the answer that created it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(examples(json!(crate::examples::user_token()))))]
pub struct TokenView {
    pub name: String,
    pub user: String,
    /// The cap below the owner's role; `null` carries the owner's.
    pub role: Option<String>,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub last_used_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<crate::SecretValue>,
}

/// `POST /api/v1/login`: a user name and password, exchanged for a new personal token.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub user: String,
    pub password: crate::SecretValue,
    /// The new token's name; absent for `login-<time>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_name: Option<String>,
    /// Seconds until the token expires; absent for 30 days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_seconds: Option<u64>,
}

/// A one-time link for a user to set their own password: `POST
/// /api/v1/users/{name}/password-link`. The URL holds the link's token; hand it to the user
/// only.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(
    feature = "openapi",
    schema(examples(json!(crate::examples::password_link())))
)]
pub struct PasswordLinkView {
    pub user: String,
    pub url: crate::SecretValue,
    pub expires_at: String,
}

/// `POST /api/v1/password`: a password set through a one-time link, with the token from the
/// link's fragment (after `#`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PasswordByLinkRequest {
    pub token: crate::SecretValue,
    pub password: crate::SecretValue,
}

/// Who the caller is: `GET /api/v1/me`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(examples(json!(crate::examples::me()))))]
pub struct MeView {
    pub user: String,
    pub email: Option<String>,
    /// The role the token acts with: the owner's, capped by the token's.
    pub role: String,
    /// Where the role applies; empty for everywhere.
    pub apps: Vec<String>,
    /// The token's name.
    pub token: String,
}

/// `GET /api/v1/audit`: which events of the audit trail to list. Every value is text on the
/// wire, and the server parses each, so that a wrong one is refused naming its field.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct AuditQuery {
    /// Only what this user (or delegate) did, or a failed login tried as this name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Only events at or after this time, RFC 3339 (`2026-11-25T10:00:00Z`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(format = DateTime))]
    pub since: Option<String>,
    /// Only events in this application.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// At most this many, newest first: 100 unless given, 1 to 1,000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        param(value_type = Option<u32>, minimum = 1, maximum = 1000)
    )]
    pub limit: Option<String>,
}

impl AuditQuery {
    /// The query as URL parameters, those given only.
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        [
            ("user", &self.user),
            ("since", &self.since),
            ("app", &self.app),
            ("limit", &self.limit),
        ]
        .into_iter()
        .filter_map(|(name, value)| Some((name, value.clone()?)))
        .collect()
    }
}

/// Who acted, in the audit trail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AuditActorKind {
    /// A user, with their own token or a login.
    User,
    /// A delegate, with a delegate token.
    Delegate,
    /// reposync itself (the actor is `reposync`).
    System,
    /// Someone not authenticated: the actor is the name a failed login tried.
    Anonymous,
}

/// How an audited request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AuditOutcomeView {
    /// Done, or accepted to be done by a task.
    Accepted,
    /// Refused: not authenticated, not allowed, or not valid.
    Refused,
    /// Allowed and valid, but reposync failed to do it.
    Failed,
}

/// One event of the audit trail. It never holds a secret value, a password or a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(
    feature = "openapi",
    schema(examples(json!(crate::examples::audit_event())))
)]
pub struct AuditEventView {
    pub id: String,
    /// When it happened.
    pub at: String,
    pub actor_kind: AuditActorKind,
    /// The user's or delegate's name, `reposync` for the system, or the name a failed login
    /// tried.
    pub actor: String,
    /// The name of the token used, never its value.
    pub token: Option<String>,
    /// The client's IP address.
    pub client_addr: Option<String>,
    /// What was asked for: `tree.apply`, `user.create`, `login`…
    pub use_case: String,
    /// What it was about: a path, a connector, a secret's or a user's name.
    pub target: Option<String>,
    /// The application the target is in.
    pub app: Option<String>,
    pub outcome: AuditOutcomeView,
    /// The HTTP status answered, when there was one.
    pub status: Option<u16>,
    /// A short reason (`needs editor in application Shop`).
    pub detail: Option<String>,
}
