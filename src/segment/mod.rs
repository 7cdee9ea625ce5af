//! Segment files: creating one (header, fsync, directory fsync), publishing what the writer
//! committed to it, and giving readers verified-on-decode views of its committed bytes.

mod listed;
mod set;

use crate::sync;
use std::{
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex, OnceLock, RwLock,
        atomic::{AtomicU64, Ordering},
    },
};

pub(crate) use listed::{Listed, ListedHooks};
pub(crate) use set::SegmentSet;

/// The position field of the record at `offset`, unverified, if the bytes hold a header (of
/// either layout: the position is at the same place in both).
fn peek_position(bytes: &[u8], offset: usize) -> Option<u64> {
    let field = bytes.get(offset.checked_add(8)?..offset.checked_add(16)?)?;
    let len = crate::format::record_len(&bytes[offset..])?;
    let whole = len >= RECORD_HEADER_LEN_V2 && offset.checked_add(len)? <= bytes.len();
    whole.then(|| u64::from_le_bytes(field.try_into().expect("8 bytes")))
}

use crate::{
    error::{Error, Result},
    format::{Layout, RECORD_HEADER_LEN_V2, SEGMENT_HEADER_LEN, SegmentHeader, segment_file_name},
    index::{Origin, SegmentIndex, SparseIndex, build_index},
    io::{ReadView, Storage, StorageFile},
};

/// One segment file of the log.
pub(crate) struct Segment {
    /// The format version in the header, which fixes the layout of the records.
    version: u16,
    base_position: u64,
    /// The torn-tail bound stated in the header.
    group_bytes_max: u32,
    /// The header's span: zero for a segment the writer wrote, else the positions a segment
    /// rewritten by scavenging covers.
    span: u32,
    name: String,
    path: PathBuf,
    /// The open file: from the start, or, for a segment built from the stream table's list,
    /// from its first use (every access goes through [`file`](Segment::file)).
    file: OnceLock<Box<dyn StorageFile>>,
    /// For a segment built from the stream table's segment list: how its file and index file
    /// are opened on first use, and what they must match.
    listed: Option<Listed>,
    /// Bytes readers may see: the header and every committed record. Only grows.
    committed_len: AtomicU64,
    /// One past the position of the last committed record (the base when empty).
    end_position: AtomicU64,
    /// The latest read view; replaced by a longer one when a reader needs more.
    view: Mutex<Arc<dyn ReadView>>,
    /// The same for reads of single records at random places (stream reads): mapped so that
    /// a page fault reads that page, not the megabytes of read-ahead around it.
    point_view: Mutex<Arc<dyn ReadView>>,
    /// Offsets of records published since the persisted index was built (all of them if
    /// there is none); emptied when a persisted index covering them is set.
    index: RwLock<SparseIndex>,
    /// The persisted index of the segment (or of its first part, for an active segment that
    /// was closed cleanly and reopened), once there is one.
    persisted: RwLock<Option<Arc<SegmentIndex>>>,
    /// Damaged byte ranges `[start, end)` that a salvaging open skips; empty otherwise.
    holes: Vec<(usize, usize)>,
}

impl Segment {
    /// Creates the segment that starts at `base_position`: writes its header, makes the header
    /// and the directory entry durable (when `sync`), so that no record is ever written to a
    /// segment whose header could still be lost.
    pub fn create(
        storage: &dyn Storage,
        dir: &Path,
        base_position: u64,
        group_bytes_max: u32,
        index_stride: u32,
        sync: bool,
    ) -> Result<Segment> {
        let name = segment_file_name(base_position);
        let path = dir.join(&name);
        let file = storage.create(&path).map_err(Error::io("create segment", &path))?;
        let header = SegmentHeader::current(base_position, group_bytes_max, 0);
        file.write_at(0, &header.encode()).map_err(Error::io("write segment header", &path))?;
        if sync {
            file.sync_data().map_err(Error::io("fsync segment header", &path))?;
            storage.sync_dir(dir).map_err(Error::io("fsync directory", dir))?;
        }
        let index = SparseIndex::new(base_position, index_stride);
        let len = SEGMENT_HEADER_LEN as u64;
        Ok(Segment::recovered(header, name, path, file, len, base_position, index))
    }

    /// A segment found on disk whose committed bytes and index recovery has established.
    pub fn recovered(
        header: SegmentHeader,
        name: String,
        path: PathBuf,
        file: Box<dyn StorageFile>,
        committed_len: u64,
        end_position: u64,
        index: SparseIndex,
    ) -> Segment {
        let file = OnceLock::from(file);
        Segment::build(header, name, path, file, (committed_len, end_position), index)
    }

