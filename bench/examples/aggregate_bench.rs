//! Event-sourcing figures on the bank example's account: command round trip on a cached
//! aggregate with a durable append (p50/p99, 1 client and 32 concurrent clients on distinct
//! aggregates, next to the same append made straight on the store), rehydration of a
//! 100,000-event aggregate without and with a snapshot, and the heap bytes per cached
//! aggregate.
//!
//! `cargo run --release --example aggregate_bench` prints one table (`-- --quick`: fewer
//! round trips). `cargo bench --bench aggregates` measures the same workloads with criterion.

#[path = "../benches/common/aggregates.rs"]
mod aggregates;
#[path = "../../examples/bank.rs"]
#[expect(dead_code, reason = "the bench uses the bank's model, not its demo")]
mod bank;
#[path = "../benches/common/count.rs"]
mod count;

use std::time::{Duration, Instant};

use annal::{
    Options, Store,
    es::{Codec, Repository, RepositoryOptions, stream_of},
};
use annal_bench::stats::median;
use count::CountingAlloc;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Events in the aggregate that is rehydrated.
const HISTORY_EVENTS: u64 = 100_000;
/// Clients of the concurrent round trips.
const CLIENTS: usize = 32;
/// Aggregates cached to measure the memory per aggregate.
const CACHED: usize = 10_000;

fn main() -> Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let round_trips = if quick { 200 } else { 1_000 };
    let dir = tempfile::tempdir()?;
    println!("{:<62} {:>26}", "workload", "figure");
    let syncs = count::CountingStorage::new();
    let options = Options { storage: syncs.storage(), ..Options::default() };
    let store = Store::open_with(dir.path().join("rt"), options)?;
    round_trip_rows(&store, &syncs, round_trips);
    rehydration_rows(&dir.path().join("history"))?;
    memory_row(&dir.path().join("memory"))?;
    Ok(())
}

fn round_trip_rows(store: &Store, syncs: &count::CountingStorage, round_trips: usize) {
    let accounts = aggregates::repository(store);
    let codec = Codec::new();
    let ids: Vec<String> = (0..CLIENTS).map(|i| format!("client{i}")).collect();
    ids.iter().for_each(|id| aggregates::open_account(&accounts, id));
    let raw_stream = stream_of::<bank::Account>("raw");
    // Interleaved, so that the load of this shared machine weighs on both sides alike.
    let (one, raw): (Vec<_>, Vec<_>) = (0..round_trips)
        .map(|_| {
            let command = aggregates::deposit(&accounts, &ids[0]);
            (command, aggregates::raw_deposit(store, &codec, &raw_stream))
        })
        .unzip();
    row("command round trip, cached aggregate, fsync, 1 client", &pair(&one));
    row("  baseline: Store::append of the same event, 1 client", &pair(&raw));
    row("  ratio command / append (p50, p99)", &ratio(&one, &raw));
    let per_client = round_trips / 4;
    let syncs_before = syncs.syncs();
    let start = Instant::now();
    let many =
        aggregates::concurrent(CLIENTS, per_client, |i| aggregates::deposit(&accounts, &ids[i]));
    let wall = start.elapsed();
    let per_sync = many.len() as f64 / (syncs.syncs() - syncs_before) as f64;
    let raw_streams: Vec<_> =
        ids.iter().map(|id| stream_of::<bank::Account>(&format!("raw{id}"))).collect();
    let start = Instant::now();
    let raw_many = aggregates::concurrent(CLIENTS, per_client, |i| {
        aggregates::raw_deposit(store, &codec, &raw_streams[i])
    });
    let raw_wall = start.elapsed();
    row("command round trip, 32 clients on distinct aggregates", &pair(&many));
    row("  commands/s", &format!("{:.0}", many.len() as f64 / wall.as_secs_f64()));
    row("  commands per fsync", &format!("{per_sync:.1}"));
    row("  baseline: Store::append, 32 clients", &pair(&raw_many));
    row("  baseline appends/s", &format!("{:.0}", raw_many.len() as f64 / raw_wall.as_secs_f64()));
    row("  ratio command / append (p50, p99)", &ratio(&many, &raw_many));
}

fn rehydration_rows(dir: &std::path::Path) -> Result<()> {
    let store = aggregates::fast_store(dir);
    aggregates::write_history(&store, "long", HISTORY_EVENTS);
    let accounts = aggregates::repository(&store);
    let (balance, cold) = timed(|| aggregates::rehydrate(&accounts, "long"));
    let runs: Vec<_> =
        (0..5).map(|_| timed(|| aggregates::rehydrate(&accounts, "long")).1).collect();
    let warm = median(&runs);
    assert_eq!(balance, HISTORY_EVENTS - 1);
    let per_s =
        |t: Duration| format!("{:.2}M events/s", HISTORY_EVENTS as f64 / t.as_secs_f64() / 1e6);
    row("rehydrate 100,000 events, no snapshot (median of 5)", &format!("{warm:.1?}"));
    row("  events/s", &per_s(warm));
    row("  first load (cold mapping)", &format!("{cold:.1?}"));
    accounts.snapshot_now("long")?;
    aggregates::write_history_tail(&store, "long", 999);
    let runs: Vec<_> =
        (0..5).map(|_| timed(|| aggregates::rehydrate(&accounts, "long")).1).collect();
    assert_eq!(accounts.stats().from_snapshot, 5);
    row(
        "rehydrate from a snapshot + 999 events after it (median of 5)",
        &format!("{:.1?}", median(&runs)),
    );
    Ok(())
}

fn memory_row(dir: &std::path::Path) -> Result<()> {
    let store = aggregates::fast_store(dir);
    let options =
        RepositoryOptions { cache_capacity: CACHED, snapshot_every: 0, ..Default::default() };
    let accounts = Repository::<bank::Account>::new(&store, options)?;
    for i in 0..CACHED {
        let id = format!("acc{i:06}");
        aggregates::open_account(&accounts, &id);
        aggregates::deposit(&accounts, &id);
    }
    let cached = CountingAlloc::live_bytes();
    drop(accounts);
    let cleared = CountingAlloc::live_bytes();
    let per = (cached - cleared) as f64 / CACHED as f64;
    row("heap per cached bank account (10,000 cached; repository dropped)", &format!("{per:.0} B"));
    Ok(())
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let value = f();
    (value, start.elapsed())
}

fn percentile(times: &[Duration], p: f64) -> Duration {
    let mut sorted = times.to_vec();
    sorted.sort();
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn pair(times: &[Duration]) -> String {
    let us = |p| percentile(times, p).as_secs_f64() * 1e6;
    format!("{:.0} µs / {:.0} µs", us(0.5), us(0.99))
}

fn ratio(a: &[Duration], b: &[Duration]) -> String {
    let r = |p| percentile(a, p).as_secs_f64() / percentile(b, p).as_secs_f64();
    format!("{:.2}x, {:.2}x", r(0.5), r(0.99))
}

fn row(name: &str, figure: &str) {
    println!("{name:<62} {figure:>26}");
}
