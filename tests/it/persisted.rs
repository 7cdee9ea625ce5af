//! Persisted indexes (issue #13): the derived files beside the segments (`<base>.idx`,
//! `streams.tbl`, `streams.close.tbl`) let an open skip the segments, and whatever happens to
//! them — deleted, truncated, flipped, swapped, stale — an open succeeds and every read answers
//! what it answered before. The stream table's durable high-water mark turns a log cut from
//! outside into an error instead of a silently shorter log.

use std::{collections::BTreeMap, path::Path};

use annal::{
    CorruptionKind, Durability, Error, ExpectedVersion, NewEvent, Options, Position, RecoveryMode,
    Store, StreamMetadata, StreamVersion,
};

use crate::common::{open, segment_paths};

/// Small segments (a dozen or so events each) so that a few hundred events seal many.
pub(crate) fn options() -> Options {
    Options {
        segment_bytes_max: 2048,
        event_bytes_max: 512,
        append_bytes_max: 1024,
        group_bytes_max: 1024,
        append_events_max: 8,
        ..Options::default()
    }
}

fn event(stream: usize, n: u64) -> NewEvent {
    NewEvent::new("P", format!("{stream}/{n}/{}", "x".repeat(40)).into_bytes())
}

/// Appends `rounds` rounds over `streams` streams (one to three events each, interleaved).
pub(crate) fn append_rounds(store: &Store, streams: usize, rounds: u64, salt: u64) {
    for round in 0..rounds {
        // s-5 is tombstoned by the time salt is 2.
        for s in (0..streams).filter(|&s| salt < 2 || s != 5) {
            let n = 1 + (round + s as u64 + salt) % 3;
            let events = (0..n).map(|k| event(s, salt * 1000 + round * 10 + k));
            store.append(&format!("s-{s}"), ExpectedVersion::Any, events).unwrap();
        }
    }
}

/// The derived files of a closed store: name → bytes.
fn derived_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "idx" || x == "tbl"))
        .map(|p| (file_name(&p), std::fs::read(&p).unwrap()))
        .collect()
}

fn file_name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

/// Everything a reader can ask, one line per question and its answer.
pub fn reads(store: &Store) -> Vec<String> {
    let show = |e: annal::Result<annal::RecordedEvent>| match e {
        Ok(e) => format!(
            "{}:{}@{}:{}:{}",
            e.position().get(),
            e.stream(),
            e.version().get(),
            e.event_type(),
            String::from_utf8_lossy(e.data())
        ),
        Err(e) => format!("error {e:?}"),
    };
    let stats = store.stats();
    let mut out = vec![
        format!("head {:?}", store.head()),
        format!("events {} present {}", stats.events, stats.events_present),
        format!("streams {}", stats.streams),
    ];
    let head = store.head().get();
    let all: Vec<String> = store.read_all_forward(Position::START, usize::MAX).map(show).collect();
    let names: std::collections::BTreeSet<String> = all
        .iter()
        .filter_map(|line| line.split(':').nth(1))
        .map(|s| s.rsplit_once('@').map_or(s, |(name, _)| name).to_owned())
        .collect();
    out.push(format!("$all forward {all:?}"));
    let back: Vec<String> =
        store.read_all_backward(Position(u64::MAX), usize::MAX).map(show).collect();
    out.push(format!("$all backward {back:?}"));
    for p in 0..=head {
        let f: Vec<String> = store.read_all_forward(Position(p), 3).map(show).collect();
        let b: Vec<String> = store.read_all_backward(Position(p), 3).map(show).collect();
        out.push(format!("$all from {p}: {f:?} / {b:?}"));
    }
    for name in names.iter().map(String::as_str).chain(["never-written", "ghost"]) {
        let state = store.stream_state(name);
        out.push(format!("{name} state {state:?} version {:?}", store.stream_version(name)));
        out.push(format!("{name} metadata {:?}", store.stream_metadata(name)));
        let stream = |from: u64, limit: usize, forward: bool| -> String {
            let read = match forward {
                true => store.read_stream_forward(name, StreamVersion(from), limit),
                false => store.read_stream_backward(name, StreamVersion(from), limit),
            };
            match read {
                Ok(events) => format!("{:?}", events.map(show).collect::<Vec<_>>()),
                Err(e) => format!("error {e:?}"),
            }
        };
        out.push(format!(
            "{name} all: {} / {}",
            stream(0, usize::MAX, true),
            stream(u64::MAX, usize::MAX, false)
        ));
        for v in 0..=state.last.map_or(1, |l| l + 2) {
            out.push(format!("{name} from {v}: {} / {}", stream(v, 3, true), stream(v, 3, false)));
        }
    }
    out
}

