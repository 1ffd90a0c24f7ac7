//! The filter chain, Wasm against native (issue 9): each Rust example filter
//! of `filters/` as a core module run by `kwex::filter` (one `ChainWorker`
//! whose instance is reused from call to call: the hot path of `kwex run`),
//! and the same source compiled natively, called as the SDK's glue calls it
//! inside an instance (UTF-8 check, `Document::parse`, `Filter::filter`),
//! both with the filter's `testdata/config.json`. Then the chain
//! warnings-only → redact → route, both ways. Input: the Documents of the
//! 160 Events of `examples/events/core-v1.json`. Before measuring, every
//! verdict of both sides is compared. Figures: BENCHMARKS.md.
//!
//! The `.wasm` files are built first by `filters/build.sh` (as host/tests do
//! with the test guests; a no-op when nothing changed), so that both sides
//! run the same source.
//!
//! The filter crates are `cdylib` only (`filters/*/Cargo.toml`): a path
//! dependency on one resolves but has nothing to link (`use warnings_only`
//! fails to resolve). So their `src/lib.rs` are compiled here as modules,
//! with `kwex-guest`, `serde` and `regex` as dev-dependencies.
//!
//! After a measured run (not in `cargo test`'s one-shot mode) it prints the
//! ratios as a table.
#![allow(missing_docs)] // criterion's macros generate undocumented functions
#![allow(clippy::expect_used)] // inputs are files of the repository; a failure must stop the run

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use bytes::Bytes;
use chrono::Utc;
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, Throughput};
use kwex::document::{IdMode, IndexPattern, Normalizer, Record, WatchAction};
use kwex::filter::{Chain, Engine, FilterSpec, Metrics, Outcome, Settings, Verdict};
use kwex_guest::{Document, Filter};
use serde_json::Value;

// The example filters, compiled natively. Their unit tests come along
// (cargo passes `--cfg test` to benches) but `#[test]` functions are only
// compiled under `--test`: what is left of those modules is unused.
#[allow(dead_code, unused_imports)]
#[path = "../../filters/burst-limit/src/lib.rs"]
mod burst_limit;
#[allow(dead_code, unused_imports)]
#[path = "../../filters/dedot/src/lib.rs"]
mod dedot;
#[allow(dead_code, unused_imports)]
#[path = "../../filters/enrich/src/lib.rs"]
mod enrich;
#[allow(dead_code, unused_imports)]
#[path = "../../filters/redact/src/lib.rs"]
mod redact;
#[allow(dead_code, unused_imports)]
#[path = "../../filters/route/src/lib.rs"]
mod route;
#[allow(dead_code, unused_imports)]
#[path = "../../filters/warnings-only/src/lib.rs"]
mod warnings_only;

/// The filters measured one by one, as named in `filters/` and `filters/out/`.
const FILTERS: [&str; 6] = [
    "warnings-only",
    "redact",
    "enrich",
    "route",
    "burst-limit",
    "dedot",
];
/// The chain of three; the other three filters are loaded as a chain too,
/// and each filter is measured alone through `ChainWorker::call` at its
/// position (the same per-call path as `apply`; a module is compiled once).
const CHAIN: [&str; 3] = ["warnings-only", "redact", "route"];
const OTHERS: [&str; 3] = ["enrich", "burst-limit", "dedot"];
const CHAIN_ID: &str = "warnings-only+redact+route";
/// The criterion group of every benchmark here.
const GROUP: &str = "filters";

fn filters_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../filters")
}

