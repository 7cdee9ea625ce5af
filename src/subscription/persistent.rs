//! Named, durable subscriptions to `$all`: the consumer acknowledges what it has processed, and
//! a restart resumes from the highest position below which everything was acknowledged (or
//! filtered out). Delivery is at least once: an event is redelivered after a restart unless the
//! checkpoint had passed it, and the checkpoint never passes an unacknowledged event.

use std::{
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use crate::{
    error::{Error, Result},
    options::Durability,
    read::RecordedEvent,
    shared::Shared,
    types::Position,
};

use super::{Filter, Subscription, acks::AckState, checkpoint};

/// How a persistent subscription starts, checkpoints and limits what is in flight.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PersistentOptions {
    /// Where a subscription without a checkpoint starts: [`Position::START`], a position at or
    /// below the head, or [`Position::END`] (the head when it is first created). Ignored once a
    /// checkpoint exists. Default: the start.
    pub start: Position,
    /// Write the checkpoint after this many acknowledgements. Default: 100.
    pub checkpoint_every_acks: u32,
    /// ... or once this long has passed since the last write, when the checkpoint has moved
    /// (checked on every acknowledgement and while waiting for events). Default: 1 s.
    pub checkpoint_interval: Duration,
    /// Delivered events not yet covered by the checkpoint (unacknowledged, or acknowledged but
    /// behind an unacknowledged one) allowed at once; receiving waits for acknowledgements
    /// beyond that. It bounds the memory a subscription uses. Default: 10,000.
    pub max_in_flight: u32,
}

impl Default for PersistentOptions {
    fn default() -> Self {
        PersistentOptions {
            start: Position::START,
            checkpoint_every_acks: 100,
            checkpoint_interval: Duration::from_secs(1),
            max_in_flight: 10_000,
        }
    }
}

/// A named subscription to `$all` whose progress survives restarts and crashes.
///
/// Acknowledge each event with [`ack`](Self::ack) (or from other threads through an
/// [`Acker`]) once it is processed, in any order. The **checkpoint** is the position below
/// which every event was acknowledged or filtered out; it is written to disk every
/// [`checkpoint_every_acks`](PersistentOptions::checkpoint_every_acks) acknowledgements or
/// [`checkpoint_interval`](PersistentOptions::checkpoint_interval), when the store closes,
/// and when the subscription (with all its ackers) is dropped. After a restart, delivery
/// resumes at the last checkpoint written, so events past it are delivered again: at least
/// once, never skipped.
///
/// Only one holder of a name at a time: a second
/// [`subscribe_persistent`](crate::Store::subscribe_persistent) fails with
/// [`Error::SubscriptionInUse`] until the first one and all its ackers are dropped.
pub struct PersistentSubscription {
    pub(super) sub: Subscription,
    pub(super) acks: Arc<AckState>,
}

/// Acknowledges events of a [`PersistentSubscription`] from any thread. Cloning is cheap.
pub struct Acker {
    acks: Arc<AckState>,
}

impl PersistentSubscription {
    /// The next event, waiting as long as it takes (see [`Subscription::recv`]). Also waits
    /// while [`max_in_flight`](PersistentOptions::max_in_flight) events are unacknowledged,
    /// failing with [`Error::TooManyUnacknowledged`] if no [`Acker`] exists that could help.
    pub fn recv(&mut self) -> Result<RecordedEvent> {
        self.next_until(None).map(|event| event.expect("no deadline"))
    }

    /// The next event, waiting at most `timeout`; `Ok(None)` if none came in time.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Option<RecordedEvent>> {
        self.next_until(Some(Instant::now() + timeout))
    }

    /// The next event if one is committed and the window has room, without waiting.
    pub fn try_recv(&mut self) -> Result<Option<RecordedEvent>> {
        self.next_until(Some(Instant::now()))
    }

    /// Marks the event at `position` processed. Acknowledging below the checkpoint again is
    /// harmless; a position that was not delivered is [`Error::NotDelivered`]. May write the
    /// checkpoint (and return its I/O error; the acknowledgement counts all the same).
    pub fn ack(&self, position: Position) -> Result<()> {
        self.acks.ack(position.get())
    }

    /// A handle to acknowledge from other threads.
    pub fn acker(&self) -> Acker {
        Acker::new(Arc::clone(&self.acks))
    }

    /// The subscription's name.
    pub fn name(&self) -> &str {
        &self.acks.name
    }

    /// The checkpoint as of now: every event below it was acknowledged or filtered out.
    pub fn checkpoint(&self) -> Position {
        Position(self.acks.checkpoint())
    }

    /// The last checkpoint written to disk: where a restart would resume now.
    pub fn saved_checkpoint(&self) -> Position {
        Position(self.acks.saved.load(Ordering::Acquire))
    }

    /// Writes the checkpoint now, if it moved. [`Error::Closed`] after the store closed.
    pub fn save_checkpoint(&self) -> Result<()> {
        self.acks.save(true)
    }

    /// Events committed at or above the checkpoint: the head minus the checkpoint.
    pub fn lag(&self) -> u64 {
        self.acks.shared.head().saturating_sub(self.checkpoint().get())
    }

    /// The next position the subscription reads.
    pub fn next_position(&self) -> Position {
        self.sub.next_position().expect("a $all subscription")
    }

    /// Delivered events not yet covered by the checkpoint (acknowledged or not).
    pub fn in_flight(&self) -> usize {
        self.acks.in_flight()
    }

    fn next_until(&mut self, deadline: Option<Instant>) -> Result<Option<RecordedEvent>> {
        let mut polled = false;
        loop {
            // Time-triggered writes happen here, before an event is taken from the log, so
            // that an I/O error never costs the caller an event it would then not acknowledge;
            // and also once more after the last poll, before giving up at the deadline.
            let save_at = self.acks.save_due_at();
            if save_at.is_some_and(|at| Instant::now() >= at) {
                self.acks.save(false)?;
                continue;
            }
            if polled && deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(None);
            }
            if !self.acks.wait_for_room(deadline)? {
                return Ok(None);
            }
            let until = match (deadline, save_at) {
                (Some(d), Some(s)) => Some(d.min(s)),
                (d, s) => d.or(s),
            };
            let result = self.sub.next_until(until);
            polled = true;
            let delivered =
                result.as_ref().ok().and_then(|e| e.as_ref()).map(|e| e.position().get());
            self.acks.record(self.next_position().get(), delivered);
            match result {
                Ok(None) => continue,
                other => return other,
            }
        }
    }
}

