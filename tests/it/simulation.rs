//! Deterministic crash simulation on the simulated disk: a seeded workload of appends (single
//! and multi-stream, with expected versions), reads, reopens and rotations is cut by a power
//! loss at every I/O operation in turn, each cut is damaged several ways, and the reopened
//! store is checked against a model of what was acknowledged.
//!
//! `ANNAL_SIM_SEEDS=N` runs N seeds instead of the few CI runs; a failure names its seed,
//! crash point and damage variant, which reproduce it exactly.

use std::{collections::HashMap, io, path::PathBuf, sync::Arc};

use annal::{
    Error, ExpectedVersion, NewEvent, Options, Position, Store, StreamAppend, StreamVersion,
    io::SimDisk,
};
use uuid::Uuid;

/// Damage variants (crash seeds) tried at every crash point.
const VARIANTS: u64 = 4;
/// Operations in one workload.
const WORKLOAD_OPS: usize = 40;

fn dir() -> PathBuf {
    PathBuf::from("/sim/store")
}

fn options(disk: &SimDisk) -> Options {
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
struct Attempted {
    stream: String,
    data: Vec<u8>,
    append: usize,
}

/// What the workload did and what the store acknowledged.
#[derive(Default, Debug)]
struct Model {
    attempted: HashMap<Uuid, Attempted>,
    /// Acknowledged events: position → (stream, version, id).
    acked: Vec<(u64, String, u64, Uuid)>,
    /// Number of events per attempted append.
    append_sizes: Vec<usize>,
}

/// A tiny deterministic generator for the workload.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// Runs the seeded workload until it ends or the disk fails; returns what was acknowledged.
fn run_workload(disk: &SimDisk, seed: u64) -> Model {
    let mut rng = Rng(seed.wrapping_mul(0x2545_F491_4F6C_DD1D) | 1);
    let mut model = Model::default();
    let Ok(mut store) = Store::open_with(dir(), options(disk)) else {
        return model;
    };
    let mut versions: HashMap<String, u64> = HashMap::new();
    for step in 0..WORKLOAD_OPS {
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
            1 | 2 => append_multi(&store, &mut rng, &mut model, &mut versions, step),
            _ => append_one(&store, &mut rng, &mut model, &mut versions, step),
        };
        if outcome.is_err() {
            break;
        }
    }
    model
}

fn new_events(rng: &mut Rng, model: &mut Model, stream: &str, step: usize) -> Vec<NewEvent> {
    let append = model.append_sizes.len();
    let n = 1 + rng.below(3) as usize;
    model.append_sizes.push(n);
    (0..n)
        .map(|i| {
            let id = Uuid::from_u128(((step as u128) << 64) | ((append as u128) << 8) | i as u128);
            let data = vec![(step % 251) as u8; 10 + rng.below(120) as usize];
            let attempt = Attempted {
                stream: stream.to_owned(),
                data: data.clone(),
                append,
            };
            model.attempted.insert(id, attempt);
            NewEvent::new("Simulated", data).with_id(id)
        })
        .collect()
}

fn expected_for(rng: &mut Rng, versions: &HashMap<String, u64>, stream: &str) -> ExpectedVersion {
    match (rng.below(3), versions.get(stream)) {
        (0, _) => ExpectedVersion::Any,
        (_, Some(&v)) => ExpectedVersion::Exact(v),
        (_, None) => ExpectedVersion::NoStream,
    }
}

fn append_one(
    store: &Store,
    rng: &mut Rng,
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
        model.acked.push((
            r.first_position.get() + i as u64,
            stream.clone(),
            version,
            *id,
        ));
    }
    versions.insert(stream, r.last_version.get());
    Ok(())
}

fn append_multi(
    store: &Store,
    rng: &mut Rng,
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
fn check(store: &Store, model: &Model) -> Result<(), String> {
    let all: Vec<_> = store
        .read_all_forward(Position::START, usize::MAX)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("read $all: {e}"))?;
    for (i, e) in all.iter().enumerate() {
        if e.position().get() != i as u64 {
            return Err(format!("gap: index {i} holds position {}", e.position()));
        }
        let Some(a) = model.attempted.get(&e.id()) else {
            return Err(format!(
                "event {} at {} was never appended",
                e.id(),
                e.position()
            ));
        };
        if e.stream() != a.stream || e.data() != a.data {
            return Err(format!(
                "event at {} differs from what was appended",
                e.position()
            ));
        }
    }
    for (position, stream, version, id) in &model.acked {
        let Some(e) = all.get(*position as usize) else {
            return Err(format!(
                "acknowledged position {position} lost (head {})",
                all.len()
            ));
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
            return Err(format!(
                "append {append} is partly present ({count} events)"
            ));
        }
    }
    let mut streams: HashMap<&str, u64> = HashMap::new();
    for e in &all {
        let next = streams.entry(e.stream()).or_default();
        if e.version().get() != *next {
            return Err(format!(
                "stream {} skips to version {}",
                e.stream(),
                e.version()
            ));
        }
        *next += 1;
    }
    for (stream, count) in streams {
        let read = store.read_stream_forward(stream, StreamVersion::START, usize::MAX);
        let n = read.map_err(|e| e.to_string())?.count() as u64;
        if n != count {
            return Err(format!(
                "stream {stream} reads {n} events, $all has {count}"
            ));
        }
    }
    Ok(())
}

