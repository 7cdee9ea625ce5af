//! A recorded event: a handle onto its verified bytes in a segment view.

use std::{
    fmt,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use uuid::Uuid;

use crate::{
    format::{Layout, Record},
    types::{Position, StreamVersion},
};

use super::source::Source;

/// An event as recorded in the log. Cloning it is cheap (it shares the segment's mapped bytes;
/// nothing is copied), and its bytes were verified against their checksum when it was read.
#[derive(Clone)]
pub struct RecordedEvent {
    /// The view holding the record, and the record's stream name and event type.
    source: Arc<Source>,
    /// The record's position and version, kept out of its bytes: the fields read most.
    position: u64,
    version: u64,
    offset: usize,
    /// The record's length (a record's length field is 32 bits).
    len: u32,
    /// Where the metadata starts, from the record's first byte.
    metadata_at: u32,
    /// Where the data starts, from the record's first byte; it runs to the record's end.
    data_at: u32,
    layout: Layout,
}

impl RecordedEvent {
    /// Wraps `record`, a record of `source`'s view that was verified at `offset` and that has
    /// `source`'s text if it has any.
    #[inline(always)]
    pub(crate) fn new(source: Arc<Source>, offset: usize, record: Record<'_>) -> RecordedEvent {
        debug_assert!(source.stream().is_none_or(|s| s == record.stream()));
        debug_assert!(source.event_type().is_none_or(|t| t == record.event_type()));
        let (metadata_at, data_at) = record.body_at();
        // A record's length comes from a 32-bit field (decoding checked that it is the length
        // of its bytes), and its parts lie inside it: none of these narrowings cuts.
        debug_assert!(u32::try_from(record.len()).is_ok() && data_at <= record.len());
        let narrow = |n: usize| n as u32;
        RecordedEvent {
            source,
            position: record.position(),
            version: record.version(),
            offset,
            len: narrow(record.len()),
            metadata_at: narrow(metadata_at),
            data_at: narrow(data_at),
            layout: record.layout(),
        }
    }

    /// The record's bytes.
    #[inline]
    fn bytes(&self) -> &[u8] {
        &self.source.view().bytes()[self.offset..self.offset + self.len as usize]
    }

    #[inline]
    pub(crate) fn record(&self) -> Record<'_> {
        Record::verified(self.bytes(), self.layout)
    }

    /// Global position in the log.
    #[inline]
    pub fn position(&self) -> Position {
        Position(self.position)
    }

    /// Version within its stream.
    #[inline]
    pub fn version(&self) -> StreamVersion {
        StreamVersion(self.version)
    }

    /// The stream it belongs to.
    #[inline]
    pub fn stream(&self) -> &str {
        match self.source.stream() {
            Some(stream) => stream,
            None => self.record().stream(),
        }
    }

    /// The event id.
    #[inline]
    pub fn id(&self) -> Uuid {
        self.record().id()
    }

    /// The event type.
    #[inline]
    pub fn event_type(&self) -> &str {
        match self.source.event_type() {
            Some(event_type) => event_type,
            None => self.record().event_type(),
        }
    }

    /// The event's tags, in order: none for an event without them, or written before format 3.
    pub fn tags(&self) -> impl Iterator<Item = &str> {
        self.record().tags()
    }

    /// The payload.
    #[inline]
    pub fn data(&self) -> &[u8] {
        &self.bytes()[self.data_at as usize..]
    }

    /// The metadata.
    #[inline]
    pub fn metadata(&self) -> &[u8] {
        &self.bytes()[self.metadata_at as usize..self.data_at as usize]
    }

    /// Commit time in microseconds since the Unix epoch (the same for every event of a group).
    #[inline]
    pub fn timestamp_us(&self) -> u64 {
        self.record().timestamp_us()
    }

    /// Commit time.
    pub fn timestamp(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_micros(self.timestamp_us())
    }

    /// Bytes the event takes in its segment (header and all).
    pub fn encoded_len(&self) -> usize {
        self.len as usize
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
