//! The server's counters, gauges and histograms, and their Prometheus text rendering (format
//! 0.0.4). Handlers update them with relaxed atomics (no lock on the request path); the store's
//! own figures are read when a scrape renders them (`metrics_store`).

use std::{
    fmt::Write as _,
    sync::atomic::{AtomicU64, Ordering::Relaxed},
    time::Duration,
};

use annal::Store;

/// Upper bounds of the append-latency histogram's buckets, in microseconds.
const LATENCY_BOUNDS_US: [u64; 14] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000,
    5_000_000,
];

/// Upper bounds of the events-per-append histogram's buckets.
const EVENTS_BOUNDS: [u64; 10] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 1024];

/// How an append ended, as the metrics count it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The events are durable.
    Committed,
    /// The expected version did not hold (a normal reply, nothing written).
    WrongVersion,
    /// Refused with an error (size limit, deleted stream, store failure …).
    Failed,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Committed => "committed",
            Outcome::WrongVersion => "wrong_expected_version",
            Outcome::Failed => "failed",
        }
    }
}

/// A cumulative histogram over fixed bucket bounds.
struct Histogram<const N: usize> {
    bounds: &'static [u64; N],
    /// Observations at most `bounds[i]` and above `bounds[i - 1]`; the last slot is `+Inf`.
    buckets: [AtomicU64; N],
    above: AtomicU64,
    sum: AtomicU64,
}

impl<const N: usize> Histogram<N> {
    fn new(bounds: &'static [u64; N]) -> Self {
        Histogram {
            bounds,
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            above: AtomicU64::new(0),
            sum: AtomicU64::new(0),
        }
    }

    fn observe(&self, value: u64) {
        match self.bounds.iter().position(|&b| value <= b) {
            Some(i) => self.buckets[i].fetch_add(1, Relaxed),
            None => self.above.fetch_add(1, Relaxed),
        };
        self.sum.fetch_add(value, Relaxed);
    }

    /// Writes the histogram as `name`, dividing bounds and sum by `scale` (1e6 for µs → s).
    fn render(&self, out: &mut String, name: &str, help: &str, scale: f64) {
        let mut buckets: Vec<u64> = self.buckets.iter().map(|b| b.load(Relaxed)).collect();
        buckets.push(self.above.load(Relaxed));
        let sum = self.sum.load(Relaxed);
        histogram(out, Family { name, help, scale }, self.bounds, &buckets, sum);
    }
}

/// A histogram's name, help text, and the divisor of its bounds and sum (1e6 for µs → s).
pub(crate) struct Family<'a> {
    /// The metric's name.
    pub name: &'a str,
    /// Its help text.
    pub help: &'a str,
    /// What bounds and sum are divided by.
    pub scale: f64,
}

/// Writes a histogram from per-bucket counts: one per bound, then one above the last bound.
pub(crate) fn histogram(
    out: &mut String,
    family: Family<'_>,
    bounds: &[u64],
    buckets: &[u64],
    sum: u64,
) {
    debug_assert_eq!(buckets.len(), bounds.len() + 1);
    let Family { name, help, scale } = family;
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
    let mut cumulative = 0;
    for (bound, bucket) in bounds.iter().zip(buckets) {
        cumulative += bucket;
        let le = *bound as f64 / scale;
        let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
    }
    cumulative += buckets.last().copied().unwrap_or(0);
    let sum = sum as f64 / scale;
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
    let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {cumulative}");
}

