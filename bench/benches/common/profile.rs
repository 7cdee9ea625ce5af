//! Single workloads for a profiler, so that before/after figures are instruction counts (which
//! repeat to the instruction on a noisy machine) rather than times. Included only by
//! `examples/bench.rs`:
//!
//! ```text
//! cargo build --release --example bench
//! valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*profiled_reads*' \
//!     target/release/examples/bench --profile read-all 100000
//! valgrind --tool=callgrind target/release/examples/bench --profile build 100000
//! target/release/examples/bench --profile append 0 20
//! target/release/examples/bench --profile writers 64 12
//! ```
//!
//! - `read-all N [R]`: builds a store of N events outside the measured function, then reads
//!   `$all` forward R times (3 if not given) through [`workload::read_all`], the code the table
//!   times, and prints the median rate and its range (per event: instructions ÷ (R × N)).
//! - `read-all-recorded N [R]`: the same through the iterator of `RecordedEvent`s
//!   ([`workload::read_all_recorded`]).
//! - `raw-crc-records N [R]`: W4's raw column on the store `read-all` reads: its segments
//!   mapped once, then every record's CRC checked, walking the length prefixes
//!   ([`raw::Mapped::crc_records`]).
//! - `read-streams _ [R]`: W5's 1,000 random whole streams, on W5's own store.
//! - `append _ [R]`: W1 against raw `pwrite` + `fdatasync` in R turns of 0.25 s each, and the
//!   median ratio, which the disk's drift mostly cancels out of.
//! - `writers W [R]`: W1 (W = 1) or W2 (W writers, one stream each) against raw in R turns of
//!   0.25 s each: annal, then raw `pwrite` + `fdatasync` in groups of the size annal reached in
//!   that turn, then raw single-event syncs (one fdatasync's latency). Prints each turn and the
//!   medians: annal ÷ raw, annal's p99 ÷ one fdatasync's p99, worst latency, events per fsync.
//!   `writers W R US`: the same on a disk whose sync takes exactly US µs (a sleep, on both
//!   sides, in place of `fdatasync`): the engine's own overhead without the disk's drift.
//! - `build N`: fills a store of N events of 200 B in appends of 100 without fsync (W3's CPU
//!   side: the callers' encoding, the writer's sealing, the hand-offs).

use std::time::{Duration, Instant};

use annal_bench::stats;

use crate::common::{
    Layout, PAYLOAD_BYTES,
    count::CountingStorage,
    raw::{self, Budget},
    workload::{self, Touched},
};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// Runs the workload `args` names (`read-all`, `read-all-recorded`, `read-streams`, `append`,
/// `build`), with the number of events `args` gives next (100,000 if none) and, for reads, the
/// number of reads (or turns) after that (3 if none; reads print the median rate and its
/// range).
pub fn run(args: &[String]) -> Res<()> {
    let what = args.first().map_or("", String::as_str);
    let events = match args.get(1) {
        Some(n) => n.parse()?,
        None => 100_000,
    };
    let rounds = match args.get(2) {
        Some(n) => n.parse()?,
        None => 3,
    };
    let layout = Layout::sized(events, PAYLOAD_BYTES);
    let dir = tempfile::tempdir()?;
    let start = Instant::now();
    match what {
        "read-all" | "read-all-recorded" => {
            let (store, _) = workload::build(dir.path(), layout)?;
            let read =
                if what == "read-all" { workload::read_all } else { workload::read_all_recorded };
            let rates = profiled_reads(&store, &read, rounds, events)?;
            println!("{what}: {events} events, {rounds} reads: {}", in_millions(&rates));
        }
        "raw-crc-records" => {
            let (store, _) = workload::build(dir.path(), layout)?;
            let mapped = raw::Mapped::open(&raw::segment_files(store.dir())?)?;
            let read = move |_: &annal::Store| {
                Ok(Touched { events: mapped.crc_records(), ..Touched::default() })
            };
            let rates = profiled_reads(&store, &read, rounds, events)?;
            println!("{what}: {events} records, {rounds} scans: {}", in_millions(&rates));
        }
        "read-streams" => {
            let layout = Layout::STREAMS;
            let (store, _) = workload::build(dir.path(), layout)?;
            let picks = layout.random_streams();
            let read = move |store: &annal::Store| workload::read_streams(store, &picks);
            let events = Layout::RANDOM_STREAMS_EVENTS;
            let rates = profiled_reads(&store, &read, rounds, events)?;
            println!("{what}: 1,000 random streams, {rounds} reads: {}", in_millions(&rates));
        }
        "append" => append_against_raw(dir.path(), rounds)?,
        "writers" => {
            let latency = args.get(3).map(|us| us.parse().map(Duration::from_micros));
            writers_against_raw(dir.path(), events as usize, rounds, latency.transpose()?)?;
        }
        "build" => {
            let (store, built) = workload::build(dir.path(), layout)?;
            println!("build: {events} events in {built:?}");
            drop(store);
        }
        other => {
            return Err(format!(
                "--profile wants read-all, read-all-recorded, raw-crc-records, read-streams, append, writers or build, not {other:?}"
            )
            .into());
        }
    }
    println!("total {:?}", start.elapsed());
    Ok(())
}

