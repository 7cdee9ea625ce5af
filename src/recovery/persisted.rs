//! Recovery's fast path: take the persisted index of each segment and the stream table instead
//! of scanning, for the longest prefix of the log whose index files are bound to their
//! segments exactly (base, format version, span, length, the header's and the last record's
//! checksums). The table used is the one bound to the last index of that prefix, or an older
//! one folded forward over the indexes after it, or, if none fits, the fold of every index.
//! Anything that does not fit is named in the report and left to the scan, which rebuilds
//! what it covers; nothing here can make an open fail, except a durable high-water mark
//! above the end of the log, which `recover` checks.

use std::sync::Arc;

use crate::{
    format::{CorruptionKind, SEGMENT_HEADER_LEN, StreamTable, TableBinding, decode_record},
    index::{Origin, SegmentIndex, files, stored_record_crc},
    indexer::{fold_all, is_bound_to},
    io::ReadView,
    options::{Durability, Options},
};

use super::{RecoveryReport, headers::Opened, listed::Start};

/// What the persisted files give recovery.
#[derive(Default)]
pub(super) struct Persisted {
    /// The indexes of the first `indexes.len()` segments, each bound to its segment.
    pub indexes: Vec<Arc<SegmentIndex>>,
    /// The stream table as of the end of the last of those segments.
    pub table: Option<Arc<dyn ReadView>>,
    /// The highest position a table written with fsyncs says was durable.
    pub high_water: Option<u64>,
    /// The group sequence of the last record of those segments (the highest among them).
    pub sequence: Option<u64>,
    /// Whether the table is `streams.close.tbl` as it is on disk (a clean close's, used whole).
    pub close_table_used: bool,
}

/// Reads the index files and stream tables in `dir` for the segments `opened`, which follow
/// the segments listed in a stream table if `start` says where those end.
pub(super) fn load(
    dir: &std::path::Path,
    options: &Options,
    opened: &[Opened],
    start: Option<&Start>,
    report: &mut RecoveryReport,
) -> Persisted {
    let mut persisted = Persisted::default();
    (persisted.indexes, persisted.sequence) = bound_prefix(dir, options, opened, start, report);
    let durable = options.durability == Durability::Fsync;
    if let Some(start) = start {
        after_listed(&mut persisted, start, durable);
        return persisted;
    }
    let (table, high_water) = best_table(dir, options, &persisted.indexes, report);
    persisted.high_water = high_water;
    let Some(last) = persisted.indexes.len().checked_sub(1) else { return persisted };
    persisted.close_table_used =
        table.as_ref().is_some_and(|&(at, _, name)| at == last && name == files::CLOSE_TABLE);
    let folded = match table {
        Some((at, view, _)) if at == last => Ok(Some(view)),
        Some((at, view, _)) => fold_all(Some(view.bytes()), &persisted.indexes[at + 1..], durable)
            .map(|t| t.map(|t| Arc::new(t) as Arc<dyn ReadView>)),
        None => {
            report.rebuilt.push(files::STREAM_TABLE.to_owned());
            fold_all(None, &persisted.indexes, durable)
                .map(|t| t.map(|t| Arc::new(t) as Arc<dyn ReadView>))
        }
    };
    match folded {
        Ok(table) => persisted.table = table,
        Err(_) => {
            // An index file failed its full check while folding: scan everything instead.
            report.rebuilt.push(files::STREAM_TABLE.to_owned());
            persisted.indexes.clear();
            persisted.sequence = None;
        }
    }
    persisted
}