/// Runs `filters/build.sh` for the six filters (cargo rebuilds only what
/// changed) and returns `filters/out`. If the build fails, existing files
/// are used with a warning; missing ones stop the run.
fn build_wasm() -> PathBuf {
    let dir = filters_dir();
    let out = dir.join("out");
    let built = Command::new("bash")
        .arg(dir.join("build.sh"))
        .args(FILTERS)
        .output();
    let failure = match built {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(format!(
            "{}:\n{}{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )),
        Err(e) => Some(e.to_string()),
    };
    if let Some(failure) = failure {
        let missing: Vec<&str> = FILTERS
            .into_iter()
            .filter(|n| !out.join(format!("{n}.wasm")).exists())
            .collect();
        assert!(
            missing.is_empty(),
            "filters/out/ lacks {missing:?} and building them failed: run `bash filters/build.sh` \
             (needs rustup, the wasm32-unknown-unknown target and crates.io on the first run). \
             filters/build.sh said {failure}"
        );
        eprintln!(
            "warning: filters/build.sh failed, using the existing filters/out/*.wasm, which may \
             be older than the sources compiled natively here: {failure}"
        );
    }
    out
}

/// `filters/<name>/testdata/config.json`.
fn config(name: &str) -> Value {
    let path = filters_dir().join(name).join("testdata/config.json");
    let text = std::fs::read_to_string(&path).expect("a filter's testdata/config.json");
    serde_json::from_str(&text).expect("testdata/config.json is JSON")
}

/// The Documents of the example Events, normalized as `pipeline.rs` does.
fn records() -> Vec<Record> {
    let n = Normalizer {
        cluster: Some("bench".into()),
        index: IndexPattern::parse("kwex-events-%Y.%m.%d").expect("valid pattern"),
        id_mode: IdMode::Occurrence,
        max_message_bytes: 32 * 1024,
        dedot: false,
    };
    let now = Utc::now();
    let records: Vec<Record> = kwex_benches::example_events()
        .iter()
        .filter_map(|raw| n.normalize(raw, WatchAction::Added, now).ok())
        .map(|out| out.record)
        .collect();
    assert!(
        !records.is_empty(),
        "examples/events/core-v1.json is missing"
    );
    records
}

/// The Wasm side: one engine with kwex's defaults, chains loaded from `out`.
struct Wasm {
    /// [`CHAIN`], then [`OTHERS`].
    chains: [Chain; 2],
}

impl Wasm {
    fn new() -> Self {
        let engine = Engine::new(Settings::default()).expect("the filter engine");
        let metrics = Metrics::register(&prometheus::Registry::new()).expect("the filter metrics");
        let out = build_wasm();
        // A chain of `names`, each with its testdata config.
        let chain = |names: [&str; 3]| {
            let specs = names
                .iter()
                .map(|name| {
                    FilterSpec::new(&engine, out.join(format!("{name}.wasm")))
                        .with_config(config(name))
                })
                .collect();
            Chain::from_specs(&engine, specs, &metrics)
                .unwrap_or_else(|e| panic!("cannot load {names:?}: {e}"))
        };
        Self {
            chains: [chain(CHAIN), chain(OTHERS)],
        }
    }

    /// The chain holding filter `name`, and its position there.
    fn find(&self, name: &str) -> (&Chain, usize) {
        self.chains
            .iter()
            .find_map(|chain| {
                Some((
                    chain,
                    chain.names().position(|n| n == format!("{name}.wasm"))?,
                ))
            })
            .unwrap_or_else(|| panic!("{name} is not loaded"))
    }
}

/// A filter compiled natively, called as the SDK's glue calls it in an
/// instance, minus the ABI's copies and encoding.
trait Native {
    fn call(&mut self, body: &[u8]) -> kwex_guest::Result<kwex_guest::Verdict>;
}

impl<F: Filter> Native for F {
    fn call(&mut self, body: &[u8]) -> kwex_guest::Result<kwex_guest::Verdict> {
        let text = std::str::from_utf8(body)?;
        self.filter(&Document::parse(text)?)
    }
}

/// `F` built from `name`'s config, passed as kwex passes it (JSON text).
fn native<F: Filter>(name: &str) -> F {
    let config: F::Config =
        serde_json::from_str(&config(name).to_string()).expect("the config parses natively");
    F::init(config).unwrap_or_else(|e| panic!("{name}: init failed natively: {}", e.message()))
}

/// A verdict of either side, comparable: new documents as JSON values.
#[derive(Debug, PartialEq)]
enum Seen {
    Keep,
    Drop,
    Replace(Value),
    Route(String, Option<Value>),
    Error,
}

fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).expect("a new document is JSON")
}

impl Seen {
    fn wasm(verdict: Option<Result<Verdict, kwex::filter::FilterError>>) -> Seen {
        match verdict.expect("a filter at that position") {
            Ok(Verdict::Keep) => Seen::Keep,
            Ok(Verdict::Drop) => Seen::Drop,
            Ok(Verdict::Replace(body)) => Seen::Replace(json(&body)),
            Ok(Verdict::Route { index, body }) => Seen::Route(index, body.map(|b| json(&b))),
            Err(_) => Seen::Error,
        }
    }

