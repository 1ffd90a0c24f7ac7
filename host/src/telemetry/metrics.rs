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

/// Creates and registers a gauge.
pub fn gauge(registry: &Registry, name: &str, help: &str) -> Result<IntGauge, RegisterError> {
    let g = IntGauge::new(name, help).map_err(|source| RegisterError {
        name: name.into(),
        source,
    })?;
    registry
        .register(Box::new(g.clone()))
        .map_err(|source| RegisterError {
            name: name.into(),
            source,
        })?;
    Ok(g)
}

/// Creates and registers a counter.
pub fn counter(registry: &Registry, name: &str, help: &str) -> Result<IntCounter, RegisterError> {
    let c = IntCounter::new(name, help).map_err(|source| RegisterError {
        name: name.into(),
        source,
    })?;
    registry
        .register(Box::new(c.clone()))
        .map_err(|source| RegisterError {
            name: name.into(),
            source,
        })?;
    Ok(c)
}

/// Creates and registers a counter with labels.
pub fn counter_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<IntCounterVec, RegisterError> {
    let c = IntCounterVec::new(Opts::new(name, help), labels).map_err(|source| RegisterError {
        name: name.into(),
        source,
    })?;
    registry
        .register(Box::new(c.clone()))
        .map_err(|source| RegisterError {
            name: name.into(),
            source,
        })?;
    Ok(c)
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
