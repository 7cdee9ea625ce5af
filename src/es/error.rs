//! The event-sourcing layer's error type: one variant per situation a caller can act on, generic
//! over the domain error an aggregate rejects a command with.

use std::convert::Infallible;

/// Everything that can go wrong in the event-sourcing layer. `D` is the aggregate's domain
/// error; operations that run no command (encoding, decoding, projections) use the default,
/// [`Infallible`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error<D = Infallible> {
    /// The aggregate rejected the command; nothing was written.
    #[error("command rejected: {0}")]
    Domain(D),
    /// Every attempt hit a concurrent append to the same aggregate; nothing was written.
    #[error("stream {stream:?} kept changing: gave up after {attempts} attempts")]
    Conflict {
        /// A stream whose expected version failed on the last attempt.
        stream: String,
        /// Attempts made (`max_retries + 1`).
        attempts: u32,
    },
    /// A recorded event has a type the event enum does not list.
    #[error("unknown event type {event_type:?} at position {position}")]
    UnknownEventType {
        /// The stored type name.
        event_type: String,
        /// Where the event sits in the log.
        position: u64,
    },
    /// A recorded event's payload or metadata does not decode into the current shape (after
    /// every upcaster that applies).
    #[error("event {event_type:?} at position {position} does not decode: {reason}")]
    Decode {
        /// The stored type name.
        event_type: String,
        /// Where the event sits in the log.
        position: u64,
        /// What failed.
        reason: String,
    },
    /// A value could not be encoded (an event that is not a variant listed in
    /// [`DomainEvent::TYPES`](super::DomainEvent::TYPES), or a serializer failure).
    #[error("cannot encode: {0}")]
    Encode(String),
    /// An aggregate id or type breaks the naming rules.
    #[error("invalid name {name:?}: {reason}")]
    InvalidName {
        /// The rejected id or type.
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// Part of the aggregate's history is no longer in its stream (retention rules hide it, a
    /// scavenge removed it, or a salvaging open lost it) and no usable snapshot covers it, so
    /// its state cannot be rebuilt; nothing was written. A soft delete is not a truncation:
    /// after one the aggregate starts over. Keep a snapshot newer than what the retention
    /// rules hide ([`snapshot_every`](super::RepositoryOptions::snapshot_every) at most
    /// `max_count`); `docs/design.md` ("Truncated histories") has the rules.
    #[error(
        "stream {stream:?} no longer holds the aggregate's history from version {needed} \
         (first readable: {first_version:?}, state folded up to: {state_version:?})"
    )]
    TruncatedHistory {
        /// The aggregate's stream.
        stream: String,
        /// The first version the state needs and the stream no longer returns.
        needed: u64,
        /// The first version the stream returns from there; `None` if none.
        first_version: Option<u64>,
        /// The version of the state the fold continued (from a snapshot or the cache);
        /// `None` when it started from the aggregate's first event.
        state_version: Option<u64>,
    },
    /// A projection's handler failed; the runner stopped at that event, unacknowledged.
    #[error("projection {name:?} failed at position {position}: {reason}")]
    Projection {
        /// The projection's subscription name.
        name: String,
        /// The event it failed on.
        position: u64,
        /// What the handler reported.
        reason: String,
    },
    /// The store failed (I/O, poisoning, a closed store, limits, a duplicate stream).
    #[error(transparent)]
    Store(#[from] crate::Error),
}

impl Error {
    /// The same error in a context whose domain error is `D` (nothing to convert: an
    /// `Error<Infallible>` never holds a domain error).
    pub fn widen<D>(self) -> Error<D> {
        match self {
            Error::Domain(never) => match never {},
            Error::Conflict { stream, attempts } => Error::Conflict { stream, attempts },
            Error::UnknownEventType { event_type, position } => {
                Error::UnknownEventType { event_type, position }
            }
            Error::Decode { event_type, position, reason } => {
                Error::Decode { event_type, position, reason }
            }
            Error::Encode(reason) => Error::Encode(reason),
            Error::InvalidName { name, reason } => Error::InvalidName { name, reason },
            Error::TruncatedHistory { stream, needed, first_version, state_version } => {
                Error::TruncatedHistory { stream, needed, first_version, state_version }
            }
            Error::Projection { name, position, reason } => {
                Error::Projection { name, position, reason }
            }
            Error::Store(e) => Error::Store(e),
        }
    }
}
