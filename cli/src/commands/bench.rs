//! `annal bench`: a quick table of annal's throughput next to the raw disk's, measured in the
//! same run on the same directory, with the ratios. The full suite, SQLite included, is
//! `cargo bench` and `cargo run --release --example bench` in the annal repository.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, Read},
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
    thread,
    time::{Duration, Instant},
};

use annal::{
    Durability, ExpectedVersion, NewEvent, Options, Position, Store,
    format::{RECORD_HEADER_LEN, SEGMENT_SUFFIX},
};

use crate::{
    args::BenchArgs,
    exit::{CliResult, Exit, Failure},
    output::Output,
};

/// Payload of every event.
const PAYLOAD_BYTES: usize = 200;
/// Events per append in the batch workload.
const BATCH_EVENTS: usize = 100;
/// Concurrent writers in the group-commit workload.
const WRITERS: usize = 16;
/// Each contender runs this many slices, taking turns, so a drifting disk treats them alike.
const ROUNDS: u32 = 2;
const EVENT_TYPE: &str = "Benchmarked";

/// Events done in some time.
#[derive(Clone, Copy, Debug, Default)]
struct Rate {
    events: u64,
    elapsed: Duration,
}

impl Rate {
    fn add(&mut self, other: Rate) {
        self.events += other.events;
        self.elapsed += other.elapsed;
    }

