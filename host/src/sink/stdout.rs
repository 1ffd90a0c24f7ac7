//! Documents to standard output (or any writer): NDJSON, or a `_bulk` body
//! that can be sent as is with `curl --data-binary @-`.
//!
//! Writes happen on a blocking thread through a large buffer, which is
//! flushed whenever the input channel runs dry, so a live stream shows up at
//! once and a large replay costs one `write` per buffer, not per document.

use std::io::Write;

use prometheus::{IntCounter, Registry};
use tokio::sync::mpsc;

use super::{Acker, Pending, encode};
use crate::document::IdMode;
use crate::telemetry::metrics::{self, RegisterError};

/// What each record becomes on the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// One Document per line.
    #[default]
    Ndjson,
    /// A `_bulk` request body: an action line (with `_index` and `_id`) before each Document.
    Bulk,
}

/// The output failed (for stdout: usually a closed pipe).
#[derive(Debug, thiserror::Error)]
#[error("cannot write documents to the output: {0}")]
pub struct Error(#[source] pub std::io::Error);

/// Counters of the stdout sink.
#[derive(Debug, Clone)]
pub struct Metrics {
    documents: IntCounter,
}

impl Metrics {
    /// Registers `kwex_sink_stdout_documents_total`.
    pub fn register(registry: &Registry) -> Result<Self, RegisterError> {
        Ok(Self {
            documents: metrics::counter(
                registry,
                "kwex_sink_stdout_documents_total",
                "Documents written to the output.",
            )?,
        })
    }
}

/// Writes records to a writer.
pub struct StdoutSink {
    out: Box<dyn Write + Send>,
    format: Format,
    action: &'static str,
    metrics: Metrics,
}

impl std::fmt::Debug for StdoutSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StdoutSink")
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

impl StdoutSink {
    /// A sink writing to `out` (the process's stdout in `kwex replay`).
    pub fn new(
        out: Box<dyn Write + Send>,
        format: Format,
        id_mode: IdMode,
        metrics: Metrics,
    ) -> Self {
        Self {
            out,
            format,
            action: id_mode.bulk_action(),
            metrics,
        }
    }

    /// Writes every record received until the channel closes; returns how many.
    pub async fn run(self, rx: mpsc::Receiver<Vec<Pending>>, ack: Acker) -> Result<u64, Error> {
        tokio::task::spawn_blocking(move || self.run_blocking(rx, &ack))
            .await
            .map_err(|e| Error(std::io::Error::other(e)))?
    }

    fn run_blocking(
        mut self,
        mut rx: mpsc::Receiver<Vec<Pending>>,
        ack: &Acker,
    ) -> Result<u64, Error> {
        let mut written = 0u64;
        let mut buf = Vec::with_capacity(1 << 20);
        // Documents are acknowledged once the buffer holding them is written out.
        let mut unflushed: Vec<u64> = Vec::new();
        while let Some(records) = rx.blocking_recv() {
            unflushed.extend(records.iter().map(|p| p.seq));
            for Pending { record, .. } in &records {
                match self.format {
                    Format::Ndjson => encode::ndjson_line(&mut buf, record).map_err(Error)?,
                    Format::Bulk => encode::bulk_item(&mut buf, self.action, record),
                }
            }
            written += records.len() as u64;
            self.metrics.documents.inc_by(records.len() as u64);
            if buf.len() >= (1 << 20) || rx.is_empty() {
                self.out.write_all(&buf).map_err(Error)?;
                self.out.flush().map_err(Error)?;
                buf.clear();
                ack(&unflushed);
                unflushed.clear();
            }
        }
        self.out.write_all(&buf).map_err(Error)?;
        self.out.flush().map_err(Error)?;
        ack(&unflushed);
        Ok(written)
    }
}
