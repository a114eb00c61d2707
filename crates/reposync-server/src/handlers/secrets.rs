use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use reposync_api::{
    ApiErrorBody, CreateSshSecret, CreateTextSecret, GenerateSshSecret, ListResponse, SecretValue,
    SecretView, UpdateSecret,
};
use reposync_model::{SSH_USER, SecretName};
use reposync_secrets::{SshKeyMaterial, generate_ed25519, parse_private_key};
use reposync_store::{SecretKind, SshKeyInfo};

use reposync_core::secrets;

use crate::error::AppError;
use crate::handlers::{ApiJson, Deleted};
use crate::state::AppState;
use crate::views;

/// Every secret, by name; never a value.
#[utoipa::path(
    get,
    path = "/secrets",
    tag = "secrets",
    responses(
        (status = 200, description = "The secrets", body = ListResponse<SecretView>),
    ),
)]
pub async fn list(
    State(state): State<AppState>,
) -> Result<Json<ListResponse<SecretView>>, AppError> {
    let items = state
        .store
        .list_secrets()
        .await?
        .iter()
        .map(views::secret)
        .collect();
    Ok(Json(ListResponse { items }))
}

/// One secret; never its value.
#[utoipa::path(
    get,
    path = "/secrets/{name}",
    tag = "secrets",
    params(("name" = String, Path, description = "The secret")),
    responses(
        (status = 200, description = "The secret", body = SecretView),
        (status = 404, description = "No such secret (`not_found`)", body = ApiErrorBody),
        (status = 422, description = "Not a valid secret name (`invalid`)", body = ApiErrorBody),
    ),
)]
pub async fn show(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<SecretView>, AppError> {
    let name = SecretName::parse(&name)?;
    Ok(Json(views::secret(&state.store.get_secret(&name).await?)))
}

/// Creates an Encrypted Text secret: a password or token.
#[utoipa::path(
    post,
    path = "/secrets",
    tag = "secrets",
    request_body = CreateTextSecret,
    responses(
        (status = 201, description = "Created", body = SecretView),
        (status = 409, description = "A secret of that name exists (`already_exists`)", body = ApiErrorBody),
    ),
)]
pub async fn create_text(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CreateTextSecret>,
) -> Result<(StatusCode, Json<SecretView>), AppError> {
    let record = secrets::create_text(&state.store, &body.name, &body.value).await?;
    Ok((StatusCode::CREATED, Json(views::created_secret(&record))))
}

/// Creates an SSH Key Credential from a private key (OpenSSH, PKCS#1 or PKCS#8).
#[utoipa::path(
    post,
    path = "/secrets/ssh",
    tag = "secrets",
    request_body = CreateSshSecret,
    responses(
        (status = 201, description = "Created", body = SecretView),
        (status = 409, description = "A secret of that name exists (`already_exists`)", body = ApiErrorBody),
        (status = 422, description = "Not a usable private key, or a wrong passphrase; `code` says which", body = ApiErrorBody),
    ),
)]
pub async fn create_ssh(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CreateSshSecret>,
) -> Result<(StatusCode, Json<SecretView>), AppError> {
    let name = SecretName::parse(&body.name)?;
    check_ssh_user(body.username.as_deref())?;
    let material = parse_key(&body.private_key, body.passphrase.as_ref())?;
    store_ssh_key(&state, &name, &material, "created SSH key secret").await
}

/// Creates an SSH Key Credential holding a new Ed25519 key made by the server.
#[utoipa::path(
    post,
    path = "/secrets/ssh/generate",
    tag = "secrets",
    request_body = GenerateSshSecret,
    responses(
        (status = 201, description = "Created; `ssh.public_key` is the key to give Bitbucket", body = SecretView),
        (status = 409, description = "A secret of that name exists (`already_exists`)", body = ApiErrorBody),
    ),
)]
pub async fn generate_ssh(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<GenerateSshSecret>,
) -> Result<(StatusCode, Json<SecretView>), AppError> {
    let name = SecretName::parse(&body.name)?;
    let material = generate_ed25519(&format!("reposync:{name}"))?;
    store_ssh_key(&state, &name, &material, "generated SSH key secret").await
}

