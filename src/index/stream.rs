//! The per-stream index: for every stream, the global positions of its retained events in version
//! order, and the stream's metadata as the latest `$metadata` event of `$$<stream>` set it.

use super::hash::NameHash;
use crate::sync;
use crate::{
    format::{CorruptionKind, Record},
    lifecycle::{METADATA_EVENT_TYPE, MetaRecord, decode_meta, metadata_target},
};
use std::{
    collections::HashMap,
    sync::{RwLock, RwLockWriteGuard},
    time::Duration,
};

/// Stands in the index for a version whose event a salvaging open could not keep.
pub(crate) const MISSING: u64 = u64::MAX;

/// One stream: versions `first..first + positions.len()` are in the log, at these positions.
/// Versions below `first` were removed by scavenging.
#[derive(Debug, Default)]
struct Entry {
    first: u64,
    positions: Vec<u64>,
    /// The latest metadata; `None` while the stream never had any.
    meta: Option<Box<MetaRecord>>,
}

impl Entry {
    /// One past the last version: the version the stream's next event gets.
    fn next_version(&self) -> u64 {
        self.first + self.positions.len() as u64
    }

    /// How many positions lie below `position` and after the stream's last kept event: the
    /// most versions that can be missing between the two. `None` if `position` is not after
    /// the last kept event.
    fn room_before(&self, position: u64) -> Option<u64> {
        match self.positions.last() {
            Some(&last) => position.checked_sub(last)?.checked_sub(1),
            None => Some(position),
        }
    }
}

/// What is known of a stream at one moment: the range of versions in the log and the rules its
/// metadata sets. [`Store::stream_state`](crate::Store::stream_state) returns it; the writer,
/// readers and the es layer decide with it too.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StreamState {
    /// The first version still in the log (those below were removed by scavenging).
    pub first: u64,
    /// The version of the last event ever appended (`None`: never written).
    pub last: Option<u64>,
    /// The metadata's `truncate_before`.
    pub truncate_before: Option<u64>,
    /// The metadata's `max_count`.
    pub max_count: Option<u64>,
    /// The metadata's `max_age`.
    pub max_age: Option<Duration>,
    /// Tombstoned: never to be written again.
    pub tombstoned: bool,
}

impl StreamState {
    /// Takes the rules of a metadata event.
    pub(crate) fn apply(&mut self, record: &MetaRecord) {
        self.truncate_before = record.meta.truncate_before;
        self.max_count = record.meta.max_count;
        self.max_age = record.meta.max_age;
        self.tombstoned = record.tombstone;
    }

    /// The first version stream reads may return by the version rules (`max_age` is applied
    /// per event by the reader).
    pub fn floor(&self) -> u64 {
        let next = self.last.map_or(0, |l| l + 1);
        let by_count = self.max_count.map_or(0, |n| next.saturating_sub(n));
        self.first.max(self.truncate_before.unwrap_or(0)).max(by_count)
    }

    /// Whether the stream has events a read may return (by the version rules).
    pub fn exists(&self) -> bool {
        !self.tombstoned && self.last.is_some_and(|last| self.floor() <= last)
    }
}

/// Stream name → its retained positions and metadata.
///
/// Memory: 8 bytes per retained event (plus the vector's spare capacity) and, per stream, its
/// name, a 16-byte key, a 40-byte entry and the hash table's slot; metadata, where set, on top.
#[derive(Debug, Default)]
pub(crate) struct StreamIndex {
    map: RwLock<HashMap<Box<str>, Entry, NameHash>>,
}

/// Exclusive access for the writer while it publishes a group.
pub(crate) struct StreamIndexWriter<'a> {
    map: RwLockWriteGuard<'a, HashMap<Box<str>, Entry, NameHash>>,
}

impl StreamIndex {
    /// The version of the stream's last event, `None` if it has none.
    pub fn last_version(&self, stream: &str) -> Option<u64> {
        let map = sync::read(&self.map);
        map.get(stream).and_then(|e| e.next_version().checked_sub(1))
    }

    /// The stream's state; a stream the index does not know reads as never written.
    pub fn state(&self, stream: &str) -> StreamState {
        let map = sync::read(&self.map);
        let Some(entry) = map.get(stream) else { return StreamState::default() };
        let mut state = StreamState {
            first: entry.first,
            last: entry.next_version().checked_sub(1),
            ..StreamState::default()
        };
        if let Some(record) = entry.meta.as_deref() {
            state.apply(record);
        }
        state
    }

    /// The stream's metadata, if it ever had any (a tombstone included).
    pub fn metadata(&self, stream: &str) -> Option<MetaRecord> {
        let map = sync::read(&self.map);
        map.get(stream)?.meta.as_deref().cloned()
    }

