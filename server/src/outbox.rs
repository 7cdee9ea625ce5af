//! The sending side of a server-streaming reply, used from a blocking task (counted reads;
//! subscriptions, which are async, use [`Sink`](crate::sink::Sink)): each send waits
//! for room in the bounded queue, but gives up when the client has gone or the server is
//! shutting down, so a stalled client can hold neither a thread nor the shutdown forever.

use tokio::{runtime::Handle, sync::mpsc, sync::watch};
use tonic::Status;

/// Why a send did not happen; either way the task ends.
#[derive(Debug, PartialEq, Eq)]
pub enum Stop {
    /// The client dropped the call.
    ClientGone,
    /// The server is shutting down.
    Shutdown,
}

/// Replies from a blocking task to one call.
pub struct Outbox<T> {
    replies: mpsc::Sender<Result<T, Status>>,
    shutdown: watch::Receiver<bool>,
    runtime: Handle,
}

impl<T> Outbox<T> {
    /// An outbox over `replies`; `runtime` is the server's runtime (captured before the task
    /// left it).
    pub fn new(
        replies: mpsc::Sender<Result<T, Status>>,
        shutdown: watch::Receiver<bool>,
        runtime: Handle,
    ) -> Outbox<T> {
        Outbox { replies, shutdown, runtime }
    }

    /// Sends `reply`, waiting for room.
    pub fn send(&mut self, reply: Result<T, Status>) -> Result<(), Stop> {
        if self.shutting_down() {
            return Err(Stop::Shutdown);
        }
        let (replies, shutdown) = (&self.replies, &mut self.shutdown);
        self.runtime.block_on(async {
            tokio::select! {
                sent = replies.send(reply) => sent.map_err(|_| Stop::ClientGone),
                _ = shutdown.wait_for(|down| *down) => Err(Stop::Shutdown),
            }
        })
    }

    /// Whether the server is shutting down.
    pub fn shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }
}
