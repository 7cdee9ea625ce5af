//! annal's side of every workload: durable appends (one writer, many writers, batches),
//! building a store from a [`Layout`], reading `$all` and streams, and opening.

use std::{
    path::Path,
    sync::{Arc, Barrier},
    thread,
    time::{Duration, Instant},
};

use annal::{
    Durability, ExpectedVersion, NewEvent, Options, Position, Result, Store, StreamVersion,
};

use super::{
    EVENT_TYPE, Latencies, Layout,
    count::{CountingAlloc, CountingStorage},
    payload,
    raw::{Budget, Writes},
    stream_name,
};

/// Default options with `durability`, on a storage that counts fsyncs.
pub fn counted_options(durability: Durability, storage: &CountingStorage) -> Options {
    Options { durability, storage: storage.storage(), ..Options::default() }
}

/// The expected version that admits a stream whose last version is `current`, as SQLite's
/// side checks it.
pub fn exact(current: Option<u64>) -> ExpectedVersion {
    current.map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact)
}

/// `count` events of `bytes` payload each.
pub fn events(count: usize, bytes: &[u8]) -> impl Iterator<Item = NewEvent> + '_ {
    (0..count).map(move |_| NewEvent::new(EVENT_TYPE, bytes.to_vec()))
}

/// `writers` threads each append single events of `payload_bytes` to their own stream
/// `writer-{n}`, checking the exact expected version, until `budget` (per writer) runs out.
/// `syncs` is the store's fsync counter, so the result's `syncs` are this run's.
pub fn concurrent_appends(
    store: &Store,
    syncs: &CountingStorage,
    writers: usize,
    payload_bytes: usize,
    budget: Budget,
) -> Writes {
    let barrier = Arc::new(Barrier::new(writers + 1));
    let handles: Vec<_> = (0..writers)
        .map(|w| {
            let (store, barrier) = (store.clone(), Arc::clone(&barrier));
            let data = payload(payload_bytes);
            thread::spawn(move || {
                let stream = format!("writer-{w}");
                let mut current = store.stream_version(&stream).map(StreamVersion::get);
                let mut latencies = Latencies::default();
                barrier.wait();
                let start = Instant::now();
                while !budget.spent(latencies.len() as u64, start) {
                    let t = Instant::now();
                    let r = store.append(&stream, exact(current), events(1, &data));
                    latencies.push(t.elapsed());
                    current = Some(r.expect("durable append").last_version.get());
                }
                latencies
            })
        })
        .collect();
    let syncs_before = syncs.syncs();
    barrier.wait();
    let start = Instant::now();
    let mut out = Writes::default();
    for handle in handles {
        out.latencies.extend(handle.join().expect("writer thread"));
    }
    out.elapsed = start.elapsed();
    out.events = out.latencies.len() as u64;
    out.syncs = syncs.syncs() - syncs_before;
    out.bytes = out.events * payload_bytes as u64;
    out
}

/// One writer appending batches of `batch` events of `payload_bytes` to one stream, exact
/// expected version, until `budget` (in appends) runs out.
pub fn batch_appends(
    store: &Store,
    syncs: &CountingStorage,
    batch: usize,
    payload_bytes: usize,
    budget: Budget,
) -> Writes {
    let data = payload(payload_bytes);
    let stream = format!("batches-{payload_bytes}");
    let mut current = store.stream_version(&stream).map(StreamVersion::get);
    let mut out = Writes::default();
    let syncs_before = syncs.syncs();
    let start = Instant::now();
    while !budget.spent(out.latencies.len() as u64, start) {
        let t = Instant::now();
        let r = store.append(&stream, exact(current), events(batch, &data));
        out.latencies.push(t.elapsed());
        current = Some(r.expect("durable append").last_version.get());
    }
    out.elapsed = start.elapsed();
    out.events = (out.latencies.len() * batch) as u64;
    out.syncs = syncs.syncs() - syncs_before;
    out.bytes = out.events * payload_bytes as u64;
    out
}

/// Fills a new store in `dir` as `layout` says, without fsync (`Durability::None`), checking
/// the exact expected version of every append. Returns the open store and the time it took.
pub fn build(dir: &Path, layout: Layout) -> Result<(Store, Duration)> {
    let options = Options { durability: Durability::None, ..Options::default() };
    let store = Store::open_with(dir, options)?;
    let data = payload(layout.payload);
    let names: Vec<String> = (0..layout.streams).map(stream_name).collect();
    let mut versions: Vec<Option<u64>> = vec![None; layout.streams as usize];
    let start = Instant::now();
    for (stream, count) in layout.appends() {
        let s = stream as usize;
        let r = store.append(&names[s], exact(versions[s]), events(count as usize, &data))?;
        versions[s] = Some(r.last_version.get());
    }
    Ok((store, start.elapsed()))
}

