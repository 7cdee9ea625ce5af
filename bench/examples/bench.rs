//! A quick benchmark table: annal, SQLite and the disk's own limit side by side, every figure
//! measured in the same run and given as a ratio.
//!
//! `cargo run --release --example bench -- --quick` prints one table in about half a minute;
//! without `--quick` every timed loop runs four times longer. `--only writes` runs W1–W3
//! alone, `--only reads` the rest. `ANNAL_BENCH_10M=1` adds opening
//! (and opening + reading the last event of a random stream from) a 10M-event store, annal's
//! (~2.8 GB) and SQLite's (~3 GB) alike; `ANNAL_BENCH_10M_STREAMS=1` adds W8, a store of 10M
//! single-event streams (~3 GB; `ANNAL_BENCH_W8_STREAMS=<n>` for another count). Those large
//! stores are kept between runs in `target/bench-data` (or `ANNAL_BENCH_DATA`; see
//! `benches/common/cache.rs`). `-- --criterion` prints instead the ratios of the last
//! `cargo bench` run, read from `target/criterion`; `-- --profile read-all|build` runs one
//! workload alone for a profiler (see `benches/common/profile.rs`). The workloads are the
//! criterion benches' own, in `benches/common/`.

#[path = "../benches/common/mod.rs"]
mod common;
#[path = "../benches/common/profile.rs"]
mod profile;
#[path = "../benches/common/report.rs"]
mod report;
#[path = "../benches/common/sqlite.rs"]
mod sqlite;

#[path = "bench/many_streams.rs"]
mod many_streams;
#[path = "bench/open_read.rs"]
mod open_read;

use std::{
    path::Path,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use annal::{Durability, Store};
use annal_bench::stats;
use common::{
    BATCH_EVENTS, Layout, PAYLOAD_BYTES, cache,
    count::{CountingAlloc, CountingStorage},
    drop_page_cache, per_second,
    raw::{self, Budget, Writes},
    workload::{self, counted_options},
};
use report::{Table, criterion_report, human, ms};
use sqlite::SqliteStore;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--criterion") {
        return criterion_report();
    }
    if let Some(at) = args.iter().position(|a| a == "--profile") {
        return profile::run(&args[at + 1..]);
    }
    let quick = args.iter().any(|a| a == "--quick");
    let run = Run {
        slice: Duration::from_millis(if quick { 250 } else { 1000 }),
        store: if quick { Layout::sized(250_000, PAYLOAD_BYTES) } else { Layout::MILLION },
        dir: tempfile::tempdir()?,
    };
    let only = args.iter().position(|a| a == "--only").and_then(|at| args.get(at + 1));
    let (writes, reads) = match only.map(String::as_str) {
        None => (true, true),
        Some("writes") => (true, false),
        Some("reads") => (false, true),
        Some(other) => return Err(format!("--only wants writes or reads, not {other:?}").into()),
    };
    let mut table = Table::default();
    if writes {
        let fsync = w1(&run, &mut table)?;
        w2(&run, &mut table, &fsync)?;
        w3(&run, &mut table)?;
    }
    if reads {
        reads_and_open(&run, &mut table)?;
    }
    if let Some(streams) = common::many_streams_wanted().filter(|_| reads) {
        many_streams::w8(&mut table, run.dir.path(), streams, run.slice)?;
    }
    table.print();
    Ok(())
}

/// One run: how long each timed slice lasts, the store the read workloads use, and the
/// scratch directory everything lives in.
struct Run {
    slice: Duration,
    store: Layout,
    dir: tempfile::TempDir,
}

impl Run {
    fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }
}

/// Runs every contender for three slices, taking turns, and adds up what each did: a disk
/// whose speed drifts during the run then treats them alike.
fn interleaved<const N: usize>(runs: [&mut dyn FnMut() -> Res<Writes>; N]) -> Res<[Writes; N]> {
    let mut out = std::array::from_fn(|_| Writes::default());
    let mut runs = runs;
    for _ in 0..3 {
        for (run, total) in runs.iter_mut().zip(out.iter_mut()) {
            total.merge(run()?);
        }
    }
    Ok(out)
}

