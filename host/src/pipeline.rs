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

use std::sync::Arc;

use crate::document::{IndexPattern, Normalizer, Record};
use crate::filter::{LiveChain, Outcome};
use crate::sink::search::dead_letter;
use crate::sink::search::response::ItemError;
use crate::sink::{Acker, Pending};
use crate::source::{Chunk, Origin};
use crate::spool::Spool;
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
    /// The spool failed (not a full disk: that waits).
    #[error("the spool failed")]
    Spool(#[source] Box<dyn std::error::Error + Send + Sync>),
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
    filters: Option<Filters>,
}

/// The Wasm filter chain and the threads that run it.
#[derive(Debug, Clone)]
pub struct Filters {
    /// The chain in force (hot reload swaps it).
    pub chain: std::sync::Arc<LiveChain>,
    /// Worker threads, each with its own instances.
    pub workers: usize,
    /// Where documents a filter failed on go (`dead-letter` policy).
    pub dead_letter_index: IndexPattern,
}

impl Pipeline {
    /// A pipeline with its settings and normalizer.
    pub fn new(settings: Settings, normalizer: Normalizer, metrics: NormalizeMetrics) -> Self {
        Self {
            settings,
            normalizer,
            metrics,
            filters: None,
        }
    }

    /// Runs every document through `filters` between normalization and the queue.
    #[must_use]
    pub fn with_filters(mut self, filters: Filters) -> Self {
        self.filters = Some(filters);
        self
    }

    /// Runs `source` into `sink` until the input ends or `shutdown` fires.
    ///
    /// `source` is given the first channel's sender and the token to watch;
    /// `sink` the last channel's receiver, and returns how many documents it
    /// accepted.
    pub async fn run<Src, SrcFut, SrcErr, Snk, SnkFut, SnkErr>(
        self,
        source: Src,
        queue: Queue,
        sink: Snk,
        shutdown: CancellationToken,
    ) -> Result<Summary, Error>
    where
        Src: FnOnce(mpsc::Sender<Chunk>, CancellationToken) -> SrcFut,
        SrcFut: Future<Output = Result<(), SrcErr>> + Send + 'static,
        SrcErr: std::error::Error + Send + Sync + 'static,
        Snk: FnOnce(mpsc::Receiver<Vec<Pending>>, Acker) -> SnkFut,
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
        let (doc_rx, filter_task) = match self.filters {
            None => (doc_rx, tokio::spawn(async { Ok(()) })),
            Some(filters) => {
                let (filtered_tx, filtered_rx) = mpsc::channel::<Vec<Record>>(capacity);
                (filtered_rx, filter_stage(filters, doc_rx, filtered_tx))
            }
        };
        let (out_tx, out_rx) = mpsc::channel::<Vec<Pending>>(capacity);
        let (queue_task, ack) = queue.start(doc_rx, out_tx, shutdown.clone());
        let sink_task = tokio::spawn(sink(out_rx, ack));

        let joined = async {
            tokio::join!(
                source_task,
                normalize_task,
                filter_task,
                queue_task,
                sink_task
            )
        };
        let drain_deadline = async {
            shutdown.cancelled().await;
            tokio::time::sleep(self.settings.drain_timeout).await;
        };
        let (source_result, normalize_result, filter_result, queue_result, sink_result) = tokio::select! {
            all = joined => all,
            () = drain_deadline => return Err(Error::DrainTimeout(self.settings.drain_timeout)),
        };

