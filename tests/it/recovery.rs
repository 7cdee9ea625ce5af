//! Recovery after crashes and damage: every torn form of the last append is cut and nothing
//! else is lost; damage that cannot be a torn write, bad headers, unknown format versions and
//! missing segments refuse to open without touching the files; a crash during rotation leaves
//! a header-less last segment that is removed; reopening after rotation and close keeps all.

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
};

use annal::{
    CorruptionKind, Error, ExpectedVersion, NewEvent, Options, Position, Store, StreamAppend,
    StreamVersion,
    format::{FORMAT_VERSION, RECORD_HEADER_LEN, SEGMENT_HEADER_LEN, SEGMENT_MAGIC},
};
use uuid::Uuid;

use crate::common::{event, fast_options, open, small_options};

/// An event as read back, comparable field by field.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Seen {
    position: u64,
    stream: String,
    version: u64,
    id: Uuid,
    event_type: String,
    data: Vec<u8>,
    metadata: Vec<u8>,
    timestamp_us: u64,
}

fn read_all(store: &Store) -> Vec<Seen> {
    store
        .read_all_forward(Position::START, usize::MAX)
        .map(|e| {
            let e = e.unwrap();
            Seen {
                position: e.position().get(),
                stream: e.stream().to_owned(),
                version: e.version().get(),
                id: e.id(),
                event_type: e.event_type().to_owned(),
                data: e.data().to_vec(),
                metadata: e.metadata().to_vec(),
                timestamp_us: e.timestamp_us(),
            }
        })
        .collect()
}

/// Asserts that the store holds exactly `expected` in `$all`, in every stream read and in its
/// head, and that the streams in `absent` do not exist.
fn assert_log(store: &Store, expected: &[Seen], absent: &[&str], context: &str) {
    assert_eq!(read_all(store), expected, "{context}: $all");
    assert_eq!(store.head(), Position(expected.len() as u64), "{context}: head");
    let mut streams: BTreeMap<&str, Vec<(u64, u64)>> = BTreeMap::new();
    for e in expected {
        streams.entry(&e.stream).or_default().push((e.version, e.position));
    }
    for (stream, want) in streams {
        let got: Vec<(u64, u64)> = store
            .read_stream_forward(stream, StreamVersion::START, usize::MAX)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (e.version().get(), e.position().get())
            })
            .collect();
        assert_eq!(got, want, "{context}: stream {stream}");
        let last = want.last().map(|&(v, _)| StreamVersion(v));
        assert_eq!(store.stream_version(stream), last, "{context}: {stream}");
    }
    for stream in absent {
        assert_eq!(store.stream_version(stream), None, "{context}: {stream}");
        assert!(
            matches!(
                store.read_stream_forward(stream, StreamVersion::START, 1),
                Err(Error::StreamNotFound { .. })
            ),
            "{context}: {stream} must not exist"
        );
    }
}

/// Every file of a directory (segments, derived files and the lock file) with its bytes, by
/// name. A file that vanishes between the listing and the read (an index file's temporary
/// name, renamed by a store's indexer meanwhile) is left out.
fn dir_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fs::read_dir(dir)
        .unwrap()
        .filter_map(|entry| {
            let entry = entry.unwrap();
            let name = entry.file_name().into_string().unwrap();
            match fs::read(entry.path()) {
                Ok(bytes) => Some((name, bytes)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => panic!("{name}: {e}"),
            }
        })
        .collect()
}

/// The segment files of a directory with their bytes, in log order.
fn segments(dir: &Path) -> Vec<(String, Vec<u8>)> {
    dir_files(dir).into_iter().filter(|(name, _)| name.ends_with(".seg")).collect()
}

fn last_segment_path(dir: &Path) -> PathBuf {
    dir.join(&segments(dir).last().unwrap().0)
}

fn segment_name(base_position: u64) -> String {
    format!("{base_position:020}.seg")
}

/// Byte offsets of the records of an undamaged segment file.
/// The offsets of the records of an undamaged segment file.
pub fn record_offsets(segment: &[u8]) -> Vec<usize> {
    let mut offsets = Vec::new();
    let mut at = SEGMENT_HEADER_LEN;
    while at < segment.len() {
        offsets.push(at);
        at += u32::from_le_bytes(segment[at..at + 4].try_into().unwrap()) as usize;
    }
    assert_eq!(at, segment.len(), "records end where the file ends");
    offsets
}

