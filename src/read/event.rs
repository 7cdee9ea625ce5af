//! A recorded event: a handle onto its verified bytes in a segment view.

use std::{
    fmt,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use uuid::Uuid;

use crate::{
    format::{Layout, Record},
    io::ReadView,
    types::{Position, StreamVersion},
};

/// An event as recorded in the log. Cloning it is cheap (it shares the segment's mapped bytes;
/// nothing is copied), and its bytes were verified against their checksum when it was read.
#[derive(Clone)]
pub struct RecordedEvent {
    view: Arc<dyn ReadView>,
    offset: usize,
    len: usize,
    layout: Layout,
    /// The stream's name, when the read that found the event compared the record's name with
    /// it byte for byte (a stream read): [`stream`](RecordedEvent::stream) then returns it
    /// without checking the record's bytes for UTF-8 again.
    stream: Option<Arc<str>>,
}

impl RecordedEvent {
    /// Wraps `record`, a record of `view` that was verified at `offset`.
    pub(crate) fn new(view: Arc<dyn ReadView>, offset: usize, record: Record<'_>) -> RecordedEvent {
        RecordedEvent { view, offset, len: record.len(), layout: record.layout(), stream: None }
    }

    /// The same event, known to belong to `stream`: its record's stream name is `stream`'s
    /// bytes, which the caller compared.
    pub(crate) fn in_stream(mut self, stream: &Arc<str>) -> RecordedEvent {
        debug_assert_eq!(self.record().stream_bytes(), stream.as_bytes());
        self.stream = Some(Arc::clone(stream));
        self
    }

    pub(crate) fn record(&self) -> Record<'_> {
        Record::verified(&self.view.bytes()[self.offset..self.offset + self.len], self.layout)
    }

    /// Global position in the log.
    pub fn position(&self) -> Position {
        Position(self.record().position())
    }

    /// Version within its stream.
    pub fn version(&self) -> StreamVersion {
        StreamVersion(self.record().version())
    }

    /// The stream it belongs to.
    pub fn stream(&self) -> &str {
        match &self.stream {
            Some(stream) => stream,
            None => self.record().stream(),
        }
    }

    /// The event id.
    pub fn id(&self) -> Uuid {
        self.record().id()
    }

    /// The event type.
    pub fn event_type(&self) -> &str {
        self.record().event_type()
    }

    /// The event's tags, in order: none for an event without them, or written before format 3.
    pub fn tags(&self) -> impl Iterator<Item = &str> {
        self.record().tags()
    }

    /// The payload.
    pub fn data(&self) -> &[u8] {
        self.record().data()
    }

    /// The metadata.
    pub fn metadata(&self) -> &[u8] {
        self.record().metadata()
    }

    /// Commit time in microseconds since the Unix epoch (the same for every event of a group).
    pub fn timestamp_us(&self) -> u64 {
        self.record().timestamp_us()
    }

    /// Commit time.
    pub fn timestamp(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_micros(self.timestamp_us())
    }

    /// Bytes the event takes in its segment (header and all).
    pub fn encoded_len(&self) -> usize {
        self.len
    }
}

impl fmt::Debug for RecordedEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordedEvent")
            .field("position", &self.position().get())
            .field("stream", &self.stream())
            .field("version", &self.version().get())
            .field("id", &self.id())
            .field("event_type", &self.event_type())
            .field("data_len", &self.data().len())
            .field("metadata_len", &self.metadata().len())
            .finish()
    }
}
