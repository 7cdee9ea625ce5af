//! The bytes on disk: segment headers and record frames, their checksums, and the one list of
//! ways those bytes can fail their checks; and the derived files rebuilt from them (a segment's
//! index file, the stream table). `docs/format.md` is the canonical description; a test checks
//! this module against it.

mod check;
mod derived;
mod header;
mod index_builder;
mod index_file;
mod record;
mod salvage;
mod scan;
mod stream_table;

pub use check::{SegmentCheck, check_segment};
pub use derived::{DERIVED_HEADER_LEN, DERIVED_TRAILER_LEN, DerivedFileError};
pub use header::HeaderError;
pub(crate) use header::{SegmentHeader, parse_segment_file_name, segment_file_name};
pub use index_builder::IndexFileBuilder;
pub use index_file::{
    INDEX_FILE_MAGIC, INDEX_FILE_VERSION, INDEX_SECTIONS_MAX, IndexFile, METADATA_ENTRY_LEN,
    MetadataEntry, POSITION_ENTRY_LEN, SECTION_BLOB, SECTION_ENTRY_LEN, SECTION_METADATA,
    SECTION_NAMES, SECTION_POSITIONS, SECTION_STREAM_EVENTS, SECTION_STREAMS, STREAM_ENTRY_LEN,
    SegmentBinding, StreamRun, parse_index_header,
};
pub(crate) use record::{
    EventParts, Layout, Record, RecordFields, decode_record, encode_record, own_records,
    record_len, record_position_unverified, seal_record,
};
pub use record::{FieldOverflow, RecordField};
pub(crate) use salvage::{PositionRange, acknowledged_after, salvage_segment};
pub(crate) use scan::{Damage, scan_any, scan_compacted};
pub use stream_table::{
    ListedSegment, STREAM_TABLE_MAGIC, STREAM_TABLE_VERSION, STREAM_TABLE_VERSION_MIN, StreamTable,
    TABLE_ENTRY_LEN, TABLE_OFFSETS_LEN, TABLE_PART_BLOB, TABLE_PART_ENTRIES, TABLE_PART_NAMES,
    TABLE_PART_SEGMENTS, TABLE_SEGMENT_LEN, TableBinding, TableEntry, encode_stream_table,
    fold_into_table,
};

/// The format version this build writes. Bump it whenever a byte changes meaning.
pub const FORMAT_VERSION: u16 = 3;
/// The oldest format version this build still reads (version 1 differs from 2 only in that
/// bytes 24..28 of the segment header are reserved and zero; versions 1 and 2 share one record
/// layout, [`RECORD_HEADER_LEN_V2`]).
pub const FORMAT_VERSION_MIN: u16 = 1;
/// The first eight bytes of every segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"ANNALSEG";
/// Length of the segment header in bytes.
pub const SEGMENT_HEADER_LEN: usize = 32;
/// Length of a record's fixed header in bytes (before stream name, type, tags, metadata and
/// data), in the format this build writes.
pub const RECORD_HEADER_LEN: usize = 64;
/// Length of a record's fixed header in format versions 1 and 2.
pub const RECORD_HEADER_LEN_V2: usize = 56;
/// Longest metadata the record format can hold, in bytes (its length is a 24-bit field).
pub const METADATA_BYTES_MAX: usize = (1 << 24) - 1;
/// Most tags one record can hold (the count is one byte).
pub const RECORD_TAGS_MAX: usize = 255;
/// Longest tag, in bytes (its length is one byte; a tag is never empty).
pub const TAG_BYTES_MAX: usize = 255;
/// The highest group sequence number (a 48-bit field). A store that would need the next one
/// stops accepting writes.
pub const GROUP_SEQUENCE_MAX: u64 = (1 << 48) - 1;

// The widths of the fields above and the limits that rely on them, tied together.
const _: () = assert!(SEGMENT_HEADER_LEN == 32 && RECORD_HEADER_LEN == RECORD_HEADER_LEN_V2 + 8);
// `batch_left` is a u16 counting the records after the first: an append holds at most 2^16.
const _: () = assert!(crate::options::APPEND_EVENTS_LIMIT as usize - 1 == u16::MAX as usize);
// A record's length is a u32, and `stream_len`, `type_len` and the tag fields are one byte each.
const _: () = assert!(METADATA_BYTES_MAX < u32::MAX as usize - RECORD_HEADER_LEN - 2 * 255);
const _: () = assert!(RECORD_TAGS_MAX == u8::MAX as usize && TAG_BYTES_MAX == u8::MAX as usize);
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
    /// The log ends below a position that a stream table written with fsyncs recorded as
    /// durable: acknowledged events were removed from outside (the last segment truncated or
    /// deleted).
    #[error(
        "the log ends at position {found}, below the durable mark {durable} of the stream table"
    )]
    LogBelowDurableMark {
        /// The position the stream table recorded as durable.
        durable: u64,
        /// Where the log ends now.
        found: u64,
    },
    /// A `$metadata` event of a metadata stream does not hold valid stream metadata.
    #[error("stream metadata event is not valid")]
    BadMetadata,
    /// A batch's group sequence number is below the one of the batch before it in the segment.
    #[error("group sequence {found} goes back from {previous}")]
    GroupSequence {
        /// The sequence of the batch before.
        previous: u64,
        /// The sequence the batch holds.
        found: u64,
    },
}

/// Segment bytes built by hand, for the format's unit tests.
#[cfg(test)]
pub(crate) mod fixture {
    use uuid::Uuid;

    use super::{
        EventParts, FORMAT_VERSION, RecordFields, SegmentHeader, encode_record, seal_record,
    };

    /// A segment at base 0 holding batches of the given sizes (one stream, version = position,
    /// each batch a group of its own, sequence = batch index); returns its bytes and the offset
    /// of each batch.
    pub fn segment(batches: &[u16]) -> (Vec<u8>, Vec<usize>) {
        let header = SegmentHeader {
            version: FORMAT_VERSION,
            base_position: 0,
            group_bytes_max: 1 << 20,
            span: 0,
        };
        let mut bytes = header.encode().to_vec();
        let mut starts = Vec::new();
        let mut position = 0;
        for (sequence, &n) in (0u64..).zip(batches) {
            starts.push(bytes.len());
            for i in 0..n {
                let start = bytes.len();
                let id = Uuid::from_u128(position.into());
                encode_record(&mut bytes, &EventParts::new("s", id, "T", b"", b"x")).expect("fits");
                let fields = RecordFields {
                    position,
                    version: position,
                    timestamp_us: 0,
                    batch_left: u64::from(n - 1 - i),
                    sequence,
                    epoch: 0,
                };
                seal_record(&mut bytes[start..], fields).expect("fits");
                position += 1;
            }
        }
        (bytes, starts)
    }
}
