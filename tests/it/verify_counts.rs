//! `Store::verify` and `Store::stats` on a live and a scavenged store: verify beside appends
//! and scavenges, an unsupported format version, and events present against positions used.

use std::{fs, os::unix::fs::FileExt};

use annal::{
    Error, ExpectedVersion, NewEvent, Position, Store,
    format::{FORMAT_VERSION, SEGMENT_HEADER_LEN},
};

use crate::{
    common::open,
    readonly_scavenge::{Churner, options},
};

/// How many times [`verify_beside_appends_and_scavenges_is_clean_every_time`] verifies.
const VERIFIES: u64 = 3_000;

#[test]
fn verify_beside_appends_and_scavenges_is_clean_every_time() {
    // `Store::verify` read a segment's committed length twice, once for its view and once to
    // slice it: an append published in between made the slice reach past the view, and verify
    // panicked on the segment being appended to.
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), options());
    let churner = Churner::start(&store);
    let mut problems = Vec::new();
    for _ in 0..VERIFIES {
        let report = store.verify().expect("verify reads");
        assert!(report.events <= report.positions, "{report:?}");
        if !report.is_clean() {
            problems.push(report.problems);
        }
    }
    churner.stop();
    assert!(problems.is_empty(), "{} unclean reports, first: {:?}", problems.len(), problems[0]);
}

#[test]
fn verify_unsupported_format_version_says_so_not_checksum() {
    // A segment header of another format version (with a valid checksum) was reported as a
    // header checksum failure, sending the operator after damage that is not there.
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), options());
    while store.stats().segments < 2 {
        store.append("s-1", ExpectedVersion::Any, [NewEvent::new("E", vec![0; 300])]).unwrap();
    }
    let path = dir.path().join("00000000000000000000.seg");
    let file = fs::OpenOptions::new().read(true).write(true).open(&path).unwrap();
    let mut header = [0u8; SEGMENT_HEADER_LEN];
    file.read_exact_at(&mut header, 0).unwrap();
    let found = FORMAT_VERSION + 1;
    header[8..10].copy_from_slice(&found.to_le_bytes());
    let crc = crc32fast::hash(&header[..28]);
    header[28..32].copy_from_slice(&crc.to_le_bytes());
    file.write_all_at(&header, 0).unwrap();
    match store.verify() {
        Err(Error::UnsupportedFormat { segment, found: f, supported }) => {
            assert_eq!((segment.as_str(), f, supported), (path_name(&path), found, FORMAT_VERSION));
        }
        other => panic!("expected UnsupportedFormat, got {other:?}"),
    }
}

fn path_name(path: &std::path::Path) -> &str {
    path.file_name().and_then(|n| n.to_str()).expect("a file name")
}

#[test]
fn stats_and_verify_after_scavenge_count_events_present_and_positions_used() {
    // After a scavenge, `Stats::events`, `annal stats` and verify's report counted positions as
    // events: a store with 73 readable events reported 1,229.
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), options());
    for n in 0..200u64 {
        let event = NewEvent::new("E", vec![b'x'; 100]);
        store.append(&format!("s-{}", n % 10), ExpectedVersion::Any, [event]).unwrap();
    }
    for stream in 1..10 {
        store.tombstone_stream(&format!("s-{stream}"), ExpectedVersion::Any).unwrap();
    }
    // Seal everything so far: scavenging leaves the active segment alone.
    let segments = store.stats().segments;
    while store.stats().segments == segments {
        store.append("roll", ExpectedVersion::Any, [NewEvent::new("R", vec![0; 900])]).unwrap();
    }
    let report = store.scavenge().unwrap();
    assert!(report.events_removed > 0, "{report:?}");
    let present = store.read_all_forward(Position::START, usize::MAX).count() as u64;
    let stats = store.stats();
    assert_eq!(stats.events, stats.head.get(), "positions used, from 0");
    assert_eq!(stats.events_present, present);
    assert!(present < stats.events, "{present} of {}", stats.events);
    let verified = store.verify().unwrap();
    assert!(verified.is_clean(), "{verified:?}");
    assert_eq!((verified.events, verified.positions), (present, stats.events));
    // The counts survive a reopen, which rebuilds them from the segments.
    store.close();
    drop(store);
    let reopened = Store::open_read_only(dir.path(), options()).unwrap();
    let stats = reopened.stats();
    assert_eq!((stats.events_present, stats.events), (present, reopened.head().get()));
}
