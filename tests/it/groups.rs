//! Consumer groups (competing consumers on one persistent subscription): round robin and
//! dispatch to single, a buffer per consumer, every event acknowledged exactly once, nack retry / park / skip, parked
//! events replayed, events of a consumer that leaves redelivered to another, and a group
//! resuming from its checkpoint after a reopen.

use std::{
    collections::HashSet,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    thread,
    time::Duration,
};

use annal::{
    ConsumerStrategy, Delivery, Error, ExpectedVersion, Filter, GroupConsumer, GroupSettings,
    NackAction, PersistentOptions, Position, Store,
};

use crate::common::{event, fast_options, open, small_options};

fn settings(strategy: ConsumerStrategy) -> GroupSettings {
    let persistent = PersistentOptions { checkpoint_every_acks: 1, ..PersistentOptions::default() };
    GroupSettings { persistent, strategy, max_retry_count: 2, ..GroupSettings::default() }
}

fn append_n(store: &Store, n: u64) {
    for i in 0..n {
        store.append("s-1", ExpectedVersion::Any, [event(i)]).unwrap();
    }
}

fn connect(store: &Store, strategy: ConsumerStrategy) -> GroupConsumer {
    store.connect_to_group("workers", Filter::all(), settings(strategy)).unwrap()
}

/// Receives the next delivery and returns its position and retry count. Every caller expects
/// an event to be there: the generous bound turns a lost event into a failure, not a hang.
fn next(consumer: &mut GroupConsumer) -> (u64, u32) {
    let delivery = consumer.recv_timeout(Duration::from_secs(30)).unwrap();
    let Delivery { event, retry_count } = delivery.expect("an event is due: none may be lost");
    (event.position().get(), retry_count)
}

fn ack_all(consumer: &GroupConsumer, positions: &[u64]) {
    for &p in positions {
        consumer.ack(Position(p)).unwrap();
    }
}

#[test]
fn groups_round_robin_alternates_between_two_consumers() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), fast_options());
    append_n(&store, 6);
    let mut a = connect(&store, ConsumerStrategy::RoundRobin);
    let mut b = connect(&store, ConsumerStrategy::RoundRobin);
    let got_a: Vec<u64> = (0..3).map(|_| next(&mut a).0).collect();
    let got_b: Vec<u64> = (0..3).map(|_| next(&mut b).0).collect();
    assert_eq!(got_a, [0, 2, 4]);
    assert_eq!(got_b, [1, 3, 5]);
    ack_all(&a, &got_a);
    assert_eq!(a.info().checkpoint, Position(1), "1 is not acknowledged yet");
    ack_all(&b, &got_b);
    let info = store.group_info("workers").unwrap();
    assert_eq!((info.consumers, info.in_flight, info.parked), (2, 0, 0));
    assert_eq!((info.checkpoint, info.lag), (Position(6), 0));
    assert_eq!(store.list_groups(), ["workers"]);
}

#[test]
fn groups_dispatch_to_single_feeds_one_consumer_until_it_leaves() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), fast_options());
    append_n(&store, 6);
    let mut a = connect(&store, ConsumerStrategy::DispatchToSingle);
    let mut b = connect(&store, ConsumerStrategy::DispatchToSingle);
    let got_a: Vec<u64> = (0..3).map(|_| next(&mut a).0).collect();
    assert_eq!(got_a, [0, 1, 2]);
    assert!(b.try_recv().unwrap().is_none(), "everything goes to the first consumer");
    a.ack(Position(0)).unwrap();
    drop(a); // 1 and 2 were delivered and not acknowledged.
    let got_b: Vec<(u64, u32)> = (0..5).map(|_| next(&mut b)).collect();
    assert_eq!(got_b, [(1, 0), (2, 0), (3, 0), (4, 0), (5, 0)]);
    ack_all(&b, &[1, 2, 3, 4, 5]);
    assert_eq!(b.info().checkpoint, Position(6));
    assert_eq!(b.info().consumers, 1);
}

#[test]
fn groups_each_consumer_holds_at_most_its_own_buffer() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), fast_options());
    append_n(&store, 5);
    let single = single_settings();
    let mut a = store.connect_to_group_with_buffer("workers", Filter::all(), single, 2).unwrap();
    let mut b = connect(&store, ConsumerStrategy::DispatchToSingle);
    assert_eq!([next(&mut a).0, next(&mut a).0], [0, 1]);
    // `a` is full at 2 (the group's default is 10): the rest go to `b`.
    let got_b: Vec<u64> = (0..3).map(|_| next(&mut b).0).collect();
    assert_eq!(got_b, [2, 3, 4]);
    let zero = store.connect_to_group_with_buffer("workers", Filter::all(), single_settings(), 0);
    assert!(matches!(zero, Err(Error::InvalidOptions(_))));
}

fn single_settings() -> GroupSettings {
    settings(ConsumerStrategy::DispatchToSingle)
}

#[test]
fn groups_consumer_dropped_with_events_in_flight_hands_them_to_the_other() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), fast_options());
    append_n(&store, 4);
    let mut a = connect(&store, ConsumerStrategy::RoundRobin);
    let mut b = connect(&store, ConsumerStrategy::RoundRobin);
    assert_eq!(next(&mut a).0, 0);
    assert_eq!(next(&mut a).0, 2, "1 went to b's buffer");
    drop(a);
    let got: Vec<u64> = (0..4).map(|_| next(&mut b).0).collect();
    assert_eq!(got, [1, 0, 2, 3], "its own first, then a's, then new ones");
    ack_all(&b, &got);
    assert_eq!(b.info().checkpoint, Position(4));
}

