//! A stored event encoded straight into the protobuf bytes of the `ReadResp` that
//! [`recorded::read_event`](crate::recorded::read_event) would build, without building it: no
//! metadata map, no strings, no copies but the bytes written. A counted read spends most of its
//! time here, so this is the one place the wire layout of `ReadResp.ReadEvent` is written by
//! hand; a test decodes the bytes with the generated types and compares them with
//! `read_event`'s message, so the two cannot drift apart.
//!
//! Layout (proto3, fields at their default value omitted as prost omits them; the map's
//! entries in a fixed order, which decoders ignore):
//! `ReadResp { 1: ReadEvent { 1: RecordedEvent { 1: UUID, 2: StreamIdentifier { 3: name },
//! 3: revision, 4: prepare, 5: commit, 6*: { 1: key, 2: value }, 7: custom metadata, 8: data },
//! 3: commit position } }`.

use annal::RecordedEvent;

use crate::{content, wire::TICKS_PER_MICROSECOND};

const VARINT: u8 = 0;
const LEN: u8 = 2;

/// The bytes of a hyphenated UUID.
const UUID_TEXT_BYTES: usize = 36;
/// The longest decimal `u64`.
const U64_DIGITS_MAX: usize = 20;

/// Appends to `out` the encoded `ReadResp` carrying `event`, its id in the structured form if
/// `structured_ids`. (A `Vec`, not a `BytesMut`: `BytesMut` writes each byte through a slice
/// copy, several times the cost of the whole encoding here.)
pub fn event_reply(event: &RecordedEvent, structured_ids: bool, out: &mut Vec<u8>) {
    let (content_type, custom) = content::unwrap(event.metadata());
    let mut ticks = [0; U64_DIGITS_MAX];
    let created = decimal(event.timestamp_us().saturating_mul(TICKS_PER_MICROSECOND), &mut ticks);
    let id = Id::of(event, structured_ids);
    let (stream, position) = (event.stream().as_bytes(), event.position().get());
    let entries: [(&[u8], &[u8]); 3] = [
        (b"type", event.event_type().as_bytes()),
        (b"content-type", content_type.as_bytes()),
        (b"created", created),
    ];
    let recorded_len = id.field_len()
        + bytes_field_len(opt_bytes_field_len(stream.len()))
        + uint_field_len(event.version().get())
        + 2 * uint_field_len(position)
        + entries.iter().map(|(k, v)| bytes_field_len(entry_len(k, v))).sum::<usize>()
        + opt_bytes_field_len(custom.len())
        + opt_bytes_field_len(event.data().len());
    let read_event_len = bytes_field_len(recorded_len) + 1 + varint_len(position);
    out.reserve(bytes_field_len(read_event_len));
    put_len_key(out, 1, read_event_len);
    put_len_key(out, 1, recorded_len);
    id.put(out);
    put_len_key(out, 2, opt_bytes_field_len(stream.len()));
    put_opt_bytes(out, 3, stream);
    put_uint(out, 3, event.version().get());
    put_uint(out, 4, position);
    put_uint(out, 5, position);
    for (key, value) in entries {
        put_len_key(out, 6, entry_len(key, value));
        put_opt_bytes(out, 1, key);
        put_opt_bytes(out, 2, value);
    }
    put_opt_bytes(out, 7, custom);
    put_opt_bytes(out, 8, event.data());
    // The oneof `position`: a set oneof field is written even when zero.
    put_key(out, 3, VARINT);
    put_varint(out, position);
}

/// An event id in the form the request asked for.
enum Id {
    Text([u8; UUID_TEXT_BYTES]),
    Structured(u64, u64),
}

impl Id {
    fn of(event: &RecordedEvent, structured: bool) -> Id {
        if structured {
            // The halves travel as int64: the same 64 bits, which a varint writes as the u64.
            let (high, low) = event.id().as_u64_pair();
            Id::Structured(high, low)
        } else {
            let mut text = [0; UUID_TEXT_BYTES];
            event.id().hyphenated().encode_lower(&mut text);
            Id::Text(text)
        }
    }

    /// The `UUID` message's length.
    fn message_len(&self) -> usize {
        match self {
            Id::Text(text) => bytes_field_len(text.len()),
            Id::Structured(high, low) => {
                bytes_field_len(uint_field_len(*high) + uint_field_len(*low))
            }
        }
    }

    fn field_len(&self) -> usize {
        bytes_field_len(self.message_len())
    }

    fn put(&self, out: &mut Vec<u8>) {
        put_len_key(out, 1, self.message_len());
        match self {
            Id::Text(text) => put_opt_bytes(out, 2, text),
            Id::Structured(high, low) => {
                put_len_key(out, 1, uint_field_len(*high) + uint_field_len(*low));
                put_uint(out, 1, *high);
                put_uint(out, 2, *low);
            }
        }
    }
}

