//! Runs the fuzz targets' checks over the committed corpus, so `cargo test` keeps every
//! corpus entry (and every past finding) passing without cargo-fuzz installed.

use std::{fs, path::PathBuf};

use annal::{ExpectedVersion, NewEvent, Store, io::SimDisk};

use crate::{
    fuzz_checks::{
        check_crash_ops, check_decode, check_decode_index, check_open, check_open_modes, join_files,
    },
    recovery::record_offsets,
    salvage::{POSITION_AT, VERSION_AT, set_record_field},
    sim_model::{dir, options},
};

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target);
    let mut entries: Vec<_> = fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    entries.into_iter().map(|p| (p.clone(), fs::read(&p).unwrap())).collect()
}

fn run(target: &str, check: fn(&[u8])) {
    let entries = corpus(target);
    assert!(entries.len() >= 3, "corpus of {target} has {} entries", entries.len());
    for (path, bytes) in entries {
        let outcome = std::panic::catch_unwind(|| check(&bytes));
        assert!(outcome.is_ok(), "{target}: corpus entry {} fails", path.display());
    }
}

#[test]
fn fuzz_corpus_decode_record_passes() {
    run("decode_record", check_decode);
}

#[test]
fn fuzz_corpus_open_segments_passes() {
    run("open_segments", check_open);
}

#[test]
fn fuzz_corpus_open_modes_passes() {
    run("open_modes", check_open_modes);
}

#[test]
fn fuzz_corpus_crash_ops_passes() {
    run("crash_ops", check_crash_ops);
}

#[test]
fn fuzz_corpus_decode_index_passes() {
    run("decode_index", check_decode_index);
}

/// The segment files of a small simulated store with a few rotations.
fn sample_segments() -> Vec<(u64, Vec<u8>)> {
    let disk = SimDisk::new();
    let store = Store::open_with(dir(), options(&disk)).unwrap();
    for n in 0..40u64 {
        let events = (0..1 + n % 3).map(|i| NewEvent::new("Seed", vec![i as u8; 30]));
        store.append(&format!("s-{}", n % 4), ExpectedVersion::Any, events).unwrap();
    }
    store.close();
    let mut files = Vec::new();
    for base in 0..200u64 {
        if let Some(bytes) = disk.file_bytes(&dir().join(format!("{base:020}.seg"))) {
            files.push((base, bytes));
        }
    }
    files
}

/// The segment files of a small simulated store after deletes, a tombstone, metadata and a
/// scavenge: segments with spans and gaps, and metadata events.
fn scavenged_segments() -> Vec<(u64, Vec<u8>)> {
    let disk = SimDisk::new();
    let options = annal::Options { idempotency_window_events: 0, ..options(&disk) };
    let store = Store::open_with(dir(), options).unwrap();
    for n in 0..60u64 {
        let events = (0..1 + n % 3).map(|i| NewEvent::new("Seed", vec![i as u8; 30]));
        store.append(&format!("s-{}", n % 5), ExpectedVersion::Any, events).unwrap();
    }
    store.delete_stream("s-0", ExpectedVersion::Any).unwrap();
    store.tombstone_stream("s-1", ExpectedVersion::Any).unwrap();
    let capped = annal::StreamMetadata { max_count: Some(2), ..Default::default() };
    store.set_stream_metadata("s-2", ExpectedVersion::Any, capped).unwrap();
    for n in 0..10 {
        store.append("s-3", ExpectedVersion::Any, [NewEvent::new("Roll", vec![n; 200])]).unwrap();
    }
    assert!(store.scavenge().unwrap().events_removed > 0);
    store.close();
    (0..400u64)
        .filter_map(|base| Some((base, disk.file_bytes(&dir().join(format!("{base:020}.seg")))?)))
        .collect()
}

/// Adds the current format's scavenged-store seeds (`seed-v3-…`) to the corpus and leaves the
/// others (`seed-scavenged-…`, version-2 files, kept as fixtures of that format) as they are.
/// Run by hand: `cargo test --release --test it -- --ignored regenerate_scavenged`.
#[test]
#[ignore = "writes fuzz/corpus; run by hand"]
fn fuzz_corpus_regenerate_scavenged() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let files = scavenged_segments();
    let compacted = files.iter().find(|(_, b)| b[24..28] != [0; 4]).expect("a scavenged one");
    fs::write(root.join("decode_record/seed-v3-scavenged-segment"), &compacted.1).unwrap();
    fs::write(root.join("open_segments/seed-v3-scavenged-store"), join_files(&files)).unwrap();
}