    /// Copies into `out` up to `max` positions of `stream`, starting at version `from` and going
    /// forward or backward, never below version `floor`. Returns `None` if the stream is unknown.
    pub fn chunk(
        &self,
        stream: &str,
        from: u64,
        floor: u64,
        forward: bool,
        max: usize,
        out: &mut Vec<u64>,
    ) -> Option<()> {
        out.clear();
        let map = sync::read(&self.map);
        let entry = map.get(stream)?;
        let positions = &entry.positions;
        let len = positions.len() as u64;
        // Indexes into `positions`, with the floor and the removed versions below it applied.
        let low = floor.max(entry.first) - entry.first;
        if forward {
            let start = from.saturating_sub(entry.first).max(low);
            if start < len {
                let end = start.saturating_add(max as u64).min(len);
                out.extend_from_slice(&positions[start as usize..end as usize]);
            }
        } else if from >= entry.first && len > low {
            let top = (from - entry.first).min(len - 1);
            if top >= low {
                let bottom = (top + 1).saturating_sub(max as u64).max(low);
                out.extend(positions[bottom as usize..=top as usize].iter().rev());
            }
        }
        Some(())
    }

    /// Streams in the index: streams with events, metadata streams, and streams with metadata.
    pub fn stream_count(&self) -> usize {
        sync::read(&self.map).len()
    }

    /// Every stream's name, for scavenging to plan with.
    pub fn names(&self) -> Vec<Box<str>> {
        sync::read(&self.map).keys().cloned().collect()
    }

    /// Heap bytes held, estimated from capacities.
    pub fn memory_bytes(&self) -> usize {
        let map = sync::read(&self.map);
        let slots = map.capacity() * (size_of::<(Box<str>, Entry)>() + 1);
        let owned: usize = map
            .iter()
            .map(|(k, e)| k.len() + e.positions.capacity() * 8 + meta_bytes(e.meta.as_deref()))
            .sum();
        slots + owned
    }

    /// Gives back the spare capacity recovery's appends left in every stream's positions.
    pub fn shrink(&self) {
        let mut map = sync::write(&self.map);
        map.values_mut().for_each(|e| e.positions.shrink_to_fit());
        map.shrink_to_fit();
    }

    /// Forgets the positions of `stream`'s versions below `keep_from`, which scavenging has
    /// removed from the log. The stream's next version does not change.
    pub fn trim(&self, stream: &str, keep_from: u64) {
        let mut map = sync::write(&self.map);
        if let Some(entry) = map.get_mut(stream) {
            let cut = keep_from.saturating_sub(entry.first).min(entry.positions.len() as u64);
            entry.positions.drain(..cut as usize);
            entry.first += cut;
            if entry.positions.capacity() > 2 * entry.positions.len() + 4 {
                entry.positions.shrink_to_fit();
            }
        }
    }

    /// Locks the index for the writer.
    pub fn write(&self) -> StreamIndexWriter<'_> {
        StreamIndexWriter { map: sync::write(&self.map) }
    }
}

fn meta_bytes(meta: Option<&MetaRecord>) -> usize {
    meta.map_or(0, |m| {
        let custom: usize = m.meta.custom.iter().map(|(k, v)| k.len() + v.len() + 64).sum();
        size_of::<MetaRecord>() + custom
    })
}

/// How strictly [`StreamIndexWriter::index_record`] checks a version against its stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Continuity {
    /// The stream's next version, exactly.
    Dense,
    /// The next version, or any later one for a stream's first retained event (its earlier
    /// versions were removed by scavenging).
    AfterScavenge,
    /// Any later version; those in between are marked [`MISSING`] (salvage).
    Holes,
    /// As [`Continuity::Holes`], once a scavenged segment has been read: a stream's first
    /// retained event may then have any version, and the versions below it were removed, not
    /// lost, so they take no slot (a salvage of a long-lived scavenged store would otherwise
    /// allocate one per removed version).
    HolesAfterScavenge,
}

