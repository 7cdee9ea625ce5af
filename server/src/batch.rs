//! `Streams.BatchAppend`: appends over one long-lived bidirectional call. Requests carry a
//! correlation id; the first of an id carries the stream and expected position, the one marked
//! `is_final` closes it, and the server then appends and answers with that id. Failures are
//! replies too, as a `google.rpc.Status` whose detail names the protocol's error.
//!
//! The Python client appends a list of events this way (a single event goes through Append).

use std::{collections::HashMap, time::Instant};

use annal::{Error, ExpectedVersion};
use prost::Message;
use tokio::sync::mpsc;
use tonic::{Status, Streaming};

use crate::{
    append::{self, Collector, Proposed, Refused},
    context::Context,
    errors,
    proto::{
        google::rpc,
        shared::{self, AllStreamPosition, StreamIdentifier},
        streams::{
            BatchAppendReq, BatchAppendResp, append_resp,
            batch_append_req::options::ExpectedStreamPosition as ReqExpected,
            batch_append_resp::{self, ExpectedStreamPosition as RespExpected, success},
        },
    },
    wire,
};

/// Most appends one call may have open (sent, not yet final) at once. Each holds at most the
/// append limit in memory, so one call holds at most this many times that (64 MiB with the
/// default 1 MiB limit).
pub const OPEN_APPENDS_MAX: usize = 64;

/// Replies a call may have queued for its client.
pub const REPLY_QUEUE: usize = 64;

/// The reply stream of one call.
pub type Replies = mpsc::Receiver<Result<BatchAppendResp, Status>>;

/// An append being received.
struct Open {
    stream: String,
    expected: ExpectedVersion,
    events: Collector,
}

/// Starts serving one BatchAppend call; replies come on the returned queue.
pub fn start(ctx: Context, input: Streaming<BatchAppendReq>) -> Replies {
    let (tx, rx) = mpsc::channel(REPLY_QUEUE);
    tokio::spawn(async move {
        if let Err(status) = serve(&ctx, input, &tx).await {
            let _ = tx.send(Err(status)).await;
        }
    });
    rx
}

async fn serve(
    ctx: &Context,
    mut input: Streaming<BatchAppendReq>,
    tx: &mpsc::Sender<Result<BatchAppendResp, Status>>,
) -> Result<(), Status> {
    let mut open: HashMap<Vec<u8>, Open> = HashMap::new();
    while let Some(request) = input.message().await? {
        let key = request.correlation_id.as_ref().map(Message::encode_to_vec).unwrap_or_default();
        let correlation_id = request.correlation_id.clone();
        let is_final = request.is_final;
        if let Err(error) = receive(ctx, &mut open, key.clone(), request) {
            open.remove(&key);
            let reply = failure(correlation_id, error);
            tx.send(Ok(reply)).await.map_err(|_| Status::cancelled("client gone"))?;
            continue;
        }
        if is_final {
            let Some(append) = open.remove(&key) else { continue };
            let reply = commit(ctx, correlation_id, append).await?;
            tx.send(Ok(reply)).await.map_err(|_| Status::cancelled("client gone"))?;
        }
    }
    Ok(())
}

/// Takes one request into its open append.
fn receive(
    ctx: &Context,
    open: &mut HashMap<Vec<u8>, Open>,
    key: Vec<u8>,
    request: BatchAppendReq,
) -> Result<(), Status> {
    if !open.contains_key(&key) {
        let options = request.options.ok_or_else(|| {
            Status::invalid_argument("the first request of an append has its options")
        })?;
        if open.len() >= OPEN_APPENDS_MAX {
            return Err(Status::resource_exhausted("too many appends open on this call"));
        }
        let stream = wire::stream_name(options.stream_identifier.as_ref())?;
        let expected = match options.expected_stream_position {
            Some(ReqExpected::StreamPosition(v)) => ExpectedVersion::Exact(v),
            Some(ReqExpected::NoStream(_)) => ExpectedVersion::NoStream,
            Some(ReqExpected::Any(_)) => ExpectedVersion::Any,
            Some(ReqExpected::StreamExists(_)) => ExpectedVersion::StreamExists,
            None => {
                return Err(Status::invalid_argument("the expected stream position is missing"));
            }
        };
        let events = Collector::new(ctx.limits.append_bytes_max);
        open.insert(key.clone(), Open { stream, expected, events });
    }
    let append = open.get_mut(&key).expect("inserted above");
    for m in request.proposed_messages {
        append.events.push(Proposed {
            id: m.id,
            metadata: m.metadata,
            custom_metadata: m.custom_metadata,
            data: m.data,
        })?;
    }
    Ok(())
}

