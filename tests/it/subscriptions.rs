//! Subscriptions: history then live events through one loop, under many writers; filters; a
//! slow subscriber that must not hold anyone back; the end of a subscription; persistent
//! subscriptions across reopen, a simulated power loss at every step of a checkpoint write, and
//! real `kill -9`.
//!
//! `ANNAL_SUBS_KILL9_CYCLES=N` runs a longer kill -9 soak than CI's 30 cycles.

use std::{
    collections::HashSet,
    io::{self, Write},
    path::Path,
    sync::{Arc, Barrier, mpsc},
    thread,
    time::Duration,
};

use annal::{
    Error, ExpectedVersion, Filter, NewEvent, Options, PersistentOptions, Position, RecordedEvent,
    Store, StreamVersion, Subscription, io::SimDisk,
};
use uuid::Uuid;

use crate::common::{event, fast_options, open, run_child_then_kill, small_options};

/// xorshift64*, seeded: the "random" moments and positions of these tests reproduce.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1)
    }
}

/// `threads` writers, each making `appends` appends of 1 to 3 events to its own few streams
/// (and to `shared_stream`, if given, every fourth time). Returns once all are done.
fn run_writers(store: &Store, threads: usize, appends: u64, shared_stream: Option<&str>) {
    let barrier = Arc::new(Barrier::new(threads));
    thread::scope(|scope| {
        for t in 0..threads {
            let barrier = Arc::clone(&barrier);
            scope.spawn(move || {
                barrier.wait();
                for n in 0..appends {
                    let stream = match shared_stream {
                        Some(s) if n % 4 == 0 => s.to_owned(),
                        _ => format!("w{t}-{}", n % 5),
                    };
                    let events = (0..1 + n % 3).map(|i| event(n * 10 + i));
                    store.append(&stream, ExpectedVersion::Any, events).expect("append");
                }
            });
        }
    });
}

/// Every event of `$all`.
fn read_all(store: &Store) -> Vec<RecordedEvent> {
    store.read_all_forward(Position::START, usize::MAX).map(|e| e.expect("read $all")).collect()
}

/// Drains a subscription on its own thread until it ends, returning (position, id) pairs.
fn drain(sub: Subscription) -> thread::JoinHandle<Vec<(u64, Uuid)>> {
    thread::spawn(move || {
        sub.map(|e| e.expect("deliver")).map(|e| (e.position().get(), e.id())).collect()
    })
}

fn positions(events: &[(u64, Uuid)]) -> Vec<u64> {
    events.iter().map(|&(p, _)| p).collect()
}

#[test]
fn subscribe_to_all_random_starts_under_eight_writers_receive_exact_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), small_options());
    let (threads, appends) = (8, 120);
    let expected_events = threads as u64 * appends * 2;
    let mut rng = Rng(0x5EED_0001);
    let subscribers = thread::scope(|scope| {
        let writers = scope.spawn(|| run_writers(&store, threads, appends, None));
        let mut subscribers = Vec::new();
        for i in 0..16 {
            // A random moment: when the head first reaches a random point of the run.
            let moment = rng.below(expected_events);
            while store.head().get() < moment && !writers.is_finished() {
                thread::sleep(Duration::from_micros(200));
            }
            let head = store.head().get();
            let from = match i % 4 {
                0 => Position::START,
                1 => Position::END,
                2 => Position(rng.below(head + 1)),
                _ => Position(head + rng.below(20)),
            };
            let sub = store.subscribe_to_all(from, Filter::all());
            let start = sub.next_position().expect("$all").get();
            assert!(from == Position::END || start == from.get());
            assert!(from != Position::END || start >= head, "END starts at the head or later");
            subscribers.push((start, drain(sub)));
        }
        writers.join().unwrap();
        subscribers
    });
    let late = store.subscribe_to_all(Position(3), Filter::all());
    let late = (3, drain(late));
    store.close();
    let all = read_all(&store);
    let head = store.head().get();
    assert_eq!(all.len() as u64, head, "a dense log of {head} events");
    for (start, handle) in subscribers.into_iter().chain([late]) {
        let got = handle.join().unwrap();
        let want: Vec<u64> = (start.min(head)..head).collect();
        assert_eq!(positions(&got), want, "subscriber from {start}: in order, no gap, no dup");
        for (position, id) in got {
            assert_eq!(id, all[position as usize].id(), "the event at {position}");
        }
    }
}

