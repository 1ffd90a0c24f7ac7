//! A fault-injecting HTTP/1.1 proxy in front of a real search server (osmem-server or noida-db,
//! started by `scripts/testenv/search-servers.sh`).
//!
//! Why: the test servers answer `_bulk` correctly, but a sink must also survive what they never
//! do on their own: 429 back-pressure (whole request or per item), 5xx, slow answers, dropped
//! connections. Mocking the server would test kwex against our idea of the protocol; this proxy
//! forwards to the real server and changes only what a test asks for, so everything else (item
//! order, ids, per-item 409/400 from the real mapping logic) stays real.
//!
//! It is written on raw tokio TCP (not axum/hyper) so it can also close a connection after
//! reading a request. Requests are read with `Content-Length` (or chunked) bodies and forwarded
//! byte for byte (a gzip body stays gzip: `Content-Encoding` is forwarded); responses are
//! re-emitted with `Content-Length` (a chunked upstream answer is decoded by reqwest first).
//! Keep-alive works as in HTTP/1.1: several requests per connection until `Connection: close`.
//!
//! Faults apply only to requests whose path contains `_bulk`; everything else is forwarded
//! unchanged so tests can `_refresh`/`_count` through the proxy or directly.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

/// What the proxy does to one `_bulk` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Forward unchanged.
    None,
    /// Answer with this status (e.g. 429, 500, 503, 413) and a realistic JSON error body, without
    /// forwarding: the server never sees the request.
    Status(u16),
    /// Forward, then rewrite every `every`-th item (1-based: items every, 2*every, …) of the real
    /// `_bulk` response to `status` (429 → `es_rejected_execution_exception`, 5xx → a realistic
    /// error), setting `"errors": true`. The server did index those items: this models a partial
    /// failure whose retry must be idempotent.
    ItemStatus {
        /// Which items: every `every`-th (0 is treated as 1: all items).
        every: usize,
        /// Their new status.
        status: u16,
    },
    /// Wait this long before forwarding (slow server).
    Delay(Duration),
    /// Read the request, then close the connection without answering.
    DropConnection,
}

/// State shared by the handle and the connection tasks.
struct Shared {
    upstream: String,
    client: reqwest::Client,
    queue: Mutex<VecDeque<Fault>>,
    default: Mutex<Fault>,
    bulk_requests: AtomicUsize,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    items_rewritten: AtomicUsize,
}

/// Poisoning only means another test task panicked; the data is still usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn next_fault(&self) -> Fault {
        if let Some(f) = lock(&self.queue).pop_front() {
            return f;
        }
        lock(&self.default).clone()
    }
}

/// Counts a `_bulk` request as in flight until dropped (also when the connection is dropped).
struct InFlight<'a>(&'a Shared);

impl<'a> InFlight<'a> {
    fn enter(shared: &'a Shared) -> Self {
        let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        shared.max_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(shared)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A running proxy; it stops accepting connections when dropped.
pub struct FaultProxy {
    addr: std::net::SocketAddr,
    shared: Arc<Shared>,
    accept: AbortHandle,
}

impl FaultProxy {
    /// Binds 127.0.0.1:0 and starts serving in a tokio task; forwards to `upstream` (e.g.
    /// "http://127.0.0.1:19200").
    #[allow(clippy::expect_used)] // a proxy that cannot start should fail the test
    pub async fn start(upstream: &str) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fault proxy");
        let addr = listener.local_addr().expect("fault proxy address");
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_owned(),
            client: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("fault proxy HTTP client"),
            queue: Mutex::new(VecDeque::new()),
            default: Mutex::new(Fault::None),
            bulk_requests: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            items_rewritten: AtomicUsize::new(0),
        });
        let accept_shared = shared.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(10)).await; // e.g. out of file descriptors
                    continue;
                };
                let _ = stream.set_nodelay(true);
                tokio::spawn(serve_connection(stream, accept_shared.clone()));
            }
        })
        .abort_handle();
        FaultProxy {
            addr,
            shared,
            accept,
        }
    }

    /// The proxy's base URL: "http://127.0.0.1:PORT".
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Queue a fault: each applies to ONE following request whose path contains "_bulk", in order.
    pub fn push(&self, fault: Fault) {
        lock(&self.shared.queue).push_back(fault);
    }

    /// A fault applied to every `_bulk` request while the queue is empty (`Fault::None` to clear).
    pub fn set_default(&self, fault: Fault) {
        *lock(&self.shared.default) = fault;
    }

    /// `_bulk` requests received (including those answered or dropped by a fault).
    pub fn bulk_requests(&self) -> usize {
        self.shared.bulk_requests.load(Ordering::SeqCst)
    }

    /// The highest number of `_bulk` requests being handled at once (read to answered).
    pub fn max_in_flight(&self) -> usize {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }

    /// Items whose status the proxy changed (by `Fault::ItemStatus`).
    pub fn items_rewritten(&self) -> usize {
        self.shared.items_rewritten.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

// ------------------------------------------------------------------------------------ HTTP/1.1

/// One parsed request.
struct Request {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Bytes,
    close: bool,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One response to write.
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Bytes,
    /// For HEAD: the Content-Length to announce without sending a body.
    head_length: Option<String>,
}

const MAX_HEAD: usize = 64 * 1024;

/// A connection with its read buffer (bytes past one request belong to the next).
struct Conn {
    stream: TcpStream,
    buf: BytesMut,
}

fn bad(msg: impl Into<String>) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg.into())
}

