//! Users, their personal API tokens (known only by hash), and the count of failed logins.

use reposync_model::{EmailAddress, EntityName, Role, UserName};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::error::StoreError;
use crate::gate::{Read, Write};
use crate::rows::new_id;
use crate::store::Store;

/// A user, without their password hash (which only [`Store::password_hash`] reads).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub id: String,
    pub name: UserName,
    pub email: Option<EmailAddress>,
    pub role: Role,
    /// Where `role` applies; empty means everywhere.
    pub apps: Vec<EntityName>,
    pub has_password: bool,
    pub disabled_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A user to create. The password, if any, is already an Argon2id hash.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub name: UserName,
    pub email: Option<EmailAddress>,
    pub role: Role,
    pub apps: Vec<EntityName>,
    pub password_hash: Option<String>,
}

/// What to change of a user; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct UserUpdate {
    pub role: Option<Role>,
    pub apps: Option<Vec<EntityName>>,
    pub email: Option<Option<EmailAddress>>,
    pub password_hash: Option<String>,
    pub disabled: Option<bool>,
}

/// A personal API token, without its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserTokenRecord {
    pub id: String,
    pub user: UserName,
    pub name: String,
    /// The most this token may do; `None` carries the owner's role.
    pub role: Option<Role>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

/// A token to create for a user, known by its hash.
#[derive(Debug, Clone)]
pub struct NewUserToken<'a> {
    pub user: &'a UserName,
    pub name: &'a str,
    pub token_hash: &'a str,
    pub role: Option<Role>,
    pub expires_at: Option<i64>,
}

/// What one more failed login came to for a key (`user:<name>`, `addr:<ip>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginFailures {
    /// Failures within the current window, this one included.
    pub failures: i64,
    /// Until when attempts for this key are refused unchecked.
    pub blocked_until: Option<i64>,
}

/// A key's failed logins as they stand, for admins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginFailureRecord {
    pub key: String,
    pub failures: i64,
    pub window_start: i64,
    pub blocked_until: Option<i64>,
    pub last_address: Option<String>,
}

// `has_password` is a number, not `password_hash IS NOT NULL`: that is an integer on SQLite
// but a BOOLEAN on PostgreSQL, and the `Any` driver decodes no type as both.
const USER_COLUMNS: &str = "u.id, u.name, u.email, u.role, u.apps, \
    CASE WHEN u.password_hash IS NULL THEN 0 ELSE 1 END AS has_password, \
    u.disabled_at, u.created_at, u.updated_at";

const TOKEN_COLUMNS: &str = "t.id AS token_id, u.name AS user_name, t.name AS token_name, t.role AS token_role, t.created_at AS token_created_at, t.expires_at, t.last_used_at";

fn corrupt(what: &str, error: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {error}"))
}

fn role_column(row: &AnyRow, column: &str) -> Result<Option<Role>, StoreError> {
    let text: Option<String> = row.try_get(column)?;
    text.map(|t| Role::parse(&t).map_err(|e| corrupt("role", e.message)))
        .transpose()
}