        filter_result??;
        queue_result??;
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

/// What sits between the filters and the sink.
#[derive(Debug, Clone)]
pub enum Queue {
    /// Nothing: documents go straight on (`kwex replay` to stdout, tests).
    Direct,
    /// The spool: documents are appended, handed to the sink, and forgotten
    /// only when the sink acknowledges them.
    Spool {
        /// The spool.
        spool: Arc<Spool>,
        /// On disk: at shutdown, what the sink has not taken stays there for
        /// the next start. In memory: the drain empties it.
        durable: bool,
    },
}

/// Chunk size handed from the spool to the sink.
const SPOOL_CHUNK: usize = 256;
/// Appends to the spool in flight at once (see `docs/spool.md`: group commit).
const SPOOL_APPENDS_IN_FLIGHT: usize = 8;

impl Queue {
    /// Starts the queue's tasks between `rx` and `tx`; returns the task and
    /// the acknowledgement callback for the sink.
    fn start(
        self,
        mut rx: mpsc::Receiver<Vec<Record>>,
        tx: mpsc::Sender<Vec<Pending>>,
        shutdown: CancellationToken,
    ) -> (tokio::task::JoinHandle<Result<(), Error>>, Acker) {
        match self {
            Queue::Direct => {
                let task = tokio::spawn(async move {
                    let mut seq = 0u64;
                    while let Some(records) = rx.recv().await {
                        let pending = records
                            .into_iter()
                            .map(|record| {
                                seq += 1;
                                Pending { seq, record }
                            })
                            .collect();
                        if tx.send(pending).await.is_err() {
                            break;
                        }
                    }
                    Ok(())
                });
                (task, Arc::new(|_: &[u64]| {}))
            }
            Queue::Spool { spool, durable } => {
                let writer = {
                    let spool = spool.clone();
                    async move {
                        // Several appends in flight share each group commit:
                        // one at a time would wait a sync interval per chunk.
                        let mut in_flight = tokio::task::JoinSet::new();
                        let mut result = Ok(());
                        while let Some(records) = rx.recv().await {
                            while in_flight.len() >= SPOOL_APPENDS_IN_FLIGHT {
                                if let Some(Ok(Err(e))) = in_flight.join_next().await {
                                    result = Err(e);
                                }
                            }
                            if result.is_err() {
                                break;
                            }
                            let spool = spool.clone();
                            in_flight.spawn(async move { spool.append(records).await });
                        }
                        while let Some(done) = in_flight.join_next().await {
                            if let Ok(Err(e)) = done {
                                result = Err(e);
                            }
                        }
                        // No more appends: the reader drains and then ends.
                        spool.close();
                        result.map_err(|e| Error::Spool(Box::new(e)))
                    }
                };
                let reader = {
                    let spool = spool.clone();
                    async move {
                        loop {
                            let next = tokio::select! {
                                // On disk, what the sink has not taken waits for the next start.
                                () = shutdown.cancelled(), if durable => break,
                                next = spool.next(SPOOL_CHUNK) => next,
                            };
                            let Some(items) = next else { break };
                            let pending = items
                                .into_iter()
                                .map(|(seq, record)| Pending { seq, record })
                                .collect();
                            if tx.send(pending).await.is_err() {
                                break;
                            }
                        }
                    }
                };
                let task = tokio::spawn(async move {
                    let (written, ()) = tokio::join!(writer, reader);
                    written
                });
                let ack_spool = spool;
                (task, Arc::new(move |seqs: &[u64]| ack_spool.ack(seqs)))
            }
        }
    }
}

/// Runs the chain on `filters.workers` blocking threads (filters are CPU
/// work and must not hold the async runtime's threads). Each thread has its
/// own instances; chunks go to whichever thread is free, so documents may
/// leave in another order than they came (their ids make order irrelevant).
fn filter_stage(
    filters: Filters,
    rx: mpsc::Receiver<Vec<Record>>,
    tx: mpsc::Sender<Vec<Record>>,
) -> tokio::task::JoinHandle<Result<(), Error>> {
    let rx = Arc::new(std::sync::Mutex::new(rx));
    let dead_letter = Arc::new(filters.dead_letter_index);
    let workers: Vec<_> = (0..filters.workers.max(1))
        .map(|_| {
            let (rx, tx, dead_letter) = (rx.clone(), tx.clone(), dead_letter.clone());
            let mut worker = filters.chain.worker();
            tokio::task::spawn_blocking(move || {
                loop {
                    // One thread waits on the channel at a time; the others on the lock.
                    let chunk = match rx.lock() {
                        Ok(mut rx) => rx.blocking_recv(),
                        Err(_) => None,
                    };
                    let Some(chunk) = chunk else { break };
                    let now = Utc::now();
                    let out: Vec<Record> = chunk
                        .into_iter()
                        .filter_map(|record| match worker.apply(record) {
                            Outcome::Keep(record) => Some(record),
                            Outcome::Drop => None,
                            Outcome::DeadLetter(record, error) => {
                                let error = ItemError {
                                    status: 0,
                                    kind: format!("filter_{}", error.kind().as_str()),
                                    reason: error.to_string(),
                                };
                                Some(dead_letter::record(&dead_letter, &record, &error, now))
                            }
                        })
                        .collect();
                    if !out.is_empty() && tx.blocking_send(out).is_err() {
                        break;
                    }
                }
            })
        })
        .collect();
    drop(tx);
    tokio::spawn(async move {
        for worker in workers {
            worker.await?;
        }
        Ok(())
    })
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
