//! Event data and metadata as JSON, both ways. The store keeps opaque bytes; the CLI shows them
//! as the JSON they hold, as text, as decoded MessagePack, or as base64, in that order of
//! preference, and takes JSON values or strings from `annal append`.

use serde_json::Value;

/// How payload bytes were turned into a JSON value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// The bytes are a JSON document; the value is that document.
    Json,
    /// The bytes are UTF-8 text but not JSON; the value is that text as a string.
    Utf8,
    /// The bytes are one MessagePack map or array that maps onto JSON; the value is that value.
    MessagePack,
    /// Anything else; the value is a string of standard base64 (with padding).
    Base64,
}

impl Encoding {
    /// The name used in JSON output (`"data_encoding"`).
    pub fn name(self) -> &'static str {
        match self {
            Encoding::Json => "json",
            Encoding::Utf8 => "utf8",
            Encoding::MessagePack => "msgpack",
            Encoding::Base64 => "base64",
        }
    }
}

/// Shows payload bytes as a JSON value.
pub fn decode(bytes: &[u8]) -> (Value, Encoding) {
    if let Ok(value) = serde_json::from_slice::<Value>(bytes) {
        return (value, Encoding::Json);
    }
    if let Ok(text) = std::str::from_utf8(bytes) {
        return (Value::String(text.to_owned()), Encoding::Utf8);
    }
    if let Some(value) = decode_message_pack(bytes) {
        return (value, Encoding::MessagePack);
    }
    (Value::String(base64(bytes)), Encoding::Base64)
}

/// One MessagePack map or array taking up exactly `bytes`, if it maps onto JSON (string keys,
/// no binary). Payloads are maps or arrays in practice, and requiring one keeps stray binary
/// from passing as a scalar (every byte from 0xe0 up alone is a MessagePack integer); text is
/// caught before. When bytes do pass by chance, the encoding name says how they were read.
fn decode_message_pack(bytes: &[u8]) -> Option<Value> {
    let mut rest = bytes;
    let value: Value = rmp_serde::from_read(&mut rest).ok()?;
    let container = value.is_object() || value.is_array();
    (container && rest.is_empty()).then_some(value)
}

/// The bytes `annal append` stores for a `data` or `metadata` field: a string as its UTF-8
/// text, any other value as its compact JSON text.
pub fn encode(value: &Value) -> Vec<u8> {
    match value {
        Value::String(text) => text.as_bytes().to_vec(),
        other => other.to_string().into_bytes(),
    }
}

/// Standard base64 (RFC 4648) with padding.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        let sextets = [n >> 18, n >> 12, n >> 6, n];
        for (i, sextet) in sextets.into_iter().enumerate() {
            // A chunk of k bytes fills k + 1 sextets; the rest is padding.
            let c = if i <= chunk.len() { ALPHABET[(sextet & 63) as usize] } else { b'=' };
            out.push(char::from(c));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_rfc_4648_vectors() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in cases {
            assert_eq!(base64(plain.as_bytes()), encoded, "{plain:?}");
        }
        assert_eq!(base64(&[0xff, 0xfe, 0x00]), "//4A");
    }

    #[test]
    fn json_text_and_other_bytes_are_told_apart() {
        assert_eq!(decode(br#"{"a":1}"#), (serde_json::json!({"a": 1}), Encoding::Json));
        assert_eq!(decode(b"hello"), (Value::String("hello".into()), Encoding::Utf8));
        assert_eq!(decode(b""), (Value::String(String::new()), Encoding::Utf8));
        assert_eq!(decode(&[0xff, 0x00]), (Value::String("/wA=".into()), Encoding::Base64));
    }

    #[test]
    fn message_pack_maps_decode_and_trailing_bytes_do_not() {
        // {"a": 1} in MessagePack: fixmap of 1, fixstr "a", positive fixint 1.
        let packed = [0x81, 0xa1, b'a', 0x01];
        assert_eq!(decode(&packed), (serde_json::json!({"a": 1}), Encoding::MessagePack));
        let trailing = [0x81, 0xa1, b'a', 0x01, 0xc1];
        assert_eq!(decode(&trailing).1, Encoding::Base64);
        // 0xff alone is the MessagePack integer -1, but not a map or an array.
        assert_eq!(decode(&[0xff]).1, Encoding::Base64);
        assert_eq!(decode(&[0x92, 0x01, 0xa1, b'b']).0, serde_json::json!([1, "b"]));
    }

    #[test]
    fn append_stores_strings_as_text_and_other_values_as_json() {
        assert_eq!(encode(&Value::String("héllo".into())), "héllo".as_bytes());
        assert_eq!(encode(&serde_json::json!({"sku": "A1"})), br#"{"sku":"A1"}"#);
        assert_eq!(encode(&Value::Null), b"null");
    }
}
