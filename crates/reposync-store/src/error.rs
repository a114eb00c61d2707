/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{what} {name:?} does not exist")]
    NotFound { what: &'static str, name: String },
    #[error("{what} {name:?} already exists")]
    AlreadyExists { what: &'static str, name: String },
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error("{what} {name:?} is used by {user_kind}{}: {}", if used_by.len() == 1 { "" } else { "s" }, used_by.join(", "))]
    InUse {
        what: &'static str,
        name: String,
        /// What the users are (`connector`, `file`), for the message.
        user_kind: &'static str,
        used_by: Vec<String>,
    },
    #[error("{what} {name:?} was changed by someone else meanwhile; read it again and retry")]
    Conflict { what: &'static str, name: String },
    /// A name that belongs to someone else: a delegate name held by another delegate token.
    #[error("{what} {name:?} belongs to {holder}")]
    Taken {
        what: &'static str,
        name: String,
        /// Who holds it, for the message (`delegate token "fleet"`).
        holder: String,
    },
    /// A write for a branch by a replica that no longer holds the branch's lease.
    #[error("this server no longer holds the lease on branch {branch}; another server works on it")]
    Fenced { branch: String },
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
    #[error("cannot decrypt a stored secret: {0}")]
    Crypto(String),
    #[error("{0}")]
    UnsupportedDatabase(String),
    /// A copy between databases (`reposync store migrate`) stopped at `table`; its
    /// transaction was rolled back, so the target holds nothing of it.
    #[error(
        "cannot copy table {table}: {reason}; nothing was copied (the target is as empty as before): correct that, then run the copy again"
    )]
    CopyFailed { table: String, reason: String },
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl StoreError {
    /// Whether the database could not be reached at all (refused, cut off, no connection
    /// free in time), as opposed to refusing what was asked: the request may succeed later
    /// unchanged.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            StoreError::Database(
                sqlx::Error::Io(_)
                    | sqlx::Error::PoolTimedOut
                    | sqlx::Error::PoolClosed
                    | sqlx::Error::Tls(_)
                    | sqlx::Error::Protocol(_)
                    | sqlx::Error::WorkerCrashed
            )
        ) || self.is_admin_shutdown()
    }

    /// PostgreSQL ended the session (`57P01` admin shutdown, `57P02` crash shutdown, `57P03`
    /// cannot connect now): the server is stopping or starting.
    fn is_admin_shutdown(&self) -> bool {
        matches!(self, StoreError::Database(sqlx::Error::Database(db))
            if matches!(db.code().as_deref(), Some("57P01" | "57P02" | "57P03")))
    }

    /// A transaction the database gave up on so that another could go on (`40001`
    /// serialisation failure, `40P01` deadlock): running it again is the cure.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Database(sqlx::Error::Database(db))
            if matches!(db.code().as_deref(), Some("40001" | "40P01")))
    }

    pub(crate) fn from_unique_violation(
        err: sqlx::Error,
        what: &'static str,
        name: &str,
    ) -> StoreError {
        match &err {
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::AlreadyExists {
                what,
                name: name.to_owned(),
            },
            _ => StoreError::Database(err),
        }
    }
}
