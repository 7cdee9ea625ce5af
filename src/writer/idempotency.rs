//! The idempotency window: the ids of the most recent events, so that a client that retries an
//! append after a timeout gets the original result instead of a duplicate.
//!
//! To stay small (about 40 bytes per remembered event) the window keeps only a 64-bit key per
//! id and the extent of each append; whenever a key matches, the candidate events are read back
//! (from the log, or from the group being written) and compared in full, so a key collision can
//! never turn a new append into a "retry".

use std::collections::{HashMap, VecDeque};

use uuid::Uuid;

use super::request::Part;
use crate::index::NameHash;
use crate::{
    error::Error,
    types::{AppendResult, MultiAppendResult, Position, StreamVersion},
};

/// An event read back to check a candidate retry.
pub(crate) struct Original {
    pub id: Uuid,
    pub stream: String,
    pub version: u64,
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
    /// Key of an id → the position of its event.
    positions: HashMap<u64, u64, NameHash>,
    /// First position and event count of each remembered append, oldest first.
    appends: VecDeque<(u64, u32)>,
    /// The keys of the remembered events, oldest first, for eviction.
    keys: VecDeque<u64>,
}

fn key(id: &Uuid) -> u64 {
    let (hi, lo) = id.as_u64_pair();
    hi ^ lo.rotate_left(32)
}

impl IdWindow {
    /// A window remembering about `capacity` events.
    pub fn new(capacity: usize) -> IdWindow {
        IdWindow {
            capacity,
            events: 0,
            positions: HashMap::default(),
            appends: VecDeque::new(),
            keys: VecDeque::new(),
        }
    }

    /// Judges an append of `ids` to `parts`; `read` reads back the event at a position.
    pub fn check(
        &self,
        ids: &[Uuid],
        parts: &[Part],
        read: &mut dyn FnMut(u64) -> Option<Original>,
    ) -> Verdict {
        for (i, id) in ids.iter().enumerate() {
            let Some(&position) = self.positions.get(&key(id)) else { continue };
            if read(position).is_none_or(|o| o.id != *id) {
                continue; // a key collision, not this id
            }
            if i == 0
                && let Some(result) = self.retry_of(position, ids, parts, read)
            {
                return Verdict::Retry(result);
            }
            return Verdict::Conflict(Error::EventIdConflict { id: *id, position });
        }
        Verdict::New
    }

    /// The original result if the append starting at `first` had exactly these ids, split
    /// between these streams in the same way.
    fn retry_of(
        &self,
        first: u64,
        ids: &[Uuid],
        parts: &[Part],
        read: &mut dyn FnMut(u64) -> Option<Original>,
    ) -> Option<MultiAppendResult> {
        let i = self.appends.binary_search_by_key(&first, |&(p, _)| p).ok()?;
        if self.appends[i].1 as usize != ids.len() {
            return None;
        }
        let mut originals = Vec::with_capacity(ids.len());
        for (k, id) in ids.iter().enumerate() {
            let original = read(first + k as u64).filter(|o| o.id == *id)?;
            originals.push(original);
        }
        let result = result_of(first, &originals);
        let same_split = result.streams.len() == parts.len()
            && result.streams.iter().zip(parts).all(|((stream, r), part)| {
                *stream == part.stream
                    && r.last_position.get() - r.first_position.get() + 1 == u64::from(part.events)
            });
        same_split.then_some(result)
    }

    /// Remembers an append of `ids` starting at `first_position`, evicting the oldest.
    pub fn insert(&mut self, first_position: u64, ids: &[Uuid]) {
        if self.capacity == 0 {
            return;
        }
        debug_assert!(self.appends.back().is_none_or(|&(p, _)| p < first_position));
        for (i, id) in ids.iter().enumerate() {
            self.positions.insert(key(id), first_position + i as u64);
            self.keys.push_back(key(id));
        }
        self.events += ids.len();
        self.appends.push_back((first_position, ids.len() as u32));
        while self.events > self.capacity {
            let Some((first, count)) = self.appends.pop_front() else { break };
            let evicted = first..first + u64::from(count);
            for key in self.keys.drain(..count as usize) {
                // A key that a later event reuses stays.
                if self.positions.get(&key).is_some_and(|p| evicted.contains(p)) {
                    self.positions.remove(&key);
                }
            }
            self.events -= count as usize;
        }
    }
}