/// The index files bound to the first of `opened` (a prefix, cut at the first one missing or
/// unbound), each continuing the log where the one before it ends, and the group sequence of
/// the last record of the last of them.
fn bound_prefix(
    dir: &std::path::Path,
    options: &Options,
    opened: &[Opened],
    start: Option<&Start>,
    report: &mut RecoveryReport,
) -> (Vec<Arc<SegmentIndex>>, Option<u64>) {
    let mut indexes: Vec<Arc<SegmentIndex>> = Vec::new();
    let storage = &*options.storage;
    let mut end = match start {
        Some(start) => Some(start.end),
        None => opened.first().map(|s| s.header.base_position),
    };
    for (i, segment) in opened.iter().enumerate() {
        let name = files::index_file_name(&segment.name);
        let view = match files::map(storage, dir, &name) {
            Ok(Some(view)) => view,
            // The last segment has none while it is active (unless it was closed cleanly).
            Ok(None) if i + 1 == opened.len() => break,
            _ => {
                report.rebuilt.push(name);
                break;
            }
        };
        let bound = SegmentIndex::new(view, Origin::File, segment.header.group_bytes_max)
            .ok()
            .filter(|index| bound_to(index, segment, end));
        let Some(index) = bound else {
            report.rebuilt.push(name);
            break;
        };
        end = Some(index.binding().end_position);
        indexes.push(Arc::new(index));
    }
    // Only the last segment of the prefix can have changed without its length or header (a
    // crash while the writer appended to it): its last record must be the one its index
    // names. Each segment before it was fsynced whole before the next one was created, and a
    // scavenge's rewrite changes the length or the header's span; reading their last records
    // too would cost a random read per segment, which is what an open must not grow with.
    while let Some(index) = indexes.last() {
        let segment = &opened[indexes.len() - 1];
        if let Some(sequence) = last_record_sequence(index, segment) {
            return (indexes, sequence);
        }
        report.rebuilt.push(files::index_file_name(&segment.name));
        indexes.pop();
    }
    (indexes, None)
}

/// The table as of the end of the indexes after the listed segments: the listed table folded
/// forward over them (rarely any: the indexer writes the table right after each index file).
fn after_listed(persisted: &mut Persisted, start: &Start, durable: bool) {
    persisted.high_water = start.high_water;
    persisted.close_table_used = start.close_table && persisted.indexes.is_empty();
    let folded = match persisted.indexes.is_empty() {
        true => Ok(None),
        false => fold_all(Some(start.table.bytes()), &persisted.indexes, durable),
    };
    match folded {
        Ok(Some(table)) => persisted.table = Some(Arc::new(table)),
        Ok(None) | Err(_) => {
            // None after the listed ones, or one that failed its full check: the segments
            // after the list are scanned.
            persisted.indexes.clear();
            persisted.sequence = start.sequence;
            persisted.table = Some(Arc::clone(&start.table));
        }
    }
}

/// Whether `index` is bound to `segment`, whose first position must be `base` (the end of the
/// segment before, as its index says), as far as the segment's header and length tell.
fn bound_to(index: &SegmentIndex, segment: &Opened, base: Option<u64>) -> bool {
    let b = *index.binding();
    let header = &segment.header;
    let fits = b.base_position == header.base_position
        && Some(b.base_position) == base
        && b.segment_version == header.version
        && b.segment_span == header.span
        && b.segment_len == segment.len;
    fits && segment.header_crc == b.segment_header_crc
}

/// The group sequence of the last record of `segment` if it is the record `index` names last
/// (`Some(None)` for an index of no record, of a segment that holds none).
fn last_record_sequence(index: &SegmentIndex, segment: &Opened) -> Option<Option<u64>> {
    let b = *index.binding();
    let view = index.view()?;
    let Some((position, offset)) = view.floor(u64::MAX) else {
        return (b.records == 0 && b.segment_len == SEGMENT_HEADER_LEN as u64).then_some(None);
    };
    last_record(segment, (position, offset), &b).map(Some)
}

/// Reads and verifies the last record the index names: it must end the segment, hold the
/// position and checksum the index says, and pass its own checks. Returns its sequence.
fn last_record(
    segment: &Opened,
    (position, offset): (u64, u32),
    b: &crate::format::SegmentBinding,
) -> Option<u64> {
    let len = usize::try_from(b.segment_len.checked_sub(u64::from(offset))?).ok()?;
    if len > (64 << 20) {
        return None;
    }
    let mut bytes = vec![0u8; len];
    segment.file.read_at(u64::from(offset), &mut bytes).ok()?;
    let record = decode_record(&bytes, 0, segment.header.layout()).ok()?;
    let whole = record.len() == len && record.position() == position;
    let crc = stored_record_crc(&bytes, 0) == Some(b.last_record_crc);
    (whole && crc).then(|| record.sequence().unwrap_or(0))
}

