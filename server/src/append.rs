//! `Streams.Append`: an options message (stream, expected revision), then the events; one
//! atomic annal append. A wrong expected version is a normal reply, not an error; an append
//! larger than the limit fails with `maximum-append-size-exceeded` as soon as it is seen.

use std::{collections::HashMap, time::Instant};

use annal::{Error, ExpectedVersion, NewEvent, StreamState};
use tonic::{Status, Streaming};

use crate::{
    content,
    context::Context,
    errors, metadata,
    metrics::Outcome,
    proto::{
        shared::{Empty, Uuid as WireUuid},
        streams::{
            AppendReq, AppendResp,
            append_req::{self, options::ExpectedStreamRevision},
            append_resp::{self, success, wrong_expected_version as wev},
        },
    },
    wire,
};

/// An event as a client proposes it, from Append or BatchAppend.
pub struct Proposed {
    /// The client's event id.
    pub id: Option<WireUuid>,
    /// `type` and `content-type`.
    pub metadata: HashMap<String, String>,
    /// The client's own metadata bytes.
    pub custom_metadata: Vec<u8>,
    /// The payload.
    pub data: Vec<u8>,
}

impl Proposed {
    /// The bytes this event counts against the append size limit.
    pub fn size_bytes(&self) -> u64 {
        let event_type = self.metadata.get("type").map_or(0, String::len);
        (self.data.len() + self.custom_metadata.len() + event_type) as u64
    }

    /// The annal event: the id (generated if none was sent), the `type` (required), and the
    /// content type and custom metadata in annal's metadata (see [`content`]).
    pub fn into_event(self) -> Result<NewEvent, Status> {
        let id = wire::event_id(self.id.as_ref())?;
        let event_type =
            self.metadata.get("type").filter(|t| !t.is_empty()).ok_or_else(|| {
                Status::invalid_argument("an event needs the `type` metadata key")
            })?;
        let content_type = self.metadata.get("content-type").map_or(content::OCTET_STREAM, |c| c);
        let mut event = NewEvent::new(event_type.clone(), self.data)
            .with_metadata(content::wrap(content_type, &self.custom_metadata));
        event.id = id;
        Ok(event)
    }
}

/// Collects events, refusing the append once they pass `max_bytes`.
pub struct Collector {
    max_bytes: u64,
    bytes: u64,
    /// The events so far, in order.
    pub events: Vec<NewEvent>,
}

impl Collector {
    /// An empty collection with a limit of `max_bytes`.
    pub fn new(max_bytes: u64) -> Collector {
        Collector { max_bytes, bytes: 0, events: Vec::new() }
    }

    /// Adds `proposed`, or fails with `maximum-append-size-exceeded`.
    pub fn push(&mut self, proposed: Proposed) -> Result<(), Status> {
        self.bytes = self.bytes.saturating_add(proposed.size_bytes());
        if self.bytes > self.max_bytes {
            return Err(errors::maximum_append_size_exceeded(self.max_bytes));
        }
        self.events.push(proposed.into_event()?);
        Ok(())
    }
}

/// Handles one Append call.
pub async fn append(ctx: &Context, mut input: Streaming<AppendReq>) -> Result<AppendResp, Status> {
    let first = input.message().await?.and_then(|m| m.content);
    let Some(append_req::Content::Options(options)) = first else {
        return Err(Status::invalid_argument("an append starts with its options"));
    };
    let stream = wire::stream_name(options.stream_identifier.as_ref())?;
    let expected = expected_version(options.expected_stream_revision)?;
    let mut events = Collector::new(ctx.limits.append_bytes_max);
    while let Some(message) = input.message().await? {
        let Some(append_req::Content::ProposedMessage(m)) = message.content else {
            return Err(Status::invalid_argument("options may only open an append"));
        };
        let proposed = Proposed {
            id: m.id,
            metadata: m.metadata,
            custom_metadata: m.custom_metadata,
            data: m.data,
        };
        events.push(proposed)?;
    }
    let (started, count) = (Instant::now(), events.events.len());
    let outcome = commit(&ctx.store, &stream, expected, events.events).await;
    observe(ctx, &stream, count, outcome.as_ref().err(), started);
    match outcome {
        Ok(success) => Ok(AppendResp { result: Some(append_resp::Result::Success(success)) }),
        Err(Refused::Store(Error::WrongExpectedVersion { expected, actual, .. })) => {
            let reply = wrong_version(expected, actual);
            Ok(AppendResp { result: Some(append_resp::Result::WrongExpectedVersion(reply)) })
        }
        Err(Refused::Store(e)) => Err(errors::from_store(e)),
        Err(Refused::Request(status)) => Err(status),
    }
}

