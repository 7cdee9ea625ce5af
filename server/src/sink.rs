//! The sending side of a server-streaming reply, used from an async task: each send waits for
//! room in the bounded queue, but gives up when the client has gone or the server is shutting
//! down, so a stalled client can hold neither the task nor the shutdown forever.

use tokio::sync::{mpsc, watch};
use tonic::Status;

use crate::outbox::Stop;

/// Replies from an async task to one call.
pub struct Sink<T> {
    replies: mpsc::Sender<Result<T, Status>>,
    shutdown: watch::Receiver<bool>,
}

impl<T> Sink<T> {
    /// A sink over `replies`, ending early when `shutdown` turns `true`.
    pub fn new(replies: mpsc::Sender<Result<T, Status>>, shutdown: watch::Receiver<bool>) -> Self {
        Sink { replies, shutdown }
    }

    /// Sends `reply`, waiting for room.
    pub async fn send(&mut self, reply: Result<T, Status>) -> Result<(), Stop> {
        if *self.shutdown.borrow() {
            return Err(Stop::Shutdown);
        }
        let (replies, shutdown) = (&self.replies, &mut self.shutdown);
        tokio::select! {
            sent = replies.send(reply) => sent.map_err(|_| Stop::ClientGone),
            _ = shutdown.wait_for(|down| *down) => Err(Stop::Shutdown),
        }
    }

    /// Whether the queue is full: the client reads slower than replies are made.
    pub fn is_full(&self) -> bool {
        self.replies.capacity() == 0
    }

    /// Resolves when the client drops the call or the server starts shutting down, saying
    /// which.
    pub async fn stopped(&mut self) -> Stop {
        let (replies, shutdown) = (&self.replies, &mut self.shutdown);
        tokio::select! {
            () = replies.closed() => Stop::ClientGone,
            _ = shutdown.wait_for(|down| *down) => Stop::Shutdown,
        }
    }

    /// Sends a final error and ends, ignoring whether it could be delivered.
    pub fn fail(&mut self, status: Status) {
        // During shutdown the queue may be full; `try_send` never waits.
        let _ = self.replies.try_send(Err(status));
    }
}
