//! The record frame: one event, length-prefixed and CRC-checked, with its position inside the
//! checksummed bytes so that a misplaced or misdirected record is caught.
//!
//! Records of one append follow each other; each says how many records of its append follow it
//! (`batch_left`), so recovery can tell a complete append from a torn one.

use std::cell::RefCell;

use uuid::Uuid;

use super::{CorruptionKind, RECORD_HEADER_LEN, RECORD_LEN_MIN};

/// The fields the writer fills in at commit time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RecordFields {
    pub position: u64,
    pub version: u64,
    pub timestamp_us: u64,
    pub batch_left: u16,
}

/// Appends one record to `buf` with its commit-time fields zeroed and no checksum yet; the
/// writer completes it with [`seal_record`]. The caller has checked every length.
pub(crate) fn encode_record(
    buf: &mut Vec<u8>,
    stream: &str,
    id: Uuid,
    event_type: &str,
    metadata: &[u8],
    data: &[u8],
) {
    let len = RECORD_HEADER_LEN + stream.len() + event_type.len() + metadata.len() + data.len();
    debug_assert!(u32::try_from(len).is_ok() && !stream.is_empty() && stream.len() <= 255);
    debug_assert!(!event_type.is_empty() && event_type.len() <= 255);
    buf.reserve(len);
    buf.extend_from_slice(&(len as u32).to_le_bytes());
    buf.extend_from_slice(&[0u8; 4 + 8 + 8 + 8]); // crc, position, version, timestamp
    buf.extend_from_slice(id.as_bytes());
    buf.extend_from_slice(&[0u8; 2]); // batch_left
    buf.push(stream.len() as u8);
    buf.push(event_type.len() as u8);
    buf.extend_from_slice(&(metadata.len() as u32).to_le_bytes());
    buf.extend_from_slice(stream.as_bytes());
    buf.extend_from_slice(event_type.as_bytes());
    buf.extend_from_slice(metadata);
    buf.extend_from_slice(data);
}

/// Fills in the commit-time fields of one encoded record and computes its checksum.
pub(crate) fn seal_record(record: &mut [u8], fields: RecordFields) {
    debug_assert_eq!(record_len(record), Some(record.len()));
    record[8..16].copy_from_slice(&fields.position.to_le_bytes());
    record[16..24].copy_from_slice(&fields.version.to_le_bytes());
    record[24..32].copy_from_slice(&fields.timestamp_us.to_le_bytes());
    record[48..50].copy_from_slice(&fields.batch_left.to_le_bytes());
    let crc = checksum(record);
    record[4..8].copy_from_slice(&crc.to_le_bytes());
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

/// A record whose length fields and checksum have been verified. Its text fields are not
/// checked for UTF-8 here: the writer only writes `&str`s and the checksum guards them since,
/// so the accessors only fall back to U+FFFD for bytes no annal writer produced; recovery and
/// verification check the text explicitly ([`Record::check_text`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Record<'a> {
    bytes: &'a [u8],
}

/// Reads and verifies the record that starts at `buf[at]`.
pub(crate) fn decode_record(buf: &[u8], at: usize) -> Result<Record<'_>, CorruptionKind> {
    let rest = buf.get(at..).ok_or(CorruptionKind::Truncated)?;
    let len = record_len(rest).ok_or(CorruptionKind::Truncated)?;
    if len < RECORD_LEN_MIN {
        return Err(CorruptionKind::BadLength);
    }
    let bytes = rest.get(..len).ok_or(CorruptionKind::Truncated)?;
    let stored = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes"));
    if checksum(bytes) != stored {
        return Err(CorruptionKind::Checksum);
    }
    let record = Record { bytes };
    let (stream_len, type_len) = (usize::from(bytes[50]), usize::from(bytes[51]));
    let text_end = RECORD_HEADER_LEN + stream_len + type_len;
    if stream_len == 0 || type_len == 0 || text_end + record.metadata_len() > len {
        return Err(CorruptionKind::BadLength);
    }
    Ok(record)
}

/// The records of a buffer the writer itself encoded and sealed, with their offsets. Not for
/// bytes read back from disk: it trusts the lengths and checks nothing.
pub(crate) fn own_records(buf: &[u8]) -> impl Iterator<Item = (usize, Record<'_>)> {
    let mut at = 0;
    std::iter::from_fn(move || {
        let len = record_len(buf.get(at..)?)?;
        let record = Record { bytes: &buf[at..at + len] };
        let offset = at;
        at += len;
        Some((offset, record))
    })
}

