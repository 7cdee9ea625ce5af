//! Format 3: groups are told apart by their sequence number, never by the wall clock. Recovery
//! with a clock that repeats and goes backwards, the sequence across reopens and segments, the
//! sequence's end, the metadata width, and stores of format 1 and 2 that grow a format-3 segment.

use std::{
    fs,
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use annal::{
    Clock, CorruptionKind, Error, ExpectedVersion, Limit, NewEvent, Options, Position, Store,
    format::{FORMAT_VERSION, GROUP_SEQUENCE_MAX, METADATA_BYTES_MAX, SEGMENT_HEADER_LEN},
};

use crate::{
    common::{event, open, segment_paths, small_options},
    fuzz_checks::split_files,
    recovery::record_offsets,
};

/// A clock that reads out `values` in turn and then repeats the last one forever.
struct ScriptedClock {
    values: Vec<u64>,
    next: AtomicUsize,
}

impl Clock for ScriptedClock {
    fn now_us(&self) -> u64 {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        self.values[i.min(self.values.len() - 1)]
    }
}

/// Options whose clock goes backwards after the first two groups and then stands still.
fn skewed_options() -> Options {
    let values = vec![5_000_000, 5_000_001, 4_000_000];
    Options {
        clock: Arc::new(ScriptedClock { values, next: AtomicUsize::new(0) }),
        ..small_options()
    }
}

fn only_segment(dir: &Path) -> std::path::PathBuf {
    dir.join(format!("{:020}.seg", 0))
}

/// Offsets and lengths of the records of an undamaged segment file.
fn records(segment: &[u8]) -> Vec<(usize, usize)> {
    let len = |at: usize| u32::from_le_bytes(segment[at..at + 4].try_into().unwrap()) as usize;
    record_offsets(segment).into_iter().map(|at| (at, len(at))).collect()
}

fn sequence_at(segment: &[u8], at: usize) -> u64 {
    let mut le = [0u8; 8];
    le[..6].copy_from_slice(&segment[at + 48..at + 54]);
    u64::from_le_bytes(le)
}

/// Five one-event groups in one segment under a clock that goes backwards and then repeats:
/// groups 2, 3 and 4 all carry the same commit timestamp.
fn five_skewed_groups(dir: &Path) -> Vec<(usize, usize)> {
    let store = open(dir, skewed_options());
    for n in 0..5 {
        store.append("s", ExpectedVersion::Any, [event(n)]).unwrap();
    }
    let timestamps: Vec<u64> =
        store.read_all_forward(Position::START, 10).map(|e| e.unwrap().timestamp_us()).collect();
    assert_eq!(timestamps, [5_000_000, 5_000_001, 4_000_000, 4_000_000, 4_000_000]);
    store.close();
    crate::common::remove_derived_files(dir);
    let bytes = fs::read(only_segment(dir)).unwrap();
    let found = records(&bytes);
    let sequences: Vec<u64> = found.iter().map(|&(at, _)| sequence_at(&bytes, at)).collect();
    assert_eq!(sequences, [0, 1, 2, 3, 4], "one sequence per group, dense from 0");
    found
}

fn flip_last_byte(path: &Path, (at, len): (usize, usize)) {
    let mut bytes = fs::read(path).unwrap();
    bytes[at + len - 1] ^= 0x10;
    fs::write(path, bytes).unwrap();
}

#[test]
fn recovery_damage_before_later_groups_with_a_repeating_clock_is_corruption() {
    // Recovery used to tell a torn last group from damage followed by acknowledged groups by
    // counting distinct commit timestamps after the damage. The writer took them from the wall
    // clock, which can repeat or step back: groups 2, 3 and 4 here share one timestamp, so
    // damage in group 2 looked like a torn tail and the acknowledged groups 2..=4 were cut.
    let dir = tempfile::tempdir().unwrap();
    let found = five_skewed_groups(dir.path());
    let path = only_segment(dir.path());
    flip_last_byte(&path, found[2]);
    let damaged = fs::read(&path).unwrap();
    let refused = Store::open_with(dir.path(), skewed_options()).map(|_| ()).unwrap_err();
    assert!(
        matches!(refused, Error::Corruption { offset, kind: CorruptionKind::Checksum, .. }
            if offset == found[2].0 as u64),
        "{refused:?}"
    );
    assert_eq!(fs::read(&path).unwrap(), damaged, "a refused open cuts nothing");
    // Repaired, every acknowledged event is still there.
    flip_last_byte(&path, found[2]);
    let store = open(dir.path(), skewed_options());
    assert_eq!(store.read_all_forward(Position::START, 10).count(), 5);
}

#[test]
fn recovery_torn_last_group_with_a_repeating_clock_is_still_cut() {
    let dir = tempfile::tempdir().unwrap();
    let found = five_skewed_groups(dir.path());
    flip_last_byte(&only_segment(dir.path()), found[4]);
    let store = open(dir.path(), skewed_options());
    let torn = store.recovery_report().truncated.clone().expect("a torn tail");
    assert_eq!((torn.offset, torn.kind), (found[4].0 as u64, CorruptionKind::Checksum));
    assert_eq!(store.read_all_forward(Position::START, 10).count(), 4);
    // The next group takes the sequence of the one that was cut: it was never acknowledged.
    store.append("s", ExpectedVersion::Any, [event(9)]).unwrap();
    store.close();
    crate::common::remove_derived_files(dir.path());
    let bytes = fs::read(only_segment(dir.path())).unwrap();
    let last = *records(&bytes).last().unwrap();
    assert_eq!(sequence_at(&bytes, last.0), 4);
}

#[test]
fn group_sequence_continues_across_reopens_and_segments() {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..3u64 {
        let store = open(dir.path(), small_options());
        for n in 0..20 {
            // Two-event appends: both records of a group carry its sequence.
            store.append("s", ExpectedVersion::Any, [event(n), event(n + 100)]).unwrap();
        }
        assert!(round == 0 || store.stats().segments > 1, "rotates");
        store.close();
    }
    let mut sequences = Vec::new();
    for path in segment_paths(dir.path()) {
        let bytes = fs::read(path).unwrap();
        assert_eq!(u16::from_le_bytes([bytes[8], bytes[9]]), FORMAT_VERSION);
        sequences.extend(records(&bytes).iter().map(|&(at, _)| sequence_at(&bytes, at)));
    }
    let expected: Vec<u64> = (0..60).flat_map(|g| [g, g]).collect();
    assert_eq!(sequences, expected);
}

/// Rewrites the group sequence of the record at `at` and reseals its checksum.
fn forge_sequence(bytes: &mut [u8], (at, len): (usize, usize), sequence: u64) {
    let record = &mut bytes[at..at + len];
    record[48..54].copy_from_slice(&sequence.to_le_bytes()[..6]);
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&record[0..4]);
    hasher.update(&record[8..]);
    record[4..8].copy_from_slice(&hasher.finalize().to_le_bytes());
}

