//! Users, their tokens, and logging in (see `reposync_core::users`). Who may call each route
//! is the access layer's to decide; these handlers only find out who is calling.

use axum::Json;
use axum::extract::{Extension, FromRequest, Path, Request, State};
use axum::http::StatusCode;
use reposync_api::{
    ApiErrorBody, ListResponse, LoginRequest, MeView, PasswordByLinkRequest, PasswordLinkView,
    TokenRequest, TokenView, UserRequest, UserUpdateRequest, UserView,
};
use reposync_core::users::{self, Caller};
use reposync_model::UserName;

use crate::error::AppError;
use crate::handlers::{ApiJson, Deleted};
use crate::state::AppState;

/// Who the caller is, and what their token may do.
#[utoipa::path(
    get,
    path = "/me",
    tag = "users",
    responses((status = 200, description = "The caller", body = MeView)),
)]
pub async fn me(Extension(caller): Extension<Caller>) -> Json<MeView> {
    Json(caller.view())
}

/// Exchanges a user name and password for a new personal token. Failed attempts are counted
/// per user and per client address; after a few, each further attempt must wait longer, and
/// after many the user is locked out for the rest of the window (`429`, with `Retry-After`).
#[utoipa::path(
    post,
    path = "/login",
    tag = "users",
    request_body = LoginRequest,
    security(()),
    responses(
        (status = 201, description = "The new token, with its value shown this once", body = TokenView),
        (status = 401, description = "Wrong user name or password, or a disabled user (`unauthorized`, `user_disabled`)", body = ApiErrorBody),
        (status = 429, description = "Too many failed logins; try again after `Retry-After` seconds (`too_many_attempts`)", body = ApiErrorBody),
    ),
)]
pub async fn login(
    State(state): State<AppState>,
    request: Request,
) -> Result<(StatusCode, Json<TokenView>), AppError> {
    let client = crate::audit::client_address(&request);
    let ApiJson(login) = ApiJson::<LoginRequest>::from_request(request, &state).await?;
    let address = client.map(|ip| ip.to_string());
    match users::login(
        &state.store,
        &login.user,
        &login.password,
        address.as_deref(),
    )
    .await
    {
        Ok(user) => {
            let token = users::login_token(
                &state.store,
                &user.name,
                login.token_name.as_deref(),
                login.expires_in_seconds,
            )
            .await?;
            crate::audit::record_login(&state, &login.user, client, Ok(&token.name)).await;
            Ok((StatusCode::CREATED, Json(token)))
        }
        Err(failed) => {
            crate::audit::record_login(&state, &login.user, client, Err(&failed)).await;
            Err(failed.error.into())
        }
    }
}

/// A one-time link for a user to set their own password, valid for a day; an earlier link of
/// theirs stops working.
#[utoipa::path(
    post,
    path = "/users/{name}/password-link",
    tag = "users",
    params(("name" = String, Path, description = "The user")),
    responses(
        (status = 201, description = "The link, to hand to the user only", body = PasswordLinkView),
        (status = 404, description = "No such user (`not_found`)", body = ApiErrorBody),
    ),
)]
pub async fn password_link(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<(StatusCode, Json<PasswordLinkView>), AppError> {
    let base = state.config.public_base_url();
    let link = users::password_link(&state.store, &name, &base).await?;
    Ok((StatusCode::CREATED, Json(link)))
}

/// Sets a password through a one-time link: the token is the link's fragment. The link is
/// used up.
#[utoipa::path(
    post,
    path = "/password",
    tag = "users",
    request_body = PasswordByLinkRequest,
    security(()),
    responses(
        (status = 200, description = "The password is set; log in with it", body = Updated),
        (status = 401, description = "The link is unknown, used or expired (`unauthorized`)", body = ApiErrorBody),
        (status = 422, description = "The password is not good enough (`invalid`)", body = ApiErrorBody),
    ),
)]
pub async fn set_password(
    State(state): State<AppState>,
    request: Request,
) -> Result<Json<Updated>, AppError> {
    let client = crate::audit::client_address(&request);
    let ApiJson(body) = ApiJson::<PasswordByLinkRequest>::from_request(request, &state).await?;
    let outcome =
        users::set_password_by_link(&state.store, body.token.expose(), &body.password).await;
    crate::audit::record_password_by_link(
        &state,
        client,
        outcome
            .as_ref()
            .map(|user| user.as_str())
            .map_err(|e| e.clone()),
    )
    .await;
    let user = outcome?;
    Ok(Json(Updated {
        updated: user.to_string(),
    }))
}

