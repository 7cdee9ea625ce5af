//! Criterion bench of scavenging (issue 6; item 8 of the benchmark suite): MB/s of sealed
//! segments processed by `Store::scavenge` on a store with 50% deletable events, next to the raw
//! limit of copying the same bytes (read + write + `fdatasync` per segment). Every iteration
//! scavenges a fresh copy of one store built once. `cargo run --release --example
//! scavenge_bench` prints the same comparison as one quick table.

#[path = "common/short.rs"]
mod short;
#[path = "common/scavenge.rs"]
mod workload;

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// Events in the scavenged store (about 55 MB of segments).
const EVENTS: usize = 200_000;

fn scavenge(c: &mut Criterion) {
    let template = tempfile::tempdir().expect("temp dir");
    workload::build(template.path(), EVENTS);
    let probe = tempfile::tempdir().expect("temp dir");
    workload::copy_dir(template.path(), probe.path());
    let bytes = workload::scavenge(probe.path()).bytes;

    let mut group = c.benchmark_group("scavenge_50pct_deletable");
    group.throughput(Throughput::Bytes(bytes));
    group.bench_function("annal_scavenge", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let copy = tempfile::tempdir().expect("temp dir");
                workload::copy_dir(template.path(), copy.path());
                total += workload::scavenge(copy.path()).time;
            }
            total
        })
    });
    group.bench_function("raw_copy_same_bytes", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let out = tempfile::tempdir().expect("temp dir");
                total += workload::raw_copy(template.path(), out.path()).1;
            }
            total
        })
    });
    group.finish();
}

criterion_group! { name = benches; config = short::config(); targets = scavenge }
criterion_main!(benches);
