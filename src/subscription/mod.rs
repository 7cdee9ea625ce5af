//! Subscriptions: history from the log, then live events as they commit, through one loop.
//!
//! A subscription never receives events pushed by the writer. It owns a cursor (the next
//! position of `$all`, or the next version of a stream) and reads the committed log from it up
//! to the head with the ordinary readers; when it has caught up it sleeps on the store's
//! [`Notifier`] until the head moves. The writer's wake-up is only a hint to look again, so
//! catch-up and live delivery are the same code, there is no switch between them to get wrong,
//! and a slow subscriber costs the writer nothing: it is simply further behind in the log.
//!
//! - `cursor` — the place in the log and the reads that advance it;
//! - `notify` — how the writer wakes subscribers;
//! - `wakers` — the wakers of async subscribers waiting for the head;
//! - `stream` — subscriptions as async streams, on the same cursor;
//! - `filter` — which events of `$all` are delivered;
//! - `persistent` — named subscriptions that acknowledge and resume from a checkpoint;
//! - `group` — competing consumers sharing one persistent subscription;
//! - `acks` — their acknowledgements, the contiguous checkpoint and the in-flight window;
//! - `registry` — which names are held in an open store, and lookups by name;
//! - `checkpoint` — the checkpoint file and its crash-safe replacement.

mod acks;
mod checkpoint;
mod cursor;
mod filter;
mod group;
mod notify;
mod persistent;
mod registry;
mod stream;
mod wakers;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

pub use filter::{Filter, category_of};
pub use group::{ConsumerStrategy, Delivery, GroupConsumer, GroupInfo, GroupSettings, NackAction};
pub(crate) use group::{connect_to_group, group_info, list_groups, replay_parked};
pub(crate) use notify::Notifier;
pub(crate) use persistent::subscribe_persistent;
pub use persistent::{Acker, PersistentOptions, PersistentSubscription};
pub(crate) use registry::{Registry, delete, lag_of, saved_checkpoint};
pub use stream::{PersistentStream, SubscriptionStream};

use crate::{
    error::{Error, Result},
    read::RecordedEvent,
    shared::Shared,
    types::{Position, StreamVersion},
    writer::validate_readable_stream_name,
};

use cursor::{Cursor, Poll};
use notify::Wake;

/// A live view of `$all` or of one stream: every event from its starting point on, in log order,
/// each exactly once, first the history and then new events as they commit. Only durable events
/// are delivered (the same ones a read sees).
///
/// Get one from [`Store::subscribe_to_all`](crate::Store::subscribe_to_all) or
/// [`Store::subscribe_to_stream`](crate::Store::subscribe_to_stream). It ends, once it has
/// delivered every committed event, when the store is closed (or was opened read-only):
/// [`recv`](Subscription::recv) then returns [`Error::Closed`] and the iterator `None`. Dropping
/// it ends it too; it holds nothing the store needs back.
///
/// A subscription buffers nothing: it reads the events from the mapped segments when asked.
/// However far behind it falls, its memory stays the same and the writer never waits for it.
pub struct Subscription {
    shared: Arc<Shared>,
    cursor: Cursor,
    /// The iterator has yielded an error and ends.
    fused: bool,
}

impl Subscription {
    /// A subscription to `$all` from position `from` ([`Position::END`]: the current head).
    pub(crate) fn to_all(shared: Arc<Shared>, from: Position, filter: Filter) -> Subscription {
        let next = if from == Position::END { shared.head() } else { from.get() };
        Subscription { shared, cursor: Cursor::all(next, filter), fused: false }
    }

    /// A subscription to `stream` from version `from` ([`StreamVersion::END`]: after its last
    /// event now).
    pub(crate) fn to_stream(
        shared: Arc<Shared>,
        stream: &str,
        from: StreamVersion,
    ) -> Result<Subscription> {
        validate_readable_stream_name(stream)?;
        let next = match from {
            StreamVersion::END => shared.streams().last_version(stream).map_or(0, |v| v + 1),
            from => from.get(),
        };
        let cursor = Cursor::stream(stream.to_owned(), next);
        Ok(Subscription { shared, cursor, fused: false })
    }

