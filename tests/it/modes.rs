//! Recovery modes and the read-only open: strict refuses even a torn tail, salvage keeps every
//! provable batch around mid-log damage and says what it dropped, neither (nor a read-only
//! open) changes a byte on disk.

use std::{collections::BTreeMap, fs, path::Path};

use annal::{
    Error, ExpectedVersion, NewEvent, Options, Position, RecoveryMode, Store, StreamVersion,
};

use crate::common::{event, small_options};

fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name() != "LOCK")
        .map(|e| (e.file_name().into_string().unwrap(), fs::read(e.path()).unwrap()))
        .collect()
}

fn with_mode(mode: RecoveryMode) -> Options {
    Options { recovery_mode: mode, ..small_options() }
}

/// A store of `n` events over several segments; the last append is a 3-event batch whose
/// last 5 bytes are then cut off (a torn tail).
fn store_with_torn_tail(dir: &Path, n: u64) {
    let store = Store::open_with(dir, small_options()).unwrap();
    for i in 0..n {
        store.append(&format!("s-{}", i % 3), ExpectedVersion::Any, [event(i)]).unwrap();
    }
    store.append("torn", ExpectedVersion::Any, [event(900), event(901), event(902)]).unwrap();
    drop(store);
    crate::common::remove_derived_files(dir);
    let last = files(dir).into_keys().next_back().unwrap();
    let path = dir.join(last);
    let len = fs::metadata(&path).unwrap().len();
    fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(len - 5).unwrap();
}

fn datas(store: &Store) -> Vec<Vec<u8>> {
    store
        .read_all_forward(Position::START, usize::MAX)
        .map(|e| e.unwrap().data().to_vec())
        .collect()
}

#[test]
fn modes_strict_refuses_a_torn_tail_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    store_with_torn_tail(dir.path(), 40);
    let before = files(dir.path());
    let opened = Store::open_with(dir.path(), with_mode(RecoveryMode::Strict));
    assert!(matches!(opened, Err(Error::Corruption { .. })), "got {opened:?}");
    assert_eq!(files(dir.path()), before);
    // The default mode then cuts it.
    let store = Store::open_with(dir.path(), small_options()).unwrap();
    assert!(store.recovery_report().truncated.is_some());
    assert_eq!(datas(&store).len(), 40);
}

#[test]
fn modes_read_only_open_ignores_a_torn_tail_without_cutting_it() {
    let dir = tempfile::tempdir().unwrap();
    store_with_torn_tail(dir.path(), 40);
    let before = files(dir.path());
    let store = Store::open_read_only(dir.path(), small_options()).unwrap();
    assert!(store.recovery_report().truncated.is_some());
    assert_eq!(datas(&store).len(), 40);
    let append = store.append("x", ExpectedVersion::Any, [NewEvent::new("T", vec![])]);
    assert!(matches!(append, Err(Error::ReadOnly)));
    assert_eq!(files(dir.path()), before, "a read-only open writes nothing");
}

#[test]
fn modes_read_only_open_works_while_the_store_is_open_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let writer = Store::open_with(dir.path(), small_options()).unwrap();
    for i in 0..30 {
        writer.append("s", ExpectedVersion::Any, [event(i)]).unwrap();
    }
    let reader = Store::open_read_only(dir.path(), small_options()).unwrap();
    assert_eq!(datas(&reader), datas(&writer));
    let versions: Vec<u64> = reader
        .read_stream_backward("s", StreamVersion::END, 3)
        .unwrap()
        .map(|e| e.unwrap().version().get())
        .collect();
    assert_eq!(versions, [29, 28, 27]);
}

