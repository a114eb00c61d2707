//! The Bitbucket emulator's webhooks, checked against a real receiver: pushes go over HTTPS
//! through `GitHttpsServer`, so the `post-receive` hook path is the one the system under test
//! will exercise.

use std::convert::Infallible;
use std::fs;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context, Result};
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt as _, Full};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use reposync_testkit::{
    BitbucketEmulator, DeliveryKind, GitHttpsServer, HermeticGit, RepoIdentity, RepoRoot,
    SentDelivery, SshKeyFiles, SshServer, TestCa, WebhookFormat, WebhookTarget, ensure_git_user,
};
use serde_json::Value;
use sha2::Sha256;
use tempfile::TempDir;
use time::OffsetDateTime;
use time::macros::format_description;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

const REPO: &str = "acme/config.git";
const USER: &str = "deploy";
const PASSWORD: &str = "s3cret-pass";
const ZEROS: &str = "0000000000000000000000000000000000000000";
const SETTLE: Duration = Duration::from_secs(20);

/// One request as the receiver saw it.
#[derive(Clone, Debug)]
pub(crate) struct Received {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) headers: http::HeaderMap,
    pub(crate) body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }
}

/// A tiny webhook receiver on 127.0.0.1 that records every request and answers `status`; the
/// REST API's tests use it too, to see the webhook that follows a commit made through the API.
pub(crate) struct Receiver {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<Received>>>,
    status: Arc<AtomicU16>,
    task: JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    pub(crate) async fn start() -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let requests = Arc::new(Mutex::new(Vec::new()));
        let status = Arc::new(AtomicU16::new(200));
        let (task_requests, task_status) = (Arc::clone(&requests), Arc::clone(&status));
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let requests = Arc::clone(&task_requests);
                let status = Arc::clone(&task_status);
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        let requests = Arc::clone(&requests);
                        let status = status.load(Ordering::SeqCst);
                        async move {
                            let (parts, body) = request.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(|collected| collected.to_bytes().to_vec())
                                .unwrap_or_default();
                            requests
                                .lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .push(Received {
                                    method: parts.method.to_string(),
                                    path: parts.uri.path().to_owned(),
                                    headers: parts.headers,
                                    body,
                                });
                            let mut response = Response::new(Full::new(Bytes::from("noted")));
                            *response.status_mut() = StatusCode::from_u16(status)
                                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                            Ok::<_, Infallible>(response)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Self {
            addr,
            requests,
            status,
            task,
        })
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}/hooks/bitbucket/tok3n", self.addr)
    }

    fn answer_with(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    pub(crate) fn requests(&self) -> Vec<Received> {
        self.requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// A repository served over HTTPS, watched by an emulator that delivers to a receiver, and a
/// clone of it to push from.
struct Fixture {
    root: RepoRoot,
    _https: GitHttpsServer,
    emulator: BitbucketEmulator,
    receiver: Receiver,
    git: HermeticGit,
    _client_dir: TempDir,
    checkout: PathBuf,
    ca_config: String,
    /// The repository's first commit, on `main`.
    first: String,
}

impl Fixture {
    async fn start(format: WebhookFormat, secret: Option<&str>) -> Result<Self> {
        let root = RepoRoot::new()?;
        let first = root.create_repo(REPO, "main", &[("config.yaml", "replicas: 1\n")])?;
        let ca = TestCa::new("bitbucket emulator test CA")?;
        let https = GitHttpsServer::start(&root, &ca, USER, PASSWORD).await?;
        let emulator = BitbucketEmulator::start(&root).await?;
        let receiver = Receiver::start().await?;
        let mut target = WebhookTarget::new(receiver.url(), format);
        if let Some(secret) = secret {
            target = target.with_secret(secret);
        }
        emulator.add_webhook(REPO, target)?;

        let git = HermeticGit::new()?;
        let client_dir = tempfile::tempdir()?;
        let ca_file = client_dir.path().join("ca.pem");
        fs::write(&ca_file, https.ca_pem())?;
        let ca_config = format!("http.sslCAInfo={}", ca_file.display());
        let url =
            https
                .repo_url(REPO)
                .replacen("https://", &format!("https://{USER}:{PASSWORD}@"), 1);
        git.run(
            client_dir.path(),
            &["-c", &ca_config, "clone", "-q", &url, "checkout"],
        )?;
        let checkout = client_dir.path().join("checkout");
        Ok(Self {
            root,
            _https: https,
            emulator,
            receiver,
            git,
            _client_dir: client_dir,
            checkout,
            ca_config,
            first,
        })
    }

    /// Runs git in the checkout and returns its trimmed stdout.
    fn git(&self, args: &[&str]) -> Result<String> {
        self.git.run(&self.checkout, args)
    }

    /// `git push` over HTTPS with the given arguments.
    fn push(&self, args: &[&str]) -> Result<()> {
        let mut full = vec!["-c", self.ca_config.as_str(), "push", "-q"];
        full.extend(args);
        self.git(&full).map(drop)
    }

    /// Writes a file and commits it in the checkout; returns the commit id.
    fn commit(&self, path: &str, content: &str, message: &str) -> Result<String> {
        fs::write(self.checkout.join(path), content)?;
        self.git(&["add", path])?;
        self.git(&["commit", "-q", "-m", message])?;
        self.git(&["rev-parse", "HEAD"])
    }

    /// Waits for the emulator to deliver everything, checks that the receiver got exactly what
    /// the emulator says it sent, and returns the deliveries. Deliveries that travel at once
    /// (a push's and a ping) may arrive in either order, so each is matched by its body.
    async fn settle(&self) -> Result<Vec<SentDelivery>> {
        self.emulator.wait_idle(SETTLE).await?;
        let deliveries = self.emulator.deliveries();
        let mut received = self.receiver.requests();
        assert_eq!(received.len(), deliveries.len(), "{deliveries:#?}");
        for delivery in &deliveries {
            let at = received
                .iter()
                .position(|request| request.body == delivery.body)
                .unwrap_or_else(|| panic!("not received: {delivery:#?}"));
            let request = received.remove(at);
            assert_eq!(request.method, "POST");
            assert_eq!(request.path, "/hooks/bitbucket/tok3n");
            for (name, value) in &delivery.headers {
                assert_eq!(request.header(name), Some(value.as_str()), "{name}");
            }
        }
        Ok(deliveries)
    }
}

/// The only delivery, parsed.
fn only(deliveries: &[SentDelivery]) -> Result<(&SentDelivery, Value)> {
    assert_eq!(deliveries.len(), 1, "{deliveries:#?}");
    let delivery = &deliveries[0];
    assert_eq!(delivery.status(), Some(200), "{delivery:?}");
    Ok((delivery, delivery.json()?))
}

fn hmac_hex(secret: &str, body: &[u8]) -> Result<String> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())?;
    mac.update(body);
    Ok(format!(
        "sha256={}",
        hex::encode(mac.finalize().into_bytes())
    ))
}

