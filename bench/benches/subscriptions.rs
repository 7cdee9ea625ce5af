//! Criterion benches of subscriptions (issue 5's figures, item 8 of the benchmark suite):
//! catch-up of a new subscription over an existing log, append → delivery latency to a live
//! subscriber in another thread with durable appends, and fan-out of one writer to 100 live
//! subscribers. `cargo run --release --example subscription_bench` prints the same figures as
//! one quick table.

#[path = "common/short.rs"]
mod short;

use std::{
    thread,
    time::{Duration, Instant},
};

use annal::{Durability, ExpectedVersion, Filter, NewEvent, Options, Position, Store};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// Events in the store the catch-up bench reads.
const CATCH_UP_EVENTS: u64 = 200_000;
/// Live subscribers in the fan-out bench.
const FAN_OUT_SUBSCRIBERS: usize = 100;
/// Events the writer appends per fan-out iteration, in durable appends of 10.
const FAN_OUT_EVENTS: u64 = 1_000;

fn event() -> NewEvent {
    NewEvent::new("Benchmarked", vec![7u8; 200])
}

fn catch_up(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let options = Options { durability: Durability::None, ..Options::default() };
    let store = Store::open_with(dir.path(), options).expect("open");
    for batch in 0..CATCH_UP_EVENTS / 100 {
        let stream = format!("stream-{}", batch % 1000);
        store.append(&stream, ExpectedVersion::Any, (0..100).map(|_| event())).expect("append");
    }
    let mut group = c.benchmark_group("subscription_catch_up");
    group.throughput(Throughput::Elements(CATCH_UP_EVENTS));
    group.bench_function("200k_200B", |b| {
        b.iter(|| {
            let mut subscription = store.subscribe_to_all(Position::START, Filter::all());
            for _ in 0..CATCH_UP_EVENTS {
                std::hint::black_box(subscription.recv().expect("recv"));
            }
        })
    });
    group.finish();
}

/// Time from just before a durable append to the moment a live subscriber in another thread
/// holds the event.
fn delivery_latency(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path()).expect("open");
    let (received, arrivals) = crossbeam_channel::bounded::<Instant>(1);
    let mut subscription = store.subscribe_to_all(Position::END, Filter::all());
    let subscriber = thread::spawn(move || {
        while subscription.recv().is_ok() {
            if received.send(Instant::now()).is_err() {
                break;
            }
        }
    });
    let mut group = c.benchmark_group("subscription_delivery");
    group.bench_function("durable_append_to_live_subscriber", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                store.append("latency", ExpectedVersion::Any, [event()]).expect("append");
                total += arrivals.recv().expect("delivered") - start;
            }
            total
        })
    });
    group.finish();
    store.close();
    drop(arrivals);
    subscriber.join().expect("subscriber thread");
}

/// One writer, 100 live subscribers each receiving every event: total deliveries per second.
fn fan_out(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path()).expect("open");
    let mut group = c.benchmark_group("subscription_fan_out");
    group.throughput(Throughput::Elements(FAN_OUT_EVENTS * FAN_OUT_SUBSCRIBERS as u64));
    group.bench_function("1_writer_100_subscribers", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let subscribers: Vec<_> = (0..FAN_OUT_SUBSCRIBERS)
                    .map(|_| {
                        let mut s = store.subscribe_to_all(Position::END, Filter::all());
                        thread::spawn(move || {
                            for _ in 0..FAN_OUT_EVENTS {
                                std::hint::black_box(s.recv().expect("recv"));
                            }
                        })
                    })
                    .collect();
                let start = Instant::now();
                for _ in 0..FAN_OUT_EVENTS / 10 {
                    let events = (0..10).map(|_| event());
                    store.append("fan-out", ExpectedVersion::Any, events).expect("append");
                }
                subscribers.into_iter().for_each(|s| s.join().expect("subscriber"));
                total += start.elapsed();
            }
            total
        })
    });
    group.finish();
}

criterion_group! { name = benches; config = short::config(); targets = catch_up, delivery_latency, fan_out }
criterion_main!(benches);
