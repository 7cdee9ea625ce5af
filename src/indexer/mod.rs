//! The background indexer: persists the index of every sealed segment and the stream table,
//! off the writer thread, so that appends never wait for it and an open reads these files
//! instead of scanning the log.
//!
//! For each segment the writer seals (in log order), it builds the segment's index file from
//! the segment's durable bytes, writes it atomically (temporary name, fsync, rename, directory
//! fsync), maps it, hands it to the segment and moves that segment's stream positions out of
//! memory; then it folds the segment into the stream table (`streams.tbl`) and writes that the
//! same way. On a clean close it also indexes the active segment as far as it is written and
//! writes `streams.close.tbl` as of the end of the log. Every file it writes is derived: a
//! failure to write one costs memory (positions stay in RAM) and a slower next open, never
//! data, so it is counted and reported, and the store goes on.
//!
//! Scavenging rewrites segments and their index files; the two never run at once (they share
//! `Shared::index_lock`).

mod table;

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    thread::JoinHandle,
};

use crossbeam_channel::{Receiver, Sender};

use crate::{
    error::{Error, Result},
    index::{Origin, SegmentIndex, build_index, files},
    options::Durability,
    segment::Segment,
    shared::Shared,
    sync,
};

pub(crate) use table::{fold_all, is_bound_to, write_table};

/// Most jobs queued for the indexer: one per segment sealed (or found bad) and not yet
/// persisted. Far more than a healthy indexer ever lags by (each job is one segment, up to
/// `segment_bytes_max` of log); the writer never waits for room.
const INDEXER_JOBS_MAX: usize = 4096;

/// What the indexer is asked to do.
pub(crate) enum Job {
    /// Persist the index of this sealed segment.
    Sealed(Arc<Segment>),
    /// Rewrite the stream table unless it is the table as of the last sealed segment.
    Table,
    /// Answer once every job sent before is done.
    Flush(Sender<()>),
    /// The store closes cleanly: index this active segment as far as it is written, write the
    /// close table, and stop.
    Close(Arc<Segment>),
}

/// The indexer's handle, held by the store.
#[derive(Default)]
pub(crate) struct Indexer {
    tx: Mutex<Option<Sender<Job>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Jobs dropped because the queue was full.
    dropped: AtomicU64,
}

/// What the indexer did, for `Stats`.
#[derive(Debug, Default)]
pub(crate) struct IndexerCounts {
    /// Index files written.
    pub written: AtomicU64,
    /// Index or table files that could not be written (or a segment that could not be read).
    pub failed: AtomicU64,
}

impl Indexer {
    /// Starts the indexer thread for `shared`, which it holds until [`Indexer::close`].
    pub fn start(&self, shared: Arc<Shared>) -> std::io::Result<()> {
        let (tx, rx) = crossbeam_channel::bounded(INDEXER_JOBS_MAX);
        let handle = std::thread::Builder::new()
            .name("annal-indexer".into())
            .spawn(move || run(&shared, rx))?;
        *sync::lock(&self.tx) = Some(tx);
        *sync::lock(&self.thread) = Some(handle);
        Ok(())
    }

