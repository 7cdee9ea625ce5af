//! Model-based property test of stream lifecycle and scavenging: random appends, soft deletes,
//! tombstones, metadata changes (`max_count`, `truncate_before`), scavenges and reopens on a store
//! with tiny segments and no idempotency window, every outcome and every read checked against an
//! in-memory model that remembers every event ever committed.
//!
//! It proves that a scavenge removes only events no read could return when it started (and
//! exactly as many as it reports), that survivors keep their positions and bytes, that removal
//! is prefix-closed per stream, that nothing removed ever comes back, and that every stream
//! read, `$all` read, version and metadata answer matches the lifecycle rules, before and after
//! each scavenge and reopen. `max_age` is left out: it depends on the clock.

use std::{
    collections::{HashMap, HashSet},
    path::Path,
};

use annal::{
    AppendResult, Durability, Error, ExpectedVersion, NewEvent, Options, Position, RecordedEvent,
    ScavengeReport, Store, StreamMetadata, StreamVersion,
};
use proptest::prelude::*;
use uuid::Uuid;

use crate::common::{open, small_options};

const STREAMS: [&str; 5] = ["s0", "s1", "s2", "s3", "s4"];

/// How an operation picks its expected version, resolved against the model when it runs.
#[derive(Clone, Copy, Debug)]
enum Expect {
    Any,
    /// What the store's state admits: `Exact(last)` for a stream that exists, else `NoStream`.
    Correct,
    /// A version the stream is not at.
    Wrong,
}

#[derive(Clone, Debug)]
enum Op {
    Append {
        stream: usize,
        events: usize,
        expect: Expect,
        bytes: usize,
    },
    Delete {
        stream: usize,
        expect: Expect,
    },
    Tombstone {
        stream: usize,
        expect: Expect,
    },
    SetMetadata {
        stream: usize,
        max_count: Option<u64>,
        truncate_before: Option<u64>,
        expect: Expect,
    },
    Scavenge,
    Reopen,
}

fn expect() -> impl Strategy<Value = Expect> {
    prop_oneof![2 => Just(Expect::Any), 3 => Just(Expect::Correct), 1 => Just(Expect::Wrong)]
}

fn op() -> impl Strategy<Value = Op> {
    let stream = 0..STREAMS.len();
    prop_oneof![
        10 => (stream.clone(), 1..5usize, expect(), 40..400usize)
            .prop_map(|(stream, events, expect, bytes)| Op::Append { stream, events, expect, bytes }),
        3 => (stream.clone(), expect()).prop_map(|(stream, expect)| Op::Delete { stream, expect }),
        1 => (stream.clone(), expect()).prop_map(|(stream, expect)| Op::Tombstone { stream, expect }),
        3 => (stream, proptest::option::of(1..5u64), proptest::option::of(0..14u64), expect())
            .prop_map(|(stream, max_count, truncate_before, expect)| {
                Op::SetMetadata { stream, max_count, truncate_before, expect }
            }),
        3 => Just(Op::Scavenge),
        1 => Just(Op::Reopen),
    ]
}

/// Tiny segments (4 KiB) so that scavenges find sealed segments to rewrite, no fsync (nothing
/// here crashes), and no idempotency window, which would otherwise protect every recent event.
fn options() -> Options {
    Options { durability: Durability::None, idempotency_window_events: 0, ..small_options() }
}

/// An event's content as read back: id, type, data, metadata and commit time.
type Content = (Uuid, String, Vec<u8>, Vec<u8>, u64);

fn content(e: &RecordedEvent) -> Content {
    let (id, kind) = (e.id(), e.event_type().to_owned());
    (id, kind, e.data().to_vec(), e.metadata().to_vec(), e.timestamp_us())
}

/// One committed event. Its content is learnt the first time `$all` returns it (the store
/// chooses the timestamp, and the bytes of its own `$metadata` events), and must never change.
#[derive(Debug)]
struct Ev {
    stream: String,
    version: u64,
    /// For the test's own appends: the id and data it handed in.
    sent: Option<(Uuid, Vec<u8>)>,
    content: Option<Content>,
    /// Still in the log (false once a scavenge removed it).
    present: bool,
}

/// A stream (or a `$$` metadata stream) as the model sees it.
#[derive(Clone, Debug, Default)]
struct StreamModel {
    last: Option<u64>,
    max_count: Option<u64>,
    truncate_before: Option<u64>,
    tombstoned: bool,
}

