//! The public facade: open a directory, append, read, close.

use crate::sync;
use std::{
    any::Any,
    io,
    path::Path,
    sync::{Arc, Mutex, atomic::Ordering},
    thread::JoinHandle,
    time::Instant,
};

use crossbeam_channel::{Receiver, Sender};

use crate::{
    error::{Error, Result},
    format::FORMAT_VERSION,
    index::{Origin, StreamState},
    indexer::Job,
    io::Storage,
    lifecycle::{self, MetaRecord, StreamMetadata},
    options::Options,
    options::RecoveryMode,
    read::{ReadAll, ReadAllBackward, ReadStream},
    recovery::{Access, RecoveryReport, recover},
    scavenge::{self, ScavengeControl, ScavengeReport},
    segment::{ListedHooks, Segment, SegmentSet},
    shared::Shared,
    subscription::{
        self, Filter, GroupConsumer, GroupInfo, GroupSettings, PersistentOptions,
        PersistentSubscription, Subscription,
    },
    trace,
    types::{
        AppendResult, ExpectedVersion, MultiAppendResult, NewEvent, Position, StreamAppend,
        StreamVersion,
    },
    verify::{self, VerifyReport},
    writer::{
        Answer, AppendFuture, AppendOneFuture, AppendRequest, CommitStats, Heard, Message, Reply,
        Writer, WriterLink, blocking_pair, own_pair,
    },
};

/// Checks and encodes an append for the writer, to be answered through the reply given.
type BuildRequest = fn(Vec<StreamAppend>, &Options, Reply) -> Result<AppendRequest>;

/// An append handed over: where its answer will come, or its outcome already.
enum Queued {
    Waiting(Answer),
    Done(Result<MultiAppendResult>),
}

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
    /// Disconnects when the writer thread has stopped (nothing is ever sent on it).
    writer_gone: Receiver<()>,
    /// The writer's committer and whether it still takes appends; `None` when read-only.
    link: Option<Arc<WriterLink>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    report: RecoveryReport,
    /// The directory lock (none when read-only), released once the writer has stopped.
    lock: Mutex<Option<Box<dyn Any + Send + Sync>>>,
}

/// Sizes and counts of an open store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stats {
    /// Positions committed (one past the last position, minus the log's first position):
    /// events removed by scavenging still count, as their positions are never reused. See
    /// [`events_present`](Stats::events_present) for the events the log holds.
    pub events: u64,
    /// Events the segments hold: the committed events minus those scavenging removed. Counted
    /// as records enter the segments' indexes, so reading it scans nothing.
    pub events_present: u64,
    /// Streams the index knows: those with events, their `$$` metadata streams, and streams
    /// that have only metadata.
    pub streams: usize,
    /// Segment files.
    pub segments: usize,
    /// The position the next event will get.
    pub head: Position,
    /// Committed bytes in segment files (headers included).
    pub disk_bytes: u64,
    /// Heap bytes held by the global and stream indexes (estimated from capacities).
    pub index_memory_bytes: usize,
    /// Segments read through their index file (the others are read through indexes in
    /// memory: the active segment, and any whose index file is not written yet). A segment an
    /// open took from the stream table's list counts here until its first use looks at its
    /// index file (the list says it has one); one found wanting then counts as rebuilt in
    /// memory.
    pub segments_with_index_file: usize,
    /// Segments whose index file was found disagreeing with the segment while the store was
    /// open: their index was rebuilt in memory from the segment (and the file is rewritten by
    /// the next writable open).
    pub indexes_rebuilt_in_memory: usize,
    /// Index files the background indexer wrote since the store was opened.
    pub index_files_written: u64,
    /// Index files or stream tables the indexer could not write, or segments it could not
    /// take on (a full queue): the store goes on, their positions stay in memory, and the next
    /// open scans more.
    pub index_files_failed: u64,
    /// The oldest and the newest format version among the segment files (see
    /// `docs/format.md`): a store written by an older build keeps its older segments, and new
    /// segments get [`FORMAT_VERSION`](crate::format::FORMAT_VERSION).
    pub format_versions: (u16, u16),
    /// Appends committed by their own thread since the store was opened: a blocking append
    /// that finds the writer idle (nothing queued, no group in flight) writes, syncs and
    /// publishes itself instead of waking the writer thread. The others went through the
    /// writer's queue and group commit.
    pub inline_commits: u64,
    /// Group commits since the store was opened: groups and their sizes, `fdatasync` calls and
    /// their durations, as histograms with fixed buckets (what a server exports as metrics).
    pub commits: CommitStats,
}