    fn build(
        header: SegmentHeader,
        name: String,
        path: PathBuf,
        file: OnceLock<Box<dyn StorageFile>>,
        (committed_len, end_position): (u64, u64),
        index: SparseIndex,
    ) -> Segment {
        Segment {
            version: header.version,
            base_position: header.base_position,
            group_bytes_max: header.group_bytes_max,
            span: header.span,
            name,
            path,
            file,
            listed: None,
            committed_len: AtomicU64::new(committed_len),
            end_position: AtomicU64::new(end_position),
            view: Mutex::new(Arc::new(Vec::new())),
            point_view: Mutex::new(Arc::new(Vec::new())),
            index: RwLock::new(index),
            persisted: RwLock::new(None),
            holes: Vec::new(),
        }
    }

    /// A sealed segment as the stream table's list describes it: nothing of it is read until
    /// it is used. Its file, if given, is already open (and its header checked by the caller).
    pub fn listed(
        name: String,
        path: PathBuf,
        listed: Listed,
        file: Option<Box<dyn StorageFile>>,
        index_stride: u32,
    ) -> Option<Segment> {
        let header = listed.header()?;
        let b = *listed.binding();
        let index = SparseIndex::new(header.base_position, index_stride);
        let file = file.map_or_else(OnceLock::new, OnceLock::from);
        let mut segment =
            Segment::build(header, name, path, file, (b.segment_len, b.end_position), index);
        segment.listed = Some(listed);
        Some(segment)
    }

    /// Marks damaged byte ranges that readers must step over (salvage only).
    pub fn with_holes(mut self, holes: Vec<(usize, usize)>) -> Segment {
        debug_assert!(holes.windows(2).all(|w| w[0].1 <= w[1].0));
        self.holes = holes;
        self
    }

    /// Position of the segment's first record.
    pub fn base_position(&self) -> u64 {
        self.base_position
    }

    /// The torn-tail bound stated in the header.
    pub fn group_bytes_max(&self) -> u32 {
        self.group_bytes_max
    }

    /// Whether scavenging rewrote this segment (its positions may have gaps).
    pub fn is_compacted(&self) -> bool {
        self.span != 0
    }

    /// The layout of its records, from its format version.
    pub fn layout(&self) -> Layout {
        Layout::of_version(self.version)
    }

    /// The header as it is on disk.
    pub fn header(&self) -> SegmentHeader {
        let (version, base_position, group_bytes_max, span) =
            (self.version, self.base_position, self.group_bytes_max, self.span);
        SegmentHeader { version, base_position, group_bytes_max, span }
    }

    /// Full path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// File name, for errors and reports.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Bytes committed (header included).
    pub fn committed_len(&self) -> u64 {
        self.committed_len.load(Ordering::Acquire)
    }

    /// One past the last committed position.
    pub fn end_position(&self) -> u64 {
        self.end_position.load(Ordering::Acquire)
    }

    /// The file, opened if it was not yet (a listed segment's, whose header must then be the
    /// one its list entry implies; if not, every use of the segment fails with that
    /// corruption).
    pub fn file(&self) -> Result<&dyn StorageFile> {
        if let Some(file) = self.file.get() {
            return Ok(&**file);
        }
        let listed = self.listed.as_ref().expect("a segment without its file open is listed");
        let file = listed.open_file(&self.name)?;
        // Another thread may have opened it meanwhile: one of the two is kept.
        Ok(&**self.file.get_or_init(|| file))
    }

    /// Opens the file and index file of a listed segment now, if they are not yet (before its
    /// files may go, as when a scavenge replaces it). An error is the segment's corruption.
    pub fn open_now(&self) -> Result<()> {
        self.file()?;
        self.load_listed_index();
        Ok(())
    }

    /// The file of the active segment, for the writer: the active segment is always built
    /// with its file open (only sealed segments may open theirs on first use).
    pub fn active_file(&self) -> &dyn StorageFile {
        &**self.file.get().expect("the active segment's file is open from the start")
    }

    /// Makes durable records visible: notes their offsets in the index, then moves the
    /// committed length and end position. Called by the writer only, after the fsync.
    pub fn publish(&self, records: impl Iterator<Item = (u64, u32)>, len: u64, end: u64) {
        debug_assert!(len >= self.committed_len() && end >= self.end_position());
        {
            let mut index = sync::write(&self.index);
            for (position, offset) in records {
                index.note(position, offset);
            }
        }
        self.committed_len.store(len, Ordering::Release);
        self.end_position.store(end, Ordering::Release);
    }

