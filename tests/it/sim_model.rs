//! The crash simulation's workload, model and checker, shared by the simulation test and the
//! `crash_ops` fuzz target (which includes this file by path).

use std::{collections::HashMap, path::PathBuf, sync::Arc};

use annal::{
    Error, ExpectedVersion, NewEvent, Options, Position, Store, StreamAppend, StreamVersion,
    io::SimDisk,
};
use uuid::Uuid;

pub fn dir() -> PathBuf {
    PathBuf::from("/sim/store")
}

pub fn options(disk: &SimDisk) -> Options {
    Options {
        storage: Arc::new(disk.clone()),
        segment_bytes_max: 2048,
        event_bytes_max: 512,
        append_bytes_max: 1024,
        group_bytes_max: 1024,
        append_events_max: 8,
        idempotency_window_events: 64,
        ..Options::default()
    }
}

/// One event the workload tried to append, and the append it belonged to.
#[derive(Clone, Debug)]
pub struct Attempted {
    pub stream: String,
    pub data: Vec<u8>,
    pub append: usize,
}

/// What the workload did and what the store acknowledged.
#[derive(Default, Debug)]
pub struct Model {
    pub attempted: HashMap<Uuid, Attempted>,
    /// Acknowledged events: position → (stream, version, id).
    pub acked: Vec<(u64, String, u64, Uuid)>,
    /// Number of events per attempted append.
    pub append_sizes: Vec<usize>,
}

/// Where the workload's decisions come from: a seeded generator or a fuzzer's bytes.
pub trait Choices {
    /// A number below `n` (0 when `n` is 0).
    fn below(&mut self, n: u64) -> u64;
}

/// Decisions from a seed (xorshift).
pub struct Seeded(pub u64);

impl Choices for Seeded {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// Decisions read from bytes, 0 once they run out.
pub struct FromBytes<'a>(pub &'a [u8]);

impl Choices for FromBytes<'_> {
    fn below(&mut self, n: u64) -> u64 {
        let Some((&b, rest)) = self.0.split_first() else {
            return 0;
        };
        self.0 = rest;
        u64::from(b) % n.max(1)
    }
}

/// Runs `steps` workload steps decided by `rng` until they end or the disk fails; returns what
/// was attempted and acknowledged.
pub fn run_workload(disk: &SimDisk, rng: &mut dyn Choices, steps: usize) -> Model {
    let mut model = Model::default();
    let Ok(mut store) = Store::open_with(dir(), options(disk)) else {
        return model;
    };
    let mut versions: HashMap<String, u64> = HashMap::new();
    for step in 0..steps {
        let outcome = match rng.below(10) {
            0 => {
                store.close();
                drop(store);
                match Store::open_with(dir(), options(disk)) {
                    Ok(s) => {
                        store = s;
                        Ok(())
                    }
                    Err(_) => return model,
                }
            }
            1 | 2 => append_multi(&store, rng, &mut model, &mut versions, step),
            _ => append_one(&store, rng, &mut model, &mut versions, step),
        };
        if outcome.is_err() {
            break;
        }
    }
    model
}

fn new_events(
    rng: &mut dyn Choices,
    model: &mut Model,
    stream: &str,
    step: usize,
) -> Vec<NewEvent> {
    let append = model.append_sizes.len();
    let n = 1 + rng.below(3) as usize;
    model.append_sizes.push(n);
    (0..n)
        .map(|i| {
            let id = Uuid::from_u128(((step as u128) << 64) | ((append as u128) << 8) | i as u128);
            let data = vec![(step % 251) as u8; 10 + rng.below(120) as usize];
            let attempt = Attempted { stream: stream.to_owned(), data: data.clone(), append };
            model.attempted.insert(id, attempt);
            NewEvent::new("Simulated", data).with_id(id)
        })
        .collect()
}

fn expected_for(
    rng: &mut dyn Choices,
    versions: &HashMap<String, u64>,
    stream: &str,
) -> ExpectedVersion {
    match (rng.below(3), versions.get(stream)) {
        (0, _) => ExpectedVersion::Any,
        (_, Some(&v)) => ExpectedVersion::Exact(v),
        (_, None) => ExpectedVersion::NoStream,
    }
}

