//! The single writer and its group commit.
//!
//! Appending threads send checked, pre-encoded appends through a bounded channel. The writer
//! thread takes what is queued (bounded by count and bytes), checks each append in order against
//! the log's state, seals its records (positions, versions, timestamp, group sequence, checksums)
//! into one buffer, writes the buffer, calls `fdatasync` once, and only then publishes the
//! records to readers and answers every caller, each in its answer slot (`answer.rs`), which
//! wakes a parked thread or an async task. A blocking append that finds the writer idle does all
//! that itself, as a group of its own (the inline commit): the writer's state lives in the
//! committer (`commit.rs`), which whoever commits holds under one lock, so there is still one
//! writer at a time. A failed write or fsync poisons the store; it is never retried. So do a
//! broken invariant (the index disagreeing with the log), a commit-time field that would not fit
//! its width in the format (a group sequence past 48 bits: the group is not written rather than
//! written wrong), and a panic of a committing thread: the store stops acknowledging rather than
//! go on from a state it cannot vouch for.
//!
//! The committer's work is split in two: the sequencer (`sequencer.rs`) checks appends and seals
//! them into a `SealedGroup`; the appender (`appender.rs`) writes, fsyncs and publishes sealed
//! groups and rotates segments, and knows nothing of the rules that produced them. This module
//! runs the writer thread's loop and the link through which the store's handles reach it.

mod answer;
mod appender;
mod commit;
mod counters;
mod future;
mod idempotency;
mod request;
mod sequencer;

use std::{
    any::Any,
    collections::HashMap,
    io,
    panic::{self, AssertUnwindSafe},
    sync::{
        Arc, Mutex, MutexGuard, TryLockError,
        atomic::{AtomicBool, AtomicU64, Ordering, fence},
    },
};

use crossbeam_channel::{Receiver, Sender, TryRecvError};

pub(crate) use answer::{Answer, Heard, Reply, blocking_pair, own_pair};
pub(crate) use counters::CommitCounters;
pub use counters::{
    CommitStats, FSYNC_BUCKETS, FSYNC_MICROS_BOUNDS, GROUP_BUCKETS, GROUP_EVENTS_BOUNDS,
};
pub use future::{AppendFuture, AppendOneFuture};
pub(crate) use idempotency::IdWindow;
pub(crate) use request::AppendRequest;
pub(crate) use request::validate_readable_stream_name;
pub use request::{
    EVENT_TYPE_BYTES_MAX, STREAM_NAME_BYTES_MAX, validate_event_type, validate_stream_name,
};

use self::commit::Committer;
use crate::{
    error::{Error, Result},
    lifecycle::MetaRecord,
    segment::Segment,
    shared::Shared,
    sync,
    types::MultiAppendResult,
};

/// What appending threads send the writer.
pub(crate) enum Message {
    /// Append this.
    Append(AppendRequest),
    /// Commit what is queued before this message, answer the rest with `Closed`, and stop.
    Shutdown,
}

/// What the store's handles share with the writer thread: the committer, under the one lock
/// that makes whoever holds it the log's writer, and whether the writer has stopped.
pub(crate) struct WriterLink {
    committer: Mutex<Committer>,
    /// Set once the writer has answered every append it committed and takes no more: an append
    /// sent after its last look at the queue is never answered, so its caller must not wait.
    stopped: AtomicBool,
    /// Appends committed inline, by their own threads.
    inline_commits: AtomicU64,
}

impl WriterLink {
    /// Whether the writer has stopped taking appends, as seen after a send: if not, the writer
    /// will see every append sent before this call (the two `SeqCst` fences pair up with the
    /// writer's in [`Writer::stop`], so either the caller sees the flag or the writer's last
    /// look at the queue sees the append).
    pub fn stopped_after_send(&self) -> bool {
        fence(Ordering::SeqCst);
        self.stopped.load(Ordering::SeqCst)
    }

