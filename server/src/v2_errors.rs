//! Errors of the protocol's v2 services, as the clients read them: a gRPC status whose
//! `grpc-status-details-bin` trailer holds a `google.rpc.Status` with the same code and message
//! and exactly one detail, a `google.protobuf.Any` of the error's details message. Clients pick
//! the error by the detail's type URL (no `exception` trailer, which would route them to the v1
//! error classes).

use annal::ExpectedVersion;
use prost::Message;
use tonic::{Code, Status};

use crate::{
    proto::{
        google::rpc,
        v2::errors::{
            AppendTransactionSizeExceededErrorDetails, StreamAlreadyInAppendSessionErrorDetails,
            StreamRevisionConflictErrorDetails, StreamTombstonedErrorDetails,
        },
    },
    wire::{actual_number, expected_number},
};

/// The package of the v2 streams error details, as their type URLs name it.
const ERRORS_PACKAGE: &str = "kurrentdb.protocol.v2.streams.errors";

/// A status carrying `details` (a message named `name` in [`ERRORS_PACKAGE`]).
fn with_detail(code: Code, message: String, name: &str, details: &impl Message) -> Status {
    let detail = prost_types::Any {
        type_url: format!("type.googleapis.com/{ERRORS_PACKAGE}.{name}"),
        value: details.encode_to_vec(),
    };
    let status = rpc::Status { code: code as i32, message: message.clone(), details: Some(detail) };
    Status::with_details(code, message, status.encode_to_vec().into())
}

/// A part's expected revision did not hold.
pub fn revision_conflict(stream: &str, expected: ExpectedVersion, actual: Option<u64>) -> Status {
    let (expected, actual) = (expected_number(expected), actual_number(actual));
    let details = StreamRevisionConflictErrorDetails {
        stream: stream.to_owned(),
        expected_revision: expected,
        actual_revision: actual,
    };
    let message = format!(
        "Append failed due to a revision conflict on stream '{stream}': expected revision \
         {expected}, actual revision {actual}"
    );
    with_detail(Code::FailedPrecondition, message, "StreamRevisionConflictErrorDetails", &details)
}

/// A part's stream is tombstoned.
pub fn stream_tombstoned(stream: &str) -> Status {
    let details = StreamTombstonedErrorDetails { stream: stream.to_owned() };
    let message = format!("Stream '{stream}' is tombstoned.");
    with_detail(Code::FailedPrecondition, message, "StreamTombstonedErrorDetails", &details)
}

/// The session is larger than the limit (`max_bytes`, or one of annal's own limits).
pub fn transaction_size_exceeded(size_bytes: u64, max_bytes: u64) -> Status {
    let clamp = |n: u64| i32::try_from(n).unwrap_or(i32::MAX);
    let details = AppendTransactionSizeExceededErrorDetails {
        size: clamp(size_bytes),
        max_size: clamp(max_bytes),
    };
    let message =
        format!("The append session's size {size_bytes} exceeds the limit of {max_bytes}.");
    with_detail(Code::Aborted, message, "AppendTransactionSizeExceededErrorDetails", &details)
}

/// A stream appears twice in one session.
pub fn stream_already_in_session(stream: &str) -> Status {
    let details = StreamAlreadyInAppendSessionErrorDetails { stream: stream.to_owned() };
    let message = format!("Stream '{stream}' appears more than once in the append session.");
    with_detail(Code::Aborted, message, "StreamAlreadyInAppendSessionErrorDetails", &details)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_error_detail_repeats_the_status_and_names_its_type() {
        let status = revision_conflict("s", ExpectedVersion::Exact(1), Some(3));
        let inner = rpc::Status::decode(status.details()).unwrap();
        assert_eq!((inner.code, inner.message.as_str()), (status.code() as i32, status.message()));
        let detail = inner.details.unwrap();
        assert!(detail.type_url.ends_with(".errors.StreamRevisionConflictErrorDetails"));
        let details = StreamRevisionConflictErrorDetails::decode(detail.value.as_slice()).unwrap();
        assert_eq!(
            (details.stream.as_str(), details.expected_revision, details.actual_revision),
            ("s", 1, 3)
        );
    }
}
