//! The v2 `StreamsService.AppendSession`: one request per stream, client-streamed, committed
//! together as one annal multi-stream append (`Store::append_multi_async`): every part commits
//! or none does, each against its own expected revision. Errors are the v2 ones (see
//! `v2_errors`).
//!
//! A record maps onto an annal event as a v1 proposal does: `schema.name` is the event type,
//! `schema.format` JSON is `application/json` and anything else binary (see `content`),
//! `record_id` the event id; the record's `properties` become the custom metadata, as one JSON
//! object (none: empty).

use std::collections::BTreeMap;

use annal::{Error, ExpectedVersion, MultiAppendResult, NewEvent, StreamAppend};
use prost_types::{Value, value::Kind};
use tonic::{Status, Streaming};

use crate::{
    content,
    context::Context,
    errors, metadata,
    proto::v2::{AppendRecord, AppendRequest, AppendResponse, AppendSessionResponse, SchemaFormat},
    v2_errors,
};

/// Handles one AppendSession call.
pub async fn append_session(
    ctx: &Context,
    mut input: Streaming<AppendRequest>,
) -> Result<AppendSessionResponse, Status> {
    let max_bytes = ctx.limits.append_bytes_max;
    let (mut parts, mut bytes) = (Vec::new(), 0u64);
    while let Some(request) = input.message().await? {
        if metadata::target(&request.stream).is_some() {
            return Err(Status::invalid_argument(
                "stream metadata is set through Streams.Append, not in an append session",
            ));
        }
        let expected = expected_version(request.expected_revision)?;
        let mut events = Vec::with_capacity(request.records.len());
        for record in request.records {
            let (event, size) = into_event(record)?;
            bytes = bytes.saturating_add(size);
            if bytes > max_bytes {
                return Err(v2_errors::transaction_size_exceeded(bytes, max_bytes));
            }
            events.push(event);
        }
        parts.push(StreamAppend::new(request.stream, expected, events));
    }
    if parts.is_empty() {
        return Err(Status::failed_precondition("an append session needs at least one request"));
    }
    match ctx.store.append_multi_async(parts).await {
        Ok(done) => Ok(reply(done)),
        Err(e) => Err(refusal(e)),
    }
}

/// `-1` no stream, `-2` (or nothing) any, `-4` stream exists, else an exact revision.
fn expected_version(revision: Option<i64>) -> Result<ExpectedVersion, Status> {
    match revision {
        None | Some(-2) => Ok(ExpectedVersion::Any),
        Some(-1) => Ok(ExpectedVersion::NoStream),
        Some(-4) => Ok(ExpectedVersion::StreamExists),
        Some(r) => u64::try_from(r)
            .map(ExpectedVersion::Exact)
            .map_err(|_| Status::invalid_argument(format!("no expected revision is {r}"))),
    }
}

/// The event a record is, and the bytes it counts against the append size limit (data, type
/// and properties as stored).
fn into_event(record: AppendRecord) -> Result<(NewEvent, u64), Status> {
    let schema = record.schema.unwrap_or_default();
    if schema.name.is_empty() {
        return Err(Status::invalid_argument("a record needs a schema name (its event type)"));
    }
    let content_type = match schema.format() {
        SchemaFormat::Json => content::JSON,
        _ => content::OCTET_STREAM,
    };
    let custom = if record.properties.is_empty() {
        Vec::new()
    } else {
        let object: BTreeMap<_, _> =
            record.properties.into_iter().map(|(k, v)| (k, json_of(v))).collect();
        serde_json::to_vec(&object).map_err(|e| Status::invalid_argument(e.to_string()))?
    };
    let size = (record.data.len() + schema.name.len() + custom.len()) as u64;
    let mut event =
        NewEvent::new(schema.name, record.data).with_metadata(content::wrap(content_type, &custom));
    event.id = match record.record_id {
        Some(id) => Some(
            uuid::Uuid::parse_str(&id)
                .map_err(|_| Status::invalid_argument(format!("record id {id:?} is no UUID")))?,
        ),
        None => None,
    };
    Ok((event, size))
}

/// A protobuf `Value` as JSON.
fn json_of(value: Value) -> serde_json::Value {
    match value.kind {
        None | Some(Kind::NullValue(_)) => serde_json::Value::Null,
        Some(Kind::NumberValue(n)) => {
            serde_json::Number::from_f64(n).map_or(serde_json::Value::Null, Into::into)
        }
        Some(Kind::StringValue(s)) => s.into(),
        Some(Kind::BoolValue(b)) => b.into(),
        Some(Kind::StructValue(s)) => s
            .fields
            .into_iter()
            .map(|(k, v)| (k, json_of(v)))
            .collect::<serde_json::Map<_, _>>()
            .into(),
        Some(Kind::ListValue(l)) => l.values.into_iter().map(json_of).collect::<Vec<_>>().into(),
    }
}

fn reply(done: MultiAppendResult) -> AppendSessionResponse {
    let signed = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let output = done
        .streams
        .into_iter()
        .map(|(stream, result)| AppendResponse {
            stream,
            stream_revision: signed(result.last_version.get()),
            position: Some(signed(result.last_position.get())),
        })
        .collect();
    AppendSessionResponse { output, position: signed(done.last_position.get()) }
}

/// The v2 error for a refused session.
fn refusal(error: Error) -> Status {
    match error {
        Error::WrongExpectedVersion { stream, expected, actual } => {
            v2_errors::revision_conflict(&stream, expected, actual)
        }
        Error::StreamDeleted { stream } => v2_errors::stream_tombstoned(&stream),
        Error::DuplicateStream { stream } => v2_errors::stream_already_in_session(&stream),
        Error::LimitExceeded { actual, max, .. } => {
            v2_errors::transaction_size_exceeded(actual, max)
        }
        e => errors::from_store(e),
    }
}
