//! Self-test of the fault-injecting proxy (`tests/util/fault_proxy.rs`) in front of the real test
//! search servers (osmem-server as OpenSearch, noida-db as Elasticsearch, started by
//! `scripts/testenv/search-servers.sh` through `cargo xtask test`).
//!
//! Why: sink tests will trust the proxy to change exactly what they ask for and nothing else; a
//! proxy that silently altered pass-through traffic, or counted wrongly, would make them prove
//! nothing. Each check runs against both servers. The tests are `#[ignore]`d for a plain
//! `cargo test` (no server there); without the servers' URLs they fail, never pass vacuously.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step should fail the test

mod util;

use std::io::Write;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use util::fault_proxy::{Fault, FaultProxy};

const OPENSEARCH: &str = "KWEX_TEST_OPENSEARCH_URL";
const ELASTICSEARCH: &str = "KWEX_TEST_ELASTICSEARCH_URL";

/// The server's URL from the environment `cargo xtask test` sets.
fn server(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: these tests need the search servers; run them with `cargo xtask test` (or scripts/testenv/search-servers.sh start DIR and export DIR/env)")
    })
}

/// A fresh index name per test and run, so tests can share the servers and run in parallel.
fn index(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("kwex-fp-{test}-{nanos}")
}

/// NDJSON for `create`s of `n` documents with ids 1..=n.
fn bulk_body(index: &str, n: usize) -> Vec<u8> {
    let mut out = String::new();
    for i in 1..=n {
        out.push_str(&json!({"create": {"_index": index, "_id": i.to_string()}}).to_string());
        out.push('\n');
        out.push_str(&json!({"n": i, "labels": {"app": "kwex"}}).to_string());
        out.push('\n');
    }
    out.into_bytes()
}

/// The body as JSON (reqwest is built without its `json` feature).
async fn json_of(response: reqwest::Response) -> Value {
    let text = response.text().await.unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

async fn bulk(client: &reqwest::Client, base: &str, body: Vec<u8>) -> (u16, Value) {
    let response = client
        .post(format!("{base}/_bulk"))
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, json_of(response).await)
}

/// `_refresh` then `_count` of the index, straight on the server (not through the proxy).
async fn count(client: &reqwest::Client, base: &str, index: &str) -> u64 {
    client
        .post(format!("{base}/{index}/_refresh"))
        .send()
        .await
        .unwrap();
    let response = client
        .get(format!("{base}/{index}/_count"))
        .send()
        .await
        .unwrap();
    if response.status() == 404 {
        return 0;
    }
    let value = json_of(response).await;
    value["count"].as_u64().unwrap()
}

fn statuses(response: &Value) -> Vec<u64> {
    response["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items in {response}"))
        .iter()
        .map(|item| {
            let (_, result) = item.as_object().unwrap().iter().next().unwrap();
            result["status"].as_u64().unwrap()
        })
        .collect()
}

// ------------------------------------------------------------------------------------ checks

/// Everything passes unchanged: `GET /`, `_bulk` (plain and gzip), `_count`, a second create of
/// the same ids (real per-item 409s), and several requests on one kept-alive connection.
async fn pass_through(var: &str) {
    let upstream = server(var);
    let proxy = FaultProxy::start(&upstream).await;
    let client = reqwest::Client::new();
    let index = index("pass");

    let direct = json_of(client.get(&upstream).send().await.unwrap()).await;
    let proxied = json_of(client.get(proxy.url()).send().await.unwrap()).await;
    assert_eq!(proxied, direct, "GET / through the proxy");

    let (status, response) = bulk(&client, &proxy.url(), bulk_body(&index, 3)).await;
    assert_eq!(status, 200, "{response}");
    assert_eq!(response["errors"], false, "{response}");
    assert_eq!(statuses(&response), [201, 201, 201]);

    // gzip request body: forwarded as is, with its Content-Encoding.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&bulk_body(&index, 5)).unwrap();
    let response = client
        .post(format!("{}/_bulk", proxy.url()))
        .header("content-type", "application/x-ndjson")
        .header("content-encoding", "gzip")
        .body(gz.finish().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let response = json_of(response).await;
    // ids 1..3 exist: the server's own 409s; 4 and 5 are new.
    assert_eq!(statuses(&response), [409, 409, 409, 201, 201], "{response}");
    assert_eq!(response["errors"], true);
    assert_eq!(
        response["items"][0]["create"]["error"]["type"],
        "version_conflict_engine_exception"
    );

    let (status, response) = bulk(&client, &proxy.url(), b"not json\n".to_vec()).await;
    assert!(
        status == 400 || response["errors"] == true,
        "a malformed body reaches the server: {status} {response}"
    );

    assert_eq!(count(&client, &upstream, &index).await, 5);
    let url = format!("{}/{index}/_count", proxy.url());
    let proxied = json_of(client.get(url).send().await.unwrap()).await;
    assert_eq!(proxied["count"], 5);
    assert_eq!(proxy.bulk_requests(), 3);
    assert_eq!(proxy.items_rewritten(), 0);

    // Keep-alive: two requests on one raw connection, both answered.
    let address = proxy.url().trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    let request = format!("GET / HTTP/1.1\r\nHost: {address}\r\n\r\n");
    let mut seen = Vec::new();
    for _ in 0..2 {
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut buf = vec![0; 64 * 1024];
        let end = Instant::now() + Duration::from_secs(5);
        let mut got = Vec::new();
        // Read one response: head, then Content-Length bytes.
        loop {
            assert!(
                Instant::now() < end,
                "no complete response on a kept-alive connection"
            );
            let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
                .await
                .unwrap()
                .unwrap();
            assert!(n > 0, "the proxy closed a kept-alive connection");
            got.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&got).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length: usize = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse().unwrap())
                    })
                    .expect("Content-Length");
                if body.len() >= length {
                    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
                    seen.push(body.to_owned());
                    break;
                }
            }
        }
    }
    assert_eq!(seen.len(), 2);
    let body: Value = serde_json::from_str(&seen[1]).unwrap();
    assert_eq!(body, direct);
}

