//! Snapshot files: an aggregate's serialized state at a version, in a side store next to the
//! log (`<store>/snapshots/<type>/<id>.snap`), written crash-safely through the store's
//! [`Storage`]. A snapshot is only ever a shortcut: one that is missing, damaged, of another
//! snapshot version, beyond the stream, or whose last event is not the stream's event at that
//! version is ignored, and the state is rebuilt from the events.
//!
//! `docs/format.md` ("Snapshot files") is the canonical description of these bytes.

use std::{
    io,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{SystemTime, UNIX_EPOCH},
};

use uuid::Uuid;

use crate::{Durability, Error, Result, Store, io::Storage};

/// The first eight bytes of every snapshot file.
pub const SNAPSHOT_MAGIC: [u8; 8] = *b"ANNALSNP";
/// The version of the snapshot file format (not the aggregate's snapshot version).
pub const SNAPSHOT_FILE_VERSION: u16 = 1;
/// Bytes before the aggregate type.
const FIXED_LEN: usize = 56;
/// Largest state a snapshot holds; a bigger one is not snapshotted.
pub const SNAPSHOT_STATE_BYTES_MAX: usize = 64 << 20;
/// The subdirectory of the store directory that holds the snapshots.
pub const SNAPSHOTS_DIR: &str = "snapshots";

/// A decoded snapshot, checked against its file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Snapshot {
    /// The stream version of the last event folded into the state.
    pub version: u64,
    /// The id of that event, checked against the stream before the snapshot is used.
    pub last_event_id: Uuid,
    /// The serialized state.
    pub state: Vec<u8>,
}

/// Who a snapshot belongs to: checked on read so a file can never stand in for another.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Owner<'a> {
    pub aggregate_type: &'a str,
    pub id: &'a str,
    pub snapshot_version: u32,
}

/// The bytes of a snapshot file.
pub(crate) fn encode(owner: Owner<'_>, snapshot: &Snapshot, written_us: u64) -> Vec<u8> {
    let (ty, id) = (owner.aggregate_type.as_bytes(), owner.id.as_bytes());
    let len16 = |s: &[u8]| u16::try_from(s.len()).expect("checked name").to_le_bytes();
    let mut bytes = Vec::with_capacity(FIXED_LEN + ty.len() + id.len() + snapshot.state.len() + 4);
    bytes.extend_from_slice(&SNAPSHOT_MAGIC);
    bytes.extend_from_slice(&SNAPSHOT_FILE_VERSION.to_le_bytes());
    bytes.extend_from_slice(&len16(ty));
    bytes.extend_from_slice(&owner.snapshot_version.to_le_bytes());
    bytes.extend_from_slice(&snapshot.version.to_le_bytes());
    bytes.extend_from_slice(snapshot.last_event_id.as_bytes());
    bytes.extend_from_slice(&written_us.to_le_bytes());
    bytes.extend_from_slice(&len16(id));
    bytes.extend_from_slice(&[0; 2]);
    let state_len = u32::try_from(snapshot.state.len()).expect("checked state size");
    bytes.extend_from_slice(&state_len.to_le_bytes());
    debug_assert_eq!(bytes.len(), FIXED_LEN);
    bytes.extend_from_slice(ty);
    bytes.extend_from_slice(id);
    bytes.extend_from_slice(&snapshot.state);
    let crc = crc32fast::hash(&bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());
    bytes
}