impl Store {
    /// Opens (creating if needed) the store in `dir` with default options.
    pub fn open(dir: impl AsRef<Path>) -> Result<Store> {
        Store::open_with(dir, Options::default())
    }

    /// Opens (creating if needed) the store in `dir`: locks the directory, recovers the log
    /// as [`Options::recovery_mode`] says (reading the segments' index files where they are
    /// bound to their segments, scanning the rest), and starts the writer. With
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
        let started = Instant::now();
        options.validate()?;
        let dir = dir.to_path_buf();
        let storage = Arc::clone(&options.storage);
        // Salvage is for a damaged store: it must not create, lock or change anything.
        let access = match options.recovery_mode {
            RecoveryMode::Salvage => Access::ReadOnly,
            _ => access,
        };
        let lock = take_lock(&*storage, &dir, access)?;
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
        shared.set_close_table_current(recovered.close_table_used);
        let (alive, writer_gone) = crossbeam_channel::bounded(0);
        let (tx, link, handle) = match active.filter(|_| writable) {
            Some(active) => {
                let started = start_writer(&shared, active, recovered.next_sequence, alive)?;
                start_indexer(&shared).map_err(Error::io("spawn indexer thread", &dir))?;
                if let Some(hooks) = &recovered.listed_hooks {
                    rewrite_rebuilt_indexes(&shared, hooks);
                }
                started
            }
            None => {
                // Nothing will ever commit: subscriptions end at the head.
                shared.notifier().close();
                (None, None, None)
            }
        };
        trace::opened(&dir, tx.is_none(), &recovered.report, started.elapsed());
        let inner = Inner {
            shared,
            tx,
            writer_gone,
            link,
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
        self.submit(parts.into_iter().collect(), AppendRequest::build)
    }

    /// Appends the store's own events (metadata, deletes), which may go to `$$` streams.
    pub(crate) fn append_system(&self, parts: Vec<StreamAppend>) -> Result<MultiAppendResult> {
        self.submit(parts, AppendRequest::build_system)
    }

    /// Appends `events` to `stream` like [`append`](Store::append), without blocking the
    /// calling thread while the group commits: the append is checked and queued now (blocking
    /// only while the writer's queue is full, its back-pressure), and the future resolves once
    /// it is durable. Needs no particular async runtime. Dropping the future does not cancel
    /// the append; see [`AppendFuture`].
    pub fn append_async(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: impl IntoIterator<Item = NewEvent>,
    ) -> AppendOneFuture {
        AppendOneFuture::new(self.append_multi_async([StreamAppend::new(stream, expected, events)]))
    }

    /// [`append_multi`](Store::append_multi) as a future, like
    /// [`append_async`](Store::append_async).
    pub fn append_multi_async(
        &self,
        parts: impl IntoIterator<Item = StreamAppend>,
    ) -> AppendFuture {
        let parts = parts.into_iter().collect();
        // Never inline: a future must not block its thread for a commit.
        match self.enqueue(parts, AppendRequest::build, own_pair(), false) {
            Err(error) => AppendFuture::ready(Err(error)),
            Ok(Queued::Done(outcome)) => AppendFuture::ready(outcome),
            Ok(Queued::Waiting(answer)) => AppendFuture::waiting(
                answer,
                Arc::clone(&self.inner.shared),
                self.inner.writer_gone.clone(),
            ),
        }
    }

    fn submit(&self, parts: Vec<StreamAppend>, build: BuildRequest) -> Result<MultiAppendResult> {
        match self.enqueue(parts, build, blocking_pair(), true)? {
            Queued::Done(outcome) => outcome,
            Queued::Waiting(answer) => match answer.wait() {
                Heard::Answered(outcome) => outcome,
                Heard::Gone => Err(self.writer_ended()),
            },
        }
    }