/// Appends a finished append and builds its reply.
async fn commit(
    ctx: &Context,
    correlation_id: Option<shared::Uuid>,
    append: Open,
) -> Result<BatchAppendResp, Status> {
    let (stream, expected) = (append.stream.clone(), append.expected);
    let (started, count) = (Instant::now(), append.events.events.len());
    let outcome =
        append::commit(&ctx.store, &append.stream, append.expected, append.events.events).await;
    append::observe(ctx, &stream, count, outcome.as_ref().err(), started);
    let result = match outcome {
        Ok(done) => batch_append_resp::Result::Success(success_of(done)),
        Err(Refused::Store(e)) => batch_append_resp::Result::Error(error_detail(e)),
        Err(Refused::Request(status)) => {
            return Ok(failure(correlation_id, status));
        }
    };
    Ok(BatchAppendResp {
        correlation_id,
        result: Some(result),
        stream_identifier: Some(wire::stream_identifier(&stream)),
        expected_stream_position: Some(echo(expected)),
    })
}

fn success_of(done: append_resp::Success) -> batch_append_resp::Success {
    let current = match done.current_revision_option {
        Some(append_resp::success::CurrentRevisionOption::CurrentRevision(v)) => {
            success::CurrentRevisionOption::CurrentRevision(v)
        }
        _ => success::CurrentRevisionOption::NoStream(()),
    };
    let position = match done.position_option {
        Some(append_resp::success::PositionOption::Position(p)) => {
            success::PositionOption::Position(AllStreamPosition {
                commit_position: p.commit_position,
                prepare_position: p.prepare_position,
            })
        }
        _ => success::PositionOption::NoPosition(()),
    };
    batch_append_resp::Success {
        current_revision_option: Some(current),
        position_option: Some(position),
    }
}

fn echo(expected: ExpectedVersion) -> RespExpected {
    match expected {
        ExpectedVersion::Exact(v) => RespExpected::StreamPosition(v),
        ExpectedVersion::NoStream => RespExpected::NoStream(()),
        ExpectedVersion::Any => RespExpected::Any(()),
        ExpectedVersion::StreamExists => RespExpected::StreamExists(()),
    }
}

/// A reply for an append refused before it was committed.
fn failure(correlation_id: Option<shared::Uuid>, status: Status) -> BatchAppendResp {
    let exception = status.metadata().get(errors::EXCEPTION).and_then(|v| v.to_str().ok());
    let details = match exception {
        Some("maximum-append-size-exceeded") => {
            let max = status
                .metadata()
                .get("maximum-append-size")
                .and_then(|v| v.to_str().ok()?.parse().ok())
                .unwrap_or(u32::MAX);
            Some(any(
                "MaximumAppendSizeExceeded",
                &shared::MaximumAppendSizeExceeded { max_append_size: max },
            ))
        }
        _ => Some(any("BadRequest", &shared::BadRequest { message: status.message().to_owned() })),
    };
    BatchAppendResp {
        correlation_id,
        result: Some(batch_append_resp::Result::Error(rpc::Status {
            code: status.code() as i32,
            message: status.message().to_owned(),
            details,
        })),
        stream_identifier: None,
        expected_stream_position: None,
    }
}

/// A store error as the reply's status with its detail.
fn error_detail(error: Error) -> rpc::Status {
    let detail = match &error {
        Error::WrongExpectedVersion { expected, actual, .. } => {
            Some(any("WrongExpectedVersion", &wrong_version(*expected, *actual)))
        }
        Error::StreamDeleted { stream } => Some(any(
            "StreamDeleted",
            &shared::StreamDeleted {
                stream_identifier: Some(StreamIdentifier {
                    stream_name: stream.as_bytes().to_vec(),
                }),
            },
        )),
        _ => None,
    };
    let status = errors::from_store(error);
    let details = detail.or_else(|| {
        Some(any("BadRequest", &shared::BadRequest { message: status.message().to_owned() }))
    });
    rpc::Status { code: status.code() as i32, message: status.message().to_owned(), details }
}

fn wrong_version(expected: ExpectedVersion, actual: Option<u64>) -> shared::WrongExpectedVersion {
    use shared::wrong_expected_version::{
        CurrentStreamRevisionOption as C, ExpectedStreamPositionOption as E,
    };
    shared::WrongExpectedVersion {
        current_stream_revision_option: Some(match actual {
            Some(v) => C::CurrentStreamRevision(v),
            None => C::CurrentNoStream(()),
        }),
        expected_stream_position_option: Some(match expected {
            ExpectedVersion::Exact(v) => E::ExpectedStreamPosition(v),
            ExpectedVersion::Any => E::ExpectedAny(()),
            ExpectedVersion::StreamExists => E::ExpectedStreamExists(()),
            ExpectedVersion::NoStream => E::ExpectedNoStream(()),
        }),
    }
}

/// `message`, a message of package `event_store.client` named `name`, packed as a
/// `google.protobuf.Any` (clients match on the type URL's last segment).
fn any(name: &str, message: &impl Message) -> prost_types::Any {
    prost_types::Any {
        type_url: format!("type.googleapis.com/event_store.client.{name}"),
        value: message.encode_to_vec(),
    }
}
