//! Salvage and the normal open never trust a record for merely passing its checksum: one whose
//! stream version or global position is implausible is damage, reported, never a panic or an
//! allocation per missing version.

use std::{fs, path::Path};

use annal::{
    CorruptionKind, Error, ExpectedVersion, Options, Position, RecoveryMode, Store, StreamMetadata,
    StreamVersion,
};

use crate::{
    common::{event, segment_paths, small_options},
    recovery::record_offsets,
};

/// Offset of the position field in a record (`docs/format.md`, record frame).
pub const POSITION_AT: usize = 8;
/// Offset of the stream version field in a record.
pub const VERSION_AT: usize = 16;

fn salvage_options() -> Options {
    Options { recovery_mode: RecoveryMode::Salvage, ..small_options() }
}

/// Writes `value` into the u64 field at `field` of the record at `offset` of the file at
/// `path`, and seals the record again so that it passes its checksum.
fn rewrite_field(path: &Path, offset: usize, field: usize, value: u64) {
    let mut bytes = fs::read(path).unwrap();
    set_record_field(&mut bytes, offset, field, value);
    fs::write(path, bytes).unwrap();
}

/// Writes `value` into the u64 field at `field` of the record at `offset` of segment `bytes`,
/// and seals the record again so that it passes its checksum.
pub fn set_record_field(bytes: &mut [u8], offset: usize, field: usize, value: u64) {
    let len = u32::from_le_bytes(bytes[offset..offset + 4].try_into().unwrap()) as usize;
    let record = &mut bytes[offset..offset + len];
    record[field..field + 8].copy_from_slice(&value.to_le_bytes());
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&record[0..4]);
    hasher.update(&record[8..]);
    record[4..8].copy_from_slice(&hasher.finalize().to_le_bytes());
}

/// A store of `n` one-event appends, all to stream `s` (so version = position).
fn one_stream_store(dir: &Path, n: u64) {
    let store = Store::open_with(dir, small_options()).unwrap();
    for i in 0..n {
        store.append("s", ExpectedVersion::Any, [event(i)]).unwrap();
    }
    drop(store);
    crate::common::remove_derived_files(dir);
}

fn stream_versions(store: &Store, stream: &str) -> Vec<u64> {
    store
        .read_stream_forward(stream, StreamVersion::START, usize::MAX)
        .unwrap()
        .map(|e| e.unwrap().version().get())
        .collect()
}

fn all_positions(store: &Store) -> Vec<u64> {
    store
        .read_all_forward(Position::START, usize::MAX)
        .map(|e| e.unwrap().position().get())
        .collect()
}

#[test]
fn salvage_version_far_ahead_is_kept_out_of_its_stream_and_reported() {
    // Salvage took any later version of a stream and marked every version in between missing,
    // one 8-byte slot each: a record that passed its checksum with a version of 10^12 made the
    // open try to allocate 8 TB and abort. (10^7 here: 80 MB on the unfixed code, which then
    // reported the stream's last version as 10^7.) A version can be at most as far ahead as
    // there were positions for the versions in between.
    let dir = tempfile::tempdir().unwrap();
    one_stream_store(dir.path(), 20);
    let first = &segment_paths(dir.path())[0];
    let offset = record_offsets(&fs::read(first).unwrap())[5];
    rewrite_field(first, offset, VERSION_AT, 10_000_000);

    let refused = Store::open_with(dir.path(), small_options()).err();
    let kind = CorruptionKind::VersionMismatch { expected: 5, found: 10_000_000 };
    assert!(matches!(refused, Some(Error::Corruption { kind: k, .. }) if k == kind));

    let store = Store::open_with(dir.path(), salvage_options()).unwrap();
    let dropped = &store.recovery_report().salvaged;
    assert_eq!(dropped.len(), 1, "{dropped:?}");
    assert_eq!((dropped[0].offset, dropped[0].kind), (offset as u64, kind));
    let expected: Vec<u64> = (0..20).filter(|&v| v != 5).collect();
    assert_eq!(stream_versions(&store, "s"), expected, "version 5 is missing from the stream");
    assert_eq!(all_positions(&store), (0..20).collect::<Vec<_>>(), "the event stays in $all");
}

