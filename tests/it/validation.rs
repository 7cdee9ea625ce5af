//! What the store refuses: a directory another store holds (in this process or another), bad
//! names, oversized, empty or duplicated appends, failed version checks and inconsistent
//! options. Every refusal carries its typed error and writes nothing, not even after a reopen.

use std::{
    collections::BTreeMap,
    fs,
    os::fd::{BorrowedFd, RawFd},
    path::Path,
    process::Command,
};

use annal::{
    Durability, Error, ExpectedVersion, Limit, NewEvent, Options, OptionsViolation, Position,
    Result, Store, StreamAppend, StreamVersion,
};
use tempfile::TempDir;
use uuid::Uuid;

use crate::common::{event, open, small_options};

/// The stream every fixture starts with, holding versions 0 and 1.
const EXISTING: &str = "existing";

/// Carries the store directory to the child process of the cross-process lock test.
const LOCK_CHILD_DIR: &str = "ANNAL_TEST_LOCK_CHILD_DIR";

fn segment_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap())
        .filter(|entry| entry.file_name().to_string_lossy().ends_with(".seg"))
        .map(|entry| {
            let name = entry.file_name().into_string().unwrap();
            (name, fs::read(entry.path()).unwrap())
        })
        .collect()
}

/// A store holding two events in [`EXISTING`], and the bytes of its segment files, so that a
/// refused append can be shown to have written nothing.
struct Fixture {
    dir: TempDir,
    options: Options,
    store: Store,
    segments: BTreeMap<String, Vec<u8>>,
}

impl Fixture {
    fn new(options: Options) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path(), options.clone());
        store.append(EXISTING, ExpectedVersion::NoStream, [event(0), event(1)]).unwrap();
        let segments = segment_files(dir.path());
        Fixture { dir, options, store, segments }
    }

    /// Asserts that the log is as the fixture made it: two events, both in [`EXISTING`], none
    /// in any other of `streams`, and the segment files byte for byte as they were.
    fn assert_untouched(&self, streams: &[&str], context: &str) {
        assert_eq!(self.store.head(), Position(2), "{context}: head");
        assert_eq!(
            self.store.stream_version(EXISTING),
            Some(StreamVersion(1)),
            "{context}: {EXISTING}"
        );
        for stream in streams.iter().filter(|&&s| s != EXISTING) {
            assert_eq!(self.store.stream_version(stream), None, "{context}: {stream:?}");
        }
        assert!(
            segment_files(self.dir.path()) == self.segments,
            "{context}: segment files changed"
        );
    }

    /// Asserts that `outcome` is an error `check` accepts and that nothing was written.
    fn refused<T: std::fmt::Debug>(
        &self,
        outcome: Result<T>,
        streams: &[&str],
        check: impl FnOnce(&Error) -> bool,
    ) {
        let context = format!("{outcome:?}");
        match &outcome {
            Ok(_) => panic!("accepted: {context}"),
            Err(e) => assert!(check(e), "unexpected error: {e:?}"),
        }
        self.assert_untouched(streams, &context);
    }

    /// Reopens the store and checks again that nothing was written.
    fn reopen(self, streams: &[&str]) -> Fixture {
        let Fixture { dir, options, store, segments } = self;
        drop(store);
        let store = open(dir.path(), options.clone());
        let fixture = Fixture { dir, options, store, segments };
        assert_eq!(fixture.store.recovery_report().truncated, None);
        fixture.assert_untouched(streams, "after reopen");
        fixture
    }
}

#[test]
fn validation_second_open_in_process_is_locked_until_dropped_or_closed() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.append("s", ExpectedVersion::NoStream, [event(0)]).unwrap();
    let clone = store.clone();
    let locked = |outcome: Result<Store>| match outcome {
        Err(Error::Locked { dir: d }) => d == dir.path(),
        _ => false,
    };
    assert!(locked(Store::open(dir.path())));
    assert!(locked(Store::open_with(dir.path(), small_options())));
    drop(store);
    assert!(locked(Store::open(dir.path())), "a clone still holds it");
    drop(clone);

    let again = Store::open(dir.path()).unwrap();
    assert_eq!(again.head(), Position(1));
    assert!(locked(Store::open(dir.path())));
    again.close();
    let third = Store::open(dir.path()).expect("close releases the lock");
    let late = again.append("s", ExpectedVersion::Any, [event(1)]);
    assert!(matches!(late, Err(Error::Closed)), "{late:?}");
    assert_eq!(third.head(), Position(1));
}

