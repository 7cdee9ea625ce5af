//! The manual run behind the "100M events opens in under 1 s cold" figure: builds a store of
//! `events` 200-byte events in 10k streams (batches of 100, no fsync; kept in `dir` for later
//! runs), then opens it and reads the last event of a random stream `rounds` times, each after
//! `sync` and dropping the page cache (root only), and prints each round and the median.
//!
//! `cargo run --release --example big_open -- DIR [EVENTS] [ROUNDS]` (defaults: 100,000,000
//! events, ~30 GB, and 10 rounds).

#[path = "../benches/common/mod.rs"]
mod common;

use std::{path::Path, time::Duration};

use common::{Layout, PAYLOAD_BYTES, count::CountingAlloc, drop_page_cache, stream_name, workload};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(dir) = args.first().map(Path::new) else {
        return Err("usage: big_open DIR [EVENTS] [ROUNDS]".into());
    };
    let events: u64 = args.get(1).map_or(Ok(100_000_000), |n| n.parse())?;
    let rounds: usize = args.get(2).map_or(Ok(10), |n| n.parse())?;
    let layout = Layout { streams: 10_000, ..Layout::sized(events, PAYLOAD_BYTES) };
    let marker = dir.with_extension("built");
    if std::fs::read_to_string(&marker).ok() != Some(format!("{layout:?}")) {
        let _ = std::fs::remove_dir_all(dir);
        let (store, took) = workload::build(dir, layout)?;
        store.flush_index_files();
        store.close();
        println!("built {events} events in {took:?}; {} bytes", common::dir_bytes(dir));
        std::fs::write(&marker, format!("{layout:?}"))?;
    }
    // One untimed open first, whose indexer brings the derived files up to date (a store
    // written by an older build gets its stream table refolded in the background).
    let store = annal::Store::open(dir)?;
    store.flush_index_files();
    store.close();
    drop(store);
    let mut times = Vec::with_capacity(rounds);
    for (round, stream) in layout.random_filled(rounds, 13).into_iter().enumerate() {
        if !drop_page_cache() {
            return Err("could not drop the page cache (root only)".into());
        }
        let opened = workload::open_read_last(dir, &stream_name(stream))?;
        let report = opened.store.recovery_report().clone();
        println!(
            "round {round}: open + read {:?}, heap kept by the open {} B, scanned {}, rebuilt {:?}",
            opened.elapsed, opened.open_heap_bytes, report.segments_scanned, report.rebuilt
        );
        times.push(opened.elapsed);
        opened.store.close();
    }
    times.sort();
    let median = times.get(times.len() / 2).copied().unwrap_or(Duration::ZERO);
    let (min, max) = (times.first().copied(), times.last().copied());
    println!("cold open + read, {rounds} rounds: median {median:?}, min {min:?}, max {max:?}");
    Ok(())
}