/// A stream table's bytes and the place among the indexes of the segment it is bound to.
type BoundTable = (usize, Arc<dyn ReadView>, &'static str);

/// The usable stream table bound to the latest of `indexes` (its place among them and its
/// bytes), and the highest durable mark among the tables found. Only the headers of both tables
/// are read to choose; only the chosen table's body is checked (read whole, ahead of the
/// check), and if that fails the other is tried. A table not chosen is checked when it is next
/// used (the indexer folds `streams.tbl` forward only after checking it whole).
fn best_table(
    dir: &std::path::Path,
    options: &Options,
    indexes: &[Arc<SegmentIndex>],
    report: &mut RecoveryReport,
) -> (Option<BoundTable>, Option<u64>) {
    let mut high_water = None::<u64>;
    let mut candidates = Vec::with_capacity(2);
    for name in TABLES {
        let (view, binding) = match table_header(dir, options, name) {
            Ok(Some(found)) => found,
            Ok(None) => continue,
            Err(()) => {
                report.rebuilt.push(name.to_owned());
                continue;
            }
        };
        if binding.durable {
            high_water = high_water.max(Some(binding.covered));
        }
        if let Some(at) = indexes.iter().rposition(|index| is_bound_to(&binding, index)) {
            candidates.push((at, view, name));
        }
    }
    // The latest first; on a tie the close table, which covers the active segment too.
    candidates.sort_by_key(|&(at, ..)| std::cmp::Reverse(at));
    for (at, view, name) in candidates {
        view.prefetch();
        let whole = StreamTable::parse_header(view.bytes()).and_then(|t| t.check_body());
        match whole {
            Ok(()) => return (Some((at, view, name)), high_water),
            Err(_) => report.rebuilt.push(name.to_owned()),
        }
    }
    (None, high_water)
}

/// The highest durable mark among the stream tables in `dir` as they are now (headers only;
/// a table missing or unreadable counts for nothing). A read-only open, which may run beside a
/// live writer, reads it before it lists the segments: the writer records a mark only once the
/// log below it is durable, so a mark read first can never pass the log read after it, while
/// the mark of a table written after the listing could.
pub(super) fn durable_mark(dir: &std::path::Path, options: &Options) -> Option<u64> {
    TABLES
        .into_iter()
        .filter_map(|name| table_header(dir, options, name).ok().flatten())
        .filter_map(|(_, binding)| binding.durable.then_some(binding.covered))
        .max()
}

/// The stream tables, in the order an open prefers them on a tie: the close table covers the
/// active segment too.
const TABLES: [&str; 2] = [files::CLOSE_TABLE, files::STREAM_TABLE];

/// A stream table's mapped bytes and its header's binding.
type MappedTable = (Arc<dyn ReadView>, TableBinding);

/// Stream table `name` in `dir`, mapped, with its header's binding: `None` if there is none,
/// `Err` if it cannot be mapped or its header does not parse.
fn table_header(
    dir: &std::path::Path,
    options: &Options,
    name: &str,
) -> Result<Option<MappedTable>, ()> {
    let Some(view) = files::map(&*options.storage, dir, name).map_err(drop)? else {
        return Ok(None);
    };
    let binding = StreamTable::parse_header(view.bytes()).map_err(drop)?.binding();
    Ok(Some((view, binding)))
}

/// Refuses a log that ends (at `end`) below the durable mark a table recorded: the last
/// segment was cut or deleted from outside, which no crash can do.
pub(super) fn check_high_water(high_water: Option<u64>, end: u64) -> crate::error::Result<()> {
    match high_water.filter(|&durable| durable > end) {
        None => Ok(()),
        Some(durable) => Err(crate::error::Error::Corruption {
            segment: files::STREAM_TABLE.to_owned(),
            offset: 0,
            kind: CorruptionKind::LogBelowDurableMark { durable, found: end },
        }),
    }
}