/// A segment header as the format document describes it, sealed with its checksum.
fn segment_header(base_position: u64, group_bytes_max: u32, version: u16) -> [u8; 32] {
    let mut b = [0u8; 32];
    b[0..8].copy_from_slice(&SEGMENT_MAGIC);
    b[8..10].copy_from_slice(&version.to_le_bytes());
    b[10..12].copy_from_slice(&(SEGMENT_HEADER_LEN as u16).to_le_bytes());
    b[12..16].copy_from_slice(&group_bytes_max.to_le_bytes());
    b[16..24].copy_from_slice(&base_position.to_le_bytes());
    reseal_header(&mut b);
    b
}

/// Recomputes the checksum of the segment header at the start of `bytes`.
fn reseal_header(bytes: &mut [u8]) {
    let crc = crc32fast::hash(&bytes[0..28]);
    bytes[28..32].copy_from_slice(&crc.to_le_bytes());
}

/// A seeded xorshift64 generator, for reproducible garbage.
struct XorShift(u64);

impl XorShift {
    fn fill(&mut self, bytes: &mut [u8]) {
        for b in bytes {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            *b = self.0 as u8;
        }
    }
}

/// A closed store of at least `segments_min` segments, with a mix of single-event, multi-event
/// and multi-stream appends. Returns the events it holds.
fn build_store(dir: &Path, options: Options, segments_min: usize) -> Vec<Seen> {
    let store = open(dir, options);
    let (mut step, mut n) = (0u64, 0u64);
    while store.stats().segments < segments_min || step < 4 {
        let stream = format!("s-{}", step % 5);
        match step % 3 {
            0 => {
                store.append(&stream, ExpectedVersion::Any, [event(n)]).unwrap();
            }
            1 => {
                let events = [event(n), event(n + 1).with_metadata(b"m".to_vec()), event(n + 2)];
                store.append(&stream, ExpectedVersion::Any, events).unwrap();
            }
            _ => {
                store
                    .append_multi([
                        StreamAppend::new(&stream, ExpectedVersion::Any, [event(n)]),
                        StreamAppend::new("other", ExpectedVersion::Any, [event(n + 1)]),
                    ])
                    .unwrap();
            }
        }
        n += 3;
        step += 1;
    }
    let events = read_all(&store);
    store.close();
    // These scenarios damage segments as a crash or the disk would, and expect the open to meet
    // the damage: without index files it scans every segment (see `remove_derived_files`).
    crate::common::remove_derived_files(dir);
    events
}

/// Writes `files` into `dir`.
fn write_files(dir: &Path, files: &[(String, Vec<u8>)]) {
    for (name, bytes) in files {
        fs::write(dir.join(name), bytes).unwrap();
    }
}

/// Asserts that opening `dir` fails with `check`'s error and leaves every file as it was.
fn assert_open_refused(dir: &Path, options: Options, check: impl FnOnce(&Error) -> bool) {
    let before = dir_files(dir);
    match Store::open_with(dir, options) {
        Ok(store) => panic!("open succeeded: {:?}", store.recovery_report()),
        Err(e) => assert!(check(&e), "unexpected error: {e:?}"),
    }
    assert!(dir_files(dir) == before, "a failed open changed the files");
}

/// How the final group of the log is damaged, at cut `c` bytes into it.
#[derive(Clone, Copy, Debug)]
enum Damage {
    /// The file ends `c` bytes into the group.
    Cut,
    /// The file is full length but the group's bytes from `c` on are zeros.
    ZeroedFrom,
    /// The group's bytes from `c` on are garbage.
    GarbageFrom,
    /// The group's first `c` bytes are zeros, the rest persisted.
    ZeroedBefore,
}

/// A closed store whose last append is one multi-stream group, kept in memory so that each
/// damaged copy costs a few file writes.
struct TailFixture {
    /// Segments before the last one, untouched by every case.
    sealed: Vec<(String, Vec<u8>)>,
    last_name: String,
    /// The last segment, final group included.
    last: Vec<u8>,
    /// Where the final group starts in the last segment.
    group_start: usize,
    /// Every event acknowledged before the final append.
    earlier: Vec<Seen>,
    /// The version of stream "a" before the final append (which appends to "a" and "d").
    a_version: u64,
}

