//! `Streams.Read` as a subscription: a confirmation, the history (catch-up), `caught_up`, then
//! live events as they commit; on a filtered `$all`, checkpoints every so many scanned events
//! and when caught up. A subscription from a revision or position starts *after* it (the
//! protocol's rule: clients resume from the last event they saw).
//!
//! Today each subscriber is a blocking task polling an [`annal::Subscription`] through
//! [`BlockingFeed`]; that type is the seam where the library's async streams will plug in
//! (then no thread per subscriber).

use std::time::Duration;

use annal::{Error, Filter, Position, RecordedEvent, Store, StreamVersion, Subscription};
use tonic::Status;

use crate::{
    errors,
    filter::EventFilter,
    outbox::Stop,
    proto::streams::{
        ReadResp,
        read_resp::{self, CaughtUp, Checkpoint, SubscriptionConfirmation},
    },
    read::{AllFrom, Plan, Replies, Source, StreamFrom},
    recorded, wire,
};

/// How long a live subscriber waits for an event before it looks whether its client is still
/// there and the server still running.
pub const LIVE_POLL: Duration = Duration::from_millis(100);

/// A subscription's source of events: the seam for the library's async subscriptions.
pub struct BlockingFeed(Subscription);

impl BlockingFeed {
    /// The next committed event, if there is one now.
    fn next_now(&mut self) -> annal::Result<Option<RecordedEvent>> {
        self.0.try_recv()
    }

    /// The next event, waiting at most `wait`.
    fn next_within(&mut self, wait: Duration) -> annal::Result<Option<RecordedEvent>> {
        self.0.recv_timeout(wait)
    }
}

/// Opens the store subscription a plan asks for.
fn open(store: &Store, source: &Source) -> Result<BlockingFeed, Status> {
    let subscription = match source {
        Source::Stream(stream, from) => {
            if store.stream_state(stream).tombstoned {
                return Err(errors::stream_deleted(stream));
            }
            let from = match from {
                StreamFrom::Start => StreamVersion::START,
                StreamFrom::End => StreamVersion::END,
                StreamFrom::Revision(r) => StreamVersion(r.saturating_add(1)),
            };
            store.subscribe_to_stream(stream, from).map_err(errors::from_store)?
        }
        Source::All(from) => {
            let from = match from {
                AllFrom::Start => Position::START,
                AllFrom::End => Position::END,
                AllFrom::Position(p) => Position(p.saturating_add(1)),
            };
            // The protocol's filters are richer than the library's (regexes), and checkpoints
            // need every scanned event: the server filters.
            store.subscribe_to_all(from, Filter::all())
        }
    };
    Ok(BlockingFeed(subscription))
}

/// What a subscription has done so far.
struct Progress<'a> {
    filter: Option<&'a EventFilter>,
    structured_ids: bool,
    /// Events scanned since the last checkpoint, and the last one's position.
    scanned: u64,
    last_scanned: Option<u64>,
    /// Last stream revision or `$all` position delivered (for `caught_up`).
    last_delivered: Option<(u64, u64)>,
}

/// Runs a subscription on the calling (blocking) thread until the client leaves, the server
/// shuts down or the store closes.
pub fn run(store: &Store, plan: &Plan, replies: &mut Replies) {
    let outcome = open(store, &plan.source).and_then(|mut feed| {
        let id = uuid::Uuid::new_v4().to_string();
        let confirmation =
            read_resp::Content::Confirmation(SubscriptionConfirmation { subscription_id: id });
        if replies.send(Ok(reply(confirmation))).is_err() {
            return Ok(());
        }
        let mut progress = Progress {
            filter: plan.filter.as_ref(),
            structured_ids: plan.structured_ids,
            scanned: 0,
            last_scanned: None,
            last_delivered: None,
        };
        pump(&mut feed, &mut progress, plan, replies)
    });
    match outcome {
        Ok(()) => {}
        Err(status) => replies.fail(status),
    }
}

fn reply(content: read_resp::Content) -> ReadResp {
    ReadResp { content: Some(content) }
}

/// Catch-up, `caught_up`, then live; returns when the subscription ends.
fn pump(
    feed: &mut BlockingFeed,
    progress: &mut Progress<'_>,
    plan: &Plan,
    replies: &mut Replies,
) -> Result<(), Status> {
    let mut caught_up = false;
    loop {
        if replies.shutting_down() {
            return Err(Status::unavailable("the server is shutting down"));
        }
        if replies.client_gone() {
            return Ok(());
        }
        let next = if caught_up { feed.next_within(LIVE_POLL) } else { feed.next_now() };
        let sent = match next {
            Ok(Some(event)) => progress.deliver(&event, replies),
            Ok(None) if !caught_up => {
                caught_up = true;
                progress.caught_up(plan, replies)
            }
            Ok(None) => Ok(()),
            Err(Error::Closed) => return Err(Status::unavailable("the store is closed")),
            Err(e) => return Err(errors::from_store(e)),
        };
        match sent {
            Ok(()) => {}
            Err(Stop::ClientGone) => return Ok(()),
            Err(Stop::Shutdown) => return Err(Status::unavailable("the server is shutting down")),
        }
    }
}

impl Progress<'_> {
    /// Sends `event` if it passes the filter, and a checkpoint when one is due.
    fn deliver(&mut self, event: &RecordedEvent, replies: &mut Replies) -> Result<(), Stop> {
        let position = event.position().get();
        self.scanned += 1;
        self.last_scanned = Some(position);
        let passes = self.filter.is_none_or(|f| f.matches(event.stream(), event.event_type()));
        if passes {
            let content =
                read_resp::Content::Event(recorded::read_event(event, self.structured_ids));
            replies.send(Ok(reply(content)))?;
            self.last_delivered = Some((event.version().get(), position));
        }
        if let Some(filter) = self.filter
            && self.scanned >= filter.checkpoint_interval
        {
            self.checkpoint(replies)?;
        }
        Ok(())
    }

    /// Sends the checkpoint of the last scanned event, if any was scanned since the last one.
    fn checkpoint(&mut self, replies: &mut Replies) -> Result<(), Stop> {
        let Some(position) = self.last_scanned.filter(|_| self.scanned > 0) else { return Ok(()) };
        self.scanned = 0;
        let checkpoint = Checkpoint {
            commit_position: position,
            prepare_position: position,
            timestamp: Some(wire::now_timestamp()),
        };
        replies.send(Ok(reply(read_resp::Content::Checkpoint(checkpoint))))
    }

    /// Sends `caught_up` (and, on a filtered subscription, a checkpoint first).
    fn caught_up(&mut self, plan: &Plan, replies: &mut Replies) -> Result<(), Stop> {
        if self.filter.is_some() {
            self.checkpoint(replies)?;
        }
        let (stream_revision, position) = match (&plan.source, self.last_delivered) {
            (Source::Stream(..), Some((revision, _))) => (i64::try_from(revision).ok(), None),
            (Source::All(_), _) => {
                let at = self
                    .last_scanned
                    .map(|p| read_resp::Position { commit_position: p, prepare_position: p });
                (None, at)
            }
            (Source::Stream(..), None) => (None, None),
        };
        let caught_up =
            CaughtUp { timestamp: Some(wire::now_timestamp()), stream_revision, position };
        replies.send(Ok(reply(read_resp::Content::CaughtUp(caught_up))))
    }
}
