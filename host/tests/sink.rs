//! The OpenSearch/Elasticsearch sink against two real servers (osmem-server
//! answering as OpenSearch 3.8, noida-db as Elasticsearch 8.15), started by
//! `cargo xtask test`. Every scenario runs against both. Faults that a real
//! server cannot produce on demand come from `util::fault_proxy`, which
//! forwards to the real server and rewrites its real answers.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step should fail the test

mod util;

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};
use util::fault_proxy::{Fault, FaultProxy};
use util::search::{count, search_all, servers};
use util::{Kwex, examples};

const DEADLINE: Duration = Duration::from_secs(60);

/// A unique index prefix, so tests sharing a server do not see each other's documents.
fn prefix(test: &str) -> String {
    format!("t-{test}-{:08x}", fastrand::u32(..))
}

fn replay_to(url: &str, prefix: &str, input: &std::path::Path, extra: &[&str]) -> util::Output {
    Kwex::new()
        .args([
            "replay",
            "--sink",
            "search",
            "--url",
            url,
            "--flush-delay",
            "100ms",
        ])
        .args([
            "--index",
            &format!("{prefix}-%Y.%m.%d"),
            "--dead-letter-index",
            &format!("{prefix}-dead"),
        ])
        .args(extra)
        .arg(input)
        .run()
}

