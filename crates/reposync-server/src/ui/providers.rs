//! Setup → Connectors → Source Repo Providers: the list, and "Add Source Repo Provider" with
//! Test, then Submit, as the document walks through them. Each action calls the use case the
//! API calls, after the same policy check.

use std::collections::BTreeMap;
use std::net::IpAddr;

use askama::Template;
use axum::extract::{ConnectInfo, Extension, Form, Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use reposync_api::{ConnectorPatch, SecretValue, TaskView, WebhookView};
use reposync_core::error::CoreError;
use reposync_core::users::Caller;
use reposync_core::{connectors, links};
use reposync_model::scope::Scope;
use reposync_model::{ConnectorDraft, TaskId};
use reposync_store::SecretKind;
use serde::Deserialize;
use serde_json::Value;

use super::session::UiCaller;
use super::{Layout, forbidden_page, page};
use crate::access::{self, Facts};
use crate::audit::ClientAddr;
use crate::error::AppError;
use crate::state::AppState;

const LIST: &str = "/ui/setup/connectors/source-repo-providers";

#[derive(Template)]
#[template(path = "setup.html")]
struct SetupPage {
    layout: Layout,
    providers: usize,
}

/// `GET /ui/setup`.
pub async fn setup(State(state): State<AppState>, UiCaller(caller): UiCaller) -> Response {
    match state.store.list_connectors().await {
        Ok(connectors) => page(
            StatusCode::OK,
            &SetupPage {
                layout: Layout::new("Setup", Some(&caller)),
                providers: connectors.len(),
            },
        ),
        Err(error) => AppError::from(error).into_response(),
    }
}

/// One row of the list.
struct Row {
    name: String,
    provider: String,
    scope: String,
    url: String,
    branch: String,
    selectors: String,
    webhook: &'static str,
    last_test: Option<LastTest>,
}

/// A connector's last Test, in words.
struct LastTest {
    outcome: &'static str,
    class: &'static str,
    at: String,
    at_local: String,
    delegate: String,
    message: String,
}

#[derive(Template)]
#[template(path = "providers.html")]
struct ListPage {
    layout: Layout,
    rows: Vec<Row>,
    can_add: bool,
    notice: Option<String>,
}

/// `GET /ui/setup/connectors/source-repo-providers`.
pub async fn list(
    State(state): State<AppState>,
    UiCaller(caller): UiCaller,
    Query(shown): Query<Notice>,
) -> Response {
    let records = match state.store.list_connectors().await {
        Ok(records) => records,
        Err(error) => return AppError::from(error).into_response(),
    };
    let rows = records
        .iter()
        .map(|record| {
            let view = crate::views::connector(record, None);
            Row {
                name: view.name,
                provider: view.provider,
                scope: view.scope,
                url: view.url,
                branch: view
                    .branch
                    .unwrap_or_else(|| "(the repository's default)".into()),
                selectors: if view.selectors.is_empty() {
                    "any delegate".into()
                } else {
                    view.selectors.join(", ")
                },
                webhook: if view.generate_webhook_url {
                    "on"
                } else {
                    "off"
                },
                last_test: view.last_test.map(|test| LastTest {
                    outcome: if test.ok { "Successful" } else { "Failed" },
                    class: if test.ok { "ok" } else { "failed" },
                    at_local: test
                        .tested_at
                        .replace('T', " ")
                        .trim_end_matches('Z')
                        .to_owned(),
                    at: test.tested_at,
                    delegate: test.delegate.unwrap_or_else(|| "a delegate".into()),
                    message: match (test.ok, test.commit, test.message) {
                        (true, Some(commit), _) => {
                            format!("OK at {}", commit.get(..12).unwrap_or(&commit))
                        }
                        (true, None, _) => "OK (empty repository)".into(),
                        (false, _, message) => format!(
                            "{} ({})",
                            message.unwrap_or_default(),
                            test.code.unwrap_or_default()
                        ),
                    },
                }),
            }
        })
        .collect();
    let can_add = may_create(&caller).is_ok();
    page(
        StatusCode::OK,
        &ListPage {
            layout: Layout::new("Source Repo Providers", Some(&caller)),
            rows,
            can_add,
            notice: shown.notice,
        },
    )
}

fn may_create(caller: &Caller) -> Result<&'static access::Policy, AppError> {
    access::require(
        caller,
        &Method::POST,
        "/api/v1/connectors",
        &[Scope::Account],
    )
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Notice {
    notice: Option<String>,
}

/// What the form sends, every field as typed.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ProviderForm {
    name: String,
    provider: String,
    scope: String,
    protocol: String,
    url: String,
    username: String,
    password_secret: String,
    new_secret_name: String,
    new_secret_value: Option<SecretValue>,
    ssh_key_secret: String,
    new_ssh_key_name: String,
    new_ssh_private_key: Option<SecretValue>,
    new_ssh_passphrase: Option<SecretValue>,
    branch: String,
    selectors: String,
    generate_webhook_url: Option<String>,
    author_name: String,
    author_email: String,
    commit_message: String,
    known_hosts: String,
    ca_certificate: String,
    tested_by: String,
    action: String,
    /// The connector being edited; empty when adding one.
    editing: String,
    /// The form as it was shown for an edit (JSON of [`snapshot`]): a Submit changes only
    /// the fields that differ from it, whatever else changed meanwhile.
    original: String,
}