/// Stores a new SSH Key Credential: the normalised key, sealed, and what may be shown of it.
async fn store_ssh_key(
    state: &AppState,
    name: &SecretName,
    material: &SshKeyMaterial,
    what: &str,
) -> Result<(StatusCode, Json<SecretView>), AppError> {
    let record = state
        .store
        .create_secret(
            name,
            SecretKind::SshKey,
            material.private_key_openssh.as_bytes(),
            Some(&key_info(material)),
        )
        .await?;
    tracing::info!(secret = %name, fingerprint = %material.fingerprint, "{what}");
    Ok((StatusCode::CREATED, Json(views::created_secret(&record))))
}

/// Gives a secret a new value, of the kind it has.
#[utoipa::path(
    put,
    path = "/secrets/{name}",
    tag = "secrets",
    params(("name" = String, Path, description = "The secret")),
    request_body = UpdateSecret,
    responses(
        (status = 200, description = "Updated", body = SecretView),
        (status = 404, description = "No such secret (`not_found`)", body = ApiErrorBody),
    ),
)]
pub async fn update(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<UpdateSecret>,
) -> Result<Json<SecretView>, AppError> {
    let name = SecretName::parse(&name)?;
    let record = match (&body.value, &body.private_key) {
        (Some(value), None) => {
            if body.passphrase.is_some() {
                return Err(AppError::invalid(
                    "passphrase",
                    "applies only to SSH key secrets",
                ));
            }
            state
                .store
                .update_secret(
                    &name,
                    SecretKind::Text,
                    secrets::text_value(value, "value")?,
                    None,
                )
                .await?
        }
        (None, Some(key)) => {
            let material = parse_key(key, body.passphrase.as_ref())?;
            state
                .store
                .update_secret(
                    &name,
                    SecretKind::SshKey,
                    material.private_key_openssh.as_bytes(),
                    Some(&key_info(&material)),
                )
                .await?
        }
        (Some(_), Some(_)) => {
            return Err(AppError::invalid(
                "value",
                "give either value or private_key, not both",
            ));
        }
        (None, None) => {
            return Err(AppError::invalid(
                "value",
                "give the new value (or private_key for an SSH key secret)",
            ));
        }
    };
    tracing::info!(secret = %name, "updated secret");
    Ok(Json(views::secret(&record)))
}

/// Deletes a secret no connector uses.
#[utoipa::path(
    delete,
    path = "/secrets/{name}",
    tag = "secrets",
    params(("name" = String, Path, description = "The secret")),
    responses(
        (status = 200, description = "Deleted", body = Deleted),
        (status = 404, description = "No such secret (`not_found`)", body = ApiErrorBody),
        (status = 409, description = "A connector uses it (`in_use`)", body = ApiErrorBody),
        (status = 422, description = "Not a valid secret name (`invalid`)", body = ApiErrorBody),
    ),
)]
pub async fn delete(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Deleted>, AppError> {
    let name = SecretName::parse(&name)?;
    state.store.delete_secret(&name).await?;
    tracing::info!(secret = %name, "deleted secret");
    Ok(Json(Deleted::new(&name)))
}

fn check_ssh_user(username: Option<&str>) -> Result<(), AppError> {
    match username {
        None | Some(SSH_USER) => Ok(()),
        Some(other) => Err(AppError::invalid(
            "username",
            format!(
                "the SSH user must be exactly `{SSH_USER}` (lowercase), as Bitbucket requires; got {other:?}"
            ),
        )),
    }
}

fn parse_key(
    key: &SecretValue,
    passphrase: Option<&SecretValue>,
) -> Result<SshKeyMaterial, AppError> {
    if key.expose().len() > secrets::MAX_VALUE_BYTES {
        return Err(AppError::invalid(
            "private_key",
            format!("is longer than {} bytes", secrets::MAX_VALUE_BYTES),
        ));
    }
    Ok(parse_private_key(
        key.expose(),
        passphrase.map(|p| p.expose().as_bytes()),
    )?)
}

fn key_info(material: &SshKeyMaterial) -> SshKeyInfo {
    SshKeyInfo {
        algorithm: material.algorithm.to_string(),
        fingerprint: material.fingerprint.clone(),
        public_key: material.public_key_openssh.clone(),
    }
}
