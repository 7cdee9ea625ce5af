//! A quick benchmark table: annal next to the disk's own limit, measured in the same run.
//!
//! `cargo run --release --example bench -- --quick` prints one table in well under a minute.
//! The criterion suite (`cargo bench`) gives the full statistics.

use std::{
    fs::OpenOptions,
    io::Write,
    os::unix::fs::FileExt,
    path::Path,
    sync::{Arc, Barrier},
    thread,
    time::{Duration, Instant},
};

use annal::{Durability, ExpectedVersion, NewEvent, Options, Position, Store};

const PAYLOAD: usize = 200;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let quick = std::env::args().any(|a| a == "--quick");
    let scale = if quick { 1 } else { 4 };
    let dir = tempfile::tempdir()?;
    println!("{:<44} {:>14} {:>12}", "workload", "rate", "ratio");

    let raw = raw_fsync_appends(&dir.path().join("raw"), 2000 * scale)?;
    row("raw write+fdatasync, 1 record each", raw, "ops/s", None);
    let (w1, lat) = durable_appends(&dir.path().join("w1"), 1, 2000 * scale)?;
    row("annal durable append, 1 writer", w1, "events/s", Some(w1 / raw));
    println!("{:<44} {:>14}", "  latency p50 / p99", format!("{:?} / {:?}", lat.0, lat.1));
    let (w16, lat) = durable_appends(&dir.path().join("w16"), 16, 1000 * scale)?;
    row("annal durable append, 16 writers", w16, "events/s", Some(w16 / raw));
    println!("{:<44} {:>14}", "  latency p50 / p99", format!("{:?} / {:?}", lat.0, lat.1));

    let events = 250_000 * scale as u64;
    let store_dir = dir.path().join("read");
    let built = build_store(&store_dir, events)?;
    let (read_rate, bytes) = read_all(&store_dir)?;
    let raw_read = raw_crc_read(&store_dir)?;
    row("annal $all read (CRC checked)", read_rate, "events/s", None);
    row("raw page-cache read + CRC of the segments", raw_read, "MB/s", None);
    let annal_mb = read_rate * bytes as f64 / events as f64 / 1e6;
    row("annal $all read as bandwidth", annal_mb, "MB/s", Some(annal_mb / raw_read));
    println!(
        "{:<44} {:>14}",
        "on-disk bytes per 200-byte event",
        format!("{:.1}", bytes as f64 / events as f64)
    );
    println!("{:<44} {:>14}", "build rate (no fsync, batches of 100)", format!("{built:.0} ev/s"));
    let store = Store::open(&store_dir)?;
    let stats = store.stats();
    println!(
        "{:<44} {:>14}",
        "index memory per event (1,000 streams)",
        format!("{:.2} B", stats.index_memory_bytes as f64 / stats.events as f64)
    );
    Ok(())
}

fn row(name: &str, rate: f64, unit: &str, ratio: Option<f64>) {
    let ratio = ratio.map_or(String::new(), |r| format!("{r:.2}x"));
    println!("{name:<44} {:>14} {ratio:>12}", format!("{rate:.0} {unit}"));
}

fn event() -> NewEvent {
    NewEvent::new("Benchmarked", vec![7u8; PAYLOAD])
}

/// One 276-byte record written and fdatasync'ed per operation: the disk's limit for W1.
fn raw_fsync_appends(path: &Path, n: usize) -> std::io::Result<f64> {
    let file = OpenOptions::new().create(true).write(true).truncate(true).open(path)?;
    let buf = [1u8; 276];
    let start = Instant::now();
    for i in 0..n {
        file.write_all_at(&buf, (i * buf.len()) as u64)?;
        file.sync_data()?;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// `writers` threads each appending `per_writer` single events to their own stream.
fn durable_appends(
    dir: &Path,
    writers: usize,
    per_writer: usize,
) -> Result<(f64, (Duration, Duration)), annal::Error> {
    let store = Store::open(dir)?;
    let barrier = Arc::new(Barrier::new(writers));
    let start = Instant::now();
    let handles: Vec<_> = (0..writers)
        .map(|w| {
            let (store, barrier) = (store.clone(), Arc::clone(&barrier));
            thread::spawn(move || {
                barrier.wait();
                let stream = format!("writer-{w}");
                let mut lat = Vec::with_capacity(per_writer);
                for _ in 0..per_writer {
                    let t = Instant::now();
                    store.append(&stream, ExpectedVersion::Any, [event()]).expect("append");
                    lat.push(t.elapsed());
                }
                lat
            })
        })
        .collect();
    let mut lat: Vec<Duration> = handles.into_iter().flat_map(|h| h.join().unwrap()).collect();
    let rate = lat.len() as f64 / start.elapsed().as_secs_f64();
    lat.sort();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    Ok((rate, (pct(0.50), pct(0.99))))
}

/// Builds a store of `events` events over 1,000 streams, batches of 100, without fsync.
fn build_store(dir: &Path, events: u64) -> Result<f64, annal::Error> {
    let options = Options { durability: Durability::None, ..Options::default() };
    let store = Store::open_with(dir, options)?;
    let start = Instant::now();
    for batch in 0..events / 100 {
        let stream = format!("stream-{}", batch % 1000);
        store.append(&stream, ExpectedVersion::Any, (0..100).map(|_| event()))?;
    }
    Ok(events as f64 / start.elapsed().as_secs_f64())
}

/// Reads all of `$all` (warm: twice, timing the second), returning events/s and segment bytes.
fn read_all(dir: &Path) -> Result<(f64, u64), annal::Error> {
    let store = Store::open(dir)?;
    let mut best = 0.0f64;
    for _ in 0..3 {
        let start = Instant::now();
        let mut n = 0u64;
        let mut sum = 0usize;
        for event in store.read_all_forward(Position::START, usize::MAX) {
            sum += event?.data().len();
            n += 1;
        }
        assert_eq!(sum, n as usize * PAYLOAD);
        best = best.max(n as f64 / start.elapsed().as_secs_f64());
    }
    Ok((best, store.stats().disk_bytes))
}

/// Reads the segment files from the page cache and CRCs them: the limit for `$all` reads.
fn raw_crc_read(dir: &Path) -> std::io::Result<f64> {
    let mut files: Vec<_> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    files.sort();
    let data: Vec<Vec<u8>> = files.iter().map(std::fs::read).collect::<Result<_, _>>()?;
    let mut best = 0.0f64;
    for _ in 0..3 {
        let start = Instant::now();
        let mut total = 0usize;
        let mut crc = 0u32;
        for bytes in &data {
            crc ^= crc32fast::hash(bytes);
            total += bytes.len();
        }
        std::io::sink().write_all(&crc.to_le_bytes())?;
        best = best.max(total as f64 / start.elapsed().as_secs_f64() / 1e6);
    }
    Ok(best)
}
