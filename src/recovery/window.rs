//! Stage three of recovery: refill the idempotency window from the last events of the log, so
//! a client retrying across a restart still gets its original result.

use std::sync::Arc;

use uuid::Uuid;

use crate::{
    error::{Error, Result},
    format::{Record, decode_record},
    segment::Segment,
    types::{AppendResult, MultiAppendResult, Position, StreamVersion},
    writer::IdWindow,
};

/// A window holding the whole appends among the last `capacity` events before `head`.
pub(super) fn rebuild(segments: &[Arc<Segment>], head: u64, capacity: usize) -> Result<IdWindow> {
    let mut window = IdWindow::new(capacity);
    let first = segments[0].base_position();
    let start = head.saturating_sub(capacity as u64).max(first);
    if capacity == 0 || start >= head {
        return Ok(window);
    }
    let mut batch = Batch::default();
    // A record begins an append if the one before it ended one: so start one record early,
    // and take nothing until a batch has ended.
    let mut aligned = start == first;
    let scan_from = if aligned { start } else { start - 1 };
    let from = segments.partition_point(|s| s.base_position() <= scan_from) - 1;
    for segment in &segments[from..] {
        let view = segment.view(segment.committed_len())?;
        let bytes = view.bytes();
        let Some(mut at) = segment.locate_ceil(bytes, scan_from) else { continue };
        while at < bytes.len() {
            let record = decode_record(bytes, at).map_err(|kind| Error::Corruption {
                segment: segment.name().to_owned(),
                offset: at as u64,
                kind,
            })?;
            if aligned {
                batch.add(&record);
                if record.batch_left() == 0 {
                    let (ids, result) = batch.take();
                    window.insert(&ids, result);
                }
            }
            aligned |= record.batch_left() == 0;
            at = segment.skip_holes(at + record.len());
        }
    }
    Ok(window)
}

/// The records of one append, gathered back into the append's result.
#[derive(Default)]
struct Batch {
    ids: Vec<Uuid>,
    streams: Vec<(String, AppendResult)>,
}

impl Batch {
    fn add(&mut self, record: &Record<'_>) {
        self.ids.push(record.id());
        let (position, version) = (Position(record.position()), StreamVersion(record.version()));
        match self.streams.iter_mut().find(|(s, _)| s == record.stream()) {
            Some((_, r)) => {
                r.last_position = position;
                r.last_version = version;
            }
            None => self.streams.push((
                record.stream().to_owned(),
                AppendResult {
                    first_position: position,
                    last_position: position,
                    first_version: version,
                    last_version: version,
                },
            )),
        }
    }

    fn take(&mut self) -> (Vec<Uuid>, MultiAppendResult) {
        let streams = std::mem::take(&mut self.streams);
        let first_position = streams[0].1.first_position;
        let last_position = streams.iter().map(|(_, r)| r.last_position).max().expect("one");
        (
            std::mem::take(&mut self.ids),
            MultiAppendResult { first_position, last_position, streams },
        )
    }
}
