//! Iterator over one stream's events, in version order either way.

use std::sync::Arc;

use crate::{
    error::{Error, Result},
    format::CorruptionKind,
    index::MISSING,
    shared::Shared,
};

use super::{Locator, RecordedEvent};

/// How many positions a stream read copies out of the index at a time.
const CHUNK: usize = 256;

/// Events of one stream, forward or backward from a version.
pub struct ReadStream {
    locator: Locator,
    stream: String,
    forward: bool,
    /// The version the next event must have; `None` once the read has run out.
    next_version: Option<u64>,
    remaining: usize,
    chunk: Vec<u64>,
    chunk_at: usize,
}

impl ReadStream {
    /// A read of `stream` (which has events) from version `from`.
    pub(crate) fn new(
        shared: Arc<Shared>,
        stream: &str,
        from: u64,
        forward: bool,
        limit: usize,
    ) -> Result<ReadStream> {
        let last = shared
            .streams
            .last_version(stream)
            .ok_or_else(|| Error::StreamNotFound { stream: stream.to_owned() })?;
        let next_version = if forward { Some(from) } else { Some(from.min(last)) };
        Ok(ReadStream {
            locator: Locator::new(shared),
            stream: stream.to_owned(),
            forward,
            next_version,
            remaining: limit,
            chunk: Vec::new(),
            chunk_at: 0,
        })
    }

    /// The next position to read, refilling the chunk from the index when it runs out.
    fn next_position(&mut self, version: u64) -> Option<u64> {
        if self.chunk_at == self.chunk.len() {
            let max = self.remaining.min(CHUNK);
            let streams = &self.locator.shared().streams;
            streams.chunk(&self.stream, version, self.forward, max, &mut self.chunk)?;
            self.chunk_at = 0;
        }
        let position = *self.chunk.get(self.chunk_at)?;
        self.chunk_at += 1;
        Some(position)
    }
}

impl Iterator for ReadStream {
    type Item = Result<RecordedEvent>;

    fn next(&mut self) -> Option<Self::Item> {
        let (version, position) = loop {
            let version = self.next_version.filter(|_| self.remaining > 0)?;
            let Some(position) = self.next_position(version) else {
                self.next_version = None;
                return None;
            };
            if position != MISSING {
                break (version, position);
            }
            // A version a salvaging open could not keep: step over it.
            self.next_version =
                if self.forward { version.checked_add(1) } else { version.checked_sub(1) };
        };
        let read = self.locator.read(position).and_then(|event| match event {
            // Bytes, not `stream()`: the name needs no UTF-8 check to be compared.
            Some(e)
                if e.record().stream_bytes() == self.stream.as_bytes()
                    && e.version().get() == version =>
            {
                Ok(e)
            }
            _ => Err(Error::Corruption {
                segment: String::from("(stream index)"),
                offset: position,
                kind: CorruptionKind::IndexMismatch,
            }),
        });
        self.remaining -= 1;
        self.next_version = match (&read, self.forward) {
            (Err(_), _) => None,
            (Ok(_), true) => version.checked_add(1),
            (Ok(_), false) => version.checked_sub(1),
        };
        Some(read)
    }
}
