//! One consumer's Read call: the library's [`GroupConsumer`] behind a bidirectional stream.
//!
//! A blocking thread receives the events the group hands this consumer and queues them for the
//! client; the call's task applies the client's acks and nacks as they arrive (the consumer is
//! `Sync`, so both work on it at once). The library's group reads `$all`; events a group does
//! not deliver (another stream's, a revision below a stream group's start, or one its `$all`
//! filter rejects) are acknowledged here without being sent, so the checkpoint passes them.
//! When the call ends, the consumer is dropped and the library hands what it held to the
//! group's other consumers.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use annal::{Filter, GroupConsumer, NackAction, RecordedEvent};
use tokio::sync::{mpsc, watch};
use tonic::{Code, Status, Streaming};

use super::{
    definition::{Definition, FilterSpec, Source},
    groups::Registration,
};
use crate::{
    errors::{from_store, protocol_error},
    filter::EventFilter,
    proto::{
        persistent::{
            ReadReq, ReadResp,
            read_req::{self, nack::Action},
            read_resp::{self, read_event},
        },
        streams::read_req::options::{FilterOptions, filter_options},
    },
    recorded, wire,
};

/// How long the delivering thread waits for an event before it looks whether to stop.
const POLL: Duration = Duration::from_millis(100);
/// How long it waits for room in a full reply queue before it looks again.
const FULL_WAIT: Duration = Duration::from_millis(10);

/// Compiles an `$all` group's filter.
pub fn compile(spec: &FilterSpec) -> Result<EventFilter, Status> {
    let expression =
        filter_options::Expression { regex: spec.regex.clone(), prefix: spec.prefixes.clone() };
    let filter = if spec.on_stream {
        filter_options::Filter::StreamIdentifier(expression)
    } else {
        filter_options::Filter::EventType(expression)
    };
    let options = FilterOptions {
        filter: Some(filter),
        window: Some(filter_options::Window::Count(crate::proto::shared::Empty {})),
        checkpoint_interval_multiplier: 1,
    };
    EventFilter::from_options(&options)?
        .ok_or_else(|| Status::invalid_argument("the filter names neither streams nor types"))
}

/// Which of the events the library's group reads this group delivers.
pub struct Pick {
    source: Source,
    min_revision: u64,
    filter: Option<EventFilter>,
}

impl Pick {
    /// The pick of `d`, and the library filter that narrows what its group reads.
    pub fn new(d: &Definition) -> Result<(Pick, Filter), Status> {
        let filter = d.filter.as_ref().map(compile).transpose()?;
        let library = match &d.source {
            Source::Stream(s) => Filter::all().stream_prefix(s.clone()),
            Source::All => Filter::all(),
        };
        let pick = Pick { source: d.source.clone(), min_revision: d.min_revision, filter };
        Ok((pick, library))
    }

    /// Whether `event` goes to the consumer.
    pub fn wants(&self, event: &RecordedEvent) -> bool {
        match &self.source {
            Source::Stream(s) => event.stream() == s && event.version().get() >= self.min_revision,
            Source::All => {
                self.filter.as_ref().is_none_or(|f| f.matches(event.stream(), event.event_type()))
            }
        }
    }
}

/// `persistent-subscription-dropped`: the group was updated or deleted.
fn dropped(d: &Definition) -> Status {
    protocol_error(
        Code::Cancelled,
        format!("Subscription group '{}' on '{}' was dropped.", d.group, d.source.name()),
        "persistent-subscription-dropped",
        &[("stream-name", d.source.name().to_owned()), ("group-name", d.group.clone())],
    )
}

type Replies = mpsc::Sender<Result<ReadResp, Status>>;

/// An event as the Read reply carries it.
fn reply(event: &RecordedEvent, retry_count: u32, structured: bool) -> ReadResp {
    let read = recorded::read_event(event, structured);
    let recorded = read.event.map(|e| read_event::RecordedEvent {
        id: e.id,
        stream_identifier: e.stream_identifier,
        stream_revision: e.stream_revision,
        prepare_position: e.prepare_position,
        commit_position: e.commit_position,
        metadata: e.metadata,
        custom_metadata: e.custom_metadata,
        data: e.data,
    });
    let event = read_resp::ReadEvent {
        event: recorded,
        link: None,
        position: Some(read_event::Position::CommitPosition(event.position().get())),
        count: Some(read_event::Count::RetryCount(i32::try_from(retry_count).unwrap_or(i32::MAX))),
    };
    ReadResp { content: Some(read_resp::Content::Event(event)) }
}

