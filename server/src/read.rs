//! `Streams.Read` with a `count`: a stream or `$all`, forwards or backwards, from a revision or
//! position or from the start or end, optionally filtered (`$all`). The events go out as they
//! are read, encoded straight into protobuf bytes (see `encoded`) and gathered into batches of
//! about [`READ_BATCH_BYTES`], through a bounded queue of [`READ_QUEUE_BATCHES`], from a
//! blocking task; a client that goes away stops it.
//!
//! Where a read starts: a stream read from revision `r` includes `r` both ways; a `$all` read
//! forwards from position `p` includes `p`, backwards from `p` returns the events before `p`
//! (as the protocol's reference server does, so a position read forwards can be paged back).

use annal::{Error, Position, RecordedEvent, Store, StreamVersion};
use tonic::Status;

use crate::{
    encoded, errors,
    filter::EventFilter,
    metadata,
    outbox::Outbox,
    proto::streams::{
        ReadReq, ReadResp,
        read_req::options::{self, AllOptions, StreamOptions, all_options, stream_options},
        read_resp::{self, StreamNotFound},
    },
    recorded,
    reply::{Batch, Reply},
    wire,
};

/// Bytes of encoded replies a counted read gathers before handing them to the connection: about
/// tonic's yield threshold (32 KiB), so one hand-off fills about one write.
pub const READ_BATCH_BYTES: usize = 32 << 10;

/// Batches a counted read may have queued for a slow client before its reader waits. With the
/// batch being filled and the one being sent, a read holds at most this many + 2 batches of
/// about [`READ_BATCH_BYTES`] (each may end with one event of any size).
pub const READ_QUEUE_BATCHES: usize = 4;

/// Where a read or subscription starts in a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamFrom {
    /// The first event.
    Start,
    /// After the last event.
    End,
    /// This revision.
    Revision(u64),
}

/// Where a read or subscription starts in `$all`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AllFrom {
    /// The first event.
    Start,
    /// After the last event.
    End,
    /// This position.
    Position(u64),
}

/// What a read request reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// One stream.
    Stream(String, StreamFrom),
    /// `$all`.
    All(AllFrom),
}

/// A parsed read request.
#[derive(Debug)]
pub struct Plan {
    /// What to read.
    pub source: Source,
    /// Read backwards.
    pub backwards: bool,
    /// `None`: a subscription; else how many events at most.
    pub count: Option<u64>,
    /// The `$all` filter, if any.
    pub filter: Option<EventFilter>,
    /// Send event ids in the structured form.
    pub structured_ids: bool,
}

/// Where a counted read's replies go: events gathered into batches, handed to the call's
/// queue when a batch is full, before any other reply, and at the end.
pub struct Replies {
    outbox: Outbox<Vec<Reply>>,
    batch: Batch,
}

/// A reply the client no longer waits for ends the read.
struct Gone;

impl Replies {
    /// Replies through `outbox`.
    pub fn new(outbox: Outbox<Vec<Reply>>) -> Replies {
        Replies { outbox, batch: Batch::default() }
    }

    fn event(&mut self, event: &RecordedEvent, structured: bool) -> Result<(), Gone> {
        self.batch.push(|out| encoded::event_reply(event, structured, out));
        if self.batch.bytes_len() >= READ_BATCH_BYTES {
            return self.flush();
        }
        Ok(())
    }

    fn message(&mut self, message: ReadResp) -> Result<(), Gone> {
        self.flush()?;
        self.outbox.send(Ok(vec![Reply::Message(Box::new(message))])).map_err(|_| Gone)
    }

    fn flush(&mut self) -> Result<(), Gone> {
        if self.batch.is_empty() {
            return Ok(());
        }
        self.outbox.send(Ok(self.batch.take())).map_err(|_| Gone)
    }

    /// Sends what is gathered, then `status` (if any) as the call's end.
    fn finish(&mut self, status: Option<Status>) {
        if self.flush().is_ok()
            && let Some(status) = status
        {
            let _ = self.outbox.send(Err(status));
        }
    }
}

/// Parses a Read request.
pub fn plan(request: ReadReq) -> Result<Plan, Status> {
    let options = request.options.ok_or_else(|| Status::invalid_argument("options missing"))?;
    let source = match &options.stream_option {
        Some(options::StreamOption::Stream(s)) => stream_source(s)?,
        Some(options::StreamOption::All(a)) => Source::All(all_from(a)),
        None => return Err(Status::invalid_argument("a read names a stream or $all")),
    };
    let count = match options.count_option {
        Some(options::CountOption::Count(n)) => Some(n),
        Some(options::CountOption::Subscription(_)) => None,
        None => return Err(Status::invalid_argument("a read has a count or subscribes")),
    };
    let filter = match &options.filter_option {
        Some(options::FilterOption::Filter(f)) => EventFilter::from_options(f)?,
        Some(options::FilterOption::NoFilter(_)) | None => None,
    };
    if filter.is_some() && !matches!(source, Source::All(_)) {
        return Err(Status::invalid_argument("filters apply to $all only"));
    }
    let structured_ids = matches!(
        options.uuid_option.and_then(|u| u.content),
        Some(options::uuid_option::Content::Structured(_))
    );
    let backwards = options.read_direction == options::ReadDirection::Backwards as i32;
    Ok(Plan { source, backwards, count, filter, structured_ids })
}