impl TailFixture {
    fn build() -> TailFixture {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path(), small_options());
        store.append("a", ExpectedVersion::NoStream, [event(0)]).unwrap();
        store.append("b", ExpectedVersion::NoStream, [event(1), event(2), event(3)]).unwrap();
        store
            .append_multi([
                StreamAppend::new("a", ExpectedVersion::Exact(0), [event(4)]),
                StreamAppend::new("c", ExpectedVersion::NoStream, [event(5), event(6)]),
            ])
            .unwrap();
        let mut n = 7;
        while store.stats().segments < 2 {
            let stream = format!("s-{}", n % 3);
            store.append(&stream, ExpectedVersion::Any, [event(n), event(n + 1)]).unwrap();
            n += 2;
        }
        let meta = event(n).with_metadata(b"after rotation".to_vec());
        store.append("b", ExpectedVersion::StreamExists, [meta]).unwrap();
        let earlier = read_all(&store);
        let a_version = store.stream_version("a").unwrap().get();
        let segments_before = store.stats().segments;
        let last_path = last_segment_path(dir.path());
        let group_start = fs::metadata(&last_path).unwrap().len() as usize;
        store
            .append_multi([
                StreamAppend::new(
                    "a",
                    ExpectedVersion::Exact(a_version),
                    [event(900).with_metadata(b"final".to_vec()), event(901)],
                ),
                StreamAppend::new("d", ExpectedVersion::NoStream, [event(902)]),
            ])
            .unwrap();
        assert_eq!(store.stats().segments, segments_before, "no rotation");
        let group_end = fs::metadata(&last_path).unwrap().len() as usize;
        store.close();
        drop(store);
        let mut all = segments(dir.path());
        let (last_name, last) = all.pop().unwrap();
        assert_eq!(last.len(), group_end);
        assert_eq!(dir.path().join(&last_name), last_path);
        TailFixture { sealed: all, last_name, last, group_start, earlier, a_version }
    }

    fn group_len(&self) -> usize {
        self.last.len() - self.group_start
    }

    /// The last segment with the final group damaged as `damage` says, `c` bytes into it.
    fn damaged(&self, damage: Damage, c: usize) -> Vec<u8> {
        let at = self.group_start + c;
        let mut bytes = self.last.clone();
        match damage {
            Damage::Cut => bytes.truncate(at),
            Damage::ZeroedFrom => bytes[at..].fill(0),
            Damage::GarbageFrom => {
                XorShift(0x9E37_79B9_7F4A_7C15 ^ c as u64).fill(&mut bytes[at..])
            }
            Damage::ZeroedBefore => bytes[self.group_start..at].fill(0),
        }
        bytes
    }

    /// Opens a copy of the store with the damaged last segment and checks that exactly the
    /// final append is gone, that the log goes on after it, and that a reopen keeps that.
    fn check(&self, damage: Damage, c: usize) {
        let context = format!("{damage:?} at {c}");
        let last = self.damaged(damage, c);
        let dropped = (last.len() - self.group_start) as u64;
        let dir = tempfile::tempdir().unwrap();
        write_files(dir.path(), &self.sealed);
        write_files(dir.path(), &[(self.last_name.clone(), last)]);

        let store = open(dir.path(), fast_options());
        let report = store.recovery_report();
        assert_eq!(report.removed_segment, None, "{context}");
        assert_eq!(report.events, self.earlier.len() as u64, "{context}");
        assert_eq!(report.segments, self.sealed.len() + 1, "{context}");
        match &report.truncated {
            None => assert_eq!(dropped, 0, "{context}: damage left in place"),
            Some(torn) => {
                assert!(dropped > 0, "{context}: nothing to cut, yet {torn:?}");
                assert_eq!(torn.segment, self.last_name, "{context}");
                assert_eq!(torn.offset, self.group_start as u64, "{context}");
                assert_eq!(torn.bytes_dropped, dropped, "{context}");
                if let Damage::Cut = damage {
                    assert_eq!(torn.kind, CorruptionKind::Truncated, "{context}");
                }
            }
        }
        let cut_len = fs::metadata(dir.path().join(&self.last_name)).unwrap().len();
        assert_eq!(cut_len, self.group_start as u64, "{context}: file length");
        assert_log(&store, &self.earlier, &["d"], &context);

        let next = self.earlier.len() as u64;
        let r = store
            .append(
                "a",
                ExpectedVersion::Exact(self.a_version),
                [NewEvent::new("After", b"after".to_vec())],
            )
            .unwrap_or_else(|e| panic!("{context}: append after recovery: {e}"));
        assert_eq!(r.first_position, Position(next), "{context}");
        assert_eq!(r.first_version, StreamVersion(self.a_version + 1), "{context}");
        let mut expected = self.earlier.clone();
        expected.extend(read_all(&store).into_iter().skip(self.earlier.len()));
        assert_eq!(expected.len(), self.earlier.len() + 1, "{context}");
        assert_eq!(expected.last().unwrap().data, b"after", "{context}");
        drop(store);

        // Read-only sees the same durable bytes and takes no lock, which a process that another
        // test is spawning could still hold for a moment (see the ignored lock test in
        // `validation`); a thousand reopens here would find that moment.
        let store = Store::open_read_only(dir.path(), fast_options()).unwrap();
        let report = store.recovery_report();
        assert_eq!((&report.truncated, &report.removed_segment), (&None, &None), "{context}");
        assert_log(&store, &expected, &["d"], &format!("{context}, reopened"));
    }

    fn check_every_cut(&self, damage: Damage, first: usize) {
        assert!(self.group_len() > 3 * RECORD_HEADER_LEN, "the final group holds three records");
        for c in first..self.group_len() {
            self.check(damage, c);
        }
    }
}