#[test]
fn modes_salvage_keeps_every_provable_batch_around_mid_log_damage() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(dir.path(), small_options()).unwrap();
    for i in 0..60 {
        store.append(&format!("s-{}", i % 3), ExpectedVersion::Any, [event(i)]).unwrap();
    }
    drop(store);
    crate::common::remove_derived_files(dir.path());
    // Damage the third record of the first segment (a sealed one).
    let first = dir.path().join(format!("{:020}.seg", 0));
    let mut bytes = fs::read(&first).unwrap();
    let mut offset = 32;
    for _ in 0..2 {
        offset += u32::from_le_bytes(bytes[offset..offset + 4].try_into().unwrap()) as usize;
    }
    bytes[offset + 60] ^= 0xff;
    fs::write(&first, &bytes).unwrap();
    let before = files(dir.path());

    assert!(matches!(Store::open_with(dir.path(), small_options()), Err(Error::Corruption { .. })));
    let store = Store::open_with(dir.path(), with_mode(RecoveryMode::Salvage)).unwrap();
    let report = store.recovery_report().clone();
    assert_eq!(report.salvaged.len(), 1, "{report:?}");
    assert_eq!(report.salvaged[0].segment, "00000000000000000000.seg");
    assert_eq!(report.salvaged[0].offset, offset as u64);
    let kept: Vec<u64> = store
        .read_all_forward(Position::START, usize::MAX)
        .map(|e| e.unwrap().position().get())
        .collect();
    // Event 2 is damaged. Event 3 decodes, but it could belong to the same append as event 2
    // (nothing that survived proves where its append began), so it cannot be kept either.
    let expected: Vec<u64> = (0..60).filter(|&p| p != 2 && p != 3).collect();
    assert_eq!(kept, expected, "only the damaged event and the unprovable one are gone");
    // Backward reads and stream reads step over the hole too.
    let back: Vec<u64> =
        store.read_all_backward(Position(3), 2).map(|e| e.unwrap().position().get()).collect();
    assert_eq!(back, [1, 0]);
    let s2: Vec<u64> = store
        .read_stream_forward("s-2", StreamVersion::START, usize::MAX)
        .unwrap()
        .map(|e| e.unwrap().version().get())
        .collect();
    assert_eq!(s2, (1..20).collect::<Vec<_>>(), "version 0 of s-2 was the damaged event");
    let s0: Vec<u64> = store
        .read_stream_forward("s-0", StreamVersion::START, usize::MAX)
        .unwrap()
        .map(|e| e.unwrap().version().get())
        .collect();
    assert_eq!(s0[..3], [0, 2, 3], "version 1 of s-0 was event 3");
    assert!(matches!(store.append("s-0", ExpectedVersion::Any, [event(99)]), Err(Error::ReadOnly)));
    assert!(!store.verify().unwrap().is_clean());
    drop(store);
    assert_eq!(files(dir.path()), before, "salvage changes nothing on disk");
}

#[test]
fn modes_close_releases_the_lock_while_clones_are_alive() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(dir.path(), small_options()).unwrap();
    let clone = store.clone();
    store.append("s", ExpectedVersion::Any, [event(0)]).unwrap();
    assert!(matches!(Store::open_with(dir.path(), small_options()), Err(Error::Locked { .. })));
    store.close();
    let reopened = Store::open_with(dir.path(), small_options()).unwrap();
    assert_eq!(datas(&reopened).len(), 1);
    // The closed handles refuse appends but still read.
    assert!(matches!(clone.append("s", ExpectedVersion::Any, [event(1)]), Err(Error::Closed)));
    assert_eq!(datas(&clone).len(), 1);
}

#[test]
fn modes_refused_open_leaves_a_header_less_last_segment_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(dir.path(), small_options()).unwrap();
    for i in 0..60 {
        store.append("s", ExpectedVersion::Any, [event(i)]).unwrap();
    }
    drop(store);
    crate::common::remove_derived_files(dir.path());
    // Damage the first (sealed) segment and leave a header-less segment after the last one,
    // as a crash during rotation would.
    let names: Vec<String> = files(dir.path()).into_keys().collect();
    let first = dir.path().join(&names[0]);
    let mut bytes = fs::read(&first).unwrap();
    bytes[40] ^= 1;
    fs::write(&first, &bytes).unwrap();
    fs::write(dir.path().join(format!("{:020}.seg", 999_999)), [0u8; 7]).unwrap();
    let before = files(dir.path());
    assert!(matches!(Store::open_with(dir.path(), small_options()), Err(Error::Corruption { .. })));
    assert_eq!(files(dir.path()), before, "a refused open changes nothing");
}

/// Found by the CLI's backup test in CI: a read-only open beside a live writer compared the log
/// it had listed with a stream table the writer wrote after that listing (at a segment's seal),
/// whose durable mark was past the listed log, and refused the store as corrupt. The writer
/// only writes a mark once the log below it is durable, so a mark read before the listing can
/// never pass it; only a mark read after it could.
#[test]
fn modes_read_only_opens_beside_a_writer_sealing_segments_never_see_a_false_loss() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options { segment_bytes_max: 4096, ..small_options() };
    let store = Store::open_with(dir.path(), options.clone()).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (store, stop) = (store.clone(), std::sync::Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut n = 0;
            // Bounded, so that the opens stay cheap: the race needs a writer, not a long log.
            while n < 20_000 && !stop.load(std::sync::atomic::Ordering::Relaxed) {
                store.append(&format!("s-{}", n % 7), ExpectedVersion::Any, [event(n)]).unwrap();
                n += 1;
            }
        })
    };
    let mut opened = 0;
    while opened < 2500 {
        match Store::open_read_only(dir.path(), options.clone()) {
            Ok(_) => opened += 1,
            Err(e) => {
                stop.store(true, std::sync::atomic::Ordering::Relaxed);
                writer.join().unwrap();
                panic!("read-only open {opened} beside the writer: {e}");
            }
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
}
