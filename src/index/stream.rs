//! The per-stream index: for every stream, the global positions of its events in version order.

use super::hash::NameHash;
use std::{
    collections::HashMap,
    sync::{RwLock, RwLockWriteGuard},
};

/// Stands in the index for a version whose event a salvaging open could not keep.
pub(crate) const MISSING: u64 = u64::MAX;

/// Stream name → positions of its events; the position of version `v` is `positions[v]`.
///
/// Memory: 8 bytes per event (plus the vector's spare capacity) and, per stream, its name, a
/// 16-byte key, a 24-byte vector header and the hash table's slot.
#[derive(Debug, Default)]
pub(crate) struct StreamIndex {
    map: RwLock<HashMap<Box<str>, Vec<u64>, NameHash>>,
}

/// Exclusive access for the writer while it publishes a group.
pub(crate) struct StreamIndexWriter<'a> {
    map: RwLockWriteGuard<'a, HashMap<Box<str>, Vec<u64>, NameHash>>,
}

impl StreamIndex {
    /// The version of the stream's last event, `None` if it has none.
    pub fn last_version(&self, stream: &str) -> Option<u64> {
        let map = self.map.read().expect("stream index lock");
        map.get(stream).and_then(|p| (p.len() as u64).checked_sub(1))
    }

    /// Copies into `out` up to `max` positions of `stream`, starting at version `from` and going
    /// forward or backward. Returns `None` if the stream has no events.
    pub fn chunk(
        &self,
        stream: &str,
        from: u64,
        forward: bool,
        max: usize,
        out: &mut Vec<u64>,
    ) -> Option<()> {
        out.clear();
        let map = self.map.read().expect("stream index lock");
        let positions = map.get(stream)?;
        let len = positions.len() as u64;
        if forward {
            if from < len {
                let end = from.saturating_add(max as u64).min(len);
                out.extend_from_slice(&positions[from as usize..end as usize]);
            }
        } else if len > 0 {
            let top = from.min(len - 1);
            let bottom = (top + 1).saturating_sub(max as u64);
            out.extend(positions[bottom as usize..=top as usize].iter().rev());
        }
        Some(())
    }

    /// Number of streams.
    pub fn stream_count(&self) -> usize {
        self.map.read().expect("stream index lock").len()
    }

    /// Heap bytes held, estimated from capacities.
    pub fn memory_bytes(&self) -> usize {
        let map = self.map.read().expect("stream index lock");
        let slots = map.capacity() * (size_of::<(Box<str>, Vec<u64>)>() + 1);
        let owned: usize = map.iter().map(|(k, v)| k.len() + v.capacity() * 8).sum();
        slots + owned
    }

    /// Gives back the spare capacity recovery's appends left in every stream's positions.
    pub fn shrink(&self) {
        let mut map = self.map.write().expect("stream index lock");
        map.values_mut().for_each(Vec::shrink_to_fit);
        map.shrink_to_fit();
    }

    /// Locks the index for the writer.
    pub fn write(&self) -> StreamIndexWriter<'_> {
        StreamIndexWriter { map: self.map.write().expect("stream index lock") }
    }
}

impl StreamIndexWriter<'_> {
    /// Appends the event with `version` of `stream` at `position`. The version must be the
    /// stream's next one, or (with `allow_holes`, for salvage) any later one: the versions in
    /// between are marked [`MISSING`]. On error, returns the version that was due.
    pub fn push(
        &mut self,
        stream: &str,
        version: u64,
        position: u64,
        allow_holes: bool,
    ) -> Result<(), u64> {
        let positions = match self.map.get_mut(stream) {
            Some(p) => p,
            // Most streams are short: start at one slot rather than `Vec`'s first four.
            None => self.map.entry(stream.into()).or_insert_with(|| Vec::with_capacity(1)),
        };
        let due = positions.len() as u64;
        if version != due && !(allow_holes && version > due) {
            return Err(due);
        }
        positions.resize(version as usize, MISSING);
        positions.push(position);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_go_both_ways_and_clamp() {
        let idx = StreamIndex::default();
        {
            let mut w = idx.write();
            for v in 0..5 {
                w.push("s", v, v * 10, false).unwrap();
            }
            assert_eq!(w.push("s", 9, 90, false), Err(5));
            w.push("h", 2, 7, true).unwrap();
        }
        let mut out = Vec::new();
        idx.chunk("s", 1, true, 2, &mut out).unwrap();
        assert_eq!(out, [10, 20]);
        idx.chunk("s", u64::MAX, false, 2, &mut out).unwrap();
        assert_eq!(out, [40, 30]);
        idx.chunk("s", 1, false, 10, &mut out).unwrap();
        assert_eq!(out, [10, 0]);
        idx.chunk("s", 7, true, 10, &mut out).unwrap();
        assert!(out.is_empty());
        assert!(idx.chunk("missing", 0, true, 10, &mut out).is_none());
        assert_eq!(idx.last_version("s"), Some(4));
        assert_eq!(idx.last_version("missing"), None);
    }
}
