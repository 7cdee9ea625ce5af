//! Workload code shared by the criterion benches and `examples/bench.rs`, so the quick table and
//! the full statistics measure the same thing: the events, the store layouts, annal's side of
//! every workload (`workload`), the disk's own limit (`raw`), and the counters the figures need
//! (`count`). SQLite's side is in `sqlite.rs`, included only by the targets that compare with it.

#![allow(dead_code, reason = "each target that includes this module uses a different part of it")]

pub mod cache;
pub mod count;
pub mod many;
pub mod raw;
pub mod workload;

use std::time::Duration;

/// The payload of an event unless a sweep says otherwise.
pub const PAYLOAD_BYTES: usize = 200;
/// The payload sizes of the sweeps.
pub const PAYLOAD_SWEEP: [usize; 3] = [100, 1024, 16 * 1024];
/// Events per append in the batched workloads.
pub const BATCH_EVENTS: usize = 100;
/// The event type every benchmark event carries.
pub const EVENT_TYPE: &str = "Benchmarked";

/// The payload of an event: not all zeros, so nothing downstream can shortcut it.
pub fn payload(bytes: usize) -> Vec<u8> {
    (0..bytes).map(|i| (i * 31 + 7) as u8).collect()
}

/// How a store is filled: `events` events in appends of `batch`, append `i` going to stream
/// `i % streams`, so every stream's events are spread over the whole log. With `hot_every`
/// set, every `hot_every`-th append goes to stream 0 instead and the others take turns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Events in the store.
    pub events: u64,
    /// Streams they are spread over.
    pub streams: u64,
    /// Events per append.
    pub batch: u64,
    /// Payload bytes per event.
    pub payload: usize,
    /// Every this many appends one goes to the hot stream 0; 0 for none.
    pub hot_every: u64,
}

impl Layout {
    /// The `$all` read and open store: 1M events of 200 bytes, 1,000 streams, appends of 100.
    pub const MILLION: Layout = Layout::sized(1_000_000, PAYLOAD_BYTES);
    /// 1M events in 100,000 streams of 10 events, to separate index memory per stream.
    pub const MANY_STREAMS: Layout = Layout { streams: 100_000, batch: 10, ..Layout::MILLION };
    /// 10M events (~2.8 GB): only with `ANNAL_BENCH_10M=1`.
    pub const TEN_MILLION: Layout = Layout { streams: 10_000, ..Layout::sized(10_000_000, 200) };
    /// The stream-read store: 200,000 single-event appends; one in 20 goes to the hot stream 0,
    /// which so has 10,000 events interleaved with the others, and the rest take turns over
    /// 10,000 other streams, 19 events each.
    pub const STREAMS: Layout = Layout {
        events: 200_000,
        streams: 10_001,
        batch: 1,
        payload: PAYLOAD_BYTES,
        hot_every: 20,
    };
    /// Events of the hot stream of [`Layout::STREAMS`].
    pub const HOT_STREAM_EVENTS: u64 = 10_000;
    /// Events of the 1,000 random streams of [`Layout::random_streams`]: 19 each.
    pub const RANDOM_STREAMS_EVENTS: u64 = 19_000;

    /// 1,000 distinct streams other than the hot one, in random (seeded) order.
    pub fn random_streams(self) -> Vec<u64> {
        Rng::new(42).distinct(1000, self.streams - 1).into_iter().map(|s| s + 1).collect()
    }

    /// `events` events of `payload` bytes over 1,000 streams, appends of 100.
    pub const fn sized(events: u64, payload: usize) -> Layout {
        Layout { events, streams: 1_000, batch: BATCH_EVENTS as u64, payload, hot_every: 0 }
    }

    /// The appends that fill the store, in order: (stream index, events in the append).
    pub fn appends(self) -> impl Iterator<Item = (u64, u64)> {
        let Layout { events, streams, batch, hot_every, .. } = self;
        (0..events / batch).map(move |i| match hot_every {
            0 => (i % streams, batch),
            every if i % every == 0 => (0, batch),
            // Appends before `i` that went to other streams: `i` minus the hot ones at or below.
            every => (1 + (i - i / every - 1) % (streams - 1), batch),
        })
    }

