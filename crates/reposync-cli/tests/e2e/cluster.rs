//! Several servers on one PostgreSQL, behind one address: two `reposync serve` replicas
//! without built-in delegates, two remote delegates that reach them through a load balancer,
//! the testkit's git server and its Bitbucket emulator sending webhooks through the same
//! balancer. Runs only when `REPOSYNC_TEST_POSTGRES` names a test cluster (`scripts/test`
//! starts one).

#![allow(clippy::expect_used)] // Test helpers outside #[test] functions may panic.

use crate::common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::Backend;
use common::TestApp;
use common::balancer::Balancer;
use common::delegate::Delegate;
use common::git_fixture::{Fixture, REPO, SHOP, TOKEN, USER, runtime, workflow};
use common::hold::Hold;
use reposync_api::{Client, TaskView, decode};
use reposync_testkit::{BitbucketEmulator, GitHttpsServer, RepoRoot, TestCa, TestPostgres};
use reposync_testkit::{WebhookFormat, WebhookTarget};
use serde_json::Value;

/// How long a replica's lease on a branch, and a delegate's on a task, last here: short, so
/// that the takeovers this test causes happen soon. (Nothing here waits for a time; the test
/// waits for outcomes.)
const LEASE_SECONDS: &str = "3";

/// The cluster: the fixture's `app` is the first replica, `second` the other.
struct Cluster {
    f: Fixture,
    second: TestApp,
    balancer: Balancer,
    delegates: Vec<Delegate>,
}

impl Cluster {
    fn start() -> Cluster {
        let rt = runtime();
        let root = RepoRoot::new().expect("root");
        root.create_repo(REPO, "main", &[("README.md", "x\n")])
            .expect("repo");
        let ca = TestCa::new("cluster CA").expect("ca");
        let server = rt
            .block_on(GitHttpsServer::start(&root, &ca, USER, TOKEN))
            .expect("https");
        let args = [
            "--no-builtin-delegate",
            "--branch-lease",
            LEASE_SECONDS,
            "--delegate-lease",
            LEASE_SECONDS,
        ];
        let first = TestApp::spawn_on(Backend::Postgres, &args);
        // The second replica shares the database and the master key (its file, copied by the
        // operator), and makes no first admin: the first one's token works on both.
        let second = first.spawn_replica(&args);
        let balancer = Balancer::start(&[&first.url, &second.url]);
        let ca_file = first.dir.path().join("ca.pem");
        std::fs::write(&ca_file, ca.cert_pem()).expect("ca");
        first
            .cli(
                &["secret", "create", "bb-token", "--value-stdin"],
                Some(TOKEN),
            )
            .ok();
        let token = first
            .cli(&["--json", "delegate-token", "create", "fleet"], None)
            .ok()
            .json()["token"]
            .as_str()
            .expect("token")
            .to_owned();
        let delegates = ["d1", "d2"]
            .iter()
            .map(|name| Delegate::start_at(first.dir.path(), &balancer.url, name, &token))
            .collect();
        let cluster = Cluster {
            f: Fixture {
                app: first,
                root,
                server,
                ca,
                rt,
            },
            second,
            balancer,
            delegates,
        };
        // Saved untested: the delegates that run Tests connect next.
        cluster.f.add_connector(
            "git",
            &cluster.f.server.repo_url(REPO),
            &[
                "--no-test",
                "--author-name",
                "Sync Bot",
                "--author-email",
                "sync-bot@example.com",
            ],
        );
        cluster.wait_connected(&["d1", "d2"]);
        cluster
    }

    fn replicas(&self) -> [&TestApp; 2] {
        [&self.f.app, &self.second]
    }

    /// Waits until both replicas show every delegate of `names` connected, whichever replica
    /// each one talks to.
    fn wait_connected(&self, names: &[&str]) {
        for replica in self.replicas() {
            eventually(
                "the delegates connected, seen from each replica",
                replica,
                || {
                    let listed = replica
                        .cli(&["--json", "delegate", "list"], None)
                        .ok()
                        .json();
                    names.iter().all(|name| {
                        listed["items"]
                            .as_array()
                            .expect("items")
                            .iter()
                            .any(|d| d["name"] == *name && d["connected"] == true)
                    })
                },
            );
        }
    }

    /// The replica holding the lease on the synced branch now, read from the database.
    fn lease_holder(&self) -> Option<usize> {
        let holder: Option<String> = self.f.rt.block_on(async {
            use sqlx::Connection as _;
            let url = self.f.app.database_url().expect("PostgreSQL");
            let mut db = sqlx::PgConnection::connect(url).await.expect("connect");
            sqlx::query_scalar::<_, Option<String>>(
                "SELECT holder FROM branch_leases ORDER BY token DESC LIMIT 1",
            )
            .fetch_optional(&mut db)
            .await
            .expect("leases")
            .flatten()
        });
        let holder = holder?;
        self.replicas().iter().position(|replica| {
            std::fs::read_to_string(replica.data_dir().join("replica-id"))
                .is_ok_and(|id| id.trim() == holder)
        })
    }