impl ProviderForm {
    /// The textareas' text with the line breaks the values mean (see `unix_lines`).
    fn unix_lines(&mut self) {
        self.known_hosts = super::unix_lines(&self.known_hosts);
        self.ca_certificate = super::unix_lines(&self.ca_certificate);
    }
}

/// The value `password_secret` takes to create a new secret inline.
const NEW_SECRET: &str = "__new__";

/// A form field as a page shows it: its id (also its name), value and error.
struct Field {
    id: &'static str,
    value: String,
    error: Option<String>,
}

/// A secret to pick.
struct Choice {
    name: String,
    selected: bool,
}

#[derive(Template)]
#[template(path = "provider_form.html")]
struct FormPage {
    layout: Layout,
    fields: Vec<Field>,
    errors: Vec<(String, String)>,
    provider: String,
    scope: String,
    protocol: String,
    webhook: bool,
    text_secrets: Vec<Choice>,
    new_secret: bool,
    ssh_secrets: Vec<Choice>,
    tested_by: String,
    test: Option<TestState>,
    /// The public key of an SSH key just made for this connector, to give Bitbucket.
    public_key: Option<String>,
    heading: String,
    action: String,
    editing: String,
    original: String,
}

impl FormPage {
    /// The field of this id.
    fn field(&self, id: &str) -> &Field {
        self.fields
            .iter()
            .find(|f| f.id == id)
            .unwrap_or(&self.fields[0])
    }
}

/// Where a Test stands, for the status region beside the button.
pub struct TestState {
    id: String,
    running: bool,
    ok: bool,
    headline: String,
    /// What happened and what to do, in the use case's words.
    detail: String,
    /// What git said, in full, for a failure.
    git_said: String,
    waited: String,
}

#[derive(Template)]
#[template(path = "test_status.html")]
struct TestFragment {
    test: TestState,
}

#[derive(Template)]
#[template(path = "test_page.html")]
struct TestPage {
    layout: Layout,
    test: TestState,
}

/// The form's text fields, in the document's order, with the labels the template gives them.
const TEXT_FIELDS: &[&str] = &[
    "name",
    "url",
    "username",
    "new_secret_name",
    "new_ssh_key_name",
    "branch",
    "selectors",
    "author_name",
    "author_email",
    "commit_message",
    "known_hosts",
    "ca_certificate",
];

/// `GET /ui/setup/connectors/source-repo-providers/new`.
pub async fn new_form(State(state): State<AppState>, UiCaller(caller): UiCaller) -> Response {
    if let Err(error) = may_create(&caller) {
        return forbidden_page(&caller, error);
    }
    let form = ProviderForm {
        scope: "repo".into(),
        protocol: "https".into(),
        generate_webhook_url: Some("on".into()),
        ..ProviderForm::default()
    };
    render_form(&state, &caller, &form, None, None, StatusCode::OK).await
}

