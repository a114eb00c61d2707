//! Moving an installation from SQLite to PostgreSQL (`copy_sqlite_to_postgres`): every row of
//! every table arrives as it was, secrets read back under the same master key, a target with
//! rows is refused, and a copy that fails midway leaves the target empty for the next run.
//! The copies need a PostgreSQL target, so those tests run only when `REPOSYNC_TEST_POSTGRES`
//! names a test cluster; the refusals of a bad source run everywhere.

#![allow(clippy::expect_used)] // Test helpers outside #[test] functions may panic.

use std::collections::BTreeMap;
use std::path::Path;

use reposync_model::{
    ConnectorDraft, EmailAddress, EntityName, GitConnector, ObjectId, Person, Role, SecretName,
    UserName,
};
use reposync_secrets::MasterKey;
use reposync_store::{
    ActorKind, AttemptEnd, AuditOutcome, BranchRead, ConflictRecord, EntityChange, EntityWrite,
    NewAuditEvent, NewSyncLink, NewTask, NewUser, NewUserToken, ReadKind, SecretKind, Store,
    StoreError, WebhookChange, WebhookCredentials, copy_sqlite_to_postgres,
};
use reposync_testkit::TestPostgres;
use sqlx::AnyPool;
use sqlx::any::{AnyRow, AnyTypeInfoKind};
use sqlx::{Row as _, TypeInfo as _, ValueRef as _};

const SECRET_VALUE: &[u8] = b"bb-token-never-decrypted-by-the-copy";
const WEBHOOK_TOKEN: &str = "webhook-url-token-0b5c";
const WEBHOOK_SECRET: &str = "webhook-hmac-secret-77e1";
/// Bytes that are not UTF-8, with a NUL among them: a file's content must cross untouched.
const BINARY_CONTENT: &[u8] = &[0xff, 0x00, 0xfe, b'\n', 0x80, b'y', b'a', b'm', b'l'];

/// The same master key each time it is asked for: the source's, and the target's after.
fn master_key() -> MasterKey {
    MasterKey::from_bytes([7; 32])
}

/// The target for a copy, or `None` (and a note) when no test cluster is named.
async fn target_database() -> Option<TestPostgres> {
    if !TestPostgres::available() {
        eprintln!("skipped: REPOSYNC_TEST_POSTGRES names no PostgreSQL cluster to copy into");
        return None;
    }
    TestPostgres::create().await.expect("a test database")
}

fn oid(c: char) -> ObjectId {
    ObjectId::parse(&c.to_string().repeat(40)).expect("object id")
}

fn put(path: &str, content: &[u8]) -> EntityChange {
    EntityChange::Put(EntityWrite {
        path: path.into(),
        kind: "k".into(),
        app: reposync_store::app_of_path(path).map(str::to_owned),
        content: content.to_vec(),
        references: Vec::new(),
    })
}

