//! The per-segment index file `<base>.idx`, read: where each record of one segment lies, each
//! stream's events in it, and the stream metadata its `$metadata` events set. It is derived
//! from the segment and never trusted: [`IndexFile`] checks the bytes before use and none of its
//! accessors panics, whatever the bytes. The layout is in `docs/format.md`, "Index files"; the
//! encoder is in `index_builder.rs`.

use super::{
    SEGMENT_HEADER_LEN,
    derived::{self, DERIVED_HEADER_LEN, DerivedFileError, entry, name_at, u16_at, u32_at, u64_at},
    header::BASE_POSITION_MAX,
};

/// The first eight bytes of every index file.
pub const INDEX_FILE_MAGIC: [u8; 8] = *b"ANNALIDX";
/// The index file format version this build writes and reads.
pub const INDEX_FILE_VERSION: u16 = 1;
/// The most entries an index file's section table may hold.
pub const INDEX_SECTIONS_MAX: u16 = 16;
/// Bytes of one section table entry: kind, reserved, offset, length.
pub const SECTION_ENTRY_LEN: usize = 24;
/// Section kind: one [`POSITION_ENTRY_LEN`] entry per record, in position order.
pub const SECTION_POSITIONS: u32 = 1;
/// Section kind: one [`STREAM_ENTRY_LEN`] entry per stream, in name order.
pub const SECTION_STREAMS: u32 = 2;
/// Section kind: each stream's events, [`POSITION_ENTRY_LEN`] bytes each, run after run.
pub const SECTION_STREAM_EVENTS: u32 = 3;
/// Section kind: one [`METADATA_ENTRY_LEN`] entry per stream whose metadata the segment sets.
pub const SECTION_METADATA: u32 = 4;
/// Section kind: the stream names, concatenated.
pub const SECTION_NAMES: u32 = 5;
/// Section kind: the data of the `$metadata` events.
pub const SECTION_BLOB: u32 = 6;
/// Bytes of one entry of POSITIONS and STREAM_EVENTS: relative position, offset.
pub const POSITION_ENTRY_LEN: usize = 8;
/// Bytes of one entry of STREAMS.
pub const STREAM_ENTRY_LEN: usize = 40;
/// Bytes of one entry of METADATA.
pub const METADATA_ENTRY_LEN: usize = 24;
/// Sections start at multiples of this many bytes.
pub(super) const SECTION_ALIGN: usize = 8;
/// The section kinds this build knows, in the order it writes them.
pub(super) const KNOWN_SECTIONS: [u32; 6] = [
    SECTION_POSITIONS,
    SECTION_STREAMS,
    SECTION_STREAM_EVENTS,
    SECTION_METADATA,
    SECTION_NAMES,
    SECTION_BLOB,
];

// The section table of the sections this build writes fits the limit, and aligned sections
// start aligned after it.
const _: () = assert!(KNOWN_SECTIONS.len() <= INDEX_SECTIONS_MAX as usize);
const _: () = assert!((DERIVED_HEADER_LEN + SECTION_ENTRY_LEN).is_multiple_of(SECTION_ALIGN));

/// What an index file says about the segment it was built from: the fields of its header. A
/// reader compares them with the segment before it trusts the index.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SegmentBinding {
    /// The segment header's format version.
    pub segment_version: u16,
    /// The segment header's span (0 unless scavenged).
    pub segment_span: u32,
    /// The segment's base position.
    pub base_position: u64,
    /// Bytes of the segment the index covers, its header included.
    pub segment_len: u64,
    /// One past the last covered record's position (the base when none).
    pub end_position: u64,
    /// Records covered.
    pub records: u64,
    /// The CRC stored in the segment's header.
    pub segment_header_crc: u32,
    /// The CRC stored in the last covered record (0 when none).
    pub last_record_crc: u32,
}

