//! Subscriptions as async streams: 10,000 subscribers on one current-thread executor (no thread
//! per subscriber) each receive every event in order, history and live; a filtered one gets
//! exactly the matching events; dropped streams free their waker registrations and leave the
//! others unaffected; a persistent stream resumes from its checkpoint and waits for room in its
//! window without a thread; closing the store ends waiting streams.

use std::{
    future::poll_fn,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll, Wake, Waker},
    thread,
};

use annal::{
    ExpectedVersion, Filter, PersistentOptions, Position, RecordedEvent, Result, Store,
    StreamVersion,
};
use futures_core::Stream;
use tokio::runtime::{Builder, Runtime};

use crate::common::{event, fast_options, open};

/// The next item of `stream` (what `StreamExt::next` does).
async fn next<S: Stream + Unpin>(stream: &mut S) -> Option<S::Item> {
    poll_fn(|cx| Pin::new(&mut *stream).poll_next(cx)).await
}

fn runtime() -> Runtime {
    Builder::new_current_thread().build().expect("current-thread runtime")
}

/// Polls `stream` once with `waker`.
fn poll_once<S: Stream + Unpin>(stream: &mut S, waker: &Waker) -> Poll<Option<S::Item>> {
    Pin::new(stream).poll_next(&mut Context::from_waker(waker))
}

/// Counts its wake-ups.
#[derive(Default)]
struct CountingWaker(AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// `count` appends of one event each to streams `live-0` .. `live-4`, event numbers from
/// `first`, on their own thread.
fn append_on_a_thread(store: &Arc<Store>, first: u64, count: u64) -> thread::JoinHandle<()> {
    let store = Arc::clone(store);
    thread::spawn(move || {
        for n in first..first + count {
            let stream = format!("live-{}", n % 5);
            store.append(&stream, ExpectedVersion::Any, [event(n)]).expect("append");
        }
    })
}

/// The event number `common::event` wrote into `event`'s data.
fn number(event: &RecordedEvent) -> u64 {
    let data = std::str::from_utf8(event.data()).expect("utf-8");
    data.strip_prefix("event-").and_then(|n| n.parse().ok()).expect("an event-N payload")
}

#[test]
fn async_ten_thousand_subscribers_on_one_thread_receive_every_event_in_order() {
    const SUBSCRIBERS: usize = 10_000;
    const HISTORY: u64 = 30;
    const LIVE: u64 = 60;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(dir.path(), fast_options()));
    for n in 0..HISTORY {
        store.append(&format!("live-{}", n % 5), ExpectedVersion::Any, [event(n)]).unwrap();
    }
    let rt = runtime();
    // Nine in ten subscribe to `$all`, one in ten to `live-0` (events 0, 5, 10 ...).
    let tasks: Vec<_> = (0..SUBSCRIBERS)
        .map(|i| {
            let to_stream = i % 10 == 9;
            let (mut events, wanted): (_, Vec<u64>) = if to_stream {
                let sub = store.subscribe_to_stream("live-0", StreamVersion::START).unwrap();
                (sub.into_stream(), (0..HISTORY + LIVE).filter(|n| n % 5 == 0).collect())
            } else {
                let sub = store.subscribe_to_all(Position::START, Filter::all());
                (sub.into_stream(), (0..HISTORY + LIVE).collect())
            };
            rt.spawn(async move {
                // Each event is checked as it comes: position n carries event n.
                for (k, &expected) in wanted.iter().enumerate() {
                    let event = next(&mut events).await.expect("not ended").expect("deliver");
                    assert_eq!((event.position().get(), number(&event)), (expected, expected));
                    if to_stream {
                        assert_eq!(event.version(), StreamVersion(k as u64));
                    }
                }
                events
            })
        })
        .collect();
    // Every other append waits until all subscribers are caught up and registered, so that
    // each of those events reaches them live, through a wake-up; the others come in bursts.
    // Events 5k land on `live-0` and are among those, so the stream subscribers wait too,
    // until they have their last event (85) and end.
    let writer = {
        let store = Arc::clone(&store);
        thread::spawn(move || {
            for n in HISTORY..HISTORY + LIVE {
                let running = if n <= 85 { SUBSCRIBERS } else { SUBSCRIBERS * 9 / 10 };
                while n % 2 == 0 && store.subscribers_waiting() < running as u64 {
                    thread::sleep(std::time::Duration::from_millis(1));
                }
                store.append(&format!("live-{}", n % 5), ExpectedVersion::Any, [event(n)]).unwrap();
            }
        })
    };
    let streams = rt.block_on(async {
        let mut streams = Vec::with_capacity(SUBSCRIBERS);
        for task in tasks {
            streams.push(task.await.expect("subscriber task"));
        }
        streams
    });
    writer.join().unwrap();
    assert!(streams.iter().step_by(10).all(|s| s.next_position() == Some(Position(90))));
    drop(streams);
    assert_eq!(store.subscribers_waiting(), 0, "dropped streams leave no registration");
}

