//! The in-memory side of the repository: a bounded cache of aggregate states that passivates
//! idle ones. (Which aggregates commands are running on is `busy.rs`'s.)
//!
//! A state is *taken out* of the cache while a command runs on it and put back afterwards, so
//! the cache never holds more than its bounds (a count, and bytes as the aggregates estimate
//! them), and the states outside it are at most one per running command. Passivation is lazy: every `put` (so every command) first drops the
//! entries idle for longer than the idle timeout, oldest first; there is no background thread.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Mutex, MutexGuard},
    time::{Duration, Instant},
};

/// A bounded map from aggregate id to state, least recently used first out.
pub(crate) struct Cache<T> {
    entries: HashMap<String, Entry<T>>,
    /// Entry ids by the tick of their last use; the first is the least recently used.
    order: BTreeMap<u64, String>,
    tick: u64,
    capacity: usize,
    /// The sum of the entries' sizes, and its bound.
    bytes: u64,
    bytes_max: u64,
    idle: Duration,
    /// Entries dropped for idleness / for room, since creation.
    pub passivated: u64,
    /// Entries dropped for room, since creation.
    pub evicted: u64,
}

struct Entry<T> {
    value: T,
    bytes: u64,
    tick: u64,
    used: Instant,
}

impl<T> Cache<T> {
    /// A cache of at most `capacity` states (0: cache nothing) and `bytes_max` bytes,
    /// dropping those idle for longer than `idle`.
    pub fn new(capacity: usize, bytes_max: u64, idle: Duration) -> Cache<T> {
        Cache {
            entries: HashMap::new(),
            order: BTreeMap::new(),
            tick: 0,
            capacity,
            bytes: 0,
            bytes_max,
            idle,
            passivated: 0,
            evicted: 0,
        }
    }

    /// Removes and returns the state of `id`, if cached.
    pub fn take(&mut self, id: &str) -> Option<T> {
        let entry = self.entries.remove(id)?;
        self.order.remove(&entry.tick);
        self.bytes -= entry.bytes;
        Some(entry.value)
    }

    /// Caches the state of `id`, of `bytes` bytes, as just used, after dropping idle entries
    /// and, while the cache would exceed a bound, the least recently used ones. A state larger
    /// than the byte bound is not cached.
    pub fn put(&mut self, id: String, value: T, bytes: u64) {
        let now = Instant::now();
        self.passivate_idle(now);
        if self.capacity == 0 || bytes > self.bytes_max {
            return;
        }
        while self.entries.len() >= self.capacity || self.bytes + bytes > self.bytes_max {
            let (_, oldest) = self.order.pop_first().expect("order mirrors entries");
            self.remove(&oldest);
            self.evicted += 1;
        }
        self.tick += 1;
        self.bytes += bytes;
        self.order.insert(self.tick, id.clone());
        let entry = Entry { value, bytes, tick: self.tick, used: now };
        let previous = self.entries.insert(id, entry);
        assert!(previous.is_none(), "a state is cached while a command holds it");
        debug_assert_eq!(self.entries.len(), self.order.len());
        debug_assert!(self.entries.len() <= self.capacity && self.bytes <= self.bytes_max);
    }

    fn remove(&mut self, id: &str) {
        let entry = self.entries.remove(id).expect("order mirrors entries");
        self.bytes -= entry.bytes;
    }

    /// Drops every entry unused for longer than the idle timeout.
    pub fn passivate_idle(&mut self, now: Instant) {
        while let Some((_, oldest)) = self.order.first_key_value() {
            let entry = &self.entries[oldest];
            if now.duration_since(entry.used) <= self.idle {
                break;
            }
            let (_, oldest) = self.order.pop_first().expect("just seen");
            self.remove(&oldest);
            self.passivated += 1;
        }
    }

    /// Cached states.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Bytes of the cached states, as estimated when they were put.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Drops every cached state, and the memory that held them.
    pub fn clear(&mut self) {
        self.entries = HashMap::new();
        self.order.clear();
        self.bytes = 0;
    }
}

/// Locks `mutex`, also after a panic elsewhere: every critical section here leaves the data
/// consistent at each step.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_keeps_at_most_its_capacity_and_drops_the_least_recently_used() {
        let mut cache = Cache::new(2, u64::MAX, Duration::from_secs(3600));
        cache.put("a".into(), 1, 1);
        cache.put("b".into(), 2, 1);
        assert_eq!(cache.take("a"), Some(1));
        cache.put("a".into(), 1, 1);
        cache.put("c".into(), 3, 1);
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.take("b"), None, "b was the least recently used");
        assert_eq!((cache.take("a"), cache.take("c")), (Some(1), Some(3)));
        assert_eq!(cache.evicted, 1);
    }

    #[test]
    fn cache_passivates_entries_idle_past_the_timeout() {
        let mut cache = Cache::new(10, u64::MAX, Duration::ZERO);
        cache.put("a".into(), 1, 1);
        cache.passivate_idle(Instant::now() + Duration::from_millis(1));
        assert_eq!((cache.len(), cache.passivated), (0, 1));
    }

    #[test]
    fn cache_keeps_within_its_byte_bound_and_skips_what_cannot_fit() {
        let mut cache = Cache::new(100, 10, Duration::from_secs(3600));
        cache.put("a".into(), 1, 4);
        cache.put("b".into(), 2, 4);
        cache.put("c".into(), 3, 4);
        assert_eq!((cache.len(), cache.bytes(), cache.evicted), (2, 8, 1));
        cache.put("huge".into(), 4, 11);
        assert_eq!((cache.take("huge"), cache.bytes()), (None, 8));
        assert_eq!(cache.take("c"), Some(3));
        assert_eq!(cache.bytes(), 4);
    }
}