/// Runs [`validation_lock_child_prints_open_outcome`] in a child process on `dir` and returns
/// what it printed.
fn open_in_child(dir: &Path) -> String {
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "validation::validation_lock_child_prints_open_outcome",
            "--include-ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(LOCK_CHILD_DIR, dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "child failed: {stdout}");
    stdout
}

#[test]
fn validation_open_from_another_process_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), small_options());
    store.append("s", ExpectedVersion::NoStream, [event(0)]).unwrap();
    let stdout = open_in_child(dir.path());
    assert!(stdout.contains("lock-child: locked\n"), "{stdout}");
    assert_eq!(store.head(), Position(1), "the child changed nothing");
    drop(store);
    let stdout = open_in_child(dir.path());
    assert!(stdout.contains("lock-child: opened 1\n"), "{stdout}");
}

/// The child half of [`validation_open_from_another_process_is_locked`]: opens the directory
/// named by the environment and prints the outcome. Without the variable it does nothing.
#[test]
#[ignore = "runs only as the child process of validation_open_from_another_process_is_locked"]
fn validation_lock_child_prints_open_outcome() {
    let Some(dir) = std::env::var_os(LOCK_CHILD_DIR) else {
        return;
    };
    let outcome = match Store::open_with(&dir, small_options()) {
        Ok(store) => format!("opened {}", store.head()),
        Err(Error::Locked { .. }) => "locked".to_owned(),
        Err(e) => format!("error {e}"),
    };
    println!("lock-child: {outcome}");
}

/// The descriptor of `path` among this process's open descriptors.
fn open_descriptor_of(path: &Path) -> RawFd {
    let path = path.canonicalize().unwrap();
    fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let target = fs::read_link(entry.path()).ok()?;
            let fd = entry.file_name().to_str()?.parse().ok()?;
            (target == path).then_some(fd)
        })
        .next()
        .expect("an open descriptor")
}

/// A process that spawns a child shares every open file description with it until the child
/// execs. A store dropped in that window must still release its lock, or an immediate reopen
/// fails. The test makes that window last by duplicating the lock descriptor as fork does.
#[test]
#[expect(unsafe_code, reason = "duplicates the store's lock descriptor, as fork would")]
fn validation_dropped_store_releases_lock_even_if_descriptor_is_shared() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), small_options());
    let fd = open_descriptor_of(&dir.path().join("LOCK"));
    // SAFETY: `fd` is the lock file the store owns, and the store lives until after the dup.
    let inherited = unsafe { BorrowedFd::borrow_raw(fd) }.try_clone_to_owned().unwrap();
    drop(store);
    let reopened = Store::open_with(dir.path(), small_options());
    drop(inherited);
    assert!(reopened.is_ok(), "{:?}", reopened.err());
}

