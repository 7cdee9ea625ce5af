//! The store's error type: one variant per situation a caller can act on.

use std::{fmt, io, path::PathBuf, sync::Arc};

use uuid::Uuid;

use crate::{format::CorruptionKind, types::ExpectedVersion};

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A named limit from [`Options`](crate::Options), or of the format, that an append exceeded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// [`Options::event_bytes_max`](crate::Options::event_bytes_max).
    EventBytes,
    /// [`Options::append_events_max`](crate::Options::append_events_max).
    AppendEvents,
    /// [`Options::append_bytes_max`](crate::Options::append_bytes_max).
    AppendBytes,
    /// The metadata of one event: the format stores its length in 24 bits
    /// ([`METADATA_BYTES_MAX`](crate::format::METADATA_BYTES_MAX)).
    MetadataBytes,
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Limit::EventBytes => "event_bytes_max",
            Limit::AppendEvents => "append_events_max",
            Limit::AppendBytes => "append_bytes_max",
            Limit::MetadataBytes => "format::METADATA_BYTES_MAX",
        })
    }
}

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Optimistic concurrency check failed; nothing was written.
    #[error("wrong expected version for stream {stream:?}: expected {expected}, actual {}", describe_version(*.actual))]
    WrongExpectedVersion {
        /// The stream whose check failed.
        stream: String,
        /// What the caller expected.
        expected: ExpectedVersion,
        /// The stream's last version at the time of the check (`None`: no events).
        actual: Option<u64>,
    },
    /// The stream has no events, or none that its metadata leaves visible (it was deleted).
    #[error("stream {stream:?} not found")]
    StreamNotFound {
        /// The stream asked for.
        stream: String,
    },
    /// The stream was tombstoned: it reads as deleted and can never be written again.
    #[error("stream {stream:?} is deleted for good (tombstoned)")]
    StreamDeleted {
        /// The stream asked for.
        stream: String,
    },
    /// Stream metadata that cannot be stored (too many or too long custom keys or values).
    #[error("invalid metadata for stream {stream:?}: {reason}")]
    InvalidMetadata {
        /// The stream whose metadata was refused.
        stream: String,
        /// Which rule it broke.
        reason: &'static str,
    },
    /// Another scavenge of this store is running.
    #[error("a scavenge is already running on this store")]
    ScavengeInProgress,
    /// Bytes on disk that were once durable fail their checks. Never silently dropped.
    #[error("corruption in segment {segment} at offset {offset}: {kind}")]
    Corruption {
        /// File name of the damaged segment.
        segment: String,
        /// Byte offset of the damaged record or header within the segment.
        offset: u64,
        /// What check failed.
        kind: CorruptionKind,
    },
    /// A segment was written by a format version this build does not read.
    #[error("segment {segment} has format version {found}; this build reads version {supported}")]
    UnsupportedFormat {
        /// File name of the segment.
        segment: String,
        /// The version in its header.
        found: u16,
        /// The version this build reads and writes.
        supported: u16,
    },
    /// A read-only (or salvaging) open found, on each of `listings` listings of the directory,
    /// a segment file listed that was gone when opened. Usually a scavenge in the process that
    /// has the store open for writing merged it away, and opening again works; if it persists,
    /// a name in the directory that looks like a segment cannot be opened (a dangling link, a
    /// file removed from outside). Only opens without the lock retry: a writable open reports
    /// such a file as [`Error::Io`].
    #[error(
        "a segment file in {} vanished between listing and opening on each of {listings} \
         listings (a scavenge merging segments beside this open, or a file that cannot be \
         opened); open again",
        .dir.display()
    )]
    SegmentsChanging {
        /// The store directory.
        dir: PathBuf,
        /// How many times the directory was listed ([`SEGMENT_LISTINGS_MAX`](crate::SEGMENT_LISTINGS_MAX)).
        listings: u32,
    },
    /// Another open store (in this process or another) holds the directory.
    #[error("store directory {} is locked by another open store", .dir.display())]
    Locked {
        /// The store directory.
        dir: PathBuf,
    },
    /// An earlier write or fsync failed; the store accepts no more writes until it is reopened.
    #[error("store is poisoned by a failed {op}; reopen it to recover from disk: {source}")]
    Poisoned {
        /// The operation that failed first.
        op: &'static str,
        /// Its error.
        source: Arc<io::Error>,
    },
    /// The store was closed.
    #[error("store is closed")]
    Closed,
    /// The store was opened read-only (or to salvage it) and takes no appends.
    #[error("store is open read-only")]
    ReadOnly,
    /// A stream name breaks the naming rules.
    #[error("invalid stream name {name:?}: {reason}")]
    InvalidStreamName {
        /// The rejected name.
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// An event type breaks the naming rules.
    #[error("invalid event type {event_type:?}: {reason}")]
    InvalidEventType {
        /// The rejected type.
        event_type: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// An append exceeds a configured limit; nothing was written.
    #[error("{limit} exceeded: {actual} > {max}")]
    LimitExceeded {
        /// The limit.
        limit: Limit,
        /// The size or count asked for.
        actual: u64,
        /// The configured maximum.
        max: u64,
    },
    /// A field of an event does not fit its width in the record format; nothing was written.
    #[error("event does not fit the record format: {0}")]
    FieldOverflow(#[from] crate::format::FieldOverflow),
    /// An append (or a part of a multi-stream append) has no events.
    #[error("an append needs at least one event")]
    EmptyAppend,
    /// The same stream appears twice in one multi-stream append.
    #[error("stream {stream:?} appears more than once in one append")]
    DuplicateStream {
        /// The repeated stream.
        stream: String,
    },
    /// The same event id appears twice within one append.
    #[error("event id {id} appears more than once in one append")]
    DuplicateEventId {
        /// The repeated id.
        id: Uuid,
    },
    /// An event id was already committed, but not as a retry of the same append.
    #[error("event id {id} was already committed at position {position} by a different append")]
    EventIdConflict {
        /// The id.
        id: Uuid,
        /// Where the earlier event with that id sits.
        position: u64,
    },
    /// Another holder has this persistent subscription open (in this store, until it and all
    /// its ackers are dropped).
    #[error("persistent subscription {name:?} is already held")]
    SubscriptionInUse {
        /// The subscription's name.
        name: String,
    },
    /// A persistent subscription name breaks the naming rules.
    #[error("invalid subscription name {name:?}: {reason}")]
    InvalidSubscriptionName {
        /// The rejected name.
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// A persistent subscription's checkpoint file fails its checks or cannot be used.
    #[error("checkpoint of subscription {name:?} is unusable: {reason}")]
    BadCheckpoint {
        /// The subscription's name.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An acknowledgement names a position the subscription has not delivered.
    #[error("position {position} was not delivered by this subscription")]
    NotDelivered {
        /// The position acknowledged.
        position: u64,
    },
    /// A persistent subscription has its maximum of unacknowledged events out, and nothing
    /// but the receiver itself could acknowledge them (no [`Acker`](crate::Acker) exists).
    #[error("{max_in_flight} delivered events are unacknowledged and no acker exists")]
    TooManyUnacknowledged {
        /// [`PersistentOptions::max_in_flight`](crate::PersistentOptions::max_in_flight).
        max_in_flight: usize,
    },
    /// The options are inconsistent.
    #[error("invalid options: {0}")]
    InvalidOptions(String),
    /// The file system failed.
    #[error("I/O error during {op} on {}: {source}", .path.display())]
    Io {
        /// What the store was doing.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
}

fn describe_version(v: Option<u64>) -> String {
    match v {
        None => "no stream".to_owned(),
        Some(v) => format!("version {v}"),
    }
}

impl Error {
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { op, path, source }
    }
}
