//! Criterion benches of annal's workloads next to the disk's own limit: `write` + `fdatasync`
//! of the same bytes with the same grouping, and reading + CRC-checking the same segment bytes
//! from the page cache. SQLite's side of the same workloads is `benches/sqlite.rs`, filed under
//! the same group names, so one `cargo bench` run holds every figure of every ratio;
//! `cargo run --release --example bench -- --criterion` prints them side by side.
//!
//! Short by default (see `short::config`). `ANNAL_BENCH_10M=1` adds opening a 10M-event
//! store (~2.8 GB of disk). Index memory (W7) is printed, not timed.

mod common;
#[path = "common/harness.rs"]
mod harness;
#[path = "common/short.rs"]
mod short;

use std::{hint::black_box, path::Path};

use annal::{Durability, Store};
use common::{
    BATCH_EVENTS, Layout, PAYLOAD_BYTES,
    count::{CountingAlloc, CountingStorage},
    drop_page_cache,
    raw::{self, Budget},
    workload::{self, counted_options},
};
use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use harness::{Side, Stores, label, scaled};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// A durable store counting its fsyncs, in `dir`.
fn durable(dir: &Path) -> (Store, CountingStorage) {
    let syncs = CountingStorage::new();
    let store = Store::open_with(dir, counted_options(Durability::Fsync, &syncs)).expect("open");
    (store, syncs)
}

/// W1 and W2: durable single-event appends from 1, 16 and 64 writers, each to its own stream,
/// and the raw limit writing the same records with the group size annal reached.
fn appends(c: &mut Criterion) {
    let stores = Stores::<()>::new();
    let mut side = Side::default();
    for (name, writers) in [(harness::W1, 1), (harness::W2, 16), (harness::W2, 64)] {
        let mut group = c.benchmark_group(name);
        group.throughput(Throughput::Elements(1));
        let param = if writers == 1 { "200B".to_owned() } else { format!("{writers}_writers") };
        let (store, syncs) = durable(&stores.scratch(&format!("w-{writers}")));
        group.bench_function(BenchmarkId::new("annal", &param), |b| {
            b.iter_custom(|iters| {
                let per_writer = Budget::ops(iters.div_ceil(writers as u64));
                let run = workload::concurrent_appends(&store, &syncs, writers, 200, per_writer);
                let elapsed = scaled(run.elapsed, run.events, iters);
                side.add(run);
                elapsed
            })
        });
        let grouping = side.group_size().round().max(1.0) as usize;
        side.print(&format!("{name}/annal/{param}"));
        drop(store);
        let record = raw::record_bytes("writer-00", PAYLOAD_BYTES);
        let raw_name = format!("raw_groups_of_{grouping}");
        group.bench_function(BenchmarkId::new(raw_name.as_str(), &param), |b| {
            b.iter_custom(|iters| {
                let groups = Budget::ops(iters.div_ceil(grouping as u64));
                let run = raw::group_appends(&stores.scratch("raw"), record, grouping, groups);
                let run = run.expect("raw appends");
                let elapsed = scaled(run.elapsed, run.events, iters);
                side.add(run);
                elapsed
            })
        });
        side.print(&format!("{name}/{raw_name}/{param}"));
        group.finish();
    }
}

/// W3: durable appends of 100 events from one writer across the payload sweep, and the raw
/// limit writing the same bytes per fdatasync.
fn batches(c: &mut Criterion) {
    let stores = Stores::<()>::new();
    let (store, syncs) = durable(&stores.scratch("w3"));
    let mut group = c.benchmark_group(harness::W3);
    group.throughput(Throughput::Elements(BATCH_EVENTS as u64));
    for bytes in [PAYLOAD_BYTES, 100, 1024, 16 * 1024] {
        let param = format!("{bytes}B");
        group.bench_function(BenchmarkId::new("annal", &param), |b| {
            b.iter_custom(|iters| {
                let run = workload::batch_appends(
                    &store,
                    &syncs,
                    BATCH_EVENTS,
                    bytes,
                    Budget::ops(iters),
                );
                run.elapsed
            })
        });
        let record = raw::record_bytes(&format!("batches-{bytes}"), bytes);
        group.bench_function(BenchmarkId::new("raw_same_bytes", &param), |b| {
            b.iter_custom(|iters| {
                let run = raw::group_appends(
                    &stores.scratch("raw"),
                    record,
                    BATCH_EVENTS,
                    Budget::ops(iters),
                );
                run.expect("raw appends").elapsed
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group(harness::W3_BUILD);
    group.sampling_mode(SamplingMode::Flat).throughput(Throughput::Elements(harness::BUILD.events));
    group.bench_function(BenchmarkId::new("annal", label(harness::BUILD)), |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    workload::build(&stores.scratch("build"), harness::BUILD).expect("build").1
                })
                .sum()
        })
    });
    group.finish();
}