fn is_uuid(value: Option<&str>) -> bool {
    value.is_some_and(|value| uuid::Uuid::parse_str(value).is_ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_push_sends_one_cloud_repo_push() -> Result<()> {
    let fx = Fixture::start(WebhookFormat::Cloud, None).await?;
    let pushed = fx.commit("config.yaml", "replicas: 2\n", "Scale up")?;

    fx.push(&["origin", "main"])?;

    let deliveries = fx.settle().await?;
    let (delivery, body) = only(&deliveries)?;
    assert_eq!(delivery.kind, DeliveryKind::Push(WebhookFormat::Cloud));
    assert_eq!(delivery.header("X-Event-Key"), Some("repo:push"));
    assert_eq!(delivery.header("Content-Type"), Some("application/json"));
    assert_eq!(
        delivery.header("User-Agent"),
        Some("Bitbucket-Webhooks/2.0")
    );
    assert_eq!(delivery.header("X-Attempt-Number"), Some("1"));
    assert!(is_uuid(delivery.header("X-Request-UUID")), "{delivery:?}");
    assert!(is_uuid(delivery.header("X-Hook-UUID")), "{delivery:?}");
    assert_eq!(delivery.delivery_id(), delivery.header("X-Request-UUID"));
    assert_eq!(delivery.header("X-Hub-Signature"), None);

    let identity = RepoIdentity::parse(REPO)?;
    assert_eq!(body["repository"]["full_name"], "acme/config");
    assert_eq!(body["repository"]["name"], "config");
    assert_eq!(body["repository"]["type"], "repository");
    assert_eq!(
        body["repository"]["uuid"],
        format!("{{{}}}", identity.uuid())
    );
    assert_eq!(body["actor"]["display_name"], USER);
    let changes = body["push"]["changes"].as_array().context("changes")?;
    assert_eq!(changes.len(), 1);
    let change = &changes[0];
    assert_eq!(change["new"]["type"], "branch");
    assert_eq!(change["new"]["name"], "main");
    assert_eq!(change["new"]["target"]["type"], "commit");
    assert_eq!(change["new"]["target"]["hash"], pushed.as_str());
    assert_eq!(change["new"]["target"]["message"], "Scale up\n");
    let date = change["new"]["target"]["date"].as_str().context("date")?;
    assert!(date.ends_with("+00:00"), "{date}");
    assert_eq!(
        change["new"]["target"]["parents"][0]["hash"],
        fx.first.as_str()
    );
    assert_eq!(change["old"]["name"], "main");
    assert_eq!(change["old"]["target"]["hash"], fx.first.as_str());
    assert_eq!(change["created"], false);
    assert_eq!(change["closed"], false);
    assert_eq!(change["forced"], false);
    assert_eq!(change["truncated"], false);
    assert_eq!(change["commits"].as_array().map(Vec::len), Some(1));
    assert_eq!(change["commits"][0]["hash"], pushed.as_str());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_push_sends_one_server_refs_changed() -> Result<()> {
    let fx = Fixture::start(WebhookFormat::ServerNative, None).await?;
    let pushed = fx.commit("config.yaml", "replicas: 2\n", "Scale up")?;

    fx.push(&["origin", "main"])?;

    let deliveries = fx.settle().await?;
    let (delivery, body) = only(&deliveries)?;
    assert_eq!(delivery.header("X-Event-Key"), Some("repo:refs_changed"));
    assert!(is_uuid(delivery.header("X-Request-Id")), "{delivery:?}");
    assert_eq!(delivery.delivery_id(), delivery.header("X-Request-Id"));
    assert_eq!(delivery.header("X-Request-UUID"), None);
    assert_eq!(delivery.header("X-Hub-Signature"), None);

    assert_eq!(body["eventKey"], "repo:refs_changed");
    let date = body["date"].as_str().context("date")?;
    OffsetDateTime::parse(
        date,
        format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second][offset_hour sign:mandatory][offset_minute]"
        ),
    )
    .with_context(|| format!("date {date:?}"))?;
    assert_eq!(body["actor"]["name"], USER);
    assert_eq!(body["repository"]["slug"], "config");
    assert_eq!(body["repository"]["project"]["key"], "ACME");
    let clone_names: Vec<&str> = body["repository"]["links"]["clone"]
        .as_array()
        .context("clone links")?
        .iter()
        .filter_map(|link| link["name"].as_str())
        .collect();
    assert_eq!(clone_names, ["ssh", "http"]);
    let changes = body["changes"].as_array().context("changes")?;
    assert_eq!(changes.len(), 1);
    let change = &changes[0];
    assert_eq!(change["ref"]["id"], "refs/heads/main");
    assert_eq!(change["ref"]["displayId"], "main");
    assert_eq!(change["ref"]["type"], "BRANCH");
    assert_eq!(change["refId"], "refs/heads/main");
    assert_eq!(change["fromHash"], fx.first.as_str());
    assert_eq!(change["toHash"], pushed.as_str());
    assert_eq!(change["type"], "UPDATE");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_push_sends_one_post_webhooks_push() -> Result<()> {
    let fx = Fixture::start(WebhookFormat::PostWebhooks, None).await?;
    let pushed = fx.commit("config.yaml", "replicas: 2\n", "Scale up")?;

    fx.push(&["origin", "main"])?;

    let deliveries = fx.settle().await?;
    let (delivery, body) = only(&deliveries)?;
    assert_eq!(delivery.header("X-Event-Key"), Some("repo:push"));
    assert_eq!(delivery.header("X-Bitbucket-Type"), Some("server"));
    assert_eq!(delivery.delivery_id(), None);
    assert_eq!(delivery.header("X-Hub-Signature"), None);

    assert_eq!(body["actor"]["username"], USER);
    assert_eq!(body["repository"]["project"]["key"], "ACME");
    assert_eq!(body["repository"]["slug"], "config");
    assert_eq!(body["repository"]["fullName"], "ACME/config");
    let changes = body["push"]["changes"].as_array().context("changes")?;
    assert_eq!(changes.len(), 1);
    let change = &changes[0];
    assert_eq!(change["created"], false);
    assert_eq!(change["closed"], false);
    assert!(change.get("forced").is_none(), "{change}");
    assert_eq!(change["new"]["type"], "branch");
    assert_eq!(change["new"]["name"], "main");
    assert_eq!(change["new"]["target"]["hash"], pushed.as_str());
    assert_eq!(change["old"]["target"]["hash"], fx.first.as_str());
    Ok(())
}

/// Two branches and an annotated tag in one `git push`: main moves, feature and v1 are new.
fn push_two_branches_and_a_tag(fx: &Fixture) -> Result<(String, String, String)> {
    let main = fx.commit("config.yaml", "replicas: 3\n", "On main")?;
    fx.git(&["checkout", "-q", "-b", "feature"])?;
    let feature = fx.commit("feature.yaml", "on: true\n", "On feature")?;
    fx.git(&["tag", "-a", "v1", "-m", "Release 1"])?;
    let tag_object = fx.git(&["rev-parse", "v1"])?;
    fx.push(&["origin", "main", "feature", "v1"])?;
    Ok((main, feature, tag_object))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_ref_push_is_one_cloud_delivery_with_three_changes() -> Result<()> {
    let fx = Fixture::start(WebhookFormat::Cloud, None).await?;

    let (main, feature, tag_object) = push_two_branches_and_a_tag(&fx)?;

    let deliveries = fx.settle().await?;
    let (_, body) = only(&deliveries)?;
    let changes = body["push"]["changes"].as_array().context("changes")?;
    assert_eq!(changes.len(), 3, "{body:#}");
    let by_name = |name: &str| {
        changes
            .iter()
            .find(|change| change["new"]["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no change for {name} in {body:#}"))
    };
    let main_change = by_name("main");
    assert_eq!(main_change["new"]["type"], "branch");
    assert_eq!(main_change["new"]["target"]["hash"], main.as_str());
    assert_eq!(main_change["old"]["target"]["hash"], fx.first.as_str());
    assert_eq!(main_change["created"], false);

    let feature_change = by_name("feature");
    assert_eq!(feature_change["new"]["type"], "branch");
    assert_eq!(feature_change["new"]["target"]["hash"], feature.as_str());
    assert_eq!(feature_change["old"], Value::Null);
    assert_eq!(feature_change["created"], true);
    // Every commit the push brought that the new branch reaches, though main and the tag
    // reach some of them too.
    let listed: Vec<&str> = feature_change["commits"]
        .as_array()
        .context("commits")?
        .iter()
        .filter_map(|commit| commit["hash"].as_str())
        .collect();
    assert_eq!(listed, [feature.as_str(), main.as_str()]);

    let tag_change = by_name("v1");
    assert_eq!(tag_change["new"]["type"], "tag");
    // Cloud names the tagged commit, not the annotated tag object.
    assert_eq!(tag_change["new"]["target"]["type"], "commit");
    assert_eq!(tag_change["new"]["target"]["hash"], feature.as_str());
    assert_ne!(tag_object, feature);
    assert_eq!(tag_change["created"], true);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_ref_push_is_one_server_delivery_with_three_changes() -> Result<()> {
    let fx = Fixture::start(WebhookFormat::ServerNative, None).await?;

    let (main, feature, tag_object) = push_two_branches_and_a_tag(&fx)?;

    let deliveries = fx.settle().await?;
    let (_, body) = only(&deliveries)?;
    let mut changes: Vec<(String, String, String, String, String)> = body["changes"]
        .as_array()
        .context("changes")?
        .iter()
        .map(|change| {
            let text = |value: &Value| value.as_str().unwrap_or_default().to_owned();
            (
                text(&change["ref"]["id"]),
                text(&change["ref"]["type"]),
                text(&change["fromHash"]),
                text(&change["toHash"]),
                text(&change["type"]),
            )
        })
        .collect();
    changes.sort();
    let owned = |parts: [&str; 5]| parts.map(str::to_owned).into();
    assert_eq!(
        changes,
        vec![
            owned(["refs/heads/feature", "BRANCH", ZEROS, &feature, "ADD"]),
            owned(["refs/heads/main", "BRANCH", &fx.first, &main, "UPDATE"]),
            // Server reports the ids git reported: the annotated tag's own.
            owned(["refs/tags/v1", "TAG", ZEROS, &tag_object, "ADD"]),
        ]
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletions_are_closed_in_cloud_and_delete_in_server() -> Result<()> {
    let fx = Fixture::start(WebhookFormat::Cloud, None).await?;
    fx.git(&["checkout", "-q", "-b", "feature"])?;
    let feature = fx.commit("feature.yaml", "on: true\n", "On feature")?;
    fx.push(&["origin", "feature"])?;
    fx.settle().await?;

    fx.push(&["origin", ":feature"])?;

    let deliveries = fx.settle().await?;
    assert_eq!(deliveries.len(), 2);
    let body = deliveries[1].json()?;
    let change = &body["push"]["changes"][0];
    assert_eq!(change["new"], Value::Null);
    assert_eq!(change["old"]["type"], "branch");
    assert_eq!(change["old"]["name"], "feature");
    assert_eq!(change["old"]["target"]["hash"], feature.as_str());
    assert_eq!(change["closed"], true);
    assert_eq!(change["created"], false);
    assert_eq!(change["forced"], false);
    assert_eq!(change["commits"], serde_json::json!([]));

    // A tag deleted with plumbing, reported to a Server webhook.
    let repo = fx.root.repo_path(REPO)?;
    fx.root.git().run(&repo, &["tag", "old-tag", &fx.first])?;
    fx.emulator.add_webhook(
        REPO,
        WebhookTarget::new(fx.receiver.url(), WebhookFormat::ServerNative),
    )?;
    fx.root
        .git()
        .run(&repo, &["update-ref", "-d", "refs/tags/old-tag"])?;
    fx.emulator
        .record_ref_update(REPO, "refs/tags/old-tag", Some(&fx.first), None, false)?;

    let deliveries = fx.settle().await?;
    assert_eq!(deliveries.len(), 3);
    let body = deliveries[2].json()?;
    let change = &body["changes"][0];
    assert_eq!(change["ref"]["id"], "refs/tags/old-tag");
    assert_eq!(change["ref"]["type"], "TAG");
    assert_eq!(change["fromHash"], fx.first.as_str());
    assert_eq!(change["toHash"], ZEROS);
    assert_eq!(change["type"], "DELETE");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forced_updates_are_flagged_in_cloud() -> Result<()> {
    let fx = Fixture::start(WebhookFormat::Cloud, None).await?;
    let pushed = fx.commit("config.yaml", "replicas: 2\n", "Scale up")?;
    fx.push(&["origin", "main"])?;
    fx.settle().await?;

    // `git init --shared` sets receive.denyNonFastForwards; Bitbucket allows forced pushes
    // unless a branch permission forbids them.
    let repo = fx.root.repo_path(REPO)?;
    fx.root
        .git()
        .run(&repo, &["config", "receive.denyNonFastForwards", "false"])?;
    // Rewrite the pushed commit and force it over the old one.
    fx.git(&["commit", "-q", "--amend", "-m", "Scale up, reworded"])?;
    let rewritten = fx.git(&["rev-parse", "HEAD"])?;
    fx.push(&["--force", "origin", "main"])?;

    let deliveries = fx.settle().await?;
    assert_eq!(deliveries.len(), 2);
    let first_change = &deliveries[0].json()?["push"]["changes"][0];
    assert_eq!(first_change["forced"], false);
    let body = deliveries[1].json()?;
    let change = &body["push"]["changes"][0];
    assert_eq!(change["forced"], true);
    assert_eq!(change["old"]["target"]["hash"], pushed.as_str());
    assert_eq!(change["new"]["target"]["hash"], rewritten.as_str());
    assert_eq!(change["commits"][0]["hash"], rewritten.as_str());

    // Plumbing plus record_ref_update: the caller says it was forced.
    fx.root
        .git()
        .run(&repo, &["update-ref", "refs/heads/main", &fx.first])?;
    fx.emulator.record_ref_update(
        REPO,
        "refs/heads/main",
        Some(&rewritten),
        Some(&fx.first),
        true,
    )?;

    let deliveries = fx.settle().await?;
    assert_eq!(deliveries.len(), 3);
    let change = &deliveries[2].json()?["push"]["changes"][0];
    assert_eq!(change["forced"], true);
    assert_eq!(change["new"]["target"]["hash"], fx.first.as_str());
    assert_eq!(change["commits"], serde_json::json!([]));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_signs_cloud_and_server_deliveries_with_hmac_sha256() -> Result<()> {
    const SECRET: &str = "webhook-secret-42";
    let fx = Fixture::start(WebhookFormat::Cloud, Some(SECRET)).await?;
    fx.commit("config.yaml", "replicas: 2\n", "Scale up")?;
    fx.push(&["origin", "main"])?;
    fx.settle().await?;
    fx.emulator.add_webhook(
        REPO,
        WebhookTarget::new(fx.receiver.url(), WebhookFormat::ServerNative).with_secret(SECRET),
    )?;
    fx.emulator
        .commit(REPO, "main", &[("config.yaml", "replicas: 3\n")], "Again")?;
    fx.settle().await?;
    assert_eq!(fx.emulator.ping(REPO).await?, 200);

    let deliveries = fx.settle().await?;
    let received = fx.receiver.requests();
    assert_eq!(received.len(), 3);
    for request in &received {
        assert_eq!(
            request.header("X-Hub-Signature"),
            Some(hmac_hex(SECRET, &request.body)?.as_str()),
            "{:?}",
            request.header("X-Event-Key")
        );
    }
    let events: Vec<_> = deliveries.iter().map(SentDelivery::event_key).collect();
    assert_eq!(
        events,
        [
            Some("repo:push"),
            Some("repo:refs_changed"),
            Some("diagnostics:ping")
        ]
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_secret_nothing_is_signed() -> Result<()> {
    let fx = Fixture::start(WebhookFormat::ServerNative, None).await?;
    fx.commit("config.yaml", "replicas: 2\n", "Scale up")?;
    fx.push(&["origin", "main"])?;
    fx.emulator.ping(REPO).await?;

    fx.settle().await?;

    let received = fx.receiver.requests();
    assert_eq!(received.len(), 2);
    for request in &received {
        assert_eq!(request.header("X-Hub-Signature"), None);
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_webhooks_cannot_have_a_secret() -> Result<()> {
    let fx = Fixture::start(WebhookFormat::Cloud, None).await?;

    let refused = fx.emulator.add_webhook(
        REPO,
        WebhookTarget::new(fx.receiver.url(), WebhookFormat::PostWebhooks).with_secret("s"),
    );

    let message = format!("{:#}", refused.unwrap_err());
    assert!(message.contains("does not sign"), "{message}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_sends_diagnostics_ping_and_returns_the_status() -> Result<()> {
    let fx = Fixture::start(WebhookFormat::Cloud, None).await?;
    fx.receiver.answer_with(204);

    let status = fx.emulator.ping(REPO).await?;

    assert_eq!(status, 204);
    let deliveries = fx.settle().await?;
    let delivery = &deliveries[0];
    assert_eq!(delivery.kind, DeliveryKind::Ping);
    assert_eq!(delivery.header("X-Event-Key"), Some("diagnostics:ping"));
    assert!(is_uuid(delivery.header("X-Request-Id")), "{delivery:?}");
    assert_eq!(delivery.json()?, serde_json::json!({"test": true}));
    assert_eq!(delivery.status(), Some(204));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redeliver_sends_the_same_bytes_with_the_same_delivery_id() -> Result<()> {
    let fx = Fixture::start(WebhookFormat::Cloud, Some("s3")).await?;
    fx.commit("config.yaml", "replicas: 2\n", "Scale up")?;
    fx.push(&["origin", "main"])?;
    fx.settle().await?;

    assert_eq!(fx.emulator.redeliver(0).await?, 200);

    let deliveries = fx.settle().await?;
    assert_eq!(deliveries.len(), 2);
    let (original, again) = (&deliveries[0], &deliveries[1]);
    assert_eq!(again.kind, DeliveryKind::Redelivery { of: 0 });
    assert!(original.delivery_id().is_some());
    assert_eq!(again.delivery_id(), original.delivery_id());
    assert_eq!(again.headers, original.headers);
    assert_eq!(again.body, original.body);
    let received = fx.receiver.requests();
    assert_eq!(received[0].body, received[1].body);
    assert_eq!(
        received[0].header("X-Request-UUID"),
        received[1].header("X-Request-UUID")
    );
    assert!(fx.emulator.redeliver(7).await.is_err());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_made_while_paused_are_dropped_not_queued() -> Result<()> {
    let fx = Fixture::start(WebhookFormat::Cloud, None).await?;
    // Recorded before the pause, so still delivered.
    let before = fx
        .emulator
        .commit(REPO, "main", &[("a.yaml", "1\n")], "Before")?;
    fx.emulator.pause(true);
    fx.git(&["-c", &fx.ca_config, "pull", "-q", "--ff-only"])?;
    fx.commit("config.yaml", "replicas: 2\n", "While paused")?;
    fx.push(&["origin", "main"])?;
    let missed = fx
        .emulator
        .commit(REPO, "main", &[("b.yaml", "2\n")], "Also paused")?;
    fx.settle().await?;

    fx.emulator.pause(false);
    let after = fx
        .emulator
        .commit(REPO, "main", &[("c.yaml", "3\n")], "After")?;

    let deliveries = fx.settle().await?;
    let news: Vec<Value> = deliveries
        .iter()
        .map(|delivery| {
            delivery.json().unwrap()["push"]["changes"][0]["new"]["target"]["hash"].clone()
        })
        .collect();
    assert_eq!(news, [Value::from(before), Value::from(after.clone())]);
    // The first delivery after the pause starts where the missed updates left the branch.
    let last = deliveries[1].json()?;
    assert_eq!(
        last["push"]["changes"][0]["old"]["target"]["hash"],
        missed.as_str()
    );
    assert_eq!(last["actor"]["display_name"], "reposync-test");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_and_connection_failures_are_recorded() -> Result<()> {
    let fx = Fixture::start(WebhookFormat::ServerNative, None).await?;
    fx.receiver.answer_with(500);
    fx.emulator
        .commit(REPO, "main", &[("a.yaml", "1\n")], "Refused")?;
    fx.settle().await?;

    // A port nobody listens on: bind one, then let it go.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    fx.emulator.add_webhook(
        REPO,
        WebhookTarget::new(format!("http://{closed}/hook"), WebhookFormat::ServerNative),
    )?;
    fx.emulator
        .commit(REPO, "main", &[("a.yaml", "2\n")], "Unheard")?;
    fx.emulator.wait_idle(SETTLE).await?;

    let deliveries = fx.emulator.deliveries();
    assert_eq!(deliveries.len(), 2);
    assert_eq!(deliveries[0].outcome, Ok(500));
    assert_eq!(deliveries[0].response_body, "noted");
    assert!(deliveries[1].outcome.is_err(), "{:?}", deliveries[1]);
    assert!(fx.emulator.ping(REPO).await.is_err());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_raw_sends_exactly_the_given_headers_and_body() -> Result<()> {
    let fx = Fixture::start(WebhookFormat::Cloud, Some("secret")).await?;
    let body = vec![b'x'; 3 * 1024 * 1024];

    let status = fx
        .emulator
        .send_raw(
            REPO,
            &[
                ("X-Event-Key", "repo:push"),
                ("X-Hub-Signature", "sha256=00"),
            ],
            body.clone(),
        )
        .await?;

    assert_eq!(status, 200);
    let deliveries = fx.settle().await?;
    assert_eq!(deliveries[0].kind, DeliveryKind::Raw);
    let received = &fx.receiver.requests()[0];
    assert_eq!(received.body, body);
    assert_eq!(received.header("X-Hub-Signature"), Some("sha256=00"));
    assert_eq!(received.header("X-Request-UUID"), None);
    assert!(
        fx.emulator
            .send_raw(REPO, &[("bad header", "x")], Vec::new())
            .await
            .is_err()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refs_other_than_branches_and_tags_send_nothing() -> Result<()> {
    let fx = Fixture::start(WebhookFormat::Cloud, None).await?;

    fx.push(&["origin", "HEAD:refs/notes/elsewhere"])?;

    assert!(fx.settle().await?.is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_post_receive_hook_is_left_alone() -> Result<()> {
    let root = RepoRoot::new()?;
    root.create_repo(REPO, "main", &[("a.yaml", "1\n")])?;
    root.install_hook(REPO, "post-receive", "#!/bin/sh\nexit 0\n")?;
    let emulator = BitbucketEmulator::start(&root).await?;

    let refused = emulator.add_webhook(
        REPO,
        WebhookTarget::new("http://127.0.0.1:9/hook", WebhookFormat::Cloud),
    );

    let message = format!("{:#}", refused.unwrap_err());
    assert!(message.contains("post-receive"), "{message}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_than_five_commits_are_truncated_in_cloud() -> Result<()> {
    let fx = Fixture::start(WebhookFormat::Cloud, None).await?;
    let mut commits = Vec::new();
    for number in 0..7 {
        let content = format!("replicas: {number}\n");
        commits.push(fx.commit("config.yaml", &content, &format!("Step {number}"))?);
    }

    fx.push(&["origin", "main"])?;

    let deliveries = fx.settle().await?;
    let (_, body) = only(&deliveries)?;
    let change = &body["push"]["changes"][0];
    assert_eq!(change["truncated"], true);
    let listed: Vec<&str> = change["commits"]
        .as_array()
        .context("commits")?
        .iter()
        .filter_map(|commit| commit["hash"].as_str())
        .collect();
    // Newest first, like Bitbucket.
    let newest: Vec<&str> = commits.iter().rev().take(5).map(String::as_str).collect();
    assert_eq!(listed, newest);
    Ok(())
}

/// Over SSH the hook runs as the `git` system user, which must be able to append to the
/// journal that root created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_push_as_the_git_user_is_delivered_too() -> Result<()> {
    ensure_git_user()?;
    let root = RepoRoot::new()?;
    let first = root.create_repo(REPO, "main", &[("config.yaml", "replicas: 1\n")])?;
    let dir = tempfile::tempdir()?;
    let key = SshKeyFiles::generate_ed25519(dir.path(), "id_ed25519")?;
    let server = SshServer::start(&root, std::slice::from_ref(&key.public_key)).await?;
    let known_hosts = dir.path().join("known_hosts");
    fs::write(&known_hosts, format!("{}\n", server.known_hosts_line()))?;
    let ssh = format!(
        "ssh -F /dev/null -i {} -o IdentitiesOnly=yes -o UserKnownHostsFile={} \
         -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes -o BatchMode=yes",
        key.private_key.display(),
        known_hosts.display()
    );
    let env = [("GIT_SSH_COMMAND", ssh.as_str())];
    let emulator = BitbucketEmulator::start(&root).await?;
    let receiver = Receiver::start().await?;
    emulator.add_webhook(
        REPO,
        WebhookTarget::new(receiver.url(), WebhookFormat::ServerNative),
    )?;
    let git = HermeticGit::new()?;
    git.run_with_env(
        dir.path(),
        &["clone", "-q", &server.repo_url(REPO), "checkout"],
        &env,
    )
    .with_context(|| server.log())?;
    let checkout = dir.path().join("checkout");
    fs::write(checkout.join("config.yaml"), "replicas: 2\n")?;
    git.run(&checkout, &["commit", "-q", "-am", "Over SSH"])?;
    let pushed = git.run(&checkout, &["rev-parse", "HEAD"])?;

    git.run_with_env(&checkout, &["push", "-q", "origin", "main"], &env)
        .with_context(|| server.log())?;

    emulator.wait_idle(SETTLE).await?;
    let deliveries = emulator.deliveries();
    let (_, body) = only(&deliveries)?;
    assert_eq!(body["actor"]["name"], "git");
    assert_eq!(body["changes"][0]["fromHash"], first.as_str());
    assert_eq!(body["changes"][0]["toHash"], pushed.as_str());
    assert_eq!(receiver.requests().len(), 1);
    Ok(())
}