/// Rebuilds an append's result from its events, which are contiguous from `first`.
pub(crate) fn result_of(first: u64, events: &[Original]) -> MultiAppendResult {
    let mut streams: Vec<(String, AppendResult)> = Vec::new();
    for (k, e) in events.iter().enumerate() {
        let (position, version) = (Position(first + k as u64), StreamVersion(e.version));
        match streams.iter_mut().find(|(s, _)| *s == e.stream) {
            Some((_, r)) => {
                r.last_position = position;
                r.last_version = version;
            }
            None => streams.push((
                e.stream.clone(),
                AppendResult {
                    first_position: position,
                    last_position: position,
                    first_version: version,
                    last_version: version,
                },
            )),
        }
    }
    let last_position = Position(first + events.len() as u64 - 1);
    MultiAppendResult { first_position: Position(first), last_position, streams }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::ExpectedVersion;

    fn on(stream: &str, events: u32) -> Vec<Part> {
        vec![Part { stream: stream.into(), expected: ExpectedVersion::Any, events }]
    }

    fn ids(range: std::ops::Range<u128>) -> Vec<Uuid> {
        range.map(Uuid::from_u128).collect()
    }

    /// A log where position p holds id `log[p]` in stream "s" at version p.
    fn reader(log: &[Uuid]) -> impl FnMut(u64) -> Option<Original> + '_ {
        |p| log.get(p as usize).map(|&id| Original { id, stream: "s".into(), version: p })
    }

    #[test]
    fn exact_repeat_is_a_retry_and_partial_overlap_a_conflict() {
        let log = ids(1..4);
        let mut w = IdWindow::new(100);
        w.insert(0, &log);
        let mut read = reader(&log);
        let retry = w.check(&ids(1..4), &on("s", 3), &mut read);
        assert!(matches!(retry, Verdict::Retry(r) if r.last_position == Position(2)));
        assert!(matches!(w.check(&ids(1..4), &on("t", 3), &mut read), Verdict::Conflict(_)));
        assert!(matches!(w.check(&ids(1..3), &on("s", 2), &mut read), Verdict::Conflict(_)));
        assert!(matches!(
            w.check(&ids(3..5), &on("s", 2), &mut read),
            Verdict::Conflict(Error::EventIdConflict { position: 2, .. })
        ));
        assert!(matches!(w.check(&ids(4..6), &on("s", 2), &mut read), Verdict::New));
    }

    #[test]
    fn a_key_collision_is_not_taken_for_a_retry() {
        let log = ids(1..2);
        let mut w = IdWindow::new(100);
        w.insert(0, &log);
        // Same key, different id: the read-back comparison tells them apart.
        let (hi, lo) = log[0].as_u64_pair();
        let twin = Uuid::from_u64_pair(hi ^ 1, lo ^ (1 << 32));
        assert_eq!(key(&twin), key(&log[0]));
        assert!(matches!(w.check(&[twin], &on("s", 1), &mut reader(&log)), Verdict::New));
    }

    #[test]
    fn oldest_appends_are_evicted_beyond_capacity() {
        let log = ids(1..6);
        let mut w = IdWindow::new(4);
        w.insert(0, &log[..3]);
        w.insert(3, &log[3..]);
        let mut read = reader(&log);
        assert!(matches!(w.check(&log[..3], &on("s", 3), &mut read), Verdict::New));
        assert!(matches!(w.check(&log[3..], &on("s", 2), &mut read), Verdict::Retry(_)));
    }
}
