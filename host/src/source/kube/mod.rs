//! `kwex run`: Events from a Kubernetes API server, by list and watch.
//!
//! # Why not `kube_runtime::watcher`
//! The kube-rs watcher merges the watch's `ADDED` and `MODIFIED` into one
//! `Apply`, and hands out parsed objects. kwex records which of the two it
//! was (`kwex.watchAction`) and normalizes Events from their raw JSON (the
//! same code path as `kwex replay`, with no second parse). So this module
//! runs the list-then-watch protocol itself on the kube client, keeping
//! what the watcher does well (decided in `docs/decisions/2026-11-25-kube-source.md`):
//!
//! - the initial list is paginated (`--list-page-size`), and nothing is kept
//!   in memory afterwards: memory stays flat however many Events exist;
//! - the watch resumes from the last resourceVersion seen (watch events and
//!   bookmarks both advance it), so a dropped connection loses nothing;
//! - `410 Gone` (the resourceVersion fell out of etcd's window) re-lists;
//! - transient errors back off with jitter and are logged with their cause;
//! - 401 and 403 stop kwex with a message naming the missing permission.
//!
//! A re-list sends every Event again. That is harmless by design: a
//! Document's id is `<uid>:<resourceVersion>`, so the search cluster refuses
//! the repeats (409) and nothing is filtered by age.
//!
//! Both `ADDED` and `MODIFIED` become Documents (a `count` bump is a new
//! resourceVersion, so a new Document); `DELETED` (TTL expiry) is counted only.

pub mod client;
pub mod leader;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use futures::AsyncBufReadExt as _;
use kube::core::Request;
use kube::core::params::{ListParams, WatchParams};
use prometheus::{IntCounterVec, IntGauge, Registry};
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::sync::{Mutex, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Chunk, Origin, RawEvent};
use crate::backoff::Backoff;
use crate::document::WatchAction;
use crate::telemetry::metrics::{self, RegisterError};

/// Server-side watch timeout; the watch is re-opened after it, from the last resourceVersion.
const WATCH_TIMEOUT_SECS: u32 = 290;
/// A watch that sends nothing (not even a bookmark) for this long is presumed dead.
const WATCH_IDLE: Duration = Duration::from_secs(WATCH_TIMEOUT_SECS as u64 + 40);

/// Which Event API to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum EventApi {
    /// `core/v1` Events (`/api/v1/events`): what `kubectl get events` shows.
    #[default]
    #[value(name = "v1")]
    CoreV1,
    /// `events.k8s.io/v1` Events: the same objects in the newer shape.
    #[value(name = "events.k8s.io/v1")]
    EventsV1,
}

impl EventApi {
    /// As in `apiVersion`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventApi::CoreV1 => "v1",
            EventApi::EventsV1 => "events.k8s.io/v1",
        }
    }

    fn path(self, namespace: Option<&str>) -> String {
        let base = match self {
            EventApi::CoreV1 => "/api/v1",
            EventApi::EventsV1 => "/apis/events.k8s.io/v1",
        };
        match namespace {
            Some(ns) => format!("{base}/namespaces/{ns}/events"),
            None => format!("{base}/events"),
        }
    }
}

/// What to watch, and how hard to press the API server.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The Event API version.
    pub api: EventApi,
    /// Namespaces to watch; empty for all.
    pub namespaces: Vec<String>,
    /// `--label-selector`.
    pub label_selector: Option<String>,
    /// `--field-selector`.
    pub field_selector: Option<String>,
    /// Items per page of the initial list (client-go's default is 500).
    pub page_size: u32,
    /// Full re-list period, if any.
    pub resync_period: Option<Duration>,
    /// Sustained requests per second to the API server (client-go's default is 5).
    pub qps: f64,
    /// Requests allowed in a burst above `qps` (client-go's default is 10).
    pub burst: u32,
}

/// Why the source stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// 401: the credentials were refused.
    #[error(
        "the API server refused kwex's credentials (401 Unauthorized: {message}); check the token or client \
         certificate of the kubeconfig, or the pod's ServiceAccount token"
    )]
    Unauthorized {
        /// The server's message.
        message: String,
    },
    /// 403: RBAC does not allow what kwex needs.
    #[error(
        "the API server denied access (403 Forbidden: {message}); kwex needs get, list and watch on \"events\" \
         (API group {group:?}): bind it to the ClusterRole in deploy/"
    )]
    Forbidden {
        /// The server's message, which names the user, verb and resource.
        message: String,
        /// The API group of the Events read.
        group: &'static str,
    },
    /// The API server could not be reached before the first list completed.
    #[error(
        "cannot list Events from the API server: {0} (check the server address, CA and network)"
    )]
    Unreachable(String),
}

