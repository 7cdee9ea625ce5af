//! Iterator over one stream's events, in version order either way, as its metadata leaves them
//! visible.

use std::sync::Arc;

use crate::{
    error::{Error, Result},
    format::CorruptionKind,
    index::{MISSING, StreamState},
    lifecycle::StreamMetadata,
    shared::Shared,
};

use super::{Locator, RecordedEvent, positions::StreamPositions};

/// How many positions a stream read copies out of the index at a time.
const CHUNK: usize = 256;

/// Events of one stream, forward or backward from a version.
pub struct ReadStream {
    locator: Locator,
    stream: Arc<str>,
    forward: bool,
    /// The version the next event must have; `None` once the read has run out.
    next_version: Option<u64>,
    /// The first version the stream's metadata leaves visible.
    floor: u64,
    /// Events committed before this time (µs since the epoch) are hidden (`max_age`).
    age_cutoff_us: Option<u64>,
    remaining: usize,
    positions: StreamPositions,
    chunk: Vec<u64>,
    chunk_at: usize,
    /// How many more times a position whose record does not match may send the read back to
    /// repair the persisted indexes it came from.
    repairs_left: usize,
}

/// Repairs one read may ask for: the first rebuilds every bad index its positions came from.
const READ_REPAIRS: usize = 2;

impl ReadStream {
    /// A read of `stream` from version `from`. Fails with [`Error::StreamDeleted`] for a
    /// tombstoned stream and [`Error::StreamNotFound`] for one without visible events.
    pub(crate) fn new(
        shared: Arc<Shared>,
        stream: &str,
        from: u64,
        forward: bool,
        limit: usize,
    ) -> Result<ReadStream> {
        let state = shared.streams().state(stream);
        let last = visible_last(stream, &state)?;
        let floor = state.floor();
        let now_us = shared.options().clock.now_us();
        let next_version = if forward { from.max(floor) } else { from.min(last) };
        Ok(ReadStream {
            locator: Locator::new(shared),
            stream: Arc::from(stream),
            forward,
            next_version: (next_version >= floor).then_some(next_version),
            floor,
            age_cutoff_us: StreamMetadata::age_cutoff_us(state.max_age, now_us),
            remaining: limit,
            positions: StreamPositions::new(stream),
            chunk: Vec::new(),
            chunk_at: 0,
            repairs_left: READ_REPAIRS,
        })
    }

    /// The next position to read, refilling the chunk from the index when it runs out.
    fn next_position(&mut self, version: u64) -> Result<Option<u64>> {
        if self.chunk_at == self.chunk.len() {
            let max = self.remaining.min(CHUNK);
            let ask = (version, self.floor, self.forward, max);
            let shared = Arc::clone(self.locator.shared());
            if !self.positions.fill(&shared, ask, &mut self.chunk)? {
                return Ok(None);
            }
            self.chunk_at = 0;
        }
        let Some(&position) = self.chunk.get(self.chunk_at) else { return Ok(None) };
        self.chunk_at += 1;
        Ok(Some(position))
    }

    fn step(&self, version: u64) -> Option<u64> {
        if self.forward { version.checked_add(1) } else { version.checked_sub(1) }
    }

    /// The event at `position`, which the index gave for `version`. `Ok(None)` if scavenging
    /// removed it meanwhile: possible only for a version that its metadata hides by now.
    fn read_at(&mut self, version: u64, position: u64) -> Result<Option<RecordedEvent>> {
        let mismatch = || Error::Corruption {
            segment: String::from("(stream index)"),
            offset: position,
            kind: CorruptionKind::IndexMismatch,
        };
        match self.locator.read(position)? {
            // Bytes, not `stream()`: the name needs no UTF-8 check to be compared.
            Some(e)
                if e.record().stream_bytes() == self.stream.as_bytes()
                    && e.version().get() == version =>
            {
                Ok(Some(e))
            }
            None if self.locator.shared().streams().state(&self.stream).floor() > version => {
                Ok(None)
            }
            _ => Err(mismatch()),
        }
    }
}

/// The last version a read of `stream` may return.
fn visible_last(stream: &str, state: &StreamState) -> Result<u64> {
    if state.tombstoned {
        return Err(Error::StreamDeleted { stream: stream.to_owned() });
    }
    match state.last {
        Some(last) if state.exists() => Ok(last),
        _ => Err(Error::StreamNotFound { stream: stream.to_owned() }),
    }
}

impl Iterator for ReadStream {
    type Item = Result<RecordedEvent>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let version = self.next_version.filter(|_| self.remaining > 0)?;
            let position = match self.next_position(version) {
                Ok(Some(position)) => position,
                Ok(None) => {
                    self.next_version = None;
                    return None;
                }
                Err(e) => {
                    self.next_version = None;
                    return Some(Err(e));
                }
            };
            self.next_version = self.step(version);
            if position == MISSING {
                // A version a salvaging open could not keep: step over it.
                continue;
            }
            let event = match self.read_at(version, position) {
                Ok(Some(event)) => event,
                Ok(None) => {
                    // Removed by a scavenge that ran after this read began: the rest of the
                    // stream below the new floor is gone too.
                    self.chunk.clear();
                    self.chunk_at = 0;
                    self.floor = self.locator.shared().streams().state(&self.stream).floor();
                    self.next_version =
                        self.next_version.filter(|&v| self.forward || v >= self.floor);
                    continue;
                }
                Err(_) if self.repairs_left > 0 => {
                    // A persisted index gave a position that is not this version's: check the
                    // indexes the positions came from, rebuild the bad ones, and ask again.
                    self.repairs_left -= 1;
                    self.positions.repair(self.locator.shared());
                    self.chunk.clear();
                    self.chunk_at = 0;
                    self.next_version = Some(version);
                    continue;
                }
                Err(e) => {
                    self.next_version = None;
                    return Some(Err(e));
                }
            };
            if self.age_cutoff_us.is_some_and(|cutoff| event.timestamp_us() < cutoff) {
                continue;
            }
            self.remaining -= 1;
            return Some(Ok(event));
        }
    }
}
