//! Per-event costs: Event → Document normalization and `_bulk` body encoding.
#![allow(missing_docs)] // criterion's macros generate undocumented functions
#![allow(clippy::expect_used)] // inputs are constants of the benchmark

use std::hint::black_box;

use chrono::Utc;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kwex::document::{IdMode, IndexPattern, Normalizer, Record, WatchAction};
use kwex::sink::encode;

fn normalizer() -> Normalizer {
    Normalizer {
        cluster: Some("bench".into()),
        index: IndexPattern::parse("kwex-events-%Y.%m.%d").expect("valid pattern"),
        id_mode: IdMode::Occurrence,
        max_message_bytes: 32 * 1024,
        dedot: false,
    }
}

fn normalize(c: &mut Criterion) {
    let events = kwex_benches::example_events();
    assert!(
        !events.is_empty(),
        "examples/events/core-v1.json is missing"
    );
    let bytes: usize = events.iter().map(Vec::len).sum();
    let n = normalizer();
    let now = Utc::now();
    let mut group = c.benchmark_group("normalize");
    group.throughput(Throughput::Elements(events.len() as u64));
    group.bench_function("core_v1_events", |b| {
        b.iter(|| {
            for raw in &events {
                let _ = black_box(n.normalize(black_box(raw), WatchAction::Added, now));
            }
        })
    });
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function("core_v1_bytes", |b| {
        b.iter(|| {
            for raw in &events {
                let _ = black_box(n.normalize(black_box(raw), WatchAction::Added, now));
            }
        })
    });
    group.finish();
}

fn bulk_encode(c: &mut Criterion) {
    let n = normalizer();
    let now = Utc::now();
    let records: Vec<Record> = kwex_benches::example_events()
        .iter()
        .filter_map(|raw| n.normalize(raw, WatchAction::Added, now).ok())
        .map(|out| out.record)
        .collect();
    let bytes: usize = records.iter().map(|r| r.body.len()).sum();
    let mut group = c.benchmark_group("bulk_encode");
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function("create_items", |b| {
        let mut out = Vec::with_capacity(bytes * 2);
        b.iter(|| {
            out.clear();
            for r in &records {
                encode::bulk_item(&mut out, "create", black_box(r));
            }
            black_box(out.len())
        })
    });
    group.finish();
}

criterion_group!(benches, normalize, bulk_encode);
criterion_main!(benches);
