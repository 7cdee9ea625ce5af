//! Real processes, real `kill -9`: a child process appends from several threads to the real
//! file system and prints every acknowledgement; the parent kills it at a random moment,
//! reopens the directory and checks that every acknowledged event is there, intact, with
//! gap-free positions and dense versions. Many cycles run on the same directory, with tiny
//! segments so that kills also land during segment rotation.
//!
//! `ANNAL_KILL9_CYCLES=N` runs a longer soak than CI's 100 cycles.

use std::{collections::HashMap, io::Write, path::Path, time::Duration};

use annal::{ExpectedVersion, NewEvent, Options, Position, Store, StreamVersion};
use uuid::Uuid;

use crate::common::run_child_then_kill;

const CHILD_DIR_VAR: &str = "ANNAL_KILL9_CHILD_DIR";
/// Enough threads that groups usually hold several callers and appends wait behind a sync.
const WRITER_THREADS: usize = 8;

fn options() -> Options {
    Options {
        segment_bytes_max: 8192,
        event_bytes_max: 1024,
        append_bytes_max: 2048,
        group_bytes_max: 4096,
        ..Options::default()
    }
}

/// The payload of an event: derived from its id, so the parent can check it.
fn payload(id: Uuid) -> Vec<u8> {
    id.to_string().into_bytes()
}

/// One acknowledgement printed by the child.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Ack {
    position: u64,
    stream: String,
    version: u64,
    id: Uuid,
}

fn parse_ack(line: &str) -> Option<Ack> {
    let mut f = line.strip_prefix("ack ")?.split(' ');
    let ack = Ack {
        position: f.next()?.parse().ok()?,
        stream: f.next()?.to_owned(),
        version: f.next()?.parse().ok()?,
        id: f.next()?.parse().ok()?,
    };
    f.next().is_none().then_some(ack)
}

/// The child: append forever from several threads, printing each acknowledged event.
#[test]
#[ignore = "runs only as the child process of kill9_cycles_never_lose_an_acknowledged_event"]
fn kill9_child_process() {
    let Ok(dir) = std::env::var(CHILD_DIR_VAR) else {
        return;
    };
    let store = Store::open_with(&dir, options()).expect("child open");
    let threads: Vec<_> = (0..WRITER_THREADS)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                for n in 0u64.. {
                    let stream = format!("t{t}-{}", n % 3);
                    let count = 1 + (n % 3) as usize;
                    let ids: Vec<Uuid> = (0..count).map(|_| Uuid::new_v4()).collect();
                    let events = ids.iter().map(|&id| NewEvent::new("K", payload(id)).with_id(id));
                    let r = store.append(&stream, ExpectedVersion::Any, events).expect("append");
                    let mut out = std::io::stdout().lock();
                    for (i, id) in ids.iter().enumerate() {
                        let position = r.first_position.get() + i as u64;
                        let version = r.first_version.get() + i as u64;
                        writeln!(out, "ack {position} {stream} {version} {id}").unwrap();
                    }
                    out.flush().unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

/// Starts the child, lets it run for `run`, kills it with SIGKILL and returns its acks.
fn run_and_kill(dir: &Path, run: Duration) -> Vec<Ack> {
    let lines = run_child_then_kill("kill9::kill9_child_process", CHILD_DIR_VAR, dir, run);
    lines.iter().filter_map(|l| parse_ack(l)).collect()
}

/// The index files in `dir`: name → bytes.
fn index_files(dir: &Path) -> HashMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "idx"))
        .map(|p| {
            (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap())
        })
        .collect()
}

/// Every acknowledged event present and intact; positions gap-free; versions dense. Returns
/// the events in the log and how many sealed segments the open took from their index files.
fn check(dir: &Path, acked: &HashMap<u64, Ack>) -> (u64, usize) {
    let store = Store::open_with(dir, options()).expect("reopen after kill");
    let report = store.recovery_report();
    let from_files = report.segments - report.segments_scanned;
    let mut versions: HashMap<String, u64> = HashMap::new();
    let mut count = 0;
    for (i, event) in store.read_all_forward(Position::START, usize::MAX).enumerate() {
        let event = event.expect("read");
        assert_eq!(event.position().get(), i as u64, "positions are gap-free");
        assert_eq!(event.data(), payload(event.id()), "event at {i} intact");
        let next = versions.entry(event.stream().to_owned()).or_default();
        assert_eq!(event.version().get(), *next, "versions dense in {}", event.stream());
        *next += 1;
        if let Some(ack) = acked.get(&event.position().get()) {
            assert_eq!((event.id(), event.stream()), (ack.id, ack.stream.as_str()));
            assert_eq!(event.version().get(), ack.version);
        }
        count += 1;
    }
    let head = store.head().get();
    for ack in acked.values() {
        assert!(ack.position < head, "acknowledged event at {} lost (head {head})", ack.position);
    }
    for (stream, n) in &versions {
        let read = store.read_stream_forward(stream, StreamVersion::START, usize::MAX).unwrap();
        assert_eq!(read.count() as u64, *n);
    }
    (count, from_files)
}

#[test]
fn kill9_cycles_never_lose_an_acknowledged_event() {
    if std::env::var(CHILD_DIR_VAR).is_ok() {
        return;
    }
    let cycles: u64 =
        std::env::var("ANNAL_KILL9_CYCLES").ok().and_then(|s| s.parse().ok()).unwrap_or(100);
    let dir = tempfile::tempdir().unwrap();
    let mut acked: HashMap<u64, Ack> = HashMap::new();
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let (mut events, mut written_by_child, mut opened_from_files) = (0, 0, 0);
    for _ in 0..cycles {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let run = Duration::from_millis(20 + seed % 80);
        let before = index_files(dir.path());
        for ack in run_and_kill(dir.path(), run) {
            acked.insert(ack.position, ack);
        }
        // Index files the child's indexer wrote (new, or rewritten for a segment it sealed).
        let after = index_files(dir.path());
        written_by_child += after.iter().filter(|(n, b)| before.get(*n) != Some(*b)).count();
        let (count, from_files) = check(dir.path(), &acked);
        events = count;
        opened_from_files += from_files;
    }
    eprintln!(
        "kill9: {written_by_child} index files written by killed children, \
         {opened_from_files} segments opened from index files"
    );
    assert!(written_by_child > 0, "no child ever wrote an index file: no segment was sealed");
    assert!(opened_from_files > 0, "no open after a kill took a segment from its index file");
    eprintln!("kill9: {cycles} cycles, {} acknowledged, {events} events in the log", acked.len());
    assert!(!acked.is_empty(), "the child never acknowledged anything");
}