fn append_one(
    store: &Store,
    rng: &mut dyn Choices,
    model: &mut Model,
    versions: &mut HashMap<String, u64>,
    step: usize,
) -> Result<(), Error> {
    let stream = format!("s-{}", rng.below(4));
    let expected = expected_for(rng, versions, &stream);
    let events = new_events(rng, model, &stream, step);
    let ids: Vec<Uuid> = events.iter().map(|e| e.id.unwrap()).collect();
    let r = store.append(&stream, expected, events)?;
    for (i, id) in ids.iter().enumerate() {
        let version = r.first_version.get() + i as u64;
        model.acked.push((r.first_position.get() + i as u64, stream.clone(), version, *id));
    }
    versions.insert(stream, r.last_version.get());
    Ok(())
}

fn append_multi(
    store: &Store,
    rng: &mut dyn Choices,
    model: &mut Model,
    versions: &mut HashMap<String, u64>,
    step: usize,
) -> Result<(), Error> {
    let a = rng.below(4);
    let streams = [format!("s-{a}"), format!("s-{}", (a + 1) % 4)];
    let mut parts = Vec::new();
    let mut ids = Vec::new();
    for stream in &streams {
        let expected = expected_for(rng, versions, stream);
        let events = new_events(rng, model, stream, step);
        ids.push(events.iter().map(|e| e.id.unwrap()).collect::<Vec<_>>());
        parts.push(StreamAppend::new(stream.clone(), expected, events));
    }
    let r = store.append_multi(parts)?;
    for ((stream, result), ids) in r.streams.iter().zip(ids) {
        for (i, id) in ids.iter().enumerate() {
            let version = result.first_version.get() + i as u64;
            model.acked.push((
                result.first_position.get() + i as u64,
                stream.clone(),
                version,
                *id,
            ));
        }
        versions.insert(stream.clone(), result.last_version.get());
    }
    Ok(())
}

/// Checks a reopened store against the model; returns a description of the first violation.
pub fn check(store: &Store, model: &Model) -> Result<(), String> {
    let all: Vec<_> = store
        .read_all_forward(Position::START, usize::MAX)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("read $all: {e}"))?;
    for (i, e) in all.iter().enumerate() {
        if e.position().get() != i as u64 {
            return Err(format!("gap: index {i} holds position {}", e.position()));
        }
        let Some(a) = model.attempted.get(&e.id()) else {
            return Err(format!("event {} at {} was never appended", e.id(), e.position()));
        };
        if e.stream() != a.stream || e.data() != a.data {
            return Err(format!("event at {} differs from what was appended", e.position()));
        }
    }
    for (position, stream, version, id) in &model.acked {
        let Some(e) = all.get(*position as usize) else {
            return Err(format!("acknowledged position {position} lost (head {})", all.len()));
        };
        if e.id() != *id || e.stream() != stream || e.version().get() != *version {
            return Err(format!("acknowledged event at {position} changed"));
        }
    }
    let mut present: HashMap<usize, usize> = HashMap::new();
    for e in &all {
        *present.entry(model.attempted[&e.id()].append).or_default() += 1;
    }
    for (append, count) in present {
        if count != model.append_sizes[append] {
            return Err(format!("append {append} is partly present ({count} events)"));
        }
    }
    let mut streams: HashMap<&str, u64> = HashMap::new();
    for e in &all {
        let next = streams.entry(e.stream()).or_default();
        if e.version().get() != *next {
            return Err(format!("stream {} skips to version {}", e.stream(), e.version()));
        }
        *next += 1;
    }
    for (stream, count) in streams {
        let read = store.read_stream_forward(stream, StreamVersion::START, usize::MAX);
        let n = read.map_err(|e| e.to_string())?.count() as u64;
        if n != count {
            return Err(format!("stream {stream} reads {n} events, $all has {count}"));
        }
    }
    Ok(())
}

/// Opens the crashed disk, checks it, and checks that it takes appends again. Returns whether
/// recovery had to cut or remove anything.
pub fn reopen_and_check(disk: &SimDisk, model: &Model) -> Result<bool, String> {
    let store = Store::open_with(dir(), options(disk)).map_err(|e| format!("open: {e}"))?;
    let report = store.recovery_report();
    let repaired = report.truncated.is_some() || report.removed_segment.is_some();
    check(&store, model)?;
    let head = store.head();
    let r = store
        .append("after-crash", ExpectedVersion::Any, [NewEvent::new("Probe", vec![1])])
        .map_err(|e| format!("append after crash: {e}"))?;
    if r.first_position != head {
        return Err(format!("append after crash got {} not {head}", r.first_position));
    }
    Ok(repaired)
}
