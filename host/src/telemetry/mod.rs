//! Metrics and logs.
//!
//! Every stage registers its own metric families (named
//! `kwex_<stage>_<what>_<unit>`) into one [`prometheus::Registry`] that is
//! created in `main` and passed down: there is no global registry, so tests
//! can run pipelines side by side and read each one's counters.

pub mod http;
pub mod logging;
pub mod metrics;
