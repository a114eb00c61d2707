//! Prometheus metrics at `/metrics`, on the API's own listener.
//!
//! Counters and histograms are recorded where things happen, through the `metrics` facade
//! (the Git Sync engine records its own; this module records the server's). Levels that the
//! store already knows (changesets waiting, sync errors open, delegates connected) are read
//! when scraped, so they cannot drift from the truth. One recorder serves the whole process:
//! several servers in one test process share it.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use reposync_model::scope::Scope;
use reposync_store::{StoreError, TaskRecord};

use crate::state::AppState;

/// Histogram buckets, in seconds, for requests, reads from Git and tasks: from a fast API
/// answer to a slow clone.
const SECONDS_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process's recorder, once; `None` when another recorder was installed first.
fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
                .map(PrometheusBuilder::build_recorder);
            let recorder = match recorder {
                Ok(recorder) => recorder,
                Err(error) => {
                    tracing::error!(%error, "cannot set up the metrics recorder");
                    return None;
                }
            };
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::error!("another metrics recorder is installed; /metrics stays empty");
                return None;
            }
            describe();
            Some(handle)
        })
        .as_ref()
}

/// Starts recording; called once the server is built, before any request.
pub fn install() {
    let _ = handle();
}

/// The HELP lines, one per metric, which the README lists too.
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "reposync_http_requests_total",
        "HTTP requests answered, by method, route template and status."
    );
    describe_histogram!(
        "reposync_http_request_duration_seconds",
        "Time to answer an HTTP request, by method and route template."
    );
    describe_counter!(
        "reposync_webhook_deliveries_total",
        "Webhook deliveries, by payload format and outcome."
    );
    describe_gauge!(
        "reposync_changesets_waiting",
        "Changesets not yet pushed, per sync link."
    );
    describe_gauge!(
        "reposync_sync_errors_open",
        "Sync errors that need a person, per sync link."
    );
    describe_gauge!(
        "reposync_delegates_connected",
        "Delegates heard from recently, the built-in one included."
    );
    describe_counter!(
        "reposync_tasks_total",
        "Tasks finished by a delegate, by kind and outcome."
    );
    describe_histogram!(
        "reposync_task_wait_seconds",
        "Time a task waited in the queue before a delegate claimed it, by kind."
    );
    describe_histogram!(
        "reposync_task_run_seconds",
        "Time from a delegate's claim to the task's end, by kind."
    );
    reposync_sync::describe_metrics();
}

/// Counts one answered request.
pub fn http_request(method: &str, route: &str, status: u16, took: Duration) {
    let labels = [
        ("method", method.to_owned()),
        ("route", route.to_owned()),
        ("status", status.to_string()),
    ];
    metrics::counter!("reposync_http_requests_total", &labels).increment(1);
    metrics::histogram!("reposync_http_request_duration_seconds", &labels[..2]).record(took);
}

/// Counts one webhook delivery; `format` is `unknown` when the body was never read.
pub fn webhook_delivery(format: &str, outcome: &str) {
    metrics::counter!(
        "reposync_webhook_deliveries_total",
        "format" => format.to_owned(),
        "outcome" => outcome.to_owned()
    )
    .increment(1);
}

/// Counts a task a delegate finished, with how long it waited and ran.
pub fn task_finished(task: &TaskRecord, succeeded: bool) {
    let outcome = if succeeded { "succeeded" } else { "failed" };
    metrics::counter!(
        "reposync_tasks_total",
        "kind" => task.kind.clone(),
        "outcome" => outcome
    )
    .increment(1);
    let millis = |from: i64, to: i64| Duration::from_millis(u64::try_from(to - from).unwrap_or(0));
    if let Some(started) = task.started_at {
        metrics::histogram!("reposync_task_wait_seconds", "kind" => task.kind.clone())
            .record(millis(task.created_at, started));
        if let Some(finished) = task.finished_at {
            metrics::histogram!("reposync_task_run_seconds", "kind" => task.kind.clone())
                .record(millis(started, finished));
        }
    }
}

/// The metrics in Prometheus's text format, levels read from the store now.
pub async fn render(state: &AppState) -> Result<String, StoreError> {
    let Some(handle) = handle() else {
        return Ok(String::new());
    };
    let backlogs = state.store.link_backlogs().await?;
    // Every link ever made, so that a link whose backlog emptied, or that was disabled, reads
    // 0 rather than its last level.
    for link in state.store.all_links().await? {
        let backlog = backlogs.get(&link.id).copied().unwrap_or_default();
        let labels = [
            ("link", link.id.to_string()),
            ("scope", Scope::of_app(link.app.as_deref()).to_string()),
        ];
        metrics::gauge!("reposync_changesets_waiting", &labels).set(backlog.waiting as f64);
        metrics::gauge!("reposync_sync_errors_open", &labels).set(backlog.open_errors as f64);
    }
    metrics::gauge!("reposync_delegates_connected").set(state.tasks.connected().len() as f64);
    Ok(handle.render())
}
