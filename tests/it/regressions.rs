//! Regression tests, each opening with the story of the bug it keeps fixed.

use std::fs;

use annal::{ExpectedVersion, NewEvent, Options, Position, Store};

use crate::common::small_options;

/// Story: the torn-tail bound recovery applies is the `group_bytes_max` written in the last
/// segment's header. Reopening a store with a larger `group_bytes_max` let the writer put
/// bigger groups into that old segment; a crash tearing such a group then looked like damage
/// further from the end than the header's bound allowed, and the store refused to open over
/// bytes that were never acknowledged. Now open starts a new segment when the bound grows.
#[test]
fn regression_group_bound_grown_on_reopen_still_cuts_a_torn_big_group() {
    let dir = tempfile::tempdir().unwrap();
    let small = Options { segment_bytes_max: 1 << 20, ..small_options() };
    let store = Store::open_with(dir.path(), small.clone()).unwrap();
    for i in 0..10 {
        store.append("s", ExpectedVersion::Any, [crate::common::event(i)]).unwrap();
    }
    drop(store);
    crate::common::remove_derived_files(dir.path());
    let big = Options {
        group_bytes_max: 64 << 10,
        append_bytes_max: 32 << 10,
        event_bytes_max: 16 << 10,
        ..small
    };
    let store = Store::open_with(dir.path(), big.clone()).unwrap();
    assert_eq!(store.stats().segments, 2, "a larger bound starts a new segment");
    let events = (0..4).map(|_| NewEvent::new("Big", vec![7u8; 6000]));
    store.append("big", ExpectedVersion::Any, events).unwrap();
    drop(store);
    crate::common::remove_derived_files(dir.path());
    // Tear the big group: keep only its first 100 bytes.
    let last = dir.path().join(format!("{:020}.seg", 10));
    let len = fs::metadata(&last).unwrap().len();
    let cut = 32 + 100;
    assert!(len - cut > 2048, "the torn part is larger than the old bound");
    fs::OpenOptions::new().write(true).open(&last).unwrap().set_len(cut).unwrap();
    let store = Store::open_with(dir.path(), big).unwrap();
    assert!(store.recovery_report().truncated.is_some());
    assert_eq!(store.read_all_forward(Position::START, usize::MAX).count(), 10);
}

/// Story: a retry was recognised by its ids and streams alone, so moving one event of a
/// multi-stream append into another part passed as a retry of the original and got the
/// original's result although it asked for something else. The split must match too.
#[test]
fn regression_retry_with_events_split_differently_is_a_conflict() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let ids: Vec<uuid::Uuid> = (1..=3).map(uuid::Uuid::from_u128).collect();
    let ev = |i: usize| NewEvent::new("T", vec![]).with_id(ids[i]);
    store
        .append_multi([
            annal::StreamAppend::new("a", ExpectedVersion::Any, [ev(0), ev(1)]),
            annal::StreamAppend::new("b", ExpectedVersion::Any, [ev(2)]),
        ])
        .unwrap();
    let moved = store.append_multi([
        annal::StreamAppend::new("a", ExpectedVersion::Any, [ev(0)]),
        annal::StreamAppend::new("b", ExpectedVersion::Any, [ev(1), ev(2)]),
    ]);
    assert!(matches!(moved, Err(annal::Error::EventIdConflict { .. })), "{moved:?}");
    assert_eq!(store.head(), Position(3));
}

/// Story: recovery cut the log at the first bad batch whenever it lay within `group_bytes_max`
/// (8 MiB by default) of the end of the last segment. One flipped byte in an acknowledged event
/// near the end of a small store silently dropped it and every acknowledged event after it:
/// a read-only open showed 0 of 900 events. A torn tail is one group write, whose records all
/// carry that group's commit time; records of a second commit time after the damage prove an
/// fsynced group follows it, so it is corruption.
#[test]
fn regression_damage_followed_by_later_groups_is_corruption_not_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    for i in 0..50 {
        store.append("s", ExpectedVersion::Any, [crate::common::event(i)]).unwrap();
    }
    drop(store);
    crate::common::remove_derived_files(dir.path());
    let segment = dir.path().join(format!("{:020}.seg", 0));
    let mut bytes = fs::read(&segment).unwrap();
    bytes[32 + 60] ^= 1; // inside the first event, far less than 8 MiB from the end
    fs::write(&segment, &bytes).unwrap();
    for opened in [Store::open(dir.path()), Store::open_read_only(dir.path(), Options::default())] {
        match opened {
            Err(annal::Error::Corruption { offset, .. }) => assert_eq!(offset, 32),
            other => panic!("expected corruption, got {:?}", other.map(|s| s.head())),
        }
    }
    assert_eq!(fs::read(&segment).unwrap(), bytes, "nothing was cut");
}
