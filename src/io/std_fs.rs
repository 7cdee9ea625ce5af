//! The default storage: the real file system through `std::fs`.

use std::{
    any::Any,
    fs::{self, File, OpenOptions, TryLockError},
    io,
    os::unix::fs::FileExt,
    path::Path,
    sync::Arc,
};

use super::{ReadView, Storage, StorageFile, mmap::MappedView};

/// The real file system. Locks use `File::try_lock` (an advisory `flock` on Unix).
#[derive(Clone, Copy, Debug, Default)]
pub struct StdStorage;

/// The name of the lock file inside a store directory.
const LOCK_FILE: &str = "LOCK";

/// The held lock on a store directory. It unlocks explicitly when dropped: a `flock` belongs to
/// the open file description, which a process being spawned by another thread shares until it
/// execs, so merely closing our descriptor could leave the directory locked for a moment.
struct DirLock {
    file: File,
}

impl Drop for DirLock {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

impl Storage for StdStorage {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir)
    }

    fn lock_dir(&self, dir: &Path) -> io::Result<Box<dyn Any + Send + Sync>> {
        let path = dir.join(LOCK_FILE);
        let file = OpenOptions::new().create(true).truncate(false).write(true).open(path)?;
        match file.try_lock() {
            Ok(()) => Ok(Box::new(DirLock { file })),
            Err(TryLockError::WouldBlock) => Err(io::ErrorKind::WouldBlock.into()),
            Err(TryLockError::Error(e)) => Err(e),
        }
    }

    fn file_len(&self, path: &Path) -> io::Result<u64> {
        Ok(fs::metadata(path)?.len())
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(dir)? {
            if let Ok(name) = entry?.file_name().into_string() {
                names.push(name);
            }
        }
        Ok(names)
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        let file = OpenOptions::new().read(true).write(true).create_new(true).open(path)?;
        Ok(Box::new(StdFile { file }))
    }

    fn open(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        Ok(Box::new(StdFile { file }))
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
}

/// A real file.
struct StdFile {
    file: File,
}

impl StorageFile for StdFile {
    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }

    fn write_at(&self, offset: u64, buf: &[u8]) -> io::Result<()> {
        self.file.write_all_at(buf, offset)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn view(&self, len: u64) -> io::Result<Arc<dyn ReadView>> {
        if len == 0 {
            return Ok(Arc::new(Vec::new()));
        }
        let len = usize::try_from(len).map_err(|_| io::Error::other("view too large"))?;
        Ok(Arc::new(MappedView::map(&self.file, len)?))
    }

    fn view_random(&self, len: u64) -> io::Result<Arc<dyn ReadView>> {
        if len == 0 {
            return Ok(Arc::new(Vec::new()));
        }
        let len = usize::try_from(len).map_err(|_| io::Error::other("view too large"))?;
        Ok(Arc::new(MappedView::map_random(&self.file, len)?))
    }
}
