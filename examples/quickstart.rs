//! A first tour of annal: open a store, append (with an optimistic-concurrency conflict, an
//! idempotent retry and a multi-stream append), read a stream and `$all` both ways, then close,
//! reopen and look at what recovery found.
//!
//! Run it with `cargo run --release --example quickstart`.

use std::error::Error as StdError;

use annal::{
    Error, ExpectedVersion, NewEvent, Position, RecordedEvent, Store, StreamAppend, StreamVersion,
};
use uuid::Uuid;

fn main() -> Result<(), Box<dyn StdError>> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;
    println!("opened a new store in {}", dir.path().display());

    // A new stream: `NoStream` says "this stream must not exist yet".
    let placed = store.append(
        "order-1",
        ExpectedVersion::NoStream,
        [NewEvent::new("OrderPlaced", br#"{"sku":"A1","qty":2}"#.to_vec())],
    )?;
    println!(
        "appended OrderPlaced to order-1: position {}, version {}",
        placed.first_position, placed.last_version
    );

    let other = store.append(
        "order-2",
        ExpectedVersion::NoStream,
        [NewEvent::new("OrderPlaced", br#"{"sku":"B7","qty":1}"#.to_vec())],
    )?;
    println!(
        "appended OrderPlaced to order-2: position {}, version {}",
        other.first_position, other.last_version
    );

    // `Exact(v)`: append only if the stream's last event still has version v.
    let paid = store.append(
        "order-1",
        ExpectedVersion::Exact(placed.last_version.get()),
        [NewEvent::new("OrderPaid", br#"{"eur":24}"#.to_vec())],
    )?;
    println!(
        "appended OrderPaid to order-1 at version {} (expected {})",
        paid.last_version, placed.last_version
    );

    // A writer working from a stale read expects version 0 too; it must be refused.
    let stale = store.append(
        "order-1",
        ExpectedVersion::Exact(placed.last_version.get()),
        [NewEvent::new("OrderCancelled", b"{}".to_vec())],
    );
    match stale {
        Err(Error::WrongExpectedVersion { stream, actual, .. }) => println!(
            "refused a stale append to {stream}: it is at version {}, nothing was written",
            actual.map_or_else(|| "none".to_owned(), |v| v.to_string())
        ),
        Err(other) => return Err(other.into()),
        Ok(r) => return Err(format!("a stale append was accepted at {}", r.first_position).into()),
    }

    // A multi-stream append: both parts commit together, or neither does. The events carry
    // ids of our own so that the append can be retried safely.
    let shipped = [
        StreamAppend::new(
            "order-2",
            ExpectedVersion::Exact(other.last_version.get()),
            [NewEvent::new("OrderShipped", br#"{"carrier":"post"}"#.to_vec())
                .with_id(Uuid::new_v4())
                .with_metadata(br#"{"correlation":"c-17"}"#.to_vec())],
        ),
        StreamAppend::new(
            "inventory-B7",
            ExpectedVersion::Any,
            [NewEvent::new("StockReserved", br#"{"qty":-1}"#.to_vec()).with_id(Uuid::new_v4())],
        ),
    ];
    let multi = store.append_multi(shipped.clone())?;
    println!(
        "appended to two streams at once: positions {}..={}",
        multi.first_position, multi.last_position
    );
    for (stream, part) in &multi.streams {
        println!("  {stream}: version {}", part.last_version);
    }

    // Retrying with the same event ids (say, after a timeout) returns the original result
    // instead of appending twice; the expected versions are not checked again.
    let retried = store.append_multi(shipped)?;
    println!(
        "retried the same append: same result = {}, head still {}",
        retried == multi,
        store.head()
    );

    println!("order-1 forward:");
    for event in store.read_stream_forward("order-1", StreamVersion::START, usize::MAX)? {
        show(&event?);
    }
    println!("$all forward:");
    for event in store.read_all_forward(Position::START, usize::MAX) {
        show(&event?);
    }
    println!("$all backward, last two:");
    for event in store.read_all_backward(Position::END, 2) {
        show(&event?);
    }

    // The directory lock is released when the last handle to the store is dropped.
    store.close();
    drop(store);
    println!("closed the store");

    let store = Store::open(dir.path())?;
    let report = store.recovery_report();
    println!(
        "reopened: recovery found {} events in {} segment(s); torn tail cut: {}; segment removed: {}",
        report.events,
        report.segments,
        report.truncated.is_some(),
        report.removed_segment.is_some()
    );
    let stats = store.stats();
    println!(
        "stats: {} events in {} streams, {} segment(s), {} bytes on disk, {} bytes of index",
        stats.events, stats.streams, stats.segments, stats.disk_bytes, stats.index_memory_bytes
    );
    let order_1 = store.stream_version("order-1");
    println!(
        "order-1 is at version {} after the reopen",
        order_1.map_or_else(|| "none".to_owned(), |v| v.to_string())
    );
    println!("order-2 backward:");
    for event in store.read_stream_backward("order-2", StreamVersion::END, usize::MAX)? {
        show(&event?);
    }
    Ok(())
}

/// Prints one event on one line.
fn show(event: &RecordedEvent) {
    println!(
        "  #{} {} v{} {} {}",
        event.position(),
        event.stream(),
        event.version(),
        event.event_type(),
        String::from_utf8_lossy(event.data())
    );
}
