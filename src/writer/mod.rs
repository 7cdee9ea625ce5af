//! The single writer thread and its group commit.
//!
//! Appending threads send checked, pre-encoded appends through a bounded channel. The writer
//! takes what is queued (bounded by count and bytes), checks each append in order against the
//! log's state, seals its records (positions, versions, timestamp, group sequence, checksums)
//! into one buffer, writes the buffer, calls `fdatasync` once, and only then publishes the
//! records to readers and answers every caller. A failed write or fsync poisons the store; it is
//! never retried. So do a broken invariant (the index disagreeing with the log), a commit-time
//! field that would not fit its width in the format (a group sequence past 48 bits: the group is
//! not written rather than written wrong), and a panic of the writer thread: the store stops
//! acknowledging rather than go on from a state it cannot vouch for.
//!
//! The work is split in two, both on the one writer thread: the sequencer (`sequencer.rs`)
//! checks appends and seals them into a `SealedGroup`; the appender (`appender.rs`) writes,
//! fsyncs and publishes sealed groups and rotates segments, and knows nothing of the rules that
//! produced them. This module runs the loop between them and answers the callers.

mod answer;
mod appender;
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
        Arc,
        atomic::{AtomicBool, Ordering, fence},
    },
};

use crossbeam_channel::{Receiver, Sender, TryRecvError};

pub(crate) use answer::{Answer, Heard, Reply, blocking_pair, own_pair};
pub use future::{AppendFuture, AppendOneFuture};
pub(crate) use idempotency::IdWindow;
pub(crate) use request::AppendRequest;
pub(crate) use request::validate_readable_stream_name;
pub use request::{
    EVENT_TYPE_BYTES_MAX, STREAM_NAME_BYTES_MAX, validate_event_type, validate_stream_name,
};

use self::{
    appender::Appender,
    sequencer::{Group, Sequencer},
};
use crate::{
    error::{Error, Result},
    lifecycle::MetaRecord,
    segment::Segment,
    shared::Shared,
    types::MultiAppendResult,
};

/// What appending threads send the writer.
pub(crate) enum Message {
    /// Append this.
    Append(AppendRequest),
    /// Commit what is queued before this message, answer the rest with `Closed`, and stop.
    Shutdown,
}

/// What the store's handles share with the writer thread.
#[derive(Default)]
pub(crate) struct WriterLink {
    /// Set once the writer has answered every append it committed and takes no more: an append
    /// sent after its last look at the queue is never answered, so its caller must not wait.
    stopped: AtomicBool,
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

/// The writer thread's state. Only it writes to segments or changes the indexes.
pub(crate) struct Writer {
    shared: Arc<Shared>,
    rx: Receiver<Message>,
    sequencer: Sequencer,
    appender: Appender,
    /// Never sent on: dropped with the writer, it tells waiting callers the writer is gone.
    _alive: Sender<()>,
    link: Arc<WriterLink>,
    /// Answers of large groups, for the answering thread.
    answerer: Sender<Answers>,
    answer_thread: Option<std::thread::JoinHandle<()>>,
    /// Whether the idempotency window has been refilled from the log (on the first append).
    window_refilled: bool,
}

/// Groups with at most this many callers are answered by the writer itself.
const ANSWER_INLINE_MAX: usize = 4;

/// What a poisoned store names as the failed operation when the idempotency window could not be
/// refilled from the log.
const WINDOW_OP: &str = "refill idempotency window";

/// What a poisoned store names as the failed operation when the writer thread panicked.
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
    /// commit has the sequence number `next_sequence`. Fails if its answering thread cannot be
    /// started. Its idempotency window is refilled when the first append arrives.
    pub fn new(
        shared: Arc<Shared>,
        rx: Receiver<Message>,
        active: Arc<Segment>,
        next_sequence: u64,
        alive: Sender<()>,
        link: Arc<WriterLink>,
    ) -> io::Result<Writer> {
        let sequencer = Sequencer::new(Arc::clone(&shared), IdWindow::new(0), next_sequence);
        let appender = Appender::new(Arc::clone(&shared), active);
        let (answerer, answer_thread) = spawn_answerer()?;
        Ok(Writer {
            shared,
            rx,
            sequencer,
            appender,
            _alive: alive,
            link,
            answerer,
            answer_thread: Some(answer_thread),
            window_refilled: false,
        })
    }

