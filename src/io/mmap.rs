//! Memory-mapped read views of segment files: the one place in the crate with `unsafe`.

#![expect(unsafe_code, reason = "memory-mapping a file is unsafe by nature")]

use std::{fs::File, io};

use memmap2::{Mmap, MmapOptions};

use super::ReadView;

/// A read-only mapping of a file's first bytes.
pub(super) struct MappedView {
    map: Mmap,
}

impl MappedView {
    /// Maps the first `len` bytes of `file`, which has at least that many.
    pub(super) fn map(file: &File, len: usize) -> io::Result<MappedView> {
        // SAFETY: the mapping is read-only and covers only bytes the file already holds. The
        // engine never truncates, shrinks or rewrites a byte of a segment below the length it
        // has published to readers (recovery truncates before any view exists, and scavenging
        // replaces files by rename, which leaves this mapping's pages intact). Another process
        // changing the file behind our back would change what we read, but every record is
        // checksummed on decode, so it could not be mistaken for valid data unnoticed.
        let map = unsafe { MmapOptions::new().len(len).map(file)? };
        Ok(MappedView { map })
    }

    /// Maps as [`map`](MappedView::map) does, for reads at random places: the kernel is told
    /// not to read ahead (a cold binary search in an index file would otherwise pull in
    /// megabytes around every page it touches). The advice is only advice: if it fails, the
    /// mapping works as any other.
    pub(super) fn map_random(file: &File, len: usize) -> io::Result<MappedView> {
        let view = MappedView::map(file, len)?;
        #[cfg(unix)]
        let _ = view.map.advise(memmap2::Advice::Random);
        Ok(view)
    }
}

impl ReadView for MappedView {
    fn bytes(&self) -> &[u8] {
        &self.map
    }

    /// Asks the kernel to read the whole mapping now, in large requests: a checksum over a
    /// mapping advised for random access would otherwise fault it in one page at a time.
    fn prefetch(&self) {
        #[cfg(unix)]
        let _ = self.map.advise(memmap2::Advice::WillNeed);
    }
}