#[test]
fn subscribe_to_stream_before_it_exists_receives_every_version_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), small_options());
    let mut early = store.subscribe_to_stream("shared-1", StreamVersion::START).unwrap();
    assert!(early.try_recv().unwrap().is_none(), "no stream, nothing to deliver");
    store.append("other-1", ExpectedVersion::Any, [event(0)]).unwrap();
    assert!(early.try_recv().unwrap().is_none(), "other streams are not delivered");
    assert_eq!(early.next_version(), Some(StreamVersion(0)));
    let early = drain(early);
    let (mid, end) = thread::scope(|scope| {
        let writers = scope.spawn(|| run_writers(&store, 8, 80, Some("shared-1")));
        while store.stream_version("shared-1").is_none_or(|v| v.get() < 10) {
            thread::sleep(Duration::from_micros(200));
        }
        let mid = store.subscribe_to_stream("shared-1", StreamVersion(5)).unwrap();
        let end = store.subscribe_to_stream("shared-1", StreamVersion::END).unwrap();
        let end_start = end.next_version().unwrap().get();
        writers.join().unwrap();
        (drain(mid), (end_start, drain(end)))
    });
    store.close();
    let stream: Vec<RecordedEvent> = store
        .read_stream_forward("shared-1", StreamVersion::START, usize::MAX)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let last = stream.len() as u64;
    let ids_from = |v: u64| -> Vec<(u64, Uuid)> {
        stream[v as usize..].iter().map(|e| (e.position().get(), e.id())).collect()
    };
    assert_eq!(early.join().unwrap(), ids_from(0), "from the start, before the stream existed");
    assert_eq!(mid.join().unwrap(), ids_from(5), "from version 5");
    let (end_start, end) = end;
    assert!(end_start >= 10 && end_start <= last);
    assert_eq!(end.join().unwrap(), ids_from(end_start), "from the end");
}

#[test]
fn slow_subscriber_never_holds_back_writers_and_still_receives_everything() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), small_options());
    let mut slow = store.subscribe_to_all(Position::START, Filter::all());
    let fast = drain(store.subscribe_to_all(Position::START, Filter::all()));
    let (ready_tx, ready_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (lag_tx, lag_rx) = mpsc::channel();
    store.append("first-1", ExpectedVersion::Any, [event(0)]).unwrap();
    let slow = thread::spawn(move || {
        let mut got = vec![slow.recv().unwrap().position().get()];
        ready_tx.send(()).unwrap();
        go_rx.recv().unwrap(); // Stalled: reads nothing while the writers run.
        lag_tx.send((slow.next_position().unwrap(), slow.lag())).unwrap();
        for event in slow.by_ref() {
            got.push(event.unwrap().position().get());
            thread::sleep(Duration::from_micros(300));
        }
        got
    });
    ready_rx.recv().unwrap();
    // If the writer waited on the stalled subscriber, this would never return.
    run_writers(&store, 8, 60, None);
    let head = store.head().get();
    go_tx.send(()).unwrap();
    let (position, lag) = lag_rx.recv().unwrap();
    assert_eq!(position, Position(1), "it read nothing while stalled");
    assert_eq!(lag, head - 1, "everything else waits in the log, not in a buffer");
    // And while it crawls through that backlog, the writers go on.
    run_writers(&store, 8, 60, None);
    store.close();
    let head = store.head().get();
    let everything: Vec<u64> = (0..head).collect();
    assert_eq!(slow.join().unwrap(), everything, "slow: in order, complete");
    assert_eq!(positions(&fast.join().unwrap()), everything, "fast: in order, complete");
}

/// Appends one event to each of these streams, in order, with the given types.
fn append_each(store: &Store, events: &[(&str, &str)]) {
    for (stream, event_type) in events {
        let e = NewEvent::new(*event_type, b"{}".to_vec());
        store.append(stream, ExpectedVersion::Any, [e]).unwrap();
    }
}

const MIXED: [(&str, &str); 8] = [
    ("account-1", "Opened"),
    ("order-1", "Placed"),
    ("account-2", "Opened"),
    ("accounts-9", "Opened"),
    ("account", "Deposited"),
    ("account-1", "Deposited"),
    ("order-1", "Paid"),
    ("account-x-3", "Withdrawn"),
];

/// What a subscription with `filter` delivers from the start until nothing more is there.
fn delivered(store: &Store, filter: Filter) -> Vec<(String, String)> {
    let mut sub = store.subscribe_to_all(Position::START, filter);
    let mut got = Vec::new();
    while let Some(e) = sub.try_recv().unwrap() {
        got.push((e.stream().to_owned(), e.event_type().to_owned()));
    }
    assert_eq!(sub.next_position(), Some(store.head()), "past every event, matching or not");
    got
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(s, t)| (s.to_string(), t.to_string())).collect()
}