    fn native(verdict: kwex_guest::Result<kwex_guest::Verdict>) -> Seen {
        match verdict {
            Ok(kwex_guest::Verdict::Keep) => Seen::Keep,
            Ok(kwex_guest::Verdict::Drop) => Seen::Drop,
            Ok(kwex_guest::Verdict::Replace(body)) => Seen::Replace(json(body.as_bytes())),
            Ok(kwex_guest::Verdict::Route { index, document }) => {
                Seen::Route(index, document.map(|d| json(d.as_bytes())))
            }
            Err(_) => Seen::Error,
        }
    }

    fn label(&self) -> &'static str {
        match self {
            Seen::Keep => "keep",
            Seen::Drop => "drop",
            Seen::Replace(_) => "replace",
            Seen::Route(..) => "route",
            Seen::Error => "error",
        }
    }
}

/// Runs every body through both sides (fresh instances) and stops the run
/// unless every verdict agrees and none is an error.
fn check_filter<F: Filter>(name: &str, chain: &Chain, position: usize, bodies: &[Bytes]) {
    let mut worker = chain.worker();
    let mut native = native::<F>(name);
    let mut counts = std::collections::BTreeMap::<&str, usize>::new();
    for (i, body) in bodies.iter().enumerate() {
        let wasm = Seen::wasm(worker.call(position, body));
        let native = Seen::native(native.call(body));
        assert_eq!(wasm, native, "{name}: document {i}: Wasm and native differ");
        assert_ne!(wasm, Seen::Error, "{name}: document {i} failed");
        *counts.entry(wasm.label()).or_default() += 1;
    }
    eprintln!(
        "{name}: same verdicts both ways on {} documents: {counts:?}",
        bodies.len()
    );
}

fn bench_filter<F: Filter>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    wasm: &Wasm,
    name: &str,
    bodies: &[Bytes],
) {
    let (chain, position) = wasm.find(name);
    check_filter::<F>(name, chain, position, bodies);

    // One worker and one native value each, made (and the instance started)
    // outside the measurement, reused by every sample.
    let mut worker = chain.worker();
    let _ = worker.call(position, &bodies[0]);
    group.bench_function(BenchmarkId::new(name, "wasm"), |b| {
        b.iter(|| {
            for body in bodies {
                let _ = black_box(worker.call(position, black_box(body)));
            }
        })
    });
    let mut filter = native::<F>(name);
    let _ = filter.call(&bodies[0]);
    group.bench_function(BenchmarkId::new(name, "native"), |b| {
        b.iter(|| {
            for body in bodies {
                let _ = black_box(filter.call(black_box(body)));
            }
        })
    });
}

/// The native chain, with `ChainWorker::apply`'s semantics: `replace` swaps
/// the body, `route` sets the index (and the body, if given), `drop` ends
/// it; `None` for a drop, `Err` for a failure (none expected here).
fn apply_native(filters: &mut [Box<dyn Native>], mut record: Record) -> Result<Option<Record>, ()> {
    for filter in filters {
        match filter.call(&record.body) {
            Ok(kwex_guest::Verdict::Keep) => {}
            Ok(kwex_guest::Verdict::Drop) => return Ok(None),
            Ok(kwex_guest::Verdict::Replace(body)) => record.body = Bytes::from(body),
            Ok(kwex_guest::Verdict::Route { index, document }) => {
                record.index = index;
                if let Some(body) = document {
                    record.body = Bytes::from(body);
                }
            }
            Err(_) => return Err(()),
        }
    }
    Ok(Some(record))
}

fn native_chain() -> Vec<Box<dyn Native>> {
    vec![
        Box::new(native::<warnings_only::WarningsOnly>(CHAIN[0])),
        Box::new(native::<redact::Redact>(CHAIN[1])),
        Box::new(native::<route::Route>(CHAIN[2])),
    ]
}

