//! Retried appends with caller-given ids: answered with the original result and never written
//! twice, across a reopen too; reused ids in a new combination conflict; the window's limit.

use std::path::Path;

use annal::{
    Error, ExpectedVersion, MultiAppendResult, NewEvent, Options, Position, Store, StreamAppend,
    StreamVersion,
};
use uuid::Uuid;

use crate::common::{event, open};

/// Events whose ids are `ids` (as u128) and whose data names the id.
fn with_ids(ids: &[u128]) -> Vec<NewEvent> {
    ids.iter()
        .map(|&n| {
            NewEvent::new("Paid", format!("payload-{n}").into_bytes()).with_id(Uuid::from_u128(n))
        })
        .collect()
}

/// How many events of `$all` carry `id`.
fn copies_of(store: &Store, id: u128) -> usize {
    store
        .read_all_forward(Position::START, usize::MAX)
        .filter(|e| e.as_ref().unwrap().id() == Uuid::from_u128(id))
        .count()
}

/// The ids of `stream`'s events, in version order.
fn stream_ids(store: &Store, stream: &str) -> Vec<Uuid> {
    store
        .read_stream_forward(stream, StreamVersion::START, usize::MAX)
        .unwrap()
        .map(|e| e.unwrap().id())
        .collect()
}

fn reopen(dir: &Path, store: Store, options: Options) -> Store {
    drop(store);
    open(dir, options)
}

#[test]
fn retry_same_ids_returns_original_result_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    let first = store.append("acct-1", ExpectedVersion::NoStream, with_ids(&[1, 2])).unwrap();
    store.append("acct-1", ExpectedVersion::Exact(1), [event(3)]).unwrap();
    store.append("acct-2", ExpectedVersion::Any, [event(4)]).unwrap();
    let head = store.head();
    for round in ["before reopen", "after reopen"] {
        // The window is consulted before the expected version, so even checks that would now
        // fail (the stream is at version 2) get the original answer.
        for expected in [
            ExpectedVersion::NoStream,
            ExpectedVersion::Exact(0),
            ExpectedVersion::Exact(2),
            ExpectedVersion::StreamExists,
            ExpectedVersion::Any,
        ] {
            let retry = store.append("acct-1", expected, with_ids(&[1, 2]));
            assert_eq!(retry.unwrap(), first, "{round}, {expected}");
            assert_eq!(store.head(), head, "{round}, {expected}");
        }
        assert_eq!(copies_of(&store, 1), 1);
        assert_eq!(copies_of(&store, 2), 1);
        assert_eq!(&stream_ids(&store, "acct-1")[..2], [1, 2].map(Uuid::from_u128));
        store = reopen(dir.path(), store, Options::default());
    }
}

fn transfer(ids: [u128; 3]) -> [StreamAppend; 2] {
    [
        StreamAppend::new("from", ExpectedVersion::NoStream, with_ids(&ids[..2])),
        StreamAppend::new("to", ExpectedVersion::NoStream, with_ids(&ids[2..])),
    ]
}

#[test]
fn retry_multi_stream_returns_original_result_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    let first: MultiAppendResult = store.append_multi(transfer([10, 11, 12])).unwrap();
    store.append("from", ExpectedVersion::Any, [event(13)]).unwrap();
    let head = store.head();
    for round in ["before reopen", "after reopen"] {
        let retry = store.append_multi(transfer([10, 11, 12]));
        assert_eq!(retry.unwrap(), first, "{round}");
        assert_eq!(store.head(), head, "{round}");
        assert_eq!(store.stream_version("from"), Some(StreamVersion(2)));
        assert_eq!(store.stream_version("to"), Some(StreamVersion(0)));
        store = reopen(dir.path(), store, Options::default());
    }
}

#[test]
fn reused_id_in_new_combination_conflicts() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    store.append("seed", ExpectedVersion::Any, [event(0)]).unwrap();
    let original = store.append("s", ExpectedVersion::NoStream, with_ids(&[20, 21, 22])).unwrap();
    store.append("seed", ExpectedVersion::Any, [event(1)]).unwrap();
    let p = original.first_position.get();
    assert_eq!(p, 1);
    let head = store.head();
    let single = |stream: &str, ids: &[u128]| {
        vec![StreamAppend::new(stream, ExpectedVersion::Any, with_ids(ids))]
    };
    // (the append, the id the conflict names, where that id was committed)
    let cases = [
        (single("s", &[20, 21]), 20, p),
        (single("s", &[21, 22]), 21, p + 1),
        (single("s", &[23, 21]), 21, p + 1),
        (single("s", &[22, 21, 20]), 22, p + 2),
        (single("s", &[20, 21, 22, 23]), 20, p),
        (single("t", &[20, 21, 22]), 20, p),
        (
            vec![
                StreamAppend::new("s", ExpectedVersion::Any, with_ids(&[20, 21, 22])),
                StreamAppend::new("t", ExpectedVersion::Any, with_ids(&[24])),
            ],
            20,
            p,
        ),
    ];
    for round in ["before reopen", "after reopen"] {
        for (parts, id, position) in cases.clone() {
            match store.append_multi(parts) {
                Err(Error::EventIdConflict { id: i, position: at }) => {
                    assert_eq!((i, at), (Uuid::from_u128(id), position), "{round}");
                }
                other => panic!("{round}: expected a conflict on id {id}, got {other:?}"),
            }
            assert_eq!(store.head(), head, "{round}");
        }
        assert_eq!(store.stream_version("t"), None);
        assert_eq!(copies_of(&store, 23), 0);
        store = reopen(dir.path(), store, Options::default());
    }
}