/// Panics at the first question answered differently.
pub fn assert_same_reads(got: &[String], want: &[String], case: &str) {
    for (g, w) in got.iter().zip(want) {
        assert_eq!(g, w, "{case}: reads differ");
    }
    assert_eq!(got.len(), want.len(), "{case}: reads differ in number");
}

/// A store of many sealed segments and streams, with metadata, a deleted stream brought back,
/// a deleted one, a tombstoned one and metadata of a stream never written; closed cleanly.
/// Returns the derived files as they were after the first half (closed cleanly too), for the
/// stale cases.
fn build(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let store = open(dir, options());
    append_rounds(&store, 8, 6, 0);
    store.close();
    drop(store);
    let early = derived_files(dir);
    let store = open(dir, options());
    let capped = StreamMetadata { max_count: Some(3), ..Default::default() };
    store.set_stream_metadata("s-2", ExpectedVersion::Any, capped).unwrap();
    let truncated = StreamMetadata { truncate_before: Some(4), ..Default::default() };
    store.set_stream_metadata("s-3", ExpectedVersion::Any, truncated).unwrap();
    let mut custom = StreamMetadata::default();
    custom.custom.insert("owner".into(), "tests".into());
    store.set_stream_metadata("ghost", ExpectedVersion::Any, custom).unwrap();
    append_rounds(&store, 10, 5, 1);
    store.delete_stream("s-4", ExpectedVersion::Any).unwrap();
    store.tombstone_stream("s-5", ExpectedVersion::Any).unwrap();
    store.delete_stream("s-6", ExpectedVersion::Any).unwrap();
    append_rounds(&store, 10, 2, 2);
    // The deleted s-4 stays deleted: no more appends to it after the last rounds' ones.
    store.delete_stream("s-4", ExpectedVersion::Any).unwrap();
    store.append("s-7", ExpectedVersion::Any, [event(7, 9999)]).unwrap();
    store.close();
    early
}

/// What happens to one derived file while the store is closed.
#[derive(Clone, Copy, Debug)]
enum Fate {
    Deleted,
    TruncatedToHalf,
    TruncatedTo10,
    TruncatedTo0,
    FlippedInHeader,
    /// In the first byte of the first section (of the entries, for a table).
    FlippedAtFirstSection,
    FlippedInMiddle,
    /// In the body's checksum.
    FlippedInTrailer,
    /// Another file of its kind copied over it.
    Swapped,
    /// The same file as it was after the first half of the build.
    Stale,
}

const FATES: [Fate; 10] = [
    Fate::Deleted,
    Fate::TruncatedToHalf,
    Fate::TruncatedTo10,
    Fate::TruncatedTo0,
    Fate::FlippedInHeader,
    Fate::FlippedAtFirstSection,
    Fate::FlippedInMiddle,
    Fate::FlippedInTrailer,
    Fate::Swapped,
    Fate::Stale,
];

impl Fate {
    /// Whether the body is damaged where only a full check of the body can see it.
    fn in_body(self) -> bool {
        matches!(self, Fate::FlippedAtFirstSection | Fate::FlippedInMiddle | Fate::FlippedInTrailer)
    }
}