impl StreamIndexWriter<'_> {
    /// Puts one record into the index: its position into its stream's, and for a `$metadata`
    /// event of a metadata stream, its metadata into the target stream's entry. Its version is
    /// checked for its place in its stream as `continuity` says. This is the one way records
    /// enter the index, both on open (recovery) and when the writer publishes a group.
    /// An error says what is wrong with the record: recovery takes it for corruption, the
    /// writer (whose own records these are) for a bug.
    pub fn index_record(
        &mut self,
        record: Record<'_>,
        continuity: Continuity,
    ) -> Result<(), CorruptionKind> {
        let stream = record.check_stream()?;
        let (version, position) = (record.version(), record.position());
        self.push(stream, version, position, continuity)
            .map_err(|expected| CorruptionKind::VersionMismatch { expected, found: version })?;
        if let Some(target) = metadata_target(stream)
            && record.event_type() == METADATA_EVENT_TYPE
        {
            let meta = decode_meta(record.data()).ok_or(CorruptionKind::BadMetadata)?;
            self.set_metadata(target, meta);
        }
        Ok(())
    }

    /// Appends the event with `version` of `stream` at `position`, checked as `continuity`
    /// says. On error, returns the version that was due.
    ///
    /// In every mode a version must be plausible: each earlier version of the stream took a
    /// position of its own below this one, so a version never exceeds its position, and the
    /// versions a salvage marks missing must fit between the stream's last kept event and this
    /// one. A record that merely passes its checksum can claim anything; without these checks a
    /// version far ahead would make [`Continuity::Holes`] allocate a slot per missing version.
    fn push(
        &mut self,
        stream: &str,
        version: u64,
        position: u64,
        continuity: Continuity,
    ) -> Result<(), u64> {
        let entry = match self.map.get_mut(stream) {
            Some(e) => e,
            // Most streams are short: start at one slot rather than `Vec`'s first four.
            None => self
                .map
                .entry(stream.into())
                .or_insert_with(|| Entry { positions: Vec::with_capacity(1), ..Entry::default() }),
        };
        let due = entry.next_version();
        let ok = match continuity {
            Continuity::Dense => version == due,
            Continuity::AfterScavenge => {
                version == due || (version > due && entry.positions.is_empty())
            }
            Continuity::Holes | Continuity::HolesAfterScavenge => {
                version >= due && version - due <= entry.room_before(position).unwrap_or(0)
            }
        };
        if !ok || version > position {
            return Err(due);
        }
        let starts_late =
            matches!(continuity, Continuity::AfterScavenge | Continuity::HolesAfterScavenge);
        if entry.positions.is_empty() && starts_late {
            entry.first = version;
        }
        let at = (version - entry.first) as usize;
        entry.positions.resize(at, MISSING);
        entry.positions.push(position);
        Ok(())
    }

    /// Sets `stream`'s metadata (from a `$metadata` event of its metadata stream).
    fn set_metadata(&mut self, stream: &str, record: MetaRecord) {
        let entry = match self.map.get_mut(stream) {
            Some(e) => e,
            None => self.map.entry(stream.into()).or_default(),
        };
        entry.meta = Some(Box::new(record));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::StreamMetadata;

    #[test]
    fn chunks_go_both_ways_and_clamp() {
        let idx = StreamIndex::default();
        {
            let mut w = idx.write();
            for v in 0..5 {
                w.push("s", v, v * 10, Continuity::Dense).unwrap();
            }
            assert_eq!(w.push("s", 9, 90, Continuity::Dense), Err(5));
            w.push("h", 2, 7, Continuity::Holes).unwrap();
        }
        let mut out = Vec::new();
        idx.chunk("s", 1, 0, true, 2, &mut out).unwrap();
        assert_eq!(out, [10, 20]);
        idx.chunk("s", u64::MAX, 0, false, 2, &mut out).unwrap();
        assert_eq!(out, [40, 30]);
        idx.chunk("s", 1, 0, false, 10, &mut out).unwrap();
        assert_eq!(out, [10, 0]);
        idx.chunk("s", 7, 0, true, 10, &mut out).unwrap();
        assert!(out.is_empty());
        assert!(idx.chunk("missing", 0, 0, true, 10, &mut out).is_none());
        assert_eq!(idx.last_version("s"), Some(4));
        assert_eq!(idx.last_version("missing"), None);
    }

    #[test]
    fn floor_and_trim_hide_and_forget_old_versions() {
        let idx = StreamIndex::default();
        {
            let mut w = idx.write();
            for v in 0..6 {
                w.push("s", v, 100 + v, Continuity::Dense).unwrap();
            }
        }
        let mut out = Vec::new();
        idx.chunk("s", 0, 3, true, 10, &mut out).unwrap();
        assert_eq!(out, [103, 104, 105]);
        idx.chunk("s", 4, 3, false, 10, &mut out).unwrap();
        assert_eq!(out, [104, 103]);
        idx.chunk("s", 2, 3, false, 10, &mut out).unwrap();
        assert!(out.is_empty());
        idx.trim("s", 4);
        assert_eq!(idx.last_version("s"), Some(5), "trimming keeps the numbering");
        idx.chunk("s", 0, 0, true, 10, &mut out).unwrap();
        assert_eq!(out, [104, 105]);
        idx.trim("s", 10);
        assert_eq!(idx.last_version("s"), Some(5));
        idx.write().push("s", 6, 200, Continuity::Dense).unwrap();
        idx.chunk("s", 0, 0, true, 10, &mut out).unwrap();
        assert_eq!(out, [200]);
    }

    #[test]
    fn a_stream_may_start_late_only_after_scavenging() {
        let idx = StreamIndex::default();
        let mut w = idx.write();
        assert_eq!(w.push("a", 3, 10, Continuity::Dense), Err(0));
        w.push("a", 3, 10, Continuity::AfterScavenge).unwrap();
        assert_eq!(w.push("a", 5, 11, Continuity::AfterScavenge), Err(4));
        w.push("a", 4, 11, Continuity::AfterScavenge).unwrap();
        drop(w);
        assert_eq!(idx.last_version("a"), Some(4));
        let mut out = Vec::new();
        idx.chunk("a", 0, 0, true, 10, &mut out).unwrap();
        assert_eq!(out, [10, 11]);
    }

    #[test]
    fn push_version_beyond_what_positions_allow_is_refused() {
        // A salvaging open once took any later version of a stream and marked every version in
        // between missing, one slot each: a record that merely passed its checksum, with a
        // version of 10^12, made it try to allocate 8 TB. A version can only be as far ahead
        // as there were positions for the versions in between.
        let idx = StreamIndex::default();
        let mut w = idx.write();
        w.push("s", 0, 100, Continuity::Holes).unwrap();
        assert_eq!(w.push("s", 1_000_000, 200, Continuity::Holes), Err(1));
        assert_eq!(w.push("s", 101, 200, Continuity::Holes), Err(1), "100 missing, 99 between");
        w.push("s", 100, 200, Continuity::Holes).unwrap();
        assert_eq!(w.push("s", 102, 200, Continuity::Holes), Err(101), "position not after");
        assert_eq!(w.push("t", 301, 300, Continuity::Holes), Err(0));
        w.push("t", 300, 300, Continuity::Holes).unwrap();
        // The first retained event after scavenging and even the dense writer's check hold it.
        assert_eq!(w.push("u", u64::MAX, 5, Continuity::AfterScavenge), Err(0));
        assert_eq!(w.push("v", 0, 0, Continuity::Dense), Ok(()));
        drop(w);
        assert_eq!(idx.last_version("s"), Some(100));
        assert_eq!(idx.last_version("u"), None);
    }

    #[test]
    fn floor_takes_the_strictest_rule() {
        let at = |first, last, truncate_before, max_count| {
            StreamState {
                first,
                last: Some(last),
                truncate_before,
                max_count,
                ..Default::default()
            }
            .floor()
        };
        assert_eq!(at(0, 9, None, None), 0);
        assert_eq!(at(4, 9, None, None), 4, "versions already removed stay below the floor");
        assert_eq!(at(0, 9, None, Some(3)), 7);
        assert_eq!(at(0, 1, None, Some(3)), 0);
        assert_eq!(at(0, 9, Some(8), Some(3)), 8);
        assert_eq!(at(0, 9, Some(10), None), 10, "a soft delete hides every event");
        assert!(!StreamState { truncate_before: Some(10), ..Default::default() }.exists());
    }

    #[test]
    fn state_applies_metadata() {
        let idx = StreamIndex::default();
        let mut w = idx.write();
        for v in 0..4 {
            w.push("s", v, v, Continuity::Dense).unwrap();
        }
        let meta = StreamMetadata { truncate_before: Some(4), ..StreamMetadata::default() };
        w.set_metadata("s", MetaRecord { meta, tombstone: false });
        w.set_metadata("t", MetaRecord { meta: StreamMetadata::default(), tombstone: true });
        drop(w);
        let s = idx.state("s");
        assert_eq!((s.last, s.floor(), s.exists()), (Some(3), 4, false));
        assert!(idx.state("t").tombstoned);
        assert!(!idx.state("u").exists());
    }

    #[test]
    fn stream_index_poisoned_by_a_writer_panic_still_answers_reads() {
        // Every read of the stream index once went through `.expect("stream index lock")`: a
        // writer that panicked while publishing (holding the write guard) poisoned the lock, so
        // every later read panicked too, although what was published stayed intact.
        let idx = StreamIndex::default();
        idx.write().push("s", 0, 0, Continuity::Dense).unwrap();
        std::thread::scope(|scope| {
            let writer = scope.spawn(|| {
                let mut w = idx.write();
                w.push("s", 1, 1, Continuity::Dense).unwrap();
                panic!("a bug while publishing");
            });
            assert!(writer.join().is_err());
        });
        assert!(idx.map.is_poisoned());
        // What the writer pushed before it died stays: its records were durable and in their
        // segment (published first), but the head had not moved past them yet.
        assert_eq!(idx.last_version("s"), Some(1));
        let mut out = Vec::new();
        idx.chunk("s", 0, 0, true, 10, &mut out).unwrap();
        assert_eq!(out, [0, 1]);
        assert_eq!(idx.stream_count(), 1);
        idx.write().push("s", 2, 2, Continuity::Dense).unwrap();
        assert_eq!(idx.state("s").last, Some(2));
    }
}
