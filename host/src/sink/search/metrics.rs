//! The search sink's metrics (`kwex_sink_*`).

use prometheus::{Histogram, HistogramVec, IntCounter, IntCounterVec, IntGauge, Registry};

use crate::telemetry::metrics::{self, RegisterError};

/// Counters, gauges and histograms of the bulk sink.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// Documents by final outcome (and `retried` for every retry of an item).
    pub documents: IntCounterVec,
    /// Batches sent (each may take several requests).
    pub batches: IntCounter,
    /// Documents per batch.
    pub batch_documents: Histogram,
    /// Uncompressed body bytes per batch.
    pub batch_bytes: Histogram,
    /// Duration of `_bulk` requests, by result.
    pub request_duration: HistogramVec,
    /// Requests that failed as a whole, by reason.
    pub request_failures: IntCounterVec,
    /// `_bulk` requests in flight now.
    pub in_flight: IntGauge,
    /// Batches now waiting to retry after a failure.
    pub backing_off: IntGauge,
}

impl Metrics {
    /// Registers the family.
    pub fn register(registry: &Registry) -> Result<Self, RegisterError> {
        let request_duration = metrics::histogram_vec(
            registry,
            "kwex_sink_request_duration_seconds",
            "Duration of _bulk requests, by result.",
            vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ],
            &["result"],
        )?;
        Ok(Self {
            documents: metrics::counter_vec(
                registry,
                "kwex_sink_documents_total",
                "Documents by outcome: delivered, duplicate (409: already stored), dead_lettered, \
                 dead_letter_failed, and retried (each retry of an item).",
                &["outcome"],
            )?,
            batches: metrics::counter(registry, "kwex_sink_batches_total", "Batches sent.")?,
            batch_documents: metrics::histogram(
                registry,
                "kwex_sink_batch_documents",
                "Documents per batch.",
                vec![1.0, 10.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 5000.0],
            )?,
            batch_bytes: metrics::histogram(
                registry,
                "kwex_sink_batch_bytes",
                "Uncompressed _bulk body bytes per batch.",
                prometheus::exponential_buckets(1024.0, 4.0, 8)
                    .map_err(|e| RegisterError::new("kwex_sink_batch_bytes", e))?,
            )?,
            request_duration,
            request_failures: metrics::counter_vec(
                registry,
                "kwex_sink_request_failures_total",
                "_bulk requests that failed as a whole, by reason (connect, timeout, status_429, status_5xx, \
                 status_413, status_401, status_403, status_4xx, bad_response).",
                &["reason"],
            )?,
            in_flight: metrics::gauge(
                registry,
                "kwex_sink_requests_in_flight",
                "_bulk requests in flight.",
            )?,
            backing_off: metrics::gauge(
                registry,
                "kwex_sink_batches_backing_off",
                "Batches waiting to retry after a failure (0 when the cluster keeps up).",
            )?,
        })
    }
}