async fn render_form(
    state: &AppState,
    caller: &Caller,
    form: &ProviderForm,
    error: Option<&CoreError>,
    test: Option<TestState>,
    status: StatusCode,
) -> Response {
    let secrets = match state.store.list_secrets().await {
        Ok(secrets) => secrets,
        Err(error) => return AppError::from(error).into_response(),
    };
    let field_of_error = error.and_then(|e| e.field.as_deref()).map(form_field);
    let value = |id: &str| -> String {
        match id {
            "name" => form.name.clone(),
            "url" => form.url.clone(),
            "username" => form.username.clone(),
            "new_secret_name" => form.new_secret_name.clone(),
            "new_ssh_key_name" => form.new_ssh_key_name.clone(),
            "branch" => form.branch.clone(),
            "selectors" => form.selectors.clone(),
            "author_name" => form.author_name.clone(),
            "author_email" => form.author_email.clone(),
            "commit_message" => form.commit_message.clone(),
            "known_hosts" => form.known_hosts.clone(),
            "ca_certificate" => form.ca_certificate.clone(),
            _ => String::new(),
        }
    };
    let mut fields: Vec<Field> = TEXT_FIELDS
        .iter()
        .map(|id| Field {
            id,
            value: value(id),
            error: None,
        })
        .chain(
            [
                "provider",
                "scope",
                "password_secret",
                "new_secret_value",
                "ssh_key_secret",
                "new_ssh_private_key",
                "new_ssh_passphrase",
            ]
            .into_iter()
            .map(|id| Field {
                id,
                value: String::new(),
                error: None,
            }),
        )
        .collect();
    let mut errors = Vec::new();
    if let Some(error) = error {
        let id = field_of_error.unwrap_or("name");
        match fields.iter_mut().find(|f| f.id == id) {
            Some(field) if field_of_error.is_some() => field.error = Some(error.message.clone()),
            _ => {}
        }
        errors.push((id.to_owned(), error.message.clone()));
    }
    let choices = |kind: SecretKind, picked: &str| -> Vec<Choice> {
        secrets
            .iter()
            .filter(|s| s.kind == kind)
            .map(|s| Choice {
                name: s.name.to_string(),
                selected: s.name.as_str() == picked,
            })
            .collect()
    };
    let template = FormPage {
        layout: Layout::new(
            if form.editing.is_empty() {
                "Add Source Repo Provider"
            } else {
                "Edit Source Repo Provider"
            },
            Some(caller),
        )
        .with_errors(error.is_some()),
        fields,
        errors,
        provider: form.provider.clone(),
        scope: if form.scope.is_empty() {
            "repo".into()
        } else {
            form.scope.clone()
        },
        protocol: if form.protocol.is_empty() {
            "https".into()
        } else {
            form.protocol.clone()
        },
        webhook: form.generate_webhook_url.is_some(),
        text_secrets: choices(SecretKind::Text, &form.password_secret),
        new_secret: form.password_secret == NEW_SECRET,
        ssh_secrets: choices(SecretKind::SshKey, &form.ssh_key_secret),
        tested_by: form.tested_by.clone(),
        test,
        public_key: secrets
            .iter()
            .find(|s| {
                matches!(form.action.as_str(), "generate_key" | "add_key")
                    && s.name.as_str() == form.ssh_key_secret
            })
            .and_then(|s| s.ssh.as_ref())
            .map(|ssh| ssh.public_key.clone()),
        heading: if form.editing.is_empty() {
            "Git Connector".to_owned()
        } else {
            format!("Edit {}", form.editing)
        },
        action: if form.editing.is_empty() {
            format!("{LIST}/new")
        } else {
            format!("{LIST}/{}/edit", super::url_encode(&form.editing))
        },
        editing: form.editing.clone(),
        original: form.original.clone(),
    };
    page(status, &template)
}

