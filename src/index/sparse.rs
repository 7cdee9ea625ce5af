//! The sparse global index of one segment: the byte offset of every `stride`-th record.

/// Every `stride`-th record of one segment: its position (relative to the segment's base) and
/// its byte offset. Positions need not be dense (a salvaged or scavenged segment has gaps).
///
/// Memory: 8 bytes per `stride` records. A lookup lands at most `stride - 1` records before
/// the one asked for; the reader hops forward from there by record lengths.
#[derive(Debug)]
pub(crate) struct SparseIndex {
    base: u64,
    stride: u32,
    /// Records noted since the last entry.
    since_entry: u32,
    /// Records noted in all: the events the segment holds.
    records: u64,
    positions: Vec<u32>,
    offsets: Vec<u32>,
}

impl SparseIndex {
    /// An empty index for a segment whose first position is `base`.
    pub fn new(base: u64, stride: u32) -> SparseIndex {
        debug_assert!(stride > 0);
        let (positions, offsets) = (Vec::new(), Vec::new());
        SparseIndex { base, stride, since_entry: 0, records: 0, positions, offsets }
    }

    /// Records that the record at `position` starts at byte `offset`. Records must be noted in
    /// file order, with ascending positions.
    pub fn note(&mut self, position: u64, offset: u32) {
        let rel = u32::try_from(position - self.base).expect("a segment spans < 2^32 positions");
        debug_assert!(self.positions.last().is_none_or(|&p| p < rel));
        if self.since_entry == 0 {
            self.positions.push(rel);
            self.offsets.push(offset);
        }
        self.since_entry = (self.since_entry + 1) % self.stride;
        self.records += 1;
    }

    /// Every how many records an entry is kept.
    pub fn stride(&self) -> u32 {
        self.stride
    }

    /// How many records were noted: the events the segment holds (a scavenged segment's gaps
    /// and a salvaged one's damage hold none).
    pub fn records(&self) -> u64 {
        self.records
    }

    /// The last indexed record at or before `position`: its position and byte offset.
    ///
    /// Entry `k` is the `k × stride`-th record, whose position is at least `k × stride` above
    /// the base (positions strictly increase from 0 up), so no entry after `rel / stride` can be
    /// at or below `rel`: if that entry (or the last) is, it is the floor. In a segment without
    /// gaps, which is every segment the writer is appending to, that is every lookup, with no
    /// search.
    pub fn floor(&self, position: u64) -> Option<(u64, u32)> {
        let rel = u32::try_from(position.checked_sub(self.base)?).unwrap_or(u32::MAX);
        let guess = self.positions.len().checked_sub(1)?.min((rel / self.stride) as usize);
        let k = match self.positions[guess] <= rel {
            true => guess,
            false => self.positions[..guess].partition_point(|&p| p <= rel).checked_sub(1)?,
        };
        Some((self.base + u64::from(self.positions[k]), self.offsets[k]))
    }

    /// Bytes of heap this index holds.
    pub fn memory_bytes(&self) -> usize {
        (self.positions.capacity() + self.offsets.capacity()) * size_of::<u32>()
    }

    /// Gives back spare capacity once the segment is sealed.
    pub fn shrink(&mut self) {
        self.positions.shrink_to_fit();
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
    fn floor_handles_gaps_in_positions() {
        let mut idx = SparseIndex::new(0, 2);
        for (i, pos) in [0u64, 1, 10, 11, 50].into_iter().enumerate() {
            idx.note(pos, i as u32);
        }
        assert_eq!(idx.floor(9), Some((0, 0)));
        assert_eq!(idx.floor(10), Some((10, 2)));
        assert_eq!(idx.floor(49), Some((10, 2)));
        assert_eq!(idx.floor(60), Some((50, 4)));
    }

    #[test]
    fn floor_matches_a_search_of_every_entry_with_and_without_gaps() {
        for stride in [1, 3, 4] {
            let kept: Vec<u64> = (0..60).filter(|p| p % 7 != 3 && !(20..31).contains(p)).collect();
            for positions in [(0..60).collect::<Vec<u64>>(), kept] {
                let mut idx = SparseIndex::new(1000, stride);
                for (i, &p) in positions.iter().enumerate() {
                    idx.note(1000 + p, i as u32);
                }
                let entries: Vec<(u64, u32)> = (0..positions.len())
                    .step_by(stride as usize)
                    .map(|i| (1000 + positions[i], i as u32))
                    .collect();
                for position in (990..1070).chain([u64::MAX]) {
                    let expected = entries.iter().rev().find(|&&(p, _)| p <= position).copied();
                    assert_eq!(idx.floor(position), expected, "stride {stride}, {position}");
                }
            }
        }
    }

    #[test]
    fn floor_of_empty_index_is_none() {
        assert_eq!(SparseIndex::new(0, 4).floor(0), None);
    }
}