impl StreamModel {
    /// The first version the version rules leave visible.
    fn floor(&self) -> u64 {
        let next = self.last.map_or(0, |l| l + 1);
        let by_count = self.max_count.map_or(0, |n| next.saturating_sub(n));
        self.truncate_before.unwrap_or(0).max(by_count)
    }

    fn exists(&self) -> bool {
        !self.tombstoned && self.last.is_some_and(|last| self.floor() <= last)
    }

    fn admits(&self, expected: ExpectedVersion) -> bool {
        match expected {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => !self.exists(),
            ExpectedVersion::StreamExists => self.exists(),
            ExpectedVersion::Exact(v) => self.last == Some(v),
        }
    }

    fn expected(&self, expect: Expect) -> ExpectedVersion {
        match (expect, self.last) {
            (Expect::Any, _) => ExpectedVersion::Any,
            (Expect::Correct, Some(last)) if self.exists() => ExpectedVersion::Exact(last),
            (Expect::Correct, _) => ExpectedVersion::NoStream,
            (Expect::Wrong, last) => ExpectedVersion::Exact(last.map_or(0, |l| l + 1)),
        }
    }
}

/// What the store must answer an operation with, errors reduced to what the model predicts.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Ok(u64),
    Appended(AppendResult),
    Wrong(String, ExpectedVersion, Option<u64>),
    NotFound(String),
    Deleted(String),
}