/// `ItemStatus` rewrites exactly items every, 2*every, …; the rest are the server's answers.
async fn item_status(var: &str) {
    let upstream = server(var);
    let proxy = FaultProxy::start(&upstream).await;
    let client = reqwest::Client::new();
    let index = index("items");

    proxy.push(Fault::ItemStatus {
        every: 2,
        status: 429,
    });
    proxy.push(Fault::ItemStatus {
        every: 3,
        status: 503,
    });
    let (status, response) = bulk(&client, &proxy.url(), bulk_body(&index, 5)).await;
    assert_eq!(status, 200);
    assert_eq!(response["errors"], true, "{response}");
    assert_eq!(statuses(&response), [201, 429, 201, 429, 201], "{response}");
    let item = &response["items"][1]["create"];
    assert_eq!(item["error"]["type"], "es_rejected_execution_exception");
    assert_eq!(item["_index"], index.as_str());
    assert_eq!(item["_id"], "2");
    assert!(item.get("result").is_none(), "{item}");
    assert_eq!(proxy.items_rewritten(), 2);
    // The server indexed everything (a partial failure seen by the client only).
    assert_eq!(count(&client, &upstream, &index).await, 5);

    // Second queued fault, on the next request: items 3 and 6 → 503 (1..5 are now real 409s).
    let mut body = bulk_body(&index, 5);
    let extra = format!(
        "{}\n{}\n",
        json!({"create": {"_index": index, "_id": "6"}}),
        json!({"n": 6})
    );
    body.extend_from_slice(extra.as_bytes());
    let (_, response) = bulk(&client, &proxy.url(), body).await;
    assert_eq!(
        statuses(&response),
        [409, 409, 503, 409, 409, 503],
        "{response}"
    );
    assert_eq!(
        response["items"][5]["create"]["error"]["type"],
        "unavailable_shards_exception"
    );
    assert_eq!(proxy.items_rewritten(), 4);

    // Queue empty, default None: unchanged again.
    let (_, response) = bulk(&client, &proxy.url(), bulk_body(&index, 2)).await;
    assert_eq!(statuses(&response), [409, 409], "{response}");
    assert_eq!(proxy.items_rewritten(), 4);
    assert_eq!(proxy.bulk_requests(), 3);
}

