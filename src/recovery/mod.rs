//! Opening a store directory: find the segments, check their headers, scan every batch, settle
//! damage as the [`RecoveryMode`] says (cut a torn tail that provably was never acknowledged,
//! refuse anything else, or salvage around it), and rebuild the indexes from what remains —
//! or, for the segments whose persisted index files are bound to them, take those instead of
//! scanning (`persisted`). The idempotency window is refilled by the writer thread when the
//! first append arrives (`window`), so that an open does not read the log's last events.
//!
//! The stages live in their own files (`listed` → `headers` → `persisted` → `scan` → `tail`, and
//! `merged` for what an interrupted scavenge left); only [`recover`] decides between them. A
//! writable open first takes the segments the stream table lists (`listed`) without reading
//! them; the other stages then handle the segments after those, or all of them.

mod headers;
mod listed;
mod merged;
mod persisted;
mod scan;
mod tail;
mod window;

pub use headers::SEGMENT_LISTINGS_MAX;
pub(crate) use window::rebuild as rebuild_window;

use std::{path::Path, sync::Arc};

use crate::{
    error::Result,
    format::CorruptionKind,
    index::{SegmentIndex, SparseIndex, StreamIndex},
    options::{Options, RecoveryMode},
    segment::{ListedHooks, Segment},
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
    /// Derived files (segment index files, stream tables) that were missing, damaged, or
    /// stale (bound to another version of their segment or log): not used. What they held was
    /// rebuilt from the segments (every segment from the first one without a usable index file
    /// on was scanned); a writable open writes them anew in the background.
    pub rebuilt: Vec<String>,
    /// Segments that were scanned record by record; the others were opened from their
    /// persisted index files, or from the stream table's segment list (their index files are
    /// then checked on first use: one found wanting is rebuilt in memory and written anew,
    /// without a mention here).
    pub segments_scanned: usize,
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
    /// The sequence number of the next group commit: one above the highest in the log, 0 in a
    /// log without a format-3 record.
    pub next_sequence: u64,
    /// Whether the stream index stands on `streams.close.tbl` as it is on disk.
    pub close_table_used: bool,
    /// What the segments taken from the stream table's list share (whom they tell that an
    /// index file had to be rebuilt), if any were.
    pub listed_hooks: Option<Arc<ListedHooks>>,
    pub report: RecoveryReport,
}

/// Recovers the store in `dir`. With [`Access::ReadWrite`] the caller holds the lock.
pub(crate) fn recover(dir: &Path, options: &Options, access: Access) -> Result<Recovered> {
    let mode = options.recovery_mode;
    let writable = access == Access::ReadWrite && mode != RecoveryMode::Salvage;
    let mut report = RecoveryReport::default();
    // Beside a live writer (a read-only open), the mark must be read before the log it bounds.
    let early_mark = (!writable).then(|| persisted::durable_mark(dir, options));
    let Found { listed, start, hooks, opened } = find(dir, options, writable, &mut report)?;
    let persisted = match mode {
        RecoveryMode::Salvage => persisted::Persisted::default(),
        _ => persisted::load(dir, options, &opened, start.as_ref(), &mut report),
    };
    let (streams, persisted, table_loaded) = stand_on_table(persisted, &mut report);
    let mut segments = Vec::with_capacity(listed.len() + opened.len() + 1);
    segments.extend(listed.into_iter().map(Arc::new));
    let mut head = match &start {
        Some(start) => start.end,
        None => opened.first().map_or(0, |s| s.header.base_position),
    };
    let count = opened.len();
    let bases: Vec<u64> = opened.iter().map(|s| s.header.base_position).collect();
    let (mut after_scavenge, mut last_was_scavenged) =
        start.as_ref().map_or((false, false), |s| s.scavenged);
    // `last_was_scavenged`: whether the last segment kept was a scavenged one (whose span ends
    // at `head`).
    let mut sequence = persisted.sequence;
    let close_table_used = persisted.close_table_used && table_loaded;
    let mut indexes = persisted.indexes.into_iter();
    for (i, segment) in opened.into_iter().enumerate() {
        after_scavenge |= segment.header.span != 0;
        if let Some(index) = indexes.next() {
            // Bound to its segment, which continues the log at `head` (checked on load).
            last_was_scavenged = segment.header.span != 0;
            let segment = persisted_segment(dir, options, segment, index);
            head = segment.end_position();
            segments.push(Arc::new(segment));
            continue;
        }
        if last_was_scavenged && segment.header.base_position < head {
            // Inside the span of the scavenged segment before it: that segment holds what this
            // one kept (it was fsynced and renamed into place before this one was removed).
            report.merged_leftovers.push(segment.name);
            continue;
        }
        // A segment followed by one being created was fsynced before that file existed, so
        // only the very last segment of the log can have a torn tail.
        let is_last = i + 1 == count && report.removed_segment.is_none();
        last_was_scavenged = segment.header.span != 0;
        let next_base = bases.get(i + 1).copied();
        let context = scan::Context { dir, options, is_last, writable, after_scavenge, next_base };
        let segment =
            scan::scan_and_index(&context, segment, head, &streams, &mut sequence, &mut report)?;
        report.segments_scanned += 1;
        head = head.max(segment.end_position());
        segments.push(Arc::new(segment));
    }
    if mode != RecoveryMode::Salvage {
        persisted::check_high_water(early_mark.unwrap_or(persisted.high_water), head)?;
    }
    if writable {
        tidy(dir, options, &report, &mut segments, head)?;
    }
    streams.shrink();
    seal_and_count(&segments, head, &mut report);
    let next_sequence = sequence.map_or(0, |s| s + 1);
    let listed_hooks = hooks;
    Ok(Recovered { segments, streams, head, next_sequence, close_table_used, listed_hooks, report })
}

