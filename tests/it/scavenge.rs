//! Scavenging: what it removes and keeps, that positions never change, that it runs beside
//! appends and readers, and that it can be watched and cancelled.

use std::{collections::BTreeMap, fs};

use annal::{
    Error, ExpectedVersion, NewEvent, Options, Position, ScavengeControl, Store, StreamMetadata,
    StreamVersion,
};

use crate::common::{fast_options, open};

/// Small segments, no idempotency window (so nothing is kept for retries), no fsync.
fn options() -> Options {
    Options { segment_bytes_max: 16 * 1024, idempotency_window_events: 0, ..fast_options() }
}

fn payload(stream: usize, version: usize) -> NewEvent {
    NewEvent::new("Tested", format!("{stream}/{version}/{}", "x".repeat(150)).into_bytes())
}

/// `streams` streams of `events` events each, appended round-robin so that every segment holds
/// events of many streams.
fn build(store: &Store, streams: usize, events: usize) {
    for version in 0..events {
        for stream in 0..streams {
            let expected = match version {
                0 => ExpectedVersion::NoStream,
                v => ExpectedVersion::Exact(v as u64 - 1),
            };
            store.append(&format!("s-{stream}"), expected, [payload(stream, version)]).unwrap();
        }
    }
}

/// A store of `streams` × `events` (see [`build`]) in which every other stream is soft-deleted,
/// rolled so that all of it is sealed.
fn half_deleted(dir: &std::path::Path, streams: usize, events: usize) -> Store {
    let store = open(dir, options());
    build(&store, streams, events);
    for stream in (0..streams).step_by(2) {
        store.delete_stream(&format!("s-{stream}"), ExpectedVersion::Any).unwrap();
    }
    roll(&store);
    store
}

/// A store of 10 streams × 40 events in which all but `s-0` are tombstoned, rolled so that all
/// of it is sealed: what remains of neighbouring segments fits one, so they merge.
fn mostly_tombstoned(dir: &std::path::Path) -> Store {
    let store = open(dir, options());
    build(&store, 10, 40);
    for stream in 1..10 {
        store.tombstone_stream(&format!("s-{stream}"), ExpectedVersion::Any).unwrap();
    }
    roll(&store);
    store
}

/// Appends to stream `roll` until the log rotates, so that every earlier event is in a sealed
/// segment.
fn roll(store: &Store) {
    let segments = store.stats().segments;
    while store.stats().segments == segments {
        store.append("roll", ExpectedVersion::Any, [NewEvent::new("R", vec![0; 900])]).unwrap();
    }
}

/// Every event of `$all`: position → (stream, version, data).
pub fn all(store: &Store) -> BTreeMap<u64, (String, u64, Vec<u8>)> {
    store
        .read_all_forward(Position::START, usize::MAX)
        .map(|e| {
            let e = e.unwrap();
            (e.position().get(), (e.stream().to_owned(), e.version().get(), e.data().to_vec()))
        })
        .collect()
}

/// Bytes of the segment files (the index files beside them shrink with them).
fn dir_bytes(dir: &std::path::Path) -> u64 {
    crate::common::segment_paths(dir).iter().map(|p| fs::metadata(p).unwrap().len()).sum()
}

#[test]
fn scavenge_half_deleted_store_halves_its_size_and_keeps_positions() {
    let dir = tempfile::tempdir().unwrap();
    let store = half_deleted(dir.path(), 40, 25);
    let before = all(&store);
    let bytes_before = dir_bytes(dir.path());
    let report = store.scavenge().unwrap();
    let bytes_after = dir_bytes(dir.path());
    eprintln!("{report:?}: {bytes_before} → {bytes_after} bytes on disk");
    // 20 deleted streams × 24 of their 25 events (each keeps its last event).
    assert_eq!(report.events_removed, 20 * 24);
    let ratio = bytes_after as f64 / bytes_before as f64;
    assert!((0.45..0.62).contains(&ratio), "disk use went from {bytes_before} to {bytes_after}");
    assert_eq!(report.bytes_reclaimed, bytes_before - bytes_after);

    let after = all(&store);
    for (position, event) in &after {
        assert!(before.get(position) == Some(event), "survivor at {position} changed");
    }
    for (position, (stream, ..)) in &before {
        let number: usize = stream.strip_prefix("s-").map_or(1, |n| n.parse().unwrap());
        if number % 2 == 1 {
            assert!(after.contains_key(position), "visible event at {position} was removed");
        }
    }
    check_after_scavenge(&store, &after, 25);
    store.close();
    let store = open(dir.path(), options());
    check_after_scavenge(&store, &after, 26);
}

