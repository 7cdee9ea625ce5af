//! The checkpoint file of a persistent subscription: its bytes, and how it is replaced without a
//! moment where a crash could leave it torn or missing (temporary file, fsync, rename, directory
//! fsync), all through the store's [`Storage`].
//!
//! `docs/format.md` ("Checkpoint files") is the canonical description of these bytes.

use std::{
    io,
    path::{Path, PathBuf},
    time::{SystemTime, UNIX_EPOCH},
};

use crate::{
    error::{Error, Result},
    io::Storage,
};

/// The first eight bytes of every checkpoint file.
pub(crate) const CHECKPOINT_MAGIC: [u8; 8] = *b"ANNALCKP";
/// The version of the checkpoint file format (independent of the segment format's version).
pub(crate) const CHECKPOINT_VERSION: u16 = 1;
/// Bytes before the name.
const FIXED_LEN: usize = 32;
/// The subdirectory of the store directory that holds the checkpoint files.
pub(crate) const SUBSCRIPTIONS_DIR: &str = "subscriptions";
/// Longest subscription name, in bytes.
pub(crate) const NAME_BYTES_MAX: usize = crate::file_name::FILE_NAME_BYTES_MAX;
/// The suffix of a checkpoint file's name, after the subscription's name.
const FILE_SUFFIX: &str = ".ckpt";
/// The suffix of the temporary file a checkpoint is written to before it replaces the file.
const TMP_SUFFIX: &str = ".ckpt.tmp";

// Every file name a subscription name becomes fits a file system's, and the name fits its
// 16-bit length field in the file.
const _: () =
    assert!(NAME_BYTES_MAX + TMP_SUFFIX.len() <= crate::file_name::FILE_NAME_FIELD_BYTES_MAX);
const _: () = assert!(FILE_SUFFIX.len() <= TMP_SUFFIX.len() && NAME_BYTES_MAX <= u16::MAX as usize);

/// Checks a subscription name: 1..=100 bytes of ASCII letters, digits, `-`, `_` and `.`, not
/// starting with `.`. The name is part of a file name, so nothing else is allowed.
pub(crate) fn validate_name(name: &str) -> Result<()> {
    match crate::file_name::file_name_problem(name) {
        None => Ok(()),
        Some(reason) => Err(Error::InvalidSubscriptionName { name: name.to_owned(), reason }),
    }
}

/// Where the checkpoint files of the store in `dir` live.
pub(crate) fn subscriptions_dir(dir: &Path) -> PathBuf {
    dir.join(SUBSCRIPTIONS_DIR)
}

fn file_path(dir: &Path, name: &str) -> PathBuf {
    subscriptions_dir(dir).join(format!("{name}{FILE_SUFFIX}"))
}

fn tmp_path(dir: &Path, name: &str) -> PathBuf {
    subscriptions_dir(dir).join(format!("{name}{TMP_SUFFIX}"))
}

/// The bytes of the checkpoint file of subscription `name` at `position`.
pub(crate) fn encode(name: &str, position: u64, written_us: u64) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(FIXED_LEN + name.len() + 4);
    bytes.extend_from_slice(&CHECKPOINT_MAGIC);
    bytes.extend_from_slice(&CHECKPOINT_VERSION.to_le_bytes());
    bytes.extend_from_slice(&u16::try_from(name.len()).expect("checked name").to_le_bytes());
    bytes.extend_from_slice(&[0; 4]);
    bytes.extend_from_slice(&position.to_le_bytes());
    bytes.extend_from_slice(&written_us.to_le_bytes());
    bytes.extend_from_slice(name.as_bytes());
    let crc = crc32fast::hash(&bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());
    bytes
}

