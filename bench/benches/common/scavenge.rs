//! The scavenge workload, shared by `benches/scavenge.rs` and `examples/scavenge_bench.rs`: a
//! store in which half the events are deletable (half the streams tombstoned), scavenged, next
//! to the raw limit of copying the same segment bytes (read, write, `fdatasync` per file).

#![allow(dead_code, reason = "the bench and the example use different parts")]

use std::{
    fs,
    path::Path,
    time::{Duration, Instant},
};

use annal::{Durability, ExpectedVersion, NewEvent, Options, Store};

/// Payload bytes per event.
pub const PAYLOAD: usize = 200;
/// Streams in the store; every other one is tombstoned.
pub const STREAMS: usize = 1_000;

/// Options of the scavenged store: 8 MiB segments, so there are many sealed ones; no
/// idempotency window, so every deleted event is removable.
pub fn options() -> Options {
    Options {
        durability: Durability::None,
        segment_bytes_max: 8 << 20,
        event_bytes_max: 1 << 20,
        append_bytes_max: 1 << 20,
        group_bytes_max: 1 << 20,
        idempotency_window_events: 0,
        ..Options::default()
    }
}

/// Builds a store of `events` events in appends of 100 to one stream each (streams taken in
/// turn), tombstones every other stream, and rolls onto a fresh segment so every event above is
/// in a sealed segment.
pub fn build(dir: &Path, events: usize) {
    let store = Store::open_with(dir, options()).expect("open");
    for batch in 0..events / 100 {
        let stream = format!("stream-{}", batch % STREAMS);
        let data = || NewEvent::new("Benchmarked", vec![7u8; PAYLOAD]);
        store.append(&stream, ExpectedVersion::Any, (0..100).map(|_| data())).expect("append");
    }
    for stream in (0..STREAMS).step_by(2) {
        store.tombstone_stream(&format!("stream-{stream}"), ExpectedVersion::Any).expect("delete");
    }
    let segments = store.stats().segments;
    while store.stats().segments == segments {
        let roll = NewEvent::new("Roll", vec![0u8; 60_000]);
        store.append("roll", ExpectedVersion::Any, [roll]).expect("roll");
    }
    store.close();
}

/// Copies every file of `from` into the empty directory `to`.
pub fn copy_dir(from: &Path, to: &Path) {
    for entry in fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        fs::copy(entry.path(), to.join(entry.file_name())).expect("copy");
    }
}

/// What one scavenge measured.
pub struct Scavenged {
    /// Bytes of sealed segments it processed.
    pub bytes: u64,
    /// Bytes it gave back.
    pub reclaimed: u64,
    /// Events it removed.
    pub events_removed: u64,
    /// Time of `Store::scavenge` alone (the open is not counted).
    pub time: Duration,
}

/// Opens the store in `dir` and times one scavenge of it.
pub fn scavenge(dir: &Path) -> Scavenged {
    let store = Store::open_with(dir, options()).expect("open");
    let start = Instant::now();
    let report = store.scavenge().expect("scavenge");
    let time = start.elapsed();
    Scavenged {
        bytes: report.bytes_before,
        reclaimed: report.bytes_reclaimed,
        events_removed: report.events_removed,
        time,
    }
}

/// The raw limit: copies every sealed segment of `dir` (all but the last) into `out` as a
/// scavenge would rewrite it, one read, one write and one `fdatasync` per file. Returns the
/// bytes copied and the time.
pub fn raw_copy(dir: &Path, out: &Path) -> (u64, Duration) {
    let mut names: Vec<_> = fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
        .filter(|n| n.ends_with(".seg"))
        .collect();
    names.sort();
    names.pop();
    let start = Instant::now();
    let mut bytes = 0;
    for name in names {
        let data = fs::read(dir.join(&name)).expect("read segment");
        let copy = fs::File::create(out.join(name)).expect("create copy");
        std::io::Write::write_all(&mut &copy, &data).expect("write copy");
        copy.sync_data().expect("fsync copy");
        bytes += data.len() as u64;
    }
    (bytes, start.elapsed())
}
