//! Subscriptions as [`futures_core::Stream`]s: the same cursor as the blocking ones, with a
//! [`Waker`] left in the store's [`Notifier`](super::Notifier) in place of a sleeping thread.
//!
//! A poll reads on from the cursor up to the head; once caught up it registers its waker, looks
//! at the head again (a publish between the read and the registration is then seen, see
//! `Notifier::wake`), and returns `Pending`. The next publish, poison or close wakes it once,
//! through the notifier's helper thread, never the writer's. Nothing is buffered and nothing is
//! spawned, so a stream that is never polled again costs the store one map entry until it is
//! dropped, and a dropped one costs nothing: its drop removes its entry.

use std::{
    pin::Pin,
    task::{Context, Poll},
    time::Instant,
};

use futures_core::{FusedStream, Stream};

use crate::{
    error::{Error, Result},
    read::RecordedEvent,
    types::Position,
};

use super::{Acker, PersistentSubscription, Subscription, cursor::Poll as Step};

/// A [`Subscription`] as an async [`Stream`] of events: the same events in the same order,
/// with no thread per subscriber. Get one with [`Subscription::into_stream`].
///
/// It ends (`None`) once the store is closed and every committed event was delivered; an error
/// is yielded once, then it ends. Dropping it mid-way is always safe: it owns no event that
/// was taken from the log and not yet returned, and its waker registration goes with it.
///
/// ```
/// use std::{future::poll_fn, pin::Pin};
/// use annal::{ExpectedVersion, Filter, NewEvent, Position, Store};
/// use futures_core::Stream;
///
/// let dir = tempfile::tempdir()?;
/// let store = Store::open(dir.path())?;
/// let mut events = store.subscribe_to_all(Position::START, Filter::all()).into_stream();
/// let rt = tokio::runtime::Builder::new_current_thread().build()?;
/// let task = rt.spawn(async move {
///     // `StreamExt::next` from `futures` does the same.
///     let event = poll_fn(|cx| Pin::new(&mut events).poll_next(cx)).await;
///     event.expect("not closed").map(|e| e.event_type().to_owned())
/// });
/// store.append("order-1", ExpectedVersion::Any, [NewEvent::new("OrderPlaced", vec![])])?;
/// assert_eq!(rt.block_on(task)??, "OrderPlaced");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SubscriptionStream {
    sub: Subscription,
    /// The key of this stream's waker in the notifier.
    id: u64,
}

/// A [`PersistentSubscription`] as an async [`Stream`]: acknowledge with
/// [`ack`](Self::ack) between polls or through an [`Acker`]. Get one with
/// [`PersistentSubscription::into_stream`].
///
/// Checkpoints are written as by the blocking subscription, on acknowledgements, on drop and
/// when the store closes, except that a time-triggered write falls due only when the stream is
/// polled or an event acknowledged: a runtime-agnostic stream has no timer. A checkpoint
/// write is a small file write (and an fsync under [`Durability::Fsync`](crate::Durability)),
/// done on the polling or acknowledging task.
pub struct PersistentStream {
    sub: PersistentSubscription,
    id: u64,
}

impl Subscription {
    /// This subscription as an async [`Stream`], from where it stands.
    pub fn into_stream(self) -> SubscriptionStream {
        let id = self.shared.notifier().new_waiter_id();
        SubscriptionStream { sub: self, id }
    }

    /// Polls for the next event: the body of [`SubscriptionStream::poll_next`], with `id`'s
    /// waker registered while it waits.
    fn poll_event(&mut self, id: u64, cx: &mut Context<'_>) -> Poll<Option<Result<RecordedEvent>>> {
        if self.fused {
            return Poll::Ready(None);
        }
        loop {
            match self.cursor.poll(&self.shared) {
                Ok(Step::Event(event)) => return Poll::Ready(Some(Ok(event))),
                Ok(Step::Scanned) => {
                    // A long run of filtered-out events: let the executor run others first.
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                Ok(Step::CaughtUp) => {}
                Err(e) => return self.end(Some(e)),
            }
            let (shared, seen, stream) =
                (&self.shared, self.cursor.seen(), self.cursor.stream_name());
            let notifier = shared.notifier();
            notifier.register(shared, id, stream, cx.waker());
            // Looked at after registering: a publish since the read either shows here or finds
            // the waker registered.
            let ready = shared.head() > seen;
            if ready || shared.poisoned().is_some() || notifier.is_closed() {
                notifier.deregister(id, stream);
            }
            if ready {
                continue;
            }
            if let Some(poisoned) = shared.poisoned() {
                return self.end(Some(poisoned));
            }
            if notifier.is_closed() {
                return self.end(None);
            }
            return Poll::Pending;
        }
    }

    fn end(&mut self, error: Option<Error>) -> Poll<Option<Result<RecordedEvent>>> {
        self.fused = true;
        Poll::Ready(error.map(Err))
    }
}

impl SubscriptionStream {
    /// For a `$all` subscription, the next position it reads (see
    /// [`Subscription::next_position`]).
    pub fn next_position(&self) -> Option<Position> {
        self.sub.next_position()
    }