    /// The next event, waiting as long as it takes. [`Error::Closed`] once the store is closed
    /// and every committed event has been delivered; [`Error::Poisoned`] likewise once the store
    /// is poisoned (nothing more can commit).
    pub fn recv(&mut self) -> Result<RecordedEvent> {
        self.next_until(None).map(|event| event.expect("no deadline"))
    }

    /// The next event, waiting at most `timeout`; `Ok(None)` if none committed in time.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Option<RecordedEvent>> {
        self.next_until(Some(Instant::now() + timeout))
    }

    /// The next event if one is committed, without waiting; `Ok(None)` if there is none yet.
    /// With a filter it looks at a bounded number of events per call, so `Ok(None)` can also
    /// mean "none among those": [`next_position`](Self::next_position) has moved on all the same.
    pub fn try_recv(&mut self) -> Result<Option<RecordedEvent>> {
        // An event waiting in the log needs no clock.
        match self.cursor.poll(&self.shared)? {
            Poll::Event(event) => Ok(Some(event)),
            Poll::Scanned => Ok(None),
            Poll::CaughtUp => self.next_until(Some(Instant::now())),
        }
    }

    /// For a `$all` subscription, the next position it reads: every position below it has been
    /// delivered or filtered out. `None` for a stream subscription.
    pub fn next_position(&self) -> Option<Position> {
        match &self.cursor {
            Cursor::All(c) => Some(Position(c.next)),
            Cursor::Stream(_) => None,
        }
    }

    /// For a stream subscription, the next version it delivers. `None` for `$all`.
    pub fn next_version(&self) -> Option<StreamVersion> {
        match &self.cursor {
            Cursor::All(_) => None,
            Cursor::Stream(c) => Some(StreamVersion(c.next)),
        }
    }

    /// How far behind the log it is: for `$all`, the head minus [`next_position`](Self::next_position)
    /// (filtered-out events included); for a stream, the stream's versions not yet delivered.
    pub fn lag(&self) -> u64 {
        self.cursor.lag(&self.shared)
    }

    /// The next event, waiting until `deadline` (`None`: forever); `Ok(None)` at the deadline.
    pub(crate) fn next_until(
        &mut self,
        deadline: Option<Instant>,
    ) -> Result<Option<RecordedEvent>> {
        loop {
            match self.cursor.poll(&self.shared)? {
                Poll::Event(event) => return Ok(Some(event)),
                Poll::Scanned if deadline.is_some_and(|d| Instant::now() >= d) => return Ok(None),
                Poll::Scanned => continue,
                Poll::CaughtUp => {}
            }
            let shared = &self.shared;
            let seen = self.cursor.seen();
            let ready = || shared.head() > seen || shared.poisoned().is_some();
            match shared.notifier().wait(ready, deadline) {
                Wake::Ready if shared.head() > seen => {}
                Wake::Ready => return Err(shared.poisoned().expect("woken by poison")),
                // The head is final once the store is closed; one more poll reads up to it.
                Wake::Closed if shared.head() > seen => {}
                Wake::Closed => return Err(Error::Closed),
                Wake::TimedOut => return Ok(None),
            }
        }
    }
}

impl Iterator for Subscription {
    type Item = Result<RecordedEvent>;

    /// [`recv`](Subscription::recv) until the subscription ends: `None` once the store is
    /// closed and everything was delivered, and after the first error.
    fn next(&mut self) -> Option<Self::Item> {
        if self.fused {
            return None;
        }
        match self.recv() {
            Ok(event) => Some(Ok(event)),
            Err(Error::Closed) => {
                self.fused = true;
                None
            }
            Err(e) => {
                self.fused = true;
                Some(Err(e))
            }
        }
    }
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("Subscription");
        match &self.cursor {
            Cursor::All(c) => d.field("position", &c.next).field("filter", &c.filter),
            Cursor::Stream(c) => d.field("stream", &c.stream).field("version", &c.next),
        };
        d.finish()
    }
}
