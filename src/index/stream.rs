//! The per-stream index: for every stream, its range of versions, where the positions of its
//! retained events are (in memory for segments whose index is not persisted yet, else in the
//! persisted segment indexes, which `read::positions` walks), and the stream's metadata as the
//! latest `$metadata` event of `$$<stream>` set it.

use super::hash::NameHash;
use crate::sync;
use crate::{
    format::{CorruptionKind, Record, StreamTable, TableEntry},
    io::ReadView,
    lifecycle::{METADATA_EVENT_TYPE, MetaRecord, decode_meta, metadata_target},
};
use std::{
    collections::HashMap,
    sync::{Arc, RwLock, RwLockWriteGuard},
    time::Duration,
};

/// Stands in the index for a version whose event a salvaging open could not keep.
pub(crate) const MISSING: u64 = u64::MAX;

/// The base positions of segments are `u64`; this stands for "no segment".
const NO_SEGMENT: u64 = u64::MAX;

/// One stream, in two layers: versions `first..tail_first()` are in sealed segments whose
/// persisted index holds them (walked back from `sealed_last`), versions `tail_first()..next`
/// are in `tail`, in memory, until their segment's index is persisted. Versions below `first`
/// were removed by scavenging.
#[derive(Debug)]
struct Entry {
    first: u64,
    /// One past the last version: the version the stream's next event gets.
    next: u64,
    /// Base position of the last segment whose persisted index holds events of the stream;
    /// [`NO_SEGMENT`] if none does.
    sealed_last: u64,
    /// Positions of versions `next - tail.len()..next`.
    tail: Vec<u64>,
    /// The latest metadata; `None` while the stream never had any.
    meta: Option<Box<MetaRecord>>,
    /// The position of the last record that changed the entry (an event of the stream, or a
    /// `$metadata` event setting its metadata); `u64::MAX` for a change the log does not
    /// place (a scavenge's trim). The entry may leave memory once a stream table covers it.
    changed_at: u64,
}

impl Default for Entry {
    fn default() -> Entry {
        let (tail, meta) = (Vec::new(), None);
        Entry { first: 0, next: 0, sealed_last: NO_SEGMENT, tail, meta, changed_at: 0 }
    }
}

impl Entry {
    /// The entry a stream table holds for a stream.
    fn from_table(entry: &TableEntry<'_>) -> Entry {
        Entry {
            first: entry.first,
            next: entry.next,
            sealed_last: entry.last_segment.unwrap_or(NO_SEGMENT),
            tail: Vec::new(),
            meta: entry.meta.and_then(decode_meta).map(Box::new),
            changed_at: 0,
        }
    }

    /// What a read needs of it.
    fn layers(&self) -> Layers {
        Layers {
            first: self.first,
            next: self.next,
            tail_first: self.tail_first(),
            sealed_last: (self.sealed_last != NO_SEGMENT).then_some(self.sealed_last),
        }
    }

    /// Its state, with the rules of its metadata.
    fn state(&self) -> StreamState {
        let mut state = StreamState {
            first: self.first,
            last: self.next.checked_sub(1),
            ..StreamState::default()
        };
        if let Some(record) = self.meta.as_deref() {
            state.apply(record);
        }
        state
    }

    /// The first version held in memory.
    fn tail_first(&self) -> u64 {
        self.next - self.tail.len() as u64
    }

    /// Whether no retained event of the stream is indexed yet (only metadata, if anything).
    fn has_no_events(&self) -> bool {
        self.tail.is_empty() && self.sealed_last == NO_SEGMENT
    }

    /// How many positions lie below `position` and after the stream's last kept event: the
    /// most versions that can be missing between the two. `None` if `position` is not after
    /// the last kept event.
    fn room_before(&self, position: u64) -> Option<u64> {
        match self.tail.iter().rev().find(|&&p| p != MISSING) {
            Some(&last) => position.checked_sub(last)?.checked_sub(1),
            None => Some(position),
        }
    }
}

