//! Projections: read models fed by a persistent subscription. A runner thread receives each
//! selected event, decodes it, hands it to the [`Projection`], acknowledges it and publishes how
//! far it got, so a caller can wait until a position it just appended is in the read model
//! (read-your-writes). Stopping writes the checkpoint; starting again resumes there; a rebuild
//! deletes the checkpoint, resets the read model and replays from the first event.
//!
//! Delivery is at least once: after a clean stop nothing is handled twice, but after a crash
//! the events past the last written checkpoint come again. A read model that outlives the
//! process should therefore remember the last position it applied (each event's position is
//! passed to [`Projection::handle`]) and skip what it has seen.

use std::{
    sync::{
        Arc, Condvar, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use super::{
    cache::lock,
    codec::{Codec, DomainEvent},
    error::Error,
};
use crate::{Filter, PersistentOptions, PersistentSubscription, Position, RecordedEvent, Store};

/// How often an idle runner looks at its stop flag.
const STOP_POLL: Duration = Duration::from_millis(20);

/// A read model built from events.
pub trait Projection: Send + 'static {
    /// The events it reads.
    type Event: DomainEvent;

    /// Which events of `$all` it is given (typically [`Filter::category`] of an aggregate
    /// type). Every selected event must decode as [`Self::Event`](Projection::Event).
    fn filter(&self) -> Filter;

    /// Updates the read model with `event`, recorded as `recorded` (its stream, version and
    /// position). An error stops the runner at this event, unacknowledged.
    fn handle(&mut self, event: Self::Event, recorded: &RecordedEvent) -> Result<(), String>;

    /// Empties the read model, before a rebuild from the first event.
    fn reset(&mut self);
}

struct Shared<P> {
    projection: Mutex<P>,
    progress: Mutex<Progress>,
    moved: Condvar,
    stop: AtomicBool,
}

#[derive(Default)]
struct Progress {
    /// Every position below it was handled or not selected by the filter.
    next: u64,
    /// The runner stopped on this (position, reason).
    failed: Option<(u64, String)>,
    /// The runner thread has ended.
    ended: bool,
}

/// A projection kept up to date by its own thread. Dropping it stops it.
///
/// The runner keeps its store open for as long as its thread runs: it holds a handle of its
/// own, so dropping every other [`Store`] handle neither closes the store under it nor frees
/// the directory for another open. The store closes (if no other handle is left) when the
/// runner is stopped or dropped, after the runner has written its checkpoint, or when the
/// runner ends on its own after a failure.
pub struct ProjectionRunner<P: Projection> {
    name: String,
    shared: Arc<Shared<P>>,
    thread: Option<JoinHandle<()>>,
}

impl<P: Projection> ProjectionRunner<P> {
    /// Starts `projection` on the persistent subscription `name` (resuming at its checkpoint,
    /// or from the first event), decoding without upcasters.
    pub fn start(store: &Store, name: &str, projection: P) -> Result<Self, Error> {
        Self::start_with_codec(store, name, projection, Codec::new())
    }

    /// [`start`](Self::start), decoding events with `codec`.
    pub fn start_with_codec(
        store: &Store,
        name: &str,
        projection: P,
        codec: Codec<P::Event>,
    ) -> Result<Self, Error> {
        let sub = store.subscribe_persistent(name, projection.filter(), Self::options())?;
        let progress = Progress { next: sub.checkpoint().get(), ..Progress::default() };
        let shared = Arc::new(Shared {
            projection: Mutex::new(projection),
            progress: Mutex::new(progress),
            moved: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let worker = Arc::clone(&shared);
        // The thread's own handle keeps the store open until its checkpoint is written.
        let open = store.clone();
        let thread = std::thread::Builder::new()
            .name(format!("annal-projection-{name}"))
            .spawn(move || {
                run(&worker, sub, &codec);
                drop(open);
            })
            .map_err(crate::Error::io("spawn projection thread", store.dir()))?;
        Ok(ProjectionRunner { name: name.to_owned(), shared, thread: Some(thread) })
    }

    /// Forgets the checkpoint of `name`, resets `projection` and starts it from the first
    /// event. The subscription must not be held (stop its runner first).
    pub fn rebuild(
        store: &Store,
        name: &str,
        mut projection: P,
        codec: Codec<P::Event>,
    ) -> Result<Self, Error> {
        store.delete_subscription(name)?;
        projection.reset();
        Self::start_with_codec(store, name, projection, codec)
    }

    fn options() -> PersistentOptions {
        PersistentOptions { start: Position::START, ..PersistentOptions::default() }
    }

    /// Waits until every event at or below `position` has been handled (or was not selected),
    /// at most `timeout`: whether it has. An error if the runner failed first.
    pub fn wait_for(&self, position: Position, timeout: Duration) -> Result<bool, Error> {
        let deadline = Instant::now() + timeout;
        let mut progress = lock(&self.shared.progress);
        loop {
            if progress.next > position.get() {
                return Ok(true);
            }
            if let Some((position, reason)) = &progress.failed {
                let (name, position, reason) = (self.name.clone(), *position, reason.clone());
                return Err(Error::Projection { name, position, reason });
            }
            let now = Instant::now();
            if progress.ended || now >= deadline {
                return Ok(false);
            }
            progress = self.shared.moved.wait_timeout(progress, deadline - now).expect("lock").0;
        }
    }

    /// Every position below this one was handled or not selected.
    pub fn processed(&self) -> Position {
        Position(lock(&self.shared.progress).next)
    }

    /// Calls `f` with the read model (the runner waits meanwhile).
    pub fn read<R>(&self, f: impl FnOnce(&P) -> R) -> R {
        f(&lock(&self.shared.projection))
    }

    /// Stops the runner (after the event in hand), writes the checkpoint, and gives back the
    /// projection, with the error the runner stopped on, if any.
    pub fn stop(mut self) -> (P, Result<(), Error>) {
        self.halt();
        let (name, shared) = (std::mem::take(&mut self.name), Arc::clone(&self.shared));
        drop(self);
        let shared = Arc::try_unwrap(shared).ok().expect("the runner thread has ended");
        let progress = shared.progress.into_inner().unwrap_or_else(|e| e.into_inner());
        let projection = shared.projection.into_inner().unwrap_or_else(|e| e.into_inner());
        let result = match progress.failed {
            None => Ok(()),
            Some((position, reason)) => Err(Error::Projection { name, position, reason }),
        };
        (projection, result)
    }

    fn halt(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl<P: Projection> Drop for ProjectionRunner<P> {
    fn drop(&mut self) {
        self.halt();
    }
}

impl<P: Projection> std::fmt::Debug for ProjectionRunner<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProjectionRunner")
            .field("name", &self.name)
            .field("processed", &self.processed())
            .finish()
    }
}

/// The runner thread: receive, decode, handle, acknowledge, publish progress; until stopped,
/// failed or the store closes. The checkpoint is written on the way out.
fn run<P: Projection>(
    shared: &Shared<P>,
    mut sub: PersistentSubscription,
    codec: &Codec<P::Event>,
) {
    let _ended = EndsOnPanic(shared);
    let mut failed = None;
    while !shared.stop.load(Ordering::Acquire) {
        match sub.recv_timeout(STOP_POLL) {
            Ok(None) => {}
            Ok(Some(recorded)) => {
                let position = recorded.position();
                let handled = codec
                    .decode(&recorded)
                    .map_err(|e| e.to_string())
                    .and_then(|event| lock(&shared.projection).handle(event, &recorded))
                    .and_then(|()| sub.ack(position).map_err(|e| e.to_string()));
                if let Err(reason) = handled {
                    failed = Some((position.get(), reason));
                    break;
                }
            }
            Err(crate::Error::Closed) => break,
            Err(e) => {
                failed = Some((sub.next_position().get(), e.to_string()));
                break;
            }
        }
        publish(shared, |p| p.next = sub.next_position().get());
    }
    if let Err(e) = sub.save_checkpoint()
        && !matches!(e, crate::Error::Closed)
        && failed.is_none()
    {
        failed = Some((sub.checkpoint().get(), e.to_string()));
    }
    publish(shared, |p| {
        p.failed = failed;
        p.ended = true;
    });
}

fn publish<P>(shared: &Shared<P>, update: impl FnOnce(&mut Progress)) {
    update(&mut lock(&shared.progress));
    shared.moved.notify_all();
}

/// Marks the runner failed and ended if the projection panics, so that no one waits for it in
/// vain; the event it panicked on stays unacknowledged.
struct EndsOnPanic<'a, P>(&'a Shared<P>);

impl<P> Drop for EndsOnPanic<'_, P> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            publish(self.0, |p| {
                p.failed.get_or_insert((p.next, "the projection panicked".to_owned()));
                p.ended = true;
            });
        }
    }
}
