//! W8, annal's side: a store of many streams holding one event each, opened, and single-event
//! appends to random existing streams (`ExpectedVersion::Exact`, `Durability::None`: the CPU
//! side of an append, where the size of the stream index shows).

use std::{
    path::Path,
    time::{Duration, Instant},
};

use annal::{
    Durability, ExpectedVersion, NewEvent, Options, Result, Store, StreamAppend, StreamVersion,
};

use super::{EVENT_TYPE, Latencies, Rng, count::CountingAlloc, payload, raw::Writes, stream_name};

/// The large store of W8: 10M streams of one event (~3 GB; see `examples/bench.rs`).
pub const TEN_MILLION_STREAMS: u64 = 10_000_000;
/// The store W8 compares it with, built in every run: 10k streams of one event.
pub const FEW_STREAMS: u64 = 10_000;
/// Streams per `append_multi` while building: ~290 kB, well under `append_bytes_max`.
const BUILD_PARTS: u64 = 1_000;
/// Most distinct streams one run appends to, so the bench's own bookkeeping stays small;
/// a million is far past any cache, so the store's index is reached at random all the same.
const PICKS_MAX: u64 = 1 << 20;

/// Options of every W8 store: no fsync.
pub fn options() -> Options {
    Options { durability: Durability::None, ..Options::default() }
}

/// Fills a new store in `dir` with `streams` streams of one 200 B event each, `BUILD_PARTS`
/// streams per atomic append; returns the time it took.
pub fn build(dir: &Path, streams: u64) -> Result<Duration> {
    let store = Store::open_with(dir, options())?;
    let data = payload(super::PAYLOAD_BYTES);
    let start = Instant::now();
    for first in (0..streams).step_by(BUILD_PARTS as usize) {
        let parts = (first..streams.min(first + BUILD_PARTS)).map(|s| {
            let event = NewEvent::new(EVENT_TYPE, data.clone());
            StreamAppend::new(stream_name(s), ExpectedVersion::NoStream, [event])
        });
        store.append_multi(parts)?;
    }
    let took = start.elapsed();
    store.close();
    Ok(took)
}

/// Opens the store in `dir` without fsync: the open time and the heap bytes the open kept
/// (as the binary's [`CountingAlloc`] counts them; 0 if it is not installed).
pub fn open(dir: &Path) -> Result<(Store, Duration, i64)> {
    let heap = CountingAlloc::live_bytes();
    let start = Instant::now();
    let store = Store::open_with(dir, options())?;
    let took = start.elapsed();
    Ok((store, took, (CountingAlloc::live_bytes() - heap) as i64))
}

/// Distinct random streams of a store and their last versions, looked up before any timing,
/// so that the timed loop knows every expected version as an application would.
pub struct Picks {
    names: Vec<String>,
    versions: Vec<u64>,
    next: usize,
}

impl Picks {
    /// Up to `PICKS_MAX` distinct streams of `store`'s `streams`, in random (seeded) order.
    pub fn new(store: &Store, streams: u64, seed: u64) -> Picks {
        let picks = Rng::new(seed).distinct(streams.min(PICKS_MAX) as usize, streams);
        let names: Vec<String> = picks.into_iter().map(stream_name).collect();
        let versions = names
            .iter()
            .map(|n| store.stream_version(n).expect("W8 streams all hold events").get())
            .collect();
        Picks { names, versions, next: 0 }
    }
}

/// Single-event appends to `picks` in turn (round the list again when it runs out), each
/// with the exact expected version, for `time`.
pub fn random_appends(store: &Store, picks: &mut Picks, time: Duration) -> Result<Writes> {
    let data = payload(super::PAYLOAD_BYTES);
    let mut latencies = Latencies::default();
    let start = Instant::now();
    while start.elapsed() < time {
        let at = picks.next;
        picks.next = (at + 1) % picks.names.len();
        let expected = ExpectedVersion::Exact(picks.versions[at]);
        let t = Instant::now();
        let event = NewEvent::new(EVENT_TYPE, data.clone());
        let done = store.append(&picks.names[at], expected, [event])?;
        latencies.push(t.elapsed());
        picks.versions[at] = StreamVersion::get(done.last_version);
    }
    let events = latencies.len() as u64;
    let bytes = events * super::PAYLOAD_BYTES as u64;
    Ok(Writes { syncs: 0, events, bytes, elapsed: start.elapsed(), latencies })
}
