//! Where the store reads the time: the commit timestamp of every group, and the cut-off of a
//! stream's `max_age`. A seam so that tests can give the store a clock that repeats or goes
//! backwards, as wall clocks do (NTP steps, VM migrations). Nothing that keeps the log
//! consistent depends on it: timestamps are data, and groups are told apart by their sequence
//! numbers.

use std::time::{SystemTime, UNIX_EPOCH};

/// A source of wall-clock time for [`Options::clock`](crate::Options::clock).
pub trait Clock: Send + Sync {
    /// Microseconds since the Unix epoch. May repeat or go backwards; `0` before the epoch.
    fn now_us(&self) -> u64;
}

/// The system's wall clock, the default.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_us(&self) -> u64 {
        let since = SystemTime::now().duration_since(UNIX_EPOCH);
        since.map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
    }
}
