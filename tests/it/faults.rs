//! Injected I/O faults on the simulated disk and media damage on the real one: a failed fsync
//! or a full disk poisons the store without losing anything acknowledged; a flipped bit or a
//! misdirected write in durable data is reported as corruption with its location, never cut
//! away silently and never handed to a reader as data.

use std::{fs::OpenOptions, io, os::unix::fs::FileExt, path::PathBuf, sync::Arc};

use annal::{CorruptionKind, Error, ExpectedVersion, Options, Position, Store, io::SimDisk};

use crate::common::event;

fn sim_dir() -> PathBuf {
    PathBuf::from("/sim/faults")
}

fn sim_options(disk: &SimDisk) -> Options {
    Options {
        storage: Arc::new(disk.clone()),
        segment_bytes_max: 64 << 10,
        event_bytes_max: 1024,
        append_bytes_max: 1024,
        group_bytes_max: 1024,
        ..Options::default()
    }
}

/// Appends `n` single events to `s` and returns the positions.
fn fill(store: &Store, n: u64) -> Vec<u64> {
    (0..n)
        .map(|i| store.append("s", ExpectedVersion::Any, [event(i)]).unwrap().first_position.get())
        .collect()
}

fn datas(store: &Store) -> Vec<Vec<u8>> {
    store
        .read_all_forward(Position::START, usize::MAX)
        .map(|e| e.unwrap().data().to_vec())
        .collect()
}

/// Finds the next operation of the given kind by trying: runs `probe` once per candidate op.
fn fail_next_matching(disk: &SimDisk, kind: io::ErrorKind, store: &Store, n: u64) -> Error {
    disk.fail_at(disk.ops(), kind, false);
    let result = store.append("s", ExpectedVersion::Any, [event(n)]);
    disk.clear_faults();
    result.expect_err("the injected failure must fail the append")
}

#[test]
fn faults_failed_write_poisons_without_partial_visibility() {
    let disk = SimDisk::new();
    let store = Store::open_with(sim_dir(), sim_options(&disk)).unwrap();
    fill(&store, 5);
    let before = datas(&store);
    // The next disk operation of an append is its group write: make it fail as a full disk.
    let err = fail_next_matching(&disk, io::ErrorKind::StorageFull, &store, 5);
    match &err {
        Error::Poisoned { op, source } => {
            assert_eq!(*op, "write");
            assert_eq!(source.kind(), io::ErrorKind::StorageFull);
        }
        other => panic!("expected Poisoned, got {other}"),
    }
    assert_eq!(datas(&store), before, "nothing partial becomes visible");
    let later = store.append("s", ExpectedVersion::Any, [event(6)]);
    assert!(matches!(later, Err(Error::Poisoned { op: "write", .. })), "no retry succeeds");
    store.close();
    drop(store);
    // Space freed: reopening recovers exactly the acknowledged events and takes appends.
    let store = Store::open_with(sim_dir(), sim_options(&disk)).unwrap();
    assert_eq!(datas(&store), before);
    store.append("s", ExpectedVersion::Exact(4), [event(7)]).unwrap();
}

#[test]
fn faults_failed_fsync_poisons_and_power_loss_keeps_acknowledged() {
    let disk = SimDisk::new();
    let store = Store::open_with(sim_dir(), sim_options(&disk)).unwrap();
    fill(&store, 5);
    let before = datas(&store);
    // An append's operations are its write, then its fsync.
    disk.fail_at(disk.ops() + 1, io::ErrorKind::Other, false);
    let err = store.append("s", ExpectedVersion::Any, [event(5)]).unwrap_err();
    disk.clear_faults();
    assert!(matches!(err, Error::Poisoned { op: "fsync", .. }), "got {err}");
    assert!(matches!(
        store.append("s", ExpectedVersion::Any, [event(6)]),
        Err(Error::Poisoned { op: "fsync", .. })
    ));
    assert_eq!(datas(&store), before, "reads of acknowledged events keep working");
    // Power is lost before anyone retries: the unsynced write may survive or not, in part or
    // whole; every acknowledged event must, and the failed append must be all or nothing.
    for seed in 0..16 {
        let crashed = disk.crash(seed);
        let reopened = Store::open_with(sim_dir(), sim_options(&crashed)).unwrap();
        let after = datas(&reopened);
        assert_eq!(after[..5], before[..], "seed {seed}");
        assert!(after.len() == 5 || after[5] == b"event-5", "seed {seed}: {after:?}");
        reopened.append("s", ExpectedVersion::Any, [event(9)]).unwrap();
    }
}