/// A checked view of an index file's bytes.
#[derive(Clone, Copy, Debug)]
pub struct IndexFile<'a> {
    bytes: &'a [u8],
    binding: SegmentBinding,
    /// The known sections, in [`KNOWN_SECTIONS`] order (empty when absent).
    sections: [&'a [u8]; 6],
}

impl<'a> IndexFile<'a> {
    /// Checks, in this order: the length, the magic, the header CRC, the version, the header's
    /// fields, then the section table (every section inside the body, aligned, no known kind
    /// twice, sizes that fit their entries). O(1) in the body.
    pub fn parse_header(bytes: &'a [u8]) -> Result<Self, DerivedFileError> {
        derived::check_header(bytes, INDEX_FILE_MAGIC, INDEX_FILE_VERSION)?;
        let binding = parse_binding(bytes)?;
        let u16_h = |at| u16_at(bytes, at).unwrap_or(0);
        let sections = section_table(bytes, u16_h(56))?;
        let [positions, streams, stream_events, metadata, ..] = sections;
        let per_record = binding.records.checked_mul(POSITION_ENTRY_LEN as u64);
        if per_record != Some(positions.len() as u64)
            || per_record != Some(stream_events.len() as u64)
        {
            return Err(DerivedFileError::Malformed("positions do not hold one entry per record"));
        }
        if streams.len() % STREAM_ENTRY_LEN != 0 || metadata.len() % METADATA_ENTRY_LEN != 0 {
            return Err(DerivedFileError::Malformed("a section does not hold whole entries"));
        }
        Ok(IndexFile { bytes, binding, sections })
    }

    /// The header's first [`DERIVED_HEADER_LEN`] bytes, exactly as they are in the file.
    pub fn header_bytes(&self) -> [u8; DERIVED_HEADER_LEN] {
        let mut header = [0u8; DERIVED_HEADER_LEN];
        header.copy_from_slice(&self.bytes[..DERIVED_HEADER_LEN]);
        header
    }

    /// Checks the body CRC and every structural rule: positions and offsets strictly
    /// increasing and ending at the end position, stream names UTF-8 and strictly increasing,
    /// each stream's run following the one before in STREAM_EVENTS and naming records of
    /// POSITIONS in position order, metadata entries sorted and pointing at records and into
    /// the blob, reserved fields zero. O(body · log records). Call once before use.
    pub fn check_body(&self) -> Result<(), DerivedFileError> {
        derived::check_body_crc(self.bytes)?;
        self.check_positions()?;
        self.check_streams()?;
        self.check_metadata()
    }

    /// The header's description of the segment.
    pub fn binding(&self) -> SegmentBinding {
        self.binding
    }

    /// Records the index covers.
    pub fn records(&self) -> u64 {
        self.binding.records
    }

    /// Position and offset of the `i`-th record.
    pub fn record(&self, i: u64) -> Option<(u64, u32)> {
        let (rel, offset) = self.position_entry(usize::try_from(i).ok()?)?;
        Some((self.binding.base_position + u64::from(rel), offset))
    }

    /// Position and offset of the last record at or before `position`.
    pub fn floor(&self, position: u64) -> Option<(u64, u32)> {
        let rel = position.checked_sub(self.binding.base_position)?;
        let rel = u32::try_from(rel).unwrap_or(u32::MAX);
        let count = self.positions().len() / POSITION_ENTRY_LEN;
        // Entry i holds a position at least i above the base (they strictly increase from 0
        // up), so none after entry `rel` can be at or below `rel`: if that entry (or the last)
        // is, it is the floor. Without scavenged gaps this is every lookup, and it touches one
        // page of the file instead of a binary search's dozen.
        let guess = count.checked_sub(1)?.min(rel as usize);
        if self.position_entry(guess)?.0 <= rel {
            return self.record(guess as u64);
        }
        let (mut low, mut high) = (0, guess);
        while low < high {
            let mid = low + (high - low) / 2;
            match self.position_entry(mid)?.0 <= rel {
                true => low = mid + 1,
                false => high = mid,
            }
        }
        self.record(low.checked_sub(1)? as u64)
    }