    /// Streams that hold events: every stream, unless there are fewer appends than streams.
    pub fn filled_streams(self) -> u64 {
        self.streams.min(self.events / self.batch)
    }

    /// `count` streams that hold events, chosen at random (seeded), repeats allowed.
    pub fn random_filled(self, count: usize, seed: u64) -> Vec<u64> {
        let mut rng = Rng::new(seed);
        (0..count).map(|_| rng.next_u64() % self.filled_streams()).collect()
    }

    /// Bytes of payload in the store.
    pub fn payload_bytes(self) -> u64 {
        self.events * self.payload as u64
    }
}

/// The name of stream `i`.
pub fn stream_name(i: u64) -> String {
    format!("stream-{i}")
}

/// A small, seeded, dependency-free random number generator (xorshift64*).
pub struct Rng(u64);

impl Rng {
    /// A generator; the same seed gives the same sequence.
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// `count` distinct numbers below `bound`, in random order.
    pub fn distinct(&mut self, count: usize, bound: u64) -> Vec<u64> {
        assert!(count as u64 <= bound);
        let mut seen = std::collections::HashSet::with_capacity(count);
        let mut out = Vec::with_capacity(count);
        while out.len() < count {
            let n = self.next_u64() % bound;
            if seen.insert(n) {
                out.push(n);
            }
        }
        out
    }
}

/// Latencies of single operations, for percentiles.
#[derive(Clone, Debug, Default)]
pub struct Latencies(Vec<Duration>);

impl Latencies {
    /// Records one operation.
    pub fn push(&mut self, latency: Duration) {
        self.0.push(latency);
    }

    /// Adds another set.
    pub fn extend(&mut self, other: Latencies) {
        self.0.extend(other.0);
    }

    /// Operations recorded.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether none is recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The `p`-quantile (`0.5` for the median), zero when empty.
    pub fn quantile(&mut self, p: f64) -> Duration {
        if self.0.is_empty() {
            return Duration::ZERO;
        }
        self.0.sort_unstable();
        let at = ((self.0.len() as f64 * p) as usize).min(self.0.len() - 1);
        self.0[at]
    }

    /// The slowest operation.
    pub fn max(&self) -> Duration {
        self.0.iter().copied().max().unwrap_or_default()
    }

    /// The mean, zero when empty.
    pub fn mean(&self) -> Duration {
        if self.0.is_empty() {
            return Duration::ZERO;
        }
        self.0.iter().sum::<Duration>() / self.0.len() as u32
    }
}

/// Rate of `count` things done in `elapsed`.
pub fn per_second(count: u64, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64().max(1e-9)
}

/// Drops the clean page cache (`sync`, then `echo 1 > /proc/sys/vm/drop_caches`). Needs root;
/// returns whether it worked. Pages a process still has mapped are not dropped.
pub fn drop_page_cache() -> bool {
    let synced = std::process::Command::new("sync").status().is_ok_and(|s| s.success());
    synced && std::fs::write("/proc/sys/vm/drop_caches", "1\n").is_ok()
}

/// Whether the 10M-event store is wanted (`ANNAL_BENCH_10M=1`).
pub fn ten_million_wanted() -> bool {
    std::env::var("ANNAL_BENCH_10M").is_ok_and(|v| v == "1")
}

/// How many single-event streams W8 builds, if wanted: `ANNAL_BENCH_10M_STREAMS=1` for 10M,
/// or `ANNAL_BENCH_W8_STREAMS=<n>` for another count (e.g. 1000000 for a shorter run).
pub fn many_streams_wanted() -> Option<u64> {
    let count = std::env::var("ANNAL_BENCH_W8_STREAMS").ok().and_then(|v| v.parse().ok());
    let ten = std::env::var("ANNAL_BENCH_10M_STREAMS").is_ok_and(|v| v == "1");
    count.or(ten.then_some(many::TEN_MILLION_STREAMS))
}

/// Bytes of the regular files directly in `dir`.
pub fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}
