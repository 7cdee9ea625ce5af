//! The acknowledgements of a persistent subscription: which delivered events are still
//! unacknowledged, the checkpoint that follows from them, when it is written, and the window
//! that bounds how many events may be in flight.

use crate::sync;
use std::{
    collections::VecDeque,
    sync::{
        Arc, Condvar, Mutex, MutexGuard,
        atomic::{AtomicU64, Ordering},
    },
    task::Waker,
    time::{Duration, Instant},
};

use crate::{
    error::{Error, Result},
    options::Durability,
    shared::Shared,
};

use super::{PersistentOptions, checkpoint};

/// What a persistent subscription and its ackers share.
pub(super) struct AckState {
    pub name: String,
    pub shared: Arc<Shared>,
    every_acks: u32,
    interval: Duration,
    max_in_flight: usize,
    tracker: Mutex<Tracker>,
    /// Signalled when an acknowledgement frees room in the window or an acker goes away.
    room: Condvar,
    /// Serialises checkpoint writes. Taken before `tracker`, never while holding it.
    io: Mutex<Io>,
    /// The last checkpoint written, readable without the lock.
    pub saved: AtomicU64,
}

/// Delivered events and how far the subscription has read.
struct Tracker {
    /// Delivered events not yet covered by the checkpoint, in position order, with whether each
    /// was acknowledged. The front one is unacknowledged.
    pending: VecDeque<(u64, bool)>,
    /// The subscription's next position: everything below it was delivered or filtered out.
    scanned: u64,
    acks_since_save: u32,
    last_save: Instant,
    /// Live [`Acker`]s: with none, nobody else can make room in a full window.
    ackers: usize,
    /// The task of an async stream waiting for room in the window.
    room_waker: Option<Waker>,
}

struct Io {
    saved: u64,
    /// The store is closed: the directory may belong to another store now, write nothing.
    closed: bool,
}

impl Tracker {
    /// Everything below this was acknowledged or filtered out.
    fn checkpoint(&self) -> u64 {
        self.pending.front().map_or(self.scanned, |&(position, _)| position)
    }
}

impl AckState {
    /// The state of subscription `name`, whose checkpoint `start` is saved.
    pub fn new(
        name: &str,
        shared: Arc<Shared>,
        options: &PersistentOptions,
        start: u64,
    ) -> AckState {
        let tracker = Tracker {
            pending: VecDeque::new(),
            scanned: start,
            acks_since_save: 0,
            last_save: Instant::now(),
            ackers: 0,
            room_waker: None,
        };
        AckState {
            name: name.to_owned(),
            shared,
            every_acks: options.checkpoint_every_acks,
            interval: options.checkpoint_interval,
            max_in_flight: options.max_in_flight as usize,
            tracker: Mutex::new(tracker),
            room: Condvar::new(),
            io: Mutex::new(Io { saved: start, closed: false }),
            saved: AtomicU64::new(start),
        }
    }

