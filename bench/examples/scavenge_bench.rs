//! Scavenge throughput in one quick table: a store with 50% deletable events (half of 1,000
//! streams tombstoned) is scavenged, and the same sealed segment bytes are copied raw (read,
//! write, `fdatasync` per file) in the same run; rounds alternate the two, best of each counts.
//!
//! Run it with `cargo run --release --example scavenge_bench [-- EVENTS]` (default 500,000).

#[path = "../benches/common/scavenge.rs"]
mod workload;

use std::time::Duration;

fn mb_per_s(bytes: u64, time: Duration) -> f64 {
    bytes as f64 / 1e6 / time.as_secs_f64()
}

fn main() {
    let events: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(500_000);
    let template = tempfile::tempdir().expect("temp dir");
    workload::build(template.path(), events);
    let (mut best_scavenge, mut best_raw) = (0f64, 0f64);
    let mut last = None;
    for _ in 0..3 {
        let copy = tempfile::tempdir().expect("temp dir");
        workload::copy_dir(template.path(), copy.path());
        let s = workload::scavenge(copy.path());
        best_scavenge = best_scavenge.max(mb_per_s(s.bytes, s.time));
        let out = tempfile::tempdir().expect("temp dir");
        let (bytes, time) = workload::raw_copy(template.path(), out.path());
        best_raw = best_raw.max(mb_per_s(bytes, time));
        last = Some(s);
    }
    let s = last.expect("three rounds");
    println!(
        "store: {events} events of {} B, half of {} streams tombstoned",
        workload::PAYLOAD,
        workload::STREAMS
    );
    println!(
        "scavenged {:.1} MB of sealed segments: {} events removed, {:.1} MB reclaimed ({:.0}%)",
        s.bytes as f64 / 1e6,
        s.events_removed,
        s.reclaimed as f64 / 1e6,
        100.0 * s.reclaimed as f64 / s.bytes as f64
    );
    println!("{:<44}{:>12}", "best of 3 rounds", "MB/s");
    println!("{:<44}{:>12.0}", "annal scavenge (segment bytes processed)", best_scavenge);
    println!("{:<44}{:>12.0}", "raw copy of the same bytes (read+write+fsync)", best_raw);
    println!("{:<44}{:>11.2}×", "ratio", best_scavenge / best_raw);
}
