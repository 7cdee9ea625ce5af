//! Errors as the clients expect them: a gRPC status whose `exception` trailer names the
//! protocol's error (`wrong-expected-version`, `stream-deleted`, …) with its detail keys.
//! Clients pick their error class from the trailer and read the details from the other keys.

use annal::{Error, ExpectedVersion};
use tonic::{Code, Status, metadata::MetadataMap};

use crate::wire::{actual_number, expected_number};

/// The trailer that names the protocol's error.
pub const EXCEPTION: &str = "exception";

/// A status with the `exception` trailer and the given detail keys.
pub fn protocol_error(
    code: Code,
    message: String,
    exception: &str,
    keys: &[(&str, String)],
) -> Status {
    let mut trailers = MetadataMap::new();
    insert(&mut trailers, EXCEPTION, exception);
    for (key, value) in keys {
        insert(&mut trailers, key, value);
    }
    Status::with_metadata(code, message, trailers)
}

/// Adds `key: value` unless `value` cannot travel as an ASCII header (a stream name with
/// non-ASCII characters); the message still names it.
fn insert(trailers: &mut MetadataMap, key: &str, value: &str) {
    let Ok(key) = key.parse::<tonic::metadata::MetadataKey<_>>() else { return };
    if let Ok(value) = value.parse() {
        trailers.insert(key, value);
    }
}

/// `wrong-expected-version`, as Delete and Tombstone report it.
pub fn wrong_expected_version(
    stream: &str,
    expected: ExpectedVersion,
    actual: Option<u64>,
) -> Status {
    let (expected, actual) = (expected_number(expected), actual_number(actual));
    let message = format!(
        "Append failed due to WrongExpectedVersion. Stream: {stream}, Expected version: \
         {expected}, Actual version: {actual}"
    );
    protocol_error(
        Code::FailedPrecondition,
        message,
        "wrong-expected-version",
        &[
            ("stream-name", stream.to_owned()),
            ("expected-version", expected.to_string()),
            ("actual-version", actual.to_string()),
        ],
    )
}

/// `stream-deleted`: the stream was tombstoned.
pub fn stream_deleted(stream: &str) -> Status {
    protocol_error(
        Code::FailedPrecondition,
        format!("Event stream '{stream}' is deleted."),
        "stream-deleted",
        &[("stream-name", stream.to_owned())],
    )
}

/// `maximum-append-size-exceeded`: an append is larger than `max_bytes`.
pub fn maximum_append_size_exceeded(max_bytes: u64) -> Status {
    protocol_error(
        Code::InvalidArgument,
        format!("Maximum Append Size of {max_bytes} Exceeded."),
        "maximum-append-size-exceeded",
        &[("maximum-append-size", max_bytes.to_string())],
    )
}

/// A status for a store error that has no protocol-specific answer at its call site.
pub fn from_store(error: Error) -> Status {
    match error {
        Error::WrongExpectedVersion { stream, expected, actual } => {
            wrong_expected_version(&stream, expected, actual)
        }
        Error::StreamDeleted { stream } => stream_deleted(&stream),
        Error::StreamNotFound { stream } => protocol_error(
            Code::NotFound,
            format!("Event stream '{stream}' is not found."),
            "stream-not-found",
            &[("stream-name", stream)],
        ),
        Error::LimitExceeded { max, .. } => maximum_append_size_exceeded(max),
        e @ (Error::InvalidStreamName { .. }
        | Error::InvalidEventType { .. }
        | Error::InvalidMetadata { .. }
        | Error::EmptyAppend
        | Error::DuplicateEventId { .. }
        | Error::FieldOverflow(_)) => Status::invalid_argument(e.to_string()),
        e @ Error::EventIdConflict { .. } => Status::already_exists(e.to_string()),
        e @ (Error::Closed | Error::Poisoned { .. } | Error::ReadOnly) => {
            Status::unavailable(e.to_string())
        }
        e => Status::internal(e.to_string()),
    }
}

/// A blocking task that ended without answering (it panicked or was cancelled).
pub fn task_failed(error: tokio::task::JoinError) -> Status {
    Status::internal(format!("the request's task failed: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trailer<'a>(status: &'a Status, key: &str) -> Option<&'a str> {
        status.metadata().get(key).and_then(|v| v.to_str().ok())
    }

    #[test]
    fn wrong_expected_version_carries_the_trailers_and_message_clients_parse() {
        let status = wrong_expected_version("order-1", ExpectedVersion::Exact(2), Some(3));
        assert_eq!(status.code(), Code::FailedPrecondition);
        assert_eq!(trailer(&status, "exception"), Some("wrong-expected-version"));
        assert_eq!(trailer(&status, "stream-name"), Some("order-1"));
        assert_eq!(trailer(&status, "expected-version"), Some("2"));
        assert_eq!(trailer(&status, "actual-version"), Some("3"));
        assert!(status.message().contains("WrongExpectedVersion"));
        assert!(status.message().contains("Actual version: 3"));
    }

    #[test]
    fn a_missing_stream_is_actual_version_minus_one() {
        let status = wrong_expected_version("s", ExpectedVersion::Any, None);
        assert_eq!(trailer(&status, "actual-version"), Some("-1"));
        assert!(status.message().contains("Actual version: -1"));
    }

    #[test]
    fn stream_deleted_names_the_stream() {
        let status = from_store(Error::StreamDeleted { stream: "gone".into() });
        assert_eq!(trailer(&status, "exception"), Some("stream-deleted"));
        assert_eq!(trailer(&status, "stream-name"), Some("gone"));
        assert!(status.message().contains("is deleted"));
    }

    #[test]
    fn a_non_ascii_stream_name_leaves_its_trailer_out_but_keeps_the_exception() {
        let status = stream_deleted("café");
        assert_eq!(trailer(&status, "exception"), Some("stream-deleted"));
        assert_eq!(trailer(&status, "stream-name"), None);
    }
}
