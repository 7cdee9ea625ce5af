//! The derived files' writes under simulated power loss: a power cut at every I/O operation of
//! the background indexer (index files and `streams.tbl` of every sealed segment) and of a
//! clean close (the active segment's index file and `streams.close.tbl`), each crash damaged
//! four ways, must leave a store that opens in the default mode, holds every acknowledged event
//! and answers every read as before.

use std::io;

use annal::{
    ExpectedVersion, NewEvent, Store,
    io::{SimDisk, Storage},
};

use crate::{
    persisted::{assert_same_reads, reads},
    sim_model::{dir, options},
};

/// Damage variants tried at each crash point.
const VARIANTS: u64 = 4;

/// What the counted section does.
#[derive(Clone, Copy, Debug)]
enum Section {
    /// Open a store whose derived files were all removed: the indexer writes every sealed
    /// segment's index file and the stream table; then flush and close.
    IndexEverything,
    /// Close a store whose indexer has caught up: the active segment's index file and the
    /// close table.
    Close,
}

/// Appends sealing several 2 KiB segments (every append acknowledged, so durable).
fn append_events(store: &Store) {
    for i in 0..60u64 {
        let data = format!("{i}/{}", "y".repeat(60)).into_bytes();
        let stream = format!("s-{}", i % 5);
        store.append(&stream, ExpectedVersion::Any, [NewEvent::new("C", data)]).unwrap();
    }
}

/// Brings `disk` to the start of the section; returns the store the section goes on with.
fn prepare(disk: &SimDisk, section: Section) -> Option<Store> {
    let store = Store::open_with(dir(), options(disk)).unwrap();
    append_events(&store);
    store.flush_index_files();
    if let Section::Close = section {
        return Some(store);
    }
    store.close();
    drop(store);
    for name in disk.list_dir(&dir()).unwrap() {
        if name.ends_with(".idx") || name.ends_with(".tbl") {
            disk.remove(&dir().join(name)).unwrap();
        }
    }
    disk.sync_dir(&dir()).unwrap();
    None
}

/// Runs the section (after `prepare`).
fn run(disk: &SimDisk, store: Option<Store>) {
    let store = match store {
        Some(store) => store,
        None => match Store::open_with(dir(), options(disk)) {
            Ok(store) => store,
            // The power was cut during the open.
            Err(_) => return,
        },
    };
    store.flush_index_files();
    store.close();
}

#[test]
fn persisted_crash_at_every_index_write_keeps_every_event() {
    let mut cases = 0;
    for section in [Section::IndexEverything, Section::Close] {
        let reference = SimDisk::new();
        let store = prepare(&reference, section);
        let start = reference.ops();
        run(&reference, store);
        let ops = reference.ops() - start;
        // The indexer runs on its own thread, but nothing else does I/O meanwhile: the section's
        // operations are the same every time, so crash point N is the same operation each run.
        let again = SimDisk::new();
        let store = prepare(&again, section);
        let start_again = again.ops();
        run(&again, store);
        assert_eq!(again.ops() - start_again, ops, "{section:?}: the I/O sequence varies");
        let store = Store::open_with(dir(), options(&reference)).unwrap();
        let want = reads(&store);
        let report = store.recovery_report().clone();
        assert!(report.segments > 3, "{report:?}");
        assert_eq!((report.segments_scanned, report.rebuilt.len()), (0, 0), "{report:?}");
        drop(store);
        for crash_at in 0..=ops {
            for variant in 0..VARIANTS {
                let disk = SimDisk::new();
                let store = prepare(&disk, section);
                disk.fail_at(disk.ops() + crash_at, io::ErrorKind::Other, true);
                run(&disk, store);
                let crashed = disk.crash(variant);
                let case =
                    format!("{section:?}: crash at op {crash_at} of {ops}, variant {variant}");
                check(&crashed, &want, &case);
                cases += 1;
            }
        }
    }
    eprintln!("persisted crash simulation: {cases} cases");
}

/// The crashed store opens, reads as the reference does and verifies clean; a writable open
/// writes what the crash cost, so that after a clean close the next open reads no segment.
fn check(disk: &SimDisk, want: &[String], case: &str) {
    let store =
        Store::open_with(dir(), options(disk)).unwrap_or_else(|e| panic!("{case}: open: {e}"));
    assert_same_reads(&reads(&store), want, case);
    assert!(store.verify().unwrap().is_clean(), "{case}: verify");
    store.flush_index_files();
    store.close();
    drop(store);
    let store = Store::open_with(dir(), options(disk)).unwrap();
    let report = store.recovery_report();
    assert_eq!((report.segments_scanned, report.rebuilt.len()), (0, 0), "{case}: {report:?}");
    assert_same_reads(&reads(&store), want, &format!("{case}, reopened"));
}