/// The form field an error's field names: the API's names are the form's, except those of a
/// secret created inline.
fn form_field(field: &str) -> &'static str {
    match field {
        "value" => "new_secret_value",
        "new_ssh_private_key" => "new_ssh_private_key",
        "new_ssh_passphrase" => "new_ssh_passphrase",
        "password_secret" => "password_secret",
        "ssh_key_secret" => "ssh_key_secret",
        other => TEXT_FIELDS
            .iter()
            .chain(["provider", "scope"].iter())
            .find(|id| **id == other)
            .copied()
            .unwrap_or("name"),
    }
}

/// `POST /ui/setup/connectors/source-repo-providers/new`: Test (`action=test`) or Submit.
pub async fn submit_new(
    State(state): State<AppState>,
    UiCaller(caller): UiCaller,
    connection: Option<Extension<ConnectInfo<ClientAddr>>>,
    Form(mut form): Form<ProviderForm>,
) -> Response {
    form.editing.clear();
    form.unix_lines();
    let client = connection.map(|c| c.0.0.0.ip());
    submit(&state, &caller, client, form).await
}

/// `POST /ui/setup/connectors/source-repo-providers/{name}/edit`: Test the changes, or Submit
/// them; only the fields changed in the form change.
pub async fn submit_edit(
    State(state): State<AppState>,
    UiCaller(caller): UiCaller,
    connection: Option<Extension<ConnectInfo<ClientAddr>>>,
    Path(name): Path<String>,
    Form(mut form): Form<ProviderForm>,
) -> Response {
    form.editing = name;
    form.unix_lines();
    let client = connection.map(|c| c.0.0.0.ip());
    submit(&state, &caller, client, form).await
}

/// What the form asks for, as the API routes whose policy it follows name it.
fn route_of(testing: bool, editing: bool) -> (Method, &'static str) {
    match (testing, editing) {
        (true, false) => (Method::POST, "/api/v1/connector-tests"),
        (true, true) => (Method::POST, "/api/v1/connectors/{name}/test"),
        (false, false) => (Method::POST, "/api/v1/connectors"),
        (false, true) => (Method::PATCH, "/api/v1/connectors/{name}"),
    }
}

async fn submit(
    state: &AppState,
    caller: &Caller,
    client: Option<IpAddr>,
    mut form: ProviderForm,
) -> Response {
    if form.action == "generate_key" || form.action == "add_key" {
        return add_key(state, caller, client, form).await;
    }
    let testing = form.action == "test";
    let editing = !form.editing.is_empty();
    let (method, route) = route_of(testing, editing);
    let facts = Facts {
        scopes: vec![Scope::Account],
        target: Some(if editing {
            form.editing.clone()
        } else {
            form.name.clone()
        }),
        change: None,
    };
    let policy = match access::require(caller, &method, route, &facts.scopes) {
        Ok(policy) => policy,
        Err(error) => {
            if let Some(policy) = access::policy(&method, route) {
                let detail = error.message.clone();
                crate::audit::record_request(
                    state,
                    caller,
                    client,
                    policy,
                    &facts,
                    error.status,
                    Some(&detail),
                )
                .await;
            }
            return forbidden_page(caller, error);
        }
    };
    // A secret created inline is made first, as the document's inline dialog does.
    if form.password_secret == NEW_SECRET
        && let Err(response) = create_inline_secret(state, caller, client, &mut form).await
    {
        return response;
    }
    let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;
    let change = if editing {
        match patch(&form) {
            Ok(patch) => Change::Edit(patch),
            Err(error) => {
                return render_form(state, caller, &form, Some(&error), None, unprocessable).await;
            }
        }
    } else {
        match draft(&form) {
            Ok(draft) => Change::New(Box::new(draft)),
            Err(error) => {
                return render_form(state, caller, &form, Some(&error), None, unprocessable).await;
            }
        }
    };
    if testing {
        let outcome = match &change {
            Change::New(draft) => {
                connectors::test_draft(&state.store, &state.tasks, draft, None).await
            }
            Change::Edit(patch) => {
                connectors::test_changes(&state.store, &state.tasks, &form.editing, patch, None)
                    .await
            }
        };
        let status = if outcome.is_ok() {
            StatusCode::ACCEPTED
        } else {
            unprocessable
        };
        crate::audit::record_request(state, caller, client, policy, &facts, status, None).await;
        return match outcome {
            Ok(task) => {
                let view = crate::views::task(&task);
                form.tested_by = view.id.to_string();
                let test = test_state(state, &view);
                render_form(state, caller, &form, None, Some(test), StatusCode::OK).await
            }
            Err(error) => {
                render_form(state, caller, &form, Some(&error), None, unprocessable).await
            }
        };
    }
    let tested_by = (!form.tested_by.is_empty()).then(|| TaskId::new(form.tested_by.clone()));
    let person = caller.person();
    let saved = match &change {
        Change::New(draft) => {
            connectors::create(
                &state.store,
                &state.tasks,
                draft,
                tested_by.as_ref(),
                Some(&person),
            )
            .await
        }
        Change::Edit(patch) if patch.is_empty() => {
            return Redirect::to(&format!("{LIST}?notice=Nothing+changed")).into_response();
        }
        Change::Edit(patch) => {
            connectors::update(
                &state.store,
                &state.tasks,
                &form.editing,
                patch,
                tested_by.as_ref(),
                Some(&person),
            )
            .await
        }
    };
    let status = match &saved {
        Ok(_) if editing => StatusCode::OK,
        Ok(_) => StatusCode::CREATED,
        Err(error) => AppError::from(error.clone()).status,
    };
    crate::audit::record_request(state, caller, client, policy, &facts, status, None).await;
    match saved {
        Ok(saved) => match saved.fresh_webhook {
            Some(credentials) => {
                let webhook = crate::handlers::connectors::webhook_view(state, &credentials);
                page(
                    StatusCode::OK,
                    &SavedPage {
                        layout: Layout::new("Source Repo Provider saved", Some(caller)),
                        name: saved.connector.spec.name.to_string(),
                        webhook,
                    },
                )
            }
            None => Redirect::to(&format!(
                "{LIST}?notice={}",
                super::url_encode(&format!("Saved {}", saved.connector.spec.name))
            ))
            .into_response(),
        },
        Err(error) => render_form(state, caller, &form, Some(&error), None, unprocessable).await,
    }
}

