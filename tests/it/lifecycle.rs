//! Stream lifecycle: soft deletes, tombstones and metadata, as reads see them at once and after
//! a reopen.

use std::time::Duration;

use annal::{Error, ExpectedVersion, NewEvent, Position, StreamMetadata, StreamVersion};

use crate::common::{event, fast_options, open};

fn versions(store: &annal::Store, stream: &str) -> Vec<u64> {
    store
        .read_stream_forward(stream, StreamVersion::START, usize::MAX)
        .unwrap()
        .map(|e| e.unwrap().version().get())
        .collect()
}

fn all_streams(store: &annal::Store) -> Vec<String> {
    store
        .read_all_forward(Position::START, usize::MAX)
        .map(|e| e.unwrap().stream().into())
        .collect()
}

#[test]
fn lifecycle_soft_delete_hides_the_stream_and_a_new_append_continues_its_numbering() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), fast_options());
    store.append("a", ExpectedVersion::NoStream, (0..3).map(event)).unwrap();
    store.append("b", ExpectedVersion::NoStream, [event(9)]).unwrap();
    let stale = store.delete_stream("a", ExpectedVersion::Exact(1));
    assert!(matches!(stale, Err(Error::WrongExpectedVersion { actual: Some(2), .. })));
    assert_eq!(versions(&store, "a"), [0, 1, 2], "a refused delete changes nothing");

    store.delete_stream("a", ExpectedVersion::Exact(2)).unwrap();
    let read = store.read_stream_forward("a", StreamVersion::START, 10);
    assert!(matches!(read, Err(Error::StreamNotFound { .. })));
    assert!(matches!(
        store.delete_stream("a", ExpectedVersion::Any),
        Err(Error::StreamNotFound { .. })
    ));
    // `$all` keeps the deleted events (until a scavenge) and shows the metadata event.
    assert_eq!(all_streams(&store), ["a", "a", "a", "b", "$$a"]);
    assert_eq!(store.stream_version("a"), Some(StreamVersion(2)));

    let again = store.append("a", ExpectedVersion::NoStream, [event(3)]).unwrap();
    assert_eq!(again.first_version, StreamVersion(3), "numbering continues");
    assert_eq!(versions(&store, "a"), [3]);
    drop(store);
    let store = open(dir.path(), fast_options());
    assert_eq!(versions(&store, "a"), [3], "the delete survives a reopen");
    assert_eq!(versions(&store, "b"), [0]);
}

#[test]
fn lifecycle_stream_state_reports_versions_and_rules_at_once_and_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), fast_options());
    assert_eq!(store.stream_state("a").last, None, "never written");
    assert!(!store.stream_state("a").exists());
    store.append("a", ExpectedVersion::NoStream, (0..5).map(event)).unwrap();
    let rules = StreamMetadata { max_count: Some(2), ..StreamMetadata::default() };
    store.set_stream_metadata("a", ExpectedVersion::NoStream, rules).unwrap();
    store.tombstone_stream("b", ExpectedVersion::Any).unwrap();
    let check = |store: &annal::Store| {
        let a = store.stream_state("a");
        assert_eq!((a.first, a.last, a.max_count, a.floor()), (0, Some(4), Some(2), 3));
        assert!(a.exists() && !a.tombstoned);
        let b = store.stream_state("b");
        assert!(b.tombstoned && !b.exists());
    };
    check(&store);
    drop(store);
    check(&open(dir.path(), fast_options()));
}

#[test]
fn lifecycle_tombstone_forbids_every_later_write() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), fast_options());
    store.append("t", ExpectedVersion::NoStream, [event(0)]).unwrap();
    let stale = store.tombstone_stream("t", ExpectedVersion::NoStream);
    assert!(matches!(stale, Err(Error::WrongExpectedVersion { .. })));
    store.tombstone_stream("t", ExpectedVersion::Exact(0)).unwrap();
    assert_tombstoned(&store, "t");
    drop(store);
    let store = open(dir.path(), fast_options());
    assert_tombstoned(&store, "t");
    // A stream that never existed can be tombstoned, reserving its name.
    store.tombstone_stream("never", ExpectedVersion::NoStream).unwrap();
    assert_tombstoned(&store, "never");
}

