//! Recovery's shortest path: the segments the stream table lists, taken from the list. When
//! the first segment files of the directory are exactly the segments the table lists (same
//! bases in the same order, each file of the length its entry states: a `stat`, no open), they
//! are built from the list without reading them, except the last one, which is opened and
//! whose last record is read and checked: a crash while the writer appended to it is the one
//! change that the list cannot see by length alone (each segment before it was fsynced whole
//! before the next one existed, and a scavenge's rewrite changes the length or the header's
//! span). The others' headers and index files are checked when first used. Anything that does
//! not fit leaves the open to the other stages, which read every header.

use std::{path::Path, sync::Arc};

use crate::{
    format::{DERIVED_HEADER_LEN, ListedSegment, SEGMENT_HEADER_LEN, StreamTable, decode_record},
    index::{files, stored_record_crc},
    io::{ReadView, StorageFile},
    options::Options,
    segment::{Listed, ListedHooks, Segment},
};

use super::RecoveryReport;

/// The listed segments, and what the table says as of their end.
pub(super) struct Prefix {
    /// The listed segments in log order; all but the last one unopened.
    pub segments: Vec<Segment>,
    /// The segment files after them, with their bases, for the other stages.
    pub rest: Vec<(u64, String)>,
    /// What the later stages continue from.
    pub start: Start,
    /// What the listed segments share, for the store to hook its indexer into.
    pub hooks: Arc<ListedHooks>,
}

/// Where the listed segments leave the log.
pub(super) struct Start {
    /// One past the last position of the last listed segment.
    pub end: u64,
    /// The table (checked whole), as of that end.
    pub table: Arc<dyn ReadView>,
    /// Whether it is `streams.close.tbl`.
    pub close_table: bool,
    /// The group sequence of the last listed record (`None` in a log without one).
    pub sequence: Option<u64>,
    /// The highest durable mark among the tables found.
    pub high_water: Option<u64>,
    /// Whether a listed segment was rewritten by a scavenge, and whether the last one was.
    pub scavenged: (bool, bool),
}

/// The listed segments of `names` (the segment files in `dir`, in log order), if a stream table
/// lists the first of them exactly. Tables found unusable on the way are named in the report
/// only if the path is taken (otherwise the other stages find and name them).
pub(super) fn plan(
    dir: &Path,
    options: &Options,
    names: &[(u64, String)],
    report: &mut RecoveryReport,
) -> Option<Prefix> {
    let (candidates, high_water, mut unusable) = tables(dir, options);
    for (view, name) in candidates {
        view.prefetch();
        let Ok(table) = StreamTable::parse_header(view.bytes()) else { continue };
        if table.check_body().is_err() {
            unusable.push(name);
            continue;
        }
        let listed: Vec<ListedSegment> = table.segments().collect();
        if !files_match(dir, options, names, &listed) {
            continue;
        }
        let Some(Built { segments, last_sequence, hooks }) = build(dir, options, names, &listed)
        else {
            continue;
        };
        let Some(last) = segments.last() else { continue };
        let start = Start {
            end: last.end_position(),
            table: Arc::clone(&view),
            close_table: name == files::CLOSE_TABLE,
            sequence: last_sequence,
            high_water,
            scavenged: (segments.iter().any(Segment::is_compacted), last.is_compacted()),
        };
        report.rebuilt.extend(unusable.into_iter().map(str::to_owned));
        report.rebuilt.extend(missing_index_files(dir, options, &names[..listed.len()]));
        let rest = names[listed.len()..].to_vec();
        return Some(Prefix { segments, rest, start, hooks });
    }
    None
}

/// The index files of `listed` (segment files) that are missing or too short to hold a header:
/// a `stat` each, no read. Those segments rebuild their index in memory on first use, as for an
/// index file found wanting then (damaged, swapped or stale, which only reading it shows).
fn missing_index_files(dir: &Path, options: &Options, listed: &[(u64, String)]) -> Vec<String> {
    listed
        .iter()
        .map(|(_, name)| files::index_file_name(name))
        .filter(|index| {
            let len = options.storage.file_len(&dir.join(index));
            !len.is_ok_and(|len| len >= DERIVED_HEADER_LEN as u64)
        })
        .collect()
}

