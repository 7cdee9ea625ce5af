//! Salvage scanning: walk a damaged segment, keep every batch that can be proven complete, and
//! step over the damage in between. For disaster recovery only; the normal open refuses damage.

use super::{
    CorruptionKind, Layout, Record, SEGMENT_HEADER_LEN, decode_record, record_len,
    record_position_unverified, scan::read_batch,
};

/// How many bytes a salvage scan may checksum per byte of the segment it scans. Reading an
/// intact segment checksums every byte once; stepping over damage re-reads what the damaged
/// batch and the resync walked. Past this budget the scan stops resyncing and steps over the
/// rest of the segment, so that crafted bytes (a record length at every offset reaching far
/// ahead) cost O(segment bytes), not O(segment bytes²).
pub(crate) const SALVAGE_CHECKSUM_BYTES_PER_SEGMENT_BYTE: u64 = 16;

/// A damaged byte range a salvage scan stepped over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Skipped {
    pub start: usize,
    pub end: usize,
    /// Why the batch at `start` was refused.
    pub kind: CorruptionKind,
}

/// What a salvage scan kept and skipped.
#[derive(Debug, Default)]
pub(crate) struct SalvageEnd {
    /// Ranges stepped over, in file order.
    pub skipped: Vec<Skipped>,
    /// One past the last position kept, at least the scan's starting floor.
    pub next_position: u64,
    /// Bytes the scan checksummed, within the budget set by
    /// [`SALVAGE_CHECKSUM_BYTES_PER_SEGMENT_BYTE`] (give or take one batch).
    pub checksummed_bytes: u64,
}

/// The positions the records of one segment the writer wrote can hold. A record that passes
/// its checksum may still claim any position; one outside this range is damage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PositionRange {
    /// The segment's first position.
    pub base: u64,
    /// The first position of the segment after it, if there is one: the writer started that
    /// segment at its head, so every position of this one lies below it.
    pub end: Option<u64>,
}

impl PositionRange {
    /// Whether the record at byte `offset` of a segment in `layout` may hold `position`: at
    /// least `base`, below `end`, and at most one position per shortest record
    /// ([`Layout::record_len_min`]) before it above `base` (each record before it took one
    /// position and at least that many bytes).
    pub fn admits(&self, layout: Layout, offset: usize, position: u64) -> bool {
        let before = offset.saturating_sub(SEGMENT_HEADER_LEN) / layout.record_len_min();
        let ceiling = self.base.saturating_add(before as u64);
        (self.base..=ceiling).contains(&position) && self.end.is_none_or(|end| position < end)
    }
}

