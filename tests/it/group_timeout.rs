//! Consumer groups' message timeout: an event a consumer holds past it is taken back as a
//! retry (delivered again, to any consumer, with its retry count plus one; parked past the
//! maximum), a late acknowledgement of it changes nothing, and `None` keeps events with their
//! consumer. The tests wait by polling what they can observe, never on elapsed time.

use std::time::Duration;

use annal::{
    ConsumerStrategy, Delivery, Error, ExpectedVersion, Filter, GroupConsumer, GroupSettings,
    NackAction, PersistentOptions, Position, Store,
};

use crate::common::{event, fast_options, open};

const TIMEOUT: Duration = Duration::from_millis(100);

fn settings(message_timeout: Option<Duration>) -> GroupSettings {
    let persistent = PersistentOptions { checkpoint_every_acks: 1, ..PersistentOptions::default() };
    GroupSettings {
        persistent,
        strategy: ConsumerStrategy::RoundRobin,
        max_retry_count: 2,
        message_timeout,
        ..GroupSettings::default()
    }
}

fn connect(store: &Store, message_timeout: Option<Duration>) -> GroupConsumer {
    store.connect_to_group("workers", Filter::all(), settings(message_timeout)).unwrap()
}

fn append_n(store: &Store, n: u64) {
    for i in 0..n {
        store.append("s-1", ExpectedVersion::Any, [event(i)]).unwrap();
    }
}

/// The next delivery's position and retry count. The generous bound turns a lost event into
/// a failure, not a hang.
fn next(consumer: &GroupConsumer) -> (u64, u32) {
    let delivery = consumer.recv_timeout(Duration::from_secs(30)).unwrap();
    let Delivery { event, retry_count } = delivery.expect("an event is due: none may be lost");
    (event.position().get(), retry_count)
}

#[test]
fn group_timeout_unacked_event_goes_to_another_consumer_with_retry_count_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), fast_options());
    append_n(&store, 1);
    let hung = connect(&store, Some(TIMEOUT));
    assert_eq!(next(&hung), (0, 0));
    let other = connect(&store, Some(TIMEOUT));
    assert_eq!(next(&other), (0, 1), "taken back from the hung consumer, retried");
    other.ack(Position(0)).unwrap();
    assert_eq!(other.info().checkpoint, Position(1));
    assert_eq!(other.info().in_flight, 0);
}

#[test]
fn group_timeout_past_max_retry_count_parks_the_event() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), fast_options());
    append_n(&store, 1);
    let c = connect(&store, Some(TIMEOUT));
    for retry_count in 0..=2 {
        assert_eq!(next(&c), (0, retry_count), "timed out, handed back to the only consumer");
    }
    // The third timeout is past max_retry_count = 2: parked, not delivered again.
    for _ in 0..600 {
        if c.info().parked == 1 {
            break;
        }
        assert!(c.recv_timeout(Duration::from_millis(50)).unwrap().is_none(), "parked, not sent");
    }
    let info = c.info();
    assert_eq!((info.parked, info.in_flight, info.checkpoint), (1, 0, Position(0)));
    assert_eq!(c.replay_parked(), 1);
    assert_eq!(next(&c), (0, 0), "replayed with its count reset");
    c.ack(Position(0)).unwrap();
    assert_eq!(c.info().checkpoint, Position(1));
}

#[test]
fn group_timeout_late_ack_is_not_delivered_and_leaves_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), fast_options());
    append_n(&store, 1);
    let late = connect(&store, Some(TIMEOUT));
    assert_eq!(next(&late), (0, 0));
    let other = connect(&store, Some(TIMEOUT));
    assert_eq!(next(&other), (0, 1), "taken back from `late`");
    assert!(matches!(late.ack(Position(0)), Err(Error::NotDelivered { position: 0 })));
    let retry = late.nack(Position(0), NackAction::Skip);
    assert!(matches!(retry, Err(Error::NotDelivered { position: 0 })));
    let info = other.info();
    assert_eq!((info.checkpoint, info.in_flight), (Position(0), 1), "0 still held by `other`");
    other.ack(Position(0)).unwrap();
    assert_eq!(other.info().checkpoint, Position(1));
    assert!(matches!(other.ack(Position(0)), Err(Error::NotDelivered { position: 0 })));
}

#[test]
fn group_timeout_late_ack_by_the_consumer_it_went_back_to_settles_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), fast_options());
    append_n(&store, 1);
    let c = connect(&store, Some(TIMEOUT));
    assert_eq!(next(&c), (0, 0));
    assert_eq!(next(&c), (0, 1), "timed out, back to the only consumer");
    // The acknowledgement of the first delivery now settles the second: the event was
    // processed, and it is acknowledged once.
    c.ack(Position(0)).unwrap();
    assert!(matches!(c.ack(Position(0)), Err(Error::NotDelivered { position: 0 })));
    let info = c.info();
    assert_eq!((info.checkpoint, info.in_flight), (Position(1), 0));
}

#[test]
fn group_timeout_none_keeps_the_event_with_its_consumer() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), fast_options());
    append_n(&store, 1);
    let holder = connect(&store, None);
    assert_eq!(next(&holder), (0, 0));
    let other = connect(&store, None);
    // Several times the timeout the other tests use: nothing is taken back.
    for _ in 0..10 {
        assert!(other.recv_timeout(TIMEOUT).unwrap().is_none());
    }
    holder.ack(Position(0)).unwrap();
    assert_eq!(holder.info().checkpoint, Position(1));
}

#[test]
fn group_timeout_zero_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), fast_options());
    let refused = store.connect_to_group("workers", Filter::all(), settings(Some(Duration::ZERO)));
    assert!(matches!(refused, Err(Error::InvalidOptions(_))));
    assert_eq!(GroupSettings::default().message_timeout, Some(Duration::from_secs(30)));
}