/// Seals every segment but the last (the active one) and counts the log into `report`.
fn seal_and_count(segments: &[Arc<Segment>], head: u64, report: &mut RecoveryReport) {
    if let Some((_, sealed)) = segments.split_last() {
        sealed.iter().for_each(|s| s.seal());
    }
    report.segments = segments.len();
    report.events = segments.first().map_or(0, |s| head - s.base_position());
}

/// The segments an open starts from: those the stream table lists (not opened), and the others
/// opened with their headers checked.
struct Found {
    listed: Vec<Segment>,
    /// Where the listed segments leave the log, if any were taken.
    start: Option<listed::Start>,
    hooks: Option<Arc<ListedHooks>>,
    opened: Vec<headers::Opened>,
}

/// Finds the segments of `dir`. Only a writable open, which holds the lock, takes segments
/// without opening them: beside it no scavenge can remove one before it is first used. A
/// salvage trusts nothing derived.
fn find(
    dir: &Path,
    options: &Options,
    writable: bool,
    report: &mut RecoveryReport,
) -> Result<Found> {
    let prefix = match writable {
        true => listed::plan(dir, options, &headers::list_segments(dir, options)?, report),
        false => None,
    };
    Ok(match prefix {
        Some(p) => Found {
            opened: headers::open_names(dir, options, p.rest, report)?,
            listed: p.segments,
            start: Some(p.start),
            hooks: Some(p.hooks),
        },
        None => Found {
            opened: headers::open_segments(dir, options, writable, report)?,
            listed: Vec::new(),
            start: None,
            hooks: None,
        },
    })
}

/// What a writable open changes on disk once every segment has passed: leftovers of an
/// interrupted scavenge, of derived-file writes and of a rotation go, and the log gets an
/// active segment.
fn tidy(
    dir: &Path,
    options: &Options,
    report: &RecoveryReport,
    segments: &mut Vec<Arc<Segment>>,
    head: u64,
) -> Result<()> {
    crate::scavenge::discard_unfinished(&*options.storage, dir)?;
    crate::index::files::remove_temporaries(&*options.storage, dir)
        .map_err(crate::error::Error::io("remove temporary files", dir))?;
    merged::remove_leftovers(dir, options, &report.merged_leftovers)?;
    if let Some(name) = &report.removed_segment {
        tail::remove_torn_segment(dir, options, name)?;
    }
    tail::ensure_active_segment(dir, options, segments, head)
}

/// A stream index standing on the persisted table, and what of `persisted` the open goes on
/// with: all of it, or, if the table does not parse (`false`), only its durable mark, so that
/// the scan rebuilds what the table would have said.
fn stand_on_table(
    persisted: persisted::Persisted,
    report: &mut RecoveryReport,
) -> (StreamIndex, persisted::Persisted, bool) {
    let streams = StreamIndex::default();
    if load_table(&streams, &persisted) {
        return (streams, persisted, true);
    }
    report.rebuilt.push(crate::index::files::STREAM_TABLE.to_owned());
    let high_water = persisted.high_water;
    (streams, persisted::Persisted { high_water, ..Default::default() }, false)
}

/// Puts the persisted table behind `streams`: every stream is looked up in it (no stream is
/// loaded into memory). `false` if it does not parse (it is then not used at all).
fn load_table(streams: &StreamIndex, persisted: &persisted::Persisted) -> bool {
    let Some(view) = &persisted.table else { return true };
    let Ok(table) = crate::format::StreamTable::parse_header(view.bytes()) else { return false };
    streams.set_table(Arc::clone(view), table.binding().covered)
}

/// A segment opened from its persisted index: nothing of it is read.
fn persisted_segment(
    dir: &Path,
    options: &Options,
    segment: headers::Opened,
    index: Arc<SegmentIndex>,
) -> Segment {
    let headers::Opened { name, file, len, header, .. } = segment;
    let path = dir.join(&name);
    let end = index.binding().end_position;
    let sparse = SparseIndex::new(header.base_position, options.index_stride);
    let segment = Segment::recovered(header, name, path, file, len, end, sparse);
    segment.set_persisted(index);
    segment
}