/// A new connector, or the changes to one.
enum Change {
    New(Box<ConnectorDraft>),
    Edit(ConnectorPatch),
}

/// The form's values as they stand, each as the form holds it, with the credentials of the
/// other protocol left out: what an edit compares with what was shown.
fn snapshot(form: &ProviderForm) -> BTreeMap<&'static str, String> {
    let ssh = form.protocol == "ssh";
    let keep = |value: &str, when: bool| {
        if when {
            value.trim().to_owned()
        } else {
            String::new()
        }
    };
    BTreeMap::from([
        ("name", form.name.trim().to_owned()),
        ("provider", form.provider.clone()),
        ("scope", form.scope.clone()),
        ("url", form.url.trim().to_owned()),
        ("username", keep(&form.username, !ssh)),
        ("password_secret", keep(&form.password_secret, !ssh)),
        ("ssh_key_secret", keep(&form.ssh_key_secret, ssh)),
        ("branch", form.branch.trim().to_owned()),
        ("selectors", form.selectors.trim().to_owned()),
        (
            "generate_webhook_url",
            form.generate_webhook_url.is_some().to_string(),
        ),
        ("author_name", form.author_name.trim().to_owned()),
        ("author_email", form.author_email.trim().to_owned()),
        ("commit_message", form.commit_message.trim().to_owned()),
        ("known_hosts", form.known_hosts.trim().to_owned()),
        ("ca_certificate", form.ca_certificate.trim().to_owned()),
    ])
}

/// The changes an edit makes: each field whose value differs from the one shown, an empty
/// one clearing it; nothing the form did not change.
fn patch(form: &ProviderForm) -> Result<ConnectorPatch, CoreError> {
    let shown: BTreeMap<String, String> = serde_json::from_str(&form.original).map_err(|_| {
        CoreError::invalid("name", "the form is incomplete; open the edit page again")
    })?;
    // The URL and protocol must agree, as for a new connector.
    draft(form)?;
    let mut changes = ConnectorPatch::new();
    for (field, value) in snapshot(form) {
        if shown.get(field).is_some_and(|was| *was == value) {
            continue;
        }
        let json = match field {
            "generate_webhook_url" => Value::Bool(value == "true"),
            "selectors" => {
                let list: Vec<Value> = value
                    .split([',', ' '])
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| Value::String(s.to_owned()))
                    .collect();
                if list.is_empty() {
                    Value::Null
                } else {
                    Value::Array(list)
                }
            }
            _ if value.is_empty() => Value::Null,
            _ => Value::String(value),
        };
        changes.insert(field.to_owned(), json);
    }
    Ok(changes)
}