fn user_from_row(row: &AnyRow) -> Result<UserRecord, StoreError> {
    let name: String = row.try_get("name")?;
    let email: Option<String> = row.try_get("email")?;
    let apps: String = row.try_get("apps")?;
    let apps: Vec<String> = serde_json::from_str(&apps).map_err(|e| corrupt("user apps", e))?;
    let has_password: i64 = row.try_get("has_password")?;
    Ok(UserRecord {
        id: row.try_get("id")?,
        name: UserName::parse(&name).map_err(|e| corrupt("user name", e.message))?,
        email: email
            .map(|e| EmailAddress::parse(&e).map_err(|e| corrupt("user email", e.message)))
            .transpose()?,
        role: role_column(row, "role")?.ok_or_else(|| corrupt("user role", "missing"))?,
        apps: apps
            .iter()
            .map(|a| EntityName::parse(a).map_err(|e| corrupt("user apps", e.message)))
            .collect::<Result<_, _>>()?,
        has_password: has_password != 0,
        disabled_at: row.try_get("disabled_at")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn token_from_row(row: &AnyRow) -> Result<UserTokenRecord, StoreError> {
    let user: String = row.try_get("user_name")?;
    Ok(UserTokenRecord {
        id: row.try_get("token_id")?,
        user: UserName::parse(&user).map_err(|e| corrupt("token owner", e.message))?,
        name: row.try_get("token_name")?,
        role: role_column(row, "token_role")?,
        created_at: row.try_get("token_created_at")?,
        expires_at: row.try_get("expires_at")?,
        last_used_at: row.try_get("last_used_at")?,
    })
}

fn apps_json(apps: &[EntityName]) -> String {
    serde_json::Value::from(apps.iter().map(|a| a.as_str()).collect::<Vec<_>>()).to_string()
}

fn no_such_user(name: &UserName) -> StoreError {
    StoreError::NotFound {
        what: "user",
        name: name.to_string(),
    }
}

impl Store {
    /// How many users exist; zero means this is a first start.
    pub async fn count_users(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query("SELECT COUNT(*) AS n FROM users")
            .read_one(&self.db)
            .await?
            .try_get("n")?)
    }

    /// Creates a user, and with it, when given, their first token: both or neither.
    pub async fn create_user(
        &self,
        user: &NewUser,
        first_token: Option<(&str, &str)>,
    ) -> Result<UserRecord, StoreError> {
        let now = self.now();
        let id: String = new_id();
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO users (id, name, email, role, apps, password_hash, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
        )
        .bind(&id)
        .bind(user.name.as_str())
        .bind(user.email.as_ref().map(EmailAddress::as_str))
        .bind(user.role.as_str())
        .bind(apps_json(&user.apps))
        .bind(user.password_hash.as_deref())
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(|e| StoreError::from_unique_violation(e, "user", user.name.as_str()))?;
        if let Some((name, token_hash)) = first_token {
            sqlx::query(
                "INSERT INTO user_tokens (id, user_id, name, token_hash, created_at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(new_id::<String>())
            .bind(&id)
            .bind(name)
            .bind(token_hash)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(UserRecord {
            id,
            name: user.name.clone(),
            email: user.email.clone(),
            role: user.role,
            apps: user.apps.clone(),
            has_password: user.password_hash.is_some(),
            disabled_at: None,
            created_at: now,
            updated_at: now,
        })
    }

    /// Every user, by name.
    pub async fn list_users(&self) -> Result<Vec<UserRecord>, StoreError> {
        sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users u ORDER BY u.name"
        ))
        .read_all(&self.db)
        .await?
        .iter()
        .map(user_from_row)
        .collect()
    }

    /// The user of this name, if any.
    pub async fn find_user(&self, name: &UserName) -> Result<Option<UserRecord>, StoreError> {
        sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users u WHERE u.name = $1"
        ))
        .bind(name.as_str())
        .read_optional(&self.db)
        .await?
        .as_ref()
        .map(user_from_row)
        .transpose()
    }

    /// A user and their password hash, for checking a login.
    pub async fn password_hash(
        &self,
        name: &UserName,
    ) -> Result<Option<(UserRecord, Option<String>)>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS}, u.password_hash FROM users u WHERE u.name = $1"
        ))
        .bind(name.as_str())
        .read_optional(&self.db)
        .await?;
        row.map(|row| Ok((user_from_row(&row)?, row.try_get("password_hash")?)))
            .transpose()
    }

    /// Changes a user. A change that would leave no enabled admin is refused
    /// ([`StoreError::Invalid`] on `role`) and changes nothing.
    pub async fn update_user(
        &self,
        name: &UserName,
        update: &UserUpdate,
    ) -> Result<UserRecord, StoreError> {
        let now = self.now();
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE users SET
                role = COALESCE($2, role),
                apps = COALESCE($3, apps),
                email = CASE WHEN $4 = 1 THEN $5 ELSE email END,
                password_hash = COALESCE($6, password_hash),
                disabled_at = CASE WHEN $7 = 1 THEN COALESCE(disabled_at, $9)
                                   WHEN $7 = 0 THEN NULL ELSE disabled_at END,
                updated_at = $8
             WHERE name = $1",
        )
        .bind(name.as_str())
        .bind(update.role.map(Role::as_str))
        .bind(update.apps.as_deref().map(apps_json))
        .bind(i64::from(update.email.is_some()))
        .bind(
            update
                .email
                .clone()
                .flatten()
                .map(|e| e.as_str().to_owned()),
        )
        .bind(update.password_hash.as_deref())
        .bind(update.disabled.map_or(2_i64, i64::from))
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            tx.rollback().await?;
            return Err(no_such_user(name));
        }
        if !an_admin_remains(&mut tx).await? {
            tx.rollback().await?;
            return Err(last_admin(name));
        }
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users u WHERE u.name = $1"
        ))
        .bind(name.as_str())
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        user_from_row(&row)
    }

    /// Deletes a user and their tokens, unless they are the last enabled admin.
    pub async fn delete_user(&self, name: &UserName) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "DELETE FROM user_tokens WHERE user_id IN (SELECT id FROM users WHERE name = $1)",
        )
        .bind(name.as_str())
        .execute(&mut *tx)
        .await?;
        let done = sqlx::query("DELETE FROM users WHERE name = $1")
            .bind(name.as_str())
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            tx.rollback().await?;
            return Err(no_such_user(name));
        }
        if !an_admin_remains(&mut tx).await? {
            tx.rollback().await?;
            return Err(last_admin(name));
        }
        tx.commit().await?;
        Ok(())
    }

    /// Stores a token for a user by its hash.
    pub async fn create_user_token(
        &self,
        token: &NewUserToken<'_>,
    ) -> Result<UserTokenRecord, StoreError> {
        let now = self.now();
        let id: String = new_id();
        let done = sqlx::query(
            "INSERT INTO user_tokens (id, user_id, name, token_hash, role, created_at, expires_at)
             SELECT $1, id, $3, $4, $5, $6, $7 FROM users WHERE name = $2",
        )
        .bind(&id)
        .bind(token.user.as_str())
        .bind(token.name)
        .bind(token.token_hash)
        .bind(token.role.map(Role::as_str))
        .bind(now)
        .bind(token.expires_at)
        .write(&self.db)
        .await
        .map_err(|e| StoreError::from_unique_violation(e, "token", token.name))?;
        if done.rows_affected() == 0 {
            return Err(no_such_user(token.user));
        }
        Ok(UserTokenRecord {
            id,
            user: token.user.clone(),
            name: token.name.to_owned(),
            role: token.role,
            created_at: now,
            expires_at: token.expires_at,
            last_used_at: None,
        })
    }

    /// The token with this hash and its owner, if any.
    pub async fn find_user_token(
        &self,
        token_hash: &str,
    ) -> Result<Option<(UserTokenRecord, UserRecord)>, StoreError> {
        sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS}, {USER_COLUMNS}
             FROM user_tokens t JOIN users u ON u.id = t.user_id WHERE t.token_hash = $1"
        ))
        .bind(token_hash)
        .read_optional(&self.db)
        .await?
        .map(|row| Ok((token_from_row(&row)?, user_from_row(&row)?)))
        .transpose()
    }

    /// Notes that a token was used now, at most once a minute, so that reading does not
    /// become a write per request.
    pub async fn touch_user_token(&self, token: &UserTokenRecord) -> Result<(), StoreError> {
        let now = self.now();
        if token.last_used_at.is_some_and(|at| now - at < 60_000) {
            return Ok(());
        }
        sqlx::query("UPDATE user_tokens SET last_used_at = $2 WHERE id = $1")
            .bind(&token.id)
            .bind(now)
            .write(&self.db)
            .await?;
        Ok(())
    }

    /// A user's tokens, by name.
    pub async fn list_user_tokens(
        &self,
        user: &UserName,
    ) -> Result<Vec<UserTokenRecord>, StoreError> {
        sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM user_tokens t JOIN users u ON u.id = t.user_id
             WHERE u.name = $1 ORDER BY t.name"
        ))
        .bind(user.as_str())
        .read_all(&self.db)
        .await?
        .iter()
        .map(token_from_row)
        .collect()
    }

    /// Deletes a user's token by name: it stops working at its next request.
    pub async fn delete_user_token(&self, user: &UserName, name: &str) -> Result<(), StoreError> {
        let done = sqlx::query(
            "DELETE FROM user_tokens WHERE name = $2 AND user_id IN (SELECT id FROM users WHERE name = $1)",
        )
        .bind(user.as_str())
        .bind(name)
        .write(&self.db)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound {
                what: "token",
                name: name.to_owned(),
            });
        }
        Ok(())
    }

    /// Replaces every token of a user with one new token, and enables the user, in one
    /// transaction: the recovery of `reposync admin reset`.
    pub async fn replace_user_tokens(
        &self,
        user: &UserName,
        name: &str,
        token_hash: &str,
    ) -> Result<(), StoreError> {
        let now = self.now();
        let mut tx = self.begin_write().await?;
        let user_id: Option<String> = sqlx::query("SELECT id FROM users WHERE name = $1")
            .bind(user.as_str())
            .fetch_optional(&mut *tx)
            .await?
            .map(|row| row.try_get("id"))
            .transpose()?;
        let Some(user_id) = user_id else {
            tx.rollback().await?;
            return Err(no_such_user(user));
        };
        sqlx::query("DELETE FROM user_tokens WHERE user_id = $1")
            .bind(&user_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE users SET disabled_at = NULL, updated_at = $2 WHERE id = $1")
            .bind(&user_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO user_tokens (id, user_id, name, token_hash, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(new_id::<String>())
        .bind(&user_id)
        .bind(name)
        .bind(token_hash)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Until when logins for any of these keys are refused unchecked, if they are.
    pub async fn login_blocked_until(&self, keys: &[&str]) -> Result<Option<i64>, StoreError> {
        let now = self.now();
        let mut until = None;
        for key in keys {
            let row = sqlx::query(
                "SELECT blocked_until FROM login_failures WHERE key = $1 AND blocked_until > $2",
            )
            .bind(*key)
            .bind(now)
            .read_optional(&self.db)
            .await?;
            if let Some(row) = row {
                let blocked: i64 = row.try_get("blocked_until")?;
                until = until.max(Some(blocked));
            }
        }
        Ok(until)
    }

    /// Counts one more failed login for `key` within a window of `window_ms` (a failure after
    /// the window starts a new one), and blocks the key until the time `block_until` gives
    /// for the new count, the time now and the window's start.
    pub async fn record_login_failure(
        &self,
        key: &str,
        address: Option<&str>,
        window_ms: i64,
        block_until: impl Fn(i64, i64, i64) -> Option<i64>,
    ) -> Result<LoginFailures, StoreError> {
        let now = self.now();
        let mut tx = self.begin_write().await?;
        let row = sqlx::query("SELECT failures, window_start FROM login_failures WHERE key = $1")
            .bind(key)
            .fetch_optional(&mut *tx)
            .await?;
        let (failures, window_start) = match row {
            Some(row) => {
                let failures: i64 = row.try_get("failures")?;
                let start: i64 = row.try_get("window_start")?;
                if now - start < window_ms {
                    (failures + 1, start)
                } else {
                    (1, now)
                }
            }
            None => (1, now),
        };
        let blocked_until = block_until(failures, now, window_start);
        sqlx::query(
            "INSERT INTO login_failures (key, failures, window_start, blocked_until, last_address)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (key) DO UPDATE SET failures = $2, window_start = $3,
                 blocked_until = $4, last_address = $5",
        )
        .bind(key)
        .bind(failures)
        .bind(window_start)
        .bind(blocked_until)
        .bind(address)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(LoginFailures {
            failures,
            blocked_until,
        })
    }

    /// Forgets the failed logins of a key, after a successful one.
    pub async fn clear_login_failures(&self, key: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM login_failures WHERE key = $1")
            .bind(key)
            .write(&self.db)
            .await?;
        Ok(())
    }

    /// A key's failed logins, if it has any.
    pub async fn login_failures(
        &self,
        key: &str,
    ) -> Result<Option<LoginFailureRecord>, StoreError> {
        sqlx::query(
            "SELECT key, failures, window_start, blocked_until, last_address FROM login_failures WHERE key = $1",
        )
        .bind(key)
        .read_optional(&self.db)
        .await?
        .map(|row| {
            Ok(LoginFailureRecord {
                key: row.try_get("key")?,
                failures: row.try_get("failures")?,
                window_start: row.try_get("window_start")?,
                blocked_until: row.try_get("blocked_until")?,
                last_address: row.try_get("last_address")?,
            })
        })
        .transpose()
    }
}

impl Store {
    /// Makes `token_hash` the one password link of a user, replacing any earlier one.
    pub async fn create_password_link(
        &self,
        user: &UserName,
        token_hash: &str,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        let now = self.now();
        let done = sqlx::query(
            "INSERT INTO password_links (user_id, token_hash, created_at, expires_at)
             SELECT id, $2, $3, $4 FROM users WHERE name = $1
             ON CONFLICT (user_id) DO UPDATE SET token_hash = $2, created_at = $3, expires_at = $4",
        )
        .bind(user.as_str())
        .bind(token_hash)
        .bind(now)
        .bind(expires_at)
        .write(&self.db)
        .await?;
        if done.rows_affected() == 0 {
            return Err(no_such_user(user));
        }
        Ok(())
    }

    /// Sets the password of the user a live link names, and uses the link up, in one
    /// transaction: the user, or `None` for a link that is unknown, used or expired.
    pub async fn set_password_by_link(
        &self,
        token_hash: &str,
        password_hash: &str,
    ) -> Result<Option<UserName>, StoreError> {
        let now = self.now();
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(
            "SELECT u.name AS name, l.expires_at AS expires_at FROM password_links l
             JOIN users u ON u.id = l.user_id WHERE l.token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM password_links WHERE token_hash = $1 OR expires_at <= $2")
            .bind(token_hash)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let user = match row {
            Some(row) if row.try_get::<i64, _>("expires_at")? > now => {
                let name: String = row.try_get("name")?;
                UserName::parse(&name).map_err(|e| corrupt("user name", e.message))?
            }
            _ => {
                tx.commit().await?;
                return Ok(None);
            }
        };
        sqlx::query("UPDATE users SET password_hash = $2, updated_at = $3 WHERE name = $1")
            .bind(user.as_str())
            .bind(password_hash)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM login_failures WHERE key = $1")
            .bind(format!("user:{user}"))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(user))
    }
}

/// A web UI session, known by the hash of its cookie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub id_hash: String,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub expires_at: i64,
}

impl Store {
    /// Starts a session for a user, ending at `expires_at` at the latest.
    pub async fn create_session(
        &self,
        user: &UserName,
        id_hash: &str,
        expires_at: i64,
    ) -> Result<SessionRecord, StoreError> {
        let now = self.now();
        let done = sqlx::query(
            "INSERT INTO ui_sessions (id_hash, user_id, created_at, last_seen_at, expires_at)
             SELECT $2, id, $3, $3, $4 FROM users WHERE name = $1",
        )
        .bind(user.as_str())
        .bind(id_hash)
        .bind(now)
        .bind(expires_at)
        .write(&self.db)
        .await?;
        if done.rows_affected() == 0 {
            return Err(no_such_user(user));
        }
        Ok(SessionRecord {
            id_hash: id_hash.to_owned(),
            created_at: now,
            last_seen_at: now,
            expires_at,
        })
    }

    /// The session with this hash and its user, if any.
    pub async fn find_session(
        &self,
        id_hash: &str,
    ) -> Result<Option<(SessionRecord, UserRecord)>, StoreError> {
        sqlx::query(&format!(
            "SELECT s.id_hash, s.created_at AS session_created_at, s.last_seen_at, s.expires_at,
                    {USER_COLUMNS}
             FROM ui_sessions s JOIN users u ON u.id = s.user_id WHERE s.id_hash = $1"
        ))
        .bind(id_hash)
        .read_optional(&self.db)
        .await?
        .map(|row| {
            Ok((
                SessionRecord {
                    id_hash: row.try_get("id_hash")?,
                    created_at: row.try_get("session_created_at")?,
                    last_seen_at: row.try_get("last_seen_at")?,
                    expires_at: row.try_get("expires_at")?,
                },
                user_from_row(&row)?,
            ))
        })
        .transpose()
    }

    /// Notes that a session was used now, at most once a minute.
    pub async fn touch_session(&self, session: &SessionRecord) -> Result<(), StoreError> {
        let now = self.now();
        if now - session.last_seen_at < 60_000 {
            return Ok(());
        }
        sqlx::query("UPDATE ui_sessions SET last_seen_at = $2 WHERE id_hash = $1")
            .bind(&session.id_hash)
            .bind(now)
            .write(&self.db)
            .await?;
        Ok(())
    }

    /// Ends every session of a user: "log out everywhere".
    pub async fn delete_sessions_of(&self, user: &UserName) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM ui_sessions WHERE user_id IN (SELECT id FROM users WHERE name = $1)",
        )
        .bind(user.as_str())
        .write(&self.db)
        .await?;
        Ok(done.rows_affected())
    }

    /// Ends a session.
    pub async fn delete_session(&self, id_hash: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM ui_sessions WHERE id_hash = $1")
            .bind(id_hash)
            .write(&self.db)
            .await?;
        Ok(())
    }
}

