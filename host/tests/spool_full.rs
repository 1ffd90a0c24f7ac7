//! A full spool end to end, through the real `kwex` binary: the smallest
//! spool (`--spool-max-bytes` 1 MiB) in front of a search server that refuses
//! every `_bulk` request (503, through the fault proxy), then comes back.
//!
//! - `--spool-full=block`: the source is held back (the replay stops reading
//!   its input, the spool stays within its bound), and once the server is back
//!   every document is delivered, each once.
//! - `--spool-full=drop-oldest`: the input is read to the end, the oldest
//!   documents are dropped, and the drop counter and the log say exactly how
//!   many: delivered + dropped = input.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step should fail the test

mod util;

use std::collections::BTreeSet;
use std::io::Write;
use std::process::ChildStdin;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use util::fault_proxy::{Fault, FaultProxy};
use util::search::{count, search_all, servers};
use util::{Kwex, Running, free_port, log_lines, wait_for_metric};

const DEADLINE: Duration = Duration::from_secs(120);
/// The smallest spool kwex accepts (`--spool-max-bytes`).
const MAX_BYTES: u64 = 1 << 20;
/// Input size: several times what the spool, the channels and the sink's
/// batches in flight hold together (~1,000 documents of ~1 KB fit in 1 MiB).
const EVENTS: usize = 8_000;
/// The drop-oldest warning (logged at most once a second, with a count).
const DROP_WARNING: &str = "the spool is full: dropped the oldest unacknowledged documents; the search cluster is not keeping up (raise --spool-max-bytes, or use --spool-full=block to hold the source back instead)";

/// `n` generated Events as NDJSON, and their distinct ids.
fn generated(n: usize, seed: u64) -> (Vec<u8>, BTreeSet<String>) {
    let (input, ids) = util::generated_events(n, seed);
    let ids: BTreeSet<String> = ids.into_iter().collect();
    assert_eq!(ids.len(), n, "the generator gives every Event its own id");
    (input, ids)
}

fn spool_dir(name: &str) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("kwex-spool-{name}-{:08x}", fastrand::u32(..)));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The sum of the samples of `name` (a prefix: `name{label="x"}` selects one
/// series) on `/metrics`.
async fn metric(port: u16, name: &str) -> f64 {
    let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .expect("/metrics answers")
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// `kwex replay` of stdin through the proxy into a 1 MiB disk spool with this
/// full policy (and `extra` flags); serves `/metrics` on the returned port.
fn start_replay(
    proxy: &FaultProxy,
    prefix: &str,
    full: &str,
    extra: &[&str],
) -> (Running, u16, std::path::PathBuf) {
    let port = free_port();
    let dir = spool_dir(full);
    let kwex = Kwex::new()
        .args(["replay", "--sink", "search", "--url", &proxy.url()])
        .args(["--spool", "disk", "--spool-full", full])
        .args(["--spool-max-bytes", &MAX_BYTES.to_string()])
        .arg("--spool-dir")
        .arg(&dir)
        .args(["--max-backoff", "200ms", "--flush-delay", "100ms"])
        .args(["--metrics-address", &format!("127.0.0.1:{port}")])
        .args(extra)
        .args([
            "--index",
            &format!("{prefix}-%Y.%m.%d"),
            "--no-progress",
            "-",
        ])
        .spawn();
    (kwex, port, dir)
}

/// Kills the kwex process `pid` if the test fails before waiting for it (a
/// kwex blocked on a refusing cluster would otherwise outlive the test).
/// Forget it before `Running::wait`: once reaped, the pid may be reused.
struct KillOnPanic(u32);

impl Drop for KillOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &self.0.to_string()])
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

/// Writes `input` to kwex's stdin on a thread of its own (it blocks while
/// kwex does not read), then closes it.
fn feed(mut stdin: ChildStdin, input: Vec<u8>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    })
}

