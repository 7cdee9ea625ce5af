//! The real file system with a test's hooks around it: [`Interposed`] runs an [`Interpose`]'s
//! `before` ahead of every call that names a path, and lets it wrap every file opened or
//! created, so that a test or a benchmark that counts, records or fails calls writes only
//! that, not a pass-through for every method of [`Storage`]. Built with the crate feature
//! `simulation`, like [`SimDisk`](super::SimDisk).

use std::{any::Any, io, path::Path};

use super::{StdStorage, Storage, StorageFile};

/// What runs around the real file system's calls in [`Interposed`]. Both hooks do nothing by
/// default.
pub trait Interpose: Send + Sync + 'static {
    /// Runs before the [`Storage`] call named `call` (its method name) on `path`; an error
    /// fails the call without running it.
    fn before(&self, call: &'static str, path: &Path) -> io::Result<()> {
        let _ = (call, path);
        Ok(())
    }

    /// What the caller gets for `file`, just opened or created at `path`.
    fn file(&self, path: &Path, file: Box<dyn StorageFile>) -> Box<dyn StorageFile> {
        let _ = path;
        file
    }
}

/// [`StdStorage`] with `I` around every call.
#[derive(Clone, Debug, Default)]
pub struct Interposed<I>(pub I);

impl<I: Interpose> Storage for Interposed<I> {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.0.before("create_dir_all", dir)?;
        StdStorage.create_dir_all(dir)
    }

    fn lock_dir(&self, dir: &Path) -> io::Result<Box<dyn Any + Send + Sync>> {
        self.0.before("lock_dir", dir)?;
        StdStorage.lock_dir(dir)
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.0.before("list_dir", dir)?;
        StdStorage.list_dir(dir)
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        self.0.before("create", path)?;
        StdStorage.create(path).map(|file| self.0.file(path, file))
    }

    fn open(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        self.0.before("open", path)?;
        StdStorage.open(path).map(|file| self.0.file(path, file))
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        self.0.before("remove", path)?;
        StdStorage.remove(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.0.before("rename", from)?;
        StdStorage.rename(from, to)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.0.before("sync_dir", dir)?;
        StdStorage.sync_dir(dir)
    }

    fn file_len(&self, path: &Path) -> io::Result<u64> {
        self.0.before("file_len", path)?;
        StdStorage.file_len(path)
    }
}