#[test]
fn recovery_final_append_cut_at_every_length_is_dropped_whole() {
    TailFixture::build().check_every_cut(Damage::Cut, 0);
}

#[test]
fn recovery_final_append_zeroed_from_every_offset_is_dropped_whole() {
    TailFixture::build().check_every_cut(Damage::ZeroedFrom, 0);
}

#[test]
fn recovery_final_append_garbage_from_every_offset_is_dropped_whole() {
    TailFixture::build().check_every_cut(Damage::GarbageFrom, 0);
}

#[test]
fn recovery_final_append_with_lost_prefix_of_every_length_is_dropped_whole() {
    TailFixture::build().check_every_cut(Damage::ZeroedBefore, 1);
}

/// Flips one bit in the last byte of the record that starts at `offset`.
fn flip_record(path: &Path, offset: usize) {
    let mut bytes = fs::read(path).unwrap();
    let len = u32::from_le_bytes(bytes[offset..offset + 4].try_into().unwrap()) as usize;
    bytes[offset + len - 1] ^= 0x10;
    fs::write(path, bytes).unwrap();
}

#[test]
fn recovery_flipped_byte_in_sealed_segment_is_corruption_naming_record() {
    let dir = tempfile::tempdir().unwrap();
    build_store(dir.path(), small_options(), 4);
    let all = segments(dir.path());
    let group = small_options().group_bytes_max as usize;
    // In the first segment the third record is the middle one of a three-event append, so the
    // error must name the record's offset, not the batch's. A sealed segment's last record lies
    // within one group write of its end, where only the log's last segment may be torn.
    for (name, bytes) in &all[..all.len() - 1] {
        let offsets = record_offsets(bytes);
        let last = *offsets.last().unwrap();
        assert!(bytes.len() - last <= group);
        for target in [offsets[2], last] {
            let path = dir.path().join(name);
            flip_record(&path, target);
            assert_open_refused(dir.path(), small_options(), |e| {
                matches!(e, Error::Corruption { segment, offset, kind: CorruptionKind::Checksum }
                    if segment == name && *offset == target as u64)
            });
            fs::write(&path, bytes).unwrap();
        }
    }
    let store = open(dir.path(), small_options());
    assert_eq!(store.recovery_report().truncated, None);
}

/// Options with one long segment, so the last segment's start is far from its end.
fn long_segment_options() -> Options {
    Options { segment_bytes_max: 1 << 20, event_bytes_max: 2048, ..small_options() }
}

