//! The record frame: one event, length-prefixed and CRC-checked, with its position inside the
//! checksummed bytes so that a misplaced or misdirected record is caught.
//!
//! Records of one append follow each other; each says how many records of its append follow it
//! (`batch_left`), so recovery can tell a complete append from a torn one.

use std::cell::RefCell;

use uuid::Uuid;

use super::{
    CorruptionKind, GROUP_SEQUENCE_MAX, METADATA_BYTES_MAX, RECORD_HEADER_LEN,
    RECORD_HEADER_LEN_V2, RECORD_TAGS_MAX, TAG_BYTES_MAX,
};

/// How a record's fields are laid out: it follows the format version of its segment. Versions 1
/// and 2 share one layout; version 3 added the group sequence, the epoch and the tags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Layout {
    /// Format versions 1 and 2: a 56-byte header, no group sequence, no tags.
    V2,
    /// Format version 3: a 64-byte header with group sequence, epoch and tag count.
    V3,
}

impl Layout {
    /// The layout of records in a segment of format `version` (one this build reads).
    pub(crate) fn of_version(version: u16) -> Layout {
        if version >= 3 { Layout::V3 } else { Layout::V2 }
    }

    /// Bytes of the fixed record header.
    #[inline]
    pub(crate) const fn header_len(self) -> usize {
        match self {
            Layout::V2 => RECORD_HEADER_LEN_V2,
            Layout::V3 => RECORD_HEADER_LEN,
        }
    }

    /// Bytes of the shortest record: the fixed header, a one-byte stream name and a one-byte
    /// event type.
    #[inline]
    pub(crate) const fn record_len_min(self) -> usize {
        self.header_len() + 2
    }

    /// Offset of `batch_left`; `stream_len` and `type_len` follow it.
    #[inline]
    const fn batch_left_at(self) -> usize {
        match self {
            Layout::V2 => 48,
            Layout::V3 => 56,
        }
    }
}

/// A field of the record frame, named in a [`FieldOverflow`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecordField {
    /// The stream name (1..=255 bytes).
    StreamName,
    /// The event type (1..=255 bytes).
    EventType,
    /// The number of tags (at most 255).
    TagCount,
    /// One tag (1..=255 bytes).
    Tag,
    /// The metadata (at most 16 MiB - 1).
    Metadata,
    /// The whole record (its length is 32 bits).
    Record,
    /// The count of records after this one in its append (16 bits).
    BatchLeft,
    /// The group sequence number (48 bits).
    GroupSequence,
    /// The group's epoch (16 bits).
    Epoch,
}

/// A value that does not fit the width of its record field. The encoder refuses it rather than
/// write a frame whose fields say something else than what was asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("record field {field:?} cannot hold {actual} (allowed: {min}..={max})")]
pub struct FieldOverflow {
    /// The field.
    pub field: RecordField,
    /// The length, count or value asked for.
    pub actual: u64,
    /// The least the field may hold.
    pub min: u64,
    /// The most the field may hold.
    pub max: u64,
}

/// `actual` if it lies within `min..=max` for `field`, else the refusal.
fn within(field: RecordField, actual: u64, min: u64, max: u64) -> Result<u64, FieldOverflow> {
    if (min..=max).contains(&actual) {
        Ok(actual)
    } else {
        Err(FieldOverflow { field, actual, min, max })
    }
}

/// The caller's part of one record: everything but the commit-time fields.
#[derive(Clone, Copy, Debug)]
pub(crate) struct EventParts<'a> {
    pub stream: &'a str,
    pub id: Uuid,
    pub event_type: &'a str,
    pub tags: &'a [&'a str],
    pub metadata: &'a [u8],
    pub data: &'a [u8],
}

impl<'a> EventParts<'a> {
    /// An event without tags.
    pub(crate) fn new(
        stream: &'a str,
        id: Uuid,
        event_type: &'a str,
        metadata: &'a [u8],
        data: &'a [u8],
    ) -> EventParts<'a> {
        EventParts { stream, id, event_type, tags: &[], metadata, data }
    }
}

/// The fields the writer fills in at commit time. They are wider than their fields on disk so
/// that [`seal_record`] can refuse a value that does not fit instead of cutting it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RecordFields {
    pub position: u64,
    pub version: u64,
    pub timestamp_us: u64,
    pub batch_left: u64,
    /// The group commit's sequence number.
    pub sequence: u64,
    /// The group commit's epoch.
    pub epoch: u64,
}

