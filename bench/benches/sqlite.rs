//! Criterion benches of SQLite doing annal's workloads with the same durability (WAL,
//! `synchronous=FULL`, an expected-version check in a `BEGIN IMMEDIATE` transaction; see
//! `common/sqlite.rs`), under the same group names as `benches/annal.rs`, so that one
//! `cargo bench` run holds both sides of every ratio. A target of its own, so that nothing of
//! annal's ever links SQLite.

mod common;
#[path = "common/harness.rs"]
mod harness;
#[path = "common/short.rs"]
mod short;
#[path = "common/sqlite.rs"]
mod sqlite;

use std::{
    hint::black_box,
    path::PathBuf,
    sync::{Arc, Mutex},
};

use common::{BATCH_EVENTS, Layout, PAYLOAD_BYTES, drop_page_cache, raw::Budget};
use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use harness::{Side, Stores, label, scaled};
use sqlite::SqliteStore;

/// W1 and W2: durable single-event appends from 1, 16 and 64 writers, each to its own stream,
/// taking turns on one connection.
fn appends(c: &mut Criterion) {
    let stores = Stores::<()>::new();
    let mut side = Side::default();
    for (name, writers) in [(harness::W1, 1), (harness::W2, 16), (harness::W2, 64)] {
        let mut group = c.benchmark_group(name);
        group.throughput(Throughput::Elements(1));
        let param = if writers == 1 { "200B".to_owned() } else { format!("{writers}_writers") };
        let dir = stores.scratch(&format!("w-{writers}"));
        let store = Arc::new(Mutex::new(SqliteStore::open(&dir, true).expect("open")));
        group.bench_function(BenchmarkId::new("sqlite", &param), |b| {
            b.iter_custom(|iters| {
                let per_writer = Budget::ops(iters.div_ceil(writers as u64));
                let run = sqlite::concurrent_appends(&store, writers, PAYLOAD_BYTES, per_writer);
                let elapsed = scaled(run.elapsed, run.events, iters);
                side.add(run);
                elapsed
            })
        });
        side.print(&format!("{name}/sqlite/{param}"));
        group.finish();
    }
}

/// W3: durable appends of 100 events from one writer across the payload sweep, and building
/// a store without fsync.
fn batches(c: &mut Criterion) {
    let stores = Stores::<()>::new();
    let mut store = SqliteStore::open(&stores.scratch("w3"), true).expect("open");
    let mut group = c.benchmark_group(harness::W3);
    group.throughput(Throughput::Elements(BATCH_EVENTS as u64));
    for bytes in [PAYLOAD_BYTES, 100, 1024, 16 * 1024] {
        group.bench_function(BenchmarkId::new("sqlite", format!("{bytes}B")), |b| {
            b.iter_custom(|iters| {
                sqlite::batch_appends(&mut store, BATCH_EVENTS, bytes, Budget::ops(iters)).elapsed
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group(harness::W3_BUILD);
    group.sampling_mode(SamplingMode::Flat).throughput(Throughput::Elements(harness::BUILD.events));
    group.bench_function(BenchmarkId::new("sqlite", label(harness::BUILD)), |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| sqlite::build(&stores.scratch("build"), harness::BUILD).expect("build").1)
                .sum()
        })
    });
    group.finish();
}

/// W4 to W6: reads of every row in position order (warm across the payload sweep, and cold),
/// stream reads, and open; and the bytes on disk per event.
fn reads(c: &mut Criterion) {
    let mut stores = Stores::<SqliteStore>::new();
    let build = |layout| move |dir: PathBuf| sqlite::build(&dir, layout).expect("build").0;
    let mut group = c.benchmark_group(harness::W4);
    for layout in harness::READ_SWEEP {
        group.throughput(Throughput::Elements(layout.events));
        let name = label(layout);
        group.bench_function(BenchmarkId::new("sqlite", &name), |b| {
            let store = stores.get(&name, build(layout));
            b.iter(|| black_box(store.read_all().expect("read")))
        });
    }
    group.finish();

    let million = label(Layout::MILLION);
    if drop_page_cache() {
        let mut group = c.benchmark_group(harness::W4_COLD);
        group.sampling_mode(SamplingMode::Flat).throughput(Throughput::Elements(1_000_000));
        group.bench_function(BenchmarkId::new("sqlite", &million), |b| {
            let store = stores.get(&million, build(Layout::MILLION));
            b.iter_custom(|iters| harness::cold(iters, || store.read_all().expect("read")))
        });
        group.finish();
    } else {
        println!("{}: could not drop the page cache, so not measured", harness::W4_COLD);
    }

    let layout = Layout::STREAMS;
    let fill = |dir: PathBuf| sqlite::fill(&dir, layout).expect("fill");
    let picks = layout.random_streams();
    let mut group = c.benchmark_group(harness::W5);
    group.throughput(Throughput::Elements(Layout::HOT_STREAM_EVENTS));
    group.bench_function(BenchmarkId::new("sqlite", "one_stream_10k"), |b| {
        let store = stores.get("streams", fill);
        b.iter(|| black_box(store.read_streams(&[0]).expect("read")))
    });
    group.throughput(Throughput::Elements(Layout::RANDOM_STREAMS_EVENTS));
    group.bench_function(BenchmarkId::new("sqlite", "1000_random_streams"), |b| {
        let store = stores.get("streams", fill);
        b.iter(|| black_box(store.read_streams(&picks).expect("read")))
    });
    group.finish();

    let store = stores.get(&million, build(Layout::MILLION));
    let dir = store.dir().to_owned();
    println!(
        "w7_disk/sqlite: {:.1} bytes on disk per 200 B event",
        store.disk_bytes() as f64 / Layout::MILLION.events as f64
    );
    let mut group = c.benchmark_group(harness::W6);
    group.sampling_mode(SamplingMode::Flat).throughput(Throughput::Elements(1_000_000));
    group.bench_function(BenchmarkId::new("sqlite", format!("{million}_warm")), |b| {
        b.iter_custom(|iters| (0..iters).map(|_| sqlite::open(&dir).expect("open").1).sum())
    });
    group.bench_function(BenchmarkId::new("sqlite", format!("{million}_cold")), |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    drop_page_cache();
                    sqlite::open(&dir).expect("open").1
                })
                .sum()
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = short::config();
    targets = appends, batches, reads
}
criterion_main!(benches);