/// A SQLite store in `data_dir` with rows in most tables, NULLs and blobs among them, made
/// through the store's API, and closed.
async fn populated_sqlite(data_dir: &Path) -> String {
    let url = Store::sqlite_url(data_dir);
    let store = Store::open(&url, master_key()).await.expect("open sqlite");
    let secret = SecretName::parse("bb").expect("name");
    store
        .create_secret(&secret, SecretKind::Text, SECRET_VALUE, None)
        .await
        .expect("secret");
    let connector = store
        .create_connector(
            &GitConnector::parse(&ConnectorDraft {
                name: Some("git".into()),
                url: Some("https://bitbucket.org/acme/config.git".into()),
                username: Some("u".into()),
                password_secret: Some("bb".into()),
                branch: Some("main".into()),
                ..Default::default()
            })
            .expect("connector"),
            WebhookChange::Set {
                credentials: WebhookCredentials {
                    token: WEBHOOK_TOKEN.to_owned().into(),
                    secret: WEBHOOK_SECRET.to_owned().into(),
                },
                token_hash: "hash-of-the-webhook-token".into(),
            },
            None,
        )
        .await
        .expect("connector");
    let link = store
        .create_link(
            &NewSyncLink {
                app: Some("Shop".into()),
                connector_id: connector.id.clone(),
                repo: None,
                branch: "main".into(),
                base_commit: Some(oid('a')),
            },
            &[],
        )
        .await
        .expect("link");
    let alice = UserName::parse("alice").expect("name");
    store
        .create_user(
            &NewUser {
                name: alice.clone(),
                email: Some(EmailAddress::parse("alice@example.com").expect("email")),
                role: Role::Admin,
                apps: Vec::new(),
                password_hash: Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into()),
            },
            Some(("first", "hash-of-alice-first-token")),
        )
        .await
        .expect("alice");
    let bob = UserName::parse("bob").expect("name");
    store
        .create_user(
            &NewUser {
                name: bob.clone(),
                email: None,
                role: Role::Viewer,
                apps: vec![EntityName::parse("Shop").expect("app")],
                password_hash: None,
            },
            None,
        )
        .await
        .expect("bob");
    store
        .create_user_token(&NewUserToken {
            user: &alice,
            name: "ci",
            token_hash: "hash-of-alice-ci-token",
            role: Some(Role::Editor),
            expires_at: None,
        })
        .await
        .expect("token");
    store
        .create_session(&alice, "hash-of-a-session-cookie", i64::MAX / 2)
        .await
        .expect("session");
    store
        .create_password_link(&bob, "hash-of-bob-link", i64::MAX / 2)
        .await
        .expect("password link");
    store
        .record_login_failure("user:mallory", None, 60_000, |_, _, _| None)
        .await
        .expect("login failure");
    let by = Person {
        name: alice.clone(),
        email: None,
    };
    store
        .apply_entities(
            &[
                put(
                    "Setup/Applications/Shop/Index.yaml",
                    b"harnessApiVersion: '1.0'\n",
                ),
                put(
                    "Setup/Applications/Shop/Services/cart/Index.yaml",
                    BINARY_CONTENT,
                ),
                put("Setup/Defaults.yaml", b"harnessApiVersion: '1.0'\n"),
            ],
            false,
            Some(&by),
        )
        .await
        .expect("entities");
    let attempt = store
        .start_attempt(&link.id, None)
        .await
        .expect("start")
        .expect("work waiting")
        .attempt;
    store
        .finish_attempt(
            &attempt.id,
            &AttemptEnd::Conflict {
                head: oid('b'),
                files: vec![ConflictRecord {
                    path: "Setup/Applications/Shop/Index.yaml".into(),
                    ours: Some(BINARY_CONTENT.to_vec()),
                    theirs: None,
                }],
            },
            None,
        )
        .await
        .expect("conflict");
    let branch = store
        .branch_of_link(&link)
        .await
        .expect("branch")
        .expect("the link's branch");
    store
        .record_read(
            &branch.id,
            &BranchRead {
                kind: ReadKind::Snapshot,
                head: None,
                method: "git".into(),
                reason: "the first read is a snapshot".into(),
                fallback_from: None,
                fallback_reason: None,
                requests: 0,
                bytes: 1234,
                duration_ms: 56,
                task_id: None,
            },
        )
        .await
        .expect("read");
    store
        .enqueue_task(&NewTask {
            kind: "test_connection".into(),
            payload: "{}".into(),
            selectors: vec!["eu".into()],
            max_attempts: 3,
            prefer: Some("builtin".into()),
            avoid: None,
        })
        .await
        .expect("task");
    store
        .create_delegate_token("fleet", "hash-of-the-fleet-token", None)
        .await
        .expect("delegate token");
    store
        .record_audit(&NewAuditEvent {
            actor_kind: ActorKind::Anonymous,
            actor: "mallory",
            token: None,
            client_addr: None,
            use_case: "login",
            target: None,
            app: None,
            outcome: AuditOutcome::Refused,
            status: None,
            detail: None,
        })
        .await
        .expect("audit");
    store.close().await;
    url
}

/// One value, as either database holds it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Value {
    Null,
    Integer(i64),
    Text(String),
    Blob(Vec<u8>),
}