#[test]
fn recovery_flipped_byte_far_from_end_of_last_segment_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let options = long_segment_options();
    let store = open(dir.path(), options.clone());
    for n in 0..100 {
        store.append("s", ExpectedVersion::Any, [event(n), event(n + 1000)]).unwrap();
    }
    drop(store);
    crate::common::remove_derived_files(dir.path());
    let all = segments(dir.path());
    assert_eq!(all.len(), 1);
    let (name, bytes) = &all[0];
    let offsets = record_offsets(bytes);
    let target = offsets[1];
    assert!(bytes.len() - offsets[0] > options.group_bytes_max as usize);
    flip_record(&dir.path().join(name), target);
    assert_open_refused(dir.path(), options, |e| {
        matches!(e, Error::Corruption { segment, offset, kind: CorruptionKind::Checksum }
            if segment == name && *offset == target as u64)
    });
}

/// Event data that makes a record of stream "s" and type "T" exactly `len` bytes long.
fn sized_event(len: usize) -> NewEvent {
    NewEvent::new("T", vec![b'x'; len - RECORD_HEADER_LEN - 2])
}

#[test]
fn recovery_bad_batch_exactly_group_bytes_from_end_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let options = long_segment_options();
    let group = options.group_bytes_max as usize;
    let store = open(dir.path(), options.clone());
    for n in 0..30 {
        store.append("s", ExpectedVersion::Any, [event(n)]).unwrap();
    }
    let earlier = read_all(&store);
    let path = last_segment_path(dir.path());
    let start = fs::metadata(&path).unwrap().len() as usize;
    store.append("s", ExpectedVersion::Any, [sized_event(group)]).unwrap();
    drop(store);
    crate::common::remove_derived_files(dir.path());
    assert_eq!(fs::metadata(&path).unwrap().len() as usize, start + group);
    flip_record(&path, start);

    let store = open(dir.path(), options);
    let torn = store.recovery_report().truncated.clone().expect("cut");
    assert_eq!(
        (torn.offset, torn.bytes_dropped, torn.kind),
        (start as u64, group as u64, CorruptionKind::Checksum)
    );
    assert_log(&store, &earlier, &[], "after cut");
}

#[test]
fn recovery_bad_batch_one_byte_beyond_group_bytes_from_end_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let options = long_segment_options();
    let group = options.group_bytes_max as usize;
    let store = open(dir.path(), options.clone());
    for n in 0..30 {
        store.append("s", ExpectedVersion::Any, [event(n)]).unwrap();
    }
    let path = last_segment_path(dir.path());
    let start = fs::metadata(&path).unwrap().len() as usize;
    let smallest = RECORD_HEADER_LEN + 2;
    store.append("s", ExpectedVersion::Any, [sized_event(smallest)]).unwrap();
    store.append("s", ExpectedVersion::Any, [sized_event(group + 1 - smallest)]).unwrap();
    drop(store);
    crate::common::remove_derived_files(dir.path());
    assert_eq!(fs::metadata(&path).unwrap().len() as usize, start + group + 1);
    flip_record(&path, start);
    let name = segment_name(0);
    assert_open_refused(dir.path(), options, |e| {
        matches!(e, Error::Corruption { segment, offset, kind: CorruptionKind::Checksum }
            if *segment == name && *offset == start as u64)
    });
}

#[test]
fn recovery_header_less_last_segment_is_removed_and_log_continues() {
    let dir = tempfile::tempdir().unwrap();
    let events = build_store(dir.path(), small_options(), 3);
    let head = events.len() as u64;
    let group = small_options().group_bytes_max;
    let header = segment_header(head, group, FORMAT_VERSION);
    let mut unsealed = header;
    unsealed[28..32].fill(0);
    let torn: [(&str, &[u8]); 5] = [
        ("empty", &[]),
        ("one byte", &header[..1]),
        ("partial header", &header[..17]),
        ("header without checksum", &unsealed),
        ("zeroed header", &[0; 32]),
    ];
    let name = segment_name(head);
    for (what, bytes) in torn {
        let files = dir_files(dir.path());
        fs::write(dir.path().join(&name), bytes).unwrap();
        let store = open(dir.path(), small_options());
        let report = store.recovery_report();
        assert_eq!(report.removed_segment.as_deref(), Some(&*name), "{what}");
        assert_eq!(report.truncated, None, "{what}");
        assert_eq!(report.events, head, "{what}");
        let kept: BTreeMap<_, _> = segments(dir.path()).into_iter().collect();
        let before: BTreeMap<_, _> = files
            .iter()
            .filter(|(n, _)| n.ends_with(".seg"))
            .map(|(n, b)| (n.clone(), b.clone()))
            .collect();
        assert!(kept == before, "{what}: only the torn file goes");
        assert_log(&store, &events, &[], what);
        let r = store.append("s-0", ExpectedVersion::Any, [event(head)]).unwrap();
        assert_eq!(r.first_position, Position(head), "{what}");
        drop(store);

        let store = open(dir.path(), small_options());
        assert_eq!(store.recovery_report().removed_segment, None, "{what}");
        assert_eq!(read_all(&store).len() as u64, head + 1, "{what}");
        assert_eq!(read_all(&store)[..events.len()], events[..], "{what}");
        store.close();
        drop(store);
        // Restore the store to its state before this round (derived files included: the
        // stream table written on close now holds the appended event as durable).
        for name in dir_files(dir.path()).into_keys() {
            if !files.contains_key(&name) {
                fs::remove_file(dir.path().join(&name)).unwrap();
            }
        }
        write_files(dir.path(), &files.into_iter().collect::<Vec<_>>());
    }
}

