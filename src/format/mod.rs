//! The bytes on disk: segment headers and record frames, their checksums, and the one list of
//! ways those bytes can fail their checks. `docs/format.md` is the canonical description; a test
//! checks this module against it.

mod check;
mod header;
mod record;
mod salvage;
mod scan;

pub use check::{SegmentCheck, check_segment};
pub use header::HeaderError;
pub(crate) use header::{SegmentHeader, parse_segment_file_name, segment_file_name};
pub(crate) use record::{
    Record, RecordFields, decode_record, encode_record, own_records, record_len,
    record_position_unverified, seal_record,
};
pub(crate) use salvage::{PositionRange, groups_after, salvage_segment};
pub(crate) use scan::{Damage, scan_any, scan_compacted};

/// The format version this build reads and writes. Bump it whenever a byte changes meaning.
pub const FORMAT_VERSION: u16 = 2;
/// The oldest format version this build still reads (version 1 differs only in that bytes
/// 24..28 of the segment header are reserved and zero).
pub const FORMAT_VERSION_MIN: u16 = 1;
/// The first eight bytes of every segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"ANNALSEG";
/// Length of the segment header in bytes.
pub const SEGMENT_HEADER_LEN: usize = 32;
/// Length of a record's fixed header in bytes (before stream name, type, metadata and data).
pub const RECORD_HEADER_LEN: usize = 56;
/// Length of the shortest possible record: its fixed header, a one-byte stream name and a
/// one-byte event type.
pub(crate) const RECORD_LEN_MIN: usize = RECORD_HEADER_LEN + 2;
/// The file name suffix of segment files.
pub const SEGMENT_SUFFIX: &str = ".seg";

/// What check a damaged header or record failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CorruptionKind {
    /// The file is shorter than a segment header.
    #[error("segment header is truncated")]
    TruncatedHeader,
    /// The file does not start with the segment magic.
    #[error("segment header has the wrong magic")]
    BadMagic,
    /// The segment header fails its checksum.
    #[error("segment header checksum mismatch")]
    HeaderChecksum,
    /// The header passes its checksum but holds impossible values (length, reserved bytes).
    #[error("segment header has impossible field values")]
    HeaderFields,
    /// The header's base position does not match the file name or the previous segment's end.
    #[error("segment base position {found} does not continue the log at {expected}")]
    SegmentGap {
        /// The position the log continues at.
        expected: u64,
        /// The position the segment claims.
        found: u64,
    },
    /// A record runs past the end of the file.
    #[error("record is truncated")]
    Truncated,
    /// A record's length field is impossible.
    #[error("record length is invalid")]
    BadLength,
    /// A record fails its checksum.
    #[error("record checksum mismatch")]
    Checksum,
    /// A record holds a different position than the one that belongs at its place.
    #[error("record has position {found}, expected {expected}")]
    PositionMismatch {
        /// The position that belongs there.
        expected: u64,
        /// The position the record holds.
        found: u64,
    },
    /// The records of one append are not framed as one complete batch.
    #[error("append batch is incomplete or misframed")]
    BadBatch,
    /// A stream name or event type is not UTF-8.
    #[error("record text is not UTF-8")]
    InvalidUtf8,
    /// A record's stream version does not continue its stream.
    #[error("stream version {found} does not continue its stream at {expected}")]
    VersionMismatch {
        /// The version that belongs there.
        expected: u64,
        /// The version the record holds.
        found: u64,
    },
    /// An index entry points at a record of another stream or version.
    #[error("index points at a record that does not match it")]
    IndexMismatch,
    /// A `$metadata` event of a metadata stream does not hold valid stream metadata.
    #[error("stream metadata event is not valid")]
    BadMetadata,
}

/// Segment bytes built by hand, for the format's unit tests.
#[cfg(test)]
pub(crate) mod fixture {
    use uuid::Uuid;

    use super::{RecordFields, SegmentHeader, encode_record, seal_record};

    /// A segment at base 0 holding batches of the given sizes (one stream, version = position);
    /// returns its bytes and the offset of each batch.
    pub fn segment(batches: &[u16]) -> (Vec<u8>, Vec<usize>) {
        let mut bytes =
            SegmentHeader { base_position: 0, group_bytes_max: 1 << 20, span: 0 }.encode().to_vec();
        let mut starts = Vec::new();
        let mut position = 0;
        for &n in batches {
            starts.push(bytes.len());
            for i in 0..n {
                let start = bytes.len();
                encode_record(&mut bytes, "s", Uuid::from_u128(position.into()), "T", b"", b"x");
                let batch_left = n - 1 - i;
                let fields =
                    RecordFields { position, version: position, timestamp_us: 0, batch_left };
                seal_record(&mut bytes[start..], fields);
                position += 1;
            }
        }
        (bytes, starts)
    }
}
