//! A `_bulk` endpoint that stores nothing: it parses every request as a real
//! cluster would (gzip, NDJSON action/document pairs) and acknowledges every
//! item with 201. Pointing kwex at it measures kwex's own ceiling, without a
//! search server's indexing cost.
//!
//! `discard-bulk [ADDRESS]` (default 127.0.0.1:19250). `GET /` answers like
//! OpenSearch; `GET /_stats/discard` returns the documents and requests seen
//! and the latency of the documents from read to acknowledgement: now minus
//! each document's `kwex.observedAt` (when kwex read the Event), as p50, p99
//! and max in milliseconds.

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};

#[derive(Default)]
struct Seen {
    documents: AtomicU64,
    requests: AtomicU64,
    /// Read-to-acknowledgement latency of every document, in µs.
    latencies: std::sync::Mutex<Vec<u32>>,
}

/// The one field of a Document read here.
#[derive(serde::Deserialize)]
struct Observed<'a> {
    #[serde(borrow)]
    kwex: Option<ObservedAt<'a>>,
}

#[derive(serde::Deserialize)]
struct ObservedAt<'a> {
    #[serde(rename = "observedAt")]
    observed_at: Option<&'a str>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:19250".into());
    let seen = Arc::new(Seen::default());
    let app = Router::new()
        .route(
            "/",
            get(|| async {
                r#"{"version":{"number":"3.8.0","distribution":"opensearch"},"tagline":"discard"}"#
            }),
        )
        .route("/_bulk", post(bulk))
        .route("/_stats/discard", get(stats))
        .with_state(seen);
    let listener = tokio::net::TcpListener::bind(&address).await?;
    eprintln!("discard-bulk listening on {address}");
    axum::serve(listener, app).await?;
    Ok(())
}

async fn stats(State(seen): State<Arc<Seen>>) -> String {
    let mut latencies = seen.latencies.lock().map(|l| l.clone()).unwrap_or_default();
    latencies.sort_unstable();
    let at = |p: f64| -> f64 {
        let i = ((latencies.len().saturating_sub(1)) as f64 * p).round() as usize;
        f64::from(latencies.get(i).copied().unwrap_or(0)) / 1000.0
    };
    format!(
        "{{\"documents\":{},\"requests\":{},\"latency_ms\":{{\"p50\":{:.1},\"p99\":{:.1},\"max\":{:.1}}}}}",
        seen.documents.load(Ordering::Relaxed),
        seen.requests.load(Ordering::Relaxed),
        at(0.5),
        at(0.99),
        at(1.0),
    )
}

async fn bulk(
    State(seen): State<Arc<Seen>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let gzipped = headers
        .get("content-encoding")
        .is_some_and(|v| v.as_bytes() == b"gzip");
    let text = if gzipped {
        let mut out = Vec::new();
        if flate2::read::GzDecoder::new(&body[..])
            .read_to_end(&mut out)
            .is_err()
        {
            return (StatusCode::BAD_REQUEST, r#"{"error":"bad gzip"}"#.into());
        }
        out
    } else {
        body.to_vec()
    };
    let mut items = String::with_capacity(text.len() / 8);
    let mut lines = text.split(|&b| b == b'\n').filter(|l| !l.is_empty());
    let mut n = 0u64;
    let now = chrono::Utc::now();
    let mut latencies = Vec::new();
    while let Some(action) = lines.next() {
        let Ok(action) = serde_json::from_slice::<serde_json::Value>(action) else {
            return (
                StatusCode::BAD_REQUEST,
                r#"{"error":"bad action line"}"#.into(),
            );
        };
        let Some(document) = lines.next() else {
            return (
                StatusCode::BAD_REQUEST,
                r#"{"error":"action without document"}"#.into(),
            );
        };
        let Ok(observed) = serde_json::from_slice::<Observed<'_>>(document) else {
            return (
                StatusCode::BAD_REQUEST,
                r#"{"error":"bad document"}"#.into(),
            );
        };
        if let Some(at) = observed
            .kwex
            .and_then(|k| k.observed_at)
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        {
            let micros = (now - at.with_timezone(&chrono::Utc)).num_microseconds();
            latencies
                .push(micros.map_or(u32::MAX, |m| u32::try_from(m.max(0)).unwrap_or(u32::MAX)));
        }
        let (op, meta) = action
            .as_object()
            .and_then(|o| o.iter().next())
            .map_or(("create", None), |(k, v)| (k.as_str(), Some(v)));
        let id = meta.and_then(|m| m.get("_id")).cloned().unwrap_or_default();
        let index = meta
            .and_then(|m| m.get("_index"))
            .cloned()
            .unwrap_or_default();
        if n > 0 {
            items.push(',');
        }
        items.push_str(&format!(
            r#"{{"{op}":{{"_index":{index},"_id":{id},"status":201,"result":"created"}}}}"#
        ));
        n += 1;
    }
    if let Ok(mut all) = seen.latencies.lock() {
        all.extend(latencies);
    }
    seen.documents.fetch_add(n, Ordering::Relaxed);
    seen.requests.fetch_add(1, Ordering::Relaxed);
    (
        StatusCode::OK,
        format!(r#"{{"took":0,"errors":false,"items":[{items}]}}"#),
    )
}
