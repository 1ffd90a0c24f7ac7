//! Delivering one batch: send, read every item, retry only what may succeed
//! later, dead-letter what never will.
//!
//! The rules, in one place:
//!
//! | answer | what happens |
//! |---|---|
//! | item 2xx | delivered |
//! | item 409 on `create` | delivered earlier (a duplicate): counted as delivered |
//! | item 429 | retried, with backoff, for as long as it takes (the cluster is shedding load) |
//! | item 5xx (not 501) | retried with backoff, up to `max_item_retries` times, then dead-lettered |
//! | item other 4xx | dead-lettered at once (a mapping conflict does not heal) |
//! | request 413 | the batch is split in halves; a single document too large is dead-lettered |
//! | request 400 | as 413: halves isolate the document that breaks the request |
//! | request 429, 5xx, connect error, timeout | the whole batch is retried with backoff, indefinitely |
//! | request 401, 403 | retried with backoff, logged as an error (credentials may be rotated) |
//!
//! Backoff is exponential with jitter, from 200 ms up to `max_backoff`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;

use super::client::{Client, Response, TransportError};
use super::dead_letter;
use super::metrics::Metrics;
use super::response::{self, ItemError, Outcome};
use crate::backoff::Backoff;
use crate::document::{IndexPattern, Record};
use crate::sink::encode;

/// Settings of the writer.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `create` (occurrence ids) or `index` (latest ids).
    pub action: &'static str,
    /// Where refused documents go.
    pub dead_letter_index: IndexPattern,
    /// Retries of an item that keeps failing with 5xx before it is dead-lettered.
    pub max_item_retries: u32,
    /// Longest wait between retries.
    pub max_backoff: Duration,
}

/// What one batch came to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Report {
    /// Stored now.
    pub delivered: u64,
    /// Already stored (409).
    pub duplicates: u64,
    /// Written to the dead-letter index.
    pub dead_lettered: u64,
    /// Refused, and the dead-letter write failed too.
    pub lost: u64,
}

impl std::ops::AddAssign for Report {
    fn add_assign(&mut self, other: Self) {
        self.delivered += other.delivered;
        self.duplicates += other.duplicates;
        self.dead_lettered += other.dead_lettered;
        self.lost += other.lost;
    }
}

/// Sends batches; cheap to clone (one per in-flight request).
#[derive(Debug, Clone)]
pub struct Writer {
    client: Client,
    settings: Arc<Settings>,
    metrics: Metrics,
    dead_letter_log: Arc<Mutex<HashMap<String, Instant>>>,
    /// Whether the last `_bulk` request got an answer from the cluster (for `/readyz`).
    reachable: Arc<AtomicBool>,
}

/// How a request as a whole went.
enum Sent {
    Items(Vec<Outcome>),
    /// Too large or malformed as a whole: split.
    Split(u16),
    /// Try the same documents again.
    Retry(String),
}

impl Writer {
    /// A writer sending through `client`.
    pub fn new(client: Client, settings: Settings, metrics: Metrics) -> Self {
        Self {
            client,
            settings: Arc::new(settings),
            metrics,
            dead_letter_log: Arc::default(),
            reachable: Arc::new(AtomicBool::new(true)),
        }
    }

    /// True while the cluster answers (any HTTP answer but a 5xx); false
    /// after a connection failure, a timeout or a 5xx, until the next answer.
    pub fn reachable(&self) -> Arc<AtomicBool> {
        self.reachable.clone()
    }

    /// Delivers every record of `batch`, one way or another; returns only
    /// when each is delivered, a duplicate, or dead-lettered.
    pub async fn deliver(&self, batch: Vec<Record>) -> Report {
        self.metrics.batches.inc();
        self.metrics.batch_documents.observe(batch.len() as f64);
        Box::pin(self.deliver_part(batch)).await
    }

