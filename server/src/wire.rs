//! Conversions between the protocol's wire values and annal's: event ids, stream names,
//! expected versions, positions and timestamps. Each rule is stated once, here.

use ::uuid::Uuid;
use annal::{ExpectedVersion, Position};
use tonic::Status;

use crate::proto::shared::{StreamIdentifier, Uuid as WireUuid, uuid};

/// How many 100 ns ticks (the protocol's `created` unit) make a microsecond (annal's).
pub const TICKS_PER_MICROSECOND: u64 = 10;

/// The protocol's number for "no stream" in error trailers and messages.
pub const NO_STREAM_NUMBER: i64 = -1;
/// The protocol's number for "any" in error trailers and messages.
pub const ANY_NUMBER: i64 = -2;
/// The protocol's number for "stream exists" in error trailers and messages.
pub const STREAM_EXISTS_NUMBER: i64 = -4;

/// The stream named by `id`, which must be present and valid UTF-8.
pub fn stream_name(id: Option<&StreamIdentifier>) -> Result<String, Status> {
    let id = id.ok_or_else(|| Status::invalid_argument("stream_identifier is missing"))?;
    String::from_utf8(id.stream_name.clone())
        .map_err(|_| Status::invalid_argument("stream name is not valid UTF-8"))
}

/// The identifier the protocol uses for `stream`.
pub fn stream_identifier(stream: &str) -> StreamIdentifier {
    StreamIdentifier { stream_name: stream.as_bytes().to_vec() }
}

/// An event id from either wire form; `None` when the client sent none.
pub fn event_id(id: Option<&WireUuid>) -> Result<Option<Uuid>, Status> {
    let Some(value) = id.and_then(|id| id.value.as_ref()) else { return Ok(None) };
    match value {
        uuid::Value::Structured(s) => {
            let high = u64::from_ne_bytes(s.most_significant_bits.to_ne_bytes());
            let low = u64::from_ne_bytes(s.least_significant_bits.to_ne_bytes());
            Ok(Some(Uuid::from_u64_pair(high, low)))
        }
        uuid::Value::String(text) => Uuid::parse_str(text)
            .map(Some)
            .map_err(|_| Status::invalid_argument(format!("event id {text:?} is not a UUID"))),
    }
}

/// `id` in the form a read asked for: structured (two big-endian halves) or text.
pub fn wire_uuid(id: Uuid, structured: bool) -> WireUuid {
    let value = if structured {
        let (high, low) = id.as_u64_pair();
        uuid::Value::Structured(uuid::Structured {
            most_significant_bits: i64::from_ne_bytes(high.to_ne_bytes()),
            least_significant_bits: i64::from_ne_bytes(low.to_ne_bytes()),
        })
    } else {
        uuid::Value::String(id.hyphenated().to_string())
    };
    WireUuid { value: Some(value) }
}

/// The protocol's number for an expected version, as error trailers and messages carry it.
pub fn expected_number(expected: ExpectedVersion) -> i64 {
    match expected {
        ExpectedVersion::Any => ANY_NUMBER,
        ExpectedVersion::NoStream => NO_STREAM_NUMBER,
        ExpectedVersion::StreamExists => STREAM_EXISTS_NUMBER,
        ExpectedVersion::Exact(v) => i64::try_from(v).unwrap_or(i64::MAX),
    }
}

/// The protocol's number for a stream's last version (`None`: no stream).
pub fn actual_number(actual: Option<u64>) -> i64 {
    actual.map_or(NO_STREAM_NUMBER, |v| i64::try_from(v).unwrap_or(i64::MAX))
}

/// `created`: microseconds since the Unix epoch as 100 ns ticks, in decimal text.
pub fn created_ticks(timestamp_us: u64) -> String {
    timestamp_us.saturating_mul(TICKS_PER_MICROSECOND).to_string()
}

/// A wire position (commit, prepare) as an annal position. annal sends both numbers equal;
/// from a client it takes the commit position, which orders `$all`.
pub fn position(commit: u64, _prepare: u64) -> Position {
    Position(commit)
}

/// A protobuf timestamp for now.
pub fn now_timestamp() -> prost_types::Timestamp {
    prost_types::Timestamp::from(std::time::SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structured_uuid_round_trips_through_big_endian_halves() {
        let id = Uuid::parse_str("f47ac10b-58cc-4372-a567-0e02b2c3d479").unwrap();
        let wire = wire_uuid(id, true);
        let Some(uuid::Value::Structured(s)) = &wire.value else { panic!("not structured") };
        assert_eq!(s.most_significant_bits, 0xf47a_c10b_58cc_4372_u64 as i64);
        assert_eq!(s.least_significant_bits, 0xa567_0e02_b2c3_d479_u64 as i64);
        assert_eq!(event_id(Some(&wire)).unwrap(), Some(id));
    }

    #[test]
    fn string_uuid_is_hyphenated_and_parses_back() {
        let id = Uuid::new_v4();
        let wire = wire_uuid(id, false);
        assert_eq!(wire.value, Some(uuid::Value::String(id.hyphenated().to_string())));
        assert_eq!(event_id(Some(&wire)).unwrap(), Some(id));
    }

    #[test]
    fn bad_uuid_text_is_invalid_argument() {
        let wire = WireUuid { value: Some(uuid::Value::String("nope".into())) };
        assert_eq!(event_id(Some(&wire)).unwrap_err().code(), tonic::Code::InvalidArgument);
    }

    #[test]
    fn created_is_ticks_of_100_ns() {
        assert_eq!(created_ticks(1_700_000_000_123_456), "17000000001234560");
    }

    #[test]
    fn expected_numbers_follow_the_protocol() {
        assert_eq!(expected_number(ExpectedVersion::Any), -2);
        assert_eq!(expected_number(ExpectedVersion::NoStream), -1);
        assert_eq!(expected_number(ExpectedVersion::StreamExists), -4);
        assert_eq!(expected_number(ExpectedVersion::Exact(7)), 7);
        assert_eq!(actual_number(None), -1);
    }
}