/// Counters and gauges of the Kubernetes source.
#[derive(Debug, Clone)]
pub struct Metrics {
    events: IntCounterVec,
    restarts: IntCounterVec,
    last_event: IntGauge,
    synced: IntGauge,
}

impl Metrics {
    /// Registers `kwex_source_kube_*`.
    pub fn register(registry: &Registry) -> Result<Self, RegisterError> {
        let last_event = metrics::gauge(
            registry,
            "kwex_source_kube_last_event_timestamp_seconds",
            "Unix time of the last Event, watch event or bookmark received (alert on time() minus this).",
        )?;
        let synced = metrics::gauge(
            registry,
            "kwex_source_kube_synced",
            "1 once the initial list of every namespace completed.",
        )?;
        Ok(Self {
            events: metrics::counter_vec(
                registry,
                "kwex_source_kube_events_total",
                "Events received from the API server, by API version and action (added, modified, deleted).",
                &["api_version", "action"],
            )?,
            restarts: metrics::counter_vec(
                registry,
                "kwex_source_kube_restarts_total",
                "List or watch (re)starts, by cause: gone (410, re-list), watch_end, watch_error, list_error, idle, resync.",
                &["cause"],
            )?,
            last_event,
            synced,
        })
    }
}

/// Tells the telemetry server whether the initial list is complete.
#[derive(Debug, Clone, Default)]
pub struct Synced(Arc<AtomicBool>);

impl Synced {
    /// True once every watched namespace has been listed once.
    pub fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Token bucket shared by every request of the source (`--kube-api-qps`, `--kube-api-burst`).
#[derive(Debug)]
struct RateLimiter {
    qps: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl RateLimiter {
    fn new(qps: f64, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            qps: qps.max(0.01),
            burst,
            tokens: burst,
            last: Instant::now(),
        }
    }

    /// How long to wait before the next request may go (and take its token).
    fn reserve(&mut self) -> Duration {
        let now = Instant::now();
        self.tokens =
            (self.tokens + now.duration_since(self.last).as_secs_f64() * self.qps).min(self.burst);
        self.last = now;
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.qps)
        }
    }
}

/// Lists and watches Events, sending each as a [`RawEvent`].
#[derive(Clone)]
pub struct KubeSource {
    client: kube::Client,
    settings: Arc<Settings>,
    metrics: Metrics,
    synced: Synced,
    limiter: Arc<Mutex<RateLimiter>>,
}

impl std::fmt::Debug for KubeSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeSource")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// How one attempt at listing or watching ended.
enum Step {
    /// Listed; watch from this resourceVersion.
    Listed(String),
    /// The watch ended normally (server timeout); go on from this resourceVersion.
    WatchEnded(String),
    /// Re-list (410 Gone, resync, or a watch that went quiet).
    Relist(&'static str),
    /// Shutdown.
    Stopped,
}

/// A failed request, sorted by what to do about it.
enum Failure {
    /// Stop kwex.
    Fatal(Error),
    /// 410 Gone: the resourceVersion is too old; re-list.
    Gone,
    /// Try again after a backoff.
    Transient(String),
}

impl KubeSource {
    /// A source reading through `client`.
    pub fn new(client: kube::Client, settings: Settings, metrics: Metrics) -> Self {
        let limiter = RateLimiter::new(settings.qps, settings.burst);
        Self {
            client,
            settings: Arc::new(settings),
            metrics,
            synced: Synced::default(),
            limiter: Arc::new(Mutex::new(limiter)),
        }
    }

    /// The readiness flag (true once the initial list completed).
    pub fn synced(&self) -> Synced {
        self.synced.clone()
    }

