//! How the writer wakes subscribers without ever waiting on one. A wake-up is only a hint to
//! look at the head again; what a subscriber delivers is decided by its cursor and the log.
//!
//! Blocking subscribers sleep on one condition variable, checking their condition under its
//! lock; async ones leave a [`Waker`] in a list keyed by stream (`wakers`). The writer never
//! waits for either lock and never runs a waker: after publishing a group it looks at the two
//! counters (sleeping threads, registered wakers) and, if both are zero, is done. Otherwise it
//! either wakes a few sleeping threads itself (no wakers registered, the lock free: `try_lock`,
//! never `lock`) or bumps a request counter and unparks a helper thread (`annal-notify`,
//! started by the first subscriber that waits), which wakes every sleeping thread and takes and
//! wakes every registered waker. So the writer's cost is a fence and two loads, plus one unpark
//! when someone waits, however many wait; a herd of woken subscribers contends with the helper,
//! never the writer. Publishes that come while the helper sweeps are served by its next sweep.

use crate::{lifecycle, read::ReadAll, shared::Shared, sync};
use std::{
    collections::HashSet,
    sync::{
        Arc, Condvar, Mutex, MutexGuard, OnceLock, Weak,
        atomic::{AtomicBool, AtomicU64, Ordering, fence},
    },
    task::Waker,
    thread::{self, Thread},
    time::{Duration, Instant},
};

use super::wakers::{Touched, Wakers};

/// Up to this many sleepers, the writer wakes them itself if the lock is free at that moment;
/// waking a few threads costs it about as much as handing the job to the helper.
const DIRECT_WAKE_MAX: u64 = 4;

/// How often a subscriber looks again when the helper thread could not be started.
const POLL_WITHOUT_HELPER: Duration = Duration::from_millis(10);

/// The most events a sweep reads to learn which streams the publishes since the last one
/// touched; past that it wakes every async subscriber instead (each then reads for itself).
const SWEEP_EVENTS_MAX: u64 = 4096;

/// Why [`Notifier::wait`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wake {
    /// The condition the caller waits for holds (or held when it looked).
    Ready,
    /// The store is closed: nothing will be committed any more.
    Closed,
    /// The deadline passed first.
    TimedOut,
}

/// Wakes waiting subscribers when the head moves or the store closes.
#[derive(Default)]
pub(crate) struct Notifier {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Whether the store is closed (it stops committing: closed, or opened read-only).
    closed: Mutex<bool>,
    cond: Condvar,
    /// Subscribers between announcing that they will sleep and waking up again.
    sleeping: AtomicU64,
    /// Wake-ups the writer asked the helper for.
    requested: AtomicU64,
    /// The helper thread, once started.
    helper: OnceLock<Thread>,
    /// Serialises starting the helper.
    starting: Mutex<()>,
    /// Tells the helper to exit.
    stop: AtomicBool,
    /// `closed`, readable without the lock (set before the wake-up that `close` makes).
    closed_flag: AtomicBool,
    /// The wakers of async subscribers waiting for the head to move.
    wakers: Wakers,
    /// The store, for the helper to read which streams a publish touched, and the head
    /// before the first registration (where the first sweep reads from); set by the first
    /// registration. Weak: the notifier lives inside it.
    store: OnceLock<(Weak<Shared>, u64)>,
}

impl Inner {
    fn closed(&self) -> MutexGuard<'_, bool> {
        // Nothing that can panic runs under this lock, so a poisoned lock holds a sound state.
        sync::lock(&self.closed)
    }

    /// The helper's loop: whenever a new request is seen, wake every sleeping thread and the
    /// async subscribers the publishes concern.
    fn run_helper(&self) {
        let mut seen = 0;
        let mut swept = None;
        while !self.stop.load(Ordering::Acquire) {
            let requested = self.requested.load(Ordering::Acquire);
            if requested == seen {
                // An unpark between the load and here makes this return at once.
                thread::park();
                continue;
            }
            seen = requested;
            if self.sleeping.load(Ordering::SeqCst) > 0 {
                let _closed = self.closed();
                self.cond.notify_all();
            }
            swept = self.sweep(swept);
        }
    }

    /// Wakes the `$all` subscribers and those of the streams that the publishes between
    /// `swept` and the head touched; returns the head it swept to.
    ///
    /// The head is loaded before the wakers' lock is taken: a subscriber that registers after
    /// this sweep then sees a head at least as high when it looks again, and one registered
    /// before is taken if its stream was touched below that head. Its stream touched at or
    /// above it, the writer sees the entry and asks for another sweep, from this head on.
    fn sweep(&self, swept: Option<u64>) -> Option<u64> {
        // Not set: nobody has registered yet.
        let (store, first) = self.store.get()?;
        let Some(shared) = store.upgrade() else {
            self.wakers.wake_all();
            return None;
        };
        // Every registration came after `first` was loaded, and looked at the head after it.
        let from = swept.unwrap_or(*first);
        let head = shared.head();
        let names = if self.wakers.count() == 0 || shared.poisoned().is_some() {
            // Nobody waits (a wake-up for sleeping threads): nothing to read; anyone who
            // registers meanwhile is taken, to be safe. Poisoned: everyone must learn it.
            None
        } else {
            touched_streams(&shared, from, head)
        };
        match &names {
            Some(names) => self.wakers.wake(&Touched::Streams(names)),
            None => self.wakers.wake_all(),
        }
        Some(head)
    }
}

