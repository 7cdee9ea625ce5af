//! A record's stream name and event type, checked to be UTF-8 once and kept for the events after
//! it that carry the same bytes.

/// The stream name and event type of the last event a read decoded, checked to be UTF-8 once.
/// An append's events share their stream and most logs have few event types, so most events
/// are answered by comparing a few bytes instead of validating them again (`unsafe` to skip
/// the check is not allowed outside the mmap module).
#[derive(Debug, Default)]
pub(crate) struct TextCache {
    /// Stream name and event type, one after the other as in the record.
    text: String,
    /// Where the stream name ends in `text` (always a character boundary).
    stream_len: usize,
}

impl TextCache {
    /// Whether this holds the text of a record whose text bytes (as [`Record::text_bytes`]
    /// has them) are `bytes` with a stream name of `stream_len` bytes.
    ///
    /// [`Record::text_bytes`]: crate::format::Record::text_bytes
    #[inline]
    pub(super) fn holds(&self, (bytes, stream_len): (&[u8], usize)) -> bool {
        stream_len == self.stream_len && same_bytes(self.text.as_bytes(), bytes)
    }

    /// The stream name.
    #[inline]
    pub(super) fn stream(&self) -> &str {
        self.text.split_at(self.stream_len).0
    }

    /// The event type.
    #[inline]
    pub(super) fn event_type(&self) -> &str {
        self.text.split_at(self.stream_len).1
    }

    /// Holds `bytes` split at `stream_len` (a record's text bytes, as [`holds`](Self::holds)
    /// takes them): one UTF-8 check for both fields. Bytes that are not UTF-8 (which no annal
    /// writer produces) read as U+FFFD, field by field, as
    /// [`Record::stream`](crate::format::Record::stream) has them. The cache then holds other
    /// bytes than the record's, so the next such record is checked again; a record that does
    /// hold the cached bytes has that text, whatever put it there.
    pub(super) fn fill(&mut self, (bytes, stream_len): (&[u8], usize)) {
        self.text.clear();
        match std::str::from_utf8(bytes) {
            Ok(text) if text.is_char_boundary(stream_len) => {
                self.text.push_str(text);
                self.stream_len = stream_len;
            }
            _ => {
                let (stream, event_type) = bytes.split_at(stream_len);
                let lossy = |b| std::str::from_utf8(b).unwrap_or("\u{fffd}");
                self.text.push_str(lossy(stream));
                self.stream_len = self.text.len();
                self.text.push_str(lossy(event_type));
            }
        }
    }
}

/// Whether `a` and `b` hold the same bytes, compared a word at a time inline: for names of a
/// few dozen bytes that costs less than the call to `memcmp` that `==` makes.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if n < 8 {
        return a.iter().zip(b).all(|(x, y)| x == y);
    }
    let word = |s: &[u8], at: usize| u64::from_ne_bytes(s[at..at + 8].try_into().expect("8"));
    let mut at = 0;
    while at + 8 < n {
        if word(a, at) != word(b, at) {
            return false;
        }
        at += 8;
    }
    // The last eight bytes, overlapping the word before when `n` is not a multiple of eight.
    word(a, n - 8) == word(b, n - 8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolved(cache: &mut TextCache, stream: &[u8], event_type: &[u8]) -> (String, String) {
        let bytes = [stream, event_type].concat();
        if !cache.holds((&bytes, stream.len())) {
            cache.fill((&bytes, stream.len()));
        }
        (cache.stream().to_owned(), cache.event_type().to_owned())
    }

    fn pair(s: &str, t: &str) -> (String, String) {
        (s.to_owned(), t.to_owned())
    }

    #[test]
    fn text_cache_follows_changing_text() {
        let mut cache = TextCache::default();
        assert_eq!(resolved(&mut cache, b"order-1", b"Placed"), pair("order-1", "Placed"));
        assert_eq!(resolved(&mut cache, b"order-1", b"Placed"), pair("order-1", "Placed"));
        // Same bytes, split elsewhere.
        assert_eq!(resolved(&mut cache, b"order-1P", b"laced"), pair("order-1P", "laced"));
        assert_eq!(resolved(&mut cache, b"order-22", b"Paid"), pair("order-22", "Paid"));
        assert_eq!(resolved(&mut cache, "é".as_bytes(), "ü".as_bytes()), pair("é", "ü"));
    }

    #[test]
    fn text_cache_invalid_utf8_is_replacement_character_per_field() {
        let mut cache = TextCache::default();
        assert_eq!(resolved(&mut cache, &[0xff], b"Placed"), pair("\u{fffd}", "Placed"));
        assert_eq!(resolved(&mut cache, b"order-1", &[0xc3]), pair("order-1", "\u{fffd}"));
        // A character split between the fields: each field on its own is not UTF-8.
        let e = "é".as_bytes();
        assert_eq!(resolved(&mut cache, &e[..1], &e[1..]), pair("\u{fffd}", "\u{fffd}"));
        // The replacement character's own bytes are text, and read as themselves.
        let r = "\u{fffd}".as_bytes();
        assert_eq!(resolved(&mut cache, r, b"Placed"), pair("\u{fffd}", "Placed"));
    }

    #[test]
    fn same_bytes_compares_every_byte() {
        let a: Vec<u8> = (0..40).collect();
        for len in 0..a.len() {
            assert!(same_bytes(&a[..len], &a[..len]));
            assert!(!same_bytes(&a[..len], &a[..len + 1]));
            for at in 0..len {
                let mut b = a[..len].to_vec();
                b[at] ^= 0x20;
                assert!(!same_bytes(&a[..len], &b), "difference at {at} of {len} missed");
            }
        }
    }
}