#[test]
fn filter_by_category_delivers_only_streams_of_that_category() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), small_options());
    append_each(&store, &MIXED);
    let want = [
        ("account-1", "Opened"),
        ("account-2", "Opened"),
        ("account-1", "Deposited"),
        ("account-x-3", "Withdrawn"),
    ];
    assert_eq!(delivered(&store, Filter::all().category("account")), pairs(&want));
    let by_prefix = delivered(&store, Filter::all().stream_prefix("accounts"));
    assert_eq!(by_prefix, pairs(&[("accounts-9", "Opened")]));
    let either = delivered(&store, Filter::all().category("order").stream_prefix("accounts"));
    let want = [("order-1", "Placed"), ("accounts-9", "Opened"), ("order-1", "Paid")];
    assert_eq!(either, pairs(&want));
}

#[test]
fn filter_by_event_type_combines_with_category() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), small_options());
    append_each(&store, &MIXED);
    let types = delivered(&store, Filter::all().event_types(["Deposited", "Paid"]));
    let want = [("account", "Deposited"), ("account-1", "Deposited"), ("order-1", "Paid")];
    assert_eq!(types, pairs(&want));
    let both = delivered(&store, Filter::all().category("account").event_types(["Opened"]));
    assert_eq!(both, pairs(&[("account-1", "Opened"), ("account-2", "Opened")]));
    assert!(delivered(&store, Filter::all().event_types(["Nothing"])).is_empty());
}

#[test]
fn filtered_subscription_moves_past_unmatched_live_events() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), fast_options());
    let mut sub = store.subscribe_to_all(Position::START, Filter::all().category("match"));
    for n in 0..320 {
        store.append("quiet-1", ExpectedVersion::Any, (0..16).map(|i| event(n * 16 + i))).unwrap();
    }
    // More non-matching events than one poll steps over: try_recv may return before it has
    // looked at all of them, but never delivers one, and always makes progress.
    let mut polls = 0;
    while sub.next_position() < Some(store.head()) {
        let before = sub.next_position();
        assert!(sub.try_recv().unwrap().is_none(), "nothing matches");
        assert!(sub.next_position() > before);
        polls += 1;
    }
    assert!(polls > 1, "5120 events took more than one bounded poll");
    assert_eq!(sub.lag(), 0);
    store.append("match-1", ExpectedVersion::Any, [event(1)]).unwrap();
    let e = sub.recv().unwrap();
    assert_eq!((e.stream(), e.position()), ("match-1", Position(5120)));
}

#[test]
fn subscription_from_end_or_position_starts_there() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), small_options());
    for n in 0..10 {
        store.append(&format!("s-{}", n % 2), ExpectedVersion::Any, [event(n)]).unwrap();
    }
    let mut from_end = store.subscribe_to_all(Position::END, Filter::all());
    let mut from_7 = store.subscribe_to_all(Position(7), Filter::all());
    let mut stream_end = store.subscribe_to_stream("s-1", StreamVersion::END).unwrap();
    let mut stream_2 = store.subscribe_to_stream("s-1", StreamVersion(2)).unwrap();
    assert!(from_end.try_recv().unwrap().is_none());
    assert!(stream_end.try_recv().unwrap().is_none());
    store.append("s-1", ExpectedVersion::Any, [event(10)]).unwrap();
    assert_eq!(from_end.recv().unwrap().position(), Position(10));
    assert_eq!(stream_end.recv().unwrap().version(), StreamVersion(5));
    let got: Vec<u64> = (0..4).map(|_| from_7.recv().unwrap().position().get()).collect();
    assert_eq!(got, [7, 8, 9, 10]);
    let got: Vec<u64> = (0..4).map(|_| stream_2.recv().unwrap().version().get()).collect();
    assert_eq!(got, [2, 3, 4, 5]);
    assert!(from_7.try_recv().unwrap().is_none() && stream_2.try_recv().unwrap().is_none());
}

