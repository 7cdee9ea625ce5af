//! Stage two of recovery: scan one segment, index its records, and settle any damage as the
//! recovery mode says.

use std::path::Path;

use crate::{
    error::{Error, Result},
    format::{CorruptionKind, Record, groups_after, salvage_segment, scan_segment},
    index::{SparseIndex, StreamIndex},
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
}

/// Scans `segment`, whose records continue the log at `head`, into the indexes.
pub(super) fn scan_and_index(
    cx: &Context<'_>,
    segment: Opened,
    head: u64,
    streams: &StreamIndex,
    report: &mut RecoveryReport,
) -> Result<Segment> {
    let Opened { name, file, len, header } = segment;
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
    let mut visit = |offset: usize, record: Record<'_>| {
        index.note(record.position(), offset as u32);
        let stream = record.check_stream()?;
        writer.push(stream, record.version(), record.position(), salvage).map_err(|expected| {
            CorruptionKind::VersionMismatch { expected, found: record.version() }
        })
    };
    if salvage {
        // Salvage never refuses a record of a batch it proved whole: one whose version does not
        // fit its stream (it can only go backwards here) stays in `$all` but not in the stream.
        let end = salvage_segment(view.bytes(), head.max(base), |offset, record| {
            let _ = visit(offset, record);
            Ok(())
        });
        drop(writer);
        let holes = end.skipped.iter().map(|s| (s.start, s.end)).collect();
        report.salvaged.extend(end.skipped.iter().map(|s| Dropped {
            segment: name.clone(),
            offset: s.start as u64,
            bytes: (s.end - s.start) as u64,
            kind: s.kind,
        }));
        let end_position = end.next_position;
        return Ok(Segment::recovered(header, name, path, file, len, end_position, index)
            .with_holes(holes));
    }
    let end = scan_segment(view.bytes(), base, &mut visit)
        .map_err(|(offset, kind)| corruption(offset, kind))?;
    drop(writer);
    // A torn tail is one group write: every record that still decodes after the damage was
    // committed at that group's time. Records of two commit times after it mean a group that
    // was fsynced (and acknowledged) follows the damage: that is corruption, never a torn tail.
    let acknowledged_after =
        end.damage.is_some_and(|d| groups_after(view.bytes(), d.batch_offset) > 1);
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
