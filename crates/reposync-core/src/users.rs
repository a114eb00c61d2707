//! Users and their credentials: accounts, Argon2id passwords, personal API tokens, the
//! throttle on failed logins, who a bearer token belongs to, and the recovery that issues a
//! new admin token from the data directory.

use std::time::Duration;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Argon2, password_hash::rand_core::OsRng};
use reposync_api::{
    LoginFailuresView, MeView, PasswordLinkView, SecretValue, TokenRequest, TokenView, UserRequest,
    UserUpdateRequest, UserView, timestamp,
};
use reposync_model::{EmailAddress, EntityName, Person, Rights, Role, UserName};
use reposync_store::{
    NewUser, NewUserToken, Store, StoreError, UserRecord, UserTokenRecord, UserUpdate,
};

use crate::error::{CoreError, ErrorKind};
use crate::tokens::{hash_token, new_token};

/// What every personal API token starts with, so that secret scanners recognise a leaked one
/// (delegate tokens start with `rsd_`; the shared admin token of old installations with `rs_`).
pub const TOKEN_PREFIX: &str = "rsp_";

/// The name of the first admin user, made at the first start.
pub const FIRST_ADMIN: &str = "admin";

/// How long a token lives when its creator does not say.
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(90 * 24 * 3600);

/// How long a token made by logging in with a password lives when the request does not say.
pub const DEFAULT_LOGIN_TOKEN_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);

/// Passwords shorter than this are refused: length is what makes a password hard to guess.
const MIN_PASSWORD_CHARS: usize = 12;

/// Passwords longer than this are refused, so that hashing one stays cheap to ask for.
const MAX_PASSWORD_BYTES: usize = 1024;

/// Failed logins are counted within this window; one after it starts a new count.
pub const LOGIN_WINDOW: Duration = Duration::from_secs(15 * 60);

/// The first failures of a user that cost nothing more than a wrong answer.
const USER_FREE_FAILURES: i64 = 3;

/// A user's failures from which their logins are locked for the rest of the window.
pub const USER_LOCKOUT_FAILURES: i64 = 10;

/// The same for one client address, which may serve several people (a NAT, a proxy).
const ADDRESS_FREE_FAILURES: i64 = 15;
const ADDRESS_LOCKOUT_FAILURES: i64 = 50;

/// Someone known by a valid personal token: who they are, which token, and what it may do.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: UserName,
    pub email: Option<EmailAddress>,
    pub token: String,
    pub rights: Rights,
}

impl Caller {
    /// The person whose changes this caller makes.
    pub fn person(&self) -> Person {
        Person {
            name: self.user.clone(),
            email: self.email.clone(),
        }
    }

    /// The caller, as `GET /api/v1/me` shows them.
    pub fn view(&self) -> MeView {
        MeView {
            user: self.user.to_string(),
            email: self.email.as_ref().map(|e| e.as_str().to_owned()),
            role: self.rights.role.to_string(),
            apps: self.rights.apps.iter().map(|a| a.to_string()).collect(),
            token: self.token.clone(),
        }
    }
}

/// The owner of a bearer token and what it carries, if the token is a live personal token of
/// an enabled user. Every refusal says why in words that do not reveal another user's state.
pub async fn authenticate(store: &Store, bearer: &str) -> Result<Caller, CoreError> {
    let unauthenticated = |message: &str| {
        CoreError::new(
            ErrorKind::Unauthenticated,
            "unauthorized",
            message.to_owned(),
        )
    };
    let Some((token, user)) = store.find_user_token(&hash_token(bearer)).await? else {
        return Err(unauthenticated("invalid API token"));
    };
    let now = store.clock().now_millis();
    if token.expires_at.is_some_and(|at| at <= now) {
        return Err(unauthenticated(
            "this API token has expired; log in again, or create a new one with `reposync token create`",
        ));
    }
    if user.disabled_at.is_some() {
        return Err(unauthenticated(
            "this token's user is disabled; ask an admin to enable them",
        ));
    }
    store.touch_user_token(&token).await?;
    let rights = Rights {
        role: user.role,
        apps: user.apps.clone(),
    };
    Ok(Caller {
        rights: token.role.map_or(rights.clone(), |cap| rights.capped(cap)),
        user: user.name,
        email: user.email,
        token: token.name,
    })
}

