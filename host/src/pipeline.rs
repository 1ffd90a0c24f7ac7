//! The pipeline: stages joined by bounded channels, stopped by one token.
//!
//! ```text
//! source ──chunks of RawEvent──► normalize ──chunks of Record──► sink
//! ```
//!
//! Each arrow is a bounded channel of chunks, so a slow sink holds the source
//! back instead of filling memory. Later stages (the filter chain, the spool)
//! slot in as further channel hops in [`Pipeline::run`]; no stage knows its
//! neighbours.
//!
//! # Shutdown
//! Only the source watches the shutdown token. When it fires, the source
//! stops reading and drops its sender; each later stage finishes what is
//! already queued, drops its own sender, and ends; the sink writes the last
//! records and returns. The drain is bounded by [`Settings::drain_timeout`].

use std::future::Future;
use std::time::Duration;

use chrono::Utc;
use prometheus::{IntCounter, IntCounterVec, Registry};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::document::{Normalizer, Record};
use crate::source::{Chunk, Origin};
use crate::telemetry::metrics::{self, RegisterError};

/// What to do with a record that is not a usable Event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OnInvalid {
    /// Log it with its position, count it, and go on with the next record.
    #[default]
    Skip,
    /// Stop reading; deliver what came before it; exit non-zero.
    Fail,
}

/// Pipeline-wide settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// What an invalid record does to the run.
    pub on_invalid: OnInvalid,
    /// Capacity of each channel, in chunks (each up to a few hundred records).
    pub channel_capacity: usize,
    /// How long the drain after a shutdown signal may take.
    pub drain_timeout: Duration,
}

/// What a finished run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Records the source produced.
    pub records: u64,
    /// Documents the sink accepted.
    pub documents: u64,
    /// Records refused by normalization.
    pub invalid: u64,
    /// Records kept after a repair (see [`crate::document::Repair`]).
    pub repaired: u64,
    /// The run stopped because of the shutdown token, not the end of its input.
    pub interrupted: bool,
}

/// Why a run failed. Stage errors are boxed: each stage has its own error
/// type, and this is the top of the tree (see `docs/decisions/`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `--on-invalid=fail` and a record was invalid.
    #[error("invalid record at {origin}: {message} (the records before it were delivered)")]
    InvalidRecord {
        /// Where it was.
        origin: Origin,
        /// What was wrong.
        message: String,
        /// What the run had done until then.
        summary: Summary,
    },
    /// The source failed.
    #[error("the source failed")]
    Source(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The sink failed.
    #[error("the sink failed")]
    Sink(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The drain after a shutdown signal took longer than allowed.
    #[error(
        "the drain after shutdown did not finish within {0:?}; records still in flight were not delivered \
         (raise --shutdown-timeout if the sink is slow)"
    )]
    DrainTimeout(Duration),
    /// A stage panicked: a bug.
    #[error("a pipeline stage stopped unexpectedly: {0}")]
    Stage(#[from] tokio::task::JoinError),
}

/// Counters of the normalize stage.
#[derive(Debug, Clone)]
pub struct NormalizeMetrics {
    documents: IntCounter,
    invalid: IntCounterVec,
    repaired: IntCounterVec,
}

impl NormalizeMetrics {
    /// Registers `kwex_normalize_*`.
    pub fn register(registry: &Registry) -> Result<Self, RegisterError> {
        Ok(Self {
            documents: metrics::counter(
                registry,
                "kwex_normalize_documents_total",
                "Events turned into documents.",
            )?,
            invalid: metrics::counter_vec(
                registry,
                "kwex_normalize_invalid_total",
                "Records that are not usable Events, by reason; see the log for each one's position.",
                &["reason"],
            )?,
            repaired: metrics::counter_vec(
                registry,
                "kwex_normalize_repaired_total",
                "Events kept after a repair (invalid UTF-8 replaced, message truncated).",
                &["repair"],
            )?,
        })
    }
}

/// The stages between a source and a sink.
#[derive(Debug, Clone)]
pub struct Pipeline {
    settings: Settings,
    normalizer: Normalizer,
    metrics: NormalizeMetrics,
}

impl Pipeline {
    /// A pipeline with its settings and normalizer.
    pub fn new(settings: Settings, normalizer: Normalizer, metrics: NormalizeMetrics) -> Self {
        Self {
            settings,
            normalizer,
            metrics,
        }
    }

