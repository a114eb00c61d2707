//! A Bitbucket emulator for tests: the one allowed stand-in for Bitbucket. This module is the
//! webhook sender; [`BitbucketApi`] serves the REST APIs (Cloud and Data Center) over the
//! same repositories under the same [`RepoIdentity`].
//!
//! # What it does
//!
//! It watches repositories of a [`RepoRoot`] and, whenever refs change, POSTs the webhook that
//! Bitbucket would send to the URL registered for that repository, in one of three flavours
//! ([`WebhookFormat`]): Cloud `repo:push`, Server/Data Center `repo:refs_changed`, or the
//! "Post Webhooks for Bitbucket" plugin's `repo:push`. The repositories are real, so the
//! hashes in a delivery are commits that a clone over [`GitHttpsServer`] or [`SshServer`]
//! really sees.
//!
//! # How pushes are noticed
//!
//! [`BitbucketEmulator::add_webhook`] installs a `post-receive` hook in the bare repository.
//! git runs it after every push, by anyone and over any transport (root's `git http-backend`
//! for HTTPS, `git-receive-pack` as the `git` user for SSH, including the pushes the system
//! under test makes), with all the push's `<old> <new> <ref>` lines on stdin. The hook appends
//! them as one record to a world-writable journal file in the repository, and a background
//! thread polls the journals every 10 ms and sends one delivery per record. So, as on
//! Bitbucket, one `git push` of two branches and a tag is one delivery with three changes.
//! [`BitbucketEmulator::commit`] and [`BitbucketEmulator::record_ref_update`] append to the
//! same journal, for changes made without a push. The journal is a file rather than a channel
//! because the hook runs in another process, often as another user.
//!
//! # Fidelity
//!
//! * Only branches (`refs/heads/`) and tags (`refs/tags/`) are reported; a push that touches
//!   nothing else sends nothing.
//! * Cloud and the plugin set `created` when the old id is all zeros and `closed` when the new
//!   one is; Cloud sets `forced` when the old commit is not an ancestor of the new one
//!   (`git merge-base --is-ancestor`), unless the caller of `record_ref_update` said otherwise.
//!   The plugin's changes carry no `forced`, and Server has no force flag at all (`type` is
//!   `ADD`/`UPDATE`/`DELETE`, `toHash`/`fromHash` are 40 zeros for none).
//! * Cloud and the plugin name the commit a tag points at (`target.type` is `commit`); Server
//!   carries the ids git reported, which for an annotated tag is the tag object.
//! * Cloud lists at most five commits per change, newest first, and sets `truncated` beyond:
//!   `old..new` for an update, and for a new ref the commits no ref had before the push. The
//!   payload is built when the delivery is sent, from the repository as it is then.
//! * Cloud and Server sign with `X-Hub-Signature: sha256=<hex HMAC-SHA256(secret, body)>` when
//!   the webhook has a secret. The plugin cannot sign, so `add_webhook` refuses a secret for
//!   it. `ping` is always Server's `diagnostics:ping` and is signed like the others.
//! * Cloud's delivery id is `X-Request-UUID` (with `X-Hook-UUID` and `X-Attempt-Number: 1`),
//!   Server's is `X-Request-Id`; the plugin sends none. Links in bodies point at fake hosts and
//!   must never be used to identify the repository.
//! * Deliveries go out one at a time, in order, each on a fresh connection with short
//!   timeouts and no proxy; the answer (status and body) or the error is recorded, and a
//!   failed delivery is not retried on its own: [`BitbucketEmulator::redeliver`] does that.
//!
//! # Repository identity
//!
//! The path under the root names the repository: `acme/config.git` is Cloud `acme/config`
//! and Server project `ACME`, slug `config` (see [`RepoIdentity`]).
//!
//! [`GitHttpsServer`]: crate::GitHttpsServer
//! [`SshServer`]: crate::SshServer

mod api;
mod identity;
mod journal;
mod payload;
mod resolve;

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::fs::{self, OpenOptions};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use time::OffsetDateTime;
use tokio::sync::oneshot;
use uuid::Uuid;

pub use api::{ApiAuth, ApiFault, ApiFlavour, BitbucketApi};
pub use identity::RepoIdentity;

use crate::process::chmod;
use crate::repo::RepoRoot;
use journal::{Push, RefUpdate};
use payload::{Endpoints, PushContext, Rendered};

