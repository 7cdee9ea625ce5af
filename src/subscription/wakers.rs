//! The wakers of async subscribers waiting for the head to move: one entry per waiting stream,
//! registered by the stream's poll, removed by its drop, and taken by the wake-up it waits for.
//!
//! Entries are kept by what they wait on: `$all` subscribers in one map (every publish
//! concerns them), stream subscribers under their stream's name, so that a sweep can wake only
//! the subscribers of the streams a publish touched and leave idle ones asleep. An entry is
//! keyed by the stream's id, so a stream polled again while it waits replaces its waker instead
//! of adding one, and a dropped stream removes exactly its own. The number of entries is
//! mirrored in an atomic that the writer reads without the lock (see
//! [`Notifier::wake`](super::Notifier::wake) for the protocol that keeps wake-ups from being
//! lost); it is stored under the lock after every change.

use crate::sync;
use std::{
    collections::HashMap,
    mem,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    task::Waker,
};

/// Registered wakers by what they wait on and by stream id.
#[derive(Default)]
pub(super) struct Wakers {
    entries: Mutex<Entries>,
    /// How many entries there are; stored (SeqCst) under the lock after every change.
    count: AtomicU64,
    /// The next id to hand out.
    next_id: AtomicU64,
}

/// Which wakers a sweep takes.
pub(super) enum Touched<'a> {
    /// Every one: the store closed or was poisoned, or the sweep could not tell which streams
    /// the publishes touched.
    Everything,
    /// The `$all` subscribers, and those of these streams.
    Streams(&'a [String]),
}

#[derive(Default)]
struct Entries {
    all: HashMap<u64, Waker>,
    streams: HashMap<String, HashMap<u64, Waker>>,
    len: usize,
    /// Kept between sweeps so that a sweep over many wakers allocates nothing.
    spare: Vec<Waker>,
}

impl Entries {
    /// Takes the wakers `touched` names into `taken`.
    fn take(&mut self, touched: &Touched<'_>, taken: &mut Vec<Waker>) {
        let before = taken.len();
        taken.extend(self.all.drain().map(|(_, waker)| waker));
        match touched {
            Touched::Everything => {
                let streams = self.streams.drain().flat_map(|(_, wakers)| wakers.into_values());
                taken.extend(streams);
            }
            Touched::Streams(names) => {
                for name in names.iter() {
                    if let Some(wakers) = self.streams.remove(name.as_str()) {
                        taken.extend(wakers.into_values());
                    }
                }
            }
        }
        self.len -= taken.len() - before;
    }
}

impl Wakers {
    /// A fresh id for a new stream; ids are never reused.
    pub fn new_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Entries now, read without the lock.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::SeqCst)
    }

    /// Registers (or replaces) the waker of subscriber `id`, waiting on `stream` (`None`:
    /// `$all`). The count is stored whatever happened, after the entry is in place: a writer
    /// that reads it and asks for a wake-up is then sure to find this entry.
    pub fn register(&self, id: u64, stream: Option<&str>, waker: &Waker) {
        let mut guard = sync::lock(&self.entries);
        let entries = &mut *guard;
        let map = match stream {
            None => &mut entries.all,
            Some(name) => match entries.streams.get_mut(name) {
                Some(map) => map,
                None => entries.streams.entry(name.to_owned()).or_default(),
            },
        };
        match map.get_mut(&id) {
            Some(old) if old.will_wake(waker) => {}
            Some(old) => old.clone_from(waker),
            None => {
                map.insert(id, waker.clone());
                entries.len += 1;
            }
        }
        self.count.store(entries.len as u64, Ordering::SeqCst);
    }

    /// Removes the entry of subscriber `id` waiting on `stream`, if it has one.
    pub fn deregister(&self, id: u64, stream: Option<&str>) {
        if self.count.load(Ordering::SeqCst) == 0 {
            // Nothing registered now, and only `id`'s own stream registers it again.
            return;
        }
        let mut guard = sync::lock(&self.entries);
        let entries = &mut *guard;
        let removed = match stream {
            None => entries.all.remove(&id).is_some(),
            Some(name) => match entries.streams.get_mut(name) {
                Some(map) => {
                    let removed = map.remove(&id).is_some();
                    if map.is_empty() {
                        entries.streams.remove(name);
                    }
                    removed
                }
                None => false,
            },
        };
        if removed {
            entries.len -= 1;
            self.count.store(entries.len as u64, Ordering::SeqCst);
        }
    }

    /// Takes the entries `touched` names and wakes them, outside the lock: a waker runs an
    /// executor's code, which must not hold up registrations. A panicking waker is contained,
    /// so that the others are still woken and the caller (the helper thread, or a closing
    /// store) goes on.
    pub fn wake(&self, touched: &Touched<'_>) {
        let mut taken = {
            let mut entries = sync::lock(&self.entries);
            let mut taken = mem::take(&mut entries.spare);
            entries.take(touched, &mut taken);
            self.count.store(entries.len as u64, Ordering::SeqCst);
            taken
        };
        for waker in taken.drain(..) {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| waker.wake()));
        }
        let mut entries = sync::lock(&self.entries);
        if entries.spare.capacity() < taken.capacity() {
            entries.spare = taken;
        }
    }

    /// Takes and wakes every entry.
    pub fn wake_all(&self) {
        self.wake(&Touched::Everything);
    }
}