fn value(row: &AnyRow, index: usize) -> Value {
    let raw = row.try_get_raw(index).expect("column");
    if raw.is_null() {
        return Value::Null;
    }
    let kind = raw.type_info().kind();
    match kind {
        AnyTypeInfoKind::SmallInt | AnyTypeInfoKind::Integer | AnyTypeInfoKind::BigInt => {
            Value::Integer(row.try_get(index).expect("integer"))
        }
        AnyTypeInfoKind::Text => Value::Text(row.try_get(index).expect("text")),
        AnyTypeInfoKind::Blob => Value::Blob(row.try_get(index).expect("blob")),
        other => panic!("a value of type {other:?} ({})", raw.type_info().name()),
    }
}

/// A read-only pool on a SQLite file, or a pool on a PostgreSQL database.
async fn pool(url: &str) -> AnyPool {
    sqlx::any::install_default_drivers();
    let url = match url.split_once('?') {
        Some((file, _)) if url.starts_with("sqlite:") => format!("{file}?mode=ro"),
        _ => url.to_owned(),
    };
    AnyPool::connect(&url).await.expect("connect")
}

/// Every table of the SQLite database (its own and the migrations' aside) with its columns.
async fn tables_of(sqlite: &AnyPool) -> Vec<(String, Vec<String>)> {
    let names: Vec<String> = sqlx::query(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite%' AND name <> '_sqlx_migrations' ORDER BY name",
    )
    .fetch_all(sqlite)
    .await
    .expect("tables")
    .iter()
    .map(|row| row.get("name"))
    .collect();
    let mut tables = Vec::new();
    for name in names {
        let columns = sqlx::query("SELECT name FROM pragma_table_info($1) ORDER BY cid")
            .bind(&name)
            .fetch_all(sqlite)
            .await
            .expect("columns")
            .iter()
            .map(|row| row.get("name"))
            .collect();
        tables.push((name, columns));
    }
    tables
}

/// Every row of each of `tables` in the database behind `pool`, its columns in the order
/// given (the same on both sides), the rows sorted.
async fn every_row(
    pool: &AnyPool,
    tables: &[(String, Vec<String>)],
) -> BTreeMap<String, Vec<Vec<Value>>> {
    let mut all = BTreeMap::new();
    for (table, columns) in tables {
        let quoted: Vec<String> = columns.iter().map(|c| format!("\"{c}\"")).collect();
        let mut rows: Vec<Vec<Value>> =
            sqlx::query(&format!("SELECT {} FROM \"{table}\"", quoted.join(", ")))
                .fetch_all(pool)
                .await
                .unwrap_or_else(|e| panic!("read {table}: {e}"))
                .iter()
                .map(|row| (0..columns.len()).map(|i| value(row, i)).collect())
                .collect();
        rows.sort();
        all.insert(table.clone(), rows);
    }
    all
}

/// The tables `populated_sqlite` puts rows in: the copy is checked on them, not on nothing.
const POPULATED: &[&str] = &[
    "audit_events",
    "changesets",
    "commit_attempts",
    "connector_secrets",
    "connectors",
    "delegate_tokens",
    "entities",
    "login_failures",
    "password_links",
    "secrets",
    "sync_branches",
    "sync_errors",
    "sync_links",
    "sync_reads",
    "tasks",
    "ui_sessions",
    "user_tokens",
    "users",
];

