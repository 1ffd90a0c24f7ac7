//! Where Documents go.
//!
//! A sink takes chunks of [`Record`](crate::document::Record)s from the last
//! channel of the pipeline and ends when that channel closes, after writing
//! everything it received. [`encode`] builds `_bulk` request bodies, shared by
//! the stdout sink's `--format bulk` and the search-cluster sink.

pub mod aws;
pub mod batcher;
pub mod encode;
pub mod search;
pub mod stdout;

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::document::Record;

/// A document waiting for the sink, with the sequence number its queue gave
/// it (the spool's, so that the sink can acknowledge it once it is done).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// Position in the queue; what [`Acker`] reports back.
    pub seq: u64,
    /// The document.
    pub record: Record,
}

/// Called by a sink with the sequence numbers of documents it is done with
/// (delivered, duplicate, or dead-lettered): the spool may then forget them.
pub type Acker = Arc<dyn Fn(&[u64]) + Send + Sync>;

/// The sink a run writes to, chosen by `--sink`.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // one value per process: boxing would buy nothing
pub enum Sink {
    /// Standard output.
    Stdout(stdout::StdoutSink),
    /// OpenSearch / Elasticsearch.
    Search {
        /// When batches leave.
        batch: batcher::Settings,
        /// Sends them.
        writer: search::writer::Writer,
        /// Data stream overriding every document's index.
        data_stream: Option<String>,
    },
}

/// The sink failed for good.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Writing to stdout failed.
    #[error(transparent)]
    Stdout(#[from] stdout::Error),
}

impl Sink {
    /// Consumes `rx` until it closes, acknowledging what it is done with
    /// through `ack`; returns how many documents were accepted.
    pub async fn run(self, rx: mpsc::Receiver<Vec<Pending>>, ack: Acker) -> Result<u64, Error> {
        match self {
            Sink::Stdout(sink) => Ok(sink.run(rx, ack).await?),
            Sink::Search {
                batch,
                writer,
                data_stream,
            } => {
                let Ok(n) = search::run(batch, writer, data_stream, rx, ack).await;
                Ok(n)
            }
        }
    }
}
