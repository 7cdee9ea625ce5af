//! Salvage scanning: walk a damaged segment, keep every batch that can be proven complete, and
//! step over the damage in between. For disaster recovery only; the normal open refuses damage.

use super::{CorruptionKind, Layout, Record, SEGMENT_HEADER_LEN, decode_record, scan::read_batch};

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
}

/// Scans a segment keeping provable batches: every complete, valid batch whose first record
/// follows a batch end (or the header), with positions rising. After damage it looks for the
/// next record that decodes, skips records until one ends a batch, and resumes after it: the
/// next batch provably starts there. `floor` is the lowest position a kept record may have.
pub(crate) fn salvage_segment(
    bytes: &[u8],
    layout: Layout,
    floor: u64,
    mut visit: impl FnMut(usize, Record<'_>) -> Result<(), CorruptionKind>,
) -> SalvageEnd {
    let mut end = SalvageEnd { skipped: Vec::new(), next_position: floor };
    let mut at = SEGMENT_HEADER_LEN;
    let mut batch = Vec::new();
    while at < bytes.len() {
        let read = read_batch(bytes, at, layout, None, &mut batch).and_then(|_| {
            let first = decode_record(bytes, at, layout).map_err(|k| (at, k))?.position();
            if first < end.next_position {
                let kind =
                    CorruptionKind::PositionMismatch { expected: end.next_position, found: first };
                return Err((at, kind));
            }
            Ok(())
        });
        let kind = match read {
            Ok(()) => {
                let accepted = batch.iter().try_for_each(|&(offset, len)| {
                    visit(offset, Record::verified(&bytes[offset..offset + len], layout))
                });
                match accepted {
                    Ok(()) => {
                        let &(last, len) = batch.last().expect("a batch has a record");
                        end.next_position =
                            decode_record(bytes, last, layout).expect("valid").position() + 1;
                        at = last + len;
                        continue;
                    }
                    Err(kind) => kind,
                }
            }
            Err((_, kind)) => kind,
        };
        let resume = resync(bytes, layout, at + 1, end.next_position);
        end.skipped.push(Skipped { start: at, end: resume, kind });
        at = resume;
    }
    end
}

/// The offset after the first batch end found at or after `from` among records that decode and
/// hold a position of at least `floor`; the end of the bytes if there is none.
fn resync(bytes: &[u8], layout: Layout, from: usize, floor: u64) -> usize {
    let mut at = from;
    while at < bytes.len() {
        let plausible = match decode_record(bytes, at, layout) {
            Ok(r) => r.position() >= floor,
            Err(_) => false,
        };
        if !plausible {
            at += 1;
            continue;
        }
        // Walk records until one ends its batch; the next batch starts right after it.
        let mut offset = at;
        while let Ok(record) = decode_record(bytes, offset, layout) {
            offset += record.len();
            if record.batch_left() == 0 {
                return offset;
            }
        }
        at += 1;
    }
    bytes.len()
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
pub(crate) fn acknowledged_after(
    bytes: &[u8],
    layout: Layout,
    from: usize,
    last_sequence: Option<u64>,
) -> bool {
    let mut first: Option<(Option<u64>, Option<u16>, u64)> = None;
    let mut at = from + 1;
    while at < bytes.len() {
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
    use crate::format::fixture::segment;

    fn kept(bytes: &[u8]) -> (Vec<u64>, SalvageEnd) {
        let mut seen = Vec::new();
        let end = salvage_segment(bytes, Layout::V3, 0, |_, r| {
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
        assert!(!acknowledged_after(&bytes, Layout::V3, starts[3], Some(2)));
        assert!(!acknowledged_after(&bytes, Layout::V3, starts[3], Some(3)));
        assert!(acknowledged_after(&bytes, Layout::V3, starts[3], Some(0)), "one further ahead");
        assert!(!acknowledged_after(&bytes, Layout::V3, bytes.len() - 1, Some(0)), "nothing after");
    }

    #[test]
    fn damage_followed_by_two_groups_is_acknowledged_data() {
        let (mut bytes, starts) = segment(&[1, 2, 1]);
        bytes[starts[1] + 20] ^= 0xff;
        assert!(acknowledged_after(&bytes, Layout::V3, starts[1], Some(0)));
    }
}