    /// Checks and encodes an append and hands it to the writer, to be answered through `pair`;
    /// with `inline`, commits it on this thread instead if the writer is idle.
    fn enqueue(
        &self,
        parts: Vec<StreamAppend>,
        build: BuildRequest,
        (reply, answer): (Reply, Answer),
        inline: bool,
    ) -> Result<Queued> {
        let shared = &self.inner.shared;
        if let Some(error) = shared.poisoned() {
            return Err(error);
        }
        let (Some(tx), Some(link)) = (&self.inner.tx, &self.inner.link) else {
            return Err(Error::ReadOnly);
        };
        let mut request = build(parts, shared.options(), reply)?;
        if inline {
            match link.commit_inline(request, tx) {
                // Answered in its slot by the commit; only a panic of the commit leaves it
                // unanswered, after poisoning the store.
                Ok(()) => {
                    return Ok(Queued::Done(match answer.try_take() {
                        Some(Heard::Answered(outcome)) => outcome,
                        _ => Err(shared.poisoned().unwrap_or(Error::Closed)),
                    }));
                }
                Err(given_back) => request = given_back,
            }
        }
        if tx.send(Message::Append(request)).is_err() {
            return Err(self.writer_ended());
        }
        if link.stopped_after_send() {
            // The request may have slipped into the queue after the writer's last look at it,
            // and would never be answered: take an answer that is there, else do not wait.
            return Ok(Queued::Done(match answer.try_take() {
                Some(Heard::Answered(outcome)) => outcome,
                _ => Err(self.writer_ended()),
            }));
        }
        Ok(Queued::Waiting(answer))
    }

    /// Why an append went unanswered: the writer ended, closed or poisoned (a writer thread that
    /// panicked poisons the store before it lets go of its channels, so waiting until it is gone
    /// is enough to see the poison).
    /// Refuses what only a writable store may do ([`Error::ReadOnly`] on a read-only one).
    fn writable(&self) -> Result<()> {
        match self.inner.tx {
            Some(_) => Ok(()),
            None => Err(Error::ReadOnly),
        }
    }

    fn writer_ended(&self) -> Error {
        let _ = self.inner.writer_gone.recv();
        self.inner.shared.poisoned().unwrap_or(Error::Closed)
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

    /// What is known of `stream` now: its first and last versions and the rules of its
    /// metadata (see [`StreamState`]). A stream the store has never seen reads as never written.
    pub fn stream_state(&self, stream: &str) -> StreamState {
        self.inner.shared.streams().state(stream)
    }

    /// The version of the stream's last event, `None` if it has none.
    pub fn stream_version(&self, stream: &str) -> Option<StreamVersion> {
        self.inner.shared.streams().last_version(stream).map(StreamVersion)
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
        let segments = shared.segments().snapshot();
        let head = shared.head();
        Stats {
            events: head - segments.first().map_or(0, |s| s.base_position()),
            events_present: segments.iter().map(|s| s.event_count()).sum(),
            streams: shared.streams().stream_count(),
            segments: segments.len(),
            head: Position(head),
            disk_bytes: segments.iter().map(|s| s.committed_len()).sum(),
            index_memory_bytes: shared.streams().memory_bytes()
                + segments.iter().map(|s| s.index_memory_bytes()).sum::<usize>(),
            segments_with_index_file: count_origin(&segments, Origin::File),
            indexes_rebuilt_in_memory: count_origin(&segments, Origin::Memory),
            index_files_written: shared.indexer_counts().written.load(Ordering::Relaxed),
            index_files_failed: shared.indexer_counts().failed.load(Ordering::Relaxed)
                + shared.indexer().dropped(),
            format_versions: (
                segments.iter().map(|s| s.header().version).min().unwrap_or(FORMAT_VERSION),
                segments.iter().map(|s| s.header().version).max().unwrap_or(FORMAT_VERSION),
            ),
            inline_commits: self.inner.link.as_ref().map_or(0, |link| link.inline_commits()),
            commits: shared.commit_counters().snapshot(),
        }
    }

    /// Waits until the index file of every segment sealed so far is written (the indexer
    /// writes them in the background, off the writer thread). Appends and reads never need
    /// this; it is for tools and tests that look at the files.
    pub fn flush_index_files(&self) {
        self.inner.shared.indexer().flush();
    }

    /// Re-reads every committed byte of every segment and checks every checksum, every batch
    /// frame, and the invariants (positions dense, stream versions dense), reporting the first
    /// problems with their segment and offset. Reads only; appends continue meanwhile.
    pub fn verify(&self) -> Result<VerifyReport> {
        self.verify_with_progress(|_, _| {})
    }

    /// [`verify`](Store::verify), calling `progress(bytes_done, bytes_total)` after each segment.
    pub fn verify_with_progress(&self, progress: impl FnMut(u64, u64)) -> Result<VerifyReport> {
        let started = Instant::now();
        let report = verify::verify(&self.inner.shared, progress)?;
        trace::verified(self.dir(), &report, started.elapsed());
        Ok(report)
    }

    /// Reclaims the space of events no read can return any more (tombstoned and deleted
    /// streams, events hidden by `truncate_before`, `max_count` or `max_age`) by rewriting
    /// sealed segments without them; see [`scavenge_with`](Store::scavenge_with).
    pub fn scavenge(&self) -> Result<ScavengeReport> {
        self.scavenge_with(&ScavengeControl::new())
    }

    /// [`scavenge`](Store::scavenge), watched and cancellable through `control`. Positions
    /// never change; appends, reads and subscriptions go on meanwhile; a crash at any point
    /// leaves every segment either as it was or fully scavenged. One scavenge runs at a time
    /// ([`Error::ScavengeInProgress`]); a read-only store cannot scavenge.
    pub fn scavenge_with(&self, control: &ScavengeControl) -> Result<ScavengeReport> {
        self.writable()?;
        let started = Instant::now();
        let report = scavenge::run(&self.inner.shared, control)?;
        trace::scavenged(self.dir(), &report, started.elapsed());
        Ok(report)
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        self.inner.shared.dir()
    }

    /// Stops the writer and releases the directory lock: appends queued before this call are
    /// committed and answered, later ones get [`Error::Closed`]. Reads keep working. Idempotent.
    pub fn close(&self) {
        self.inner.shutdown();
    }
}

/// Stream lifecycle: deletes, tombstones and metadata; see [`StreamMetadata`].
impl Store {
    /// Soft-deletes `stream` if it is at `expected`: it reads as not found from now on, and
    /// its events leave stream reads and subscriptions at once (`$all` keeps them until a
    /// [`scavenge`](Store::scavenge)). Appending to it later brings it back with only the new
    /// events, their versions continuing the old numbering. Records the delete as metadata
    /// (`truncate_before` = last version + 1) and returns that event's position.
    pub fn delete_stream(&self, stream: &str, expected: ExpectedVersion) -> Result<Position> {
        lifecycle::delete(self, stream, expected)
    }

