//! Read-only opens beside a live writer that appends, tombstones and scavenges: every open must
//! succeed with a consistent log (contiguous positions, every read and `verify` clean), however
//! the segment files change between its directory listing and its opens.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread,
};

use annal::{ExpectedVersion, NewEvent, Options, Position, Store, StreamMetadata};

use crate::common::{fast_options, open};

/// How many read-only opens [`readonly_open_beside_a_scavenging_writer_never_fails`] tries;
/// the default keeps the test to seconds on a small machine.
const OPENS_VAR: &str = "ANNAL_READONLY_OPENS";
const OPENS_DEFAULT: u64 = 10_000;

/// Tiny segments and no idempotency window, so scavenges rewrite and merge segments often.
pub fn options() -> Options {
    Options { segment_bytes_max: 4096, idempotency_window_events: 0, ..fast_options() }
}

/// Streams the writer appends to; each keeps its last [`KEPT`] events, so the log stays small
/// however long the test runs.
const STREAMS: u64 = 4;
const KEPT: u64 = 2;

/// A writer thread that appends to [`STREAMS`] streams round-robin and scavenges every few
/// appends, until stopped: what a scavenge leaves of neighbouring segments fits one, so they
/// merge.
pub struct Churner {
    stop: Arc<AtomicBool>,
    scavenges: Arc<AtomicU64>,
    thread: thread::JoinHandle<()>,
}

impl Churner {
    /// Starts churning `store` and returns once its first scavenge is done.
    pub fn start(store: &Store) -> Churner {
        let stop = Arc::new(AtomicBool::new(false));
        let scavenges = Arc::new(AtomicU64::new(0));
        let thread = {
            let (store, stop, scavenges) =
                (store.clone(), Arc::clone(&stop), Arc::clone(&scavenges));
            thread::spawn(move || churn(&store, &stop, &scavenges))
        };
        while scavenges.load(Ordering::Relaxed) == 0 {
            thread::yield_now();
        }
        Churner { stop, scavenges, thread }
    }

    /// Stops the writer thread and returns how many scavenges it ran.
    pub fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("the writer thread ends cleanly");
        self.scavenges.load(Ordering::Relaxed)
    }
}

fn churn(store: &Store, stop: &AtomicBool, scavenges: &AtomicU64) {
    for stream in 0..STREAMS {
        let metadata = StreamMetadata { max_count: Some(KEPT), ..StreamMetadata::default() };
        store.set_stream_metadata(&format!("s-{stream}"), ExpectedVersion::Any, metadata).unwrap();
    }
    let data = vec![b'x'; 200];
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let event = NewEvent::new("Churned", data.clone());
        store.append(&format!("s-{}", n % STREAMS), ExpectedVersion::Any, [event]).unwrap();
        if n % 4 == 3 {
            store.scavenge().expect("scavenge");
            scavenges.fetch_add(1, Ordering::Relaxed);
        }
        n += 1;
    }
}

/// Opens `dir` read-only and checks what it sees: `$all` reads without error in ascending
/// positions, and `verify` finds nothing wrong.
fn open_and_check(dir: &std::path::Path) -> Result<(), String> {
    let store = Store::open_read_only(dir, options()).map_err(|e| format!("open: {e}"))?;
    let mut last = None;
    for event in store.read_all_forward(Position::START, usize::MAX) {
        let position = event.map_err(|e| format!("read: {e}"))?.position().get();
        if last.is_some_and(|l| l >= position) {
            return Err(format!("read: position {position} after {last:?}"));
        }
        last = Some(position);
    }
    let report = store.verify().map_err(|e| format!("verify: {e}"))?;
    match report.is_clean() {
        true => Ok(()),
        false => Err(format!("verify: {:?}", report.problems)),
    }
}

#[test]
fn readonly_open_beside_a_scavenging_writer_never_fails() {
    // A read-only open listed the segment files, then opened them one by one; a scavenge that
    // merged segments in between removed one of them, and the open failed with
    // `Io { op: "open segment", NotFound }` (about 1 in 700 opens), so `annal verify`, `stats`,
    // `read`, `backup` and `tail` failed beside a writer although the docs say they work.
    let opens: u64 =
        std::env::var(OPENS_VAR).map_or(OPENS_DEFAULT, |v| v.parse().expect(OPENS_VAR));
    let dir = tempfile::tempdir().unwrap();
    let writer = open(dir.path(), options());
    let churner = Churner::start(&writer);
    let mut failures = Vec::new();
    for _ in 0..opens {
        if let Err(failure) = open_and_check(dir.path()) {
            failures.push(failure);
        }
    }
    let scavenges = churner.stop();
    println!("{opens} read-only opens beside {scavenges} scavenges: {} failed", failures.len());
    assert!(
        failures.is_empty(),
        "{} of {opens} opens failed, first: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
}

#[test]
fn writable_open_reports_a_vanished_segment_as_the_io_error_it_is() {
    // The retry for segments that vanish between the listing and their open is for read-only
    // opens beside a scavenging writer. A writable open holds the lock, so nothing of the store
    // removes files under it: a segment name that cannot be opened (here a dangling link) was
    // reported after 16 listings as `SegmentsChanging`, which says opening again will work.
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), options());
    store.append("s", ExpectedVersion::Any, [NewEvent::new("T", vec![1])]).unwrap();
    store.close();
    let dangling = dir.path().join(format!("{:020}.seg", 1_000_000));
    std::os::unix::fs::symlink(dir.path().join("nowhere"), &dangling).unwrap();

    let err = Store::open_with(dir.path(), options()).map(|_| ()).unwrap_err();
    assert!(
        matches!(&err, annal::Error::Io { op: "open segment", source, .. }
            if source.kind() == std::io::ErrorKind::NotFound),
        "{err:?}"
    );
    let err = Store::open_read_only(dir.path(), options()).map(|_| ()).unwrap_err();
    assert!(matches!(err, annal::Error::SegmentsChanging { .. }), "{err:?}");
}