/// `GET /ui/setup/connectors/source-repo-providers/{name}/edit`: the form, filled in.
pub async fn edit_form(
    State(state): State<AppState>,
    UiCaller(caller): UiCaller,
    Path(name): Path<String>,
) -> Response {
    if let Err(error) = access::require(
        &caller,
        &Method::PATCH,
        "/api/v1/connectors/{name}",
        &[Scope::Account],
    ) {
        return forbidden_page(&caller, error);
    }
    let record = match reposync_model::EntityName::parse(&name) {
        Ok(parsed) => match state.store.get_connector(&parsed).await {
            Ok(record) => record,
            Err(error) => return AppError::from(error).into_response(),
        },
        Err(error) => return AppError::from(error).into_response(),
    };
    let view = crate::views::connector(&record, None);
    let mut form = ProviderForm {
        name: view.name.clone(),
        provider: view.provider.clone(),
        scope: view.scope.clone(),
        protocol: view.protocol.clone(),
        url: view.url.clone(),
        username: view.username.clone().unwrap_or_default(),
        password_secret: view.password_secret.clone().unwrap_or_default(),
        ssh_key_secret: view.ssh_key_secret.clone().unwrap_or_default(),
        branch: view.branch.clone().unwrap_or_default(),
        selectors: view.selectors.join(", "),
        generate_webhook_url: view.generate_webhook_url.then(|| "on".to_owned()),
        author_name: view.author_name.clone(),
        author_email: view.author_email.clone(),
        commit_message: view.commit_message.clone().unwrap_or_default(),
        known_hosts: view.known_hosts.clone().unwrap_or_default(),
        ca_certificate: view.ca_certificate.clone().unwrap_or_default(),
        editing: view.name.clone(),
        ..ProviderForm::default()
    };
    form.original = serde_json::to_string(&snapshot(&form)).unwrap_or_default();
    render_form(&state, &caller, &form, None, None, StatusCode::OK).await
}

#[derive(Template)]
#[template(path = "provider_delete.html")]
struct DeletePage {
    layout: Layout,
    name: String,
    blockers: Vec<String>,
}

/// `GET /ui/setup/connectors/source-repo-providers/{name}/delete`: what deleting would do,
/// and what stops it.
pub async fn delete_form(
    State(state): State<AppState>,
    UiCaller(caller): UiCaller,
    Path(name): Path<String>,
) -> Response {
    if let Err(error) = access::require(
        &caller,
        &Method::DELETE,
        "/api/v1/connectors/{name}",
        &[Scope::Account],
    ) {
        return forbidden_page(&caller, error);
    }
    let Ok(parsed) = reposync_model::EntityName::parse(&name) else {
        return AppError::not_found("no such connector").into_response();
    };
    let path = reposync_model::connector_yaml::path(&parsed);
    let mut blockers: Vec<String> = match state.store.entity_referrers(&path).await {
        Ok(referrers) => referrers
            .into_iter()
            .map(|r| format!("{r} refers to it"))
            .collect(),
        Err(error) => return AppError::from(error).into_response(),
    };
    match links::status(&state.store).await {
        Ok(live) => blockers.extend(live.into_iter().filter(|link| link.connector == name).map(
            |link| {
                format!(
                    "{} is synced through it; disable sync there first",
                    link.scope
                )
            },
        )),
        Err(error) => return AppError::from(error).into_response(),
    }
    page(
        StatusCode::OK,
        &DeletePage {
            layout: Layout::new("Delete Source Repo Provider", Some(&caller)),
            name,
            blockers,
        },
    )
}