#[test]
fn async_filtered_subscribers_receive_exactly_the_matching_events() {
    const SUBSCRIBERS: usize = 200;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(dir.path(), fast_options()));
    for n in 0..20 {
        store.append(&format!("live-{}", n % 5), ExpectedVersion::Any, [event(n)]).unwrap();
    }
    let rt = runtime();
    // `live-3` gets events 3, 8, 13 ...: 4 of the history, 12 of the 60 live ones.
    let wanted: Vec<u64> = (0..80).filter(|n| n % 5 == 3).collect();
    let tasks: Vec<_> = (0..SUBSCRIBERS)
        .map(|_| {
            let filter = Filter::all().stream_prefix("live-3");
            let mut events = store.subscribe_to_all(Position::START, filter).into_stream();
            let count = wanted.len();
            rt.spawn(async move {
                let mut got = Vec::new();
                while got.len() < count {
                    got.push(number(&next(&mut events).await.expect("open").expect("deliver")));
                }
                got
            })
        })
        .collect();
    let writer = append_on_a_thread(&store, 20, 60);
    for task in tasks {
        assert_eq!(rt.block_on(task).unwrap(), wanted);
    }
    writer.join().unwrap();
    // Nothing beyond the matching events: the head's event is not one of them.
    let mut events =
        store.subscribe_to_all(Position(79), Filter::all().stream_prefix("live-3")).into_stream();
    assert!(poll_once(&mut events, Waker::noop()).is_pending());
}

#[test]
fn async_dropped_streams_free_their_registrations_and_leave_the_others_unaffected() {
    const STREAMS: usize = 1_000;
    const LIVE: u64 = 20;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(dir.path(), fast_options()));
    store.append("history", ExpectedVersion::Any, [event(0)]).unwrap();
    let mut streams: Vec<_> = (0..STREAMS)
        .map(|_| store.subscribe_to_stream("live-1", StreamVersion::START).unwrap().into_stream())
        .collect();
    assert_eq!(store.subscribers_waiting(), 0, "a stream never polled registers nothing");
    for stream in &mut streams {
        assert!(poll_once(stream, Waker::noop()).is_pending(), "live-1 has no event yet");
    }
    for stream in &mut streams {
        assert!(poll_once(stream, Waker::noop()).is_pending(), "polled again: replaced");
    }
    assert_eq!(store.subscribers_waiting(), STREAMS as u64);
    let kept: Vec<_> = streams.drain(..).step_by(2).collect();
    assert_eq!(store.subscribers_waiting(), (STREAMS / 2) as u64, "each drop deregisters");

    let rt = runtime();
    let tasks: Vec<_> = kept
        .into_iter()
        .map(|mut events| {
            rt.spawn(async move {
                let mut got = Vec::new();
                for _ in 0..LIVE / 5 {
                    got.push(number(&next(&mut events).await.expect("open").expect("deliver")));
                }
                got
            })
        })
        .collect();
    let writer = append_on_a_thread(&store, 1, LIVE);
    let wanted: Vec<u64> = (1..=LIVE).filter(|n| n % 5 == 1).collect();
    for task in tasks {
        assert_eq!(rt.block_on(task).unwrap(), wanted);
    }
    writer.join().unwrap();
    assert_eq!(store.subscribers_waiting(), 0, "the tasks' streams were dropped with them");
}

#[test]
fn async_persistent_stream_resumes_from_its_checkpoint_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let options = PersistentOptions { checkpoint_every_acks: 1, ..PersistentOptions::default() };
    let store = Arc::new(open(dir.path(), fast_options()));
    for n in 0..10 {
        store.append("history", ExpectedVersion::Any, [event(n)]).unwrap();
    }
    let rt = runtime();
    let sub = store.subscribe_persistent("async", Filter::all(), options.clone()).unwrap();
    let mut events = sub.into_stream();
    rt.block_on(async {
        for expected in 0..6 {
            let event = next(&mut events).await.unwrap().unwrap();
            assert_eq!(number(&event), expected);
            events.ack(event.position()).unwrap();
        }
        assert_eq!(number(&next(&mut events).await.unwrap().unwrap()), 6);
    });
    // Event 6 was delivered, not acknowledged: it comes again after the reopen.
    assert_eq!(events.saved_checkpoint(), Position(6));
    drop(events);
    Arc::into_inner(store).expect("one handle").close();

    let store = Arc::new(open(dir.path(), fast_options()));
    let mut events =
        store.subscribe_persistent("async", Filter::all(), options).unwrap().into_stream();
    let writer = append_on_a_thread(&store, 10, 5);
    let got = rt.block_on(async {
        let mut got = Vec::new();
        while got.len() < 9 {
            let event = next(&mut events).await.unwrap().unwrap();
            events.ack(event.position()).unwrap();
            got.push(number(&event));
        }
        got
    });
    writer.join().unwrap();
    assert_eq!(got, (6..15).collect::<Vec<_>>(), "from the checkpoint, then live");
    assert_eq!(events.checkpoint(), Position(15));
}