impl Outcome {
    fn of<T>(result: annal::Result<T>, ok: impl FnOnce(T) -> Outcome) -> Outcome {
        match result {
            Ok(t) => ok(t),
            Err(Error::WrongExpectedVersion { stream, expected, actual }) => {
                Outcome::Wrong(stream, expected, actual)
            }
            Err(Error::StreamNotFound { stream }) => Outcome::NotFound(stream),
            Err(Error::StreamDeleted { stream }) => Outcome::Deleted(stream),
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
}

#[derive(Default)]
struct Model {
    /// Every event ever committed, indexed by position.
    log: Vec<Ev>,
    streams: HashMap<String, StreamModel>,
    next_id: u128,
    /// Events the scavenges removed, over the whole run.
    removed: u64,
}

impl Model {
    fn state(&self, stream: &str) -> StreamModel {
        self.streams.get(stream).cloned().unwrap_or_default()
    }

    fn head(&self) -> u64 {
        self.log.len() as u64
    }

    fn push(&mut self, stream: &str, sent: Option<(Uuid, Vec<u8>)>) -> (u64, u64) {
        let entry = self.streams.entry(stream.to_owned()).or_default();
        let version = entry.last.map_or(0, |l| l + 1);
        entry.last = Some(version);
        let ev = Ev { stream: stream.to_owned(), version, sent, content: None, present: true };
        self.log.push(ev);
        (self.head() - 1, version)
    }

    /// Whether a scavenge starting now may remove `ev`: the rules of `scavenge/plan.rs` with
    /// no idempotency window. Whether it does also depends on segment boundaries (the active
    /// segment is never touched), which the model does not know.
    fn removable(&self, ev: &Ev) -> bool {
        let state = self.state(&ev.stream);
        let last = state.last.expect("a committed event's stream has a last version");
        if ev.stream.starts_with("$$") {
            return ev.version < last;
        }
        state.tombstoned || (ev.version < last && ev.version < state.floor())
    }

    fn append(&mut self, store: &Store, stream: &str, n: usize, expect: Expect, bytes: usize) {
        let state = self.state(stream);
        let expected = state.expected(expect);
        let mut sent = Vec::new();
        for _ in 0..n {
            self.next_id += 1;
            let id = Uuid::from_u128(self.next_id);
            let mut data = format!("{stream}:{}:", self.next_id).into_bytes();
            data.resize(bytes.max(data.len()), b'.');
            sent.push((id, data));
        }
        let events = sent.iter().map(|(id, d)| NewEvent::new("Modeled", d.clone()).with_id(*id));
        let got = Outcome::of(store.append(stream, expected, events), Outcome::Appended);
        let want = if state.tombstoned {
            Outcome::Deleted(stream.to_owned())
        } else if !state.admits(expected) {
            Outcome::Wrong(stream.to_owned(), expected, state.last)
        } else {
            let first = self.head();
            let mut versions = sent.into_iter().map(|s| self.push(stream, Some(s)).1);
            let first_version = versions.next().expect("at least one event");
            let last_version = versions.last().unwrap_or(first_version);
            Outcome::Appended(AppendResult {
                first_position: Position(first),
                last_position: Position(self.head() - 1),
                first_version: StreamVersion(first_version),
                last_version: StreamVersion(last_version),
            })
        };
        assert_eq!(got, want, "append {n} to {stream} at {expected:?}");
    }

    fn delete(&mut self, store: &Store, stream: &str, expect: Expect, tombstone: bool) {
        let state = self.state(stream);
        let expected = match (expect, state.last) {
            // A delete needs a stream that exists; the right version is its last one.
            (Expect::Correct, Some(last)) => ExpectedVersion::Exact(last),
            _ => state.expected(expect),
        };
        let got = if tombstone {
            Outcome::of(store.tombstone_stream(stream, expected), |p| Outcome::Ok(p.get()))
        } else {
            Outcome::of(store.delete_stream(stream, expected), |p| Outcome::Ok(p.get()))
        };
        let want = if state.tombstoned {
            Outcome::Deleted(stream.to_owned())
        } else if !tombstone && !state.exists() {
            Outcome::NotFound(stream.to_owned())
        } else if !state.admits(expected) {
            Outcome::Wrong(stream.to_owned(), expected, state.last)
        } else {
            let entry = self.streams.entry(stream.to_owned()).or_default();
            if tombstone {
                entry.tombstoned = true;
            } else {
                entry.truncate_before = state.last.map(|l| l + 1);
            }
            Outcome::Ok(self.push(&format!("$${stream}"), None).0)
        };
        assert_eq!(got, want, "delete {stream} at {expected:?}, tombstone {tombstone}");
    }

    fn set_metadata(&mut self, store: &Store, stream: &str, rules: StreamModel, expect: Expect) {
        let meta_stream = format!("$${stream}");
        let meta_state = self.state(&meta_stream);
        let expected = meta_state.expected(expect);
        let meta = StreamMetadata {
            max_count: rules.max_count,
            truncate_before: rules.truncate_before,
            ..StreamMetadata::default()
        };
        let got = Outcome::of(store.set_stream_metadata(stream, expected, meta), |v| {
            Outcome::Ok(v.get())
        });
        let want = if self.state(stream).tombstoned {
            Outcome::Deleted(stream.to_owned())
        } else if !meta_state.admits(expected) {
            Outcome::Wrong(meta_stream, expected, meta_state.last)
        } else {
            let entry = self.streams.entry(stream.to_owned()).or_default();
            entry.max_count = rules.max_count;
            entry.truncate_before = rules.truncate_before;
            Outcome::Ok(self.push(&meta_stream, None).1)
        };
        assert_eq!(got, want, "set metadata of {stream} at {expected:?}");
    }
}

/// What a scavenge step did: the positions it was allowed to remove, and its report.
struct Scavenged {
    removable: HashSet<u64>,
    report: ScavengeReport,
}

/// Runs one operation on both the store and the model and compares the outcomes.
fn step(dir: &Path, store: Store, model: &mut Model, op: &Op) -> (Store, Option<Scavenged>) {
    match *op {
        Op::Append { stream, events, expect, bytes } => {
            model.append(&store, STREAMS[stream], events, expect, bytes)
        }
        Op::Delete { stream, expect } => model.delete(&store, STREAMS[stream], expect, false),
        Op::Tombstone { stream, expect } => model.delete(&store, STREAMS[stream], expect, true),
        Op::SetMetadata { stream, max_count, truncate_before, expect } => {
            let rules = StreamModel { max_count, truncate_before, ..StreamModel::default() };
            model.set_metadata(&store, STREAMS[stream], rules, expect)
        }
        Op::Scavenge => {
            let removable = (0..model.head())
                .filter(|&p| {
                    model.log[p as usize].present && model.removable(&model.log[p as usize])
                })
                .collect();
            let report = store.scavenge().expect("scavenge");
            assert!(!report.cancelled, "nobody cancelled it");
            return (store, Some(Scavenged { removable, report }));
        }
        Op::Reopen => {
            drop(store);
            let store = open(dir, options());
            let verified = store.verify().expect("verify");
            assert!(verified.is_clean(), "verify after reopen: {verified:?}");
            return (store, None);
        }
    }
    (store, None)
}

/// `$all` against the model: ascending positions, a subsequence of the model's log with the
/// same content, every event the model still holds present unless this very step was a
/// scavenge allowed to remove it, and nothing removed ever back.
fn check_all(store: &Store, model: &mut Model, scavenged: Option<&Scavenged>) {
    assert_eq!(store.head(), Position(model.head()), "head");
    let read: Vec<RecordedEvent> = store
        .read_all_forward(Position::START, usize::MAX)
        .map(|e| e.expect("read $all"))
        .collect();
    let positions: Vec<u64> = read.iter().map(|e| e.position().get()).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "$all ascending: {positions:?}");
    let backward: Vec<u64> = store
        .read_all_backward(Position::END, usize::MAX)
        .map(|e| e.unwrap().position().get())
        .collect();
    assert_eq!(backward, positions.iter().rev().copied().collect::<Vec<_>>(), "$all backward");
    let mut read = read.into_iter().peekable();
    let mut removed = 0;
    for (p, ev) in model.log.iter_mut().enumerate() {
        let p = p as u64;
        match (read.next_if(|e| e.position().get() == p), ev.present) {
            (Some(e), true) => {
                assert_eq!(
                    (e.stream(), e.version().get()),
                    (ev.stream.as_str(), ev.version),
                    "at {p}"
                );
                let got = content(&e);
                if let Some((id, data)) = &ev.sent {
                    assert_eq!((&got.0, got.1.as_str(), &got.2), (id, "Modeled", data), "at {p}");
                } else {
                    assert_eq!(got.1, "$metadata", "the store's own event at {p}");
                }
                let known = ev.content.get_or_insert_with(|| got.clone());
                assert_eq!(*known, got, "the content at {p} changed");
            }
            (Some(_), false) => panic!("the event at {p} came back after a scavenge removed it"),
            (None, true) => {
                let allowed = scavenged.is_some_and(|s| s.removable.contains(&p));
                assert!(allowed, "{ev:?} at {p} vanished, but no scavenge could remove it");
                ev.present = false;
                removed += 1;
            }
            (None, false) => {}
        }
    }
    assert!(read.next().is_none(), "$all returned positions at or past the head");
    if let Some(s) = scavenged {
        assert_eq!(s.report.events_removed, removed, "events removed: {:?}", s.report);
        model.removed += removed;
    }
}

/// One stream (or metadata stream): version, reads both ways and removal prefix-closed.
fn check_stream(store: &Store, model: &Model, stream: &str) {
    let state = model.state(stream);
    let events: Vec<(u64, &Ev)> = (0..model.head())
        .map(|p| (p, &model.log[p as usize]))
        .filter(|(_, e)| e.stream == stream)
        .collect();
    let version = store.stream_version(stream);
    // A tombstoned stream scavenged to nothing has no event left to carry its last version
    // across a reopen; it can never be written again, so the version no longer matters.
    let forgotten = state.tombstoned && events.iter().all(|(_, e)| !e.present) && version.is_none();
    if !forgotten {
        assert_eq!(version, state.last.map(StreamVersion), "{stream} version");
    }
    // Removal is prefix-closed: what is left of a stream is a suffix of its versions.
    let first_present = events.iter().position(|(_, e)| e.present).unwrap_or(events.len());
    assert!(
        events[first_present..].iter().all(|(_, e)| e.present),
        "{stream}: holes after scavenge"
    );
    let forward = store.read_stream_forward(stream, StreamVersion::START, usize::MAX);
    let backward = store.read_stream_backward(stream, StreamVersion::END, usize::MAX);
    if state.tombstoned || !state.exists() {
        let want = if state.tombstoned { "deleted" } else { "not found" };
        for read in [forward, backward] {
            let got = match read {
                Err(Error::StreamDeleted { .. }) => "deleted",
                Err(Error::StreamNotFound { .. }) => "not found",
                Err(e) => panic!("{stream}: {e}"),
                Ok(r) => panic!("{stream} read {} events, expected {want}", r.count()),
            };
            assert_eq!(got, want, "{stream}");
        }
        return;
    }
    let floor = state.floor();
    let want: Vec<(u64, u64, &Content)> = events
        .iter()
        .filter(|(_, e)| e.present && e.version >= floor)
        .map(|(p, e)| (*p, e.version, e.content.as_ref().expect("seen in $all")))
        .collect();
    assert_eq!(want.last().map(|w| w.1), state.last, "{stream}: its last event stays");
    let read = |r: annal::ReadStream| -> Vec<(u64, u64, Content)> {
        r.map(|e| e.expect("read stream"))
            .map(|e| (e.position().get(), e.version().get(), content(&e)))
            .collect()
    };
    let want: Vec<(u64, u64, Content)> =
        want.into_iter().map(|(p, v, c)| (p, v, c.clone())).collect();
    let forward = read(forward.expect("stream read"));
    assert_eq!(forward, want, "{stream} forward, floor {floor}");
    let mut backward = read(backward.expect("stream read"));
    backward.reverse();
    assert_eq!(backward, want, "{stream} backward, floor {floor}");
    // Reads that start around the floor and the removed versions, two events at a time.
    let last = state.last.expect("exists");
    for from in [0, floor.saturating_sub(1), floor, (floor + last) / 2, last, last + 1] {
        let got = read(store.read_stream_forward(stream, StreamVersion(from), 2).unwrap());
        let expected: Vec<_> = want.iter().filter(|w| w.1 >= from).take(2).cloned().collect();
        assert_eq!(got, expected, "{stream} forward from {from}, floor {floor}");
        let got = read(store.read_stream_backward(stream, StreamVersion(from), 2).unwrap());
        let expected: Vec<_> = want.iter().rev().filter(|w| w.1 <= from).take(2).cloned().collect();
        assert_eq!(got, expected, "{stream} backward from {from}, floor {floor}");
    }
}

fn check_metadata(store: &Store, model: &Model, stream: &str) {
    let state = model.state(stream);
    let got = store.stream_metadata(stream);
    if state.tombstoned {
        assert!(matches!(got, Err(Error::StreamDeleted { .. })), "{stream} metadata: {got:?}");
        return;
    }
    let want = model.state(&format!("$${stream}")).last.map(|v| {
        let meta = StreamMetadata {
            max_count: state.max_count,
            truncate_before: state.truncate_before,
            ..StreamMetadata::default()
        };
        (StreamVersion(v), meta)
    });
    assert_eq!(got.expect("metadata"), want, "{stream} metadata");
}

/// Compares the whole store with the model.
fn check_everything(store: &Store, model: &mut Model, scavenged: Option<&Scavenged>) {
    check_all(store, model, scavenged);
    for stream in STREAMS {
        check_stream(store, model, stream);
        check_stream(store, model, &format!("$${stream}"));
        check_metadata(store, model, stream);
    }
}

/// Runs `ops` on a fresh store, checking everything after every step; returns the model.
fn run(ops: &[Op]) -> Model {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path(), options());
    let mut model = Model::default();
    for op in ops {
        let (next, scavenged) = step(dir.path(), store, &mut model, op);
        store = next;
        check_everything(&store, &mut model, scavenged.as_ref());
    }
    model
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn scavenge_model_reads_match_the_model_after_every_step(
        ops in proptest::collection::vec(op(), 8..40),
    ) {
        run(&ops);
    }
}