fn entry_len(key: &[u8], value: &[u8]) -> usize {
    opt_bytes_field_len(key.len()) + opt_bytes_field_len(value.len())
}

/// `n` in decimal ASCII, written at the end of `buf`.
fn decimal(mut n: u64, buf: &mut [u8; U64_DIGITS_MAX]) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[at..]
}

fn varint_len(v: u64) -> usize {
    // 7 bits a byte; 0 still takes one.
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

/// A length-delimited field of `len` bytes, with its key and length (field numbers < 16).
fn bytes_field_len(len: usize) -> usize {
    1 + varint_len(len as u64) + len
}

/// A bytes or string field, omitted when empty.
fn opt_bytes_field_len(len: usize) -> usize {
    if len == 0 { 0 } else { bytes_field_len(len) }
}

/// A uint64 field, omitted when zero.
fn uint_field_len(v: u64) -> usize {
    if v == 0 { 0 } else { 1 + varint_len(v) }
}

fn put_key(out: &mut Vec<u8>, field: u8, wire_type: u8) {
    debug_assert!(field < 16, "one-byte keys only");
    out.push(field << 3 | wire_type);
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_len_key(out: &mut Vec<u8>, field: u8, len: usize) {
    put_key(out, field, LEN);
    put_varint(out, len as u64);
}

fn put_opt_bytes(out: &mut Vec<u8>, field: u8, bytes: &[u8]) {
    if !bytes.is_empty() {
        put_len_key(out, field, bytes.len());
        out.extend_from_slice(bytes);
    }
}

fn put_uint(out: &mut Vec<u8>, field: u8, v: u64) {
    if v != 0 {
        put_key(out, field, VARINT);
        put_varint(out, v);
    }
}

#[cfg(test)]
mod tests {
    use annal::{ExpectedVersion, NewEvent, Position, Store};
    use prost::Message;

    use super::*;
    use crate::{
        proto::streams::{ReadResp, read_resp},
        recorded,
    };

    fn stored(events: Vec<NewEvent>) -> (tempfile::TempDir, Vec<RecordedEvent>) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.append("a-stream", ExpectedVersion::Any, events).unwrap();
        let read = store.read_all_forward(Position::START, usize::MAX).map(Result::unwrap);
        let read = read.collect();
        store.close();
        (dir, read)
    }

    #[test]
    fn encoded_reply_decodes_to_the_message_read_event_builds() {
        let json = content::wrap(content::JSON, b"{\"custom\":1}");
        let big = vec![7; 300];
        let (_dir, events) = stored(vec![
            NewEvent::new("First", b"{}".to_vec()),
            NewEvent::new("Json", b"{\"a\":1}".to_vec()).with_metadata(json),
            NewEvent::new("Binary", big.clone()).with_metadata(content::wrap("x", &big)),
            NewEvent::new("Raw", Vec::new()).with_metadata(b"\0akm\x07raw".to_vec()),
            NewEvent::new("Empty", Vec::new()),
        ]);
        for event in &events {
            for structured in [false, true] {
                let mut out = Vec::new();
                event_reply(event, structured, &mut out);
                let decoded = ReadResp::decode(&out[..]).unwrap();
                let built = read_resp::Content::Event(recorded::read_event(event, structured));
                assert_eq!(decoded, ReadResp { content: Some(built) }, "{event:?}");
            }
        }
    }

    #[test]
    fn encoded_reply_is_as_long_as_prosts_encoding() {
        let (_dir, events) = stored(vec![NewEvent::new("T", vec![1; 200_000])]);
        for structured in [false, true] {
            let mut out = Vec::new();
            event_reply(&events[0], structured, &mut out);
            let built = read_resp::Content::Event(recorded::read_event(&events[0], structured));
            assert_eq!(out.len(), ReadResp { content: Some(built) }.encoded_len());
        }
    }

    #[test]
    fn varint_lengths_match_prost() {
        for v in [0, 1, 127, 128, 16_383, 16_384, u64::from(u32::MAX), u64::MAX] {
            assert_eq!(varint_len(v), prost::encoding::encoded_len_varint(v), "{v}");
        }
    }

    #[test]
    fn decimal_writes_every_digit() {
        let mut buf = [0; U64_DIGITS_MAX];
        assert_eq!(decimal(0, &mut buf), b"0");
        assert_eq!(decimal(u64::MAX, &mut buf), u64::MAX.to_string().as_bytes());
        assert_eq!(decimal(17_000_000_001_234_560, &mut buf), b"17000000001234560");
    }
}