#[test]
fn group_sequence_exhausted_poisons_the_store_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), small_options());
    store.append("s", ExpectedVersion::Any, [event(0)]).unwrap();
    store.close();
    let path = only_segment(dir.path());
    let mut bytes = fs::read(&path).unwrap();
    let first = records(&bytes)[0];
    forge_sequence(&mut bytes, first, GROUP_SEQUENCE_MAX);
    fs::write(&path, &bytes).unwrap();

    let store = open(dir.path(), small_options());
    let refused = store.append("s", ExpectedVersion::Any, [event(1)]).unwrap_err();
    assert!(matches!(refused, Error::Poisoned { op: "seal record", .. }), "{refused:?}");
    let again = store.append("t", ExpectedVersion::Any, [event(2)]).unwrap_err();
    assert!(matches!(again, Error::Poisoned { .. }), "{again:?}");
    store.close();
    assert_eq!(fs::read(&path).unwrap(), bytes, "no byte was written");
}

#[test]
fn validation_metadata_beyond_its_24_bit_length_is_refused_before_queueing() {
    let dir = tempfile::tempdir().unwrap();
    let big = 32 << 20;
    let options = Options {
        event_bytes_max: big,
        append_bytes_max: big,
        group_bytes_max: big,
        ..Options::default()
    };
    let store = open(dir.path(), options);
    let metadata = vec![b'm'; METADATA_BYTES_MAX + 1];
    let refused = store
        .append(
            "s",
            ExpectedVersion::Any,
            [NewEvent::new("T", b"x".to_vec()).with_metadata(metadata)],
        )
        .unwrap_err();
    let max = METADATA_BYTES_MAX as u64;
    assert!(
        matches!(refused, Error::LimitExceeded { limit: Limit::MetadataBytes, actual, max: m }
            if actual == max + 1 && m == max),
        "{refused:?}"
    );
    assert_eq!(store.head(), Position(0));
    let metadata = vec![b'm'; METADATA_BYTES_MAX];
    let event = NewEvent::new("T", b"x".to_vec()).with_metadata(metadata);
    store.append("s", ExpectedVersion::Any, [event]).unwrap();
    let read = store.read_all_forward(Position::START, 1).next().unwrap().unwrap();
    assert_eq!((read.metadata().len(), read.data()), (METADATA_BYTES_MAX, &b"x"[..]));
}

/// The segment files of a committed fuzz seed (a whole store) in `dir`; returns their number.
fn store_from_seed(seed: &str, dir: &Path) -> usize {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/open_segments").join(seed);
    let files = split_files(&fs::read(path).unwrap());
    for (base, bytes) in &files {
        fs::write(dir.join(format!("{base:020}.seg")), bytes).unwrap();
    }
    files.len()
}

fn all_events(store: &Store) -> Vec<(u64, String, u64, Vec<u8>)> {
    store
        .read_all_forward(Position::START, usize::MAX)
        .map(|e| {
            let e = e.unwrap();
            (e.position().get(), e.stream().to_owned(), e.version().get(), e.data().to_vec())
        })
        .collect()
}