/// Latency of one write + fdatasync on this disk: median and 99th percentile.
struct Fsync {
    p50: Duration,
    p99: Duration,
}

/// W1: durable single-event appends, one writer.
fn w1(run: &Run, table: &mut Table) -> Res<Fsync> {
    let syncs = CountingStorage::new();
    let store = Store::open_with(run.path("w1"), counted_options(Durability::Fsync, &syncs))?;
    let lite = Arc::new(Mutex::new(SqliteStore::open(&run.path("w1-sqlite"), true)?));
    let record = raw::record_bytes("writer-0", PAYLOAD_BYTES);
    let budget = Budget::time(run.slice);
    let [mut a, mut s, mut r] = interleaved([
        &mut || Ok(workload::concurrent_appends(&store, &syncs, 1, PAYLOAD_BYTES, budget)),
        &mut || Ok(sqlite::concurrent_appends(&lite, 1, PAYLOAD_BYTES, budget)),
        &mut || Ok(raw::group_appends(run.dir.path(), record, 1, budget)?),
    ])?;
    let ratio = a.events_per_s() / r.events_per_s();
    table.section("W1 durable append, 1 writer, 200 B (raw: write+fdatasync per event)");
    table.rates("events/s", &a, Some(&s), Some(&r), Some(("≥ 0.9× raw", ratio >= 0.9)));
    table.latency("latency p50", 0.5, &mut a, &mut s, &mut r);
    table.latency("latency p99", 0.99, &mut a, &mut s, &mut r);
    Ok(Fsync { p50: r.latencies.quantile(0.5), p99: r.latencies.quantile(0.99) })
}

/// W2: durable single-event appends from 16 and 64 threads, each to its own stream; the raw
/// limit writes the same bytes with annal's measured group size.
fn w2(run: &Run, table: &mut Table, fsync: &Fsync) -> Res<()> {
    for (writers, goal) in [(16, 8.0), (64, 20.0)] {
        let syncs = CountingStorage::new();
        let options = counted_options(Durability::Fsync, &syncs);
        let store = Store::open_with(run.path(&format!("w2-{writers}")), options)?;
        let path = run.path(&format!("w2-{writers}-sqlite"));
        let lite = Arc::new(Mutex::new(SqliteStore::open(&path, true)?));
        let budget = Budget::time(run.slice);
        // The raw limit writes groups of the size annal reached, so annal goes first.
        let mut a = workload::concurrent_appends(&store, &syncs, writers, PAYLOAD_BYTES, budget);
        let group = a.group_size().round().max(1.0) as usize;
        let record = raw::record_bytes("writer-00", PAYLOAD_BYTES);
        let [more, mut s, mut r] = interleaved([
            &mut || {
                Ok(workload::concurrent_appends(&store, &syncs, writers, PAYLOAD_BYTES, budget))
            },
            &mut || Ok(sqlite::concurrent_appends(&lite, writers, PAYLOAD_BYTES, budget)),
            &mut || Ok(raw::group_appends(run.dir.path(), record, group, budget)?),
        ])?;
        a.merge(more);
        let vs = a.events_per_s() / s.events_per_s();
        table.section(&format!(
            "W2 durable append, {writers} writers, 200 B (raw: groups of {group} per fdatasync)"
        ));
        let goal_text = format!("≥ {goal}× SQLite");
        table.rates("events/s", &a, Some(&s), Some(&r), Some((&goal_text, vs >= goal)));
        let p99 = a.latencies.quantile(0.99);
        table.latency("latency p99", 0.99, &mut a, &mut s, &mut r);
        let of_fsync = p99.as_secs_f64() / fsync.p50.as_secs_f64();
        let of_tail = p99.as_secs_f64() / fsync.p99.as_secs_f64();
        table.text(
            "p99 / one fsync (p50 | p99 of raw W1)",
            &format!("{of_fsync:.1}× | {of_tail:.1}×"),
            ("≤ 3× one fsync", of_fsync <= 3.0),
        );
        let worst = ms(a.latencies.max());
        table.plain("worst latency", &worst, &ms(s.latencies.max()), &ms(r.latencies.max()));
        let sizes = (format!("{:.1}", a.group_size()), format!("{:.1}", s.group_size()));
        table.plain("events per fsync", &sizes.0, &sizes.1, &group.to_string());
    }
    Ok(())
}