/// What a read touched: every field of every event, so no read can skip work another does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Touched {
    /// Events read.
    pub events: u64,
    /// Payload bytes read.
    pub payload_bytes: u64,
    /// A value made of every field, so that none is optimised away.
    pub fold: u64,
}

impl Touched {
    fn add(&mut self, event: &annal::RecordedEvent) {
        let text = event.stream().len() + event.event_type().len();
        let id = event.id().as_u64_pair().0;
        self.fold_in(event.position(), event.version(), id, text, event.data());
    }

    fn add_ref(&mut self, event: &annal::EventRef<'_>) {
        let text = event.stream().len() + event.event_type().len();
        let id = event.id().as_u64_pair().0;
        self.fold_in(event.position(), event.version(), id, text, event.data());
    }

    fn fold_in(&mut self, p: Position, v: StreamVersion, id: u64, text: usize, data: &[u8]) {
        self.events += 1;
        self.payload_bytes += data.len() as u64;
        let first = u64::from(data.first().copied().unwrap_or(0));
        self.fold = self.fold.wrapping_add(p.get() ^ v.get() ^ id ^ text as u64 ^ first);
    }
}

/// Reads all of `$all` forward (every record's checksum verified on decode), borrowing each
/// event from the read ([`annal::ReadAll::next_ref`]), the way to read a large range.
pub fn read_all(store: &Store) -> Result<Touched> {
    let mut touched = Touched::default();
    let mut read = store.read_all_forward(Position::START, usize::MAX);
    while let Some(event) = read.next_ref() {
        touched.add_ref(&event?);
    }
    Ok(touched)
}

/// [`read_all`] through the iterator of [`annal::RecordedEvent`]s, which share the segment's
/// mapped bytes (a reference count per event). Touches the same fields as [`read_all`].
pub fn read_all_recorded(store: &Store) -> Result<Touched> {
    let mut touched = Touched::default();
    for event in store.read_all_forward(Position::START, usize::MAX) {
        touched.add(&event?);
    }
    Ok(touched)
}

/// Reads the whole of each of `streams` forward.
pub fn read_streams(store: &Store, streams: &[u64]) -> Result<Touched> {
    let mut touched = Touched::default();
    for &s in streams {
        for event in store.read_stream_forward(&stream_name(s), StreamVersion::START, usize::MAX)? {
            touched.add(&event?);
        }
    }
    Ok(touched)
}

/// Opens the store in `dir` (recovery and index rebuild), timing it.
pub fn open(dir: &Path) -> Result<(Store, Duration)> {
    let start = Instant::now();
    let store = Store::open(dir)?;
    Ok((store, start.elapsed()))
}

/// What [`open_read_last`] measured.
pub struct OpenRead {
    /// The open store.
    pub store: Store,
    /// Opening and reading the event, together.
    pub elapsed: Duration,
    /// Heap bytes allocated and not freed by the open alone, as the binary's [`CountingAlloc`]
    /// counts them (0 if it is not installed).
    pub open_heap_bytes: i64,
}

/// Opens the store in `dir` and reads the last event of `stream` (which must hold one), as a
/// service's first request after a restart would: the time to the first answer.
pub fn open_read_last(dir: &Path, stream: &str) -> Result<OpenRead> {
    let start = Instant::now();
    let heap = CountingAlloc::live_bytes();
    let store = Store::open(dir)?;
    let open_heap_bytes = (CountingAlloc::live_bytes() - heap) as i64;
    let mut touched = Touched::default();
    for event in store.read_stream_backward(stream, StreamVersion::END, 1)? {
        touched.add(&event?);
    }
    let elapsed = start.elapsed();
    assert_eq!(touched.events, 1, "{stream} holds events");
    std::hint::black_box(touched);
    Ok(OpenRead { store, elapsed, open_heap_bytes })
}

/// Index memory per event and per stream, solved from two stores' [`annal::Stats`] with
/// different events-to-streams ratios: memory = per_event × events + per_stream × streams.
pub fn index_costs(a: &annal::Stats, b: &annal::Stats) -> (f64, f64) {
    let (ea, sa, ma) = (a.events as f64, a.streams as f64, a.index_memory_bytes as f64);
    let (eb, sb, mb) = (b.events as f64, b.streams as f64, b.index_memory_bytes as f64);
    let per_stream = (mb - ma * eb / ea) / (sb - sa * eb / ea);
    ((ma - per_stream * sa) / ea, per_stream)
}