/// Creates the first admin user, named [`FIRST_ADMIN`], with `token` (made with
/// [`TOKEN_PREFIX`] by the caller, who shows it once) as their first token.
pub async fn create_first_admin(store: &Store, token: &str) -> Result<(), CoreError> {
    let user = NewUser {
        name: first_admin_name(),
        email: None,
        role: Role::Admin,
        apps: Vec::new(),
        password_hash: None,
    };
    store
        .create_user(&user, Some(("admin", &hash_token(token))))
        .await?;
    tracing::info!(user = FIRST_ADMIN, "created the first admin user");
    Ok(())
}

fn first_admin_name() -> UserName {
    // A constant that the parser accepts; the test below holds it to that.
    UserName::parse(FIRST_ADMIN).unwrap_or_else(|_| unreachable!("`admin` is a user name"))
}

/// Creates a user.
pub async fn add(store: &Store, request: UserRequest) -> Result<UserView, CoreError> {
    let name = UserName::parse(&request.name)?;
    let role = Role::parse(&request.role)?;
    let apps = grants(store, role, &request.apps).await?;
    let email = parse_email(request.email.as_deref())?;
    let password_hash = request.password.map(|p| hash_password(&p)).transpose()?;
    let user = NewUser {
        name,
        email,
        role,
        apps,
        password_hash,
    };
    let record = store.create_user(&user, None).await?;
    tracing::info!(user = %record.name, role = %record.role, "created a user");
    Ok(user_view(&record, None))
}

/// Every user.
pub async fn list(store: &Store) -> Result<Vec<UserView>, CoreError> {
    Ok(store
        .list_users()
        .await?
        .iter()
        .map(|u| user_view(u, None))
        .collect())
}

/// One user, with their failed logins of the current window.
pub async fn show(store: &Store, name: &str) -> Result<UserView, CoreError> {
    let name = UserName::parse(name)?;
    let user = store
        .find_user(&name)
        .await?
        .ok_or_else(|| no_such_user(&name))?;
    Ok(user_view(&user, login_failures(store, &name).await?))
}

/// A user's failed logins of the current window, for admins; `None` when there are none.
pub async fn login_failures(
    store: &Store,
    name: &UserName,
) -> Result<Option<LoginFailuresView>, CoreError> {
    Ok(store
        .login_failures(&user_key(name))
        .await?
        .map(|f| LoginFailuresView {
            failures: f.failures,
            since: timestamp(f.window_start),
            blocked_until: f.blocked_until.map(timestamp),
            last_address: f.last_address,
        }))
}

/// Changes a user's role, applications, e-mail address, password or whether they are
/// enabled. Never leaves reposync without an enabled admin.
pub async fn update(
    store: &Store,
    name: &str,
    request: UserUpdateRequest,
) -> Result<UserView, CoreError> {
    let name = UserName::parse(name)?;
    let current = store
        .find_user(&name)
        .await?
        .ok_or_else(|| no_such_user(&name))?;
    let role = request.role.as_deref().map(Role::parse).transpose()?;
    let apps = match (&request.apps, role) {
        (Some(apps), _) => Some(grants(store, role.unwrap_or(current.role), apps).await?),
        // Becoming an admin with applications left over is refused by `grants`.
        (None, Some(role)) => Some(grants(store, role, &names(&current.apps)).await?),
        (None, None) => None,
    };
    let update = UserUpdate {
        role,
        apps,
        email: request
            .email
            .as_deref()
            .map(|e| parse_email((!e.is_empty()).then_some(e)))
            .transpose()?,
        password_hash: request.password.map(|p| hash_password(&p)).transpose()?,
        disabled: request.disabled,
    };
    let record = store.update_user(&name, &update).await?;
    if update.password_hash.is_some() {
        // A new password ends a lockout: the admin who set it vouches for the person.
        store.clear_login_failures(&user_key(&name)).await?;
    }
    Ok(user_view(&record, None))
}

/// Deletes a user and their tokens, unless they are the last enabled admin.
pub async fn delete(store: &Store, name: &str) -> Result<(), CoreError> {
    let name = UserName::parse(name)?;
    store.delete_user(&name).await?;
    Ok(())
}