#[test]
fn subscription_ends_after_the_committed_events_when_the_store_closes() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), small_options());
    for n in 0..10 {
        store.append("s-1", ExpectedVersion::Any, [event(n)]).unwrap();
    }
    let mut blocked = store.subscribe_to_all(Position(10), Filter::all());
    let blocked = thread::spawn(move || blocked.recv());
    let sub = store.subscribe_to_all(Position::START, Filter::all());
    let mut stream = store.subscribe_to_stream("s-1", StreamVersion(8)).unwrap();
    store.close();
    assert!(matches!(blocked.join().unwrap(), Err(Error::Closed)), "a waiting recv wakes up");
    let got: Vec<u64> = sub.map(|e| e.unwrap().position().get()).collect();
    assert_eq!(got, (0..10).collect::<Vec<_>>(), "everything committed, then the end");
    assert_eq!(stream.recv().unwrap().version(), StreamVersion(8));
    assert_eq!(stream.recv().unwrap().version(), StreamVersion(9));
    assert!(matches!(stream.recv(), Err(Error::Closed)));
    assert!(matches!(stream.try_recv(), Err(Error::Closed)));
}

#[test]
fn subscription_ends_when_the_last_store_handle_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), small_options());
    let mut sub = store.subscribe_to_stream("later-1", StreamVersion::START).unwrap();
    assert!(sub.recv_timeout(Duration::from_millis(1)).unwrap().is_none(), "timeout: nothing");
    let waiting = thread::spawn(move || sub.recv());
    drop(store);
    assert!(matches!(waiting.join().unwrap(), Err(Error::Closed)));
}

#[test]
fn subscription_on_read_only_store_ends_at_its_head() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path(), small_options());
        for n in 0..5 {
            store.append("s-1", ExpectedVersion::Any, [event(n)]).unwrap();
        }
    }
    let store = Store::open_read_only(dir.path(), small_options()).unwrap();
    let got: Vec<u64> = store
        .subscribe_to_all(Position(2), Filter::all())
        .map(|e| e.unwrap().position().get())
        .collect();
    assert_eq!(got, [2, 3, 4]);
    let persistent = store.subscribe_persistent("p", Filter::all(), PersistentOptions::default());
    assert!(matches!(persistent, Err(Error::ReadOnly)));
}

/// Options for persistent tests: write the checkpoint on every acknowledgement.
fn every_ack() -> PersistentOptions {
    PersistentOptions { checkpoint_every_acks: 1, ..PersistentOptions::default() }
}

fn append_n(store: &Store, stream: &str, n: u64) {
    for i in 0..n {
        store.append(stream, ExpectedVersion::Any, [event(i)]).unwrap();
    }
}

#[test]
fn persistent_resumes_at_the_contiguous_checkpoint_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path(), small_options());
        append_n(&store, "s-1", 10);
        let mut sub = store.subscribe_persistent("billing", Filter::all(), every_ack()).unwrap();
        let got: Vec<u64> = (0..8).map(|_| sub.recv().unwrap().position().get()).collect();
        assert_eq!(got, (0..8).collect::<Vec<_>>());
        for p in [0, 1, 2, 5, 4, 7] {
            sub.ack(Position(p)).unwrap();
        }
        assert_eq!(sub.checkpoint(), Position(3), "3 is unacknowledged: nothing past it counts");
        assert_eq!(sub.saved_checkpoint(), Position(3));
        assert_eq!(sub.lag(), 7);
        assert_eq!(store.subscription_lag("billing").unwrap(), Some(7));
        assert!(matches!(sub.ack(Position(9)), Err(Error::NotDelivered { position: 9 })));
        sub.ack(Position(1)).unwrap(); // Again, below the checkpoint: harmless.
    }
    let store = open(dir.path(), small_options());
    assert_eq!(store.subscription_checkpoint("billing").unwrap(), Some(Position(3)));
    let mut sub = store.subscribe_persistent("billing", Filter::all(), every_ack()).unwrap();
    assert_eq!(sub.next_position(), Position(3));
    let got: Vec<u64> = (0..7).map(|_| sub.recv().unwrap().position().get()).collect();
    assert_eq!(got, (3..10).collect::<Vec<_>>(), "0..3 not again; 3 and 6 not skipped");
    for p in got {
        sub.ack(Position(p)).unwrap();
    }
    assert_eq!(sub.checkpoint(), Position(10));
    assert_eq!(sub.lag(), 0);
}