/// W4 to W7: reads of `$all` (warm across the payload sweep, and cold), stream reads, open,
/// and index memory.
fn reads(c: &mut Criterion) {
    let mut stores = Stores::<Store>::new();
    let mut group = c.benchmark_group(harness::W4);
    for layout in harness::READ_SWEEP {
        group.throughput(Throughput::Elements(layout.events));
        let name = label(layout);
        group.bench_function(BenchmarkId::new("annal", &name), |b| {
            let store = stores.get(&name, |dir| workload::build(&dir, layout).expect("build").0);
            b.iter(|| black_box(workload::read_all(store).expect("read")))
        });
        group.bench_function(BenchmarkId::new("raw_pread_crc", &name), |b| {
            let store = stores.get(&name, |dir| workload::build(&dir, layout).expect("build").0);
            let files = raw::segment_files(store.dir()).expect("segments");
            b.iter(|| black_box(raw::read_crc(&files).expect("read")))
        });
    }
    group.finish();

    let million = label(Layout::MILLION);
    let build = |dir: std::path::PathBuf| workload::build(&dir, Layout::MILLION).expect("build").0;
    if drop_page_cache() {
        let mut group = c.benchmark_group(harness::W4_COLD);
        group.sampling_mode(SamplingMode::Flat).throughput(Throughput::Elements(1_000_000));
        group.bench_function(BenchmarkId::new("annal", &million), |b| {
            let store = stores.get(&million, build);
            b.iter_custom(|iters| harness::cold(iters, || workload::read_all(store).expect("read")))
        });
        group.bench_function(BenchmarkId::new("raw_pread_crc", &million), |b| {
            let store = stores.get(&million, build);
            let files = raw::segment_files(store.dir()).expect("segments");
            b.iter_custom(|iters| harness::cold(iters, || raw::read_crc(&files).expect("read")))
        });
        group.finish();
    } else {
        println!("{}: could not drop the page cache, so not measured", harness::W4_COLD);
    }

    stream_reads(c, &mut stores);
    open(c, &mut stores);
    memory(&mut stores);
}

/// W5: one stream of 10,000 events interleaved with others, 1,000 random whole streams.
fn stream_reads(c: &mut Criterion, stores: &mut Stores<Store>) {
    let layout = Layout::STREAMS;
    let build = |dir: std::path::PathBuf| workload::build(&dir, layout).expect("build").0;
    let picks = layout.random_streams();
    let mut group = c.benchmark_group(harness::W5);
    group.throughput(Throughput::Elements(Layout::HOT_STREAM_EVENTS));
    group.bench_function(BenchmarkId::new("annal", "one_stream_10k"), |b| {
        let store = stores.get("streams", build);
        b.iter(|| black_box(workload::read_streams(store, &[0]).expect("read")))
    });
    group.throughput(Throughput::Elements(Layout::RANDOM_STREAMS_EVENTS));
    group.bench_function(BenchmarkId::new("annal", "1000_random_streams"), |b| {
        let store = stores.get("streams", build);
        b.iter(|| black_box(workload::read_streams(store, &picks).expect("read")))
    });
    group.finish();
}

/// W6: opening (recovery; the indexes read from their files) the 1M store warm and cold, and with
/// `ANNAL_BENCH_10M=1` the 10M store.
fn open(c: &mut Criterion, stores: &mut Stores<Store>) {
    let million = stores.closed(&label(Layout::MILLION), |dir| {
        workload::build(&dir, Layout::MILLION).expect("build").0
    });
    let mut sizes = vec![(Layout::MILLION, million)];
    if common::ten_million_wanted() {
        let dir = stores.scratch("open-10m");
        drop(workload::build(&dir, Layout::TEN_MILLION).expect("build"));
        sizes.push((Layout::TEN_MILLION, dir));
    }
    let mut group = c.benchmark_group(harness::W6);
    group.sampling_mode(SamplingMode::Flat);
    for (layout, dir) in sizes {
        let name = label(layout);
        group.throughput(Throughput::Elements(layout.events));
        group.bench_function(BenchmarkId::new("annal", format!("{name}_warm")), |b| {
            b.iter_custom(|iters| (0..iters).map(|_| workload::open(&dir).expect("open").1).sum())
        });
        group.bench_function(BenchmarkId::new("annal", format!("{name}_cold")), |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| {
                        drop_page_cache();
                        workload::open(&dir).expect("open").1
                    })
                    .sum()
            })
        });
        let mb = common::dir_bytes(&dir) as f64 / 1e6;
        println!("{}/annal/{name}: {mb:.1} MB of segments", harness::W6);
    }
    group.finish();
}

/// W7: index memory per event and per stream, from the store's own estimate (two stores of 1M
/// events, with 1,000 and 100,000 streams) and from a counting allocator.
fn memory(stores: &mut Stores<Store>) {
    let dir = stores.closed(&label(Layout::MILLION), |dir| {
        workload::build(&dir, Layout::MILLION).expect("build").0
    });
    let before = CountingAlloc::live_bytes();
    let (one, _) = workload::open(&dir).expect("open");
    let heap = CountingAlloc::live_bytes() - before;
    let one = one.stats();
    let dir = stores.scratch("memory-many");
    drop(workload::build(&dir, Layout::MANY_STREAMS).expect("build"));
    let many = workload::open(&dir).expect("open").0.stats();
    let (a, b) = (one.index_memory_bytes, many.index_memory_bytes);
    let (per_event, per_stream) = workload::index_costs(&one, &many);
    println!(
        "w7_index_memory/annal: {per_event:.1} B per event, {per_stream:.0} B per stream \
         (index_memory_bytes {a} with 1,000 streams, {b} with 100,000; heap of the open \
         1M store {:.1} B per event)",
        heap as f64 / one.events as f64
    );
    println!(
        "w7_disk/annal: {:.1} bytes on disk per 200 B event",
        one.disk_bytes as f64 / one.events as f64
    );
}

criterion_group! {
    name = benches;
    config = short::config();
    targets = appends, batches, reads
}
criterion_main!(benches);