/// The answer to a change that has no view of its own: whose it was.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[schema(examples(json!({"updated": "alice"})))]
pub struct Updated {
    updated: String,
}

/// The caller's own tokens, never their values.
#[utoipa::path(
    get,
    path = "/tokens",
    tag = "users",
    responses((status = 200, description = "The caller's tokens", body = ListResponse<TokenView>)),
)]
pub async fn list_own_tokens(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<ListResponse<TokenView>>, AppError> {
    let items = users::list_tokens(&state.store, &caller.user).await?;
    Ok(Json(ListResponse { items }))
}

/// A new token for the caller, carrying at most their rights; its value is shown this once.
#[utoipa::path(
    post,
    path = "/tokens",
    tag = "users",
    request_body = TokenRequest,
    responses(
        (status = 201, description = "The token, with its value shown this once", body = TokenView),
        (status = 403, description = "The token would carry more than its owner's rights (`forbidden`)", body = ApiErrorBody),
        (status = 409, description = "The caller has a token of that name (`already_exists`)", body = ApiErrorBody),
    ),
)]
pub async fn create_own_token(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(request): ApiJson<TokenRequest>,
) -> Result<(StatusCode, Json<TokenView>), AppError> {
    let token = create_token_capped(&state, &caller.user, &caller, request).await?;
    Ok((StatusCode::CREATED, Json(token)))
}

/// A token carries at most its owner's rights, and a token made with a token carries at most
/// what that one carries: a capped admin token does not make an uncapped one.
async fn create_token_capped(
    state: &AppState,
    owner: &UserName,
    caller: &Caller,
    request: TokenRequest,
) -> Result<TokenView, AppError> {
    let maker_limit = (caller.user == *owner).then_some(caller.rights.role);
    Ok(users::create_token(&state.store, owner, request, maker_limit).await?)
}

/// Revokes one of the caller's tokens: its next request is refused.
#[utoipa::path(
    delete,
    path = "/tokens/{name}",
    tag = "users",
    params(("name" = String, Path, description = "The token's name")),
    responses(
        (status = 200, description = "Revoked", body = Deleted),
        (status = 404, description = "The caller has no token of that name (`not_found`)", body = ApiErrorBody),
    ),
)]
pub async fn revoke_own_token(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<Deleted>, AppError> {
    users::revoke_token(&state.store, &caller.user, &name).await?;
    Ok(Json(Deleted::new(&name)))
}

/// Every user.
#[utoipa::path(
    get,
    path = "/users",
    tag = "users",
    responses((status = 200, description = "The users", body = ListResponse<UserView>)),
)]
pub async fn list(State(state): State<AppState>) -> Result<Json<ListResponse<UserView>>, AppError> {
    let items = users::list(&state.store).await?;
    Ok(Json(ListResponse { items }))
}

/// Creates a user, with a role everywhere or in some applications only.
#[utoipa::path(
    post,
    path = "/users",
    tag = "users",
    request_body = UserRequest,
    responses(
        (status = 201, description = "The user", body = UserView),
        (status = 409, description = "A user of that name exists (`already_exists`)", body = ApiErrorBody),
        (status = 422, description = "A field is not valid (`invalid`)", body = ApiErrorBody),
    ),
)]
pub async fn create(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<UserRequest>,
) -> Result<(StatusCode, Json<UserView>), AppError> {
    let user = users::add(&state.store, request).await?;
    Ok((StatusCode::CREATED, Json(user)))
}