/// Waits until `name` has not changed for `quiet` (polling every 100 ms);
/// returns its value.
async fn settled(port: u16, name: &str, quiet: Duration) -> f64 {
    let end = Instant::now() + DEADLINE;
    let mut last = metric(port, name).await;
    let mut since = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = metric(port, name).await;
        if now != last {
            (last, since) = (now, Instant::now());
        } else if since.elapsed() >= quiet {
            return now;
        }
        assert!(
            Instant::now() < end,
            "{name} still moving after {DEADLINE:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the search servers: run with cargo xtask test"]
async fn block_holds_the_source_back_until_the_cluster_returns_then_delivers_each_document_once() {
    let (input, ids) = generated(EVENTS, 21);
    for (server, url) in servers() {
        let proxy = FaultProxy::start(&url).await;
        proxy.set_default(Fault::Status(503));
        let prefix = format!("t-full-block-{:08x}", fastrand::u32(..));
        // One chunk (256 records) per channel between stages: with the default
        // 16, the channels and the appends in flight hold ~10,000 documents
        // ahead of the spool, more than this input.
        let (mut kwex, port, dir) =
            start_replay(&proxy, &prefix, "block", &["--channel-capacity", "1"]);
        let guard = KillOnPanic(kwex.pid());
        let writer = feed(kwex.stdin_close().unwrap(), input.clone());

        // The spool fills up (an append is a chunk of up to 256 documents,
        // and waits until all of them fit), then appends stop.
        wait_for_metric(
            port,
            "kwex_spool_depth_bytes",
            (MAX_BYTES / 2) as f64,
            DEADLINE,
        )
        .await;
        let appended = settled(port, "kwex_spool_appends_total", Duration::from_secs(2)).await;
        let depth = metric(port, "kwex_spool_depth_bytes").await;
        let requests = proxy.bulk_requests();
        let read = metric(port, "kwex_source_replay_records_total").await;
        let normalized = metric(port, "kwex_normalize_documents_total").await;
        let in_flight = metric(port, "kwex_sink_requests_in_flight").await;
        eprintln!(
            "{server}: held at {appended} appended, {read} read, {normalized} normalized, {depth} bytes spooled, {in_flight} requests in flight"
        );
        assert!(
            depth <= MAX_BYTES as f64,
            "{server}: {depth} bytes spooled, bound {MAX_BYTES}"
        );
        assert!(
            appended < EVENTS as f64 / 2.0,
            "{server}: {appended} of {EVENTS} appended: the spool did not hold the source back"
        );
        assert_eq!(metric(port, "kwex_spool_acks_total").await, 0.0, "{server}");
        assert_eq!(
            metric(port, "kwex_spool_dropped_documents_total").await,
            0.0,
            "{server}: block never drops"
        );
        // Held back: the replay has not read its input to the end, and the
        // sink keeps retrying (every request refused).
        assert!(read < EVENTS as f64, "{server}: all {EVENTS} records read");
        assert!(!writer.is_finished(), "{server}: kwex read all its input");
        wait_for_retries(&proxy, requests + 1).await;
        assert_eq!(count(&url, &format!("{prefix}-*")).await, 0, "{server}");

        // The cluster is back: everything goes through, the replay ends.
        proxy.set_default(Fault::None);
        writer.join().unwrap();
        std::mem::forget(guard); // `wait` kills kwex itself past the deadline
        let out = kwex.wait(DEADLINE);
        assert!(out.status.success(), "{server}: {}", out.stderr_text());
        let _ = std::fs::remove_dir_all(&dir);
        let summary = util::summary_of(&out.stderr_text());
        assert_eq!(summary["documents"], EVENTS, "{server}");
        assert_eq!(
            count(&url, &format!("{prefix}-*")).await,
            EVENTS as u64,
            "{server}: every document, none twice"
        );
        let stored: Vec<String> = search_all(&url, &format!("{prefix}-*"))
            .await
            .iter()
            .map(|h| h["_id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(stored.len(), EVENTS, "{server}");
        let stored: BTreeSet<String> = stored.into_iter().collect();
        assert!(stored == ids, "{server}: the stored ids are the input's");
    }
}

/// Waits until the proxy has seen `n` `_bulk` requests.
async fn wait_for_retries(proxy: &FaultProxy, n: usize) {
    let end = Instant::now() + DEADLINE;
    while proxy.bulk_requests() < n {
        assert!(Instant::now() < end, "no _bulk retry within {DEADLINE:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the search servers: run with cargo xtask test"]
async fn drop_oldest_counts_and_logs_every_drop_and_delivered_plus_dropped_is_the_input() {
    let (input, ids) = generated(EVENTS, 22);
    for (server, url) in servers() {
        let proxy = FaultProxy::start(&url).await;
        proxy.set_default(Fault::Status(503));
        let prefix = format!("t-full-drop-{:08x}", fastrand::u32(..));
        let (mut kwex, port, dir) = start_replay(&proxy, &prefix, "drop-oldest", &[]);
        let guard = KillOnPanic(kwex.pid());
        let writer = feed(kwex.stdin_close().unwrap(), input.clone());

        // Nothing holds the source back: the whole input is read and appended,
        // the oldest documents making room for the newer ones.
        wait_for_metric(port, "kwex_spool_appends_total", EVENTS as f64, DEADLINE).await;
        writer.join().unwrap();
        // Drops happen only when appending: with every append done, they are final.
        let dropped = metric(port, "kwex_spool_dropped_documents_total{reason=\"full\"}").await;
        let depth = metric(port, "kwex_spool_depth_documents").await;
        let depth_bytes = metric(port, "kwex_spool_depth_bytes").await;
        // What the bound applies to: the spool's own storage. Documents the
        // sink took before their segment was dropped are still in the depth.
        let stored = metric(port, "kwex_spool_stored_bytes").await;
        assert!(dropped > 0.0, "{server}: nothing dropped");
        // What is wrong is collected, to report every broken promise at once.
        let mut wrong = Vec::new();
        if stored > MAX_BYTES as f64 {
            wrong.push(format!(
                "{stored} bytes stored, over the bound of {MAX_BYTES}"
            ));
        }
        assert_eq!(metric(port, "kwex_spool_acks_total").await, 0.0, "{server}");
        assert_eq!(
            depth + dropped,
            EVENTS as f64,
            "{server}: every appended document is either still spooled or counted as dropped"
        );
        assert_eq!(count(&url, &format!("{prefix}-*")).await, 0, "{server}");

        proxy.set_default(Fault::None);
        std::mem::forget(guard); // `wait` kills kwex itself past the deadline
        let out = kwex.wait(DEADLINE);
        assert!(out.status.success(), "{server}: {}", out.stderr_text());
        let _ = std::fs::remove_dir_all(&dir);

        let stored: BTreeSet<String> = search_all(&url, &format!("{prefix}-*"))
            .await
            .iter()
            .map(|h| h["_id"].as_str().unwrap().to_owned())
            .collect();
        assert!(stored.is_subset(&ids), "{server}: only input ids stored");
        let delivered = stored.len() as f64;
        assert_eq!(
            count(&url, &format!("{prefix}-*")).await as f64,
            delivered,
            "{server}: none twice"
        );
        // The log says how many, in all (one warning a second at most, each
        // with the count since the previous one).
        let logged: f64 = log_lines(&out.stderr_text())
            .iter()
            .filter(|l| l["message"] == DROP_WARNING)
            .map(|l| l["dropped"].as_f64().expect("a count in the warning"))
            .sum();
        eprintln!(
            "{server}: {dropped} dropped (counter), {logged} (warnings), {delivered} delivered, {depth} documents ({depth_bytes} bytes) spooled at the end of the input"
        );
        if logged != dropped {
            wrong.push(format!(
                "the warnings add up to {logged}, the counter to {dropped}"
            ));
        }
        if delivered + dropped != EVENTS as f64 {
            wrong.push(format!(
                "delivered {delivered} + dropped {dropped} = {}, not the input's {EVENTS}",
                delivered + dropped
            ));
        }
        assert!(wrong.is_empty(), "{server}: {}", wrong.join("; "));
    }
}