#[test]
fn recovery_damaged_header_of_segment_with_records_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let events = build_store(dir.path(), small_options(), 3);
    let all = segments(dir.path());
    let (last_name, last) = all.last().unwrap();
    let path = dir.path().join(last_name);
    let cases: [(usize, CorruptionKind); 3] = [
        (0, CorruptionKind::BadMagic),
        (17, CorruptionKind::HeaderChecksum),
        (30, CorruptionKind::HeaderChecksum),
    ];
    for (at, kind) in cases {
        let mut bytes = last.clone();
        bytes[at] ^= 0x01;
        fs::write(&path, &bytes).unwrap();
        assert_open_refused(dir.path(), small_options(), |e| {
            matches!(e, Error::Corruption { segment, offset: 0, kind: k }
                if segment == last_name && *k == kind)
        });
    }
    // A header that passes its checksum but holds an impossible value (its own length).
    let mut bytes = last.clone();
    bytes[10] = 33;
    reseal_header(&mut bytes);
    fs::write(&path, &bytes).unwrap();
    assert_open_refused(dir.path(), small_options(), |e| {
        matches!(e, Error::Corruption { segment, offset: 0, kind: CorruptionKind::HeaderFields }
            if segment == last_name)
    });
    // One byte past the header is enough to make a bad header corruption, not a torn rotation.
    let head = events.len() as u64;
    let name = segment_name(head);
    fs::write(&path, last).unwrap();
    fs::write(dir.path().join(&name), [0u8; 33]).unwrap();
    assert_open_refused(dir.path(), small_options(), |e| {
        matches!(e, Error::Corruption { segment, offset: 0, kind: CorruptionKind::BadMagic }
            if *segment == name)
    });
    // A well-sealed header whose base position disagrees with the file name.
    let group = small_options().group_bytes_max;
    let mut bytes = segment_header(head + 1, group, FORMAT_VERSION).to_vec();
    bytes.push(0);
    fs::write(dir.path().join(&name), bytes).unwrap();
    assert_open_refused(dir.path(), small_options(), |e| {
        let gap = CorruptionKind::SegmentGap { expected: head, found: head + 1 };
        matches!(e, Error::Corruption { segment, offset: 0, kind }
            if *segment == name && *kind == gap)
    });
}

/// Regression: a refused open used to remove a torn rotation segment before it found the
/// damage it refused, so a failed open did not leave the files as it found them.
#[test]
fn recovery_refused_open_keeps_torn_rotation_segment() {
    let dir = tempfile::tempdir().unwrap();
    let events = build_store(dir.path(), small_options(), 3);
    let (first, bytes) = segments(dir.path()).swap_remove(0);
    let target = record_offsets(&bytes)[2];
    flip_record(&dir.path().join(&first), target);
    let head = events.len() as u64;
    let header = segment_header(head, small_options().group_bytes_max, FORMAT_VERSION);
    fs::write(dir.path().join(segment_name(head)), &header[..17]).unwrap();
    assert_open_refused(dir.path(), small_options(), |e| {
        matches!(e, Error::Corruption { segment, offset, kind: CorruptionKind::Checksum }
            if *segment == first && *offset == target as u64)
    });
}