/// Makes a token for `owner`, carrying at most the owner's rights and, when a token of the
/// owner's asks for it, at most `maker_limit`, the role that token carries: the value is in
/// the answer and nowhere else.
pub async fn create_token(
    store: &Store,
    owner: &UserName,
    request: TokenRequest,
    maker_limit: Option<Role>,
) -> Result<TokenView, CoreError> {
    let user = store
        .find_user(owner)
        .await?
        .ok_or_else(|| no_such_user(owner))?;
    let name = token_name(&request.name)?;
    let asked = request.role.as_deref().map(Role::parse).transpose()?;
    if let Some(cap) = asked.filter(|cap| *cap > user.role) {
        return Err(CoreError::forbidden(format!(
            "a token can carry at most its owner's rights: {owner} is {}, so it cannot have a {cap} token",
            user.role
        ))
        .with_field("role"));
    }
    if let (Some(cap), Some(limit)) = (asked, maker_limit)
        && cap > limit
    {
        return Err(CoreError::forbidden(format!(
            "a token can carry at most the rights of the token that makes it, here {limit}; make it with a token that has {cap}"
        ))
        .with_field("role"));
    }
    // Below the owner's role, the cap is kept; a token made with a capped token keeps that cap.
    let cap = asked.or(maker_limit.filter(|limit| *limit < user.role));
    let lifetime = match request.expires_in_seconds {
        None => Some(DEFAULT_TOKEN_LIFETIME),
        Some(0) => None,
        Some(seconds) => Some(Duration::from_secs(seconds)),
    };
    issue_token(store, owner, &name, cap, lifetime).await
}

/// A user's tokens, never with their values.
pub async fn list_tokens(store: &Store, owner: &UserName) -> Result<Vec<TokenView>, CoreError> {
    if store.find_user(owner).await?.is_none() {
        return Err(no_such_user(owner));
    }
    Ok(store
        .list_user_tokens(owner)
        .await?
        .iter()
        .map(token_view)
        .collect())
}

/// Revokes a user's token: its next request is refused.
pub async fn revoke_token(store: &Store, owner: &UserName, name: &str) -> Result<(), CoreError> {
    store.delete_user_token(owner, name).await?;
    tracing::info!(user = %owner, token = name, "revoked a token");
    Ok(())
}

/// Issues a new admin token for the admin `name`, revoking every token they had and enabling
/// them: what someone with the data directory does when the admin token is lost.
pub async fn reset_admin(store: &Store, name: &str) -> Result<SecretValue, CoreError> {
    let name = UserName::parse(name)?;
    let user = store
        .find_user(&name)
        .await?
        .ok_or_else(|| no_such_user(&name))?;
    if user.role != Role::Admin {
        return Err(CoreError::invalid(
            "user",
            format!(
                "{name} is {}, not an admin; name an admin (see `reposync user list`)",
                user.role
            ),
        ));
    }
    let token = new_token(TOKEN_PREFIX);
    store
        .replace_user_tokens(&name, "admin-reset", &hash_token(&token))
        .await?;
    Ok(SecretValue::new(token))
}

/// How long a one-time password link stays usable.
pub const PASSWORD_LINK_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// A one-time link for `name` to set their own password, under `base_url` (the server's
/// public URL), replacing any earlier link of theirs. Its token travels in the URL's
/// fragment, which browsers never send to a server or write into its logs.
pub async fn password_link(
    store: &Store,
    name: &str,
    base_url: &str,
) -> Result<PasswordLinkView, CoreError> {
    let name = UserName::parse(name)?;
    let token = new_token(PASSWORD_LINK_PREFIX);
    let expires_at = store.clock().now_millis() + millis(PASSWORD_LINK_LIFETIME);
    store
        .create_password_link(&name, &hash_token(&token), expires_at)
        .await?;
    let url = format!("{}/set-password#{token}", base_url.trim_end_matches('/'));
    Ok(PasswordLinkView {
        user: name.to_string(),
        url: SecretValue::new(url),
        expires_at: timestamp(expires_at),
    })
}

/// What every password link's token starts with.
pub const PASSWORD_LINK_PREFIX: &str = "rspw_";

/// Sets a password through a one-time link's token: the user it was for. The link is used up
/// either way once it named someone; an unknown, used or expired one is refused.
pub async fn set_password_by_link(
    store: &Store,
    token: &str,
    password: &SecretValue,
) -> Result<UserName, CoreError> {
    let hash = hash_password(password)?;
    store
        .set_password_by_link(&hash_token(token), &hash)
        .await?
        .ok_or_else(|| {
            CoreError::new(
                ErrorKind::Unauthenticated,
                "unauthorized",
                "this password link is unknown, used or expired; ask an admin for a new one (`reposync user password-link NAME`)",
            )
            .with_field("token")
        })
}