/// Opens the crashed disk, checks it, and checks that it takes appends again. Returns whether
/// recovery had to cut or remove anything.
fn reopen_and_check(disk: &SimDisk, model: &Model) -> Result<bool, String> {
    let store = Store::open_with(dir(), options(disk)).map_err(|e| format!("open: {e}"))?;
    let report = store.recovery_report();
    let repaired = report.truncated.is_some() || report.removed_segment.is_some();
    check(&store, model)?;
    let head = store.head();
    let r = store
        .append(
            "after-crash",
            ExpectedVersion::Any,
            [NewEvent::new("Probe", vec![1])],
        )
        .map_err(|e| format!("append after crash: {e}"))?;
    if r.first_position != head {
        return Err(format!(
            "append after crash got {} not {head}",
            r.first_position
        ));
    }
    Ok(repaired)
}

/// Crashes at every operation of the seed's workload, `VARIANTS` damages each; also crashes
/// again during the recovery of every fourth case. Returns how many cases ran and how many of
/// them recovery had to repair.
fn simulate_seed(seed: u64) -> (usize, usize) {
    let clean = SimDisk::new();
    let full = run_workload(&clean, seed);
    assert!(
        !full.acked.is_empty(),
        "seed {seed}: workload acknowledged nothing"
    );
    let total_ops = clean.ops();
    let (mut cases, mut repaired) = (0, 0);
    for crash_at in 0..total_ops {
        for variant in 0..VARIANTS {
            let disk = SimDisk::new();
            disk.fail_at(crash_at, io::ErrorKind::Other, true);
            let model = run_workload(&disk, seed);
            let crashed = disk.crash(variant);
            let where_ = format!("seed {seed}, crash at op {crash_at}, variant {variant}");
            if variant == 0 && crash_at % 4 == 0 {
                crash_during_recovery(&crashed, &model, &where_);
            }
            match reopen_and_check(&crashed, &model) {
                Ok(cut) => repaired += usize::from(cut),
                Err(e) => panic!("{where_}: {e}"),
            }
            cases += 1;
        }
    }
    (cases, repaired)
}

/// Cuts power at each operation of the recovery itself, then recovers again and checks.
fn crash_during_recovery(crashed: &SimDisk, model: &Model, where_: &str) {
    for recovery_op in 0..4 {
        let disk = crashed.crash(0);
        let start = disk.ops();
        disk.fail_at(start + recovery_op, io::ErrorKind::Other, true);
        let _ = Store::open_with(dir(), options(&disk)).map(|s| s.close());
        let again = disk.crash(recovery_op + 1);
        if let Err(e) = reopen_and_check(&again, model) {
            panic!("{where_}, crash during recovery at its op {recovery_op}: {e}");
        }
    }
}

fn seeds() -> u64 {
    std::env::var("ANNAL_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6)
}

#[test]
fn simulation_crash_at_every_io_point_keeps_every_acknowledged_append() {
    let (mut cases, mut repaired) = (0, 0);
    for seed in 1..=seeds() {
        let (c, r) = simulate_seed(seed);
        cases += c;
        repaired += r;
    }
    eprintln!(
        "simulation: {cases} crash cases over {} seeds, {repaired} repaired",
        seeds()
    );
    // The damage variants must actually produce torn tails for recovery to cut.
    assert!(
        repaired > 0,
        "no crash case needed repair: the simulation damages nothing"
    );
}

#[test]
fn simulation_model_check_catches_a_lost_event() {
    // The checker itself must fail when an acknowledged event is missing.
    let disk = SimDisk::new();
    let mut model = run_workload(&disk, 3);
    let store = Store::open_with(dir(), options(&disk)).unwrap();
    model
        .acked
        .push((store.head().get(), "s-0".into(), 0, Uuid::from_u128(1)));
    assert!(check(&store, &model).is_err());
}
