//! Who may do what: user names, roles, and the person a change is made by.
//!
//! The rule itself is small and lives here, pure, so that the API, the CLI and the web UI ask
//! the same question: a user holds one role, everywhere or only in the applications they were
//! granted, and reads everything else as a viewer.

use serde::Serialize;

use crate::email::EmailAddress;
use crate::error::FieldError;
use crate::name::EntityName;
use crate::scope::Scope;

/// Longest user name accepted, in bytes.
const MAX_USER_NAME_BYTES: usize = 64;

/// What a user may do, each role including the ones below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads everything except secret material, which nobody can read.
    Viewer,
    /// Also changes the configuration tree, applications and sync links, and runs Tests.
    Editor,
    /// Also manages secrets, connectors, users, tokens, delegates and delegate tokens.
    Admin,
}

impl Role {
    /// Every role, weakest first.
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Editor, Role::Admin];

    /// Parses `viewer`, `editor` or `admin`, reporting problems against the field `role`.
    pub fn parse(text: &str) -> Result<Role, FieldError> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == text)
            .ok_or_else(|| {
                FieldError::new(
                    "role",
                    format!("{text:?} is not a role; use viewer, editor or admin"),
                )
            })
    }

    /// The role's name as users write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Editor => "editor",
            Role::Admin => "admin",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Role {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <String as serde::Deserialize>::deserialize(d)?;
        Role::parse(&text).map_err(|e| serde::de::Error::custom(e.message))
    }
}

/// A user's login name: 1 to 64 ASCII letters, digits, `.`, `_` or `-`, starting with a
/// letter or digit. It appears in commit trailers and audit lines, so it stays plain.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct UserName(String);

impl UserName {
    /// Parses a user name, reporting problems against the field `name`.
    pub fn parse(text: &str) -> Result<UserName, FieldError> {
        let err = |m: String| FieldError::new("name", m);
        if text.is_empty() {
            return Err(err("must not be empty".into()));
        }
        if text.len() > MAX_USER_NAME_BYTES {
            return Err(err(format!(
                "is {} bytes long; the limit is {MAX_USER_NAME_BYTES}",
                text.len()
            )));
        }
        if !text.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            return Err(err("must start with a letter or a digit".into()));
        }
        if let Some(c) = text
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        {
            return Err(err(format!(
                "must not contain {c:?}; use letters, digits, '.', '_' and '-'"
            )));
        }
        Ok(UserName(text.to_owned()))
    }

    /// The name as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

crate::newtype::parsed_string_traits!(UserName);

/// The person a change is made by: a user's name, and their e-mail address when they gave one.
/// Commits carry it as a `Reposync-User:` trailer, and as the author when the connector asks.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
pub struct Person {
    pub name: UserName,
    pub email: Option<EmailAddress>,
}

/// What a caller may do: a role, everywhere or only in some applications.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rights {
    pub role: Role,
    /// Where `role` applies; empty means everywhere. Elsewhere the caller is a viewer.
    pub apps: Vec<EntityName>,
}

impl Rights {
    /// The role the caller holds in `scope`.
    pub fn role_in(&self, scope: &Scope) -> Role {
        if self.apps.is_empty() {
            return self.role;
        }
        match scope {
            Scope::App(app) if self.apps.iter().any(|a| a.as_str() == app) => self.role,
            _ => Role::Viewer,
        }
    }

    /// These rights capped at `cap`: what a token of this holder carries.
    pub fn capped(&self, cap: Role) -> Rights {
        Rights {
            role: self.role.min(cap),
            apps: self.apps.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(name: &str) -> EntityName {
        EntityName::parse(name).unwrap()
    }

    #[test]
    fn roles_order_and_parse_as_users_write_them() {
        assert!(Role::Viewer < Role::Editor && Role::Editor < Role::Admin);
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()).unwrap(), role);
        }
        let error = Role::parse("owner").unwrap_err();
        assert_eq!(error.field, "role");
        assert!(
            error.message.contains("viewer, editor or admin"),
            "{error:?}"
        );
    }

    #[test]
    fn user_names_stay_plain() {
        for good in ["alice", "bob.smith", "ci-bot_2", "7up"] {
            assert_eq!(UserName::parse(good).unwrap().as_str(), good);
        }
        for bad in [
            "",
            "-x",
            ".x",
            "a b",
            "a/b",
            "ålice",
            "a\u{200b}b",
            &"a".repeat(65),
        ] {
            let error = UserName::parse(bad).unwrap_err();
            assert_eq!(error.field, "name", "{bad:?}");
        }
    }

    #[test]
    fn an_application_grant_gives_its_role_there_and_viewer_elsewhere() {
        let shop = Rights {
            role: Role::Editor,
            apps: vec![app("Shop")],
        };
        assert_eq!(shop.role_in(&Scope::App("Shop".into())), Role::Editor);
        assert_eq!(shop.role_in(&Scope::App("Bank".into())), Role::Viewer);
        assert_eq!(shop.role_in(&Scope::Account), Role::Viewer);
        let everywhere = Rights {
            role: Role::Editor,
            apps: vec![],
        };
        assert_eq!(everywhere.role_in(&Scope::Account), Role::Editor);
        assert_eq!(everywhere.role_in(&Scope::App("Bank".into())), Role::Editor);
    }

    #[test]
    fn a_token_carries_at_most_its_owners_rights() {
        let admin = Rights {
            role: Role::Admin,
            apps: vec![],
        };
        assert_eq!(admin.capped(Role::Viewer).role, Role::Viewer);
        let viewer = Rights {
            role: Role::Viewer,
            apps: vec![],
        };
        assert_eq!(viewer.capped(Role::Admin).role, Role::Viewer);
    }
}