#[test]
fn recovery_other_format_version_is_unsupported() {
    let dir = tempfile::tempdir().unwrap();
    build_store(dir.path(), small_options(), 2);
    let all = segments(dir.path());
    let (name, bytes) = &all[0];
    let group = small_options().group_bytes_max;
    assert_eq!(
        bytes[..32],
        segment_header(0, group, FORMAT_VERSION),
        "the test's header encoding matches the store's"
    );
    let mut bytes = bytes.clone();
    bytes[..32].copy_from_slice(&segment_header(0, group, FORMAT_VERSION + 1));
    fs::write(dir.path().join(name), bytes).unwrap();
    assert_open_refused(dir.path(), small_options(), |e| {
        matches!(e, Error::UnsupportedFormat { segment, found, supported }
            if segment == name && *found == FORMAT_VERSION + 1 && *supported == FORMAT_VERSION)
    });
}

#[test]
fn recovery_missing_middle_segment_is_segment_gap() {
    let dir = tempfile::tempdir().unwrap();
    build_store(dir.path(), small_options(), 3);
    let all = segments(dir.path());
    let base = |name: &str| name[..20].parse::<u64>().unwrap();
    fs::remove_file(dir.path().join(&all[1].0)).unwrap();
    let (after, missing) = (&all[2].0, base(&all[1].0));
    assert_open_refused(dir.path(), small_options(), |e| {
        let gap = CorruptionKind::SegmentGap { expected: missing, found: base(after) };
        matches!(e, Error::Corruption { segment, offset: 0, kind }
            if segment == after && *kind == gap)
    });
}

#[test]
fn recovery_reopen_cycles_with_rotation_keep_every_event() {
    let dir = tempfile::tempdir().unwrap();
    let mut expected: Vec<Seen> = Vec::new();
    let mut n = 0u64;
    for cycle in 0..6 {
        let store = open(dir.path(), small_options());
        let report = store.recovery_report();
        assert_eq!((&report.truncated, &report.removed_segment), (&None, &None), "cycle {cycle}");
        assert_eq!(report.events, expected.len() as u64, "cycle {cycle}");
        assert_eq!(report.segments, segments(dir.path()).len(), "cycle {cycle}");
        assert_log(&store, &expected, &[], &format!("cycle {cycle}"));
        for step in 0..40u64 {
            let stream = format!("r-{}", step % 4);
            if step.is_multiple_of(2) {
                store.append(&stream, ExpectedVersion::Any, [event(n), event(n + 1)]).unwrap();
            } else {
                store
                    .append_multi([
                        StreamAppend::new(&stream, ExpectedVersion::Any, [event(n)]),
                        StreamAppend::new("shared", ExpectedVersion::Any, [event(n + 1)]),
                    ])
                    .unwrap();
            }
            n += 2;
        }
        expected = read_all(&store);
        assert_eq!(expected.len() as u64, n, "cycle {cycle}");
        for e in &expected {
            assert_eq!(e.data, format!("event-{}", e.position).into_bytes());
        }
        if cycle % 2 == 0 {
            store.close();
        }
    }
    let store = open(dir.path(), small_options());
    assert_log(&store, &expected, &[], "last");
    assert!(store.stats().segments > 6, "the log rotated many times");
}

/// Regression: recovery used to treat the segment before a removed header-less segment as the
/// last one and cut damage at its end as a torn tail, dropping acknowledged events. That
/// segment was fsynced before the removed file was created, so the damage is corruption.
#[test]
fn recovery_damage_before_removed_rotation_segment_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let events = build_store(dir.path(), small_options(), 2);
    let (name, bytes) = segments(dir.path()).pop().unwrap();
    let target = *record_offsets(&bytes).last().unwrap();
    flip_record(&dir.path().join(&name), target);
    fs::write(dir.path().join(segment_name(events.len() as u64)), []).unwrap();
    match Store::open_with(dir.path(), small_options()) {
        Err(Error::Corruption { segment, offset, .. }) => {
            assert_eq!((segment, offset), (name, target as u64));
        }
        Err(e) => panic!("unexpected error: {e:?}"),
        Ok(store) => panic!("acknowledged events dropped: {:?}", store.recovery_report()),
    }
}
