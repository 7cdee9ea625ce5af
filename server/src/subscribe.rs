//! `Streams.Read` as a subscription: a confirmation, the history (catch-up), `caught_up`, then
//! live events as they commit; on a filtered `$all`, checkpoints every so many scanned events
//! and when caught up. A subscription from a revision or position starts *after* it (the
//! protocol's rule: clients resume from the last event they saw).
//!
//! Each subscriber is an async task over the library's [`SubscriptionStream`], woken by the
//! writer's publish: no thread per subscriber, and a call the client drops ends its task and
//! drops its stream. The stream reads the log from its own position, so a slow client loses
//! nothing: when its reply queue is full while live, it is told `fell_behind`, the task waits
//! for room (reading on from the log, never from a buffer), and `caught_up` follows once it has
//! reached the head again.

use std::{future::poll_fn, pin::Pin, task::Poll};

use annal::{Error, Filter, Position, RecordedEvent, Store, StreamVersion, SubscriptionStream};
use tokio_stream::Stream;
use tonic::Status;

use crate::{
    encoded, errors,
    filter::EventFilter,
    outbox::Stop,
    proto::streams::{
        ReadResp,
        read_resp::{self, CaughtUp, Checkpoint, FellBehind, SubscriptionConfirmation},
    },
    read::{AllFrom, Plan, Source, StreamFrom},
    reply::Reply,
    sink::Sink,
    wire,
};

/// Where a subscription's replies go: events as their encoded bytes (see `encoded`), the rest
/// as messages.
pub type Replies = Sink<Reply>;

/// What the feed has next.
enum Next {
    /// A committed event.
    Event(RecordedEvent),
    /// Nothing committed past the subscription: it has caught up.
    Idle,
    /// The store closed.
    End,
    /// The store failed.
    Failed(Error),
}

/// A subscription's source of events.
struct Feed(SubscriptionStream);

impl Feed {
    /// The next event; or, when `report_idle` and nothing is committed past the subscription,
    /// [`Next::Idle`] at once instead of waiting for the next publish.
    async fn next(&mut self, report_idle: bool) -> Next {
        poll_fn(|cx| match Pin::new(&mut self.0).poll_next(cx) {
            Poll::Ready(Some(Ok(event))) => Poll::Ready(Next::Event(event)),
            Poll::Ready(Some(Err(e))) => Poll::Ready(Next::Failed(e)),
            Poll::Ready(None) => Poll::Ready(Next::End),
            // `Pending` with events left only yields the executor between filtered-out runs.
            Poll::Pending if report_idle && self.0.lag() == 0 => Poll::Ready(Next::Idle),
            Poll::Pending => Poll::Pending,
        })
        .await
    }
}

/// Opens the store subscription a plan asks for.
fn open(store: &Store, source: &Source) -> Result<Feed, Status> {
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
    Ok(Feed(subscription.into_stream()))
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
    /// Caught up and keeping up: `caught_up` was the last of `caught_up`/`fell_behind` sent.
    live: bool,
}

/// Runs a subscription until the client leaves, the server shuts down or the store closes.
pub async fn run(store: &Store, plan: &Plan, replies: &mut Replies) {
    let outcome = match open(store, &plan.source) {
        Ok(mut feed) => {
            let id = uuid::Uuid::new_v4().to_string();
            let confirmation =
                read_resp::Content::Confirmation(SubscriptionConfirmation { subscription_id: id });
            match replies.send(Ok(reply(confirmation))).await {
                Ok(()) => {
                    let mut progress = Progress {
                        filter: plan.filter.as_ref(),
                        structured_ids: plan.structured_ids,
                        scanned: 0,
                        last_scanned: None,
                        last_delivered: None,
                        live: false,
                    };
                    pump(&mut feed, &mut progress, plan, replies).await
                }
                Err(stop) => stopped(stop),
            }
        }
        Err(status) => Err(status),
    };
    if let Err(status) = outcome {
        replies.fail(status);
    }
}

fn reply(content: read_resp::Content) -> Reply {
    Reply::Message(Box::new(ReadResp { content: Some(content) }))
}

/// How a subscription ends when its replies stop: quietly for a client gone, `UNAVAILABLE` on
/// shutdown.
fn stopped(stop: Stop) -> Result<(), Status> {
    match stop {
        Stop::ClientGone => Ok(()),
        Stop::Shutdown => Err(Status::unavailable("the server is shutting down")),
    }
}