/// Appends one record in the current layout to `buf`, with its commit-time fields zeroed and no
/// checksum yet; the writer completes it with [`seal_record`]. Refuses (and leaves `buf` as it
/// was) any length that does not fit its field; returns the record's length.
pub(crate) fn encode_record(buf: &mut Vec<u8>, e: &EventParts<'_>) -> Result<usize, FieldOverflow> {
    let stream_len = within(RecordField::StreamName, e.stream.len() as u64, 1, 255)?;
    let type_len = within(RecordField::EventType, e.event_type.len() as u64, 1, 255)?;
    let tag_count = within(RecordField::TagCount, e.tags.len() as u64, 0, RECORD_TAGS_MAX as u64)?;
    let mut tags_len = 0;
    for tag in e.tags {
        tags_len += 1 + within(RecordField::Tag, tag.len() as u64, 1, TAG_BYTES_MAX as u64)?;
    }
    let max = METADATA_BYTES_MAX as u64;
    let metadata_len = within(RecordField::Metadata, e.metadata.len() as u64, 0, max)?;
    let len = RECORD_HEADER_LEN as u64
        + stream_len
        + type_len
        + tags_len
        + metadata_len
        + e.data.len() as u64;
    let len = within(RecordField::Record, len, 0, u64::from(u32::MAX))?;
    buf.reserve(len as usize);
    buf.extend_from_slice(&(len as u32).to_le_bytes());
    buf.extend_from_slice(&[0u8; 4 + 8 + 8 + 8]); // crc, position, version, timestamp
    buf.extend_from_slice(e.id.as_bytes());
    buf.extend_from_slice(&[0u8; 6 + 2 + 2]); // sequence, epoch, batch_left
    buf.extend_from_slice(&[stream_len as u8, type_len as u8]);
    buf.extend_from_slice(&(metadata_len as u32).to_le_bytes()[..3]);
    buf.push(tag_count as u8);
    buf.extend_from_slice(e.stream.as_bytes());
    buf.extend_from_slice(e.event_type.as_bytes());
    for tag in e.tags {
        buf.push(tag.len() as u8);
        buf.extend_from_slice(tag.as_bytes());
    }
    buf.extend_from_slice(e.metadata);
    buf.extend_from_slice(e.data);
    Ok(len as usize)
}

/// Fills in the commit-time fields of one record [`encode_record`] encoded and computes its
/// checksum. Refuses, before changing a byte, a value that does not fit its field.
pub(crate) fn seal_record(record: &mut [u8], fields: RecordFields) -> Result<(), FieldOverflow> {
    let len = record_len(record).unwrap_or(0) as u64;
    within(RecordField::Record, record.len() as u64, len.max(RECORD_HEADER_LEN as u64), len)?;
    let batch_left = within(RecordField::BatchLeft, fields.batch_left, 0, u16::MAX.into())?;
    let sequence = within(RecordField::GroupSequence, fields.sequence, 0, GROUP_SEQUENCE_MAX)?;
    let epoch = within(RecordField::Epoch, fields.epoch, 0, u16::MAX.into())?;
    record[8..16].copy_from_slice(&fields.position.to_le_bytes());
    record[16..24].copy_from_slice(&fields.version.to_le_bytes());
    record[24..32].copy_from_slice(&fields.timestamp_us.to_le_bytes());
    record[48..54].copy_from_slice(&sequence.to_le_bytes()[..6]);
    record[54..56].copy_from_slice(&(epoch as u16).to_le_bytes());
    record[56..58].copy_from_slice(&(batch_left as u16).to_le_bytes());
    let crc = checksum(record);
    record[4..8].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// The length field of the record starting at `bytes[0]`, if there are four bytes to read.
pub(crate) fn record_len(bytes: &[u8]) -> Option<usize> {
    let b = bytes.get(..4)?;
    Some(u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize)
}

/// The position field of the record starting at `bytes[0]`, unverified (`None` if the bytes
/// end first). Salvage reads it to pass over bytes that cannot start a plausible record
/// without paying for a checksum.
pub(crate) fn record_position_unverified(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(8..16)?.try_into().expect("8 bytes")))
}

