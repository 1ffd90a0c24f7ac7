//! What an operator sees: `/metrics` that add up, `/readyz` that tells the
//! truth, and logs that are JSON lines.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step should fail the test

mod util;

use std::io::Write;
use std::time::{Duration, Instant};

use util::fault_proxy::{Fault, FaultProxy};
use util::kube::{cluster, create_event};
use util::{Kwex, examples, free_port, wait_for_metric};

const DEADLINE: Duration = Duration::from_secs(60);

async fn metrics(port: u16) -> String {
    reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The sum of every sample of a family (all label sets).
fn sum(text: &str, family: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.split(['{', ' ']).next() == Some(family))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_counters_add_up_and_logs_are_json_lines() {
    let port = free_port();
    let mut kwex = Kwex::new()
        .args([
            "replay",
            "--metrics-address",
            &format!("127.0.0.1:{port}"),
            "-",
        ])
        .spawn();
    let input = std::fs::read(examples().join("malformed.ndjson")).unwrap();
    kwex.stdin().write_all(&input).unwrap();
    kwex.stdin().flush().unwrap();
    let expected: serde_json::Value =
        serde_json::from_slice(&std::fs::read(examples().join("malformed.expected.json")).unwrap())
            .unwrap();
    let valid = expected["valid_lines"].as_array().unwrap().len() as f64;
    let invalid = expected["invalid_lines"].as_array().unwrap().len() as f64;

    wait_for_metric(port, "kwex_sink_stdout_documents_total", valid, DEADLINE).await;
    let text = metrics(port).await;
    let records = sum(&text, "kwex_source_replay_records_total");
    assert_eq!(records, valid + invalid, "{text}");
    assert_eq!(sum(&text, "kwex_normalize_documents_total"), valid);
    assert_eq!(sum(&text, "kwex_normalize_invalid_total"), invalid);
    assert_eq!(
        records,
        sum(&text, "kwex_normalize_documents_total") + sum(&text, "kwex_normalize_invalid_total"),
        "every record read is either a document or counted as invalid"
    );
    assert_eq!(
        sum(&text, "kwex_sink_stdout_documents_total"),
        valid,
        "every document reached the sink"
    );
    assert_eq!(
        reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
            .await
            .unwrap()
            .status(),
        200
    );

    drop(kwex.stdin_close());
    let out = kwex.wait(DEADLINE);
    assert!(out.status.success());
    let stderr = out.stderr_text();
    assert!(!stderr.trim().is_empty());
    for line in stderr.lines() {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        for field in ["timestamp", "level", "message"] {
            assert!(v.get(field).is_some(), "{field} missing: {line}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the test kube-apiserver and search servers: run with cargo xtask test"]
async fn readyz_follows_the_initial_list_and_the_search_cluster() {
    let cluster = cluster();
    let client = cluster.client().await;
    let ns = cluster.namespace(&client, "readyz").await;
    create_event(&client, &ns, "first", "Pulled", "Normal").await;
    let url = std::env::var("KWEX_TEST_OPENSEARCH_URL")
        .expect("KWEX_TEST_OPENSEARCH_URL: run with cargo xtask test");
    let proxy = FaultProxy::start(&url).await;
    let port = free_port();
    let kwex = Kwex::new()
        .args([
            "run",
            "--spool",
            "memory",
            "--sink",
            "search",
            "--url",
            &proxy.url(),
            "--namespace",
            &ns,
        ])
        .args([
            "--flush-delay",
            "100ms",
            "--max-backoff",
            "300ms",
            "--index",
            &format!("{ns}-%Y.%m.%d"),
        ])
        .args([
            "--metrics-address",
            &format!("127.0.0.1:{port}"),
            "--kubeconfig",
        ])
        .arg(&cluster.kubeconfig)
        .spawn();
    let readyz = || async move {
        match reqwest::get(format!("http://127.0.0.1:{port}/readyz")).await {
            Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
            Err(_) => (0, String::new()),
        }
    };
    let wait_for = |want: u16, containing: &'static str| async move {
        let end = Instant::now() + DEADLINE;
        loop {
            let (status, body) = readyz().await;
            if status == want && body.contains(containing) {
                return body;
            }
            assert!(
                Instant::now() < end,
                "/readyz never answered {want} with {containing:?}; last: {status} {body}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    // Listed and the cluster answers: ready.
    wait_for(200, "ok").await;
    // The cluster fails: not ready, naming the check.
    proxy.set_default(Fault::Status(503));
    create_event(&client, &ns, "second", "Pulled", "Normal").await;
    let body = wait_for(503, "search_cluster").await;
    assert!(!body.contains("initial_list"), "{body}");
    // It recovers: ready again, and the document got through.
    proxy.set_default(Fault::None);
    wait_for(200, "ok").await;
    wait_for_metric(
        port,
        "kwex_sink_documents_total{outcome=\"delivered\"}",
        2.0,
        DEADLINE,
    )
    .await;
    kwex.signal("TERM");
    assert_eq!(kwex.wait(DEADLINE).status.code(), Some(0));
}
