//! The committer: the one holder of the writer's state (sequencer, appender, idempotency window),
//! which turns appends into durable, published groups and answers their callers. The writer
//! thread drives it group by group; an appending thread that finds the writer idle drives it
//! for its own append (the inline commit). Either way it is used under one lock
//! ([`WriterLink`](super::WriterLink)), so the log still has exactly one writer at a time, and
//! groups are checked, written, synced and published one after the other in log order. Readers
//! never take that lock.

use std::{io, sync::Arc};

use crossbeam_channel::Sender;

use super::{
    Answers, AppendRequest, FSYNC_OP, IdWindow, WINDOW_OP,
    appender::Appender,
    sequencer::{Group, Sequencer},
};
use crate::{segment::Segment, shared::Shared};

/// Groups with at most this many callers are answered by the committing thread itself.
const ANSWER_INLINE_MAX: usize = 4;

/// The writer's state, used under the link's lock by whichever thread commits.
pub(super) struct Committer {
    shared: Arc<Shared>,
    sequencer: Sequencer,
    appender: Appender,
    /// Answers of large groups, for the answering thread.
    answerer: Sender<Answers>,
    /// Whether the idempotency window has been refilled from the log (on the first append).
    window_refilled: bool,
    /// Set as the writer stops: nothing is committed any more, inline or not.
    closed: bool,
}

impl Committer {
    /// A committer continuing the log in `active` (at its committed length), whose next group
    /// commit has the sequence number `next_sequence`; large groups are answered through
    /// `answerer`.
    pub fn new(
        shared: Arc<Shared>,
        active: Arc<Segment>,
        next_sequence: u64,
        answerer: Sender<Answers>,
    ) -> Committer {
        let sequencer = Sequencer::new(Arc::clone(&shared), IdWindow::new(0), next_sequence);
        let appender = Appender::new(Arc::clone(&shared), active);
        Committer { shared, sequencer, appender, answerer, window_refilled: false, closed: false }
    }

    /// The store's shared state.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Whether the writer has stopped: nothing may be committed.
    pub fn closed(&self) -> bool {
        self.closed
    }

    /// Starts a group (refilling the idempotency window first if no group came before).
    pub fn begin(&mut self) {
        debug_assert!(
            self.sequencer.sealed().bytes.is_empty() && self.sequencer.behind().is_none()
        );
        if !self.window_refilled {
            self.refill_window();
            self.window_refilled = true;
        }
        self.sequencer.start_group();
    }

    /// Commits `request` alone, as a group of its own, and answers it (inline, since a group
    /// of one is answered by the committing thread).
    pub fn commit_alone(&mut self, request: AppendRequest) {
        self.begin();
        self.accept(request);
        self.flush();
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

    /// Checks one append and seals it into the group, or answers it at once. An append that
    /// does not fit the active segment behind the group first commits the group and rotates.
    pub fn accept(&mut self, request: AppendRequest) {
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
    pub fn flush(&mut self) {
        let written = match self.appender.write(self.sequencer.hand_off()) {
            Ok(written) => written,
            Err((op, error)) => {
                self.shared.poison(op, error);
                None
            }
        };
        if let Some(written) = written {
            let counters = self.shared.commit_counters();
            match written.sync(self.shared.options().durability, counters) {
                Ok(()) => {
                    let behind = self.sequencer.behind().expect("the group just handed off");
                    // Positions are dense and groups publish in order: the group starts at
                    // the head, so it holds `end - head` events.
                    counters.group(behind.end - self.shared.head());
                    self.appender.publish(&written, behind);
                }
                Err(error) => self.shared.poison(FSYNC_OP, error),
            }
        }
        let group = self.sequencer.release_behind().expect("the group just handed off");
        self.answer(group);
    }

    /// Answers a group's callers: with their results (or the refusals that waited for the
    /// group) if the store is not poisoned (the group is published), else with the poison
    /// (nothing of it was acknowledged or published).
    fn answer(&mut self, mut group: Group) {
        let (shared, poisoned) = (&self.shared, self.shared.poisoned().is_some());
        let inline = group.answers.len() <= ANSWER_INLINE_MAX;
        let answers = group.answers.drain(..).map(|(reply, result)| {
            let answer = if poisoned { Err(shared.poisoned().expect("poisoned")) } else { result };
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

    /// Drops the groups a panic left half-done (their callers hear `Gone`, then the poison the
    /// panic's catcher set), so that the next group starts clean on a poisoned store. Between
    /// groups there are none, and this does nothing.
    pub fn abandon(&mut self) {
        self.sequencer.abandon();
    }

    /// Stops committing: lets go of the answering thread's queue (so that it ends once it has
    /// sent what it holds) and, without fsyncs, syncs the active segment once.
    pub fn close(&mut self) {
        self.closed = true;
        let (closed, _) = crossbeam_channel::bounded(1);
        drop(std::mem::replace(&mut self.answerer, closed));
        self.appender.close();
    }
}