/// The streams that events `from..to` belong to (for a metadata stream `$$s`, `s` as well):
/// `None` if there are more than [`SWEEP_EVENTS_MAX`] or they cannot be read.
fn touched_streams(shared: &Arc<Shared>, from: u64, to: u64) -> Option<Vec<String>> {
    if to.saturating_sub(from) > SWEEP_EVENTS_MAX {
        return None;
    }
    let mut names = HashSet::new();
    for event in ReadAll::new(Arc::clone(shared), from, (to - from) as usize) {
        let event = event.ok()?;
        if event.position().get() >= to {
            break;
        }
        if let Some(target) = lifecycle::metadata_target(event.stream()) {
            names.insert(target.to_owned());
        }
        names.insert(event.stream().to_owned());
    }
    Some(names.into_iter().collect())
}

impl Notifier {
    /// Asks for every sleeping subscriber to be woken. Called by the writer after it stored a
    /// new head, and when the store is poisoned. Never blocks.
    ///
    /// Why no wake-up is lost: a subscriber adds itself to `sleeping`, then (after a fence)
    /// evaluates its condition; the writer stores the head, then (after a fence) reads
    /// `sleeping`. With both fences sequentially consistent, either the subscriber sees the new
    /// head, or the writer sees the subscriber and requests a wake-up. The helper then takes
    /// the lock the subscriber holds from before its check until it sleeps, so the helper's
    /// `notify_all` comes after the subscriber is asleep, or its check after the helper.
    ///
    /// Async subscribers follow the same protocol with the count of registered wakers in place
    /// of `sleeping` ([`register`](Notifier::register) stores it after the entry is in place),
    /// and the helper takes the wakers' lock before it takes their entries.
    pub fn wake(&self) {
        let inner = &*self.inner;
        fence(Ordering::SeqCst);
        let sleeping = inner.sleeping.load(Ordering::Relaxed);
        let registered = inner.wakers.count();
        if sleeping == 0 && registered == 0 {
            return;
        }
        // A few sleeping threads and a free lock: wake them directly, one thread switch
        // sooner. Wakers are never run here: they are an executor's code, and the writer must
        // not wait on it.
        if registered == 0
            && sleeping <= DIRECT_WAKE_MAX
            && let Ok(_closed) = inner.closed.try_lock()
        {
            inner.cond.notify_all();
            return;
        }
        inner.requested.fetch_add(1, Ordering::Release);
        match inner.helper.get() {
            Some(helper) => helper.unpark(),
            // Only if the helper could not be started: sleeping threads poll then, but a waker
            // has no timer, so it is woken here.
            None if registered > 0 => inner.wakers.wake_all(),
            None => {}
        }
    }

    /// Marks the store closed and wakes everyone; the head does not move after this, so the
    /// helper thread is no longer needed and exits.
    pub fn close(&self) {
        {
            let mut closed = self.inner.closed();
            *closed = true;
            self.inner.closed_flag.store(true, Ordering::SeqCst);
        }
        self.inner.cond.notify_all();
        self.inner.wakers.wake_all();
        self.stop_helper();
    }

    /// Whether the store is closed (nothing will be committed any more).
    pub fn is_closed(&self) -> bool {
        self.inner.closed_flag.load(Ordering::SeqCst)
    }

    /// A fresh id for an async stream, to register its waker under.
    pub fn new_waiter_id(&self) -> u64 {
        self.inner.wakers.new_id()
    }

    /// Registers (or replaces) the waker of async stream `id`, to be woken once by the next
    /// head move, poison or close. The caller must look at its condition again *after* this
    /// returns (see [`wake`](Notifier::wake)); an entry left after the condition turned out
    /// to hold only costs a spurious wake-up. Starts the helper thread if it does not run yet
    /// (if it cannot be started, [`wake`](Notifier::wake) runs the wakers itself).
    ///
    /// `stream` is what it waits on: a stream's name, or `None` for `$all`. A stream
    /// subscriber is woken only by publishes that touch its stream (or its `$$` metadata
    /// stream), by poison, and by close.
    pub fn register(&self, shared: &Arc<Shared>, id: u64, stream: Option<&str>, waker: &Waker) {
        self.inner.store.get_or_init(|| (Arc::downgrade(shared), shared.head()));
        self.ensure_helper();
        self.inner.wakers.register(id, stream, waker);
        fence(Ordering::SeqCst);
    }

    /// Removes the waker of async stream `id` waiting on `stream`, if registered: the stream
    /// is dropped or no longer waits.
    pub fn deregister(&self, id: u64, stream: Option<&str>) {
        self.inner.wakers.deregister(id, stream);
    }

    /// Async streams whose waker is registered now.
    pub fn registered(&self) -> u64 {
        self.inner.wakers.count()
    }

