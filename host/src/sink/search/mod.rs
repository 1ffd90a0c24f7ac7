//! The OpenSearch / Elasticsearch sink: batches of documents to `_bulk`,
//! with per-item truth (see [`writer`]) and bounded concurrency (see
//! [`batcher`](super::batcher)).
//!
//! At start it asks the cluster who it is (`GET /`): the answer decides the
//! index template's field types, and a refusal of the credentials or the TLS
//! certificate stops kwex with a clear message. A cluster that does not
//! answer at all is not an error at start — kwex keeps the documents and
//! retries until it comes up.

pub mod client;
pub mod dead_letter;
pub mod metrics;
pub mod response;
pub mod template;
pub mod writer;

use reqwest::Method;
use serde::Deserialize;
use tokio::sync::mpsc;

use super::{Acker, Pending, batcher};
use crate::document::Record;
pub use client::{Auth, Client};

/// Which product and version answered `GET /`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterInfo {
    /// OpenSearch or Elasticsearch.
    pub flavor: Flavor,
    /// `version.number`, e.g. `3.8.0`.
    pub version: String,
}

/// The two products kwex writes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// OpenSearch (and Amazon OpenSearch Service).
    OpenSearch,
    /// Elasticsearch.
    Elasticsearch,
}

impl ClusterInfo {
    /// `major.minor` as numbers (0 when unparsable).
    pub fn major_minor(&self) -> (u32, u32) {
        let mut parts = self
            .version
            .split('.')
            .map(|p| p.parse::<u32>().unwrap_or(0));
        (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
    }
}

/// The sink could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// 401/403 on `GET /`.
    #[error(
        "{url} refused kwex's credentials (HTTP {status}: {answer}); check --username and KWEX_PASSWORD / \
         --password-file, the API key, the bearer token, or the IAM role"
    )]
    Credentials {
        /// The cluster.
        url: String,
        /// 401 or 403.
        status: u16,
        /// The start of the answer.
        answer: String,
    },
    /// The TLS handshake failed (certificate not trusted, wrong host name…).
    #[error(
        "TLS with {url} failed: {message} (give the cluster's CA with --ca-file, or, for a test cluster only, \
         --insecure-skip-verify)"
    )]
    Tls {
        /// The cluster.
        url: String,
        /// The cause.
        message: String,
    },
    /// The index template could not be installed.
    #[error("cannot install the index template: {0}")]
    Template(#[from] template::Error),
}

/// Asks the cluster who it is. `Ok(None)` when it cannot be reached (yet).
pub async fn probe(client: &Client) -> Result<Option<ClusterInfo>, Error> {
    #[derive(Deserialize)]
    struct Root {
        version: Version,
    }
    #[derive(Deserialize)]
    struct Version {
        number: String,
        #[serde(default)]
        distribution: Option<String>,
    }
    let url = client.first_url();
    match client
        .request(Method::GET, "/", None, "application/json")
        .await
    {
        Ok(r) if r.status == 401 || r.status == 403 => Err(Error::Credentials {
            url,
            status: r.status,
            answer: String::from_utf8_lossy(&r.body[..r.body.len().min(300)])
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" "),
        }),
        Ok(r) if (200..300).contains(&r.status) => match serde_json::from_slice::<Root>(&r.body) {
            Ok(root) => {
                let flavor = match root.version.distribution.as_deref() {
                    Some("opensearch") => Flavor::OpenSearch,
                    _ => Flavor::Elasticsearch,
                };
                Ok(Some(ClusterInfo {
                    flavor,
                    version: root.version.number,
                }))
            }
            Err(e) => {
                tracing::warn!(%url, error = %e, "GET / did not answer like OpenSearch or Elasticsearch; going on.");
                Ok(None)
            }
        },
        Ok(r) => {
            tracing::warn!(%url, status = r.status, "GET / failed; kwex will retry its bulk requests.");
            Ok(None)
        }
        Err(e) => {
            let message = e.to_string();
            if is_tls_failure(&message) {
                return Err(Error::Tls { url, message });
            }
            tracing::warn!(%url, error = %message,
                "The search cluster does not answer yet; documents wait (bounded by the spool) and are sent when it does.");
            Ok(None)
        }
    }
}

fn is_tls_failure(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "certificate",
        "handshake",
        "tls",
        "unknownissuer",
        "invalid peer",
        "corrupt message",
        "invalidcontenttype",
    ]
    .iter()
    .any(|k| m.contains(k))
}

/// Runs the batcher and writers until the input closes; returns how many
/// documents were accepted (delivered, duplicates, or dead-lettered).
///
/// With `data_stream`, every document goes to that data stream, whatever
/// index normalization or a filter chose.
pub async fn run(
    batch: batcher::Settings,
    writer: writer::Writer,
    data_stream: Option<String>,
    rx: mpsc::Receiver<Vec<Pending>>,
    ack: Acker,
) -> Result<u64, std::convert::Infallible> {
    let report = batcher::run(batch, rx, move |pending: Vec<Pending>| {
        let writer = writer.clone();
        let ack = ack.clone();
        let seqs: Vec<u64> = pending.iter().map(|p| p.seq).collect();
        let mut records: Vec<Record> = pending.into_iter().map(|p| p.record).collect();
        if let Some(stream) = &data_stream {
            for record in &mut records {
                record.index.clone_from(stream);
            }
        }
        async move {
            // `deliver` returns once every record is delivered, a duplicate,
            // or dead-lettered: only then may the spool forget them.
            let report = writer.deliver(records).await;
            ack(&seqs);
            report
        }
    })
    .await;
    if report.lost > 0 {
        tracing::error!(
            lost = report.lost,
            "Some refused documents could not be dead-lettered either."
        );
    }
    Ok(report.delivered + report.duplicates + report.dead_lettered)
}
