//! The 32-byte header that opens every segment file, and the segment file names.

use super::{
    CorruptionKind, FORMAT_VERSION, FORMAT_VERSION_MIN, Layout, SEGMENT_HEADER_LEN, SEGMENT_MAGIC,
    SEGMENT_SUFFIX,
};

/// The highest base position a segment header may state: a log never gets near 2^63 events,
/// and the bound keeps position arithmetic over a segment from overflowing.
pub(crate) const BASE_POSITION_MAX: u64 = (1 << 63) - 1;

/// The decoded header of a segment file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SegmentHeader {
    /// The format version of the file, which fixes its records' [`Layout`]: the writer creates
    /// segments in [`FORMAT_VERSION`]; older ones keep theirs.
    pub version: u16,
    /// Position of the first record this segment holds (or would hold, when empty).
    pub base_position: u64,
    /// The group-commit bound in force when the segment was written: the most bytes that were
    /// ever written to it without an fsync in between, and so the largest torn tail it can have.
    pub group_bytes_max: u32,
    /// Zero for a segment the writer wrote (positions dense, appends framed as batches). For a
    /// segment rewritten by scavenging, the number of positions it covers: its records hold
    /// ascending positions in `base_position..base_position + span`, with gaps where events
    /// were removed, and the next segment starts at `base_position + span`.
    pub span: u32,
}

/// Why a segment header could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// The header is damaged.
    #[error("{0}")]
    Corrupt(CorruptionKind),
    /// The header is intact but of another format version.
    #[error("unsupported format version {0}")]
    UnsupportedVersion(u16),
}

impl SegmentHeader {
    /// A header in the current format version.
    pub fn current(base_position: u64, group_bytes_max: u32, span: u32) -> SegmentHeader {
        SegmentHeader { version: FORMAT_VERSION, base_position, group_bytes_max, span }
    }

    /// The layout of the records in the segment.
    pub fn layout(&self) -> Layout {
        Layout::of_version(self.version)
    }

    /// The header's bytes.
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_LEN] {
        let mut b = [0u8; SEGMENT_HEADER_LEN];
        b[0..8].copy_from_slice(&SEGMENT_MAGIC);
        b[8..10].copy_from_slice(&self.version.to_le_bytes());
        b[10..12].copy_from_slice(&(SEGMENT_HEADER_LEN as u16).to_le_bytes());
        b[12..16].copy_from_slice(&self.group_bytes_max.to_le_bytes());
        b[16..24].copy_from_slice(&self.base_position.to_le_bytes());
        b[24..28].copy_from_slice(&self.span.to_le_bytes());
        let crc = crc32fast::hash(&b[0..28]);
        b[28..32].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Reads and checks a header from the start of a segment file.
    pub fn decode(bytes: &[u8]) -> Result<SegmentHeader, HeaderError> {
        if bytes.len() < SEGMENT_HEADER_LEN {
            return Err(HeaderError::Corrupt(CorruptionKind::TruncatedHeader));
        }
        let b = &bytes[..SEGMENT_HEADER_LEN];
        if b[0..8] != SEGMENT_MAGIC {
            return Err(HeaderError::Corrupt(CorruptionKind::BadMagic));
        }
        let stored_crc = u32::from_le_bytes(b[28..32].try_into().expect("4 bytes"));
        if crc32fast::hash(&b[0..28]) != stored_crc {
            return Err(HeaderError::Corrupt(CorruptionKind::HeaderChecksum));
        }
        let version = u16::from_le_bytes([b[8], b[9]]);
        if !(FORMAT_VERSION_MIN..=FORMAT_VERSION).contains(&version) {
            return Err(HeaderError::UnsupportedVersion(version));
        }
        let header_len = u16::from_le_bytes([b[10], b[11]]);
        // Version 1 reserved bytes 24..28 (zero); version 2 keeps the span there.
        let span = u32::from_le_bytes(b[24..28].try_into().expect("4 bytes"));
        let base_position = u64::from_le_bytes(b[16..24].try_into().expect("8 bytes"));
        // Below 2^63, so that no position arithmetic over a segment (at most 2^32 positions)
        // can overflow, whatever a header that passes its checksum claims.
        let base_fits = base_position <= BASE_POSITION_MAX;
        if usize::from(header_len) != SEGMENT_HEADER_LEN
            || (version == 1 && span != 0)
            || !base_fits
        {
            return Err(HeaderError::Corrupt(CorruptionKind::HeaderFields));
        }
        Ok(SegmentHeader {
            version,
            group_bytes_max: u32::from_le_bytes(b[12..16].try_into().expect("4 bytes")),
            base_position,
            span,
        })
    }
}

/// The file name of the segment whose first position is `base_position`: 20 zero-padded decimal
/// digits, so that names sort in log order.
pub(crate) fn segment_file_name(base_position: u64) -> String {
    format!("{base_position:020}{SEGMENT_SUFFIX}")
}

/// The base position named by a segment file name, or `None` for any other file.
pub(crate) fn parse_segment_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips() {
        for version in FORMAT_VERSION_MIN..=FORMAT_VERSION {
            let h = SegmentHeader { version, ..SegmentHeader::current(42, 1 << 20, 0) };
            assert_eq!(SegmentHeader::decode(&h.encode()), Ok(h));
        }
    }

    #[test]
    fn header_flipped_bit_is_corruption() {
        let mut b = SegmentHeader::current(42, 7, 0).encode();
        b[17] ^= 1;
        assert_eq!(
            SegmentHeader::decode(&b),
            Err(HeaderError::Corrupt(CorruptionKind::HeaderChecksum))
        );
    }

    #[test]
    fn header_other_version_is_unsupported() {
        let mut b = SegmentHeader::current(0, 7, 0).encode();
        b[8] = 9;
        let crc = crc32fast::hash(&b[0..28]);
        b[28..32].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(SegmentHeader::decode(&b), Err(HeaderError::UnsupportedVersion(9)));
    }

    #[test]
    fn header_base_position_from_2_63_on_is_impossible() {
        // A header that passed its checksum with a base near u64::MAX made the scans' position
        // arithmetic overflow (a panic in debug and fuzz builds, a silent wrap in release).
        assert!(
            SegmentHeader::decode(&SegmentHeader::current(BASE_POSITION_MAX, 7, 9).encode())
                .is_ok()
        );
        for base in [BASE_POSITION_MAX + 1, u64::MAX] {
            let b = SegmentHeader::current(base, 7, 0).encode();
            let refused = Err(HeaderError::Corrupt(CorruptionKind::HeaderFields));
            assert_eq!(SegmentHeader::decode(&b), refused);
        }
    }

    #[test]
    fn file_names_round_trip_and_sort() {
        assert_eq!(segment_file_name(7), "00000000000000000007.seg");
        assert_eq!(parse_segment_file_name(&segment_file_name(u64::MAX)), Some(u64::MAX));
        assert_eq!(parse_segment_file_name("7.seg"), None);
        assert_eq!(parse_segment_file_name("00000000000000000007.seg.tmp"), None);
        assert!(segment_file_name(9) < segment_file_name(10));
    }
}