#[test]
fn compat_older_stores_append_into_a_new_format_3_segment_and_read_both() {
    for (seed, version) in [("seed-store", 1u16), ("seed-scavenged-store", 2)] {
        let dir = tempfile::tempdir().unwrap();
        let count = store_from_seed(seed, dir.path());
        let old = all_events(&Store::open_read_only(dir.path(), small_options()).unwrap());
        assert!(old.len() > 20, "{seed}: the seed holds a store");
        let store = open(dir.path(), small_options());
        assert_eq!(all_events(&store), old, "{seed}: read as it is");
        let next = store.head().get();
        store.append("new", ExpectedVersion::NoStream, [event(0), event(1)]).unwrap();
        store.close();

        let store = open(dir.path(), small_options());
        let names = segment_paths(dir.path());
        assert_eq!(names.len(), count + 1, "{seed}: one new segment");
        let versions: Vec<u16> = names
            .iter()
            .map(|n| {
                let bytes = fs::read(n).unwrap();
                u16::from_le_bytes([bytes[8], bytes[9]])
            })
            .collect();
        assert!(versions[..count].iter().all(|&v| v == version), "{seed}: {versions:?}");
        assert_eq!(versions[count], FORMAT_VERSION, "{seed}: the new segment");
        assert_eq!(store.stats().format_versions, (version, FORMAT_VERSION), "{seed}: stats");
        let events = all_events(&store);
        assert_eq!(events[..old.len()], old[..], "{seed}: old events after reopen");
        let new: Vec<_> = events[old.len()..].iter().map(|e| (e.0, e.1.as_str(), e.2)).collect();
        assert_eq!(new, [(next, "new", 0), (next + 1, "new", 1)], "{seed}");
        let report = store.verify().unwrap();
        assert_eq!(report.problem_count, 0, "{seed}: {:?}", report.problems);
        // The first format-3 group of an upgraded store has sequence 0.
        let bytes = fs::read(&names[count]).unwrap();
        assert_eq!(sequence_at(&bytes, SEGMENT_HEADER_LEN), 0);
    }
}

#[test]
fn scavenge_never_merges_segments_of_different_format_versions() {
    // A scavenge copies records byte for byte and keeps the first segment's header version, so a
    // run that mixed version-1 and version-3 segments would write records in a layout their
    // header does not state.
    let dir = tempfile::tempdir().unwrap();
    let count = store_from_seed("seed-store", dir.path());
    let options = Options { idempotency_window_events: 0, ..small_options() };
    let store = open(dir.path(), options.clone());
    // Kept, in the first version-3 segment.
    store.append("kept", ExpectedVersion::Any, [event(0)]).unwrap();
    for n in 0..40u8 {
        let event = NewEvent::new("Tested", vec![n; 500]);
        store.append("fresh", ExpectedVersion::Any, [event]).unwrap();
    }
    assert!(store.stats().segments > count + 2, "several version-3 segments");
    store.append("last", ExpectedVersion::Any, [event(0)]).unwrap();
    // Once these are gone, the sealed segments of both versions would fit in one.
    for s in ["s-0", "s-1", "s-2", "s-3", "fresh"] {
        store.delete_stream(s, ExpectedVersion::Any).unwrap();
    }
    let report = store.scavenge().unwrap();
    assert!(report.events_removed > 0 && report.segments_rewritten > 0, "{report:?}");
    let verified = store.verify().unwrap();
    assert_eq!(verified.problem_count, 0, "{:?}", verified.problems);
    let kept = all_events(&store);
    assert!(kept.iter().any(|e| e.1 == "last") && kept.iter().any(|e| e.1 == "kept"));
    store.close();
    let store = open(dir.path(), options);
    assert!(all_events(&store) == kept, "the same events after reopen");
    assert_eq!(store.verify().unwrap().problem_count, 0);
}

#[test]
fn recovery_torn_tail_of_a_large_random_payload_is_cut_not_refused() {
    // The search for acknowledged groups after the damage tried every byte offset whose
    // position field was not below the damaged one, and counted the checksums it paid for
    // against a budget. In a torn record of 1.5 MiB of random bytes (compressed or encrypted
    // data) nearly every offset passed that test and claimed a long length, the budget ran
    // out, and the default open refused a store whose only damage was a torn tail.
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), Options::default());
    for n in 0..3 {
        store.append("s", ExpectedVersion::Any, [event(n)]).unwrap();
    }
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let noise: Vec<u8> = (0..3 << 19)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    store.append("big", ExpectedVersion::Any, [NewEvent::new("Blob", noise)]).unwrap();
    store.close();
    crate::common::remove_derived_files(dir.path());
    let path = only_segment(dir.path());
    let bytes = fs::read(&path).unwrap();
    let (last, len) = *records(&bytes).last().unwrap();
    fs::write(&path, &bytes[..last + len / 2]).unwrap();

    let store = open(dir.path(), Options::default());
    let report = store.recovery_report();
    assert_eq!(report.truncated.as_ref().map(|t| t.offset), Some(last as u64), "{report:?}");
    assert_eq!(store.read_all_forward(Position::START, 10).count(), 3);
}
