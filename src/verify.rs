//! Full verification of an open store: re-read every committed byte of every segment, check
//! every checksum and frame, and the log's invariants (positions dense, versions dense per
//! stream), check every persisted segment index against its segment and every stream table's
//! checksums and structure, and report the first problems with their locations.

use std::collections::HashMap;

use crate::{
    error::{Error, Result},
    format::{
        CorruptionKind, HeaderError, IndexFile, Record, SegmentHeader, StreamTable, scan_any,
    },
    index::{build_index, files, stored_header_crc, stored_record_crc},
    segment::Segment,
    shared::Shared,
};

/// At most this many problems are collected; verification goes on counting past them.
pub const PROBLEMS_MAX: usize = 16;

/// One problem found by [`Store::verify`](crate::Store::verify).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// File name of the segment (or of its index file, for an index that does not match it,
    /// or of a stream table that fails its checks: [`CorruptionKind::IndexMismatch`]).
    pub segment: String,
    /// Byte offset of the record (0 for the segment itself).
    pub offset: u64,
    /// What is wrong.
    pub kind: CorruptionKind,
}

/// What [`Store::verify`](crate::Store::verify) checked and found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Segments checked.
    pub segments: usize,
    /// Events whose records passed every check (scavenged events are gone, so not counted).
    pub events: u64,
    /// Positions the segments checked cover: the events committed, scavenged ones too
    /// ([`Stats::events`](crate::Stats::events) for the same log).
    pub positions: u64,
    /// Bytes read.
    pub bytes: u64,
    /// The first problems (at most [`PROBLEMS_MAX`]), in log order.
    pub problems: Vec<Problem>,
    /// Problems found in all, including those not listed.
    pub problem_count: usize,
}

impl VerifyReport {
    /// Whether no problem was found.
    pub fn is_clean(&self) -> bool {
        self.problem_count == 0
    }

    fn found(&mut self, segment: &str, offset: u64, kind: CorruptionKind) {
        self.problem_count += 1;
        if self.problems.len() < PROBLEMS_MAX {
            self.problems.push(Problem { segment: segment.to_owned(), offset, kind });
        }
    }
}

/// Verifies every committed segment, calling `progress(bytes_done, bytes_total)` after each.
/// A segment's committed length is read once: the writer may publish more meanwhile, and the
/// view, the scan and the counts must all be of the same bytes.
pub(crate) fn verify(shared: &Shared, mut progress: impl FnMut(u64, u64)) -> Result<VerifyReport> {
    let segments = shared.segments().snapshot();
    let lens: Vec<u64> = segments.iter().map(|s| s.committed_len()).collect();
    let total = lens.iter().sum();
    let mut report = VerifyReport::default();
    let mut streams = Versions::default();
    let mut expected = segments.first().map_or(0, |s| s.base_position());
    for (segment, &len) in segments.iter().zip(&lens) {
        streams.after_scavenge |= segment.is_compacted();
        let name = segment.name();
        if segment.base_position() != expected {
            let kind = CorruptionKind::SegmentGap { expected, found: segment.base_position() };
            report.found(name, 0, kind);
        }
        let view = match segment.view(len) {
            Ok(view) => view,
            // A segment taken from the stream table's list whose header on disk is not the one
            // listed: changed from outside. Nothing of it can be checked further.
            Err(Error::Corruption { segment: name, offset, kind }) => {
                report.found(&name, offset, kind);
                report.segments += 1;
                expected = segment.end_position();
                continue;
            }
            Err(e) => return Err(e),
        };
        let bytes = &view.bytes()[..len as usize];
        check_header(segment, bytes, &mut report)?;
        let mut bad_versions = Vec::new();
        let end = scan_any(bytes, &segment.header(), |offset, record| {
            match streams.check(record) {
                Ok(()) => report.events += 1,
                Err(kind) => bad_versions.push((offset as u64, kind)),
            }
            Ok(())
        })
        .expect("the visitor refuses nothing");
        for (offset, kind) in bad_versions {
            report.found(name, offset, kind);
        }
        if let Some(damage) = end.damage {
            report.found(name, damage.record_offset as u64, damage.kind);
        } else {
            check_index(shared, segment, bytes, &mut report);
        }
        report.positions += end.next_position - segment.base_position();
        report.bytes += len;
        report.segments += 1;
        expected = end.next_position.max(segment.end_position());
        progress(report.bytes, total);
    }
    check_tables(shared, &mut report);
    Ok(report)
}