/// A web session ends after this long without a request.
pub const SESSION_IDLE: Duration = Duration::from_secs(2 * 3600);

/// A web session ends this long after it started, however busy.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// What the caller of a web session is named as in place of a token, in the audit trail.
pub const SESSION_TOKEN_NAME: &str = "web session";

/// Starts a web session for a user who has just logged in: the value for the cookie, kept
/// in the store only as a hash.
pub async fn start_session(store: &Store, user: &UserName) -> Result<SecretValue, CoreError> {
    let id = new_token("");
    let expires_at = store.clock().now_millis() + millis(SESSION_LIFETIME);
    store
        .create_session(user, &hash_token(&id), expires_at)
        .await?;
    Ok(SecretValue::new(id))
}

/// The caller of a live web session: `None` for a session unknown, idle too long, past its
/// end, or of a user since disabled.
pub async fn session_caller(store: &Store, id: &str) -> Result<Option<Caller>, CoreError> {
    let Some((session, user)) = store.find_session(&hash_token(id)).await? else {
        return Ok(None);
    };
    let now = store.clock().now_millis();
    let idle = now - session.last_seen_at >= millis(SESSION_IDLE);
    if idle || now >= session.expires_at || user.disabled_at.is_some() {
        store.delete_session(&session.id_hash).await?;
        return Ok(None);
    }
    store.touch_session(&session).await?;
    Ok(Some(Caller {
        rights: Rights {
            role: user.role,
            apps: user.apps.clone(),
        },
        user: user.name,
        email: user.email,
        token: SESSION_TOKEN_NAME.to_owned(),
    }))
}

/// Ends every web session of a user, wherever they are logged in.
pub async fn end_sessions(store: &Store, user: &UserName) -> Result<u64, CoreError> {
    let ended = store.delete_sessions_of(user).await?;
    tracing::info!(user = %user, ended, "ended every web session of a user");
    Ok(ended)
}

/// Ends a web session.
pub async fn end_session(store: &Store, id: &str) -> Result<(), CoreError> {
    store.delete_session(&hash_token(id)).await?;
    Ok(())
}

/// Why a login was refused, for the audit trail: the caller only ever hears
/// "wrong user name or password", or that they must wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginRefusal {
    /// Attempts for this user or address are blocked until the given time.
    Blocked { until: i64 },
    /// No such user, a user with no password, or a wrong password.
    WrongCredentials,
    /// The password was right, but the user is disabled.
    Disabled,
}

/// A failed login, with what the caller is told and, for admins, what happened.
#[derive(Debug)]
pub struct LoginFailed {
    pub error: CoreError,
    pub refusal: LoginRefusal,
    /// Set when this failure locked the user out for the rest of the window.
    pub locked_out: Option<String>,
}

/// Checks a user's password, counting failures per user and per client address: a few
/// failures cost nothing more; after them each further attempt must wait longer, and many
/// lock the user (or address) out until their window ends. An attempt made while blocked is
/// refused without looking at the password, so guessing costs the server almost nothing, and
/// it counts as a failure too, so hammering reaches the lockout sooner.
pub async fn login(
    store: &Store,
    user: &str,
    password: &SecretValue,
    address: Option<&str>,
) -> Result<UserRecord, LoginFailed> {
    let internal = |error: CoreError| LoginFailed {
        error,
        refusal: LoginRefusal::WrongCredentials,
        locked_out: None,
    };
    let user_key = format!("user:{user}");
    let address_key = address.map(|a| format!("addr:{a}"));
    let keys: Vec<&str> = std::iter::once(user_key.as_str())
        .chain(address_key.as_deref())
        .collect();
    let blocked = store
        .login_blocked_until(&keys)
        .await
        .map_err(|e| internal(e.into()))?;
    if blocked.is_none() {
        let record = match UserName::parse(user) {
            Ok(name) => store
                .password_hash(&name)
                .await
                .map_err(|e| internal(e.into()))?,
            Err(_) => None,
        };
        let hash = record.as_ref().and_then(|(_, hash)| hash.clone());
        if let (true, Some((user, _))) = (verify_password(password, hash).await, record) {
            if user.disabled_at.is_some() {
                return Err(LoginFailed {
                    error: CoreError::new(
                        ErrorKind::Unauthenticated,
                        "user_disabled",
                        "this user is disabled; ask an admin to enable them",
                    ),
                    refusal: LoginRefusal::Disabled,
                    locked_out: None,
                });
            }
            store
                .clear_login_failures(&user_key)
                .await
                .map_err(|e| internal(e.into()))?;
            return Ok(user);
        }
    }
    let locked_out = count_failure(store, user, address)
        .await
        .map_err(|e| internal(e.into()))?;
    Err(match blocked {
        Some(until) => LoginFailed {
            error: throttled(until - store.clock().now_millis()),
            refusal: LoginRefusal::Blocked { until },
            locked_out,
        },
        None => LoginFailed {
            error: CoreError::new(
                ErrorKind::Unauthenticated,
                "unauthorized",
                "wrong user name or password",
            ),
            refusal: LoginRefusal::WrongCredentials,
            locked_out,
        },
    })
}

