//! The spool's throughput: append + hand out + acknowledge ~1 KB documents in
//! batches of 256, on a temporary directory (fsync included), and in memory.
#![allow(missing_docs)] // criterion's macros generate undocumented functions
#![allow(clippy::expect_used)] // setup failures abort the benchmark

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kwex::document::Record;
use kwex::spool::{FullPolicy, Metrics, Settings, Spool};

const BATCH: usize = 256;

/// A ~1 KB document like a normalized Event.
fn batch(start: usize) -> Vec<Record> {
    (start..start + BATCH)
        .map(|i| Record {
            id: format!("6f1c2d9a-8e4b-4f3a-9c1d-{i:012}:{i}"),
            index: "kwex-events-2026.11.25".into(),
            body: Bytes::from(format!(
                r#"{{"@timestamp":"2026-11-25T10:00:00Z","reason":"BackOff","message":"{}","n":{i:012}}}"#,
                "Back-off restarting failed container app in pod web-7d9f8 ".repeat(16)
            )),
        })
        .collect()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let p = std::env::temp_dir().join(format!("kwex-bench-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        Self(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `appenders` batches appended concurrently, then handed out and acknowledged.
async fn round(spool: &Arc<Spool>, appenders: usize, counter: &mut usize) {
    let mut tasks = Vec::with_capacity(appenders);
    for _ in 0..appenders {
        let spool = Arc::clone(spool);
        let records = batch(*counter);
        *counter += BATCH;
        tasks.push(tokio::spawn(async move { spool.append(records).await }));
    }
    for t in tasks {
        t.await.expect("append task").expect("append");
    }
    let mut left = appenders * BATCH;
    while left > 0 {
        let got = spool.next(left).await.expect("records");
        left -= got.len();
        let seqs: Vec<u64> = got.iter().map(|(s, _)| *s).collect();
        spool.ack(&seqs);
    }
}

fn spool(c: &mut Criterion) {
    let rt = runtime();
    let doc_bytes: usize = batch(0)
        .iter()
        .map(|r| r.id.len() + r.index.len() + r.body.len())
        .sum::<usize>()
        / BATCH;
    eprintln!("spool bench: {doc_bytes} bytes per document (id + index + body)");
    let mut group = c.benchmark_group("spool");
    let cases: [(&str, Option<Duration>, usize); 4] = [
        ("disk_sync0_1appender", Some(Duration::ZERO), 1),
        (
            "disk_sync50ms_1appender",
            Some(Duration::from_millis(50)),
            1,
        ),
        (
            "disk_sync50ms_8appenders",
            Some(Duration::from_millis(50)),
            8,
        ),
        ("memory_1appender", None, 1),
    ];
    for (name, sync, appenders) in cases {
        let dir = TempDir::new(name);
        let spool = rt.block_on(async {
            let metrics = Metrics::unregistered().expect("metrics");
            match sync {
                Some(sync_interval) => {
                    let settings = Settings {
                        sync_interval,
                        ..Settings::new(&dir.0, 4 << 30)
                    };
                    Spool::open_disk(settings, metrics).await.expect("open").0
                }
                None => Spool::memory(4 << 30, FullPolicy::Block, metrics),
            }
        });
        let spool = Arc::new(spool);
        let mut counter = 0usize;
        group.throughput(Throughput::Elements((appenders * BATCH) as u64));
        group.bench_function(name, |b| {
            b.iter(|| rt.block_on(round(&spool, appenders, &mut counter)))
        });
        drop(spool);
    }
    group.finish();
}

criterion_group!(benches, spool);
criterion_main!(benches);
