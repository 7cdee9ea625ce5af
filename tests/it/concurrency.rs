//! Many threads at once: optimistic-concurrency races, positions under load, atomic multi-stream
//! appends, readers racing writers, and closing while appends are in flight.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        Arc, Barrier,
        atomic::{AtomicBool, Ordering},
        mpsc::{self, RecvTimeoutError},
    },
    thread,
    time::Duration,
};

use annal::{
    AppendResult, Error, ExpectedVersion, NewEvent, Position, RecordedEvent, Store, StreamAppend,
    StreamVersion,
};

use crate::common::{event, fast_options, open, small_options};

/// Reads the whole of `$all` forward, panicking on any error.
fn read_all(store: &Store) -> Vec<RecordedEvent> {
    store
        .read_all_forward(Position::START, usize::MAX)
        .map(|e| e.unwrap_or_else(|e| panic!("read $all: {e}")))
        .collect()
}

/// Reads the whole of `stream` forward, panicking on any error.
fn read_stream(store: &Store, stream: &str) -> Vec<RecordedEvent> {
    store
        .read_stream_forward(stream, StreamVersion::START, usize::MAX)
        .unwrap_or_else(|e| panic!("read {stream}: {e}"))
        .map(|e| e.unwrap_or_else(|e| panic!("read {stream}: {e}")))
        .collect()
}

const RACERS: usize = 16;
const RACED_VERSIONS: u64 = 48;
const RACED_STREAM: &str = "contested";

/// One try of a racing thread: the version it saw and what its `Exact` append got.
struct Attempt {
    thread: usize,
    expected: u64,
    outcome: annal::Result<AppendResult>,
}

fn race_exact(store: &Store, thread: usize, barrier: &Barrier) -> Vec<Attempt> {
    barrier.wait();
    let mut attempts = Vec::new();
    loop {
        let current = store.stream_version(RACED_STREAM).expect("seeded").get();
        if current >= RACED_VERSIONS {
            return attempts;
        }
        let e = NewEvent::new("Raced", thread.to_string().into_bytes());
        let outcome = store.append(RACED_STREAM, ExpectedVersion::Exact(current), [e]);
        attempts.push(Attempt { thread, expected: current, outcome });
    }
}

#[test]
fn exact_race_one_stream_one_winner_per_version() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let seed = NewEvent::new("Seeded", b"seed".to_vec());
    store.append(RACED_STREAM, ExpectedVersion::NoStream, [seed]).unwrap();
    let barrier = Arc::new(Barrier::new(RACERS));
    let handles: Vec<_> = (0..RACERS)
        .map(|thread| {
            let (store, barrier) = (store.clone(), Arc::clone(&barrier));
            thread::spawn(move || race_exact(&store, thread, &barrier))
        })
        .collect();
    let attempts = handles.into_iter().flat_map(|h| h.join().unwrap());

    let mut winners: BTreeMap<u64, (usize, AppendResult)> = BTreeMap::new();
    for a in attempts {
        match a.outcome {
            Ok(r) => {
                let next = StreamVersion(a.expected + 1);
                assert_eq!((r.first_version, r.last_version), (next, next));
                let twice = winners.insert(a.expected, (a.thread, r));
                assert!(twice.is_none(), "two appends won Exact({})", a.expected);
            }
            Err(Error::WrongExpectedVersion { stream, expected, actual }) => {
                assert_eq!(stream, RACED_STREAM);
                assert_eq!(expected, ExpectedVersion::Exact(a.expected));
                // The writer checks against the log as it stands, which is only ever ahead of
                // what the loser saw when it chose its expected version.
                assert!(
                    actual.is_some_and(|v| v > a.expected),
                    "loser of Exact({}) told actual {actual:?}",
                    a.expected
                );
            }
            Err(other) => panic!("Exact({}) failed with {other}", a.expected),
        }
    }
    let won: Vec<u64> = winners.keys().copied().collect();
    assert_eq!(won, (0..RACED_VERSIONS).collect::<Vec<_>>());

    let events = read_stream(&store, RACED_STREAM);
    assert_eq!(events.len() as u64, RACED_VERSIONS + 1);
    for (v, e) in events.iter().enumerate() {
        assert_eq!(e.version(), StreamVersion(v as u64));
    }
    for (expected, (thread, r)) in &winners {
        let e = &events[*expected as usize + 1];
        assert_eq!(e.data(), thread.to_string().as_bytes(), "Exact({expected})");
        assert_eq!(e.position(), r.first_position, "Exact({expected})");
    }
}

const LOAD_WRITERS: usize = 8;
const LOAD_APPENDS: usize = 40;
const LOAD_STREAMS: usize = 10;

