//! The search test servers (osmem-server as OpenSearch, noida-db as
//! Elasticsearch) started by `cargo xtask test`, and queries against them.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test helper that cannot go on should fail the test

use serde_json::{Value, json};

/// (name, URL) of both servers; fails the test when they are not there.
pub fn servers() -> Vec<(&'static str, String)> {
    ["KWEX_TEST_OPENSEARCH_URL", "KWEX_TEST_ELASTICSEARCH_URL"]
        .into_iter()
        .map(|var| {
            let url = std::env::var(var).unwrap_or_else(|_| {
                panic!("{var} is not set: these tests need the real search servers; run them with `cargo xtask test`")
            });
            (if var.contains("OPENSEARCH") { "opensearch" } else { "elasticsearch" }, url)
        })
        .collect()
}

/// Documents in the indices matching `pattern`, after a refresh.
pub async fn count(url: &str, pattern: &str) -> u64 {
    let http = reqwest::Client::new();
    let _ = http.post(format!("{url}/{pattern}/_refresh")).send().await;
    let v: Value = http
        .get(format!("{url}/{pattern}/_count"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["count"]
        .as_u64()
        .unwrap_or_else(|| panic!("no count for {pattern}: {v}"))
}

/// Every document in the indices matching `pattern` (up to 10,000), after a refresh.
pub async fn search_all(url: &str, pattern: &str) -> Vec<Value> {
    let http = reqwest::Client::new();
    let _ = http.post(format!("{url}/{pattern}/_refresh")).send().await;
    let v: Value = http
        .post(format!("{url}/{pattern}/_search"))
        .json(&json!({"size": 10000, "query": {"match_all": {}}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["hits"]["hits"].as_array().cloned().unwrap_or_default()
}