/// Applies `fate` to `dir/name`; `false` if it does not apply (no other file to swap with, no
/// earlier version that differs).
fn apply(
    dir: &Path,
    name: &str,
    fate: Fate,
    files: &BTreeMap<String, Vec<u8>>,
    early: &BTreeMap<String, Vec<u8>>,
) -> bool {
    let path = dir.join(name);
    let mut bytes = files[name].clone();
    let flip = |bytes: &mut Vec<u8>, at: usize| bytes[at] ^= 0x20;
    match fate {
        Fate::Deleted => {
            std::fs::remove_file(&path).unwrap();
            return true;
        }
        Fate::TruncatedToHalf => bytes.truncate(bytes.len() / 2),
        Fate::TruncatedTo10 => bytes.truncate(10),
        Fate::TruncatedTo0 => bytes.clear(),
        Fate::FlippedInHeader => flip(&mut bytes, 20),
        Fate::FlippedAtFirstSection => {
            let at = match name.ends_with(".idx") {
                // The offset field of the section table's first entry.
                true => u64::from_le_bytes(bytes[72..80].try_into().unwrap()) as usize,
                false => 64,
            };
            flip(&mut bytes, at)
        }
        Fate::FlippedInMiddle => {
            let at = 64 + (bytes.len() - 68) / 2;
            flip(&mut bytes, at)
        }
        Fate::FlippedInTrailer => {
            let at = bytes.len() - 1;
            flip(&mut bytes, at)
        }
        Fate::Swapped => {
            let other = files
                .keys()
                .filter(|n| *n != name)
                .find(|n| n.ends_with(".idx") == name.ends_with(".idx"));
            match other {
                Some(other) => bytes = files[other].clone(),
                None => return false,
            }
        }
        Fate::Stale => match early.get(name) {
            Some(old) if *old != bytes => bytes = old.clone(),
            _ => return false,
        },
    }
    std::fs::write(&path, bytes).unwrap();
    true
}

/// Copies every file of `from` into a new directory.
fn copy_store(from: &Path) -> tempfile::TempDir {
    let to = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, to.path().join(file_name(&path))).unwrap();
    }
    to
}

fn listing(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| file_name(p) != "LOCK")
        .map(|p| (file_name(&p), std::fs::read(&p).unwrap()))
        .collect()
}

/// What a writable open of a damaged copy told.
struct Reopened {
    report: annal::RecoveryReport,
    /// What the read-only open reported: it reads every segment's header and index file
    /// header (the writable open takes the segments the stream table lists without reading
    /// them, and meets a damaged index file only when it first uses it).
    read_only_report: annal::RecoveryReport,
    /// Whether a read found an index disagreeing with its segment (in the read-only store,
    /// where it stays rebuilt in memory, or in the writable one, whose indexer may have written
    /// it anew by the time this is asked).
    fell_back: bool,
    /// The files `verify` named, right after the open.
    flagged: Vec<String>,
}

/// Opens the damaged copy read-only (which must change nothing), then writable: both read
/// what the reference reads. The writable open writes the derived files anew, so that after a
/// clean close the next open reads no segment.
fn reopen_damaged(dir: &Path, reference: &[String], case: &str) -> Reopened {
    let before = listing(dir);
    let read_only = Store::open_read_only(dir, options())
        .unwrap_or_else(|e| panic!("{case}: read-only open: {e}"));
    assert_same_reads(&reads(&read_only), reference, &format!("{case}, read-only"));
    let read_only_report = read_only.recovery_report().clone();
    let read_only_fell_back = read_only.stats().indexes_rebuilt_in_memory > 0;
    drop(read_only);
    assert!(listing(dir) == before, "{case}: a read-only open changed the directory");

    let store = Store::open_with(dir, options()).unwrap_or_else(|e| panic!("{case}: open: {e}"));
    let report = store.recovery_report().clone();
    assert_same_reads(&reads(&store), reference, case);
    let fell_back = read_only_fell_back || store.stats().indexes_rebuilt_in_memory > 0;
    let verified = store.verify().unwrap_or_else(|e| panic!("{case}: verify: {e}"));
    let flagged = verified.problems.into_iter().map(|p| p.segment).collect();
    store.flush_index_files();
    store.close();
    drop(store);
    let store = open(dir, options());
    let again = store.recovery_report();
    assert!(again.rebuilt.is_empty(), "{case}: rebuilt again after a clean close: {again:?}");
    assert_eq!(again.segments_scanned, 0, "{case}: scanned after a clean close: {again:?}");
    assert_same_reads(&reads(&store), reference, &format!("{case}, after the rewrite"));
    Reopened { report, read_only_report, fell_back, flagged }
}

#[test]
fn persisted_clean_close_reads_no_segment_and_answers_the_same() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    let store = open(dir.path(), options());
    let before = reads(&store);
    store.close();
    drop(store);
    let store = open(dir.path(), options());
    let report = store.recovery_report().clone();
    assert!(report.segments > 8, "too few segments to say much: {report:?}");
    assert_eq!((report.segments_scanned, report.rebuilt.len()), (0, 0), "{report:?}");
    assert_eq!(store.stats().segments_with_index_file, report.segments);
    assert_same_reads(&reads(&store), &before, "reopened");
    assert!(store.verify().unwrap().is_clean());
}

