//! The idempotency window: the ids of the most recent events, so that a client that retries an
//! append after a timeout gets the original result instead of a duplicate.

use std::collections::{HashMap, VecDeque};

use uuid::Uuid;

use super::request::Part;
use crate::{error::Error, types::MultiAppendResult};

/// One remembered append.
struct Remembered {
    first_position: u64,
    ids: Box<[Uuid]>,
    result: MultiAppendResult,
}

/// What the window says about an incoming append.
pub(crate) enum Verdict {
    /// None of its ids is known: append it.
    New,
    /// It repeats a committed append exactly: answer with that append's result.
    Retry(MultiAppendResult),
    /// Some id belongs to a different committed append.
    Conflict(Error),
}

/// Ids of the last `capacity` events (whole appends), oldest evicted first.
pub(crate) struct IdWindow {
    capacity: usize,
    events: usize,
    positions: HashMap<Uuid, u64>,
    appends: VecDeque<Remembered>,
}

impl IdWindow {
    /// A window remembering about `capacity` events.
    pub fn new(capacity: usize) -> IdWindow {
        IdWindow { capacity, events: 0, positions: HashMap::new(), appends: VecDeque::new() }
    }

    /// Judges an append of `ids` to the streams of `parts`.
    pub fn check(&self, ids: &[Uuid], parts: &[Part]) -> Verdict {
        let Some(&first_position) = ids.first().and_then(|id| self.positions.get(id)) else {
            for id in ids {
                if let Some(&position) = self.positions.get(id) {
                    return Verdict::Conflict(Error::EventIdConflict { id: *id, position });
                }
            }
            return Verdict::New;
        };
        let found = self
            .appends
            .binary_search_by_key(&first_position, |a| a.first_position)
            .ok()
            .map(|i| &self.appends[i]);
        if let Some(original) = found {
            let streams = &original.result.streams;
            // Same streams, in the same order, each with the same number of the same events.
            let same_parts = streams.len() == parts.len()
                && streams.iter().zip(parts).all(|((s, r), p)| {
                    *s == p.stream
                        && r.last_version.get() - r.first_version.get() + 1 == u64::from(p.events)
                });
            if *original.ids == *ids && same_parts {
                return Verdict::Retry(original.result.clone());
            }
        }
        Verdict::Conflict(Error::EventIdConflict { id: ids[0], position: first_position })
    }

    /// Remembers a committed (or about to be committed) append, evicting the oldest.
    pub fn insert(&mut self, ids: &[Uuid], result: MultiAppendResult) {
        if self.capacity == 0 {
            return;
        }
        let first_position = result.first_position.get();
        debug_assert!(self.appends.back().is_none_or(|a| a.first_position < first_position));
        for (i, id) in ids.iter().enumerate() {
            self.positions.insert(*id, first_position + i as u64);
        }
        self.events += ids.len();
        self.appends.push_back(Remembered { first_position, ids: ids.into(), result });
        while self.events > self.capacity {
            let Some(old) = self.appends.pop_front() else {
                break;
            };
            for (i, id) in old.ids.iter().enumerate() {
                if self.positions.get(id) == Some(&(old.first_position + i as u64)) {
                    self.positions.remove(id);
                }
            }
            self.events -= old.ids.len();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{AppendResult, ExpectedVersion, Position, StreamVersion};

    fn on(stream: &str) -> Vec<Part> {
        vec![Part { stream: stream.into(), expected: ExpectedVersion::Any, events: 1 }]
    }

    fn result(first: u64, n: u64) -> MultiAppendResult {
        let r = AppendResult {
            first_position: Position(first),
            last_position: Position(first + n - 1),
            first_version: StreamVersion(0),
            last_version: StreamVersion(n - 1),
        };
        MultiAppendResult {
            first_position: Position(first),
            last_position: Position(first + n - 1),
            streams: vec![("s".into(), r)],
        }
    }

    fn ids(range: std::ops::Range<u128>) -> Vec<Uuid> {
        range.map(Uuid::from_u128).collect()
    }

    #[test]
    fn exact_repeat_is_a_retry_and_partial_overlap_a_conflict() {
        let mut w = IdWindow::new(100);
        w.insert(&ids(1..4), result(0, 3));
        assert!(matches!(w.check(&ids(1..4), &on("s")), Verdict::Retry(r) if r == result(0, 3)));
        assert!(matches!(w.check(&ids(1..4), &on("t")), Verdict::Conflict(_)));
        assert!(matches!(w.check(&ids(1..3), &on("s")), Verdict::Conflict(_)));
        assert!(matches!(
            w.check(&ids(3..5), &on("s")),
            Verdict::Conflict(Error::EventIdConflict { position: 2, .. })
        ));
        assert!(matches!(w.check(&ids(4..6), &on("s")), Verdict::New));
    }

    #[test]
    fn oldest_appends_are_evicted_beyond_capacity() {
        let mut w = IdWindow::new(4);
        w.insert(&ids(1..4), result(0, 3));
        w.insert(&ids(4..6), result(3, 2));
        assert!(matches!(w.check(&ids(1..4), &on("s")), Verdict::New));
        assert!(matches!(w.check(&ids(4..6), &on("s")), Verdict::Retry(_)));
    }
}
