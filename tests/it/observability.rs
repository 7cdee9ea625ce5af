//! What the store tells an operator through `tracing`: an open's summary, a torn tail cut, and
//! derived files rebuilt, a scavenge's and a verify's results, a poisoned writer and a slow
//! fdatasync, each as an event with the fields an operator filters on, under the target `annal`.

use std::{
    fmt::Debug,
    fs,
    io::Write,
    path::Path,
    sync::{Arc, Mutex, OnceLock},
    time::Duration,
};

use annal::{Error, ExpectedVersion, Options, Store, io::SimDisk};
use tracing::{
    Event, Level, Metadata, Subscriber,
    field::{Field, Visit},
    span::{Attributes, Id, Record},
};

use crate::common::{event, small_options};

/// One event as a subscriber saw it: level, target and every field rendered with `Debug`.
#[derive(Clone, Debug)]
struct Seen {
    level: Level,
    target: String,
    fields: Vec<(String, String)>,
}

impl Seen {
    fn field(&self, name: &str) -> Option<&str> {
        self.fields.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    fn message(&self) -> &str {
        self.field("message").unwrap_or_default()
    }
}

/// A subscriber that keeps every event it is given.
#[derive(Clone, Default)]
struct Recorder {
    seen: Arc<Mutex<Vec<Seen>>>,
}

/// The process's one recorder, set as the global default the first time a test asks for it.
/// Global, not scoped to a test's thread: events from the writer and helper threads reach it
/// too, and no test's subscriber coming or going changes which callsites are enabled for
/// another (scoped subscribers in parallel tests lost events that way).
fn recorder() -> &'static Recorder {
    static RECORDER: OnceLock<Recorder> = OnceLock::new();
    RECORDER.get_or_init(|| {
        let recorder = Recorder::default();
        tracing::subscriber::set_global_default(recorder.clone()).expect("the only global one");
        recorder
    })
}

impl Recorder {
    /// Takes out the events about the store in `dir` (by their `dir` or `segment` field),
    /// leaving other tests' events where they are.
    fn take(&self, dir: &Path) -> Vec<Seen> {
        let dir = dir.to_string_lossy();
        let about = |seen: &Seen| {
            let path = seen.field("dir").or(seen.field("segment")).unwrap_or_default();
            Path::new(path).starts_with(dir.as_ref())
        };
        let mut all = self.seen.lock().unwrap();
        let (ours, others) = std::mem::take(&mut *all).into_iter().partition(about);
        *all = others;
        ours
    }
}

struct Fields<'a>(&'a mut Vec<(String, String)>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.0.push((field.name().to_owned(), format!("{value:?}")));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.push((field.name().to_owned(), value.to_owned()));
    }
}

impl Subscriber for Recorder {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut fields = Vec::new();
        event.record(&mut Fields(&mut fields));
        let metadata = event.metadata();
        let seen = Seen { level: *metadata.level(), target: metadata.target().to_owned(), fields };
        self.seen.lock().unwrap().push(seen);
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

fn the_one<'a>(seen: &'a [Seen], message: &str) -> &'a Seen {
    let found: Vec<&Seen> = seen.iter().filter(|s| s.message().starts_with(message)).collect();
    assert_eq!(found.len(), 1, "{message:?} in {seen:#?}");
    found[0]
}

#[test]
fn observability_open_reports_its_summary_a_torn_tail_and_rebuilt_files() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = recorder();
    let store = Store::open_with(dir.path(), small_options()).unwrap();
    let seen = recorder.take(dir.path());
    let opened = the_one(&seen, "store opened");
    assert_eq!((opened.level, opened.target.as_str()), (Level::INFO, "annal"));
    assert_eq!(opened.field("events"), Some("0"));
    assert_eq!(opened.field("read_only"), Some("false"));
    assert!(seen.iter().all(|s| s.level == Level::INFO), "a new store warns of nothing: {seen:#?}");

    for n in 0..5 {
        store.append("s", ExpectedVersion::Any, [event(n)]).unwrap();
    }
    drop(store);
    let last = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .max()
        .unwrap();
    fs::OpenOptions::new().append(true).open(&last).unwrap().write_all(&[0xAB; 100]).unwrap();

    let store = Store::open_with(dir.path(), small_options()).unwrap();
    let seen = recorder.take(dir.path());
    let torn = store.recovery_report().truncated.clone().expect("the garbage is cut");
    let opened = the_one(&seen, "store opened");
    assert_eq!(opened.field("events"), Some("5"));
    let cut = the_one(&seen, "torn tail cut");
    assert_eq!(cut.level, Level::WARN);
    assert_eq!(cut.field("segment"), Some(torn.segment.as_str()));
    assert_eq!(cut.field("bytes_dropped"), Some("100"));
    if !store.recovery_report().rebuilt.is_empty() {
        assert_eq!(the_one(&seen, "derived files").level, Level::WARN);
    }
}