/// Everything the server counts; one per server, shared by its handlers.
pub struct Metrics {
    appends: [AtomicU64; 3],
    events_appended: AtomicU64,
    append_latency_us: Histogram<14>,
    append_events: Histogram<10>,
    reads: AtomicU64,
    subscriptions_opened: AtomicU64,
    subscriptions_open: AtomicU64,
    subscriptions_refused: AtomicU64,
    connections_accepted: AtomicU64,
    connections_open: AtomicU64,
    connections_refused: AtomicU64,
    /// Calls refused by basic authentication: without credentials, with bad ones.
    auth_refused: [AtomicU64; 2],
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            appends: std::array::from_fn(|_| AtomicU64::new(0)),
            events_appended: AtomicU64::new(0),
            append_latency_us: Histogram::new(&LATENCY_BOUNDS_US),
            append_events: Histogram::new(&EVENTS_BOUNDS),
            reads: AtomicU64::new(0),
            subscriptions_opened: AtomicU64::new(0),
            subscriptions_open: AtomicU64::new(0),
            subscriptions_refused: AtomicU64::new(0),
            connections_accepted: AtomicU64::new(0),
            connections_open: AtomicU64::new(0),
            connections_refused: AtomicU64::new(0),
            auth_refused: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl Metrics {
    /// Counts one append call of `events` events that ended with `outcome` after `took`
    /// (measured around the store's append, so it includes the group commit's fsync).
    pub fn append(&self, events: usize, outcome: Outcome, took: Duration) {
        self.appends[outcome as usize].fetch_add(1, Relaxed);
        if outcome == Outcome::Committed {
            self.events_appended.fetch_add(events as u64, Relaxed);
            self.append_events.observe(events as u64);
        }
        self.append_latency_us.observe(u64::try_from(took.as_micros()).unwrap_or(u64::MAX));
    }

    /// Counts one counted read (not a subscription).
    pub fn read(&self) {
        self.reads.fetch_add(1, Relaxed);
    }

    /// Counts a subscription opening; the gauge goes down when the guard drops.
    pub fn subscription_opened(&self) {
        self.subscriptions_opened.fetch_add(1, Relaxed);
        self.subscriptions_open.fetch_add(1, Relaxed);
    }

    /// Counts a subscription ending.
    pub fn subscription_closed(&self) {
        self.subscriptions_open.fetch_sub(1, Relaxed);
    }

    /// Counts a subscription refused by a limit.
    pub fn subscription_refused(&self) {
        self.subscriptions_refused.fetch_add(1, Relaxed);
    }

    /// Counts an accepted connection (open until [`connection_closed`](Self::connection_closed)).
    pub fn connection_opened(&self) {
        self.connections_accepted.fetch_add(1, Relaxed);
        self.connections_open.fetch_add(1, Relaxed);
    }

    /// Counts a connection ending.
    pub fn connection_closed(&self) {
        self.connections_open.fetch_sub(1, Relaxed);
    }

    /// Counts a connection closed at once because too many were open.
    pub fn connection_refused(&self) {
        self.connections_refused.fetch_add(1, Relaxed);
    }

    /// Counts a call refused by basic authentication: `bad_credentials` if it had some that
    /// did not check, else it had none.
    pub fn auth_refused(&self, bad_credentials: bool) {
        self.auth_refused[usize::from(bad_credentials)].fetch_add(1, Relaxed);
    }

    /// The Prometheus text exposition of the server's metrics and `store`'s figures.
    pub fn render(&self, store: &Store) -> String {
        let mut out = String::with_capacity(4096);
        let name = "annal_server_appends_total";
        let _ = writeln!(out, "# HELP {name} Append calls by outcome.\n# TYPE {name} counter");
        for outcome in [Outcome::Committed, Outcome::WrongVersion, Outcome::Failed] {
            let n = self.appends[outcome as usize].load(Relaxed);
            let _ = writeln!(out, "{name}{{outcome=\"{}\"}} {n}", outcome.label());
        }
        let counters = [
            (
                "annal_server_events_appended_total",
                "Events committed by appends.",
                &self.events_appended,
            ),
            ("annal_server_reads_total", "Counted reads (not subscriptions).", &self.reads),
            (
                "annal_server_subscriptions_total",
                "Subscriptions opened.",
                &self.subscriptions_opened,
            ),
            (
                "annal_server_subscriptions_refused_total",
                "Subscriptions refused by a limit.",
                &self.subscriptions_refused,
            ),
            ("annal_server_connections_total", "Connections accepted.", &self.connections_accepted),
            (
                "annal_server_connections_refused_total",
                "Connections closed at once by the limit.",
                &self.connections_refused,
            ),
        ];
        for (name, help, value) in counters {
            metric(&mut out, name, help, "counter", value.load(Relaxed));
        }
        let gauges = [
            (
                "annal_server_subscriptions_open",
                "Subscriptions open now.",
                &self.subscriptions_open,
            ),
            ("annal_server_connections_open", "Connections open now.", &self.connections_open),
        ];
        for (name, help, value) in gauges {
            metric(&mut out, name, help, "gauge", value.load(Relaxed));
        }
        self.append_latency_us.render(
            &mut out,
            "annal_server_append_seconds",
            "Time from a complete append request to the store's answer.",
            1e6,
        );
        self.append_events.render(
            &mut out,
            "annal_server_append_events",
            "Events per committed append call.",
            1.0,
        );
        let name = "annal_server_auth_refused_total";
        let _ = writeln!(out, "# HELP {name} Calls refused by basic authentication.");
        let _ = writeln!(out, "# TYPE {name} counter");
        for (reason, n) in ["no_credentials", "bad_credentials"].iter().zip(&self.auth_refused) {
            let _ = writeln!(out, "{name}{{reason=\"{reason}\"}} {}", n.load(Relaxed));
        }
        crate::metrics_store::render(&mut out, store);
        out
    }
}

pub(crate) fn metric(out: &mut String, name: &str, help: &str, kind: &str, value: u64) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
}
