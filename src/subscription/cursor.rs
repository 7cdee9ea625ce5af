//! A subscription's place in the log and the reads that move it: `$all` (filtered) or one stream,
//! from the next unread place up to the head, with the ordinary readers. Catch-up and live
//! delivery are this same loop; only the wait in between differs.

use std::sync::Arc;

use crate::{
    error::{Error, Result},
    read::{ReadAll, ReadStream, RecordedEvent},
    shared::Shared,
};

use super::Filter;

/// How many non-matching events one poll steps over before it returns, so that a filtered
/// subscription over a quiet filter still notices deadlines and reports its progress.
pub(crate) const SCAN_BUDGET: u32 = 4096;

/// What one poll found.
pub(crate) enum Poll {
    /// The next event to deliver.
    Event(RecordedEvent),
    /// Everything committed so far has been read; wait for the head to pass [`Cursor::seen`].
    CaughtUp,
    /// Stepped over [`SCAN_BUDGET`] filtered-out events; more may follow at once.
    Scanned,
}

/// Where a subscription stands and the read in progress, if any.
pub(crate) enum Cursor {
    /// `$all`, filtered.
    All(AllCursor),
    /// One stream.
    Stream(StreamCursor),
}

/// A place in `$all`.
pub(crate) struct AllCursor {
    pub filter: Filter,
    /// The next position to read. Every position below it was delivered, filtered out, or is
    /// not in the log (a salvaged store may have gaps); so it is also where to resume.
    pub next: u64,
    /// The read in progress and the head sampled just before it was made.
    read: Option<(ReadAll, u64)>,
}

/// A place in one stream.
pub(crate) struct StreamCursor {
    pub stream: String,
    /// The version to read next.
    pub next: u64,
    read: Option<ReadStream>,
    /// The head sampled before the last read was made: every event of the stream below it was
    /// seen by that read.
    seen: u64,
}

impl Cursor {
    /// `$all` from position `next`, keeping the events `filter` selects.
    pub fn all(next: u64, filter: Filter) -> Cursor {
        Cursor::All(AllCursor { filter, next, read: None })
    }

    /// `stream` from version `next`.
    pub fn stream(stream: String, next: u64) -> Cursor {
        Cursor::Stream(StreamCursor { stream, next, read: None, seen: 0 })
    }

    /// Reads on from the cursor, up to the head.
    pub fn poll(&mut self, shared: &Arc<Shared>) -> Result<Poll> {
        match self {
            Cursor::All(c) => c.poll(shared),
            Cursor::Stream(c) => c.poll(shared),
        }
    }

    /// After [`Poll::CaughtUp`]: there is more to read once the head is above this.
    pub fn seen(&self) -> u64 {
        match self {
            Cursor::All(c) => c.next,
            Cursor::Stream(c) => c.seen,
        }
    }

    /// The stream it reads; `None` for `$all`.
    pub fn stream_name(&self) -> Option<&str> {
        match self {
            Cursor::All(_) => None,
            Cursor::Stream(c) => Some(&c.stream),
        }
    }

    /// Events committed that the cursor has not reached: positions for `$all` (filtered-out
    /// ones included), versions for a stream.
    pub fn lag(&self, shared: &Shared) -> u64 {
        match self {
            Cursor::All(c) => shared.head().saturating_sub(c.next),
            Cursor::Stream(c) => {
                let end = shared.streams().last_version(&c.stream).map_or(0, |v| v + 1);
                end.saturating_sub(c.next)
            }
        }
    }
}

impl AllCursor {
    fn poll(&mut self, shared: &Arc<Shared>) -> Result<Poll> {
        let mut skipped = 0;
        loop {
            let (read, end) = match &mut self.read {
                Some((read, end)) => (read, *end),
                None => {
                    // Sample the head before the read samples its own: its end is then at or
                    // above `end`, so once it runs out every position below `end` was read.
                    let end = shared.head();
                    if end <= self.next {
                        return Ok(Poll::CaughtUp);
                    }
                    let read = ReadAll::new(Arc::clone(shared), self.next, usize::MAX);
                    let (read, _) = self.read.insert((read, end));
                    (read, end)
                }
            };
            match read.next() {
                Some(Ok(event)) => {
                    self.next = event.position().get() + 1;
                    if self.filter.matches(&event) {
                        return Ok(Poll::Event(event));
                    }
                    skipped += 1;
                    if skipped == SCAN_BUDGET {
                        return Ok(Poll::Scanned);
                    }
                }
                Some(Err(e)) => {
                    self.read = None;
                    return Err(e);
                }
                None => {
                    self.read = None;
                    // Positions below `end` that the read did not return are not in the log.
                    self.next = self.next.max(end);
                }
            }
        }
    }
}

impl StreamCursor {
    fn poll(&mut self, shared: &Arc<Shared>) -> Result<Poll> {
        let read = match &mut self.read {
            Some(read) => read,
            None => {
                // The stream index is updated before the head moves, so a read made after
                // sampling the head sees every event of the stream below it.
                self.seen = shared.head();
                let read =
                    ReadStream::new(Arc::clone(shared), &self.stream, self.next, true, usize::MAX);
                match read {
                    Ok(read) => self.read.insert(read),
                    Err(Error::StreamNotFound { .. }) => return Ok(Poll::CaughtUp),
                    Err(e) => return Err(e),
                }
            }
        };
        match read.next() {
            Some(Ok(event)) => {
                self.next = event.version().get() + 1;
                Ok(Poll::Event(event))
            }
            Some(Err(e)) => {
                self.read = None;
                Err(e)
            }
            None => {
                self.read = None;
                Ok(Poll::CaughtUp)
            }
        }
    }
}
