//! The storage seam: every byte the engine reads or writes goes through [`Storage`] and
//! [`StorageFile`], so tests can put a fault-injecting disk behind the same calls.
//!
//! Fault model the engine is written against: a `write_at` that returned is in the page cache
//! only; it is durable once a later `sync_data` of that file returns. Unsynced writes may be
//! lost, torn or reordered by a crash. A created, renamed or removed directory entry is durable
//! only after `sync_dir`. Any error from `write_at` or `sync_data` leaves the file's contents
//! unknown, so the writer treats it as fatal and never retries.

#[cfg(feature = "simulation")]
mod interpose;
mod mmap;
#[cfg(feature = "simulation")]
mod sim;
mod std_fs;

use std::{any::Any, io, path::Path, sync::Arc};

#[cfg(feature = "simulation")]
pub use interpose::{Interpose, Interposed};
#[cfg(feature = "simulation")]
pub use sim::SimDisk;
pub use std_fs::StdStorage;

/// A file system as the engine uses it.
pub trait Storage: Send + Sync + 'static {
    /// Creates `dir` and its parents if missing.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Takes an exclusive lock on `dir`, held until the returned guard is dropped. An error of
    /// kind [`io::ErrorKind::WouldBlock`] means another holder has it.
    fn lock_dir(&self, dir: &Path) -> io::Result<Box<dyn Any + Send + Sync>>;
    /// The names of the entries in `dir`.
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Creates a new, empty file for reading and writing; fails if it exists.
    fn create(&self, path: &Path) -> io::Result<Box<dyn StorageFile>>;
    /// Opens an existing file for reading and writing.
    fn open(&self, path: &Path) -> io::Result<Box<dyn StorageFile>>;
    /// Removes a file.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Renames a file, replacing `to` if it exists.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Makes the entries of `dir` (creations, renames, removals) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// The length of the file at `path`, without opening it where the file system allows (an
    /// open checks the segments a stream table lists by their lengths alone).
    fn file_len(&self, path: &Path) -> io::Result<u64> {
        self.open(path)?.len()
    }
}

/// An open file.
pub trait StorageFile: Send + Sync {
    /// Current length in bytes.
    fn len(&self) -> io::Result<u64>;
    /// Whether the file is empty.
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }
    /// Reads exactly `buf.len()` bytes at `offset`.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
    /// Writes all of `buf` at `offset`.
    fn write_at(&self, offset: u64, buf: &[u8]) -> io::Result<()>;
    /// Truncates or extends the file to `len` bytes.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Makes the file's data durable (`fdatasync`).
    fn sync_data(&self) -> io::Result<()>;
    /// A read-only view of the file's first `len` bytes (which must exist). Bytes written
    /// later at offsets below `len` may or may not show through; the engine never does that.
    fn view(&self, len: u64) -> io::Result<Arc<dyn ReadView>>;
    /// A view as [`view`](StorageFile::view) gives, for bytes read at random (index lookups):
    /// the implementation may tell the system not to read ahead around each page touched. By
    /// default the same as `view`.
    fn view_random(&self, len: u64) -> io::Result<Arc<dyn ReadView>> {
        self.view(len)
    }
}

/// Bytes of a file that stay valid while the view lives, even if the file is renamed or
/// removed meanwhile.
pub trait ReadView: Send + Sync {
    /// The bytes.
    fn bytes(&self) -> &[u8];
    /// Says that every byte is about to be read in order (a whole-body checksum): the
    /// implementation may start reading them all at once, ahead of the reader, even in a view
    /// made for random access. Only advice: by default nothing.
    fn prefetch(&self) {}
}

impl ReadView for Vec<u8> {
    fn bytes(&self) -> &[u8] {
        self
    }
}
