//! Iterators over `$all`, the whole log in position order.

use std::sync::Arc;

use crate::{
    error::{Error, Result},
    format::{CorruptionKind, Record},
    io::ReadView,
    segment::Segment,
    shared::Shared,
};

use super::{
    EventRef, Locator, RecordedEvent, locator::verify_at, source::Sources, text::TextCache,
};

/// Events of `$all` from a position forward, up to the head as of the call that made it.
/// Walks the segments record by record: one decode per event, no lookups.
///
/// As an [`Iterator`] it yields [`RecordedEvent`]s, handles that share the segment's mapped
/// bytes; [`ReadAll::next_ref`] lends the same events without that reference count.
pub struct ReadAll {
    walk: Walk,
    sources: Sources,
    text: TextCache,
}

/// The forward walk itself: how far it may go, and where it stands.
struct Walk {
    remaining: usize,
    at: Place,
}

/// Where a forward walk stands and what it must still check.
struct Place {
    shared: Arc<Shared>,
    from: u64,
    end: u64,
    cursor: Option<Cursor>,
    /// Position of the last event returned, to check the order.
    last: Option<u64>,
}

/// Where a forward read stands: a segment, a view of it, and the offset of the next record.
struct Cursor {
    segment: Arc<Segment>,
    view: Arc<dyn ReadView>,
    /// `view`'s length, kept here so the walk asks the view for its bytes once per event.
    view_len: usize,
    offset: usize,
}

/// A record the walk stepped onto: verified, in `view` at `offset`.
struct Found<'a> {
    view: &'a Arc<dyn ReadView>,
    offset: usize,
    record: Record<'a>,
}

impl ReadAll {
    pub(crate) fn new(shared: Arc<Shared>, from: u64, limit: usize) -> ReadAll {
        let end = shared.head();
        let at = Place { shared, from, end, cursor: None, last: None };
        let walk = Walk { remaining: limit, at };
        ReadAll { walk, sources: Sources::default(), text: TextCache::default() }
    }

    /// The next event, lent until the next call: what [`Iterator::next`] returns, without a
    /// reference count per event (both check the stream name and event type to be UTF-8 only
    /// when they differ from the previous event's). For a loop over a large read:
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use annal::{ExpectedVersion, NewEvent, Position, Store};
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let store = Store::open(dir.path())?;
    /// let placed = NewEvent::new("Placed", b"{}".to_vec());
    /// store.append("order-1", ExpectedVersion::NoStream, [placed])?;
    /// let mut read = store.read_all_forward(Position::START, usize::MAX);
    /// let mut bytes = 0;
    /// while let Some(event) = read.next_ref() {
    ///     let event = event?;
    ///     assert_eq!((event.stream(), event.event_type()), ("order-1", "Placed"));
    ///     bytes += event.data().len();
    /// }
    /// assert_eq!(bytes, 2);
    /// # Ok(())
    /// # }
    /// ```
    pub fn next_ref(&mut self) -> Option<Result<EventRef<'_>>> {
        match self.walk.next_found()? {
            Ok(found) => {
                let bare = self.sources.bare(found.view);
                Some(Ok(EventRef::new(bare, found.offset, found.record, &mut self.text)))
            }
            Err(e) => Some(Err(e)),
        }
    }
}

impl Walk {
    /// The next record within the limit, or the error that ends the read.
    fn next_found(&mut self) -> Option<Result<Found<'_>>> {
        if self.remaining == 0 {
            return None;
        }
        match self.at.step() {
            Ok(Some(found)) => {
                self.remaining -= 1;
                Some(Ok(found))
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

impl Place {
    /// Positions the cursor at the first record at or after `from`.
    fn start(&self) -> Result<Option<Cursor>> {
        let first = self.shared.segments().first_position();
        let Some(segment) = self.shared.segments().find(self.from.max(first)) else {
            return Ok(None);
        };
        let view = segment.view(segment.committed_len())?;
        let view_len = view.bytes().len();
        let offset = segment.locate_ceil(view.bytes(), self.from).unwrap_or(view_len);
        Ok(Some(Cursor { segment, view, view_len, offset }))
    }

    /// Moves past the next record, verified and checked for order.
    fn step(&mut self) -> Result<Option<Found<'_>>> {
        if self.cursor.is_none() {
            self.cursor = self.start()?;
        }
        let Some(cursor) = self.cursor.as_mut() else { return Ok(None) };
        while cursor.offset >= cursor.view_len {
            if !cursor.advance(&self.shared)? {
                return Ok(None);
            }
        }
        let Cursor { segment, view, offset, .. } = cursor;
        let at = *offset;
        let record = verify_at(segment, view.bytes(), at, None)?;
        let position = record.position();
        if position >= self.end {
            return Ok(None);
        }
        if self.last.is_some_and(|last| position <= last) || position < self.from {
            let expected = self.last.map_or(self.from, |l| l + 1);
            return Err(Error::Corruption {
                segment: segment.name().to_owned(),
                offset: at as u64,
                kind: CorruptionKind::PositionMismatch { expected, found: position },
            });
        }
        *offset = segment.skip_holes(at + record.len());
        self.last = Some(position);
        Ok(Some(Found { view, offset: at, record }))
    }
}

impl Cursor {
    /// At the end of the view: maps what the segment committed since, or else moves on to the
    /// next segment. `false` at the end of the last one.
    fn advance(&mut self, shared: &Shared) -> Result<bool> {
        if self.segment.committed_len() > self.view_len as u64 {
            self.view = self.segment.view(self.view_len as u64 + 1)?;
        } else {
            let after = self.segment.end_position();
            let Some(next) = next_segment(shared, &self.segment) else {
                return Ok(false);
            };
            self.view = next.view(next.committed_len())?;
            let len = self.view.bytes().len();
            self.offset = next.locate_ceil(self.view.bytes(), after).unwrap_or(len);
            self.segment = next;
        }
        self.view_len = self.view.bytes().len();
        Ok(true)
    }
}

/// The segment that continues the log after `segment`: the one holding the position after its
/// end. That is usually the next by base, but after a scavenge merged `segment` (or the segments
/// after it) into another, it is the merged one, which may start before `segment` did. A
/// salvaged segment may end before the next one starts; then it is the next by base.
fn next_segment(shared: &Shared, segment: &Arc<Segment>) -> Option<Arc<Segment>> {
    let segments = shared.segments();
    segments
        .find(segment.end_position())
        .filter(|s| !Arc::ptr_eq(s, segment) && s.end_position() > segment.end_position())
        .or_else(|| segments.next_after(segment.base_position()))
}

impl Iterator for ReadAll {
    type Item = Result<RecordedEvent>;

    fn next(&mut self) -> Option<Self::Item> {
        let found = self.walk.next_found()?;
        Some(found.map(|f| {
            let source = Arc::clone(self.sources.get(f.view, &f.record));
            RecordedEvent::new(source, f.offset, f.record)
        }))
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
        ReadAllBackward { locator: Locator::sequential(shared), next, remaining: limit }
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
