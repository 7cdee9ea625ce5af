//! Stage two of recovery: scan one segment, index its records, and settle any damage as the
//! recovery mode says.

use std::path::Path;

use crate::{
    error::{Error, Result},
    format::{
        CorruptionKind, PositionRange, Record, SegmentHeader, acknowledged_after, salvage_segment,
        scan_any, scan_compacted,
    },
    index::{Continuity, SparseIndex, StreamIndex},
    options::{Options, RecoveryMode},
    segment::Segment,
};

use super::{Dropped, RecoveryReport, headers::Opened, tail};

/// What every segment's scan needs to know.
pub(super) struct Context<'a> {
    pub dir: &'a Path,
    pub options: &'a Options,
    pub is_last: bool,
    pub writable: bool,
    /// Whether this or an earlier segment was rewritten by scavenging, so that a stream's
    /// first retained event may have any version.
    pub after_scavenge: bool,
    /// The base position of the segment after this one, if any: a salvaging open takes no
    /// record of this segment at or above it.
    pub next_base: Option<u64>,
}

/// What a salvaging open keeps of a segment: it visits every record it can prove, and returns
/// the segment's end position and the damaged ranges `[start, end)` it stepped over. A segment
/// the writer wrote is resynchronised batch by batch; a scavenged one has no batches to
/// resynchronise on, so what follows its first bad record is stepped over whole.
fn salvage_ranges(
    bytes: &[u8],
    header: &SegmentHeader,
    (head, next_base): (u64, Option<u64>),
    mut visit: impl FnMut(usize, Record<'_>),
) -> (u64, Vec<(usize, usize, CorruptionKind)>) {
    let base = header.base_position;
    if header.span == 0 {
        let range = PositionRange { base, end: next_base };
        let end =
            salvage_segment(bytes, header.layout(), range, head.max(base), |offset, record| {
                visit(offset, record);
                Ok(())
            });
        let skipped = end.skipped.iter().map(|s| (s.start, s.end, s.kind)).collect();
        return (end.next_position, skipped);
    }
    let end = scan_compacted(bytes, base, header.span, header.layout(), |offset, record| {
        visit(offset, record);
        Ok(())
    })
    .expect("the visitor refuses nothing");
    let skipped = end.damage.map(|d| (d.record_offset, bytes.len(), d.kind)).into_iter().collect();
    (end.next_position, skipped)
}

/// How a record's version must continue its stream: exactly, unless a salvage steps over
/// damage (holes) or a scavenge removed a stream's first versions.
fn continuity(salvage: bool, after_scavenge: bool) -> Continuity {
    match (salvage, after_scavenge) {
        (true, false) => Continuity::Holes,
        (true, true) => Continuity::HolesAfterScavenge,
        (false, true) => Continuity::AfterScavenge,
        (false, false) => Continuity::Dense,
    }
}

/// Lists, in file order, the ranges a salvage stepped over and the records it kept out of
/// their streams, as `Dropped` entries of segment `name`.
fn report_salvaged(
    report: &mut RecoveryReport,
    name: &str,
    skipped: &[(usize, usize, CorruptionKind)],
    refused: &[(usize, usize, CorruptionKind)],
) {
    let mut dropped: Vec<_> = skipped.iter().chain(refused).copied().collect();
    dropped.sort_by_key(|&(start, ..)| start);
    report.salvaged.extend(dropped.into_iter().map(|(start, end, kind)| Dropped {
        segment: name.to_owned(),
        offset: start as u64,
        bytes: (end - start) as u64,
        kind,
    }));
}

/// Scans `segment`, whose records continue the log at `head`, into the indexes, and raises
/// `sequence` to the highest group sequence number among its records.
pub(super) fn scan_and_index(
    cx: &Context<'_>,
    segment: Opened,
    head: u64,
    streams: &StreamIndex,
    sequence: &mut Option<u64>,
    report: &mut RecoveryReport,
) -> Result<Segment> {
    let Opened { name, file, len, header, .. } = segment;
    let path = cx.dir.join(&name);
    let base = header.base_position;
    let salvage = cx.options.recovery_mode == RecoveryMode::Salvage;
    let corruption = |offset: usize, kind| Error::Corruption {
        segment: name.clone(),
        offset: offset as u64,
        kind,
    };
    if base != head && !(salvage && base > head) {
        return Err(corruption(0, CorruptionKind::SegmentGap { expected: head, found: base }));
    }
    let mut index = SparseIndex::new(base, cx.options.index_stride);
    let view = file.view(len).map_err(Error::io("map segment", &path))?;
    let mut writer = streams.write();
    let continuity = continuity(salvage, cx.after_scavenge);
    let mut visit = |offset: usize, record: Record<'_>| {
        index.note(record.position(), offset as u32);
        *sequence = (*sequence).max(record.sequence());
        writer.index_record(record, continuity)
    };
    if salvage {
        // Salvage never refuses a record it proved whole: one whose version does not fit its
        // stream (a repeat, or further ahead than positions allow) stays in `$all` but not in
        // the stream, and is reported.
        let mut refused = Vec::new();
        let (end_position, skipped) =
            salvage_ranges(view.bytes(), &header, (head, cx.next_base), |o, r| {
                if let Err(kind) = visit(o, r) {
                    refused.push((o, o + r.len(), kind));
                }
            });
        drop(writer);
        report_salvaged(report, &name, &skipped, &refused);
        let holes = skipped.iter().map(|&(start, end, _)| (start, end)).collect();
        return Ok(Segment::recovered(header, name, path, file, len, end_position, index)
            .with_holes(holes));
    }
    let end = scan_any(view.bytes(), &header, &mut visit)
        .map_err(|(offset, kind)| corruption(offset, kind))?;
    drop(writer);
    if let Some(damage) = end.damage.filter(|_| header.span != 0) {
        // A rewritten segment was complete and durable before it replaced the original: any
        // damage in it is corruption, never a torn tail.
        return Err(corruption(damage.record_offset, damage.kind));
    }
    // A torn tail is one group write: every record that still decodes after the damage belongs
    // to that group. Records of another group after it mean a group that was fsynced (and
    // acknowledged) follows the damage: that is corruption, never a torn tail.
    let layout = header.layout();
    // Only a damaged last segment can end in a torn tail; any other damage is corruption anyway.
    let acknowledged_after = end.damage.filter(|_| cx.is_last).is_some_and(|d| {
        let floor = end.next_position;
        acknowledged_after(view.bytes(), layout, d.batch_offset, floor, *sequence)
    });
    drop(view);
    if let Some(damage) = end.damage {
        if acknowledged_after {
            return Err(corruption(damage.record_offset, damage.kind));
        }
        tail::settle_damage(cx, &*file, &name, len, &header, damage, report)
            .map_err(|e| e.unwrap_or_else(|| corruption(damage.record_offset, damage.kind)))?;
    }
    let valid_len = end.valid_len as u64;
    Ok(Segment::recovered(header, name, path, file, valid_len, end.next_position, index))
}
