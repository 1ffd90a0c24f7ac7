//! Helpers for stages that register metric families.

use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// A metric family could not be registered (a name registered twice: a bug).
#[derive(Debug, thiserror::Error)]
#[error("cannot register metric {name}")]
pub struct RegisterError {
    name: String,
    #[source]
    source: prometheus::Error,
}

impl RegisterError {
    /// Wraps a registration failure of the metric `name`.
    pub fn new(name: &str, source: prometheus::Error) -> Self {
        Self {
            name: name.into(),
            source,
        }
    }
}

/// Registers a metric created by `make` under `name`, returning it.
fn register<M>(
    registry: &Registry,
    name: &str,
    make: impl FnOnce() -> prometheus::Result<M>,
) -> Result<M, RegisterError>
where
    M: prometheus::core::Collector + Clone + 'static,
{
    let wrap = |source| RegisterError {
        name: name.into(),
        source,
    };
    let metric = make().map_err(wrap)?;
    registry.register(Box::new(metric.clone())).map_err(wrap)?;
    Ok(metric)
}

/// Creates and registers a gauge.
pub fn gauge(registry: &Registry, name: &str, help: &str) -> Result<IntGauge, RegisterError> {
    register(registry, name, || IntGauge::new(name, help))
}

/// Creates and registers a counter.
pub fn counter(registry: &Registry, name: &str, help: &str) -> Result<IntCounter, RegisterError> {
    register(registry, name, || IntCounter::new(name, help))
}

/// Creates and registers a counter with labels.
pub fn counter_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<IntCounterVec, RegisterError> {
    register(registry, name, || {
        IntCounterVec::new(Opts::new(name, help), labels)
    })
}

/// Creates and registers a histogram with these buckets.
pub fn histogram(
    registry: &Registry,
    name: &str,
    help: &str,
    buckets: Vec<f64>,
) -> Result<prometheus::Histogram, RegisterError> {
    register(registry, name, || {
        prometheus::Histogram::with_opts(
            prometheus::HistogramOpts::new(name, help).buckets(buckets),
        )
    })
}

/// Creates and registers a histogram with labels.
pub fn histogram_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    buckets: Vec<f64>,
    labels: &[&str],
) -> Result<prometheus::HistogramVec, RegisterError> {
    register(registry, name, || {
        prometheus::HistogramVec::new(
            prometheus::HistogramOpts::new(name, help).buckets(buckets),
            labels,
        )
    })
}

/// The current value of a counter (or of one labelled child), as exported.
///
/// Reads the registry the way a scrape does, so tests check what an operator
/// would see rather than an internal variable.
pub fn read(registry: &Registry, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    registry
        .gather()
        .into_iter()
        .filter(|f| f.name() == name)
        .find_map(|family| {
            family.get_metric().iter().find_map(|m| {
                let matches = labels.iter().all(|(k, v)| {
                    m.get_label()
                        .iter()
                        .any(|l| l.name() == *k && l.value() == *v)
                });
                matches.then(|| match family.get_field_type() {
                    prometheus::proto::MetricType::GAUGE => m.get_gauge().get_value(),
                    _ => m.get_counter().get_value(),
                })
            })
        })
}