/// A stream table's bytes and its file name.
type NamedTable = (Arc<dyn ReadView>, &'static str);

/// The tables with a segment list, the one covering most first (on a tie the close table,
/// which covers the active segment too); the highest durable mark of any table; and the
/// tables whose header does not parse.
fn tables(dir: &Path, options: &Options) -> (Vec<NamedTable>, Option<u64>, Vec<&'static str>) {
    let (mut candidates, mut high_water, mut unusable) = (Vec::new(), None::<u64>, Vec::new());
    for name in [files::CLOSE_TABLE, files::STREAM_TABLE] {
        let view = match files::map(&*options.storage, dir, name) {
            Ok(Some(view)) => view,
            Ok(None) => continue,
            Err(_) => {
                unusable.push(name);
                continue;
            }
        };
        let Ok(table) = StreamTable::parse_header(view.bytes()) else {
            unusable.push(name);
            continue;
        };
        let binding = table.binding();
        if binding.durable {
            high_water = high_water.max(Some(binding.covered));
        }
        if table.segment_count() > 0 {
            candidates.push((binding.covered, view, name));
        }
    }
    candidates.sort_by_key(|&(covered, ..)| std::cmp::Reverse(covered));
    let candidates = candidates.into_iter().map(|(_, view, name)| (view, name)).collect();
    (candidates, high_water, unusable)
}

/// Whether the first `listed.len()` segment files are the listed segments: the same bases in
/// the same order, each file of the length its entry states.
fn files_match(
    dir: &Path,
    options: &Options,
    names: &[(u64, String)],
    listed: &[ListedSegment],
) -> bool {
    listed.len() <= names.len()
        && listed.iter().zip(names).all(|(entry, (base, name))| {
            let Some(b) = entry.binding() else { return false };
            let len = options.storage.file_len(&dir.join(name));
            b.base_position == *base && len.is_ok_and(|len| len == b.segment_len)
        })
}

/// The listed segments, the last one opened and its header and last record checked (with the
/// group sequence of that record); `None` if they do not pass (the other stages then read the
/// log as it is).
fn build(
    dir: &Path,
    options: &Options,
    names: &[(u64, String)],
    listed: &[ListedSegment],
) -> Option<Built> {
    let hooks = Arc::new(ListedHooks::default());
    let mut segments = Vec::with_capacity(listed.len() + 1);
    let mut last_sequence = None;
    for (i, (entry, (_, name))) in listed.iter().zip(names).enumerate() {
        let storage = Arc::clone(&options.storage);
        let lazy = Listed::new(storage, dir, *entry, Arc::clone(&hooks))?;
        let file = match i + 1 == listed.len() {
            false => None,
            true => {
                let file = lazy.open_file(name).ok()?;
                last_sequence = last_record(&*file, entry)?;
                Some(file)
            }
        };
        let path = dir.join(name);
        let segment = Segment::listed(name.clone(), path, lazy, file, options.index_stride)?;
        segments.push(segment);
    }
    Some(Built { segments, last_sequence, hooks })
}

/// The listed segments as [`build`] made them.
struct Built {
    segments: Vec<Segment>,
    /// The group sequence of the last listed record.
    last_sequence: Option<u64>,
    hooks: Arc<ListedHooks>,
}

/// Reads and checks the last record `entry` names in `file`: it must end the segment, lie in
/// the segment's positions, hold the checksum the entry's index header binds, and pass its own
/// checks. `Some` with its group sequence (`Some(None)` for a segment without a record).
fn last_record(file: &dyn StorageFile, entry: &ListedSegment) -> Option<Option<u64>> {
    let b = entry.binding()?;
    if b.records == 0 {
        return (b.segment_len == SEGMENT_HEADER_LEN as u64).then_some(None);
    }
    let offset = u64::from(entry.last_record_offset);
    let len = usize::try_from(b.segment_len.checked_sub(offset)?).ok()?;
    if len > (64 << 20) {
        return None;
    }
    let mut bytes = vec![0u8; len];
    file.read_at(offset, &mut bytes).ok()?;
    let layout = entry.segment_header()?.layout();
    let record = decode_record(&bytes, 0, layout).ok()?;
    let inside = (b.base_position..b.end_position).contains(&record.position());
    let crc = stored_record_crc(&bytes, 0) == Some(b.last_record_crc);
    (record.len() == len && inside && crc).then(|| Some(record.sequence().unwrap_or(0)))
}
