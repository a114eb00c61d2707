use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use reposync_api::{
    ApiErrorBody, CreateSshSecret, CreateTextSecret, GenerateSshSecret, ListResponse, SecretView,
    UpdateSecret,
};
use reposync_model::SecretName;

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
    let record = secrets::create_ssh(
        &state.store,
        &body.name,
        &body.private_key,
        body.passphrase.as_ref(),
        body.username.as_deref(),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(views::created_secret(&record))))
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
    let record = secrets::generate_ssh(&state.store, &body.name).await?;
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
    let record = secrets::update(
        &state.store,
        &name,
        body.value.as_ref(),
        body.private_key.as_ref(),
        body.passphrase.as_ref(),
    )
    .await?;
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
    let name = secrets::delete(&state.store, &name).await?;
    Ok(Json(Deleted::new(&name)))
}