#[test]
fn persistent_filtered_out_positions_count_as_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), small_options());
    append_each(&store, &MIXED);
    let filter = Filter::all().category("order");
    let mut sub = store.subscribe_persistent("orders", filter.clone(), every_ack()).unwrap();
    assert_eq!(sub.checkpoint(), Position(0));
    let first = sub.recv().unwrap().position();
    assert_eq!(first, Position(1));
    assert_eq!(sub.checkpoint(), Position(1), "position 0 was filtered out");
    sub.ack(first).unwrap();
    let second = sub.recv().unwrap().position();
    assert_eq!(second, Position(6));
    assert_eq!(sub.checkpoint(), Position(6), "2..6 filtered out, 6 is in flight");
    sub.ack(second).unwrap();
    assert!(sub.try_recv().unwrap().is_none());
    assert_eq!(sub.checkpoint(), Position(8), "past the trailing non-matching event");
    assert_eq!(sub.saved_checkpoint(), Position(7), "written with the last acknowledgement");
    drop(sub);
    assert_eq!(store.subscription_checkpoint("orders").unwrap(), Some(Position(8)), "on drop");
    let mut quiet = store
        .subscribe_persistent("quiet", Filter::all().event_types(["Never"]), every_ack())
        .unwrap();
    assert!(quiet.try_recv().unwrap().is_none());
    assert_eq!(quiet.checkpoint(), Position(8), "a quiet filter does not stall the checkpoint");
    quiet.save_checkpoint().unwrap();
    assert_eq!(store.subscription_lag("quiet").unwrap(), Some(0));
}

#[test]
fn persistent_name_is_held_until_subscription_and_ackers_are_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), small_options());
    let options = PersistentOptions::default();
    let sub = store.subscribe_persistent("one", Filter::all(), options.clone()).unwrap();
    let again = store.subscribe_persistent("one", Filter::all(), options.clone());
    assert!(matches!(again, Err(Error::SubscriptionInUse { name }) if name == "one"));
    assert!(matches!(store.delete_subscription("one"), Err(Error::SubscriptionInUse { .. })));
    store.subscribe_persistent("two", Filter::all(), options.clone()).unwrap();
    let acker = sub.acker();
    drop(sub);
    let held = store.subscribe_persistent("one", Filter::all(), options.clone());
    assert!(matches!(held, Err(Error::SubscriptionInUse { .. })), "an acker still holds it");
    drop(acker);
    drop(store.subscribe_persistent("one", Filter::all(), options.clone()).unwrap());
    assert!(store.delete_subscription("one").unwrap());
    assert!(!store.delete_subscription("one").unwrap());
    assert_eq!(store.subscription_checkpoint("one").unwrap(), None);
    let bad = store.subscribe_persistent("../escape", Filter::all(), options);
    assert!(matches!(bad, Err(Error::InvalidSubscriptionName { .. })));
}

#[test]
fn persistent_checkpoint_writes_are_batched_by_count_and_by_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), small_options());
    append_n(&store, "s-1", 12);
    let options = PersistentOptions {
        checkpoint_every_acks: 5,
        checkpoint_interval: Duration::from_secs(3600),
        ..PersistentOptions::default()
    };
    let mut sub = store.subscribe_persistent("batched", Filter::all(), options).unwrap();
    for p in 0..4 {
        assert_eq!(sub.recv().unwrap().position(), Position(p));
        sub.ack(Position(p)).unwrap();
    }
    assert_eq!(sub.checkpoint(), Position(4));
    assert_eq!(sub.saved_checkpoint(), Position(0), "four acknowledgements: not written yet");
    sub.recv().unwrap();
    sub.ack(Position(4)).unwrap();
    assert_eq!(sub.saved_checkpoint(), Position(5), "the fifth writes it");
    drop(sub);
    let options = PersistentOptions {
        checkpoint_every_acks: 1000,
        checkpoint_interval: Duration::from_millis(1),
        ..PersistentOptions::default()
    };
    let mut sub = store.subscribe_persistent("batched", Filter::all(), options).unwrap();
    assert_eq!(sub.next_position(), Position(5), "dropping wrote the last checkpoint");
    for p in 5..12 {
        sub.recv().unwrap();
        sub.ack(Position(p)).unwrap();
    }
    // Idle: the time-triggered write happens while it waits for events.
    assert!(sub.recv_timeout(Duration::from_millis(20)).unwrap().is_none());
    assert_eq!(sub.saved_checkpoint(), Position(12));
}