fn bench_chain(group: &mut BenchmarkGroup<'_, WallTime>, wasm: &Wasm, records: &[Record]) {
    let chain = &wasm.chains[0];

    // Both chains agree on every document before anything is measured.
    let (mut worker, mut native) = (chain.worker(), native_chain());
    let mut kept = 0;
    for (i, record) in records.iter().enumerate() {
        let wasm = match worker.apply(record.clone()) {
            Outcome::Keep(r) => Some((r.index, json(&r.body))),
            Outcome::Drop => None,
            Outcome::DeadLetter(_, e) => panic!("chain: document {i} failed: {e}"),
        };
        let native = apply_native(&mut native, record.clone())
            .unwrap_or_else(|()| panic!("chain: document {i} failed natively"))
            .map(|r| (r.index, json(&r.body)));
        assert_eq!(wasm, native, "chain: document {i}: Wasm and native differ");
        kept += usize::from(wasm.is_some());
    }
    eprintln!(
        "{CHAIN_ID}: same outcome both ways on {} documents: {kept} kept",
        records.len()
    );

    let (mut worker, mut native) = (chain.worker(), native_chain());
    let _ = worker.apply(records[0].clone());
    group.bench_function(BenchmarkId::new(CHAIN_ID, "wasm"), |b| {
        b.iter(|| {
            for record in records {
                let _ = black_box(worker.apply(black_box(record.clone())));
            }
        })
    });
    group.bench_function(BenchmarkId::new(CHAIN_ID, "native"), |b| {
        b.iter(|| {
            for record in records {
                let _ = black_box(apply_native(&mut native, black_box(record.clone())));
            }
        })
    });
}

/// Criterion's output directory, found as criterion finds it.
fn criterion_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return home.into();
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("criterion")
}

/// Nanoseconds per iteration of `id` (`name/side`) as criterion reports
/// it (the slope, else the mean), if measured since `since`.
fn estimate(id: &str, since: SystemTime) -> Option<f64> {
    let path = criterion_dir()
        .join(GROUP)
        .join(id)
        .join("new/estimates.json");
    let modified = std::fs::metadata(&path).and_then(|m| m.modified()).ok()?;
    if modified < since {
        return None;
    }
    let estimates: Value = serde_json::from_slice(&std::fs::read(&path).ok()?).ok()?;
    ["slope", "mean"]
        .iter()
        .find_map(|k| estimates[k]["point_estimate"].as_f64())
}

/// Prints the ratios of what this run measured, per call and per document.
fn summary(since: SystemTime, documents: usize) {
    let n = documents as f64;
    let pair = |name: &str| {
        Some((
            estimate(&format!("{name}/wasm"), since)? / n,
            estimate(&format!("{name}/native"), since)? / n,
        ))
    };
    let mut lines = Vec::new();
    for name in FILTERS {
        if let Some((w, nat)) = pair(name) {
            lines.push(format!("| {name} | {w:.0} | {nat:.0} | {:.2}× |", w / nat));
        }
    }
    if let Some((w, nat)) = pair(CHAIN_ID) {
        lines.push(format!(
            "| chain {CHAIN_ID}, per input document | {w:.0} ({:.0} events/s) | {nat:.0} ({:.0} events/s) | {:.2}× |",
            1e9 / w,
            1e9 / nat,
            w / nat
        ));
    }
    if !lines.is_empty() {
        println!(
            "\n| filter ({documents} documents) | Wasm ns/call | native ns/call | Wasm/native |"
        );
        println!("|---|---|---|---|");
        for line in lines {
            println!("{line}");
        }
    }
}

fn main() {
    let started = SystemTime::now();
    let records = records();
    let bodies: Vec<Bytes> = records.iter().map(|r| r.body.clone()).collect();
    let wasm = Wasm::new();

    let mut c = Criterion::default().configure_from_args();
    let mut group = c.benchmark_group(GROUP);
    group.throughput(Throughput::Elements(records.len() as u64));
    bench_filter::<warnings_only::WarningsOnly>(&mut group, &wasm, FILTERS[0], &bodies);
    bench_filter::<redact::Redact>(&mut group, &wasm, FILTERS[1], &bodies);
    bench_filter::<enrich::Enrich>(&mut group, &wasm, FILTERS[2], &bodies);
    bench_filter::<route::Route>(&mut group, &wasm, FILTERS[3], &bodies);
    bench_filter::<burst_limit::BurstLimit>(&mut group, &wasm, FILTERS[4], &bodies);
    bench_filter::<dedot::Dedot>(&mut group, &wasm, FILTERS[5], &bodies);
    bench_chain(&mut group, &wasm, &records);
    group.finish();
    c.final_summary();

    summary(started, records.len());
}
