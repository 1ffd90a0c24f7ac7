//! Hot reload of the filter chain: swaps under load lose and duplicate
//! nothing, a ConfigMap update (Kubernetes' `..data` symlink swap) is
//! picked up, and a broken update leaves the old chain running with a
//! metric and a log line naming the file.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step should fail the test

mod util;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kwex::document::Record;
use kwex::filter::{
    Chain, ChainSource, Engine, FilterSpec, LiveChain, Metrics, Outcome, Reloader, Settings,
    Snapshot,
};
use kwex::telemetry::metrics::read;
use prometheus::Registry;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use util::guests::guest;

fn engine() -> Engine {
    let mut s = Settings {
        max_instances: 64,
        ..Settings::default()
    };
    // Wall-clock deadlines on a shared, loaded test machine: generous.
    s.limits.deadline = Duration::from_millis(500);
    Engine::new(s).unwrap()
}

fn record(i: usize) -> Record {
    let doc = json!({"type": "Warning", "reason": "BackOff", "n": i, "metadata": {"uid": format!("u{i}")}});
    Record {
        id: format!("u{i}:1"),
        index: "kwex-events".into(),
        body: Bytes::from(doc.to_string()),
    }
}

/// Waits for `condition`, failing the test after `limit`.
fn wait_for(what: &str, limit: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn swapping_the_chain_under_load_loses_and_duplicates_no_document() {
    const DOCUMENTS: usize = 20_000;
    const SWAPS: usize = 20;
    let engine = engine();
    let metrics = Metrics::register(&Registry::new()).unwrap();
    let chain = |value: &str| {
        let spec = FilterSpec::new(&engine, guest("replace"))
            .with_config(json!({"field": "generation", "value": value}));
        Chain::from_specs(&engine, vec![spec], &metrics).unwrap()
    };
    let (a, b) = (chain("a"), chain("b"));
    let live = LiveChain::new(a.clone());
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let outputs = Arc::new(Mutex::new(Vec::with_capacity(DOCUMENTS)));

    let workers: Vec<_> = (0..2)
        .map(|_| {
            let (live, next, done, outputs) =
                (live.clone(), next.clone(), done.clone(), outputs.clone());
            std::thread::spawn(move || {
                let mut worker = live.worker();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= DOCUMENTS {
                        break;
                    }
                    match worker.apply(record(i)) {
                        Outcome::Keep(r) => outputs.lock().unwrap().push(r),
                        other => panic!("document {i}: {other:?}"),
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    // Swap every DOCUMENTS / (SWAPS + 1) documents, while the workers run.
    for swap in 1..=SWAPS {
        let at = swap * DOCUMENTS / (SWAPS + 1);
        wait_for("the workers to progress", Duration::from_secs(60), || {
            done.load(Ordering::Relaxed) >= at
        });
        live.swap(if swap % 2 == 1 { b.clone() } else { a.clone() });
    }
    for w in workers {
        w.join().unwrap();
    }
    assert_eq!(live.generation(), SWAPS as u64);
    let outputs = outputs.lock().unwrap();
    assert_eq!(outputs.len(), DOCUMENTS, "documents lost or duplicated");
    let ids: HashSet<&str> = outputs.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids.len(), DOCUMENTS, "a document came out twice");
    let mut by_generation = std::collections::BTreeMap::<String, usize>::new();
    for r in outputs.iter() {
        let doc: Value = serde_json::from_slice(&r.body).unwrap();
        *by_generation
            .entry(doc["generation"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    // Both chains ran: the swaps took effect in the middle of the stream.
    assert!(
        by_generation["a"] > 0 && by_generation["b"] > 0,
        "{by_generation:?}"
    );
}

/// A directory laid out as kubelet mounts a ConfigMap: the files live in a
/// timestamped directory, `..data` links to it, and each key is a link
/// `name -> ..data/name`.
struct ConfigMapDir {
    root: PathBuf,
    version: usize,
}

impl ConfigMapDir {
    fn new(name: &str) -> Self {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("reload-{name}"));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        Self { root, version: 0 }
    }

    /// Publishes a new version with `files` (name, contents), as kubelet's
    /// atomic writer does: new directory, `..data` swapped by a rename,
    /// then the user-visible links.
    fn publish(&mut self, files: &[(&str, Vec<u8>)]) {
        self.version += 1;
        let data = format!("..2026_11_25_{:02}", self.version);
        let dir = self.root.join(&data);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, bytes) in files {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
        let tmp = self.root.join("..data_tmp");
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(&data, &tmp).unwrap();
        std::fs::rename(&tmp, self.root.join("..data")).unwrap();
        for (name, _) in files {
            let link = self.root.join(name);
            if std::fs::symlink_metadata(&link).is_err() {
                std::os::unix::fs::symlink(format!("..data/{name}"), &link).unwrap();
            }
        }
    }
}

/// Log lines of every thread, for the reload thread's messages.
fn capture_logs() -> Arc<Mutex<Vec<u8>>> {
    static LOG: std::sync::OnceLock<Arc<Mutex<Vec<u8>>>> = std::sync::OnceLock::new();
    LOG.get_or_init(|| {
        let log = Arc::new(Mutex::new(Vec::new()));
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || SharedLog(writer.clone()))
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
        log
    })
    .clone()
}

struct SharedLog(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for SharedLog {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_configmap_update_is_reloaded_and_a_broken_one_keeps_the_old_chain() {
    let log = capture_logs();
    let engine = engine();
    let registry = Registry::new();
    let metrics = Metrics::register(&registry).unwrap();
    let keep = std::fs::read(guest("keep_warnings")).unwrap();
    let counter = std::fs::read(guest("counter")).unwrap();

    let mut cm = ConfigMapDir::new("configmap");
    cm.publish(&[("10-keep.wasm", keep.clone())]);
    let source = ChainSource::at(&cm.root);
    let baseline = Snapshot::take(&source);
    let live = LiveChain::new(Chain::load(&engine, &cm.root, &metrics).unwrap());
    let names =
        |live: &LiveChain| -> Vec<String> { live.current().names().map(str::to_owned).collect() };
    assert_eq!(names(&live), ["10-keep.wasm"]);
    // A worker that runs throughout, moving to each new chain.
    let mut worker = live.worker();
    assert!(matches!(worker.apply(record(0)), Outcome::Keep(_)));

    // The update lands after the chain was read but before the reload
    // thread looks: the baseline taken before loading must catch it.
    cm.publish(&[
        ("10-keep.wasm", keep.clone()),
        ("20-counter.wasm", counter.clone()),
    ]);
    let stop = CancellationToken::new();
    let _stop = stop.clone().drop_guard();
    let thread = Reloader {
        engine: engine.clone(),
        source,
        live: live.clone(),
        metrics: metrics.clone(),
        interval: Duration::from_millis(50),
        baseline,
    }
    .spawn(stop.clone())
    .unwrap();

    wait_for("the new chain", Duration::from_secs(30), || {
        live.generation() == 1
    });
    assert_eq!(names(&live), ["10-keep.wasm", "20-counter.wasm"]);
    let Outcome::Keep(out) = worker.apply(record(1)) else {
        panic!("dropped")
    };
    let doc: Value = serde_json::from_slice(&out.body).unwrap();
    assert_eq!(doc["seen"], 1, "the worker did not move to the new chain");
    let reloads = |result: &str| {
        read(
            &registry,
            "kwex_filter_reloads_total",
            &[("result", result)],
        )
        .unwrap_or(0.0)
    };
    assert_eq!(reloads("success"), 1.0);
    assert_eq!(read(&registry, "kwex_filter_chain_filters", &[]), Some(2.0));

    // A broken file: refused, the old chain keeps running.
    cm.publish(&[
        ("10-keep.wasm", keep),
        ("20-counter.wasm", counter),
        ("30-broken.wasm", b"this is not wasm".to_vec()),
    ]);
    wait_for("the failed reload", Duration::from_secs(30), || {
        reloads("failure") == 1.0
    });
    assert_eq!(live.generation(), 1);
    assert_eq!(names(&live), ["10-keep.wasm", "20-counter.wasm"]);
    let Outcome::Keep(out) = worker.apply(record(2)) else {
        panic!("dropped")
    };
    let doc: Value = serde_json::from_slice(&out.body).unwrap();
    assert_eq!(doc["seen"], 2);
    let text = String::from_utf8(log.lock().unwrap().clone()).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("failed to load; the previous chain keeps running"))
        .unwrap_or_else(|| panic!("no failure line in {text}"));
    assert!(line.contains("30-broken.wasm"), "{line}");
    assert!(line.contains("is not a WebAssembly module"), "{line}");

    stop.cancel();
    thread.join().unwrap();
}
