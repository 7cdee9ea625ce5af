//! How an event's `content-type` and custom metadata are kept in annal's one metadata field.
//!
//! annal stores an event's type, data and one opaque metadata byte string; the protocol has a
//! content type besides (`application/json` or anything else, which reads back as
//! `application/octet-stream`). The server stores the metadata of every event it appends as an
//! envelope: the four bytes [`MAGIC`], one byte naming the content type, then the client's
//! custom metadata unchanged. Reading, an envelope is unwrapped; metadata without one (events
//! appended through the library directly) is passed through as `application/octet-stream`.

/// The envelope's first bytes: a zero byte (rare at the start of text) and `akm`.
pub const MAGIC: [u8; 4] = [0x00, b'a', b'k', b'm'];

/// The content type clients send for JSON payloads.
pub const JSON: &str = "application/json";
/// The content type of everything else.
pub const OCTET_STREAM: &str = "application/octet-stream";

const CODE_OCTET_STREAM: u8 = 0;
const CODE_JSON: u8 = 1;

/// The bytes annal stores as metadata for an event of `content_type` with `custom` metadata.
pub fn wrap(content_type: &str, custom: &[u8]) -> Vec<u8> {
    let code = if content_type == JSON { CODE_JSON } else { CODE_OCTET_STREAM };
    let mut bytes = Vec::with_capacity(MAGIC.len() + 1 + custom.len());
    bytes.extend_from_slice(&MAGIC);
    bytes.push(code);
    bytes.extend_from_slice(custom);
    bytes
}

/// The content type and custom metadata held in stored `metadata`.
pub fn unwrap(metadata: &[u8]) -> (&'static str, &[u8]) {
    match metadata.strip_prefix(&MAGIC).and_then(|rest| rest.split_first()) {
        Some((&CODE_JSON, custom)) => (JSON, custom),
        Some((&CODE_OCTET_STREAM, custom)) => (OCTET_STREAM, custom),
        _ => (OCTET_STREAM, metadata),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_and_binary_round_trip_with_their_custom_metadata() {
        assert_eq!(unwrap(&wrap(JSON, b"{\"a\":1}")), (JSON, &b"{\"a\":1}"[..]));
        assert_eq!(unwrap(&wrap(OCTET_STREAM, b"\x01\x02")), (OCTET_STREAM, &b"\x01\x02"[..]));
        assert_eq!(unwrap(&wrap("text/plain", b"")), (OCTET_STREAM, &b""[..]));
    }

    #[test]
    fn metadata_without_an_envelope_passes_through_as_binary() {
        assert_eq!(unwrap(b"plain"), (OCTET_STREAM, &b"plain"[..]));
        assert_eq!(unwrap(b""), (OCTET_STREAM, &b""[..]));
        // The magic with an unknown code is not an envelope.
        assert_eq!(unwrap(b"\0akm\x07x"), (OCTET_STREAM, &b"\0akm\x07x"[..]));
    }
}
