//! The public facade: open a directory, append, read, close.

use std::{
    any::Any,
    io,
    path::Path,
    sync::{Arc, Mutex},
    thread::JoinHandle,
};

use crossbeam_channel::Sender;

use crate::{
    error::{Error, Result},
    options::Options,
    options::RecoveryMode,
    read::{ReadAll, ReadAllBackward, ReadStream},
    recovery::{Access, RecoveryReport, recover},
    segment::SegmentSet,
    shared::Shared,
    types::{
        AppendResult, ExpectedVersion, MultiAppendResult, NewEvent, Position, StreamAppend,
        StreamVersion,
    },
    verify::{self, VerifyReport},
    writer::{AppendRequest, Message, Writer},
};

/// An open event store. Cloning is cheap; every clone is the same store, usable from any
/// thread. The store closes when [`close`](Store::close) is called or the last clone is dropped.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    /// To the writer; `None` when the store is read-only.
    tx: Option<Sender<Message>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    report: RecoveryReport,
    /// The directory lock (none when read-only), released once the writer has stopped.
    lock: Mutex<Option<Box<dyn Any + Send + Sync>>>,
}

/// Sizes and counts of an open store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stats {
    /// Committed events (one past the last position, minus the log's first position).
    pub events: u64,
    /// Streams with events.
    pub streams: usize,
    /// Segment files.
    pub segments: usize,
    /// The position the next event will get.
    pub head: Position,
    /// Committed bytes in segment files (headers included).
    pub disk_bytes: u64,
    /// Heap bytes held by the global and stream indexes (estimated from capacities).
    pub index_memory_bytes: usize,
}

impl Store {
    /// Opens (creating if needed) the store in `dir` with default options.
    pub fn open(dir: impl AsRef<Path>) -> Result<Store> {
        Store::open_with(dir, Options::default())
    }

    /// Opens (creating if needed) the store in `dir`: locks the directory, recovers the log
    /// as [`Options::recovery_mode`] says, rebuilds the indexes and starts the writer. With
    /// [`RecoveryMode::Salvage`](crate::RecoveryMode::Salvage) the store is read-only.
    pub fn open_with(dir: impl AsRef<Path>, options: Options) -> Result<Store> {
        Store::open_as(dir.as_ref(), options, Access::ReadWrite)
    }

    /// Opens an existing store for reading only: takes no lock (so it works while another
    /// process has the store open), changes nothing on disk (a torn tail is ignored, not cut),
    /// and sees the log as it was when opened. Appends fail with [`Error::ReadOnly`].
    pub fn open_read_only(dir: impl AsRef<Path>, options: Options) -> Result<Store> {
        Store::open_as(dir.as_ref(), options, Access::ReadOnly)
    }

    fn open_as(dir: &Path, options: Options, access: Access) -> Result<Store> {
        options.validate()?;
        let dir = dir.to_path_buf();
        let storage = Arc::clone(&options.storage);
        let lock = match access {
            Access::ReadOnly => None,
            Access::ReadWrite => {
                storage.create_dir_all(&dir).map_err(Error::io("create directory", &dir))?;
                Some(storage.lock_dir(&dir).map_err(|e| match e.kind() {
                    io::ErrorKind::WouldBlock => Error::Locked { dir: dir.clone() },
                    _ => Error::Io { op: "lock directory", path: dir.clone(), source: e },
                })?)
            }
        };
        let writable =
            access == Access::ReadWrite && options.recovery_mode != RecoveryMode::Salvage;
        let recovered = recover(&dir, &options, access)?;
        let active = recovered.segments.last().cloned();
        let segments = SegmentSet::new(recovered.segments);
        let shared = Arc::new(Shared::new(
            dir.clone(),
            options,
            segments,
            recovered.streams,
            recovered.head,
        ));
        let (tx, handle) = match active.filter(|_| writable) {
            Some(active) => {
                let capacity = shared.options.queue_capacity as usize;
                let (tx, rx) = crossbeam_channel::bounded(capacity);
                let writer = Writer::new(Arc::clone(&shared), rx, active, recovered.window);
                let handle = std::thread::Builder::new()
                    .name("annal-writer".into())
                    .spawn(move || writer.run())
                    .map_err(Error::io("spawn writer thread", &dir))?;
                (Some(tx), Some(handle))
            }
            None => (None, None),
        };
        let inner = Inner {
            shared,
            tx,
            writer: Mutex::new(handle),
            report: recovered.report,
            lock: Mutex::new(lock),
        };
        Ok(Store { inner: Arc::new(inner) })
    }