/// The snapshot in `bytes`, after every check; otherwise why it must be ignored.
pub(crate) fn decode(owner: Owner<'_>, bytes: &[u8]) -> Result<Snapshot, &'static str> {
    if bytes.len() < FIXED_LEN + 4 {
        return Err("the file is shorter than a snapshot");
    }
    if bytes[..8] != SNAPSHOT_MAGIC {
        return Err("the file does not start with the snapshot magic");
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    if crc32fast::hash(body).to_le_bytes() != crc {
        return Err("checksum mismatch");
    }
    let u16_at = |at: usize| u16::from_le_bytes(bytes[at..at + 2].try_into().expect("2 bytes"));
    let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    if u16_at(8) != SNAPSHOT_FILE_VERSION {
        return Err("unsupported snapshot file version");
    }
    let (ty_len, id_len) = (usize::from(u16_at(10)), usize::from(u16_at(48)));
    let state_len = u32_at(52) as usize;
    if bytes[50..52] != [0; 2] || FIXED_LEN + ty_len + id_len + state_len != body.len() {
        return Err("the header does not describe the file");
    }
    let (ty, rest) = body[FIXED_LEN..].split_at(ty_len);
    let (id, state) = rest.split_at(id_len);
    if ty != owner.aggregate_type.as_bytes() || id != owner.id.as_bytes() {
        return Err("the file belongs to another aggregate");
    }
    if u32_at(12) != owner.snapshot_version {
        return Err("the snapshot version is not the aggregate's");
    }
    let last_event_id = Uuid::from_bytes(bytes[24..40].try_into().expect("16 bytes"));
    Ok(Snapshot { version: u64_at(16), last_event_id, state: state.to_vec() })
}

/// The snapshot files of one aggregate type in one store.
pub(crate) struct SnapshotFiles {
    storage: Arc<dyn Storage>,
    /// `<store>/snapshots/<type>`.
    dir: PathBuf,
    sync: bool,
    /// The directory exists (durably, when `sync`).
    ready: AtomicBool,
}

impl SnapshotFiles {
    /// The snapshot files of `aggregate_type` in `store`.
    pub fn new(store: &Store, aggregate_type: &str) -> SnapshotFiles {
        SnapshotFiles {
            storage: Arc::clone(&store.options().storage),
            dir: store.dir().join(SNAPSHOTS_DIR).join(aggregate_type),
            sync: store.options().durability == Durability::Fsync,
            ready: AtomicBool::new(false),
        }
    }

    fn path(&self, id: &str, suffix: &str) -> PathBuf {
        self.dir.join(format!("{id}.snap{suffix}"))
    }

    /// The file of `id`'s snapshot: `None` if there is none. An I/O error is returned as is;
    /// the caller ignores it like any unusable snapshot.
    pub fn read(&self, id: &str) -> io::Result<Option<Vec<u8>>> {
        let file = match self.storage.open(&self.path(id, "")) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let len = file.len()?;
        if len > (SNAPSHOT_STATE_BYTES_MAX + FIXED_LEN + 1024) as u64 {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "snapshot file too long"));
        }
        let mut bytes = vec![0; len as usize];
        file.read_at(0, &mut bytes)?;
        Ok(Some(bytes))
    }

    /// Replaces `id`'s snapshot file with `bytes`. A crash at any step leaves the old file or
    /// the new one, whole: temporary file, `fdatasync`, rename, directory `fsync` (the syncs
    /// only under [`Durability::Fsync`]).
    pub fn write(&self, id: &str, bytes: &[u8]) -> Result<()> {
        self.ensure_dir()?;
        let (tmp, path) = (self.path(id, ".tmp"), self.path(id, ""));
        match self.storage.remove(&tmp) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(Error::Io { op: "remove snapshot temporary", path: tmp, source: e });
            }
            _ => {}
        }
        let file = self.storage.create(&tmp).map_err(Error::io("create snapshot", &tmp))?;
        file.write_at(0, bytes).map_err(Error::io("write snapshot", &tmp))?;
        if self.sync {
            file.sync_data().map_err(Error::io("fsync snapshot", &tmp))?;
        }
        drop(file);
        self.storage.rename(&tmp, &path).map_err(Error::io("rename snapshot", &path))?;
        self.sync_dir(&self.dir)
    }

    fn ensure_dir(&self) -> Result<()> {
        if self.ready.load(Ordering::Acquire) {
            return Ok(());
        }
        self.storage.create_dir_all(&self.dir).map_err(Error::io("create directory", &self.dir))?;
        // The type's directory into `snapshots/`, and `snapshots/` into the store directory.
        let snapshots = self.dir.parent().expect("a type directory has a parent");
        self.sync_dir(snapshots)?;
        self.sync_dir(snapshots.parent().expect("the store directory"))?;
        self.ready.store(true, Ordering::Release);
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> Result<()> {
        if self.sync {
            self.storage.sync_dir(dir).map_err(Error::io("fsync directory", dir))?;
        }
        Ok(())
    }
}

/// Microseconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_round_trips_and_every_damage_is_refused() {
        let owner = Owner { aggregate_type: "account", id: "a-1", snapshot_version: 3 };
        let snapshot = Snapshot { version: 41, last_event_id: Uuid::new_v4(), state: vec![7; 9] };
        let bytes = encode(owner, &snapshot, 5);
        assert_eq!(bytes.len(), FIXED_LEN + 7 + 3 + 9 + 4);
        assert_eq!(decode(owner, &bytes), Ok(snapshot));
        assert!(decode(Owner { id: "a-2", ..owner }, &bytes).is_err());
        assert!(decode(Owner { snapshot_version: 4, ..owner }, &bytes).is_err());
        assert!(decode(owner, &bytes[..bytes.len() - 1]).is_err());
        for at in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[at] ^= 0x10;
            assert!(decode(owner, &bad).is_err(), "flip at {at} passed");
        }
    }
}