/// Where a stream's versions are, as [`StreamIndex::chunk`] found them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Layers {
    /// The first version still in the log.
    pub first: u64,
    /// One past the last version.
    pub next: u64,
    /// Versions from here on are in memory; those below are in persisted segment indexes.
    pub tail_first: u64,
    /// The last segment whose persisted index holds events of the stream.
    pub sealed_last: Option<u64>,
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

/// Stream name → its versions, where their positions are, and its metadata.
///
/// Memory: per stream its name, a 16-byte key, a 64-byte entry and the hash table's slot;
/// 8 bytes per event of a segment whose index is not persisted yet (the active one); metadata,
/// where set, on top. Events of segments with a persisted index cost nothing here.
///
/// Two places hold streams: the persisted stream table (mapped, so it costs no heap), which
/// says what every stream was at the end of the last persisted segment, and `map`, which holds
/// the streams changed since (with the positions of their events in segments not persisted
/// yet). A stream is looked up in `map` first, then in the table; a change to a stream that is
/// only in the table brings it into `map`. Once a newer table covers every change of an entry
/// and its tail is empty, the entry leaves `map`. So the heap holds the streams written since
/// the last segment was sealed, not every stream of the log.
#[derive(Default)]
pub(crate) struct StreamIndex {
    map: RwLock<HashMap<Box<str>, Entry, NameHash>>,
    table: RwLock<Option<Arc<dyn ReadView>>>,
}

impl std::fmt::Debug for StreamIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamIndex").field("in_memory", &self.memory_count()).finish()
    }
}

/// Exclusive access for the writer while it publishes a group, and for recovery.
pub(crate) struct StreamIndexWriter<'a> {
    map: RwLockWriteGuard<'a, HashMap<Box<str>, Entry, NameHash>>,
    table: Option<Arc<dyn ReadView>>,
}

/// Looks `stream` up in a stream table's bytes.
fn table_entry(table: Option<&Arc<dyn ReadView>>, stream: &str) -> Option<Entry> {
    let table = StreamTable::parse_header(table?.bytes()).ok()?;
    table.get(stream).map(|e| Entry::from_table(&e))
}

impl StreamIndex {
    /// Calls `f` with the stream's entry, from memory or from the table; `None` if neither
    /// knows the stream.
    fn with_entry<R>(&self, stream: &str, f: impl FnOnce(&Entry) -> R) -> Option<R> {
        {
            let map = sync::read(&self.map);
            if let Some(entry) = map.get(stream) {
                return Some(f(entry));
            }
        }
        let table = sync::read(&self.table).clone();
        table_entry(table.as_ref(), stream).map(|entry| f(&entry))
    }

    /// The version of the stream's last event, `None` if it has none.
    pub fn last_version(&self, stream: &str) -> Option<u64> {
        self.with_entry(stream, |e| e.next.checked_sub(1)).flatten()
    }

    /// The stream's state; a stream the index does not know reads as never written.
    pub fn state(&self, stream: &str) -> StreamState {
        self.with_entry(stream, Entry::state).unwrap_or_default()
    }

    /// The stream's metadata, if it ever had any (a tombstone included).
    pub fn metadata(&self, stream: &str) -> Option<MetaRecord> {
        self.with_entry(stream, |e| e.meta.as_deref().cloned()).flatten()
    }

    /// Takes `table` as the stream table behind the streams in memory: every stream not in
    /// memory must be as it says. Entries whose every change it covers (all changes below
    /// `covered`) and whose positions are all persisted leave memory.
    ///
    /// A table that covers less of the log than the one in use is refused (`false`): streams
    /// that left memory under the newer one would read as they were before.
    pub fn set_table(&self, table: Arc<dyn ReadView>, covered: u64) -> bool {
        {
            let mut current = sync::write(&self.table);
            let covers = |t: &Arc<dyn ReadView>| {
                StreamTable::parse_header(t.bytes()).map_or(0, |t| t.binding().covered)
            };
            if current.as_ref().is_some_and(|t| covers(t) > covered) {
                return false;
            }
            *current = Some(table);
        }
        let mut map = sync::write(&self.map);
        map.retain(|_, e| !(e.tail.is_empty() && e.changed_at < covered));
        if map.capacity() > 2 * map.len() + 64 {
            map.shrink_to_fit();
        }
        true
    }