fn assert_tombstoned(store: &annal::Store, stream: &str) {
    let deleted = |r: Result<(), Error>| matches!(r, Err(Error::StreamDeleted { .. }));
    assert!(deleted(store.read_stream_forward(stream, StreamVersion::START, 1).map(|_| ())));
    assert!(deleted(store.append(stream, ExpectedVersion::Any, [event(1)]).map(|_| ())));
    assert!(deleted(store.delete_stream(stream, ExpectedVersion::Any).map(|_| ())));
    assert!(deleted(store.tombstone_stream(stream, ExpectedVersion::Any).map(|_| ())));
    assert!(deleted(store.stream_metadata(stream).map(|_| ())));
    let meta = store.set_stream_metadata(stream, ExpectedVersion::Any, StreamMetadata::default());
    assert!(deleted(meta.map(|_| ())));
}

#[test]
fn lifecycle_metadata_rules_apply_to_reads_at_once_and_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), fast_options());
    store.append("m", ExpectedVersion::NoStream, (0..10).map(event)).unwrap();
    assert_eq!(store.stream_metadata("m").unwrap(), None);
    let mut meta = StreamMetadata { max_count: Some(4), ..StreamMetadata::default() };
    meta.custom.insert("owner".into(), "team-7".into());
    let v = store.set_stream_metadata("m", ExpectedVersion::NoStream, meta.clone()).unwrap();
    assert_eq!(v, StreamVersion(0));
    assert_eq!(versions(&store, "m"), [6, 7, 8, 9]);
    let backward: Vec<u64> = store
        .read_stream_backward("m", StreamVersion::END, usize::MAX)
        .unwrap()
        .map(|e| e.unwrap().version().get())
        .collect();
    assert_eq!(backward, [9, 8, 7, 6]);
    let stale = store.set_stream_metadata("m", ExpectedVersion::NoStream, meta.clone());
    assert!(matches!(stale, Err(Error::WrongExpectedVersion { .. })));

    let truncate = StreamMetadata { truncate_before: Some(8), ..meta.clone() };
    store.set_stream_metadata("m", ExpectedVersion::Exact(0), truncate.clone()).unwrap();
    assert_eq!(versions(&store, "m"), [8, 9]);
    drop(store);
    let store = open(dir.path(), fast_options());
    assert_eq!(versions(&store, "m"), [8, 9]);
    assert_eq!(store.stream_metadata("m").unwrap(), Some((StreamVersion(1), truncate)));
}

#[test]
fn lifecycle_max_age_hides_old_events_but_not_the_stream() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), fast_options());
    store.append("old", ExpectedVersion::NoStream, (0..3).map(event)).unwrap();
    let meta = StreamMetadata { max_age: Some(Duration::ZERO), ..StreamMetadata::default() };
    store.set_stream_metadata("old", ExpectedVersion::Any, meta).unwrap();
    std::thread::sleep(Duration::from_millis(2));
    assert!(versions(&store, "old").is_empty(), "every event is older than zero");
    let hour = StreamMetadata { max_age: Some(Duration::from_secs(3600)), ..Default::default() };
    store.set_stream_metadata("old", ExpectedVersion::Any, hour).unwrap();
    assert_eq!(versions(&store, "old"), [0, 1, 2]);
}

#[test]
fn lifecycle_stream_subscription_starts_at_the_first_visible_version() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), fast_options());
    store.append("s", ExpectedVersion::NoStream, (0..5).map(event)).unwrap();
    let meta = StreamMetadata { truncate_before: Some(3), ..StreamMetadata::default() };
    store.set_stream_metadata("s", ExpectedVersion::Any, meta).unwrap();
    let mut sub = store.subscribe_to_stream("s", StreamVersion::START).unwrap();
    let first = sub.recv().unwrap();
    assert_eq!(first.version(), StreamVersion(3));
}