#[test]
fn strict_open_after_scavenge_refuses_a_version_beyond_its_position() {
    // After a scavenge a stream's first retained event may have any version, so a record that
    // passed its checksum with version u64::MAX became the stream's first: its next version
    // wrapped to 0, and the open blamed the stream's next, intact event (had there been none,
    // the stream would have read as never written). No version exceeds its position.
    let dir = tempfile::tempdir().unwrap();
    // No idempotency window: it would keep the events scavenging is to remove.
    let options = Options { idempotency_window_events: 0, ..small_options() };
    let store = Store::open_with(dir.path(), options).unwrap();
    for i in 0..80 {
        store.append(&format!("s-{}", i % 2), ExpectedVersion::Any, [event(i)]).unwrap();
    }
    let truncate = StreamMetadata { truncate_before: Some(10), ..StreamMetadata::default() };
    store.set_stream_metadata("s-1", ExpectedVersion::Any, truncate).unwrap();
    assert!(store.scavenge().unwrap().events_removed > 0);
    drop(store);
    crate::common::remove_derived_files(dir.path());
    // The first record of `s-1` left is its version 10.
    let (path, offset) = segment_paths(dir.path())
        .into_iter()
        .find_map(|path| {
            let bytes = fs::read(&path).unwrap();
            let at = record_offsets(&bytes).into_iter().find(|&at| {
                let version = u64::from_le_bytes(bytes[at + 16..at + 24].try_into().unwrap());
                let name = at + annal::format::RECORD_HEADER_LEN;
                &bytes[name..name + 3] == b"s-1" && version == 10
            })?;
            Some((path, at))
        })
        .unwrap();
    rewrite_field(&path, offset, VERSION_AT, u64::MAX);

    let refused = Store::open_with(dir.path(), small_options()).err();
    let found = u64::MAX;
    assert!(
        matches!(
            refused,
            Some(Error::Corruption {
                offset: o,
                kind: CorruptionKind::VersionMismatch { found: f, .. },
                ..
            }) if f == found && o == offset as u64
        ),
        "got {refused:?}"
    );
}

#[test]
fn salvage_position_far_ahead_is_damage_not_a_panic() {
    // Salvage kept any batch whose positions rose, so a record that passed its checksum with a
    // position 2^33 past its segment's base made the sparse index panic ("a segment spans
    // < 2^32 positions") and the open with it.
    let dir = tempfile::tempdir().unwrap();
    one_stream_store(dir.path(), 20);
    let first = &segment_paths(dir.path())[0];
    let offsets = record_offsets(&fs::read(first).unwrap());
    rewrite_field(first, offsets[5], POSITION_AT, 1 << 33);

    let refused = Store::open_with(dir.path(), small_options()).err();
    assert!(matches!(refused, Some(Error::Corruption { .. })), "got {refused:?}");

    let store = Store::open_with(dir.path(), salvage_options()).unwrap();
    let dropped = &store.recovery_report().salvaged;
    let kind = CorruptionKind::PositionMismatch { expected: 5, found: 1 << 33 };
    assert_eq!((dropped[0].offset, dropped[0].kind), (offsets[5] as u64, kind));
    // The moved record and the one after it (nothing proves where its append began) are lost.
    let expected: Vec<u64> = (0..20).filter(|&p| p != 5 && p != 6).collect();
    assert_eq!(all_positions(&store), expected);
}

#[test]
fn salvage_position_past_the_next_segment_is_damage_not_a_refused_open() {
    // A record that passed its checksum with a position a little ahead (within what its
    // offset allows) moved the salvaged log's head past the next segment's base, and the
    // salvaging open then refused that segment with `SegmentGap`. Every position of a segment
    // lies below the next segment's base.
    let dir = tempfile::tempdir().unwrap();
    one_stream_store(dir.path(), 150);
    let paths = segment_paths(dir.path());
    assert!(paths.len() >= 3);
    let bytes = fs::read(&paths[0]).unwrap();
    let offsets = record_offsets(&bytes);
    let next_base = offsets.len() as u64;
    let last = *offsets.last().unwrap();
    rewrite_field(&paths[0], last, POSITION_AT, next_base + 1);

    let store = Store::open_with(dir.path(), salvage_options()).unwrap();
    let dropped = &store.recovery_report().salvaged;
    let kind = CorruptionKind::PositionMismatch { expected: next_base - 1, found: next_base + 1 };
    assert_eq!(dropped.len(), 1, "{dropped:?}");
    assert_eq!((dropped[0].offset, dropped[0].kind), (last as u64, kind));
    let expected: Vec<u64> = (0..150).filter(|&p| p != next_base - 1).collect();
    assert_eq!(all_positions(&store), expected);
}

#[test]
fn salvage_of_a_scavenged_store_takes_no_slot_per_removed_version() {
    // A salvaging open marked every version below a stream's first retained event as missing,
    // one 8-byte slot each, although scavenging had removed them: a long-lived stream kept to
    // its last few events cost a slot for every event it ever had.
    let dir = tempfile::tempdir().unwrap();
    let options = Options { idempotency_window_events: 0, ..small_options() };
    let store = Store::open_with(dir.path(), options.clone()).unwrap();
    let kept = StreamMetadata { max_count: Some(1), ..StreamMetadata::default() };
    store.set_stream_metadata("long", ExpectedVersion::Any, kept).unwrap();
    for i in 0..3_000 {
        store.append("long", ExpectedVersion::Any, [event(i)]).unwrap();
    }
    store.append("other", ExpectedVersion::Any, [event(0)]).unwrap();
    assert!(store.scavenge().unwrap().events_removed > 2_000);
    drop(store);
    crate::common::remove_derived_files(dir.path());

    let normal = Store::open_read_only(dir.path(), options.clone()).unwrap();
    let salvaged = Store::open_with(dir.path(), salvage_options()).unwrap();
    assert_eq!(stream_versions(&salvaged, "long"), stream_versions(&normal, "long"));
    let (salvage_bytes, normal_bytes) =
        (salvaged.stats().index_memory_bytes, normal.stats().index_memory_bytes);
    assert!(salvage_bytes < normal_bytes + 1_000, "{salvage_bytes} against {normal_bytes}");
}