    /// Streams held in memory (changed since the stream table).
    pub fn memory_count(&self) -> usize {
        sync::read(&self.map).len()
    }

    /// Copies into `out` up to `max` positions of `stream` held in memory (versions from
    /// [`Layers::tail_first`] on), starting at version `from` and going forward or backward,
    /// never below version `floor`; and says where the stream's other versions are. Returns
    /// `None` if the stream is unknown.
    pub fn chunk(
        &self,
        stream: &str,
        from: u64,
        floor: u64,
        forward: bool,
        max: usize,
        out: &mut Vec<u64>,
    ) -> Option<Layers> {
        out.clear();
        let map = sync::read(&self.map);
        let Some(entry) = map.get(stream) else {
            drop(map);
            // Only in the table: every event is in a persisted segment.
            return self.with_entry(stream, Entry::layers);
        };
        let layers = entry.layers();
        let tail_first = layers.tail_first;
        let tail = &entry.tail;
        let len = tail.len() as u64;
        // The lowest version a read may return; below `tail_first` the tail has nothing.
        let lowest = floor.max(entry.first);
        // Indexes into `tail`, with the floor and the removed versions below it applied.
        let low = lowest.max(tail_first) - tail_first;
        if forward {
            // A read that starts below the tail reads the persisted layer first.
            let want = from.max(lowest);
            if want >= tail_first && want - tail_first < len {
                let start = want - tail_first;
                let end = start.saturating_add(max as u64).min(len);
                out.extend_from_slice(&tail[start as usize..end as usize]);
            }
        } else if from >= tail_first && len > low {
            let top = (from - tail_first).min(len - 1);
            if top >= low {
                let bottom = (top + 1).saturating_sub(max as u64).max(low);
                out.extend(tail[bottom as usize..=top as usize].iter().rev());
            }
        }
        Some(layers)
    }

    /// Streams in the index: streams with events, metadata streams, and streams with metadata.
    pub fn stream_count(&self) -> usize {
        let table = sync::read(&self.table).clone();
        let table = table.as_ref().and_then(|t| StreamTable::parse_header(t.bytes()).ok());
        let map = sync::read(&self.map);
        let Some(table) = table else { return map.len() };
        let new = map.keys().filter(|name| table.get(name).is_none()).count();
        table.len() as usize + new
    }

    /// Every stream's name, for scavenging to plan with.
    pub fn names(&self) -> Vec<Box<str>> {
        let table = sync::read(&self.table).clone();
        let table = table.as_ref().and_then(|t| StreamTable::parse_header(t.bytes()).ok());
        let map = sync::read(&self.map);
        let mut names: Vec<Box<str>> = map.keys().cloned().collect();
        if let Some(table) = table {
            names.extend(table.iter().filter(|e| !map.contains_key(e.name)).map(|e| e.name.into()));
        }
        names
    }

    /// Heap bytes held, estimated from capacities.
    pub fn memory_bytes(&self) -> usize {
        let map = sync::read(&self.map);
        let slots = map.capacity() * (size_of::<(Box<str>, Entry)>() + 1);
        let owned: usize = map
            .iter()
            .map(|(k, e)| k.len() + e.tail.capacity() * 8 + meta_bytes(e.meta.as_deref()))
            .sum();
        slots + owned
    }

    /// Gives back the spare capacity recovery's appends left in every stream's positions.
    pub fn shrink(&self) {
        let mut map = sync::write(&self.map);
        map.values_mut().for_each(|e| e.tail.shrink_to_fit());
        map.shrink_to_fit();
    }