    /// Commits `request` on this thread, as a group of its own, if the writer is idle: nothing
    /// is queued (`queue` is empty) and no thread holds the committer. Its answer is then in
    /// its slot. Gives the request back otherwise (the writer is busy or stopped): queued
    /// behind the others, it joins the next group. Only a blocking caller commits inline; it
    /// holds the committer across the `fdatasync`, which readers never take.
    pub fn commit_inline(
        &self,
        request: AppendRequest,
        queue: &Sender<Message>,
    ) -> std::result::Result<(), AppendRequest> {
        if !queue.is_empty() {
            return Err(request);
        }
        let Some(mut committer) = try_lock(&self.committer) else { return Err(request) };
        if committer.closed() {
            return Err(request);
        }
        let shared = Arc::clone(committer.shared());
        self.inline_commits.fetch_add(1, Ordering::Relaxed);
        let committed = panic::catch_unwind(AssertUnwindSafe(|| committer.commit_alone(request)));
        if let Err(payload) = committed {
            // As for a panic of the writer thread: the store stops acknowledging. Poisoned
            // before the half-done group is dropped, so its caller hears the poison.
            let message = format!("an inline commit panicked: {}", panic_message(&*payload));
            shared.poison(PANIC_OP, io::Error::other(message));
            committer.abandon();
        }
        Ok(())
    }

    /// How many appends were committed inline so far.
    pub fn inline_commits(&self) -> u64 {
        self.inline_commits.load(Ordering::Relaxed)
    }

    /// The committer, for the writer thread (blocking until an inline commit is done).
    fn lock(&self) -> MutexGuard<'_, Committer> {
        sync::lock(&self.committer)
    }
}

/// The guard if the mutex is free (poisoned or not), `None` if another thread holds it.
fn try_lock<T>(mutex: &Mutex<T>) -> Option<MutexGuard<'_, T>> {
    match mutex.try_lock() {
        Ok(guard) => Some(guard),
        Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
        Err(TryLockError::WouldBlock) => None,
    }
}

/// A group's callers and what each is told.
type Answers = Vec<(Reply, Result<MultiAppendResult>)>;

/// A group of sealed records on its way from the sequencer to the appender: the bytes to write
/// as they are, and what publishing them means beyond the records themselves.
#[derive(Default)]
pub(crate) struct SealedGroup {
    /// The sealed records, back to back, in log order.
    pub bytes: Vec<u8>,
    /// The position after the group's last record: the head once it is published.
    pub end: u64,
    /// Metadata the group sets, by the stream it applies to: the sequencer's view of the
    /// streams ahead of the index, for the checks of later appends. (Publishing reads the
    /// metadata from the records themselves.)
    pub metadata: HashMap<String, MetaRecord>,
    /// The last version of each stream the group appends to, likewise ahead of the index.
    pub versions: HashMap<String, u64>,
}

/// The writer thread: takes queued appends in groups and commits each group through the
/// committer it shares with inline commits.
pub(crate) struct Writer {
    shared: Arc<Shared>,
    rx: Receiver<Message>,
    link: Arc<WriterLink>,
    /// Never sent on: dropped with the writer, it tells waiting callers the writer is gone.
    _alive: Sender<()>,
    answer_thread: Option<std::thread::JoinHandle<()>>,
}

/// What a poisoned store names as the failed operation when the idempotency window could not be
/// refilled from the log.
const WINDOW_OP: &str = "refill idempotency window";

/// What a poisoned store names as the failed operation when the writer thread (or an inline
/// commit) panicked.
const PANIC_OP: &str = "writer thread";

/// What a poisoned store names as the failed operation when a group's `fdatasync` failed.
const FSYNC_OP: &str = "fsync";

/// Answers callers of large groups while the writer goes on with the next group.
fn spawn_answerer() -> io::Result<(Sender<Answers>, std::thread::JoinHandle<()>)> {
    let (tx, rx) = crossbeam_channel::bounded::<Answers>(16);
    let handle = std::thread::Builder::new().name("annal-answer".into()).spawn(move || {
        for answers in rx {
            for (reply, answer) in answers {
                reply.send(answer);
            }
        }
    })?;
    Ok((tx, handle))
}

