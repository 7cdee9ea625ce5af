//! Criterion bench of the time to a restarted service's first answer: open a store and read
//! the last event of a random stream, annal and SQLite (WAL, `synchronous=FULL`; see
//! `common/sqlite.rs`) in the same group on the same 200k events, warm and cold page cache.
//! The quick table (`examples/bench.rs`) does the same at 1M and, opted in, 10M events.
//! The heap annal's open keeps is printed, not timed.

mod common;
#[path = "common/harness.rs"]
mod harness;
#[path = "common/short.rs"]
mod short;
#[path = "common/sqlite.rs"]
mod sqlite;

use std::{path::Path, time::Duration};

use common::{Layout, PAYLOAD_BYTES, count::CountingAlloc, drop_page_cache, stream_name, workload};
use criterion::{BenchmarkId, Criterion, SamplingMode, criterion_group, criterion_main};
use harness::{Stores, label};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// The group name.
const GROUP: &str = "w6_open_read_last";
/// The store: 200k events of 200 B in appends of 100 over 1,000 streams.
const LAYOUT: Layout = Layout::sized(200_000, PAYLOAD_BYTES);

/// Times `iters` opens + reads, each of the next stream of `streams` and after dropping the
/// page cache if `cold`; what `open_read` returns is dropped outside the timing.
fn timed<T>(
    iters: u64,
    cold: bool,
    streams: &mut impl Iterator<Item = String>,
    mut open_read: impl FnMut(&str) -> (T, Duration),
) -> Duration {
    (0..iters)
        .map(|_| {
            let stream = streams.next().expect("endless");
            if cold {
                drop_page_cache();
            }
            open_read(&stream).1
        })
        .sum()
}

fn open_read_last(c: &mut Criterion) {
    let mut stores = Stores::<()>::new();
    let name = label(LAYOUT);
    let annal = stores.closed(&format!("annal-{name}"), |dir| {
        drop(workload::build(&dir, LAYOUT).expect("build"));
    });
    let lite = stores.closed(&format!("sqlite-{name}"), |dir| {
        drop(sqlite::fill(&dir, LAYOUT).expect("fill"));
    });
    print_heap(&annal);
    let mut streams = LAYOUT.random_filled(1 << 16, 3).into_iter().map(stream_name).cycle();
    let mut group = c.benchmark_group(GROUP);
    group.sampling_mode(SamplingMode::Flat);
    let cold_works = drop_page_cache();
    for cold in [false, true] {
        if cold && !cold_works {
            println!("{GROUP}: could not drop the page cache, so cold not measured");
            break;
        }
        let param = format!("{name}_{}", if cold { "cold" } else { "warm" });
        group.bench_function(BenchmarkId::new("annal", &param), |b| {
            b.iter_custom(|iters| {
                timed(iters, cold, &mut streams, |s| {
                    let done = workload::open_read_last(&annal, s).expect("open");
                    (done.store, done.elapsed)
                })
            })
        });
        group.bench_function(BenchmarkId::new("sqlite", &param), |b| {
            b.iter_custom(|iters| {
                timed(iters, cold, &mut streams, |s| {
                    sqlite::open_read_last(&lite, s).expect("open")
                })
            })
        });
    }
    group.finish();
}

/// Prints the heap annal's open of the store in `dir` keeps, per event.
fn print_heap(dir: &Path) {
    let done = workload::open_read_last(dir, &stream_name(0)).expect("open");
    let per_event = done.open_heap_bytes as f64 / LAYOUT.events as f64;
    println!("{GROUP}/annal/{}: heap kept by open {per_event:.1} B per event", label(LAYOUT));
}

criterion_group! {
    name = benches;
    config = short::config();
    targets = open_read_last
}
criterion_main!(benches);