    /// Offset of the record with exactly `position`.
    pub fn exact(&self, position: u64) -> Option<u32> {
        self.floor(position).filter(|&(found, _)| found == position).map(|(_, offset)| offset)
    }

    /// The run of stream `name`, found by binary search over the names' bytes.
    pub fn stream(&self, name: &str) -> Option<StreamRun<'a>> {
        let (mut low, mut high) = (0, self.streams_len());
        while low < high {
            let mid = low + (high - low) / 2;
            let e = entry(self.sections[1], STREAM_ENTRY_LEN, mid)?;
            let found = name_at(self.names(), u32_at(e, 0)?, u16_at(e, 4)?)?;
            match found.as_bytes().cmp(name.as_bytes()) {
                std::cmp::Ordering::Less => low = mid + 1,
                std::cmp::Ordering::Greater => high = mid,
                std::cmp::Ordering::Equal => return self.stream_at(mid),
            }
        }
        None
    }

    /// Every stream's run, in name order (skipping any entry that does not read).
    pub fn streams(&self) -> impl Iterator<Item = StreamRun<'a>> + use<'a> {
        let file = *self;
        (0..file.streams_len()).filter_map(move |i| file.stream_at(i))
    }

    /// The metadata the segment sets, by target in name order (skipping any entry that does
    /// not read).
    pub fn metadata(&self) -> impl Iterator<Item = MetadataEntry<'a>> + use<'a> {
        let file = *self;
        let count = file.sections[3].len() / METADATA_ENTRY_LEN;
        (0..count).filter_map(move |i| file.metadata_at(i))
    }

    fn positions(&self) -> &'a [u8] {
        self.sections[0]
    }

    fn names(&self) -> &'a [u8] {
        self.sections[4]
    }

    fn streams_len(&self) -> usize {
        self.sections[1].len() / STREAM_ENTRY_LEN
    }

    /// The `i`-th entry of POSITIONS: relative position and offset.
    fn position_entry(&self, i: usize) -> Option<(u32, u32)> {
        let e = entry(self.positions(), POSITION_ENTRY_LEN, i)?;
        Some((u32_at(e, 0)?, u32_at(e, 4)?))
    }

    fn stream_at(&self, i: usize) -> Option<StreamRun<'a>> {
        let e = entry(self.sections[1], STREAM_ENTRY_LEN, i)?;
        let count = u32_at(e, 16)?;
        let events_at = u64::from(u32_at(e, 20)?) * POSITION_ENTRY_LEN as u64;
        let events_len = u64::from(count) * POSITION_ENTRY_LEN as u64;
        Some(StreamRun {
            name: name_at(self.names(), u32_at(e, 0)?, u16_at(e, 4)?)?,
            first_version: u64_at(e, 8)?,
            count,
            prev_segment: Some(u64_at(e, 24)?).filter(|&p| p != u64::MAX),
            base_position: self.binding.base_position,
            events: derived::slice(self.sections[2], events_at, events_len)?,
        })
    }

    fn metadata_at(&self, i: usize) -> Option<MetadataEntry<'a>> {
        let e = entry(self.sections[3], METADATA_ENTRY_LEN, i)?;
        let data_at = u32_at(e, 16)?.into();
        Some(MetadataEntry {
            target: name_at(self.names(), u32_at(e, 0)?, u16_at(e, 4)?)?,
            position: u64_at(e, 8)?,
            data: derived::slice(self.sections[5], data_at, u32_at(e, 20)?.into())?,
        })
    }

    fn check_positions(&self) -> Result<(), DerivedFileError> {
        let bad =
            DerivedFileError::Malformed("positions are not strictly increasing in the segment");
        let mut before: Option<(u32, u32)> = None;
        for i in 0..self.positions().len() / POSITION_ENTRY_LEN {
            let (rel, offset) = self.position_entry(i).ok_or(bad)?;
            let in_order = before.is_none_or(|(r, o)| r < rel && o < offset);
            let inside = offset as usize >= SEGMENT_HEADER_LEN
                && u64::from(offset) < self.binding.segment_len;
            if !(in_order && inside) {
                return Err(bad);
            }
            before = Some((rel, offset));
        }
        // A scavenged segment covers its whole span, whatever it kept; any other ends after
        // its last record.
        let end = self.binding.base_position + before.map_or(0, |(rel, _)| u64::from(rel) + 1);
        let ends_right = match self.binding.segment_span {
            0 => end == self.binding.end_position,
            _ => end <= self.binding.end_position,
        };
        match ends_right {
            true => Ok(()),
            false => Err(DerivedFileError::Malformed("the last position is not before the end")),
        }
    }

    fn check_streams(&self) -> Result<(), DerivedFileError> {
        let malformed = DerivedFileError::Malformed;
        let mut events_at = 0u64;
        let mut name_before: Option<&str> = None;
        for i in 0..self.streams_len() {
            let e = entry(self.sections[1], STREAM_ENTRY_LEN, i).ok_or(malformed("stream"))?;
            if u16_at(e, 6) != Some(0) || u64_at(e, 32) != Some(0) {
                return Err(malformed("reserved stream entry bytes are not zero"));
            }
            if u64::from(u32_at(e, 20).unwrap_or(0)) != events_at {
                return Err(malformed("a stream's events do not follow the run before"));
            }
            let run = self.stream_at(i).ok_or(malformed("a stream entry is out of bounds"))?;
            if run.name.is_empty()
                || name_before.is_some_and(|n| n.as_bytes() >= run.name.as_bytes())
            {
                return Err(malformed("stream names are not strictly increasing"));
            }
            if run.count == 0 || run.first_version.checked_add(run.count.into()).is_none() {
                return Err(malformed("a stream's run is empty or its versions overflow"));
            }
            if run.prev_segment.is_some_and(|p| p >= self.binding.base_position) {
                return Err(malformed("a previous segment is not earlier"));
            }
            self.check_run(&run)?;
            events_at += u64::from(run.count);
            name_before = Some(run.name);
        }
        match events_at == self.binding.records {
            true => Ok(()),
            false => Err(malformed("the stream runs do not cover every record")),
        }
    }

    /// Every event of `run` is a record of POSITIONS, in position order.
    fn check_run(&self, run: &StreamRun<'a>) -> Result<(), DerivedFileError> {
        let mut before = None;
        for event in run.events.chunks_exact(POSITION_ENTRY_LEN) {
            let (rel, offset) = (u32_at(event, 0), u32_at(event, 4));
            let position = self.binding.base_position + u64::from(rel.unwrap_or(0));
            if before.is_some_and(|b| b >= position) || self.exact(position) != offset {
                return Err(DerivedFileError::Malformed("a stream event is not a record"));
            }
            before = Some(position);
        }
        Ok(())
    }

    fn check_metadata(&self) -> Result<(), DerivedFileError> {
        let malformed = DerivedFileError::Malformed;
        let mut target_before: Option<&str> = None;
        for i in 0..self.sections[3].len() / METADATA_ENTRY_LEN {
            let e = entry(self.sections[3], METADATA_ENTRY_LEN, i).ok_or(malformed("metadata"))?;
            if u16_at(e, 6) != Some(0) {
                return Err(malformed("reserved metadata entry bytes are not zero"));
            }
            let m = self.metadata_at(i).ok_or(malformed("a metadata entry is out of bounds"))?;
            if m.target.is_empty()
                || target_before.is_some_and(|t| t.as_bytes() >= m.target.as_bytes())
            {
                return Err(malformed("metadata targets are not strictly increasing"));
            }
            if self.exact(m.position).is_none() {
                return Err(malformed("a metadata position is not a record"));
            }
            target_before = Some(m.target);
        }
        Ok(())
    }
}