#[test]
fn groups_two_threads_acknowledging_everything_see_each_event_exactly_once() {
    const EVENTS: u64 = 300;
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), fast_options());
    append_n(&store, EVENTS / 2);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let acked = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let consumer = connect(&store, ConsumerStrategy::RoundRobin);
            let (seen, acked) = (Arc::clone(&seen), Arc::clone(&acked));
            thread::spawn(move || {
                while acked.load(Ordering::SeqCst) < EVENTS {
                    let Some(d) = consumer.recv_timeout(Duration::from_millis(20)).unwrap() else {
                        continue;
                    };
                    assert_eq!(d.retry_count, 0);
                    seen.lock().unwrap().push(d.event.position().get());
                    consumer.ack_id(d.event.id()).unwrap();
                    acked.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    append_n(&store, EVENTS / 2); // Live, while the consumers work.
    for worker in workers {
        worker.join().unwrap();
    }
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len() as u64, EVENTS, "no event twice");
    let distinct: HashSet<u64> = seen.iter().copied().collect();
    assert_eq!(distinct, (0..EVENTS).collect::<HashSet<_>>());
    assert_eq!(store.subscription_checkpoint("workers").unwrap(), Some(Position(EVENTS)));
}

#[test]
fn groups_nack_retry_redelivers_with_a_higher_count_then_parks_and_replay_returns_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), fast_options());
    append_n(&store, 2);
    let mut c = connect(&store, ConsumerStrategy::RoundRobin);
    for retry_count in 0..=2 {
        assert_eq!(next(&mut c), (0, retry_count));
        c.nack(Position(0), NackAction::Retry).unwrap();
    }
    assert_eq!(c.info().parked, 1, "the third retry is past max_retry_count = 2");
    assert_eq!(next(&mut c), (1, 0));
    c.ack(Position(1)).unwrap();
    assert_eq!(c.info().checkpoint, Position(0), "a parked event holds the checkpoint back");
    assert!(matches!(c.ack(Position(0)), Err(Error::NotDelivered { position: 0 })));
    assert_eq!(store.replay_parked("other"), None);
    assert_eq!(store.replay_parked("workers"), Some(1));
    assert_eq!(c.info().parked, 0);
    assert_eq!(c.replay_parked(), 0);
    assert_eq!(next(&mut c), (0, 0), "replayed with its count reset");
    c.ack(Position(0)).unwrap();
    assert_eq!(c.info().checkpoint, Position(2));
}

#[test]
fn groups_nack_park_parks_at_once_and_skip_counts_as_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), fast_options());
    append_n(&store, 3);
    let mut c = connect(&store, ConsumerStrategy::RoundRobin);
    assert_eq!(next(&mut c), (0, 0));
    c.nack(Position(0), NackAction::Skip).unwrap();
    assert_eq!(c.info().checkpoint, Position(1));
    assert!(matches!(c.nack(Position(0), NackAction::Skip), Err(Error::NotDelivered { .. })));
    assert_eq!(next(&mut c), (1, 0));
    c.nack(Position(1), NackAction::Park).unwrap();
    assert_eq!(c.info().parked, 1);
    assert_eq!(next(&mut c), (2, 0), "parked, not retried");
    c.ack(Position(2)).unwrap();
    let info = c.info();
    assert_eq!((info.in_flight, info.checkpoint), (0, Position(1)));
}

#[test]
fn groups_resume_from_the_checkpoint_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path(), small_options());
        append_n(&store, 6);
        let mut c = connect(&store, ConsumerStrategy::RoundRobin);
        let got: Vec<u64> = (0..5).map(|_| next(&mut c).0).collect();
        assert_eq!(got, [0, 1, 2, 3, 4]);
        ack_all(&c, &[0, 1, 2, 4]);
    }
    let store = open(dir.path(), small_options());
    assert!(store.list_groups().is_empty());
    assert_eq!(store.subscription_checkpoint("workers").unwrap(), Some(Position(3)));
    let mut c = connect(&store, ConsumerStrategy::RoundRobin);
    let got: Vec<u64> = (0..3).map(|_| next(&mut c).0).collect();
    assert_eq!(got, [3, 4, 5], "3 not skipped; 4 again (at least once)");
}

#[test]
fn groups_share_names_with_persistent_subscriptions_and_check_settings() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), fast_options());
    let held = store.subscribe_persistent("workers", Filter::all(), PersistentOptions::default());
    let refused = store.connect_to_group("workers", Filter::all(), GroupSettings::default());
    assert!(matches!(refused, Err(Error::SubscriptionInUse { .. })));
    drop(held);
    let zero = GroupSettings { consumer_buffer: 0, ..GroupSettings::default() };
    let refused = store.connect_to_group("workers", Filter::all(), zero);
    assert!(matches!(refused, Err(Error::InvalidOptions(_))));
    let c = connect(&store, ConsumerStrategy::RoundRobin);
    let again = store.subscribe_persistent("workers", Filter::all(), PersistentOptions::default());
    assert!(matches!(again, Err(Error::SubscriptionInUse { .. })));
    drop(c);
    assert!(store.group_info("workers").is_none());
    assert!(store.delete_subscription("workers").unwrap());
}