/// The confirmation clients wait for: `<stream or $all>::<group>`.
pub fn confirmation(d: &Definition) -> ReadResp {
    let id = format!("{}::{}", d.source.name(), d.group);
    let confirmation = read_resp::SubscriptionConfirmation { subscription_id: id };
    ReadResp { content: Some(read_resp::Content::SubscriptionConfirmation(confirmation)) }
}

/// Receives for the client until `stop`, the client goes, or the store fails. Blocking.
pub fn deliver(
    consumer: Arc<GroupConsumer>,
    pick: Pick,
    structured: bool,
    replies: Replies,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::Acquire) && !replies.is_closed() {
        let delivery = match consumer.recv_timeout(POLL) {
            Ok(Some(delivery)) => delivery,
            Ok(None) => continue,
            Err(e) => {
                let _ = replies.try_send(Err(from_store(e)));
                return;
            }
        };
        if !pick.wants(&delivery.event) {
            if let Err(e) = consumer.ack(delivery.event.position()) {
                let _ = replies.try_send(Err(from_store(e)));
                return;
            }
            continue;
        }
        let mut message = Ok(reply(&delivery.event, delivery.retry_count, structured));
        loop {
            match replies.try_send(message) {
                Ok(()) => break,
                Err(mpsc::error::TrySendError::Closed(_)) => return,
                Err(mpsc::error::TrySendError::Full(back)) => {
                    if stop.load(Ordering::Acquire) {
                        return;
                    }
                    message = back;
                    std::thread::sleep(FULL_WAIT);
                }
            }
        }
    }
}

/// What the call's task does with one client message; `false` ends the call.
async fn apply(
    consumer: &Arc<GroupConsumer>,
    request: ReadReq,
    stop: &AtomicBool,
) -> Result<bool, Status> {
    let (ids, action) = match request.content {
        Some(read_req::Content::Ack(ack)) => (ack.ids, None),
        Some(read_req::Content::Nack(nack)) => {
            let action = Action::try_from(nack.action).unwrap_or(Action::Unknown);
            (nack.ids, Some(action))
        }
        Some(read_req::Content::Stop(_)) => {
            stop.store(true, Ordering::Release);
            return Ok(true);
        }
        Some(read_req::Content::Options(_)) | None => {
            return Err(Status::invalid_argument("only the first message carries options"));
        }
    };
    let ids = ids.iter().map(|id| wire::event_id(Some(id))).collect::<Result<Vec<_>, _>>()?;
    let consumer = Arc::clone(consumer);
    let library_action = match action {
        None => None,
        Some(Action::Park) => Some(NackAction::Park),
        Some(Action::Skip) => Some(NackAction::Skip),
        // Stop hands the events back for another consumer and ends this one's call; an
        // unknown action is a retry, as the reference server takes it.
        Some(Action::Retry | Action::Unknown | Action::Stop) => Some(NackAction::Retry),
    };
    tokio::task::spawn_blocking(move || {
        for id in ids.into_iter().flatten() {
            let done = match library_action {
                None => consumer.ack_id(id),
                Some(a) => consumer.nack_id(id, a),
            };
            match done {
                // An id this consumer does not hold (acknowledged twice, or never
                // delivered to it) changes nothing, as with the reference server.
                Ok(()) | Err(annal::Error::NotDelivered { .. }) => {}
                Err(e) => return Err(from_store(e)),
            }
        }
        Ok(())
    })
    .await
    .map_err(crate::errors::task_failed)??;
    Ok(action != Some(Action::Stop))
}

/// Applies the client's messages until it goes, asks to stop, the group is dropped or the
/// server shuts down; then stops the delivering thread.
pub async fn serve(
    consumer: Arc<GroupConsumer>,
    mut requests: Streaming<ReadReq>,
    mut registration: Registration,
    mut shutdown: watch::Receiver<bool>,
    replies: Replies,
    stop: Arc<AtomicBool>,
) {
    loop {
        let message = tokio::select! {
            m = requests.message() => m,
            _ = registration.dropped.wait_for(|d| *d) => {
                let _ = replies.try_send(Err(dropped(&registration.definition)));
                break;
            }
            _ = shutdown.wait_for(|d| *d) => break,
            () = replies.closed() => break,
        };
        let Ok(Some(request)) = message else { break };
        match apply(&consumer, request, &stop).await {
            Ok(true) => {}
            Ok(false) => break,
            Err(status) => {
                let _ = replies.try_send(Err(status));
                break;
            }
        }
    }
    stop.store(true, Ordering::Release);
    drop(registration);
}
