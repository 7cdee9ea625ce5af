//! Salvage scanning: walk a damaged segment, keep every batch that can be proven complete, and
//! step over the damage in between. For disaster recovery only; the normal open refuses damage.

use super::{CorruptionKind, Record, SEGMENT_HEADER_LEN, decode_record, scan::read_batch};

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
    floor: u64,
    mut visit: impl FnMut(usize, Record<'_>) -> Result<(), CorruptionKind>,
) -> SalvageEnd {
    let mut end = SalvageEnd { skipped: Vec::new(), next_position: floor };
    let mut at = SEGMENT_HEADER_LEN;
    let mut batch = Vec::new();
    while at < bytes.len() {
        let read = read_batch(bytes, at, None, &mut batch).and_then(|()| {
            let first = decode_record(bytes, at).map_err(|k| (at, k))?.position();
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
                    visit(offset, Record::verified(&bytes[offset..offset + len]))
                });
                match accepted {
                    Ok(()) => {
                        let &(last, len) = batch.last().expect("a batch has a record");
                        end.next_position =
                            decode_record(bytes, last).expect("valid").position() + 1;
                        at = last + len;
                        continue;
                    }
                    Err(kind) => kind,
                }
            }
            Err((_, kind)) => kind,
        };
        let resume = resync(bytes, at + 1, end.next_position);
        end.skipped.push(Skipped { start: at, end: resume, kind });
        at = resume;
    }
    end
}

/// The offset after the first batch end found at or after `from` among records that decode and
/// hold a position of at least `floor`; the end of the bytes if there is none.
fn resync(bytes: &[u8], from: usize, floor: u64) -> usize {
    let mut at = from;
    while at < bytes.len() {
        let plausible = match decode_record(bytes, at) {
            Ok(r) => r.position() >= floor,
            Err(_) => false,
        };
        if !plausible {
            at += 1;
            continue;
        }
        // Walk records until one ends its batch; the next batch starts right after it.
        let mut offset = at;
        while let Ok(record) = decode_record(bytes, offset) {
            offset += record.len();
            if record.batch_left() == 0 {
                return offset;
            }
        }
        at += 1;
    }
    bytes.len()
}

/// How many distinct commit timestamps (1 or 2: it stops counting there) the records that
/// still decode after `from` carry. Every record of one group has the group's timestamp.
pub(crate) fn groups_after(bytes: &[u8], from: usize) -> usize {
    let mut first: Option<u64> = None;
    let mut at = from + 1;
    while at < bytes.len() {
        let Ok(record) = decode_record(bytes, at) else {
            at += 1;
            continue;
        };
        match first {
            None => first = Some(record.timestamp_us()),
            Some(t) if t != record.timestamp_us() => return 2,
            Some(_) => {}
        }
        at += record.len();
    }
    usize::from(first.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::fixture::segment;

    fn kept(bytes: &[u8]) -> (Vec<u64>, SalvageEnd) {
        let mut seen = Vec::new();
        let end = salvage_segment(bytes, 0, |_, r| {
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
}