/// `Status` answers without forwarding: the server's count does not move.
async fn status(var: &str) {
    let upstream = server(var);
    let proxy = FaultProxy::start(&upstream).await;
    let client = reqwest::Client::new();
    let index = index("status");

    let (_, response) = bulk(&client, &proxy.url(), bulk_body(&index, 1)).await;
    assert_eq!(statuses(&response), [201]);
    assert_eq!(count(&client, &upstream, &index).await, 1);

    for (code, kind) in [
        (429, "es_rejected_execution_exception"),
        (503, "cluster_block_exception"),
        (500, "illegal_state_exception"),
        (401, "security_exception"),
    ] {
        proxy.push(Fault::Status(code));
        let mut body = bulk_body(&index, 3);
        body.extend_from_slice(b"{\"create\":{\"_index\":\"x\",\"_id\":\"9\"}}\n{}\n");
        let (status, response) = bulk(&client, &proxy.url(), body).await;
        assert_eq!(status, code, "{response}");
        assert_eq!(response["status"], code);
        assert_eq!(response["error"]["type"], kind, "{response}");
        assert_eq!(response["error"]["root_cause"][0]["type"], kind);
    }
    proxy.push(Fault::Status(413));
    let response = client
        .post(format!("{}/_bulk", proxy.url()))
        .header("content-type", "application/x-ndjson")
        .body(bulk_body(&index, 3))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);

    assert_eq!(
        count(&client, &upstream, &index).await,
        1,
        "a Status fault reached the server"
    );
    assert_eq!(proxy.bulk_requests(), 6);

    // set_default applies to every request until cleared.
    proxy.set_default(Fault::Status(429));
    for _ in 0..2 {
        let (status, _) = bulk(&client, &proxy.url(), bulk_body(&index, 1)).await;
        assert_eq!(status, 429);
    }
    proxy.set_default(Fault::None);
    let (status, response) = bulk(&client, &proxy.url(), bulk_body(&index, 2)).await;
    assert_eq!(status, 200);
    assert_eq!(statuses(&response), [409, 201]);
    assert_eq!(count(&client, &upstream, &index).await, 2);
}

/// `DropConnection` closes the connection after reading the request: the client sees an error
/// (not a status); the next request goes through.
async fn drop_connection(var: &str) {
    let upstream = server(var);
    let proxy = FaultProxy::start(&upstream).await;
    let client = reqwest::Client::new();
    let index = index("drop");

    proxy.push(Fault::DropConnection);
    let result = client
        .post(format!("{}/_bulk", proxy.url()))
        .header("content-type", "application/x-ndjson")
        .body(bulk_body(&index, 2))
        .send()
        .await;
    let error = result.expect_err("a dropped connection is an error, not a response");
    assert!(!error.is_timeout() && error.status().is_none(), "{error:?}");
    assert_eq!(count(&client, &upstream, &index).await, 0);

    let (status, response) = bulk(&client, &proxy.url(), bulk_body(&index, 2)).await;
    assert_eq!(status, 200);
    assert_eq!(statuses(&response), [201, 201]);
    assert_eq!(proxy.bulk_requests(), 2);
}

/// `max_in_flight` is the peak of concurrent `_bulk` requests (made visible with `Delay`).
async fn in_flight(var: &str) {
    let upstream = server(var);
    let proxy = FaultProxy::start(&upstream).await;
    let client = reqwest::Client::new();
    let index = index("flight");

    let (_, response) = bulk(&client, &proxy.url(), bulk_body(&index, 1)).await;
    assert_eq!(statuses(&response), [201]);
    assert_eq!(proxy.max_in_flight(), 1);

    proxy.set_default(Fault::Delay(Duration::from_millis(400)));
    let started = Instant::now();
    let requests = (0..4).map(|i| {
        let client = client.clone();
        let url = proxy.url();
        let body = format!(
            "{}\n{}\n",
            json!({"index": {"_index": index, "_id": format!("c{i}")}}),
            json!({"n": i})
        );
        async move { bulk(&client, &url, body.into_bytes()).await }
    });
    let results = futures::future::join_all(requests).await;
    let elapsed = started.elapsed();
    for (status, response) in &results {
        assert_eq!(*status, 200);
        assert_eq!(statuses(response), [201], "{response}");
    }
    assert!(
        elapsed >= Duration::from_millis(400),
        "Delay was not applied: {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_millis(1600),
        "the requests were serialized: {elapsed:?}"
    );
    assert_eq!(proxy.max_in_flight(), 4);
    assert_eq!(proxy.bulk_requests(), 5);
    proxy.set_default(Fault::None);
    assert_eq!(count(&client, &upstream, &index).await, 5);
}

// ------------------------------------------------------------------------------------ tests

/// One test per server for a check (each `#[ignore]`d like the other server-backed tests).
macro_rules! both {
    ($check:ident, $os:ident, $es:ident) => {
        #[tokio::test]
        #[ignore = "needs the search servers: run with cargo xtask test"]
        async fn $os() {
            $check(OPENSEARCH).await;
        }

        #[tokio::test]
        #[ignore = "needs the search servers: run with cargo xtask test"]
        async fn $es() {
            $check(ELASTICSEARCH).await;
        }
    };
}

both!(
    pass_through,
    pass_through_opensearch,
    pass_through_elasticsearch
);
both!(
    item_status,
    item_status_opensearch,
    item_status_elasticsearch
);
both!(status, status_opensearch, status_elasticsearch);
both!(
    drop_connection,
    drop_connection_opensearch,
    drop_connection_elasticsearch
);
both!(in_flight, in_flight_opensearch, in_flight_elasticsearch);
