//! Full verification of an open store: re-read every committed byte of every segment, check
//! every checksum and frame, and the log's invariants (positions dense, versions dense per
//! stream), and report the first problems with their locations.

use std::collections::HashMap;

use crate::{
    error::Result,
    format::{CorruptionKind, HeaderError, SegmentHeader, scan_any},
    shared::Shared,
};

/// At most this many problems are collected; verification goes on counting past them.
pub const PROBLEMS_MAX: usize = 16;

/// One problem found by [`Store::verify`](crate::Store::verify).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// File name of the segment.
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
    /// Events whose records passed every check.
    pub events: u64,
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
pub(crate) fn verify(shared: &Shared, mut progress: impl FnMut(u64, u64)) -> Result<VerifyReport> {
    let segments = shared.segments.snapshot();
    let total: u64 = segments.iter().map(|s| s.committed_len()).sum();
    let mut report = VerifyReport::default();
    let mut next_versions: HashMap<String, u64> = HashMap::new();
    let mut expected = segments.first().map_or(0, |s| s.base_position());
    // Once a scavenged segment has been seen, a stream's first event may have any version.
    let mut after_scavenge = false;
    for segment in &segments {
        after_scavenge |= segment.is_compacted();
        let name = segment.name();
        if segment.base_position() != expected {
            let kind = CorruptionKind::SegmentGap { expected, found: segment.base_position() };
            report.found(name, 0, kind);
        }
        let view = segment.view(segment.committed_len())?;
        let bytes = &view.bytes()[..segment.committed_len() as usize];
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
            Err(HeaderError::UnsupportedVersion(_)) => {
                report.found(name, 0, CorruptionKind::HeaderChecksum)
            }
        }
        let mut bad_versions = Vec::new();
        let end = scan_any(bytes, &segment.header(), |offset, record| {
            let Ok(stream) = record.check_text() else {
                bad_versions.push((offset as u64, CorruptionKind::InvalidUtf8));
                return Ok(());
            };
            let next = match next_versions.get_mut(stream) {
                Some(next) => next,
                None => {
                    let first = if after_scavenge { record.version() } else { 0 };
                    next_versions.entry(stream.to_owned()).or_insert(first)
                }
            };
            if record.version() != *next {
                let kind =
                    CorruptionKind::VersionMismatch { expected: *next, found: record.version() };
                bad_versions.push((offset as u64, kind));
            }
            *next = record.version() + 1;
            Ok(())
        })
        .expect("the visitor refuses nothing");
        for (offset, kind) in bad_versions {
            report.found(name, offset, kind);
        }
        if let Some(damage) = end.damage {
            report.found(name, damage.record_offset as u64, damage.kind);
        }
        report.events += end.next_position - segment.base_position();
        report.bytes += bytes.len() as u64;
        report.segments += 1;
        expected = end.next_position.max(segment.end_position());
        progress(report.bytes, total);
    }
    Ok(report)
}
