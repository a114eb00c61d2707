//! The parts of the tree that are synced on their own: the account's own files, or one
//! application's folder. This module is the one place that knows how the layout divides the
//! tree between them (`Setup/Applications/<name>/` is an application's; everything else under
//! `Setup/` is the account's), and where each scope's folder and `Index.yaml` are.

use std::fmt;

use crate::tree::ROOT;

/// The folder under [`ROOT`] that holds the applications.
const APPLICATIONS: &str = "Applications";

/// A scope of the tree: the account's own files (connectors, cloud providers, …), or one
/// application's folder.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    Account,
    App(String),
}

impl Scope {
    /// The scope of an application, or the account's for none.
    pub fn of_app(app: Option<&str>) -> Scope {
        match app {
            Some(app) => Scope::App(app.to_owned()),
            None => Scope::Account,
        }
    }

    /// The scope a path of the tree belongs to.
    pub fn of_path(path: &str) -> Scope {
        Scope::of_app(app_of_path(path))
    }

    /// The application, or `None` for the account.
    pub fn app(&self) -> Option<&str> {
        match self {
            Scope::Account => None,
            Scope::App(app) => Some(app),
        }
    }

    /// Whether a path of the tree belongs to this scope.
    pub fn covers(&self, path: &str) -> bool {
        app_of_path(path) == self.app()
    }

    /// The folder to read from a branch for this scope, ending with `/`: the application's
    /// folder, or all of `Setup/` for the account (whose files are those no application
    /// covers).
    pub fn folder(&self) -> String {
        match self {
            Scope::Account => format!("{ROOT}/"),
            Scope::App(app) => app_folder(app),
        }
    }

    /// The application's `Index.yaml`; the account has none.
    pub fn index_path(&self) -> Option<String> {
        self.app().map(app_index)
    }
}

/// `account`, or `app:<name>`, as listings show a scope.
impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Account => f.write_str("account"),
            Scope::App(app) => write!(f, "app:{app}"),
        }
    }
}

/// The application a path belongs to, or `None` for the account's own files.
pub fn app_of_path(path: &str) -> Option<&str> {
    let rest = path
        .strip_prefix(ROOT)?
        .strip_prefix('/')?
        .strip_prefix(APPLICATIONS)?
        .strip_prefix('/')?;
    rest.split_once('/').map(|(app, _)| app)
}

/// The application whose `Index.yaml` this path is, if it is one.
pub fn app_of_index(path: &str) -> Option<&str> {
    let app = app_of_path(path)?;
    (path == app_index(app)).then_some(app)
}

/// An application's folder, ending with `/`.
pub fn app_folder(app: &str) -> String {
    format!("{ROOT}/{APPLICATIONS}/{app}/")
}

/// An application's `Index.yaml`.
pub fn app_index(app: &str) -> String {
    format!("{ROOT}/{APPLICATIONS}/{app}/Index.yaml")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_go_to_their_application_or_to_the_account() {
        assert_eq!(
            app_of_path("Setup/Applications/Shop/Index.yaml"),
            Some("Shop")
        );
        assert_eq!(
            app_of_path("Setup/Applications/Shop/Services/cart/Index.yaml"),
            Some("Shop")
        );
        assert_eq!(app_of_path("Setup/Applications/loose.yaml"), None);
        assert_eq!(app_of_path("Setup/Cloud Providers/k8s.yaml"), None);
        assert_eq!(app_of_path("Setup/ApplicationsX/Shop/a.yaml"), None);
        assert_eq!(
            app_of_index("Setup/Applications/Shop/Index.yaml"),
            Some("Shop")
        );
        assert_eq!(
            app_of_index("Setup/Applications/Shop/Services/Index.yaml"),
            None
        );
        let shop = Scope::of_path("Setup/Applications/Shop/Workflows/w.yaml");
        assert_eq!(shop, Scope::App("Shop".into()));
        assert_eq!(shop.to_string(), "app:Shop");
        assert_eq!(shop.folder(), "Setup/Applications/Shop/");
        assert_eq!(
            shop.index_path().as_deref(),
            Some("Setup/Applications/Shop/Index.yaml")
        );
        assert!(Scope::Account.covers("Setup/Notification Groups/n.yaml"));
        assert!(!Scope::Account.covers("Setup/Applications/Shop/Index.yaml"));
        assert_eq!(Scope::Account.folder(), "Setup/");
        assert_eq!(Scope::Account.to_string(), "account");
    }
}
