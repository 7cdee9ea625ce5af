//! Finding and verifying the record at (or nearest below) a position, with the current segment
//! and view cached so that nearby reads cost a decode and little else.

use std::sync::Arc;

use crate::{
    error::{Error, Result},
    format::{CorruptionKind, Record, decode_record},
    io::ReadView,
    segment::Segment,
    shared::Shared,
};

use super::{RecordedEvent, source::Sources};

/// Reads committed records by position.
pub(crate) struct Locator {
    shared: Arc<Shared>,
    segment: Option<Arc<Segment>>,
    view: Arc<dyn ReadView>,
    /// Positions below this are inside `view`.
    view_end: u64,
    /// Whether the positions asked for are scattered (a stream's) rather than consecutive.
    scattered: bool,
    /// What the events read share: `view`, and their text while it repeats.
    sources: Sources,
}

impl Locator {
    /// A locator for positions scattered over the log, such as a stream's: a cold page costs
    /// the read of that page, without read-ahead.
    pub fn new(shared: Arc<Shared>) -> Locator {
        Locator::with_access(shared, true)
    }

    /// A locator for consecutive positions (`$all` backward): the kernel reads around them.
    pub fn sequential(shared: Arc<Shared>) -> Locator {
        Locator::with_access(shared, false)
    }

    fn with_access(shared: Arc<Shared>, scattered: bool) -> Locator {
        let view: Arc<dyn ReadView> = Arc::new(Vec::new());
        Locator { shared, segment: None, view, view_end: 0, scattered, sources: Sources::default() }
    }

    /// The store this reads from.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Reads and verifies the committed record at `position`; `None` if no event has it (a
    /// position left empty by a salvaging open).
    pub fn read(&mut self, position: u64) -> Result<Option<RecordedEvent>> {
        let Some(segment) = self.segment_for(position)? else { return Ok(None) };
        match segment.locate(self.view.bytes(), position) {
            Some(offset) => self.decode_at(&segment, offset, Some(position)).map(Some),
            None => Ok(None),
        }
    }

    /// Reads and verifies the last committed record at or before `position`.
    pub fn read_floor(&mut self, position: u64) -> Result<Option<RecordedEvent>> {
        let mut segment = self.segment_for(position)?;
        while let Some(s) = segment {
            if let Some(offset) = s.locate_floor(self.view.bytes(), position) {
                return self.decode_at(&s, offset, None).map(Some);
            }
            segment = self.shared.segments().prev_before(s.base_position());
            if let Some(prev) = &segment {
                self.switch_to(prev)?;
            }
        }
        Ok(None)
    }

    /// The segment holding `position` with a view covering it.
    fn segment_for(&mut self, position: u64) -> Result<Option<Arc<Segment>>> {
        if let Some(segment) = &self.segment
            && position >= segment.base_position()
            && position < self.view_end
        {
            return Ok(Some(Arc::clone(segment)));
        }
        let Some(segment) = self.shared.segments().find(position) else { return Ok(None) };
        self.switch_to(&segment)?;
        Ok(Some(segment))
    }

    /// Decodes and verifies the record at `offset` of the view of `segment`, which must hold
    /// `expected` if given.
    fn decode_at(
        &mut self,
        segment: &Segment,
        offset: usize,
        expected: Option<u64>,
    ) -> Result<RecordedEvent> {
        let record = verify_at(segment, self.view.bytes(), offset, expected)?;
        let source = Arc::clone(self.sources.get(&self.view, &record));
        Ok(RecordedEvent::new(source, offset, record))
    }

    fn switch_to(&mut self, segment: &Arc<Segment>) -> Result<()> {
        // End position before length: the writer publishes them in the other order.
        self.view_end = segment.end_position();
        let len = segment.committed_len();
        self.view = match self.scattered {
            true => segment.point_view(len)?,
            false => segment.view(len)?,
        };
        self.segment = Some(Arc::clone(segment));
        Ok(())
    }
}

/// Decodes and verifies the record at `offset` of `segment`'s `bytes`, which must hold
/// `expected` if given. Inlined: it is the per-record step of every `$all` read (the compiler
/// stopped inlining it on its own when the crate grew, which cost 4.5% of a read's
/// instructions under callgrind; `#[inline]` alone stopped sufficing when the locator's decode
/// became a method, which cost 7%).
#[inline(always)]
pub(crate) fn verify_at<'a>(
    segment: &Segment,
    bytes: &'a [u8],
    offset: usize,
    expected: Option<u64>,
) -> Result<Record<'a>> {
    let corrupt = |kind| Error::Corruption {
        segment: segment.name().to_owned(),
        offset: offset as u64,
        kind,
    };
    let record = decode_record(bytes, offset, segment.layout()).map_err(corrupt)?;
    if let Some(expected) = expected.filter(|&p| p != record.position()) {
        return Err(corrupt(CorruptionKind::PositionMismatch {
            expected,
            found: record.position(),
        }));
    }
    Ok(record)
}