/// Checks a copy of an index file's header alone (the magic, its CRC, the version, its fields)
/// and returns what it binds: what a stream table's segment list holds of each segment.
pub fn parse_index_header(header: &[u8]) -> Result<SegmentBinding, DerivedFileError> {
    derived::check_header_alone(header, INDEX_FILE_MAGIC, INDEX_FILE_VERSION)?;
    parse_binding(header)
}

/// The binding in a header whose frame passed its checks, its fields checked.
fn parse_binding(bytes: &[u8]) -> Result<SegmentBinding, DerivedFileError> {
    let u16_h = |at| u16_at(bytes, at).unwrap_or(0);
    let u32_h = |at| u32_at(bytes, at).unwrap_or(0);
    let u64_h = |at| u64_at(bytes, at).unwrap_or(0);
    let binding = SegmentBinding {
        segment_version: u16_h(10),
        segment_span: u32_h(12),
        base_position: u64_h(16),
        segment_len: u64_h(24),
        end_position: u64_h(32),
        records: u64_h(40),
        segment_header_crc: u32_h(48),
        last_record_crc: u32_h(52),
    };
    check_binding_fields(&binding)?;
    if u16_h(58) != 0 {
        return Err(DerivedFileError::Malformed("reserved header bytes are not zero"));
    }
    Ok(binding)
}