#[test]
fn validation_bad_stream_names_are_refused_and_write_nothing() {
    let fixture = Fixture::new(small_options());
    // 254 and 255 bytes fit a record, but not the stream's metadata stream `$$<name>`.
    let (long, longer, longest) = ("x".repeat(254), "x".repeat(255), "x".repeat(256));
    let long_chars = "é".repeat(127);
    let bad = [
        "",
        &*long,
        &*longer,
        &*longest,
        &*long_chars,
        "line\nbreak",
        "tab\there",
        "nul\0",
        "del\u{7f}",
        "next-line\u{85}",
        "$all",
        "$mine",
    ];
    for name in bad {
        let is_bad_name =
            |e: &Error| matches!(e, Error::InvalidStreamName { name: n, .. } if n == name);
        let outcome = fixture.store.append(name, ExpectedVersion::Any, [event(9)]);
        fixture.refused(outcome, &[name], is_bad_name);
        let outcome = fixture.store.append_multi([
            StreamAppend::new("fresh", ExpectedVersion::Any, [event(9)]),
            StreamAppend::new(name, ExpectedVersion::Any, [event(10)]),
        ]);
        fixture.refused(outcome, &[name, "fresh"], is_bad_name);
    }
    let fixture = fixture.reopen(&bad);

    let longest = "x".repeat(annal::STREAM_NAME_BYTES_MAX);
    let longest_chars = "é".repeat(126) + "a";
    for name in [&*longest, &*longest_chars, "a$", "ünïcødé stream"] {
        let r = fixture
            .store
            .append(name, ExpectedVersion::NoStream, [event(9)])
            .unwrap_or_else(|e| panic!("{name:?}: {e}"));
        assert_eq!(r.first_version, StreamVersion(0));
        let read: Vec<_> = fixture
            .store
            .read_stream_forward(name, StreamVersion::START, 10)
            .unwrap()
            .map(|e| e.unwrap().stream().to_owned())
            .collect();
        assert_eq!(read, [name]);
    }
}

#[test]
fn validation_streams_of_254_and_255_bytes_written_before_stay_readable() {
    // Names of 254 and 255 bytes were accepted until their metadata streams were found not to
    // fit a record. The fixture was written then (format version 2): "short" v0, the 254- and
    // 255-byte streams with two events each, "short" v1. Such a store still opens and reads,
    // and every write to those streams is refused, as for a new store.
    let fixture_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v2-names-254-255");
    let dir = tempfile::tempdir().unwrap();
    for entry in fs::read_dir(&fixture_dir).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    let store = open(dir.path(), small_options());
    assert_eq!(store.recovery_report().truncated, None);
    assert_eq!(store.head(), Position(6));
    for len in [254, 255] {
        let name = "x".repeat(len);
        let data: Vec<_> = store
            .read_stream_forward(&name, StreamVersion::START, 10)
            .unwrap()
            .map(|e| String::from_utf8(e.unwrap().data().to_vec()).unwrap())
            .collect();
        assert_eq!(data, [format!("{len}-0"), format!("{len}-1")]);
        let mut sub = store.subscribe_to_stream(&name, StreamVersion::START).unwrap();
        assert_eq!(sub.try_recv().unwrap().map(|e| e.version()), Some(StreamVersion(0)));
        assert_eq!(store.stream_metadata(&name).unwrap(), None);
        let is_bad_name =
            |e: &Error| matches!(e, Error::InvalidStreamName { name: n, .. } if *n == name);
        let appended = store.append(&name, ExpectedVersion::Any, [event(9)]);
        assert!(appended.as_ref().is_err_and(is_bad_name), "{appended:?}");
        let deleted = store.delete_stream(&name, ExpectedVersion::Any);
        assert!(deleted.as_ref().is_err_and(is_bad_name), "{deleted:?}");
    }
    store.append("short", ExpectedVersion::Exact(1), [event(9)]).unwrap();
    drop(store);
    let store = open(dir.path(), small_options());
    assert_eq!(store.head(), Position(7));
    assert_eq!(store.stream_version("short"), Some(StreamVersion(2)));
}

#[test]
fn validation_bad_event_types_are_refused_and_write_nothing() {
    let fixture = Fixture::new(small_options());
    let long = "T".repeat(256);
    for event_type in ["", &*long, "nul\0", "line\nbreak", "esc\u{1b}"] {
        let is_bad_type = |e: &Error| match e {
            Error::InvalidEventType { event_type: t, .. } => t == event_type,
            _ => false,
        };
        let events = [event(9), NewEvent::new(event_type, b"x".to_vec())];
        let outcome = fixture.store.append(EXISTING, ExpectedVersion::Any, events);
        fixture.refused(outcome, &[], is_bad_type);
        let outcome = fixture.store.append_multi([
            StreamAppend::new("fresh", ExpectedVersion::Any, [event(9)]),
            StreamAppend::new(
                "other",
                ExpectedVersion::Any,
                [NewEvent::new(event_type, Vec::new())],
            ),
        ]);
        fixture.refused(outcome, &["fresh", "other"], is_bad_type);
    }
    let fixture = fixture.reopen(&["fresh", "other"]);

    let longest = "T".repeat(annal::EVENT_TYPE_BYTES_MAX);
    fixture
        .store
        .append("fresh", ExpectedVersion::NoStream, [NewEvent::new(&*longest, Vec::new())])
        .unwrap();
    let read = fixture
        .store
        .read_stream_forward("fresh", StreamVersion::START, 1)
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(read.event_type(), longest);
}