/// Checks each stream table there is in full. An open reads only the headers of the tables
/// and the body of the one it takes, and the indexer checks `streams.tbl` before folding it
/// forward, so a damaged table is never used; this is where one not used yet is reported.
fn check_tables(shared: &Shared, report: &mut VerifyReport) {
    let storage = &*shared.options().storage;
    for name in [files::STREAM_TABLE, files::CLOSE_TABLE] {
        let whole = match files::map(storage, shared.dir(), name) {
            Ok(None) => continue,
            Ok(Some(view)) => {
                view.prefetch();
                StreamTable::parse_header(view.bytes()).and_then(|t| t.check_body()).is_ok()
            }
            Err(_) => false,
        };
        if !whole {
            report.found(name, 0, CorruptionKind::IndexMismatch);
        }
    }
}

/// Checks the header on disk against the segment as opened. A header of a format version this
/// build does not read cannot be checked further: that is the error it is, not damage.
fn check_header(segment: &Segment, bytes: &[u8], report: &mut VerifyReport) -> Result<()> {
    let name = segment.name();
    match SegmentHeader::decode(bytes) {
        Ok(h) if h.base_position == segment.base_position() => {}
        Ok(h) => {
            let kind = CorruptionKind::SegmentGap {
                expected: segment.base_position(),
                found: h.base_position,
            };
            report.found(name, 0, kind);
        }
        Err(HeaderError::Corrupt(kind)) => report.found(name, 0, kind),
        Err(HeaderError::UnsupportedVersion(found)) => {
            let (segment, supported) = (name.to_owned(), crate::format::FORMAT_VERSION);
            return Err(Error::UnsupportedFormat { segment, found, supported });
        }
    }
    Ok(())
}

/// Checks the segment's index file, if it has one, against the segment's bytes: the index
/// built from them now must be the file, byte for byte (links to earlier segments are taken
/// from the file, and the codec refuses any that is not earlier). A file that covers another
/// length of the segment is stale, which is no problem: opens never use it.
fn check_index(shared: &Shared, segment: &Segment, bytes: &[u8], report: &mut VerifyReport) {
    let name = files::index_file_name(segment.name());
    let storage = &*shared.options().storage;
    let Ok(Some(file)) = files::map(storage, shared.dir(), &name) else { return };
    let Ok(index) = IndexFile::parse_header(file.bytes()) else {
        report.found(&name, 0, CorruptionKind::IndexMismatch);
        return;
    };
    let Some(bytes) =
        usize::try_from(index.binding().segment_len).ok().and_then(|l| bytes.get(..l))
    else {
        return;
    };
    if !bound_to(&index, bytes) {
        // Bound to another version of the segment (a crash between a scavenge's index write
        // and its rename): stale, which opens notice and never use.
        return;
    }
    let prev = |stream: &str| index.stream(stream)?.prev_segment;
    match build_index(bytes, &segment.header(), prev) {
        Ok(expected) if expected == file.bytes() => {}
        _ => report.found(&name, 0, CorruptionKind::IndexMismatch),
    }
}

/// Whether `index` names `bytes` (the segment as far as the index says it covers) as its
/// segment: the header's checksum, and the last record's place and checksum.
fn bound_to(index: &IndexFile<'_>, bytes: &[u8]) -> bool {
    let b = index.binding();
    if stored_header_crc(bytes) != Some(b.segment_header_crc) {
        return false;
    }
    match index.floor(u64::MAX) {
        None => b.records == 0,
        Some((_, offset)) => {
            let offset = offset as usize;
            let ends = crate::format::record_len(bytes.get(offset..).unwrap_or_default())
                .is_some_and(|len| offset + len == bytes.len());
            ends && stored_record_crc(bytes, offset) == Some(b.last_record_crc)
        }
    }
}

/// The next version each stream must have, in log order.
#[derive(Default)]
struct Versions {
    next: HashMap<String, u64>,
    /// Once a scavenged segment has been seen, a stream's first event may have any version.
    after_scavenge: bool,
}

impl Versions {
    /// Checks that `record` continues its stream (and that its stream name is text).
    fn check(&mut self, record: Record<'_>) -> Result<(), CorruptionKind> {
        let stream = record.check_text().map_err(|_| CorruptionKind::InvalidUtf8)?;
        let next = match self.next.get_mut(stream) {
            Some(next) => next,
            None => {
                let first = if self.after_scavenge { record.version() } else { 0 };
                self.next.entry(stream.to_owned()).or_insert(first)
            }
        };
        let expected = *next;
        *next = record.version() + 1;
        match record.version() == expected {
            true => Ok(()),
            false => Err(CorruptionKind::VersionMismatch { expected, found: record.version() }),
        }
    }
}