/// The log holds `after` (and what was appended since), verifies clean, and the deleted stream
/// `s-0` continues its numbering at `next_version`.
fn check_after_scavenge(store: &Store, after: &BTreeMap<u64, (String, u64, Vec<u8>)>, next: u64) {
    let now = all(store);
    assert!(after.iter().all(|(p, e)| now.get(p) == Some(e)), "the scavenged log changed");
    assert!(store.verify().unwrap().is_clean());
    let deleted = store.read_stream_forward("s-0", StreamVersion(next), 10);
    assert!(matches!(deleted, Err(Error::StreamNotFound { .. })) || next > 25);
    assert_eq!(
        store.read_stream_forward("s-1", StreamVersion::START, usize::MAX).unwrap().count(),
        25
    );
    // The deleted stream's numbering survives the removal of its events.
    let r = store.append("s-0", ExpectedVersion::Exact(next - 1), [payload(0, 0)]);
    match r {
        Ok(r) => assert_eq!(r.first_version, StreamVersion(next)),
        Err(e) => panic!("append to the deleted stream: {e}"),
    }
}

#[test]
fn scavenge_tombstone_max_count_and_truncate_before_remove_what_they_hide() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), options());
    build(&store, 6, 30);
    store.tombstone_stream("s-0", ExpectedVersion::Any).unwrap();
    let count = StreamMetadata { max_count: Some(5), ..StreamMetadata::default() };
    store.set_stream_metadata("s-1", ExpectedVersion::NoStream, count.clone()).unwrap();
    // Several metadata changes: only the latest stays after a scavenge.
    store.set_stream_metadata("s-1", ExpectedVersion::Exact(0), count).unwrap();
    let truncate = StreamMetadata { truncate_before: Some(20), ..StreamMetadata::default() };
    store.set_stream_metadata("s-2", ExpectedVersion::NoStream, truncate).unwrap();
    roll(&store);
    let report = store.scavenge().unwrap();
    assert_eq!(report.events_removed, 30 + 25 + 20 + 1);
    let streams: Vec<String> = all(&store).into_values().map(|(s, ..)| s).collect();
    let count = |name: &str| streams.iter().filter(|s| *s == name).count();
    assert_eq!(count("s-0"), 0, "a tombstoned stream loses every event");
    assert_eq!(count("$$s-0"), 1, "its tombstone stays");
    assert_eq!((count("s-1"), count("$$s-1")), (5, 1));
    assert_eq!((count("s-2"), count("s-3")), (10, 30));
    drop(store);
    let store = open(dir.path(), options());
    assert!(matches!(
        store.append("s-0", ExpectedVersion::Any, [payload(0, 0)]),
        Err(Error::StreamDeleted { .. })
    ));
    let s1: Vec<u64> = store
        .read_stream_forward("s-1", StreamVersion::START, usize::MAX)
        .unwrap()
        .map(|e| e.unwrap().version().get())
        .collect();
    assert_eq!(s1, [25, 26, 27, 28, 29]);
    assert_eq!(store.scavenge().unwrap().events_removed, 0, "a second pass finds nothing");
}