    /// Deletes `stream` for good if it is at `expected` (any state, even never written): it
    /// reads as [`Error::StreamDeleted`], every append to it fails with that error, and
    /// scavenging removes all of its events. Returns the position of the tombstone.
    pub fn tombstone_stream(&self, stream: &str, expected: ExpectedVersion) -> Result<Position> {
        lifecycle::tombstone(self, stream, expected)
    }

    /// Replaces `stream`'s metadata if its metadata stream is at `expected` (`NoStream` for
    /// the first metadata), and returns the new metadata version. Reads apply it at once.
    pub fn set_stream_metadata(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        metadata: StreamMetadata,
    ) -> Result<StreamVersion> {
        lifecycle::set_metadata(self, stream, expected, metadata)
    }

    /// `stream`'s metadata and its version, `None` if none was ever set. A tombstoned stream
    /// fails with [`Error::StreamDeleted`].
    pub fn stream_metadata(&self, stream: &str) -> Result<Option<(StreamVersion, StreamMetadata)>> {
        lifecycle::metadata(self, stream)
    }
}

/// Subscriptions: see [`Subscription`] and [`PersistentSubscription`].
impl Store {
    /// Subscribes to `$all` from position `from` ([`Position::START`], a position, or
    /// [`Position::END`] for only what commits from now on), delivering the events `filter`
    /// selects: first those already in the log, then each new one once it is durable.
    pub fn subscribe_to_all(&self, from: Position, filter: Filter) -> Subscription {
        Subscription::to_all(Arc::clone(&self.inner.shared), from, filter)
    }

    /// Subscribes to `stream` from version `from` ([`StreamVersion::START`], a version, or
    /// [`StreamVersion::END`] for only what is appended from now on). The stream need not
    /// exist yet.
    pub fn subscribe_to_stream(&self, stream: &str, from: StreamVersion) -> Result<Subscription> {
        Subscription::to_stream(Arc::clone(&self.inner.shared), stream, from)
    }

    /// Opens the persistent subscription `name` (creating it, starting at
    /// [`PersistentOptions::start`], if it has no checkpoint yet), which resumes from its last
    /// saved checkpoint. `name` is 1 to 100 ASCII letters, digits, `-`, `_` or `.`, not
    /// starting with `.`. Fails with [`Error::SubscriptionInUse`] while another holder has it,
    /// and with [`Error::ReadOnly`] on a read-only store.
    pub fn subscribe_persistent(
        &self,
        name: &str,
        filter: Filter,
        options: PersistentOptions,
    ) -> Result<PersistentSubscription> {
        self.writable()?;
        subscription::subscribe_persistent(&self.inner.shared, name, filter, options)
    }

