//! A borrowed event: the verified bytes of one record lent by a read for as long as the read
//! is not advanced, so that reading costs no reference count per event and no UTF-8 check for
//! text the previous event already had.

use std::{
    fmt,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use uuid::Uuid;

use crate::{
    format::Record,
    types::{Position, StreamVersion},
};

use super::{RecordedEvent, source::Source, text::TextCache};

/// An event lent by [`ReadAll::next_ref`](super::ReadAll::next_ref): the same fields as a
/// [`RecordedEvent`], borrowed from the read instead of shared with it. Its bytes were verified
/// against their checksum when it was read. Turn it into a `RecordedEvent` with
/// [`EventRef::to_recorded`] to keep it past the next call.
#[derive(Clone, Copy)]
pub struct EventRef<'a> {
    record: Record<'a>,
    /// The record's stream name and event type.
    text: &'a TextCache,
    /// The view the record is in, as a source without text for [`EventRef::to_recorded`].
    bare: &'a Arc<Source>,
    offset: usize,
}

impl<'a> EventRef<'a> {
    /// Lends the record at `offset` of `source`'s view, verified already, which has `source`'s
    /// text if it has any.
    #[inline]
    pub(crate) fn new(
        bare: &'a Arc<Source>,
        offset: usize,
        record: Record<'a>,
        text: &'a mut TextCache,
    ) -> EventRef<'a> {
        if !text.holds(record.text_bytes()) {
            text.fill(record.text_bytes());
        }
        EventRef { record, text, bare, offset }
    }

    /// Global position in the log.
    pub fn position(&self) -> Position {
        Position(self.record.position())
    }

    /// Version within its stream.
    pub fn version(&self) -> StreamVersion {
        StreamVersion(self.record.version())
    }

    /// The stream it belongs to.
    pub fn stream(&self) -> &'a str {
        self.text.stream()
    }

    /// The event id.
    pub fn id(&self) -> Uuid {
        self.record.id()
    }

    /// The event type.
    pub fn event_type(&self) -> &'a str {
        self.text.event_type()
    }

    /// The payload.
    pub fn data(&self) -> &'a [u8] {
        self.record.data()
    }

    /// The metadata.
    pub fn metadata(&self) -> &'a [u8] {
        self.record.metadata()
    }

    /// Commit time in microseconds since the Unix epoch (the same for every event of a group).
    pub fn timestamp_us(&self) -> u64 {
        self.record.timestamp_us()
    }

    /// Commit time.
    pub fn timestamp(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_micros(self.timestamp_us())
    }

    /// Bytes the event takes in its segment (header and all).
    pub fn encoded_len(&self) -> usize {
        self.record.len()
    }

    /// The same event as a [`RecordedEvent`], which shares the segment's mapped bytes and so
    /// outlives the read (one reference count; nothing is copied).
    pub fn to_recorded(&self) -> RecordedEvent {
        RecordedEvent::new(Arc::clone(self.bare), self.offset, self.record)
    }
}

impl fmt::Debug for EventRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventRef")
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