/// Whether at least one enabled admin remains, checked inside the transaction that changes
/// users, so that two admins demoting each other at once cannot both succeed.
async fn an_admin_remains(tx: &mut crate::gate::WriteTx) -> Result<bool, StoreError> {
    let row = sqlx::query(
        "SELECT COUNT(*) AS n FROM users WHERE role = 'admin' AND apps = '[]' AND disabled_at IS NULL",
    )
    .fetch_one(&mut **tx)
    .await?;
    let admins: i64 = row.try_get("n")?;
    Ok(admins > 0)
}

fn last_admin(name: &UserName) -> StoreError {
    StoreError::Invalid {
        field: "role".into(),
        message: format!(
            "{name} is the last enabled admin; make another user an admin first, so that someone can still manage reposync"
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use reposync_secrets::MasterKey;
    use sqlx::migrate::Migrator;

    use super::*;

    /// An installation from before users had one shared admin token in `api_tokens`. The
    /// migration makes its holder the first admin user, named `admin`, and keeps the token, so
    /// that existing setups keep working.
    #[tokio::test]
    async fn an_installation_from_before_users_keeps_its_token_as_the_first_admins() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = Store::sqlite_url(dir.path());
        sqlx::any::install_default_drivers();
        let before_users = Migrator {
            migrations: Cow::Owned(
                crate::store::SQLITE_MIGRATIONS
                    .migrations
                    .iter()
                    .filter(|m| m.version < 13)
                    .cloned()
                    .collect(),
            ),
            ..Migrator::DEFAULT
        };
        let pool = sqlx::AnyPool::connect(&url).await.expect("connect");
        before_users.run(&pool).await.expect("old schema");
        sqlx::query(
            "INSERT INTO api_tokens (id, name, token_hash, created_at) VALUES ('t1', 'admin', 'hash-of-the-old-token', 1700000000000)",
        )
        .execute(&pool)
        .await
        .expect("old token");
        pool.close().await;

        let store = Store::open(&url, MasterKey::generate())
            .await
            .expect("open");
        assert_eq!(store.count_users().await.expect("count"), 1);
        let (token, user) = store
            .find_user_token("hash-of-the-old-token")
            .await
            .expect("find")
            .expect("the old token still works");
        assert_eq!(user.name.as_str(), "admin");
        assert_eq!(user.role, Role::Admin);
        assert!(user.apps.is_empty());
        assert_eq!(token.name, "admin");
        assert_eq!(token.expires_at, None, "the old token does not expire");
        assert_eq!(token.created_at, 1_700_000_000_000);
    }
}
