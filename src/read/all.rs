//! Iterators over `$all`, the whole log in position order.

use std::sync::Arc;

use crate::{
    error::{Error, Result},
    format::CorruptionKind,
    io::ReadView,
    segment::Segment,
    shared::Shared,
};

use super::{Locator, RecordedEvent, locator::decode_at};

/// Events of `$all` from a position forward, up to the head as of the call that made it.
/// Walks the segments record by record: one decode per event, no lookups.
pub struct ReadAll {
    shared: Arc<Shared>,
    from: u64,
    end: u64,
    remaining: usize,
    cursor: Option<Cursor>,
    /// Position of the last event returned, to check the order.
    last: Option<u64>,
}

/// Where a forward read stands: a segment, a view of it, and the offset of the next record.
struct Cursor {
    segment: Arc<Segment>,
    view: Arc<dyn ReadView>,
    offset: usize,
}

impl ReadAll {
    pub(crate) fn new(shared: Arc<Shared>, from: u64, limit: usize) -> ReadAll {
        let end = shared.head();
        ReadAll { shared, from, end, remaining: limit, cursor: None, last: None }
    }

    /// Positions the cursor at the first record at or after `from`.
    fn start(&self) -> Result<Option<Cursor>> {
        let first = self.shared.segments.first_position();
        let Some(segment) = self.shared.segments.find(self.from.max(first)) else {
            return Ok(None);
        };
        let view = segment.view(segment.committed_len())?;
        let offset = segment.locate_ceil(view.bytes(), self.from).unwrap_or(view.bytes().len());
        Ok(Some(Cursor { segment, view, offset }))
    }

    fn step(&mut self) -> Result<Option<RecordedEvent>> {
        if self.cursor.is_none() {
            self.cursor = self.start()?;
        }
        let Some(cursor) = self.cursor.as_mut() else { return Ok(None) };
        while cursor.offset >= cursor.view.bytes().len() {
            let have = cursor.view.bytes().len() as u64;
            if cursor.segment.committed_len() > have {
                cursor.view = cursor.segment.view(have + 1)?;
                continue;
            }
            let after = cursor.segment.end_position();
            let Some(next) = next_segment(&self.shared, &cursor.segment) else {
                return Ok(None);
            };
            cursor.view = next.view(next.committed_len())?;
            let len = cursor.view.bytes().len();
            cursor.offset = next.locate_ceil(cursor.view.bytes(), after).unwrap_or(len);
            cursor.segment = next;
        }
        let event = decode_at(&cursor.segment, &cursor.view, cursor.offset, None)?;
        let position = event.position().get();
        if position >= self.end {
            return Ok(None);
        }
        if self.last.is_some_and(|last| position <= last) || position < self.from {
            let expected = self.last.map_or(self.from, |l| l + 1);
            return Err(Error::Corruption {
                segment: cursor.segment.name().to_owned(),
                offset: cursor.offset as u64,
                kind: CorruptionKind::PositionMismatch { expected, found: position },
            });
        }
        cursor.offset = cursor.segment.skip_holes(cursor.offset + event.encoded_len());
        self.last = Some(position);
        Ok(Some(event))
    }
}

/// The segment that continues the log after `segment`: the one holding the position after its
/// end. That is usually the next by base, but after a scavenge merged `segment` (or the segments
/// after it) into another, it is the merged one, which may start before `segment` did. A
/// salvaged segment may end before the next one starts; then it is the next by base.
fn next_segment(shared: &Shared, segment: &Arc<Segment>) -> Option<Arc<Segment>> {
    let segments = &shared.segments;
    segments
        .find(segment.end_position())
        .filter(|s| !Arc::ptr_eq(s, segment) && s.end_position() > segment.end_position())
        .or_else(|| segments.next_after(segment.base_position()))
}

impl Iterator for ReadAll {
    type Item = Result<RecordedEvent>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        match self.step() {
            Ok(Some(event)) => {
                self.remaining -= 1;
                Some(Ok(event))
            }
            Ok(None) => {
                self.remaining = 0;
                None
            }
            Err(e) => {
                self.remaining = 0;
                Some(Err(e))
            }
        }
    }
}

/// Events of `$all` from a position backward to the start.
pub struct ReadAllBackward {
    locator: Locator,
    /// The position to read at or below next, `None` once past the first.
    next: Option<u64>,
    remaining: usize,
}

impl ReadAllBackward {
    pub(crate) fn new(shared: Arc<Shared>, from: u64, limit: usize) -> ReadAllBackward {
        let next = shared.head().checked_sub(1).map(|last| from.min(last));
        ReadAllBackward { locator: Locator::new(shared), next, remaining: limit }
    }
}

impl Iterator for ReadAllBackward {
    type Item = Result<RecordedEvent>;

    fn next(&mut self) -> Option<Self::Item> {
        let position = self.next.filter(|_| self.remaining > 0)?;
        match self.locator.read_floor(position) {
            Ok(Some(event)) => {
                self.remaining -= 1;
                self.next = event.position().get().checked_sub(1);
                Some(Ok(event))
            }
            Ok(None) => {
                self.next = None;
                None
            }
            Err(e) => {
                self.remaining = 0;
                Some(Err(e))
            }
        }
    }
}
