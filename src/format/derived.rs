//! What the derived files (a segment's index file, the stream table) share: the one list of ways
//! their bytes can fail, the 64-byte header frame (magic, version, header CRC) with its body CRC
//! trailer, and the bounds-checked little-endian reads every decoder of them goes through.
//!
//! Derived files are rebuilt from the segments whenever they are missing, damaged or stale, so
//! nothing in them is trusted: every read here returns `None` outside the bytes instead of
//! panicking, and no length field is used before it is checked against the file's size.

/// Length of the header of every derived file, in bytes.
pub const DERIVED_HEADER_LEN: usize = 64;
/// Length of the body CRC that ends every derived file, in bytes.
pub const DERIVED_TRAILER_LEN: usize = 4;
/// Where the header CRC sits: it covers the header bytes before it.
const HEADER_CRC_AT: usize = 60;

/// Why the bytes of a derived file cannot be used, or why a builder refuses to encode one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DerivedFileError {
    /// The file is shorter than its header and trailer, or than its section table.
    #[error("derived file is truncated")]
    TooShort,
    /// The file does not start with the expected magic.
    #[error("derived file has the wrong magic")]
    BadMagic,
    /// The header is intact but of another format version.
    #[error("unsupported derived file version {0}")]
    UnsupportedVersion(u16),
    /// The header fails its checksum.
    #[error("derived file header checksum mismatch")]
    HeaderChecksum,
    /// The body (everything after the header) fails its checksum.
    #[error("derived file body checksum mismatch")]
    BodyChecksum,
    /// A section lies outside the body. `kind` is the section's kind (for the stream table:
    /// 1 the entries, 2 the names, 3 the metadata blob).
    #[error("section of kind {kind} lies outside the body")]
    SectionOutOfBounds {
        /// The kind of the section.
        kind: u32,
    },
    /// The bytes pass their checksums but break a structural rule (named).
    #[error("derived file is malformed: {0}")]
    Malformed(&'static str),
    /// A builder refuses its input: it cannot be encoded as it was given (named).
    #[error("cannot encode derived file: {0}")]
    Unencodable(&'static str),
}

/// `N` bytes of `bytes` at `at`, or `None` where they would run past the end.
fn array<const N: usize>(bytes: &[u8], at: usize) -> Option<[u8; N]> {
    bytes.get(at..at.checked_add(N)?)?.try_into().ok()
}

/// The little-endian `u16` at `at`.
pub(super) fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    array(bytes, at).map(u16::from_le_bytes)
}

/// The little-endian `u32` at `at`.
pub(super) fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    array(bytes, at).map(u32::from_le_bytes)
}

/// The little-endian `u64` at `at`.
pub(super) fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    array(bytes, at).map(u64::from_le_bytes)
}

/// The `i`-th of the `len`-byte entries of `entries`.
pub(super) fn entry(entries: &[u8], len: usize, i: usize) -> Option<&[u8]> {
    let at = i.checked_mul(len)?;
    entries.get(at..at.checked_add(len)?)
}

/// `bytes[at..at + len]`, or `None` where it would run past the end.
pub(super) fn slice(bytes: &[u8], at: u64, len: u64) -> Option<&[u8]> {
    let at = usize::try_from(at).ok()?;
    let end = at.checked_add(usize::try_from(len).ok()?)?;
    bytes.get(at..end)
}

/// A name of `len` bytes at `at` in `names`, if it lies there and is UTF-8.
pub(super) fn name_at(names: &[u8], at: u32, len: u16) -> Option<&str> {
    std::str::from_utf8(slice(names, at.into(), len.into())?).ok()
}

/// Checks the frame every derived file shares, in this order: long enough for a header and a
/// trailer, the magic, the header CRC, the version.
pub(super) fn check_header(
    bytes: &[u8],
    magic: [u8; 8],
    version: u16,
) -> Result<(), DerivedFileError> {
    if bytes.len() < DERIVED_HEADER_LEN + DERIVED_TRAILER_LEN {
        return Err(DerivedFileError::TooShort);
    }
    check_header_alone(bytes, magic, version)
}

/// [`check_header`] on a header without the body behind it (a copy of one, as a stream table's
/// segment list holds them): the first [`DERIVED_HEADER_LEN`] bytes of `bytes` only.
pub(super) fn check_header_alone(
    bytes: &[u8],
    magic: [u8; 8],
    version: u16,
) -> Result<(), DerivedFileError> {
    if bytes.len() < DERIVED_HEADER_LEN {
        return Err(DerivedFileError::TooShort);
    }
    if bytes.get(0..8) != Some(&magic[..]) {
        return Err(DerivedFileError::BadMagic);
    }
    let covered = bytes.get(..HEADER_CRC_AT).ok_or(DerivedFileError::TooShort)?;
    if u32_at(bytes, HEADER_CRC_AT) != Some(crc32fast::hash(covered)) {
        return Err(DerivedFileError::HeaderChecksum);
    }
    match u16_at(bytes, 8) {
        Some(found) if found == version => Ok(()),
        found => Err(DerivedFileError::UnsupportedVersion(found.unwrap_or(0))),
    }
}

