//! A stream's positions from both layers of the stream index: the in-memory tail (versions of
//! segments whose index is not persisted yet) and the persisted indexes of sealed segments,
//! walked back from the stream's last persisted segment along each index's link to the
//! previous segment holding the stream.
//!
//! Nothing persisted is taken on trust: the runs found must tile the stream's versions exactly
//! (each run ending where the newer one starts, the newest ending where the tail starts), and
//! every position is checked again when its record is read. A walk that does not tile checks
//! the indexes it went through in full, rebuilds any that fail from their segments, and tries
//! again; only if that does not help is it reported as corruption.

use std::sync::Arc;

use crate::{
    error::{Error, Result},
    format::CorruptionKind,
    index::{Layers, SegmentIndex},
    indexer::Job,
    shared::Shared,
};

/// How often a walk is retried after repairing indexes or seeing the stream change.
const WALK_ATTEMPTS: usize = 3;

/// One stream's events in one persisted segment index.
struct Run {
    base: u64,
    index: Arc<SegmentIndex>,
    first: u64,
    count: u64,
    /// The link to the previous segment holding the stream (`None`: none, or unknown).
    prev: Option<u64>,
}

/// A walk whose runs did not tile the versions asked for.
struct Inconsistent;

/// Reads a stream's positions chunk by chunk, keeping the runs of the persisted layer it found.
pub(crate) struct StreamPositions {
    stream: String,
    /// Runs found so far, newest first, for the layers they were found under.
    chain: Vec<Run>,
    chain_for: Option<(u64, Option<u64>)>,
    /// Whether the chain holds the oldest run.
    complete: bool,
    /// A segment whose index did not give a run of the stream that tiles with the chain (none,
    /// or the wrong versions): its index is checked by the next repair, as the chain's are.
    suspect: Option<u64>,
}

impl StreamPositions {
    /// Positions of `stream`.
    pub fn new(stream: &str) -> StreamPositions {
        StreamPositions {
            stream: stream.to_owned(),
            chain: Vec::new(),
            chain_for: None,
            complete: false,
            suspect: None,
        }
    }

    /// Fills `out` with up to `max` positions of the stream from version `from`, forward or
    /// backward, never below `floor` (nor below the stream's first retained version). An empty
    /// `out` means there are no more. `Ok(false)` if the stream is unknown.
    pub fn fill(
        &mut self,
        shared: &Shared,
        (from, floor, forward, max): (u64, u64, bool, usize),
        out: &mut Vec<u64>,
    ) -> Result<bool> {
        for _ in 0..WALK_ATTEMPTS {
            let Some(layers) = shared.streams().chunk(&self.stream, from, floor, forward, max, out)
            else {
                return Ok(false);
            };
            if !out.is_empty() || max == 0 {
                return Ok(true);
            }
            let Some((lo, hi)) = persisted_range(&layers, from, floor, forward, max) else {
                return Ok(true);
            };
            match self.collect(shared, &layers, (lo, hi), forward, out) {
                Ok(()) => return Ok(true),
                Err(Inconsistent) => self.repair(shared),
            }
        }
        Err(Error::Corruption {
            segment: String::from("(persisted stream index)"),
            offset: from,
            kind: CorruptionKind::IndexMismatch,
        })
    }

    /// Positions of versions `lo..=hi` (all in the persisted layer), in read order.
    fn collect(
        &mut self,
        shared: &Shared,
        layers: &Layers,
        (lo, hi): (u64, u64),
        forward: bool,
        out: &mut Vec<u64>,
    ) -> Result<(), Inconsistent> {
        out.clear();
        self.reach(shared, layers, lo)?;
        let runs: Vec<&Run> =
            if forward { self.chain.iter().rev().collect() } else { self.chain.iter().collect() };
        for run in runs {
            let (start, end) = (lo.max(run.first), hi.min(run.first + run.count - 1));
            if start > end {
                continue;
            }
            let view = run.index.view().ok_or(Inconsistent)?;
            let events = view.stream(&self.stream).ok_or(Inconsistent)?;
            let mut push = |v| events.event(v).map(|(p, _)| out.push(p)).ok_or(Inconsistent);
            if forward {
                (start..=end).try_for_each(&mut push)?;
            } else {
                (start..=end).rev().try_for_each(&mut push)?;
            }
        }
        if out.len() as u64 != hi - lo + 1 {
            return Err(Inconsistent);
        }
        Ok(())
    }