/// An append the store acknowledged, with what was sent.
struct Acked {
    stream: String,
    data: Vec<Vec<u8>>,
    result: AppendResult,
}

fn load(store: &Store, writer: usize) -> Vec<Acked> {
    (0..LOAD_APPENDS)
        .map(|i| {
            let stream = format!("load-{}", (writer * 7 + i) % LOAD_STREAMS);
            let data: Vec<Vec<u8>> =
                (0..1 + i % 3).map(|k| format!("w{writer}-a{i}-e{k}").into_bytes()).collect();
            let events = data.iter().map(|d| NewEvent::new("Loaded", d.clone()));
            let result = store
                .append(&stream, ExpectedVersion::Any, events)
                .unwrap_or_else(|e| panic!("writer {writer} append {i}: {e}"));
            Acked { stream, data, result }
        })
        .collect()
}

/// Every acknowledged event sits at the position and version it was given, `$all` is dense
/// from 0 to the head, and every stream is dense and agrees with `$all`.
fn assert_acked_in_place(store: &Store, acked: &[Acked]) {
    let all = read_all(store);
    let total: usize = acked.iter().map(|a| a.data.len()).sum();
    assert_eq!(store.head(), Position(total as u64));
    assert_eq!(all.len(), total);
    for (i, e) in all.iter().enumerate() {
        assert_eq!(e.position(), Position(i as u64));
    }
    for a in acked {
        let r = a.result;
        let n = a.data.len() as u64;
        assert_eq!(r.last_position.get() - r.first_position.get() + 1, n);
        assert_eq!(r.last_version.get() - r.first_version.get() + 1, n);
        for (k, data) in a.data.iter().enumerate() {
            let e = &all[r.first_position.get() as usize + k];
            assert_eq!(e.stream(), a.stream);
            assert_eq!(e.data(), data.as_slice());
            assert_eq!(e.version(), StreamVersion(r.first_version.get() + k as u64));
        }
    }
    let mut by_stream: HashMap<&str, Vec<Position>> = HashMap::new();
    for e in &all {
        by_stream.entry(e.stream()).or_default().push(e.position());
    }
    for (stream, positions) in by_stream {
        let events = read_stream(store, stream);
        let versions: Vec<u64> = events.iter().map(|e| e.version().get()).collect();
        assert_eq!(versions, (0..positions.len() as u64).collect::<Vec<_>>());
        let read: Vec<Position> = events.iter().map(RecordedEvent::position).collect();
        assert_eq!(read, positions, "{stream} disagrees with $all");
    }
}

#[test]
fn many_writers_many_streams_acked_events_stay_where_given() {
    let dir = tempfile::tempdir().unwrap();
    let acked: Vec<Acked> = {
        let store = open(dir.path(), small_options());
        let handles: Vec<_> = (0..LOAD_WRITERS)
            .map(|w| {
                let store = store.clone();
                thread::spawn(move || load(&store, w))
            })
            .collect();
        let acked: Vec<Acked> = handles.into_iter().flat_map(|h| h.join().unwrap()).collect();
        assert!(store.stats().segments > 3, "tiny segments rotate under load");
        assert_acked_in_place(&store, &acked);
        acked
    };
    let store = open(dir.path(), small_options());
    assert_acked_in_place(&store, &acked);
}

#[test]
fn append_multi_success_gives_contiguous_positions_in_part_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.append("a", ExpectedVersion::NoStream, [event(0), event(1)]).unwrap();
    store.append("other", ExpectedVersion::Any, [event(2)]).unwrap();
    let r = store
        .append_multi([
            StreamAppend::new("b", ExpectedVersion::NoStream, (3..6).map(event)),
            StreamAppend::new("a", ExpectedVersion::Exact(1), [event(6), event(7)]),
            StreamAppend::new("c", ExpectedVersion::Any, [event(8)]),
        ])
        .unwrap();
    let part = |first, last, first_version, last_version| AppendResult {
        first_position: Position(first),
        last_position: Position(last),
        first_version: StreamVersion(first_version),
        last_version: StreamVersion(last_version),
    };
    assert_eq!((r.first_position, r.last_position), (Position(3), Position(8)));
    assert_eq!(
        r.streams,
        [
            ("b".to_owned(), part(3, 5, 0, 2)),
            ("a".to_owned(), part(6, 7, 2, 3)),
            ("c".to_owned(), part(8, 8, 0, 0)),
        ]
    );
    let tail: Vec<(String, u64, Vec<u8>)> = store
        .read_all_forward(Position(3), usize::MAX)
        .map(|e| {
            let e = e.unwrap();
            (e.stream().to_owned(), e.version().get(), e.data().to_vec())
        })
        .collect();
    // Stream and version of positions 3..=8, whose events carry `event(3)` .. `event(8)`.
    let layout = [("b", 0), ("b", 1), ("b", 2), ("a", 2), ("a", 3), ("c", 0)];
    let expected: Vec<(String, u64, Vec<u8>)> =
        (3..).zip(layout).map(|(n, (s, v))| (s.to_owned(), v, event(n).data)).collect();
    assert_eq!(tail, expected);
}