#[test]
fn persisted_damaged_derived_files_open_and_read_the_same() {
    let reference_dir = tempfile::tempdir().unwrap();
    let early = build(reference_dir.path());
    let files = derived_files(reference_dir.path());
    let segments: Vec<String> =
        segment_paths(reference_dir.path()).iter().map(|p| file_name(p)).collect();
    assert!(files.contains_key("streams.tbl") && files.contains_key("streams.close.tbl"));
    assert_eq!(files.len(), segments.len() + 2, "an index file per segment: {:?}", files.keys());
    let reference = {
        let store = Store::open_read_only(reference_dir.path(), options()).unwrap();
        reads(&store)
    };
    let (mut cases, mut body_flips_noticed) = (0, 0);
    for name in files.keys() {
        for fate in FATES {
            let dir = copy_store(reference_dir.path());
            if !apply(dir.path(), name, fate, &files, &early) {
                continue;
            }
            let case = format!("{name} {fate:?}");
            let Reopened { report, read_only_report, fell_back, flagged } =
                reopen_damaged(dir.path(), &reference, &case);
            let named = report.rebuilt.iter().any(|n| n == name);
            cases += 1;
            if fate.in_body() && name.ends_with(".idx") {
                // The open checks an index file's header and binding only; its body is
                // checked when a read finds it disagreeing with the segment.
                body_flips_noticed += usize::from(named || fell_back);
                continue;
            }
            let Some(i) = segments.iter().position(|s| s.replace(".seg", ".idx") == *name) else {
                // A table: the other table or the index files stand in for it. The open
                // reads the body only of the table it takes; `verify` checks both.
                assert_eq!(report.segments_scanned, 0, "{case}: {report:?}");
                let damaged = !matches!(fate, Fate::Deleted | Fate::Swapped | Fate::Stale);
                let flagged = flagged.iter().any(|n| n == name);
                assert!(!damaged || named || flagged, "{case}: not named: {report:?}");
                assert!(!fate.in_body() || flagged, "{case}: verify did not name it");
                continue;
            };
            let last = i + 1 == segments.len();
            // The last segment's index file is written only by a clean close: missing, it is
            // just an unclean close.
            let named = read_only_report.rebuilt.iter().any(|n| n == name);
            assert!(
                named || (last && matches!(fate, Fate::Deleted)),
                "{case}: not named: {read_only_report:?}"
            );
            let scanned = read_only_report.segments_scanned;
            assert_eq!(scanned, segments.len() - i, "{case}: {read_only_report:?}");
            // The writable open took every segment from the table's list, and met the damaged
            // index file when it first used it (the reads use them all): rebuilt in memory, then
            // written anew in the background.
            assert_eq!(report.segments_scanned, 0, "{case}: {report:?}");
            // A missing one is seen at open (a `stat`); others when first used.
            if matches!(fate, Fate::Deleted) && !last {
                assert!(report.rebuilt.iter().any(|n| n == name), "{case}: {report:?}");
            }
            let rewritten = std::fs::read(dir.path().join(name)).unwrap_or_default();
            assert_eq!(rewritten.get(..64), Some(&files[name][..64]), "{case}: not rewritten");
        }
    }
    eprintln!("persisted: {cases} damaged cases, {body_flips_noticed} body flips noticed");
    assert!(body_flips_noticed > 0, "no flip in an index body was ever noticed by a read");

    // Every derived file at once.
    let dir = copy_store(reference_dir.path());
    crate::common::remove_derived_files(dir.path());
    let report = reopen_damaged(dir.path(), &reference, "all derived files deleted").report;
    assert_eq!(report.segments_scanned, segments.len(), "{report:?}");
    // Both tables: the fold of every index file stands in.
    let dir = copy_store(reference_dir.path());
    for table in ["streams.tbl", "streams.close.tbl"] {
        std::fs::remove_file(dir.path().join(table)).unwrap();
    }
    let report = reopen_damaged(dir.path(), &reference, "both tables deleted").report;
    assert_eq!(report.segments_scanned, 0, "{report:?}");
    assert!(report.rebuilt.iter().any(|n| n == "streams.tbl"), "{report:?}");
}