#[tokio::test]
async fn every_row_is_copied_as_stored_and_secrets_read_back_under_the_same_key() {
    let Some(target) = target_database().await else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let source = populated_sqlite(dir.path()).await;
    let sqlite = pool(&source).await;
    let tables = tables_of(&sqlite).await;
    let before = every_row(&sqlite, &tables).await;

    let report = copy_sqlite_to_postgres(&source, target.url())
        .await
        .expect("copy");

    let source_rows = every_row(&sqlite, &tables).await;
    assert!(source_rows == before, "the source is only read");
    let target_rows = every_row(&pool(target.url()).await, &tables).await;
    for table in POPULATED {
        assert!(
            !source_rows[*table].is_empty(),
            "the test puts rows in {table}"
        );
    }
    for (table, rows) in &source_rows {
        assert_eq!(
            &target_rows[table], rows,
            "table {table} holds the same rows on both sides"
        );
    }
    let reported: BTreeMap<String, u64> = report
        .tables
        .iter()
        .map(|t| (t.table.clone(), t.rows))
        .collect();
    let counted: BTreeMap<String, u64> = source_rows
        .iter()
        .map(|(table, rows)| (table.clone(), rows.len() as u64))
        .collect();
    assert_eq!(reported, counted, "the report counts every table's rows");
    let order: Vec<&str> = report.tables.iter().map(|t| t.table.as_str()).collect();
    let position = |table: &str| order.iter().position(|t| *t == table).expect(table);
    assert!(position("connectors") < position("sync_links"));
    assert!(position("sync_branches") < position("sync_reads"));
    assert!(position("users") < position("user_tokens"));
    sqlite.close().await;

    let copied = Store::open(target.url(), master_key())
        .await
        .expect("open the target");
    let (_, value) = copied
        .reveal_secret(&SecretName::parse("bb").expect("name"))
        .await
        .expect("the secret opens under the same key");
    assert_eq!(value.as_slice(), SECRET_VALUE);
    let webhook = copied
        .webhook_credentials(&EntityName::parse("git").expect("name"))
        .await
        .expect("webhook")
        .expect("the connector's webhook");
    assert_eq!(webhook.token.as_str(), WEBHOOK_TOKEN);
    assert_eq!(webhook.secret.as_str(), WEBHOOK_SECRET);
    let users: Vec<String> = copied
        .list_users()
        .await
        .expect("users")
        .iter()
        .map(|u| u.name.as_str().to_owned())
        .collect();
    assert_eq!(users, ["alice", "bob"]);
    copied.close().await;

    let other_key = Store::open(target.url(), MasterKey::generate())
        .await
        .expect("open the target");
    let refused = other_key
        .reveal_secret(&SecretName::parse("bb").expect("name"))
        .await
        .expect_err("another key opens nothing");
    assert!(matches!(refused, StoreError::Crypto(_)), "{refused}");
    other_key.close().await;
}

#[tokio::test]
async fn a_target_that_holds_rows_is_refused_by_table_and_left_as_it_was() {
    let Some(target) = target_database().await else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let source = populated_sqlite(dir.path()).await;
    let existing = Store::open(target.url(), MasterKey::generate())
        .await
        .expect("open the target");
    existing
        .create_secret(
            &SecretName::parse("theirs").expect("name"),
            SecretKind::Text,
            b"v",
            None,
        )
        .await
        .expect("a row in the target");
    existing.close().await;

    // The test cluster trusts every local connection, so the password is never checked:
    // it is here to be kept out of the message.
    let password = "not-to-be-shown-5151";
    let (scheme, rest) = target.url().split_once("://").expect("a URL");
    let (user, host) = rest
        .split_once('@')
        .expect("the test cluster's URL names its user");
    let with_password = format!("{scheme}://{user}:{password}@{host}");
    let refused = copy_sqlite_to_postgres(&source, &with_password)
        .await
        .expect_err("a target with rows");
    let message = refused.to_string();
    assert!(
        matches!(&refused, StoreError::Invalid { field, .. } if field == "to"),
        "{message}"
    );
    assert!(message.contains("table secrets holds rows"), "{message}");
    assert!(message.contains("fresh database"), "{message}");
    assert!(message.contains(&format!("{user}:***@")), "{message}");
    assert!(!message.contains(password), "{message}");

    let sqlite = pool(&source).await;
    let tables = tables_of(&sqlite).await;
    let target_rows = every_row(&pool(target.url()).await, &tables).await;
    for (table, rows) in &target_rows {
        let expected = usize::from(table == "secrets");
        assert_eq!(rows.len(), expected, "{table}: {rows:?}");
    }
}

