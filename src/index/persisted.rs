//! A segment's persisted index as the store holds it: the bytes of its index file (mapped, so
//! they cost no heap) or of one rebuilt in memory. On open only its header is checked (so an
//! open reads one page per segment, not the index); what a read takes from it is checked
//! against the segment itself (the record a position lands on, a stream's versions tiling
//! across segments), and anything that disagrees marks it bad, after which the segment's own
//! bytes answer (see `Segment::rebuild_index`).

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use crate::{
    format::{DerivedFileError, IndexFile, SegmentBinding},
    io::ReadView,
};

/// Where a segment index's bytes come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Origin {
    /// The segment's index file, mapped.
    File,
    /// Built in memory from the segment (its file was bad, or could not be written).
    Memory,
}

/// One segment's index, ready for lookups.
pub(crate) struct SegmentIndex {
    bytes: Arc<dyn ReadView>,
    binding: SegmentBinding,
    /// The segment header's group bound (not in the index file; the stream table lists it).
    group_bytes_max: u32,
    origin: Origin,
    /// Set when a read found it disagreeing with its segment: no read uses it again.
    bad: AtomicBool,
}

impl SegmentIndex {
    /// Takes `bytes` as an index file whose header passes its checks, of a segment whose
    /// header states `group_bytes_max`.
    pub fn new(
        bytes: Arc<dyn ReadView>,
        origin: Origin,
        group_bytes_max: u32,
    ) -> Result<SegmentIndex, DerivedFileError> {
        let binding = IndexFile::parse_header(bytes.bytes())?.binding();
        let bad = AtomicBool::new(false);
        Ok(SegmentIndex { bytes, binding, group_bytes_max, origin, bad })
    }

    /// What segment it was built from.
    pub fn binding(&self) -> &SegmentBinding {
        &self.binding
    }

    /// The group bound in its segment's header.
    pub fn group_bytes_max(&self) -> u32 {
        self.group_bytes_max
    }

    /// Whether it lives in a file or in memory.
    pub fn origin(&self) -> Origin {
        self.origin
    }

    /// The index, unless it was marked bad (or its bytes changed under the mapping, which only
    /// someone writing to the file from outside could do).
    pub fn view(&self) -> Option<IndexFile<'_>> {
        if self.bad.load(Ordering::Acquire) {
            return None;
        }
        IndexFile::parse_header(self.bytes.bytes()).ok()
    }

    /// Marks it bad: a read found it disagreeing with its segment.
    pub fn mark_bad(&self) {
        self.bad.store(true, Ordering::Release);
    }

    /// Whether it was marked bad.
    pub fn is_bad(&self) -> bool {
        self.bad.load(Ordering::Acquire)
    }

    /// Checks the whole body (checksum and structure); marks it bad if that fails.
    pub fn check_body(&self) -> bool {
        let ok = self.view().is_some_and(|v| v.check_body().is_ok());
        if !ok {
            self.mark_bad();
        }
        ok
    }
}