/// How often the background thread looks at the journals.
const POLL: Duration = Duration::from_millis(10);
/// How long a delivery may take to connect; the receiver is on loopback.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a delivery may take in all before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The actor of updates made through the emulator rather than by a push.
const EMULATOR_ACTOR: &str = "reposync-test";

/// The flavour of webhook a Bitbucket sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WebhookFormat {
    /// Bitbucket Cloud `repo:push`.
    Cloud,
    /// Bitbucket Server/Data Center's own `repo:refs_changed`.
    ServerNative,
    /// The "Post Webhooks for Bitbucket" plugin on Server: `repo:push` with
    /// `X-Bitbucket-Type: server`.
    PostWebhooks,
}

/// Where and how a repository's webhook is delivered.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookTarget {
    /// The URL POSTed to, e.g. `http://127.0.0.1:8080/hooks/bitbucket/<token>`.
    pub url: String,
    /// The secret that signs deliveries (`X-Hub-Signature`); not allowed for the plugin.
    pub secret: Option<String>,
    pub format: WebhookFormat,
}

impl WebhookTarget {
    /// An unsigned webhook.
    pub fn new(url: impl Into<String>, format: WebhookFormat) -> Self {
        Self {
            url: url.into(),
            secret: None,
            format,
        }
    }

    /// The same webhook, signed with `secret`.
    pub fn with_secret(mut self, secret: impl Into<String>) -> Self {
        self.secret = Some(secret.into());
        self
    }
}

impl fmt::Debug for WebhookTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may hold a token too, but tests need to see where a delivery went.
        f.debug_struct("WebhookTarget")
            .field("url", &self.url)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("format", &self.format)
            .finish()
    }
}

/// Why a delivery was sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryKind {
    /// Refs changed (a push, [`BitbucketEmulator::commit`] or
    /// [`BitbucketEmulator::record_ref_update`]).
    Push(WebhookFormat),
    /// [`BitbucketEmulator::ping`].
    Ping,
    /// [`BitbucketEmulator::redeliver`] of the delivery with this index.
    Redelivery { of: usize },
    /// [`BitbucketEmulator::send_raw`].
    Raw,
}

/// One HTTP request the emulator sent, and how it was answered.
#[derive(Clone)]
pub struct SentDelivery {
    /// The repository it was about, e.g. `acme/config.git`.
    pub repo: String,
    pub url: String,
    pub kind: DeliveryKind,
    /// The headers the emulator set, in order. On the wire their names are Title-Cased (as
    /// Bitbucket's Java clients send them), and the HTTP client adds only `Host`,
    /// `Content-Length` and `Accept`.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The HTTP status answered, or why there was no answer.
    pub outcome: Result<u16, String>,
    /// The body of the answer, for diagnosing a refusal; empty without an answer.
    pub response_body: String,
}

impl SentDelivery {
    /// The value of a header the emulator sent, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// `X-Event-Key`, e.g. `repo:push`.
    pub fn event_key(&self) -> Option<&str> {
        self.header("X-Event-Key")
    }

    /// The delivery id: Cloud's `X-Request-UUID` or Server's `X-Request-Id`.
    pub fn delivery_id(&self) -> Option<&str> {
        self.header("X-Request-UUID")
            .or_else(|| self.header("X-Request-Id"))
    }

    /// The status answered, if any.
    pub fn status(&self) -> Option<u16> {
        self.outcome.as_ref().ok().copied()
    }

    /// The body parsed as JSON.
    pub fn json(&self) -> Result<serde_json::Value> {
        serde_json::from_slice(&self.body).context("the delivery body is not JSON")
    }
}

impl fmt::Debug for SentDelivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SentDelivery")
            .field("repo", &self.repo)
            .field("url", &self.url)
            .field("kind", &self.kind)
            .field("headers", &self.headers)
            .field("body", &String::from_utf8_lossy(&self.body))
            .field("outcome", &self.outcome)
            .field("response_body", &self.response_body)
            .finish()
    }
}

