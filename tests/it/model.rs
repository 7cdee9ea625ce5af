//! Model-based property test: random appends, multi-stream appends, reopens and reads, every
//! outcome and every read checked against a trivial in-memory model of the log.

use std::{collections::HashMap, path::Path};

use annal::{
    AppendResult, Durability, Error, ExpectedVersion, MultiAppendResult, NewEvent, Options,
    Position, RecordedEvent, Store, StreamAppend, StreamVersion,
};
use proptest::prelude::*;

use crate::common::open;

const STREAMS: [&str; 4] = ["alpha", "beta", "gamma", "delta"];

/// How an operation picks its expected version, resolved against the model when it runs.
#[derive(Clone, Copy, Debug)]
enum Expect {
    Any,
    NoStream,
    StreamExists,
    /// The stream's actual last version (`Exact(0)`, so wrong, if it has no events).
    ExactCorrect,
    /// A version the stream is not at: this many past its last one.
    ExactWrong(u64),
}

/// What happens to the derived files (index files, stream tables) while the store is closed:
/// reads must not change whatever it is.
#[derive(Clone, Copy, Debug)]
enum Derived {
    Kept,
    AllDeleted,
    /// The `pick`-th derived file (modulo their number) flipped, truncated or deleted.
    OneDamaged {
        pick: usize,
        damage: Damage,
    },
}

#[derive(Clone, Copy, Debug)]
enum Damage {
    /// A byte at this fraction (in 1/256ths) of the file flipped.
    Flip(u8),
    /// Cut to this fraction (in 1/256ths) of its length.
    Truncate(u8),
    Delete,
}

fn derived() -> impl Strategy<Value = Derived> {
    let damage = prop_oneof![
        any::<u8>().prop_map(Damage::Flip),
        any::<u8>().prop_map(Damage::Truncate),
        Just(Damage::Delete),
    ];
    prop_oneof![
        2 => Just(Derived::Kept),
        1 => Just(Derived::AllDeleted),
        2 => (any::<usize>(), damage).prop_map(|(pick, damage)| Derived::OneDamaged { pick, damage }),
    ]
}

#[derive(Clone, Debug)]
enum Op {
    Append { stream: usize, events: usize, expect: Expect },
    AppendMulti { parts: [(usize, usize, Expect); 2] },
    Reopen { tiny_segments: bool, derived: Derived },
    ReadAll { from: u64, limit: usize, forward: bool },
    ReadStream { stream: usize, from: u64, limit: usize, forward: bool },
}

