//! `Streams.Delete` (soft: the stream reads as not found, and an append brings it back) and
//! `Streams.Tombstone` (for good). Their errors are statuses: `wrong-expected-version` (a
//! stream that does not exist is actual version -1, as the protocol reports it) and
//! `stream-deleted` after a tombstone.

use annal::{Error, ExpectedVersion, Store};
use tonic::Status;

use crate::{errors, wire};

/// An expected revision as Delete and Tombstone carry it (the same four arms as Append).
#[derive(Clone, Copy, Debug)]
pub enum Expected {
    /// This revision.
    Revision(u64),
    /// No stream.
    NoStream,
    /// Any state.
    Any,
    /// The stream exists.
    StreamExists,
}

impl From<Expected> for ExpectedVersion {
    fn from(expected: Expected) -> Self {
        match expected {
            Expected::Revision(v) => ExpectedVersion::Exact(v),
            Expected::NoStream => ExpectedVersion::NoStream,
            Expected::Any => ExpectedVersion::Any,
            Expected::StreamExists => ExpectedVersion::StreamExists,
        }
    }
}

/// What to do to the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Soft delete.
    Delete,
    /// Tombstone.
    Tombstone,
}

/// Deletes or tombstones `stream`; returns the position of the record that did it.
pub async fn run(
    store: &Store,
    kind: Kind,
    stream: Option<&crate::proto::shared::StreamIdentifier>,
    expected: Option<Expected>,
) -> Result<u64, Status> {
    let stream = wire::stream_name(stream)?;
    let expected: ExpectedVersion = expected
        .ok_or_else(|| Status::invalid_argument("the expected revision is missing"))?
        .into();
    let store = store.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        let done = match kind {
            Kind::Delete => store.delete_stream(&stream, expected),
            Kind::Tombstone => store.tombstone_stream(&stream, expected),
        };
        done.map_err(|e| answer(&store, &stream, expected, e))
    })
    .await
    .map_err(errors::task_failed)?;
    outcome.map(annal::Position::get)
}

/// The protocol's answer to a failed delete.
fn answer(store: &Store, stream: &str, expected: ExpectedVersion, error: Error) -> Status {
    match error {
        // annal refuses to soft-delete a stream without events; the protocol reports it as a
        // wrong expected version against "no stream".
        Error::StreamNotFound { .. } => {
            let actual =
                store.stream_state(stream).last.filter(|_| store.stream_state(stream).exists());
            errors::wrong_expected_version(stream, expected, actual)
        }
        e => errors::from_store(e),
    }
}
