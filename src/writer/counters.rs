//! What group commits cost, counted as they happen: how many groups were written and how many
//! events each held, how many `fdatasync` calls they made and how long each took. The writer
//! adds to fixed histogram buckets with relaxed atomics (a few adds per group, no lock, no
//! allocation); [`Store::stats`](crate::Store::stats) reads a [`CommitStats`] snapshot. A
//! server turns that into metrics; the library knows no metrics format.

use std::{
    sync::atomic::{AtomicU64, Ordering::Relaxed},
    time::Duration,
};

/// Upper bounds (inclusive) of the `fdatasync`-latency buckets, in microseconds.
pub const FSYNC_MICROS_BOUNDS: [u64; 14] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000,
    5_000_000,
];

/// Upper bounds (inclusive) of the events-per-group buckets.
pub const GROUP_EVENTS_BOUNDS: [u64; 12] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 1024, 4096, 16_384];

/// Buckets of the `fdatasync`-latency histogram: one per bound and one above the last.
pub const FSYNC_BUCKETS: usize = FSYNC_MICROS_BOUNDS.len() + 1;

/// Buckets of the events-per-group histogram: one per bound and one above the last.
pub const GROUP_BUCKETS: usize = GROUP_EVENTS_BOUNDS.len() + 1;

/// The group commits since the store was opened (a snapshot; see [`Store::stats`]).
///
/// Bucket `i` counts the observations at most `BOUNDS[i]` and above `BOUNDS[i - 1]`; the last
/// bucket counts those above the last bound. Buckets are not cumulative.
///
/// [`Store::stats`]: crate::Store::stats
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CommitStats {
    /// Groups written and published (each is one write and, with
    /// [`Durability::Fsync`](crate::Durability::Fsync), one `fdatasync`), inline commits
    /// included.
    pub groups: u64,
    /// Events (records) in those groups, in all.
    pub group_events_sum: u64,
    /// Groups by events held, over [`GROUP_EVENTS_BOUNDS`].
    pub group_events_buckets: [u64; GROUP_BUCKETS],
    /// `fdatasync` calls made to commit groups (not those of segment rotation or close).
    pub fsyncs: u64,
    /// Their time in all, in microseconds.
    pub fsync_micros_sum: u64,
    /// `fdatasync` calls by duration, over [`FSYNC_MICROS_BOUNDS`].
    pub fsync_micros_buckets: [u64; FSYNC_BUCKETS],
}

/// The live counters behind [`CommitStats`], owned by the store's shared state.
#[derive(Debug)]
pub(crate) struct CommitCounters {
    groups: AtomicU64,
    group_events_sum: AtomicU64,
    group_events_buckets: [AtomicU64; GROUP_BUCKETS],
    fsyncs: AtomicU64,
    fsync_micros_sum: AtomicU64,
    fsync_micros_buckets: [AtomicU64; FSYNC_BUCKETS],
}

impl Default for CommitCounters {
    fn default() -> Self {
        CommitCounters {
            groups: AtomicU64::new(0),
            group_events_sum: AtomicU64::new(0),
            group_events_buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            fsyncs: AtomicU64::new(0),
            fsync_micros_sum: AtomicU64::new(0),
            fsync_micros_buckets: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

/// Copies each counter's value into its slot.
fn load_into(slots: &mut [u64], counters: &[AtomicU64]) {
    for (slot, counter) in slots.iter_mut().zip(counters) {
        *slot = counter.load(Relaxed);
    }
}

/// The bucket of `value` over `bounds`: the first bound at least `value`, else the last slot.
fn bucket(bounds: &[u64], value: u64) -> usize {
    bounds.iter().position(|&b| value <= b).unwrap_or(bounds.len())
}

impl CommitCounters {
    /// Counts a published group of `events` events.
    pub fn group(&self, events: u64) {
        self.groups.fetch_add(1, Relaxed);
        self.group_events_sum.fetch_add(events, Relaxed);
        self.group_events_buckets[bucket(&GROUP_EVENTS_BOUNDS, events)].fetch_add(1, Relaxed);
    }

    /// Counts one group's `fdatasync`, which took `took` (whether it failed or not).
    pub fn fsync(&self, took: Duration) {
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.fsyncs.fetch_add(1, Relaxed);
        self.fsync_micros_sum.fetch_add(micros, Relaxed);
        self.fsync_micros_buckets[bucket(&FSYNC_MICROS_BOUNDS, micros)].fetch_add(1, Relaxed);
    }

    /// A snapshot (each figure read on its own: a group counted meanwhile may show in one
    /// figure and not yet in another).
    pub fn snapshot(&self) -> CommitStats {
        let mut stats = CommitStats {
            groups: self.groups.load(Relaxed),
            group_events_sum: self.group_events_sum.load(Relaxed),
            fsyncs: self.fsyncs.load(Relaxed),
            fsync_micros_sum: self.fsync_micros_sum.load(Relaxed),
            ..CommitStats::default()
        };
        load_into(&mut stats.group_events_buckets, &self.group_events_buckets);
        load_into(&mut stats.fsync_micros_buckets, &self.fsync_micros_buckets);
        stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_values_on_a_bound_fall_in_its_bucket_and_larger_ones_above_the_last() {
        let counters = CommitCounters::default();
        counters.group(1);
        counters.group(3);
        counters.group(16_385);
        counters.fsync(Duration::from_micros(50));
        counters.fsync(Duration::from_micros(51));
        counters.fsync(Duration::from_secs(6));
        let stats = counters.snapshot();
        assert_eq!((stats.groups, stats.group_events_sum), (3, 16_389));
        assert_eq!(stats.group_events_buckets[0], 1);
        assert_eq!(stats.group_events_buckets[2], 1);
        assert_eq!(stats.group_events_buckets[GROUP_BUCKETS - 1], 1);
        assert_eq!((stats.fsyncs, stats.fsync_micros_sum), (3, 6_000_101));
        assert_eq!(stats.fsync_micros_buckets[..2], [1, 1]);
        assert_eq!(stats.fsync_micros_buckets[FSYNC_BUCKETS - 1], 1);
    }
}