    /// Lists and watches until `shutdown` fires or a fatal error occurs.
    pub async fn run(
        self,
        tx: mpsc::Sender<Chunk>,
        shutdown: CancellationToken,
    ) -> Result<(), Error> {
        let scopes: Vec<Option<String>> = if self.settings.namespaces.is_empty() {
            vec![None]
        } else {
            self.settings.namespaces.iter().cloned().map(Some).collect()
        };
        let listed = Arc::new(AtomicUsize::new(0));
        let total = scopes.len();
        let watches = scopes.into_iter().map(|scope| {
            let this = self.clone();
            let (tx, shutdown, listed) = (tx.clone(), shutdown.clone(), listed.clone());
            async move { this.watch_scope(scope, tx, shutdown, listed, total).await }
        });
        // One failing namespace stops all: a fatal error (RBAC) concerns them all.
        let result = futures::future::try_join_all(watches).await.map(drop);
        if result.is_err() {
            shutdown.cancel();
        }
        result
    }

    async fn watch_scope(
        &self,
        namespace: Option<String>,
        tx: mpsc::Sender<Chunk>,
        shutdown: CancellationToken,
        listed: Arc<AtomicUsize>,
        total: usize,
    ) -> Result<(), Error> {
        let path = self.settings.api.path(namespace.as_deref());
        let scope = namespace.as_deref().unwrap_or("all namespaces");
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
        let mut resource_version: Option<String> = None;
        let mut ever_listed = false;
        let mut next_resync = self.settings.resync_period.map(|p| Instant::now() + p);

        loop {
            if shutdown.is_cancelled() {
                return Ok(());
            }
            let step = match &resource_version {
                None => self.list(&path, &tx, &shutdown).await,
                Some(rv) => {
                    self.watch(&path, rv.clone(), &tx, &shutdown, next_resync)
                        .await
                }
            };
            match step {
                Ok(Step::Stopped) => return Ok(()),
                Ok(Step::Listed(rv)) => {
                    backoff.reset();
                    if !ever_listed {
                        ever_listed = true;
                        if listed.fetch_add(1, Ordering::SeqCst) + 1 == total {
                            self.synced.0.store(true, Ordering::Relaxed);
                            self.metrics.synced.set(1);
                            tracing::info!(
                                api = self.settings.api.as_str(),
                                "Initial list of Events complete; watching."
                            );
                        }
                    }
                    next_resync = self.settings.resync_period.map(|p| Instant::now() + p);
                    resource_version = Some(rv);
                }
                Ok(Step::WatchEnded(rv)) => {
                    backoff.reset();
                    self.metrics
                        .restarts
                        .with_label_values(&["watch_end"])
                        .inc();
                    resource_version = Some(rv);
                }
                Ok(Step::Relist(cause)) => {
                    self.metrics.restarts.with_label_values(&[cause]).inc();
                    tracing::info!(
                        scope,
                        cause,
                        "Re-listing Events (ids make the repeats harmless)."
                    );
                    resource_version = None;
                }
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::Gone) => {
                    self.metrics.restarts.with_label_values(&["gone"]).inc();
                    tracing::info!(
                        scope,
                        "The watch's resourceVersion is gone (410); re-listing."
                    );
                    resource_version = None;
                }
                Err(Failure::Transient(message)) => {
                    if !ever_listed && backoff.failures() >= 2 {
                        // Never reached the server: a configuration problem more
                        // likely than an outage. Say so and stop, rather than
                        // retry silently forever.
                        return Err(Error::Unreachable(message));
                    }
                    let cause = if resource_version.is_some() {
                        "watch_error"
                    } else {
                        "list_error"
                    };
                    self.metrics.restarts.with_label_values(&[cause]).inc();
                    let delay = backoff.next_delay();
                    tracing::warn!(scope, error = %message, retry_in = ?delay,
                        "Kubernetes API request failed; retrying from the last resourceVersion seen.");
                    tokio::select! {
                        () = shutdown.cancelled() => return Ok(()),
                        () = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
    }

    async fn pace(&self, shutdown: &CancellationToken) -> bool {
        let wait = self.limiter.lock().await.reserve();
        if wait.is_zero() {
            return true;
        }
        tokio::select! {
            () = shutdown.cancelled() => false,
            () = tokio::time::sleep(wait) => true,
        }
    }

    /// The paginated initial list; every item is sent as `added`.
    async fn list(
        &self,
        path: &str,
        tx: &mpsc::Sender<Chunk>,
        shutdown: &CancellationToken,
    ) -> Result<Step, Failure> {
        #[derive(Deserialize)]
        struct Page<'a> {
            #[serde(borrow)]
            metadata: PageMeta<'a>,
            #[serde(borrow, default)]
            items: Vec<&'a RawValue>,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct PageMeta<'a> {
            #[serde(default)]
            resource_version: Option<&'a str>,
            #[serde(rename = "continue", default)]
            continue_token: Option<&'a str>,
        }

        let mut continue_token: Option<String> = None;
        loop {
            if !self.pace(shutdown).await {
                return Ok(Step::Stopped);
            }
            let params = ListParams {
                label_selector: self.settings.label_selector.clone(),
                field_selector: self.settings.field_selector.clone(),
                limit: Some(self.settings.page_size),
                continue_token: continue_token.take(),
                ..ListParams::default()
            };
            let request = Request::new(path)
                .list(&params)
                .map_err(|e| Failure::Transient(e.to_string()))?;
            let text = tokio::select! {
                () = shutdown.cancelled() => return Ok(Step::Stopped),
                r = self.client.request_text(request) => r.map_err(|e| self.classify(e))?,
            };
            let page: Page<'_> = serde_json::from_str(&text)
                .map_err(|e| Failure::Transient(format!("the list response is not a list: {e}")))?;
            let hint = Some(self.settings.api.as_str());
            let chunk: Chunk = page
                .items
                .iter()
                .map(|item| RawEvent {
                    bytes: item.get().as_bytes().to_vec(),
                    origin: Origin::Watch,
                    action: WatchAction::Added,
                    api_hint: hint,
                })
                .collect();
            self.metrics
                .events
                .with_label_values(&[self.settings.api.as_str(), "added"])
                .inc_by(chunk.len() as u64);
            self.metrics.last_event.set(chrono::Utc::now().timestamp());
            if !chunk.is_empty() && tx.send(chunk).await.is_err() {
                return Ok(Step::Stopped);
            }
            match page.metadata.continue_token.filter(|t| !t.is_empty()) {
                Some(token) => continue_token = Some(token.to_owned()),
                None => {
                    let rv = page
                        .metadata
                        .resource_version
                        .unwrap_or_default()
                        .to_owned();
                    return Ok(Step::Listed(rv));
                }
            }
        }
    }

    /// One watch request, from `resource_version`, until it ends.
    async fn watch(
        &self,
        path: &str,
        mut resource_version: String,
        tx: &mpsc::Sender<Chunk>,
        shutdown: &CancellationToken,
        resync_at: Option<Instant>,
    ) -> Result<Step, Failure> {
        #[derive(Deserialize)]
        struct Line<'a> {
            #[serde(rename = "type")]
            kind: &'a str,
            #[serde(borrow)]
            object: &'a RawValue,
        }
        #[derive(Deserialize)]
        struct Object<'a> {
            #[serde(borrow, default)]
            metadata: Option<ObjectMeta<'a>>,
            #[serde(default)]
            code: Option<u16>,
            #[serde(default)]
            message: Option<String>,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct ObjectMeta<'a> {
            #[serde(default)]
            resource_version: Option<&'a str>,
        }

        if !self.pace(shutdown).await {
            return Ok(Step::Stopped);
        }
        let params = WatchParams {
            label_selector: self.settings.label_selector.clone(),
            field_selector: self.settings.field_selector.clone(),
            timeout: Some(WATCH_TIMEOUT_SECS),
            bookmarks: true,
            ..WatchParams::default()
        };
        let request = Request::new(path)
            .watch(&params, &resource_version)
            .map_err(|e| Failure::Transient(e.to_string()))?;
        let body = tokio::select! {
            () = shutdown.cancelled() => return Ok(Step::Stopped),
            r = self.client.request_stream(request) => r.map_err(|e| self.classify(e))?,
        };
        let mut body = std::pin::pin!(body);
        let resync = async {
            match resync_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let mut resync = std::pin::pin!(resync);
        let api = self.settings.api.as_str();
        let mut line = Vec::with_capacity(4096);
        loop {
            line.clear();
            let read = tokio::select! {
                () = shutdown.cancelled() => return Ok(Step::Stopped),
                () = &mut resync => return Ok(Step::Relist("resync")),
                r = tokio::time::timeout(WATCH_IDLE, body.read_until(b'\n', &mut line)) => r,
            };
            match read {
                Err(_) => return Ok(Step::Relist("idle")),
                Ok(Err(e)) => {
                    return Err(Failure::Transient(format!(
                        "the watch connection failed: {e}"
                    )));
                }
                Ok(Ok(0)) => return Ok(Step::WatchEnded(resource_version)),
                Ok(Ok(_)) => {}
            }
            let text = line.trim_ascii();
            if text.is_empty() {
                continue;
            }
            let parsed: Line<'_> = match serde_json::from_slice(text) {
                Ok(l) => l,
                Err(e) => return Err(Failure::Transient(format!("a watch line is not JSON: {e}"))),
            };
            let object: Object<'_> = serde_json::from_str(parsed.object.get())
                .map_err(|e| Failure::Transient(format!("a watch object is not JSON: {e}")))?;
            self.metrics.last_event.set(chrono::Utc::now().timestamp());
            let action = match parsed.kind {
                "ADDED" => WatchAction::Added,
                "MODIFIED" => WatchAction::Modified,
                "DELETED" => {
                    self.metrics
                        .events
                        .with_label_values(&[api, "deleted"])
                        .inc();
                    if let Some(rv) = object.metadata.and_then(|m| m.resource_version) {
                        resource_version = rv.to_owned();
                    }
                    continue;
                }
                "BOOKMARK" => {
                    if let Some(rv) = object.metadata.and_then(|m| m.resource_version) {
                        resource_version = rv.to_owned();
                    }
                    continue;
                }
                "ERROR" => {
                    let message = object.message.unwrap_or_default();
                    return match object.code {
                        Some(410) => Err(Failure::Gone),
                        Some(401) => Err(Failure::Fatal(Error::Unauthorized { message })),
                        Some(403) => Err(Failure::Fatal(self.forbidden(message))),
                        code => Err(Failure::Transient(format!(
                            "watch error {code:?}: {message}"
                        ))),
                    };
                }
                other => {
                    tracing::warn!(kind = other, "Unknown watch event type; ignored.");
                    continue;
                }
            };
            if let Some(rv) = object.metadata.and_then(|m| m.resource_version) {
                resource_version = rv.to_owned();
            }
            self.metrics
                .events
                .with_label_values(&[api, action_label(action)])
                .inc();
            let event = RawEvent {
                bytes: parsed.object.get().as_bytes().to_vec(),
                origin: Origin::Watch,
                action,
                api_hint: Some(api),
            };
            if tx.send(vec![event]).await.is_err() {
                return Ok(Step::Stopped);
            }
        }
    }

    fn forbidden(&self, message: String) -> Error {
        let group = match self.settings.api {
            EventApi::CoreV1 => "",
            EventApi::EventsV1 => "events.k8s.io",
        };
        Error::Forbidden { message, group }
    }

    fn classify(&self, e: kube::Error) -> Failure {
        match e {
            kube::Error::Api(status) => match status.code {
                401 => Failure::Fatal(Error::Unauthorized {
                    message: status.message,
                }),
                403 => Failure::Fatal(self.forbidden(status.message)),
                410 => Failure::Gone,
                code => Failure::Transient(format!("{code} {}: {}", status.reason, status.message)),
            },
            other => Failure::Transient(crate::error::chain(&other)),
        }
    }
}

fn action_label(action: WatchAction) -> &'static str {
    match action {
        WatchAction::Added => "added",
        WatchAction::Modified => "modified",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_cover_both_apis_and_namespaces() {
        assert_eq!(EventApi::CoreV1.path(None), "/api/v1/events");
        assert_eq!(
            EventApi::CoreV1.path(Some("kube-system")),
            "/api/v1/namespaces/kube-system/events"
        );
        assert_eq!(
            EventApi::EventsV1.path(None),
            "/apis/events.k8s.io/v1/events"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn rate_limiter_allows_a_burst_then_paces_at_qps() {
        let mut limiter = RateLimiter::new(2.0, 3);
        for _ in 0..3 {
            assert_eq!(limiter.reserve(), Duration::ZERO);
        }
        assert_eq!(limiter.reserve(), Duration::from_millis(500));
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(limiter.reserve(), Duration::ZERO, "tokens refill over time");
    }
}
