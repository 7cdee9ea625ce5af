//! A sealed segment known from the stream table's segment list: an open builds it from the
//! list's entry without reading anything of it, and its file and index file are opened on
//! first use, each checked against the entry then (see `Segment::file`, `Segment::persisted`).

use std::{
    path::{Path, PathBuf},
    sync::{Arc, OnceLock},
};

use crate::{
    error::{Error, Result},
    format::{CorruptionKind, ListedSegment, SEGMENT_HEADER_LEN, SegmentBinding, SegmentHeader},
    index::{Origin, SegmentIndex, files},
    io::{Storage, StorageFile},
};

/// What a listed segment needs to open its files on first use.
pub(crate) struct Listed {
    storage: Arc<dyn Storage>,
    dir: PathBuf,
    entry: ListedSegment,
    /// The entry's index header, parsed (it passed the table's checks).
    binding: SegmentBinding,
    hooks: Arc<ListedHooks>,
    /// Set once the index file was looked at: taken, or found wanting and rebuilt.
    pub(super) index_loaded: OnceLock<()>,
}

/// What the segments opened from one list share: whom to tell that a segment's index file was
/// found wanting and rebuilt in memory (the store's indexer, which writes it anew; nobody in a
/// read-only store).
#[derive(Default)]
pub(crate) struct ListedHooks {
    index_rebuilt: OnceLock<Box<dyn Fn(u64) + Send + Sync>>,
}

impl ListedHooks {
    /// Calls `notify` with a segment's base position whenever one of them rebuilds its index.
    pub fn on_index_rebuilt(&self, notify: impl Fn(u64) + Send + Sync + 'static) {
        let _ = self.index_rebuilt.set(Box::new(notify));
    }

    pub(super) fn index_rebuilt(&self, base: u64) {
        if let Some(notify) = self.index_rebuilt.get() {
            notify(base);
        }
    }
}

impl Listed {
    /// The lazy half of the segment `entry` lists in `dir`; `None` if the entry does not parse
    /// (a table that passed its body check never has one).
    pub fn new(
        storage: Arc<dyn Storage>,
        dir: &Path,
        entry: ListedSegment,
        hooks: Arc<ListedHooks>,
    ) -> Option<Listed> {
        let binding = entry.binding()?;
        let dir = dir.to_path_buf();
        Some(Listed { storage, dir, entry, binding, hooks, index_loaded: OnceLock::new() })
    }

    /// What the entry's index header binds.
    pub fn binding(&self) -> &SegmentBinding {
        &self.binding
    }

    /// The segment header the entry implies.
    pub fn header(&self) -> Option<SegmentHeader> {
        self.entry.segment_header()
    }

    pub(super) fn hooks(&self) -> &ListedHooks {
        &self.hooks
    }

    /// Opens the segment file `name` and checks that its header is byte for byte the one the
    /// entry implies (whose CRC the entry binds): a header that differs was changed from
    /// outside without changing the file's length, and is corruption of that segment.
    pub fn open_file(&self, name: &str) -> Result<Box<dyn StorageFile>> {
        let path = self.dir.join(name);
        let file = self.storage.open(&path).map_err(Error::io("open segment", &path))?;
        let mut found = [0u8; SEGMENT_HEADER_LEN];
        file.read_at(0, &mut found).map_err(Error::io("read segment header", &path))?;
        let expected = self.header().ok_or(CorruptionKind::HeaderFields);
        let kind = match (expected, SegmentHeader::decode(&found)) {
            (Ok(expected), _) if expected.encode() == found => return Ok(file),
            (_, Err(crate::format::HeaderError::Corrupt(kind))) => kind,
            (Ok(expected), Ok(h)) if h.base_position != expected.base_position => {
                CorruptionKind::SegmentGap {
                    expected: expected.base_position,
                    found: h.base_position,
                }
            }
            _ => CorruptionKind::HeaderFields,
        };
        Err(Error::Corruption { segment: name.to_owned(), offset: 0, kind })
    }

    /// The segment's index file (of segment `name`), if its header is the entry's copy byte for
    /// byte; `None` if it is missing, damaged, or of another generation of the segment.
    pub fn map_index(&self, name: &str) -> Option<SegmentIndex> {
        let index_name = files::index_file_name(name);
        let view = files::map(&*self.storage, &self.dir, &index_name).ok()??;
        let same =
            view.bytes().get(..self.entry.index_header.len()) == Some(&self.entry.index_header);
        let index = SegmentIndex::new(view, Origin::File, self.entry.group_bytes_max);
        index.ok().filter(|_| same)
    }
}