    /// Queues `job` without waiting; does nothing once the indexer has stopped (or never
    /// started: a read-only store persists nothing). A job that finds the queue full is
    /// dropped: its segment stays indexed in memory until the next open.
    pub fn send(&self, job: Job) {
        if let Some(tx) = self.sender()
            && let Err(crossbeam_channel::TrySendError::Full(_)) = tx.try_send(job)
        {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Jobs dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// The queue's sender, cloned so that no send waits while holding the lock.
    fn sender(&self) -> Option<Sender<Job>> {
        sync::lock(&self.tx).clone()
    }

    /// Waits until every job queued before this call is done.
    pub fn flush(&self) {
        let (done, wait) = crossbeam_channel::bounded(1);
        let sent = self.sender().is_some_and(|tx| tx.send(Job::Flush(done)).is_ok());
        if sent {
            let _ = wait.recv();
        }
    }

    /// Stops the indexer after the jobs queued so far; with `active`, indexes it first and
    /// writes the close table (a clean close).
    pub fn close(&self, active: Option<Arc<Segment>>) {
        if let Some(tx) = sync::lock(&self.tx).take()
            && let Some(active) = active
        {
            let _ = tx.send(Job::Close(active));
        }
        if let Some(handle) = sync::lock(&self.thread).take() {
            let _ = handle.join();
        }
    }
}

fn run(shared: &Shared, rx: Receiver<Job>) {
    for job in rx {
        match job {
            Job::Sealed(segment) => {
                let _guard = sync::lock(shared.index_lock());
                if let Err(e) = persist_sealed(shared, &segment) {
                    failed(shared, &e);
                }
            }
            Job::Table => {
                let _guard = sync::lock(shared.index_lock());
                if let Err(e) = table::ensure_current(shared) {
                    failed(shared, &e);
                }
            }
            Job::Flush(done) => {
                let _ = done.send(());
            }
            Job::Close(active) => {
                let _guard = sync::lock(shared.index_lock());
                if let Err(e) = persist_on_close(shared, &active) {
                    failed(shared, &e);
                }
                return;
            }
        }
    }
}

fn failed(shared: &Shared, _error: &Error) {
    shared.indexer_counts().failed.fetch_add(1, Ordering::Relaxed);
}

/// Whether `index` covers everything `segment` holds now.
fn covers(index: &SegmentIndex, segment: &Segment) -> bool {
    let b = index.binding();
    b.segment_len == segment.committed_len() && b.end_position == segment.end_position()
}

/// Builds, writes and maps the index file of `segment` as far as it is committed.
fn write_index(shared: &Shared, segment: &Segment) -> Result<Arc<SegmentIndex>> {
    let len = segment.committed_len();
    let view = segment.view(len)?;
    let bytes = &view.bytes()[..len as usize];
    let streams = shared.streams();
    // A segment indexed in part before (an active segment closed cleanly, then reopened)
    // knows its streams' links already; for the others, the last persisted segment holding
    // the stream is the one before (segments are persisted in log order).
    let partial = segment.persisted();
    let partial = partial.as_ref().and_then(|p| p.view());
    let build = build_index(bytes, &segment.header(), |stream| {
        match partial.as_ref().and_then(|p| p.stream(stream)) {
            Some(run) => run.prev_segment,
            None => streams.sealed_last(stream).filter(|&base| base < segment.base_position()),
        }
    });
    let built = build.map_err(|e| Error::Corruption {
        segment: segment.name().to_owned(),
        offset: 0,
        kind: match e {
            crate::index::BuildError::Damaged { kind, .. } => kind,
            crate::index::BuildError::Encode(_) => crate::format::CorruptionKind::IndexMismatch,
        },
    })?;
    let (storage, dir) = (&*shared.options().storage, shared.dir());
    let name = files::index_file_name(segment.name());
    let sync = shared.options().durability == Durability::Fsync;
    files::write_atomically(storage, dir, &name, &built, sync)
        .map_err(Error::io("write index file", &dir.join(&name)))?;
    shared.indexer_counts().written.fetch_add(1, Ordering::Relaxed);
    let group_bytes_max = segment.group_bytes_max();
    let index = match files::map(storage, dir, &name) {
        Ok(Some(view)) => SegmentIndex::new(view, Origin::File, group_bytes_max),
        _ => SegmentIndex::new(Arc::new(built), Origin::Memory, group_bytes_max),
    };
    index.map(Arc::new).map_err(|_| Error::Corruption {
        segment: name,
        offset: 0,
        kind: crate::format::CorruptionKind::IndexMismatch,
    })
}

/// Persists a sealed segment's index, moves its positions out of memory, and folds it into the
/// stream table.
fn persist_sealed(shared: &Shared, segment: &Arc<Segment>) -> Result<()> {
    // One rebuilt in memory (its file was found bad) is written anew.
    if segment.persisted().is_some_and(|p| p.origin() == Origin::File && covers(&p, segment)) {
        return Ok(());
    }
    let index = write_index(shared, segment)?;
    segment.set_persisted(Arc::clone(&index));
    let view = index.view().expect("an index just built and checked");
    let runs = view.streams().map(|r| (r.name, r.first_version, u64::from(r.count)));
    shared.streams().persisted(segment.base_position(), runs);
    table::advance(shared, &index, files::STREAM_TABLE)
}

/// On a clean close: persists the active segment's index as far as it is written, and the
/// close table as of the end of the log.
fn persist_on_close(shared: &Shared, active: &Arc<Segment>) -> Result<()> {
    if shared.poisoned().is_some() {
        return Ok(());
    }
    // One rebuilt in memory (its file was found wanting) is written anew.
    let written = |p: &Arc<SegmentIndex>| covers(p, active) && p.origin() == Origin::File;
    let index = match active.persisted().filter(written) {
        // Nothing was appended since the store was opened from this index and the close table
        // on disk (whole: the open checked its body), and nothing changed that table since: it
        // is already the table to write.
        Some(index)
            if shared.close_table_current() && table::close_table_is_bound_to(shared, &index) =>
        {
            return Ok(());
        }
        Some(index) => index,
        None => write_index(shared, active)?,
    };
    table::advance(shared, &index, files::CLOSE_TABLE)
}