    /// The saved checkpoint of persistent subscription `name`; `None` if it has none.
    pub fn subscription_checkpoint(&self, name: &str) -> Result<Option<Position>> {
        subscription::saved_checkpoint(&self.inner.shared, name)
    }

    /// How far persistent subscription `name` is behind: the head minus its checkpoint (the
    /// live one while it is held in this store, else the saved one); `None` if it has none.
    pub fn subscription_lag(&self, name: &str) -> Result<Option<u64>> {
        subscription::lag_of(&self.inner.shared, name)
    }

    /// Deletes persistent subscription `name` (its checkpoint); whether it existed. Fails with
    /// [`Error::SubscriptionInUse`] while it is held.
    pub fn delete_subscription(&self, name: &str) -> Result<bool> {
        self.writable()?;
        subscription::delete(&self.inner.shared, name)
    }

    /// Connects a consumer to the consumer group `name`: competing consumers sharing one
    /// persistent subscription `name` (same names, checkpoint and rules), each event handed to
    /// one of them by [`GroupSettings::strategy`]. The first consumer opens the group with
    /// `filter` and `settings`; while any consumer is connected, later ones join it as it is
    /// (their `filter` and `settings` are ignored). Fails like
    /// [`subscribe_persistent`](Store::subscribe_persistent) when the group is opened, e.g.
    /// with [`Error::SubscriptionInUse`] while `name` is held as a [`PersistentSubscription`].
    pub fn connect_to_group(
        &self,
        name: &str,
        filter: Filter,
        settings: GroupSettings,
    ) -> Result<GroupConsumer> {
        self.writable()?;
        subscription::connect_to_group(&self.inner.shared, name, filter, settings, None)
    }

    /// Like [`connect_to_group`](Store::connect_to_group), for a consumer that may hold at most
    /// `buffer` events (queued for it or received, not yet acknowledged or nacked) instead of
    /// the group's [`GroupSettings::consumer_buffer`]: each consumer of a group can have its
    /// own (a server passes on what each client asked for). `buffer` 0 is
    /// [`Error::InvalidOptions`].
    pub fn connect_to_group_with_buffer(
        &self,
        name: &str,
        filter: Filter,
        settings: GroupSettings,
        buffer: u32,
    ) -> Result<GroupConsumer> {
        self.writable()?;
        subscription::connect_to_group(&self.inner.shared, name, filter, settings, Some(buffer))
    }

    /// The consumer group `name` as of now; `None` unless a consumer is connected to it.
    pub fn group_info(&self, name: &str) -> Option<GroupInfo> {
        subscription::group_info(&self.inner.shared, name)
    }

    /// Hands every parked event of consumer group `name` back for delivery, with its retry
    /// count reset; how many there were, or `None` unless a consumer is connected to it.
    pub fn replay_parked(&self, name: &str) -> Option<usize> {
        subscription::replay_parked(&self.inner.shared, name)
    }

    /// The names of the consumer groups with a consumer connected, sorted.
    pub fn list_groups(&self) -> Vec<String> {
        subscription::list_groups(&self.inner.shared)
    }

