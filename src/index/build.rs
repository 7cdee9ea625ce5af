//! Building a segment's index file from the segment's bytes: every record, verified, in file
//! order, into the codec's builder. The background indexer, scavenging and the read path's
//! repair all build through here, so an index has one source however it came about.

use crate::format::{
    DerivedFileError, IndexFileBuilder, SEGMENT_HEADER_LEN, SegmentBinding, SegmentHeader, scan_any,
};
use crate::lifecycle::{METADATA_EVENT_TYPE, decode_meta, metadata_target};

/// Why no index could be built for a segment.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BuildError {
    /// The segment's bytes failed a check at this offset: it is not indexed (a reader reading
    /// it reports the same damage).
    #[error("segment damaged at offset {offset}: {kind}")]
    Damaged { offset: u64, kind: crate::format::CorruptionKind },
    /// The codec refused what the segment holds (e.g. a stream whose versions are not
    /// contiguous in it: only a salvaged log has those, and it is never indexed).
    #[error("index not encodable: {0}")]
    Encode(#[from] DerivedFileError),
}

/// The CRC field of the record at `offset` (bytes 4..8 of its frame), unverified.
pub(crate) fn stored_record_crc(bytes: &[u8], offset: usize) -> Option<u32> {
    let field = bytes.get(offset.checked_add(4)?..offset.checked_add(8)?)?;
    Some(u32::from_le_bytes(field.try_into().ok()?))
}

/// The CRC field of a segment header (bytes 28..32).
pub(crate) fn stored_header_crc(bytes: &[u8]) -> Option<u32> {
    let field = bytes.get(28..SEGMENT_HEADER_LEN)?;
    Some(u32::from_le_bytes(field.try_into().ok()?))
}

/// Builds the index file of the segment whose first `bytes.len()` bytes (header included) are
/// given, every record verified; `prev(stream)` is the nearest earlier segment holding events
/// of `stream`, where the caller knows it.
pub(crate) fn build_index(
    bytes: &[u8],
    header: &SegmentHeader,
    prev: impl Fn(&str) -> Option<u64>,
) -> Result<Vec<u8>, BuildError> {
    let mut builder = IndexFileBuilder::new();
    let (mut records, mut last_offset) = (0u64, None);
    let end = scan_any(bytes, header, |offset, record| {
        let stream = record.check_stream()?;
        builder.record(record.position(), offset as u32, stream, record.version());
        if let Some(target) = metadata_target(stream)
            && record.event_type() == METADATA_EVENT_TYPE
        {
            // As the stream index takes it: a segment with metadata it would refuse is never
            // indexed (and so always scanned, which reports it).
            decode_meta(record.data()).ok_or(crate::format::CorruptionKind::BadMetadata)?;
            builder.metadata(target, record.position(), record.data());
        }
        records += 1;
        last_offset = Some(offset);
        Ok(())
    })
    .map_err(|(offset, kind)| BuildError::Damaged { offset: offset as u64, kind })?;
    if let Some(damage) = end.damage {
        let offset = damage.record_offset as u64;
        return Err(BuildError::Damaged { offset, kind: damage.kind });
    }
    let binding = SegmentBinding {
        segment_version: header.version,
        segment_span: header.span,
        base_position: header.base_position,
        segment_len: end.valid_len as u64,
        end_position: end.next_position,
        records,
        segment_header_crc: stored_header_crc(bytes).unwrap_or(0),
        last_record_crc: last_offset.and_then(|o| stored_record_crc(bytes, o)).unwrap_or(0),
    };
    Ok(builder.encode(&binding, prev)?)
}