/// The position in the checkpoint file `bytes` of subscription `name`, after every check.
pub(crate) fn decode(name: &str, bytes: &[u8]) -> Result<u64> {
    let bad = |reason| Err(Error::BadCheckpoint { name: name.to_owned(), reason });
    if bytes.len() < FIXED_LEN + 4 {
        return bad("the file is shorter than a checkpoint");
    }
    if bytes[..8] != CHECKPOINT_MAGIC {
        return bad("the file does not start with the checkpoint magic");
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    if crc32fast::hash(body).to_le_bytes() != crc {
        return bad("checksum mismatch");
    }
    let u16_at = |at: usize| u16::from_le_bytes(bytes[at..at + 2].try_into().expect("2 bytes"));
    let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    if u16_at(8) != CHECKPOINT_VERSION {
        return bad("unsupported checkpoint version");
    }
    if bytes[12..16] != [0; 4] || usize::from(u16_at(10)) != body.len() - FIXED_LEN {
        return bad("the header does not describe the file");
    }
    if &body[FIXED_LEN..] != name.as_bytes() {
        return bad("the file belongs to another subscription");
    }
    Ok(u64_at(16))
}

/// Reads the checkpoint of subscription `name`; `None` if it has none.
pub(crate) fn read(storage: &dyn Storage, dir: &Path, name: &str) -> Result<Option<u64>> {
    let path = file_path(dir, name);
    let file = match storage.open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::Io { op: "open checkpoint", path, source: e }),
    };
    let len = file.len().map_err(Error::io("stat checkpoint", &path))?;
    if len > (FIXED_LEN + NAME_BYTES_MAX + 4) as u64 {
        return Err(Error::BadCheckpoint { name: name.to_owned(), reason: "the file is too long" });
    }
    let mut bytes = vec![0; len as usize];
    file.read_at(0, &mut bytes).map_err(Error::io("read checkpoint", &path))?;
    decode(name, &bytes).map(Some)
}

/// Makes the subscriptions directory exist, durably (when `sync`).
pub(crate) fn ensure_dir(storage: &dyn Storage, dir: &Path, sync: bool) -> Result<()> {
    let subs = subscriptions_dir(dir);
    storage.create_dir_all(&subs).map_err(Error::io("create directory", &subs))?;
    if sync {
        storage.sync_dir(dir).map_err(Error::io("fsync directory", dir))?;
    }
    Ok(())
}

/// Replaces the checkpoint of `name` with `position`. A crash at any step leaves either the old
/// file or the new one, whole: the new bytes go to a fresh temporary file, which is synced
/// before it is renamed over the old one, and the rename is made durable by syncing the
/// directory. A failure leaves the old file in place, so the next write simply tries again.
pub(crate) fn write(
    storage: &dyn Storage,
    dir: &Path,
    name: &str,
    position: u64,
    sync: bool,
) -> Result<()> {
    let (tmp, path) = (tmp_path(dir, name), file_path(dir, name));
    match storage.remove(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(Error::Io { op: "remove checkpoint temporary", path: tmp, source: e });
        }
    }
    let now_us = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64);
    let file = storage.create(&tmp).map_err(Error::io("create checkpoint", &tmp))?;
    file.write_at(0, &encode(name, position, now_us))
        .map_err(Error::io("write checkpoint", &tmp))?;
    if sync {
        file.sync_data().map_err(Error::io("fsync checkpoint", &tmp))?;
    }
    drop(file);
    storage.rename(&tmp, &path).map_err(Error::io("rename checkpoint", &path))?;
    if sync {
        let subs = subscriptions_dir(dir);
        storage.sync_dir(&subs).map_err(Error::io("fsync directory", &subs))?;
    }
    Ok(())
}

/// Removes the checkpoint of `name`; whether there was one.
pub(crate) fn remove(storage: &dyn Storage, dir: &Path, name: &str, sync: bool) -> Result<bool> {
    let path = file_path(dir, name);
    match storage.remove(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(Error::Io { op: "remove checkpoint", path, source: e }),
    }
    if sync {
        let subs = subscriptions_dir(dir);
        storage.sync_dir(&subs).map_err(Error::io("fsync directory", &subs))?;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_round_trips_and_every_damage_is_refused() {
        let bytes = encode("billing", 12_345, 7);
        assert_eq!(bytes.len(), FIXED_LEN + 7 + 4);
        assert_eq!(decode("billing", &bytes).unwrap(), 12_345);
        assert!(decode("other", &bytes).is_err());
        assert!(decode("billing", &bytes[..bytes.len() - 1]).is_err());
        for at in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[at] ^= 0x10;
            assert!(decode("billing", &bad).is_err(), "flip at {at} passed");
        }
    }

    #[test]
    fn names_allow_only_file_name_safe_characters() {
        assert!(validate_name("billing-v2_eu.1").is_ok());
        for bad in ["", ".hidden", "a/b", "a b", "é", &"x".repeat(101)] {
            assert!(validate_name(bad).is_err(), "{bad:?} accepted");
        }
    }
}
