//! Opening a store directory: find the segments, check their headers, scan every batch, settle
//! damage as the [`RecoveryMode`] says (cut a torn tail that provably was never acknowledged,
//! refuse anything else, or salvage around it), and rebuild the indexes and the idempotency
//! window from what remains.
//!
//! The stages live in their own files (`headers` → `scan` → `tail` → `window`, and `merged` for
//! what an interrupted scavenge left); only [`recover`] decides between them.

mod headers;
mod merged;
mod scan;
mod tail;
mod window;

pub use headers::SEGMENT_LISTINGS_MAX;

use std::{path::Path, sync::Arc};

use crate::{
    error::Result,
    format::CorruptionKind,
    index::StreamIndex,
    options::{Options, RecoveryMode},
    segment::Segment,
    writer::IdWindow,
};

/// What recovery found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Segments in the log after recovery.
    pub segments: usize,
    /// Events in the log after recovery.
    pub events: u64,
    /// A torn tail that was cut off (never acknowledged: it lay within one group write of the
    /// end of the last segment). A read-only open leaves the bytes on disk and only ignores them.
    pub truncated: Option<TornTail>,
    /// A last segment whose header never became durable (a crash while rotating): removed, or
    /// ignored by a read-only open.
    pub removed_segment: Option<String>,
    /// What a [`RecoveryMode::Salvage`] open stepped over: damaged byte ranges and segments.
    pub salvaged: Vec<Dropped>,
    /// Segments that a scavenge had merged into the segment before them (whose span covers
    /// them) and that a crash left behind: removed, or ignored by a read-only open.
    pub merged_leftovers: Vec<String>,
}

/// A torn tail cut off the last segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornTail {
    /// File name of the segment.
    pub segment: String,
    /// The offset it was cut at (the start of the first bad batch).
    pub offset: u64,
    /// How many bytes were dropped.
    pub bytes_dropped: u64,
    /// What was wrong with the first bad batch.
    pub kind: CorruptionKind,
}

/// A damaged range a salvaging open left out: out of the log, or, for a whole record whose
/// stream version does not fit its stream ([`CorruptionKind::VersionMismatch`]), out of its
/// stream only (the event stays in `$all`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dropped {
    /// File name of the segment.
    pub segment: String,
    /// Where the range starts.
    pub offset: u64,
    /// Its length in bytes.
    pub bytes: u64,
    /// What was wrong at its start.
    pub kind: CorruptionKind,
}

/// How an open may touch the files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    /// Recovery may cut a torn tail, remove a torn segment, and start a segment.
    ReadWrite,
    /// Recovery changes nothing on disk.
    ReadOnly,
}

/// The log as recovery left it, ready for the writer and readers.
pub(crate) struct Recovered {
    pub segments: Vec<Arc<Segment>>,
    pub streams: StreamIndex,
    pub head: u64,
    pub window: IdWindow,
    /// The sequence number of the next group commit: one above the highest in the log, 0 in a
    /// log without a format-3 record.
    pub next_sequence: u64,
    pub report: RecoveryReport,
}

/// Recovers the store in `dir`. With [`Access::ReadWrite`] the caller holds the lock.
pub(crate) fn recover(dir: &Path, options: &Options, access: Access) -> Result<Recovered> {
    let mode = options.recovery_mode;
    let writable = access == Access::ReadWrite && mode != RecoveryMode::Salvage;
    let mut report = RecoveryReport::default();
    let opened = headers::open_segments(dir, options, writable, &mut report)?;
    let streams = StreamIndex::default();
    let mut segments = Vec::with_capacity(opened.len() + 1);
    let mut head = opened.first().map_or(0, |s| s.header.base_position);
    let count = opened.len();
    let bases: Vec<u64> = opened.iter().map(|s| s.header.base_position).collect();
    let mut after_scavenge = false;
    // Whether the last segment kept was a scavenged one (whose span ends at `head`).
    let mut last_was_scavenged = false;
    let mut sequence = None;
    for (i, segment) in opened.into_iter().enumerate() {
        if last_was_scavenged && segment.header.base_position < head {
            // Inside the span of the scavenged segment before it: that segment holds what this
            // one kept (it was fsynced and renamed into place before this one was removed).
            report.merged_leftovers.push(segment.name);
            continue;
        }
        // A segment followed by one being created was fsynced before that file existed, so
        // only the very last segment of the log can have a torn tail.
        let is_last = i + 1 == count && report.removed_segment.is_none();
        after_scavenge |= segment.header.span != 0;
        last_was_scavenged = segment.header.span != 0;
        let next_base = bases.get(i + 1).copied();
        let context = scan::Context { dir, options, is_last, writable, after_scavenge, next_base };
        let segment =
            scan::scan_and_index(&context, segment, head, &streams, &mut sequence, &mut report)?;
        head = head.max(segment.end_position());
        segments.push(Arc::new(segment));
    }
    if writable {
        crate::scavenge::discard_unfinished(&*options.storage, dir)?;
        merged::remove_leftovers(dir, options, &report.merged_leftovers)?;
        if let Some(name) = &report.removed_segment {
            tail::remove_torn_segment(dir, options, name)?;
        }
        tail::ensure_active_segment(dir, options, &mut segments, head)?;
    }
    streams.shrink();
    if let Some((_, sealed)) = segments.split_last() {
        sealed.iter().for_each(|s| s.seal());
    }
    let window = match writable {
        true => window::rebuild(&segments, head, options.idempotency_window_events as usize)?,
        false => IdWindow::new(0),
    };
    report.segments = segments.len();
    report.events = segments.first().map_or(0, |s| head - s.base_position());
    let next_sequence = sequence.map_or(0, |s| s + 1);
    Ok(Recovered { segments, streams, head, window, next_sequence, report })
}