#[test]
fn observability_scavenge_and_verify_report_their_results() {
    let dir = tempfile::tempdir().unwrap();
    // Events whose ids the idempotency window still holds are kept: hold none.
    let options = Options { idempotency_window_events: 0, ..small_options() };
    let store = Store::open_with(dir.path(), options).unwrap();
    for n in 0..40 {
        store.append("gone", ExpectedVersion::Any, [event(n)]).unwrap();
    }
    store.delete_stream("gone", ExpectedVersion::Any).unwrap();
    // Only sealed segments are scavenged: fill a few more so the deleted events are sealed.
    for n in 0..60 {
        store.append("kept", ExpectedVersion::Any, [event(n)]).unwrap();
    }
    let recorder = recorder();
    recorder.take(dir.path());
    let (scavenged, verified) = (store.scavenge().unwrap(), store.verify().unwrap());
    let seen = recorder.take(dir.path());
    let scavenge = the_one(&seen, "scavenge finished");
    assert_eq!(scavenge.level, Level::INFO);
    assert_eq!(
        scavenge.field("events_removed"),
        Some(scavenged.events_removed.to_string().as_str())
    );
    assert!(scavenged.events_removed > 0, "{scavenged:?}");
    assert!(verified.is_clean());
    assert_eq!(
        the_one(&seen, "verify found no problem").field("events"),
        Some(verified.events.to_string().as_str())
    );
}

/// Options on a simulated disk.
fn sim_options(disk: &SimDisk) -> Options {
    Options { storage: Arc::new(disk.clone()), ..small_options() }
}

#[test]
fn observability_a_failed_fsync_reports_the_poison_once() {
    let disk = SimDisk::new();
    let dir = Path::new("/observability-poison");
    let store = Store::open_with(dir, sim_options(&disk)).unwrap();
    store.append("s", ExpectedVersion::Any, [event(0)]).unwrap();
    let recorder = recorder();
    recorder.take(dir);
    disk.fail_sync(0);
    for n in 1..4 {
        let refused = store.append("s", ExpectedVersion::Any, [event(n)]);
        assert!(matches!(refused, Err(Error::Poisoned { .. })), "{refused:?}");
    }
    let seen = recorder.take(dir);
    let poisoned = the_one(&seen, "store poisoned");
    assert_eq!(poisoned.level, Level::ERROR);
    assert_eq!(poisoned.field("dir"), Some("/observability-poison"));
    assert_eq!(poisoned.field("op"), Some("fsync"));
}

#[test]
fn observability_a_slow_fsync_is_reported_with_its_segment() {
    let disk = SimDisk::new();
    let dir = Path::new("/observability-slow");
    let store = Store::open_with(dir, sim_options(&disk)).unwrap();
    store.append("s", ExpectedVersion::Any, [event(0)]).unwrap();
    let recorder = recorder();
    recorder.take(dir);
    disk.set_sync_delay(Duration::from_millis(300));
    store.append("s", ExpectedVersion::Any, [event(1)]).unwrap();
    disk.set_sync_delay(Duration::ZERO);
    store.append("s", ExpectedVersion::Any, [event(2)]).unwrap();
    let seen = recorder.take(dir);
    let slow = the_one(&seen, "slow fdatasync");
    assert_eq!(slow.level, Level::WARN);
    assert!(slow.field("segment").unwrap().starts_with("/observability-slow/"), "{slow:?}");
    let elapsed: f64 = slow.field("elapsed_ms").unwrap().parse().unwrap();
    assert!(elapsed >= 250.0, "{slow:?}");
}