    fn tracker(&self) -> MutexGuard<'_, Tracker> {
        sync::lock(&self.tracker)
    }

    /// The checkpoint as of now.
    pub fn checkpoint(&self) -> u64 {
        self.tracker().checkpoint()
    }

    /// Delivered events not yet covered by the checkpoint.
    pub fn in_flight(&self) -> usize {
        self.tracker().pending.len()
    }

    /// Notes that the subscription's next position is `scanned`, having just delivered the
    /// event at `delivered` if any.
    pub fn record(&self, scanned: u64, delivered: Option<u64>) {
        let mut t = self.tracker();
        t.scanned = scanned;
        if let Some(position) = delivered {
            debug_assert!(t.pending.back().is_none_or(|&(p, _)| p < position));
            t.pending.push_back((position, false));
        }
    }

    /// An [`Acker`](super::Acker) was made.
    pub fn acker_added(&self) {
        self.tracker().ackers += 1;
    }

    /// An [`Acker`](super::Acker) is gone: a receiver waiting for room must learn that it can
    /// no longer help.
    pub fn acker_dropped(&self) {
        let waker = {
            let mut t = self.tracker();
            t.ackers -= 1;
            t.room_waker.take()
        };
        self.room.notify_all();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Marks the event at `position` processed; may write the checkpoint.
    pub fn ack(&self, position: u64) -> Result<()> {
        let mut waker = None;
        let due = {
            let mut t = self.tracker();
            if position < t.checkpoint() {
                return Ok(());
            }
            let Ok(i) = t.pending.binary_search_by_key(&position, |&(p, _)| p) else {
                return Err(Error::NotDelivered { position });
            };
            t.pending[i].1 = true;
            if i == 0 {
                while t.pending.front().is_some_and(|&(_, acked)| acked) {
                    t.pending.pop_front();
                }
                self.room.notify_all();
                waker = t.room_waker.take();
            }
            t.acks_since_save += 1;
            t.acks_since_save >= self.every_acks || t.last_save.elapsed() >= self.interval
        };
        // Run outside the lock: it is an executor's code.
        if let Some(waker) = waker {
            waker.wake();
        }
        if due { self.save(false) } else { Ok(()) }
    }

    /// Writes the current checkpoint if it moved. After the store closed: an error if
    /// `explicit`, else nothing.
    pub fn save(&self, explicit: bool) -> Result<()> {
        let mut io = sync::lock(&self.io);
        // The counters restart even when nothing is written (closed, or an I/O error below),
        // so that a write that cannot happen is not retried on every call.
        let position = {
            let mut t = self.tracker();
            t.acks_since_save = 0;
            t.last_save = Instant::now();
            t.checkpoint()
        };
        if io.closed {
            return if explicit { Err(Error::Closed) } else { Ok(()) };
        }
        if position == io.saved {
            return Ok(());
        }
        let options = self.shared.options();
        let sync = options.durability == Durability::Fsync;
        checkpoint::write(&*options.storage, self.shared.dir(), &self.name, position, sync)?;
        io.saved = position;
        self.saved.store(position, Ordering::Release);
        Ok(())
    }

    /// When a time-triggered write falls due, if the checkpoint moved since the last one.
    pub fn save_due_at(&self) -> Option<Instant> {
        let t = self.tracker();
        (t.checkpoint() != self.saved.load(Ordering::Acquire)).then(|| t.last_save + self.interval)
    }

    /// Waits until fewer than `max_in_flight` events are unacknowledged; `false` at `deadline`.
    pub fn wait_for_room(&self, deadline: Option<Instant>) -> Result<bool> {
        let mut t = self.tracker();
        while t.pending.len() >= self.max_in_flight {
            if t.ackers == 0 {
                return Err(Error::TooManyUnacknowledged { max_in_flight: self.max_in_flight });
            }
            t = match deadline {
                None => sync::recover(self.room.wait(t)),
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => {
                        sync::recover(self.room.wait_timeout(t, left)).0
                    }
                    _ => return Ok(false),
                },
            };
        }
        Ok(true)
    }

    /// Whether the window has room for one more event; if not, `waker` is woken when an
    /// acknowledgement makes room or the last [`Acker`](super::Acker) goes away. Fails like
    /// [`wait_for_room`](Self::wait_for_room) when no acker could make room.
    pub fn poll_room(&self, waker: &Waker) -> Result<bool> {
        let mut t = self.tracker();
        if t.pending.len() < self.max_in_flight {
            return Ok(true);
        }
        if t.ackers == 0 {
            return Err(Error::TooManyUnacknowledged { max_in_flight: self.max_in_flight });
        }
        match &mut t.room_waker {
            Some(old) => old.clone_from(waker),
            None => t.room_waker = Some(waker.clone()),
        }
        Ok(false)
    }

    /// Drops the waker an async stream left: the stream is gone.
    pub fn forget_room_waker(&self) {
        let waker = self.tracker().room_waker.take();
        drop(waker);
    }

    /// Writes the checkpoint a last time and stops writing: the store is closing.
    pub fn close(&self) {
        let _ = self.save(false);
        sync::lock(&self.io).closed = true;
    }
}

impl Drop for AckState {
    fn drop(&mut self) {
        let _ = self.save(false);
        self.shared.subscriptions().release(&self.name);
    }
}