#[test]
fn append_multi_one_wrong_expected_version_writes_no_part() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.append("a", ExpectedVersion::NoStream, [event(0), event(1)]).unwrap();
    store.append("b", ExpectedVersion::NoStream, [event(2)]).unwrap();
    let head = store.head();
    let attempts = [
        // The failing part last, after a part that alone would commit.
        (
            vec![
                StreamAppend::new("a", ExpectedVersion::Exact(1), [event(10)]),
                StreamAppend::new("new", ExpectedVersion::NoStream, [event(11)]),
                StreamAppend::new("b", ExpectedVersion::Exact(5), [event(12), event(13)]),
            ],
            ("b", ExpectedVersion::Exact(5), Some(0)),
        ),
        // The failing part first.
        (
            vec![
                StreamAppend::new("a", ExpectedVersion::NoStream, [event(20)]),
                StreamAppend::new("b", ExpectedVersion::Exact(0), [event(21)]),
            ],
            ("a", ExpectedVersion::NoStream, Some(1)),
        ),
        // A part naming a stream that does not exist yet.
        (
            vec![
                StreamAppend::new("b", ExpectedVersion::StreamExists, [event(30)]),
                StreamAppend::new("new", ExpectedVersion::StreamExists, [event(31)]),
            ],
            ("new", ExpectedVersion::StreamExists, None),
        ),
    ];
    for (parts, (stream, expected, actual)) in attempts {
        match store.append_multi(parts) {
            Err(Error::WrongExpectedVersion { stream: s, expected: e, actual: a }) => {
                assert_eq!((s.as_str(), e, a), (stream, expected, actual))
            }
            other => panic!("expected a wrong version of {stream}, got {other:?}"),
        }
        assert_eq!(store.head(), head);
        assert_eq!(store.stream_version("a"), Some(StreamVersion(1)));
        assert_eq!(store.stream_version("b"), Some(StreamVersion(0)));
        assert_eq!(store.stream_version("new"), None);
        assert!(matches!(
            store.read_stream_forward("new", StreamVersion::START, 1),
            Err(Error::StreamNotFound { .. })
        ));
        assert_eq!(read_all(&store).len() as u64, head.get());
    }
}

const BATCH_WRITERS: usize = 3;
const BATCHES: usize = 60;
const BATCH_EVENTS: usize = 5;

/// Each append is its own stream of exactly `BATCH_EVENTS` events, so in a prefix of `$all`
/// every aligned chunk must be one whole batch.
fn assert_whole_batches(events: &[RecordedEvent]) {
    for (i, chunk) in events.chunks(BATCH_EVENTS).enumerate() {
        assert_eq!(
            chunk.len(),
            BATCH_EVENTS,
            "a read ended inside the batch {}",
            chunk[0].stream()
        );
        for (k, e) in chunk.iter().enumerate() {
            assert_eq!(e.position(), Position((i * BATCH_EVENTS + k) as u64));
            assert_eq!(e.stream(), chunk[0].stream());
            assert_eq!(e.version(), StreamVersion(k as u64));
        }
    }
}

/// Reads `$all` forward and backward until `done` (checked before a read), returning the
/// number of reads and the length of the last one.
fn read_prefixes(store: &Store, done: &AtomicBool) -> (usize, usize) {
    let (mut reads, mut last_len) = (0, 0);
    loop {
        let finished = done.load(Ordering::Acquire);
        let before = store.head().get();
        let events = read_all(store);
        let after = store.head().get();
        let len = events.len() as u64;
        assert!(before <= len && len <= after, "read {len} events, head {before}..{after}");
        assert!(events.len() >= last_len, "a later read saw less");
        assert_whole_batches(&events);
        let newest: Vec<u64> =
            store.read_all_backward(Position::END, 1).map(|e| e.unwrap().version().get()).collect();
        if let Some(&v) = newest.first() {
            assert_eq!(v, BATCH_EVENTS as u64 - 1, "the newest event ends its batch");
        }
        reads += 1;
        last_len = events.len();
        if finished {
            return (reads, last_len);
        }
    }
}