#[test]
fn persistent_out_of_order_acks_from_workers_never_skip_and_window_bounds_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), small_options());
    append_n(&store, "s-1", 400);
    let options = PersistentOptions { max_in_flight: 16, ..every_ack() };
    let mut sub = store.subscribe_persistent("workers", Filter::all(), options).unwrap();
    let (work_tx, work_rx) = crossbeam_channel::bounded::<u64>(64);
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let (acker, rx) = (sub.acker(), work_rx.clone());
            thread::spawn(move || {
                let mut rng = Rng(0xACE + w);
                for p in rx {
                    thread::sleep(Duration::from_micros(rng.below(300)));
                    acker.ack(Position(p)).unwrap();
                }
            })
        })
        .collect();
    let mut max_in_flight = 0;
    for expected in 0..400 {
        let e = sub.recv().unwrap();
        assert_eq!(e.position(), Position(expected));
        max_in_flight = max_in_flight.max(sub.in_flight());
        work_tx.send(expected).unwrap();
    }
    drop(work_tx);
    workers.into_iter().for_each(|w| w.join().unwrap());
    assert!(max_in_flight <= 16, "the window held: {max_in_flight}");
    assert_eq!(sub.checkpoint(), Position(400));
    sub.save_checkpoint().unwrap();
    assert_eq!(store.subscription_checkpoint("workers").unwrap(), Some(Position(400)));
}

#[test]
fn persistent_full_window_without_acker_is_an_error_not_a_hang() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), small_options());
    append_n(&store, "s-1", 3);
    let options = PersistentOptions { max_in_flight: 2, ..PersistentOptions::default() };
    let mut sub = store.subscribe_persistent("full", Filter::all(), options).unwrap();
    sub.recv().unwrap();
    sub.recv().unwrap();
    let full = sub.recv();
    assert!(matches!(full, Err(Error::TooManyUnacknowledged { max_in_flight: 2 })));
    sub.ack(Position(0)).unwrap();
    assert_eq!(sub.recv().unwrap().position(), Position(2));
}

#[test]
fn persistent_start_at_end_is_pinned_when_first_created() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), small_options());
    append_n(&store, "s-1", 3);
    let options = PersistentOptions { start: Position::END, ..PersistentOptions::default() };
    drop(store.subscribe_persistent("tail", Filter::all(), options.clone()).unwrap());
    append_n(&store, "s-1", 2);
    let mut sub = store.subscribe_persistent("tail", Filter::all(), options).unwrap();
    assert_eq!(sub.recv().unwrap().position(), Position(3), "the head when it was created");
}

/// A store on `disk` with one event and a persistent subscription that acknowledged it.
fn sim_store(disk: &SimDisk) -> (Store, annal::PersistentSubscription) {
    let options = Options { storage: Arc::new(disk.clone()), ..small_options() };
    let store = Store::open_with("/sim/subs", options).unwrap();
    append_n(&store, "s-1", 4);
    let quiet = PersistentOptions { checkpoint_every_acks: 1000, ..PersistentOptions::default() };
    let mut sub = store.subscribe_persistent("sim", Filter::all(), quiet).unwrap();
    for p in 0..2 {
        sub.recv().unwrap();
        sub.ack(Position(p)).unwrap();
    }
    sub.save_checkpoint().unwrap();
    for p in 2..4 {
        sub.recv().unwrap();
        sub.ack(Position(p)).unwrap();
    }
    (store, sub)
}

#[test]
fn persistent_checkpoint_is_old_or_new_after_power_loss_at_every_step_of_its_write() {
    let clean = SimDisk::new();
    let (_store, sub) = sim_store(&clean);
    let before = clean.ops();
    sub.save_checkpoint().unwrap();
    let steps = clean.ops() - before;
    assert!(steps >= 5, "remove tmp, create, write, fsync, rename, fsync dir");
    for step in 0..=steps {
        for variant in 0..4 {
            let disk = SimDisk::new();
            let (store, sub) = sim_store(&disk);
            disk.fail_at(disk.ops() + step, io::ErrorKind::Other, true);
            let saved = sub.save_checkpoint();
            assert_eq!(saved.is_ok(), step == steps, "step {step}");
            let crashed = disk.crash(variant);
            drop((sub, store));
            let options = Options { storage: Arc::new(crashed), ..small_options() };
            let store = Store::open_with("/sim/subs", options).unwrap();
            let checkpoint = store.subscription_checkpoint("sim").unwrap();
            let want: &[u64] = if step == steps { &[4] } else { &[2, 4] };
            let got = checkpoint.map(|p| p.get());
            assert!(got.is_some_and(|p| want.contains(&p)), "step {step}/{variant}: {got:?}");
        }
    }
}

const KILL9_DIR_VAR: &str = "ANNAL_SUBS_KILL9_DIR";

