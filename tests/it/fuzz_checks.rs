//! The checks behind the cargo-fuzz targets, shared with `cargo test` (which runs them over
//! the committed corpus in `fuzz/corpus/`). The fuzz targets include this file by path.
//!
//! Each check takes arbitrary bytes and panics only when annal breaks a promise: a panic in
//! the library, a store that opens but returns a damaged event, an acknowledged event lost.

use std::{io, path::Path, sync::OnceLock};

use annal::{
    CorruptionKind, Error, ExpectedVersion, NewEvent, Options, Position, RecoveryMode, Store,
    StreamVersion,
    format::{
        DERIVED_HEADER_LEN, IndexFile, StreamTable, TableBinding, check_segment, fold_into_table,
    },
    io::{SimDisk, Storage},
};

use crate::sim_model::{FromBytes, dir, options, reopen_and_check, run_workload};

/// `decode_record`: arbitrary bytes as a segment file, as they are and behind a valid header.
pub fn check_decode(data: &[u8]) {
    for bytes in [data.to_vec(), with_valid_header(data)] {
        if let Ok(check) = check_segment(&bytes) {
            assert!(check.valid_len <= bytes.len() as u64);
            let positions = check.next_position - check.base_position;
            match check.span {
                0 => assert_eq!(positions, check.records),
                span => assert!(positions == u64::from(span) && check.records <= positions),
            }
            assert_eq!(check.damage.is_none(), check.valid_len == bytes.len() as u64);
        }
    }
}

/// A valid segment header for base position 0 followed by `data`.
fn with_valid_header(data: &[u8]) -> Vec<u8> {
    static HEADER: OnceLock<Vec<u8>> = OnceLock::new();
    let header = HEADER.get_or_init(|| {
        let disk = SimDisk::new();
        let store = Store::open_with(dir(), options(&disk)).expect("open empty sim store");
        store.close();
        let mut bytes = disk.file_bytes(&dir().join(segment_name(0))).expect("first segment");
        bytes.truncate(annal::format::SEGMENT_HEADER_LEN);
        bytes
    });
    let mut bytes = header.clone();
    bytes.extend_from_slice(data);
    bytes
}

fn segment_name(base: u64) -> String {
    format!("{base:020}.seg")
}

/// Splits fuzz input into segment files: `[base u64 LE][len u16 LE][len bytes]`, repeated.
pub fn split_files(mut data: &[u8]) -> Vec<(u64, Vec<u8>)> {
    let mut files = Vec::new();
    while data.len() >= 10 && files.len() < 8 {
        let base = u64::from_le_bytes(data[..8].try_into().unwrap()) % 1_000_000;
        let len = usize::from(u16::from_le_bytes([data[8], data[9]])).min(data.len() - 10);
        files.push((base, data[10..10 + len].to_vec()));
        data = &data[10 + len..];
    }
    files
}