fn stream_source(options: &StreamOptions) -> Result<Source, Status> {
    let stream = wire::stream_name(options.stream_identifier.as_ref())?;
    let from = match options.revision_option {
        Some(stream_options::RevisionOption::Revision(r)) => StreamFrom::Revision(r),
        Some(stream_options::RevisionOption::End(_)) => StreamFrom::End,
        Some(stream_options::RevisionOption::Start(_)) | None => StreamFrom::Start,
    };
    Ok(Source::Stream(stream, from))
}

fn all_from(options: &AllOptions) -> AllFrom {
    match &options.all_option {
        Some(all_options::AllOption::Position(p)) => {
            AllFrom::Position(wire::position(p.commit_position, p.prepare_position).get())
        }
        Some(all_options::AllOption::End(_)) => AllFrom::End,
        Some(all_options::AllOption::Start(_)) | None => AllFrom::Start,
    }
}

/// Runs a counted read on the calling (blocking) thread, sending each reply to `replies`.
pub fn run_counted(store: &Store, plan: &Plan, count: u64, replies: &mut Replies) {
    let limit = usize::try_from(count).unwrap_or(usize::MAX);
    let outcome = match &plan.source {
        Source::Stream(stream, from) => read_stream(store, plan, stream, *from, limit, replies),
        Source::All(from) => read_all(store, plan, *from, limit, replies),
    };
    replies.finish(outcome.err());
}

fn read_stream(
    store: &Store,
    plan: &Plan,
    stream: &str,
    from: StreamFrom,
    limit: usize,
    replies: &mut Replies,
) -> Result<(), Status> {
    if let Some(target) = metadata::target(stream) {
        return read_metadata(store, plan, stream, target, replies);
    }
    let from = match (from, plan.backwards) {
        (StreamFrom::Revision(r), _) => StreamVersion(r),
        (StreamFrom::Start, false) => StreamVersion::START,
        (StreamFrom::End, true) => StreamVersion::END,
        // Forwards from the end, or backwards from the start: nothing to read.
        (StreamFrom::End, false) | (StreamFrom::Start, true) => {
            return check_exists(store, stream, replies);
        }
    };
    let read = if plan.backwards {
        store.read_stream_backward(stream, from, limit)
    } else {
        store.read_stream_forward(stream, from, limit)
    };
    let events = match read {
        Ok(events) => events,
        Err(Error::StreamNotFound { .. }) => return not_found(stream, replies),
        Err(e) => return Err(errors::from_store(e)),
    };
    for event in events {
        let event = event.map_err(errors::from_store)?;
        if replies.event(&event, plan.structured_ids).is_err() {
            break;
        }
    }
    Ok(())
}

/// A read of a metadata stream: its one current event (see `metadata`), whatever the direction.
fn read_metadata(
    store: &Store,
    plan: &Plan,
    meta_stream: &str,
    target: &str,
    replies: &mut Replies,
) -> Result<(), Status> {
    match metadata::current(store, target) {
        Ok(Some((event, json))) => {
            let content = read_resp::Content::Event(recorded::metadata_event(
                &event,
                &json,
                plan.structured_ids,
            ));
            let _ = replies.message(ReadResp { content: Some(content) });
            Ok(())
        }
        Ok(None) | Err(Error::StreamNotFound { .. }) => not_found(meta_stream, replies),
        Err(e) => Err(errors::from_store(e)),
    }
}

/// An empty read of a stream still says when the stream does not exist.
fn check_exists(store: &Store, stream: &str, replies: &mut Replies) -> Result<(), Status> {
    let state = store.stream_state(stream);
    if state.tombstoned {
        return Err(errors::stream_deleted(stream));
    }
    if !state.exists() {
        return not_found(stream, replies);
    }
    Ok(())
}

fn not_found(stream: &str, replies: &mut Replies) -> Result<(), Status> {
    let content = read_resp::Content::StreamNotFound(StreamNotFound {
        stream_identifier: Some(wire::stream_identifier(stream)),
    });
    let _ = replies.message(ReadResp { content: Some(content) });
    Ok(())
}

fn read_all(
    store: &Store,
    plan: &Plan,
    from: AllFrom,
    limit: usize,
    replies: &mut Replies,
) -> Result<(), Status> {
    let mut sent = 0;
    let mut deliver = |event: RecordedEvent| -> Result<bool, Gone> {
        if let Some(filter) = &plan.filter
            && !filter.matches(event.stream(), event.event_type())
        {
            return Ok(true);
        }
        replies.event(&event, plan.structured_ids)?;
        sent += 1;
        Ok(sent < limit)
    };
    // The filter is applied here, so the store reads without a limit and stops when enough
    // events passed it.
    let events: Box<dyn Iterator<Item = annal::Result<RecordedEvent>>> =
        match (from, plan.backwards) {
            (AllFrom::Start, false) => {
                Box::new(store.read_all_forward(Position::START, usize::MAX))
            }
            (AllFrom::Position(p), false) => {
                Box::new(store.read_all_forward(Position(p), usize::MAX))
            }
            (AllFrom::End, true) => Box::new(store.read_all_backward(Position::END, usize::MAX)),
            (AllFrom::Position(0), true) | (AllFrom::End, false) | (AllFrom::Start, true) => {
                return Ok(());
            }
            (AllFrom::Position(p), true) => {
                Box::new(store.read_all_backward(Position(p - 1), usize::MAX))
            }
        };
    if limit == 0 {
        return Ok(());
    }
    for event in events {
        match deliver(event.map_err(errors::from_store)?) {
            Ok(true) => {}
            Ok(false) | Err(Gone) => break,
        }
    }
    Ok(())
}
