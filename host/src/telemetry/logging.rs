//! Log set-up: `tracing`, to stderr (stdout may carry documents).
//!
//! JSON lines when stderr is not a terminal (a container's log collector
//! reads them), human-readable text on a terminal; `--log-format` overrides.
//! The level comes from `--log-level`, else `RUST_LOG`, else `info`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// JSON when stderr is not a terminal, else text.
    #[default]
    Auto,
    /// One JSON object per line.
    Json,
    /// Human-readable.
    Text,
}

/// The log filter was not understood.
#[derive(Debug, thiserror::Error)]
#[error("invalid log level {level:?}: {source} (examples: info, debug, kwex=debug,info)")]
pub struct LogLevelError {
    level: String,
    #[source]
    source: tracing_subscriber::filter::ParseError,
}

/// Installs the global subscriber. Call once, from `main`.
pub fn init(format: LogFormat, level: Option<&str>) -> Result<(), LogLevelError> {
    let filter = match level {
        Some(level) => EnvFilter::try_new(level).map_err(|source| LogLevelError {
            level: level.into(),
            source,
        })?,
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second init (tests) keeps the first subscriber; that is fine.
    if json {
        let _ = builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init();
    } else {
        let _ = builder.try_init();
    }
    Ok(())
}