/// Checks the body CRC: the trailer holds the CRC of every byte from the header to it.
pub(super) fn check_body_crc(bytes: &[u8]) -> Result<(), DerivedFileError> {
    let trailer_at = body_end(bytes).ok_or(DerivedFileError::TooShort)?;
    let body = bytes.get(DERIVED_HEADER_LEN..trailer_at).ok_or(DerivedFileError::TooShort)?;
    match u32_at(bytes, trailer_at) == Some(crc32fast::hash(body)) {
        true => Ok(()),
        false => Err(DerivedFileError::BodyChecksum),
    }
}

/// Where the trailer starts: the end of the body.
pub(super) fn body_end(bytes: &[u8]) -> Option<usize> {
    bytes.len().checked_sub(DERIVED_TRAILER_LEN).filter(|&end| end >= DERIVED_HEADER_LEN)
}

/// Completes a derived file whose header (with zeroed CRC) and body are in `buf`: fills in the
/// header CRC and appends the body CRC.
pub(super) fn seal(buf: &mut Vec<u8>) {
    assert!(buf.len() >= DERIVED_HEADER_LEN, "a derived file starts with its header");
    let header_crc = crc32fast::hash(&buf[..HEADER_CRC_AT]);
    buf[HEADER_CRC_AT..DERIVED_HEADER_LEN].copy_from_slice(&header_crc.to_le_bytes());
    let body_crc = crc32fast::hash(&buf[DERIVED_HEADER_LEN..]);
    buf.extend_from_slice(&body_crc.to_le_bytes());
}

/// Appends `value` little-endian.
pub(super) fn put_u16(buf: &mut Vec<u8>, value: u16) {
    buf.extend_from_slice(&value.to_le_bytes());
}

/// Appends `value` little-endian.
pub(super) fn put_u32(buf: &mut Vec<u8>, value: u32) {
    buf.extend_from_slice(&value.to_le_bytes());
}

/// Appends `value` little-endian.
pub(super) fn put_u64(buf: &mut Vec<u8>, value: u64) {
    buf.extend_from_slice(&value.to_le_bytes());
}

/// Appends `name` to `names` and returns where it starts and its length, or refuses a name that
/// is empty, longer than a `u16` or past a `u32` offset.
pub(super) fn put_name(names: &mut Vec<u8>, name: &str) -> Result<(u32, u16), DerivedFileError> {
    let len = u16::try_from(name.len())
        .ok()
        .filter(|&len| len > 0)
        .ok_or(DerivedFileError::Unencodable("a stream name is empty or too long"))?;
    let at = u32::try_from(names.len())
        .map_err(|_| DerivedFileError::Unencodable("the names exceed 4 GiB"))?;
    names.extend_from_slice(name.as_bytes());
    Ok((at, len))
}

/// Appends `data` to `blob` and returns where it starts and its length, or refuses data past a
/// `u32` offset or length.
pub(super) fn put_blob(blob: &mut Vec<u8>, data: &[u8]) -> Result<(u32, u32), DerivedFileError> {
    let too_big = DerivedFileError::Unencodable("the metadata blob exceeds 4 GiB");
    let at = u32::try_from(blob.len()).map_err(|_| too_big)?;
    let len = u32::try_from(data.len()).map_err(|_| too_big)?;
    at.checked_add(len).ok_or(too_big)?;
    blob.extend_from_slice(data);
    Ok((at, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_outside_the_bytes_are_none() {
        let bytes = [1u8, 0, 0, 0, 0, 0, 0, 0, 9];
        assert_eq!(u64_at(&bytes, 0), Some(1));
        assert_eq!(
            (u64_at(&bytes, 2), u32_at(&bytes, usize::MAX), u16_at(&bytes, 8)),
            (None, None, None)
        );
        assert_eq!(entry(&bytes, 4, 1), Some(&bytes[4..8]));
        assert_eq!(entry(&bytes, 4, 2), None);
        assert_eq!(entry(&bytes, usize::MAX, 2), None);
        assert_eq!(slice(&bytes, u64::MAX, 2), None);
        assert_eq!(name_at(b"\xffab", 0, 1), None, "not UTF-8");
        assert_eq!(name_at(b"\xffab", 1, 2), Some("ab"));
    }

    #[test]
    fn sealed_frame_passes_both_checks_and_any_flip_fails_one() {
        let mut buf = b"ANNALTST\x01\x00".to_vec();
        buf.resize(DERIVED_HEADER_LEN, 0);
        buf.extend_from_slice(b"body");
        seal(&mut buf);
        assert_eq!(check_header(&buf, *b"ANNALTST", 1), Ok(()));
        assert_eq!(check_body_crc(&buf), Ok(()));
        assert_eq!(
            check_header(&buf, *b"ANNALTST", 2),
            Err(DerivedFileError::UnsupportedVersion(1))
        );
        for i in 0..buf.len() {
            let mut bad = buf.clone();
            bad[i] ^= 0x10;
            let header = check_header(&bad, *b"ANNALTST", 1);
            assert!(header.is_err() || check_body_crc(&bad).is_err(), "flip at {i}");
        }
        assert_eq!(check_header(&buf[..67], *b"ANNALTST", 1), Err(DerivedFileError::TooShort));
    }
}
