//! Scavenging under simulated power loss: a power cut at every I/O operation of a scavenge, each
//! crash damaged several ways (four), must leave a store that opens, holds every event that was
//! visible before (same position, same bytes), verifies clean, and scavenges to the end when
//! run again. Proves the rewrite protocol (write `.scav`, fsync, rename over, fsync directory)
//! leaves each segment either as it was or fully rewritten.

use std::{collections::BTreeMap, io};

use annal::{ExpectedVersion, NewEvent, Options, Store, StreamVersion, io::SimDisk};

use crate::{
    scavenge::all,
    sim_model::{self, dir},
};

/// Damage variants tried at each crash point.
const VARIANTS: u64 = 4;
const STREAMS: usize = 8;
const EVENTS: usize = 12;

/// The simulation's options (2 KiB segments), with no idempotency window so that deleted
/// events are removable.
fn options(disk: &SimDisk) -> Options {
    Options { idempotency_window_events: 0, ..sim_model::options(disk) }
}

type Events = BTreeMap<u64, (String, u64, Vec<u8>)>;

/// Each stream's visible events: stream → positions.
fn visible(store: &Store) -> BTreeMap<String, Vec<u64>> {
    (0..STREAMS)
        .map(|s| format!("s-{s}"))
        .map(|name| {
            let positions = match store.read_stream_forward(&name, StreamVersion::START, 1000) {
                Ok(read) => read.map(|e| e.unwrap().position().get()).collect(),
                Err(_) => Vec::new(),
            };
            (name, positions)
        })
        .collect()
}

/// The same store every time: streams appended round-robin, one soft-deleted, `tombstones`
/// tombstoned (with several, what remains of neighbouring segments fits one and they merge),
/// one capped, then rolled onto a fresh segment so everything above is sealed.
fn build(disk: &SimDisk, tombstones: &[&str]) {
    let store = Store::open_with(dir(), options(disk)).unwrap();
    for v in 0..EVENTS {
        for s in 0..STREAMS {
            let data = format!("{s}/{v}/{}", "x".repeat(60)).into_bytes();
            store
                .append(&format!("s-{s}"), ExpectedVersion::Any, [NewEvent::new("T", data)])
                .unwrap();
        }
    }
    store.delete_stream("s-0", ExpectedVersion::Any).unwrap();
    for &tombstoned in tombstones {
        store.tombstone_stream(tombstoned, ExpectedVersion::Any).unwrap();
    }
    let capped = annal::StreamMetadata { max_count: Some(3), ..Default::default() };
    store.set_stream_metadata("s-2", ExpectedVersion::NoStream, capped).unwrap();
    let segments = store.stats().segments;
    while store.stats().segments == segments {
        store.append("roll", ExpectedVersion::Any, [NewEvent::new("R", vec![0; 400])]).unwrap();
    }
    store.close();
}

#[test]
fn scavenge_crash_at_every_io_point_keeps_every_visible_event() {
    // One store whose segments are rewritten one by one, one whose segments also merge.
    let (cases, _) = simulate(&["s-1"]);
    let (merge_cases, finished_merges) = simulate(&["s-1", "s-4", "s-5"]);
    eprintln!(
        "scavenge crash simulation: {} cases, {finished_merges} with a merge finished by the open",
        cases + merge_cases
    );
    assert!(finished_merges > 0, "no crash fell between a merge's rename and its removals");
}

/// Crashes at every I/O operation of a scavenge of the store `build(_, tombstones)` makes;
/// returns the cases run and how many of them the open had to finish a merge in.
fn simulate(tombstones: &[&str]) -> (usize, usize) {
    let reference = SimDisk::new();
    build(&reference, tombstones);
    let store = Store::open_with(dir(), options(&reference)).unwrap();
    let (before, visible_before) = (all(&store), visible(&store));
    let start = reference.ops();
    let report = store.scavenge().unwrap();
    let scavenge_ops = reference.ops() - start;
    assert!(report.events_removed > 0 && report.segments_rewritten > 1, "{report:?}");
    drop(store);

    let (mut cases, mut finished_merges) = (0, 0);
    for crash_at in 0..=scavenge_ops {
        for variant in 0..VARIANTS {
            let disk = SimDisk::new();
            build(&disk, tombstones);
            let store = Store::open_with(dir(), options(&disk)).unwrap();
            disk.fail_at(disk.ops() + crash_at, io::ErrorKind::Other, true);
            // A failed write of a derived file (an index file, the stream table) is not a
            // failed scavenge: only the I/O of segments must fail it.
            let _ = store.scavenge();
            drop(store);
            let crashed = disk.crash(variant);
            let where_ = format!(
                "tombstones {tombstones:?}: crash at scavenge op {crash_at} of {scavenge_ops}, \
                 variant {variant}"
            );
            finished_merges += usize::from(check(&crashed, &before, &visible_before, &where_));
            cases += 1;
        }
    }
    (cases, finished_merges)
}

/// Opens the crashed disk and checks it against what was there before the scavenge. Returns
/// whether the open had to finish a merge (remove segments a merged one replaced).
fn check(
    disk: &SimDisk,
    before: &Events,
    visible_before: &BTreeMap<String, Vec<u64>>,
    where_: &str,
) -> bool {
    let store =
        Store::open_with(dir(), options(disk)).unwrap_or_else(|e| panic!("{where_}: open: {e}"));
    let now = all(&store);
    for (position, event) in &now {
        assert!(before.get(position) == Some(event), "{where_}: event at {position} changed");
    }
    assert_eq!(visible(&store), *visible_before, "{where_}: visible events differ");
    for positions in visible_before.values() {
        assert!(positions.iter().all(|p| now.contains_key(p)), "{where_}: a visible event is gone");
    }
    assert!(store.verify().unwrap().is_clean(), "{where_}: verify");
    assert!(!disk_has_scav_files(disk), "{where_}: a .scav file survived the open");
    // The interrupted scavenge finishes when run again, and the store takes appends.
    store.scavenge().unwrap_or_else(|e| panic!("{where_}: scavenge again: {e}"));
    assert_eq!(visible(&store), *visible_before, "{where_}: after the second scavenge");
    store.append("s-3", ExpectedVersion::Any, [NewEvent::new("T", b"after".to_vec())]).unwrap();
    !store.recovery_report().merged_leftovers.is_empty()
}

fn disk_has_scav_files(disk: &SimDisk) -> bool {
    use annal::io::Storage;
    disk.list_dir(&dir()).unwrap().iter().any(|name| name.ends_with(".scav"))
}
