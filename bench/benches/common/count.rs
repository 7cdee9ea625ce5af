//! Counters behind the figures that are not times: fsyncs (a [`Storage`] that counts
//! `sync_data` calls, for the group size per fsync) and live heap bytes (a global allocator a
//! bench binary can install, for index memory).

use std::{
    alloc::{GlobalAlloc, Layout, System},
    io,
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicIsize, AtomicU64, Ordering},
    },
};

use annal::io::{Interpose, Interposed, ReadView, Storage, StorageFile};

/// The real file system, counting every `sync_data` of every file it opens; or, with a sync
/// latency, a disk whose `sync_data` takes exactly that long and does nothing (no `fdatasync`),
/// to measure the engine's own overhead without the real disk's drift.
#[derive(Clone, Debug, Default)]
pub struct CountingStorage {
    syncs: Arc<AtomicU64>,
    sync_latency: Option<std::time::Duration>,
}

impl CountingStorage {
    /// A storage whose count starts at zero.
    pub fn new() -> CountingStorage {
        CountingStorage::default()
    }

    /// A storage whose `sync_data` sleeps for `latency` instead of syncing.
    #[allow(dead_code, reason = "only examples/bench.rs uses it; other targets include this file")]
    pub fn with_sync_latency(latency: std::time::Duration) -> CountingStorage {
        CountingStorage { sync_latency: Some(latency), ..CountingStorage::default() }
    }

    /// The real file system with this counter around it, for [`annal::Options::storage`].
    pub fn storage(&self) -> Arc<dyn Storage> {
        Arc::new(Interposed(self.clone()))
    }

    /// `sync_data` calls so far, over all files.
    pub fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }
}

impl Interpose for CountingStorage {
    fn file(&self, _: &Path, inner: Box<dyn StorageFile>) -> Box<dyn StorageFile> {
        let syncs = Arc::clone(&self.syncs);
        Box::new(CountingFile { inner, syncs, sync_latency: self.sync_latency })
    }
}

struct CountingFile {
    inner: Box<dyn StorageFile>,
    syncs: Arc<AtomicU64>,
    sync_latency: Option<std::time::Duration>,
}

impl StorageFile for CountingFile {
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.inner.read_at(offset, buf)
    }

    fn write_at(&self, offset: u64, buf: &[u8]) -> io::Result<()> {
        self.inner.write_at(offset, buf)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.syncs.fetch_add(1, Ordering::Relaxed);
        match self.sync_latency {
            Some(latency) => {
                std::thread::sleep(latency);
                Ok(())
            }
            None => self.inner.sync_data(),
        }
    }

    fn view(&self, len: u64) -> io::Result<Arc<dyn ReadView>> {
        self.inner.view(len)
    }
}

/// The system allocator, keeping a count of live heap bytes. Install it in a binary with
/// `#[global_allocator] static ALLOC: CountingAlloc = CountingAlloc;`.
pub struct CountingAlloc;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

impl CountingAlloc {
    /// Heap bytes allocated and not yet freed, by the whole process.
    pub fn live_bytes() -> isize {
        LIVE_BYTES.load(Ordering::Relaxed)
    }
}

#[expect(unsafe_code, reason = "a global allocator is an unsafe trait; this one only counts")]
// SAFETY: every call is passed on unchanged to the system allocator, which upholds the
// `GlobalAlloc` contract; the counter has no effect on the memory handed out.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract for `alloc` is the system allocator's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: `ptr` came from this allocator, so from the system allocator, with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
        // SAFETY: as for `dealloc`; `new_size` is the caller's, checked by its contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}
