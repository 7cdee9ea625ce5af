//! The append future: an append already handed to the writer, which resolves when the writer
//! answers it (once its group is durable and published), without blocking a thread meanwhile.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use crossbeam_channel::Receiver;

use super::answer::{Answer, Heard};
use crate::{
    error::{Error, Result},
    shared::Shared,
    types::{AppendResult, MultiAppendResult},
};

/// An append on its way to the log, returned by
/// [`Store::append_multi_async`](crate::Store::append_multi_async); resolves to what
/// [`Store::append_multi`](crate::Store::append_multi) would have returned. It needs no
/// particular runtime: the writer wakes the task's [`Waker`](std::task::Waker).
///
/// The append was checked and queued when the future was made; polling only waits for the
/// answer. **Dropping a pending future does not cancel the append**: it may still commit. To
/// learn its outcome, retry it with the same event ids: the idempotency window answers a retry
/// of a committed append with its original result, and appends it otherwise.
#[must_use = "the append is queued already; the future only tells its outcome"]
pub struct AppendFuture {
    state: State,
}

enum State {
    /// Refused before it reached the writer, or already resolved (`None`).
    Ready(Option<Result<MultiAppendResult>>),
    Waiting(Waiting),
}

struct Waiting {
    answer: Answer,
    shared: Arc<Shared>,
    /// Disconnects when the writer thread has stopped.
    writer_gone: Receiver<()>,
}

impl AppendFuture {
    /// A future already resolved to `outcome`.
    pub(crate) fn ready(outcome: Result<MultiAppendResult>) -> AppendFuture {
        AppendFuture { state: State::Ready(Some(outcome)) }
    }

    /// A future waiting for `answer`; `writer_gone` tells when the writer has stopped, and
    /// `shared` then whether it was poisoned.
    pub(crate) fn waiting(
        answer: Answer,
        shared: Arc<Shared>,
        writer_gone: Receiver<()>,
    ) -> AppendFuture {
        AppendFuture { state: State::Waiting(Waiting { answer, shared, writer_gone }) }
    }
}

impl Future for AppendFuture {
    type Output = Result<MultiAppendResult>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let waiting = match &mut self.state {
            State::Ready(outcome) => {
                let outcome = outcome.take().expect("an append future polled after it resolved");
                return Poll::Ready(outcome);
            }
            State::Waiting(waiting) => waiting,
        };
        let outcome = match std::task::ready!(waiting.answer.poll(cx)) {
            Heard::Answered(outcome) => outcome,
            Heard::Gone => {
                // The writer let go of the request as it stopped; it poisons the store before it
                // lets go of anything, so once it is gone the poison, if any, is there.
                let _ = waiting.writer_gone.recv();
                Err(waiting.shared.poisoned().unwrap_or(Error::Closed))
            }
        };
        self.state = State::Ready(None);
        Poll::Ready(outcome)
    }
}

/// An append to one stream on its way to the log, returned by
/// [`Store::append_async`](crate::Store::append_async): an [`AppendFuture`] that resolves to that
/// stream's result, as [`Store::append`](crate::Store::append) returns it. Dropping it pending
/// does not cancel the append (see [`AppendFuture`]).
#[must_use = "the append is queued already; the future only tells its outcome"]
#[derive(Debug)]
pub struct AppendOneFuture {
    inner: AppendFuture,
}

impl AppendOneFuture {
    /// The one-stream view of `inner`, an append of one part.
    pub(crate) fn new(inner: AppendFuture) -> AppendOneFuture {
        AppendOneFuture { inner }
    }
}

impl Future for AppendOneFuture {
    type Output = Result<AppendResult>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let outcome = std::task::ready!(Pin::new(&mut self.inner).poll(cx));
        Poll::Ready(outcome.map(|mut result| result.streams.pop().expect("one part").1))
    }
}

impl std::fmt::Debug for AppendFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pending = matches!(self.state, State::Waiting(_));
        f.debug_struct("AppendFuture").field("pending", &pending).finish()
    }
}