fn kill9_options() -> Options {
    Options {
        segment_bytes_max: 8192,
        event_bytes_max: 1024,
        append_bytes_max: 2048,
        group_bytes_max: 4096,
        ..Options::default()
    }
}

/// What the child consumes: the `k` category, not the `other` one.
fn kill9_filter() -> Filter {
    Filter::all().category("k")
}

/// The child: appends forever on one thread, and consumes a persistent subscription on
/// another, printing `resume P` first, then `proc P` before it acknowledges each event and
/// `saved P` after each checkpoint write it sees.
#[test]
#[ignore = "runs only as the child process of persistent_kill9_cycles_never_skip_unacknowledged_nor_rewind_saved_checkpoints"]
fn persistent_kill9_child_process() {
    let Ok(dir) = std::env::var(KILL9_DIR_VAR) else {
        return;
    };
    let store = Store::open_with(&dir, kill9_options()).expect("child open");
    let writer = store.clone();
    thread::spawn(move || {
        for n in 0u64.. {
            let stream =
                if n % 3 == 0 { format!("other-{}", n % 4) } else { format!("k-{}", n % 5) };
            writer.append(&stream, ExpectedVersion::Any, [event(n)]).expect("append");
        }
    });
    let options = PersistentOptions {
        checkpoint_every_acks: 7,
        checkpoint_interval: Duration::from_secs(3600),
        ..PersistentOptions::default()
    };
    let mut sub = store.subscribe_persistent("kill9", kill9_filter(), options).expect("subscribe");
    let mut out = io::stdout().lock();
    // On a line of its own: the test harness has started one without ending it.
    writeln!(out, "\nresume {}", sub.next_position()).unwrap();
    out.flush().unwrap();
    let mut saved = sub.saved_checkpoint();
    loop {
        let position = sub.recv().expect("recv").position();
        writeln!(out, "proc {position}").unwrap();
        out.flush().unwrap();
        sub.ack(position).expect("ack");
        if sub.saved_checkpoint() != saved {
            saved = sub.saved_checkpoint();
            writeln!(out, "saved {saved}").unwrap();
            out.flush().unwrap();
        }
    }
}

/// One child's run as its output says.
#[derive(Default)]
struct Run {
    resume: Option<u64>,
    processed: Vec<u64>,
    saved: Vec<u64>,
}

fn run_child_and_kill(dir: &Path, run: Duration) -> Run {
    let test = "subscriptions::persistent_kill9_child_process";
    let mut result = Run::default();
    for line in run_child_then_kill(test, KILL9_DIR_VAR, dir, run) {
        let Some((word, number)) = line.split_once(' ') else { continue };
        let Ok(n) = number.parse::<u64>() else { continue };
        match word {
            "resume" => result.resume = Some(n),
            "proc" => result.processed.push(n),
            "saved" => result.saved.push(n),
            _ => {}
        }
    }
    result
}

/// Positions of the events the child's filter selects, from the reopened store.
fn selected_positions(dir: &Path) -> (Vec<u64>, Option<u64>) {
    let store = Store::open_with(dir, kill9_options()).expect("reopen after kill");
    let filter = kill9_filter();
    let selected =
        read_all(&store).into_iter().filter(|e| filter.matches(e)).map(|e| e.position().get());
    (selected.collect(), store.subscription_checkpoint("kill9").unwrap().map(Position::get))
}

