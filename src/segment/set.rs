//! The ordered set of segments that make up the log.

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
        let mut segments = self.segments.write().expect("segment set lock");
        debug_assert!(segments.last().is_none_or(|s| s.base_position() < segment.base_position()));
        segments.push(segment);
    }

    /// Puts `segment` in place of the `count` segments starting at its base position (a
    /// scavenged rewrite that merged them). Readers holding old ones keep reading them; new
    /// reads get the new one.
    pub fn replace_run(&self, segment: Arc<Segment>, count: usize) {
        let mut segments = self.segments.write().expect("segment set lock");
        let i = segments.partition_point(|s| s.base_position() < segment.base_position());
        debug_assert_eq!(segments[i].base_position(), segment.base_position());
        debug_assert!(i + count < segments.len(), "the active segment is never replaced");
        segments.splice(i..i + count, [segment]);
    }

    /// The segment that holds `position`: the last one whose base is at or before it.
    pub fn find(&self, position: u64) -> Option<Arc<Segment>> {
        let segments = self.segments.read().expect("segment set lock");
        let i = segments.partition_point(|s| s.base_position() <= position);
        i.checked_sub(1).map(|i| Arc::clone(&segments[i]))
    }

    /// The segment after the one starting at `base_position`.
    pub fn next_after(&self, base_position: u64) -> Option<Arc<Segment>> {
        let segments = self.segments.read().expect("segment set lock");
        let i = segments.partition_point(|s| s.base_position() <= base_position);
        segments.get(i).cloned()
    }

    /// The segment before the one starting at `base_position`.
    pub fn prev_before(&self, base_position: u64) -> Option<Arc<Segment>> {
        let segments = self.segments.read().expect("segment set lock");
        let i = segments.partition_point(|s| s.base_position() < base_position);
        i.checked_sub(1).map(|i| Arc::clone(&segments[i]))
    }

    /// The position the log starts at: the base of the first segment.
    pub fn first_position(&self) -> u64 {
        let segments = self.segments.read().expect("segment set lock");
        segments.first().map_or(0, |s| s.base_position())
    }

    /// A copy of the list.
    pub fn snapshot(&self) -> Vec<Arc<Segment>> {
        self.segments.read().expect("segment set lock").clone()
    }
}