#[tokio::test]
async fn a_copy_that_fails_midway_leaves_the_target_empty_and_runs_again() {
    let Some(target) = target_database().await else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let source = populated_sqlite(dir.path()).await;
    // A read of a branch that does not exist: SQLite takes it with its foreign keys off,
    // PostgreSQL refuses it, after the tables before it in the copy are in.
    let writable = sqlx::AnyPool::connect(&source).await.expect("connect");
    let mut connection = writable.acquire().await.expect("connection");
    sqlx::query("PRAGMA foreign_keys = OFF")
        .execute(&mut *connection)
        .await
        .expect("foreign keys off");
    sqlx::query(
        "INSERT INTO sync_reads (id, branch_id, kind, method, reason, requests, bytes, duration_ms, read_at)
         VALUES ('orphan-read', 'no-such-branch', 'snapshot', 'git', 'r', 0, 0, 0, 0)",
    )
    .execute(&mut *connection)
    .await
    .expect("an orphan row");
    drop(connection);
    writable.close().await;

    let failed = copy_sqlite_to_postgres(&source, target.url())
        .await
        .expect_err("PostgreSQL refuses the orphan");
    let message = failed.to_string();
    assert!(
        matches!(&failed, StoreError::CopyFailed { table, .. } if table == "sync_reads"),
        "{message}"
    );
    assert!(message.contains("foreign key"), "{message}");
    assert!(message.contains("run the copy again"), "{message}");

    let sqlite = pool(&source).await;
    let tables = tables_of(&sqlite).await;
    let target_pool = pool(target.url()).await;
    for (table, rows) in every_row(&target_pool, &tables).await {
        assert!(
            rows.is_empty(),
            "{table} holds rows after a failed copy: {rows:?}"
        );
    }
    sqlite.close().await;

    let writable = sqlx::AnyPool::connect(&source).await.expect("connect");
    sqlx::query("DELETE FROM sync_reads WHERE id = 'orphan-read'")
        .execute(&writable)
        .await
        .expect("the orphan goes");
    writable.close().await;
    copy_sqlite_to_postgres(&source, target.url())
        .await
        .expect("the second run copies");
    let sqlite = pool(&source).await;
    assert_eq!(
        every_row(&target_pool, &tables).await,
        every_row(&sqlite, &tables).await
    );
}

/// Refusals of the source come before the target is touched, so these run without
/// PostgreSQL: the target named here does not exist.
#[tokio::test]
async fn a_source_that_is_not_this_reposyncs_newest_database_is_refused() {
    let nowhere = "postgres://nobody@127.0.0.1:1/none";
    let refused = |result: Result<reposync_store::CopyReport, StoreError>| {
        let error = result.expect_err("refused");
        assert!(
            matches!(&error, StoreError::Invalid { field, .. } if field == "from"),
            "{error}"
        );
        error.to_string()
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = format!("sqlite:{}", dir.path().join("missing.db").display());
    let message = refused(copy_sqlite_to_postgres(&missing, nowhere).await);
    assert!(message.contains("is not a file"), "{message}");
    let message = refused(copy_sqlite_to_postgres("postgres://x@db/reposync", nowhere).await);
    assert!(message.contains("give it as sqlite:PATH"), "{message}");

    let source = populated_sqlite(dir.path()).await;
    let writable = sqlx::AnyPool::connect(&source).await.expect("connect");
    let newest: i64 = sqlx::query("SELECT MAX(version) AS v FROM _sqlx_migrations")
        .fetch_one(&writable)
        .await
        .expect("version")
        .get("v");
    sqlx::query("DELETE FROM _sqlx_migrations WHERE version = $1")
        .bind(newest)
        .execute(&writable)
        .await
        .expect("an older schema, as far as the copy can tell");
    let message = refused(copy_sqlite_to_postgres(&source, nowhere).await);
    assert!(message.contains("older than this reposync's"), "{message}");
    assert!(
        message.contains("start this version's `reposync serve`"),
        "{message}"
    );

    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, installed_on, success, checksum, execution_time)
         VALUES ($1, 'restored', CURRENT_TIMESTAMP, 1, x'00', 0), (9999, 'from the future', CURRENT_TIMESTAMP, 1, x'00', 0)",
    )
    .bind(newest)
    .execute(&writable)
    .await
    .expect("a newer schema");
    writable.close().await;
    let message = refused(copy_sqlite_to_postgres(&source, nowhere).await);
    assert!(
        message.contains("newer than this reposync knows"),
        "{message}"
    );
}