/// Catch-up, `caught_up`, then live; returns when the subscription ends.
async fn pump(
    feed: &mut Feed,
    progress: &mut Progress<'_>,
    plan: &Plan,
    replies: &mut Replies,
) -> Result<(), Status> {
    loop {
        let next = tokio::select! {
            biased;
            stop = replies.stopped() => return stopped(stop),
            next = feed.next(!progress.live) => next,
        };
        let sent = match next {
            Next::Event(event) => progress.deliver(&event, plan, replies).await,
            Next::Idle => progress.caught_up(plan, replies).await,
            Next::End => return Err(Status::unavailable("the store is closed")),
            Next::Failed(e) => return Err(errors::from_store(e)),
        };
        if let Err(stop) = sent {
            return stopped(stop);
        }
    }
}

impl Progress<'_> {
    /// Sends `event` if it passes the filter, and a checkpoint when one is due; a live
    /// subscriber whose queue is full is told first that it fell behind.
    async fn deliver(
        &mut self,
        event: &RecordedEvent,
        plan: &Plan,
        replies: &mut Replies,
    ) -> Result<(), Stop> {
        let position = event.position().get();
        self.scanned += 1;
        self.last_scanned = Some(position);
        let passes = self.filter.is_none_or(|f| f.matches(event.stream(), event.event_type()));
        if passes {
            if self.live && replies.is_full() {
                self.fell_behind(plan, replies).await?;
            }
            let mut bytes = Vec::new();
            encoded::event_reply(event, self.structured_ids, &mut bytes);
            replies.send(Ok(Reply::Encoded(bytes.into()))).await?;
            self.last_delivered = Some((event.version().get(), position));
        }
        if let Some(filter) = self.filter
            && self.scanned >= filter.checkpoint_interval
        {
            self.checkpoint(replies).await?;
        }
        Ok(())
    }

    /// Sends the checkpoint of the last scanned event, if any was scanned since the last one.
    async fn checkpoint(&mut self, replies: &mut Replies) -> Result<(), Stop> {
        let Some(position) = self.last_scanned.filter(|_| self.scanned > 0) else { return Ok(()) };
        self.scanned = 0;
        let checkpoint = Checkpoint {
            commit_position: position,
            prepare_position: position,
            timestamp: Some(wire::now_timestamp()),
        };
        replies.send(Ok(reply(read_resp::Content::Checkpoint(checkpoint)))).await
    }

    /// Where the subscription stands, as `caught_up` and `fell_behind` report it: the last
    /// revision delivered of a stream, the last position scanned of `$all`.
    fn standing(&self, plan: &Plan) -> (Option<i64>, Option<read_resp::Position>) {
        match (&plan.source, self.last_delivered) {
            (Source::Stream(..), Some((revision, _))) => (i64::try_from(revision).ok(), None),
            (Source::All(_), _) => {
                let at = self
                    .last_scanned
                    .map(|p| read_resp::Position { commit_position: p, prepare_position: p });
                (None, at)
            }
            (Source::Stream(..), None) => (None, None),
        }
    }

    /// Sends `caught_up` (and, on a filtered subscription, a checkpoint first).
    async fn caught_up(&mut self, plan: &Plan, replies: &mut Replies) -> Result<(), Stop> {
        if self.filter.is_some() {
            self.checkpoint(replies).await?;
        }
        let (stream_revision, position) = self.standing(plan);
        let caught_up =
            CaughtUp { timestamp: Some(wire::now_timestamp()), stream_revision, position };
        replies.send(Ok(reply(read_resp::Content::CaughtUp(caught_up)))).await?;
        self.live = true;
        Ok(())
    }

    /// Sends `fell_behind`: from here the subscription reads on from the log at the client's
    /// pace, and sends `caught_up` again when it reaches the head.
    async fn fell_behind(&mut self, plan: &Plan, replies: &mut Replies) -> Result<(), Stop> {
        self.live = false;
        let (stream_revision, position) = self.standing(plan);
        let behind =
            FellBehind { timestamp: Some(wire::now_timestamp()), stream_revision, position };
        replies.send(Ok(reply(read_resp::Content::FellBehind(behind)))).await
    }
}
