//! Walking one segment's records batch by batch, verifying every record and every batch frame,
//! and handing the records of each complete batch to a visitor (recovery, verification).

use super::{CorruptionKind, Layout, Record, SEGMENT_HEADER_LEN, decode_record};

/// Where a scan found the first bad batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Damage {
    /// Offset of the batch that failed: where a torn tail would be cut.
    pub batch_offset: usize,
    /// Offset of the record that failed its check.
    pub record_offset: usize,
    pub kind: CorruptionKind,
}

/// How far a segment's valid batches reach.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ScanEnd {
    /// Bytes from the start of the file to the end of the last valid batch.
    pub valid_len: usize,
    /// The position after the last valid record.
    pub next_position: u64,
    /// The first bad batch, if the valid batches do not reach the end of the file.
    pub damage: Option<Damage>,
}

/// Scans the records (in `layout`) after the header of a segment whose first position is
/// `position`. `visit` sees every record of every complete batch, in order, with its offset; if
/// it refuses one (a record that passes its checksum but breaks an invariant), the scan stops
/// with that record's offset and the reason. In format 3 a batch whose group sequence is below
/// the one of the batch before it is damage, like a bad frame.
pub(crate) fn scan_segment(
    bytes: &[u8],
    mut position: u64,
    layout: Layout,
    mut visit: impl FnMut(usize, Record<'_>) -> Result<(), CorruptionKind>,
) -> Result<ScanEnd, (usize, CorruptionKind)> {
    let mut at = SEGMENT_HEADER_LEN;
    let mut batch: Vec<(usize, usize)> = Vec::new();
    let mut sequence = None;
    while at < bytes.len() {
        let read = read_batch(bytes, at, layout, Some(position), &mut batch)
            .and_then(|found| check_sequence(at, sequence, found));
        match read {
            Ok(found) => sequence = found.or(sequence),
            Err((record_offset, kind)) => {
                let damage = Damage { batch_offset: at, record_offset, kind };
                let end = ScanEnd { valid_len: at, next_position: position, damage: Some(damage) };
                return Ok(end);
            }
        }
        for &(offset, len) in &batch {
            visit(offset, Record::verified(&bytes[offset..offset + len], layout))
                .map_err(|kind| (offset, kind))?;
            at = offset + len;
            position += 1;
        }
    }
    Ok(ScanEnd { valid_len: at, next_position: position, damage: None })
}

/// `found`, the group sequence of the batch at `at`, unless it goes back from `previous`.
fn check_sequence(
    at: usize,
    previous: Option<u64>,
    found: Option<u64>,
) -> Result<Option<u64>, (usize, CorruptionKind)> {
    match (previous, found) {
        (Some(previous), Some(found)) if found < previous => {
            Err((at, CorruptionKind::GroupSequence { previous, found }))
        }
        _ => Ok(found),
    }
}

/// Scans a segment rewritten by scavenging (its header's `span` is not zero): every record is
/// verified on its own, positions ascend within `base..base + span` with gaps allowed, and the
/// batch frames are not checked (scavenging may have removed part of an append; the file was
/// written and fsynced whole before it replaced the original, so it has no torn tail). Any bad
/// record is damage; `next_position` is always `base + span`.
pub(crate) fn scan_compacted(
    bytes: &[u8],
    base: u64,
    span: u32,
    layout: Layout,
    mut visit: impl FnMut(usize, Record<'_>) -> Result<(), CorruptionKind>,
) -> Result<ScanEnd, (usize, CorruptionKind)> {
    let end = base + u64::from(span);
    let mut at = SEGMENT_HEADER_LEN;
    let mut expected = base;
    while at < bytes.len() {
        let checked = decode_record(bytes, at, layout).and_then(|record| {
            let p = record.position();
            if p < expected || p >= end {
                return Err(CorruptionKind::PositionMismatch { expected, found: p });
            }
            Ok(record)
        });
        let record = match checked {
            Ok(record) => record,
            Err(kind) => {
                let damage = Damage { batch_offset: at, record_offset: at, kind };
                return Ok(ScanEnd { valid_len: at, next_position: end, damage: Some(damage) });
            }
        };
        visit(at, record).map_err(|kind| (at, kind))?;
        expected = record.position() + 1;
        at += record.len();
    }
    Ok(ScanEnd { valid_len: at, next_position: end, damage: None })
}

/// Scans a segment of either kind: [`scan_segment`] for one the writer wrote,
/// [`scan_compacted`] for one scavenging rewrote.
pub(crate) fn scan_any(
    bytes: &[u8],
    header: &super::SegmentHeader,
    visit: impl FnMut(usize, Record<'_>) -> Result<(), CorruptionKind>,
) -> Result<ScanEnd, (usize, CorruptionKind)> {
    match header.span {
        0 => scan_segment(bytes, header.base_position, header.layout(), visit),
        span => scan_compacted(bytes, header.base_position, span, header.layout(), visit),
    }
}

/// Verifies the batch starting at `at`, whose first record must hold `first_position` (any
/// position when `None`), and fills `batch` with its records' offsets and lengths. Every record
/// of a batch belongs to one group commit: in format 3 they share its sequence and epoch.
/// Returns the batch's group sequence (`None` before format 3).
pub(super) fn read_batch(
    bytes: &[u8],
    at: usize,
    layout: Layout,
    first_position: Option<u64>,
    batch: &mut Vec<(usize, usize)>,
) -> Result<Option<u64>, (usize, CorruptionKind)> {
    batch.clear();
    let mut offset = at;
    let mut expected_left: Option<u16> = None;
    let mut expected_position = first_position;
    let mut group = None;
    loop {
        let record = decode_record(bytes, offset, layout).map_err(|kind| (offset, kind))?;
        if let Some(expected) = expected_position.filter(|&p| p != record.position()) {
            let kind = CorruptionKind::PositionMismatch { expected, found: record.position() };
            return Err((offset, kind));
        }
        let left = record.batch_left();
        let this_group = (record.sequence(), record.epoch());
        if expected_left.is_some_and(|e| e != left) || group.is_some_and(|g| g != this_group) {
            return Err((offset, CorruptionKind::BadBatch));
        }
        group = Some(this_group);
        batch.push((offset, record.len()));
        offset += record.len();
        if left == 0 {
            return Ok(this_group.0);
        }
        expected_left = Some(left - 1);
        expected_position = record.position().checked_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A segment holding batches of the given sizes, starting at position 0.
    fn segment(batches: &[u16]) -> Vec<u8> {
        crate::format::fixture::segment(batches).0
    }

    #[test]
    fn scan_visits_every_record_of_complete_batches() {
        let bytes = segment(&[1, 3, 2]);
        let mut seen = Vec::new();
        let end = scan_segment(&bytes, 0, Layout::V3, |_, r| {
            seen.push(r.position());
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, [0, 1, 2, 3, 4, 5]);
        assert_eq!(end, ScanEnd { valid_len: bytes.len(), next_position: 6, damage: None });
    }

    #[test]
    fn scan_stops_at_the_start_of_a_cut_batch() {
        let full = segment(&[2, 3]);
        let first_batch_end = segment(&[2]).len();
        let cut = &full[..full.len() - 5];
        let mut seen = 0;
        let end = scan_segment(cut, 0, Layout::V3, |_, _| {
            seen += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, 2, "no record of the torn batch is visited");
        assert_eq!(end.valid_len, first_batch_end);
        assert_eq!(end.next_position, 2);
        assert_eq!(end.damage.unwrap().batch_offset, first_batch_end);
    }

    #[test]
    fn scan_reports_a_refused_record() {
        let bytes = segment(&[1, 1]);
        let err = scan_segment(&bytes, 0, Layout::V3, |_, r| {
            if r.position() == 1 { Err(CorruptionKind::IndexMismatch) } else { Ok(()) }
        })
        .unwrap_err();
        assert_eq!(err.1, CorruptionKind::IndexMismatch);
    }

    #[test]
    fn compacted_scan_allows_gaps_and_broken_frames_but_not_disorder() {
        let (full, starts) = crate::format::fixture::segment(&[3, 2]);
        // Keep positions 0 and 4: the first of a batch of three and the last of a batch of two.
        let second = starts[1] + (full.len() - starts[1]) / 2;
        let mut bytes = full[..starts[0]].to_vec();
        bytes.extend_from_slice(&full[starts[0]..starts[0] + (starts[1] - starts[0]) / 3]);
        bytes.extend_from_slice(&full[second..]);
        let mut seen = Vec::new();
        let end = scan_compacted(&bytes, 0, 6, Layout::V3, |_, r| {
            seen.push(r.position());
            Ok(())
        })
        .unwrap();
        assert_eq!((seen, end.next_position, end.damage), (vec![0, 4], 6, None));
        let beyond = scan_compacted(&bytes, 0, 4, Layout::V3, |_, _| Ok(())).unwrap();
        assert_eq!(
            beyond.damage.unwrap().kind,
            CorruptionKind::PositionMismatch { expected: 1, found: 4 }
        );
        assert!(scan_segment(&bytes, 0, Layout::V3, |_, _| Ok(())).unwrap().damage.is_some());
    }

    #[test]
    fn scan_detects_a_record_at_the_wrong_position() {
        let bytes = segment(&[1, 1]);
        let end = scan_segment(&bytes, 5, Layout::V3, |_, _| Ok(())).unwrap();
        let damage = end.damage.unwrap();
        assert_eq!(damage.kind, CorruptionKind::PositionMismatch { expected: 5, found: 0 });
        assert_eq!(damage.batch_offset, SEGMENT_HEADER_LEN);
    }

    /// Rewrites the group sequence of every record from `from` on to `sequence`, resealed.
    fn set_sequence(bytes: &mut [u8], from: usize, sequence: u64) {
        let mut at = from;
        while at < bytes.len() {
            let len = crate::format::record_len(&bytes[at..]).unwrap();
            let record = &mut bytes[at..at + len];
            record[48..54].copy_from_slice(&sequence.to_le_bytes()[..6]);
            let crc = super::super::record::checksum_for_tests(record);
            record[4..8].copy_from_slice(&crc.to_le_bytes());
            at += len;
        }
    }

    #[test]
    fn scan_detects_a_group_sequence_that_goes_back() {
        let (mut bytes, starts) = crate::format::fixture::segment(&[1, 2, 1]);
        set_sequence(&mut bytes, starts[2], 0);
        let end = scan_segment(&bytes, 0, Layout::V3, |_, _| Ok(())).unwrap();
        let damage = end.damage.unwrap();
        assert_eq!(damage.kind, CorruptionKind::GroupSequence { previous: 1, found: 0 });
        assert_eq!((damage.batch_offset, end.next_position), (starts[2], 3));
    }

    #[test]
    fn scan_accepts_batches_sharing_a_group_and_refuses_a_batch_split_across_two() {
        let (mut bytes, starts) = crate::format::fixture::segment(&[1, 2]);
        set_sequence(&mut bytes, starts[1], 0);
        let end = scan_segment(&bytes, 0, Layout::V3, |_, _| Ok(())).unwrap();
        assert_eq!((end.damage, end.next_position), (None, 3), "two batches of one group");
        let second_record = starts[1] + (bytes.len() - starts[1]) / 2;
        set_sequence(&mut bytes, second_record, 7);
        let end = scan_segment(&bytes, 0, Layout::V3, |_, _| Ok(())).unwrap();
        let damage = end.damage.unwrap();
        assert_eq!((damage.record_offset, damage.kind), (second_record, CorruptionKind::BadBatch));
    }
}
