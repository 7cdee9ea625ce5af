//! Finding and verifying the record at a position, with the current segment and view cached so
//! that consecutive reads cost a decode and nothing else.

use std::sync::Arc;

use crate::{
    error::{Error, Result},
    format::{CorruptionKind, decode_record},
    io::ReadView,
    segment::Segment,
    shared::Shared,
};

use super::RecordedEvent;

/// Reads committed records by position.
pub(crate) struct Locator {
    shared: Arc<Shared>,
    segment: Option<Arc<Segment>>,
    view: Arc<dyn ReadView>,
    /// Positions below this are inside `view`.
    view_end: u64,
    /// Where the record after the last one read starts, if it is in the same segment.
    next: Option<(u64, usize)>,
}

impl Locator {
    pub fn new(shared: Arc<Shared>) -> Locator {
        Locator {
            shared,
            segment: None,
            view: Arc::new(Vec::new()),
            view_end: 0,
            next: None,
        }
    }

    /// The store this reads from.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Reads and verifies the record at `position`, which must be committed.
    pub fn read(&mut self, position: u64) -> Result<RecordedEvent> {
        let segment = self.segment_for(position)?;
        if position >= self.view_end {
            // End position before length: the writer publishes them in the other order.
            self.view_end = segment.end_position();
            self.view = segment.view(segment.committed_len())?;
        }
        let bytes = self.view.bytes();
        let offset = match self.next {
            Some((p, offset)) if p == position => Some(offset),
            _ => segment.locate(bytes, position),
        };
        let corrupt = |offset: usize, kind| Error::Corruption {
            segment: segment.name().to_owned(),
            offset: offset as u64,
            kind,
        };
        let offset = offset.ok_or_else(|| corrupt(0, CorruptionKind::IndexMismatch))?;
        let record = decode_record(bytes, offset).map_err(|kind| corrupt(offset, kind))?;
        if record.position() != position {
            let kind = CorruptionKind::PositionMismatch {
                expected: position,
                found: record.position(),
            };
            return Err(corrupt(offset, kind));
        }
        let len = record.len();
        self.next = Some((position + 1, offset + len));
        Ok(RecordedEvent::new(Arc::clone(&self.view), offset, len))
    }

    /// The segment holding `position`, switching (and forgetting the cached view) if needed.
    fn segment_for(&mut self, position: u64) -> Result<Arc<Segment>> {
        if let Some(segment) = &self.segment
            && position >= segment.base_position()
            && position < segment.end_position()
        {
            return Ok(Arc::clone(segment));
        }
        let segment = self
            .shared
            .segments
            .find(position)
            .filter(|s| position < s.end_position())
            .ok_or_else(|| Error::Corruption {
                segment: String::from("(none)"),
                offset: 0,
                kind: CorruptionKind::IndexMismatch,
            })?;
        self.segment = Some(Arc::clone(&segment));
        self.view_end = 0;
        self.next = None;
        Ok(segment)
    }
}