/// Refuses header fields no builder writes: a base from 2^63 on, an end before the base or
/// more than 2^32 past it (or past the span), more records than positions.
pub(super) fn check_binding_fields(b: &SegmentBinding) -> Result<(), DerivedFileError> {
    let positions = b.end_position.checked_sub(b.base_position);
    let fits = positions.is_some_and(|p| {
        p <= 1 << 32 && b.records <= p && (b.segment_span == 0 || p <= b.segment_span.into())
    });
    match b.base_position <= BASE_POSITION_MAX && fits {
        true => Ok(()),
        false => Err(DerivedFileError::Malformed("impossible positions in the header")),
    }
}

/// The known sections of the table of `count` entries after the header.
fn section_table(bytes: &[u8], count: u16) -> Result<[&[u8]; 6], DerivedFileError> {
    if count > INDEX_SECTIONS_MAX {
        return Err(DerivedFileError::Malformed("too many sections"));
    }
    let body_end = derived::body_end(bytes).ok_or(DerivedFileError::TooShort)?;
    let table_end = DERIVED_HEADER_LEN + usize::from(count) * SECTION_ENTRY_LEN;
    let table = bytes.get(DERIVED_HEADER_LEN..table_end).ok_or(DerivedFileError::TooShort)?;
    if table_end > body_end {
        return Err(DerivedFileError::TooShort);
    }
    let mut sections: [Option<&[u8]>; 6] = [None; 6];
    for e in table.chunks_exact(SECTION_ENTRY_LEN) {
        let kind = u32_at(e, 0).unwrap_or(0);
        let (offset, length) = (u64_at(e, 8).unwrap_or(0), u64_at(e, 16).unwrap_or(0));
        if u32_at(e, 4) != Some(0) {
            return Err(DerivedFileError::Malformed("reserved section bytes are not zero"));
        }
        let inside = offset >= table_end as u64
            && offset.checked_add(length).is_some_and(|end| end <= body_end as u64);
        let section = derived::slice(bytes, offset, length).filter(|_| inside);
        let section = section.ok_or(DerivedFileError::SectionOutOfBounds { kind })?;
        if offset % SECTION_ALIGN as u64 != 0 {
            return Err(DerivedFileError::Malformed("a section is not 8-byte aligned"));
        }
        // A kind this build does not know is skipped: a later kind is not a format break.
        if let Some(slot) = KNOWN_SECTIONS.iter().position(|&k| k == kind)
            && sections[slot].replace(section).is_some()
        {
            return Err(DerivedFileError::Malformed("a section kind appears twice"));
        }
    }
    Ok(sections.map(|s| s.unwrap_or(&[])))
}