    /// Appends `events` to `stream` if the stream is at `expected`, atomically: all of them
    /// commit, with contiguous positions, or none does. Returns once they are durable.
    pub fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: impl IntoIterator<Item = NewEvent>,
    ) -> Result<AppendResult> {
        let part = StreamAppend::new(stream, expected, events);
        let mut result = self.append_multi([part])?;
        Ok(result.streams.pop().expect("one part").1)
    }

    /// Appends to several streams atomically, each part with its own expected version: every
    /// part commits (in one batch, with contiguous positions, in the order given) or none does.
    pub fn append_multi(
        &self,
        parts: impl IntoIterator<Item = StreamAppend>,
    ) -> Result<MultiAppendResult> {
        let shared = &self.inner.shared;
        if let Some(error) = shared.poisoned() {
            return Err(error);
        }
        let tx = self.inner.tx.as_ref().ok_or(Error::ReadOnly)?;
        let (request, answer) = AppendRequest::build(parts.into_iter().collect(), &shared.options)?;
        tx.send(Message::Append(request)).map_err(|_| Error::Closed)?;
        answer.recv().map_err(|_| Error::Closed)?
    }

    /// Reads `stream` forward from version `from`, at most `limit` events.
    pub fn read_stream_forward(
        &self,
        stream: &str,
        from: StreamVersion,
        limit: usize,
    ) -> Result<ReadStream> {
        ReadStream::new(Arc::clone(&self.inner.shared), stream, from.get(), true, limit)
    }

    /// Reads `stream` backward from version `from` ([`StreamVersion::END`] for its last
    /// event), at most `limit` events.
    pub fn read_stream_backward(
        &self,
        stream: &str,
        from: StreamVersion,
        limit: usize,
    ) -> Result<ReadStream> {
        ReadStream::new(Arc::clone(&self.inner.shared), stream, from.get(), false, limit)
    }

    /// Reads `$all` forward from position `from`, at most `limit` events, up to the events
    /// committed when this is called.
    pub fn read_all_forward(&self, from: Position, limit: usize) -> ReadAll {
        ReadAll::new(Arc::clone(&self.inner.shared), from.get(), limit)
    }

    /// Reads `$all` backward from position `from` ([`Position::END`] for the last event), at
    /// most `limit` events.
    pub fn read_all_backward(&self, from: Position, limit: usize) -> ReadAllBackward {
        ReadAllBackward::new(Arc::clone(&self.inner.shared), from.get(), limit)
    }

    /// The version of the stream's last event, `None` if it has none.
    pub fn stream_version(&self, stream: &str) -> Option<StreamVersion> {
        self.inner.shared.streams.last_version(stream).map(StreamVersion)
    }

    /// The position the next committed event will get (so the number of positions used).
    pub fn head(&self) -> Position {
        Position(self.inner.shared.head())
    }

    /// What recovery found and did when this store was opened.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.inner.report
    }

    /// Sizes and counts.
    pub fn stats(&self) -> Stats {
        let shared = &self.inner.shared;
        let segments = shared.segments.snapshot();
        let head = shared.head();
        Stats {
            events: head - segments.first().map_or(0, |s| s.base_position()),
            streams: shared.streams.stream_count(),
            segments: segments.len(),
            head: Position(head),
            disk_bytes: segments.iter().map(|s| s.committed_len()).sum(),
            index_memory_bytes: shared.streams.memory_bytes()
                + segments.iter().map(|s| s.index_memory_bytes()).sum::<usize>(),
        }
    }

    /// Re-reads every committed byte of every segment and checks every checksum, every batch
    /// frame, and the invariants (positions dense, stream versions dense), reporting the first
    /// problems with their segment and offset. Reads only; appends continue meanwhile.
    pub fn verify(&self) -> Result<VerifyReport> {
        verify::verify(&self.inner.shared, |_, _| {})
    }

    /// [`verify`](Store::verify), calling `progress(bytes_done, bytes_total)` after each segment.
    pub fn verify_with_progress(&self, progress: impl FnMut(u64, u64)) -> Result<VerifyReport> {
        verify::verify(&self.inner.shared, progress)
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.inner.shared.dir
    }

    /// Stops the writer and releases the directory lock: appends queued before this call are
    /// committed and answered, later ones get [`Error::Closed`]. Reads keep working. Idempotent.
    pub fn close(&self) {
        self.inner.shutdown();
    }
}

impl Inner {
    fn shutdown(&self) {
        let handle = self.writer.lock().expect("writer handle lock").take();
        if let (Some(handle), Some(tx)) = (handle, &self.tx) {
            let _ = tx.send(Message::Shutdown);
            let _ = handle.join();
        }
        self.lock.lock().expect("directory lock").take();
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("dir", &self.dir()).field("head", &self.head()).finish()
    }
}