#[test]
fn concurrent_reader_sees_only_whole_batches() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), fast_options());
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (store, done) = (store.clone(), Arc::clone(&done));
        thread::spawn(move || read_prefixes(&store, &done))
    };
    let writers: Vec<_> = (0..BATCH_WRITERS)
        .map(|w| {
            let store = store.clone();
            thread::spawn(move || {
                for i in 0..BATCHES {
                    let stream = format!("batch-{w}-{i}");
                    let events = (0..BATCH_EVENTS).map(|k| event((w * 1000 + i * 10 + k) as u64));
                    store.append(&stream, ExpectedVersion::NoStream, events).unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    done.store(true, Ordering::Release);
    let (_reads, last_len) = reader.join().unwrap();
    assert_eq!(last_len, BATCH_WRITERS * BATCHES * BATCH_EVENTS);
    assert!(store.stats().segments > 3, "reads raced segment rotation");
}

const CLOSE_APPENDERS: usize = 8;
/// How long a thread may stay blocked in `append` after `close` before the test calls it hung.
/// A liveness guard only: a healthy store answers within milliseconds.
const HANG_AFTER_CLOSE: Duration = Duration::from_secs(60);

/// Appends to `stream` until the store refuses; returns what was acknowledged.
fn append_until_closed(store: &Store, stream: &str) -> Vec<AppendResult> {
    let mut acked = Vec::new();
    for n in 0.. {
        match store.append(stream, ExpectedVersion::Any, [event(n)]) {
            Ok(r) => acked.push(r),
            Err(Error::Closed) => break,
            Err(other) => panic!("{stream}: append {n} failed with {other}"),
        }
    }
    acked
}

/// Runs `append_until_closed` on `threads` threads, closes `store` once `head_before_close`
/// events are in, and returns each thread's stream and acknowledged appends.
fn close_under_load(
    store: &Store,
    threads: usize,
    head_before_close: u64,
) -> Vec<(String, Vec<AppendResult>)> {
    let (tx, rx) = mpsc::channel();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (store, tx) = (store.clone(), tx.clone());
            thread::spawn(move || {
                let stream = format!("closing-{t}");
                let acked = append_until_closed(&store, &stream);
                let _ = tx.send((stream, acked));
            })
        })
        .collect();
    drop(tx);
    // An appender that ends before the close has panicked; stop waiting for the head then.
    while store.head().get() < head_before_close && !handles.iter().any(|h| h.is_finished()) {
        thread::yield_now();
    }
    store.close();
    let outcomes = (0..threads)
        .map(|_| match rx.recv_timeout(HANG_AFTER_CLOSE) {
            Ok(outcome) => outcome,
            Err(RecvTimeoutError::Timeout) => {
                panic!("an append is still blocked {HANG_AFTER_CLOSE:?} after close")
            }
            Err(RecvTimeoutError::Disconnected) => panic!("an appender panicked"),
        })
        .collect();
    // Each thread has answered; joining it drops its clone, and with the last clone the lock.
    for h in handles {
        h.join().unwrap();
    }
    outcomes
}

#[test]
fn close_answers_inflight_appends_then_refuses_appends() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), small_options());
    let outcomes = close_under_load(&store, CLOSE_APPENDERS, 32);
    let acked: usize = outcomes.iter().map(|(_, a)| a.len()).sum();
    // Every committed append was answered Ok, and nothing answered Closed was written.
    assert_eq!(store.head(), Position(acked as u64));

    assert!(matches!(store.append("late", ExpectedVersion::Any, [event(0)]), Err(Error::Closed)));
    let multi = [StreamAppend::new("late", ExpectedVersion::Any, [event(1)])];
    assert!(matches!(store.append_multi(multi), Err(Error::Closed)));
    store.close();

    let all = read_all(&store);
    assert_eq!(all.len(), acked);
    for (stream, results) in &outcomes {
        if results.is_empty() {
            // A thread the scheduler kept off the cores until the close got nothing in (likelier
            // since appends commit inline when the writer is idle): its stream never came to be.
            let read = store.read_stream_forward(stream, StreamVersion::START, usize::MAX);
            assert!(matches!(read, Err(Error::StreamNotFound { .. })), "{stream}");
            continue;
        }
        let positions: Vec<Position> = results.iter().map(|r| r.first_position).collect();
        let events = read_stream(&store, stream);
        let read: Vec<Position> = events.iter().map(RecordedEvent::position).collect();
        assert_eq!(read, positions, "{stream}");
    }
    drop(store);
    let store = open(dir.path(), small_options());
    assert_eq!(store.head(), Position(acked as u64));
}
