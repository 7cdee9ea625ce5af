//! Iterators over `$all`, the whole log in position order.

use std::sync::Arc;

use crate::{error::Result, shared::Shared};

use super::{Locator, RecordedEvent};

/// Events of `$all` from a position forward, up to the head as of the call that made it.
pub struct ReadAll {
    locator: Locator,
    next: u64,
    end: u64,
    remaining: usize,
}

impl ReadAll {
    pub(crate) fn new(shared: Arc<Shared>, from: u64, limit: usize) -> ReadAll {
        let end = shared.head();
        let next = from.max(shared.segments.first_position());
        ReadAll {
            locator: Locator::new(shared),
            next,
            end,
            remaining: limit,
        }
    }
}

impl Iterator for ReadAll {
    type Item = Result<RecordedEvent>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 || self.next >= self.end {
            return None;
        }
        let read = self.locator.read(self.next);
        match &read {
            Ok(_) => {
                self.next += 1;
                self.remaining -= 1;
            }
            Err(_) => self.remaining = 0,
        }
        Some(read)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = usize::try_from(self.end.saturating_sub(self.next)).unwrap_or(usize::MAX);
        let n = left.min(self.remaining);
        (n, Some(n))
    }
}

/// Events of `$all` from a position backward to the start.
pub struct ReadAllBackward {
    locator: Locator,
    /// The next position to read, `None` once past the first.
    next: Option<u64>,
    first: u64,
    remaining: usize,
}

impl ReadAllBackward {
    pub(crate) fn new(shared: Arc<Shared>, from: u64, limit: usize) -> ReadAllBackward {
        let head = shared.head();
        let first = shared.segments.first_position();
        let next = head
            .checked_sub(1)
            .map(|last| from.min(last))
            .filter(|&p| p >= first);
        ReadAllBackward {
            locator: Locator::new(shared),
            next,
            first,
            remaining: limit,
        }
    }
}

impl Iterator for ReadAllBackward {
    type Item = Result<RecordedEvent>;

    fn next(&mut self) -> Option<Self::Item> {
        let position = self.next.filter(|_| self.remaining > 0)?;
        let read = self.locator.read(position);
        match &read {
            Ok(_) => {
                self.remaining -= 1;
                self.next = position.checked_sub(1).filter(|&p| p >= self.first);
            }
            Err(_) => self.remaining = 0,
        }
        Some(read)
    }
}