/// An event of type "T" whose record in `stream` is exactly `len` bytes (data and metadata
/// share the payload, to show that both count).
fn sized_event(stream: &str, len: usize) -> NewEvent {
    let payload = len - annal::format::RECORD_HEADER_LEN - stream.len() - 1;
    NewEvent::new("T", vec![b'd'; payload / 2]).with_metadata(vec![b'm'; payload - payload / 2])
}

/// Bytes of the smallest record: a header, a one-byte stream name and a one-byte type.
const SMALLEST_RECORD: u32 = annal::format::RECORD_HEADER_LEN as u32 + 2;

fn is_limit(limit: Limit, actual: u64, max: u64) -> impl FnOnce(&Error) -> bool {
    move |e| {
        matches!(e, Error::LimitExceeded { limit: l, actual: a, max: m }
            if *l == limit && *a == actual && *m == max)
    }
}

#[test]
fn validation_appends_over_limits_are_refused_and_write_nothing() {
    let options = small_options();
    let (event_max, events_max, bytes_max) = (1024, 16, 2048);
    assert_eq!(
        (options.event_bytes_max, options.append_events_max, options.append_bytes_max),
        (event_max, events_max, bytes_max)
    );
    let fixture = Fixture::new(options);
    let store = &fixture.store;
    let (event_max, events_max, bytes_max) = (event_max as usize, events_max as u64, bytes_max);

    let big = sized_event("big", event_max + 1);
    let outcome = store.append("big", ExpectedVersion::Any, [event(9), big]);
    fixture.refused(outcome, &["big"], is_limit(Limit::EventBytes, 1025, 1024));
    let header = annal::format::RECORD_HEADER_LEN;
    let only_data = NewEvent::new("T", vec![0u8; event_max + 1 - header - 3 - 1]);
    let outcome = store.append("big", ExpectedVersion::Any, [only_data]);
    fixture.refused(outcome, &["big"], is_limit(Limit::EventBytes, 1025, 1024));

    let many = (0..=events_max).map(event);
    let outcome = store.append("many", ExpectedVersion::Any, many);
    fixture.refused(outcome, &["many"], is_limit(Limit::AppendEvents, 17, 16));
    let outcome = store.append_multi([
        StreamAppend::new("many", ExpectedVersion::Any, (0..9).map(event)),
        StreamAppend::new("more", ExpectedVersion::Any, (9..18).map(event)),
    ]);
    fixture.refused(outcome, &["many", "more"], is_limit(Limit::AppendEvents, 18, 16));

    let heavy = (0..3).map(|_| sized_event("heavy", 700));
    let outcome = store.append("heavy", ExpectedVersion::Any, heavy);
    fixture.refused(outcome, &["heavy"], is_limit(Limit::AppendBytes, 2100, bytes_max.into()));
    let outcome = store.append_multi([
        StreamAppend::new("heavy", ExpectedVersion::Any, [sized_event("heavy", 1000)]),
        StreamAppend::new("large", ExpectedVersion::Any, [sized_event("large", 1000)]),
        StreamAppend::new("x", ExpectedVersion::Any, [sized_event("x", 100)]),
    ]);
    let streams = ["heavy", "large", "x"];
    fixture.refused(outcome, &streams, is_limit(Limit::AppendBytes, 2100, 2048));
    let fixture = fixture.reopen(&["big", "many", "more", "heavy", "large", "x"]);

    // Exactly at each limit is accepted.
    let store = &fixture.store;
    let r =
        store.append("big", ExpectedVersion::NoStream, [sized_event("big", event_max)]).unwrap();
    let read = store.read_all_forward(r.first_position, 1).next().unwrap();
    assert_eq!(read.unwrap().encoded_len(), event_max);
    let r = store.append("many", ExpectedVersion::NoStream, (0..events_max).map(event)).unwrap();
    assert_eq!(r.last_version, StreamVersion(events_max - 1));
    let two = [sized_event("heavy", 1024), sized_event("heavy", 1024)];
    store.append("heavy", ExpectedVersion::NoStream, two).unwrap();
    assert_eq!(store.head(), Position(2 + 1 + events_max + 2));
}

