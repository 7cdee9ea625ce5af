//! The per-segment index file `<base>.idx`, written: [`IndexFileBuilder`] collects a segment's
//! records in file order and encodes them in the layout of `docs/format.md`, "Index files",
//! refusing any input that a reader of the file would refuse.

use std::collections::BTreeMap;

use super::{
    SEGMENT_HEADER_LEN,
    derived::{
        self, DERIVED_HEADER_LEN, DerivedFileError, put_blob, put_name, put_u16, put_u32, put_u64,
    },
    index_file::{
        INDEX_FILE_MAGIC, INDEX_FILE_VERSION, IndexFile, KNOWN_SECTIONS, POSITION_ENTRY_LEN,
        SECTION_ALIGN, SECTION_ENTRY_LEN, SegmentBinding, check_binding_fields,
    },
};

/// One stream's events in a segment, from the builder.
#[derive(Debug)]
struct BuiltRun {
    first_version: u64,
    /// Whether every version so far continued the one before.
    contiguous: bool,
    /// Position and offset of each event, in version order.
    events: Vec<(u64, u32)>,
}

/// Collects a segment's records in file order and encodes its index file.
#[derive(Debug, Default)]
pub struct IndexFileBuilder {
    records: Vec<(u64, u32)>,
    streams: BTreeMap<String, BuiltRun>,
    metadata: BTreeMap<String, (u64, Vec<u8>)>,
}

impl IndexFileBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// A record of the segment, in file order: its position, its byte offset in the segment,
    /// its stream and its version there.
    pub fn record(&mut self, position: u64, offset: u32, stream: &str, version: u64) {
        self.records.push((position, offset));
        match self.streams.get_mut(stream) {
            Some(run) => {
                let next = run.first_version.checked_add(run.events.len() as u64);
                run.contiguous &= next == Some(version);
                run.events.push((position, offset));
            }
            None => {
                let run = BuiltRun {
                    first_version: version,
                    contiguous: true,
                    events: vec![(position, offset)],
                };
                self.streams.insert(stream.to_owned(), run);
            }
        }
    }

    /// A `$metadata` event at `position` setting `target`'s metadata to `data` (later calls
    /// replace earlier ones).
    pub fn metadata(&mut self, target: &str, position: u64, data: &[u8]) {
        self.metadata.insert(target.to_owned(), (position, data.to_vec()));
    }

    /// The streams collected, in name order (for the caller to find their previous segments).
    pub fn stream_names(&self) -> impl Iterator<Item = &str> {
        self.streams.keys().map(String::as_str)
    }

    /// Encodes the index file; `prev(name)` gives the base of the nearest earlier segment with
    /// events of each stream (`None`: none or unknown). Refuses a binding that does not match
    /// the records (count, end, order, offsets inside the segment), a position more than
    /// `u32::MAX` past the base, a stream whose versions are not contiguous, a metadata
    /// position that is not one of the records, and a `prev` at or after the base.
    pub fn encode(
        &self,
        binding: &SegmentBinding,
        prev: impl Fn(&str) -> Option<u64>,
    ) -> Result<Vec<u8>, DerivedFileError> {
        self.check_binding(binding)?;
        let base = binding.base_position;
        // Positions are within u32 of the base: checked above.
        let rel = |position: u64| (position - base) as u32;
        let mut sections: [Vec<u8>; 6] = Default::default();
        let [positions, streams, stream_events, metadata, names, blob] = &mut sections;
        for &(position, offset) in &self.records {
            put_u32(positions, rel(position));
            put_u32(positions, offset);
        }
        let mut name_of = BTreeMap::new();
        for (name, run) in &self.streams {
            let refused = DerivedFileError::Unencodable;
            if !run.contiguous {
                return Err(refused("a stream's versions are not contiguous"));
            }
            let (name_at, name_len) = put_name(names, name)?;
            name_of.insert(name.as_str(), (name_at, name_len));
            let prev = match prev(name) {
                Some(p) if p >= base => return Err(refused("a previous segment is not earlier")),
                found => found.unwrap_or(u64::MAX),
            };
            let count = u32::try_from(run.events.len()).map_err(|_| refused("run too long"))?;
            put_u32(streams, name_at);
            put_u16(streams, name_len);
            put_u16(streams, 0);
            put_u64(streams, run.first_version);
            put_u32(streams, count);
            put_u32(streams, (stream_events.len() / POSITION_ENTRY_LEN) as u32);
            put_u64(streams, prev);
            put_u64(streams, 0);
            for &(position, offset) in &run.events {
                put_u32(stream_events, rel(position));
                put_u32(stream_events, offset);
            }
        }
        for (target, (position, data)) in &self.metadata {
            let (name_at, name_len) = match name_of.get(target.as_str()) {
                Some(&known) => known,
                None => put_name(names, target)?,
            };
            let (data_at, data_len) = put_blob(blob, data)?;
            put_u32(metadata, name_at);
            put_u16(metadata, name_len);
            put_u16(metadata, 0);
            put_u64(metadata, *position);
            put_u32(metadata, data_at);
            put_u32(metadata, data_len);
        }
        let bytes = assemble(binding, &sections);
        debug_assert_eq!(IndexFile::parse_header(&bytes).and_then(|f| f.check_body()), Ok(()));
        Ok(bytes)
    }

    /// Refuses a binding that does not describe the records collected.
    fn check_binding(&self, binding: &SegmentBinding) -> Result<(), DerivedFileError> {
        let refused = DerivedFileError::Unencodable;
        let base = binding.base_position;
        if self.records.len() as u64 != binding.records {
            return Err(refused("the binding's record count differs from the records"));
        }
        check_binding_fields(binding)
            .map_err(|_| refused("impossible positions in the binding"))?;
        // A segment the writer wrote ends after its last record; one rewritten by scavenging
        // covers its whole span, whatever it kept.
        let end = self.records.last().map_or(Some(base), |&(last, _)| last.checked_add(1));
        let ends_right = match binding.segment_span {
            0 => end == Some(binding.end_position),
            span => {
                binding.end_position == base + u64::from(span)
                    && end.is_some_and(|e| e <= binding.end_position)
            }
        };
        if !ends_right {
            return Err(refused("the binding's end position is not after the last record"));
        }
        let mut before: Option<(u64, u32)> = None;
        for &(position, offset) in &self.records {
            let in_order = before.is_none_or(|(p, o)| p < position && o < offset);
            let rel_fits = position.checked_sub(base).is_some_and(|r| r <= u32::MAX.into());
            let inside =
                offset as usize >= SEGMENT_HEADER_LEN && u64::from(offset) < binding.segment_len;
            if !(in_order && rel_fits && inside) {
                return Err(refused("a record is out of order or outside the segment"));
            }
            before = Some((position, offset));
        }
        let is_record = |p: u64| self.records.binary_search_by_key(&p, |r| r.0).is_ok();
        if !self.metadata.values().all(|(position, _)| is_record(*position)) {
            return Err(refused("a metadata position is not a record of the segment"));
        }
        Ok(())
    }
}