/// Distinct `<uid>:<resourceVersion>` of an example file.
fn example_ids(file: &str) -> BTreeSet<String> {
    let out = Kwex::new()
        .args(["replay", "--format", "bulk"])
        .arg(examples().join(file))
        .run();
    util::bulk_ids(&out.stdout_text()).into_iter().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the search servers: run with cargo xtask test"]
async fn documents_arrive_with_their_ids_and_indices_and_a_second_replay_adds_nothing() {
    let ids = example_ids("core-v1.json");
    for (server, url) in servers() {
        let prefix = prefix("ids");
        let out = replay_to(&url, &prefix, &examples().join("core-v1.json"), &[]);
        assert!(out.status.success(), "{server}: {}", out.stderr_text());
        assert_eq!(
            count(&url, &format!("{prefix}-*")).await,
            ids.len() as u64,
            "{server}"
        );
        let hits = search_all(&url, &format!("{prefix}-*")).await;
        let stored: BTreeSet<String> = hits
            .iter()
            .map(|h| h["_id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(stored, ids, "{server}: ids are <uid>:<resourceVersion>");
        for hit in &hits {
            let first_seen = hit["_source"]["firstTimestamp"].as_str().unwrap();
            let day = first_seen[..10].replace('-', ".");
            assert_eq!(
                hit["_index"],
                format!("{prefix}-{day}"),
                "{server}: index from the first-seen day"
            );
        }

        // The same input again: every document is a 409 duplicate, none is added.
        let again = replay_to(&url, &prefix, &examples().join("core-v1.json"), &[]);
        assert!(again.status.success(), "{server}: {}", again.stderr_text());
        assert_eq!(
            count(&url, &format!("{prefix}-*")).await,
            ids.len() as u64,
            "{server}: no duplicates"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the search servers: run with cargo xtask test"]
async fn a_mapping_error_dead_letters_that_item_alone() {
    for (server, url) in servers() {
        let prefix = prefix("mapping");
        // One Event whose label cannot be stored in the field the index maps it to.
        let http = reqwest::Client::new();
        let mapping = json!({"mappings": {"properties": {"metadata": {"properties": {"labels": {"properties": {
            "build": {"type": "long"}}}}}}}});
        let created = http
            .put(format!("{url}/{prefix}-2026.11.20"))
            .json(&mapping)
            .send()
            .await
            .unwrap();
        assert!(
            created.status().is_success(),
            "{server}: {}",
            created.text().await.unwrap()
        );
        let input =
            std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{prefix}.ndjson"));
        let events: Vec<String> = (0..5)
            .map(|i| {
                let build = if i == 2 { json!("not-a-number") } else { json!(i.to_string()) };
                json!({"apiVersion": "v1", "kind": "Event", "reason": "Pulled", "message": format!("event {i}"),
                       "metadata": {"uid": format!("uid-{i}"), "resourceVersion": "1", "labels": {"build": build}},
                       "firstTimestamp": "2026-11-20T10:00:00Z"})
                .to_string()
            })
            .collect();
        std::fs::write(&input, events.join("\n")).unwrap();
        let out = replay_to(&url, &prefix, &input, &[]);
        assert!(out.status.success(), "{server}: {}", out.stderr_text());
        assert_eq!(
            count(&url, &format!("{prefix}-2026.11.20")).await,
            4,
            "{server}: the rest of the batch is stored"
        );
        let dead = search_all(&url, &format!("{prefix}-dead")).await;
        assert_eq!(dead.len(), 1, "{server}: {dead:?}");
        let letter = &dead[0]["_source"];
        assert_eq!(dead[0]["_id"], "uid-2:1");
        assert_eq!(letter["status"], 400, "{server}");
        assert!(
            letter["error_type"]
                .as_str()
                .unwrap()
                .contains("parsing_exception"),
            "{server}: {letter}"
        );
        assert!(
            letter["document"]
                .as_str()
                .unwrap()
                .contains("not-a-number"),
            "{server}: the original is kept"
        );
        assert_eq!(letter["index"], format!("{prefix}-2026.11.20"));
        let logged = out.log_lines().iter().any(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("Document refused by the cluster"))
                && l["id"] == "uid-2:1"
        });
        assert!(logged, "{server}: {}", out.stderr_text());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the search servers: run with cargo xtask test"]
async fn retried_items_and_requests_are_delivered_exactly_once_within_the_concurrency_limit() {
    let ids = example_ids("core-v1.json");
    for (server, url) in servers() {
        let proxy = FaultProxy::start(&url).await;
        // Faults in turn: a 500, a 429, a dropped connection, a 413 (split), then
        // every third item refused with 429 and every seventh with 503 (the
        // server stored them: the retry is answered 409, a duplicate).
        proxy.push(Fault::Status(500));
        proxy.push(Fault::Status(429));
        proxy.push(Fault::DropConnection);
        proxy.push(Fault::Status(413));
        proxy.push(Fault::ItemStatus {
            every: 3,
            status: 429,
        });
        proxy.push(Fault::ItemStatus {
            every: 7,
            status: 503,
        });
        proxy.push(Fault::Delay(Duration::from_millis(300)));
        let prefix = prefix("faults");
        let out = replay_to(
            &proxy.url(),
            &prefix,
            &examples().join("core-v1.json"),
            &[
                "--max-buffer-size",
                "20",
                "--max-concurrency",
                "3",
                "--max-backoff",
                "1s",
            ],
        );
        assert!(out.status.success(), "{server}: {}", out.stderr_text());
        assert_eq!(
            count(&url, &format!("{prefix}-*")).await,
            ids.len() as u64,
            "{server}: all, once"
        );
        let stored: BTreeSet<String> = search_all(&url, &format!("{prefix}-*"))
            .await
            .iter()
            .map(|h| h["_id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(stored, ids, "{server}");
        assert!(
            proxy.items_rewritten() > 0,
            "{server}: the item faults happened"
        );
        assert!(
            proxy.max_in_flight() <= 3,
            "{server}: {} requests in flight",
            proxy.max_in_flight()
        );
        assert_eq!(
            count(&url, &format!("{prefix}-dead*")).await,
            0,
            "{server}: retried documents are never dead-lettered"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the search servers: run with cargo xtask test"]
async fn concurrency_never_exceeds_the_limit_under_a_slow_server() {
    for (server, url) in servers() {
        let proxy = FaultProxy::start(&url).await;
        proxy.set_default(Fault::Delay(Duration::from_millis(150)));
        let prefix = prefix("slow");
        let out = replay_to(
            &proxy.url(),
            &prefix,
            &examples().join("core-v1.json"),
            &["--max-buffer-size", "5", "--max-concurrency", "4"],
        );
        assert!(out.status.success(), "{server}: {}", out.stderr_text());
        assert!(
            proxy.bulk_requests() >= 30,
            "{server}: {}",
            proxy.bulk_requests()
        );
        assert_eq!(
            proxy.max_in_flight(),
            4,
            "{server}: the limit is reached and never passed"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the search servers: run with cargo xtask test"]
async fn a_server_down_at_start_gets_everything_once_it_is_up() {
    for (server, url) in servers() {
        let proxy = FaultProxy::start(&url).await;
        // Down: every bulk request is answered 503 until the fault is lifted.
        proxy.set_default(Fault::Status(503));
        let prefix = prefix("down");
        let (input, records) = util::ndjson_example("events-k8s-io-v1.ndjson");
        let lines = records.len() as u64;
        let mut kwex = Kwex::new()
            .args([
                "replay",
                "--sink",
                "search",
                "--url",
                &proxy.url(),
                "--flush-delay",
                "100ms",
                "--max-backoff",
                "500ms",
            ])
            .args(["--index", &format!("{prefix}-%Y.%m.%d"), "-"])
            .spawn();
        {
            use std::io::Write;
            kwex.stdin().write_all(&input).unwrap();
        }
        assert!(
            kwex.wait_for_log(
                "Bulk request incomplete; retrying the documents not yet stored.",
                DEADLINE
            )
            .is_some(),
            "{server}"
        );
        assert_eq!(
            count(&url, &format!("{prefix}-*")).await,
            0,
            "{server}: nothing got through while down"
        );
        proxy.set_default(Fault::None);
        drop(kwex.stdin_close());
        let out = kwex.wait(DEADLINE);
        assert!(out.status.success(), "{server}: {}", out.stderr_text());
        assert_eq!(count(&url, &format!("{prefix}-*")).await, lines, "{server}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the search servers: run with cargo xtask test"]
async fn sigterm_delivers_the_half_full_batch_before_exit() {
    for (server, url) in servers() {
        let prefix = prefix("drain");
        let port = util::free_port();
        let mut kwex = Kwex::new()
            .args([
                "replay",
                "--sink",
                "search",
                "--url",
                &url,
                "--flush-delay",
                "1h",
                "--max-buffer-size",
                "1000",
            ])
            .args(["--metrics-address", &format!("127.0.0.1:{port}")])
            .args(["--index", &format!("{prefix}-%Y.%m.%d"), "-"])
            .spawn();
        let (_, records) = util::ndjson_example("events-k8s-io-v1.ndjson");
        let five = &records[..5];
        {
            use std::io::Write;
            for line in five {
                kwex.stdin().write_all(line).unwrap();
                kwex.stdin().write_all(b"\n").unwrap();
            }
            kwex.stdin().flush().unwrap();
        }
        // Wait until the five are in the batcher (normalized), then stop kwex.
        util::wait_for_metric(port, "kwex_normalize_documents_total", 5.0, DEADLINE).await;
        assert_eq!(
            count(&url, &format!("{prefix}-*")).await,
            0,
            "{server}: the batch is held (flush delay 1h)"
        );
        kwex.signal("TERM");
        let out = kwex.wait(DEADLINE);
        assert_eq!(
            out.status.code(),
            Some(130),
            "{server}: {}",
            out.stderr_text()
        );
        assert_eq!(
            count(&url, &format!("{prefix}-*")).await,
            5,
            "{server}: delivered before exit"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the search servers: run with cargo xtask test"]
async fn the_index_template_is_installed_with_flat_label_fields() {
    for (server, url) in servers() {
        let prefix = prefix("tmpl");
        let name = format!("{prefix}-template");
        let out = replay_to(
            &url,
            &prefix,
            &examples().join("core-v1.json"),
            &["--install-template", "--template-name", &name],
        );
        assert!(out.status.success(), "{server}: {}", out.stderr_text());
        let v: Value = reqwest::get(format!("{url}/_index_template/{name}"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let template = &v["index_templates"][0]["index_template"];
        assert_eq!(
            template["index_patterns"][0],
            format!("{prefix}-*"),
            "{server}: {v}"
        );
        let labels = &template["template"]["mappings"]["properties"]["metadata"]["properties"]["labels"]
            ["type"];
        let expected = if server == "opensearch" {
            "flat_object"
        } else {
            "flattened"
        };
        assert_eq!(labels, expected, "{server}");
        assert_eq!(
            count(&url, &format!("{prefix}-*")).await,
            example_ids("core-v1.json").len() as u64,
            "{server}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the search servers: run with cargo xtask test"]
async fn bad_urls_and_unusable_tls_fail_with_the_cause() {
    let out = Kwex::new()
        .args(["replay", "--sink", "search", "--url", "not a url", "-"])
        .run();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        out.stderr_text()
            .contains("--url: \"not a url\" is not a URL"),
        "{}",
        out.stderr_text()
    );

    let out = Kwex::new().args(["replay", "--sink", "search", "-"]).run();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        out.stderr_text().contains("--url: is missing"),
        "{}",
        out.stderr_text()
    );

    // TLS to a server that speaks plain HTTP: the handshake fails, and kwex says so at start.
    for (server, url) in servers() {
        let https = url.replace("http://", "https://");
        let out = Kwex::new()
            .args(["replay", "--sink", "search", "--url", &https, "-"])
            .run();
        assert_eq!(
            out.status.code(),
            Some(1),
            "{server}: {}",
            out.stderr_text()
        );
        assert!(
            out.stderr_text().contains("TLS with"),
            "{server}: {}",
            out.stderr_text()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the search servers: run with cargo xtask test"]
async fn gzip_failover_and_latest_ids_work_on_both_servers() {
    for (server, url) in servers() {
        let prefix = prefix("latest");
        // The first URL refuses connections; the request moves on to the second.
        let dead = format!("http://127.0.0.1:{}", util::free_port());
        let urls = format!("{dead},{url}");
        let out = replay_to(
            &urls,
            &prefix,
            &examples().join("core-v1.json"),
            &["--gzip", "--id-mode", "latest"],
        );
        assert!(out.status.success(), "{server}: {}", out.stderr_text());
        let uids: BTreeSet<String> = example_ids("core-v1.json")
            .iter()
            .map(|id| id.split(':').next().unwrap().to_owned())
            .collect();
        assert_eq!(
            count(&url, &format!("{prefix}-*")).await,
            uids.len() as u64,
            "{server}: one document per Event"
        );
        let hits = search_all(&url, &format!("{prefix}-*")).await;
        let stored: BTreeSet<String> = hits
            .iter()
            .map(|h| h["_id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(stored, uids, "{server}: latest mode keys by uid");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the search servers: run with cargo xtask test"]
async fn outcomes_are_counted_in_the_metrics() {
    for (server, url) in servers() {
        let proxy = FaultProxy::start(&url).await;
        proxy.push(Fault::ItemStatus {
            every: 2,
            status: 429,
        });
        let prefix = prefix("metrics");
        let port = util::free_port();
        let (input, records) = util::ndjson_example("events-k8s-io-v1.ndjson");
        let lines = records.len() as f64;
        let mut kwex = Kwex::new()
            .args([
                "replay",
                "--sink",
                "search",
                "--url",
                &proxy.url(),
                "--flush-delay",
                "100ms",
            ])
            .args([
                "--max-backoff",
                "500ms",
                "--metrics-address",
                &format!("127.0.0.1:{port}"),
            ])
            .args(["--index", &format!("{prefix}-%Y.%m.%d"), "-"])
            .spawn();
        {
            use std::io::Write;
            kwex.stdin().write_all(&input).unwrap();
        }
        // Every document ends delivered or duplicate (a rewritten 429 was stored, its retry is a 409).
        util::wait_for_metric(
            port,
            "kwex_sink_documents_total{outcome=\"delivered\"}",
            1.0,
            DEADLINE,
        )
        .await;
        let total = |text: &str, outcome: &str| -> f64 {
            text.lines()
                .find(|l| {
                    l.starts_with(&format!(
                        "kwex_sink_documents_total{{outcome=\"{outcome}\"}}"
                    ))
                })
                .and_then(|l| l.rsplit(' ').next()?.parse().ok())
                .unwrap_or(0.0)
        };
        let deadline = std::time::Instant::now() + DEADLINE;
        let text = loop {
            let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            if total(&text, "delivered") + total(&text, "duplicate") >= lines
                || std::time::Instant::now() > deadline
            {
                break text;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(
            total(&text, "delivered") + total(&text, "duplicate"),
            lines,
            "{server}: {text}"
        );
        assert!(
            total(&text, "duplicate") > 0.0,
            "{server}: retried items were stored the first time"
        );
        assert!(total(&text, "retried") > 0.0, "{server}");
        assert_eq!(total(&text, "dead_lettered"), 0.0, "{server}");
        drop(kwex.stdin_close());
        assert!(kwex.wait(DEADLINE).status.success());
        assert_eq!(
            count(&url, &format!("{prefix}-*")).await,
            lines as u64,
            "{server}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the search servers: run with cargo xtask test"]
async fn a_retention_policy_the_cluster_cannot_store_stops_kwex_with_the_reason() {
    // Neither test server implements ISM/ILM (docs/decisions/2026-11-25-search-test-servers.md);
    // a real cluster without the plugin answers the same way.
    for (server, url) in servers() {
        let prefix = prefix("retention");
        let out = replay_to(
            &url,
            &prefix,
            &examples().join("core-v1.json"),
            &[
                "--install-template",
                "--template-name",
                &prefix,
                "--retention-days",
                "7",
            ],
        );
        assert_eq!(
            out.status.code(),
            Some(1),
            "{server}: {}",
            out.stderr_text()
        );
        let expected = if server == "opensearch" {
            "ISM policy: HTTP"
        } else {
            "ILM policy: HTTP"
        };
        assert!(
            out.stderr_text()
                .contains("cannot install the index template"),
            "{server}: {}",
            out.stderr_text()
        );
        assert!(
            out.stderr_text().contains(expected),
            "{server}: {}",
            out.stderr_text()
        );
        assert_eq!(
            count(&url, &format!("{prefix}-*")).await,
            0,
            "{server}: nothing exported without the policy"
        );
    }
}