#[test]
fn validation_empty_and_duplicated_appends_are_refused_and_write_nothing() {
    let options = Options { append_events_max: 64, ..small_options() };
    let fixture = Fixture::new(options);
    let store = &fixture.store;
    let is_empty = |e: &Error| matches!(e, Error::EmptyAppend);

    let outcome = store.append("fresh", ExpectedVersion::Any, []);
    fixture.refused(outcome, &["fresh"], is_empty);
    fixture.refused(store.append_multi([]), &[], is_empty);
    let outcome = store.append_multi([
        StreamAppend::new("fresh", ExpectedVersion::Any, [event(9)]),
        StreamAppend::new("other", ExpectedVersion::Any, []),
    ]);
    fixture.refused(outcome, &["fresh", "other"], is_empty);

    for stream in ["fresh", EXISTING] {
        let outcome = store.append_multi([
            StreamAppend::new(stream, ExpectedVersion::Any, [event(9)]),
            StreamAppend::new(stream, ExpectedVersion::Any, [event(10)]),
        ]);
        let is_duplicate =
            |e: &Error| matches!(e, Error::DuplicateStream { stream: s } if s == stream);
        fixture.refused(outcome, &[stream], is_duplicate);
    }

    let id = Uuid::from_u128(0xD0D0);
    let is_duplicate_id = |e: &Error| matches!(e, Error::DuplicateEventId { id: i } if *i == id);
    let twice = [event(9).with_id(id), event(10), event(11).with_id(id)];
    let outcome = store.append("fresh", ExpectedVersion::Any, twice);
    fixture.refused(outcome, &["fresh"], is_duplicate_id);
    let outcome = store.append_multi([
        StreamAppend::new("fresh", ExpectedVersion::Any, [event(9).with_id(id)]),
        StreamAppend::new("other", ExpectedVersion::Any, [event(10).with_id(id)]),
    ]);
    fixture.refused(outcome, &["fresh", "other"], is_duplicate_id);
    // More than a handful of ids take another path through the duplicate check.
    let mut many: Vec<NewEvent> =
        (0..20).map(|n| event(n).with_id(Uuid::from_u128(n.into()))).collect();
    many[19].id = many[3].id;
    let duplicate = many[3].id.unwrap();
    let outcome = store.append("fresh", ExpectedVersion::Any, many);
    fixture.refused(
        outcome,
        &["fresh"],
        |e| matches!(e, Error::DuplicateEventId { id } if *id == duplicate),
    );

    fixture.reopen(&["fresh", "other"]);
}

/// `(stream holds versions 0 and 1, expected, Ok(first version) or Err(actual))`.
type VersionCase = (bool, ExpectedVersion, std::result::Result<u64, Option<u64>>);

