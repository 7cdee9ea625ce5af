//! Opening from the stream table's segment list (issue #13, an open whose cost does not grow
//! with the log): a writable open of a store whose table lists its segments opens none of them
//! but the last listed one and reads no index file; the others are opened, and checked against
//! the list, when first used. A segment changed from outside with the same length is found by
//! the read that meets it and by `verify`; a table of version 1, without a list, still opens.

use std::{
    io,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use annal::{
    Error, Options, Position, Store,
    io::{Interpose, Interposed},
};

use crate::{
    common::{open, segment_paths},
    persisted::{append_rounds, assert_same_reads, options, reads},
};

/// The real file system, noting the name of every file opened.
#[derive(Clone, Default)]
struct OpenLog {
    opened: Arc<Mutex<Vec<String>>>,
}

impl OpenLog {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.opened.lock().unwrap())
    }
}

impl Interpose for OpenLog {
    fn before(&self, call: &'static str, path: &Path) -> io::Result<()> {
        if call == "open" {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            self.opened.lock().unwrap().push(name);
        }
        Ok(())
    }
}

/// A cleanly closed store of many segments; returns what a read-only open (which reads every
/// segment's header and index file) reads of it.
fn build(dir: &Path) -> Vec<String> {
    let store = open(dir, options());
    append_rounds(&store, 8, 14, 0);
    store.close();
    drop(store);
    let store = Store::open_read_only(dir, options()).unwrap();
    reads(&store)
}

fn name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

#[test]
fn listed_open_opens_only_the_last_listed_segment_and_no_index_file() {
    let dir = tempfile::tempdir().unwrap();
    let reference = build(dir.path());
    let segments: Vec<PathBuf> = segment_paths(dir.path());
    assert!(segments.len() > 8, "too few segments to say much");
    let log = OpenLog::default();
    let store = Store::open_with(
        dir.path(),
        Options { storage: Arc::new(Interposed(log.clone())), ..options() },
    )
    .unwrap();
    let opened = log.take();
    let last = name(segments.last().unwrap());
    let report = store.recovery_report().clone();
    assert_eq!((report.segments_scanned, report.rebuilt.len()), (0, 0), "{report:?}");
    assert_eq!(report.segments, segments.len());
    for file in &opened {
        // The tables (the background indexer may look at `streams.tbl` too) and the last
        // listed segment, which becomes the active one.
        let expected = file.ends_with(".tbl") || *file == last;
        assert!(expected, "the open opened {file}: {opened:?}");
    }
    assert!(opened.contains(&last), "{opened:?}");
    assert_eq!(store.stats().segments_with_index_file, segments.len());
    assert_same_reads(&reads(&store), &reference, "opened from the list");
    // The reads used every segment, each checked against the list on first use.
    let opened = log.take();
    for segment in &segments[..segments.len() - 1] {
        let seg = name(segment);
        assert!(opened.contains(&seg), "{seg} not opened by the reads: {opened:?}");
    }
    assert_eq!(store.stats().indexes_rebuilt_in_memory, 0);
    assert!(store.verify().unwrap().is_clean());
}

/// Rewrites the header of segment `path` with another group bound, a valid header (its CRC
/// recomputed) of the same length as before.
fn rewrite_header(path: &Path, flip_only: bool) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[12] ^= 0x40;
    if !flip_only {
        let crc = crc32fast::hash(&bytes[..28]);
        bytes[28..32].copy_from_slice(&crc.to_le_bytes());
    }
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn listed_segment_changed_from_outside_with_the_same_length_fails_the_read_that_meets_it() {
    for flip_only in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        build(dir.path());
        let segments = segment_paths(dir.path());
        let victim = &segments[segments.len() / 2];
        rewrite_header(victim, flip_only);
        let store = open(dir.path(), options());
        assert_eq!(store.recovery_report().segments_scanned, 0, "the open reads no header");
        let found = store.read_all_forward(Position::START, usize::MAX).find_map(Result::err);
        match found {
            Some(Error::Corruption { segment, offset: 0, .. }) => {
                assert_eq!(segment, name(victim));
            }
            other => panic!("flip_only {flip_only}: the read found {other:?}"),
        }
        let verified = store.verify().unwrap();
        let named = verified.problems.iter().any(|p| p.segment == name(victim));
        assert!(named, "verify did not name it: {verified:?}");
    }
}

/// Rewrites the stream table `path` as version 1 wrote it: the same streams, no segment list.
fn as_version_1(path: &Path) {
    let bytes = std::fs::read(path).unwrap();
    let le = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
    let offsets_at = 64 + le(48) as usize * 48;
    let end = le(offsets_at + 16) as usize;
    let mut v1 = bytes[..end].to_vec();
    v1[8..10].copy_from_slice(&1u16.to_le_bytes());
    v1[56..60].copy_from_slice(&0u32.to_le_bytes());
    let crc = crc32fast::hash(&v1[..60]);
    v1[60..64].copy_from_slice(&crc.to_le_bytes());
    let crc = crc32fast::hash(&v1[64..]);
    v1.extend_from_slice(&crc.to_le_bytes());
    std::fs::write(path, v1).unwrap();
}

#[test]
fn listed_version_1_tables_open_the_old_way_and_are_rewritten_with_a_list() {
    let dir = tempfile::tempdir().unwrap();
    let reference = build(dir.path());
    let tables = ["streams.tbl", "streams.close.tbl"].map(|t| dir.path().join(t));
    for table in &tables {
        as_version_1(table);
    }
    let log = OpenLog::default();
    let with_log = || Options { storage: Arc::new(Interposed(log.clone())), ..options() };
    let store = Store::open_with(dir.path(), with_log()).unwrap();
    let report = store.recovery_report().clone();
    assert_eq!((report.segments_scanned, report.rebuilt.len()), (0, 0), "{report:?}");
    let opened = log.take();
    let segments = segment_paths(dir.path());
    for segment in &segments {
        assert!(opened.contains(&name(segment)), "a v1 table lists nothing: {opened:?}");
    }
    assert_same_reads(&reads(&store), &reference, "version 1 tables");
    store.flush_index_files();
    store.close();
    drop(store);
    for table in &tables {
        let version = std::fs::read(table).unwrap()[8];
        assert_eq!(version, 2, "{} not rewritten with a list", table.display());
    }
    log.take();
    let store = Store::open_with(dir.path(), with_log()).unwrap();
    let opened = log.take();
    let idx = opened.iter().filter(|f| f.ends_with(".idx")).count();
    assert_eq!(idx, 0, "the upgraded table lists the segments: {opened:?}");
    assert_same_reads(&reads(&store), &reference, "after the upgrade");
}