    /// Called once the writer has moved on to the next segment.
    pub fn seal(&self) {
        sync::write(&self.index).shrink();
    }

    /// A view holding at least the first `min_len` committed bytes, for reads that go through
    /// the records in order (the kernel reads ahead of them).
    pub fn view(&self, min_len: u64) -> Result<Arc<dyn ReadView>> {
        self.cached_view(&self.view, min_len, |len| {
            self.file()?.view(len).map_err(Error::io("map segment", &self.path))
        })
    }

    /// A view as [`view`](Segment::view) gives, for reading a few records at random places
    /// (a stream's events): a page not in memory costs the read of that page only.
    pub fn point_view(&self, min_len: u64) -> Result<Arc<dyn ReadView>> {
        let map = |len| self.file()?.view_random(len).map_err(Error::io("map segment", &self.path));
        self.cached_view(&self.point_view, min_len, map)
    }

    fn cached_view(
        &self,
        slot: &Mutex<Arc<dyn ReadView>>,
        min_len: u64,
        map: impl FnOnce(u64) -> Result<Arc<dyn ReadView>>,
    ) -> Result<Arc<dyn ReadView>> {
        let mut view = sync::lock(slot);
        if (view.bytes().len() as u64) < min_len {
            let len = self.committed_len();
            debug_assert!(len >= min_len);
            *view = map(len)?;
        }
        Ok(Arc::clone(&view))
    }

    /// Offset of the first record.
    pub fn first_offset(&self) -> usize {
        self.skip_holes(SEGMENT_HEADER_LEN)
    }

    /// `offset`, or the end of the damaged range that starts there (salvage only).
    pub fn skip_holes(&self, mut offset: usize) -> usize {
        for &(start, end) in &self.holes {
            if start == offset {
                offset = end;
            }
        }
        offset
    }

    /// Offset of the record that holds exactly `position`, `None` if there is none (a gap).
    pub fn locate(&self, bytes: &[u8], position: u64) -> Option<usize> {
        let offset = self.hop_to(bytes, position)?;
        (peek_position(bytes, offset)? == position).then_some(offset)
    }

    /// Offset of the first record at or after `position`, `None` if none is in `bytes`.
    pub fn locate_ceil(&self, bytes: &[u8], position: u64) -> Option<usize> {
        let offset = self.hop_to(bytes, position)?;
        if peek_position(bytes, offset)? >= position {
            return Some(offset);
        }
        let next = self.skip_holes(offset + crate::format::record_len(&bytes[offset..])?);
        peek_position(bytes, next).map(|_| next)
    }

    /// Offset of the last record at or before `position`, `None` if there is none here.
    pub fn locate_floor(&self, bytes: &[u8], position: u64) -> Option<usize> {
        let offset = self.hop_to(bytes, position)?;
        (peek_position(bytes, offset)? <= position).then_some(offset)
    }

    /// Hops from the nearest index entry at or before `position` over record lengths. Lands
    /// on the record holding `position` if there is one, else on the last record before it,
    /// else (no record here is at or before it) on the first record. Lengths and positions are
    /// read unverified: the caller decodes and checks the record it lands on, so a hop over
    /// damaged bytes cannot go unnoticed.
    fn hop_to(&self, bytes: &[u8], position: u64) -> Option<usize> {
        let floor = self.index_floor(bytes, position);
        let mut offset = floor.map_or_else(|| self.first_offset(), |(_, offset)| offset as usize);
        loop {
            if peek_position(bytes, offset)? >= position {
                return Some(offset);
            }
            let len = crate::format::record_len(&bytes[offset..])?;
            let next = self.skip_holes(offset + len);
            match peek_position(bytes, next) {
                Some(p) if p <= position => offset = next,
                _ => return Some(offset),
            }
        }
    }