/// Writes the seed corpus in the current format (`seed-v3-…`), and the `crash_ops` seeds. The
/// seeds without a version in their name are version-1 files, kept as fixtures of that format.
/// Run by hand: `cargo test --release --test it -- --ignored regenerate`.
#[test]
#[ignore = "writes fuzz/corpus; run by hand"]
fn fuzz_corpus_regenerate() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let write = |target: &str, name: &str, bytes: &[u8]| {
        fs::create_dir_all(root.join(target)).unwrap();
        fs::write(root.join(target).join(name), bytes).unwrap();
    };
    let files = sample_segments();
    assert!(files.len() >= 3);
    let header = annal::format::SEGMENT_HEADER_LEN;
    write("decode_record", "seed-v3-records", &files[0].1[header..]);
    write("decode_record", "seed-v3-segment", &files[0].1);
    let last = &files[files.len() - 1].1;
    write("decode_record", "seed-v3-torn", &last[header..last.len() - 7]);
    write("open_segments", "seed-v3-store", &join_files(&files));
    write("open_segments", "seed-v3-first-two", &join_files(&files[..2]));
    let mut torn = files.clone();
    let n = torn.len() - 1;
    let cut = torn[n].1.len() - 11;
    torn[n].1.truncate(cut);
    write("open_segments", "seed-v3-torn-tail", &join_files(&torn));
    for (i, crash_at) in [5u16, 23, 61, 140].into_iter().enumerate() {
        let mut input = crash_at.to_le_bytes().to_vec();
        input.push(i as u8);
        input.extend((0..120u32).map(|k| (k.wrapping_mul(2_654_435_761) >> 13) as u8 ^ i as u8));
        write("crash_ops", &format!("seed-{i}"), &input);
    }
}

/// Writes the `open_modes` seeds (`seed-v3-*`; the `seed-*` ones without `v3` are stores of
/// format 2, kept as they are): the sample store as it is, scavenged, and with damage each
/// mode must settle without trusting a checksum alone (a flipped byte mid-log; a record that
/// passes its checksum with a version or position far ahead, or a position past the next
/// segment's base). Run by hand:
/// `cargo test --release --test it -- --ignored regenerate_open_modes`.
#[test]
#[ignore = "writes fuzz/corpus; run by hand"]
fn fuzz_corpus_regenerate_open_modes() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/open_modes");
    fs::create_dir_all(&root).unwrap();
    let files = sample_segments();
    let write = |name: &str, files: &[(u64, Vec<u8>)]| {
        fs::write(root.join(name), join_files(files)).unwrap();
    };
    write("seed-v3-store", &files);
    write("seed-v3-scavenged-store", &scavenged_segments());
    let offsets = record_offsets(&files[0].1);
    let damaged = |change: &dyn Fn(&mut Vec<u8>)| {
        let mut files = files.clone();
        change(&mut files[0].1);
        files
    };
    write("seed-v3-flipped-byte", &damaged(&|b| b[offsets[3] + 60] ^= 0xff));
    write(
        "seed-v3-version-ahead",
        &damaged(&|b| set_record_field(b, offsets[5], VERSION_AT, 1 << 40)),
    );
    write(
        "seed-v3-position-ahead",
        &damaged(&|b| set_record_field(b, offsets[5], POSITION_AT, 1 << 33)),
    );
    let (last, next_base) = (*offsets.last().unwrap(), files[1].0);
    write(
        "seed-v3-position-past-next",
        &damaged(&|b| set_record_field(b, last, POSITION_AT, next_base + 1)),
    );
}

/// A small index file (two streams, metadata for a third) and the stream table it folds into.
fn sample_derived_files() -> (Vec<u8>, Vec<u8>) {
    use annal::format::{IndexFileBuilder, SegmentBinding, TableBinding, fold_into_table};
    let mut builder = IndexFileBuilder::new();
    let records = [("b", 3), ("a", 0), ("$$c", 0), ("b", 4), ("a", 1)];
    for (i, (stream, version)) in (0u32..).zip(records) {
        builder.record(50 + u64::from(i), 32 + 90 * i, stream, version);
    }
    builder.metadata("c", 52, b"meta");
    let binding = SegmentBinding {
        segment_version: annal::format::FORMAT_VERSION,
        base_position: 50,
        segment_len: 32 + 450,
        end_position: 55,
        records: 5,
        last_record_crc: 9,
        ..Default::default()
    };
    let index = builder.encode(&binding, |name| (name == "b").then_some(10)).unwrap();
    let parsed = annal::format::IndexFile::parse_header(&index).unwrap();
    let table = TableBinding {
        durable: true,
        covered: 55,
        segment_base: 50,
        segment_len: binding.segment_len,
        last_record_crc: 9,
    };
    let table = fold_into_table(None, &parsed, 4096, &table).unwrap();
    (index, table)
}

/// Writes the `decode_index` seeds: a valid index file and stream table, an empty index file,
/// and damaged ones (a flipped body byte, a cut, a bad version). Run by hand:
/// `cargo test --release --test it -- --ignored regenerate_decode_index`.
#[test]
#[ignore = "writes fuzz/corpus; run by hand"]
fn fuzz_corpus_regenerate_decode_index() {
    use annal::format::{IndexFileBuilder, SegmentBinding};
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/decode_index");
    fs::create_dir_all(&root).unwrap();
    let write = |name: &str, bytes: &[u8]| fs::write(root.join(name), bytes).unwrap();
    let (index, table) = sample_derived_files();
    write("seed-index", &index);
    write("seed-table", &table);
    let empty =
        SegmentBinding { base_position: 7, end_position: 7, segment_len: 32, ..Default::default() };
    write("seed-index-empty", &IndexFileBuilder::new().encode(&empty, |_| None).unwrap());
    let mut flipped = index.clone();
    let at = flipped.len() - 9;
    flipped[at] ^= 0x40;
    write("seed-index-flipped-body", &flipped);
    write("seed-table-cut", &table[..table.len() - 5]);
    let mut version = table.clone();
    version[8] = 2;
    write("seed-table-version-2", &version);
}
