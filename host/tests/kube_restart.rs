//! `kwex run` while the API server is killed and restarted.
//!
//! A test binary of its own: cargo runs test binaries one after another, so
//! restarting the shared API server here cannot disturb the tests in
//! `kube.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step should fail the test

mod util;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use util::Kwex;
use util::kube::{cluster, create_event};

const DEADLINE: Duration = Duration::from_secs(60);

#[tokio::test]
#[ignore = "needs the test kube-apiserver: run with cargo xtask test"]
async fn kwex_resumes_after_the_api_server_restarts_and_misses_nothing() {
    let cluster = cluster();
    let client = cluster.client().await;
    let ns = cluster.namespace(&client, "apiserver-restart").await;
    create_event(&client, &ns, "before", "Pulled", "Normal").await;
    let mut kwex = Kwex::new()
        .args([
            "run",
            "--sink",
            "stdout",
            "--spool",
            "memory",
            "--metrics-address",
            "127.0.0.1:0",
            "--namespace",
            &ns,
            "--kubeconfig",
        ])
        .arg(&cluster.kubeconfig)
        .spawn();
    assert_eq!(kwex.read_documents(1, DEADLINE).len(), 1);

    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scripts/testenv/kube-apiserver.sh");
    let status = Command::new("bash")
        .arg(&script)
        .arg("restart-apiserver")
        .arg(&cluster.dir)
        .env("KWEX_KAPI_STOP_TIMEOUT", "1")
        .status()
        .expect("restart the API server");
    assert!(status.success());

    // kwex is still backing off from the outage: this Event reaches it through
    // the resumed watch (or a re-list), not through a live connection.
    let client = cluster.client().await;
    create_event(&client, &ns, "while-reconnecting", "Pulled", "Normal").await;
    assert!(
        kwex.wait_for_log(
            "Kubernetes API request failed; retrying from the last resourceVersion seen.",
            DEADLINE
        )
        .is_some(),
        "kwex noticed the outage"
    );
    let docs = kwex.read_documents(2, DEADLINE);
    create_event(&client, &ns, "after", "Pulled", "Normal").await;
    let docs = if docs.len() >= 3 {
        docs
    } else {
        kwex.read_documents(3, DEADLINE)
    };
    kwex.signal("TERM");
    let out = kwex.wait(DEADLINE);
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr_text());
    let names: BTreeSet<String> = docs
        .iter()
        .map(|d| d["metadata"]["name"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        ["before", "while-reconnecting", "after"]
            .iter()
            .all(|n| names.contains(*n)),
        "{names:?}\n{}",
        out.stderr_text()
    );
}