#[test]
fn validation_expected_version_mismatch_reports_stream_expected_and_actual() {
    use ExpectedVersion::{Any, Exact, NoStream, StreamExists};
    let cases: [VersionCase; 11] = [
        (false, Any, Ok(0)),
        (false, NoStream, Ok(0)),
        (false, StreamExists, Err(None)),
        (false, Exact(0), Err(None)),
        (true, Any, Ok(2)),
        (true, NoStream, Err(Some(1))),
        (true, StreamExists, Ok(2)),
        (true, Exact(1), Ok(2)),
        (true, Exact(0), Err(Some(1))),
        (true, Exact(2), Err(Some(1))),
        (true, Exact(u64::MAX), Err(Some(1))),
    ];
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), small_options());
    let mut head = 0;
    let mut versions = Vec::new();
    for (i, &(exists, expected, outcome)) in cases.iter().enumerate() {
        let stream = format!("case-{i}");
        if exists {
            store.append(&stream, NoStream, [event(0), event(1)]).unwrap();
            head += 2;
        }
        let before = store.stream_version(&stream);
        let got = store.append(&stream, expected, [event(2)]);
        let context = format!("case {i}: {expected:?} on {before:?}");
        match (got, outcome) {
            (Ok(r), Ok(version)) => {
                assert_eq!(r.first_version, StreamVersion(version), "{context}");
                assert_eq!(r.first_position, Position(head), "{context}");
                head += 1;
            }
            (Err(Error::WrongExpectedVersion { stream: s, expected: e, actual }), Err(want)) => {
                assert_eq!((s, e, actual), (stream.clone(), expected, want), "{context}");
                assert_eq!(store.stream_version(&stream), before, "{context}");
            }
            (got, _) => panic!("{context}: {got:?}"),
        }
        assert_eq!(store.head(), Position(head), "{context}");
        versions.push(store.stream_version(&stream));
    }

    // A multi-stream append fails whole when any part's check fails.
    let outcome = store.append_multi([
        StreamAppend::new("multi-ok", NoStream, [event(3)]),
        StreamAppend::new("case-4", NoStream, [event(4)]),
    ]);
    match outcome {
        Err(Error::WrongExpectedVersion { stream, expected, actual }) => {
            assert_eq!((stream.as_str(), expected, actual), ("case-4", NoStream, Some(2)));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(store.stream_version("multi-ok"), None);
    assert_eq!(store.head(), Position(head));

    drop(store);
    let store = open(dir.path(), small_options());
    assert_eq!(store.head(), Position(head));
    assert_eq!(store.stream_version("multi-ok"), None);
    for (i, version) in versions.into_iter().enumerate() {
        assert_eq!(store.stream_version(&format!("case-{i}")), version, "case {i}");
    }
}

#[test]
fn validation_inconsistent_options_are_refused_before_creating_anything() {
    let base = small_options;
    let cases: [(&str, Options); 11] = [
        ("group below append", Options { group_bytes_max: 2047, ..base() }),
        ("append below event", Options { append_bytes_max: 1023, ..base() }),
        ("event below smallest record", Options { event_bytes_max: 57, ..base() }),
        ("no events per append", Options { append_events_max: 0, ..base() }),
        ("too many events per append", Options { append_events_max: 65_537, ..base() }),
        ("segment below header + append", Options { segment_bytes_max: 32 + 2047, ..base() }),
        ("segment over 4 GiB", Options { segment_bytes_max: 1 << 32, ..base() }),
        ("no appends per group", Options { group_appends_max: 0, ..base() }),
        ("no queue", Options { queue_capacity: 0, ..base() }),
        ("no index stride", Options { index_stride: 0, ..base() }),
        (
            "default group below append",
            Options { append_bytes_max: 16 << 20, ..Options::default() },
        ),
    ];
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("store");
    for (what, options) in cases {
        match Store::open_with(&dir, options) {
            Err(Error::InvalidOptions(_)) => {}
            other => panic!("{what}: {other:?}"),
        }
        assert!(!dir.exists(), "{what}: the directory was created");
    }
    assert_eq!(fs::read_dir(parent.path()).unwrap().count(), 0);
}

#[test]
fn validation_options_builder_names_every_broken_rule_at_once() {
    let invalid = Options::builder()
        .event_bytes_max(8)
        .append_events_max(0)
        .append_bytes_max(4)
        .group_bytes_max(2)
        .segment_bytes_max(1 << 32)
        .queue_capacity(0)
        .index_stride(0)
        .build()
        .unwrap_err();
    let expected = [
        OptionsViolation::EventBytesBelowSmallestRecord { event_bytes_max: 8, smallest: 66 },
        OptionsViolation::AppendEventsOutOfRange { append_events_max: 0 },
        OptionsViolation::AppendBytesBelowEventBytes { append_bytes_max: 4, event_bytes_max: 8 },
        OptionsViolation::GroupBytesBelowAppendBytes { group_bytes_max: 2, append_bytes_max: 4 },
        OptionsViolation::SegmentOver4GiB { segment_bytes_max: 1 << 32 },
        OptionsViolation::Zero { option: "queue_capacity" },
        OptionsViolation::Zero { option: "index_stride" },
    ];
    assert_eq!(invalid.violations(), expected);
    // The store's own check names them all too, each as the builder words it.
    let options = Options {
        event_bytes_max: 8,
        append_events_max: 0,
        append_bytes_max: 4,
        group_bytes_max: 2,
        segment_bytes_max: 1 << 32,
        queue_capacity: 0,
        index_stride: 0,
        ..Options::default()
    };
    let parent = tempfile::tempdir().unwrap();
    match Store::open_with(parent.path().join("store"), options) {
        Err(Error::InvalidOptions(message)) => {
            for violation in &expected {
                assert!(message.contains(&violation.to_string()), "{violation} not in {message}");
            }
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn validation_options_builder_sets_what_it_is_given() {
    let options = Options::builder()
        .durability(Durability::None)
        .segment_bytes_max(1 << 20)
        .event_bytes_max(1024)
        .append_bytes_max(4096)
        .group_bytes_max(8192)
        .index_stride(4)
        .build()
        .unwrap();
    assert_eq!(options.durability, Durability::None);
    assert_eq!(options.segment_bytes_max, 1 << 20);
    assert_eq!(options.event_bytes_max, 1024);
    assert_eq!(options.append_bytes_max, 4096);
    assert_eq!(options.group_bytes_max, 8192);
    assert_eq!(options.index_stride, 4);
    assert_eq!(options.queue_capacity, Options::default().queue_capacity);
    assert!(options.violations().is_empty());
}

#[test]
fn validation_options_at_their_bounds_are_accepted() {
    let base = small_options;
    let cases: [(&str, Options); 4] = [
        ("most events per append", Options { append_events_max: 65_536, ..base() }),
        ("smallest segment", Options { segment_bytes_max: 32 + 2048, ..base() }),
        ("largest segment", Options { segment_bytes_max: u64::from(u32::MAX), ..base() }),
        (
            "smallest record",
            Options {
                event_bytes_max: SMALLEST_RECORD,
                append_bytes_max: SMALLEST_RECORD,
                group_bytes_max: SMALLEST_RECORD,
                segment_bytes_max: 32 + SMALLEST_RECORD as u64,
                ..base()
            },
        ),
    ];
    for (what, options) in cases {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_with(dir.path(), options);
        let store = store.unwrap_or_else(|e| panic!("{what}: {e}"));
        let r = store
            .append("s", ExpectedVersion::NoStream, [NewEvent::new("T", Vec::new())])
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(r.first_position, Position(0), "{what}");
    }
}

#[test]
fn validation_reading_missing_stream_is_stream_not_found() {
    let fixture = Fixture::new(small_options());
    let store = &fixture.store;
    let not_found = |outcome: Result<annal::ReadStream>| match outcome {
        Err(Error::StreamNotFound { stream }) => stream == "missing",
        _ => false,
    };
    assert!(not_found(store.read_stream_forward("missing", StreamVersion::START, 10)));
    assert!(not_found(store.read_stream_backward("missing", StreamVersion::END, 10)));
    // A refused append does not bring the stream into being.
    let outcome = store.append("missing", ExpectedVersion::StreamExists, [event(9)]);
    fixture.refused(outcome, &["missing"], |e| {
        matches!(e, Error::WrongExpectedVersion { actual: None, .. })
    });
    assert!(not_found(store.read_stream_forward("missing", StreamVersion::START, 10)));
    // A stream that exists but has nothing past the version read from is not missing.
    let past_end = store.read_stream_forward(EXISTING, StreamVersion(5), 10).unwrap();
    assert_eq!(past_end.count(), 0);
    let fixture = fixture.reopen(&["missing"]);
    let outcome = fixture.store.read_stream_forward("missing", StreamVersion::START, 10);
    assert!(not_found(outcome));
}