#[test]
fn faults_misdirected_write_into_durable_data_is_reported_as_corruption() {
    let disk = SimDisk::new();
    let store = Store::open_with(sim_dir(), sim_options(&disk)).unwrap();
    fill(&store, 60); // about 4 KiB: more than one group write (1 KiB) from the end
    let segment = sim_dir().join(format!("{:020}.seg", 0));
    let len = disk.file_bytes(&segment).unwrap().len() as i64;
    disk.misdirect_next_write(-(len - 100));
    // The disk acknowledges the write and the fsync, but the bytes landed over old records.
    store.append("s", ExpectedVersion::Any, [event(60)]).unwrap();
    // A live reader of an overwritten position gets an error, never another event's data.
    let events: Vec<_> = store.read_all_forward(Position::START, usize::MAX).collect();
    assert!(events.iter().any(|e| e.is_err()), "damage must surface to readers");
    store.close();
    drop(store);
    match Store::open_with(sim_dir(), sim_options(&disk)) {
        Err(Error::Corruption { segment: name, offset, .. }) => {
            assert_eq!(name, "00000000000000000000.seg");
            assert!(offset <= 200, "located at the overwritten records, got {offset}");
        }
        other => panic!("expected corruption, got {other:?}"),
    }
}

/// A real store with a few segments; returns its directory and the path of the first segment.
fn real_store(events: u64) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let options = Options { segment_bytes_max: 4096, ..crate::common::small_options() };
    let store = Store::open_with(dir.path(), options).unwrap();
    for i in 0..events {
        store.append(&format!("s-{}", i % 3), ExpectedVersion::Any, [event(i)]).unwrap();
    }
    drop(store);
    let first = dir.path().join(format!("{:020}.seg", 0));
    (dir, first)
}

fn flip(path: &PathBuf, offset: u64) {
    let file = OpenOptions::new().read(true).write(true).open(path).unwrap();
    let mut b = [0u8];
    file.read_exact_at(&mut b, offset).unwrap();
    file.write_all_at(&[b[0] ^ 0x10], offset).unwrap();
}

#[test]
fn faults_bit_flip_under_a_live_store_reaches_readers_as_an_error() {
    let (dir, first) = real_store(200);
    let store = Store::open_with(dir.path(), crate::common::small_options()).unwrap();
    assert!(store.verify().unwrap().is_clean());
    let target = 32 + 60; // inside the first record's payload or name
    flip(&first, target);
    // Reads go through the mapping, so they see the flip and refuse it.
    let first_event = store.read_all_forward(Position::START, 1).next().unwrap();
    assert!(matches!(first_event, Err(Error::Corruption { kind: CorruptionKind::Checksum, .. })));
    let stream = store.read_stream_forward("s-0", annal::StreamVersion(0), 1).unwrap().next();
    assert!(matches!(stream, Some(Err(Error::Corruption { .. }))));
    let report = store.verify().unwrap();
    assert!(!report.is_clean());
    assert_eq!(report.problems[0].segment, "00000000000000000000.seg");
    assert_eq!(report.problems[0].offset, 32);
    assert_eq!(report.problems[0].kind, CorruptionKind::Checksum);
    drop(store);
    // The segment's index file lets the open skip it: the damage still reaches every reader.
    let reopened = Store::open_with(dir.path(), crate::common::small_options()).unwrap();
    let first_event = reopened.read_all_forward(Position::START, 1).next().unwrap();
    assert!(matches!(first_event, Err(Error::Corruption { kind: CorruptionKind::Checksum, .. })));
    drop(reopened);
    // An open that scans the segment (no index files) refuses it.
    crate::common::remove_derived_files(dir.path());
    let reopened = Store::open_with(dir.path(), crate::common::small_options());
    assert!(matches!(reopened, Err(Error::Corruption { offset: 32, .. })));
}

#[test]
fn faults_verify_counts_every_event_of_a_clean_store() {
    let (dir, _) = real_store(150);
    let store = Store::open_with(dir.path(), crate::common::small_options()).unwrap();
    let mut calls = 0;
    let report = store
        .verify_with_progress(|done, total| {
            calls += 1;
            assert!(done <= total);
        })
        .unwrap();
    assert!(report.is_clean(), "{:?}", report.problems);
    assert_eq!(report.events, 150);
    assert_eq!(report.segments, store.stats().segments);
    assert_eq!(report.bytes, store.stats().disk_bytes);
    assert_eq!(calls, report.segments);
}