/// A Bitbucket that sends webhooks for the repositories of a [`RepoRoot`]; see the module
/// documentation. Dropping it stops the background thread; hooks stay installed but only
/// append to their journals.
pub struct BitbucketEmulator {
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// What the handle and the background thread share.
struct Shared {
    root: RepoRoot,
    endpoints: Endpoints,
    http: reqwest::Client,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Watched repositories by relative path.
    watches: BTreeMap<String, Watch>,
    /// Pushes read from journals and not yet delivered, oldest first.
    pending: VecDeque<Pending>,
    paused: bool,
    /// Whether the background thread is building or sending a delivery right now.
    sending: bool,
    deliveries: Vec<SentDelivery>,
    /// Failures of the background thread, reported by `wait_idle`.
    problems: Vec<String>,
}

struct Watch {
    identity: RepoIdentity,
    target: WebhookTarget,
    /// Cloud's `X-Hook-UUID`: new for every registration, like a new webhook.
    hook_uuid: Uuid,
    journal: PathBuf,
    /// Offset of the first journal byte not read yet.
    read: u64,
    /// Whether an unfinished record followed `read` at the last look.
    partial: bool,
}

/// A push waiting for delivery, with the webhook as it was when the push was read.
struct Pending {
    identity: RepoIdentity,
    target: WebhookTarget,
    hook_uuid: Uuid,
    push: Push,
}

impl fmt::Debug for BitbucketEmulator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.shared.lock();
        f.debug_struct("BitbucketEmulator")
            .field("root", &self.shared.root.path())
            .field(
                "webhooks",
                &state
                    .watches
                    .iter()
                    .map(|(repo, watch)| (repo, &watch.target))
                    .collect::<Vec<_>>(),
            )
            .field("paused", &state.paused)
            .field("deliveries", &state.deliveries.len())
            .field("problems", &state.problems)
            .finish_non_exhaustive()
    }
}