    fn per_second(self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// One line of the table.
struct Row {
    workload: String,
    annal: Rate,
    raw: Rate,
    raw_is: &'static str,
}

/// Runs the workloads in a scratch directory inside `args.dir` and prints the table.
pub fn run(args: &BenchArgs) -> CliResult {
    fs::create_dir_all(&args.dir).map_err(|e| Failure::io("create", &args.dir, e))?;
    let scratch = args.dir.join(format!("annal-bench-{}", std::process::id()));
    fs::create_dir(&scratch).map_err(|e| Failure::io("create", &scratch, e))?;
    let slice = Duration::from_millis(args.slice_ms.max(1));
    let rows = measure(&scratch, slice, args.read_events.max(1));
    let cleanup = fs::remove_dir_all(&scratch).map_err(|e| Failure::io("remove", &scratch, e));
    let rows = rows?;
    cleanup?;
    print(&scratch, slice, &rows)?;
    Ok(Exit::Ok)
}

fn measure(scratch: &Path, slice: Duration, read_events: u64) -> CliResult<Vec<Row>> {
    let record = RECORD_HEADER_LEN + "bench-00".len() + EVENT_TYPE.len() + PAYLOAD_BYTES;
    let store = Store::open(scratch.join("appends"))?;
    let single =
        interleaved(|| appends(&store, 1, 1, slice), || raw_syncs(scratch, record, 1, slice))?;
    let mut many = Rate::default();
    for _ in 0..ROUNDS {
        many.add(appends(&store, WRITERS, 1, slice)?);
    }
    let batches = interleaved(
        || appends(&store, 1, BATCH_EVENTS, slice),
        || raw_syncs(scratch, record, BATCH_EVENTS, slice),
    )?;
    drop(store);
    let (read, raw_read) = reads(&scratch.join("reads"), read_events)?;
    Ok(vec![
        Row {
            workload: "durable append, 1 writer".into(),
            annal: single.0,
            raw: single.1,
            raw_is: "write + fdatasync per event",
        },
        Row {
            workload: format!("durable append, {WRITERS} writers"),
            annal: many,
            raw: single.1,
            raw_is: "write + fdatasync per event (group commit beats it)",
        },
        Row {
            workload: format!("durable batches of {BATCH_EVENTS}"),
            annal: batches.0,
            raw: batches.1,
            raw_is: "the same bytes per fdatasync",
        },
        Row {
            workload: format!("read $all, {read_events} events, warm"),
            annal: read,
            raw: raw_read,
            raw_is: "read + CRC of the segment files",
        },
    ])
}

/// Runs `a` and `b` for [`ROUNDS`] slices each, taking turns, and adds up what each did.
fn interleaved(
    mut a: impl FnMut() -> CliResult<Rate>,
    mut b: impl FnMut() -> CliResult<Rate>,
) -> CliResult<(Rate, Rate)> {
    let (mut ra, mut rb) = (Rate::default(), Rate::default());
    for _ in 0..ROUNDS {
        ra.add(a()?);
        rb.add(b()?);
    }
    Ok((ra, rb))
}

/// `writers` threads appending `batch` events at a time, each to its own stream, for `slice`.
fn appends(store: &Store, writers: usize, per_append: usize, slice: Duration) -> CliResult<Rate> {
    let events = AtomicU64::new(0);
    let start = Instant::now();
    let results: Vec<annal::Result<()>> = thread::scope(|s| {
        let handles: Vec<_> = (0..writers)
            .map(|w| {
                let events = &events;
                s.spawn(move || {
                    let stream = format!("bench-{w:02}");
                    while start.elapsed() < slice {
                        let batch = (0..per_append).map(|_| NewEvent::new(EVENT_TYPE, payload()));
                        store.append(&stream, ExpectedVersion::Any, batch)?;
                        events.fetch_add(per_append as u64, Ordering::Relaxed);
                    }
                    Ok(())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("a bench writer panicked")).collect()
    });
    let elapsed = start.elapsed();
    results.into_iter().collect::<annal::Result<()>>()?;
    Ok(Rate { events: events.into_inner(), elapsed })
}

fn payload() -> Vec<u8> {
    vec![b'x'; PAYLOAD_BYTES]
}

/// The disk's limit for durable appends: `pwrite` of `events` records of `record` bytes and
/// `fdatasync`, repeated for `slice`, the file growing as a segment does.
fn raw_syncs(dir: &Path, record: usize, events: usize, slice: Duration) -> CliResult<Rate> {
    let path = dir.join("raw-appends");
    let run = || -> io::Result<Rate> {
        let file = OpenOptions::new().create(true).write(true).truncate(true).open(&path)?;
        let buf = vec![0x5a_u8; record * events];
        let (mut rate, mut offset, start) = (Rate::default(), 0u64, Instant::now());
        while start.elapsed() < slice {
            file.write_all_at(&buf, offset)?;
            file.sync_data()?;
            offset += buf.len() as u64;
            rate.events += events as u64;
        }
        rate.elapsed = start.elapsed();
        fs::remove_file(&path)?;
        Ok(rate)
    };
    run().map_err(|e| Failure::io("write", &path, e))
}

/// Builds a store of `events` events (unsynced, batches of 100), then reads `$all` from it and,
/// for the raw limit, reads and CRC-checks its segment files; best of three each.
fn reads(dir: &Path, events: u64) -> CliResult<(Rate, Rate)> {
    let build = Options { durability: Durability::None, ..Options::default() };
    let store = Store::open_with(dir, build)?;
    let mut left = events;
    while left > 0 {
        let n = left.min(BATCH_EVENTS as u64);
        let batch = (0..n).map(|_| NewEvent::new(EVENT_TYPE, payload()));
        store.append(&format!("bench-{:02}", left % 100), ExpectedVersion::Any, batch)?;
        left -= n;
    }
    store.close();
    let store = Store::open_read_only(dir, Options::default())?;
    let files = segment_paths(dir)?;
    let (mut read, mut raw) = (None::<Rate>, None::<Rate>);
    for _ in 0..3 {
        let r = read_all(&store)?;
        let w = read_crc(&files, events)?;
        read = Some(read.map_or(r, |best| if r.elapsed < best.elapsed { r } else { best }));
        raw = Some(raw.map_or(w, |best| if w.elapsed < best.elapsed { w } else { best }));
    }
    Ok((read.expect("three runs"), raw.expect("three runs")))
}

/// Reads every event of `$all`, touching its data.
fn read_all(store: &Store) -> CliResult<Rate> {
    let start = Instant::now();
    let (mut events, mut bytes) = (0u64, 0u64);
    for event in store.read_all_forward(Position::START, usize::MAX) {
        bytes += event?.data().len() as u64;
        events += 1;
    }
    std::hint::black_box(bytes);
    Ok(Rate { events, elapsed: start.elapsed() })
}

/// Reads `files` in 1 MiB pieces and CRC-checks every byte, counted as `events` events.
fn read_crc(files: &[PathBuf], events: u64) -> CliResult<Rate> {
    let mut buf = vec![0u8; 1 << 20];
    let mut crc = crc32fast::Hasher::new();
    let start = Instant::now();
    for path in files {
        let mut file = File::open(path).map_err(|e| Failure::io("open", path, e))?;
        loop {
            let n = file.read(&mut buf).map_err(|e| Failure::io("read", path, e))?;
            if n == 0 {
                break;
            }
            crc.update(&buf[..n]);
        }
    }
    std::hint::black_box(crc.finalize());
    Ok(Rate { events, elapsed: start.elapsed() })
}

fn segment_paths(dir: &Path) -> CliResult<Vec<PathBuf>> {
    let entries = fs::read_dir(dir).map_err(|e| Failure::io("list", dir, e))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_str().is_some_and(|s| s.ends_with(SEGMENT_SUFFIX)))
        .collect();
    files.sort();
    Ok(files)
}

fn print(scratch: &Path, slice: Duration, rows: &[Row]) -> CliResult<()> {
    let mut out = Output::new(false);
    out.line(format_args!(
        "annal bench in {} ({} ms per contender and round, {ROUNDS} rounds; {PAYLOAD_BYTES} B \
         events)\n",
        scratch.display(),
        slice.as_millis()
    ))?;
    out.line(format_args!(
        "{:<34} {:>14} {:>14} {:>11}  raw disk is",
        "workload", "annal ev/s", "raw ev/s", "annal/raw"
    ))?;
    for row in rows {
        let (a, r) = (row.annal.per_second(), row.raw.per_second());
        out.line(format_args!(
            "{:<34} {:>14.0} {:>14.0} {:>10.2}×  {}",
            row.workload,
            a,
            r,
            a / r.max(1e-9),
            row.raw_is
        ))?;
    }
    out.line(
        "\nFor SQLite next to these, run `cargo run --release --example bench -- --quick` in \
         the annal repository.",
    )?;
    out.flush()?;
    Ok(())
}
