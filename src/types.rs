//! The vocabulary of the store: positions, stream versions, expected versions and the events a
//! caller hands in. Newtypes keep a global position from being mistaken for a stream version.

use std::fmt;

use uuid::Uuid;

/// A global position in the log: dense across the whole store, assigned by the writer at commit,
/// never reused and never changed afterwards.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Position(pub u64);

impl Position {
    /// The first position of every log.
    pub const START: Position = Position(0);
    /// Stands for "the last committed event" when reading backwards.
    pub const END: Position = Position(u64::MAX);

    /// The position as a plain number.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl From<u64> for Position {
    fn from(value: u64) -> Self {
        Position(value)
    }
}

/// The version of an event within its stream: 0 for the stream's first event, dense after that.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct StreamVersion(pub u64);

impl StreamVersion {
    /// The first version of every stream.
    pub const START: StreamVersion = StreamVersion(0);
    /// Stands for "the stream's last event" when reading backwards.
    pub const END: StreamVersion = StreamVersion(u64::MAX);

    /// The version as a plain number.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for StreamVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl From<u64> for StreamVersion {
    fn from(value: u64) -> Self {
        StreamVersion(value)
    }
}

/// What the caller believes about a stream before appending to it (optimistic concurrency).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExpectedVersion {
    /// Append whatever the stream's state.
    Any,
    /// The stream must have no events yet, or have been deleted (soft-deleted; appending then
    /// brings it back, its versions continuing where they were).
    NoStream,
    /// The stream must have at least one event and not be deleted.
    StreamExists,
    /// The stream's last event must have exactly this version.
    Exact(u64),
}

impl ExpectedVersion {
    /// Whether a stream whose last version is `current` (None: no events) satisfies this.
    pub fn admits(self, current: Option<u64>) -> bool {
        match self {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => current.is_none(),
            ExpectedVersion::StreamExists => current.is_some(),
            ExpectedVersion::Exact(v) => current == Some(v),
        }
    }

    /// Whether a stream whose last version is `last` satisfies this, where `exists` says if it
    /// has events and is not deleted (a soft-deleted stream keeps its last version).
    pub(crate) fn admits_state(self, last: Option<u64>, exists: bool) -> bool {
        match self {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => !exists,
            ExpectedVersion::StreamExists => exists,
            ExpectedVersion::Exact(v) => last == Some(v),
        }
    }
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedVersion::Any => f.write_str("any"),
            ExpectedVersion::NoStream => f.write_str("no stream"),
            ExpectedVersion::StreamExists => f.write_str("stream exists"),
            ExpectedVersion::Exact(v) => write!(f, "version {v}"),
        }
    }
}

/// An event as a caller hands it to [`Store::append`](crate::Store::append).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEvent {
    /// The event's id; a random (v4) UUID is generated when `None`. Give your own ids to make
    /// retries idempotent.
    pub id: Option<Uuid>,
    /// The event type, 1..=255 bytes of UTF-8.
    pub event_type: String,
    /// The payload, opaque to the store.
    pub data: Vec<u8>,
    /// Caller metadata (correlation ids and the like), opaque to the store.
    pub metadata: Vec<u8>,
}

impl NewEvent {
    /// An event of `event_type` carrying `data`, with a generated id and no metadata.
    pub fn new(event_type: impl Into<String>, data: impl Into<Vec<u8>>) -> Self {
        NewEvent {
            id: None,
            event_type: event_type.into(),
            data: data.into(),
            metadata: Vec::new(),
        }
    }

    /// Sets the event id (use it to make a retried append idempotent).
    pub fn with_id(mut self, id: Uuid) -> Self {
        self.id = Some(id);
        self
    }

    /// Sets the metadata bytes.
    pub fn with_metadata(mut self, metadata: impl Into<Vec<u8>>) -> Self {
        self.metadata = metadata.into();
        self
    }
}

/// One stream's part of a multi-stream append: see [`Store::append_multi`](crate::Store::append_multi).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamAppend {
    /// The stream to append to.
    pub stream: String,
    /// The version the stream must be at for the whole append to commit.
    pub expected: ExpectedVersion,
    /// The events, in order.
    pub events: Vec<NewEvent>,
}

impl StreamAppend {
    /// A part appending `events` to `stream` if it is at `expected`.
    pub fn new(
        stream: impl Into<String>,
        expected: ExpectedVersion,
        events: impl IntoIterator<Item = NewEvent>,
    ) -> Self {
        StreamAppend { stream: stream.into(), expected, events: events.into_iter().collect() }
    }
}

/// What a committed append to one stream produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendResult {
    /// Position of the append's first event.
    pub first_position: Position,
    /// Position of the append's last event.
    pub last_position: Position,
    /// Version of the stream's first new event.
    pub first_version: StreamVersion,
    /// Version of the stream's last event after the append (use it as the next `Exact`).
    pub last_version: StreamVersion,
}

/// What a committed multi-stream append produced: one result per part, in the caller's order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MultiAppendResult {
    /// Position of the first event of the whole append.
    pub first_position: Position,
    /// Position of the last event of the whole append.
    pub last_position: Position,
    /// Per part, in the order given: the stream and what its part produced.
    pub streams: Vec<(String, AppendResult)>,
}