    /// Extends the chain back until it holds version `lo`.
    fn reach(&mut self, shared: &Shared, layers: &Layers, lo: u64) -> Result<(), Inconsistent> {
        let key = (layers.tail_first, layers.sealed_last);
        if self.chain_for != Some(key) {
            self.chain.clear();
            self.complete = false;
            self.chain_for = Some(key);
        }
        loop {
            let expected_end = self.chain.last().map_or(layers.tail_first, |r| r.first);
            if expected_end <= lo {
                return Ok(());
            }
            if self.complete {
                return Err(Inconsistent);
            }
            let run = match self.chain.last().map(|newer| (newer.base, newer.prev)) {
                None => self.run_at(shared, layers.sealed_last.ok_or(Inconsistent)?)?,
                Some((newer, Some(base))) if base < newer => self.run_at(shared, base)?,
                Some((_, Some(_))) => return Err(Inconsistent),
                Some((newer, None)) => match self.search_back(shared, newer) {
                    Some(run) => run,
                    None => {
                        self.complete = true;
                        continue;
                    }
                },
            };
            // The newest run may reach into the tail: a segment's index is set before its
            // versions leave the tail, and the tail answers for them until then.
            let end = run.first + run.count;
            let tiles = match self.chain.is_empty() {
                true => run.first <= expected_end && end >= expected_end,
                false => end == expected_end,
            };
            if !tiles || run.count == 0 {
                // Its index (or the newer one's, already in the chain) is wrong.
                self.suspect = Some(run.base);
                return Err(Inconsistent);
            }
            self.chain.push(run);
        }
    }

    /// The stream's run in the segment that holds position `base`.
    /// A segment whose index has no run of the stream is suspect: the link to it may be
    /// wrong, or its index damaged where the stream's entry was.
    fn run_at(&mut self, shared: &Shared, base: u64) -> Result<Run, Inconsistent> {
        let segment = shared.segments().find(base).ok_or(Inconsistent)?;
        // A segment a link names was persisted: without an index, its index was found bad.
        let run = segment.persisted().and_then(|index| self.run_in(segment.base_position(), index));
        if run.is_none() {
            self.suspect = Some(segment.base_position());
        }
        run.ok_or(Inconsistent)
    }

    fn run_in(&self, base: u64, index: Arc<SegmentIndex>) -> Option<Run> {
        let view = index.view()?;
        let events = view.stream(&self.stream)?;
        let (first, count, prev) =
            (events.first_version, u64::from(events.count), events.prev_segment);
        Some(Run { base, index, first, count, prev })
    }

    /// The nearest segment before `base` whose persisted index holds the stream (for an index
    /// rebuilt in memory, which does not know its links).
    fn search_back(&self, shared: &Shared, mut base: u64) -> Option<Run> {
        while let Some(segment) = shared.segments().prev_before(base) {
            base = segment.base_position();
            if let Some(run) = segment.persisted().and_then(|index| self.run_in(base, index)) {
                return Some(run);
            }
        }
        None
    }

    /// Checks in full every index the last walk went through, and rebuilds from its segment
    /// any that fails; forgets the walk.
    pub fn repair(&mut self, shared: &Shared) {
        let rebuild = |segment: Arc<crate::segment::Segment>| {
            if segment.rebuild_index().is_ok() {
                // The file is written anew in the background (a writable store only).
                shared.indexer().send(Job::Sealed(segment));
            }
        };
        for run in self.chain.drain(..) {
            if !run.index.check_body()
                && let Some(segment) = shared.segments().find(run.base)
            {
                rebuild(segment);
            }
        }
        let last = self.chain_for.and_then(|(_, last)| last);
        for base in [last, self.suspect.take()].into_iter().flatten() {
            // One found bad elsewhere (say, by the indexer's fold) is rebuilt here too.
            if let Some(segment) = shared.segments().find(base)
                && segment.persisted().is_none_or(|index| !index.check_body())
            {
                rebuild(segment);
            }
        }
        self.chain_for = None;
        self.complete = false;
    }
}

/// The versions `lo..=hi` a read from `from` must take from the persisted layer (all below
/// `tail_first`), or `None` if it must take none.
fn persisted_range(
    layers: &Layers,
    from: u64,
    floor: u64,
    forward: bool,
    max: usize,
) -> Option<(u64, u64)> {
    let lowest = floor.max(layers.first);
    let max = max as u64;
    if forward {
        let want = from.max(lowest);
        (want < layers.tail_first)
            .then(|| (want, want.saturating_add(max - 1).min(layers.tail_first - 1)))
    } else {
        let top = from.min(layers.next.checked_sub(1)?);
        (top < layers.tail_first && top >= lowest)
            .then(|| ((top + 1).saturating_sub(max).max(lowest), top))
    }
}
