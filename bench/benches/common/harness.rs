//! What the two comparison targets share beyond the workloads and `short.rs`'s configuration:
//! the group names both use so that criterion files annal's, SQLite's and the raw limit's
//! figures side by side, stores built once per process on first
//! use, and the side figures (latency percentiles, events per fsync) printed after a benchmark.

#![allow(dead_code, reason = "each target that includes this module uses a different part of it")]

use std::{
    collections::{HashMap, HashSet},
    path::PathBuf,
    time::{Duration, Instant},
};

use crate::common::{Latencies, Layout, PAYLOAD_BYTES, raw::Writes};

/// Group names, the same in both targets.
pub const W1: &str = "w1_durable_append_1_writer";
pub const W2: &str = "w2_durable_append_concurrent";
pub const W3: &str = "w3_durable_append_batch_100";
pub const W3_BUILD: &str = "w3_build_no_fsync";
pub const W4: &str = "w4_read_all_warm";
pub const W4_COLD: &str = "w4_read_all_cold";
pub const W5: &str = "w5_read_streams_warm";
pub const W6: &str = "w6_open";

/// The `$all` read stores of the sweep: the 1M store, then about 25–130 MB of each other size.
pub const READ_SWEEP: [Layout; 4] = [
    Layout::MILLION,
    Layout::sized(250_000, 100),
    Layout::sized(100_000, 1024),
    Layout::sized(8_000, 16 * 1024),
];

/// The store whose building is timed: 100,000 events in appends of 100 (the quick example
/// times the full 1M build once; criterion needs ten samples).
pub const BUILD: Layout = Layout::sized(100_000, PAYLOAD_BYTES);

/// A label for a layout: `1000k_200B`.
pub fn label(layout: Layout) -> String {
    format!("{}k_{}B", layout.events / 1000, layout.payload)
}

/// Stores built on first use and kept for the rest of the process, under one scratch
/// directory removed at exit.
pub struct Stores<T> {
    dir: tempfile::TempDir,
    built: HashMap<String, T>,
    /// Stores built and closed again, whose files are still there.
    closed: HashSet<String>,
}

impl<T> Stores<T> {
    /// An empty cache whose stores live in a new directory under the system's temp directory.
    pub fn new() -> Stores<T> {
        let dir = tempfile::tempdir().expect("scratch directory");
        Stores { dir, built: HashMap::new(), closed: HashSet::new() }
    }

    /// The store named `name`, built by `build` in its own directory the first time.
    pub fn get(&mut self, name: &str, build: impl FnOnce(PathBuf) -> T) -> &T {
        assert!(!self.closed.contains(name), "store {name} was closed");
        let path = self.dir.path().join(name);
        self.built.entry(name.to_owned()).or_insert_with(|| build(path))
    }

    /// The directory of the store named `name`, built by `build` if it was not, and closed:
    /// dropped from the cache, its files left in place for a workload that opens them.
    pub fn closed(&mut self, name: &str, build: impl FnOnce(PathBuf) -> T) -> PathBuf {
        if !self.closed.contains(name) {
            self.get(name, build);
            self.built.remove(name);
            self.closed.insert(name.to_owned());
        }
        self.dir.path().join(name)
    }

    /// A fresh, empty directory (emptied if it exists) for a store that is not kept.
    pub fn scratch(&self, name: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("scratch directory");
        path
    }
}

/// Time for `iters` operations, given a run that did `done` of them in `elapsed`.
pub fn scaled(elapsed: Duration, done: u64, iters: u64) -> Duration {
    elapsed.mul_f64(iters as f64 / done.max(1) as f64)
}

/// Collects the latencies and fsync counts of every run of one benchmark, to print after it.
#[derive(Default)]
pub struct Side {
    all: Writes,
}

impl Side {
    /// Adds one run.
    pub fn add(&mut self, run: Writes) {
        self.all.merge(run);
    }

    /// Events per fsync over every run so far.
    pub fn group_size(&self) -> f64 {
        self.all.group_size()
    }

    /// Prints `id`'s latency percentiles and events per fsync, and forgets them.
    pub fn print(&mut self, id: &str) {
        let mut l: Latencies = std::mem::take(&mut self.all.latencies);
        if l.is_empty() {
            return; // filtered out
        }
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!(
            "{id}: {} ops, latency p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms; {:.1} events/fsync",
            l.len(),
            ms(l.quantile(0.5)),
            ms(l.quantile(0.99)),
            ms(l.max()),
            self.all.group_size(),
        );
        self.all = Writes::default();
    }
}

/// Runs `f` once, returning how long it took.
pub fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let out = f();
    (out, start.elapsed())
}

/// Runs `read` `iters` times, each after dropping the page cache, timing only the reads.
pub fn cold<T>(iters: u64, mut read: impl FnMut() -> T) -> Duration {
    (0..iters)
        .map(|_| {
            crate::common::drop_page_cache();
            timed(|| std::hint::black_box(read())).1
        })
        .sum()
}
