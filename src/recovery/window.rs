//! The last stage of recovery, run by the writer thread when the first append arrives: refill
//! the idempotency window from the last events of the log, so a client retrying across a
//! restart still gets its original result.

use std::sync::Arc;

use crate::{
    error::{Error, Result},
    format::decode_record,
    segment::Segment,
    writer::IdWindow,
};

/// A window holding the whole appends among the last `capacity` events before `head`.
pub(crate) fn rebuild(segments: &[Arc<Segment>], head: u64, capacity: usize) -> Result<IdWindow> {
    let mut window = IdWindow::new(capacity);
    let first = segments[0].base_position();
    let start = head.saturating_sub(capacity as u64).max(first);
    if capacity == 0 || start >= head {
        return Ok(window);
    }
    let (mut ids, mut first_position) = (Vec::new(), 0);
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
            let record = decode_record(bytes, at, segment.layout()).map_err(|kind| {
                Error::Corruption { segment: segment.name().to_owned(), offset: at as u64, kind }
            })?;
            if aligned {
                if ids.is_empty() {
                    first_position = record.position();
                }
                ids.push(record.id());
                if record.batch_left() == 0 {
                    window.insert(first_position, &ids);
                    ids.clear();
                }
            }
            aligned |= record.batch_left() == 0;
            at = segment.skip_holes(at + record.len());
        }
    }
    Ok(window)
}