    /// Async subscription streams ([`Subscription::into_stream`],
    /// [`PersistentSubscription::into_stream`]) whose waker is registered now: caught up and
    /// waiting for the next commit. A registration is taken by the wake-up it waits for and
    /// removed when its stream is dropped; a stream that was never polled has none.
    pub fn subscribers_waiting(&self) -> u64 {
        self.inner.shared.notifier().registered()
    }
}

/// How many of `segments` have a persisted index of that origin.
fn count_origin(segments: &[Arc<Segment>], origin: Origin) -> usize {
    segments.iter().filter(|s| s.indexed().is_some_and(|(_, o)| o == origin)).count()
}

/// Creates `dir` and takes its lock for a writable open; a read-only one takes none.
fn take_lock(
    storage: &dyn Storage,
    dir: &Path,
    access: Access,
) -> Result<Option<Box<dyn Any + Send + Sync>>> {
    if access == Access::ReadOnly {
        return Ok(None);
    }
    storage.create_dir_all(dir).map_err(Error::io("create directory", dir))?;
    let lock = storage.lock_dir(dir).map_err(|e| match e.kind() {
        io::ErrorKind::WouldBlock => Error::Locked { dir: dir.to_path_buf() },
        _ => Error::Io { op: "lock directory", path: dir.to_path_buf(), source: e },
    })?;
    Ok(Some(lock))
}

/// The writer's channel, link and thread, continuing the log in `active`.
type Started = (Option<Sender<Message>>, Option<Arc<WriterLink>>, Option<JoinHandle<()>>);

/// Starts the writer thread on `active`, the last segment.
fn start_writer(
    shared: &Arc<Shared>,
    active: Arc<Segment>,
    next_sequence: u64,
    alive: Sender<()>,
) -> Result<Started> {
    let dir = shared.dir();
    let (tx, rx) = crossbeam_channel::bounded(shared.options().queue_capacity as usize);
    let (writer, link) = Writer::new(Arc::clone(shared), rx, active, next_sequence, alive)
        .map_err(Error::io("spawn answering thread", dir))?;
    let handle = std::thread::Builder::new()
        .name("annal-writer".into())
        .spawn(move || writer.run())
        .map_err(Error::io("spawn writer thread", dir))?;
    Ok((Some(tx), Some(link), Some(handle)))
}

/// Has the indexer write anew the index file of a listed segment that proved missing or stale
/// when first used (the segment rebuilt it in memory). The active segment's is written by the
/// close, like any active segment's.
fn rewrite_rebuilt_indexes(shared: &Arc<Shared>, hooks: &ListedHooks) {
    let weak = Arc::downgrade(shared);
    hooks.on_index_rebuilt(move |base| {
        if let Some(shared) = weak.upgrade()
            && let Some(segment) = shared.segments().find(base)
            && shared.segments().next_after(base).is_some()
        {
            shared.indexer().send(Job::Sealed(segment));
        }
    });
}

/// Starts the background indexer and queues every sealed segment whose index file is missing
/// or stale (all of them in a store written before index files existed).
fn start_indexer(shared: &Arc<Shared>) -> io::Result<()> {
    shared.indexer().start(Arc::clone(shared))?;
    let mut sealed = shared.segments().snapshot();
    sealed.pop();
    let mut queued = false;
    for segment in sealed {
        if segment.indexed().is_none_or(|(b, _)| b.end_position < segment.end_position()) {
            shared.indexer().send(Job::Sealed(segment));
            queued = true;
        }
    }
    if !queued {
        // Indexing a segment writes the table; with none to index, a missing, damaged or
        // stale table would stay so until the next rotation.
        shared.indexer().send(Job::Table);
    }
    Ok(())
}

impl Inner {
    fn shutdown(&self) {
        let handle = sync::lock(&self.writer).take();
        if let (Some(handle), Some(tx)) = (handle, &self.tx) {
            let _ = tx.send(Message::Shutdown);
            let _ = handle.join();
            // A clean close: the active segment's index and the stream table as of the end
            // of the log make the next open read no segment at all.
            let active = self.shared.segments().snapshot().pop();
            self.shared.indexer().close(active);
            // The head is final: subscribers deliver up to it and end, and persistent ones
            // write their checkpoints a last time while the directory is still locked.
            self.shared.notifier().close();
            self.shared.subscriptions().close();
        }
        sync::lock(&self.lock).take();
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

/// Access for layers built on the store (the event-sourcing layer's snapshot files).
impl Store {
    /// The options the store was opened with (its storage and durability among them).
    pub fn options(&self) -> &Options {
        self.inner.shared.options()
    }
}

/// Narrow views of the stream index for the layers built on the store (lifecycle, es), where
/// [`Store::stream_state`] does not say enough. They read the index and never change it.
impl Store {
    /// The stream's latest metadata record as the index holds it, custom keys and the tombstone
    /// flag included; `None` while the stream never had metadata. For the lifecycle layer,
    /// which reads the metadata back and rewrites it.
    pub(crate) fn metadata_record(&self, stream: &str) -> Option<MetaRecord> {
        self.inner.shared.streams().metadata(stream)
    }

    /// The global position of `stream`'s event at `version`, whatever the stream's metadata
    /// hides from reads; `None` if the log does not hold that version (not yet written, or
    /// removed by a scavenge). For the es layer, which asks whether a `truncate_before` was
    /// already in force when the event at its version was appended.
    pub(crate) fn event_position(&self, stream: &str, version: u64) -> Option<u64> {
        let shared = &self.inner.shared;
        let state = shared.streams().state(stream);
        let mut at = Vec::with_capacity(1);
        let held = version >= state.first && state.last.is_some_and(|last| version <= last);
        if held {
            let mut positions = crate::read::StreamPositions::new(stream);
            positions.fill(shared, (version, 0, true, 1), &mut at).ok()?;
        }
        at.first().copied()
    }
}