    async fn deliver_part(&self, batch: Vec<Record>) -> Report {
        let mut report = Report::default();
        let mut pending: Vec<(Record, u32)> = batch.into_iter().map(|r| (r, 0)).collect();
        let mut backoff = Backoff::new(Duration::from_millis(200), self.settings.max_backoff);
        let mut backing_off = false;
        while !pending.is_empty() {
            let mut body =
                Vec::with_capacity(pending.iter().map(|(r, _)| r.body.len() + 128).sum());
            for (record, _) in &pending {
                encode::bulk_item(&mut body, self.settings.action, record);
            }
            if backoff.failures() == 0 {
                self.metrics.batch_bytes.observe(body.len() as f64);
            }
            let sent = self.send(body, pending.len()).await;
            let retry_reason = match sent {
                Sent::Items(outcomes) => {
                    let mut again = Vec::new();
                    let mut refused = Vec::new();
                    for ((record, tries), outcome) in pending.into_iter().zip(outcomes) {
                        match outcome {
                            Outcome::Delivered => report.delivered += 1,
                            Outcome::Duplicate => report.duplicates += 1,
                            Outcome::Retry(e)
                                if e.status != 429 && tries >= self.settings.max_item_retries =>
                            {
                                let reason =
                                    format!("{} (still failing after {tries} retries)", e.reason);
                                refused.push((record, ItemError { reason, ..e }));
                            }
                            Outcome::Retry(e) => {
                                self.metrics.documents.with_label_values(&["retried"]).inc();
                                again.push((record, tries + 1, e));
                            }
                            Outcome::Rejected(e) => refused.push((record, e)),
                        }
                    }
                    if !refused.is_empty() {
                        report += self.dead_letter(refused).await;
                    }
                    let reason = again.first().map(|(_, _, e)| {
                        format!(
                            "{} items failed, e.g. {} {}: {}",
                            again.len(),
                            e.status,
                            e.kind,
                            e.reason
                        )
                    });
                    pending = again.into_iter().map(|(r, t, _)| (r, t)).collect();
                    match reason {
                        None => break,
                        Some(reason) => reason,
                    }
                }
                Sent::Split(status) => {
                    if pending.len() == 1 {
                        let (record, _) = pending.remove(0);
                        let error = ItemError {
                            status,
                            kind: if status == 413 {
                                "request_entity_too_large".into()
                            } else {
                                "bad_request".into()
                            },
                            reason: format!(
                                "the cluster refused a request holding only this document (HTTP {status})"
                            ),
                        };
                        report += self.dead_letter(vec![(record, error)]).await;
                        break;
                    }
                    let second = pending.split_off(pending.len() / 2);
                    let records = |part: Vec<(Record, u32)>| {
                        part.into_iter().map(|(r, _)| r).collect::<Vec<_>>()
                    };
                    report += Box::pin(self.deliver_part(records(pending))).await;
                    report += Box::pin(self.deliver_part(records(second))).await;
                    break;
                }
                Sent::Retry(reason) => reason,
            };
            if !backing_off {
                backing_off = true;
                self.metrics.backing_off.inc();
            }
            let delay = backoff.next_delay();
            tracing::warn!(
                url = %self.client.first_url(), documents = pending.len(), attempt = backoff.failures(),
                retry_in = ?delay, reason = %retry_reason,
                "Bulk request incomplete; retrying the documents not yet stored."
            );
            tokio::time::sleep(delay).await;
        }
        if backing_off {
            self.metrics.backing_off.dec();
        }
        self.metrics
            .documents
            .with_label_values(&["delivered"])
            .inc_by(report.delivered);
        self.metrics
            .documents
            .with_label_values(&["duplicate"])
            .inc_by(report.duplicates);
        report
    }