#[cfg(test)]
mod tests {
    use std::{
        sync::{Arc, atomic::AtomicUsize},
        task::Wake,
    };

    use super::*;

    struct Counting(AtomicUsize);

    impl Wake for Counting {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counting() -> (Arc<Counting>, Waker) {
        let counter = Arc::new(Counting(AtomicUsize::new(0)));
        (Arc::clone(&counter), Waker::from(counter))
    }

    #[test]
    fn register_replaces_per_id_and_wake_all_takes_every_entry() {
        let wakers = Wakers::default();
        let (first, first_waker) = counting();
        let (second, second_waker) = counting();
        let (a, b) = (wakers.new_id(), wakers.new_id());
        wakers.register(a, None, &first_waker);
        wakers.register(a, None, &second_waker);
        wakers.register(b, Some("s"), &second_waker);
        assert_eq!(wakers.count(), 2, "one entry per id");
        wakers.wake_all();
        assert_eq!(wakers.count(), 0);
        assert_eq!(first.0.load(Ordering::SeqCst), 0, "replaced before the wake-up");
        assert_eq!(second.0.load(Ordering::SeqCst), 2);
        wakers.wake_all();
        assert_eq!(second.0.load(Ordering::SeqCst), 2, "each registration wakes once");
    }

    #[test]
    fn deregister_removes_only_its_own_entry() {
        let wakers = Wakers::default();
        let (counter, waker) = counting();
        let ids: Vec<u64> = (0..10).map(|_| wakers.new_id()).collect();
        ids.iter().for_each(|&id| wakers.register(id, Some("s"), &waker));
        ids.iter().step_by(2).for_each(|&id| wakers.deregister(id, Some("s")));
        wakers.deregister(ids[0], Some("s"));
        assert_eq!(wakers.count(), 5);
        wakers.wake_all();
        assert_eq!(counter.0.load(Ordering::SeqCst), 5);
    }

    #[test]
    fn a_sweep_takes_all_subscribers_and_only_the_touched_streams() {
        let wakers = Wakers::default();
        let (counter, waker) = counting();
        for (id, stream) in [(1, None), (2, Some("a")), (3, Some("b")), (4, Some("a"))] {
            wakers.register(id, stream, &waker);
        }
        wakers.wake(&Touched::Streams(&["a".to_owned(), "c".to_owned()]));
        assert_eq!(counter.0.load(Ordering::SeqCst), 3, "$all and both of a's");
        assert_eq!(wakers.count(), 1, "b's subscriber still waits");
        wakers.deregister(3, Some("b"));
        assert_eq!(wakers.count(), 0);
        assert!(sync::lock(&wakers.entries).streams.is_empty(), "an emptied stream is removed");
    }
}