/// CRC-32 over the whole record except the checksum field itself.
fn checksum(record: &[u8]) -> u32 {
    let mut h = after_length_field(record[0..4].try_into().expect("4 bytes"));
    h.update(&record[8..]);
    h.finalize()
}

/// The record checksum, for tests that forge records.
#[cfg(test)]
pub(crate) fn checksum_for_tests(record: &[u8]) -> u32 {
    checksum(record)
}

/// A hasher that has hashed the length field `len`, from a one-entry cache per thread: records
/// in a row often have the same length, and hashing the four bytes apart cost as much as a
/// fifth of a 277-byte record's checksum. (Cloning a ready hasher also skips the CPU feature
/// check `Hasher::new` does every time.)
fn after_length_field(len: [u8; 4]) -> crc32fast::Hasher {
    thread_local! {
        static LAST: RefCell<([u8; 4], crc32fast::Hasher)> = RefCell::new(hashed([0; 4]));
    }
    fn hashed(len: [u8; 4]) -> ([u8; 4], crc32fast::Hasher) {
        let mut h = crc32fast::Hasher::new();
        h.update(&len);
        (len, h)
    }
    let cached = LAST.try_with(|last| {
        let mut last = last.borrow_mut();
        if last.0 != len {
            *last = hashed(len);
        }
        last.1.clone()
    });
    // A read from a thread-local destructor may find the cache gone: hash without it.
    cached.unwrap_or_else(|_| hashed(len).1)
}

/// A record whose length fields and checksum have been verified, in the layout of its segment.
/// Its text fields are not checked for UTF-8 here: the writer only writes `&str`s and the
/// checksum guards them since, so the accessors only fall back to U+FFFD for bytes no annal
/// writer produced; recovery and verification check the text explicitly
/// ([`Record::check_text`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Record<'a> {
    bytes: &'a [u8],
    layout: Layout,
}

/// A record's length fields (see [`Record::lengths`]).
#[derive(Clone, Copy)]
struct Lengths {
    stream: usize,
    event_type: usize,
    metadata: usize,
    tags: usize,
}

/// Reads and verifies the record in `layout` that starts at `buf[at]`.
#[inline]
pub(crate) fn decode_record(
    buf: &[u8],
    at: usize,
    layout: Layout,
) -> Result<Record<'_>, CorruptionKind> {
    let rest = buf.get(at..).ok_or(CorruptionKind::Truncated)?;
    let len = record_len(rest).ok_or(CorruptionKind::Truncated)?;
    if len < layout.record_len_min() {
        return Err(CorruptionKind::BadLength);
    }
    let bytes = rest.get(..len).ok_or(CorruptionKind::Truncated)?;
    let stored = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes"));
    if checksum(bytes) != stored {
        return Err(CorruptionKind::Checksum);
    }
    let record = Record { bytes, layout };
    let lengths = record.lengths();
    let text_end = layout.header_len() + lengths.stream + lengths.event_type;
    if lengths.stream == 0 || lengths.event_type == 0 || text_end > len {
        return Err(CorruptionKind::BadLength);
    }
    let tags_end = match lengths.tags {
        0 => text_end,
        count => check_tags(bytes, text_end, count)?,
    };
    if tags_end + lengths.metadata > len {
        return Err(CorruptionKind::BadLength);
    }
    Ok(record)
}

/// The end of `count` tags starting at `at`, each a length byte (at least 1) and that many
/// bytes, all inside `bytes`.
fn check_tags(bytes: &[u8], mut at: usize, count: usize) -> Result<usize, CorruptionKind> {
    for _ in 0..count {
        let len = usize::from(*bytes.get(at).ok_or(CorruptionKind::BadLength)?);
        if len == 0 || at + 1 + len > bytes.len() {
            return Err(CorruptionKind::BadLength);
        }
        at += 1 + len;
    }
    Ok(at)
}

/// The records of a buffer the writer itself encoded and sealed, with their offsets. Not for
/// bytes read back from disk: it trusts the lengths and checks nothing.
pub(crate) fn own_records(buf: &[u8]) -> impl Iterator<Item = (usize, Record<'_>)> {
    let mut at = 0;
    std::iter::from_fn(move || {
        let len = record_len(buf.get(at..)?)?;
        let record = Record { bytes: &buf[at..at + len], layout: Layout::V3 };
        let offset = at;
        at += len;
        Some((offset, record))
    })
}