/// Counts a failed login for the user and for the address; when it is the one that locks
/// either out, what admins should know.
async fn count_failure(
    store: &Store,
    user: &str,
    address: Option<&str>,
) -> Result<Option<String>, StoreError> {
    let window = millis(LOGIN_WINDOW);
    let minutes = LOGIN_WINDOW.as_secs() / 60;
    let from = address.unwrap_or("an unknown address");
    let by_user = store
        .record_login_failure(&format!("user:{user}"), address, window, |n, now, start| {
            block_until(n, now, start, USER_FREE_FAILURES, USER_LOCKOUT_FAILURES)
        })
        .await?;
    let mut locked_out = (by_user.failures == USER_LOCKOUT_FAILURES).then(|| {
        format!(
            "{} failed logins for user {user:?} within {minutes} minutes, the last from {from}; its logins are refused until {}",
            by_user.failures,
            by_user.blocked_until.map(timestamp).unwrap_or_default()
        )
    });
    if let Some(address) = address {
        let by_address = store
            .record_login_failure(
                &format!("addr:{address}"),
                Some(address),
                window,
                |n, now, start| {
                    block_until(
                        n,
                        now,
                        start,
                        ADDRESS_FREE_FAILURES,
                        ADDRESS_LOCKOUT_FAILURES,
                    )
                },
            )
            .await?;
        if by_address.failures == ADDRESS_LOCKOUT_FAILURES {
            locked_out = Some(format!(
                "{} failed logins from {address} within {minutes} minutes; logins from it are refused until {}",
                by_address.failures,
                by_address.blocked_until.map(timestamp).unwrap_or_default()
            ));
        }
    }
    Ok(locked_out)
}

/// Until when a key with `failures` failures in the window that started at `start` is
/// blocked: not at all for the first `free`; then for a time doubling from one second; from
/// `lockout` on, until the window ends, so that the rightful user gets in once it has passed
/// however long someone goes on guessing.
fn block_until(failures: i64, now: i64, start: i64, free: i64, lockout: i64) -> Option<i64> {
    if failures >= lockout {
        return Some(start + millis(LOGIN_WINDOW));
    }
    let beyond = failures - free;
    (beyond > 0).then(|| now + (1000_i64 << (beyond - 1).min(20)))
}

fn throttled(remaining_ms: i64) -> CoreError {
    let seconds = u64::try_from(remaining_ms.max(0))
        .unwrap_or(0)
        .div_ceil(1000)
        .max(1);
    CoreError {
        retry_after_secs: Some(seconds),
        ..CoreError::new(
            ErrorKind::Throttled,
            "too_many_attempts",
            format!("too many failed logins; try again in {seconds} seconds"),
        )
    }
}

/// Issues a token for a user who has just logged in with their password.
pub async fn login_token(
    store: &Store,
    user: &UserName,
    name: Option<&str>,
    expires_in_seconds: Option<u64>,
) -> Result<TokenView, CoreError> {
    let now = store.clock().now_millis();
    let name = match name {
        Some(name) => token_name(name)?,
        None => format!("login-{now}"),
    };
    let lifetime = match expires_in_seconds {
        None => Some(DEFAULT_LOGIN_TOKEN_LIFETIME),
        Some(0) => None,
        Some(seconds) => Some(Duration::from_secs(seconds)),
    };
    issue_token(store, user, &name, None, lifetime).await
}