    /// Writes `yaml` at `path` through replica `n`.
    fn put_on(&self, n: usize, path: &str, yaml: &str) {
        let replica = self.replicas()[n];
        let file = replica.dir.path().join("apply.yaml");
        std::fs::write(&file, yaml).expect("write");
        replica
            .cli(
                &["apply", "--path", path, "-f", file.to_str().expect("utf-8")],
                None,
            )
            .ok();
    }

    /// How many times a delegate found on the branch a push whose answer was lost (its
    /// pusher or the server waiting for it died after it landed), in every delegate's log.
    fn lost_answers(&self) -> usize {
        self.delegates
            .iter()
            .map(|d| d.log().matches("whose answer was lost").count())
            .sum()
    }

    /// Checks that the branch's history adds `path` in exactly one commit.
    #[track_caller]
    fn assert_added_once(&self, path: &str) {
        let messages = self.messages();
        let adding = messages
            .iter()
            .filter(|m| m.contains(&format!("ADD: {path}")))
            .count();
        assert_eq!(adding, 1, "pushed exactly once: {messages:#?}");
    }

    /// Every message on the branch, oldest first.
    fn messages(&self) -> Vec<String> {
        self.f
            .git(&["log", "--reverse", "--format=%B%x00", "main"])
            .split('\0')
            .map(|m| m.trim().to_owned())
            .filter(|m| !m.is_empty())
            .collect()
    }
}

