//! The bytes of a `$metadata` event's data (documented in `docs/format.md`, "Stream metadata").

use std::{collections::BTreeMap, time::Duration};

use super::StreamMetadata;

/// Version of the metadata encoding (independent of the segment format version).
const META_VERSION: u8 = 1;
const HAS_MAX_COUNT: u8 = 1;
const HAS_MAX_AGE: u8 = 2;
const HAS_TRUNCATE_BEFORE: u8 = 4;
const TOMBSTONE: u8 = 8;
const FIXED_LEN: usize = 28;

/// What one `$metadata` event says: the stream's metadata, and whether it is tombstoned.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct MetaRecord {
    pub meta: StreamMetadata,
    pub tombstone: bool,
}

/// Encodes a metadata event's data.
pub(crate) fn encode_meta(record: &MetaRecord) -> Vec<u8> {
    let m = &record.meta;
    let flag = |set: bool, bit: u8| if set { bit } else { 0 };
    let flags = flag(m.max_count.is_some(), HAS_MAX_COUNT)
        | flag(m.max_age.is_some(), HAS_MAX_AGE)
        | flag(m.truncate_before.is_some(), HAS_TRUNCATE_BEFORE)
        | flag(record.tombstone, TOMBSTONE);
    let mut b = Vec::with_capacity(FIXED_LEN);
    b.push(META_VERSION);
    b.push(flags);
    let count = u16::try_from(m.custom.len()).expect("checked by validate_metadata");
    b.extend_from_slice(&count.to_le_bytes());
    b.extend_from_slice(&m.max_count.unwrap_or(0).to_le_bytes());
    let age_us = m.max_age.map_or(0, |a| u64::try_from(a.as_micros()).unwrap_or(u64::MAX));
    b.extend_from_slice(&age_us.to_le_bytes());
    b.extend_from_slice(&m.truncate_before.unwrap_or(0).to_le_bytes());
    for (key, value) in &m.custom {
        b.extend_from_slice(&u16::try_from(key.len()).expect("checked").to_le_bytes());
        b.extend_from_slice(key.as_bytes());
        b.extend_from_slice(&u32::try_from(value.len()).expect("checked").to_le_bytes());
        b.extend_from_slice(value.as_bytes());
    }
    b
}

/// Decodes a metadata event's data; `None` if the bytes are not a valid encoding.
pub(crate) fn decode_meta(bytes: &[u8]) -> Option<MetaRecord> {
    let fixed = bytes.get(..FIXED_LEN)?;
    let flags = fixed[1];
    let known = HAS_MAX_COUNT | HAS_MAX_AGE | HAS_TRUNCATE_BEFORE | TOMBSTONE;
    if fixed[0] != META_VERSION || flags & !known != 0 {
        return None;
    }
    let u64_at = |at: usize| u64::from_le_bytes(fixed[at..at + 8].try_into().expect("8 bytes"));
    let present = |bit: u8, value: u64| (flags & bit != 0).then_some(value);
    let mut meta = StreamMetadata {
        max_count: present(HAS_MAX_COUNT, u64_at(4)),
        max_age: present(HAS_MAX_AGE, u64_at(12)).map(Duration::from_micros),
        truncate_before: present(HAS_TRUNCATE_BEFORE, u64_at(20)),
        custom: BTreeMap::new(),
    };
    let mut rest = &bytes[FIXED_LEN..];
    for _ in 0..u16::from_le_bytes([fixed[2], fixed[3]]) {
        let key = take(&mut rest, 2)?;
        let value = take(&mut rest, 4)?;
        meta.custom.insert(key, value);
    }
    rest.is_empty().then_some(MetaRecord { meta, tombstone: flags & TOMBSTONE != 0 })
}

/// Takes one length-prefixed UTF-8 string (`width`-byte little-endian length) off `rest`.
fn take(rest: &mut &[u8], width: usize) -> Option<String> {
    let mut len = [0u8; 8];
    len[..width].copy_from_slice(rest.get(..width)?);
    let len = usize::try_from(u64::from_le_bytes(len)).ok()?;
    let text = rest.get(width..width.checked_add(len)?)?;
    let text = String::from_utf8(text.to_vec()).ok()?;
    *rest = &rest[width + len..];
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_round_trips() {
        let mut custom = BTreeMap::new();
        custom.insert("owner".to_owned(), "billing".to_owned());
        custom.insert(String::new(), "ü".to_owned());
        let record = MetaRecord {
            meta: StreamMetadata {
                max_count: Some(0),
                max_age: Some(Duration::from_secs(3600)),
                truncate_before: None,
                custom,
            },
            tombstone: true,
        };
        let bytes = encode_meta(&record);
        assert_eq!(decode_meta(&bytes), Some(record));
        assert_eq!(decode_meta(&encode_meta(&MetaRecord::default())), Some(MetaRecord::default()));
    }

    #[test]
    fn bad_metadata_bytes_are_refused() {
        let good = encode_meta(&MetaRecord::default());
        for cut in 0..good.len() {
            assert_eq!(decode_meta(&good[..cut]), None);
        }
        let mut unknown_flag = good.clone();
        unknown_flag[1] = 0x10;
        assert_eq!(decode_meta(&unknown_flag), None);
        let mut trailing = good;
        trailing.push(0);
        assert_eq!(decode_meta(&trailing), None);
    }
}