// Regression: `IdWindow::check` once compared a retry's ids and stream names but not how the
// ids were split between the parts, so moving an event to another part passed as a retry and
// was answered with a result that put the event in the wrong stream.
#[test]
fn retry_multi_with_event_moved_between_parts_conflicts() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let original = store.append_multi(transfer([30, 31, 32])).unwrap();
    let head = store.head();
    // Same ids in the same order to the same streams, but event 31 now goes to "to".
    let moved = [
        StreamAppend::new("from", ExpectedVersion::Any, with_ids(&[30])),
        StreamAppend::new("to", ExpectedVersion::Any, with_ids(&[31, 32])),
    ];
    match store.append_multi(moved) {
        Err(Error::EventIdConflict { id, position }) => {
            assert_eq!((id, position), (Uuid::from_u128(30), original.first_position.get()));
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(store.head(), head);
}

fn small_window(events: u32) -> Options {
    Options { idempotency_window_events: events, ..Options::default() }
}

#[test]
fn retry_beyond_window_is_appended_again() {
    let dir = tempfile::tempdir().unwrap();
    let options = small_window(4);
    let store = open(dir.path(), options.clone());
    let old = store.append("order", ExpectedVersion::Any, with_ids(&[40])).unwrap();
    for n in 0..3 {
        store.append("filler", ExpectedVersion::Any, [event(n)]).unwrap();
    }
    // Four events so far: the window still holds the first append.
    let retry = store.append("order", ExpectedVersion::Any, with_ids(&[40]));
    assert_eq!(retry.unwrap(), old);
    store.append("filler", ExpectedVersion::Any, [event(3)]).unwrap();
    // The window remembers only the last `idempotency_window_events` events (its documented
    // limit), so a retry arriving later is not recognised: it is judged like any new append.
    // With an expected version the usual check still catches it ...
    let head = store.head();
    match store.append("order", ExpectedVersion::NoStream, with_ids(&[40])) {
        Err(Error::WrongExpectedVersion { actual, .. }) => assert_eq!(actual, Some(0)),
        other => panic!("expected a wrong version, got {other:?}"),
    }
    assert_eq!(store.head(), head);
    // ... and with `Any` the event is written a second time, under the same id.
    let again = store.append("order", ExpectedVersion::Any, with_ids(&[40])).unwrap();
    assert_eq!(again.first_position, head);
    assert_eq!(again.first_version, StreamVersion(1));
    assert_eq!(stream_ids(&store, "order"), [40, 40].map(Uuid::from_u128));
    // The second copy is now the remembered one, before and after a reopen.
    let store = reopen(dir.path(), store, options);
    let head = store.head();
    let retry = store.append("order", ExpectedVersion::Any, with_ids(&[40]));
    assert_eq!(retry.unwrap(), again);
    assert_eq!(store.head(), head);
}

// Regression: `recovery::window::rebuild` once skipped the append starting exactly at
// `head - capacity`, because it could not tell that the record before it ended a batch. A
// retry the running store recognised was then appended a second time after a reopen.
#[test]
fn window_rebuilt_on_open_remembers_the_oldest_append_in_window() {
    let dir = tempfile::tempdir().unwrap();
    let options = small_window(3);
    let store = open(dir.path(), options.clone());
    let results: Vec<_> = (50..56)
        .map(|id| store.append("w", ExpectedVersion::Any, with_ids(&[id])).unwrap())
        .collect();
    let head = store.head();
    // While running, the window holds the last three one-event appends: ids 53, 54 and 55.
    let retry = store.append("w", ExpectedVersion::Any, with_ids(&[53]));
    assert_eq!(retry.as_ref().unwrap(), &results[3]);
    assert_eq!(store.head(), head);
    let store = reopen(dir.path(), store, options);
    let retry = store.append("w", ExpectedVersion::Any, with_ids(&[53]));
    assert_eq!(retry.as_ref().unwrap(), &results[3], "window lost id 53 on reopen");
    assert_eq!(store.head(), head);
}
