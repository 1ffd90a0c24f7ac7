//! The spool's metrics (`kwex_spool_*`).
//!
//! Depth and age say whether the sink keeps up (and how long an outage the
//! spool has absorbed); the drop and truncation counters say whether anything
//! was lost and why; the fsync histogram says what the disk costs.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Registry};

use crate::telemetry::metrics::{self, RegisterError};

/// Gauges, counters and the fsync histogram of one spool.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// Documents appended and not yet acknowledged.
    pub depth_documents: IntGauge,
    /// Bytes of those documents (as framed on disk).
    pub depth_bytes: IntGauge,
    /// `kwex_spool_stored_bytes`.
    pub stored_bytes: IntGauge,
    /// Seconds since the oldest unacknowledged document was appended (0 when
    /// empty). Alert on it: it grows while the search cluster is unreachable.
    pub oldest_age_seconds: IntGauge,
    /// Documents appended (durably, for the disk spool).
    pub appends: IntCounter,
    /// Documents acknowledged by the sink.
    pub acks: IntCounter,
    /// Times a spool directory was opened and recovered.
    pub recoveries: IntCounter,
    /// Bytes cut from torn or damaged tails at recovery.
    pub truncated_bytes: IntCounter,
    /// Documents dropped, by reason: `full` (the drop-oldest policy) or
    /// `corrupt` (damaged on disk).
    pub dropped: IntCounterVec,
    /// Duration of each fsync (segments, ack file, directory).
    pub fsync_duration: Histogram,
}

impl Metrics {
    /// Creates the family and registers it in `registry`.
    pub fn register(registry: &Registry) -> Result<Self, RegisterError> {
        const FSYNC: &str = "kwex_spool_fsync_duration_seconds";
        let fsync_duration = Histogram::with_opts(
            HistogramOpts::new(
                FSYNC,
                "Duration of each fsync of a spool file or directory (one group commit syncs many appends).",
            )
            .buckets(vec![
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
            ]),
        )
        .map_err(|e| RegisterError::new(FSYNC, e))?;
        registry
            .register(Box::new(fsync_duration.clone()))
            .map_err(|e| RegisterError::new(FSYNC, e))?;
        Ok(Self {
            depth_documents: metrics::gauge(
                registry,
                "kwex_spool_depth_documents",
                "Documents in the spool that the sink has not acknowledged yet.",
            )?,
            depth_bytes: metrics::gauge(
                registry,
                "kwex_spool_depth_bytes",
                "Bytes of the unacknowledged documents, as framed on disk.",
            )?,
            stored_bytes: metrics::gauge(
                registry,
                "kwex_spool_stored_bytes",
                "Bytes the spool holds (segment files on disk; records in memory), the figure --spool-max-bytes bounds. Documents the sink is still sending may outlive a segment dropped by --spool-full=drop-oldest: they count in the depth, not here.",
            )?,
            oldest_age_seconds: metrics::gauge(
                registry,
                "kwex_spool_oldest_unacknowledged_age_seconds",
                "Seconds since the oldest unacknowledged document was appended (0 when the spool is empty).",
            )?,
            appends: metrics::counter(
                registry,
                "kwex_spool_appends_total",
                "Documents appended to the spool (durably, for the disk spool).",
            )?,
            acks: metrics::counter(
                registry,
                "kwex_spool_acks_total",
                "Documents the sink acknowledged (delivered, duplicate or dead-lettered).",
            )?,
            recoveries: metrics::counter(
                registry,
                "kwex_spool_recoveries_total",
                "Times the spool directory was opened and its log recovered.",
            )?,
            truncated_bytes: metrics::counter(
                registry,
                "kwex_spool_truncated_bytes_total",
                "Bytes cut from torn or damaged tails of spool files at recovery.",
            )?,
            dropped: metrics::counter_vec(
                registry,
                "kwex_spool_dropped_documents_total",
                "Documents dropped before the sink acknowledged them, by reason: full (drop-oldest policy) or corrupt (damaged on disk).",
                &["reason"],
            )?,
            fsync_duration,
        })
    }

    /// A family registered nowhere, for benchmarks and tools that have no
    /// registry.
    pub fn unregistered() -> Result<Self, RegisterError> {
        Self::register(&Registry::new())
    }

    /// Counts `n` documents dropped for `reason`.
    pub(crate) fn drop_documents(&self, reason: &str, n: u64) {
        if n > 0 {
            self.dropped.with_label_values(&[reason]).inc_by(n);
        }
    }

    /// Publishes the depth.
    /// Records the bytes the spool holds.
    pub(crate) fn set_stored(&self, bytes: u64) {
        self.stored_bytes
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    pub(crate) fn set_depth(&self, documents: u64, bytes: u64) {
        self.depth_documents
            .set(i64::try_from(documents).unwrap_or(i64::MAX));
        self.depth_bytes
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }
}