/// One stream's events in a segment: versions `first_version..first_version + count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamRun<'a> {
    /// The stream's name.
    pub name: &'a str,
    /// The version of its first event in the segment.
    pub first_version: u64,
    /// Its events in the segment.
    pub count: u32,
    /// Base position of the nearest earlier segment with events of the stream, if known.
    pub prev_segment: Option<u64>,
    base_position: u64,
    /// The run's STREAM_EVENTS entries.
    events: &'a [u8],
}

impl StreamRun<'_> {
    /// The version of the run's last event (`first_version` for an empty run, which
    /// [`IndexFile::check_body`] refuses).
    pub fn last_version(&self) -> u64 {
        self.first_version.saturating_add(u64::from(self.count.saturating_sub(1)))
    }

    /// Position and offset of version `version`, `None` outside the run.
    pub fn event(&self, version: u64) -> Option<(u64, u32)> {
        let i = version.checked_sub(self.first_version)?;
        if i >= u64::from(self.count) {
            return None;
        }
        let e = entry(self.events, POSITION_ENTRY_LEN, usize::try_from(i).ok()?)?;
        Some((self.base_position + u64::from(u32_at(e, 0)?), u32_at(e, 4)?))
    }
}

/// The metadata one `$metadata` event of the segment sets (the last one for its target).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetadataEntry<'a> {
    /// The stream whose metadata it sets.
    pub target: &'a str,
    /// The event's position.
    pub position: u64,
    /// The event's data.
    pub data: &'a [u8],
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::format::index_builder::IndexFileBuilder;

    /// Stream and version of the sample segment's records, at positions 100.. and offsets
    /// 32, 132, …; `$$order-1` at 103 sets `order-1`'s metadata, `$$order-9` at 105 `order-9`'s.
    const RECORDS: [(&str, u64); 6] = [
        ("order-2", 0),
        ("order-1", 5),
        ("order-2", 1),
        ("$$order-1", 0),
        ("order-1", 6),
        ("$$order-9", 3),
    ];

    pub(crate) fn sample_builder() -> (IndexFileBuilder, SegmentBinding) {
        let mut builder = IndexFileBuilder::new();
        for (i, (stream, version)) in (0u32..).zip(RECORDS) {
            builder.record(100 + u64::from(i), 32 + 100 * i, stream, version);
        }
        builder.metadata("order-1", 103, b"old");
        builder.metadata("order-1", 103, b"meta-1");
        builder.metadata("order-9", 105, b"meta-9");
        let binding = SegmentBinding {
            segment_version: 3,
            segment_span: 0,
            base_position: 100,
            segment_len: 32 + 600,
            end_position: 106,
            records: 6,
            segment_header_crc: 0xdead_beef,
            last_record_crc: 0x1234_5678,
        };
        (builder, binding)
    }

    /// The sample segment's index file; `order-1` was last in the segment at 40.
    pub(crate) fn sample() -> Vec<u8> {
        let (builder, binding) = sample_builder();
        builder.encode(&binding, |name| (name == "order-1").then_some(40)).unwrap()
    }

    /// Recomputes both checksums after a test changed bytes on purpose.
    pub(crate) fn reseal(bytes: &mut [u8]) {
        let crc = crc32fast::hash(&bytes[..60]);
        bytes[60..64].copy_from_slice(&crc.to_le_bytes());
        let end = bytes.len() - 4;
        let crc = crc32fast::hash(&bytes[64..end]);
        bytes[end..].copy_from_slice(&crc.to_le_bytes());
    }

    /// Calls every accessor and lookup; none may panic.
    fn exercise(file: &IndexFile<'_>) {
        let _ = (file.binding(), file.records(), file.record(0), file.record(u64::MAX));
        for position in [0, 99, 100, 103, 105, 106, u64::MAX] {
            let _ = (file.floor(position), file.exact(position));
        }
        for run in file.streams().chain(file.stream("order-1")) {
            for version in [0, run.first_version, run.last_version(), u64::MAX] {
                let _ = run.event(version);
            }
        }
        let _ = (file.stream(""), file.metadata().count());
    }

    #[test]
    fn index_file_round_trips_every_accessor() {
        let bytes = sample();
        let file = IndexFile::parse_header(&bytes).unwrap();
        assert_eq!(file.check_body(), Ok(()));
        assert_eq!(file.binding(), sample_builder().1);
        assert_eq!(file.records(), 6);
        assert_eq!(
            (file.record(0), file.record(5), file.record(6)),
            (Some((100, 32)), Some((105, 532)), None)
        );
        let names: Vec<&str> = file.streams().map(|r| r.name).collect();
        assert_eq!(names, ["$$order-1", "$$order-9", "order-1", "order-2"], "byte order");
        let run = file.stream("order-1").unwrap();
        assert_eq!((run.first_version, run.count, run.last_version()), (5, 2, 6));
        assert_eq!(run.prev_segment, Some(40));
        assert_eq!((run.event(5), run.event(6)), (Some((101, 132)), Some((104, 432))));
        assert_eq!((run.event(4), run.event(7)), (None, None));
        assert_eq!(file.stream("order-2").unwrap().prev_segment, None);
        let metadata: Vec<_> = file.metadata().map(|m| (m.target, m.position, m.data)).collect();
        assert_eq!(metadata, [("order-1", 103, &b"meta-1"[..]), ("order-9", 105, b"meta-9")]);
        assert_eq!(bytes.len() % 8, 4, "aligned sections, then the 4-byte trailer");
    }

    #[test]
    fn index_file_lookups_find_present_keys_and_not_absent_ones() {
        let bytes = sample();
        let file = IndexFile::parse_header(&bytes).unwrap();
        assert_eq!(
            (file.floor(99), file.floor(100), file.floor(103)),
            (None, Some((100, 32)), Some((103, 332)))
        );
        assert_eq!(file.floor(u64::MAX), Some((105, 532)), "the last record");
        assert_eq!(
            (file.exact(100), file.exact(105), file.exact(106), file.exact(0)),
            (Some(32), Some(532), None, None)
        );
        for absent in ["", "order", "order-10", "order-3", "zzz", "$"] {
            assert_eq!(file.stream(absent), None, "{absent:?}");
        }
        assert!(file.streams().all(|run| file.stream(run.name) == Some(run)));
    }

    #[test]
    fn index_file_floor_finds_the_last_record_at_or_below_across_gaps() {
        // Positions with gaps, as a scavenged segment has: 100, 103, 104, 110, 111, 150.
        let kept = [100u64, 103, 104, 110, 111, 150];
        let mut builder = IndexFileBuilder::new();
        for (i, &position) in (0u32..).zip(&kept) {
            builder.record(position, 32 + 100 * i, "s", u64::from(i));
        }
        let binding = SegmentBinding {
            segment_version: 3,
            segment_span: 51,
            base_position: 100,
            segment_len: 32 + 600,
            end_position: 151,
            records: 6,
            ..Default::default()
        };
        let bytes = builder.encode(&binding, |_| None).unwrap();
        let file = IndexFile::parse_header(&bytes).unwrap();
        for position in (0..=160).chain([u64::MAX]) {
            let below = kept.iter().rposition(|&p| p <= position);
            let expected = below.map(|i| (kept[i], 32 + 100 * i as u32));
            assert_eq!(file.floor(position), expected, "floor of {position}");
        }
    }

    #[test]
    fn index_file_of_an_empty_segment_round_trips() {
        let binding = SegmentBinding {
            base_position: 7,
            end_position: 7,
            segment_len: 32,
            ..Default::default()
        };
        let bytes = IndexFileBuilder::new().encode(&binding, |_| None).unwrap();
        let file = IndexFile::parse_header(&bytes).unwrap();
        assert_eq!((file.check_body(), file.binding()), (Ok(()), binding));
        assert_eq!((file.floor(u64::MAX), file.record(0), file.streams().count()), (None, None, 0));
    }

    #[test]
    fn index_file_damage_is_refused_with_its_kind() {
        let bytes = sample();
        let mut magic = bytes.clone();
        magic[0] ^= 1;
        assert_eq!(IndexFile::parse_header(&magic).unwrap_err(), DerivedFileError::BadMagic);
        let mut version = bytes.clone();
        version[8] = 2;
        reseal(&mut version);
        let found = IndexFile::parse_header(&version).unwrap_err();
        assert_eq!(found, DerivedFileError::UnsupportedVersion(2));
        let mut header = bytes.clone();
        header[17] ^= 1;
        assert_eq!(IndexFile::parse_header(&header).unwrap_err(), DerivedFileError::HeaderChecksum);
        let mut body = bytes.clone();
        let in_blob = bytes.len() - 8;
        body[in_blob] ^= 1;
        let file = IndexFile::parse_header(&body).unwrap();
        assert_eq!(file.check_body(), Err(DerivedFileError::BodyChecksum));
        assert_eq!(IndexFile::parse_header(&bytes[..60]).unwrap_err(), DerivedFileError::TooShort);
    }

    #[test]
    fn index_file_section_outside_the_body_is_out_of_bounds() {
        let mut bytes = sample();
        let length_at = DERIVED_HEADER_LEN + 16; // POSITIONS is the first entry
        bytes[length_at..length_at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
        reseal(&mut bytes);
        let found = IndexFile::parse_header(&bytes).unwrap_err();
        assert_eq!(found, DerivedFileError::SectionOutOfBounds { kind: SECTION_POSITIONS });
    }

    #[test]
    fn index_file_unknown_section_is_skipped_and_a_repeated_one_refused() {
        let kind_at = DERIVED_HEADER_LEN + 5 * SECTION_ENTRY_LEN; // BLOB is the sixth entry
        let mut unknown = sample();
        unknown[kind_at..kind_at + 4].copy_from_slice(&99u32.to_le_bytes());
        reseal(&mut unknown);
        let file = IndexFile::parse_header(&unknown).unwrap();
        assert_eq!(file.metadata().count(), 0, "without BLOB no metadata reads");
        let mut twice = sample();
        twice[kind_at..kind_at + 4].copy_from_slice(&SECTION_NAMES.to_le_bytes());
        reseal(&mut twice);
        let found = IndexFile::parse_header(&twice).unwrap_err();
        assert_eq!(found, DerivedFileError::Malformed("a section kind appears twice"));
    }

    #[test]
    fn index_file_unsorted_names_fail_the_body_check() {
        let mut bytes = sample();
        let at = bytes.windows(7).position(|w| w == b"order-2").unwrap();
        bytes[at + 6] = b'0'; // `order-0` now sorts before `order-1`
        reseal(&mut bytes);
        let file = IndexFile::parse_header(&bytes).unwrap();
        let found = file.check_body().unwrap_err();
        assert_eq!(found, DerivedFileError::Malformed("stream names are not strictly increasing"));
    }

    #[test]
    fn index_file_every_flip_and_cut_is_refused_and_no_accessor_panics() {
        let bytes = sample();
        let checked = |b: &[u8]| IndexFile::parse_header(b).and_then(|f| f.check_body());
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut bad = bytes.clone();
                bad[i] ^= 1 << bit;
                assert!(checked(&bad).is_err(), "flip at byte {i} bit {bit}");
                let mut resealed = bad.clone();
                reseal(&mut resealed);
                for b in [&bad, &resealed] {
                    if let Ok(file) = IndexFile::parse_header(b) {
                        exercise(&file);
                    }
                }
            }
        }
        for cut in 0..bytes.len() {
            assert!(checked(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }
}