/// W3: durable appends of 100 events, one writer, at 200 B and across the payload sweep, plus
/// the disk's plain sequential write bandwidth.
fn w3(run: &Run, table: &mut Table) -> Res<()> {
    let syncs = CountingStorage::new();
    let store = Store::open_with(run.path("w3"), counted_options(Durability::Fsync, &syncs))?;
    let mut lite = SqliteStore::open(&run.path("w3-sqlite"), true)?;
    table.section("W3 durable batches of 100 events, 1 writer (raw: same bytes per fdatasync)");
    for bytes in [PAYLOAD_BYTES, 100, 1024, 16 * 1024] {
        let budget = Budget::time(run.slice);
        let record = raw::record_bytes(&format!("batches-{bytes}"), bytes);
        let [a, s, r] = interleaved([
            &mut || Ok(workload::batch_appends(&store, &syncs, BATCH_EVENTS, bytes, budget)),
            &mut || Ok(sqlite::batch_appends(&mut lite, BATCH_EVENTS, bytes, budget)),
            &mut || Ok(raw::group_appends(run.dir.path(), record, BATCH_EVENTS, budget)?),
        ])?;
        let (vs_s, vs_r) =
            (a.events_per_s() / s.events_per_s(), a.events_per_s() / r.events_per_s());
        let goal = bytes == PAYLOAD_BYTES;
        let check = ("≥ 5× SQLite, ≥ 0.5× raw", vs_s >= 5.0 && vs_r >= 0.5);
        table.rates(&format!("{bytes} B: events/s"), &a, Some(&s), Some(&r), goal.then_some(check));
        let mb = |w: &Writes| per_second(w.bytes, w.elapsed) / 1e6;
        let raw_payload = per_second(r.events * bytes as u64, r.elapsed) / 1e6;
        table.values(
            &format!("{bytes} B: payload MB/s"),
            mb(&a),
            Some(mb(&s)),
            Some(raw_payload),
            None,
        );
    }
    let seq = raw::sequential_write(run.dir.path(), 256 << 20)? / 1e6;
    table.plain(
        "raw sequential write, 8 MiB writes + 1 fdatasync",
        "",
        "",
        &format!("{seq:.0} MB/s"),
    );
    Ok(())
}