    async fn send(&self, body: Vec<u8>, documents: usize) -> Sent {
        self.metrics.in_flight.inc();
        let started = Instant::now();
        let result = self.client.bulk(body).await;
        self.metrics.in_flight.dec();
        let answered = matches!(&result, Ok(r) if r.status < 500);
        self.reachable.store(answered, Ordering::Relaxed);
        let elapsed = started.elapsed().as_secs_f64();
        let fail = |reason: &str, message: String| {
            self.metrics
                .request_duration
                .with_label_values(&["failed"])
                .observe(elapsed);
            self.metrics
                .request_failures
                .with_label_values(&[reason])
                .inc();
            Sent::Retry(message)
        };
        match result {
            Ok(Response { status, body }) if (200..300).contains(&status) => {
                match response::outcomes(&body, documents, self.settings.action) {
                    Ok(outcomes) => {
                        self.metrics
                            .request_duration
                            .with_label_values(&["ok"])
                            .observe(elapsed);
                        Sent::Items(outcomes)
                    }
                    Err(e) => fail("bad_response", e.to_string()),
                }
            }
            Ok(Response {
                status: status @ (400 | 413),
                body,
            }) => {
                self.metrics
                    .request_duration
                    .with_label_values(&["failed"])
                    .observe(elapsed);
                self.metrics
                    .request_failures
                    .with_label_values(&[if status == 413 {
                        "status_413"
                    } else {
                        "status_4xx"
                    }])
                    .inc();
                tracing::warn!(status, documents, answer = %snippet(&body), "The cluster refused the bulk request as a whole; splitting it to isolate the cause.");
                Sent::Split(status)
            }
            Ok(Response {
                status: status @ (401 | 403),
                body,
            }) => {
                tracing::error!(status, url = %self.client.first_url(), answer = %snippet(&body),
                    "The cluster refused kwex's credentials; check the user/password, API key, token or IAM role. Retrying.");
                fail(
                    if status == 401 {
                        "status_401"
                    } else {
                        "status_403"
                    },
                    format!("HTTP {status}"),
                )
            }
            Ok(Response { status, body }) => {
                let reason = match status {
                    429 => "status_429",
                    s if s >= 500 => "status_5xx",
                    _ => "status_4xx",
                };
                fail(reason, format!("HTTP {status}: {}", snippet(&body)))
            }
            Err(e) => {
                let reason = match &e {
                    TransportError::Timeout { .. } => "timeout",
                    TransportError::Connect { .. } => "connect",
                    _ => "other",
                };
                fail(reason, e.to_string())
            }
        }
    }

    /// Writes refused documents to the dead-letter index, once.
    async fn dead_letter(&self, refused: Vec<(Record, ItemError)>) -> Report {
        let now = Utc::now();
        let mut body = Vec::new();
        for (record, error) in &refused {
            self.log_dead_letter(record, error);
            let letter = dead_letter::record(&self.settings.dead_letter_index, record, error, now);
            encode::bulk_item(&mut body, "create", &letter);
        }
        let count = refused.len() as u64;
        let stored = match self.client.bulk(body).await {
            Ok(Response { status, body }) if (200..300).contains(&status) => {
                match response::outcomes(&body, refused.len(), "create") {
                    Ok(outcomes) => outcomes
                        .iter()
                        .filter(|o| matches!(o, Outcome::Delivered | Outcome::Duplicate))
                        .count() as u64,
                    Err(e) => {
                        tracing::error!(error = %e, "Cannot read the dead-letter write's answer; counting those documents as lost.");
                        0
                    }
                }
            }
            Ok(Response { status, body }) => {
                tracing::error!(status, answer = %snippet(&body), documents = count,
                    "The dead-letter write failed; these documents are lost (counted as outcome dead_letter_failed).");
                0
            }
            Err(e) => {
                tracing::error!(error = %e, documents = count, "The dead-letter write failed; these documents are lost.");
                0
            }
        };
        self.metrics
            .documents
            .with_label_values(&["dead_lettered"])
            .inc_by(stored);
        self.metrics
            .documents
            .with_label_values(&["dead_letter_failed"])
            .inc_by(count - stored);
        Report {
            dead_lettered: stored,
            lost: count - stored,
            ..Report::default()
        }
    }

    /// One log line per error type per minute, not one per document.
    fn log_dead_letter(&self, record: &Record, error: &ItemError) {
        let Ok(mut seen) = self.dead_letter_log.lock() else {
            return;
        };
        let now = Instant::now();
        let due = seen
            .get(&error.kind)
            .is_none_or(|last| now.duration_since(*last) >= Duration::from_secs(60));
        if due {
            seen.insert(error.kind.clone(), now);
            tracing::warn!(
                index = %record.index, id = %record.id, status = error.status, error_type = %error.kind,
                reason = %error.reason,
                "Document refused by the cluster; written to the dead-letter index. Fix the mapping or the \
                 filter that produced it (this message repeats at most once a minute per error type)."
            );
        }
    }
}

/// The start of a response body, for a log line.
fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(300)]);
    text.replace('\n', " ")
}