#[test]
fn lifecycle_bad_names_and_metadata_streams_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), fast_options());
    let r = store.append("$$x", ExpectedVersion::Any, [NewEvent::new("$metadata", vec![1])]);
    assert!(matches!(r, Err(Error::InvalidStreamName { .. })));
    assert!(matches!(
        store.delete_stream("", ExpectedVersion::Any),
        Err(Error::InvalidStreamName { .. })
    ));
    assert!(matches!(
        store.tombstone_stream("$$x", ExpectedVersion::Any),
        Err(Error::InvalidStreamName { .. })
    ));
    assert_eq!(store.head(), Position(0), "nothing was written");
}

#[test]
fn lifecycle_names_of_254_and_255_bytes_are_refused_and_a_later_append_survives_reopen() {
    // Issue #12, item 1: names of 254 and 255 bytes passed the 255-byte name check, but their
    // metadata stream `$$<name>` has 256 or 257 bytes while a record stores the name's length in
    // one byte. Only a `debug_assert!` guarded that, so in a release build `delete_stream`
    // answered `Ok` and wrote a record whose length had wrapped under a valid checksum. The
    // delete did not apply, and on reopen the bad record and everything after it (an
    // acknowledged append to an unrelated stream) were cut as a torn tail, or the store refused
    // to open. Now such names are refused before anything is queued.
    for len in [254, 255] {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path(), fast_options());
        let long = "x".repeat(len);
        let refused = |outcome: Result<_, Error>, op: &str| match outcome {
            Err(Error::InvalidStreamName { name, .. }) => assert_eq!(name, long, "{op}"),
            other => panic!("{op} of a {len}-byte name: {other:?}"),
        };
        refused(store.append(&long, ExpectedVersion::Any, [event(0)]).map(drop), "append");
        refused(store.delete_stream(&long, ExpectedVersion::Any).map(drop), "delete");
        refused(store.tombstone_stream(&long, ExpectedVersion::Any).map(drop), "tombstone");
        let meta = StreamMetadata { max_count: Some(1), ..StreamMetadata::default() };
        refused(store.set_stream_metadata(&long, ExpectedVersion::Any, meta).map(drop), "meta");
        assert_eq!(store.head(), Position(0), "nothing was written");

        store.append("a", ExpectedVersion::NoStream, [event(1)]).unwrap();
        store.append("a", ExpectedVersion::Exact(0), [event(2)]).unwrap();
        store.close();
        drop(store);
        let store = open(dir.path(), fast_options());
        assert_eq!(store.recovery_report().truncated, None, "{len}: nothing was cut");
        assert_eq!(versions(&store, "a"), [0, 1], "{len}: the acknowledged appends survive");
        assert_eq!(store.head(), Position(2));
    }
}

#[test]
fn lifecycle_a_253_byte_name_is_deleted_tombstoned_and_reopened_intact() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), fast_options());
    let (deleted, tombstoned) = ("d".repeat(253), "t".repeat(253));
    store.append(&deleted, ExpectedVersion::NoStream, (0..3).map(event)).unwrap();
    store.append(&tombstoned, ExpectedVersion::NoStream, [event(3)]).unwrap();
    let meta = StreamMetadata { max_count: Some(2), ..StreamMetadata::default() };
    store.set_stream_metadata(&deleted, ExpectedVersion::NoStream, meta).unwrap();
    assert_eq!(versions(&store, &deleted), [1, 2]);
    store.delete_stream(&deleted, ExpectedVersion::Exact(2)).unwrap();
    store.tombstone_stream(&tombstoned, ExpectedVersion::Any).unwrap();
    store.append(&deleted, ExpectedVersion::NoStream, [event(4)]).unwrap();
    store.append("a", ExpectedVersion::NoStream, [event(5)]).unwrap();
    let head = store.head();
    store.close();
    drop(store);

    let store = open(dir.path(), fast_options());
    assert_eq!(store.recovery_report().truncated, None);
    assert_eq!(store.head(), head);
    assert_eq!(versions(&store, &deleted), [3], "the delete holds, the new event is back");
    let (_, meta) = store.stream_metadata(&deleted).unwrap().expect("metadata");
    assert_eq!(meta.truncate_before, Some(3));
    let read = store.read_stream_forward(&tombstoned, StreamVersion::START, 1);
    assert!(matches!(read, Err(Error::StreamDeleted { .. })));
    assert_eq!(versions(&store, "a"), [0]);
}