impl Conn {
    /// Reads more bytes; errors on EOF.
    async fn fill(&mut self) -> std::io::Result<()> {
        if self.stream.read_buf(&mut self.buf).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        Ok(())
    }

    /// The next request, or None when the client closed the connection between requests.
    async fn read_request(&mut self) -> std::io::Result<Option<Request>> {
        let end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i;
            }
            if self.buf.len() > MAX_HEAD {
                return Err(bad("request head too large"));
            }
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        };
        let head = self.buf.split_to(end + 4);
        let head = std::str::from_utf8(&head).map_err(|_| bad("request head is not UTF-8"))?;
        let mut lines = head.split("\r\n");
        let mut first = lines.next().unwrap_or_default().split(' ');
        let (Some(method), Some(target), Some(version)) =
            (first.next(), first.next(), first.next())
        else {
            return Err(bad(format!("bad request line: {head:?}")));
        };
        let headers: Vec<(String, String)> = lines
            .filter(|l| !l.is_empty())
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
            .collect();
        let mut request = Request {
            method: method.to_owned(),
            target: target.to_owned(),
            close: version == "HTTP/1.0",
            headers,
            body: Bytes::new(),
        };
        if let Some(c) = request.header("connection") {
            let c = c.to_ascii_lowercase();
            request.close =
                c.contains("close") || (version == "HTTP/1.0" && !c.contains("keep-alive"));
        }
        if request
            .header("expect")
            .is_some_and(|e| e.eq_ignore_ascii_case("100-continue"))
        {
            self.stream
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                .await?;
        }
        let chunked = request
            .header("transfer-encoding")
            .is_some_and(|t| t.to_ascii_lowercase().contains("chunked"));
        request.body = if chunked {
            self.read_chunked().await?
        } else {
            let len: usize = match request.header("content-length") {
                Some(v) => v
                    .parse()
                    .map_err(|_| bad(format!("bad Content-Length {v:?}")))?,
                None => 0,
            };
            while self.buf.len() < len {
                self.fill().await?;
            }
            self.buf.split_to(len).freeze()
        };
        Ok(Some(request))
    }

    async fn read_line(&mut self) -> std::io::Result<String> {
        loop {
            if let Some(i) = find(&self.buf, b"\r\n") {
                let line = self.buf.split_to(i + 2);
                return Ok(String::from_utf8_lossy(&line[..i]).into_owned());
            }
            if self.buf.len() > MAX_HEAD {
                return Err(bad("chunk line too long"));
            }
            self.fill().await?;
        }
    }

    async fn read_chunked(&mut self) -> std::io::Result<Bytes> {
        let mut body = BytesMut::new();
        loop {
            let line = self.read_line().await?;
            let size = line.split(';').next().unwrap_or_default().trim();
            let size = usize::from_str_radix(size, 16)
                .map_err(|_| bad(format!("bad chunk size {line:?}")))?;
            if size == 0 {
                // Trailers, up to the empty line.
                while !self.read_line().await?.is_empty() {}
                return Ok(body.freeze());
            }
            while self.buf.len() < size + 2 {
                self.fill().await?;
            }
            body.extend_from_slice(&self.buf[..size]);
            self.buf.advance(size + 2);
        }
    }

    async fn write_response(&mut self, response: &Response, close: bool) -> std::io::Result<()> {
        let reason = reqwest::StatusCode::from_u16(response.status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("Unknown");
        let mut out = format!("HTTP/1.1 {} {reason}\r\n", response.status).into_bytes();
        for (name, value) in &response.headers {
            out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        let length = match &response.head_length {
            Some(l) => l.clone(),
            None => response.body.len().to_string(),
        };
        out.extend_from_slice(format!("content-length: {length}\r\n").as_bytes());
        if close {
            out.extend_from_slice(b"connection: close\r\n");
        }
        out.extend_from_slice(b"\r\n");
        if response.head_length.is_none() {
            out.extend_from_slice(&response.body);
        }
        self.stream.write_all(&out).await?;
        self.stream.flush().await
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Hop-by-hop headers and those the proxy (or reqwest) sets itself.
fn is_hop(name: &str) -> bool {
    const HOP: [&str; 10] = [
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "content-length",
        "host",
        "expect",
    ];
    HOP.iter().any(|h| name.eq_ignore_ascii_case(h))
}

async fn serve_connection(stream: TcpStream, shared: Arc<Shared>) {
    let mut conn = Conn {
        stream,
        buf: BytesMut::with_capacity(16 * 1024),
    };
    loop {
        let request = match conn.read_request().await {
            Ok(Some(r)) => r,
            Ok(None) => return,
            Err(e) => {
                if e.kind() == std::io::ErrorKind::InvalidData {
                    let response = proxy_error(400, &format!("fault proxy: {e}"));
                    let _ = conn.write_response(&response, true).await;
                }
                return;
            }
        };
        let close = request.close;
        let path = request.target.split('?').next().unwrap_or_default();
        let response = if path.contains("_bulk") {
            shared.bulk_requests.fetch_add(1, Ordering::SeqCst);
            let _in_flight = InFlight::enter(&shared);
            match shared.next_fault() {
                Fault::None => forward(&shared, &request).await,
                Fault::Status(413) => {
                    let response = error_response(413, &request.target);
                    let _ = conn.write_response(&response, true).await;
                    return;
                }
                Fault::Status(status) => error_response(status, &request.target),
                Fault::ItemStatus { every, status } => {
                    let mut response = forward(&shared, &request).await;
                    rewrite_items(&shared, &mut response, every.max(1), status);
                    response
                }
                Fault::Delay(d) => {
                    tokio::time::sleep(d).await;
                    forward(&shared, &request).await
                }
                Fault::DropConnection => {
                    let _ = conn.stream.shutdown().await;
                    return;
                }
            }
        } else {
            forward(&shared, &request).await
        };
        if conn.write_response(&response, close).await.is_err() || close {
            return;
        }
    }
}

/// Sends the request to the upstream server as it came (method, path, headers, body bytes).
async fn forward(shared: &Shared, request: &Request) -> Response {
    let url = format!("{}{}", shared.upstream, request.target);
    let Ok(method) = reqwest::Method::from_bytes(request.method.as_bytes()) else {
        return proxy_error(400, &format!("fault proxy: bad method {}", request.method));
    };
    let mut builder = shared.client.request(method.clone(), &url);
    for (name, value) in &request.headers {
        if !is_hop(name) {
            builder = builder.header(name.as_str(), value.as_str());
        }
    }
    if !request.body.is_empty() || request.header("content-length").is_some() {
        builder = builder.body(request.body.clone());
    }
    let upstream = match builder.send().await {
        Ok(r) => r,
        Err(e) => return gateway_error(&url, &e),
    };
    let status = upstream.status().as_u16();
    let mut headers = Vec::new();
    let mut head_length = None;
    for (name, value) in upstream.headers() {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        if name.as_str().eq_ignore_ascii_case("content-length") && method == reqwest::Method::HEAD {
            head_length = Some(value);
        } else if !is_hop(name.as_str()) {
            headers.push((name.as_str().to_owned(), value));
        }
    }
    match upstream.bytes().await {
        Ok(body) => Response {
            status,
            headers,
            body,
            head_length,
        },
        Err(e) => gateway_error(&url, &e),
    }
}

/// The upstream could not be reached: 502, with the whole error chain (a test setup problem).
fn gateway_error(url: &str, e: &reqwest::Error) -> Response {
    let mut message = format!("fault proxy: upstream {url}: {e}");
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        message.push_str(&format!(": {s}"));
        source = s.source();
    }
    proxy_error(502, &message)
}

/// An error of the proxy itself (not an injected fault), in the servers' simple error shape.
fn proxy_error(status: u16, message: &str) -> Response {
    json_response(
        status,
        json!({"error": message, "status": status}).to_string(),
    )
}

fn json_response(status: u16, body: String) -> Response {
    Response {
        status,
        headers: vec![(
            "content-type".to_owned(),
            "application/json; charset=UTF-8".to_owned(),
        )],
        body: body.into(),
        head_length: None,
    }
}

/// An error object as the servers write them (`type`, `reason`, plus extra fields).
fn error_object(kind: &str, reason: &str) -> Value {
    json!({"type": kind, "reason": reason})
}

/// The whole-request error a real OpenSearch/Elasticsearch answers with this status.
fn error_response(status: u16, target: &str) -> Response {
    let error = match status {
        // Indexing pressure (the coordinating node refuses the whole request).
        429 => error_object(
            "es_rejected_execution_exception",
            "rejected execution of coordinating operation [coordinating_and_primary_bytes=104857600, \
             replica_bytes=0, all_bytes=104857600, coordinating_operation_bytes=2048, \
             max_coordinating_and_primary_bytes=107374182]",
        ),
        // Byte for byte what osmem answers past its 100 MiB limit (it also closes the connection).
        413 => {
            return json_response(
                413,
                json!({"error": "request body is larger than 104857600 bytes", "status": 413})
                    .to_string(),
            );
        }
        401 => {
            let mut response = error_json_response(
                401,
                json!({
                    "type": "security_exception",
                    "reason": format!("missing authentication credentials for REST request [{target}]"),
                    "header": {"WWW-Authenticate": ["Basic realm=\"security\" charset=\"UTF-8\""]},
                }),
            );
            response.headers.push((
                "www-authenticate".to_owned(),
                "Basic realm=\"security\" charset=\"UTF-8\"".to_owned(),
            ));
            return response;
        }
        403 => error_object(
            "security_exception",
            "action [indices:data/write/bulk] is unauthorized for user [kwex] with effective roles [kwex]",
        ),
        503 => error_object(
            "cluster_block_exception",
            "blocked by: [SERVICE_UNAVAILABLE/1/state not recovered / initialized];",
        ),
        500..=599 => error_object(
            "illegal_state_exception",
            "fault proxy: injected internal server error",
        ),
        _ => error_object("illegal_argument_exception", "fault proxy: injected error"),
    };
    error_json_response(status, error)
}

fn error_json_response(status: u16, error: Value) -> Response {
    let mut full = error.clone();
    if let Some(obj) = full.as_object_mut() {
        obj.insert("root_cause".to_owned(), json!([error]));
    }
    json_response(status, json!({"error": full, "status": status}).to_string())
}

/// The per-item error a real server writes for this status.
fn item_error(status: u16, index: &str) -> Value {
    match status {
        429 => error_object(
            "es_rejected_execution_exception",
            "rejected execution of primary operation [coordinating_and_primary_bytes=0, replica_bytes=0, \
             all_bytes=0, primary_operation_bytes=1024, max_coordinating_and_primary_bytes=107374182]",
        ),
        503 => error_object(
            "unavailable_shards_exception",
            &format!(
                "[{index}][0] primary shard is not active Timeout: [1m], request: \
                 [BulkShardRequest [[{index}][0]] containing [1] requests]"
            ),
        ),
        409 => error_object(
            "version_conflict_engine_exception",
            "fault proxy: injected version conflict",
        ),
        400 => error_object(
            "mapper_parsing_exception",
            "fault proxy: injected mapping error",
        ),
        500..=599 => error_object(
            "illegal_state_exception",
            "fault proxy: injected shard failure",
        ),
        _ => error_object("exception", "fault proxy: injected item error"),
    }
}

/// Rewrites items `every`, `2*every`, … of a `_bulk` response to `status`.
fn rewrite_items(shared: &Shared, response: &mut Response, every: usize, status: u16) {
    if response.status != 200 {
        return; // nothing per-item to rewrite: pass the real whole-request error on
    }
    let gzipped = response
        .headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("content-encoding") && v.eq_ignore_ascii_case("gzip"));
    let raw = if gzipped {
        let mut out = Vec::new();
        if flate2::read::GzDecoder::new(&response.body[..])
            .read_to_end(&mut out)
            .is_err()
        {
            return;
        }
        out
    } else {
        response.body.to_vec()
    };
    let Ok(mut value) = serde_json::from_slice::<Value>(&raw) else {
        return;
    };
    let Some(items) = value.get_mut("items").and_then(Value::as_array_mut) else {
        return;
    };
    let mut changed = 0;
    for (i, item) in items.iter_mut().enumerate() {
        if (i + 1) % every != 0 {
            continue;
        }
        let Some(obj) = item.as_object_mut() else {
            continue;
        };
        let Some((_, result)) = obj.iter_mut().next() else {
            continue;
        };
        let Some(result) = result.as_object_mut() else {
            continue;
        };
        if result.get("status").and_then(Value::as_u64) == Some(u64::from(status)) {
            continue;
        }
        let index = result
            .get("_index")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        result.retain(|k, _| k == "_index" || k == "_id");
        result.insert("status".to_owned(), json!(status));
        result.insert("error".to_owned(), item_error(status, &index));
        changed += 1;
    }
    if changed == 0 {
        return;
    }
    if let Some(obj) = value.as_object_mut() {
        obj.insert("errors".to_owned(), json!(true));
    }
    shared.items_rewritten.fetch_add(changed, Ordering::SeqCst);
    let text = value.to_string().into_bytes();
    response.body = if gzipped {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        if enc.write_all(&text).is_err() {
            return;
        }
        match enc.finish() {
            Ok(b) => b.into(),
            Err(_) => return,
        }
    } else {
        text.into()
    };
}
