//! The answer slot: where the writer leaves one append's outcome, and how it wakes whoever waits
//! for it, a parked thread or a task's [`Waker`].
//!
//! The writer's end ([`Reply`]) travels with the request; the caller's end ([`Answer`]) stays with
//! the caller. A reply answers exactly once: sent, or, dropped unanswered (a request still queued
//! when the writer stopped, a group dropped by a panic), it says [`Heard::Gone`], so that no
//! caller waits for an answer that will never come. Waking takes one `unpark` (a futex wake only
//! if the caller is parked) or one `Waker::wake`, and no lock shared with any other caller.
//!
//! A blocking append reuses its thread's slot from one append to the next, so the hot path
//! allocates no reply channel per append; a slot still referenced by an earlier request (its
//! caller gave up on it) is left to that request and the thread takes a new one.

use std::{
    cell::RefCell,
    sync::{Arc, Mutex},
    task::{Context, Poll, Waker},
    thread::{self, Thread},
};

use crate::{error::Result, sync, types::MultiAppendResult};

/// What an append is told.
pub(crate) type Outcome = Result<MultiAppendResult>;

/// What the caller hears from the writer.
#[derive(Debug)]
pub(crate) enum Heard {
    /// The writer's answer.
    Answered(Outcome),
    /// The writer let go of the request without answering it: it stopped (closed, poisoned or
    /// panicked) before it got to it.
    Gone,
}

/// Who waits for a slot.
enum Waiter {
    Nobody,
    Thread(Thread),
    Task(Waker),
}

struct State {
    heard: Option<Heard>,
    waiter: Waiter,
}

/// One append's answer on its way from the writer to its caller.
struct Slot {
    state: Mutex<State>,
}

impl Slot {
    fn new() -> Slot {
        Slot { state: Mutex::new(State { heard: None, waiter: Waiter::Nobody }) }
    }

    /// Leaves `heard` in the slot and wakes its waiter, if any.
    fn fill(self: Arc<Self>, heard: Heard) {
        let waiter = {
            let mut state = sync::lock(&self.state);
            debug_assert!(state.heard.is_none(), "a slot is answered once");
            state.heard = Some(heard);
            std::mem::replace(&mut state.waiter, Waiter::Nobody)
        };
        // Let go of the slot before waking, so that the caller, once awake, finds its thread's
        // slot free for the next append.
        drop(self);
        match waiter {
            Waiter::Nobody => {}
            Waiter::Thread(thread) => thread.unpark(),
            Waiter::Task(waker) => waker.wake(),
        }
    }
}

thread_local! {
    /// The slot this thread's blocking appends reuse.
    static OWN: RefCell<Option<Arc<Slot>>> = const { RefCell::new(None) };
}

/// A reply and its answer for a blocking append: this thread's slot if no earlier request still
/// holds it, else a new one (which becomes the thread's slot).
pub(crate) fn blocking_pair() -> (Reply, Answer) {
    let slot = OWN.with(|own| {
        let mut own = own.borrow_mut();
        match own.as_ref() {
            // Held by nothing else: no reply can fill it any more and no answer reads it.
            Some(slot) if Arc::strong_count(slot) == 1 => {
                let mut state = sync::lock(&slot.state);
                state.heard = None;
                state.waiter = Waiter::Nobody;
                drop(state);
                Arc::clone(slot)
            }
            _ => Arc::clone(own.insert(Arc::new(Slot::new()))),
        }
    });
    (Reply { slot: Some(Arc::clone(&slot)) }, Answer { slot })
}

/// A reply and its answer in a slot of their own, for an append whose caller may wait
/// elsewhere or give up (a future).
pub(crate) fn own_pair() -> (Reply, Answer) {
    let slot = Arc::new(Slot::new());
    (Reply { slot: Some(Arc::clone(&slot)) }, Answer { slot })
}

/// The writer's end of a slot: answers once, or says [`Heard::Gone`] when dropped unanswered.
pub(crate) struct Reply {
    slot: Option<Arc<Slot>>,
}

impl Reply {
    /// Answers the caller.
    pub fn send(mut self, outcome: Outcome) {
        if let Some(slot) = self.slot.take() {
            slot.fill(Heard::Answered(outcome));
        }
    }
}

impl Drop for Reply {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            slot.fill(Heard::Gone);
        }
    }
}

/// The caller's end of a slot.
pub(crate) struct Answer {
    slot: Arc<Slot>,
}

impl Answer {
    /// What the writer said, if it said anything yet.
    pub fn try_take(&self) -> Option<Heard> {
        sync::lock(&self.slot.state).heard.take()
    }

    /// Parks this thread until the writer answers or lets go of the request.
    pub fn wait(self) -> Heard {
        let mut state = sync::lock(&self.slot.state);
        loop {
            if let Some(heard) = state.heard.take() {
                return heard;
            }
            if !matches!(state.waiter, Waiter::Thread(_)) {
                state.waiter = Waiter::Thread(thread::current());
            }
            drop(state);
            // Returns on the writer's `unpark`, or spuriously, or on a token left by an earlier
            // `unpark` of this thread: the loop looks again in each case.
            thread::park();
            state = sync::lock(&self.slot.state);
        }
    }

    /// What the writer said, or `Pending` with `cx`'s waker registered to be woken when it
    /// says it.
    pub fn poll(&self, cx: &Context<'_>) -> Poll<Heard> {
        let mut state = sync::lock(&self.slot.state);
        if let Some(heard) = state.heard.take() {
            return Poll::Ready(heard);
        }
        match &state.waiter {
            Waiter::Task(waker) if waker.will_wake(cx.waker()) => {}
            _ => state.waiter = Waiter::Task(cx.waker().clone()),
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    #[test]
    fn answer_wait_returns_what_another_thread_sent() {
        let (reply, answer) = blocking_pair();
        let sender = thread::spawn(move || {
            thread::sleep(std::time::Duration::from_millis(20));
            reply.send(Err(Error::Closed));
        });
        assert!(matches!(answer.wait(), Heard::Answered(Err(Error::Closed))));
        sender.join().unwrap();
    }

    #[test]
    fn reply_dropped_unanswered_says_gone() {
        let (reply, answer) = own_pair();
        thread::spawn(move || drop(reply)).join().unwrap();
        assert!(matches!(answer.wait(), Heard::Gone));
    }

    #[test]
    fn blocking_pair_reuses_the_thread_slot_only_once_it_is_free() {
        let (reply, answer) = blocking_pair();
        let first = Arc::as_ptr(&answer.slot);
        reply.send(Err(Error::Closed));
        assert!(matches!(answer.wait(), Heard::Answered(_)));
        let (reply, answer) = blocking_pair();
        assert_eq!(Arc::as_ptr(&answer.slot), first, "a free slot is reused");
        assert!(answer.try_take().is_none(), "and starts empty");
        // The caller gives up while the request is still out: its slot is not reused.
        drop(answer);
        let (_reply2, answer2) = blocking_pair();
        assert_ne!(Arc::as_ptr(&answer2.slot), first);
        drop(reply);
    }
}