    /// Forgets the positions of `stream`'s versions below `keep_from`, which scavenging has
    /// removed from the log. The stream's next version does not change.
    pub fn trim(&self, stream: &str, keep_from: u64) {
        let mut map = sync::write(&self.map);
        if !map.contains_key(stream) {
            let table = sync::read(&self.table).clone();
            let Some(entry) = table_entry(table.as_ref(), stream) else { return };
            map.insert(stream.into(), entry);
        }
        if let Some(entry) = map.get_mut(stream) {
            // A change the log does not place: it stays in memory until the table is folded
            // anew from the rewritten segments.
            entry.changed_at = u64::MAX;
            let keep_from = keep_from.min(entry.next);
            let cut = keep_from.saturating_sub(entry.tail_first()).min(entry.tail.len() as u64);
            entry.tail.drain(..cut as usize);
            entry.first = entry.first.max(keep_from);
            if entry.tail.capacity() > 2 * entry.tail.len() + 4 {
                entry.tail.shrink_to_fit();
            }
        }
    }

    /// Moves the versions that a newly persisted segment index holds out of memory: for each
    /// stream of the segment at `base` (its name, and the versions `first..first + count` it
    /// holds there), the segment becomes the stream's last persisted one and those versions
    /// leave the tail. Segments are persisted in log order, so they are always the oldest
    /// versions of the tail.
    pub fn persisted<'a>(&self, base: u64, runs: impl Iterator<Item = (&'a str, u64, u64)>) {
        let mut map = sync::write(&self.map);
        for (stream, first, count) in runs {
            let Some(entry) = map.get_mut(stream) else { continue };
            let end = first + count;
            let cut = end.saturating_sub(entry.tail_first()).min(entry.tail.len() as u64);
            entry.tail.drain(..cut as usize);
            if entry.tail.capacity() > 2 * entry.tail.len() + 4 {
                entry.tail.shrink_to_fit();
            }
            if entry.sealed_last == NO_SEGMENT || entry.sealed_last < base {
                entry.sealed_last = base;
            }
        }
    }

    /// The last segment whose persisted index holds events of `stream`.
    pub fn sealed_last(&self, stream: &str) -> Option<u64> {
        self.with_entry(stream, |e| e.sealed_last).filter(|&b| b != NO_SEGMENT)
    }

    /// Locks the index for the writer.
    pub fn write(&self) -> StreamIndexWriter<'_> {
        let map = sync::write(&self.map);
        StreamIndexWriter { map, table: sync::read(&self.table).clone() }
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
            self.set_metadata(target, meta, position);
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
        let entry = self.entry(stream);
        let due = entry.next;
        let ok = match continuity {
            Continuity::Dense => version == due,
            Continuity::AfterScavenge => version == due || (version > due && entry.has_no_events()),
            Continuity::Holes | Continuity::HolesAfterScavenge => {
                version >= due && version - due <= entry.room_before(position).unwrap_or(0)
            }
        };
        if !ok || version > position {
            return Err(due);
        }
        let starts_late =
            matches!(continuity, Continuity::AfterScavenge | Continuity::HolesAfterScavenge);
        if entry.has_no_events() && starts_late {
            entry.first = version;
            entry.next = version;
        }
        // Versions a salvage could not keep, between the last kept one and this one.
        let missing = (version - entry.next) as usize;
        entry.tail.extend(std::iter::repeat_n(MISSING, missing));
        entry.tail.push(position);
        entry.next = version + 1;
        entry.changed_at = position;
        Ok(())
    }

    /// The stream's entry in memory, brought in from the table (or made) if it is not there.
    fn entry(&mut self, stream: &str) -> &mut Entry {
        if !self.map.contains_key(stream) {
            let entry = table_entry(self.table.as_ref(), stream).unwrap_or_default();
            self.map.insert(stream.into(), entry);
        }
        self.map.get_mut(stream).expect("just inserted")
    }

    /// Sets `stream`'s metadata (from a `$metadata` event of its metadata stream).
    fn set_metadata(&mut self, stream: &str, record: MetaRecord, position: u64) {
        let entry = self.entry(stream);
        entry.meta = Some(Box::new(record));
        entry.changed_at = entry.changed_at.max(position);
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
        w.set_metadata("s", MetaRecord { meta, tombstone: false }, 5);
        w.set_metadata("t", MetaRecord { meta: StreamMetadata::default(), tombstone: true }, 6);
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