/// The inverse of [`split_files`], for building corpus entries from real stores.
pub fn join_files(files: &[(u64, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (base, bytes) in files {
        out.extend_from_slice(&base.to_le_bytes());
        out.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
        out.extend_from_slice(bytes);
    }
    out
}

fn write_durably(disk: &SimDisk, path: &Path, bytes: &[u8]) -> io::Result<()> {
    let file = disk.create(path)?;
    file.write_at(0, bytes)?;
    file.sync_data()?;
    disk.sync_dir(path.parent().unwrap())
}

/// `open_segments`: a directory whose segment files are arbitrary bytes. Opening must give a
/// typed error, or a store whose every event reads back verified and which takes appends.
pub fn check_open(data: &[u8]) {
    let disk = SimDisk::new();
    let files = split_files(data);
    // A scavenged segment (version 2 with a span) may leave gaps in the positions.
    let scavenged = files.iter().any(|(_, b)| b.get(24..28).is_some_and(|s| s != [0; 4]));
    for (base, bytes) in files {
        let _ = write_durably(&disk, &dir().join(segment_name(base)), &bytes);
    }
    let store = match Store::open_with(dir(), options(&disk)) {
        Ok(store) => store,
        Err(Error::Corruption { .. } | Error::UnsupportedFormat { .. }) => return,
        Err(other) => panic!("unexpected error opening fuzzed segments: {other}"),
    };
    let head = store.head().get();
    let mut count = 0u64;
    for event in store.read_all_forward(Position::START, usize::MAX) {
        let event = event.expect("a recovered store reads back without errors");
        assert!(event.position().get() < head);
        count += 1;
        // Stream metadata may hide the event from its stream, never change it.
        match store.read_stream_forward(event.stream(), event.version(), 1) {
            Ok(mut read) => {
                if let Some(found) = read.next() {
                    let found = found.expect("a recovered stream reads back without errors");
                    assert!(found.version() >= event.version());
                    if found.version() == event.version() {
                        assert_eq!(found.id(), event.id());
                    }
                }
            }
            Err(Error::StreamNotFound { .. } | Error::StreamDeleted { .. }) => {}
            Err(other) => panic!("stream read of a recovered event: {other}"),
        }
    }
    match scavenged {
        false => assert_eq!(count, store.stats().events),
        true => assert!(count <= store.stats().events),
    }
    let r = store.append("fuzz-probe", ExpectedVersion::Any, [NewEvent::new("P", vec![1])]);
    assert_eq!(r.expect("a recovered store takes appends").first_position.get(), head);
}

/// `open_modes`: the directory of [`check_open`], opened to salvage, strictly and read-only
/// (in the default and the strict mode), before a strict read-write open. Each open gives a
/// typed error or a store that reads back whole, forward and backward; salvage opens whatever
/// the strict open opens, keeps the same events and has nothing to report.
pub fn check_open_modes(data: &[u8]) {
    let disk = SimDisk::new();
    for (base, bytes) in split_files(data) {
        let _ = write_durably(&disk, &dir().join(segment_name(base)), &bytes);
    }
    let mode = |recovery_mode| Options { recovery_mode, ..options(&disk) };
    let salvaged = read_back(Store::open_with(dir(), mode(RecoveryMode::Salvage)));
    // Only header-level refusals: a salvaging open steps over all damage inside a segment.
    let header_level = |e: &Error| match e {
        Error::UnsupportedFormat { .. } => true,
        Error::Corruption { kind, .. } => matches!(kind, CorruptionKind::SegmentGap { .. }),
        _ => false,
    };
    assert!(!salvaged.as_ref().is_err_and(|e| !header_level(e)), "salvage: {salvaged:?}");
    let read_only = read_back(Store::open_read_only(dir(), options(&disk)));
    let strict_read_only = read_back(Store::open_read_only(dir(), mode(RecoveryMode::Strict)));
    let strict = read_back(Store::open_with(dir(), mode(RecoveryMode::Strict)));
    assert_eq!(strict_read_only.is_ok(), strict.is_ok());
    if let (Ok(strict), Ok(strict_read_only)) = (&strict, &strict_read_only) {
        assert_eq!(strict_read_only.events, strict.events);
        let salvaged = salvaged.as_ref().expect("salvage opens what strict opens");
        assert_eq!(salvaged.events, strict.events, "salvage keeps what strict keeps");
        assert!(salvaged.report.salvaged.is_empty(), "{:?}", salvaged.report);
        let read_only = read_only.as_ref().expect("a read-only open opens what strict opens");
        assert_eq!(read_only.events, strict.events);
    }
}

/// What an open of fuzzed segments kept: every event of `$all` (position, stream, version, id)
/// and the recovery report.
#[derive(Debug)]
struct ReadBack {
    events: Vec<(u64, String, u64, uuid::Uuid)>,
    report: annal::RecoveryReport,
}

/// Reads everything the opened store holds, checking that `$all` backward is `$all` forward
/// reversed and that stream reads agree with it.
fn read_back(opened: annal::Result<Store>) -> Result<ReadBack, Error> {
    let store = match opened {
        Ok(store) => store,
        Err(e @ (Error::Corruption { .. } | Error::UnsupportedFormat { .. })) => return Err(e),
        Err(other) => panic!("unexpected error opening fuzzed segments: {other}"),
    };
    let head = store.head().get();
    let mut events: Vec<(u64, String, u64, uuid::Uuid)> = Vec::new();
    for event in store.read_all_forward(Position::START, usize::MAX) {
        let e = event.expect("a recovered store reads back without errors");
        assert!(e.position().get() < head);
        assert!(events.last().is_none_or(|(p, ..)| *p < e.position().get()));
        events.push((e.position().get(), e.stream().to_owned(), e.version().get(), e.id()));
    }
    let backward: Vec<u64> = store
        .read_all_backward(Position::END, usize::MAX)
        .map(|e| e.expect("a recovered store reads back without errors").position().get())
        .collect();
    assert!(backward.iter().rev().eq(events.iter().map(|(p, ..)| p)));
    let by_position: std::collections::HashMap<u64, (&str, u64, uuid::Uuid)> =
        events.iter().map(|(p, s, v, id)| (*p, (s.as_str(), *v, *id))).collect();
    let mut streams: Vec<&str> = events.iter().map(|(_, s, ..)| s.as_str()).collect();
    streams.sort_unstable();
    streams.dedup();
    for stream in streams {
        let read = match store.read_stream_forward(stream, StreamVersion::START, usize::MAX) {
            Ok(read) => read,
            Err(Error::StreamNotFound { .. } | Error::StreamDeleted { .. }) => continue,
            Err(other) => panic!("stream read of a recovered stream: {other}"),
        };
        for found in read {
            let found = found.expect("a recovered stream reads back without errors");
            let p = found.position().get();
            let in_all = by_position.get(&p);
            let expected = (stream, found.version().get(), found.id());
            assert_eq!(in_all, Some(&expected), "a stream read disagrees with $all at {p}");
        }
    }
    Ok(ReadBack { events, report: store.recovery_report().clone() })
}

/// `crash_ops`: `[crash op u16 LE][damage seed u8][workload decisions…]`. The workload runs on
/// a simulated disk that loses power at the given operation; the crashed disk must reopen with
/// every acknowledged append intact.
pub fn check_crash_ops(data: &[u8]) {
    if data.len() < 3 {
        return;
    }
    let crash_at = u64::from(u16::from_le_bytes([data[0], data[1]]));
    let seed = u64::from(data[2]);
    let decisions = &data[3..];
    let disk = SimDisk::new();
    disk.fail_at(crash_at, io::ErrorKind::Other, true);
    let model = run_workload(&disk, &mut FromBytes(decisions), (decisions.len() / 3).min(40));
    let crashed = disk.crash(seed);
    if let Err(e) = reopen_and_check(&crashed, &model) {
        panic!("crash at op {crash_at}, damage seed {seed}: {e}");
    }
}

/// `decode_index`: arbitrary bytes as an index file and as a stream table, as they are and with
/// both checksums recomputed (so that the structural checks behind them are reached). Parsing,
/// checking and every accessor must never panic; a file that passes its checks must answer its
/// lookups consistently, and an index file that passes folds into a table that passes too.
pub fn check_decode_index(data: &[u8]) {
    for bytes in [Some(data.to_vec()), resealed(data)].into_iter().flatten() {
        if let Ok(index) = IndexFile::parse_header(&bytes) {
            let checked = index.check_body().is_ok();
            check_index_lookups(&index, checked);
        }
        if let Ok(table) = StreamTable::parse_header(&bytes) {
            let checked = table.check_body().is_ok();
            check_table_lookups(&table, checked);
        }
    }
}

/// `data` with its derived-file header CRC and body CRC recomputed, if it is long enough.
fn resealed(data: &[u8]) -> Option<Vec<u8>> {
    let mut bytes = data.to_vec();
    let end = bytes.len().checked_sub(4).filter(|&end| end >= DERIVED_HEADER_LEN)?;
    let crc = crc32fast::hash(&bytes[..60]);
    bytes[60..64].copy_from_slice(&crc.to_le_bytes());
    let crc = crc32fast::hash(&bytes[DERIVED_HEADER_LEN..end]);
    bytes[end..].copy_from_slice(&crc.to_le_bytes());
    Some(bytes)
}

fn check_index_lookups(index: &IndexFile<'_>, checked: bool) {
    let b = index.binding();
    let probes = [0, b.base_position, b.end_position, b.end_position.wrapping_sub(1), u64::MAX];
    for position in probes {
        let (floor, exact) = (index.floor(position), index.exact(position));
        assert!(floor.is_none_or(|(p, _)| p <= position));
        assert_eq!(exact, floor.filter(|(p, _)| *p == position).map(|(_, o)| o));
    }
    let runs: Vec<_> = index.streams().collect();
    for run in &runs {
        for version in
            [0, run.first_version, run.last_version(), run.last_version().wrapping_add(1)]
        {
            let _ = run.event(version);
        }
    }
    let metadata: Vec<_> = index.metadata().collect();
    let _ = (index.stream(""), index.record(u64::MAX));
    if !checked {
        return;
    }
    let records = usize::try_from(index.records()).unwrap();
    assert_eq!(runs.iter().map(|r| r.count as usize).sum::<usize>(), records);
    for i in 0..index.records() {
        let (position, offset) = index.record(i).expect("every record of a checked file reads");
        assert_eq!(index.exact(position), Some(offset));
    }
    for run in &runs {
        assert_eq!(index.stream(run.name), Some(*run));
        for version in run.first_version..=run.last_version() {
            let (position, offset) = run.event(version).expect("a checked run reads whole");
            assert_eq!(index.exact(position), Some(offset));
        }
    }
    assert!(metadata.iter().all(|m| index.exact(m.position).is_some()));
    let binding = TableBinding::at_end_of(&b, false);
    let folded = fold_into_table(None, index, 4096, &binding).expect("a checked index folds");
    let table = StreamTable::parse_header(&folded).expect("a folded table parses");
    assert_eq!(table.check_body(), Ok(()));
    check_table_lookups(&table, true);
    let again = fold_into_table(Some(&table), index, 4096, &binding).expect("a refold folds");
    assert_eq!(again, folded, "folding the same segment twice changes nothing");
}

fn check_table_lookups(table: &StreamTable<'_>, checked: bool) {
    let _ = (table.binding(), table.len(), table.get(""), table.get("\u{10ffff}"));
    let entries: Vec<_> = table.iter().collect();
    let listed: Vec<_> = table.segments().collect();
    for l in &listed {
        let _ = (l.binding(), l.last_record_offset);
    }
    if !checked {
        return;
    }
    // A checked list describes the log the table covers: whole, in order, ending with the
    // segment the header names.
    assert_eq!(listed.len(), table.segment_count());
    let bindings: Vec<_> = listed.iter().map(|l| l.binding().expect("a checked entry")).collect();
    for pair in bindings.windows(2) {
        assert_eq!(pair[0].end_position, pair[1].base_position);
    }
    if let Some(last) = bindings.last() {
        assert_eq!(last.base_position, table.binding().segment_base);
    }
    assert_eq!(entries.len() as u64, table.len());
    for e in entries {
        assert_eq!(table.get(e.name), Some(e));
    }
}