/// Counts an append that ended (`refused` is why it did not commit) and traces it: at debug
/// when it committed or met a wrong expected version, at warn when it failed.
pub fn observe(
    ctx: &Context,
    stream: &str,
    events: usize,
    refused: Option<&Refused>,
    started: Instant,
) {
    let took = started.elapsed();
    let outcome = match refused {
        None => Outcome::Committed,
        Some(Refused::Store(Error::WrongExpectedVersion { .. })) => Outcome::WrongVersion,
        Some(_) => Outcome::Failed,
    };
    ctx.metrics.append(events, outcome, took);
    match refused {
        Some(Refused::Store(e)) if outcome == Outcome::Failed => {
            tracing::warn!(stream, events, ?took, error = %e, "append failed");
        }
        Some(Refused::Request(status)) => {
            tracing::warn!(stream, events, ?took, error = %status.message(), "append refused");
        }
        _ => tracing::debug!(stream, events, ?took, ?outcome, "append"),
    }
}

/// Why an append did not commit.
pub enum Refused {
    /// The store refused it.
    Store(Error),
    /// The request cannot be carried out (a malformed metadata event).
    Request(Status),
}

impl From<Error> for Refused {
    fn from(error: Error) -> Self {
        Refused::Store(error)
    }
}

/// Appends `events`; an empty append only checks the expected version, as the protocol has it.
/// An append to a metadata stream `$$stream` sets `stream`'s metadata (see `metadata`).
///
/// Events go through the library's [`append_async`](annal::Store::append_async): no thread
/// waits for the group commit. If the call is dropped meanwhile (the client went away), the
/// append still commits or fails as queued; a retry with the same event ids learns which.
pub async fn commit(
    store: &annal::Store,
    stream: &str,
    expected: ExpectedVersion,
    events: Vec<NewEvent>,
) -> Result<append_resp::Success, Refused> {
    if let Some(target) = metadata::target(stream) {
        // Setting metadata is a blocking library call.
        let (store, target) = (store.clone(), target.to_owned());
        let (version, at) =
            tokio::task::spawn_blocking(move || metadata::set(&store, &target, expected, events))
                .await
                .map_err(|e| Refused::Request(errors::task_failed(e)))?
                .map_err(Refused::Request)??;
        return Ok(success_at(version.get(), at));
    }
    if events.is_empty() {
        return Ok(check_only(store.stream_state(stream), stream, expected)?);
    }
    let result = store.append_async(stream, expected, events).await?;
    Ok(success_at(result.last_version.get(), Some(result.last_position.get())))
}

fn success_at(revision: u64, position: Option<u64>) -> append_resp::Success {
    let position = match position {
        Some(p) => success::PositionOption::Position(append_resp::Position {
            commit_position: p,
            prepare_position: p,
        }),
        None => success::PositionOption::NoPosition(Empty {}),
    };
    append_resp::Success {
        current_revision_option: Some(success::CurrentRevisionOption::CurrentRevision(revision)),
        position_option: Some(position),
    }
}

fn check_only(
    state: StreamState,
    stream: &str,
    expected: ExpectedVersion,
) -> annal::Result<append_resp::Success> {
    if state.tombstoned {
        return Err(Error::StreamDeleted { stream: stream.to_owned() });
    }
    let last = state.last.filter(|_| state.exists());
    if !expected.admits(last) {
        return Err(Error::WrongExpectedVersion {
            stream: stream.to_owned(),
            expected,
            actual: last,
        });
    }
    let current = match last {
        Some(v) => success::CurrentRevisionOption::CurrentRevision(v),
        None => success::CurrentRevisionOption::NoStream(Empty {}),
    };
    Ok(append_resp::Success {
        current_revision_option: Some(current),
        position_option: Some(success::PositionOption::NoPosition(Empty {})),
    })
}

/// The expected version an Append's options carry (one of the four is required).
fn expected_version(option: Option<ExpectedStreamRevision>) -> Result<ExpectedVersion, Status> {
    match option {
        Some(ExpectedStreamRevision::Revision(v)) => Ok(ExpectedVersion::Exact(v)),
        Some(ExpectedStreamRevision::NoStream(_)) => Ok(ExpectedVersion::NoStream),
        Some(ExpectedStreamRevision::Any(_)) => Ok(ExpectedVersion::Any),
        Some(ExpectedStreamRevision::StreamExists(_)) => Ok(ExpectedVersion::StreamExists),
        None => Err(Status::invalid_argument("the expected stream revision is missing")),
    }
}

/// The wrong-expected-version reply: the stream's current revision and what was expected.
fn wrong_version(
    expected: ExpectedVersion,
    actual: Option<u64>,
) -> append_resp::WrongExpectedVersion {
    let current = match actual {
        Some(v) => wev::CurrentRevisionOption::CurrentRevision(v),
        None => wev::CurrentRevisionOption::CurrentNoStream(Empty {}),
    };
    let expected = match expected {
        ExpectedVersion::Exact(v) => wev::ExpectedRevisionOption::ExpectedRevision(v),
        ExpectedVersion::Any => wev::ExpectedRevisionOption::ExpectedAny(Empty {}),
        ExpectedVersion::NoStream => wev::ExpectedRevisionOption::ExpectedNoStream(Empty {}),
        ExpectedVersion::StreamExists => {
            wev::ExpectedRevisionOption::ExpectedStreamExists(Empty {})
        }
    };
    append_resp::WrongExpectedVersion {
        current_revision_option: Some(current),
        expected_revision_option: Some(expected),
    }
}
