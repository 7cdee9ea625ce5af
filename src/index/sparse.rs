//! The sparse global index of one segment: the byte offset of every `stride`-th position.

/// Offsets of positions `base`, `base + stride`, `base + 2·stride`, … within one segment.
///
/// Memory: 4 bytes per `stride` events. A lookup lands at most `stride - 1` records before the
/// one asked for; the reader hops forward from there by record lengths.
#[derive(Debug)]
pub(crate) struct SparseIndex {
    base: u64,
    stride: u64,
    offsets: Vec<u32>,
}

impl SparseIndex {
    /// An empty index for a segment whose first position is `base`.
    pub fn new(base: u64, stride: u32) -> SparseIndex {
        debug_assert!(stride > 0);
        SparseIndex {
            base,
            stride: u64::from(stride),
            offsets: Vec::new(),
        }
    }

    /// Records that the record at `position` starts at byte `offset`. Positions must be noted
    /// in ascending order without gaps.
    pub fn note(&mut self, position: u64, offset: u32) {
        let rel = position - self.base;
        if rel.is_multiple_of(self.stride) {
            debug_assert_eq!(self.offsets.len() as u64, rel / self.stride);
            self.offsets.push(offset);
        }
    }

    /// The nearest indexed record at or before `position`: its position and byte offset.
    pub fn floor(&self, position: u64) -> Option<(u64, u32)> {
        let rel = position.checked_sub(self.base)?;
        let k = (rel / self.stride).min(self.offsets.len().checked_sub(1)? as u64);
        Some((self.base + k * self.stride, self.offsets[k as usize]))
    }

    /// Bytes of heap this index holds.
    pub fn memory_bytes(&self) -> usize {
        self.offsets.capacity() * size_of::<u32>()
    }

    /// Gives back spare capacity once the segment is sealed.
    pub fn shrink(&mut self) {
        self.offsets.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floor_finds_nearest_entry_at_or_before() {
        let mut idx = SparseIndex::new(100, 4);
        for (i, pos) in (100..110).enumerate() {
            idx.note(pos, i as u32 * 10);
        }
        assert_eq!(idx.floor(99), None);
        assert_eq!(idx.floor(100), Some((100, 0)));
        assert_eq!(idx.floor(103), Some((100, 0)));
        assert_eq!(idx.floor(105), Some((104, 40)));
        assert_eq!(idx.floor(109), Some((108, 80)));
        assert_eq!(idx.floor(500), Some((108, 80)));
    }

    #[test]
    fn floor_of_empty_index_is_none() {
        assert_eq!(SparseIndex::new(0, 4).floor(0), None);
    }
}
