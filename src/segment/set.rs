//! The ordered set of segments that make up the log.

use crate::sync;
use std::sync::{Arc, RwLock};

use super::Segment;

/// All segments, ordered by base position. Readers clone what they need and let go at once.
#[derive(Default)]
pub(crate) struct SegmentSet {
    segments: RwLock<Vec<Arc<Segment>>>,
}

impl SegmentSet {
    /// A set holding `segments`, which must be in log order.
    pub fn new(segments: Vec<Arc<Segment>>) -> SegmentSet {
        debug_assert!(segments.windows(2).all(|w| w[0].base_position() < w[1].base_position()));
        SegmentSet { segments: RwLock::new(segments) }
    }

    /// Adds a new last segment.
    pub fn push(&self, segment: Arc<Segment>) {
        let mut segments = sync::write(&self.segments);
        debug_assert!(segments.last().is_none_or(|s| s.base_position() < segment.base_position()));
        segments.push(segment);
    }

    /// Puts `segment` in place of the `count` segments starting at its base position (a
    /// scavenged rewrite that merged them). Readers holding old ones keep reading them; new
    /// reads get the new one.
    pub fn replace_run(&self, segment: Arc<Segment>, count: usize) {
        let mut segments = sync::write(&self.segments);
        let i = segments.partition_point(|s| s.base_position() < segment.base_position());
        debug_assert_eq!(segments[i].base_position(), segment.base_position());
        debug_assert!(i + count < segments.len(), "the active segment is never replaced");
        segments.splice(i..i + count, [segment]);
    }

    /// The segment that holds `position`: the last one whose base is at or before it.
    pub fn find(&self, position: u64) -> Option<Arc<Segment>> {
        let segments = sync::read(&self.segments);
        let i = segments.partition_point(|s| s.base_position() <= position);
        i.checked_sub(1).map(|i| Arc::clone(&segments[i]))
    }

    /// The segment after the one starting at `base_position`.
    pub fn next_after(&self, base_position: u64) -> Option<Arc<Segment>> {
        let segments = sync::read(&self.segments);
        let i = segments.partition_point(|s| s.base_position() <= base_position);
        segments.get(i).cloned()
    }

    /// The segment before the one starting at `base_position`.
    pub fn prev_before(&self, base_position: u64) -> Option<Arc<Segment>> {
        let segments = sync::read(&self.segments);
        let i = segments.partition_point(|s| s.base_position() < base_position);
        i.checked_sub(1).map(|i| Arc::clone(&segments[i]))
    }

    /// The position the log starts at: the base of the first segment.
    pub fn first_position(&self) -> u64 {
        let segments = sync::read(&self.segments);
        segments.first().map_or(0, |s| s.base_position())
    }

    /// A copy of the list.
    pub fn snapshot(&self) -> Vec<Arc<Segment>> {
        sync::read(&self.segments).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_set_poisoned_by_a_panic_still_answers_reads() {
        // The segment list was read with `.expect("segment set lock")`: a thread that panicked
        // while holding its write guard made every later read of the store panic.
        let set = SegmentSet::default();
        std::thread::scope(|scope| {
            let holder = scope.spawn(|| {
                let _segments = set.segments.write().unwrap();
                panic!("a bug under the lock");
            });
            assert!(holder.join().is_err());
        });
        assert!(set.segments.is_poisoned());
        assert!(set.find(0).is_none());
        assert_eq!(set.first_position(), 0);
        assert!(set.snapshot().is_empty());
    }
}