impl<'a> Record<'a> {
    /// Wraps bytes that were verified by [`decode_record`] in `layout` before (a reader keeps
    /// the offset and length of a decoded record and re-wraps them on access).
    #[inline]
    pub(crate) fn verified(bytes: &'a [u8], layout: Layout) -> Record<'a> {
        debug_assert_eq!(record_len(bytes), Some(bytes.len()));
        Record { bytes, layout }
    }
}

#[inline(always)]
fn read_u64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

impl<'a> Record<'a> {
    /// All bytes of the record.
    #[inline]
    pub fn len(&self) -> usize {
        self.bytes.len()
    }
    /// The layout it was decoded in.
    pub fn layout(&self) -> Layout {
        self.layout
    }
    /// Global position.
    #[inline]
    pub fn position(&self) -> u64 {
        read_u64(self.bytes, 8)
    }
    /// Version within its stream.
    #[inline]
    pub fn version(&self) -> u64 {
        read_u64(self.bytes, 16)
    }
    /// Commit time, microseconds since the Unix epoch.
    #[inline]
    pub fn timestamp_us(&self) -> u64 {
        read_u64(self.bytes, 24)
    }
    /// Event id.
    #[inline]
    pub fn id(&self) -> Uuid {
        Uuid::from_bytes(self.bytes[32..48].try_into().expect("16 bytes"))
    }
    /// The sequence number of the group commit that wrote it (`None` before format 3).
    pub fn sequence(&self) -> Option<u64> {
        let mut le = [0u8; 8];
        le[..6].copy_from_slice(&self.bytes[48..54]);
        (self.layout == Layout::V3).then(|| u64::from_le_bytes(le))
    }
    /// The epoch of the group commit that wrote it (`None` before format 3).
    pub fn epoch(&self) -> Option<u16> {
        (self.layout == Layout::V3).then(|| u16::from_le_bytes([self.bytes[54], self.bytes[55]]))
    }
    /// How many records of the same append follow this one.
    #[inline]
    pub fn batch_left(&self) -> u16 {
        let at = self.layout.batch_left_at();
        u16::from_le_bytes([self.bytes[at], self.bytes[at + 1]])
    }
    /// The length fields, read as one word: in both layouts they fill the 8 bytes from
    /// `batch_left` on (`batch_left` u16, stream name u8, event type u8, then the metadata
    /// length as u32 in versions 1 and 2, or as u24 followed by the tag count in version 3).
    #[inline(always)]
    fn lengths(&self) -> Lengths {
        let word = read_u64(self.bytes, self.layout.batch_left_at());
        let (metadata, tags) = match self.layout {
            Layout::V2 => (word >> 32, 0),
            Layout::V3 => ((word >> 32) & 0xFF_FFFF, word >> 56),
        };
        Lengths {
            stream: ((word >> 16) & 0xFF) as usize,
            event_type: ((word >> 24) & 0xFF) as usize,
            metadata: metadata as usize,
            tags: tags as usize,
        }
    }
    #[inline]
    fn stream_len(&self) -> usize {
        self.lengths().stream
    }
    #[inline]
    fn type_len(&self) -> usize {
        self.lengths().event_type
    }
    #[inline]
    fn tag_count(&self) -> usize {
        self.lengths().tags
    }
    /// Where the stream name starts.
    #[inline]
    fn text_at(&self) -> usize {
        self.layout.header_len()
    }
    /// Where the tags start (right after the event type).
    #[inline]
    fn tags_at(&self) -> usize {
        self.text_at() + self.stream_len() + self.type_len()
    }
    /// Where the metadata starts (right after the tags), given the record's `lengths`.
    #[inline(always)]
    fn metadata_at(&self, lengths: Lengths) -> usize {
        let at = self.layout.header_len() + lengths.stream + lengths.event_type;
        match lengths.tags {
            0 => at,
            count => check_tags(self.bytes, at, count).expect("verified tags"),
        }
    }
    /// Stream name bytes (verified UTF-8).
    #[inline]
    pub fn stream_bytes(&self) -> &'a [u8] {
        &self.bytes[self.text_at()..self.text_at() + self.stream_len()]
    }
    /// The stream name and event type, adjacent in the record, as one run of bytes (UTF-8
    /// unless something other than annal wrote them) and the length of the stream name.
    #[inline]
    pub fn text_bytes(&self) -> (&'a [u8], usize) {
        (&self.bytes[self.text_at()..self.tags_at()], self.stream_len())
    }
    /// The stream name, checked to be UTF-8.
    pub fn check_stream(&self) -> Result<&'a str, CorruptionKind> {
        std::str::from_utf8(self.stream_bytes()).map_err(|_| CorruptionKind::InvalidUtf8)
    }

    /// The stream name, checked, and whether the event type and every tag are valid UTF-8 too.
    pub fn check_text(&self) -> Result<&'a str, CorruptionKind> {
        let at = self.text_at() + self.stream_len();
        let event_type = &self.bytes[at..at + self.type_len()];
        let tags_ok = self.tag_bytes().all(|tag| std::str::from_utf8(tag).is_ok());
        match (std::str::from_utf8(self.stream_bytes()), std::str::from_utf8(event_type)) {
            (Ok(stream), Ok(_)) if tags_ok => Ok(stream),
            _ => Err(CorruptionKind::InvalidUtf8),
        }
    }

    /// Stream name.
    #[inline]
    pub fn stream(&self) -> &'a str {
        std::str::from_utf8(self.stream_bytes()).unwrap_or("\u{fffd}")
    }
    /// Event type.
    #[inline]
    pub fn event_type(&self) -> &'a str {
        let at = self.text_at() + self.stream_len();
        std::str::from_utf8(&self.bytes[at..at + self.type_len()]).unwrap_or("\u{fffd}")
    }
    /// The bytes of each tag, in order.
    fn tag_bytes(&self) -> impl Iterator<Item = &'a [u8]> + use<'a> {
        let (bytes, mut at) = (self.bytes, self.tags_at());
        (0..self.tag_count()).map(move |_| {
            let len = usize::from(bytes[at]);
            let tag = &bytes[at + 1..at + 1 + len];
            at += 1 + len;
            tag
        })
    }
    /// The tags, in order (none before format 3).
    pub fn tags(&self) -> impl Iterator<Item = &'a str> + use<'a> {
        self.tag_bytes().map(|tag| std::str::from_utf8(tag).unwrap_or("\u{fffd}"))
    }
    /// Where the metadata starts and where the data starts, from the record's first byte
    /// (the data runs to its end): what a reader keeps to reach both without decoding the
    /// lengths again.
    #[inline]
    pub fn body_at(&self) -> (usize, usize) {
        let lengths = self.lengths();
        let at = self.metadata_at(lengths);
        (at, at + lengths.metadata)
    }
    /// Metadata bytes.
    #[inline]
    pub fn metadata(&self) -> &'a [u8] {
        let lengths = self.lengths();
        let at = self.metadata_at(lengths);
        &self.bytes[at..at + lengths.metadata]
    }
    /// Data bytes.
    #[inline]
    pub fn data(&self) -> &'a [u8] {
        let lengths = self.lengths();
        &self.bytes[self.metadata_at(lengths) + lengths.metadata..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> RecordFields {
        RecordFields {
            position: 9,
            version: 3,
            timestamp_us: 11,
            batch_left: 2,
            sequence: 0x0000_a1b2_c3d4_e5f6,
            epoch: 0,
        }
    }

    fn sealed_with(stream: &str, tags: &[&str], data: &[u8]) -> Vec<u8> {
        let mut buf = Vec::new();
        let parts = EventParts {
            tags,
            ..EventParts::new(stream, Uuid::from_u128(7), "Created", b"meta", data)
        };
        encode_record(&mut buf, &parts).unwrap();
        seal_record(&mut buf, fields()).unwrap();
        buf
    }

    fn sealed(stream: &str, data: &[u8]) -> Vec<u8> {
        sealed_with(stream, &[], data)
    }

    /// A record in the version-1/2 layout, as an older build wrote it.
    fn sealed_v2(stream: &str, event_type: &str, metadata: &[u8], data: &[u8]) -> Vec<u8> {
        let len =
            RECORD_HEADER_LEN_V2 + stream.len() + event_type.len() + metadata.len() + data.len();
        let mut b = (len as u32).to_le_bytes().to_vec();
        b.extend_from_slice(&[0; 4]);
        b.extend_from_slice(&9u64.to_le_bytes());
        b.extend_from_slice(&3u64.to_le_bytes());
        b.extend_from_slice(&11u64.to_le_bytes());
        b.extend_from_slice(Uuid::from_u128(7).as_bytes());
        b.extend_from_slice(&2u16.to_le_bytes());
        b.extend_from_slice(&[stream.len() as u8, event_type.len() as u8]);
        b.extend_from_slice(&(metadata.len() as u32).to_le_bytes());
        for part in [stream.as_bytes(), event_type.as_bytes(), metadata, data] {
            b.extend_from_slice(part);
        }
        let crc = checksum(&b);
        b[4..8].copy_from_slice(&crc.to_le_bytes());
        b
    }

    #[test]
    fn record_round_trips_every_field() {
        let buf = sealed("order-1", b"payload");
        assert_eq!(buf.len(), RECORD_HEADER_LEN + 7 + 7 + 4 + 7, "no tags cost no byte");
        let r = decode_record(&buf, 0, Layout::V3).unwrap();
        assert_eq!(r.len(), buf.len());
        assert_eq!((r.position(), r.version(), r.timestamp_us(), r.batch_left()), (9, 3, 11, 2));
        assert_eq!((r.sequence(), r.epoch()), (Some(0x0000_a1b2_c3d4_e5f6), Some(0)));
        assert_eq!(r.id(), Uuid::from_u128(7));
        assert_eq!((r.stream(), r.event_type()), ("order-1", "Created"));
        assert_eq!((r.metadata(), r.data()), (&b"meta"[..], &b"payload"[..]));
        assert_eq!(r.tags().count(), 0);
        assert_eq!(r.check_text(), Ok("order-1"));
    }

    #[test]
    fn record_with_tags_round_trips_them_between_type_and_metadata() {
        let buf = sealed_with("order-1", &["eu", "priority"], b"payload");
        assert_eq!(buf.len(), RECORD_HEADER_LEN + 7 + 7 + (1 + 2) + (1 + 8) + 4 + 7);
        let r = decode_record(&buf, 0, Layout::V3).unwrap();
        assert_eq!(r.tags().collect::<Vec<_>>(), ["eu", "priority"]);
        assert_eq!((r.metadata(), r.data()), (&b"meta"[..], &b"payload"[..]));
        assert_eq!(r.text_bytes(), (&b"order-1Created"[..], 7));
        let at = RECORD_HEADER_LEN + 14;
        assert_eq!(&buf[at..at + 3], b"\x02eu");
    }

    #[test]
    fn record_with_a_tag_that_is_not_utf8_fails_the_text_check() {
        let mut buf = sealed_with("s", &["ab"], b"");
        buf[RECORD_HEADER_LEN + 1 + 7 + 1] = 0xff;
        let crc = checksum(&buf);
        buf[4..8].copy_from_slice(&crc.to_le_bytes());
        let r = decode_record(&buf, 0, Layout::V3).unwrap();
        assert_eq!(r.check_text(), Err(CorruptionKind::InvalidUtf8));
    }

    #[test]
    fn record_tags_outside_the_record_or_empty_are_bad_length() {
        for (count, first_len) in [(1u8, 0u8), (1, 200), (3, 2)] {
            let mut buf = sealed_with("s", &["ab"], b"");
            buf[63] = count;
            buf[RECORD_HEADER_LEN + 1 + 7] = first_len;
            let crc = checksum(&buf);
            buf[4..8].copy_from_slice(&crc.to_le_bytes());
            let found = decode_record(&buf, 0, Layout::V3).unwrap_err();
            assert_eq!(found, CorruptionKind::BadLength, "{count} tags, first of {first_len}");
        }
    }

    #[test]
    fn record_v2_layout_decodes_as_before() {
        let buf = sealed_v2("order-1", "Created", b"meta", b"payload");
        let r = decode_record(&buf, 0, Layout::V2).unwrap();
        assert_eq!((r.position(), r.version(), r.timestamp_us(), r.batch_left()), (9, 3, 11, 2));
        assert_eq!((r.sequence(), r.epoch(), r.tags().count()), (None, None, 0));
        assert_eq!((r.stream(), r.event_type()), ("order-1", "Created"));
        assert_eq!((r.metadata(), r.data()), (&b"meta"[..], &b"payload"[..]));
        assert!(decode_record(&buf, 0, Layout::V3).is_err(), "the layouts are not confused");
    }

    #[test]
    fn encoder_refuses_every_field_that_does_not_fit_its_width() {
        let long = "x".repeat(256);
        let big = vec![0u8; METADATA_BYTES_MAX + 1];
        let many = vec!["t"; RECORD_TAGS_MAX + 1];
        let id = Uuid::from_u128(1);
        let cases: [(EventParts<'_>, RecordField); 7] = [
            (EventParts::new("", id, "T", b"", b""), RecordField::StreamName),
            (EventParts::new(&long, id, "T", b"", b""), RecordField::StreamName),
            (EventParts::new("s", id, "", b"", b""), RecordField::EventType),
            (EventParts::new("s", id, &long, b"", b""), RecordField::EventType),
            (EventParts::new("s", id, "T", &big, b""), RecordField::Metadata),
            (
                EventParts { tags: &many, ..EventParts::new("s", id, "T", b"", b"") },
                RecordField::TagCount,
            ),
            (
                EventParts { tags: &["ok", ""], ..EventParts::new("s", id, "T", b"", b"") },
                RecordField::Tag,
            ),
        ];
        for (parts, field) in cases {
            let mut buf = vec![1, 2, 3];
            assert_eq!(encode_record(&mut buf, &parts).unwrap_err().field, field);
            assert_eq!(buf, [1, 2, 3], "{field:?}: nothing is written");
        }
        let long_tag = [long.as_str()];
        let parts = EventParts { tags: &long_tag, ..EventParts::new("s", id, "T", b"", b"") };
        assert_eq!(encode_record(&mut Vec::new(), &parts).unwrap_err().field, RecordField::Tag);
    }

    #[test]
    fn sealer_refuses_every_field_that_does_not_fit_its_width() {
        let buf = sealed("s", b"x");
        let cases = [
            (RecordFields { batch_left: 1 << 16, ..fields() }, RecordField::BatchLeft),
            (
                RecordFields { sequence: GROUP_SEQUENCE_MAX + 1, ..fields() },
                RecordField::GroupSequence,
            ),
            (RecordFields { epoch: 1 << 16, ..fields() }, RecordField::Epoch),
        ];
        for (bad, field) in cases {
            let mut copy = buf.clone();
            assert_eq!(seal_record(&mut copy, bad).unwrap_err().field, field);
            assert_eq!(copy, buf, "{field:?}: nothing is changed");
        }
        let mut max = buf.clone();
        seal_record(&mut max, RecordFields { sequence: GROUP_SEQUENCE_MAX, ..fields() }).unwrap();
        let r = decode_record(&max, 0, Layout::V3).unwrap();
        assert_eq!(r.sequence(), Some(GROUP_SEQUENCE_MAX));
        let mut short = buf[..buf.len() - 1].to_vec();
        assert_eq!(seal_record(&mut short, fields()).unwrap_err().field, RecordField::Record);
    }

    #[test]
    fn record_any_flipped_bit_is_detected() {
        let buf = sealed_with("s", &["tag"], b"0123456789");
        for i in 0..buf.len() {
            for bit in 0..8 {
                let mut bad = buf.clone();
                bad[i] ^= 1 << bit;
                let found = decode_record(&bad, 0, Layout::V3);
                assert!(found.is_err(), "flip at byte {i} bit {bit} undetected");
            }
        }
    }

    #[test]
    fn record_every_truncation_is_detected() {
        let buf = sealed("s", b"0123456789");
        for cut in 0..buf.len() {
            let found = decode_record(&buf[..cut], 0, Layout::V3);
            assert!(found.is_err(), "cut at {cut} undetected");
        }
    }

    #[test]
    fn checksum_is_crc32_of_the_record_without_its_checksum_field() {
        let buf = sealed("order-1", b"payload");
        let mut without = buf[0..4].to_vec();
        without.extend_from_slice(&buf[8..]);
        assert_eq!(checksum(&buf), crc32fast::hash(&without));
        // Again with the length cached, then with another length in between.
        assert_eq!(checksum(&buf), crc32fast::hash(&without));
        let other = sealed("order-22", b"payload");
        assert_ne!(other.len(), buf.len());
        assert!(decode_record(&other, 0, Layout::V3).is_ok());
        assert_eq!(checksum(&buf), crc32fast::hash(&without));
    }

    #[test]
    fn zeroed_record_is_bad_length() {
        for layout in [Layout::V2, Layout::V3] {
            let found = decode_record(&[0u8; 100], 0, layout).unwrap_err();
            assert_eq!(found, CorruptionKind::BadLength);
        }
    }
}
