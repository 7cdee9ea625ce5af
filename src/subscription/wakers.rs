//! The wakers of async subscribers waiting for the head to move: one entry per waiting stream,
//! registered by the stream's poll, removed by its drop, and taken all at once by a wake-up.
//!
//! An entry is keyed by the stream's id, so a stream polled again while it waits replaces its
//! waker instead of adding one, and a dropped stream removes exactly its own. The count of
//! entries is mirrored in an atomic that the writer reads without the lock (see
//! [`Notifier::wake`](super::Notifier::wake) for the protocol that keeps wake-ups from being
//! lost); it is stored under the lock after every change, so it never disagrees with the map
//! for longer than a critical section.

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

/// Registered wakers by stream id.
#[derive(Default)]
pub(super) struct Wakers {
    entries: Mutex<Entries>,
    /// How many entries there are; stored (SeqCst) under the lock after every change.
    count: AtomicU64,
    /// The next id to hand out.
    next_id: AtomicU64,
}

#[derive(Default)]
struct Entries {
    map: HashMap<u64, Waker>,
    /// Kept between drains so that a sweep over many wakers allocates nothing.
    spare: Vec<Waker>,
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

    /// Registers (or replaces) the waker of stream `id`. The count is stored whatever happened,
    /// after the entry is in place: a writer that reads it and asks for a wake-up is then sure
    /// to find this entry.
    pub fn register(&self, id: u64, waker: &Waker) {
        let mut entries = sync::lock(&self.entries);
        match entries.map.get_mut(&id) {
            Some(old) if old.will_wake(waker) => {}
            Some(old) => old.clone_from(waker),
            None => {
                entries.map.insert(id, waker.clone());
            }
        }
        self.count.store(entries.map.len() as u64, Ordering::SeqCst);
    }

    /// Removes the entry of stream `id`, if it has one.
    pub fn deregister(&self, id: u64) {
        if self.count.load(Ordering::SeqCst) == 0 {
            // Nothing registered now, and only `id`'s own stream registers it again.
            return;
        }
        let mut entries = sync::lock(&self.entries);
        if entries.map.remove(&id).is_some() {
            self.count.store(entries.map.len() as u64, Ordering::SeqCst);
        }
    }

    /// Takes every entry and wakes it, outside the lock: a waker runs an executor's code, which
    /// must not hold up registrations. A panicking waker is contained, so that the others are
    /// still woken and the caller (the helper thread, or a closing store) goes on.
    pub fn wake_all(&self) {
        let mut taken = {
            let mut entries = sync::lock(&self.entries);
            let mut taken = mem::take(&mut entries.spare);
            taken.extend(entries.map.drain().map(|(_, waker)| waker));
            self.count.store(0, Ordering::SeqCst);
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
        wakers.register(a, &first_waker);
        wakers.register(a, &second_waker);
        wakers.register(b, &second_waker);
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
        ids.iter().for_each(|&id| wakers.register(id, &waker));
        ids.iter().step_by(2).for_each(|&id| wakers.deregister(id));
        wakers.deregister(ids[0]);
        assert_eq!(wakers.count(), 5);
        wakers.wake_all();
        assert_eq!(counter.0.load(Ordering::SeqCst), 5);
    }
}
