//! Single workloads for a profiler, so that before/after figures are instruction counts (which
//! repeat to the instruction on a noisy machine) rather than times. Included only by
//! `examples/bench.rs`:
//!
//! ```text
//! cargo build --release --example bench
//! valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*profiled_reads*' \
//!     target/release/examples/bench --profile read-all 100000
//! valgrind --tool=callgrind target/release/examples/bench --profile build 100000
//! ```
//!
//! `read-all` builds a store outside the measured function, then reads `$all` forward three
//! times (or as many as a third argument says) through [`workload::read_all`], the same code the table times (per event:
//! instructions ÷ (3 × events)); `read-all-recorded` does the same through the iterator of
//! `RecordedEvent`s ([`workload::read_all_recorded`]); `read-streams` reads W5's 1,000 random
//! whole streams (its own store; the count is ignored). `build` fills a store of 200 B events
//! in appends of 100 without fsync (W3's CPU side: callers' encoding, the writer's sealing,
//! the hand-offs).

use std::time::{Duration, Instant};

use super::{
    Layout, PAYLOAD_BYTES,
    workload::{self, Touched},
};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// Runs the workload `args` names (`read-all`, `read-all-recorded`, `read-streams`, `build`),
/// with the number of events `args` gives next (100,000 if none) and, for reads, the number of
/// reads after that (3 if none; the best is printed, so many reads give a steadier rate).
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
            let best = profiled_reads(&store, &read, rounds)?;
            let rate = events as f64 / best.as_secs_f64() / 1e6;
            println!("{what}: {events} events, best of {rounds} reads {best:?}: {rate:.2}M/s");
        }
        "read-streams" => {
            let layout = Layout::STREAMS;
            let (store, _) = workload::build(dir.path(), layout)?;
            let picks = layout.random_streams();
            let read = move |store: &annal::Store| workload::read_streams(store, &picks);
            let best = profiled_reads(&store, &read, rounds)?;
            let rate = Layout::RANDOM_STREAMS_EVENTS as f64 / best.as_secs_f64() / 1e6;
            println!("{what}: 1,000 random streams, best of {rounds} reads {best:?}: {rate:.2}M/s");
        }
        "build" => {
            let (store, built) = workload::build(dir.path(), layout)?;
            println!("build: {events} events in {built:?}");
            drop(store);
        }
        other => {
            return Err(format!(
                "--profile wants read-all, read-all-recorded, read-streams or build, not {other:?}"
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
) -> Res<Duration> {
    let mut best = Duration::MAX;
    for _ in 0..rounds {
        let start = Instant::now();
        let touched = read(store)?;
        best = best.min(start.elapsed());
        assert!(touched.events > 0, "read something");
    }
    Ok(best)
}