#[test]
fn persistent_kill9_cycles_never_skip_unacknowledged_nor_rewind_saved_checkpoints() {
    if std::env::var(KILL9_DIR_VAR).is_ok() {
        return;
    }
    let cycles: u64 =
        std::env::var("ANNAL_SUBS_KILL9_CYCLES").ok().and_then(|s| s.parse().ok()).unwrap_or(30);
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(0x0C0F_FEE5);
    let mut processed: HashSet<u64> = HashSet::new();
    let mut last_saved = 0;
    let mut checkpoint = None;
    let (mut redelivered, mut runs_with_events) = (0, 0);
    for cycle in 0..cycles {
        let run = run_child_and_kill(dir.path(), Duration::from_millis(30 + rng.below(90)));
        let (selected, saved_now) = selected_positions(dir.path());
        if let Some(resume) = run.resume {
            let want = checkpoint.unwrap_or(0);
            assert_eq!(resume, want, "cycle {cycle}: resumed at the saved checkpoint");
        }
        let resume = run.resume.unwrap_or(0);
        // It delivers, from the resume point, exactly the selected events in log order.
        let from = selected.partition_point(|&p| p < resume);
        let want = &selected[from..from + run.processed.len().min(selected.len() - from)];
        assert_eq!(run.processed, want, "cycle {cycle}: in order, no gap, no duplicate");
        redelivered += run.processed.iter().filter(|p| processed.contains(p)).count();
        runs_with_events += usize::from(!run.processed.is_empty());
        processed.extend(&run.processed);
        last_saved = run.saved.last().copied().unwrap_or(last_saved);
        let Some(saved_now) = saved_now else {
            // Killed before it subscribed (a busy machine can take longer to start the child).
            assert!(run.resume.is_none() && checkpoint.is_none(), "cycle {cycle}: checkpoint lost");
            continue;
        };
        assert!(
            saved_now >= last_saved,
            "cycle {cycle}: saved {last_saved} went back to {saved_now}"
        );
        let unprocessed = selected.iter().find(|&&p| p < saved_now && !processed.contains(&p));
        assert_eq!(unprocessed, None, "cycle {cycle}: the checkpoint {saved_now} passed it");
        checkpoint = Some(saved_now);
        last_saved = saved_now;
    }
    eprintln!(
        "subscriptions kill9: {cycles} cycles, {} processed, {redelivered} redelivered",
        processed.len()
    );
    assert!(runs_with_events > cycles as usize / 2, "the child rarely got to consume");
}

/// The rows of the checkpoint layout table in `docs/format.md`: (offset, size, field, meaning).
fn checkpoint_table() -> Vec<(usize, usize, String, String)> {
    let doc = include_str!("../../docs/format.md");
    let mut lines = doc.lines().skip_while(|l| l.trim() != "## Checkpoint files");
    assert!(lines.next().is_some(), "docs/format.md has no checkpoint section");
    let rows = lines
        .take_while(|l| !l.starts_with("## "))
        .skip_while(|l| l.trim() != "| offset | size | field | meaning |")
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|line| {
            let cells: Vec<&str> = line.splitn(5, '|').map(str::trim).collect();
            let number = |cell: &str| cell.parse::<usize>().expect("decimal offset and size");
            let meaning = cells[4].trim_end_matches('|').trim().to_owned();
            (number(cells[1]), number(cells[2]), cells[3].to_owned(), meaning)
        })
        .collect::<Vec<_>>();
    let mut end = 0;
    for (offset, size, field, _) in &rows {
        assert_eq!(*offset, end, "{field} leaves a gap");
        end += size;
    }
    rows
}

#[test]
fn checkpoint_file_bytes_match_docs_format_md() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), small_options());
    append_n(&store, "s-1", 6);
    let mut sub = store.subscribe_persistent("doc-check", Filter::all(), every_ack()).unwrap();
    for p in 0..5 {
        sub.recv().unwrap();
        sub.ack(Position(p)).unwrap();
    }
    let bytes = std::fs::read(dir.path().join("subscriptions/doc-check.ckpt")).unwrap();
    let rows = checkpoint_table();
    let header_len: usize = rows.iter().map(|r| r.1).sum();
    assert_eq!(header_len, 32);
    let name = b"doc-check";
    assert_eq!(bytes.len(), header_len + name.len() + 4, "header, name, crc");
    let field = |wanted: &str| -> u64 {
        let (offset, size, _, _) = rows.iter().find(|r| r.2 == wanted).expect("documented");
        let mut le = [0u8; 8];
        le[..*size].copy_from_slice(&bytes[*offset..offset + size]);
        u64::from_le_bytes(le)
    };
    for (offset, size, field_name, meaning) in &rows {
        let raw = &bytes[*offset..offset + size];
        match field_name.as_str() {
            "magic" => assert_eq!(raw, meaning.split('`').nth(1).unwrap().as_bytes()),
            "version" | "reserved" => {
                let documented: u64 = meaning.split('`').nth(1).unwrap().parse().unwrap();
                assert_eq!(field(field_name), documented, "{field_name}");
            }
            "name_len" => assert_eq!(field("name_len"), name.len() as u64),
            "position" => assert_eq!(field("position"), 5),
            "written_us" => {
                let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
                let now_us = now.unwrap().as_micros() as u64;
                assert!((now_us - 60_000_000..=now_us).contains(&field("written_us")));
            }
            other => panic!("undocumented check for field {other}"),
        }
    }
    assert_eq!(&bytes[header_len..header_len + name.len()], name);
    let crc = u32::from_le_bytes(bytes[bytes.len() - 4..].try_into().unwrap());
    assert_eq!(crc, crc32fast::hash(&bytes[..bytes.len() - 4]));
}
