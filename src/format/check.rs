//! Checking the bytes of one segment file on their own: the header, then every batch. Used by
//! verification and by the fuzz targets; it never panics, whatever the bytes.

use super::{CorruptionKind, HeaderError, SegmentHeader, scan_any};

/// What a check of one segment file's bytes found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentCheck {
    /// The base position from the header.
    pub base_position: u64,
    /// The header's span: 0 for a segment the writer wrote (positions dense), else the
    /// positions a segment rewritten by scavenging covers (its records may have gaps).
    pub span: u32,
    /// Records in complete, valid batches.
    pub records: u64,
    /// The position after the last valid record.
    pub next_position: u64,
    /// Bytes from the start of the file to the end of the last valid batch.
    pub valid_len: u64,
    /// The first bad batch, if the valid batches do not reach the end: the offset of the
    /// record that failed and why.
    pub damage: Option<(u64, CorruptionKind)>,
}

/// Checks a segment file's bytes: the header, then every record and batch frame, positions
/// dense from the header's base (for a segment rewritten by scavenging: every record, positions
/// ascending within its span). Stream versions are not checked (they span segments).
pub fn check_segment(bytes: &[u8]) -> Result<SegmentCheck, HeaderError> {
    let header = SegmentHeader::decode(bytes)?;
    let mut records = 0u64;
    let end = scan_any(bytes, &header, |_, _| {
        records += 1;
        Ok(())
    })
    .expect("the visitor refuses nothing");
    Ok(SegmentCheck {
        base_position: header.base_position,
        span: header.span,
        records,
        next_position: end.next_position,
        valid_len: end.valid_len as u64,
        damage: end.damage.map(|d| (d.record_offset as u64, d.kind)),
    })
}