    /// The writer thread's body: serves appends until shutdown (refilling the idempotency
    /// window from the log when the first one arrives). A panic (a bug) poisons the store, so
    /// that appenders get [`Error::Poisoned`] and subscribers end, instead of finding the writer
    /// silently gone; so does a window that cannot be refilled (damage among the log's last
    /// events).
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

    /// Refills the idempotency window from the last events of the log. Done when the first
    /// append arrives rather than on open, so that an open (and a store that only reads) reads
    /// nothing of the log that its indexes tell it; that first append waits for it.
    fn refill_window(&mut self) {
        let capacity = self.shared.options().idempotency_window_events as usize;
        let segments = self.shared.segments().snapshot();
        match crate::recovery::rebuild_window(&segments, self.shared.head(), capacity) {
            Ok(window) => self.sequencer.set_window(window),
            Err(e) => self.shared.poison(WINDOW_OP, io::Error::other(e.to_string())),
        }
    }

    /// The writer's loop, until shutdown.
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
            if !self.window_refilled {
                self.refill_window();
                self.window_refilled = true;
            }
            self.sequencer.start_group();
            let (mut count, mut bytes) = (1, first.records.len());
            self.accept(first);
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
                        self.accept(request);
                    }
                    Ok(Message::Shutdown) | Err(TryRecvError::Disconnected) => {
                        shutdown = true;
                        break;
                    }
                    Err(TryRecvError::Empty) => break,
                }
            }
            self.flush();
            if shutdown {
                break;
            }
        }
    }

    /// Checks one append and seals it into the group, or answers it at once. An append that
    /// does not fit the active segment behind the group first commits the group and rotates.
    fn accept(&mut self, request: AppendRequest) {
        let Some(checked) = self.sequencer.check(request) else { return };
        if !self.appender.fits(self.sequencer.sealed().bytes.len() + checked.records_len()) {
            self.flush();
            self.appender.rotate(self.sequencer.sealed().end);
            if let Some(error) = self.shared.poisoned() {
                checked.refuse(error);
                return;
            }
        }
        self.sequencer.seal(checked);
    }

    /// Writes and fsyncs the group, publishes it, and answers its callers.
    fn flush(&mut self) {
        let written = match self.appender.write(self.sequencer.hand_off()) {
            Ok(written) => written,
            Err((op, error)) => {
                self.shared.poison(op, error);
                None
            }
        };
        if let Some(written) = written {
            match written.sync(self.shared.options().durability) {
                Ok(()) => {
                    let behind = self.sequencer.behind().expect("the group just handed off");
                    self.appender.publish(&written, behind);
                }
                Err(error) => self.shared.poison(FSYNC_OP, error),
            }
        }
        let group = self.sequencer.release_behind().expect("the group just handed off");
        self.answer(group);
    }

    /// Answers a group's callers: with their results if the store is not poisoned (the group
    /// is published), else with the poison (nothing of it was acknowledged or published).
    fn answer(&mut self, mut group: Group) {
        let (shared, poisoned) = (&self.shared, self.shared.poisoned().is_some());
        let inline = group.answers.len() <= ANSWER_INLINE_MAX;
        let answers = group.answers.drain(..).map(|(reply, result)| {
            let answer =
                if poisoned { Err(shared.poisoned().expect("poisoned")) } else { Ok(result) };
            (reply, answer)
        });
        if inline {
            // Few callers: waking them here is cheaper than waking the answering thread.
            answers.for_each(|(reply, answer)| reply.send(answer));
        } else {
            // Waking each caller is a futex call; with many callers that would delay the next
            // group by as much as an fsync, so another thread does it meanwhile.
            let _ = self.answerer.send(answers.collect());
        }
        self.sequencer.recycle(group);
    }

    /// Answers whatever is still queued with `Closed`, or with the poison if there is one.
    fn stop(mut self) {
        // Every committed append is answered before the writer counts as gone.
        let (closed, _) = crossbeam_channel::bounded(1);
        drop(std::mem::replace(&mut self.answerer, closed));
        if let Some(handle) = self.answer_thread.take() {
            let _ = handle.join();
        }
        self.appender.close();
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