impl Iterator for PersistentSubscription {
    type Item = Result<RecordedEvent>;

    /// [`recv`](PersistentSubscription::recv) until the store is closed and everything was
    /// delivered (`None`); an error is yielded once, then the iterator ends.
    fn next(&mut self) -> Option<Self::Item> {
        if self.sub.fused {
            return None;
        }
        match self.recv() {
            Ok(event) => Some(Ok(event)),
            Err(e) => {
                self.sub.fused = true;
                (!matches!(e, Error::Closed)).then_some(Err(e))
            }
        }
    }
}

impl std::fmt::Debug for PersistentSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PersistentSubscription")
            .field("name", &self.name())
            .field("next_position", &self.next_position())
            .field("checkpoint", &self.checkpoint())
            .field("saved_checkpoint", &self.saved_checkpoint())
            .finish()
    }
}

impl Acker {
    fn new(acks: Arc<AckState>) -> Acker {
        acks.acker_added();
        Acker { acks }
    }

    /// Marks the event at `position` processed: see [`PersistentSubscription::ack`].
    pub fn ack(&self, position: Position) -> Result<()> {
        self.acks.ack(position.get())
    }
}

impl Clone for Acker {
    fn clone(&self) -> Self {
        Acker::new(Arc::clone(&self.acks))
    }
}

impl Drop for Acker {
    fn drop(&mut self) {
        self.acks.acker_dropped();
    }
}

impl std::fmt::Debug for Acker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acker").field("name", &self.acks.name).finish()
    }
}

/// Opens (creating if needed) the persistent subscription `name`.
pub(crate) fn subscribe_persistent(
    shared: &Arc<Shared>,
    name: &str,
    filter: Filter,
    options: PersistentOptions,
) -> Result<PersistentSubscription> {
    checkpoint::validate_name(name)?;
    if options.checkpoint_every_acks == 0 || options.max_in_flight == 0 {
        let msg = "checkpoint_every_acks and max_in_flight must be positive";
        return Err(Error::InvalidOptions(msg.to_owned()));
    }
    let mut held = shared.subscriptions().lock();
    if held.closed {
        return Err(Error::Closed);
    }
    if held.names.contains_key(name) {
        return Err(Error::SubscriptionInUse { name: name.to_owned() });
    }
    let storage = &*shared.options().storage;
    let sync = shared.options().durability == Durability::Fsync;
    checkpoint::ensure_dir(storage, shared.dir(), sync)?;
    let head = shared.head();
    let saved = checkpoint::read(storage, shared.dir(), name)?;
    let start = match (saved, options.start) {
        (Some(p), _) if p > head => {
            let reason = "it is ahead of the log's head (events acknowledged under \
                          Durability::None were lost?)";
            return Err(Error::BadCheckpoint { name: name.to_owned(), reason });
        }
        (Some(p), _) => p,
        (None, Position::END) => head,
        (None, p) if p.get() > head => {
            return Err(Error::InvalidOptions("persistent start is past the head".to_owned()));
        }
        (None, p) => p.get(),
    };
    if saved.is_none() {
        // Written at once, so that a start at the head is pinned to the head of today.
        checkpoint::write(storage, shared.dir(), name, start, sync)?;
    }
    let acks = Arc::new(AckState::new(name, Arc::clone(shared), &options, start));
    held.names.insert(name.to_owned(), Arc::downgrade(&acks));
    drop(held);
    let sub = Subscription::to_all(Arc::clone(shared), Position(start), filter);
    Ok(PersistentSubscription { sub, acks })
}