/// Waits until `check` passes, polling.
fn eventually(what: &str, app: &TestApp, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while !check() {
        assert!(
            Instant::now() < deadline,
            "{what}: not after 90 s\n{}",
            app.server_log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The step numbers the descriptions of `steps.yaml` carried, commit by commit, oldest first.
fn steps_in_history(c: &Cluster, path: &str) -> Vec<u32> {
    c.f.git(&["log", "--reverse", "--format=%H", "main", "--", path])
        .lines()
        .filter_map(|commit| {
            let text = c.f.git(&["show", &format!("{commit}:{path}")]);
            text.lines()
                .find_map(|l| l.strip_prefix("description: step "))
                .and_then(|n| n.trim().parse().ok())
        })
        .collect()
}

#[test]
fn two_replicas_behind_one_address_share_the_work_and_lose_nothing_when_one_dies() {
    if !TestPostgres::available() {
        eprintln!("skipped: REPOSYNC_TEST_POSTGRES names no PostgreSQL to run replicas on");
        return;
    }
    let mut c = Cluster::start();

    // A Test started on one replica is waited on through the other.
    let client =
        |app: &TestApp| Client::new(&app.url, Some(c.f.app.token.clone())).expect("client");
    let (first, second) = (client(&c.f.app), client(&c.second));
    let started: TaskView = decode(
        c.f.rt
            .block_on(first.call(
                reqwest::Method::POST,
                &["connectors", "git", "test"],
                &serde_json::json!({}),
            ))
            .expect("the Test starts"),
    )
    .expect("a task");
    let waited: TaskView = decode(
        c.f.rt
            .block_on(second.get(
                &["tasks", started.id.as_str()],
                &[("wait_ms", "30000".to_owned())],
                Duration::from_secs(45),
            ))
            .expect("the task, through the other replica"),
    )
    .expect("a task view");
    assert_eq!(waited.status, "succeeded", "{:?}", waited.result);
    assert_eq!(
        waited.result.as_ref().map(|r| r["ok"].clone()),
        Some(Value::Bool(true))
    );

    c.second.cli(&["app", "create", "Shop"], None).ok();

    // A fetch's archive reached one replica (the delegate's upload went there); its download
    // works through either, byte for byte the same.
    let fetched: TaskView = decode(
        c.f.rt
            .block_on(first.call(
                reqwest::Method::POST,
                &["connectors", "git", "fetch"],
                &serde_json::json!({"paths": ["README.md"]}),
            ))
            .expect("the fetch starts"),
    )
    .expect("a task");
    let done: TaskView = decode(
        c.f.rt
            .block_on(second.get(
                &["tasks", fetched.id.as_str()],
                &[("wait_ms", "30000".to_owned())],
                Duration::from_secs(45),
            ))
            .expect("the fetch, through the other replica"),
    )
    .expect("a task view");
    assert_eq!(done.status, "succeeded", "{:?}", done.result);
    let archives: Vec<Vec<u8>> = [&first, &second]
        .iter()
        .map(|client| {
            c.f.rt.block_on(async {
                client
                    .download(
                        &["tasks", fetched.id.as_str(), "archive"],
                        Duration::from_secs(30),
                    )
                    .await
                    .expect("the archive, through each replica")
                    .bytes()
                    .await
                    .expect("its bytes")
                    .to_vec()
            })
        })
        .collect();
    assert!(!archives[0].is_empty());
    assert_eq!(
        archives[0], archives[1],
        "the same archive through both replicas"
    );
    let received: Vec<bool> = c
        .replicas()
        .iter()
        .map(|replica| replica.server_log().contains("received a fetch's archive"))
        .collect();
    assert_eq!(
        received.iter().filter(|r| **r).count(),
        1,
        "one replica received the upload; the other served it from the database: {received:?}"
    );
    c.f.app
        .cli(
            &["sync", "enable", "--app", "Shop", "--connector", "git"],
            None,
        )
        .ok();

    // API edits sent to the replicas in turn: each is in Git exactly once, in order.
    let steps = format!("{SHOP}/Workflows/steps.yaml");
    for step in 0..8u32 {
        c.put_on(
            step as usize % 2,
            &steps,
            &workflow(&format!("step {step}")),
        );
    }
    c.f.wait_settled();
    c.f.assert_converged(false);
    let seen = steps_in_history(&c, &steps);
    assert_eq!(
        seen.last(),
        Some(&7),
        "the last change is the branch's: {seen:?}"
    );
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "the changes went out in the order they were made: {seen:?}"
    );

    // Pushes in Git, announced by webhooks through the balancer to either replica, are read
    // once each and seen by both.
    let (token, secret) = c.f.webhook_credentials();
    let emulator =
        c.f.rt
            .block_on(BitbucketEmulator::start(&c.f.root))
            .expect("emulator");
    emulator
        .add_webhook(
            REPO,
            WebhookTarget::new(
                format!("{}/api/webhooks/git/{token}", c.balancer.url),
                WebhookFormat::Cloud,
            )
            .with_secret(secret),
        )
        .expect("webhook");
    let from_git = format!("{SHOP}/Workflows/from git.yaml");
    let mut pushed = Vec::new();
    for n in 0..4 {
        let yaml = workflow(&format!("git {n}"));
        pushed.push(
            emulator
                .commit(
                    REPO,
                    "main",
                    &[(from_git.as_str(), yaml.as_str())],
                    "from git",
                )
                .expect("commit"),
        );
    }
    for replica in c.replicas() {
        eventually("the last push in Git, on each replica", replica, || {
            let shown = replica.cli(&["get", &from_git], None);
            shown.code == 0 && shown.stdout.contains("git 3")
        });
    }
    c.f.wait_read_back();
    let activity = c
        .second
        .cli(&["--json", "sync", "activity", "--limit", "1000"], None)
        .ok()
        .json();
    let mut reads: HashMap<String, usize> = HashMap::new();
    for commit in activity["inbound"].as_array().expect("inbound") {
        *reads
            .entry(commit["commit_id"].as_str().expect("id").to_owned())
            .or_default() += 1;
    }
    for commit in &pushed {
        assert!(
            reads.get(commit).copied().unwrap_or(0) <= 1,
            "commit {commit} applied more than once: {activity:#}"
        );
    }
    assert!(
        reads.get(pushed.last().expect("pushed")) == Some(&1),
        "the last push was read: {activity:#}"
    );
    c.f.rt
        .block_on(emulator.wait_idle(Duration::from_secs(10)))
        .expect("emulator idle");

    // SIGKILL of the replica that holds the branch, after a push landed and before its
    // answer was recorded: the other replica takes the branch over within a lease and the
    // change is in Git exactly once.
    c.f.wait_settled();
    let hold = Hold::install(&c.f, "post-receive", 0);
    hold.arm();
    let landed = format!("{SHOP}/Workflows/landed.yaml");
    let holder = loop {
        // The branch's lease goes to whichever replica works on it first; the edit is made
        // through the other.
        if let Some(holder) = c.lease_holder() {
            break holder;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    c.put_on(
        1 - holder,
        &landed,
        &workflow("landed while its server died"),
    );
    hold.wait_for("entered", &c.f);
    let holder_app = if holder == 0 {
        &mut c.f.app
    } else {
        &mut c.second
    };
    holder_app.kill_with_children();
    hold.release();
    hold.wait_for("done", &c.f);
    let survivor = c.replicas()[1 - holder];
    eventually("the survivor took the branch over", survivor, || {
        c.lease_holder() == Some(1 - holder)
    });
    let holder_app = if holder == 0 {
        &mut c.f.app
    } else {
        &mut c.second
    };
    holder_app.restart();
    c.f.wait_settled();
    c.f.assert_converged(true);
    c.assert_added_once(&landed);
    assert_eq!(
        c.lost_answers(),
        1,
        "the survivor's attempt found the landed push by its trailer"
    );

    // SIGKILL of the delegate running a push, across replicas: its task goes to the other
    // delegate once its lease ran out, and the change lands once.
    let hold = Hold::install(&c.f, "post-receive", 0);
    hold.arm();
    let again = format!("{SHOP}/Workflows/delegate died.yaml");
    c.put_on(0, &again, &workflow("pushed while its delegate died"));
    hold.wait_for("entered", &c.f);
    let pushing = c
        .delegates
        .iter()
        .position(Delegate::runs_git)
        .expect("a delegate runs the held push");
    c.delegates[pushing].kill();
    hold.release();
    c.f.wait_settled();
    c.f.assert_converged(true);
    c.assert_added_once(&again);
    assert_eq!(
        c.lost_answers(),
        2,
        "the other delegate found the landed push by its trailer"
    );
    for replica in c.replicas() {
        replica.assert_no_leak(&[TOKEN]);
    }
}

/// A server cut off from its database keeps answering `/healthz`, says it is not ready,
/// refuses what needs the database with 503 (changing nothing), and comes back by itself once
/// the database is reachable again: no restart.
#[test]
fn a_server_cut_off_from_its_database_says_so_and_recovers_by_itself() {
    if !TestPostgres::available() {
        eprintln!("skipped: REPOSYNC_TEST_POSTGRES names no PostgreSQL");
        return;
    }
    // The server reaches its database through a proxy the test can cut, as a network would.
    let mut proxy = None;
    let app = TestApp::spawn_on_postgres_via(
        |url| {
            let address = url
                .split_once('@')
                .and_then(|(_, rest)| rest.split_once('/'))
                .map(|(address, _)| address.to_owned())
                .expect("host:port in the database URL");
            let cuttable = Balancer::start(&[&address]);
            let routed = url.replacen(&address, &cuttable.address.to_string(), 1);
            proxy = Some(cuttable);
            routed
        },
        &[],
    );
    let proxy = proxy.expect("the proxy");
    let rt = runtime();
    let status = |path: &str| -> u16 {
        rt.block_on(async {
            reqwest::Client::new()
                .get(format!("{}{path}", app.url))
                .timeout(Duration::from_secs(30))
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0)
        })
    };
    app.cli(&["app", "create", "Before"], None).ok();
    assert_eq!(status("/readyz"), 200);

    proxy.cut(true);
    eventually("not ready without the database", &app, || {
        status("/readyz") == 503
    });
    assert_eq!(status("/healthz"), 200, "alive all the same");
    let refused = app.cli(&["app", "create", "During"], None);
    refused.fails();
    assert!(
        refused.stderr.contains("the database cannot be reached"),
        "the refusal says why: {}",
        refused.stderr
    );

    proxy.cut(false);
    eventually("ready again once the database is back", &app, || {
        status("/readyz") == 200
    });
    app.cli(&["app", "create", "After"], None).ok();
    let listed = app.cli(&["--json", "app", "list"], None).ok().json();
    let names: Vec<&str> = listed["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|a| a["name"].as_str())
        .collect();
    assert!(
        names.contains(&"Before") && names.contains(&"After"),
        "{names:?}"
    );
    assert!(
        !names.contains(&"During"),
        "the refused write left nothing: {names:?}"
    );
}

/// Replicas started at the same moment on an empty database: one migrates it under
/// PostgreSQL's advisory lock while the others wait, one makes the first admin, and every
/// replica then serves the same state.
#[test]
fn replicas_started_at_once_on_an_empty_database_migrate_it_once_and_share_one_admin() {
    if !TestPostgres::available() {
        eprintln!("skipped: REPOSYNC_TEST_POSTGRES names no PostgreSQL");
        return;
    }
    let replicas = TestApp::spawn_replicas_at_once(3, &["--no-builtin-delegate"]);
    replicas[0].cli(&["app", "create", "Shared"], None).ok();
    for replica in &replicas {
        let listed = replica.cli(&["--json", "app", "list"], None).ok().json();
        assert!(
            listed["items"]
                .as_array()
                .expect("items")
                .iter()
                .any(|a| a["name"] == "Shared"),
            "every replica serves the same state: {listed}"
        );
    }
    let schemas: Vec<Value> = replicas
        .iter()
        .map(|replica| {
            replica.cli(&["--json", "version"], None).ok().json()["server"]["schema_version"]
                .clone()
        })
        .collect();
    assert!(
        schemas[0].as_i64().is_some_and(|v| v >= 20) && schemas.iter().all(|s| *s == schemas[0]),
        "one schema, every migration applied: {schemas:?}"
    );
}
