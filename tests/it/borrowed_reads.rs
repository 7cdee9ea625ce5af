//! `ReadAll::next_ref`, the lending read: the same events as the iterator, field for field,
//! across segments, from any position, with a limit, mixed with the iterator, and the same
//! errors on damaged bytes.

use std::{fs::OpenOptions, os::unix::fs::FileExt};

use annal::{CorruptionKind, Error, ExpectedVersion, NewEvent, Position, RecordedEvent, Store};
use uuid::Uuid;

use crate::common::{fast_options, open};

/// A store of `n` events in tiny segments: streams and event types change every few events
/// (so the read's text cache both hits and misses), one stream name is not ASCII, and some
/// events carry metadata.
fn store_of(dir: &std::path::Path, n: u64) -> Store {
    let store = open(dir, fast_options());
    let mut at = 0;
    while at < n {
        let stream = if at % 21 == 0 { "größe-é".to_owned() } else { format!("s-{}", at % 5) };
        let batch = (1 + at % 4).min(n - at);
        let events = (at..at + batch).map(|i| {
            let kind = if i % 3 == 0 { "Opened" } else { "Touched" };
            let e = NewEvent::new(kind, format!("event-{i}").into_bytes());
            if i % 2 == 0 { e.with_metadata(vec![i as u8; 3]) } else { e }
        });
        store.append(&stream, ExpectedVersion::Any, events).unwrap();
        at += batch;
    }
    store
}

/// Every field of an event, as owned values.
type Fields = (u64, String, u64, Uuid, String, Vec<u8>, Vec<u8>, u64, usize);

fn fields_of(e: &RecordedEvent) -> Fields {
    let (p, s, v, id, t) =
        (e.position().get(), e.stream(), e.version().get(), e.id(), e.event_type());
    let rest = (e.data().to_vec(), e.metadata().to_vec(), e.timestamp_us(), e.encoded_len());
    (p, s.to_owned(), v, id, t.to_owned(), rest.0, rest.1, rest.2, rest.3)
}

fn fields_of_ref(e: &annal::EventRef<'_>) -> Fields {
    let (p, s, v, id, t) =
        (e.position().get(), e.stream(), e.version().get(), e.id(), e.event_type());
    let rest = (e.data().to_vec(), e.metadata().to_vec(), e.timestamp_us(), e.encoded_len());
    (p, s.to_owned(), v, id, t.to_owned(), rest.0, rest.1, rest.2, rest.3)
}

fn lent(store: &Store, from: u64, limit: usize) -> Vec<Fields> {
    let mut read = store.read_all_forward(Position(from), limit);
    let mut out = Vec::new();
    while let Some(event) = read.next_ref() {
        out.push(fields_of_ref(&event.unwrap()));
    }
    assert!(read.next_ref().is_none(), "an ended read stays ended");
    out
}

fn iterated(store: &Store, from: u64, limit: usize) -> Vec<Fields> {
    store.read_all_forward(Position(from), limit).map(|e| fields_of(&e.unwrap())).collect()
}

#[test]
fn borrowed_read_lends_every_field_the_iterator_returns() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_of(dir.path(), 300);
    assert!(store.stats().segments > 2, "tiny segments rotate");
    let all = lent(&store, 0, usize::MAX);
    assert_eq!(all.len(), 300);
    assert_eq!(all, iterated(&store, 0, usize::MAX));
    assert_eq!(all[0].1, "größe-é");
    for (from, limit) in [(0, 0), (0, 1), (7, 10), (150, usize::MAX), (299, 5), (300, 5)] {
        assert_eq!(lent(&store, from, limit), iterated(&store, from, limit), "{from} {limit}");
    }
}

#[test]
fn borrowed_read_mixes_with_the_iterator_and_keeps_events_as_handles() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_of(dir.path(), 100);
    let mut read = store.read_all_forward(Position::START, 50);
    let mut kept = Vec::new();
    for i in 0..50u64 {
        let position = if i % 2 == 0 {
            let event = read.next_ref().unwrap().unwrap();
            kept.push(event.to_recorded());
            event.position()
        } else {
            read.next().unwrap().unwrap().position()
        };
        assert_eq!(position, Position(i));
    }
    assert!(read.next_ref().is_none() && read.next().is_none());
    drop(read);
    let expected = iterated(&store, 0, 50);
    for (i, event) in kept.iter().enumerate() {
        assert_eq!(fields_of(event), expected[2 * i]);
    }
}

#[test]
fn borrowed_read_sees_only_what_was_committed_when_it_was_made() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_of(dir.path(), 40);
    let mut read = store.read_all_forward(Position::START, usize::MAX);
    assert_eq!(read.next_ref().unwrap().unwrap().position(), Position(0));
    store.append("later", ExpectedVersion::Any, [NewEvent::new("Late", b"x".to_vec())]).unwrap();
    let mut count = 1;
    while let Some(event) = read.next_ref() {
        assert_ne!(event.unwrap().stream(), "later");
        count += 1;
    }
    assert_eq!(count, 40);
}

#[test]
fn borrowed_read_reports_a_flipped_bit_as_corruption_and_stops() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_of(dir.path(), 60);
    let first = dir.path().join(format!("{:020}.seg", 0));
    let file = OpenOptions::new().read(true).write(true).open(first).unwrap();
    let mut b = [0u8];
    let target = 32 + 60; // inside the first record, which starts after the 32-byte header
    file.read_exact_at(&mut b, target).unwrap();
    file.write_all_at(&[b[0] ^ 0x10], target).unwrap();
    // Reads go through the mapping, so they see the flip and refuse it.
    let mut read = store.read_all_forward(Position::START, usize::MAX);
    match read.next_ref() {
        Some(Err(Error::Corruption { offset: 32, kind: CorruptionKind::Checksum, .. })) => {}
        other => panic!("expected a checksum error at offset 32, got {other:?}"),
    }
    assert!(read.next_ref().is_none(), "an error ends the read");
}
