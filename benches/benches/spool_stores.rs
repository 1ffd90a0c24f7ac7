//! The spool's workload on kwex's segment log, redb and fjall: append a
//! batch of ~1 KB documents durably (one fsync), hand it out in order,
//! acknowledge (delete) it. See `kwex_benches::stores` and, for recovery
//! times and the figures, `spool-stores` and BENCHMARKS.md.
#![allow(missing_docs)] // criterion's macros generate undocumented functions
#![allow(clippy::expect_used)] // setup failures abort the benchmark

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kwex_benches::stores::{BATCH, Kind, TempDir, round};

fn stores(c: &mut Criterion) {
    let mut group = c.benchmark_group("spool_stores");
    for batch in [BATCH, 2048] {
        for kind in Kind::ALL {
            let name = format!("{}_batch{batch}", kind.name());
            let dir = TempDir::new(&name);
            let mut q = kind.open(dir.path()).expect("open the store");
            let mut counter = 0u64;
            group.throughput(Throughput::Elements(batch as u64));
            group.bench_function(&name, |b| {
                b.iter(|| round(q.as_mut(), batch, &mut counter).expect("a round"))
            });
            q.close().expect("close the store");
        }
    }
    group.finish();
}

criterion_group!(benches, stores);
criterion_main!(benches);