/// The companion that keeps the property test honest: a fixed sequence whose scavenges must
/// remove events, so the checks above are known to run against a log with real gaps.
#[test]
fn scavenge_model_fixed_sequence_removes_hidden_events() {
    let append =
        |stream, events| Op::Append { stream, events, expect: Expect::Correct, bytes: 180 };
    let mut ops = Vec::new();
    ops.extend((0..8).map(|_| append(0, 4)));
    ops.extend((0..5).map(|_| append(1, 3)));
    ops.push(append(2, 2));
    ops.push(Op::Delete { stream: 0, expect: Expect::Wrong });
    ops.push(Op::Delete { stream: 0, expect: Expect::Correct });
    let keep_two = Op::SetMetadata {
        stream: 1,
        max_count: Some(2),
        truncate_before: None,
        expect: Expect::Correct,
    };
    ops.push(keep_two);
    ops.push(Op::Tombstone { stream: 2, expect: Expect::Correct });
    // Fill the active segment so that the ones holding the hidden events are sealed.
    ops.extend((0..8).map(|_| append(3, 4)));
    ops.push(Op::Scavenge);
    ops.push(Op::Reopen);
    // Deleted and back: only the new event is visible, its version continuing from 32.
    ops.push(Op::Append { stream: 0, events: 1, expect: Expect::Correct, bytes: 8 });
    ops.push(Op::Scavenge);
    ops.push(Op::Reopen);
    let model = run(&ops);
    assert!(model.removed > 0, "the scavenges removed nothing");
    assert_eq!(model.state("s0").last, Some(32));
    eprintln!("scavenge_model: the fixed sequence removed {} events", model.removed);
}