/// W4–W7 on stores built in this run: building, `$all` reads warm and cold, stream reads,
/// open, space and index memory.
fn reads_and_open(run: &Run, table: &mut Table) -> Res<()> {
    let layout = run.store;
    let (store, built) = workload::build(&run.path("1m"), layout)?;
    let (lite, lite_built) = sqlite::build(&run.path("1m-sqlite"), layout)?;
    let (a, s) = (per_second(layout.events, built), per_second(layout.events, lite_built));
    let size = format!("{}k events of 200 B", layout.events / 1000);
    table.section(&format!("W3 building a store of {size}: batches of 100, no fsync either side"));
    table.values("events/s", a, Some(s), None, Some(("≥ 8× SQLite", a / s >= 8.0)));

    table.section(&format!(
        "W4 read $all forward, {size} (raw: mmap + a CRC per record, walking the length prefixes)"
    ));
    let files = raw::segment_files(&run.path("1m"))?;
    let mapped = raw::Mapped::open(&files)?;
    // A warm read of the quick store takes ~10 ms, so one descheduling spoils a round: the
    // median of ten, taking turns, is steadier than of three on a shared machine.
    let [a, s, r, handles, whole, pread] = median_rates(
        10,
        false,
        [
            &mut || Ok(workload::read_all(&store)?.events),
            &mut || Ok(lite.read_all()?.events),
            &mut || Ok(mapped.crc_records()),
            &mut || Ok(workload::read_all_recorded(&store)?.events),
            &mut || {
                mapped.crc_whole();
                Ok(layout.events)
            },
            &mut || Ok(raw::read_crc(&files).map(|_| layout.events)?),
        ],
    )?;
    let check = ("≥ 5× SQLite, > 20M/s, ≥ 0.5× raw", a / s >= 5.0 && a > 20e6 && a / r >= 0.5);
    table.values("warm events/s (next_ref)", a, Some(s), Some(r), Some(check));
    let check = ("≥ 0.8× next_ref", handles / a >= 0.8);
    table.values("warm events/s (iterator)", handles, Some(s), Some(r), Some(check));
    table.plain("  iterator ÷ next_ref", &format!("{:.2}×", handles / a), "", "");
    for (name, other) in [("mmap + CRC of whole files", whole), ("pread 1 MiB + CRC", pread)] {
        table.plain(
            &format!("  raw {name}: records/s"),
            &human(other),
            "",
            &format!("next_ref {:.2}×, iterator {:.2}×", a / other, handles / other),
        );
    }
    if drop_page_cache() {
        let [a, s, r] = median_rates(
            2,
            true,
            [
                &mut || Ok(workload::read_all(&store)?.events),
                &mut || Ok(lite.read_all()?.events),
                &mut || Ok(raw::read_crc(&files).map(|_| layout.events)?),
            ],
        )?;
        let check = Some(("≥ 2× SQLite", a / s >= 2.0));
        table.values("cold events/s (raw: pread + CRC)", a, Some(s), Some(r), check);
    } else {
        table.plain("cold events/s", "could not drop the page cache", "", "");
    }

    stream_reads(run, table)?;
    open_space_memory(run, table, store, lite, layout)
}

/// W5: one stream of 10,000 events interleaved with others, and 1,000 random whole streams.
fn stream_reads(run: &Run, table: &mut Table) -> Res<()> {
    let layout = Layout::STREAMS;
    let (store, _) = workload::build(&run.path("streams"), layout)?;
    let lite = sqlite::fill(&run.path("streams-sqlite"), layout)?;
    table.section("W5 stream reads, warm (store of 200k events, 10,001 streams)");
    let [a, s] = median_rates(
        3,
        false,
        [&mut || Ok(workload::read_streams(&store, &[0])?.events), &mut || {
            Ok(lite.read_streams(&[0])?.events)
        }],
    )?;
    table.values(
        "one stream of 10,000: events/s",
        a,
        Some(s),
        None,
        Some(("≥ 3× SQLite", a / s >= 3.0)),
    );
    let picks = layout.random_streams();
    let [a, s] = median_rates(
        3,
        false,
        [&mut || Ok(workload::read_streams(&store, &picks)?.events), &mut || {
            Ok(lite.read_streams(&picks)?.events)
        }],
    )?;
    table.values(
        "1,000 random streams: events/s",
        a,
        Some(s),
        None,
        Some(("≥ 3× SQLite", a / s >= 3.0)),
    );
    Ok(())
}