/// The index file of `binding` holding `sections` (in [`KNOWN_SECTIONS`] order).
fn assemble(binding: &SegmentBinding, sections: &[Vec<u8>; 6]) -> Vec<u8> {
    let mut buf = Vec::new();
    buf.extend_from_slice(&INDEX_FILE_MAGIC);
    put_u16(&mut buf, INDEX_FILE_VERSION);
    put_u16(&mut buf, binding.segment_version);
    put_u32(&mut buf, binding.segment_span);
    put_u64(&mut buf, binding.base_position);
    put_u64(&mut buf, binding.segment_len);
    put_u64(&mut buf, binding.end_position);
    put_u64(&mut buf, binding.records);
    put_u32(&mut buf, binding.segment_header_crc);
    put_u32(&mut buf, binding.last_record_crc);
    put_u16(&mut buf, KNOWN_SECTIONS.len() as u16);
    put_u16(&mut buf, 0);
    put_u32(&mut buf, 0); // header CRC, filled in by `seal`
    let mut at = DERIVED_HEADER_LEN + KNOWN_SECTIONS.len() * SECTION_ENTRY_LEN;
    for (kind, section) in KNOWN_SECTIONS.iter().zip(sections) {
        put_u32(&mut buf, *kind);
        put_u32(&mut buf, 0);
        put_u64(&mut buf, at as u64);
        put_u64(&mut buf, section.len() as u64);
        at = (at + section.len()).next_multiple_of(SECTION_ALIGN);
    }
    for section in sections {
        buf.extend_from_slice(section);
        buf.resize(buf.len().next_multiple_of(SECTION_ALIGN), 0);
    }
    derived::seal(&mut buf);
    buf
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::index_file::tests::sample_builder;

    #[test]
    fn builder_refuses_non_contiguous_versions() {
        let (mut builder, mut binding) = sample_builder();
        builder.record(106, 632, "order-2", 5);
        (binding.records, binding.end_position, binding.segment_len) = (7, 107, 800);
        let found = builder.encode(&binding, |_| None).unwrap_err();
        assert_eq!(found, DerivedFileError::Unencodable("a stream's versions are not contiguous"));
    }

    #[test]
    fn builder_takes_a_scavenged_segment_ending_at_its_span_not_its_last_record() {
        // A segment rewritten by scavenging covers its whole span (its end position is
        // `base + span`), though its last kept record may lie well before that end: the builder
        // and the reader once required the end right after the last record, so no scavenged
        // segment could be indexed.
        let (builder, binding) = sample_builder();
        let scavenged = SegmentBinding { segment_span: 10, end_position: 110, ..binding };
        let bytes = builder.encode(&scavenged, |_| None).unwrap();
        let file = IndexFile::parse_header(&bytes).unwrap();
        assert_eq!(file.check_body(), Ok(()));
        assert_eq!(file.binding().end_position, 110);
        for end in [109, 111, 106] {
            let wrong = SegmentBinding { end_position: end, ..scavenged };
            let found = builder.encode(&wrong, |_| None);
            assert!(matches!(found, Err(DerivedFileError::Unencodable(_))), "end {end}");
        }
        let found = builder.encode(&SegmentBinding { end_position: 110, ..binding }, |_| None);
        assert!(found.is_err(), "a segment the writer wrote ends after its last record");
    }

    #[test]
    fn builder_refuses_a_binding_that_does_not_match_the_records() {
        let (builder, binding) = sample_builder();
        let wrong = [
            SegmentBinding { records: 5, ..binding },
            SegmentBinding { end_position: 107, ..binding },
            SegmentBinding { segment_len: 532, ..binding },
            SegmentBinding { base_position: 101, ..binding },
            SegmentBinding { segment_span: 3, ..binding },
        ];
        for binding in wrong {
            let found = builder.encode(&binding, |_| None);
            assert!(matches!(found, Err(DerivedFileError::Unencodable(_))), "{binding:?}");
        }
        let found = builder.encode(&binding, |_| Some(100));
        assert!(matches!(found, Err(DerivedFileError::Unencodable(_))), "prev at the base");
        let mut far = IndexFileBuilder::new();
        far.record(u64::from(u32::MAX) + 1, 32, "s", 0);
        let binding = SegmentBinding {
            records: 1,
            end_position: u64::from(u32::MAX) + 2,
            segment_len: 100,
            ..Default::default()
        };
        assert!(far.encode(&binding, |_| None).is_err(), "position beyond u32 of the base");
    }
}