    /// How far behind the log it is (see [`Subscription::lag`]).
    pub fn lag(&self) -> u64 {
        self.sub.lag()
    }
}

impl Stream for SubscriptionStream {
    type Item = Result<RecordedEvent>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        this.sub.poll_event(this.id, cx)
    }
}

impl FusedStream for SubscriptionStream {
    fn is_terminated(&self) -> bool {
        self.sub.fused
    }
}

impl Drop for SubscriptionStream {
    fn drop(&mut self) {
        self.sub.shared.notifier().deregister(self.id, self.sub.cursor.stream_name());
    }
}

impl std::fmt::Debug for SubscriptionStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubscriptionStream").field("subscription", &self.sub).finish()
    }
}

impl PersistentSubscription {
    /// This persistent subscription as an async [`Stream`], from where it stands.
    pub fn into_stream(self) -> PersistentStream {
        let id = self.acks.shared.notifier().new_waiter_id();
        PersistentStream { sub: self, id }
    }
}

impl PersistentStream {
    /// Marks the event at `position` processed (see [`PersistentSubscription::ack`]).
    pub fn ack(&self, position: Position) -> Result<()> {
        self.sub.ack(position)
    }

    /// A handle to acknowledge from other tasks or threads.
    pub fn acker(&self) -> Acker {
        self.sub.acker()
    }

    /// The subscription's name.
    pub fn name(&self) -> &str {
        self.sub.name()
    }

    /// The checkpoint as of now (see [`PersistentSubscription::checkpoint`]).
    pub fn checkpoint(&self) -> Position {
        self.sub.checkpoint()
    }

    /// The last checkpoint written to disk.
    pub fn saved_checkpoint(&self) -> Position {
        self.sub.saved_checkpoint()
    }

    /// Writes the checkpoint now, if it moved (see
    /// [`PersistentSubscription::save_checkpoint`]).
    pub fn save_checkpoint(&self) -> Result<()> {
        self.sub.save_checkpoint()
    }

    /// Delivered events not yet covered by the checkpoint.
    pub fn in_flight(&self) -> usize {
        self.sub.in_flight()
    }

    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<RecordedEvent>>> {
        let sub = &mut self.sub;
        if sub.sub.fused {
            return Poll::Ready(None);
        }
        if sub.acks.save_due_at().is_some_and(|at| Instant::now() >= at)
            && let Err(e) = sub.acks.save(false)
        {
            return sub.sub.end(Some(e));
        }
        match sub.acks.poll_room(cx.waker()) {
            Ok(true) => {}
            Ok(false) => return Poll::Pending,
            Err(e) => return sub.sub.end(Some(e)),
        }
        let polled = sub.sub.poll_event(self.id, cx);
        let delivered = match &polled {
            Poll::Ready(Some(Ok(event))) => Some(event.position().get()),
            _ => None,
        };
        sub.acks.record(sub.next_position().get(), delivered);
        polled
    }
}

impl Stream for PersistentStream {
    type Item = Result<RecordedEvent>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_event(cx)
    }
}

impl FusedStream for PersistentStream {
    fn is_terminated(&self) -> bool {
        self.sub.sub.fused
    }
}

impl Drop for PersistentStream {
    fn drop(&mut self) {
        self.sub.acks.shared.notifier().deregister(self.id, None);
        self.sub.acks.forget_room_waker();
    }
}

impl std::fmt::Debug for PersistentStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PersistentStream").field("subscription", &self.sub).finish()
    }
}