async fn issue_token(
    store: &Store,
    owner: &UserName,
    name: &str,
    cap: Option<Role>,
    lifetime: Option<Duration>,
) -> Result<TokenView, CoreError> {
    let token = new_token(TOKEN_PREFIX);
    let expires_at = lifetime.map(|l| store.clock().now_millis() + millis(l));
    let record = store
        .create_user_token(&NewUserToken {
            user: owner,
            name,
            token_hash: &hash_token(&token),
            role: cap,
            expires_at,
        })
        .await?;
    tracing::info!(user = %owner, token = name, "created a token");
    Ok(TokenView {
        token: Some(SecretValue::new(token)),
        ..token_view(&record)
    })
}

/// The failed-login key of a user.
fn user_key(name: &UserName) -> String {
    format!("user:{name}")
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// A token's name: 1 to 64 printable characters, so that it reads in a listing.
fn token_name(name: &str) -> Result<String, CoreError> {
    let name = name.trim();
    if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
        return Err(CoreError::invalid(
            "name",
            "a token's name needs 1 to 64 printable characters, such as `laptop` or `ci`",
        ));
    }
    Ok(name.to_owned())
}

/// The applications a role is granted in, each an existing application. An admin's rights
/// are not per application.
async fn grants(store: &Store, role: Role, apps: &[String]) -> Result<Vec<EntityName>, CoreError> {
    if role == Role::Admin && !apps.is_empty() {
        return Err(CoreError::invalid(
            "apps",
            "an admin's rights are not per application; give --role editor (or viewer) with --app, or no --app",
        ));
    }
    let mut parsed = Vec::with_capacity(apps.len());
    for app in apps {
        let name = EntityName::parse(app).map_err(|e| CoreError::invalid("apps", e.message))?;
        crate::apps::require(store, name.as_str())
            .await
            .map_err(|e| e.with_field("apps"))?;
        if !parsed.contains(&name) {
            parsed.push(name);
        }
    }
    Ok(parsed)
}

fn names(apps: &[EntityName]) -> Vec<String> {
    apps.iter().map(|a| a.to_string()).collect()
}

fn parse_email(email: Option<&str>) -> Result<Option<EmailAddress>, CoreError> {
    email
        .map(|e| EmailAddress::parse(e).map_err(|e| CoreError::invalid("email", e.message)))
        .transpose()
}

fn no_such_user(name: &UserName) -> CoreError {
    CoreError::from(StoreError::NotFound {
        what: "user",
        name: name.to_string(),
    })
}

/// An Argon2id hash of a password, in the PHC string format (algorithm, parameters and salt
/// travel with it, so the parameters can be raised later without breaking old hashes).
fn hash_password(password: &SecretValue) -> Result<String, CoreError> {
    let text = password.expose();
    if text.chars().count() < MIN_PASSWORD_CHARS {
        return Err(CoreError::invalid(
            "password",
            format!(
                "is too short: use at least {MIN_PASSWORD_CHARS} characters (a few words make a good one)"
            ),
        ));
    }
    if text.len() > MAX_PASSWORD_BYTES {
        return Err(CoreError::invalid(
            "password",
            format!("is longer than {MAX_PASSWORD_BYTES} bytes"),
        ));
    }
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(text.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| CoreError::internal(format!("cannot hash a password: {e}")))
}

/// Whether `password` matches `hash`. Without a hash (no such user, or no password set) a
/// dummy hash is checked, so that the answer takes as long and says nothing of who exists.
/// The work runs off the async threads: Argon2id is deliberately slow.
async fn verify_password(password: &SecretValue, hash: Option<String>) -> bool {
    let password = password.clone();
    tokio::task::spawn_blocking(move || {
        let text = password.expose().as_bytes();
        if text.len() > MAX_PASSWORD_BYTES {
            return false;
        }
        let argon2 = Argon2::default();
        match hash.as_deref().map(PasswordHash::new) {
            Some(Ok(parsed)) => argon2.verify_password(text, &parsed).is_ok(),
            _ => {
                let salt = SaltString::generate(&mut OsRng);
                let _ = argon2.hash_password(text, &salt);
                false
            }
        }
    })
    .await
    .unwrap_or(false)
}

fn user_view(user: &UserRecord, login_failures: Option<LoginFailuresView>) -> UserView {
    UserView {
        name: user.name.to_string(),
        email: user.email.as_ref().map(|e| e.as_str().to_owned()),
        role: user.role.to_string(),
        apps: names(&user.apps),
        has_password: user.has_password,
        disabled: user.disabled_at.is_some(),
        created_at: timestamp(user.created_at),
        login_failures,
    }
}

