//! Subscription figures: append → delivery latency with durable appends, fan-out from one
//! writer to 100 live subscribers, and the catch-up speed of a new subscription over 1M events.
//!
//! `cargo run --release --example subscription_bench` prints one table (in about ten seconds);
//! `-- --quick` runs workloads a quarter of the size.

use std::{
    path::Path,
    sync::{Arc, Barrier},
    thread,
    time::{Duration, Instant},
};

use annal::{Durability, ExpectedVersion, Filter, NewEvent, Options, Position, Store};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let scale = if quick { 1 } else { 4 };
    let dir = tempfile::tempdir()?;
    println!("{:<58} {:>20}", "workload", "figure");

    let (delivery, append) = latency(&dir.path().join("latency"), 500 * scale)?;
    row("append -> delivery latency p50 / p99 (fsync, 1 writer)", &pair(delivery));
    row("  for scale: the append call itself p50 / p99", &pair(append));

    let events = 5_000 * scale as u64;
    let alone = fan_out(&dir.path().join("fan0"), 0, events)?;
    let fanned = fan_out(&dir.path().join("fan100"), 100, events)?;
    row("fan-out, 1 writer (fsync, appends of 10), 100 subscribers", "");
    row("  events delivered in total", &format!("{:.0} events/s", fanned.delivered_per_s));
    row("  writer with 100 subscribers", &format!("{:.0} events/s", fanned.written_per_s));
    row("  writer with no subscriber", &format!("{:.0} events/s", alone.written_per_s));

    let store_dir = dir.path().join("catchup");
    let events = 250_000 * scale as u64;
    build(&store_dir, events)?;
    let store = Store::open(&store_dir)?;
    let read = rate(events, || Ok(store.read_all_forward(Position::START, usize::MAX).count()))?;
    let caught = rate(events, || catch_up(&store, Filter::all(), events))?;
    let filtered = rate(events, || catch_up(&store, Filter::all().category("stream0"), events))?;
    row(&format!("catch-up of a new subscription over {events} events"), &per_s(caught));
    row("  same, filtered to one category (1% of the events)", &per_s(filtered));
    row("  for scale: read_all_forward over the same events", &per_s(read));
    Ok(())
}

fn row(name: &str, figure: &str) {
    println!("{name:<58} {figure:>20}");
}

fn pair((a, b): (Duration, Duration)) -> String {
    format!("{a:.0?} / {b:.0?}")
}

fn per_s(rate: f64) -> String {
    format!("{:.2} M events/s", rate / 1e6)
}

fn percentiles(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    let at = |p: f64| samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)];
    (at(0.50), at(0.99))
}

/// One writer appends `n` single events, each carrying the time it was sent; a live subscriber
/// notes when each arrives. Returns the delivery and the append latencies.
fn latency(dir: &Path, n: usize) -> Result<((Duration, Duration), (Duration, Duration))> {
    let store = Store::open(dir)?;
    let epoch = Instant::now();
    let mut sub = store.subscribe_to_all(Position::END, Filter::all());
    let receiver = thread::spawn(move || {
        let mut delays = Vec::with_capacity(n);
        for _ in 0..n {
            let event = sub.recv().expect("recv");
            let sent = u64::from_le_bytes(event.data()[..8].try_into().expect("8 bytes"));
            delays.push(epoch.elapsed() - Duration::from_nanos(sent));
        }
        delays
    });
    let mut appends = Vec::with_capacity(n);
    for _ in 0..n {
        let sent = epoch.elapsed();
        let data = (sent.as_nanos() as u64).to_le_bytes().to_vec();
        store.append("latency-1", ExpectedVersion::Any, [NewEvent::new("Timed", data)])?;
        appends.push(epoch.elapsed() - sent);
    }
    let delays = receiver.join().expect("receiver");
    Ok((percentiles(delays), percentiles(appends)))
}

struct FanOut {
    delivered_per_s: f64,
    written_per_s: f64,
}

/// One writer appends `events` events in appends of 10 while `subscribers` live subscribers
/// each receive all of them.
fn fan_out(dir: &Path, subscribers: usize, events: u64) -> Result<FanOut> {
    let store = Store::open(dir)?;
    let barrier = Arc::new(Barrier::new(subscribers + 1));
    let handles: Vec<_> = (0..subscribers)
        .map(|_| {
            let mut sub = store.subscribe_to_all(Position::START, Filter::all());
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || {
                barrier.wait();
                for _ in 0..events {
                    sub.recv().expect("recv");
                }
                Instant::now()
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    for _ in 0..events / 10 {
        let batch = (0..10).map(|_| NewEvent::new("Fanned", vec![7u8; 100]));
        store.append("fan-1", ExpectedVersion::Any, batch)?;
    }
    let written = start.elapsed();
    let last = handles.into_iter().map(|h| h.join().expect("subscriber")).max();
    let delivered = last.map_or(written, |t| t - start);
    Ok(FanOut {
        delivered_per_s: (events * subscribers as u64) as f64 / delivered.as_secs_f64(),
        written_per_s: events as f64 / written.as_secs_f64(),
    })
}

/// `events` events of 100 bytes over 100 streams (`stream0-…` to `stream99-…`), no fsync.
fn build(dir: &Path, events: u64) -> Result<()> {
    let options = Options { durability: Durability::None, ..Options::default() };
    let store = Store::open_with(dir, options)?;
    for batch in 0..events / 100 {
        let stream = format!("stream{}-1", batch % 100);
        store.append(&stream, ExpectedVersion::Any, (0..100).map(|_| event()))?;
    }
    Ok(())
}

fn event() -> NewEvent {
    NewEvent::new("Built", vec![1u8; 100])
}

/// A new subscription from the start, received until it has passed `events` positions.
fn catch_up(store: &Store, filter: Filter, events: u64) -> Result<usize> {
    let mut sub = store.subscribe_to_all(Position::START, filter);
    let mut delivered = 0;
    while sub.next_position() < Some(Position(events)) {
        if sub.try_recv()?.is_some() {
            delivered += 1;
        }
    }
    Ok(delivered)
}

/// The best of three runs of `f`, as `events` per second.
fn rate(events: u64, mut f: impl FnMut() -> Result<usize>) -> Result<f64> {
    let mut best = 0.0f64;
    for _ in 0..3 {
        let start = Instant::now();
        std::hint::black_box(f()?);
        best = best.max(events as f64 / start.elapsed().as_secs_f64());
    }
    Ok(best)
}