/// `rounds` forward reads of `$all`, the function callgrind's `--toggle-collect` names; the
/// shortest.
#[inline(never)]
fn profiled_reads(
    store: &annal::Store,
    read: &dyn Fn(&annal::Store) -> annal::Result<Touched>,
    rounds: u32,
    events: u64,
) -> Res<Vec<f64>> {
    let mut rates = Vec::with_capacity(rounds as usize);
    for _ in 0..rounds {
        let start = Instant::now();
        let touched = read(store)?;
        rates.push(events as f64 / start.elapsed().as_secs_f64());
        assert!(touched.events > 0, "read something");
    }
    Ok(rates)
}

/// Rates per second as "median M/s (min–max)".
fn in_millions(rates: &[f64]) -> String {
    let (median, low, high) = stats::spread(rates);
    format!("median {:.2}M/s ({:.2}–{:.2})", median / 1e6, low / 1e6, high / 1e6)
}

/// W1 alone: `rounds` pairs of 0.25 s slices, durable single-event appends from one writer and
/// then raw `pwrite` + `fdatasync` of the same bytes; prints each pair's ratio and the median,
/// so two builds can be compared by a figure that the disk's drift mostly cancels out of.
fn append_against_raw(dir: &std::path::Path, rounds: u32) -> Res<()> {
    let syncs = CountingStorage::new();
    let options = workload::counted_options(annal::Durability::Fsync, &syncs);
    let store = annal::Store::open_with(dir.join("store"), options)?;
    let record = raw::record_bytes("writer-0", PAYLOAD_BYTES);
    let budget = Budget::time(Duration::from_millis(250));
    let mut ratios = Vec::new();
    for _ in 0..rounds {
        let a = workload::concurrent_appends(&store, &syncs, 1, PAYLOAD_BYTES, budget);
        let r = raw::group_appends(dir, record, 1, budget)?;
        let ratio = a.events_per_s() / r.events_per_s();
        println!("annal {:.0}/s raw {:.0}/s: {ratio:.2}×", a.events_per_s(), r.events_per_s());
        ratios.push(ratio);
    }
    println!("append: median annal ÷ raw {:.2}×", stats::median(&ratios));
    Ok(())
}

/// W1/W2 alone: `rounds` turns of annal with `writers` threads, raw groups of annal's group size
/// in that turn, and raw single syncs; prints each turn and the medians over the turns.
fn writers_against_raw(
    dir: &std::path::Path,
    writers: usize,
    rounds: u32,
    sync_latency: Option<Duration>,
) -> Res<()> {
    let syncs = sync_latency.map_or_else(CountingStorage::new, CountingStorage::with_sync_latency);
    let options = workload::counted_options(annal::Durability::Fsync, &syncs);
    let store = annal::Store::open_with(dir.join("store"), options)?;
    let record = raw::record_bytes("writer-00", PAYLOAD_BYTES);
    let budget = Budget::time(Duration::from_millis(250));
    let (mut ratios, mut tails, mut worsts, mut groups) = (vec![], vec![], vec![], vec![]);
    for _ in 0..rounds {
        let mut a = workload::concurrent_appends(&store, &syncs, writers, PAYLOAD_BYTES, budget);
        let group = a.group_size().round().max(1.0) as usize;
        let r = raw::group_appends_with(dir, record, group, budget, sync_latency)?;
        let mut one = raw::group_appends_with(dir, record, 1, budget, sync_latency)?;
        let ratio = a.events_per_s() / r.events_per_s();
        let (p99, one_p99) = (a.latencies.quantile(0.99), one.latencies.quantile(0.99));
        let tail = p99.as_secs_f64() / one_p99.as_secs_f64();
        let worst = a.latencies.max();
        println!(
            "annal {:.0}/s raw {:.0}/s (groups of {group}): {ratio:.2}×; p99 {p99:?} = \
             {tail:.2}× one fsync's p99 {one_p99:?}; worst {worst:?}; {:.1} events/fsync",
            a.events_per_s(),
            r.events_per_s(),
            a.group_size()
        );
        ratios.push(ratio);
        tails.push(tail);
        worsts.push(worst.as_secs_f64() * 1e3);
        groups.push(a.group_size());
    }
    let [r, t, w, g] = [&ratios, &tails, &worsts, &groups].map(|v| stats::spread(v));
    println!(
        "writers {writers}: median (min–max) annal ÷ raw {:.2}× ({:.2}–{:.2}); p99 ÷ one \
         fsync's p99 {:.2}× ({:.2}–{:.2}); worst {:.1} ms ({:.1}–{:.1}); events/fsync {:.1} \
         ({:.1}–{:.1})",
        r.0, r.1, r.2, t.0, t.1, t.2, w.0, w.1, w.2, g.0, g.1, g.2
    );
    Ok(())
}