impl<'a> Record<'a> {
    /// Wraps bytes that were verified by [`decode_record`] before (a reader keeps the offset
    /// and length of a decoded record and re-wraps them on access).
    pub(crate) fn verified(bytes: &'a [u8]) -> Record<'a> {
        debug_assert_eq!(record_len(bytes), Some(bytes.len()));
        Record { bytes }
    }
}

fn read_u64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

impl<'a> Record<'a> {
    /// All bytes of the record.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }
    /// Global position.
    pub fn position(&self) -> u64 {
        read_u64(self.bytes, 8)
    }
    /// Version within its stream.
    pub fn version(&self) -> u64 {
        read_u64(self.bytes, 16)
    }
    /// Commit time, microseconds since the Unix epoch.
    pub fn timestamp_us(&self) -> u64 {
        read_u64(self.bytes, 24)
    }
    /// Event id.
    pub fn id(&self) -> Uuid {
        Uuid::from_bytes(self.bytes[32..48].try_into().expect("16 bytes"))
    }
    /// How many records of the same append follow this one.
    pub fn batch_left(&self) -> u16 {
        u16::from_le_bytes([self.bytes[48], self.bytes[49]])
    }
    fn stream_len(&self) -> usize {
        usize::from(self.bytes[50])
    }
    fn type_len(&self) -> usize {
        usize::from(self.bytes[51])
    }
    fn metadata_len(&self) -> usize {
        u32::from_le_bytes(self.bytes[52..56].try_into().expect("4 bytes")) as usize
    }
    /// Stream name bytes (verified UTF-8).
    pub fn stream_bytes(&self) -> &'a [u8] {
        &self.bytes[RECORD_HEADER_LEN..RECORD_HEADER_LEN + self.stream_len()]
    }
    /// The stream name and event type, adjacent in the record, as one run of bytes (UTF-8
    /// unless something other than annal wrote them) and the length of the stream name.
    pub fn text_bytes(&self) -> (&'a [u8], usize) {
        let end = RECORD_HEADER_LEN + self.stream_len() + self.type_len();
        (&self.bytes[RECORD_HEADER_LEN..end], self.stream_len())
    }
    /// The stream name, checked to be UTF-8.
    pub fn check_stream(&self) -> Result<&'a str, CorruptionKind> {
        std::str::from_utf8(self.stream_bytes()).map_err(|_| CorruptionKind::InvalidUtf8)
    }

    /// The stream name, checked, and whether the event type is valid UTF-8 as well.
    pub fn check_text(&self) -> Result<&'a str, CorruptionKind> {
        let at = RECORD_HEADER_LEN + self.stream_len();
        let event_type = &self.bytes[at..at + self.type_len()];
        match (std::str::from_utf8(self.stream_bytes()), std::str::from_utf8(event_type)) {
            (Ok(stream), Ok(_)) => Ok(stream),
            _ => Err(CorruptionKind::InvalidUtf8),
        }
    }

    /// Stream name.
    pub fn stream(&self) -> &'a str {
        std::str::from_utf8(self.stream_bytes()).unwrap_or("\u{fffd}")
    }
    /// Event type.
    pub fn event_type(&self) -> &'a str {
        let at = RECORD_HEADER_LEN + self.stream_len();
        std::str::from_utf8(&self.bytes[at..at + self.type_len()]).unwrap_or("\u{fffd}")
    }
    /// Metadata bytes.
    pub fn metadata(&self) -> &'a [u8] {
        let at = RECORD_HEADER_LEN + self.stream_len() + self.type_len();
        &self.bytes[at..at + self.metadata_len()]
    }
    /// Data bytes.
    pub fn data(&self) -> &'a [u8] {
        let at = RECORD_HEADER_LEN + self.stream_len() + self.type_len() + self.metadata_len();
        &self.bytes[at..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed(stream: &str, data: &[u8]) -> Vec<u8> {
        let mut buf = Vec::new();
        encode_record(&mut buf, stream, Uuid::from_u128(7), "Created", b"meta", data);
        let fields = RecordFields { position: 9, version: 3, timestamp_us: 11, batch_left: 2 };
        seal_record(&mut buf, fields);
        buf
    }

    #[test]
    fn record_round_trips_every_field() {
        let buf = sealed("order-1", b"payload");
        let r = decode_record(&buf, 0).unwrap();
        assert_eq!(r.len(), buf.len());
        assert_eq!((r.position(), r.version(), r.timestamp_us(), r.batch_left()), (9, 3, 11, 2));
        assert_eq!(r.id(), Uuid::from_u128(7));
        assert_eq!((r.stream(), r.event_type()), ("order-1", "Created"));
        assert_eq!((r.metadata(), r.data()), (&b"meta"[..], &b"payload"[..]));
    }

    #[test]
    fn record_any_flipped_bit_is_detected() {
        let buf = sealed("s", b"0123456789");
        for i in 0..buf.len() {
            for bit in 0..8 {
                let mut bad = buf.clone();
                bad[i] ^= 1 << bit;
                assert!(decode_record(&bad, 0).is_err(), "flip at byte {i} bit {bit} undetected");
            }
        }
    }

    #[test]
    fn record_every_truncation_is_detected() {
        let buf = sealed("s", b"0123456789");
        for cut in 0..buf.len() {
            assert!(decode_record(&buf[..cut], 0).is_err(), "cut at {cut} undetected");
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
        assert!(decode_record(&other, 0).is_ok());
        assert_eq!(checksum(&buf), crc32fast::hash(&without));
    }

    #[test]
    fn zeroed_record_is_bad_length() {
        assert_eq!(decode_record(&[0u8; 100], 0).unwrap_err(), CorruptionKind::BadLength);
    }
}