/// A cleanly closed store (its close table a durable mark at its head) whose last segment
/// holds events; returns its head.
fn build_closed(dir: &Path, durability: Durability) -> u64 {
    let store = open(dir, Options { durability, ..options() });
    append_rounds(&store, 5, 12, 0);
    // Events in the last segment too, so that cutting it loses some.
    let last_len = || std::fs::metadata(segment_paths(dir).pop().unwrap()).unwrap().len();
    while last_len() < 600 {
        store.append("tail", ExpectedVersion::Any, [event(0, 1)]).unwrap();
    }
    // Three appends of one event each: three batches, which the cut below removes whole.
    for n in 2..5 {
        store.append("tail", ExpectedVersion::Any, [event(0, n)]).unwrap();
    }
    let head = store.head().get();
    store.close();
    head
}

/// Cuts the last three records off the end of the last segment; returns how many events are left.
fn cut_last_records(dir: &Path, head: u64) -> u64 {
    let last = segment_paths(dir).pop().unwrap();
    let bytes = std::fs::read(&last).unwrap();
    let offsets = crate::recovery::record_offsets(&bytes);
    assert!(offsets.len() > 3, "the last segment holds {} records", offsets.len());
    let keep = offsets[offsets.len() - 3];
    std::fs::OpenOptions::new().write(true).open(&last).unwrap().set_len(keep as u64).unwrap();
    head - 3
}

/// The whole log as `$all` reads it.
fn all_events(store: &Store) -> Vec<(u64, String, u64, Vec<u8>)> {
    store
        .read_all_forward(Position::START, usize::MAX)
        .map(|e| e.unwrap())
        .map(|e| (e.position().get(), e.stream().to_owned(), e.version().get(), e.data().to_vec()))
        .collect()
}

fn assert_below_durable_mark(dir: &Path, head: u64, found: u64, case: &str) {
    match Store::open_with(dir, options()) {
        Err(Error::Corruption {
            kind: CorruptionKind::LogBelowDurableMark { durable, found: f },
            ..
        }) => {
            assert_eq!((durable, f), (head, found), "{case}");
        }
        Err(e) => panic!("{case}: failed otherwise: {e}"),
        Ok(store) => panic!("{case}: opened at {:?} below the durable {head}", store.head()),
    }
}

#[test]
fn persisted_last_segment_cut_from_outside_fails_below_the_durable_mark() {
    let dir = tempfile::tempdir().unwrap();
    let head = build_closed(dir.path(), Durability::Fsync);
    let before = all_events(&open(dir.path(), options()));
    let left = cut_last_records(dir.path(), head);
    assert_below_durable_mark(dir.path(), head, left, "three records cut");
    // Salvage opens read-only and reads what is left.
    let salvage = Options { recovery_mode: RecoveryMode::Salvage, ..options() };
    let store = Store::open_with(dir.path(), salvage).unwrap();
    assert_eq!(store.head().get(), left);
    assert_eq!(all_events(&store), before[..left as usize]);
    let refused = store.append("s-0", ExpectedVersion::Any, [event(0, 0)]);
    assert!(matches!(refused, Err(Error::ReadOnly)), "{refused:?}");
}

#[test]
fn persisted_last_segment_deleted_from_outside_fails_below_the_durable_mark() {
    let dir = tempfile::tempdir().unwrap();
    let head = build_closed(dir.path(), Durability::Fsync);
    let before = all_events(&open(dir.path(), options()));
    let mut segments = segment_paths(dir.path());
    assert!(segments.len() > 2);
    let last = segments.pop().unwrap();
    std::fs::remove_file(&last).unwrap();
    let store = Store::open_read_only(
        dir.path(),
        Options { recovery_mode: RecoveryMode::Salvage, ..options() },
    )
    .unwrap();
    let left = store.head().get();
    assert!(left < head);
    assert_eq!(all_events(&store), before[..left as usize]);
    drop(store);
    assert_below_durable_mark(dir.path(), head, left, "last segment deleted");
}

#[test]
fn persisted_without_fsync_a_cut_log_opens_shorter() {
    // Without fsync no table holds a durable mark: a shorter log is what a crash may leave.
    let dir = tempfile::tempdir().unwrap();
    let head = build_closed(dir.path(), Durability::None);
    let left = cut_last_records(dir.path(), head);
    let store = open(dir.path(), Options { durability: Durability::None, ..options() });
    assert_eq!(store.head().get(), left);
    drop(store);
    let mut segments = segment_paths(dir.path());
    std::fs::remove_file(segments.pop().unwrap()).unwrap();
    let store = open(dir.path(), Options { durability: Durability::None, ..options() });
    assert!(store.head().get() < left);
}
