//! Criterion benches of the event-sourcing layer (issue 7's figures), on the bank example's
//! account: a command round trip on a cached aggregate with a durable append, by 1 client and
//! by 32 concurrent clients on distinct aggregates, next to the same append made straight on the
//! store; and rehydrating an aggregate of 100,000 events without and with a snapshot.
//! `cargo run --release --example aggregate_bench` prints the same figures as one quick table,
//! with percentiles and the memory per cached aggregate.

#[path = "common/aggregates.rs"]
mod aggregates;
#[path = "../../examples/bank.rs"]
#[expect(dead_code, reason = "the bench uses the bank's model, not its demo")]
mod bank;
#[path = "common/short.rs"]
mod short;

use annal::es::{Codec, stream_of};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// Concurrent clients in the parallel round-trip bench.
const CLIENTS: usize = 32;
/// Events in the aggregate the rehydration bench loads.
const HISTORY_EVENTS: u64 = 100_000;

fn round_trip(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = annal::Store::open(dir.path()).expect("open a durable store");
    let accounts = aggregates::repository(&store);
    let ids: Vec<String> = (0..CLIENTS).map(|i| format!("client{i}")).collect();
    ids.iter().for_each(|id| aggregates::open_account(&accounts, id));
    let codec = Codec::new();
    let raw_stream = stream_of::<bank::Account>("raw");
    let mut group = c.benchmark_group("aggregate_command");
    group.throughput(Throughput::Elements(1));
    group.bench_function("cached_durable_1_client", |b| {
        b.iter(|| aggregates::deposit(&accounts, &ids[0]))
    });
    group.bench_function("raw_append_durable_1_client", |b| {
        b.iter(|| aggregates::raw_deposit(&store, &codec, &raw_stream))
    });
    // One iteration is one command; the 32 clients' commands share the wall time, so the
    // figure is the wall time per command (the inverse of the throughput).
    group.bench_function("cached_durable_32_clients", |b| {
        b.iter_custom(|iters| {
            let per_client = iters.div_ceil(CLIENTS as u64);
            let start = std::time::Instant::now();
            aggregates::concurrent(CLIENTS, per_client as usize, |i| {
                aggregates::deposit(&accounts, &ids[i])
            });
            let commands = per_client * CLIENTS as u64;
            start.elapsed().mul_f64(iters as f64 / commands as f64)
        })
    });
    group.finish();
}

fn rehydrate(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = aggregates::fast_store(dir.path());
    aggregates::write_history(&store, "long", HISTORY_EVENTS);
    let accounts = aggregates::repository(&store);
    // No throughput: with a snapshot, the events are not read at all.
    let mut group = c.benchmark_group("aggregate_rehydrate");
    group.bench_function("100k_events_no_snapshot", |b| {
        b.iter(|| aggregates::rehydrate(&accounts, "long"))
    });
    accounts.snapshot_now("long").expect("snapshot");
    group.bench_function("100k_events_with_snapshot", |b| {
        b.iter(|| aggregates::rehydrate(&accounts, "long"))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = short::config();
    targets = round_trip, rehydrate
}
criterion_main!(benches);
