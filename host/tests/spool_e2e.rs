//! The spool end to end: `kwex replay --spool disk` into the real search
//! servers while they are away, and across `kill -9`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step should fail the test

mod util;

use std::collections::BTreeSet;
use std::io::Write;
use std::time::Duration;

use util::fault_proxy::{Fault, FaultProxy};
use util::search::{count, servers};
use util::{Kwex, free_port, wait_for_metric};

const DEADLINE: Duration = Duration::from_secs(120);

/// `n` generated Events as NDJSON, and their ids in input order.
fn generated(n: usize, seed: u64) -> (Vec<u8>, Vec<String>) {
    util::generated_events(n, seed)
}

fn spool_dir(name: &str) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("kwex-spool-{name}-{:08x}", fastrand::u32(..)));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the search servers: run with cargo xtask test"]
async fn a_server_away_while_events_flow_in_gets_every_document_once() {
    let (input, ids) = generated(10_000, 11);
    let ids: BTreeSet<String> = ids.into_iter().collect();
    for (server, url) in servers() {
        let proxy = FaultProxy::start(&url).await;
        proxy.set_default(Fault::Status(503));
        let prefix = format!("t-away-{:08x}", fastrand::u32(..));
        let port = free_port();
        let dir = spool_dir("away");
        let mut kwex = Kwex::new()
            .args([
                "replay",
                "--sink",
                "search",
                "--url",
                &proxy.url(),
                "--spool",
                "disk",
            ])
            .arg("--spool-dir")
            .arg(&dir)
            .args([
                "--max-backoff",
                "500ms",
                "--flush-delay",
                "100ms",
                "--max-buffer-size",
                "500",
            ])
            .args([
                "--metrics-address",
                &format!("127.0.0.1:{port}"),
                "--index",
                &format!("{prefix}-%Y.%m.%d"),
                "-",
            ])
            .spawn();
        kwex.stdin().write_all(&input).unwrap();
        drop(kwex.stdin_close());
        // All 10,000 are in the spool while the server refuses everything.
        wait_for_metric(port, "kwex_spool_appends_total", 10_000.0, DEADLINE).await;
        assert_eq!(count(&url, &format!("{prefix}-*")).await, 0, "{server}");
        proxy.set_default(Fault::None);
        let out = kwex.wait(DEADLINE);
        assert!(out.status.success(), "{server}: {}", out.stderr_text());
        assert_eq!(
            count(&url, &format!("{prefix}-*")).await,
            ids.len() as u64,
            "{server}: all, none twice"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the search servers: run with cargo xtask test"]
async fn kill_9_during_a_replay_loses_nothing_that_reached_the_spool() {
    let (input, ordered) = generated(4_000, 12);
    let ids: BTreeSet<&String> = ordered.iter().collect();
    let mut most_appended = 0usize;
    let url = &servers()[1].1; // noida (Elasticsearch): the lighter of the two for volume
    let prefix = format!("t-kill-{:08x}", fastrand::u32(..));
    let dir = spool_dir("kill");
    let index = format!("{prefix}-%Y.%m.%d");
    let proxy = FaultProxy::start(url).await;
    // A slow server, so that the spool holds documents when kwex is killed.
    proxy.set_default(Fault::Delay(Duration::from_millis(200)));
    for round in 0..3 {
        let port = free_port();
        let mut kwex = Kwex::new()
            .args([
                "replay",
                "--sink",
                "search",
                "--url",
                &proxy.url(),
                "--spool",
                "disk",
                "--max-buffer-size",
                "100",
            ])
            .arg("--spool-dir")
            .arg(&dir)
            .args([
                "--metrics-address",
                &format!("127.0.0.1:{port}"),
                "--index",
                &index,
                "-",
            ])
            .spawn();
        kwex.stdin().write_all(&input).unwrap();
        // Kill it at a different point each round, once documents are in the spool.
        let at = 500 + fastrand::usize(0..2_000);
        wait_for_metric(port, "kwex_spool_appends_total", at as f64, DEADLINE).await;
        most_appended = most_appended.max(at);
        kwex.signal("KILL");
        let _ = kwex.wait(DEADLINE);
        eprintln!("round {round}: killed after {at} appends");
    }
    // A run with no input delivers what the spool kept: at least every
    // document appended before a kill (each round appends a prefix of the input).
    proxy.set_default(Fault::None);
    let out = Kwex::new()
        .args([
            "replay", "--sink", "search", "--url", url, "--spool", "disk",
        ])
        .arg("--spool-dir")
        .arg(&dir)
        .args(["--index", &index, "-"])
        .run();
    assert!(out.status.success(), "{}", out.stderr_text());
    let kept: BTreeSet<&String> = ordered[..most_appended].iter().collect();
    let stored = count(url, &format!("{prefix}-*")).await;
    assert!(
        stored >= kept.len() as u64,
        "{stored} stored, {} were in the spool before a kill",
        kept.len()
    );
    // Then the whole input once more: every id once, none twice.
    let out = Kwex::new()
        .args([
            "replay", "--sink", "search", "--url", url, "--spool", "disk",
        ])
        .arg("--spool-dir")
        .arg(&dir)
        .args(["--index", &index, "-"])
        .stdin(input.clone())
        .run();
    assert!(out.status.success(), "{}", out.stderr_text());
    assert!(
        out.stderr_text().contains("Spool opened"),
        "{}",
        out.stderr_text()
    );
    assert_eq!(
        count(url, &format!("{prefix}-*")).await,
        ids.len() as u64,
        "every id once, none twice"
    );
}