impl BitbucketEmulator {
    /// Starts watching `root`; nothing is sent until a webhook is added.
    pub async fn start(root: &RepoRoot) -> Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            // Every delivery on a fresh connection, as Bitbucket's are, which also keeps
            // connections from being shared between the background runtime and the caller's.
            .pool_max_idle_per_host(0)
            // The machines export proxy variables; the receiver is on loopback.
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            // Java's HTTP clients send `X-Event-Key`, not `x-event-key`.
            .http1_title_case_headers()
            .build()
            .context("cannot build the webhook HTTP client")?;
        let shared = Arc::new(Shared {
            root: root.share(),
            endpoints: Endpoints::default(),
            http,
            state: Mutex::new(State::default()),
        });

        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot build the Bitbucket emulator runtime")?;
        let (shutdown_tx, shutdown_rx) = oneshot::channel();
        let worker = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("bitbucket-emulator".into())
            .spawn(move || {
                runtime.block_on(async move {
                    tokio::select! {
                        _ = shutdown_rx => {}
                        () = worker.run() => {}
                    }
                });
                runtime.shutdown_timeout(Duration::from_secs(1));
            })
            .context("cannot spawn the Bitbucket emulator thread")?;
        Ok(Self {
            shared,
            shutdown: Some(shutdown_tx),
            thread: Some(thread),
        })
    }

    /// Registers the webhook of a repository of the root (e.g. `acme/config.git`), replacing
    /// any earlier one, and installs the `post-receive` hook that makes every later push,
    /// over HTTPS or SSH and by anyone, produce a delivery.
    ///
    /// Ref updates recorded before the first registration are never sent. Updates already
    /// recorded when a webhook is replaced go to the webhook they were recorded under.
    pub fn add_webhook(&self, repo: &str, target: WebhookTarget) -> Result<()> {
        let identity = RepoIdentity::parse(repo)?;
        let url = reqwest::Url::parse(&target.url)
            .with_context(|| format!("webhook URL {:?} is not a URL", target.url))?;
        if !matches!(url.scheme(), "http" | "https") {
            bail!("webhook URL {:?} must be http or https", target.url);
        }
        if target.format == WebhookFormat::PostWebhooks && target.secret.is_some() {
            bail!(
                "the Post Webhooks plugin does not sign its deliveries; register {repo} without \
                 a secret"
            );
        }
        let repo_path = self.existing_repo(&identity)?;

        let hook = repo_path.join("hooks").join("post-receive");
        match fs::read_to_string(&hook) {
            Ok(script) if journal::is_our_hook(&script) => {}
            Ok(_) => bail!(
                "{} already has a post-receive hook of its own; the emulator will not replace it",
                identity.relative()
            ),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                self.shared.root.install_hook(
                    identity.relative(),
                    "post-receive",
                    &journal::hook_script(),
                )?;
            }
            Err(err) => {
                return Err(err).with_context(|| format!("cannot read {}", hook.display()));
            }
        }
        let journal_path = repo_path.join(journal::JOURNAL_FILE);
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&journal_path)
            .with_context(|| format!("cannot create {}", journal_path.display()))?;
        // Written by root over HTTPS and by the `git` user over SSH.
        chmod(&journal_path, 0o666)?;
        let len = journal::len(&journal_path)?;

        let mut state = self.shared.lock();
        // Updates recorded so far belong to the webhook that was registered when they happened.
        state.collect();
        let hook_uuid = Uuid::new_v4();
        match state.watches.get_mut(identity.relative()) {
            Some(watch) => {
                watch.target = target;
                watch.hook_uuid = hook_uuid;
            }
            None => {
                state.watches.insert(
                    identity.relative().to_owned(),
                    Watch {
                        identity,
                        target,
                        hook_uuid,
                        journal: journal_path,
                        read: len,
                        partial: false,
                    },
                );
            }
        }
        Ok(())
    }

    /// Commits `files` (path, content) on `branch` with [`RepoRoot::commit`] and records the
    /// ref update, so that a delivery follows as if the commit had been pushed. Returns the
    /// commit id.
    ///
    /// Without a webhook on the repository nothing is recorded, as nothing would be sent.
    pub fn commit(
        &self,
        repo: &str,
        branch: &str,
        files: &[(&str, &str)],
        message: &str,
    ) -> Result<String> {
        let identity = RepoIdentity::parse(repo)?;
        let repo_path = self.existing_repo(&identity)?;
        let new = self
            .shared
            .root
            .commit(identity.relative(), branch, files, message)?;
        // The commit's parent is exactly what the branch held, whatever happened meanwhile.
        let parents = self
            .shared
            .root
            .git()
            .run(&repo_path, &["rev-list", "--parents", "-n", "1", &new])?;
        let old = parents.split_whitespace().nth(1).map(str::to_owned);
        self.record(
            &identity,
            RefUpdate {
                reference: format!("refs/heads/{branch}"),
                old,
                new: Some(new.clone()),
                forced: Some(false),
            },
        )?;
        Ok(new)
    }

    /// Records a ref update made some other way (a deletion, a tag, a forced update with
    /// plumbing), so that a delivery follows. `reference` is a full name such as
    /// `refs/tags/v1`; `None` stands for "no object" (a creation or a deletion); `forced` is
    /// what Cloud reports, whatever the ancestry.
    ///
    /// Only records: the caller changes the ref itself. Without a webhook on the repository
    /// nothing is recorded, as nothing would be sent.
    pub fn record_ref_update(
        &self,
        repo: &str,
        reference: &str,
        old: Option<&str>,
        new: Option<&str>,
        forced: bool,
    ) -> Result<()> {
        let identity = RepoIdentity::parse(repo)?;
        self.existing_repo(&identity)?;
        journal::check_reference(reference)?;
        for id in old.iter().chain(new.iter()) {
            journal::check_object_id(id)?;
        }
        if old.is_none() && new.is_none() {
            bail!("a ref update of {reference} needs an old or a new object id");
        }
        self.record(
            &identity,
            RefUpdate {
                reference: reference.to_owned(),
                old: old.map(str::to_ascii_lowercase),
                new: new.map(str::to_ascii_lowercase),
                forced: Some(forced),
            },
        )
    }

    /// Sends Server's "Test connection" `diagnostics:ping` (body `{"test":true}`) to the
    /// repository's webhook, signed when it has a secret, whatever its format. Returns the
    /// HTTP status; no answer at all is an error. Recorded like every delivery.
    pub async fn ping(&self, repo: &str) -> Result<u16> {
        let identity = RepoIdentity::parse(repo)?;
        let target = self.target(&identity)?;
        let rendered = payload::server_ping(target.secret.as_deref())?;
        let delivery = self
            .shared
            .send(&identity, &target.url, DeliveryKind::Ping, rendered)
            .await?;
        self.shared.finish(delivery)
    }

    /// Every delivery sent so far, in the order they were sent.
    pub fn deliveries(&self) -> Vec<SentDelivery> {
        self.shared.lock().deliveries.clone()
    }

    /// Sends delivery `index` of [`BitbucketEmulator::deliveries`] again, byte for byte, with
    /// the same headers (delivery id and `X-Attempt-Number` included) to the same URL: a
    /// duplicate, as a Bitbucket retry or a "Resend" can produce. Returns the HTTP status.
    pub async fn redeliver(&self, index: usize) -> Result<u16> {
        let original = {
            let state = self.shared.lock();
            state.deliveries.get(index).cloned().with_context(|| {
                format!(
                    "there is no delivery {index}; {} have been sent",
                    state.deliveries.len()
                )
            })?
        };
        let identity = RepoIdentity::parse(&original.repo)?;
        let rendered = Rendered {
            headers: original.headers,
            body: original.body,
        };
        let delivery = self
            .shared
            .send(
                &identity,
                &original.url,
                DeliveryKind::Redelivery { of: index },
                rendered,
            )
            .await?;
        self.shared.finish(delivery)
    }

    /// Sends exactly `headers` and `body` to the repository's webhook URL, for requests
    /// Bitbucket would not make (oversized, badly signed, malformed). Returns the HTTP status.
    pub async fn send_raw(
        &self,
        repo: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<u16> {
        let identity = RepoIdentity::parse(repo)?;
        let target = self.target(&identity)?;
        let rendered = Rendered {
            headers: headers
                .iter()
                .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
                .collect(),
            body,
        };
        let delivery = self
            .shared
            .send(&identity, &target.url, DeliveryKind::Raw, rendered)
            .await?;
        self.shared.finish(delivery)
    }

    /// Waits until every ref update recorded so far has been delivered (or dropped while
    /// paused), so a test can check what its receiver got. Fails on timeout, and when the
    /// background thread met a problem (an unreadable journal, a failing git command).
    ///
    /// A push has been recorded once `git push` returns: git runs `post-receive` before it
    /// reports the result to the client.
    pub async fn wait_idle(&self, timeout: Duration) -> Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            {
                let mut state = self.shared.lock();
                state.collect();
                if !state.problems.is_empty() {
                    bail!(
                        "the Bitbucket emulator failed:\n{}",
                        state.problems.join("\n")
                    );
                }
                if state.is_idle() {
                    return Ok(());
                }
                if tokio::time::Instant::now() >= deadline {
                    let unfinished: Vec<&str> = state
                        .watches
                        .iter()
                        .filter(|(_, watch)| watch.partial)
                        .map(|(repo, _)| repo.as_str())
                        .collect();
                    bail!(
                        "the Bitbucket emulator is still busy after {timeout:?}: {} push(es) \
                         pending, sending: {}, unfinished journal records in {unfinished:?}",
                        state.pending.len(),
                        state.sending,
                    );
                }
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Stops (`true`) or resumes (`false`) sending deliveries for ref updates. Updates
    /// recorded while paused are dropped, not queued: they are missed webhooks. Updates
    /// recorded before pausing are still delivered. Pings, redeliveries and raw sends are not
    /// affected.
    pub fn pause(&self, paused: bool) {
        let mut state = self.shared.lock();
        // Whatever was recorded up to now is judged by the state it was recorded in.
        state.collect();
        state.paused = paused;
    }

    /// The webhook of a repository.
    fn target(&self, identity: &RepoIdentity) -> Result<WebhookTarget> {
        self.shared
            .lock()
            .watches
            .get(identity.relative())
            .map(|watch| watch.target.clone())
            .with_context(|| {
                format!(
                    "{} has no webhook; call add_webhook first",
                    identity.relative()
                )
            })
    }

    /// The path of a repository that must exist.
    fn existing_repo(&self, identity: &RepoIdentity) -> Result<PathBuf> {
        let path = self.shared.root.repo_path(identity.relative())?;
        if !path.join("HEAD").is_file() {
            bail!(
                "there is no bare repository {} under {}",
                identity.relative(),
                self.shared.root.path().display()
            );
        }
        Ok(path)
    }

    /// Appends a one-update push to the repository's journal, if it has a webhook.
    fn record(&self, identity: &RepoIdentity, update: RefUpdate) -> Result<()> {
        let journal = self
            .shared
            .lock()
            .watches
            .get(identity.relative())
            .map(|watch| watch.journal.clone());
        let Some(journal) = journal else {
            return Ok(());
        };
        journal::append(
            &journal,
            &Push {
                actor: EMULATOR_ACTOR.to_owned(),
                updates: vec![update],
            },
        )
    }
}

impl Drop for BitbucketEmulator {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            // An error only means the thread has already stopped.
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl State {
    /// Reads the complete records of every journal: into `pending`, or nowhere while paused.
    fn collect(&mut self) {
        let paused = self.paused;
        let mut pushes = Vec::new();
        let mut problems = Vec::new();
        for (repo, watch) in &mut self.watches {
            let batch = match journal::read_from(&watch.journal, watch.read) {
                Ok(batch) => batch,
                Err(err) => {
                    problems.push(format!("{repo}: {err:#}"));
                    continue;
                }
            };
            watch.read = batch.next;
            watch.partial = batch.partial;
            for record in batch.records {
                match record {
                    Ok(_) if paused => {}
                    Ok(push) => pushes.push(Pending {
                        identity: watch.identity.clone(),
                        target: watch.target.clone(),
                        hook_uuid: watch.hook_uuid,
                        push,
                    }),
                    Err(err) => problems.push(format!("{repo}: {err}")),
                }
            }
        }
        self.pending.extend(pushes);
        self.problems.extend(problems);
    }

    fn is_idle(&self) -> bool {
        self.pending.is_empty()
            && !self.sending
            && self.watches.values().all(|watch| !watch.partial)
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The background loop: deliver whatever is pending, then look again shortly.
    async fn run(&self) {
        loop {
            while self.deliver_next().await {}
            tokio::time::sleep(POLL).await;
        }
    }

    /// Delivers the oldest pending push; `false` when there was none.
    async fn deliver_next(&self) -> bool {
        let pending = {
            let mut state = self.lock();
            state.collect();
            let Some(pending) = state.pending.pop_front() else {
                return false;
            };
            state.sending = true;
            pending
        };
        let outcome = match self.render_push(&pending) {
            Ok(Some(rendered)) => {
                let kind = DeliveryKind::Push(pending.target.format);
                self.send(&pending.identity, &pending.target.url, kind, rendered)
                    .await
                    .map(Some)
            }
            Ok(None) => Ok(None),
            Err(err) => Err(err),
        };
        let mut state = self.lock();
        match outcome {
            Ok(Some(delivery)) => state.deliveries.push(delivery),
            Ok(None) => {}
            Err(err) => state
                .problems
                .push(format!("{}: {err:#}", pending.identity.relative())),
        }
        state.sending = false;
        true
    }

    /// The delivery of a push, or `None` when it changed no branch or tag.
    fn render_push(&self, pending: &Pending) -> Result<Option<Rendered>> {
        let repo = self.root.repo_path(pending.identity.relative())?;
        let event = resolve::resolve(self.root.git(), &repo, &pending.push)?;
        if event.changes.is_empty() {
            return Ok(None);
        }
        let context = PushContext {
            identity: &pending.identity,
            endpoints: &self.endpoints,
            event: &event,
            secret: pending.target.secret.as_deref(),
            now: OffsetDateTime::now_utc(),
        };
        let rendered = match pending.target.format {
            WebhookFormat::Cloud => payload::cloud_push(&context, pending.hook_uuid)?,
            WebhookFormat::ServerNative => payload::server_refs_changed(&context)?,
            WebhookFormat::PostWebhooks => payload::post_webhooks_push(&context)?,
        };
        Ok(Some(rendered))
    }

    /// POSTs one delivery and returns the record of it; fails only when the request cannot
    /// even be built (a malformed header), since then nothing was sent.
    async fn send(
        &self,
        identity: &RepoIdentity,
        url: &str,
        kind: DeliveryKind,
        rendered: Rendered,
    ) -> Result<SentDelivery> {
        let mut headers = HeaderMap::new();
        for (name, value) in &rendered.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .with_context(|| format!("{name:?} is not a valid header name"))?;
            let value = HeaderValue::from_str(value)
                .with_context(|| format!("{value:?} is not a valid value for header {name}"))?;
            headers.append(name, value);
        }
        let answer = self
            .http
            .post(url)
            .headers(headers)
            .body(rendered.body.clone())
            .send()
            .await;
        let (outcome, response_body) = match answer {
            Ok(response) => {
                let status = response.status().as_u16();
                let body = response.text().await.unwrap_or_default();
                (Ok(status), body)
            }
            Err(err) => (
                Err(format!("{:#}", anyhow::Error::from(err))),
                String::new(),
            ),
        };
        Ok(SentDelivery {
            repo: identity.relative().to_owned(),
            url: url.to_owned(),
            kind,
            headers: rendered.headers,
            body: rendered.body,
            outcome,
            response_body,
        })
    }

    /// Records a delivery made on the caller's behalf and turns its outcome into the result.
    fn finish(&self, delivery: SentDelivery) -> Result<u16> {
        let outcome = delivery.outcome.clone();
        let url = delivery.url.clone();
        self.lock().deliveries.push(delivery);
        outcome.map_err(|err| anyhow::anyhow!("POST {url} got no answer: {err}"))
    }
}