    /// The nearest indexed record at or before `position`: from the persisted index for the
    /// positions it covers, else from the in-memory one. A persisted entry that does not land
    /// on a record with its position marks that index bad and is not used again; the segment
    /// then rebuilds its index from its own bytes (once; if that fails, reads hop from the
    /// first record, slowly but right).
    fn index_floor(&self, bytes: &[u8], position: u64) -> Option<(u64, u32)> {
        for _ in 0..2 {
            let Some(persisted) = self.persisted() else { break };
            let covered = persisted.binding().end_position;
            if position >= covered {
                let recent = sync::read(&self.index).floor(position);
                return recent.or_else(|| persisted.view()?.floor(position));
            }
            let floor = persisted.view().and_then(|v| v.floor(position));
            match floor {
                Some((p, offset)) if peek_position(bytes, offset as usize) == Some(p) => {
                    return Some((p, offset));
                }
                None if persisted.view().is_some() => return None,
                _ => {
                    persisted.mark_bad();
                    let _ = self.rebuild_index();
                }
            }
        }
        sync::read(&self.index).floor(position)
    }

    /// The persisted index, unless it was found bad. A listed segment maps its index file on
    /// the first call: taken if its header is the list's copy, else rebuilt from the segment
    /// in memory (and the indexer told, to write it anew).
    pub fn persisted(&self) -> Option<Arc<SegmentIndex>> {
        self.load_listed_index();
        sync::read(&self.persisted).as_ref().filter(|p| !p.is_bad()).cloned()
    }

    fn load_listed_index(&self) {
        let Some(listed) = &self.listed else { return };
        listed.index_loaded.get_or_init(|| match listed.map_index(&self.name) {
            Some(index) => self.set_persisted(Arc::new(index)),
            None => {
                if self.rebuild_index().is_ok() {
                    listed.hooks().index_rebuilt(self.base_position);
                }
            }
        });
    }

    /// A listed segment's binding while its index file was not looked at yet.
    fn listed_unloaded(&self) -> Option<&crate::format::SegmentBinding> {
        let listed = self.listed.as_ref()?;
        listed.index_loaded.get().is_none().then(|| listed.binding())
    }

    /// What the usable persisted index covers and where it lives, without loading anything a
    /// segment would load on first use (for counts and for deciding what to index). A listed
    /// segment whose index file was not looked at yet counts as having its index file, which
    /// the list says it has: if it proves missing or stale when first used, it is rebuilt in
    /// memory then and counts as such from then on.
    pub fn indexed(&self) -> Option<(crate::format::SegmentBinding, Origin)> {
        if let Some(binding) = self.listed_unloaded() {
            return Some((*binding, Origin::File));
        }
        self.persisted().map(|p| (*p.binding(), p.origin()))
    }

    /// Sets the persisted index, which must cover every record published so far: the
    /// in-memory offsets are given back.
    pub fn set_persisted(&self, index: Arc<SegmentIndex>) {
        debug_assert_eq!(index.binding().base_position, self.base_position);
        let mut sparse = sync::write(&self.index);
        if index.binding().end_position >= self.end_position() {
            *sparse = SparseIndex::new(self.base_position, sparse.stride());
        }
        *sync::write(&self.persisted) = Some(index);
    }

    /// Builds the segment's index from its committed bytes, in memory, and uses it from now on
    /// (its links to earlier segments are unknown: stream reads search back instead).
    pub fn rebuild_index(&self) -> Result<Arc<SegmentIndex>> {
        let len = self.committed_len();
        let view = self.view(len)?;
        let bytes = &view.bytes()[..len as usize];
        let corrupt = |offset, kind| Error::Corruption { segment: self.name.clone(), offset, kind };
        let built = build_index(bytes, &self.header(), |_| None).map_err(|e| match e {
            crate::index::BuildError::Damaged { offset, kind } => corrupt(offset, kind),
            crate::index::BuildError::Encode(_) => {
                corrupt(0, crate::format::CorruptionKind::IndexMismatch)
            }
        })?;
        let index = SegmentIndex::new(Arc::new(built), Origin::Memory, self.group_bytes_max)
            .map_err(|_| corrupt(0, crate::format::CorruptionKind::IndexMismatch))?;
        let index = Arc::new(index);
        self.set_persisted(Arc::clone(&index));
        Ok(index)
    }

    /// Events the segment holds (committed records; fewer than its positions once scavenged).
    pub fn event_count(&self) -> u64 {
        let recent = sync::read(&self.index).records();
        let persisted = match self.listed_unloaded() {
            Some(binding) => binding.records,
            None => sync::read(&self.persisted).as_ref().map_or(0, |p| p.binding().records),
        };
        persisted + recent
    }

    /// Heap bytes held by this segment's index.
    pub fn index_memory_bytes(&self) -> usize {
        sync::read(&self.index).memory_bytes()
    }
}