/// W6 and W7: opening the 1M (and, opted in, 10M) store, bytes on disk, index memory.
fn open_space_memory(
    run: &Run,
    table: &mut Table,
    store: Store,
    lite: SqliteStore,
    layout: Layout,
) -> Res<()> {
    let disk = store.stats().disk_bytes;
    drop(store);
    let lite_disk = lite.disk_bytes();
    drop(lite);
    table.section("W6 open (recovery; indexes read from their files), warm and cold cache");
    let name = format!("{}k", layout.events / 1000);
    open_rows(table, &name, &run.path("1m"), Some(&run.path("1m-sqlite")), layout.events)?;
    table.section("W6 open + read the last event of a random stream, annal and SQLite in turns");
    let small = open_read::rows(table, &name, &run.path("1m"), &run.path("1m-sqlite"), layout)?;

    table.section("W7 space and index memory");
    let (a, s) = (disk as f64 / layout.events as f64, lite_disk as f64 / layout.events as f64);
    table.values(
        "bytes on disk per 200 B event",
        a,
        Some(s),
        None,
        Some(("≤ 0.9× SQLite", a / s <= 0.9)),
    );
    // Index memory from the 1M store whatever the run's size, as the criterion bench has it:
    // vectors grow by doubling, so per-stream figures depend on events per stream.
    let one_million = if layout == Layout::MILLION {
        run.path("1m")
    } else {
        drop(workload::build(&run.path("memory-1m"), Layout::MILLION)?.0);
        run.path("memory-1m")
    };
    let heap_before = CountingAlloc::live_bytes();
    let (store, _) = workload::open(&one_million)?;
    let heap = (CountingAlloc::live_bytes() - heap_before) as f64;
    let one = store.stats();
    drop(store);
    let (many, _) = workload::build(&run.path("many"), Layout::MANY_STREAMS)?;
    drop(many);
    let (many, _) = workload::open(&run.path("many"))?;
    let other = many.stats();
    let (per_event, per_stream) = workload::index_costs(&one, &other);
    table.text(
        "index memory per event",
        &format!("{per_event:.1} B"),
        ("≤ 16 B", per_event <= 16.0),
    );
    table.text(
        "index memory per stream",
        &format!("{per_stream:.0} B"),
        ("≤ 100 B", per_stream <= 100.0),
    );
    let whole = one.index_memory_bytes as f64 / one.events as f64;
    table.plain(
        "index memory / event, 1M events in 1,000 streams",
        &format!("{whole:.1} B"),
        "",
        "",
    );
    table.plain(
        "heap of the whole open 1M store / event (allocator)",
        &format!("{:.1} B", heap / one.events as f64),
        "",
        "",
    );

    if common::ten_million_wanted() {
        ten_million(table, &name, &small)?;
    }
    Ok(())
}

/// W6 at 10M events in 10k streams, annal and SQLite, on stores kept between runs; and how
/// annal's open + read grew from the run's smaller store (`small_name`, `small`).
fn ten_million(table: &mut Table, small_name: &str, small: &open_read::Medians) -> Res<()> {
    let layout = Layout::TEN_MILLION;
    let ((path, built), (lite, lite_built)) = kept_stores("10m", layout)?;
    table.section("W6 10M events in 10k streams (ANNAL_BENCH_10M=1; stores kept in the data dir)");
    if let Some(built) = built {
        table.values("build events/s (no fsync)", per_second(10_000_000, built), None, None, None);
    }
    if let Some(took) = lite_built {
        let took = format!("{:.0} s", took.as_secs_f64());
        table.plain("SQLite fill, one transaction (not a rate to compare)", "", &took, "");
    }
    open_rows(table, "10M", &path, Some(&lite), layout.events)?;
    table
        .section("W6 10M open + read the last event of a random stream, annal and SQLite in turns");
    let large = open_read::rows(table, "10M", &path, &lite, layout)?;
    open_read::growth(table, (small_name, "10M"), small, &large);
    // The run's 1M store has 1,000 streams, and an open checks the stream table whole, which
    // grows with the streams: the growth with the log alone is against 1M events in 10k streams.
    let same_streams = Layout { streams: layout.streams, ..Layout::MILLION };
    let ((path, _), (lite, _)) = kept_stores("1m-10k", same_streams)?;
    table.section("W6 1M events in 10k streams (as many streams as the 10M store), in turns");
    let small = open_read::rows(table, "1M/10k", &path, &lite, same_streams)?;
    open_read::growth(table, ("1M/10k", "10M"), &small, &large);
    Ok(())
}