/// Scans a segment keeping provable batches: every complete, valid batch whose first record
/// follows a batch end (or the header), with positions rising from `floor` (the lowest
/// position a kept record may have) and admitted by `range`. After damage it looks for the
/// next record that decodes, skips records until one ends a batch, and resumes after it: the
/// next batch provably starts there.
pub(crate) fn salvage_segment(
    bytes: &[u8],
    layout: Layout,
    range: PositionRange,
    floor: u64,
    mut visit: impl FnMut(usize, Record<'_>) -> Result<(), CorruptionKind>,
) -> SalvageEnd {
    let mut scan = Scan::new(bytes, layout, range);
    let mut end = SalvageEnd { next_position: floor, ..SalvageEnd::default() };
    let mut at = SEGMENT_HEADER_LEN;
    let mut batch = Vec::new();
    while at < bytes.len() {
        let read = scan.batch_at(at, end.next_position, &mut batch);
        let kind = match read.and_then(|()| keep(bytes, layout, &batch, &mut visit)) {
            Ok(last) => {
                end.next_position = last + 1;
                at = batch.last().map_or(at, |&(offset, len)| offset + len);
                continue;
            }
            Err(kind) => kind,
        };
        let resume = scan.resync(at + 1, end.next_position);
        end.skipped.push(Skipped { start: at, end: resume, kind });
        at = resume;
    }
    end.checksummed_bytes = scan.checksummed_bytes;
    end
}

/// Hands the records of a verified batch to `visit`; returns the last one's position.
fn keep(
    bytes: &[u8],
    layout: Layout,
    batch: &[(usize, usize)],
    visit: &mut impl FnMut(usize, Record<'_>) -> Result<(), CorruptionKind>,
) -> Result<u64, CorruptionKind> {
    let mut last = None;
    for &(offset, len) in batch {
        let record = Record::verified(&bytes[offset..offset + len], layout);
        visit(offset, record)?;
        last = Some(record.position());
    }
    last.ok_or(CorruptionKind::BadBatch)
}

/// One segment's bytes and what checking them has cost so far.
struct Scan<'a> {
    bytes: &'a [u8],
    layout: Layout,
    range: PositionRange,
    checksummed_bytes: u64,
    budget_bytes: u64,
}

impl<'a> Scan<'a> {
    fn new(bytes: &'a [u8], layout: Layout, range: PositionRange) -> Scan<'a> {
        let budget_bytes =
            (bytes.len() as u64).saturating_mul(SALVAGE_CHECKSUM_BYTES_PER_SEGMENT_BYTE);
        Scan { bytes, layout, range, checksummed_bytes: 0, budget_bytes }
    }

    /// Reads the batch at `at` into `batch`: complete and valid, its first position at least
    /// `floor`, every position admitted by the range.
    fn batch_at(
        &mut self,
        at: usize,
        floor: u64,
        batch: &mut Vec<(usize, usize)>,
    ) -> Result<(), CorruptionKind> {
        let read = read_batch(self.bytes, at, self.layout, None, batch);
        self.checksummed_bytes += batch.iter().map(|&(_, len)| len as u64).sum::<u64>();
        if let Err((offset, kind)) = read {
            self.charge(offset);
            return Err(kind);
        }
        let mut expected = floor;
        for &(offset, len) in batch.iter() {
            let found = Record::verified(&self.bytes[offset..offset + len], self.layout).position();
            if found < expected || !self.range.admits(self.layout, offset, found) {
                return Err(CorruptionKind::PositionMismatch { expected, found });
            }
            expected = found + 1;
        }
        Ok(())
    }

    /// Decodes the record at `at`, counting the bytes its checksum covers.
    fn decode(&mut self, at: usize) -> Result<Record<'a>, CorruptionKind> {
        self.charge(at);
        decode_record(self.bytes, at, self.layout)
    }

    /// Counts the checksum [`decode_record`] computes for a record at `at`: over its length,
    /// if that length is possible there (otherwise it refuses before checksumming).
    fn charge(&mut self, at: usize) {
        let rest = &self.bytes[at.min(self.bytes.len())..];
        let len_min = self.layout.record_len_min();
        let len = record_len(rest).filter(|&len| (len_min..=rest.len()).contains(&len));
        self.checksummed_bytes += len.unwrap_or(0) as u64;
    }

    /// Whether the bytes at `at` hold a position a record there could have, before paying for
    /// its checksum.
    fn may_start_record(&self, at: usize, floor: u64) -> bool {
        record_position_unverified(&self.bytes[at..])
            .is_some_and(|p| p >= floor && self.range.admits(self.layout, at, p))
    }

    /// The offset after the first batch end found at or after `from` among records that
    /// decode and hold a plausible position of at least `floor`; the end of the bytes if there
    /// is none, or once the checksum budget is spent.
    fn resync(&mut self, from: usize, floor: u64) -> usize {
        let mut at = from;
        while at < self.bytes.len() && self.checksummed_bytes <= self.budget_bytes {
            if !self.may_start_record(at, floor) {
                at += 1;
                continue;
            }
            // Walk records until one ends its batch; the next batch starts right after it.
            let mut offset = at;
            while let Ok(record) = self.decode(offset) {
                offset += record.len();
                if record.batch_left() == 0 {
                    return offset;
                }
            }
            at += 1;
        }
        self.bytes.len()
    }
}

/// Whether the records that still decode after the damage at `from` prove that a group that was
/// fsynced, and so acknowledged, follows it; then the damage is corruption, not a torn tail.
///
/// A torn tail is the one group write that was under way, so every record after the damage
/// belongs to that group. In format 3 that group is told by its sequence number: the records
/// after the damage must all carry one `(epoch, sequence)`, and that sequence must be the one of
/// the last good group (`last_sequence`: the damage lies inside it) or the next (the damage
/// is at its start); `None` before any group, when only sequence 0 can be under way. Before
/// format 3 records carry no sequence and the commit timestamp stands in for it: records of two
/// timestamps prove two groups (one timestamp proves nothing, as a clock can repeat).
///
/// Only records holding a position a record written after the damage can hold are considered:
/// at least `floor` (the position the damaged batch should have started at), and at most one
/// position above it per shortest record between `from` and the record. That filter costs no
/// checksum, and random bytes (a torn record of compressed data) almost never pass it. The
/// search tries every byte offset, so its checksums are bounded like a salvage scan's
/// ([`SALVAGE_CHECKSUM_BYTES_PER_SEGMENT_BYTE`] per byte searched): bytes crafted to exhaust that
/// budget cannot be proven a torn tail and count as corruption (a salvaging open reads around
/// them).
pub(crate) fn acknowledged_after(
    bytes: &[u8],
    layout: Layout,
    from: usize,
    floor: u64,
    last_sequence: Option<u64>,
) -> bool {
    let searched = bytes.len().saturating_sub(from) as u64;
    let budget_bytes = searched.saturating_mul(SALVAGE_CHECKSUM_BYTES_PER_SEGMENT_BYTE);
    let mut checksummed_bytes = 0u64;
    let mut first: Option<(Option<u64>, Option<u16>, u64)> = None;
    let len_min = layout.record_len_min();
    // A record written after the damage lies at or after `from`, and every record between took
    // a position and at least `len_min` bytes: its position is within this reach of `floor`.
    let plausible = |at: usize, p: u64| {
        let reach = ((at - from) / len_min) as u64;
        p >= floor && p - floor <= reach
    };
    let mut at = from;
    while at < bytes.len() {
        let rest = &bytes[at..];
        if !record_position_unverified(rest).is_some_and(|p| plausible(at, p)) {
            at += 1;
            continue;
        }
        // What `decode_record` checksums: the claimed length, if it is possible here.
        let claimed = record_len(rest).filter(|&len| (len_min..=rest.len()).contains(&len));
        checksummed_bytes += claimed.unwrap_or(0) as u64;
        if checksummed_bytes > budget_bytes {
            return true;
        }
        let Ok(record) = decode_record(bytes, at, layout) else {
            at += 1;
            continue;
        };
        let group = (record.sequence(), record.epoch(), record.timestamp_us());
        match first {
            None => first = Some(group),
            Some(seen) if layout == Layout::V3 && (seen.0, seen.1) != (group.0, group.1) => {
                return true;
            }
            Some(seen) if layout == Layout::V2 && seen.2 != group.2 => return true,
            Some(_) => {}
        }
        at += record.len();
    }
    let Some((Some(sequence), _, _)) = first else { return false };
    let in_flight = last_sequence.map_or(0..=0, |last| last..=last.saturating_add(1));
    !in_flight.contains(&sequence)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{RecordFields, fixture::segment, seal_record};

    fn kept(bytes: &[u8]) -> (Vec<u64>, SalvageEnd) {
        let mut seen = Vec::new();
        let range = PositionRange { base: 0, end: None };
        let end = salvage_segment(bytes, Layout::V3, range, 0, |_, r| {
            seen.push(r.position());
            Ok(())
        });
        (seen, end)
    }

    #[test]
    fn salvage_of_an_intact_segment_keeps_everything() {
        let (bytes, _) = segment(&[1, 2, 3]);
        let (seen, end) = kept(&bytes);
        assert_eq!(seen, [0, 1, 2, 3, 4, 5]);
        assert!(end.skipped.is_empty());
        assert_eq!(end.next_position, 6);
        assert_eq!(end.checksummed_bytes, (bytes.len() - SEGMENT_HEADER_LEN) as u64);
    }

    /// Gives the record at `offset` another position and seals it again, so that it passes its
    /// checksum.
    fn move_record(bytes: &mut [u8], offset: usize, position: u64) {
        let len = record_len(&bytes[offset..]).unwrap();
        let record = decode_record(bytes, offset, Layout::V3).unwrap();
        let fields = RecordFields {
            position,
            version: record.version(),
            timestamp_us: record.timestamp_us(),
            batch_left: record.batch_left().into(),
            sequence: record.sequence().unwrap(),
            epoch: record.epoch().unwrap().into(),
        };
        seal_record(&mut bytes[offset..offset + len], fields).unwrap();
    }

    #[test]
    fn salvage_position_beyond_what_the_segment_can_hold_is_damage() {
        // Salvage kept any batch whose positions rose, so one record that passed its checksum
        // with a position 2^33 past the segment's base made the sparse index panic ("a segment
        // spans < 2^32 positions"); a smaller jump moved the log's head past the next segment,
        // which then failed the open. A record at offset o holds at most one position per
        // shortest record (`Layout::record_len_min`) before it.
        let (mut bytes, starts) = segment(&[1, 1, 1, 1]);
        move_record(&mut bytes, starts[1], 1 << 33);
        let (seen, end) = kept(&bytes);
        assert_eq!(seen, [0, 3], "the moved record and the unprovable one after it are lost");
        let kind = CorruptionKind::PositionMismatch { expected: 1, found: 1 << 33 };
        assert_eq!(end.skipped[0], Skipped { start: starts[1], end: starts[3], kind });

        // Within reach of its offset, but not below the next segment's base. The fixture's
        // records are one byte longer than the shortest record, so after `n - 1` of them the
        // last may hold position `n`, one ahead of its place.
        let n = Layout::V3.record_len_min() + 1;
        let last = n as u64;
        let (mut bytes, starts) = segment(&vec![1; n]);
        move_record(&mut bytes, starts[n - 1], last);
        let (seen, _) = kept(&bytes);
        assert_eq!((seen.len(), seen[n - 2], seen[n - 1]), (n, last - 2, last));
        let range = PositionRange { base: 0, end: Some(last) };
        let end = salvage_segment(&bytes, Layout::V3, range, 0, |_, _| Ok(()));
        let kind = CorruptionKind::PositionMismatch { expected: last - 1, found: last };
        assert_eq!(end.skipped, [Skipped { start: starts[n - 1], end: bytes.len(), kind }]);
        assert_eq!(end.next_position, last - 1);
        let (mut bytes, starts) = segment(&vec![1; n]);
        move_record(&mut bytes, starts[n - 2], last);
        assert_eq!(kept(&bytes).1.skipped[0].start, starts[n - 2], "the one before may not");
    }

    #[test]
    fn salvage_of_crafted_bytes_stops_at_its_checksum_budget() {
        // Resync tried every byte offset, and at each one `decode_record` checksummed as many
        // bytes as the length field there claimed: bytes crafted to hold a long length and a
        // plausible position at every offset cost O(n^2), hours for a few MiB. Now the scan
        // steps over the rest once it has checksummed its budget.
        let base = u64::from_le_bytes([1; 8]);
        let claimed = u32::from_le_bytes([1; 4]) as usize; // about 16 MiB at every offset
        let mut bytes = vec![0; SEGMENT_HEADER_LEN];
        bytes.resize(SEGMENT_HEADER_LEN + claimed + (1 << 20), 1);
        let range = PositionRange { base, end: None };
        let end = salvage_segment(&bytes, Layout::V3, range, base, |_, _| Ok(()));
        assert_eq!(end.skipped.len(), 1);
        assert_eq!((end.skipped[0].start, end.skipped[0].end), (SEGMENT_HEADER_LEN, bytes.len()));
        let budget = bytes.len() as u64 * SALVAGE_CHECKSUM_BYTES_PER_SEGMENT_BYTE;
        assert!(end.checksummed_bytes <= budget + claimed as u64, "{}", end.checksummed_bytes);
    }

    #[test]
    fn salvage_skips_a_damaged_batch_and_keeps_the_batches_after_it() {
        let (mut bytes, starts) = segment(&[1, 2, 3, 1]);
        bytes[starts[1] + 20] ^= 0xff; // first record of the 2-event batch
        let (seen, end) = kept(&bytes);
        // Batch 1 (positions 1..3) is lost; its second record decodes but ends a batch whose
        // start cannot be proven, so salvage resumes after it.
        assert_eq!(seen, [0, 3, 4, 5, 6]);
        assert_eq!(end.skipped.len(), 1);
        assert_eq!((end.skipped[0].start, end.skipped[0].end), (starts[1], starts[2]));
    }

    #[test]
    fn salvage_of_a_damaged_tail_keeps_the_prefix() {
        let (mut bytes, starts) = segment(&[2, 2]);
        bytes.truncate(starts[1] + 30);
        let (seen, end) = kept(&bytes);
        assert_eq!(seen, [0, 1]);
        assert_eq!(end.skipped[0].end, bytes.len());
    }

    #[test]
    fn damage_followed_by_one_group_that_was_in_flight_is_a_torn_tail() {
        // Batches 0..3 are groups 0..3; damage inside the last group.
        let (mut bytes, starts) = segment(&[1, 1, 1, 3]);
        bytes[starts[3] + 20] ^= 0xff;
        assert!(!acknowledged_after(&bytes, Layout::V3, starts[3], 3, Some(2)));
        assert!(!acknowledged_after(&bytes, Layout::V3, starts[3], 3, Some(3)));
        assert!(acknowledged_after(&bytes, Layout::V3, starts[3], 3, Some(0)), "one further ahead");
        assert!(
            !acknowledged_after(&bytes, Layout::V3, bytes.len() - 1, 3, Some(0)),
            "nothing after"
        );
    }

    #[test]
    fn damage_followed_by_two_groups_is_acknowledged_data() {
        let (mut bytes, starts) = segment(&[1, 2, 1]);
        bytes[starts[1] + 20] ^= 0xff;
        assert!(acknowledged_after(&bytes, Layout::V3, starts[1], 1, Some(0)));
    }

    #[test]
    fn damage_then_records_below_the_damaged_position_prove_nothing() {
        // Stale or misplaced records that hold positions below the one the damaged batch
        // should have started at cannot be groups written after it.
        let (mut bytes, starts) = segment(&[1, 1, 1]);
        bytes[starts[1] + 20] ^= 0xff;
        assert!(acknowledged_after(&bytes, Layout::V3, starts[1], 1, Some(0)));
        assert!(!acknowledged_after(&bytes, Layout::V3, starts[1], 3, Some(0)));
    }

    #[test]
    fn torn_tail_search_over_crafted_bytes_stops_at_its_checksum_budget() {
        // The torn-tail decision tried every byte offset after the damage and checksummed as
        // many bytes as the length field there claimed: bytes crafted to claim a long length
        // and a plausible position at every offset cost O(n^2), hours for a few MiB (on main
        // this test did not finish). Past its budget the search gives up, and the damage
        // counts as corruption, which only a salvaging open reads around.
        // Every offset claims about 16 MiB and holds the very position the damage expected.
        let claimed = u32::from_le_bytes([1; 4]) as usize;
        let floor = u64::from_le_bytes([1; 8]);
        let mut bytes = vec![0; SEGMENT_HEADER_LEN];
        bytes.resize(SEGMENT_HEADER_LEN + claimed + (1 << 20), 1);
        assert!(acknowledged_after(&bytes, Layout::V3, SEGMENT_HEADER_LEN, floor, None));
    }
}
