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

use tokio::sync::mpsc;

use crate::document::Record;

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
    /// Consumes `rx` until it closes; returns how many documents were accepted.
    pub async fn run(self, rx: mpsc::Receiver<Vec<Record>>) -> Result<u64, Error> {
        match self {
            Sink::Stdout(sink) => Ok(sink.run(rx).await?),
            Sink::Search {
                batch,
                writer,
                data_stream,
            } => {
                let Ok(n) = search::run(batch, writer, data_stream, rx).await;
                Ok(n)
            }
        }
    }
}