/// One user, with their failed logins of the current window.
#[utoipa::path(
    get,
    path = "/users/{name}",
    tag = "users",
    params(("name" = String, Path, description = "The user")),
    responses(
        (status = 200, description = "The user", body = UserView),
        (status = 404, description = "No such user (`not_found`)", body = ApiErrorBody),
    ),
)]
pub async fn show(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<UserView>, AppError> {
    Ok(Json(users::show(&state.store, &name).await?))
}

/// Changes a user's role, applications, e-mail address, password, or whether they are
/// enabled; never leaves reposync without an enabled admin.
#[utoipa::path(
    patch,
    path = "/users/{name}",
    tag = "users",
    params(("name" = String, Path, description = "The user")),
    request_body = UserUpdateRequest,
    responses(
        (status = 200, description = "The user as changed", body = UserView),
        (status = 404, description = "No such user (`not_found`)", body = ApiErrorBody),
        (status = 422, description = "A field is not valid, or the change would leave no enabled admin (`invalid`)", body = ApiErrorBody),
    ),
)]
pub async fn update(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiJson(request): ApiJson<UserUpdateRequest>,
) -> Result<Json<UserView>, AppError> {
    Ok(Json(users::update(&state.store, &name, request).await?))
}

/// Deletes a user and their tokens, unless they are the last enabled admin.
#[utoipa::path(
    delete,
    path = "/users/{name}",
    tag = "users",
    params(("name" = String, Path, description = "The user")),
    responses(
        (status = 200, description = "Deleted", body = Deleted),
        (status = 404, description = "No such user (`not_found`)", body = ApiErrorBody),
        (status = 422, description = "The user is the last enabled admin (`invalid`)", body = ApiErrorBody),
    ),
)]
pub async fn delete(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Deleted>, AppError> {
    users::delete(&state.store, &name).await?;
    Ok(Json(Deleted::new(&name)))
}

/// A user's tokens, never their values.
#[utoipa::path(
    get,
    path = "/users/{name}/tokens",
    tag = "users",
    params(("name" = String, Path, description = "The user")),
    responses(
        (status = 200, description = "The user's tokens", body = ListResponse<TokenView>),
        (status = 404, description = "No such user (`not_found`)", body = ApiErrorBody),
    ),
)]
pub async fn list_tokens(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<ListResponse<TokenView>>, AppError> {
    let owner = UserName::parse(&name)?;
    let items = users::list_tokens(&state.store, &owner).await?;
    Ok(Json(ListResponse { items }))
}

/// A token for another user, such as a robot account without a password; its value is shown
/// this once, to the admin who hands it on.
#[utoipa::path(
    post,
    path = "/users/{name}/tokens",
    tag = "users",
    params(("name" = String, Path, description = "The user")),
    request_body = TokenRequest,
    responses(
        (status = 201, description = "The token, with its value shown this once", body = TokenView),
        (status = 403, description = "The token would carry more than its owner's rights (`forbidden`)", body = ApiErrorBody),
        (status = 404, description = "No such user (`not_found`)", body = ApiErrorBody),
        (status = 409, description = "The user has a token of that name (`already_exists`)", body = ApiErrorBody),
    ),
)]
pub async fn create_token(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    ApiJson(request): ApiJson<TokenRequest>,
) -> Result<(StatusCode, Json<TokenView>), AppError> {
    let owner = UserName::parse(&name)?;
    let token = create_token_capped(&state, &owner, &caller, request).await?;
    Ok((StatusCode::CREATED, Json(token)))
}

/// Revokes a user's token: its next request is refused.
#[utoipa::path(
    delete,
    path = "/users/{name}/tokens/{token}",
    tag = "users",
    params(
        ("name" = String, Path, description = "The user"),
        ("token" = String, Path, description = "The token's name"),
    ),
    responses(
        (status = 200, description = "Revoked", body = Deleted),
        (status = 404, description = "No such user or token (`not_found`)", body = ApiErrorBody),
    ),
)]
pub async fn revoke_token(
    State(state): State<AppState>,
    Path((name, token)): Path<(String, String)>,
) -> Result<Json<Deleted>, AppError> {
    let owner = UserName::parse(&name)?;
    users::revoke_token(&state.store, &owner, &token).await?;
    Ok(Json(Deleted::new(&token)))
}
