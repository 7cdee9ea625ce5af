//! When a refused append hears its refusal: at once if the refusal rests on the published log,
//! and only with the group whose events caused it otherwise, so that no caller is told of a
//! version (or an event id) that is not durable yet and that a failed sync may never make real.
//! The store's fdatasyncs wait at a gate the test holds, so which answers have arrived while a
//! group is between its checks and its sync is seen exactly, without timing.

use std::{
    pin::pin,
    sync::Arc,
    task::{Context, Waker},
    thread,
};

use annal::{
    Error, ExpectedVersion, NewEvent, Options, Position, Store, StreamVersion, io::Interposed,
};
use uuid::Uuid;

use crate::{
    group_commit::block_on,
    sync_gate::{OpenOnDrop, SyncGate},
};

fn event() -> NewEvent {
    NewEvent::new("E", b"{}".to_vec())
}

/// Whether `future` is answered yet (polled once).
fn answered<F: Future>(future: std::pin::Pin<&mut F>) -> bool {
    future.poll(&mut Context::from_waker(Waker::noop())).is_ready()
}

/// A store whose syncs go through a gate the test holds.
struct Scene {
    _dir: tempfile::TempDir,
    gate: SyncGate,
    store: Store,
}

impl Scene {
    fn new() -> Scene {
        let dir = tempfile::tempdir().unwrap();
        let gate = SyncGate::default();
        let options = Options { storage: Arc::new(Interposed(gate.clone())), ..Options::default() };
        let store = Store::open_with(dir.path(), options).unwrap();
        Scene { _dir: dir, gate, store }
    }

    /// Holds the writer at the sync of a group of its own (a blocking append to `"first"`,
    /// committed inline by a thread of its own), so that appends made now queue up.
    fn hold_writer(&self) -> thread::JoinHandle<()> {
        self.gate.set_shut(true);
        let store = self.store.clone();
        let first = thread::spawn(move || {
            store.append("first", ExpectedVersion::NoStream, [event()]).unwrap();
        });
        self.gate.await_waiting(1);
        first
    }

    /// Lets the held group through and waits until the next one waits at its sync: every
    /// append queued meanwhile has been checked by then.
    fn next_group_at_its_sync(&self, first: thread::JoinHandle<()>) {
        self.gate.let_through(1);
        first.join().unwrap();
        self.gate.await_waiting(1);
    }
}

#[test]
fn refusals_caused_by_the_same_group_wait_for_it_and_name_a_readable_version() {
    let scene = Scene::new();
    let _open = OpenOnDrop(scene.gate.clone());
    let store = &scene.store;
    let first = scene.hold_writer();
    let a = pin!(store.append_async("s", ExpectedVersion::NoStream, [event()]));
    let b = pin!(store.append_async("s", ExpectedVersion::NoStream, [event()]));
    // Refused by the log as published: nothing in the groups touches "t".
    let c = pin!(store.append_async("t", ExpectedVersion::Exact(4), [event()]));
    scene.next_group_at_its_sync(first);
    let (mut a, mut b, mut c) = (a, b, c);
    assert!(!answered(a.as_mut()), "a's group is not durable yet");
    assert!(!answered(b.as_mut()), "b's refusal rests on a, which is not durable yet");
    assert!(answered(c.as_mut()), "c's refusal rests on the published log alone");
    assert!(matches!(
        store.read_stream_forward("s", StreamVersion::START, 10),
        Err(Error::StreamNotFound { .. })
    ));
    scene.gate.set_shut(false);
    assert_eq!(block_on(a).unwrap().first_version, StreamVersion(0));
    match block_on(b) {
        Err(Error::WrongExpectedVersion { stream, actual: Some(0), .. }) => assert_eq!(stream, "s"),
        other => panic!("expected a wrong expected version naming a's version, got {other:?}"),
    }
    // The version the refusal named is there to read for a caller that catches up.
    let read: Vec<_> = store.read_stream_forward("s", StreamVersion::START, 10).unwrap().collect();
    assert_eq!(read.len(), 1);
}

#[test]
fn refusals_caused_by_a_group_whose_sync_fails_hear_the_poison() {
    let scene = Scene::new();
    let _open = OpenOnDrop(scene.gate.clone());
    let store = &scene.store;
    let first = scene.hold_writer();
    let id = Uuid::new_v4();
    let a = pin!(store.append_async("s", ExpectedVersion::NoStream, [event().with_id(id)]));
    let b = pin!(store.append_async("s", ExpectedVersion::NoStream, [event()]));
    // The same event id as a's, to another stream: an id conflict with an append not durable.
    let d = pin!(store.append_async("u", ExpectedVersion::Any, [event().with_id(id)]));
    scene.next_group_at_its_sync(first);
    let (mut b, mut d) = (b, d);
    assert!(!answered(b.as_mut()), "b's refusal rests on a, which is not durable yet");
    assert!(!answered(d.as_mut()), "d's id conflict rests on a, which is not durable yet");
    scene.gate.fail_next();
    scene.gate.set_shut(false);
    assert!(matches!(block_on(a), Err(Error::Poisoned { .. })));
    // Neither hears of a's version or id: a never became durable.
    assert!(matches!(block_on(b), Err(Error::Poisoned { .. })));
    assert!(matches!(block_on(d), Err(Error::Poisoned { .. })));
    assert_eq!(store.head(), Position(1), "only the first group was published");
}