    fn stop_helper(&self) {
        self.inner.stop.store(true, Ordering::Release);
        if let Some(helper) = self.inner.helper.get() {
            helper.unpark();
        }
    }

    /// Starts the helper thread unless it runs or is no longer needed; `false` if it could not
    /// be started (sleepers then poll).
    fn ensure_helper(&self) -> bool {
        if self.inner.helper.get().is_some() || self.inner.stop.load(Ordering::Acquire) {
            return true;
        }
        let _starting = sync::lock(&self.inner.starting);
        if self.inner.helper.get().is_some() {
            return true;
        }
        let inner = Arc::clone(&self.inner);
        let spawned =
            thread::Builder::new().name("annal-notify".into()).spawn(move || inner.run_helper());
        match spawned {
            Ok(handle) => {
                let _ = self.inner.helper.set(handle.thread().clone());
                true
            }
            Err(_) => false,
        }
    }

    /// Waits until `ready()` holds, the store is closed, or `deadline` passes (`None`: no
    /// deadline). See [`wake`](Notifier::wake) for why a change that makes `ready` true cannot
    /// slip by unnoticed.
    pub fn wait(&self, ready: impl Fn() -> bool, deadline: Option<Instant>) -> Wake {
        let helper = self.ensure_helper();
        let inner = &*self.inner;
        let mut closed = inner.closed();
        loop {
            inner.sleeping.fetch_add(1, Ordering::SeqCst);
            fence(Ordering::SeqCst);
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            let outcome = if ready() {
                Some(Wake::Ready)
            } else if *closed {
                Some(Wake::Closed)
            } else if left.is_some_and(|left| left.is_zero()) {
                Some(Wake::TimedOut)
            } else {
                None
            };
            if let Some(outcome) = outcome {
                inner.sleeping.fetch_sub(1, Ordering::SeqCst);
                return outcome;
            }
            let timeout = match (left, helper) {
                (left, true) => left,
                (None, false) => Some(POLL_WITHOUT_HELPER),
                (Some(left), false) => Some(left.min(POLL_WITHOUT_HELPER)),
            };
            closed = match timeout {
                None => sync::recover(inner.cond.wait(closed)),
                Some(t) => sync::recover(inner.cond.wait_timeout(closed, t)).0,
            };
            inner.sleeping.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl Drop for Notifier {
    fn drop(&mut self) {
        self.stop_helper();
    }
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("sleeping", &self.inner.sleeping.load(Ordering::Relaxed))
            .field("requested", &self.inner.requested.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU64;

    use super::*;

    #[test]
    fn wait_returns_ready_after_a_wake_and_closed_after_close() {
        let notifier = Arc::new(Notifier::default());
        let head = Arc::new(AtomicU64::new(0));
        for round in 1..=100 {
            let waiter = {
                let (notifier, head) = (Arc::clone(&notifier), Arc::clone(&head));
                thread::spawn(move || notifier.wait(|| head.load(Ordering::Acquire) >= round, None))
            };
            head.store(round, Ordering::Release);
            notifier.wake();
            assert_eq!(waiter.join().unwrap(), Wake::Ready, "round {round}");
        }
        notifier.close();
        assert_eq!(notifier.wait(|| false, None), Wake::Closed);
        assert_eq!(notifier.wait(|| true, None), Wake::Ready);
    }

    #[test]
    fn wake_reaches_many_sleepers_through_the_helper() {
        let notifier = Arc::new(Notifier::default());
        let head = Arc::new(AtomicU64::new(0));
        for round in 1..=20 {
            let waiters: Vec<_> = (0..3 * DIRECT_WAKE_MAX)
                .map(|_| {
                    let (notifier, head) = (Arc::clone(&notifier), Arc::clone(&head));
                    thread::spawn(move || {
                        notifier.wait(|| head.load(Ordering::Acquire) >= round, None)
                    })
                })
                .collect();
            while notifier.inner.sleeping.load(Ordering::SeqCst) < 3 * DIRECT_WAKE_MAX {
                thread::yield_now();
            }
            head.store(round, Ordering::Release);
            notifier.wake();
            for waiter in waiters {
                assert_eq!(waiter.join().unwrap(), Wake::Ready, "round {round}");
            }
        }
        assert!(notifier.inner.requested.load(Ordering::Relaxed) >= 20, "the helper woke them");
    }

    #[test]
    fn wait_times_out_at_the_deadline() {
        let notifier = Notifier::default();
        let deadline = Instant::now() + Duration::from_millis(5);
        assert_eq!(notifier.wait(|| false, Some(deadline)), Wake::TimedOut);
        assert_eq!(notifier.wait(|| false, Some(Instant::now())), Wake::TimedOut);
    }

    #[test]
    fn wake_without_sleepers_requests_nothing() {
        let notifier = Notifier::default();
        notifier.wake();
        assert_eq!(notifier.inner.requested.load(Ordering::Relaxed), 0);
        assert!(notifier.inner.helper.get().is_none(), "no helper until someone sleeps");
    }
}