/// A store kept in the data dir: its path, and how long building it took if it was built now.
type Kept = (std::path::PathBuf, Option<Duration>);

/// annal's and SQLite's stores of `layout`, kept in the data dir as `annal-<name>` and
/// `sqlite-<name>` (built now if they are not there yet: then with the time each build took).
fn kept_stores(name: &str, layout: Layout) -> Res<(Kept, Kept)> {
    let what = format!("{layout:?}");
    let annal =
        cache::kept(&format!("annal-{name}"), &what, |dir| Ok(workload::build(dir, layout)?.1))?;
    let lite = cache::kept(&format!("sqlite-{name}"), &what, |dir| {
        let start = Instant::now();
        sqlite::fill(dir, layout)?;
        Ok(start.elapsed())
    })?;
    Ok((annal, lite))
}

/// Rows for opening one store, warm and (if the page cache can be dropped) cold.
fn open_rows(
    table: &mut Table,
    name: &str,
    dir: &Path,
    lite: Option<&Path>,
    events: u64,
) -> Res<()> {
    let bytes = common::dir_bytes(dir) as f64;
    for cold in [false, true] {
        if cold && !drop_page_cache() {
            table.plain("cold open", "could not drop the page cache", "", "");
            break;
        }
        let a = median_time(if cold { 1 } else { 3 }, &mut || Ok(workload::open(dir)?.1))?;
        let s = match lite {
            Some(lite) => {
                if cold {
                    drop_page_cache();
                }
                Some(median_time(if cold { 1 } else { 3 }, &mut || Ok(sqlite::open(lite)?.1))?)
            }
            None => None,
        };
        let which = if cold { "cold" } else { "warm" };
        let secs = |d: Duration| format!("{:.2} ms", d.as_secs_f64() * 1e3);
        table.plain(
            &format!("{name} {which}: open time"),
            &secs(a),
            &s.map(secs).unwrap_or_default(),
            "",
        );
        // Since the indexes are persisted (issue #13) an open reads their files, not the
        // segments: this is the log's size over the open's time, not a rebuild's speed.
        let gbs = bytes / a.as_secs_f64() / 1e9;
        table.plain(
            &format!("{name} {which}: GB of segments / open time"),
            &format!("{gbs:.2}"),
            "",
            "",
        );
        let rate = human(per_second(events, a));
        table.plain(&format!("{name} {which}: events/s"), &rate, "", "");
        if let Some(s) = s {
            let ratio = a.as_secs_f64() / s.as_secs_f64();
            table.plain(
                &format!("{name} {which}: annal open time / SQLite's"),
                &format!("{ratio:.2}×"),
                "",
                "",
            );
        }
    }
    Ok(())
}

/// The median rate of each of `reads` (which return how many events they read) over `rounds`
/// rounds in which they take turns, each after dropping the page cache if `cold`.
fn median_rates<const N: usize>(
    rounds: usize,
    cold: bool,
    mut reads: [&mut dyn FnMut() -> Res<u64>; N],
) -> Res<[f64; N]> {
    let mut rates: [Vec<f64>; N] = std::array::from_fn(|_| Vec::with_capacity(rounds));
    for _ in 0..rounds {
        for (read, rates) in reads.iter_mut().zip(rates.iter_mut()) {
            if cold {
                drop_page_cache();
            }
            let start = Instant::now();
            let done = read()?;
            rates.push(per_second(done, start.elapsed()));
        }
    }
    Ok(rates.map(|rates| stats::median(&rates)))
}

/// The median of `runs` durations `f` reports.
fn median_time(runs: usize, f: &mut dyn FnMut() -> Res<Duration>) -> Res<Duration> {
    let times = (0..runs).map(|_| f()).collect::<Res<Vec<_>>>()?;
    Ok(stats::median(&times))
}