/// `POST /ui/setup/connectors/source-repo-providers/{name}/delete`.
pub async fn delete(
    State(state): State<AppState>,
    UiCaller(caller): UiCaller,
    connection: Option<Extension<ConnectInfo<ClientAddr>>>,
    Path(name): Path<String>,
) -> Response {
    let client = connection.map(|c| c.0.0.0.ip());
    let person = caller.person();
    let work = connectors::delete(&state.store, &name, Some(&person));
    match super::act(
        &state,
        &caller,
        client,
        (Method::DELETE, "/api/v1/connectors/{name}"),
        &name,
        work,
    )
    .await
    {
        Err(response) => response,
        Ok(Ok(_)) => Redirect::to(&format!(
            "{LIST}?notice={}",
            super::url_encode(&format!("Deleted {name}"))
        ))
        .into_response(),
        Ok(Err(error)) => forbidden_page(&caller, AppError::from(error)),
    }
}

#[derive(Template)]
#[template(path = "provider_saved.html")]
struct SavedPage {
    layout: Layout,
    name: String,
    webhook: WebhookView,
}

/// Creates the Encrypted Text secret the form asks for inline, and picks it.
async fn create_inline_secret(
    state: &AppState,
    caller: &Caller,
    client: Option<IpAddr>,
    form: &mut ProviderForm,
) -> Result<(), Response> {
    let value = form
        .new_secret_value
        .take()
        .unwrap_or_else(|| SecretValue::new(""));
    let name = form.new_secret_name.clone();
    let work = reposync_core::secrets::create_text(&state.store, &name, &value);
    let created = super::act(
        state,
        caller,
        client,
        (Method::POST, "/api/v1/secrets"),
        &name,
        work,
    )
    .await?;
    match created {
        Ok(record) => {
            form.password_secret = record.name.to_string();
            form.new_secret_name.clear();
            Ok(())
        }
        Err(mut error) => {
            if error.field.as_deref() == Some("name") {
                error.field = Some("new_secret_name".into());
            }
            Err(render_form(
                state,
                caller,
                form,
                Some(&error),
                None,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await)
        }
    }
}

/// Adds an SSH key for the connector being edited (one made here, `action=generate_key`, or one
/// pasted or uploaded, `action=add_key`, with its passphrase), picks it, and shows the form
/// again with its public key to give Bitbucket.
async fn add_key(
    state: &AppState,
    caller: &Caller,
    client: Option<IpAddr>,
    mut form: ProviderForm,
) -> Response {
    let generating = form.action == "generate_key";
    let name = form.new_ssh_key_name.clone();
    let made = if generating {
        let work = reposync_core::secrets::generate_ssh(&state.store, &name);
        super::act(
            state,
            caller,
            client,
            (Method::POST, "/api/v1/secrets/ssh/generate"),
            &name,
            work,
        )
        .await
    } else {
        let key = SecretValue::new(super::unix_lines(
            form.new_ssh_private_key.as_ref().map_or("", |k| k.expose()),
        ));
        let passphrase = form
            .new_ssh_passphrase
            .clone()
            .filter(|p| !p.expose().is_empty());
        let work = reposync_core::secrets::create_ssh(
            &state.store,
            &name,
            &key,
            passphrase.as_ref(),
            None,
        );
        super::act(
            state,
            caller,
            client,
            (Method::POST, "/api/v1/secrets/ssh"),
            &name,
            work,
        )
        .await
    };
    let made = match made {
        Ok(made) => made,
        Err(refused) => return refused,
    };
    form.protocol = "ssh".into();
    match made {
        Ok(record) => {
            form.ssh_key_secret = record.name.to_string();
            form.new_ssh_key_name.clear();
            render_form(state, caller, &form, None, None, StatusCode::OK).await
        }
        Err(mut error) => {
            error.field = Some(
                match error.field.as_deref() {
                    Some("private_key") => "new_ssh_private_key",
                    Some("passphrase") => "new_ssh_passphrase",
                    _ => "new_ssh_key_name",
                }
                .into(),
            );
            render_form(
                state,
                caller,
                &form,
                Some(&error),
                None,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
    }
}

/// The connector the form describes, as the API takes it.
fn draft(form: &ProviderForm) -> Result<ConnectorDraft, CoreError> {
    let text = |value: &str| (!value.trim().is_empty()).then(|| value.trim().to_owned());
    let ssh = form.protocol == "ssh";
    let url = form.url.trim();
    let https_url = url.starts_with("https://") || url.starts_with("http://");
    if !url.is_empty() && ssh == https_url {
        let message = if ssh {
            "is an HTTPS URL; choose HTTPS, or give the SSH URL (ssh://git@host/… or git@host:…)"
        } else {
            "is an SSH URL; choose SSH, or give the HTTPS URL (https://…)"
        };
        return Err(CoreError::invalid("url", message));
    }
    let selectors: Vec<String> = form
        .selectors
        .split([',', ' '])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    Ok(ConnectorDraft {
        name: text(&form.name),
        provider: text(&form.provider),
        scope: text(&form.scope),
        url: text(url),
        username: if ssh { None } else { text(&form.username) },
        password_secret: if ssh {
            None
        } else {
            text(&form.password_secret)
        },
        ssh_key_secret: if ssh {
            text(&form.ssh_key_secret)
        } else {
            None
        },
        branch: text(&form.branch),
        selectors: (!selectors.is_empty()).then_some(selectors),
        generate_webhook_url: Some(form.generate_webhook_url.is_some()),
        author_name: text(&form.author_name),
        author_email: text(&form.author_email),
        commit_message: text(&form.commit_message),
        known_hosts: text(&form.known_hosts),
        ca_certificate: text(&form.ca_certificate),
        poll_interval_seconds: None,
        author_from_user: None,
        // REST settings are set through the CLI and the API; the form leaves them as they are.
        api_url: None,
        api_username: None,
        api_token_secret: None,
        fetch: None,
    })
}

/// `GET /ui/tasks/{id}/test`: where a Test stands; a fragment for htmx, a page otherwise.
pub async fn test_status(
    State(state): State<AppState>,
    UiCaller(caller): UiCaller,
    Path(id): Path<TaskId>,
    headers: HeaderMap,
) -> Response {
    let task = match state.tasks.wait_final(&id, std::time::Duration::ZERO).await {
        Ok(task) => task,
        Err(error) => return AppError::from(error).into_response(),
    };
    let test = test_state(&state, &crate::views::task(&task));
    if headers.contains_key("hx-request") {
        page(StatusCode::OK, &TestFragment { test })
    } else {
        page(
            StatusCode::OK,
            &TestPage {
                layout: Layout::new("Test", Some(&caller)),
                test,
            },
        )
    }
}

/// A Test task in words: running (and for how long), or its outcome with what to do.
fn test_state(state: &AppState, task: &TaskView) -> TestState {
    let running = matches!(task.status.as_str(), "queued" | "running");
    let result = task.result.clone().unwrap_or(Value::Null);
    let text = |key: &str| {
        result
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let ok = result.get("ok").and_then(Value::as_bool).unwrap_or(false);
    let waited = reposync_store::Store::clock(&state.store).now_millis()
        - reposync_api::parse_timestamp(&task.created_at).unwrap_or_default();
    let delegate = task.delegate.clone().unwrap_or_else(|| "a delegate".into());
    let (headline, detail, git_said) = if running {
        let on = if task.status == "queued" {
            "the next free delegate"
        } else {
            delegate.as_str()
        };
        (format!("Testing on {on}…"), String::new(), String::new())
    } else if ok {
        let commit = match text("commit") {
            commit if commit.is_empty() => "(empty repository)".to_owned(),
            commit => commit,
        };
        (
            format!("OK: {} {} at {commit}", text("url"), text("branch")),
            format!("Tested on {delegate}."),
            String::new(),
        )
    } else {
        let code = match text("code") {
            code if code.is_empty() => "failed".to_owned(),
            code => code,
        };
        (
            format!("Test failed ({code})"),
            text("message"),
            text("detail"),
        )
    };
    TestState {
        id: task.id.to_string(),
        running,
        ok,
        headline,
        detail,
        git_said,
        waited: format!("{} s", waited.max(0) / 1000),
    }
}