fn expect() -> impl Strategy<Value = Expect> {
    prop_oneof![
        1 => Just(Expect::Any),
        1 => Just(Expect::NoStream),
        1 => Just(Expect::StreamExists),
        2 => Just(Expect::ExactCorrect),
        1 => (0u64..3).prop_map(Expect::ExactWrong),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let streams = 0..STREAMS.len();
    prop_oneof![
        6 => (streams.clone(), 1..5usize, expect())
            .prop_map(|(stream, events, expect)| Op::Append { stream, events, expect }),
        3 => (streams.clone(), 1..STREAMS.len(), 1..5usize, 1..5usize, expect(), expect())
            .prop_map(|(first, offset, n1, n2, e1, e2)| {
                let second = (first + offset) % STREAMS.len();
                Op::AppendMulti { parts: [(first, n1, e1), (second, n2, e2)] }
            }),
        1 => (any::<bool>(), derived())
            .prop_map(|(tiny_segments, derived)| Op::Reopen { tiny_segments, derived }),
        1 => (0u64..80, 0usize..10, any::<bool>())
            .prop_map(|(from, limit, forward)| Op::ReadAll { from, limit, forward }),
        1 => (streams, 0u64..20, 0usize..10, any::<bool>())
            .prop_map(|(stream, from, limit, forward)| Op::ReadStream { stream, from, limit, forward }),
    ]
}

/// Options for the store under test: no fsync (nothing here crashes), and either default or
/// tiny segments that rotate every eight or so events, with an in-memory index of every third
/// record (so reads hop from an entry to the record, which the default of every record never
/// does).
fn options(tiny_segments: bool) -> Options {
    let base = Options { durability: Durability::None, ..Options::default() };
    if !tiny_segments {
        return base;
    }
    Options {
        segment_bytes_max: 32 + 640,
        event_bytes_max: 128,
        append_bytes_max: 640,
        group_bytes_max: 640,
        index_stride: 3,
        ..base
    }
}

/// One event as the model remembers it.
#[derive(Debug, PartialEq, Eq)]
struct Modeled {
    stream: &'static str,
    version: u64,
    data: Vec<u8>,
}

/// The log as a vector, and each stream as the positions of its events.
#[derive(Default)]
struct Model {
    all: Vec<Modeled>,
    streams: HashMap<&'static str, Vec<u64>>,
    next_data: u64,
}

/// What the store must answer a failed append with: stream, expected, actual.
type Refusal = (String, ExpectedVersion, Option<u64>);

impl Model {
    fn current(&self, stream: &str) -> Option<u64> {
        self.streams.get(stream).map(|p| p.len() as u64 - 1)
    }

    fn expected(&self, stream: &str, expect: Expect) -> ExpectedVersion {
        let current = self.current(stream);
        match expect {
            Expect::Any => ExpectedVersion::Any,
            Expect::NoStream => ExpectedVersion::NoStream,
            Expect::StreamExists => ExpectedVersion::StreamExists,
            Expect::ExactCorrect => ExpectedVersion::Exact(current.unwrap_or(0)),
            Expect::ExactWrong(k) => ExpectedVersion::Exact(current.map_or(k, |v| v + 1 + k)),
        }
    }

    /// Fresh, numbered payloads.
    fn payloads(&mut self, n: usize) -> Vec<Vec<u8>> {
        (0..n)
            .map(|_| {
                self.next_data += 1;
                format!("d{}", self.next_data).into_bytes()
            })
            .collect()
    }

    /// Applies an append if every part's expected version holds, and says what the store must
    /// answer.
    fn append(
        &mut self,
        parts: &[(&'static str, ExpectedVersion, Vec<Vec<u8>>)],
    ) -> Result<MultiAppendResult, Refusal> {
        for &(stream, expected, _) in parts {
            let current = self.current(stream);
            let admits = match expected {
                ExpectedVersion::Any => true,
                ExpectedVersion::NoStream => current.is_none(),
                ExpectedVersion::StreamExists => current.is_some(),
                ExpectedVersion::Exact(v) => current == Some(v),
            };
            if !admits {
                return Err((stream.to_owned(), expected, current));
            }
        }
        let first_position = Position(self.all.len() as u64);
        let mut streams = Vec::new();
        for (stream, _, data) in parts {
            let first_version = self.current(stream).map_or(0, |v| v + 1);
            let part_first = self.all.len() as u64;
            for (k, data) in data.iter().enumerate() {
                let position = self.all.len() as u64;
                self.streams.entry(stream).or_default().push(position);
                self.all.push(Modeled {
                    stream,
                    version: first_version + k as u64,
                    data: data.clone(),
                });
            }
            let n = data.len() as u64;
            let result = AppendResult {
                first_position: Position(part_first),
                last_position: Position(part_first + n - 1),
                first_version: StreamVersion(first_version),
                last_version: StreamVersion(first_version + n - 1),
            };
            streams.push(((*stream).to_owned(), result));
        }
        Ok(MultiAppendResult {
            first_position,
            last_position: Position(self.all.len() as u64 - 1),
            streams,
        })
    }
}

fn modeled(e: &RecordedEvent, stream: &'static str) -> Modeled {
    assert_eq!(e.event_type(), "Modeled");
    Modeled { stream, version: e.version().get(), data: e.data().to_vec() }
}

/// Maps a read event onto the model's vocabulary, checking its position on the way.
fn as_modeled(e: annal::Result<RecordedEvent>, model: &Model) -> (u64, Modeled) {
    let e = e.unwrap_or_else(|e| panic!("read failed: {e}"));
    let stream = STREAMS
        .into_iter()
        .find(|s| *s == e.stream())
        .unwrap_or_else(|| panic!("unknown stream {}", e.stream()));
    let position = e.position().get();
    assert!(position < model.all.len() as u64, "read past the model's head");
    (position, modeled(&e, stream))
}

fn check_all(store: &Store, model: &Model, from: u64, limit: usize, forward: bool) {
    let read: Vec<(u64, Modeled)> = if forward {
        let events = store.read_all_forward(Position(from), limit);
        events.map(|e| as_modeled(e, model)).collect()
    } else {
        let events = store.read_all_backward(Position(from), limit);
        events.map(|e| as_modeled(e, model)).collect()
    };
    let len = model.all.len() as u64;
    let positions: Vec<u64> = if forward {
        (from..len).take(limit).collect()
    } else {
        (0..len.min(from.saturating_add(1))).rev().take(limit).collect()
    };
    let read_positions: Vec<u64> = read.iter().map(|(p, _)| *p).collect();
    assert_eq!(read_positions, positions, "$all from {from} limit {limit} forward {forward}");
    for (p, event) in &read {
        assert_eq!(event, &model.all[*p as usize], "$all at {p}");
    }
}

fn check_stream(store: &Store, model: &Model, stream: &str, from: u64, limit: usize, fwd: bool) {
    let read = if fwd {
        store.read_stream_forward(stream, StreamVersion(from), limit)
    } else {
        store.read_stream_backward(stream, StreamVersion(from), limit)
    };
    let Some(positions) = model.streams.get(stream) else {
        assert!(matches!(read, Err(Error::StreamNotFound { .. })), "{stream} has no events");
        assert_eq!(store.stream_version(stream), None);
        return;
    };
    let n = positions.len() as u64;
    assert_eq!(store.stream_version(stream), Some(StreamVersion(n - 1)));
    let versions: Vec<u64> = if fwd {
        (from..n).take(limit).collect()
    } else {
        (0..n.min(from.saturating_add(1))).rev().take(limit).collect()
    };
    let read: Vec<(u64, Modeled)> = read.unwrap().map(|e| as_modeled(e, model)).collect();
    assert_eq!(read.len(), versions.len(), "{stream} from {from} limit {limit} fwd {fwd}");
    for ((p, event), v) in read.iter().zip(versions) {
        assert_eq!(*p, positions[v as usize], "{stream} version {v}");
        assert_eq!(event, &model.all[*p as usize], "{stream} version {v}");
    }
}

/// Compares the whole store with the model: head, `$all` and every stream, both directions.
fn check_everything(store: &Store, model: &Model) {
    assert_eq!(store.head(), Position(model.all.len() as u64));
    check_all(store, model, 0, usize::MAX, true);
    check_all(store, model, u64::MAX, usize::MAX, false);
    for stream in STREAMS {
        check_stream(store, model, stream, 0, usize::MAX, true);
        check_stream(store, model, stream, u64::MAX, usize::MAX, false);
    }
}

/// Does to the derived files of the closed store in `dir` what `derived` says.
fn alter_derived_files(dir: &Path, derived: Derived) {
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "idx" || x == "tbl"))
        .collect();
    files.sort();
    let (pick, damage) = match derived {
        Derived::Kept => return,
        Derived::AllDeleted => return crate::common::remove_derived_files(dir),
        Derived::OneDamaged { .. } if files.is_empty() => return,
        Derived::OneDamaged { pick, damage } => (&files[pick % files.len()], damage),
    };
    let mut bytes = std::fs::read(pick).unwrap();
    let at = |fraction: u8| bytes.len() * usize::from(fraction) / 256;
    match damage {
        Damage::Delete => return std::fs::remove_file(pick).unwrap(),
        Damage::Truncate(fraction) => bytes.truncate(at(fraction)),
        Damage::Flip(_) if bytes.is_empty() => return,
        Damage::Flip(fraction) => {
            let at = at(fraction);
            bytes[at] ^= 0x01;
        }
    }
    std::fs::write(pick, bytes).unwrap();
}

/// Runs one operation on both the store and the model and compares the outcomes.
fn step(dir: &Path, store: Store, model: &mut Model, op: &Op) -> Store {
    let parts: Vec<(usize, usize, Expect)> = match op {
        Op::Append { stream, events, expect } => vec![(*stream, *events, *expect)],
        Op::AppendMulti { parts } => parts.to_vec(),
        Op::Reopen { tiny_segments, derived } => {
            drop(store);
            alter_derived_files(dir, *derived);
            return open(dir, options(*tiny_segments));
        }
        Op::ReadAll { from, limit, forward } => {
            check_all(&store, model, *from, *limit, *forward);
            return store;
        }
        Op::ReadStream { stream, from, limit, forward } => {
            check_stream(&store, model, STREAMS[*stream], *from, *limit, *forward);
            return store;
        }
    };
    let parts: Vec<(&'static str, ExpectedVersion, Vec<Vec<u8>>)> = parts
        .into_iter()
        .map(|(s, n, e)| (STREAMS[s], model.expected(STREAMS[s], e), model.payloads(n)))
        .collect();
    let request = parts.iter().map(|(stream, expected, data)| {
        let events = data.iter().map(|d| NewEvent::new("Modeled", d.clone()));
        StreamAppend::new(*stream, *expected, events)
    });
    let got = store.append_multi(request);
    match (got, model.append(&parts)) {
        (Ok(got), Ok(want)) => assert_eq!(got, want, "{op:?}"),
        (Err(Error::WrongExpectedVersion { stream, expected, actual }), Err(want)) => {
            assert_eq!((stream, expected, actual), want, "{op:?}")
        }
        (got, want) => panic!("{op:?}: store answered {got:?}, model {want:?}"),
    }
    store
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn model_random_operations_match_the_model(ops in proptest::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let mut store = open(dir.path(), options(false));
        let mut model = Model::default();
        for op in &ops {
            store = step(dir.path(), store, &mut model, op);
            check_everything(&store, &model);
        }
    }
}