#[test]
fn scavenge_keeps_the_idempotency_window_and_the_active_segment() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), Options { idempotency_window_events: 1_000, ..options() });
    build(&store, 10, 20);
    for stream in 0..10 {
        store.delete_stream(&format!("s-{stream}"), ExpectedVersion::Any).unwrap();
    }
    assert_eq!(store.scavenge().unwrap().events_removed, 0, "all 210 events are in the window");
    let dir2 = tempfile::tempdir().unwrap();
    let store = open(dir2.path(), options());
    build(&store, 2, 5);
    store.delete_stream("s-0", ExpectedVersion::Any).unwrap();
    let report = store.scavenge().unwrap();
    assert_eq!((report.segments_scanned, report.events_removed), (0, 0), "one active segment");
}

#[test]
fn scavenge_runs_beside_appends_an_old_reader_and_a_subscription() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), options());
    build(&store, 20, 20);
    for stream in (0..20).step_by(2) {
        store.delete_stream(&format!("s-{stream}"), ExpectedVersion::Any).unwrap();
    }
    let before = all(&store);
    let mut reader = store.read_all_forward(Position::START, usize::MAX);
    let first: Vec<_> = reader.by_ref().take(10).map(|e| e.unwrap().position().get()).collect();
    let mut subscription = store.subscribe_to_all(Position::START, annal::Filter::all());
    let mut delivered = vec![subscription.recv().unwrap().position().get()];
    let writer = {
        let store = store.clone();
        std::thread::spawn(move || {
            (0..200)
                .map(|i| store.append("live", ExpectedVersion::Any, [payload(99, i)]).unwrap())
                .collect::<Vec<_>>()
        })
    };
    let report = store.scavenge().unwrap();
    assert!(report.events_removed > 0);
    let acked = writer.join().unwrap();
    // The reader goes on: every event it returns is valid and in order, and no visible one is
    // skipped.
    let mut last = *first.last().unwrap();
    for event in reader {
        let event = event.unwrap();
        let p = event.position().get();
        assert!(p > last);
        if let Some((stream, version, data)) = before.get(&p) {
            assert_eq!(
                (event.stream(), event.version().get(), event.data()),
                (stream.as_str(), *version, data.as_slice())
            );
        }
        last = p;
    }
    let after = all(&store);
    for a in &acked {
        assert!(after.contains_key(&a.first_position.get()), "append at {} lost", a.first_position);
    }
    for (p, (stream, ..)) in &before {
        if stream.strip_prefix("s-").is_some_and(|n| n.parse::<usize>().unwrap() % 2 == 1) {
            assert!(after.contains_key(p));
        }
    }
    assert!(store.verify().unwrap().is_clean());
    // The subscription went on through the scavenge: in order, every event still in the log
    // delivered, up to the last append.
    let end = acked.last().unwrap().last_position.get();
    while *delivered.last().unwrap() < end {
        delivered.push(subscription.recv().unwrap().position().get());
    }
    assert!(delivered.windows(2).all(|w| w[0] < w[1]));
    assert!(after.keys().all(|p| delivered.binary_search(p).is_ok()), "a live event was skipped");
}

#[test]
fn scavenge_cancelled_or_read_only_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), options());
    build(&store, 10, 20);
    store.delete_stream("s-1", ExpectedVersion::Any).unwrap();
    roll(&store);
    let before = all(&store);
    let control = ScavengeControl::new();
    control.cancel();
    let report = store.scavenge_with(&control).unwrap();
    assert!(report.cancelled);
    assert_eq!((report.segments_rewritten, report.events_removed), (0, 0));
    assert_eq!(all(&store), before);
    let read_only = Store::open_read_only(dir.path(), options()).unwrap();
    assert!(matches!(read_only.scavenge(), Err(Error::ReadOnly)));

    let control = ScavengeControl::new();
    let report = store.scavenge_with(&control).unwrap();
    let progress = control.progress();
    assert_eq!(progress.bytes_done, progress.bytes_total);
    assert_eq!(progress.bytes_reclaimed, report.bytes_reclaimed);
    assert!(report.bytes_reclaimed > 0 && !report.cancelled);
    // The read-only store opened before still reads the old files it holds.
    assert_eq!(all(&read_only), before);
}

