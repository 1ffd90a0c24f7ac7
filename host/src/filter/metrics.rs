//! Metrics of the filter chain, per filter (labelled by file name).
//!
//! Every call is counted once in `kwex_filter_calls_total` and once in
//! `kwex_filter_verdicts_total` (a failed call as `verdict="error"`), so the
//! two always agree; `kwex_filter_errors_total{kind}` breaks the errors down
//! (see [`ErrorKind`]). The series of a filter are created when it loads, so
//! that `rate()` and alerts see zeros rather than absent series.

use prometheus::{Histogram, HistogramVec, IntCounter, IntCounterVec, Registry};

use crate::filter::error::ErrorKind;
use crate::telemetry::metrics::{self, RegisterError};

/// The verdict labels, in [`Verdicts`] order.
const VERDICTS: [&str; 5] = ["keep", "replace", "drop", "route", "error"];

/// The filter metric families.
#[derive(Debug, Clone)]
pub struct Metrics {
    calls: IntCounterVec,
    verdicts: IntCounterVec,
    errors: IntCounterVec,
    duration: HistogramVec,
    replacements: IntCounterVec,
    pub(crate) reloads_ok: IntCounter,
    pub(crate) reloads_failed: IntCounter,
    pub(crate) chain_filters: prometheus::IntGauge,
}

impl Metrics {
    /// Creates the families and registers them.
    pub fn register(registry: &Registry) -> Result<Self, RegisterError> {
        let reloads = metrics::counter_vec(
            registry,
            "kwex_filter_reloads_total",
            "Reloads of the filter chain after its files changed, by result (success, failure: the old chain kept running).",
            &["result"],
        )?;
        Ok(Self {
            calls: metrics::counter_vec(
                registry,
                "kwex_filter_calls_total",
                "Documents passed to each filter.",
                &["filter"],
            )?,
            verdicts: metrics::counter_vec(
                registry,
                "kwex_filter_verdicts_total",
                "Answers of each filter by verdict (keep, replace, drop, route; error for any failed call).",
                &["filter", "verdict"],
            )?,
            errors: metrics::counter_vec(
                registry,
                "kwex_filter_errors_total",
                "Failed filter calls by kind (trap, timeout, out_of_fuel, memory, invalid_output, guest_error, start).",
                &["filter", "kind"],
            )?,
            duration: metrics::histogram_vec(
                registry,
                "kwex_filter_call_duration_seconds",
                "Time one filter took for one document, instance start included when there was one.",
                // Reused Rust/C calls take ~1 µs, JS ~100 µs, the deadline is ms.
                vec![
                    1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3,
                    1e-2, 2.5e-2, 0.1,
                ],
                &["filter"],
            )?,
            replacements: metrics::counter_vec(
                registry,
                "kwex_filter_instance_replacements_total",
                "Filter instances thrown away (after a trap, a timeout, a broken answer, or memory above the watermark).",
                &["filter"],
            )?,
            reloads_ok: reloads.with_label_values(&["success"]),
            reloads_failed: reloads.with_label_values(&["failure"]),
            chain_filters: metrics::gauge(
                registry,
                "kwex_filter_chain_filters",
                "Filters in the chain that is running.",
            )?,
        })
    }

    /// Records how many filters the running chain has.
    pub fn set_chain_len(&self, filters: usize) {
        self.chain_filters.set(filters as i64);
    }

    /// The series of one filter.
    pub(crate) fn filter(&self, name: &str) -> FilterMetrics {
        FilterMetrics {
            calls: self.calls.with_label_values(&[name]),
            verdicts: VERDICTS.map(|v| self.verdicts.with_label_values(&[name, v])),
            errors: ErrorKind::ALL.map(|k| self.errors.with_label_values(&[name, k.as_str()])),
            duration: self.duration.with_label_values(&[name]),
            replacements: self.replacements.with_label_values(&[name]),
        }
    }
}

/// A verdict, as counted.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Counted {
    Keep = 0,
    Replace = 1,
    Drop = 2,
    Route = 3,
    Error = 4,
}

/// The series of one filter, resolved once so the hot path does no label
/// lookups.
#[derive(Debug, Clone)]
pub(crate) struct FilterMetrics {
    pub(crate) calls: IntCounter,
    verdicts: [IntCounter; 5],
    errors: [IntCounter; ErrorKind::ALL.len()],
    pub(crate) duration: Histogram,
    pub(crate) replacements: IntCounter,
}

impl FilterMetrics {
    pub(crate) fn verdict(&self, v: Counted) {
        self.verdicts[v as usize].inc();
    }

    pub(crate) fn error(&self, kind: ErrorKind) {
        self.verdicts[Counted::Error as usize].inc();
        self.errors[kind.index()].inc();
    }
}
