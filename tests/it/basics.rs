//! Round trips of every field, `$all` order, dense versions, backward reads, reopen.

use annal::{ExpectedVersion, NewEvent, Position, Store, StreamVersion};
use uuid::Uuid;

use crate::common::{event, open, small_options};

#[test]
fn append_then_read_round_trips_every_field() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let id = Uuid::from_u128(42);
    let e = NewEvent::new("Opened", b"data".to_vec()).with_id(id).with_metadata(b"meta".to_vec());
    let r = store.append("account-1", ExpectedVersion::NoStream, [e]).unwrap();
    assert_eq!((r.first_position, r.last_position), (Position(0), Position(0)));
    assert_eq!((r.first_version, r.last_version), (StreamVersion(0), StreamVersion(0)));
    let events: Vec<_> = store
        .read_stream_forward("account-1", StreamVersion(0), 10)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(events.len(), 1);
    let got = &events[0];
    assert_eq!(got.id(), id);
    assert_eq!(got.stream(), "account-1");
    assert_eq!(got.event_type(), "Opened");
    assert_eq!(got.data(), b"data");
    assert_eq!(got.metadata(), b"meta");
    assert_eq!(got.position(), Position(0));
    assert_eq!(got.version(), StreamVersion(0));
    assert!(got.timestamp_us() > 1_600_000_000_000_000);
}

#[test]
fn all_is_ordered_and_versions_are_dense_per_stream_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path(), small_options());
        for n in 0..300u64 {
            let stream = format!("s-{}", n % 7);
            store.append(&stream, ExpectedVersion::Any, [event(n)]).unwrap();
        }
        assert!(store.stats().segments > 3, "tiny segments rotate");
    }
    let store = open(dir.path(), small_options());
    let all: Vec<_> =
        store.read_all_forward(Position::START, usize::MAX).map(Result::unwrap).collect();
    assert_eq!(all.len(), 300);
    for (i, e) in all.iter().enumerate() {
        assert_eq!(e.position(), Position(i as u64));
        assert_eq!(e.data(), format!("event-{i}").as_bytes());
    }
    for s in 0..7u64 {
        let stream = format!("s-{s}");
        let versions: Vec<u64> = store
            .read_stream_forward(&stream, StreamVersion::START, usize::MAX)
            .unwrap()
            .map(|e| e.unwrap().version().get())
            .collect();
        assert_eq!(versions, (0..versions.len() as u64).collect::<Vec<_>>());
        let back: Vec<u64> = store
            .read_stream_backward(&stream, StreamVersion::END, usize::MAX)
            .unwrap()
            .map(|e| e.unwrap().version().get())
            .collect();
        assert_eq!(back, versions.iter().rev().copied().collect::<Vec<_>>());
    }
    let back: Vec<u64> =
        store.read_all_backward(Position::END, 5).map(|e| e.unwrap().position().get()).collect();
    assert_eq!(back, [299, 298, 297, 296, 295]);
}