#[test]
fn scavenge_leftover_temporary_file_is_removed_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), options());
    build(&store, 4, 4);
    drop(store);
    let stray = dir.path().join("00000000000000000000.seg.scav");
    fs::write(&stray, b"half a rewrite").unwrap();
    let store = open(dir.path(), options());
    assert!(!stray.exists());
    assert_eq!(all(&store).len(), 16);
}

#[test]
fn scavenge_damaged_scavenged_segment_is_corruption_and_salvage_reads_around_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = half_deleted(dir.path(), 10, 20);
    assert!(store.scavenge().unwrap().segments_rewritten > 0);
    let before = all(&store);
    store.close();
    drop(store);
    crate::common::remove_derived_files(dir.path());
    let first = dir.path().join("00000000000000000000.seg");
    let mut bytes = fs::read(&first).unwrap();
    assert_ne!(bytes[24..28], [0; 4], "the first segment was scavenged");
    let at = bytes.len() / 2;
    bytes[at] ^= 0x10;
    fs::write(&first, &bytes).unwrap();
    let refused = Store::open_with(dir.path(), options());
    assert!(
        matches!(&refused, Err(Error::Corruption { segment, .. }) if segment.starts_with("0000")),
        "a scavenged segment has no torn tail: {:?}",
        refused.map(|_| ())
    );
    let salvage = Options { recovery_mode: annal::RecoveryMode::Salvage, ..options() };
    let salvaged = Store::open_with(dir.path(), salvage).unwrap();
    let dropped = &salvaged.recovery_report().salvaged;
    assert_eq!(dropped.len(), 1);
    assert!(dropped[0].offset <= at as u64);
    let kept = all(&salvaged);
    assert!(!kept.is_empty() && kept.len() < before.len());
    assert!(
        kept.iter().all(|(p, e)| before.get(p) == Some(e)),
        "salvage returns only intact events"
    );
}

#[test]
fn scavenge_merges_neighbours_whose_remains_fit_one_segment() {
    let dir = tempfile::tempdir().unwrap();
    let store = mostly_tombstoned(dir.path());
    let (segments_before, before) = (store.stats().segments, all(&store));
    let report = store.scavenge().unwrap();
    let segments_after = store.stats().segments;
    eprintln!("{report:?}: {segments_before} → {segments_after} segments");
    assert!(segments_after * 2 < segments_before, "{segments_before} → {segments_after}");
    assert_eq!(report.segments_rewritten, segments_before - 1);
    let after = all(&store);
    assert!(after.iter().all(|(p, e)| before.get(p) == Some(e)));
    assert_eq!(after.values().filter(|(s, ..)| s == "s-0").count(), 40);
    let files = fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".seg"));
    assert_eq!(files.count(), segments_after, "merged segments' files are gone");
    store.close();
    let store = open(dir.path(), options());
    assert_eq!(all(&store), after);
    assert!(store.verify().unwrap().is_clean());
    assert!(store.recovery_report().merged_leftovers.is_empty());
}

#[test]
fn scavenge_merge_interrupted_before_the_old_files_went_is_finished_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let store = mostly_tombstoned(dir.path());
    let originals: Vec<(std::path::PathBuf, Vec<u8>)> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .map(|p| (p.clone(), fs::read(&p).unwrap()))
        .collect();
    store.scavenge().unwrap();
    let after = all(&store);
    store.close();
    // A crash after the merged segment was renamed into place but before the segments it
    // replaced were removed: put those back.
    let mut restored = 0;
    for (path, bytes) in &originals {
        if !path.exists() {
            fs::write(path, bytes).unwrap();
            restored += 1;
        }
    }
    assert!(restored > 0);
    let read_only = Store::open_read_only(dir.path(), options()).unwrap();
    assert_eq!(read_only.recovery_report().merged_leftovers.len(), restored);
    assert_eq!(all(&read_only), after, "a read-only open skips the leftovers");
    drop(read_only);
    let store = open(dir.path(), options());
    assert_eq!(store.recovery_report().merged_leftovers.len(), restored);
    assert!(originals.iter().filter(|(p, _)| p.exists()).count() < originals.len());
    assert_eq!(all(&store), after);
    assert!(store.verify().unwrap().is_clean());
}