#[test]
fn async_persistent_stream_full_window_waits_for_an_ack_and_is_woken_by_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), fast_options());
    for n in 0..3 {
        store.append("history", ExpectedVersion::Any, [event(n)]).unwrap();
    }
    let options = PersistentOptions { max_in_flight: 2, ..PersistentOptions::default() };
    let mut events =
        store.subscribe_persistent("window", Filter::all(), options).unwrap().into_stream();
    let acker = events.acker();
    let counter = Arc::new(CountingWaker::default());
    let waker = Waker::from(Arc::clone(&counter));
    let first = poll_once(&mut events, &waker);
    assert!(matches!(first, Poll::Ready(Some(Ok(ref e))) if number(e) == 0));
    assert!(matches!(poll_once(&mut events, &waker), Poll::Ready(Some(Ok(_)))));
    assert!(poll_once(&mut events, &waker).is_pending(), "two in flight: the window is full");
    assert_eq!(counter.0.load(Ordering::SeqCst), 0);
    acker.ack(Position(1)).unwrap();
    assert_eq!(counter.0.load(Ordering::SeqCst), 0, "an ack behind the front frees nothing");
    acker.ack(Position(0)).unwrap();
    assert_eq!(counter.0.load(Ordering::SeqCst), 1, "the ack that made room woke the task");
    let third = poll_once(&mut events, &waker);
    assert!(matches!(third, Poll::Ready(Some(Ok(ref e))) if number(e) == 2));
}

#[test]
fn async_closing_the_store_wakes_and_ends_a_waiting_stream() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), fast_options());
    store.append("history", ExpectedVersion::Any, [event(0)]).unwrap();
    let mut events = store.subscribe_to_all(Position::START, Filter::all()).into_stream();
    let counter = Arc::new(CountingWaker::default());
    let waker = Waker::from(Arc::clone(&counter));
    assert!(matches!(poll_once(&mut events, &waker), Poll::Ready(Some(Ok(_)))));
    assert!(poll_once(&mut events, &waker).is_pending());
    assert_eq!(store.subscribers_waiting(), 1);
    store.close();
    assert_eq!(counter.0.load(Ordering::SeqCst), 1, "close wakes every registered waker");
    assert_eq!(store.subscribers_waiting(), 0);
    assert!(matches!(poll_once(&mut events, &waker), Poll::Ready(None)));
    let ended: Poll<Option<Result<RecordedEvent>>> = poll_once(&mut events, &waker);
    assert!(matches!(ended, Poll::Ready(None)), "and stays ended");
}

/// Waits (without a time limit: a lost wake-up hangs the test) until `done` holds.
fn wait_until(done: impl Fn() -> bool) {
    while !done() {
        thread::sleep(std::time::Duration::from_millis(1));
    }
}

#[test]
fn async_stream_subscriber_sleeps_through_other_streams_and_wakes_for_its_own_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), fast_options());
    let mut all = store.subscribe_to_all(Position::END, Filter::all()).into_stream();
    let mut quiet = store.subscribe_to_stream("quiet", StreamVersion::START).unwrap().into_stream();
    let quiet_wakes = Arc::new(CountingWaker::default());
    let quiet_waker = Waker::from(Arc::clone(&quiet_wakes));
    // A first publish, so that the helper knows where the next sweep starts.
    assert!(poll_once(&mut all, Waker::noop()).is_pending());
    store.append("busy", ExpectedVersion::Any, [event(0)]).unwrap();
    wait_until(|| store.subscribers_waiting() == 0);

    assert!(matches!(poll_once(&mut all, Waker::noop()), Poll::Ready(Some(Ok(_)))));
    assert!(poll_once(&mut all, Waker::noop()).is_pending());
    assert!(poll_once(&mut quiet, &quiet_waker).is_pending());
    assert_eq!(store.subscribers_waiting(), 2);
    store.append("busy", ExpectedVersion::Any, [event(1)]).unwrap();
    wait_until(|| store.subscribers_waiting() < 2);
    assert_eq!(store.subscribers_waiting(), 1, "the $all subscriber was taken, not quiet's");
    assert_eq!(quiet_wakes.0.load(Ordering::SeqCst), 0);

    // The tombstone is written to `$$quiet`: it concerns quiet's subscribers too.
    store.tombstone_stream("quiet", ExpectedVersion::Any).unwrap();
    wait_until(|| quiet_wakes.0.load(Ordering::SeqCst) == 1);
    let ended = poll_once(&mut quiet, &quiet_waker);
    assert!(
        matches!(ended, Poll::Ready(Some(Err(annal::Error::StreamDeleted { .. })))),
        "{ended:?}"
    );
}