fn token_view(token: &UserTokenRecord) -> TokenView {
    TokenView {
        name: token.name.clone(),
        user: token.user.to_string(),
        role: token.role.map(|r| r.to_string()),
        created_at: timestamp(token.created_at),
        expires_at: token.expires_at.map(timestamp),
        last_used_at: token.last_used_at.map(timestamp),
        token: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_admin_has_a_valid_name() {
        assert_eq!(first_admin_name().as_str(), FIRST_ADMIN);
    }

    #[test]
    fn failures_cost_nothing_then_double_then_lock_out_until_the_window_ends() {
        let (start, now) = (1_000_000, 1_060_000);
        let window_end = start + millis(LOGIN_WINDOW);
        assert_eq!(block_until(1, now, start, 3, 10), None);
        assert_eq!(block_until(3, now, start, 3, 10), None);
        assert_eq!(block_until(4, now, start, 3, 10), Some(now + 1000));
        assert_eq!(block_until(5, now, start, 3, 10), Some(now + 2000));
        assert_eq!(block_until(9, now, start, 3, 10), Some(now + 32_000));
        assert_eq!(block_until(10, now, start, 3, 10), Some(window_end));
        assert_eq!(block_until(500, now + 5000, start, 3, 10), Some(window_end));
    }

    #[test]
    fn passwords_are_hashed_with_argon2id_and_checked() {
        let password = SecretValue::new("correct horse battery");
        let hash = hash_password(&password).unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(!hash.contains("correct horse"));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        assert!(runtime.block_on(verify_password(&password, Some(hash.clone()))));
        let wrong = SecretValue::new("correct horse battery!");
        assert!(!runtime.block_on(verify_password(&wrong, Some(hash))));
        assert!(!runtime.block_on(verify_password(&password, None)));
    }

    async fn store_with_user(
        clock: std::sync::Arc<reposync_store::ManualClock>,
    ) -> (tempfile::TempDir, Store, UserName) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(
            &Store::sqlite_url(dir.path()),
            reposync_secrets::MasterKey::generate(),
        )
        .await
        .unwrap()
        .with_clock(clock);
        let name = UserName::parse("vera").unwrap();
        let user = NewUser {
            name: name.clone(),
            email: None,
            role: Role::Viewer,
            apps: Vec::new(),
            password_hash: None,
        };
        store.create_user(&user, None).await.unwrap();
        // An admin besides, so that disabling vera leaves one.
        let admin = NewUser {
            name: UserName::parse("ada").unwrap(),
            role: Role::Admin,
            ..user
        };
        store.create_user(&admin, None).await.unwrap();
        (dir, store, name)
    }

    /// A web session ends after two idle hours, twelve hours after it began however busy, and
    /// with its user's disabling.
    #[tokio::test]
    async fn web_sessions_end_when_idle_at_their_end_and_with_their_user() {
        let clock = reposync_store::ManualClock::starting_now();
        let (_dir, store, name) = store_with_user(clock.clone()).await;
        let hour = 3_600_000;
        let idle = start_session(&store, &name).await.unwrap();
        clock.advance(hour);
        assert!(
            session_caller(&store, idle.expose())
                .await
                .unwrap()
                .is_some()
        );
        clock.advance(2 * hour);
        assert!(
            session_caller(&store, idle.expose())
                .await
                .unwrap()
                .is_none(),
            "idle too long"
        );
        let busy = start_session(&store, &name).await.unwrap();
        for _ in 0..11 {
            clock.advance(hour);
            assert!(
                session_caller(&store, busy.expose())
                    .await
                    .unwrap()
                    .is_some()
            );
        }
        clock.advance(hour);
        assert!(
            session_caller(&store, busy.expose())
                .await
                .unwrap()
                .is_none(),
            "past its end"
        );
        let fresh = start_session(&store, &name).await.unwrap();
        let disabled = UserUpdate {
            disabled: Some(true),
            ..UserUpdate::default()
        };
        store.update_user(&name, &disabled).await.unwrap();
        assert!(
            session_caller(&store, fresh.expose())
                .await
                .unwrap()
                .is_none(),
            "disabled"
        );
    }

    #[test]
    fn a_short_password_is_refused_naming_the_field() {
        let error = hash_password(&SecretValue::new("hunter2")).unwrap_err();
        assert_eq!(error.field.as_deref(), Some("password"));
        assert!(error.message.contains("at least 12"), "{}", error.message);
    }
}