    /// Runs `source` into `sink` until the input ends or `shutdown` fires.
    ///
    /// `source` is given the first channel's sender and the token to watch;
    /// `sink` the last channel's receiver, and returns how many documents it
    /// accepted.
    pub async fn run<Src, SrcFut, SrcErr, Snk, SnkFut, SnkErr>(
        self,
        source: Src,
        sink: Snk,
        shutdown: CancellationToken,
    ) -> Result<Summary, Error>
    where
        Src: FnOnce(mpsc::Sender<Chunk>, CancellationToken) -> SrcFut,
        SrcFut: Future<Output = Result<(), SrcErr>> + Send + 'static,
        SrcErr: std::error::Error + Send + Sync + 'static,
        Snk: FnOnce(mpsc::Receiver<Vec<Record>>) -> SnkFut,
        SnkFut: Future<Output = Result<u64, SnkErr>> + Send + 'static,
        SnkErr: std::error::Error + Send + Sync + 'static,
    {
        let capacity = self.settings.channel_capacity.max(1);
        let (raw_tx, raw_rx) = mpsc::channel::<Chunk>(capacity);
        let (doc_tx, doc_rx) = mpsc::channel::<Vec<Record>>(capacity);
        // The normalize stage stops the source (and only the source) when
        // `--on-invalid=fail` trips; a shutdown signal stops it too.
        let stop_source = shutdown.child_token();

        let source_task = tokio::spawn(source(raw_tx, stop_source.clone()));
        let normalize_task = {
            let (normalizer, metrics, policy) =
                (self.normalizer, self.metrics, self.settings.on_invalid);
            let stop_source = stop_source.clone();
            tokio::task::spawn_blocking(move || {
                normalize_stage(raw_rx, doc_tx, &normalizer, &metrics, policy, &stop_source)
            })
        };
        let sink_task = tokio::spawn(sink(doc_rx));

        let joined = async { tokio::join!(source_task, normalize_task, sink_task) };
        let drain_deadline = async {
            shutdown.cancelled().await;
            tokio::time::sleep(self.settings.drain_timeout).await;
        };
        let (source_result, normalize_result, sink_result) = tokio::select! {
            all = joined => all,
            () = drain_deadline => return Err(Error::DrainTimeout(self.settings.drain_timeout)),
        };

        let documents = sink_result?.map_err(|e| Error::Sink(Box::new(e)))?;
        let mut summary = match normalize_result? {
            Ok(summary) => summary,
            Err(Error::InvalidRecord {
                origin,
                message,
                mut summary,
            }) => {
                summary.documents = documents;
                return Err(Error::InvalidRecord {
                    origin,
                    message,
                    summary,
                });
            }
            Err(other) => return Err(other),
        };
        source_result?.map_err(|e| Error::Source(Box::new(e)))?;
        summary.documents = documents;
        summary.interrupted = shutdown.is_cancelled();
        Ok(summary)
    }
}

/// Raw events in, records out; runs on a blocking thread (it is pure CPU).
fn normalize_stage(
    mut rx: mpsc::Receiver<Chunk>,
    tx: mpsc::Sender<Vec<Record>>,
    normalizer: &Normalizer,
    metrics: &NormalizeMetrics,
    policy: OnInvalid,
    stop_source: &CancellationToken,
) -> Result<Summary, Error> {
    let mut summary = Summary::default();
    while let Some(chunk) = rx.blocking_recv() {
        let observed_at = Utc::now();
        let mut out = Vec::with_capacity(chunk.len());
        let mut failure = None;
        for raw in chunk {
            summary.records += 1;
            match normalizer.normalize_hinted(&raw.bytes, raw.api_hint, raw.action, observed_at) {
                Ok(normalized) => {
                    for repair in &normalized.repairs {
                        metrics.repaired.with_label_values(&[repair.as_str()]).inc();
                        tracing::warn!(origin = %raw.origin, repair = repair.as_str(), "Event repaired; it is kept, marked in its kwex field.");
                    }
                    summary.repaired += u64::from(!normalized.repairs.is_empty());
                    out.push(normalized.record);
                }
                Err(e) => {
                    summary.invalid += 1;
                    metrics.invalid.with_label_values(&[e.kind.as_str()]).inc();
                    match policy {
                        OnInvalid::Skip => {
                            tracing::warn!(origin = %raw.origin, reason = e.kind.as_str(), error = %e,
                                "Skipped an invalid record; fix it at the source, or use --on-invalid=fail to stop on it.");
                        }
                        OnInvalid::Fail => {
                            tracing::error!(origin = %raw.origin, reason = e.kind.as_str(), error = %e,
                                "Stopping at an invalid record (--on-invalid=fail); use --on-invalid=skip to skip such records.");
                            failure = Some((raw.origin, e.to_string()));
                            break;
                        }
                    }
                }
            }
        }
        metrics.documents.inc_by(out.len() as u64);
        if !out.is_empty() && tx.blocking_send(out).is_err() {
            // The sink is gone (its error is reported by the sink task).
            stop_source.cancel();
            break;
        }
        if let Some((origin, message)) = failure {
            stop_source.cancel();
            return Err(Error::InvalidRecord {
                origin,
                message,
                summary,
            });
        }
    }
    Ok(summary)
}