impl Writer {
    /// A writer continuing the log in `active` (at its committed length), whose next group
    /// commit has the sequence number `next_sequence`, and the link the store's handles use to
    /// reach it. Fails if its answering thread cannot be started. Its idempotency window is
    /// refilled when the first append arrives.
    pub fn new(
        shared: Arc<Shared>,
        rx: Receiver<Message>,
        active: Arc<Segment>,
        next_sequence: u64,
        alive: Sender<()>,
    ) -> io::Result<(Writer, Arc<WriterLink>)> {
        let (answerer, answer_thread) = spawn_answerer()?;
        let committer = Committer::new(Arc::clone(&shared), active, next_sequence, answerer);
        let link = Arc::new(WriterLink {
            committer: Mutex::new(committer),
            stopped: AtomicBool::new(false),
            inline_commits: AtomicU64::new(0),
        });
        let writer = Writer {
            shared,
            rx,
            link: Arc::clone(&link),
            _alive: alive,
            answer_thread: Some(answer_thread),
        };
        Ok((writer, link))
    }

    /// The writer thread's body: serves appends until shutdown. A panic (a bug) poisons the
    /// store, so that appenders get [`Error::Poisoned`] and subscribers end, instead of finding
    /// the writer silently gone; so does a window that cannot be refilled (damage among the
    /// log's last events).
    pub fn run(mut self) {
        let served = panic::catch_unwind(AssertUnwindSafe(|| self.serve()));
        if let Err(payload) = served {
            // Poisoned while the writer still holds its channels: a caller who sees them close
            // finds the poison (see `Store::submit`).
            let message = format!("the writer thread panicked: {}", panic_message(&*payload));
            self.shared.poison(PANIC_OP, io::Error::other(message));
        }
        self.stop();
    }

    /// The writer's loop, until shutdown: waits for an append without the committer, then
    /// takes it (after an inline commit, if one is running) and commits what is queued.
    fn serve(&mut self) {
        let appends_max = self.shared.options().group_appends_max as usize;
        let bytes_max = self.shared.options().group_bytes_max as usize;
        let mut carried: Option<AppendRequest> = None;
        loop {
            let first = match carried.take() {
                Some(request) => request,
                None => match self.rx.recv() {
                    Ok(Message::Append(request)) => request,
                    Ok(Message::Shutdown) | Err(_) => break,
                },
            };
            let mut committer = self.link.lock();
            committer.begin();
            let (mut count, mut bytes) = (1, first.records.len());
            committer.accept(first);
            let mut shutdown = false;
            while count < appends_max {
                match self.rx.try_recv() {
                    Ok(Message::Append(request)) if bytes + request.records.len() > bytes_max => {
                        carried = Some(request);
                        break;
                    }
                    Ok(Message::Append(request)) => {
                        count += 1;
                        bytes += request.records.len();
                        committer.accept(request);
                    }
                    Ok(Message::Shutdown) | Err(TryRecvError::Disconnected) => {
                        shutdown = true;
                        break;
                    }
                    Err(TryRecvError::Empty) => break,
                }
            }
            committer.flush();
            if shutdown {
                break;
            }
        }
    }

    /// Answers whatever is still queued with `Closed`, or with the poison if there is one.
    fn stop(mut self) {
        // No more commits, inline ones included; every committed append is answered before
        // the writer counts as gone.
        let mut committer = self.link.lock();
        committer.abandon();
        committer.close();
        drop(committer);
        if let Some(handle) = self.answer_thread.take() {
            let _ = handle.join();
        }
        // From here on a caller that sends does not wait (see `WriterLink::stopped_after_send`);
        // whatever it sent before is answered by the loop below.
        self.link.stopped.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        while let Ok(message) = self.rx.try_recv() {
            if let Message::Append(request) = message {
                request.reply.send(Err(self.shared.poisoned().unwrap_or(Error::Closed)));
            }
        }
    }
}

/// The message a panic was raised with, if it carries text.
fn panic_message(payload: &(dyn Any + Send)) -> &str {
    match payload.downcast_ref::<&str>() {
        Some(message) => message,
        None => payload.downcast_ref::<String>().map_or("(no message)", String::as_str),
    }
}
